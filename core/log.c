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
static int log_rank_set = 0; /* by ct_log_set_rank: the launcher's numbers no longer apply */
static char log_host[64] = "";
static void (*log_abort_hook)(int) = NULL;
static const char *log_file_pattern = NULL; /* CT_LOG_FILE, e.g. logs/%h.%r.log */
static FILE *log_file = NULL;
static pthread_mutex_t log_hook_lock = PTHREAD_MUTEX_INITIALIZER;
static ct_log_hook_t log_hook = NULL; /* guarded by log_hook_lock */
static void *log_hook_ctx = NULL;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

/* A launcher's rank variable: a decimal number in [0, INT_MAX], else -1. */
static int env_count(const char *name)
{
    const char *v = ct_env_get(name);
    if (!v || !*v || strlen(v) > 9) return -1;
    int n = 0;
    for (; *v; v++) {
        if (*v < '0' || *v > '9') return -1;
        n = n * 10 + (*v - '0');
    }
    return n;
}

/* The rank and world size the launcher gave this process, if it gave both
 * and they agree (rank < world); else rank 0 of 1. Read before MPI starts,
 * so that config errors already carry the right label. */
static void log_rank_from_env(void)
{
    static const char *const vars[][2] = {{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                                          {"PMI_RANK", "PMI_SIZE"},
                                          {"SLURM_PROCID", "SLURM_NTASKS"}};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        int rank = env_count(vars[i][0]), world = env_count(vars[i][1]);
        if (rank >= 0 && world > rank) {
            log_rank = rank;
            log_world = world;
            return;
        }
    }
}

void ct_log_init(void)
{
    if (!log_rank_set) log_rank_from_env();
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
    log_rank_set = 1;
    if (!log_host[0]) ct_log_init();
    log_open_file();
}

int ct_log_rank(void) { return log_rank; }
int ct_log_world(void) { return log_world; }

void ct_log_set_abort_hook(void (*hook)(int code)) { log_abort_hook = hook; }

void ct_log_set_hook(ct_log_hook_t hook, void *ctx)
{
    pthread_mutex_lock(&log_hook_lock);
    log_hook = hook;
    log_hook_ctx = ctx;
    pthread_mutex_unlock(&log_hook_lock);
}

const char *ct_log_clip_n(const char *s, size_t n, char *buf)
{
    if (n <= CT_LOG_CLIP_KEEP) {
        snprintf(buf, CT_LOG_CLIP_BUF, "%.*s", (int)n, s);
        return buf;
    }
    size_t keep = CT_LOG_CLIP_KEEP;
    /* cut before a character, not inside one (UTF-8 continuation bytes are 10xxxxxx) */
    for (int i = 0; i < 3 && ((unsigned char)s[keep] & 0xC0) == 0x80; i++) keep--;
    snprintf(buf, CT_LOG_CLIP_BUF, "%.*s... (%zu bytes)", (int)keep, s, n);
    return buf;
}

const char *ct_log_clip(const char *s, char *buf)
{
    if (!s) return "(null)";
    size_t n = strnlen(s, CT_LOG_CLIP_KEEP + 1);
    if (n <= CT_LOG_CLIP_KEEP) return s;
    return ct_log_clip_n(s, strlen(s), buf);
}

static void log_vline(ct_log_level_t lvl, const char *file, int line, const char *fmt, va_list ap)
{
    char msg[2048];
    int full = vsnprintf(msg, sizeof msg, fmt, ap);
    if (full >= (int)sizeof msg) { /* say so, rather than end mid-word */
        char tail[64];
        int k = snprintf(tail, sizeof tail, " ... (message cut: %d bytes)", full);
        memcpy(msg + sizeof msg - 1 - (size_t)k, tail, (size_t)k + 1);
    }
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
