/* Byte sources, the front: the environment, the source object, and the
 * dispatch of every call to the backend of its URL's scheme (the table
 * below; the layers are described in source_impl.h), plus list specs: a
 * comma-separated list of items, each listed by its backend and sorted.
 *
 * Left out: anything scheme-specific. Parsing, signing, XML, retries and
 * the transport are helpers under the backends, and the front never calls
 * them but to parse the URL and free the libcurl state it owns. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "core/log.h"
#include "data/source_impl.h"

/* The backend table: the one place that knows which schemes exist. */
static const ct__src_backend_t *const backends[CT__SRC_NKINDS] = {
    [CT__SRC_FILE] = &ct__src_file,
    [CT__SRC_HTTP] = &ct__src_http,
    [CT__SRC_S3] = &ct__src_s3,
    [CT__SRC_GS] = &ct__src_gs,
};

/* ---- environment ------------------------------------------------------------------ */
void ct_source_env_defaults(ct_source_env_t *env)
{
    memset(env, 0, sizeof *env);
    env->region = "us-east-1";
    env->gcs_endpoint = "https://storage.googleapis.com";
    env->max_retries = 8;
    env->retry_base_s = 0.25;
    env->retry_max_s = 20.0;
    env->timeout_s = 30.0;
    env->part_bytes = CT_SOURCE_PART_BYTES;
}

static const char *env_get(const char *a, const char *b)
{
    const char *v = ct_env_get(a);
    if ((!v || !*v) && b) v = ct_env_get(b);
    return v && *v ? v : NULL;
}

void ct_source_env_from_environ(ct_source_env_t *env)
{
    ct_source_env_defaults(env);
    env->access_key = env_get("AWS_ACCESS_KEY_ID", NULL);
    env->secret_key = env_get("AWS_SECRET_ACCESS_KEY", NULL);
    env->session_token = env_get("AWS_SESSION_TOKEN", NULL);
    const char *r = env_get("AWS_REGION", "AWS_DEFAULT_REGION");
    if (r) env->region = r;
    env->endpoint = env_get("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
    env->gcs_access_key = env_get("GCS_ACCESS_KEY_ID", NULL);
    env->gcs_secret_key = env_get("GCS_SECRET_ACCESS_KEY", NULL);
    const char *g = env_get("GCS_ENDPOINT_URL", NULL);
    if (g) env->gcs_endpoint = g;
    env->ca_bundle = env_get("AWS_CA_BUNDLE", "CURL_CA_BUNDLE");
}

ct_status_t ct_source_init(const ct_source_env_t *env, ct_source_t **src_p)
{
    ct_source_t *s = calloc(1, sizeof *s);
    if (!s) return CT_ERR_NO_MEMORY;
    s->env = *env;
    /* copy the strings into one allocation; endpoints lose a trailing '/' */
    const char **fields[] = {&s->env.access_key, &s->env.secret_key, &s->env.session_token,
                             &s->env.region, &s->env.endpoint, &s->env.gcs_access_key,
                             &s->env.gcs_secret_key, &s->env.gcs_endpoint, &s->env.ca_bundle};
    const int nf = (int)(sizeof fields / sizeof fields[0]);
    size_t total = 0;
    for (int i = 0; i < nf; i++)
        if (*fields[i]) total += strlen(*fields[i]) + 1;
    s->strs = malloc(total + 1);
    if (!s->strs) {
        free(s);
        return CT_ERR_NO_MEMORY;
    }
    char *p = s->strs;
    for (int i = 0; i < nf; i++) {
        if (!*fields[i]) continue;
        size_t n = strlen(*fields[i]);
        memcpy(p, *fields[i], n + 1);
        *fields[i] = p;
        p += n + 1;
    }
    for (char *e = (char *)s->env.endpoint; e && *e && e[strlen(e) - 1] == '/';) e[strlen(e) - 1] = 0;
    for (char *e = (char *)s->env.gcs_endpoint; e && *e && e[strlen(e) - 1] == '/';) e[strlen(e) - 1] = 0;
    if (!s->env.region || !*s->env.region) s->env.region = "us-east-1";
    if (!s->env.gcs_endpoint || !*s->env.gcs_endpoint)
        s->env.gcs_endpoint = "https://storage.googleapis.com";
    if (s->env.max_retries < 0) s->env.max_retries = 0;
    if (s->env.timeout_s <= 0) s->env.timeout_s = 30.0;
    if (s->env.retry_max_s <= 0) s->env.retry_max_s = 20.0;
    if (s->env.part_bytes == 0) s->env.part_bytes = CT_SOURCE_PART_BYTES;
    if ((s->env.access_key == NULL) != (s->env.secret_key == NULL))
        CT_LOG_WARN("only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set; s3:// "
                    "requests go unsigned\n---> HINT: set both, or neither for public buckets");
    if (!s->env.access_key || !s->env.secret_key) s->env.access_key = s->env.secret_key = NULL;
    if (!s->env.gcs_access_key || !s->env.gcs_secret_key)
        s->env.gcs_access_key = s->env.gcs_secret_key = NULL;
    pthread_mutex_init(&s->http_mu, NULL);
    CT_LOG_DEBUG("byte sources: s3 endpoint %s, region %s, s3 credentials %s%s, gs endpoint %s, "
                 "gs credentials %s, CA file %s, %d retries, timeout %.1f s, parts of %zu bytes",
                 s->env.endpoint ? s->env.endpoint : "AWS", s->env.region,
                 s->env.access_key ? "set" : "none", s->env.session_token ? " (with token)" : "",
                 s->env.gcs_endpoint, s->env.gcs_access_key ? "set" : "none",
                 s->env.ca_bundle ? s->env.ca_bundle : "system", s->env.max_retries,
                 s->env.timeout_s, s->env.part_bytes);
    *src_p = s;
    return CT_OK;
}

void ct_source_free(ct_source_t *src)
{
    if (!src) return;
    if (src->http) ct__http_free(src->http);
    pthread_mutex_destroy(&src->http_mu);
    free(src->strs);
    free(src);
}

/* ---- dispatch --------------------------------------------------------------------------- */
void ct_objects_free(ct_object_t *objs, int n)
{
    for (int i = 0; objs && i < n; i++) free(objs[i].url);
    free(objs);
}

static int object_cmp(const void *a, const void *b)
{
    return strcmp(((const ct_object_t *)a)->url, ((const ct_object_t *)b)->url);
}

ct_status_t ct_source_size(ct_source_t *src, const char *url, int64_t *size_p)
{
    ct__url_t u;
    ct_status_t st = ct__url_parse(url, &u);
    if (st != CT_OK) return st;
    st = backends[u.kind]->size(src, &u, size_p);
    ct__url_free(&u);
    return st;
}

ct_status_t ct_source_read(ct_source_t *src, const char *url, int64_t offset, size_t len,
                           int64_t expect_size, void *dst)
{
    CT_ASSERT(offset >= 0);
    if (len == 0) return CT_OK;
    ct__url_t u;
    ct_status_t st = ct__url_parse(url, &u);
    if (st != CT_OK) return st;
    st = backends[u.kind]->read(src, &u, offset, len, expect_size, dst);
    ct__url_free(&u);
    return st;
}

ct_status_t ct_source_write(ct_source_t *src, const char *url, const void *data, size_t len)
{
    ct__url_t u;
    ct_status_t st = ct__url_parse(url, &u);
    if (st != CT_OK) return st;
    const ct__src_backend_t *be = backends[u.kind];
    if (be->write) {
        st = be->write(src, &u, data, len);
    } else {
        char *shown = ct__redact_url(url);
        CT_LOG_ERROR("cannot write %s: writing over %s is not supported\n---> HINT: write "
                     "to a local path, s3:// or gs://", shown, be->name);
        ct__redacted_free(shown);
        st = CT_ERR_UNSUPPORTED;
    }
    ct__url_free(&u);
    return st;
}

ct_status_t ct_source_list(ct_source_t *src, const char *spec, ct_object_t **objs_p, int *n_p)
{
    char *copy = strdup(spec ? spec : "");
    if (!copy) return CT_ERR_NO_MEMORY;
    ct_object_t *objs = NULL;
    int n = 0, cap = 0;
    ct_status_t st = CT_OK;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item && st == CT_OK;
         item = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*item)) item++;
        for (size_t l = strlen(item); l && isspace((unsigned char)item[l - 1]); l--) item[l - 1] = 0;
        if (!*item) continue;
        int first = n;
        ct__url_t u;
        st = ct__url_parse(item, &u);
        if (st != CT_OK) break;
        st = backends[u.kind]->list(src, &u, &objs, &n, &cap);
        ct__url_free(&u);
        CT_ASSERT(st != CT_OK || n > first); /* a backend reports an empty item itself */
        if (st == CT_OK) qsort(objs + first, (size_t)(n - first), sizeof *objs, object_cmp);
    }
    free(copy);
    if (st == CT_OK && n == 0) {
        CT_LOG_ERROR("data spec '%s' names no object", spec ? spec : "");
        st = CT_ERR_NOT_FOUND;
    }
    if (st != CT_OK) {
        ct_objects_free(objs, n);
        return st;
    }
    *objs_p = objs;
    *n_p = n;
    return CT_OK;
}
