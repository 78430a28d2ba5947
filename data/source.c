/* Byte sources, the front: the environment, URL parsing, dispatch to the
 * local, http(s) and object-store backends, list specs, and the pieces of
 * policy they share: the retry classification and backoff, redaction of
 * URLs for messages, percent-encoding and SigV4 query canonicalization,
 * minimal XML reading and SHA-256.
 *
 * The XML reader is for the flat documents S3 sends (ListBucketResult,
 * Error, InitiateMultipartUploadResult): it finds elements by name and
 * unescapes their text; it is not a general parser (no CDATA, no nesting of
 * same-named elements). */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/env.h"
#include "core/log.h"
#include "data/source_impl.h"

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

/* ---- URLs --------------------------------------------------------------------------- */
static int has_prefix_ci(const char *s, const char *p) { return strncasecmp(s, p, strlen(p)) == 0; }

ct_status_t ct__url_parse(const char *url, ct__url_t *u_p)
{
    ct__url_t u = {0};
    if (!url || !*url) {
        CT_LOG_ERROR("empty data URL\n---> HINT: give a path, file://, http(s)://, s3:// or gs:// URL");
        return CT_ERR_INVALID_ARG;
    }
    if (has_prefix_ci(url, "s3://") || has_prefix_ci(url, "gs://")) {
        u.kind = tolower((unsigned char)url[0]) == 's' ? CT__SRC_S3 : CT__SRC_GS;
        const char *b = url + 5, *slash = strchr(b, '/');
        size_t bl = slash ? (size_t)(slash - b) : strlen(b);
        int ok = bl > 0 && bl <= 222;
        for (size_t i = 0; i < bl && ok; i++)
            ok = isalnum((unsigned char)b[i]) || b[i] == '-' || b[i] == '.' || b[i] == '_';
        if (!ok) {
            char *shown = ct__redact_url(url);
            CT_LOG_ERROR("'%s' has no valid bucket name\n---> HINT: write %.2s://BUCKET/KEY or "
                         "%.2s://BUCKET/PREFIX/ (bucket names are letters, digits, '-', '.', '_')",
                         shown, url, url);
            ct__redacted_free(shown);
            return CT_ERR_INVALID_ARG;
        }
        u.bucket = strndup(b, bl);
        u.key = strdup(slash ? slash + 1 : "");
        u.path = strdup(url);
    } else if (has_prefix_ci(url, "http://") || has_prefix_ci(url, "https://")) {
        u.kind = CT__SRC_HTTP;
        const char *h = strstr(url, "://") + 3;
        if (!*h || *h == '/' || *h == '?') {
            char *shown = ct__redact_url(url);
            CT_LOG_ERROR("'%s' has no host", shown);
            ct__redacted_free(shown);
            return CT_ERR_INVALID_ARG;
        }
        u.path = strdup(url);
    } else if (has_prefix_ci(url, "file://")) {
        u.kind = CT__SRC_FILE;
        const char *p = url + 7;
        if (has_prefix_ci(p, "localhost/")) p += 9;
        if (*p != '/') {
            CT_LOG_ERROR("'%s' is not a local file URL\n---> HINT: write file:///absolute/path "
                         "or a plain path", url);
            return CT_ERR_INVALID_ARG;
        }
        u.path = strdup(p);
    } else {
        const char *colon = strstr(url, "://");
        if (colon) {
            int ok = 1;
            for (const char *c = url; c < colon && ok; c++) ok = isalnum((unsigned char)*c) || *c == '+';
            if (ok) {
                char *shown = ct__redact_url(url);
                CT_LOG_ERROR("'%s': unsupported URL scheme '%.*s'\n---> HINT: use a path, "
                             "file://, http://, https://, s3:// or gs://", shown,
                             (int)(colon - url), url);
                ct__redacted_free(shown);
                return CT_ERR_UNSUPPORTED;
            }
        }
        u.kind = CT__SRC_FILE;
        u.path = strdup(url);
    }
    if (!u.path || (u.kind >= CT__SRC_S3 && (!u.bucket || !u.key))) {
        ct__url_free(&u);
        return CT_ERR_NO_MEMORY;
    }
    *u_p = u;
    return CT_OK;
}

void ct__url_free(ct__url_t *u)
{
    free(u->path);
    free(u->bucket);
    free(u->key);
    memset(u, 0, sizeof *u);
}

/* ---- strings ----------------------------------------------------------------------- */
void ct__buf_add(ct__buf_t *b, const void *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void ct__buf_str(ct__buf_t *b, const char *s) { ct__buf_add(b, s, strlen(s)); }

void ct__buf_free(ct__buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void ct__uri_encode(ct__buf_t *b, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (isalnum(*c) || *c == '-' || *c == '.' || *c == '_' || *c == '~' ||
            (keep_slash && *c == '/')) {
            ct__buf_add(b, c, 1);
        } else {
            char e[3] = {'%', hex[*c >> 4], hex[*c & 15]};
            ct__buf_add(b, e, 3);
        }
    }
}

typedef struct {
    char *name, *value;
} qpair_t;

static int qpair_cmp(const void *a, const void *b)
{
    const qpair_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

char *ct__query_canonical(const char *const *kv, int n)
{
    qpair_t *pairs = calloc(n > 0 ? (size_t)n : 1, sizeof *pairs);
    if (!pairs) return NULL;
    int oom = 0;
    for (int i = 0; i < n; i++) {
        ct__buf_t b = {0};
        ct__uri_encode(&b, kv[2 * i], 0);
        ct__buf_add(&b, "", 0);
        pairs[i].name = b.p;
        ct__buf_t v = {0};
        ct__uri_encode(&v, kv[2 * i + 1] ? kv[2 * i + 1] : "", 0);
        ct__buf_add(&v, "", 0);
        pairs[i].value = v.p;
        oom |= b.oom || v.oom || !b.p || !v.p;
    }
    char *out = NULL;
    if (!oom) {
        qsort(pairs, (size_t)n, sizeof *pairs, qpair_cmp);
        ct__buf_t q = {0};
        ct__buf_add(&q, "", 0);
        for (int i = 0; i < n; i++) {
            if (i) ct__buf_add(&q, "&", 1);
            ct__buf_str(&q, pairs[i].name);
            ct__buf_add(&q, "=", 1);
            ct__buf_str(&q, pairs[i].value);
        }
        if (q.oom) ct__buf_free(&q);
        out = q.p;
    }
    for (int i = 0; i < n; i++) {
        free(pairs[i].name);
        free(pairs[i].value);
    }
    free(pairs);
    return out;
}

static char redact_oom[] = "<url>";

char *ct__redact_url(const char *url)
{
    ct__buf_t b = {0};
    const char *p = url, *end = url + strlen(url);
    const char *frag = strchr(url, '#');
    if (frag) end = frag;
    const char *scheme = strstr(url, "://");
    if (scheme && scheme < end) {
        const char *auth = scheme + 3;
        size_t alen = strcspn(auth, "/?#");
        const char *at = memchr(auth, '@', alen);
        ct__buf_add(&b, url, (size_t)(auth - url));
        if (at) {
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            if (colon) ct__buf_add(&b, auth, (size_t)(colon - auth));
            ct__buf_str(&b, colon ? ":***@" : "***@");
            auth = at + 1;
        }
        p = auth;
    }
    const char *q = memchr(p, '?', (size_t)(end - p));
    ct__buf_add(&b, p, (size_t)((q ? q : end) - p));
    if (q) {
        ct__buf_add(&b, "?", 1);
        const char *s = q + 1;
        while (s < end) {
            const char *amp = memchr(s, '&', (size_t)(end - s));
            const char *e = amp ? amp : end;
            const char *eq = memchr(s, '=', (size_t)(e - s));
            if (eq) {
                ct__buf_add(&b, s, (size_t)(eq - s));
                ct__buf_str(&b, "=***");
            } else if (e > s) {
                ct__buf_str(&b, "***");
            }
            if (amp) ct__buf_add(&b, "&", 1);
            s = e + 1;
        }
    }
    ct__buf_add(&b, "", 0);
    if (b.oom || !b.p) {
        ct__buf_free(&b);
        return redact_oom;
    }
    return b.p;
}

void ct__redacted_free(char *s)
{
    if (s != redact_oom) free(s);
}

/* ---- retry policy --------------------------------------------------------------------- */
int ct__http_retryable(long status, const char *code)
{
    if (status == 408 || status == 429) return 1;
    if (status >= 500 && status != 501 && status != 505) return 1;
    if (status == 400 && code && strcmp(code, "RequestTimeout") == 0) return 1;
    return 0;
}

double ct__backoff_s(int attempt, double base, double max, double u)
{
    double d = base;
    for (int i = 0; i < attempt && d < max; i++) d *= 2;
    if (d > max) d = max;
    return d * (0.5 + 0.5 * u);
}

double ct__random01(void)
{
    static _Atomic uint64_t counter = 0;
    uint64_t x = atomic_fetch_add(&counter, 0x9E3779B97F4A7C15ull);
    if (x == 0) x = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
    x += (uint64_t)clock();
    /* splitmix64 */
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return (double)(x >> 11) / 9007199254740992.0;
}

void ct__sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- XML ----------------------------------------------------------------------------- */
const char *ct__xml_find(const char *p, const char *end, const char *name, const char **t0,
                         const char **t1)
{
    size_t nl = strlen(name);
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt || (size_t)(end - lt) < nl + 2) return NULL;
        const char *a = lt + 1 + nl;
        if (memcmp(lt + 1, name, nl) == 0 && (*a == '>' || *a == ' ' || *a == '/' ||
                                              *a == '\t' || *a == '\r' || *a == '\n')) {
            const char *gt = memchr(a, '>', (size_t)(end - a));
            if (!gt) return NULL;
            if (gt[-1] == '/') { /* <name/> */
                *t0 = *t1 = gt + 1;
                return gt + 1;
            }
            const char *s = gt + 1;
            for (const char *c = s; c < end; c++) {
                c = memchr(c, '<', (size_t)(end - c));
                if (!c) return NULL;
                if ((size_t)(end - c) >= nl + 3 && c[1] == '/' && memcmp(c + 2, name, nl) == 0 &&
                    c[2 + nl] == '>') {
                    *t0 = s;
                    *t1 = c;
                    return c + 3 + nl;
                }
            }
            return NULL;
        }
        p = lt + 1;
    }
    return NULL;
}

static void put_utf8(ct__buf_t *b, unsigned long cp)
{
    unsigned char o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 63));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
        o[2] = (unsigned char)(0x80 | (cp & 63));
        n = 3;
    } else {
        o[0] = (unsigned char)(0xF0 | (cp >> 18));
        o[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
        o[2] = (unsigned char)(0x80 | ((cp >> 6) & 63));
        o[3] = (unsigned char)(0x80 | (cp & 63));
        n = 4;
    }
    ct__buf_add(b, o, n);
}

char *ct__xml_text(const char *t0, const char *t1)
{
    static const struct {
        const char *name;
        char c;
    } ents[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    ct__buf_t b = {0};
    ct__buf_add(&b, "", 0);
    for (const char *c = t0; c < t1;) {
        const char *amp = memchr(c, '&', (size_t)(t1 - c));
        ct__buf_add(&b, c, (size_t)((amp ? amp : t1) - c));
        if (!amp) break;
        const char *semi = memchr(amp, ';', (size_t)(t1 - amp));
        if (!semi) goto bad;
        size_t len = (size_t)(semi + 1 - (amp + 1));
        int done = 0;
        for (size_t i = 0; i < sizeof ents / sizeof ents[0] && !done; i++)
            if (strlen(ents[i].name) == len && memcmp(amp + 1, ents[i].name, len) == 0) {
                ct__buf_add(&b, &ents[i].c, 1);
                done = 1;
            }
        if (!done) {
            if (amp[1] != '#' || len < 3) goto bad;
            int hexd = amp[2] == 'x' || amp[2] == 'X';
            const char *d = amp + 2 + hexd;
            if (d >= semi) goto bad;
            unsigned long cp = 0;
            for (; d < semi; d++) {
                int v = isdigit((unsigned char)*d) ? *d - '0'
                        : hexd && isxdigit((unsigned char)*d) ? (tolower((unsigned char)*d) - 'a' + 10)
                                                               : -1;
                if (v < 0 || cp > 0x10FFFF) goto bad;
                cp = cp * (hexd ? 16 : 10) + (unsigned long)v;
            }
            if (cp == 0 || cp > 0x10FFFF) goto bad;
            put_utf8(&b, cp);
        }
        c = semi + 1;
    }
    if (b.oom) goto bad;
    return b.p;
bad:
    ct__buf_free(&b);
    return NULL;
}

void ct__xml_get(const char *p, const char *end, const char *name, char *out, size_t cap)
{
    const char *t0, *t1;
    out[0] = 0;
    if (!p || !ct__xml_find(p, end, name, &t0, &t1)) return;
    char *s = ct__xml_text(t0, t1);
    if (!s) return;
    snprintf(out, cap, "%s", s);
    free(s);
}

/* ---- SHA-256 (FIPS 180-4) --------------------------------------------------------------- */
static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

void ct__sha256_hex(const void *data, size_t n, char hex[65])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) sha_block(h, p + i);
    unsigned char tail[128] = {0};
    size_t r = n - i;
    if (r) memcpy(tail, p + i, r);
    tail[r] = 0x80;
    size_t tl = r + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int j = 0; j < 8; j++) tail[tl - 1 - j] = (unsigned char)(bits >> (8 * j));
    sha_block(h, tail);
    if (tl == 128) sha_block(h, tail + 64);
    for (int j = 0; j < 8; j++) snprintf(hex + 8 * j, 9, "%08x", h[j]);
}

/* ---- dispatch --------------------------------------------------------------------------- */
ct_status_t ct__objects_push(ct_object_t **objs, int *n, int *cap, const char *url, size_t ulen,
                             int64_t size)
{
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 16;
        ct_object_t *o = realloc(*objs, (size_t)c * sizeof *o);
        if (!o) return CT_ERR_NO_MEMORY;
        *objs = o;
        *cap = c;
    }
    char *u = strndup(url, ulen);
    if (!u) return CT_ERR_NO_MEMORY;
    (*objs)[*n].url = u;
    (*objs)[*n].size = size;
    (*n)++;
    return CT_OK;
}

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
    switch (u.kind) {
    case CT__SRC_FILE: st = ct__file_size(u.path, size_p); break;
    case CT__SRC_HTTP: st = ct__http_size(src, u.path, size_p); break;
    default: st = ct__s3_size(src, &u, url, size_p); break;
    }
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
    switch (u.kind) {
    case CT__SRC_FILE: st = ct__file_read(u.path, offset, len, expect_size, dst); break;
    case CT__SRC_HTTP: st = ct__http_read(src, u.path, offset, len, expect_size, dst); break;
    default: st = ct__s3_read(src, &u, url, offset, len, expect_size, dst); break;
    }
    ct__url_free(&u);
    return st;
}

ct_status_t ct_source_write(ct_source_t *src, const char *url, const void *data, size_t len)
{
    ct__url_t u;
    ct_status_t st = ct__url_parse(url, &u);
    if (st != CT_OK) return st;
    switch (u.kind) {
    case CT__SRC_FILE: st = ct__file_write(u.path, data, len); break;
    case CT__SRC_HTTP: {
        char *shown = ct__redact_url(url);
        CT_LOG_ERROR("cannot write %s: writing over http(s) is not supported\n---> HINT: write "
                     "to a local path, s3:// or gs://", shown);
        ct__redacted_free(shown);
        st = CT_ERR_UNSUPPORTED;
        break;
    }
    default: st = ct__s3_write(src, &u, url, data, len); break;
    }
    ct__url_free(&u);
    return st;
}

static ct_status_t list_item(ct_source_t *src, const char *item, ct_object_t **objs, int *n,
                             int *cap)
{
    ct__url_t u;
    ct_status_t st = ct__url_parse(item, &u);
    if (st != CT_OK) return st;
    int64_t size;
    if (u.kind == CT__SRC_FILE) {
        st = ct__file_list(u.path, objs, n, cap);
    } else if (u.kind == CT__SRC_HTTP) {
        st = ct__http_size(src, u.path, &size);
        if (st == CT_OK) st = ct__objects_push(objs, n, cap, u.path, strlen(u.path), size);
    } else {
        size_t glob_at = strcspn(u.key, "*?[");
        if (!u.key[0] || u.key[strlen(u.key) - 1] == '/') {
            st = ct__s3_list(src, &u, NULL, objs, n, cap);
        } else if (u.key[glob_at]) {
            char *pattern = strdup(u.key);
            if (!pattern) {
                st = CT_ERR_NO_MEMORY;
            } else {
                u.key[glob_at] = 0; /* list the literal prefix, then match */
                st = ct__s3_list(src, &u, pattern, objs, n, cap);
                free(pattern);
            }
        } else {
            st = ct__s3_size(src, &u, item, &size);
            if (st == CT_OK) st = ct__objects_push(objs, n, cap, item, strlen(item), size);
        }
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
        st = list_item(src, item, &objs, &n, &cap);
        if (st == CT_OK && n == first) {
            char *shown = ct__redact_url(item);
            CT_LOG_ERROR("no object matches '%s'\n---> HINT: check the path or prefix (a prefix "
                         "lists every key that starts with it; end it with '/' for a folder)",
                         shown);
            ct__redacted_free(shown);
            st = CT_ERR_NOT_FOUND;
        }
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
