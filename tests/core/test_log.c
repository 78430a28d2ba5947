/* core/log: the log hook (each line that passes the level check reaches it,
 * with its level, the whole line and the message; removing it stops the
 * calls; calls from many threads are serialized) and the level filter. */
#include <pthread.h>
#include <string.h>

#include "core/log.h"
#include "test_util.h"

typedef struct {
    int n;
    ct_log_level_t level[16];
    char line[16][256], msg[16][256];
    int inside, overlap; /* for the threaded check */
    long calls;
} seen_t;

static void record(void *ctx, ct_log_level_t level, const char *line, const char *msg)
{
    seen_t *s = ctx;
    if (s->n < 16) {
        s->level[s->n] = level;
        snprintf(s->line[s->n], sizeof s->line[0], "%s", line);
        snprintf(s->msg[s->n], sizeof s->msg[0], "%s", msg);
    }
    s->n++;
}

static void test_hook(void)
{
    seen_t s = {0};
    ct__log_level = CT_LOG_LEVEL_INFO;
    ct_log_set_rank(3, 4);
    ct_log_set_hook(record, &s);
    CT_LOG_ERROR("disk %s is full", "/x");
    CT_LOG_WARN("slow step %d", 7);
    CT_LOG_INFO("hello");
    CT_LOG_DEBUG("filtered out by the level"); /* below the level: never formatted */
    ct_log_set_hook(NULL, NULL);
    CT_LOG_ERROR("after removal");
    CHECK_MSG(s.n == 3, "hook saw %d lines, want 3", s.n);
    if (s.n < 3) return;
    CHECK(s.level[0] == CT_LOG_LEVEL_ERROR && s.level[1] == CT_LOG_LEVEL_WARN &&
          s.level[2] == CT_LOG_LEVEL_INFO);
    CHECK(strcmp(s.msg[0], "disk /x is full") == 0);
    CHECK(strcmp(s.msg[1], "slow step 7") == 0);
    CHECK_MSG(strstr(s.line[0], " r3/4 ERROR disk /x is full\n") != NULL, "line: %s", s.line[0]);
    CHECK_MSG(strstr(s.line[1], " r3/4 WARN slow step 7\n") != NULL, "line: %s", s.line[1]);

    /* At debug level the debug line arrives too, and the message stays bare. */
    seen_t d = {0};
    ct__log_level = CT_LOG_LEVEL_DEBUG;
    ct_log_set_hook(record, &d);
    CT_LOG_DEBUG("x=%d", 5);
    ct_log_set_hook(NULL, NULL);
    ct__log_level = CT_LOG_LEVEL_INFO;
    CHECK(d.n == 1 && d.level[0] == CT_LOG_LEVEL_DEBUG && strcmp(d.msg[0], "x=5") == 0);
    CHECK_MSG(d.n == 1 && strstr(d.line[0], "test_log.c:") != NULL, "debug line: %s", d.line[0]);

    /* A second hook replaces the first. */
    seen_t a = {0}, b = {0};
    ct_log_set_hook(record, &a);
    ct_log_set_hook(record, &b);
    CT_LOG_WARN("to b");
    ct_log_set_hook(NULL, NULL);
    CHECK(a.n == 0 && b.n == 1);
}

/* Many threads log at once: the hook never runs twice concurrently and
 * sees every line. */
static void count_hook(void *ctx, ct_log_level_t level, const char *line, const char *msg)
{
    seen_t *s = ctx;
    if (__atomic_fetch_add(&s->inside, 1, __ATOMIC_SEQ_CST) != 0) s->overlap = 1;
    for (volatile int i = 0; i < 200; i++) {
    }
    s->calls++; /* unsynchronized on purpose: the lock in core/log.c must protect it */
    __atomic_fetch_sub(&s->inside, 1, __ATOMIC_SEQ_CST);
}

static void *log_many(void *arg)
{
    for (int i = 0; i < 500; i++) CT_LOG_WARN("thread line %d", i);
    return NULL;
}

static void test_hook_threads(void)
{
    seen_t s = {0};
    pthread_t t[4];
    ct_log_set_hook(count_hook, &s);
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, log_many, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    ct_log_set_hook(NULL, NULL);
    CHECK_MSG(s.calls == 2000, "hook saw %ld of 2000 lines", s.calls);
    CHECK(s.overlap == 0);
}

/* Before the process groups exist, the label comes from the launcher's
 * variables (Open MPI, then PMI, then Slurm); ct_log_set_rank overrides
 * them. Runs first, before anything calls ct_log_set_rank. */
static void test_rank_from_env(void)
{
    seen_t s = {0};
    const char *vars[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE",
                          "SLURM_PROCID", "SLURM_NTASKS"};
    for (int i = 0; i < 6; i++) unsetenv(vars[i]);
    ct_log_set_hook(record, &s);
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    setenv("SLURM_PROCID", "0", 1); /* mpirun inside an allocation: Open MPI's numbers win */
    setenv("SLURM_NTASKS", "1", 1);
    ct_log_init();
    CT_LOG_ERROR("a");
    CHECK(ct_log_rank() == 1);
    /* a rank outside its world is ignored; PMI comes next */
    setenv("OMPI_COMM_WORLD_RANK", "5", 1);
    setenv("PMI_RANK", "3", 1);
    setenv("PMI_SIZE", "4", 1);
    ct_log_init();
    CT_LOG_ERROR("b");
    /* junk is ignored too; Slurm's srun comes last */
    setenv("PMI_RANK", "3x", 1);
    setenv("SLURM_PROCID", "2", 1);
    setenv("SLURM_NTASKS", "3", 1);
    ct_log_init();
    CT_LOG_ERROR("c");
    /* once the groups set the rank, the environment no longer applies */
    ct_log_set_rank(0, 1);
    ct_log_init();
    CT_LOG_ERROR("d");
    ct_log_set_hook(NULL, NULL);
    for (int i = 0; i < 6; i++) unsetenv(vars[i]);
    CHECK_MSG(s.n == 4, "hook saw %d lines", s.n);
    if (s.n < 4) return;
    CHECK_MSG(strstr(s.line[0], " r1/2 ERROR a\n") != NULL, "line: %s", s.line[0]);
    CHECK_MSG(strstr(s.line[1], " r3/4 ERROR b\n") != NULL, "line: %s", s.line[1]);
    CHECK_MSG(strstr(s.line[2], " r2/3 ERROR c\n") != NULL, "line: %s", s.line[2]);
    CHECK_MSG(strstr(s.line[3], " r0/1 ERROR d\n") != NULL, "line: %s", s.line[3]);
}

static void record_tail(void *ctx, ct_log_level_t level, const char *line, const char *msg)
{
    size_t n = strlen(msg);
    snprintf(ctx, 64, "%s", n > 38 ? msg + n - 38 : msg);
}

/* Quoted outside bytes are clipped, keeping what follows them; a line that
 * is too long anyway says it was cut. */
static void test_clip(void)
{
    char buf[CT_LOG_CLIP_BUF], big[3000];
    CHECK(strcmp(ct_log_clip("short", buf), "short") == 0);
    memset(big, 'v', sizeof big);
    big[sizeof big - 1] = 0;
    const char *c = ct_log_clip(big, buf);
    CHECK_MSG(strncmp(c, big, 64) == 0 && strcmp(c + 64, "... (2999 bytes)") == 0, "clip: %s", c);
    big[64] = 0;
    CHECK(ct_log_clip(big, buf) == big); /* exactly the limit: as is */
    big[64] = 'v';
    /* a 2-byte UTF-8 character across the cut is left out whole */
    memcpy(big + 63, "\xc3\xa9", 2);
    c = ct_log_clip(big, buf);
    CHECK_MSG(strlen(c) > 63 && c[62] == 'v' && strncmp(c + 63, "... (2999 bytes)", 16) == 0,
              "utf8 clip: %s", c);
    big[63] = big[64] = 'v';
    /* n bytes with no NUL; a NUL inside ends the quote */
    CHECK(strcmp(ct_log_clip_n("abcdef", 3, buf), "abc") == 0);
    CHECK(strcmp(ct_log_clip_n("ab\0cd", 5, buf), "ab") == 0);
    c = ct_log_clip_n(big, 100, buf);
    CHECK(strcmp(c + 64, "... (100 bytes)") == 0);

    char tail[64] = "";
    ct_log_set_hook(record_tail, tail);
    CT_LOG_WARN("value %s then the reason", big);
    ct_log_set_hook(NULL, NULL);
    CHECK_MSG(strcmp(tail, "vvvvvvvv ... (message cut: 3021 bytes)") == 0, "tail: %s", tail);
}

int main(void)
{
    test_rank_from_env();
    ct_log_init();
    test_clip();
    test_hook();
    /* The threaded lines would flood the test log: send them to a file. */
    char path[4200];
    snprintf(path, sizeof path, "%s/log_threads.txt", ct_test_dir("test_log"));
    FILE *sink = fopen(path, "w");
    int saved = dup(2);
    fflush(stderr);
    if (sink) dup2(fileno(sink), 2);
    test_hook_threads();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    if (sink) fclose(sink);
    return ct_test_finish("test_log");
}
