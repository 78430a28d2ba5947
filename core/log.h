/* Rank-aware logging and the second error channel (programmer and device
 * errors abort loudly).
 *
 * Every line starts "host:pid r<rank>/<world> LEVEL". The level comes from
 * CT_LOG_LEVEL (error, warn, info, debug; default info) and is checked before
 * any formatting. CT_LOG_INFO_R0 prints on rank 0 only (progress lines).
 * CT_LOG_FILE=logs/%h.%r.log sends each rank's lines to its own file (%h
 * host, %r rank, %p pid; the directory must exist); errors still go to
 * stderr too.
 * Thread-safe: one fprintf per line. */
#ifndef CT_CORE_LOG_H
#define CT_CORE_LOG_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
#define _Noreturn [[noreturn]]
extern "C" {
#endif

typedef enum {
    CT_LOG_LEVEL_ERROR = 0,
    CT_LOG_LEVEL_WARN = 1,
    CT_LOG_LEVEL_INFO = 2,
    CT_LOG_LEVEL_DEBUG = 3,
} ct_log_level_t;

extern int ct__log_level;

/* Reads CT_LOG_LEVEL, and the rank and world size that a launcher gives
 * each process (OMPI_COMM_WORLD_RANK/SIZE from Open MPI's mpirun,
 * PMI_RANK/SIZE from MPICH's and Intel MPI's, SLURM_PROCID/NTASKS from
 * srun), so lines logged before the process groups exist (a bad config)
 * already name the rank. Safe to call more than once; logging works without
 * it (rank 0 of 1, level info). ct_log_set_rank overrides the launcher's
 * numbers once the process groups are built. */
void ct_log_init(void);
/* Sets the rank and world shown in each line. */
void ct_log_set_rank(int rank, int world);
int ct_log_rank(void);
/* The world size shown in each line (the launcher's before MPI starts). */
int ct_log_world(void);
/* Outside bytes (a config value, a key, a file's field) quoted in a
 * message: s itself when it is at most CT_LOG_CLIP_KEEP bytes, else its
 * first CT_LOG_CLIP_KEEP bytes (not cutting a UTF-8 character) followed by
 * "... (N bytes)", written to buf, which must hold CT_LOG_CLIP_BUF bytes.
 * So a line is never cut before the reason that follows the value
 * (lines are limited to about 2 KiB). */
#define CT_LOG_CLIP_KEEP 64
#define CT_LOG_CLIP_BUF (CT_LOG_CLIP_KEEP + 40)
const char *ct_log_clip(const char *s, char *buf);
/* The same for the n bytes at s, which need not end in a NUL (one inside
 * ends the quoted part early). Always writes buf. */
const char *ct_log_clip_n(const char *s, size_t n, char *buf);

/* Called by ct__fatal before abort(), e.g. MPI_Abort so peers don't hang. */
void ct_log_set_abort_hook(void (*hook)(int code));

/* Receives each line that is logged (one passing the level check), after it
 * is written: `line` is the whole line as printed ("host:pid rR/W LEVEL ...",
 * with its newline), `msg` the formatted message alone. Both are valid only
 * during the call. */
typedef void (*ct_log_hook_t)(void *ctx, ct_log_level_t level, const char *line, const char *msg);
/* Installs hook with ctx (NULL removes it); one hook at a time, the previous
 * one is replaced. Calls are serialized: a hook never runs on two threads at
 * once, and once ct_log_set_hook returns the old hook is not running and will
 * not be called again. The hook must not log. */
void ct_log_set_hook(ct_log_hook_t hook, void *ctx);

void ct__log(ct_log_level_t level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
_Noreturn void ct__fatal(const char *file, int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define CT__LOG(lvl, ...)                                                 \
    do {                                                                  \
        if ((int)(lvl) <= ct__log_level) ct__log((lvl), __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)
#define CT_LOG_ERROR(...) CT__LOG(CT_LOG_LEVEL_ERROR, __VA_ARGS__)
#define CT_LOG_WARN(...) CT__LOG(CT_LOG_LEVEL_WARN, __VA_ARGS__)
#define CT_LOG_INFO(...) CT__LOG(CT_LOG_LEVEL_INFO, __VA_ARGS__)
#define CT_LOG_DEBUG(...) CT__LOG(CT_LOG_LEVEL_DEBUG, __VA_ARGS__)
#define CT_LOG_WARN_R0(...)                                               \
    do {                                                                  \
        if (ct_log_rank() == 0) CT_LOG_WARN(__VA_ARGS__);                 \
    } while (0)
/* Progress output: rank 0 only. */
#define CT_LOG_INFO_R0(...)                                               \
    do {                                                                  \
        if (ct_log_rank() == 0) CT_LOG_INFO(__VA_ARGS__);                 \
    } while (0)

/* Always-on assertion for programmer errors. */
#define CT_ASSERT(cond)                                                   \
    do {                                                                  \
        if (!(cond)) ct__fatal(__FILE__, __LINE__, __func__, "assertion failed: %s", #cond); \
    } while (0)

/* Generic check for library calls: `ok` is an expression over `_rc` that is
 * true on success, `msg` turns `_rc` into the library's message. The CUDA,
 * cuBLAS, NCCL and MPI checks are built on this. */
#define CT_CHECK_GEN(type, stmt, ok, msg)                                 \
    do {                                                                  \
        type _rc = (stmt);                                                \
        if (!(ok)) ct__fatal(__FILE__, __LINE__, __func__, "%s failed: %s", #stmt, (msg)); \
    } while (0)

/* Checks a libc call returning 0 on success, errno-style. */
#define CT_CHECK_ERRNO(stmt) CT_CHECK_GEN(int, stmt, _rc == 0, strerror(errno))

#ifdef __cplusplus
}
#endif

#endif
