/* Logging implementation. Lines go to stderr. Per-rank log files and the
 * JSONL metrics stream are elsewhere (trainer/). */
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/env.h"

int ct__log_level = CT_LOG_LEVEL_INFO;
static int log_rank = 0, log_world = 1;
static char log_host[64] = "";
static void (*log_abort_hook)(int) = NULL;
static const char *log_file_pattern = NULL; /* CT_LOG_FILE, e.g. logs/%h.%r.log */
static FILE *log_file = NULL;
static pthread_mutex_t log_hook_lock = PTHREAD_MUTEX_INITIALIZER;
static ct_log_hook_t log_hook = NULL; /* guarded by log_hook_lock */
static void *log_hook_ctx = NULL;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void ct_log_init(void)
{
    const char *lvl = ct_env_get("CT_LOG_LEVEL");
    if (lvl) {
        for (int i = 0; i < 4; i++)
            if (strcasecmp(lvl, level_names[i]) == 0) ct__log_level = i;
        if (strcasecmp(lvl, "warning") == 0) ct__log_level = CT_LOG_LEVEL_WARN;
    }
    log_file_pattern = ct_env_get("CT_LOG_FILE");
    if (gethostname(log_host, sizeof log_host) != 0) strcpy(log_host, "?");
    log_host[sizeof log_host - 1] = 0;
    char *dot = strchr(log_host, '.');
    if (dot) *dot = 0;
}

/* Opens this rank's log file from CT_LOG_FILE: %h host, %r rank, %p pid. */
static void log_open_file(void)
{
    if (!log_file_pattern || !*log_file_pattern) return;
    char path[4096];
    size_t n = 0;
    for (const char *p = log_file_pattern; *p && n + 64 < sizeof path; p++) {
        if (*p == '%' && (p[1] == 'h' || p[1] == 'r' || p[1] == 'p')) {
            if (p[1] == 'h') n += (size_t)snprintf(path + n, sizeof path - n, "%s", log_host);
            else n += (size_t)snprintf(path + n, sizeof path - n, "%d", p[1] == 'r' ? log_rank : (int)getpid());
            p++;
        } else {
            path[n++] = *p;
        }
    }
    path[n] = 0;
    if (log_file) fclose(log_file);
    log_file = fopen(path, "a");
    if (log_file) setvbuf(log_file, NULL, _IOLBF, 0);
    else fprintf(stderr, "%s:%d r%d/%d WARN cannot open CT_LOG_FILE %s: %s; logging to stderr\n",
                 log_host, (int)getpid(), log_rank, log_world, path, strerror(errno));
}

void ct_log_set_rank(int rank, int world)
{
    log_rank = rank;
    log_world = world;
    if (!log_host[0]) ct_log_init();
    log_open_file();
}

int ct_log_rank(void) { return log_rank; }

void ct_log_set_abort_hook(void (*hook)(int code)) { log_abort_hook = hook; }

void ct_log_set_hook(ct_log_hook_t hook, void *ctx)
{
    pthread_mutex_lock(&log_hook_lock);
    log_hook = hook;
    log_hook_ctx = ctx;
    pthread_mutex_unlock(&log_hook_lock);
}

static void log_vline(ct_log_level_t lvl, const char *file, int line, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (!log_host[0]) ct_log_init();
    const char *level = level_names[lvl];
    char out[2400];
    if (ct__log_level >= CT_LOG_LEVEL_DEBUG)
        snprintf(out, sizeof out, "%s:%d r%d/%d %s %s:%d %s\n", log_host, (int)getpid(), log_rank,
                 log_world, level, file, line, msg);
    else
        snprintf(out, sizeof out, "%s:%d r%d/%d %s %s\n", log_host, (int)getpid(), log_rank,
                 log_world, level, msg);
    /* with CT_LOG_FILE, lines go to this rank's file, and errors to stderr too */
    if (log_file) fputs(out, log_file);
    if (!log_file || lvl == CT_LOG_LEVEL_ERROR) fputs(out, stderr);
    pthread_mutex_lock(&log_hook_lock);
    if (log_hook) log_hook(log_hook_ctx, lvl, out, msg);
    pthread_mutex_unlock(&log_hook_lock);
}

void ct__log(ct_log_level_t level, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vline(level, file, line, fmt, ap);
    va_end(ap);
}

void ct__fatal(const char *file, int line, const char *func, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ct__log(CT_LOG_LEVEL_ERROR, file, line, "fatal at %s:%d in %s(): %s", file, line, func, msg);
    fflush(stderr);
    if (log_abort_hook) log_abort_hook(134);
    abort();
}
