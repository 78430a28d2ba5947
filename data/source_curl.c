/* Byte sources, helpers: the libcurl transport that the http(s), s3 and gs
 * backends share (ct__http_do), with its retry loop and the checks on every
 * response. It knows HTTP, not schemes: the backends build the request URL,
 * its signing parameters and what messages call it.
 *
 * One ct__http_t per source holds a pool of idle easy handles (each keeps
 * its connections alive between calls) and a CURLSH sharing the DNS and TLS
 * session caches between them, locked per data kind. A call takes a handle,
 * resets it, sets it up, performs, and puts it back, so any number of
 * threads can read at once. curl_global_init runs once per process.
 *
 * Each attempt is checked before its body is accepted: a ranged read must
 * get a 206 (or a 200 holding exactly the object) whose Content-Range and
 * Content-Length name exactly the bytes asked for, and then exactly that
 * many bytes. SigV4 signing is libcurl's (CURLOPT_AWS_SIGV4); libcurl 7.88
 * signs the query string as given and takes the payload hash from our
 * x-amz-content-sha256 header, so callers pass canonical queries and we send
 * the hash: the empty-body hash for GET/HEAD/DELETE, the body's for PUT/POST.
 *
 * Left out: HTTP/2 (ranged reads gain nothing from it on one connection per
 * thread), proxies beyond what libcurl's environment variables do, and
 * following redirects on signed requests. */
#include <curl/curl.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "data/source_impl.h"

#define CT__HTTP_MAX_IDLE 64
#define CT__ERR_BODY_MAX (64 << 10)

struct ct__http {
    pthread_mutex_t mu;
    CURL *idle[CT__HTTP_MAX_IDLE];
    int nidle;
    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static void share_lock(CURL *c, curl_lock_data d, curl_lock_access a, void *p)
{
    ct__http_t *h = p;
    pthread_mutex_lock(&h->share_mu[d]);
}

static void share_unlock(CURL *c, curl_lock_data d, void *p)
{
    ct__http_t *h = p;
    pthread_mutex_unlock(&h->share_mu[d]);
}

static ct__http_t *http_get(ct_source_t *src)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        CT_LOG_ERROR("cannot initialise libcurl: %s", curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    pthread_mutex_lock(&src->http_mu);
    ct__http_t *h = src->http;
    if (!h && (h = calloc(1, sizeof *h)) != NULL) {
        pthread_mutex_init(&h->mu, NULL);
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_init(&h->share_mu[i], NULL);
        h->share = curl_share_init();
        if (h->share) {
            curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
            curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
            curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
            curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
            curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        }
        src->http = h;
    }
    pthread_mutex_unlock(&src->http_mu);
    if (!h) CT_LOG_ERROR("out of memory setting up libcurl");
    return h;
}

void ct__http_free(ct__http_t *h)
{
    for (int i = 0; i < h->nidle; i++) curl_easy_cleanup(h->idle[i]);
    if (h->share) curl_share_cleanup(h->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_destroy(&h->share_mu[i]);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static CURL *handle_take(ct__http_t *h)
{
    CURL *c = NULL;
    pthread_mutex_lock(&h->mu);
    if (h->nidle) c = h->idle[--h->nidle];
    pthread_mutex_unlock(&h->mu);
    if (c) curl_easy_reset(c);
    else c = curl_easy_init();
    return c;
}

static void handle_give(ct__http_t *h, CURL *c)
{
    pthread_mutex_lock(&h->mu);
    if (h->nidle < CT__HTTP_MAX_IDLE) {
        h->idle[h->nidle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&h->mu);
    if (c) curl_easy_cleanup(c);
}

int ct__curl_retryable(int rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_SSL_CONNECT_ERROR: /* a handshake cut by a reset; certificates are 60 */
    case CURLE_AGAIN:
        return 1;
    default:
        return 0;
    }
}

static int curl_is_tls_trust(int rc)
{
    return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
           rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_ISSUER_ERROR ||
           rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
}

/* ---- one attempt ---------------------------------------------------------------------- */
typedef enum { OUT_OK, OUT_RETRY, OUT_FAIL } outcome_t;

typedef struct {
    const ct__req_t *req;
    ct__resp_t *resp;
    size_t got;          /* body bytes accepted */
    ct__buf_t err;       /* error body */
    size_t up_pos;       /* upload position */
    int checked;         /* headers checked */
    int bad;             /* the checks failed: msg says why */
    int curl_rc;         /* the transfer failed in libcurl (or ended early) */
    ct_status_t bad_st;
    double retry_after;
    char region_hint[64];
    char msg[512];
    char curl_err[CURL_ERROR_SIZE];
} xfer_t;

static int64_t parse_i64(const char *s, const char **end)
{
    char *e;
    long long v = strtoll(s, &e, 10);
    if (end) *end = e;
    return e == s ? -1 : (int64_t)v;
}

static size_t on_header(char *line, size_t sz, size_t nit, void *p)
{
    xfer_t *x = p;
    size_t n = sz * nit;
    char buf[512];
    size_t l = n < sizeof buf - 1 ? n : sizeof buf - 1;
    memcpy(buf, line, l);
    buf[l] = 0;
    while (l && (buf[l - 1] == '\r' || buf[l - 1] == '\n')) buf[--l] = 0;
    ct__resp_t *r = x->resp;
    if (strncmp(buf, "HTTP/", 5) == 0) { /* a new response (after 100 or a redirect) */
        const char *sp = strchr(buf, ' ');
        r->status = sp ? atol(sp + 1) : 0;
        r->content_length = r->cr_first = r->cr_last = r->cr_total = -1;
        r->etag[0] = 0;
        x->retry_after = 0;
        return n;
    }
    char *colon = strchr(buf, ':');
    if (!colon) return n;
    *colon = 0;
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    if (strcasecmp(buf, "content-length") == 0) {
        r->content_length = parse_i64(v, NULL);
    } else if (strcasecmp(buf, "content-range") == 0 && strncasecmp(v, "bytes ", 6) == 0) {
        const char *e;
        v += 6;
        if (*v == '*') {
            e = v + 1;
        } else {
            r->cr_first = parse_i64(v, &e);
            if (*e == '-') r->cr_last = parse_i64(e + 1, &e);
        }
        if (*e == '/' && e[1] != '*') r->cr_total = parse_i64(e + 1, NULL);
    } else if (strcasecmp(buf, "etag") == 0) {
        snprintf(r->etag, sizeof r->etag, "%s", v);
    } else if (strcasecmp(buf, "retry-after") == 0 && isdigit((unsigned char)*v)) {
        x->retry_after = atof(v);
    } else if (strcasecmp(buf, "x-amz-bucket-region") == 0) {
        snprintf(x->region_hint, sizeof x->region_hint, "%s", v);
    }
    return n;
}

static void set_bad(xfer_t *x, ct_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_bad(xfer_t *x, ct_status_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->msg, sizeof x->msg, fmt, ap);
    va_end(ap);
    x->bad = 1;
    x->bad_st = st;
}

/* Checks the headers of a 2xx response against the request; 0 = fine. */
static int check_headers(xfer_t *x)
{
    const ct__req_t *q = x->req;
    const ct__resp_t *r = x->resp;
    x->checked = 1;
    if (!q->range_len) return 0;
    long long a = (long long)q->range_off, b = a + (long long)q->range_len - 1;
    if (r->status == 200) { /* the server ignored Range: fine only for the whole object */
        if (a == 0 && r->content_length == (int64_t)q->range_len &&
            (q->expect_size < 0 || q->expect_size == r->content_length))
            return 0;
        set_bad(x, CT_ERR_UNSUPPORTED, "the server ignored the Range header for bytes %lld-%lld "
                "(HTTP 200 with %lld bytes)", a, b, (long long)r->content_length);
        return 1;
    }
    if (r->status != 206) {
        set_bad(x, CT_ERR_CORRUPT, "unexpected HTTP %ld to a range request", r->status);
        return 1;
    }
    if (r->cr_total >= 0 && q->expect_size >= 0 && r->cr_total != q->expect_size) {
        set_bad(x, CT_ERR_CORRUPT, "the object changed size: %lld bytes now, %lld when listed",
                (long long)r->cr_total, (long long)q->expect_size);
        return 1;
    }
    if (r->cr_first >= 0 && (r->cr_first != a || r->cr_last != b)) {
        if (r->cr_first == a && r->cr_total >= 0 && r->cr_last == r->cr_total - 1 && r->cr_last < b)
            set_bad(x, CT_ERR_CORRUPT, "the object is only %lld bytes long, the range %lld-%lld "
                    "runs past its end", (long long)r->cr_total, a, b);
        else
            set_bad(x, CT_ERR_CORRUPT, "asked for bytes %lld-%lld, the server sent "
                    "Content-Range %lld-%lld", a, b, (long long)r->cr_first, (long long)r->cr_last);
        return 1;
    }
    if (r->content_length >= 0 && r->content_length != (int64_t)q->range_len) {
        set_bad(x, CT_ERR_CORRUPT, "wrong Content-Length: %lld bytes announced for the "
                "%zu-byte range %lld-%lld", (long long)r->content_length, q->range_len, a, b);
        return 1;
    }
    return 0;
}

static size_t on_body(char *data, size_t sz, size_t nit, void *p)
{
    xfer_t *x = p;
    size_t n = sz * nit;
    long st = x->resp->status;
    if (st < 200 || st >= 300) {
        if (x->err.n < CT__ERR_BODY_MAX) ct__buf_add(&x->err, data, n);
        return n;
    }
    if (!x->checked && check_headers(x)) return 0;
    const ct__req_t *q = x->req;
    if (q->dst) {
        if (n > q->range_len - x->got) {
            set_bad(x, CT_ERR_CORRUPT, "the server sent more than the %zu bytes asked for",
                    q->range_len);
            return 0;
        }
        memcpy((char *)q->dst + x->got, data, n);
    } else if (q->out) {
        ct__buf_add(q->out, data, n);
        if (q->out->oom) return 0;
    }
    x->got += n;
    return n;
}

static size_t on_upload(char *dst, size_t sz, size_t nit, void *p)
{
    xfer_t *x = p;
    size_t n = sz * nit, left = x->req->body_len - x->up_pos;
    if (n > left) n = left;
    memcpy(dst, (const char *)x->req->body + x->up_pos, n);
    x->up_pos += n;
    return n;
}

static int on_seek(void *p, curl_off_t off, int origin)
{
    xfer_t *x = p;
    if (origin != SEEK_SET || off < 0 || (size_t)off > x->req->body_len) return CURL_SEEKFUNC_FAIL;
    x->up_pos = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

static outcome_t attempt(ct_source_t *src, ct__http_t *h, const ct__req_t *q, const char *sha,
                         ct__resp_t *resp, xfer_t *x, ct_status_t *st_p)
{
    memset(resp, 0, sizeof *resp);
    resp->content_length = resp->cr_first = resp->cr_last = resp->cr_total = -1;
    if (q->out) q->out->n = 0;
    CURL *c = handle_take(h);
    if (!c) {
        *st_p = CT_ERR_NO_MEMORY;
        snprintf(x->msg, sizeof x->msg, "cannot create a libcurl handle");
        return OUT_FAIL;
    }
    const ct_source_env_t *env = &src->env;
    struct curl_slist *hl = NULL;
    char line[4096];
    curl_easy_setopt(c, CURLOPT_URL, q->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L << 10);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->curl_err);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(env->timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)ceil(env->timeout_s));
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ctrain");
    if (h->share) curl_easy_setopt(c, CURLOPT_SHARE, h->share);
    if (env->ca_bundle) curl_easy_setopt(c, CURLOPT_CAINFO, env->ca_bundle);
    if (q->follow) {
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    }
    if (q->range_len) {
        snprintf(line, sizeof line, "Range: bytes=%lld-%lld", (long long)q->range_off,
                 (long long)(q->range_off + (int64_t)q->range_len - 1));
        hl = curl_slist_append(hl, line);
    }
    if (q->region) {
        /* keys are sent as given: no dot-segment squashing of "a/../b" */
        curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
        snprintf(line, sizeof line, "aws:amz:%s:s3", q->region);
        curl_easy_setopt(c, CURLOPT_AWS_SIGV4, line);
        curl_easy_setopt(c, CURLOPT_USERNAME, q->akey);
        curl_easy_setopt(c, CURLOPT_PASSWORD, q->skey);
        snprintf(line, sizeof line, "x-amz-content-sha256: %s", sha);
        hl = curl_slist_append(hl, line);
        if (q->token) {
            ct__buf_t t = {0};
            ct__buf_str(&t, "x-amz-security-token: ");
            ct__buf_str(&t, q->token);
            if (t.p) hl = curl_slist_append(hl, t.p);
            ct__buf_free(&t);
        }
    }
    /* No "Expect:" to skip 100-continue on big bodies: libcurl 7.88 would sign the
     * removal header it never sends. Servers answer 100 Continue at once. */
    const char *m = q->method;
    if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(m, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(c, CURLOPT_READDATA, x);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, x);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->body_len);
    } else if (strcmp(m, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body ? (const char *)q->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
    } else if (strcmp(m, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
    }
    if (strcmp(m, "PUT") == 0 || strcmp(m, "POST") == 0) {
        snprintf(line, sizeof line, "Content-Type: %s",
                 q->content_type ? q->content_type : "application/octet-stream");
        hl = curl_slist_append(hl, line);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);

    CURLcode rc = curl_easy_perform(c);
    long status = resp->status;
    if (!status) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    resp->status = status;
    curl_slist_free_all(hl);
    handle_give(h, c);

    long long at = (long long)(q->range_off + (int64_t)x->got);
    x->curl_rc = (int)rc;
    if (x->bad) { /* our own checks stopped the transfer */
        *st_p = x->bad_st;
        return OUT_FAIL;
    }
    if (status >= 200 && status < 300) {
        if (rc != CURLE_OK) {
            const char *e = x->curl_err[0] ? x->curl_err : curl_easy_strerror(rc);
            if (q->range_len)
                snprintf(x->msg, sizeof x->msg, "%s (curl error %d) after %zu of %zu bytes, at "
                         "byte offset %lld", e, (int)rc, x->got, q->range_len, at);
            else
                snprintf(x->msg, sizeof x->msg, "%s (curl error %d)", e, (int)rc);
            *st_p = rc == CURLE_OPERATION_TIMEDOUT ? CT_ERR_TIMEOUT
                    : rc == CURLE_OUT_OF_MEMORY    ? CT_ERR_NO_MEMORY
                                                   : CT_ERR_IO;
            return ct__curl_retryable(rc) ? OUT_RETRY : OUT_FAIL;
        }
        if (!x->checked && check_headers(x)) {
            *st_p = x->bad_st;
            return OUT_FAIL;
        }
        if (q->range_len && x->got != q->range_len) {
            /* no Content-Length and the connection closed early */
            snprintf(x->msg, sizeof x->msg, "the transfer ended after %zu of %zu bytes, at byte "
                     "offset %lld", x->got, q->range_len, at);
            x->curl_rc = -1;
            *st_p = CT_ERR_IO;
            return OUT_RETRY;
        }
        return OUT_OK;
    }
    if (status == 0 || (rc != CURLE_OK && status < 300)) {
        const char *e = x->curl_err[0] ? x->curl_err : curl_easy_strerror(rc);
        if (curl_is_tls_trust(rc))
            snprintf(x->msg, sizeof x->msg, "TLS certificate verification failed: %s "
                     "(curl error %d)", e, (int)rc);
        else
            snprintf(x->msg, sizeof x->msg, "%s (curl error %d)", e, (int)rc);
        *st_p = rc == CURLE_OPERATION_TIMEDOUT ? CT_ERR_TIMEOUT : CT_ERR_IO;
        return ct__curl_retryable(rc) ? OUT_RETRY : OUT_FAIL;
    }
    /* an HTTP error: S3 puts <Code> and <Message> in the body */
    const char *eb = x->err.p, *ee = x->err.p ? x->err.p + x->err.n : NULL;
    ct__xml_get(eb, ee, "Code", resp->code, sizeof resp->code);
    ct__xml_get(eb, ee, "Message", resp->message, sizeof resp->message);
    int n = snprintf(x->msg, sizeof x->msg, "HTTP %ld", status);
    if (resp->code[0]) n += snprintf(x->msg + n, sizeof x->msg - (size_t)n, " %s", resp->code);
    if (resp->message[0])
        snprintf(x->msg + n, sizeof x->msg - (size_t)n, ": %s", resp->message);
    if (status == 416) {
        *st_p = CT_ERR_CORRUPT;
        n = (int)strlen(x->msg);
        if (resp->cr_total >= 0)
            snprintf(x->msg + n, sizeof x->msg - (size_t)n, "; the object is only %lld bytes "
                     "long", (long long)resp->cr_total);
        return OUT_FAIL;
    }
    if (ct__http_retryable(status, resp->code)) {
        *st_p = CT_ERR_IO;
        return OUT_RETRY;
    }
    *st_p = status == 404 ? CT_ERR_NOT_FOUND : status == 400 ? CT_ERR_INVALID_ARG : CT_ERR_IO;
    return OUT_FAIL;
}

static const char *hint_for(const ct__req_t *q, const ct__resp_t *r, const xfer_t *x, char *buf,
                            size_t cap)
{
    long s = r->status;
    if (x->bad || s == 416)
        return "the object does not hold the bytes its listing or header promised; it was "
               "truncated or rewritten, or a proxy altered the response";
    if (strstr(x->msg, "TLS certificate")) {
        return "the server's certificate is not trusted: give its CA file with AWS_CA_BUNDLE "
               "(or CURL_CA_BUNDLE, env.ca_bundle), or fix the server's certificate chain";
    }
    if (s == 403 || s == 401) {
        if (!q->region)
            return "the server refused access; for s3:// set AWS_ACCESS_KEY_ID and "
                   "AWS_SECRET_ACCESS_KEY, for gs:// GCS_ACCESS_KEY_ID and GCS_SECRET_ACCESS_KEY";
        return "check the access key and secret (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or "
               "GCS_ACCESS_KEY_ID / GCS_SECRET_ACCESS_KEY for gs://), AWS_SESSION_TOKEN for "
               "temporary credentials, AWS_REGION, and the bucket's policy";
    }
    if (s == 404 && strcmp(r->code, "NoSuchBucket") == 0)
        return "the bucket does not exist at this endpoint: check its name, and "
               "AWS_ENDPOINT_URL / GCS_ENDPOINT_URL";
    if (s == 404)
        return "check the name; to read every object under a prefix, end it with '/'";
    if (s == 301 || s == 307 || strcmp(r->code, "PermanentRedirect") == 0) {
        if (x->region_hint[0]) {
            snprintf(buf, cap, "the bucket lives in region %s: set AWS_REGION=%s",
                     x->region_hint, x->region_hint);
            return buf;
        }
        return "the bucket lives in another region: set AWS_REGION";
    }
    if (x->curl_rc)
        return "the transfer kept failing (network, proxy or server); check the endpoint and the "
               "network, or raise the retry count";
    if (s >= 500 || s == 429 || s == 0)
        return "the server or network kept failing; check the endpoint and the network, or "
               "raise the retry count";
    return "see the server's message; the request was refused as sent";
}

ct_status_t ct__http_do(ct_source_t *src, const ct__req_t *q, ct__resp_t *resp)
{
    ct__http_t *h = http_get(src);
    if (!h) return curl_init_rc != CURLE_OK ? CT_ERR_IO : CT_ERR_NO_MEMORY;
    char sha[65] = CT__EMPTY_SHA256;
    if (q->region && q->body_len) ct__sha256_hex(q->body, q->body_len, sha);
    const ct_source_env_t *env = &src->env;
    char where[96] = "";
    if (q->range_len && strcmp(q->what, "read") == 0) /* not for a size probe */
        snprintf(where, sizeof where, " at byte offset %lld (%zu bytes)", (long long)q->range_off,
                 q->range_len);
    for (int i = 0;; i++) {
        xfer_t x = {.req = q, .resp = resp};
        ct_status_t st = CT_OK;
        outcome_t o = attempt(src, h, q, sha, resp, &x, &st);
        ct__buf_free(&x.err);
        if (o == OUT_OK) return CT_OK;
        if (q->out && q->out->oom) {
            CT_LOG_ERROR("out of memory reading the response to %s", q->shown);
            return CT_ERR_NO_MEMORY;
        }
        if (o == OUT_RETRY && i < env->max_retries) {
            double d = ct__backoff_s(i, env->retry_base_s, env->retry_max_s, ct__random01());
            if (x.retry_after > d) /* the server's Retry-After, within our cap */
                d = x.retry_after < env->retry_max_s ? x.retry_after : env->retry_max_s;
            CT_LOG_WARN("%s %s%s: %s; retry %d of %d in %.2f s", q->what, q->shown, where, x.msg,
                        i + 1, env->max_retries, d);
            ct__sleep_s(d);
            continue;
        }
        if (q->quiet_status && resp->status == q->quiet_status) return st == CT_OK ? CT_ERR_IO : st;
        char hb[128];
        const char *hint = hint_for(q, resp, &x, hb, sizeof hb);
        if (o == OUT_RETRY)
            CT_LOG_ERROR("cannot %s %s%s: %s (gave up after %d attempts)\n---> HINT: %s", q->what,
                         q->shown, where, x.msg, i + 1, hint);
        else
            CT_LOG_ERROR("cannot %s %s%s: %s\n---> HINT: %s", q->what, q->shown, where, x.msg,
                         hint);
        return st == CT_OK ? CT_ERR_IO : st;
    }
}
