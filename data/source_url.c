/* Byte sources, helpers: URLs and the strings built from them. The growable
 * buffer every source file writes into, RFC 3986 percent-encoding, parsing a
 * URL into its scheme (which picks the backend in source.c), bucket, key or
 * path, redaction of credentials for messages, and the growable object list
 * that listings fill.
 *
 * Left out: full RFC 3986 validation (hosts, ports and paths of http(s) URLs
 * go to libcurl as given) and normalization of local paths (they go to the
 * C library as given). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "data/source_impl.h"

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

/* ---- object lists ------------------------------------------------------------------ */
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
