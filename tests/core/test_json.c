/* core/json: what is accepted and rejected (with offset, line, column and
 * cause), lone surrogates (U+FFFD by default, an error when strict), NULs in
 * strings, exact integers, and the member iterator keeping repeated keys in
 * file order. */
#include <stdint.h>
#include <string.h>

#include "core/json.h"
#include "test_util.h"

static struct json_object *parse(const char *text, int flags, ct_json_error_t *err)
{
    return ct_json_parse(text, strlen(text), flags, err);
}

/* The string value of text, which must parse. */
static int string_is(const char *text, int flags, const char *want, size_t want_len)
{
    struct json_object *v = parse(text, flags, NULL);
    int ok = json_object_is_type(v, json_type_string) &&
             (size_t)json_object_get_string_len(v) == want_len &&
             memcmp(json_object_get_string(v), want, want_len) == 0;
    json_object_put(v);
    return ok;
}

static void expect_error(const char *text, int flags, size_t offset, int line, int col,
                         const char *msg)
{
    ct_json_error_t err;
    struct json_object *v = parse(text, flags, &err);
    CHECK_MSG(v == NULL, "accepted: %s", text);
    CHECK_MSG(err.offset == offset && err.line == line && err.col == col &&
                  strstr(err.msg, msg) != NULL,
              "%s: got offset %zu %d:%d \"%s\", want %zu %d:%d \"%s\"", text, err.offset,
              err.line, err.col, err.msg, offset, line, col, msg);
    json_object_put(v);
}

static void test_accept_reject(void)
{
    struct json_object *v = parse(" {\"a\": [1, 2.5, \"x\", true, null, {}]}\n", 0, NULL);
    CHECK(json_object_is_type(v, json_type_object));
    json_object_put(v);
    v = parse("42", 0, NULL); /* a number at the very end of the text */
    CHECK(json_object_is_type(v, json_type_int) && json_object_get_int64(v) == 42);
    json_object_put(v);
    v = parse("[NaN, Infinity, -Infinity]", 0, NULL); /* as Python's json writes them */
    CHECK(json_object_is_type(v, json_type_array) && json_object_array_length(v) == 3);
    json_object_put(v);

    expect_error("{\"a\" 1}", 0, 5, 1, 6, "expected ':'");
    expect_error("{\"a\":1,\n \"b\":}", 0, 13, 2, 6, "unexpected character");
    expect_error("[1, 2,]", 0, 6, 1, 7, "unexpected character");  /* trailing comma */
    expect_error("{'a': 1}", 0, 1, 1, 2, "not '");
    expect_error("[\"x\", 'y']", 0, 6, 1, 7, ""); /* rejected by json-c itself */
    expect_error("{\"a\": 1} x", 0, 9, 1, 10, "unexpected character"); /* text after the value */
    expect_error("{\"a\": 1", 0, 7, 1, 8, "unexpected end of input");
    expect_error("\"a\\qb\"", 0, 2, 1, 3, "unknown escape '\\q'");
    expect_error("\"a\tb\"", 0, 2, 1, 3, "control character in a string");
    expect_error("", 0, 0, 1, 1, "unexpected end of input");
}

static void test_strings(void)
{
    /* escapes and pairs */
    CHECK(string_is("\"\\u00e9\\ud83d\\ude00\\n\"", 0, "\xc3\xa9\xf0\x9f\x98\x80\n", 7));
    CHECK(string_is("\"\\ud83d\\ude00\"", CT_JSON_STRICT_SURROGATES, "\xf0\x9f\x98\x80", 4));
    /* NULs are kept, with the length */
    CHECK(string_is("\"x\\u0000y\"", 0, "x\0y", 3));
    /* lone surrogates: U+FFFD by default */
    CHECK(string_is("\"a\\ud800b\"", 0, "a\xef\xbf\xbd" "b", 5));
    CHECK(string_is("\"a\\udc00\"", 0, "a\xef\xbf\xbd", 4));
    CHECK(string_is("\"\\ud800\\u0041\"", 0, "\xef\xbf\xbd" "A", 4));
    /* ... and errors when strict, pointing at the escape */
    expect_error("[\"ab\\ud800\"]", CT_JSON_STRICT_SURROGATES, 4, 1, 5, "lone high surrogate");
    expect_error("[\"\\ud800\\u0041\"]", CT_JSON_STRICT_SURROGATES, 2, 1, 3, "lone high surrogate");
    expect_error("{\"k\":\n\"\\udfff\"}", CT_JSON_STRICT_SURROGATES, 7, 2, 2, "lone low surrogate");
    /* an escaped backslash before "ud800" is not an escape */
    CHECK(string_is("\"\\\\ud800\"", CT_JSON_STRICT_SURROGATES, "\\ud800", 6));
}

static int64_t int_of(const char *text, int *rc_p)
{
    struct json_object *v = parse(text, 0, NULL);
    int64_t x = -12345;
    *rc_p = v ? ct_json_get_int64(v, &x) : -2;
    json_object_put(v);
    return x;
}

static void test_integers(void)
{
    int rc;
    CHECK(int_of("0", &rc) == 0 && rc == 0);
    CHECK(int_of("-7", &rc) == -7 && rc == 0);
    /* above 2^53 (where a double loses integers): exact */
    CHECK(int_of("9007199254740993", &rc) == 9007199254740993LL && rc == 0);
    CHECK(int_of("9223372036854775807", &rc) == INT64_MAX && rc == 0);
    CHECK(int_of("-9223372036854775808", &rc) == INT64_MIN && rc == 0);
    int_of("9223372036854775808", &rc);
    CHECK_MSG(rc == 1, "2^63: rc %d", rc);
    int_of("18446744073709551616", &rc); /* beyond uint64 too */
    CHECK_MSG(rc != 0, "2^64: rc %d", rc);
    int_of("1.0", &rc);
    CHECK(rc == -1);
    int_of("1e3", &rc);
    CHECK(rc == -1);
    int_of("\"5\"", &rc);
    CHECK(rc == -1);
}

static void test_iter(void)
{
    const char *text = "{\"b\": 2, \"a\": [1], \"b\": 3, \"\\u0062\": null, \"n\\u0000\": {}}";
    ct_json_iter_t it;
    ct_json_error_t err;
    CHECK(ct_json_iter_init(&it, text, strlen(text), 0, &err) == 0);
    const char *want[] = {"b", "a", "b", "b", "n\0"};
    size_t want_len[] = {1, 1, 1, 1, 2};
    const char *key;
    size_t klen;
    struct json_object *v;
    int n = 0;
    while (ct_json_iter_next(&it, &key, &klen, &v)) {
        if (n < 5) CHECK_MSG(klen == want_len[n] && memcmp(key, want[n], klen) == 0, "key %d", n);
        if (n == 0) CHECK(json_object_get_int64(v) == 2 && text[it.value_offset] == '2');
        if (n == 1) CHECK(json_object_is_type(v, json_type_array) && text[it.key_offset] == '"');
        if (n == 2) CHECK(json_object_get_int64(v) == 3);
        if (n == 3) CHECK(v == NULL);
        n++;
    }
    CHECK_MSG(n == 5, "%d members, want 5", n);
    ct_json_iter_free(&it);

    CHECK(ct_json_iter_init(&it, " {} ", 4, 0, &err) == 0);
    CHECK(ct_json_iter_next(&it, &key, &klen, &v) == 0);
    ct_json_iter_free(&it);

    /* errors come from init, before any member */
    CHECK(ct_json_iter_init(&it, "[1]", 3, 0, &err) == -1 && strcmp(err.msg, "expected an object") == 0);
    CHECK(ct_json_iter_init(&it, "{\"a\": 1, \"b\" 2}", 15, 0, &err) == -1 &&
          strcmp(err.msg, "expected ':'") == 0 && err.offset == 13);
    CHECK(ct_json_iter_init(&it, "{\"\\ud800\": 1}", 13, CT_JSON_STRICT_SURROGATES, &err) == -1 &&
          strcmp(err.msg, "lone high surrogate") == 0);
}

/* Three escaped surrogate pairs in a row: json-c 0.16 alone decodes the
 * third as U+FFFD (found by bpe_gpt2_reference on CJK extension text). */
static void test_surrogate_runs(void)
{
    const char *text = "{\"text\": \"a\\ud841\\ude26\\ud86c\\udf42\\ud876\\ude6e\\\"\\ud800b\"}";
    ct_json_error_t err;
    struct json_object *doc = ct_json_parse(text, strlen(text), 0, &err), *t = NULL;
    CHECK(doc != NULL);
    if (!doc) return;
    CHECK(json_object_object_get_ex(doc, "text", &t));
    const char *want = "a\xf0\xa0\x98\xa6\xf0\xab\x8d\x82\xf0\xad\xa9\xae\"\xef\xbf\xbd" "b";
    CHECK(t && json_object_get_string_len(t) == (int)strlen(want));
    CHECK(t && memcmp(json_object_get_string(t), want, strlen(want)) == 0);
    json_object_put(doc);

    /* offsets still point into the caller's text: an error after the
     * pairs, and the iterator's positions */
    const char *bad = "{\"a\": \"\\ud841\\ude26\\ud86c\\udf42\\ud876\\ude6e\", \"b\" 1}";
    const size_t at = strlen("{\"a\": \"\\ud841\\ude26\\ud86c\\udf42\\ud876\\ude6e\", \"b\" ");
    expect_error(bad, 0, at, 1, (int)at + 1, "expected ':'");
    const char *obj = "{\"\\ud841\\ude26\\ud86c\\udf42\\ud876\\ude6e\": 1, \"k\": 22}";
    ct_json_iter_t it;
    CHECK(ct_json_iter_init(&it, obj, strlen(obj), CT_JSON_STRICT_SURROGATES, &err) == 0);
    const char *key;
    size_t klen;
    struct json_object *v;
    int members = 0;
    while (ct_json_iter_next(&it, &key, &klen, &v)) {
        if (members == 0) CHECK(klen == 12 && obj[it.value_offset] == '1');
        if (members == 1)
            CHECK(klen == 1 && *key == 'k' && obj[it.key_offset] == '"' &&
                  obj[it.value_offset] == '2');
        members++;
    }
    CHECK(members == 2);
    ct_json_iter_free(&it);
}

int main(void)
{
    test_accept_reject();
    test_strings();
    test_integers();
    test_iter();
    test_surrogate_runs();
    return ct_test_finish("test_json");
}
