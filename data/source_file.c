/* Byte sources, the local-file backend (plain paths and file://). Sizes
 * come from stat, reads are pread loops on a descriptor opened per call (the
 * page cache makes this cheap, and no descriptor outlives a call), lists
 * expand globs, and writes go through a temporary file in the same folder,
 * fsync and rename, so a reader sees the old object or the new one, never a
 * part. Messages about a relative path name the working directory it was
 * taken from.
 *
 * Left out: creating missing folders, globs matching hidden files (glob's
 * defaults), and listing a folder by its name: name its files with a glob. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <limits.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/log.h"
#include "data/source_impl.h"

/* " (relative to CWD)" for a relative path, "" for an absolute one. */
static const char *cwd_note(const char *path, char *buf, size_t cap)
{
    if (path[0] == '/') return "";
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "the working directory");
    snprintf(buf, cap, " (relative to %s)", cwd);
    return buf;
}

static CT_MUST_USE ct_status_t path_size(const char *path, int64_t *size_p)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        char note[PATH_MAX + 32];
        CT_LOG_ERROR("cannot stat %s%s: %s%s", path, cwd_note(path, note, sizeof note),
                     strerror(e), e == ENOENT ? "\n---> HINT: check the path (relative paths "
                                                "start in the working directory)" : "");
        return e == ENOENT ? CT_ERR_NOT_FOUND : CT_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        CT_LOG_ERROR("%s is not a regular file\n---> HINT: name the files, e.g. %s/*.bin", path,
                     path);
        return CT_ERR_INVALID_ARG;
    }
    *size_p = (int64_t)st.st_size;
    return CT_OK;
}

static CT_MUST_USE ct_status_t file_size(ct_source_t *src, const ct__url_t *u, int64_t *size_p)
{
    return path_size(u->path, size_p);
}

static CT_MUST_USE ct_status_t file_read(ct_source_t *src, const ct__url_t *u, int64_t offset, size_t len,
                             int64_t expect_size, void *dst)
{
    const char *path = u->path;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        CT_LOG_ERROR("cannot open %s: %s", path, strerror(e));
        return e == ENOENT ? CT_ERR_NOT_FOUND : CT_ERR_IO;
    }
    ct_status_t st = CT_OK;
    struct stat sb;
    if (expect_size >= 0 && fstat(fd, &sb) == 0 && (int64_t)sb.st_size != expect_size) {
        CT_LOG_ERROR("%s changed size: %lld bytes now, %lld when listed (reading byte offset "
                     "%lld)\n---> HINT: do not rewrite shards while a run reads them",
                     path, (long long)sb.st_size, (long long)expect_size, (long long)offset);
        st = CT_ERR_CORRUPT;
        goto out;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, (char *)dst + got, len - got, (off_t)(offset + (int64_t)got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            CT_LOG_ERROR("read error in %s at byte offset %lld: %s", path,
                         (long long)(offset + (int64_t)got), strerror(errno));
            st = CT_ERR_IO;
            goto out;
        }
        if (r == 0) {
            CT_LOG_ERROR("%s ends at byte offset %lld, inside the range [%lld, %lld) being read"
                         "\n---> HINT: the file is shorter than its header or listing says; it "
                         "was truncated or changed", path, (long long)(offset + (int64_t)got),
                         (long long)offset, (long long)(offset + (int64_t)len));
            st = CT_ERR_CORRUPT;
            goto out;
        }
        got += (size_t)r;
    }
out:
    close(fd);
    return st;
}

static CT_MUST_USE ct_status_t file_write(ct_source_t *src, const ct__url_t *u, const void *data, size_t len)
{
    const char *path = u->path;
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 48);
    char *dircopy = strdup(path);
    if (!tmp || !dircopy) {
        free(tmp);
        free(dircopy);
        return CT_ERR_NO_MEMORY;
    }
    snprintf(tmp, pl + 48, "%s.tmp.%d.%lx", path, (int)getpid(),
             (unsigned long)(ct__random01() * 4294967295.0));
    ct_status_t st = CT_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        CT_LOG_ERROR("cannot create %s: %s\n---> HINT: the folder must exist and be writable",
                     tmp, strerror(errno));
        st = CT_ERR_IO;
        goto out;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, (const char *)data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            CT_LOG_ERROR("cannot write %s at byte offset %zu: %s", tmp, done,
                         w < 0 ? strerror(errno) : "no progress");
            st = CT_ERR_IO;
            break;
        }
        done += (size_t)w;
    }
    if (st == CT_OK && fsync(fd) != 0) {
        CT_LOG_ERROR("cannot fsync %s: %s", tmp, strerror(errno));
        st = CT_ERR_IO;
    }
    if (close(fd) != 0 && st == CT_OK) {
        CT_LOG_ERROR("cannot close %s: %s", tmp, strerror(errno));
        st = CT_ERR_IO;
    }
    if (st == CT_OK && rename(tmp, path) != 0) {
        CT_LOG_ERROR("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        st = CT_ERR_IO;
    }
    if (st != CT_OK) {
        unlink(tmp);
        goto out;
    }
    st = ct_fs_sync_dir(dirname(dircopy)); /* makes the rename durable */
out:
    free(tmp);
    free(dircopy);
    return st;
}

static CT_MUST_USE ct_status_t file_list(ct_source_t *src, const ct__url_t *u, ct_object_t **objs, int *n,
                             int *cap)
{
    const char *item = u->path;
    int64_t size = 0;
    if (!strpbrk(item, "*?[")) {
        ct_status_t st = path_size(item, &size);
        return st == CT_OK ? ct__objects_push(objs, n, cap, item, strlen(item), size) : st;
    }
    char note[PATH_MAX + 32];
    glob_t g;
    int rc = glob(item, 0, NULL, &g);
    if (rc == GLOB_NOMATCH) {
        CT_LOG_ERROR("no file matches '%s'%s\n---> HINT: check the folder and the pattern (* ? "
                     "[...] match within one folder; relative paths start in the working "
                     "directory)", item, cwd_note(item, note, sizeof note));
        return CT_ERR_NOT_FOUND;
    }
    if (rc != 0) {
        CT_LOG_ERROR("cannot expand '%s': %s", item,
                     rc == GLOB_NOSPACE ? "out of memory" : "read error");
        return CT_ERR_IO;
    }
    ct_status_t st = CT_OK;
    int first = *n;
    for (size_t i = 0; i < g.gl_pathc && st == CT_OK; i++) {
        struct stat sb;
        if (stat(g.gl_pathv[i], &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        st = ct__objects_push(objs, n, cap, g.gl_pathv[i], strlen(g.gl_pathv[i]),
                              (int64_t)sb.st_size);
    }
    if (st == CT_OK && *n == first) {
        CT_LOG_ERROR("no file matches '%s'%s, only %zu folder(s) or other non-regular "
                     "file(s)\n---> HINT: name the files, e.g. %s/*.bin", item,
                     cwd_note(item, note, sizeof note), g.gl_pathc, g.gl_pathv[0]);
        st = CT_ERR_NOT_FOUND;
    }
    globfree(&g);
    return st;
}

const ct__src_backend_t ct__src_file = {
    .name = "file",
    .size = file_size,
    .read = file_read,
    .write = file_write,
    .list = file_list,
};
