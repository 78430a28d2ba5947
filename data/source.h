/* Byte sources: one interface over local files, http(s)://, s3:// and gs://.
 * Private to data/.
 *
 * URLs:
 *   /path/x.bin, x.bin, file:///path/x.bin  local files (globs expand in list)
 *   http://host/x.bin, https://...       ranged GETs; TLS verified by default
 *   s3://bucket/key, s3://bucket/prefix/  SigV4 via CURLOPT_AWS_SIGV4; path-style
 *                                          addressing when an endpoint is set,
 *                                          virtual-hosted on AWS
 *   gs://bucket/key                       GCS XML API with HMAC keys (the same
 *                                          SigV4 signing: GCS's XML API accepts
 *                                          AWS4-HMAC-SHA256 with HMAC keys)
 * Credentials and endpoints come from ct_source_env_t (read from the
 * environment in one place, ct_source_env_from_environ) and never appear in
 * logs or error messages; URLs in messages have their query values and
 * passwords replaced by "***".
 *
 * Errors are logged once here, with the URL, the byte offset, the HTTP status
 * and the server's error code, and a HINT; callers only pass the status on.
 * Transient failures (timeouts, connection resets, truncated transfers, 5xx,
 * 429/SlowDown) are retried with exponential backoff and jitter up to
 * max_retries, each retry logged as a warning. 403, 404 and other 4xx fail at
 * once. A response that does not hold exactly the requested bytes (wrong
 * Content-Range or Content-Length, object shorter than the range, object
 * whose size changed) is CT_ERR_CORRUPT with the URL and byte offset; a
 * transfer that keeps breaking is CT_ERR_IO after the retries.
 *
 * Thread-safety: a ct_source_t may be used from several threads at once
 * (the loader's prefetch threads). Each call takes a libcurl handle from a
 * pool owned by the source, so connections are reused across calls.
 *
 * Left out: listing http(s) "directories", writing to http(s), parallel
 * multipart uploads, the GCS JSON API and OAuth tokens (HMAC keys only). */
#ifndef CT_DATA_SOURCE_H
#define CT_DATA_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* Default part size of multipart uploads, and the size above which
 * ct_source_write uses one. S3 wants parts of at least 5 MiB (but the last). */
#define CT_SOURCE_PART_BYTES ((size_t)8 << 20)

typedef struct {
    const char *access_key;     /* AWS_ACCESS_KEY_ID; NULL = unsigned requests */
    const char *secret_key;     /* AWS_SECRET_ACCESS_KEY */
    const char *session_token;  /* AWS_SESSION_TOKEN, may be NULL */
    const char *region;         /* AWS_REGION / AWS_DEFAULT_REGION, default us-east-1 */
    const char *endpoint;       /* AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, e.g.
                                   http://127.0.0.1:9000; NULL = AWS */
    const char *gcs_access_key; /* GCS_ACCESS_KEY_ID: HMAC key id for gs:// */
    const char *gcs_secret_key; /* GCS_SECRET_ACCESS_KEY: HMAC secret */
    const char *gcs_endpoint;   /* GCS_ENDPOINT_URL, default https://storage.googleapis.com */
    const char *ca_bundle;      /* AWS_CA_BUNDLE / CURL_CA_BUNDLE: CA file for https,
                                   NULL = system default */
    int max_retries;            /* transient failures retried this many times (8) */
    double retry_base_s;        /* first backoff delay, doubled per retry (0.25 s) */
    double retry_max_s;         /* backoff cap (20 s) */
    double timeout_s;           /* connect timeout, and a transfer stalled this
                                   long is a timeout (30 s) */
    size_t part_bytes;          /* multipart part size (CT_SOURCE_PART_BYTES) */
} ct_source_env_t;

typedef struct ct_source ct_source_t;

typedef struct {
    char *url;    /* malloc'd: s3://bucket/key, gs://bucket/key, https://...,
                     or the local path without file:// */
    int64_t size; /* bytes */
} ct_object_t;

/* Fills env with the defaults above. */
void ct_source_env_defaults(ct_source_env_t *env);
/* Defaults, then the standard environment variables named above (the one
 * place they are read). Strings point into the environment. */
void ct_source_env_from_environ(ct_source_env_t *env);
/* Copies env (strings included); env may be freed after. */
CT_MUST_USE ct_status_t ct_source_init(const ct_source_env_t *env, ct_source_t **src_p);
void ct_source_free(ct_source_t *src);

/* Expands a spec (a URL, a glob of local paths, an s3:// or gs:// prefix
 * ending in '/' or a key pattern containing * ? [, or a comma-separated list
 * of these) into objects sorted by URL within each item; s3/gs prefixes are
 * listed with ListObjectsV2, all pages. An item that matches nothing is
 * CT_ERR_NOT_FOUND naming it. *objs_p is malloc'd; free with
 * ct_objects_free. */
CT_MUST_USE ct_status_t ct_source_list(ct_source_t *src, const char *spec, ct_object_t **objs_p, int *n_p);
void ct_objects_free(ct_object_t *objs, int n);
/* Size of one object (HEAD for remote URLs). */
CT_MUST_USE ct_status_t ct_source_size(ct_source_t *src, const char *url, int64_t *size_p);
/* Reads exactly len bytes at offset into dst (ranged GET / pread).
 * expect_size is the object's size as listed, or -1: when given, an object
 * that now has another size is CT_ERR_CORRUPT. dst is undefined on error. */
CT_MUST_USE ct_status_t ct_source_read(ct_source_t *src, const char *url, int64_t offset, size_t len,
                           int64_t expect_size, void *dst);
/* Writes a whole object: a local file through a temporary file, fsync and
 * rename; s3/gs through PutObject, or a multipart upload (aborted on
 * failure) when len > part_bytes. Replaces an existing object. */
CT_MUST_USE ct_status_t ct_source_write(ct_source_t *src, const char *url, const void *data, size_t len);

#endif
