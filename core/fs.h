/* File-system helpers: mkdir -p, reading a whole file, and syncing a
 * directory (what makes a rename into it durable).
 *
 * Left out: atomic writes themselves (temporary file + rename + fsync live
 * with the checkpoint, shard and source writers, which call
 * ct_fs_sync_dir) and anything remote (data/source). Thread-safe (no
 * shared state). */
#ifndef CT_CORE_FS_H
#define CT_CORE_FS_H

#include <stddef.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates path and every missing parent, mode 0755, like `mkdir -p`. An
 * existing directory is fine; an existing non-directory is an error.
 * Logs the exact cause ("cannot create directory D: ..." naming the first
 * component that failed) and returns CT_ERR_IO, or CT_OK. */
CT_MUST_USE ct_status_t ct_fs_mkdir_p(const char *path);

/* Reads the whole file at path into a new buffer, NUL-terminated (the NUL
 * is not counted in *len_p; the file may hold NULs of its own). The caller
 * frees *buf_p. Does not log, so the caller can name what the file is for:
 * returns CT_ERR_NOT_FOUND (no such file), CT_ERR_IO (errno holds the
 * cause) or CT_ERR_NO_MEMORY; *buf_p and *len_p are written only on
 * success. */
CT_MUST_USE ct_status_t ct_fs_read_file(const char *path, char **buf_p, size_t *len_p);

/* fsyncs directory dir, so that files created or renamed into it survive
 * a crash. Logs the cause ("cannot sync directory D: ...") and returns
 * CT_ERR_IO, or CT_OK. */
CT_MUST_USE ct_status_t ct_fs_sync_dir(const char *dir);

#ifdef __cplusplus
}
#endif

#endif
