/* mkdir -p, read-whole-file and directory sync (see core/fs.h). */
#include "core/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

ct_status_t ct_fs_mkdir_p(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        CT_LOG_ERROR("cannot create directory %.64s...: the path is longer than %zu bytes", path,
                     sizeof buf - 1);
        return CT_ERR_IO;
    }
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p) continue;
        char c = *p;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            CT_LOG_ERROR("cannot create directory %s: %s", buf, strerror(errno));
            return CT_ERR_IO;
        }
        if (!c) break;
        *p = c;
    }
    /* EEXIST also covers a file of that name, which mkdir cannot tell apart */
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        CT_LOG_ERROR("cannot create directory %s: %s", path,
                     stat(path, &sb) != 0 ? strerror(errno) : strerror(ENOTDIR));
        return CT_ERR_IO;
    }
    return CT_OK;
}

ct_status_t ct_fs_read_file(const char *path, char **buf_p, size_t *len_p)
{
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? CT_ERR_NOT_FOUND : CT_ERR_IO;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 1 >= cap) {
            size_t nc = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                fclose(f);
                return CT_ERR_NO_MEMORY;
            }
            buf = nb;
            cap = nc;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        free(buf);
        errno = err;
        return CT_ERR_IO;
    }
    buf[n] = 0;
    *buf_p = buf;
    *len_p = n;
    return CT_OK;
}

ct_status_t ct_fs_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        CT_LOG_ERROR("cannot sync directory %s: %s\n---> HINT: what was written there may not "
                     "survive a crash; check the file system", dir, strerror(errno));
        if (fd >= 0) close(fd);
        return CT_ERR_IO;
    }
    close(fd);
    return CT_OK;
}
