/* JSON on json-c (see core/json.h). json-c parses; this file adds the
 * checks its strict mode leaves out (control characters in strings, lone
 * surrogates when asked, trailing text), errors worded for users, and a
 * member iterator that keeps repeated keys. */
#include "core/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper than any file we read; the tokenizer's JSONL documents may carry
 * nested metadata. */
#define JSON_MAX_DEPTH 1000

static int json_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static void json_fail(ct_json_error_t *err, const char *text, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void json_fail(ct_json_error_t *err, const char *text, size_t off, const char *fmt, ...)
{
    if (!err) return;
    err->offset = off;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    ct_json_error_locate(err, text);
}

void ct_json_error_locate(ct_json_error_t *err, const char *text)
{
    int line = 1, col = 1;
    for (size_t i = 0; i < err->offset; i++) {
        if (text[i] == '\n') line++, col = 1;
        else col++;
    }
    err->line = line;
    err->col = col;
}

static int hex4(const char *s, const char *end)
{
    if (end - s < 4) return -1;
    int x = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int h = c >= '0' && c <= '9' ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (h < 0) return -1;
        x = x * 16 + h;
    }
    return x;
}

/* Over text json-c has accepted: single quotes, control characters in
 * strings, and lone surrogates when strict. Returns 0 or -1 with err. */
static int json_check_strings(const char *text, size_t len, int flags, ct_json_error_t *err)
{
    const char *end = text + len;
    int in_string = 0;
    for (const char *s = text; s < end; s++) {
        char c = *s;
        if (!in_string) {
            in_string = c == '"';
            if (c == '\'') { /* json-c's strict mode still takes 'strings' */
                json_fail(err, text, (size_t)(s - text), "expected a key string or value, not '");
                return -1;
            }
            continue;
        }
        if (c == '"') {
            in_string = 0;
        } else if ((unsigned char)c < 0x20) {
            json_fail(err, text, (size_t)(s - text), "control character in a string");
            return -1;
        } else if (c == '\\') {
            s++; /* json-c checked the escape is complete */
            if (*s != 'u' || !(flags & CT_JSON_STRICT_SURROGATES)) continue;
            int cp = hex4(s + 1, end);
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                json_fail(err, text, (size_t)(s - 1 - text), "lone low surrogate");
                return -1;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = end - s >= 11 && s[5] == '\\' && s[6] == 'u' ? hex4(s + 7, end) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    json_fail(err, text, (size_t)(s - 1 - text), "lone high surrogate");
                    return -1;
                }
                s += 6;
            }
            s += 4;
        }
    }
    return 0;
}

static void json_tokener_fail(struct json_tokener *tok, const char *text, size_t len,
                              ct_json_error_t *err)
{
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t off = json_tokener_get_parse_end(tok);
    if (off > len) off = len;
    const char *msg;
    switch (e) {
    case json_tokener_continue:
    case json_tokener_error_parse_eof: msg = "unexpected end of input"; break;
    case json_tokener_error_depth: msg = "nested too deeply"; break;
    case json_tokener_error_parse_null:
    case json_tokener_error_parse_boolean: msg = "invalid literal"; break;
    case json_tokener_error_parse_number: msg = "malformed number"; break;
    case json_tokener_error_parse_array: msg = "expected ',' or ']'"; break;
    case json_tokener_error_parse_object_key_name: msg = "expected a key string"; break;
    case json_tokener_error_parse_object_key_sep: msg = "expected ':'"; break;
    case json_tokener_error_parse_object_value_sep: msg = "expected ',' or '}'"; break;
    case json_tokener_error_parse_string:
        /* json-c stops on the escape's second character */
        if (off >= 1 && off < len && text[off - 1] == '\\' && text[off] != 'u') {
            json_fail(err, text, off - 1, "unknown escape '\\%c'", text[off]);
            return;
        }
        msg = "bad \\u escape";
        break;
    case json_tokener_error_parse_utf8_string: msg = "invalid UTF-8"; break;
    default: msg = "unexpected character"; break;
    }
    json_fail(err, text, off, "%s", msg);
}

/* Parses one value at text[0..len), which must be all of it unless
 * trailing is set; *end_p gets where the value ends. */
static struct json_object *json_parse_at(struct json_tokener *tok, const char *text, size_t len,
                                         int trailing, size_t *end_p, ct_json_error_t *err)
{
    json_tokener_reset(tok);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | (trailing ? JSON_TOKENER_ALLOW_TRAILING_CHARS : 0));
    struct json_object *v = json_tokener_parse_ex(tok, text, (int)len);
    if (json_tokener_get_error(tok) == json_tokener_continue) {
        /* All of the text was read: a number at its very end waits for a
         * delimiter, anything else is cut short. */
        v = json_tokener_parse_ex(tok, " ", 1);
        if (json_tokener_get_error(tok) != json_tokener_success) {
            json_object_put(v);
            json_fail(err, text, len, "unexpected end of input");
            return NULL;
        }
        *end_p = len;
        return v;
    }
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(v);
        json_tokener_fail(tok, text, len, err);
        return NULL;
    }
    *end_p = json_tokener_get_parse_end(tok);
    if (*end_p > len) *end_p = len;
    return v;
}

/* The text json-c parses: a copy with every \u escape of a UTF-16 surrogate
 * replaced by raw UTF-8 (a pair by its code point, a lone one by U+FFFD),
 * since json-c 0.16 (Debian 12) decodes the third of three consecutive
 * escaped pairs as U+FFFD. `map` holds, for each replacement, where it ends
 * in the copy and how many bytes the copy is short of text from there on,
 * so that offsets (errors, iterator positions) point into text. Without
 * surrogate escapes (or out of memory, which leaves json-c to decode them)
 * src is text itself. */
typedef struct {
    const char *src;
    size_t len;
    char *buf;
    size_t *map; /* (n, 2): end in src, bytes removed up to there */
    size_t n, cap;
} json_src_t;

static int json_src_mark(json_src_t *d, size_t at, size_t removed)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 16;
        size_t *m = realloc(d->map, cap * 2 * sizeof *m);
        if (!m) return -1;
        d->map = m;
        d->cap = cap;
    }
    d->map[2 * d->n] = at;
    d->map[2 * d->n + 1] = (d->n ? d->map[2 * d->n - 1] : 0) + removed;
    d->n++;
    return 0;
}

static void json_src_free(json_src_t *d)
{
    free(d->buf);
    free(d->map);
    memset(d, 0, sizeof *d);
}

static void json_src_init(json_src_t *d, const char *text, size_t len)
{
    memset(d, 0, sizeof *d);
    const char *end = text + len;
    size_t n = 0;
    int in_string = 0;
    for (const char *s = text; s < end; s++) {
        if (!in_string) {
            in_string = *s == '"';
        } else if (*s == '"') {
            in_string = 0;
        } else if (*s == '\\' && s + 1 < end) {
            int cp = s[1] == 'u' ? hex4(s + 2, end) : -1;
            if (cp >= 0xD800 && cp <= 0xDFFF) {
                if (!d->buf) { /* the first one: copy what came before */
                    if (!(d->buf = malloc(len + 1))) goto oom;
                    memcpy(d->buf, text, (size_t)(s - text));
                    n = (size_t)(s - text);
                }
                char *out = d->buf;
                int lo = cp <= 0xDBFF && end - s >= 12 && s[6] == '\\' && s[7] == 'u'
                             ? hex4(s + 8, end) : -1;
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    unsigned u = 0x10000u + (((unsigned)cp - 0xD800u) << 10) + ((unsigned)lo - 0xDC00u);
                    out[n++] = (char)(0xF0 | (u >> 18));
                    out[n++] = (char)(0x80 | ((u >> 12) & 0x3F));
                    out[n++] = (char)(0x80 | ((u >> 6) & 0x3F));
                    out[n++] = (char)(0x80 | (u & 0x3F));
                    s += 11;
                    if (json_src_mark(d, n, 12 - 4)) goto oom;
                } else {
                    out[n++] = (char)0xEF, out[n++] = (char)0xBF, out[n++] = (char)0xBD;
                    s += 5;
                    if (json_src_mark(d, n, 6 - 3)) goto oom;
                }
                continue;
            }
            if (d->buf) d->buf[n++] = *s;
            s++; /* the escaped character, so \" does not end the string */
        }
        if (d->buf) d->buf[n++] = *s;
    }
    if (d->buf) {
        d->buf[n] = 0;
        d->src = d->buf;
        d->len = n;
        return;
    }
oom:
    json_src_free(d);
    d->src = text;
    d->len = len;
}

/* The offset in the original text of offset off in d->src. */
static size_t json_src_orig(const json_src_t *d, size_t off)
{
    size_t lo = 0, hi = d->n; /* the replacements ending at or before off */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (d->map[2 * mid] <= off) lo = mid + 1;
        else hi = mid;
    }
    return off + (lo ? d->map[2 * lo - 1] : 0);
}

/* Parses d->src whole: the value, or NULL with err filled (offsets into
 * text, the original). */
static struct json_object *json_parse_src(const json_src_t *d, const char *text, size_t len,
                                          int flags, ct_json_error_t *err)
{
    struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    if (!tok) {
        json_fail(err, text, 0, "out of memory");
        return NULL;
    }
    size_t end = 0;
    struct json_object *v = json_parse_at(tok, d->src, d->len, 0, &end, err);
    json_tokener_free(tok);
    if (v || (err && !err->msg[0])) { /* a value, or JSON null */
        while (end < d->len && json_ws(d->src[end])) end++;
        if (end >= d->len) {
            if (json_check_strings(text, len, flags, err) == 0) return v;
            json_object_put(v);
            return NULL; /* that error is about text already */
        }
        json_fail(err, d->src, end, "unexpected text after the value");
        json_object_put(v);
    }
    if (err && err->msg[0] && d->src != text) {
        err->offset = json_src_orig(d, err->offset);
        ct_json_error_locate(err, text);
    }
    return NULL;
}

struct json_object *ct_json_parse(const char *text, size_t len, int flags, ct_json_error_t *err)
{
    if (err) memset(err, 0, sizeof *err);
    if (len > (size_t)INT32_MAX) {
        json_fail(err, text, 0, "larger than 2 GiB");
        return NULL;
    }
    json_src_t d;
    json_src_init(&d, text, len);
    struct json_object *v = json_parse_src(&d, text, len, flags, err);
    json_src_free(&d);
    return v;
}

int ct_json_iter_init(ct_json_iter_t *it, const char *text, size_t len, int flags,
                      ct_json_error_t *err)
{
    memset(it, 0, sizeof *it);
    if (err) memset(err, 0, sizeof *err);
    if (len > (size_t)INT32_MAX) {
        json_fail(err, text, 0, "larger than 2 GiB");
        return -1;
    }
    json_src_t d;
    json_src_init(&d, text, len);
    struct json_object *root = json_parse_src(&d, text, len, flags, err);
    if (!json_object_is_type(root, json_type_object)) {
        if (root || !err || !err->msg[0]) {
            size_t off = 0;
            while (off < len && json_ws(text[off])) off++;
            json_fail(err, text, off, "expected an object");
        }
        json_object_put(root);
        json_src_free(&d);
        return -1;
    }
    json_object_put(root);
    it->tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    if (!it->tok) {
        json_fail(err, text, 0, "out of memory");
        json_src_free(&d);
        return -1;
    }
    /* the members are read from what json-c parsed; their offsets are
     * mapped back to text */
    it->text = d.src;
    it->len = d.len;
    it->decoded = d.buf;
    it->map = d.map;
    it->n_map = d.n;
    while (json_ws(it->text[it->pos])) it->pos++;
    it->pos++; /* '{' */
    return 0;
}

/* The offset in the caller's text of position pos of it->text. */
static size_t iter_orig(const ct_json_iter_t *it, size_t pos)
{
    json_src_t d = {.src = it->text, .len = it->len, .map = it->map, .n = it->n_map};
    return json_src_orig(&d, pos);
}

static void iter_skip(ct_json_iter_t *it, char sep)
{
    while (it->pos < it->len && json_ws(it->text[it->pos])) it->pos++;
    if (it->pos < it->len && it->text[it->pos] == sep) it->pos++;
    while (it->pos < it->len && json_ws(it->text[it->pos])) it->pos++;
}

int ct_json_iter_next(ct_json_iter_t *it, const char **key_p, size_t *key_len_p,
                      struct json_object **value_p)
{
    json_object_put(it->key);
    json_object_put(it->value);
    it->key = it->value = NULL;
    /* The text was checked whole, so only its shape is followed here. */
    iter_skip(it, ',');
    if (it->pos >= it->len || it->text[it->pos] == '}') return 0;
    size_t end;
    it->key_offset = iter_orig(it, it->pos);
    it->key = json_parse_at(it->tok, it->text + it->pos, it->len - it->pos, 1, &end, NULL);
    if (!it->key) return 0; /* out of memory */
    it->pos += end;
    iter_skip(it, ':');
    it->value_offset = iter_orig(it, it->pos);
    ct_json_error_t e;
    memset(&e, 0, sizeof e);
    it->value = json_parse_at(it->tok, it->text + it->pos, it->len - it->pos, 1, &end, &e);
    if (!it->value && e.msg[0]) return 0; /* out of memory */
    it->pos += end;
    *key_p = json_object_get_string(it->key);
    *key_len_p = (size_t)json_object_get_string_len(it->key);
    *value_p = it->value;
    return 1;
}

void ct_json_iter_free(ct_json_iter_t *it)
{
    json_object_put(it->key);
    json_object_put(it->value);
    if (it->tok) json_tokener_free(it->tok);
    free(it->decoded);
    free(it->map);
    memset(it, 0, sizeof *it);
}

int ct_json_get_int64(struct json_object *v, int64_t *out)
{
    if (!json_object_is_type(v, json_type_int)) return -1;
    /* json-c keeps integers above INT64_MAX as uint64, and get_int64
     * saturates them */
    int64_t x = json_object_get_int64(v);
    if (x == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX) return 1;
    *out = x;
    return 0;
}
