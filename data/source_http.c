/* Byte sources, the http(s) backend: sizes from HEAD, ranged GETs, and a
 * "listing" that is the one URL given (with its size). Redirects are
 * followed; TLS is verified (source_curl.c does the transfers).
 *
 * Left out: listing http(s) "directories" (there is no standard way to),
 * writing (no write op: ct_source_write refuses http(s) URLs), and request
 * signing: a URL that needs credentials carries them (presigned queries,
 * userinfo), and messages show it redacted. */
#include <string.h>

#include "core/log.h"
#include "data/source_impl.h"

static CT_MUST_USE ct_status_t http_size(ct_source_t *src, const ct__url_t *u, int64_t *size_p)
{
    const char *url = u->path;
    char *shown = ct__redact_url(url);
    ct__req_t q = {.method = "HEAD", .url = url, .shown = shown, .what = "get the size of",
                   .follow = 1, .expect_size = -1};
    ct__resp_t r;
    ct_status_t st = ct__http_do(src, &q, &r);
    if (st == CT_OK && r.content_length < 0) {
        CT_LOG_ERROR("cannot get the size of %s: the server sent no Content-Length\n---> HINT: "
                     "serve the file as a static file (nginx, a bucket, a CDN)", shown);
        st = CT_ERR_UNSUPPORTED;
    }
    if (st == CT_OK) *size_p = r.content_length;
    ct__redacted_free(shown);
    return st;
}

static CT_MUST_USE ct_status_t http_read(ct_source_t *src, const ct__url_t *u, int64_t offset, size_t len,
                             int64_t expect_size, void *dst)
{
    const char *url = u->path;
    char *shown = ct__redact_url(url);
    ct__req_t q = {.method = "GET", .url = url, .shown = shown, .what = "read", .follow = 1,
                   .range_off = offset, .range_len = len, .expect_size = expect_size, .dst = dst};
    ct__resp_t r;
    ct_status_t st = ct__http_do(src, &q, &r);
    ct__redacted_free(shown);
    return st;
}

static CT_MUST_USE ct_status_t http_list(ct_source_t *src, const ct__url_t *u, ct_object_t **objs, int *n,
                             int *cap)
{
    int64_t size;
    ct_status_t st = http_size(src, u, &size);
    return st == CT_OK ? ct__objects_push(objs, n, cap, u->path, strlen(u->path), size) : st;
}

const ct__src_backend_t ct__src_http = {
    .name = "http(s)",
    .size = http_size,
    .read = http_read,
    .list = http_list,
};
