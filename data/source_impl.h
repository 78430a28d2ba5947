/* Internals of the byte sources (data/source*.c). Three layers, each
 * calling only the ones below it (as comm/ does):
 *
 *   source.c          the front: environment, list specs, and dispatch
 *                     through the backend table, indexed by the URL's scheme
 *   source_file.c     backends, one ct__src_backend_t each: file, http(s),
 *   source_http.c     s3 and gs (source_s3.c holds both object stores)
 *   source_s3.c
 *   source_curl.c     helpers: the libcurl transport, URLs and strings,
 *   source_url.c      SigV4 pieces (canonical queries, SHA-256), the XML
 *   source_sigv4.c    reader for S3 responses, the retry policy
 *   source_xml.c
 *   source_backoff.c
 *
 * Also what tests/data/test_source.c checks directly: URL parsing,
 * query-string canonicalization, retry classification, redaction, XML,
 * SHA-256, S3 request URLs and listing pages. */
#ifndef CT_DATA_SOURCE_IMPL_H
#define CT_DATA_SOURCE_IMPL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "data/source.h"

/* ---- parsed URLs (source_url.c) ------------------------------------------------------ */
/* The scheme; it indexes the backend table in source.c. */
typedef enum { CT__SRC_FILE, CT__SRC_HTTP, CT__SRC_S3, CT__SRC_GS, CT__SRC_NKINDS } ct__src_kind_t;

typedef struct {
    ct__src_kind_t kind;
    char *path;   /* file: the path (file:// stripped); others: the whole URL */
    char *bucket; /* s3/gs */
    char *key;    /* s3/gs: may be "" (the whole bucket) */
} ct__url_t;

/* Parses url; on error logs what is wrong with it and returns
 * CT_ERR_INVALID_ARG (nothing to free). */
CT_MUST_USE ct_status_t ct__url_parse(const char *url, ct__url_t *u_p);
void ct__url_free(ct__url_t *u);

/* ---- strings (source_url.c) ---------------------------------------------------------- */
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} ct__buf_t;

void ct__buf_add(ct__buf_t *b, const void *s, size_t n);
void ct__buf_str(ct__buf_t *b, const char *s);
void ct__buf_free(ct__buf_t *b);
/* RFC 3986 percent-encoding: everything but A-Z a-z 0-9 - . _ ~ (and '/'
 * when keep_slash) becomes %XX. Appends to b. */
void ct__uri_encode(ct__buf_t *b, const char *s, int keep_slash);
/* Appends one object (url copied) to a growable array. */
CT_MUST_USE ct_status_t ct__objects_push(ct_object_t **objs, int *n, int *cap, const char *url, size_t ulen,
                             int64_t size);

/* ---- SigV4 pieces (source_sigv4.c) ------------------------------------------------- */
/* The SigV4 canonical query string of n (name, value) pairs given raw
 * (kv[2i], kv[2i+1]): each encoded, sorted by name then value, joined by '&'.
 * A NULL value is written as "name=". malloc'd; NULL when out of memory. */
char *ct__query_canonical(const char *const *kv, int n);
/* SHA-256 of data as 64 lowercase hex digits: the payload hash of a signed
 * request. */
void ct__sha256_hex(const void *data, size_t n, char hex[65]);
#define CT__EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* A copy of url safe to print: userinfo and every query value replaced by
 * "***". malloc'd (never NULL: "?" when out of memory is not possible to
 * print, so a static "<url>" is returned then; free with ct__redacted_free). */
char *ct__redact_url(const char *url);
void ct__redacted_free(char *s);

/* ---- retry policy (source_backoff.c) ------------------------------------------------- */
/* 1 when an HTTP status (with the S3 error code, may be "") is worth
 * retrying: 408, 429, 5xx, and 400 RequestTimeout. */
int ct__http_retryable(long status, const char *code);
/* Backoff before retry number attempt (0-based): base * 2^attempt capped at
 * max, with "equal jitter" (a uniform draw in [d/2, d]) from u in [0, 1). */
double ct__backoff_s(int attempt, double base, double max, double u);
/* A uniform draw in [0, 1), thread-safe. */
double ct__random01(void);
void ct__sleep_s(double s);

/* ---- XML (S3 responses; source_xml.c) ------------------------------------------------ */
/* Finds the first element <name> (or <name attr...>, or <name/>) in
 * [p, end). On success sets [*t0, *t1) to its raw text and returns the
 * position after its closing tag; NULL when absent. */
const char *ct__xml_find(const char *p, const char *end, const char *name, const char **t0,
                         const char **t1);
/* The text of [t0, t1) with the five entities and &#N; / &#xH; unescaped,
 * malloc'd. NULL on a malformed entity or out of memory. */
char *ct__xml_text(const char *t0, const char *t1);
/* Copies the unescaped text of the first <name> into out (truncated to
 * cap-1); "" when absent. */
void ct__xml_get(const char *p, const char *end, const char *name, char *out, size_t cap);

/* ---- the source --------------------------------------------------------------------- */
typedef struct ct__http ct__http_t; /* libcurl state: handle pool, share */

struct ct_source {
    ct_source_env_t env; /* strings point into strs */
    char *strs;          /* one allocation holding the env strings */
    ct__http_t *http;    /* created on first remote use */
    pthread_mutex_t http_mu;
};

/* ---- HTTP transport (source_curl.c) ---------------------------------------------- */
typedef struct {
    const char *method;     /* GET, HEAD, PUT, POST, DELETE */
    const char *url;        /* the request URL */
    const char *shown;      /* what messages call it (no credentials) */
    const char *what;       /* "read", "size", "list", "write", ... for messages */
    /* SigV4: region != NULL signs with CURLOPT_AWS_SIGV4 "aws:amz:region:s3" */
    const char *region, *akey, *skey, *token;
    const void *body;       /* PUT/POST body */
    size_t body_len;
    const char *content_type;
    int follow;             /* follow redirects (plain http only) */
    /* ranged read into dst: exactly [range_off, range_off + range_len) */
    int64_t range_off;
    size_t range_len;       /* 0 = no Range header */
    int64_t expect_size;    /* -1 = unknown */
    void *dst;
    ct__buf_t *out;         /* else: 2xx body goes here (may be NULL) */
    long quiet_status;      /* a failure with this HTTP status is returned unlogged */
} ct__req_t;

typedef struct {
    long status;
    int64_t content_length; /* -1 = absent */
    int64_t cr_first, cr_last, cr_total; /* Content-Range, -1 = absent */
    char etag[160];
    char code[96];          /* <Code> of an error body */
    char message[256];      /* <Message> of an error body */
} ct__resp_t;

/* Performs req with retries; 2xx with the checks above is CT_OK, any
 * failure is logged once (with `shown`) and returned. Thread-safe. */
CT_MUST_USE ct_status_t ct__http_do(ct_source_t *src, const ct__req_t *req, ct__resp_t *resp);
void ct__http_free(ct__http_t *h);
/* 1 when a libcurl error code is worth retrying (timeouts, resets,
 * truncated transfers, connection failures). */
int ct__curl_retryable(int curl_code);

/* ---- the backends ------------------------------------------------------------------ */
/* One per scheme. The front parses the URL once, picks the backend by its
 * kind and passes the parsed URL on; u->path is what messages show (after
 * ct__redact_url where it may hold credentials). Each op logs its own
 * failures, once, with a HINT. Thread-safe, like the source. */
typedef struct {
    const char *name; /* for messages: "file", "http(s)", "s3", "gs" */
    ct_status_t (*size)(ct_source_t *src, const ct__url_t *u, int64_t *size_p);
    /* Exactly len > 0 bytes at offset into dst; see ct_source_read. */
    ct_status_t (*read)(ct_source_t *src, const ct__url_t *u, int64_t offset, size_t len,
                        int64_t expect_size, void *dst);
    /* A whole object; see ct_source_write. NULL: the scheme cannot be written. */
    ct_status_t (*write)(ct_source_t *src, const ct__url_t *u, const void *data, size_t len);
    /* Appends the objects u names (one object, or what a glob or prefix
     * matches) to *objs (n used, cap allocated), in any order. When it names
     * none, logs that in the scheme's words and returns CT_ERR_NOT_FOUND. */
    ct_status_t (*list)(ct_source_t *src, const ct__url_t *u, ct_object_t **objs, int *n,
                        int *cap);
} ct__src_backend_t;

extern const ct__src_backend_t ct__src_file; /* source_file.c */
extern const ct__src_backend_t ct__src_http; /* source_http.c */
extern const ct__src_backend_t ct__src_s3;   /* source_s3.c */
extern const ct__src_backend_t ct__src_gs;   /* source_s3.c */

/* ---- object stores: the parts tests check (source_s3.c) ------------------------------ */
/* The request URL of bucket/key (key raw, may be ""), with an optional
 * canonical query; malloc'd. Path-style on custom endpoints and GCS,
 * virtual-hosted on AWS. */
char *ct__s3_url(const ct_source_t *src, const ct__url_t *u, const char *key, const char *query);
/* Parses one ListObjectsV2 page: appends (url prefix + key, size) of each
 * <Contents> whose key does not end in '/' and matches pattern (may be
 * NULL); sets *truncated and *token (malloc'd, NULL when absent).
 * CT_ERR_CORRUPT on a malformed page. */
CT_MUST_USE ct_status_t ct__s3_parse_list(const char *xml, size_t n, const char *url_prefix,
                              const char *pattern, ct_object_t **objs, int *nobj, int *cap,
                              int *truncated, char **token);

#endif
