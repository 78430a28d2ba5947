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

int main(void)
{
    ct_log_init();
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
