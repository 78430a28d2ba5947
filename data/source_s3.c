/* Byte sources, the s3 and gs backends: the S3 protocol, for s3:// and for
 * gs:// through the GCS XML API (HMAC keys, the same SigV4 signing, region
 * "auto"). Two entries in the backend table, one set of functions: the
 * parsed URL's kind picks the endpoint and the credentials.
 *
 * Addressing: path-style (ENDPOINT/BUCKET/KEY) on a custom endpoint and on
 * GCS; virtual-hosted (https://BUCKET.s3.REGION.amazonaws.com/KEY) on AWS,
 * path-style there too for bucket names with dots (their TLS names would not
 * match). Keys are percent-encoded per RFC 3986 with '/' kept; queries are
 * built canonical (sorted, every name and value encoded), because libcurl
 * 7.88 signs the query exactly as given.
 *
 * Sizes come from a one-byte ranged GET (its error body names the S3 error
 * code, which a HEAD cannot), lists from ListObjectsV2 pages, and writes from
 * PutObject or, above part_bytes, a multipart upload that is aborted when
 * any step fails. Without credentials requests go unsigned (public buckets).
 *
 * Left out: parallel part uploads, server-side encryption headers, the
 * GCS JSON API. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "data/source_impl.h"

typedef struct {
    const char *region, *akey, *skey, *token; /* region NULL = unsigned */
} creds_t;

static creds_t creds_for(const ct_source_t *src, const ct__url_t *u)
{
    creds_t c = {0};
    if (u->kind == CT__SRC_GS) {
        if (src->env.gcs_access_key) {
            c.region = "auto";
            c.akey = src->env.gcs_access_key;
            c.skey = src->env.gcs_secret_key;
        }
    } else if (src->env.access_key) {
        c.region = src->env.region;
        c.akey = src->env.access_key;
        c.skey = src->env.secret_key;
        c.token = src->env.session_token;
    }
    return c;
}

char *ct__s3_url(const ct_source_t *src, const ct__url_t *u, const char *key, const char *query)
{
    ct__buf_t b = {0};
    const char *ep = u->kind == CT__SRC_GS ? src->env.gcs_endpoint : src->env.endpoint;
    if (ep) {
        ct__buf_str(&b, ep);
        ct__buf_add(&b, "/", 1);
        ct__buf_str(&b, u->bucket);
        if (key) ct__buf_add(&b, "/", 1);
    } else if (strchr(u->bucket, '.')) {
        ct__buf_str(&b, "https://s3.");
        ct__buf_str(&b, src->env.region);
        ct__buf_str(&b, ".amazonaws.com/");
        ct__buf_str(&b, u->bucket);
        if (key) ct__buf_add(&b, "/", 1);
    } else {
        ct__buf_str(&b, "https://");
        ct__buf_str(&b, u->bucket);
        ct__buf_str(&b, ".s3.");
        ct__buf_str(&b, src->env.region);
        ct__buf_str(&b, ".amazonaws.com/");
    }
    if (key) ct__uri_encode(&b, key, 1);
    if (query && *query) {
        ct__buf_add(&b, "?", 1);
        ct__buf_str(&b, query);
    }
    ct__buf_add(&b, "", 0);
    if (b.oom) ct__buf_free(&b);
    return b.p;
}

static void req_sign(ct__req_t *q, const creds_t *c)
{
    q->region = c->region;
    q->akey = c->akey;
    q->skey = c->skey;
    q->token = c->token;
}

static CT_MUST_USE ct_status_t s3_size(ct_source_t *src, const ct__url_t *u, int64_t *size_p)
{
    const char *url = u->path;
    creds_t c = creds_for(src, u);
    char *req_url = ct__s3_url(src, u, u->key, NULL);
    if (!req_url) return CT_ERR_NO_MEMORY;
    unsigned char byte;
    ct__req_t q = {.method = "GET", .url = req_url, .shown = url, .what = "get the size of",
                   .range_len = 1, .expect_size = -1, .dst = &byte, .quiet_status = 416};
    req_sign(&q, &c);
    ct__resp_t r;
    ct_status_t st = ct__http_do(src, &q, &r);
    if (st == CT_OK) {
        *size_p = r.cr_total >= 0 ? r.cr_total : r.content_length;
    } else if (r.status == 416) { /* an empty object has no byte 0 */
        ct__req_t h = {.method = "HEAD", .url = req_url, .shown = url, .what = "get the size of",
                       .expect_size = -1};
        req_sign(&h, &c);
        st = ct__http_do(src, &h, &r);
        if (st == CT_OK) *size_p = r.content_length;
    }
    if (st == CT_OK && *size_p < 0) {
        CT_LOG_ERROR("cannot get the size of %s: the server sent no Content-Range or "
                     "Content-Length", url);
        st = CT_ERR_CORRUPT;
    }
    free(req_url);
    return st;
}

static CT_MUST_USE ct_status_t s3_read(ct_source_t *src, const ct__url_t *u, int64_t offset, size_t len,
                           int64_t expect_size, void *dst)
{
    const char *url = u->path;
    creds_t c = creds_for(src, u);
    char *req_url = ct__s3_url(src, u, u->key, NULL);
    if (!req_url) return CT_ERR_NO_MEMORY;
    ct__req_t q = {.method = "GET", .url = req_url, .shown = url, .what = "read",
                   .range_off = offset, .range_len = len, .expect_size = expect_size, .dst = dst};
    req_sign(&q, &c);
    ct__resp_t r;
    ct_status_t st = ct__http_do(src, &q, &r);
    free(req_url);
    return st;
}

/* ---- list ------------------------------------------------------------------------------ */
ct_status_t ct__s3_parse_list(const char *xml, size_t n, const char *url_prefix,
                              const char *pattern, ct_object_t **objs, int *nobj, int *cap,
                              int *truncated, char **token)
{
    const char *p = xml, *end = xml + n, *t0, *t1;
    *truncated = 0;
    *token = NULL;
    if (!ct__xml_find(p, end, "ListBucketResult", &t0, &t1)) return CT_ERR_CORRUPT;
    end = t1;
    p = t0;
    size_t pl = strlen(url_prefix);
    ct__buf_t u = {0};
    ct_status_t st = CT_OK;
    const char *c0, *c1;
    while (st == CT_OK && (p = ct__xml_find(p, end, "Contents", &c0, &c1)) != NULL) {
        const char *k0, *k1, *s0, *s1;
        if (!ct__xml_find(c0, c1, "Key", &k0, &k1) || !ct__xml_find(c0, c1, "Size", &s0, &s1)) {
            st = CT_ERR_CORRUPT;
            break;
        }
        char *key = ct__xml_text(k0, k1);
        char *e;
        long long size = strtoll(s0, &e, 10);
        if (!key || e == s0 || e != s1 || size < 0) {
            free(key);
            st = CT_ERR_CORRUPT;
            break;
        }
        size_t kl = strlen(key);
        if (kl && key[kl - 1] != '/' && (!pattern || fnmatch(pattern, key, FNM_PATHNAME) == 0)) {
            u.n = 0;
            ct__buf_add(&u, url_prefix, pl);
            ct__buf_add(&u, key, kl);
            st = u.oom ? CT_ERR_NO_MEMORY : ct__objects_push(objs, nobj, cap, u.p, u.n, size);
        }
        free(key);
    }
    ct__buf_free(&u);
    if (st != CT_OK) return st;
    char tr[16];
    ct__xml_get(t0, end, "IsTruncated", tr, sizeof tr);
    *truncated = strcmp(tr, "true") == 0;
    if (*truncated) {
        if (!ct__xml_find(t0, end, "NextContinuationToken", &c0, &c1)) return CT_ERR_CORRUPT;
        *token = ct__xml_text(c0, c1);
        if (!*token) return CT_ERR_CORRUPT;
        if (!**token) {
            free(*token);
            *token = NULL;
            return CT_ERR_CORRUPT;
        }
    }
    return CT_OK;
}

/* Appends the objects whose keys start with key_prefix (and match pattern, an
 * fnmatch pattern on whole keys, when not NULL). */
static CT_MUST_USE ct_status_t list_prefix(ct_source_t *src, const ct__url_t *u, const char *key_prefix,
                               const char *pattern, ct_object_t **objs, int *n, int *cap)
{
    creds_t c = creds_for(src, u);
    const char *scheme = u->kind == CT__SRC_GS ? "gs://" : "s3://";
    ct__buf_t prefix = {0}, shown = {0}, body = {0};
    ct__buf_str(&prefix, scheme);
    ct__buf_str(&prefix, u->bucket);
    ct__buf_add(&prefix, "/", 1);
    ct__buf_str(&shown, prefix.p ? prefix.p : "");
    ct__buf_str(&shown, pattern ? pattern : key_prefix);
    if (prefix.oom || shown.oom) {
        ct__buf_free(&prefix);
        ct__buf_free(&shown);
        return CT_ERR_NO_MEMORY;
    }
    char *token = NULL;
    ct_status_t st = CT_OK;
    for (int page = 0;; page++) {
        const char *kv[6] = {"list-type", "2", "prefix", key_prefix, "continuation-token", token};
        char *query = ct__query_canonical(kv, token ? 3 : 2);
        char *url = query ? ct__s3_url(src, u, NULL, query) : NULL;
        free(query);
        if (!url) {
            st = CT_ERR_NO_MEMORY;
            break;
        }
        ct__req_t q = {.method = "GET", .url = url, .shown = shown.p, .what = "list",
                       .expect_size = -1, .out = &body};
        req_sign(&q, &c);
        ct__resp_t r;
        st = ct__http_do(src, &q, &r);
        free(url);
        if (st != CT_OK) break;
        int truncated;
        free(token);
        token = NULL;
        st = ct__s3_parse_list(body.p ? body.p : "", body.n, prefix.p, pattern, objs, n, cap,
                               &truncated, &token);
        if (st == CT_ERR_CORRUPT)
            CT_LOG_ERROR("cannot list %s: page %d of the listing is not a valid ListObjectsV2 "
                         "response (%zu bytes)\n---> HINT: check that the endpoint is an "
                         "S3-compatible API (AWS_ENDPOINT_URL / GCS_ENDPOINT_URL)", shown.p,
                         page + 1, body.n);
        if (st != CT_OK || !truncated) break;
        CT_LOG_DEBUG("listing %s: %d objects after page %d", shown.p, *n, page + 1);
    }
    free(token);
    ct__buf_free(&body);
    ct__buf_free(&prefix);
    ct__buf_free(&shown);
    return st;
}

/* An object, a prefix ending in '/' (or the whole bucket), or a key pattern
 * with * ? [: the literal part before the first of these is listed, then
 * matched. */
static CT_MUST_USE ct_status_t s3_list(ct_source_t *src, const ct__url_t *u, ct_object_t **objs, int *n,
                           int *cap)
{
    const char *key = u->key;
    size_t kl = strlen(key), glob_at = strcspn(key, "*?[");
    int first = *n;
    ct_status_t st;
    if (!kl || key[kl - 1] == '/') {
        st = list_prefix(src, u, key, NULL, objs, n, cap);
    } else if (key[glob_at]) {
        char *prefix = strndup(key, glob_at);
        if (!prefix) return CT_ERR_NO_MEMORY;
        st = list_prefix(src, u, prefix, key, objs, n, cap);
        free(prefix);
    } else {
        int64_t size;
        st = s3_size(src, u, &size);
        if (st == CT_OK) st = ct__objects_push(objs, n, cap, u->path, strlen(u->path), size);
    }
    if (st == CT_OK && *n == first) {
        char *shown = ct__redact_url(u->path);
        CT_LOG_ERROR("no object matches '%s'\n---> HINT: check the path or prefix (a prefix "
                     "lists every key that starts with it; end it with '/' for a folder)",
                     shown);
        ct__redacted_free(shown);
        st = CT_ERR_NOT_FOUND;
    }
    return st;
}

/* ---- write ------------------------------------------------------------------------------ */
static CT_MUST_USE ct_status_t put_object(ct_source_t *src, const ct__url_t *u, const creds_t *c,
                              const char *url, const void *data, size_t len)
{
    char *req_url = ct__s3_url(src, u, u->key, NULL);
    if (!req_url) return CT_ERR_NO_MEMORY;
    ct__req_t q = {.method = "PUT", .url = req_url, .shown = url, .what = "write",
                   .body = data, .body_len = len, .expect_size = -1};
    req_sign(&q, c);
    ct__resp_t r;
    ct_status_t st = ct__http_do(src, &q, &r);
    free(req_url);
    return st;
}

/* One multipart request: method on key?query(kv), body, response into out. */
static CT_MUST_USE ct_status_t mpu_call(ct_source_t *src, const ct__url_t *u, const creds_t *c,
                            const char *method, const char *const *kv, int nkv, const char *shown,
                            const char *what, const void *body, size_t blen, ct__buf_t *out,
                            ct__resp_t *r)
{
    char *query = ct__query_canonical(kv, nkv);
    char *url = query ? ct__s3_url(src, u, u->key, query) : NULL;
    free(query);
    if (!url) return CT_ERR_NO_MEMORY;
    ct__req_t q = {.method = method, .url = url, .shown = shown, .what = what, .body = body,
                   .body_len = blen, .expect_size = -1, .out = out,
                   .content_type = body && strcmp(method, "POST") == 0 ? "application/xml" : NULL};
    req_sign(&q, c);
    ct_status_t st = ct__http_do(src, &q, r);
    free(url);
    return st;
}

static CT_MUST_USE ct_status_t multipart(ct_source_t *src, const ct__url_t *u, const creds_t *c,
                             const char *url, const void *data, size_t len)
{
    size_t part = src->env.part_bytes;
    if ((len + part - 1) / part > 10000) part = (len + 9999) / 10000; /* S3's part limit */
    int nparts = (int)((len + part - 1) / part);
    ct__buf_t out = {0}, xml = {0};
    ct__resp_t r;
    char upload_id[1024] = "", shown[1200], num[16];
    ct_status_t st;
    const char *kv0[2] = {"uploads", ""};
    st = mpu_call(src, u, c, "POST", kv0, 1, url, "start a multipart upload of", NULL, 0, &out, &r);
    if (st != CT_OK) goto done;
    if (out.p) ct__xml_get(out.p, out.p + out.n, "UploadId", upload_id, sizeof upload_id);
    if (!upload_id[0]) {
        CT_LOG_ERROR("cannot start a multipart upload of %s: the response has no UploadId", url);
        st = CT_ERR_CORRUPT;
        goto done;
    }
    CT_LOG_DEBUG("multipart upload of %s: %d parts of %zu bytes", url, nparts, part);
    ct__buf_str(&xml, "<CompleteMultipartUpload>");
    for (int i = 0; i < nparts && st == CT_OK; i++) {
        size_t off = (size_t)i * part, n = len - off < part ? len - off : part;
        snprintf(num, sizeof num, "%d", i + 1);
        snprintf(shown, sizeof shown, "%s (part %d of %d)", url, i + 1, nparts);
        const char *kv[4] = {"partNumber", num, "uploadId", upload_id};
        st = mpu_call(src, u, c, "PUT", kv, 2, shown, "write", (const char *)data + off, n, NULL, &r);
        if (st == CT_OK && !r.etag[0]) {
            CT_LOG_ERROR("cannot write %s: the response has no ETag", shown);
            st = CT_ERR_CORRUPT;
        }
        if (st != CT_OK) break;
        ct__buf_str(&xml, "<Part><PartNumber>");
        ct__buf_str(&xml, num);
        ct__buf_str(&xml, "</PartNumber><ETag>");
        for (const char *e = r.etag; *e; e++) /* ETags are quoted hex; escape anyway */
            ct__buf_str(&xml, *e == '&' ? "&amp;" : *e == '<' ? "&lt;" : *e == '>' ? "&gt;"
                                                    : (char[2]){*e, 0});
        ct__buf_str(&xml, "</ETag></Part>");
    }
    ct__buf_str(&xml, "</CompleteMultipartUpload>");
    if (st == CT_OK && xml.oom) st = CT_ERR_NO_MEMORY;
    /* S3 may answer 200 with an <Error> body; those with a transient code are retried */
    for (int attempt = 0; st == CT_OK; attempt++) {
        const char *kv[2] = {"uploadId", upload_id};
        st = mpu_call(src, u, c, "POST", kv, 1, url, "complete the multipart upload of", xml.p,
                      xml.n, &out, &r);
        if (st != CT_OK) break;
        const char *t0, *t1;
        if (!ct__xml_find(out.p ? out.p : "", out.p ? out.p + out.n : "", "Error", &t0, &t1)) break;
        char code[96], msg[256];
        ct__xml_get(t0, t1, "Code", code, sizeof code);
        ct__xml_get(t0, t1, "Message", msg, sizeof msg);
        int transient = strcmp(code, "InternalError") == 0 || strcmp(code, "SlowDown") == 0 ||
                        strcmp(code, "ServiceUnavailable") == 0;
        if (transient && attempt < src->env.max_retries) {
            double d = ct__backoff_s(attempt, src->env.retry_base_s, src->env.retry_max_s,
                                     ct__random01());
            CT_LOG_WARN("complete the multipart upload of %s: %s: %s; retry %d of %d in %.2f s",
                        url, code, msg, attempt + 1, src->env.max_retries, d);
            ct__sleep_s(d);
            continue;
        }
        CT_LOG_ERROR("cannot complete the multipart upload of %s: %s: %s\n---> HINT: the "
                     "upload was aborted; write again", url, code[0] ? code : "error", msg);
        st = CT_ERR_IO;
    }
done:
    if (st != CT_OK && upload_id[0]) {
        const char *kv[2] = {"uploadId", upload_id};
        ct__buf_t ign = {0};
        if (mpu_call(src, u, c, "DELETE", kv, 1, url, "abort the multipart upload of", NULL, 0,
                     &ign, &r) == CT_OK)
            CT_LOG_WARN("aborted the multipart upload of %s", url);
        ct__buf_free(&ign);
    }
    ct__buf_free(&out);
    ct__buf_free(&xml);
    return st;
}

static CT_MUST_USE ct_status_t s3_write(ct_source_t *src, const ct__url_t *u, const void *data, size_t len)
{
    const char *url = u->path;
    if (!u->key[0] || u->key[strlen(u->key) - 1] == '/') {
        CT_LOG_ERROR("cannot write %s: it names a bucket or prefix, not an object\n---> HINT: "
                     "give the whole key, e.g. %s%sname.bin", url, url,
                     url[strlen(url) - 1] == '/' ? "" : "/");
        return CT_ERR_INVALID_ARG;
    }
    creds_t c = creds_for(src, u);
    if (len > src->env.part_bytes) return multipart(src, u, &c, url, data, len);
    return put_object(src, u, &c, url, data, len);
}

const ct__src_backend_t ct__src_s3 = {
    .name = "s3",
    .size = s3_size,
    .read = s3_read,
    .write = s3_write,
    .list = s3_list,
};

const ct__src_backend_t ct__src_gs = {
    .name = "gs",
    .size = s3_size,
    .read = s3_read,
    .write = s3_write,
    .list = s3_list,
};
