/* Tiny test harness: CHECK records a failure and continues, the test's exit
 * code is the verdict (non-zero if any CHECK failed). Also helpers for
 * temporary directories and capturing what a function logs to stderr. */
#ifndef CT_TESTS_TEST_UTIL_H
#define CT_TESTS_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"

static int ct_test_failures __attribute__((unused)) = 0;
static int ct_test_checks __attribute__((unused)) = 0;

#define CHECK(cond)                                                       \
    do {                                                                  \
        ct_test_checks++;                                                 \
        if (!(cond)) {                                                    \
            ct_test_failures++;                                           \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                 \
    } while (0)

#define CHECK_MSG(cond, ...)                                              \
    do {                                                                  \
        ct_test_checks++;                                                 \
        if (!(cond)) {                                                    \
            ct_test_failures++;                                           \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fprintf(stderr, "\n");                                        \
        }                                                                 \
    } while (0)

/* Ends main(): prints a summary and returns the verdict. */
static inline int ct_test_finish(const char *name)
{
    fprintf(stderr, "%s: %d checks, %d failed\n", name, ct_test_checks, ct_test_failures);
    return ct_test_failures ? 1 : 0;
}

/* A fresh directory under $CT_TEST_TMP (or /tmp) named after `tag`. Returns
 * a static buffer. */
static inline const char *ct_test_dir(const char *tag)
{
    static char buf[4096];
    const char *base = getenv("CT_TEST_TMP");
    if (!base) base = "/tmp";
    mkdir(base, 0755);
    snprintf(buf, sizeof buf, "%s/%s.%d", base, tag, (int)getpid());
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", buf, buf);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot create %s\n", buf);
        exit(2);
    }
    return buf;
}

/* Captures stderr while running a statement; the captured text is in
 * ct_test_captured (static, truncated to 64 KiB). */
static char ct_test_captured[65536] __attribute__((unused));
/* Log lines written while stderr is captured also go to the real stderr at
 * once (through the log hook), so a process that ends inside the captured
 * statement (a watchdog's _exit, an abort) still shows why. */
static int ct_test_tee_fd __attribute__((unused)) = -1;
static inline void ct_test_tee(void *ctx, ct_log_level_t level, const char *line, const char *msg)
{
    if (ct_test_tee_fd >= 0 && write(ct_test_tee_fd, line, strlen(line)) < 0) ct_test_tee_fd = -1;
}

#define CAPTURE_STDERR(stmt)                                              \
    do {                                                                  \
        fflush(stderr);                                                   \
        FILE *_tmpf = tmpfile();                                          \
        int _saved = dup(2);                                              \
        dup2(fileno(_tmpf), 2);                                           \
        ct_test_tee_fd = _saved;                                          \
        ct_log_set_hook(ct_test_tee, NULL);                               \
        stmt;                                                             \
        ct_log_set_hook(NULL, NULL);                                      \
        ct_test_tee_fd = -1;                                              \
        fflush(stderr);                                                   \
        dup2(_saved, 2);                                                  \
        close(_saved);                                                    \
        rewind(_tmpf);                                                    \
        size_t _n = fread(ct_test_captured, 1, sizeof ct_test_captured - 1, _tmpf); \
        ct_test_captured[_n] = 0;                                         \
        fclose(_tmpf);                                                    \
    } while (0)

/* Waits for child pid, whose stderr went to the file at path, and reads
 * that file into ct_test_captured. Returns the wait status, or -1 when the
 * wait failed. */
static inline int ct_test_reap_captured(pid_t pid, const char *path)
{
    int status = 0;
    if (pid <= 0 || waitpid(pid, &status, 0) != pid) status = -1;
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(ct_test_captured, 1, sizeof ct_test_captured - 1, f) : 0;
    ct_test_captured[n] = 0;
    if (f) fclose(f);
    return status;
}

#define CHECK_CAPTURED(substr)                                            \
    CHECK_MSG(strstr(ct_test_captured, (substr)) != NULL, "expected \"%s\" in output", (substr))

#endif
