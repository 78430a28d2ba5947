/* Byte sources, helpers: the XML reader for the flat documents S3 sends
 * (ListBucketResult, Error, InitiateMultipartUploadResult). It finds
 * elements by name and unescapes their text (the five entities and numeric
 * character references, written as UTF-8).
 *
 * Left out: it is not a general parser: no CDATA, comments or processing
 * instructions, no namespaces, and no nesting of same-named elements. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/source_impl.h"

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
