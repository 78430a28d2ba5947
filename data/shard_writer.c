/* Writing llm.c-compatible token shards: prefix_000000.bin, prefix_000001.bin,
 * ... each holding at most shard_tokens tokens.
 *
 * A shard is written under "<name>.tmp" with a zero header, then on closing
 * the header is filled in, the file synced and renamed to its final name, so
 * a crash never leaves a half-written shard under a valid shard name. Errors
 * are sticky: after one, every call returns it and close deletes the
 * unfinished temporary file. Shards finished before the error stay.
 *
 * A prefix that is a URL (s3://bucket/dir/name, gs://..., http(s)://) stages
 * each shard in an anonymous temporary file and uploads it when finished
 * (ct_source_write: PutObject, or a multipart upload for large shards).
 *
 * Left out: deleting shards of an earlier, longer run with the same prefix
 * (close warns about them instead, for local files). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "data/data.h"
#include "data/source.h"

/* Tokens converted per fwrite. */
#define SW_CHUNK 65536

struct ct_shard_writer {
    char *prefix;
    int64_t shard_tokens;
    int vocab_size;
    int width; /* 2 or 4 bytes per token */
    FILE *f;   /* the open shard, or NULL between shards */
    char path[4096], tmp[4096 + 8];
    int64_t cur;   /* tokens in the open shard */
    int n_shards;  /* finished shards */
    int64_t total; /* tokens in finished and open shards */
    ct_status_t err;
    ct_source_t *src; /* for a remote prefix, else NULL */
    uint8_t buf[SW_CHUNK * 4];
};

static int is_remote(const char *prefix)
{
    return strstr(prefix, "://") != NULL && strncmp(prefix, "file://", 7) != 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static int shard_name(const ct_shard_writer_t *w, int index, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s_%06d.bin", w->prefix, index);
    return n < 0 || (size_t)n >= cap;
}

ct_status_t ct_shard_writer_init(const char *prefix, int64_t shard_tokens, int vocab_size,
                                 ct_shard_writer_t **w_p)
{
    if (shard_tokens <= 0 || shard_tokens > INT32_MAX) {
        CT_LOG_ERROR("shard writer %s: shard_tokens %lld out of range [1, %d] (the header "
                     "holds the count as int32)", prefix, (long long)shard_tokens, INT32_MAX);
        return CT_ERR_INVALID_ARG;
    }
    if (vocab_size <= 0) {
        CT_LOG_ERROR("shard writer %s: vocab_size %d must be positive", prefix, vocab_size);
        return CT_ERR_INVALID_ARG;
    }
    if (strlen(prefix) + 32 > sizeof((ct_shard_writer_t *)0)->path) {
        CT_LOG_ERROR("shard writer: prefix too long (%zu bytes)", strlen(prefix));
        return CT_ERR_INVALID_ARG;
    }
    ct_shard_writer_t *w = calloc(1, sizeof *w);
    char *p = strdup(prefix);
    if (!w || !p) {
        free(w);
        free(p);
        CT_LOG_ERROR("shard writer %s: out of memory", prefix);
        return CT_ERR_NO_MEMORY;
    }
    w->prefix = p;
    w->shard_tokens = shard_tokens;
    w->vocab_size = vocab_size;
    w->width = vocab_size <= 65536 ? 2 : 4;
    if (is_remote(prefix)) {
        ct_source_env_t env;
        ct_source_env_from_environ(&env);
        ct_status_t st = ct_source_init(&env, &w->src);
        if (st != CT_OK) {
            free(w->prefix);
            free(w);
            return st;
        }
    }
    *w_p = w;
    return CT_OK;
}

static CT_MUST_USE ct_status_t fail_io(ct_shard_writer_t *w, const char *what, const char *path, int err)
{
    CT_LOG_ERROR("cannot %s %s: %s%s", what, path, strerror(err),
                 err == ENOSPC ? "\n---> HINT: free disk space or write elsewhere" : "");
    w->err = CT_ERR_IO;
    return w->err;
}

static CT_MUST_USE ct_status_t shard_open(ct_shard_writer_t *w)
{
    if (w->n_shards >= 999999) {
        CT_LOG_ERROR("shard writer %s: more than 999999 shards; raise the shard size", w->prefix);
        return w->err = CT_ERR_INVALID_ARG;
    }
    shard_name(w, w->n_shards, w->path, sizeof w->path);
    if (w->src) { /* staged locally, uploaded by shard_finish */
        w->tmp[0] = 0;
        w->f = tmpfile();
        if (!w->f) return fail_io(w, "create a staging file for", w->path, errno);
        memset(w->buf, 0, CT_SHARD_HEADER_BYTES);
        if (fwrite(w->buf, 1, CT_SHARD_HEADER_BYTES, w->f) != CT_SHARD_HEADER_BYTES)
            return fail_io(w, "stage", w->path, errno);
        w->cur = 0;
        return CT_OK;
    }
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", w->path);
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        int err = errno;
        CT_LOG_ERROR("cannot create %s: %s\n---> HINT: does the output directory exist and is it "
                     "writable?", w->tmp, strerror(err));
        return w->err = CT_ERR_IO;
    }
    memset(w->buf, 0, CT_SHARD_HEADER_BYTES);
    if (fwrite(w->buf, 1, CT_SHARD_HEADER_BYTES, w->f) != CT_SHARD_HEADER_BYTES)
        return fail_io(w, "write", w->tmp, errno);
    w->cur = 0;
    return CT_OK;
}

/* Uploads a staged shard: header, then the tokens. Closes f. */
static CT_MUST_USE ct_status_t shard_upload(ct_shard_writer_t *w, FILE *f, const uint8_t *hdr)
{
    size_t len = CT_SHARD_HEADER_BYTES + (size_t)w->cur * (size_t)w->width;
    uint8_t *data = malloc(len);
    if (!data) {
        fclose(f);
        CT_LOG_ERROR("shard writer %s: out of memory staging %zu bytes", w->path, len);
        return w->err = CT_ERR_NO_MEMORY;
    }
    int ok = fflush(f) == 0 && fseek(f, 0, SEEK_SET) == 0 && fread(data, 1, len, f) == len;
    int err = errno;
    fclose(f);
    if (!ok) {
        free(data);
        return fail_io(w, "read back the staged", w->path, err);
    }
    memcpy(data, hdr, CT_SHARD_HEADER_BYTES);
    ct_status_t st = ct_source_write(w->src, w->path, data, len);
    free(data);
    if (st != CT_OK) return w->err = st;
    w->n_shards++;
    return CT_OK;
}

/* Fills in the header, syncs, closes and renames the open shard. */
static CT_MUST_USE ct_status_t shard_finish(ct_shard_writer_t *w)
{
    uint8_t hdr[CT_SHARD_HEADER_BYTES] = {0};
    put_le32(hdr, w->width == 2 ? CT_SHARD_MAGIC_U16 : CT_SHARD_MAGIC_U32);
    put_le32(hdr + 4, w->width == 2 ? CT_SHARD_VERSION_U16 : CT_SHARD_VERSION_U32);
    put_le32(hdr + 8, (uint32_t)w->cur);
    FILE *f = w->f;
    w->f = NULL;
    if (w->src) return shard_upload(w, f, hdr);
    if (fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0 ||
        fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        int err = errno;
        fclose(f);
        return fail_io(w, "write", w->tmp, err);
    }
    if (fclose(f) != 0) return fail_io(w, "write", w->tmp, errno);
    if (rename(w->tmp, w->path) != 0) return fail_io(w, "rename to final name", w->tmp, errno);
    w->n_shards++;
    return CT_OK;
}

ct_status_t ct_shard_writer_push(ct_shard_writer_t *w, const int32_t *tokens, size_t n)
{
    if (w->err) return w->err;
    size_t i = 0;
    while (i < n) {
        if (!w->f && shard_open(w) != CT_OK) return w->err;
        size_t k = n - i;
        if ((int64_t)k > w->shard_tokens - w->cur) k = (size_t)(w->shard_tokens - w->cur);
        if (k > SW_CHUNK) k = SW_CHUNK;
        for (size_t j = 0; j < k; j++) {
            int32_t t = tokens[i + j];
            if (t < 0 || t >= w->vocab_size) {
                CT_LOG_ERROR("shard writer %s: token %d at input position %zu is outside the "
                             "vocabulary [0, %d)", w->prefix, t, i + j, w->vocab_size);
                return w->err = CT_ERR_INVALID_ARG;
            }
            if (w->width == 2) {
                w->buf[2 * j] = (uint8_t)t;
                w->buf[2 * j + 1] = (uint8_t)(t >> 8);
            } else {
                put_le32(w->buf + 4 * j, (uint32_t)t);
            }
        }
        if (fwrite(w->buf, (size_t)w->width, k, w->f) != k)
            return fail_io(w, "write", w->tmp, errno);
        w->cur += (int64_t)k;
        w->total += (int64_t)k;
        i += k;
        if (w->cur == w->shard_tokens && shard_finish(w) != CT_OK) return w->err;
    }
    return CT_OK;
}

ct_status_t ct_shard_writer_close(ct_shard_writer_t *w, int *n_shards_p, int64_t *n_tokens_p)
{
    ct_status_t st = w->err;
    if (st == CT_OK && w->f) st = shard_finish(w);
    if (st != CT_OK) {
        if (w->f) fclose(w->f);
        w->f = NULL;
        if (w->tmp[0]) unlink(w->tmp); /* ENOENT after a rename is fine */
    } else if (w->total == 0) {
        CT_LOG_ERROR("shard writer %s: no tokens written, so no shard was created", w->prefix);
        st = CT_ERR_INVALID_ARG;
    } else {
        /* A shard numbered right after ours is left from an earlier run. */
        char next[4096];
        struct stat sb;
        if (!w->src && !shard_name(w, w->n_shards, next, sizeof next) && stat(next, &sb) == 0)
            CT_LOG_WARN("%s is left from an earlier run with the same prefix; a glob of %s_*.bin "
                        "would include it\n---> HINT: delete it", next, w->prefix);
        if (n_shards_p) *n_shards_p = w->n_shards;
        if (n_tokens_p) *n_tokens_p = w->total;
    }
    ct_source_free(w->src);
    free(w->prefix);
    free(w);
    return st;
}
