/* The pre-tokenizer regex engine (data/bpe_regex.c): GPT-2's pattern run by
 * the engine splits exactly like the hand-written GPT-2 pre-tokenizer on a
 * mixed text and around every code point; splits that Hugging Face
 * tokenizers (Oniguruma) was seen to make; the constructs outside the
 * subset are refused with their offset; invalid UTF-8 backtracks sanely. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "data/bpe_impl.h"
#include "test_util.h"

#define GPT2_PAT "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define LLAMA3_PAT                                                                              \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

static ct__re_t *compile(const char *pat)
{
    ct__re_t *re = NULL;
    ct__re_error_t err;
    ct_status_t st = ct__re_compile(pat, strlen(pat), &re, &err);
    CHECK_MSG(st == CT_OK, "compile %s: %s at %zu", pat, err.msg, err.offset);
    return re;
}

/* Hugging Face's Split(Isolated) over Oniguruma's find_iter: matches and
 * the gaps between them, an empty match right after a match skipped, empty
 * pieces dropped; pieces joined by '|'. */
static char *split(const char *pat, const char *text, size_t n)
{
    ct__re_t *re = compile(pat);
    static char out[1 << 16];
    size_t o = 0, prev = 0, from = 0;
    int have_last = 0;
    size_t last_end = 0;
    if (!re) return strcpy(out, "<no pattern>");
#define PIECE(a, b)                                                                            \
    do {                                                                                       \
        if ((b) > (a)) {                                                                       \
            if (o) out[o++] = '|';                                                             \
            memcpy(out + o, text + (a), (b) - (a));                                            \
            o += (b) - (a);                                                                    \
        }                                                                                      \
    } while (0)
    while (from <= n) {
        size_t s, e;
        int r = ct__re_search(re, (const uint8_t *)text, n, from, &s, &e);
        CHECK(r >= 0);
        if (r <= 0) break;
        if (s == e && have_last && last_end == e) {
            /* Oniguruma's iterator: step over one character and search again. */
            if (from >= n) break;
            from++;
            while (from < n && ((uint8_t)text[from] & 0xC0) == 0x80) from++;
            continue;
        }
        PIECE(prev, s);
        PIECE(s, e);
        prev = e;
        from = e;
        have_last = 1;
        last_end = e;
    }
    PIECE(prev, n);
    out[o] = 0;
#undef PIECE
    ct__re_free(re);
    return out;
}

static void check_split(const char *pat, const char *text, const char *want)
{
    const char *got = split(pat, text, strlen(text));
    CHECK_MSG(strcmp(got, want) == 0, "/%s/ on \"%s\": got \"%s\", want \"%s\"", pat, text, got,
              want);
}

static void check_refused(const char *pat, ct_status_t want, size_t at, const char *words)
{
    ct__re_t *re = NULL;
    ct__re_error_t err;
    ct_status_t st = ct__re_compile(pat, strlen(pat), &re, &err);
    CHECK_MSG(st == want && err.offset == at && strstr(err.msg, words),
              "/%s/: %s at %zu \"%s\" (want %s at %zu, \"%s\")", pat, ct_status_name(st),
              err.offset, err.msg, ct_status_name(want), at, words);
    ct__re_free(re);
}

/* GPT-2's pattern through the engine against ct__bpe_pretok_next. */
static void check_gpt2_equivalence(const char *text, size_t n, const char *what)
{
    ct__re_t *re = compile(GPT2_PAT);
    if (!re) return;
    size_t pos = 0, bad = (size_t)-1;
    while (pos < n) {
        size_t want = ct__bpe_pretok_next((const uint8_t *)text, n, pos), end;
        int r = ct__re_match(re, (const uint8_t *)text, n, pos, &end);
        if (r != 1 || end != want) {
            bad = pos;
            break;
        }
        pos = want;
    }
    CHECK_MSG(bad == (size_t)-1, "%s: GPT-2's pattern differs from the GPT-2 pre-tokenizer at byte "
              "%zu", what, bad);
    ct__re_free(re);
}

static char *read_fixture(const char *name, size_t *n_p)
{
    const char *src = getenv("CT_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/%s", src ? src : ".", name);
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    CHECK(fread(buf, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    buf[len] = 0;
    *n_p = (size_t)len;
    return buf;
}

int main(void)
{
    /* Splits seen from Hugging Face tokenizers 0.23 (Split(Regex(p), "isolated")). */
    check_split("(?i:'s)", "a'\xc5\xbf" "b'Sc'sd", "a|'\xc5\xbf|b|'S|c|'s|d");
    check_split("(?i:k)", "a\xe2\x84\xaa" "b", "a|\xe2\x84\xaa|b");
    check_split("x*", "abxxc", "a|b|xx|c");
    check_split("\\d+", "a\xd9\xa1\xd9\xa2" "3b", "a|\xd9\xa1\xd9\xa2" "3|b");
    check_split(".", "a\nb", "a|\n|b");
    check_split("a{,2}", "aaab", "aa|a|b");
    check_split("a{2}+", "aaaaab", "aaaa|ab");
    check_split("(?i)\\p{Lu}+", "aBc", "a|B|c");
    check_split(LLAMA3_PAT, "I'M here, 12345 times!!\n\n  ok  ",
                "I|'M| here|,| |123|45| times|!!\n\n| | ok|  ");
    check_split(LLAMA3_PAT, "don't\r\n\tx", "don|'t|\r\n|\tx");
    check_split("a+?b|c", "aaabc", "aaab|c");
    check_split("(?:ab)*c|.", "ababcabx", "ababc|a|b|x");
    check_split("(?=b)|a", "ab", "a|b");
    check_split("[\\p{L}\\d-]+", "ab-1 c", "ab-1| |c");
    check_split("\\x41\\u0042\\x{43}+", "ABCCCD", "ABCCC|D");
    check_split("[^\\x00-\\x7f]+", "ab\xc3\xa9\xe4\xb8\xad" "c", "ab|\xc3\xa9\xe4\xb8\xad|c");

    /* Invalid UTF-8: each bad byte is one character of category Cn, and a
     * run gives characters back one at a time however they were decoded. */
    check_split(".+.", "a\xff\xe4\xb8\xad\x80\xc3", "a\xff\xe4\xb8\xad\x80\xc3");
    check_split("\\P{L}+\\p{Cn}", "\xe4\xb8\x80\xc3\xa9!\xff" "b", "\xe4\xb8\x80\xc3\xa9|!\xff|b");
    check_split(".*\\p{Cn}", "\xe4\xb8\xad\x80\xe4\xb8\xad", "\xe4\xb8\xad\x80|\xe4\xb8\xad");

    /* Refused, with the offset. */
    check_refused("a(?<=b)", CT_ERR_UNSUPPORTED, 1, "lookbehind");
    check_refused("(?>a)", CT_ERR_UNSUPPORTED, 0, "atomic");
    check_refused("a++", CT_ERR_UNSUPPORTED, 1, "possessive");
    check_refused("\\w+", CT_ERR_UNSUPPORTED, 0, "\\w");
    check_refused("^a", CT_ERR_UNSUPPORTED, 0, "anchor");
    check_refused("a$", CT_ERR_UNSUPPORTED, 1, "anchor");
    check_refused("(a)\\1", CT_ERR_UNSUPPORTED, 3, "\\1");
    check_refused("(?i:[a-z])", CT_ERR_UNSUPPORTED, 4, "(?i)");
    check_refused("(?i:'ss)", CT_ERR_UNSUPPORTED, 6, "\"ss\"");
    check_refused("(?i:\xc3\xa9)", CT_ERR_UNSUPPORTED, 4, "non-ASCII");
    check_refused("(?:a?)*", CT_ERR_UNSUPPORTED, 6, "empty string");
    check_refused("\\p{Han}", CT_ERR_UNSUPPORTED, 0, "\\p{Han}");
    check_refused("[[:alpha:]]", CT_ERR_UNSUPPORTED, 1, "'['");
    check_refused("[a&&b]", CT_ERR_UNSUPPORTED, 2, "&&");
    check_refused("(?m:a)", CT_ERR_UNSUPPORTED, 2, "flag 'm'");
    check_refused("a{1001}", CT_ERR_UNSUPPORTED, 1, "over 1000");
    check_refused("(ab", CT_ERR_CORRUPT, 0, "unterminated");
    check_refused("ab)", CT_ERR_CORRUPT, 2, "unmatched");
    check_refused("[ab", CT_ERR_CORRUPT, 0, "unterminated");
    check_refused("*a", CT_ERR_CORRUPT, 0, "nothing to repeat");
    check_refused("a{3,2}", CT_ERR_CORRUPT, 1, "below");
    check_refused("[z-a]", CT_ERR_CORRUPT, 1, "out of order");
    check_refused("a\xff", CT_ERR_CORRUPT, 1, "UTF-8");
    check_refused("a\\", CT_ERR_CORRUPT, 1, "backslash");

    /* GPT-2's pattern = the GPT-2 pre-tokenizer: on the mixed fixture, and
     * around every code point ("a" c "1\n" splits differently per class). */
    size_t n;
    char *mixed = read_fixture("gpt2/mixed.txt", &n);
    if (mixed) check_gpt2_equivalence(mixed, n, "gpt2/mixed.txt");
    free(mixed);
    char *all = malloc(0x110000 * 8);
    n = 0;
    for (uint32_t cp = 0x80; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        all[n++] = 'a';
        n += ct_utf8_encode(cp, all + n);
        all[n++] = '1';
        all[n++] = cp % 3 ? ' ' : '\n';
    }
    check_gpt2_equivalence(all, n, "every code point");
    free(all);
    return ct_test_finish("test_bpe_regex");
}
