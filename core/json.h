/* JSON: one reader for the whole tree, on json-c (Debian's libjson-c).
 *
 * Values are json-c objects (struct json_object, <json-c/json.h>): read them
 * with json-c's getters (json_object_object_get_ex, json_object_get_string,
 * json_object_get_string_len, ...) and free a root with json_object_put.
 * This header adds what every caller needs around them: one policy for what
 * is accepted, errors with a byte offset, line and column, exact integers,
 * and the members of an object in file order with duplicates kept (json-c's
 * objects keep only the last of a repeated key, as Python's json does).
 *
 * Accepted: RFC 8259, plus NaN, Infinity and -Infinity (as Python's json
 * writes them). Rejected: trailing commas, comments, single quotes, control
 * characters inside strings, anything after the value but whitespace.
 * Strings may hold NULs (use json_object_get_string_len). A lone UTF-16
 * surrogate escape (\ud800 without its pair) becomes U+FFFD, as most JSON
 * tools do for text; with CT_JSON_STRICT_SURROGATES it is an error, as in
 * Hugging Face tokenizers (serde_json) for a vocabulary.
 * Left out: writing JSON (the writers print it) and streaming huge files.
 * Nothing here logs: callers name the file and what it is for. Thread-safe
 * (no shared state). */
#ifndef CT_CORE_JSON_H
#define CT_CORE_JSON_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { CT_JSON_STRICT_SURROGATES = 1 };

typedef struct {
    size_t offset;  /* byte offset of the error in the text */
    int line, col;  /* 1-based; col counts bytes */
    char msg[96];   /* lowercase cause, e.g. "expected ':'" */
} ct_json_error_t;

/* Parses text[0..len) as one JSON value. Returns a new reference (free with
 * json_object_put), or NULL with *err filled (err may be NULL). A JSON null
 * parses to NULL too: callers that accept it check err->msg[0] == 0. */
struct json_object *ct_json_parse(const char *text, size_t len, int flags, ct_json_error_t *err);

/* The members of the JSON object in text, in file order, repeated keys
 * included. Init parses and checks the whole text first (so errors come
 * before any member); then each next gives one member. */
typedef struct {
    const char *text; /* what json-c reads: the caller's text, or `decoded` */
    size_t len, pos;
    struct json_tokener *tok;
    struct json_object *key, *value; /* the current member */
    size_t key_offset, value_offset; /* where they start in the caller's text */
    char *decoded;                   /* the text with surrogate escapes decoded, or NULL */
    size_t *map, n_map;              /* decoded offsets back to the caller's (core/json.c) */
} ct_json_iter_t;

/* 0, or -1 with *err filled (not JSON, or not an object: "expected an
 * object"). On success the caller calls ct_json_iter_free. */
int ct_json_iter_init(ct_json_iter_t *it, const char *text, size_t len, int flags,
                      ct_json_error_t *err);
/* 1 and the next member (key bytes and length, value; valid until the next
 * call or free; the value may be NULL for a JSON null), or 0 at the end. */
int ct_json_iter_next(ct_json_iter_t *it, const char **key_p, size_t *key_len_p,
                      struct json_object **value_p);
void ct_json_iter_free(ct_json_iter_t *it);

/* An integer value, exactly: 0 and *out; -1 when v is not an integer (a
 * fraction, an exponent such as 1e3, a string, ...); 1 when it is an integer
 * outside int64. */
int ct_json_get_int64(struct json_object *v, int64_t *out);

/* Fills err's line and column from its offset in text. */
void ct_json_error_locate(ct_json_error_t *err, const char *text);

#ifdef __cplusplus
}
#endif

#endif
