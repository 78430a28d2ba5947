/* Reading and checking llm.c-compatible shard headers. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "data/data.h"

ct_status_t ct_shard_check_header(const void *hdr_bytes, int64_t size, const char *name,
                                  ct_shard_info_t *info_p)
{
    int32_t hdr[256];
    memcpy(hdr, hdr_bytes, sizeof hdr);
    int width;
    if (hdr[0] == CT_SHARD_MAGIC_U16 && hdr[1] == CT_SHARD_VERSION_U16) {
        width = 2;
    } else if (hdr[0] == CT_SHARD_MAGIC_U32 && hdr[1] == CT_SHARD_VERSION_U32) {
        width = 4;
    } else {
        CT_LOG_ERROR("shard %s has bad magic/version %d/%d at offset 0 (expected %d/%d for uint16 "
                     "or %d/%d for uint32 tokens)\n---> HINT: is this an llm.c/ctrain token shard?",
                     name, hdr[0], hdr[1], CT_SHARD_MAGIC_U16, CT_SHARD_VERSION_U16,
                     CT_SHARD_MAGIC_U32, CT_SHARD_VERSION_U32);
        return CT_ERR_CORRUPT;
    }
    int64_t ntok = (int64_t)(uint32_t)hdr[2];
    int64_t want = CT_SHARD_HEADER_BYTES + ntok * width;
    if (size != want) {
        CT_LOG_ERROR("shard %s: header says %lld tokens (%lld bytes) but the file has %lld bytes "
                     "(%s)\n---> HINT: the shard is %s; re-create it",
                     name, (long long)ntok, (long long)want, (long long)size,
                     size < want ? "truncated" : "trailing bytes",
                     size < want ? "truncated" : "corrupt");
        return CT_ERR_CORRUPT;
    }
    info_p->ntok = ntok;
    info_p->width = width;
    return CT_OK;
}

ct_status_t ct_shard_read_header(const char *path, ct_shard_info_t *info_p)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        CT_LOG_ERROR("cannot open shard %s: %s\n---> HINT: check data.train / data.val", path,
                     strerror(errno));
        return CT_ERR_NOT_FOUND;
    }
    char hdr[CT_SHARD_HEADER_BYTES];
    size_t got = fread(hdr, 1, sizeof hdr, f);
    struct stat st;
    int stat_rc = fstat(fileno(f), &st);
    fclose(f);
    if (stat_rc != 0) {
        CT_LOG_ERROR("cannot stat shard %s: %s", path, strerror(errno));
        return CT_ERR_IO;
    }
    if (got != sizeof hdr) {
        CT_LOG_ERROR("shard %s is truncated: %lld bytes, shorter than the 1024-byte header",
                     path, (long long)st.st_size);
        return CT_ERR_CORRUPT;
    }
    return ct_shard_check_header(hdr, (int64_t)st.st_size, path, info_p);
}
