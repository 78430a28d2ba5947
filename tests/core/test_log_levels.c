/* core/log: every line is exactly "host:pid r<rank>/<world> LEVEL message"
 * (at debug level with file:line before the message); CT_LOG_LEVEL (any
 * case, "warning" too) filters the levels, and a filtered call does not
 * evaluate its arguments; the _R0 variants print on rank 0 only;
 * CT_ASSERT aborts naming the condition and the function after calling the
 * abort hook with 134; CT_LOG_FILE sends each rank's lines to its own file
 * (%h host, %r rank, %p pid), errors to stderr as well. */
#include "core/log.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "test_util.h"

static char host[64];

/* The line the logger must print (file and line only at debug level). */
static const char *line_for(int rank, int world, const char *level, const char *msg)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s:%d r%d/%d %s %s\n", host, (int)getpid(), rank, world, level,
             msg);
    return buf;
}

#define CHECK_OUTPUT(want) \
    CHECK_MSG(strcmp(ct_test_captured, (want)) == 0, "logged \"%s\", want \"%s\"", \
              ct_test_captured, (want))

static void set_level(const char *value)
{
    if (value) setenv("CT_LOG_LEVEL", value, 1);
    else unsetenv("CT_LOG_LEVEL");
    ct__log_level = CT_LOG_LEVEL_INFO; /* the default, before reading the variable */
    ct_log_init();
}

static int evaluated;
static int count_eval(void) { return ++evaluated; }

/* Logs one line at each level; returns which came out as a bit set
 * (1 error, 2 warn, 4 info, 8 debug). */
static int levels_shown(void)
{
    CAPTURE_STDERR({
        CT_LOG_ERROR("lvl-error");
        CT_LOG_WARN("lvl-warn");
        CT_LOG_INFO("lvl-info");
        CT_LOG_DEBUG("lvl-debug");
    });
    return (strstr(ct_test_captured, " ERROR ") && strstr(ct_test_captured, "lvl-error\n") ? 1 : 0) |
           (strstr(ct_test_captured, " WARN ") && strstr(ct_test_captured, "lvl-warn\n") ? 2 : 0) |
           (strstr(ct_test_captured, " INFO ") && strstr(ct_test_captured, "lvl-info\n") ? 4 : 0) |
           (strstr(ct_test_captured, " DEBUG ") && strstr(ct_test_captured, "lvl-debug\n") ? 8 : 0);
}

static void test_prefix(void)
{
    set_level(NULL);
    CAPTURE_STDERR(CT_LOG_INFO("hello %d %s", 42, "world"));
    CHECK_OUTPUT(line_for(0, 1, "INFO", "hello 42 world"));
    ct_log_set_rank(3, 8);
    CAPTURE_STDERR(CT_LOG_WARN("rank %d speaking", 3));
    CHECK_OUTPUT(line_for(3, 8, "WARN", "rank 3 speaking"));
    CAPTURE_STDERR(CT_LOG_ERROR("cannot open x: %s", "No such file or directory"));
    CHECK_OUTPUT(line_for(3, 8, "ERROR", "cannot open x: No such file or directory"));
    CHECK(ct_log_rank() == 3);
    ct_log_set_rank(0, 1);
}

static void test_levels(void)
{
    set_level(NULL);
    CHECK(ct__log_level == CT_LOG_LEVEL_INFO);
    int shown = levels_shown();
    CHECK_MSG(shown == 7, "default: shown %#x, want error+warn+info", shown);
    set_level("error");
    shown = levels_shown();
    CHECK_MSG(shown == 1, "CT_LOG_LEVEL=error: shown %#x", shown);
    set_level("warn");
    shown = levels_shown();
    CHECK_MSG(shown == 3, "CT_LOG_LEVEL=warn: shown %#x", shown);
    set_level("WARNING");
    shown = levels_shown();
    CHECK_MSG(shown == 3, "CT_LOG_LEVEL=WARNING: shown %#x", shown);
    set_level("Info");
    shown = levels_shown();
    CHECK_MSG(shown == 7, "CT_LOG_LEVEL=Info: shown %#x", shown);
    set_level("debug");
    shown = levels_shown();
    CHECK_MSG(shown == 15, "CT_LOG_LEVEL=debug: shown %#x", shown);
    /* at debug level each line names its source file and line */
    int line = __LINE__ + 1;
    CAPTURE_STDERR(CT_LOG_INFO("with a place"));
    char want[256];
    snprintf(want, sizeof want, "r0/1 INFO %s:%d with a place\n", __FILE__, line);
    CHECK_CAPTURED(want);
    set_level(NULL);
}

/* The level is checked before formatting: arguments of a filtered call
 * are never evaluated. */
static void test_filtered_not_evaluated(void)
{
    set_level("warn");
    evaluated = 0;
    CAPTURE_STDERR({
        CT_LOG_INFO("%d", count_eval());
        CT_LOG_DEBUG("%d", count_eval());
    });
    CHECK(evaluated == 0);
    CHECK(ct_test_captured[0] == 0);
    CAPTURE_STDERR(CT_LOG_WARN("%d", count_eval()));
    CHECK(evaluated == 1);
    set_level(NULL);
}

static void test_rank0_only(void)
{
    set_level(NULL);
    ct_log_set_rank(1, 2);
    CAPTURE_STDERR({
        CT_LOG_INFO_R0("progress");
        CT_LOG_WARN_R0("once");
    });
    CHECK_MSG(ct_test_captured[0] == 0, "rank 1 printed \"%s\"", ct_test_captured);
    ct_log_set_rank(0, 2);
    CAPTURE_STDERR({
        CT_LOG_INFO_R0("progress");
        CT_LOG_WARN_R0("once");
    });
    char want[1024];
    snprintf(want, sizeof want, "%s", line_for(0, 2, "INFO", "progress"));
    strncat(want, line_for(0, 2, "WARN", "once"), sizeof want - strlen(want) - 1);
    CHECK_OUTPUT(want);
    ct_log_set_rank(0, 1);
}

static void hook(int code)
{
    fprintf(stderr, "abort hook called with %d\n", code);
    fflush(stderr);
}

static void failing(int x) { CT_ASSERT(x == 2); }

static void test_assert_aborts(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/assert.log", ct_test_dir("log"));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(path, "w", stderr)) _exit(3);
        ct_log_set_abort_hook(hook);
        ct_log_set_rank(2, 4);
        CT_ASSERT(1 + 1 == 2); /* holds: nothing happens */
        failing(1);
        _exit(0);
    }
    int status = ct_test_reap_captured(pid, path);
    CHECK_MSG(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
              "failed CT_ASSERT: child status %#x, want SIGABRT", status);
    CHECK_CAPTURED(" r2/4 ERROR fatal at ");
    CHECK_CAPTURED("in failing(): assertion failed: x == 2\n");
    CHECK_CAPTURED("abort hook called with 134\n");
    CHECK(strstr(ct_test_captured, "1 + 1") == NULL);
}

/* Last: a log file, once open, stays open for the process. */
static void test_log_file(void)
{
    const char *dir = ct_test_dir("logfile");
    char pattern[4200], path[4300];
    snprintf(pattern, sizeof pattern, "%s/%%h.r%%r.log", dir);
    setenv("CT_LOG_FILE", pattern, 1);
    set_level(NULL);
    ct_log_set_rank(2, 4);
    CAPTURE_STDERR({
        CT_LOG_INFO("to the file %d", 1);
        CT_LOG_ERROR("an error %d", 2);
    });
    /* stderr gets the error only */
    CHECK_OUTPUT(line_for(2, 4, "ERROR", "an error 2"));
    snprintf(path, sizeof path, "%s/%s.r2.log", dir, host);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "no log file %s", path);
    char buf[2048] = "";
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
    char want[1024];
    snprintf(want, sizeof want, "%s", line_for(2, 4, "INFO", "to the file 1"));
    strncat(want, line_for(2, 4, "ERROR", "an error 2"), sizeof want - strlen(want) - 1);
    CHECK_MSG(strcmp(buf, want) == 0, "log file holds \"%s\", want \"%s\"", buf, want);
    unsetenv("CT_LOG_FILE");
}

int main(void)
{
    unsetenv("CT_LOG_FILE"); /* the caller's must not redirect what is checked here */
    if (gethostname(host, sizeof host) != 0) strcpy(host, "?");
    host[sizeof host - 1] = 0;
    char *dot = strchr(host, '.');
    if (dot) *dot = 0;
    test_prefix();
    test_levels();
    test_filtered_not_evaluated();
    test_rank0_only();
    test_assert_aborts();
    test_log_file();
    return ct_test_finish("test_log_levels");
}
