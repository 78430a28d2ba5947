/* core/arena: sizes round up to 64 bytes, memory is 64-byte aligned and
 * zeroed (even when the allocator hands back memory it had before),
 * allocations are consecutive at 64-byte steps and fill an arena sized with
 * ct_arena_align exactly, an arena of 0 bytes holds nothing, free resets
 * it, an impossible size is CT_ERR_NO_MEMORY naming what it was for, and
 * overrunning an arena aborts (in a child process). */
#include "core/arena.h"

#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>

#include "core/log.h"
#include "test_util.h"

/* Under AddressSanitizer an impossible allocation must return NULL, as
 * glibc's does, instead of ending the test. Unused without ASan. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

static int aligned64(const void *p) { return ((uintptr_t)p & 63u) == 0; }

static void test_align(void)
{
    CHECK(ct_arena_align(0) == 0);
    CHECK(ct_arena_align(1) == 64);
    CHECK(ct_arena_align(63) == 64);
    CHECK(ct_arena_align(64) == 64);
    CHECK(ct_arena_align(65) == 128);
    CHECK(ct_arena_align(1000) == 1024);
}

static void test_init_alloc(void)
{
    ct_arena_t a;
    CHECK(ct_arena_init(&a, 100, "test") == CT_OK);
    CHECK(a.base != NULL && aligned64(a.base));
    CHECK(a.size == 128 && a.used == 0);
    char *p = ct_arena_alloc(&a, 1);
    char *q = ct_arena_alloc(&a, 3);
    CHECK(p == a.base);
    CHECK(q == a.base + 64);
    CHECK(a.used == 128);
    CHECK(ct_arena_alloc(&a, 0) == a.base + 128); /* nothing more is taken */
    CHECK(a.used == 128);
    ct_arena_free(&a);
    CHECK(a.base == NULL && a.size == 0 && a.used == 0);
    ct_arena_free(&a); /* a second free is harmless */

    /* sized as the sum of aligned pieces, it holds exactly those pieces */
    size_t sizes[] = {4 * 37, 1, 64, 65, 4 * 16 * 16, 7};
    size_t n = sizeof sizes / sizeof sizes[0], total = 0;
    for (size_t i = 0; i < n; i++) total += ct_arena_align(sizes[i]);
    CHECK(ct_arena_init(&a, total, "pieces") == CT_OK);
    char *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        char *r = ct_arena_alloc(&a, sizes[i]);
        CHECK(aligned64(r));
        if (prev) CHECK((size_t)(r - prev) == ct_arena_align(sizes[i - 1]));
        memset(r, 0x5a, sizes[i]); /* ASan: every piece is writable in full */
        prev = r;
    }
    CHECK(a.used == a.size && a.size == total);
    ct_arena_free(&a);
}

static void test_zeroed(void)
{
    /* dirty some memory, give it back, and take the same amount again:
     * allocators reuse it (and ASan fills fresh memory with 0xbe) */
    for (int round = 0; round < 4; round++) {
        size_t sz = (size_t)4096 << round;
        ct_arena_t a;
        CHECK(ct_arena_init(&a, sz, "dirty") == CT_OK);
        memset(ct_arena_alloc(&a, sz), 0xab, sz);
        ct_arena_free(&a);
        CHECK(ct_arena_init(&a, sz, "clean") == CT_OK);
        size_t nonzero = 0;
        for (size_t i = 0; i < a.size; i++) nonzero += a.base[i] != 0;
        CHECK_MSG(nonzero == 0, "%zu of %zu bytes not zero in a fresh arena", nonzero, a.size);
        ct_arena_free(&a);
    }
}

static void test_empty(void)
{
    ct_arena_t a;
    memset(&a, 0x77, sizeof a);
    CHECK(ct_arena_init(&a, 0, "nothing") == CT_OK);
    CHECK(a.base == NULL && a.size == 0 && a.used == 0);
    ct_arena_free(&a);
}

static void test_no_memory(void)
{
    ct_arena_t a;
    memset(&a, 0x77, sizeof a);
    ct_status_t st = CT_OK;
    CAPTURE_STDERR(st = ct_arena_init(&a, SIZE_MAX / 4, "the test's impossible tensor"));
    CHECK(st == CT_ERR_NO_MEMORY);
    CHECK(a.base == NULL && a.size == 0 && a.used == 0);
    CHECK_CAPTURED("out of memory");
    CHECK_CAPTURED("for the test's impossible tensor");
    ct_arena_free(&a);
}

/* Taking more than the arena holds is a sizing bug: it must abort, naming
 * the failed assertion, not hand out memory past the end. */
static void test_overrun_aborts(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/overrun.log", ct_test_dir("arena"));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(path, "w", stderr)) _exit(3);
        ct_arena_t a;
        if (ct_arena_init(&a, 128, "small") != CT_OK) _exit(3);
        ct_arena_alloc(&a, 100);
        ct_arena_alloc(&a, 1); /* 128 + 64 > 128 */
        _exit(0);              /* reached only if the overrun went unnoticed */
    }
    int status = ct_test_reap_captured(pid, path);
    CHECK_MSG(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
              "overrunning the arena: child status %#x, want SIGABRT", status);
    CHECK_CAPTURED("assertion failed");
    CHECK_CAPTURED("ct_arena_alloc");
}

int main(void)
{
    ct_log_init();
    test_align();
    test_init_alloc();
    test_zeroed();
    test_empty();
    test_no_memory();
    test_overrun_aborts();
    return ct_test_finish("test_arena");
}
