/* GPT-2 compatibility of the byte-level BPE: the byte alphabet of
 * vocab.json, the exact Unicode classes of the pre-tokenizer, the version 1
 * pre-tokenizer kept for old files, loading and writing vocab.json +
 * merges.txt and tiktoken files (round trips, strict errors), the shard
 * width chosen from the vocabulary size, and ids equal to Hugging Face
 * tokenizers' on tests/data/gpt2/mixed.txt (fixtures written by
 * tests/data/bpe_gpt2_reference.py --make-fixtures). With CT_GPT2_VOCAB_DIR
 * set to a directory of GPT-2's own files, GPT-2's ids are checked too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "data/bpe_impl.h"
#include "data/data.h"
#include "test_util.h"

static char g_src[4096]; /* the source tree, for the fixtures */

static char *slurp(const char *path, size_t *len_p)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t k = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[k] = 0;
    *len_p = k;
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* Reads whitespace-separated integers. */
static int32_t *read_ints(const char *path, size_t *n_p)
{
    size_t len;
    char *s = slurp(path, &len);
    if (!s) return NULL;
    size_t n = 0, cap = 1024;
    int32_t *v = malloc(cap * sizeof *v);
    for (char *p = s, *end; *p; p = end) {
        long x = strtol(p, &end, 10);
        if (end == p) break;
        if (n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        v[n++] = (int32_t)x;
    }
    free(s);
    *n_p = n;
    return v;
}

static size_t encode_all(ct_bpe_t *bpe, const char *text, size_t len, int32_t **ids)
{
    size_t n = 0, cap = 0;
    *ids = NULL;
    ct_status_t st = ct_bpe_encode(bpe, text, len, ids, &n, &cap);
    CHECK(st == CT_OK);
    return n;
}

static int same_encoding(ct_bpe_t *a, ct_bpe_t *b, const char *text, size_t len)
{
    int32_t *ia, *ib;
    size_t na = encode_all(a, text, len, &ia), nb = encode_all(b, text, len, &ib);
    int ok = na == nb && memcmp(ia, ib, na * sizeof *ia) == 0;
    free(ia);
    free(ib);
    return ok;
}

/* ---- the byte alphabet and the classes ------------------------------------------------ */

static void test_alphabet(void)
{
    CHECK(ct__bpe_byte_to_unicode('!') == '!' && ct__bpe_byte_to_unicode('~') == '~');
    CHECK(ct__bpe_byte_to_unicode(0) == 0x100);
    CHECK(ct__bpe_byte_to_unicode(' ') == 0x120);  /* "Ġ" */
    CHECK(ct__bpe_byte_to_unicode('\n') == 0x10A); /* "Ċ" */
    CHECK(ct__bpe_byte_to_unicode(0x7F) == 0x121 && ct__bpe_byte_to_unicode(0xA0) == 0x142);
    CHECK(ct__bpe_byte_to_unicode(0xAD) == 0x143 && ct__bpe_byte_to_unicode(0xFF) == 0xFF);
    int seen[0x144] = {0}, bad = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = ct__bpe_byte_to_unicode((uint8_t)b);
        if (cp >= 0x144 || seen[cp]++ || ct__bpe_unicode_to_byte(cp) != b) bad++;
    }
    CHECK_MSG(bad == 0, "%d bytes map badly", bad);
    CHECK(ct__bpe_unicode_to_byte(' ') == -1 && ct__bpe_unicode_to_byte(0x144) == -1 &&
          ct__bpe_unicode_to_byte(0xAD) == -1 && ct__bpe_unicode_to_byte(0x263A) == -1);
}

static void test_classes(void)
{
    enum { O = CT__BPE_CL_OTHER, L = CT__BPE_CL_LETTER, N = CT__BPE_CL_NUMBER,
           S = CT__BPE_CL_SPACE };
    static const struct {
        uint32_t cp;
        int cl;
    } cases[] = {
        {'a', L}, {'Z', L}, {'5', N}, {' ', S}, {'\t', S}, {'\v', S}, {'\f', S}, {'\r', S},
        {0x1C, O}, {0x1F, O}, {'_', O}, {'\'', O}, {0x7F, O}, {0x85, S}, {0xA0, S},
        {0xAA, L}, {0xAD, O}, {0xB2, N}, {0xB5, L}, {0xBD, N}, {0xD7, O}, {0xE9, L},
        {0x0301, O},  /* combining acute: Mn */
        {0x0660, N},  /* Arabic-Indic zero */
        {0x0903, O},  /* Devanagari sign visarga: Mc */
        {0x1680, S}, {0x180E, O}, {0x2000, S}, {0x200A, S}, {0x200B, O}, {0x2028, S},
        {0x2029, S}, {0x202F, S}, {0x205F, S}, {0x3000, S}, {0xFEFF, O},
        {0x2160, N},  /* Roman numeral one: Nl */
        {0x2460, N},  /* circled one: No */
        {0x3007, N},  /* ideographic zero: Nl */
        {0x4E00, L}, {0xAC00, L}, {0xFF10, N}, {0xFF21, L}, {0xFF01, O},
        {0x1D400, L}, /* mathematical bold A */
        {0x1F600, O}, {0x1F3FD, O}, {0xE000, O}, {0xFFFD, O},
        {0x2A6DE, L}, /* CJK Ext B, Unicode 14.0 */
        {0x31350, L}, /* CJK Ext H, 15.0 */
        {0x2EBF0, L}, /* CJK Ext I, 15.1 */
        {0x1C89, L},  /* Cyrillic TJE, 16.0 */
        {0x323B0, O}, /* CJK Ext J, 17.0: not yet, like tiktoken and tokenizers */
        {0xD800, O}, {0x10FFFF, O}, {0x110000, O},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(ct__bpe_cp_class(cases[i].cp) == cases[i].cl, "U+%04X: class %d, want %d",
                  cases[i].cp, ct__bpe_cp_class(cases[i].cp), cases[i].cl);
}

/* ---- pre-tokenizers ------------------------------------------------------------------------ */

static void check_split(const ct_bpe_t *bpe, const char *text, const char *expect)
{
    char got[1024] = "";
    size_t n = strlen(text), pos = 0, g = 0;
    while (pos < n) {
        size_t end = ct_bpe_pretok_next(bpe, text, n, pos);
        if (end <= pos || end > n) {
            CHECK_MSG(0, "pre-tokenizer stuck at %zu in \"%s\"", pos, text);
            return;
        }
        if (pos > 0) got[g++] = '|';
        memcpy(got + g, text + pos, end - pos);
        g += end - pos;
        pos = end;
    }
    got[g] = 0;
    CHECK_MSG(strcmp(got, expect) == 0, "pre-tokens of \"%s\": got \"%s\", want \"%s\"", text, got,
              expect);
}

static void test_pretok(void)
{
    /* Marks are not letters: they split words, as in GPT-2. */
    check_split(NULL, "cafe\xcc\x81 ok", "cafe|\xcc\x81| ok");
    check_split(NULL, "\xe0\xa4\xb9\xe0\xa4\xbf\xe0\xa4\xa8\xe0\xa5\x8d\xe0\xa4\xa6\xe0\xa5\x80",
                "\xe0\xa4\xb9|\xe0\xa4\xbf|\xe0\xa4\xa8|\xe0\xa5\x8d|\xe0\xa4\xa6|\xe0\xa5\x80");
    /* Numbers of every kind; superscripts are numbers, not letters. */
    check_split(NULL, "x\xc2\xb2 \xd9\xa3\xd9\xa4 \xe2\x85\xab", "x|\xc2\xb2| \xd9\xa3\xd9\xa4| \xe2\x85\xab");
    /* U+001C..U+001F are not \s; U+0085 and U+3000 are. */
    check_split(NULL, "a \x1c\x1d b", "a| \x1c\x1d| b");
    check_split(NULL, "a\xc2\x85\xc2\x85" "b", "a|\xc2\x85|\xc2\x85|b");
    check_split(NULL, "\xe3\x80\x80\xe3\x80\x80x", "\xe3\x80\x80|\xe3\x80\x80|x");
    /* Zero-width space and BOM are "other", so they glue to punctuation. */
    check_split(NULL, "a\xe2\x80\x8b.b", "a|\xe2\x80\x8b.|b");
    /* Whitespace runs: all but the last before a word; all at the end. */
    check_split(NULL, "a \t \n  b   ", "a| \t \n | b|   ");
    check_split(NULL, " ", " ");
    check_split(NULL, "'s'S'll've''d", "'s|'|S|'ll|'ve|''|d");
    /* Invalid UTF-8: each bad byte is one "other" character. */
    check_split(NULL, "a\xed\xa0\x80z \xc0\xaf\xf4\x90\x80\x80!", "a|\xed\xa0\x80|z| \xc0\xaf\xf4\x90\x80\x80!");
    check_split(NULL, "ab\xe4\xbd", "ab|\xe4\xbd");

    /* Against the regex module on the mixed text (mixed.pretok holds the byte
     * lengths of its pre-tokens). */
    char path[4300];
    size_t len, np;
    snprintf(path, sizeof path, "%s/tests/data/gpt2/mixed.txt", g_src);
    char *text = slurp(path, &len);
    snprintf(path, sizeof path, "%s/tests/data/gpt2/mixed.pretok", g_src);
    int32_t *want = read_ints(path, &np);
    CHECK_MSG(text && want, "fixtures missing under %s/tests/data/gpt2", g_src);
    if (text && want) {
        size_t pos = 0, k = 0;
        int bad = 0;
        for (; pos < len && k < np; k++) {
            size_t end = ct_bpe_pretok_next(NULL, text, len, pos);
            if ((int32_t)(end - pos) != want[k]) {
                if (!bad++)
                    fprintf(stderr, "pre-token %zu at byte %zu: %zu bytes, want %d\n", k, pos,
                            end - pos, want[k]);
                end = pos + (size_t)want[k];
            }
            pos = end;
        }
        CHECK_MSG(bad == 0 && pos == len && k == np, "%d of %zu pre-tokens differ from the regex",
                  bad, np);
    }
    free(text);
    free(want);
}

static void test_v1_file(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/v1.bpe", dir);
    spit(path, "ctrain-bpe 1 258\n97 97\n");
    ct_bpe_t *v1 = NULL;
    CHECK(ct_bpe_load(path, &v1) == CT_OK);
    if (!v1) return;
    /* Arabic-Indic digits: letters to version 1, numbers to GPT-2. */
    check_split(v1, "a\xd9\xa3", "a\xd9\xa3");
    check_split(NULL, "a\xd9\xa3", "a|\xd9\xa3");
    /* A version 1 file is saved as version 1: its pre-tokenizer stays. */
    snprintf(path, sizeof path, "%s/v1_again.bpe", dir);
    CHECK(ct_bpe_save(v1, path) == CT_OK);
    size_t len;
    char *s = slurp(path, &len);
    CHECK(s && strcmp(s, "ctrain-bpe 1 258\n97 97\n") == 0);
    free(s);
    ct_bpe_free(v1);
}

/* ---- GPT-2 and tiktoken files ------------------------------------------------------------- */

/* The fixture vocabulary (trained by ctrain, 1000 tokens) in both formats
 * gives Hugging Face's ids on the mixed text. */
static void test_fixture_ids(void)
{
    char vj[4300], mt[4300], tk[4300], path[4300];
    snprintf(vj, sizeof vj, "%s/tests/data/gpt2/small/vocab.json", g_src);
    snprintf(mt, sizeof mt, "%s/tests/data/gpt2/small/merges.txt", g_src);
    snprintf(tk, sizeof tk, "%s/tests/data/gpt2/small.tiktoken", g_src);
    snprintf(path, sizeof path, "%s/tests/data/gpt2/mixed.txt", g_src);
    size_t len, nwant;
    char *text = slurp(path, &len);
    snprintf(path, sizeof path, "%s/tests/data/gpt2/mixed.small.ids", g_src);
    int32_t *want = read_ints(path, &nwant);
    ct_bpe_t *a = NULL, *b = NULL;
    CHECK(ct_bpe_load_gpt2(vj, mt, &a) == CT_OK);
    CHECK(ct_bpe_load(tk, &b) == CT_OK);
    if (!a || !b || !text || !want) goto out;
    CHECK(ct_bpe_vocab_size(a) == 1000 && ct_bpe_eot(a) == 999 && a->native);
    CHECK(ct_bpe_vocab_size(b) == 1000 && ct_bpe_eot(b) == 999 && b->native);
    for (ct_bpe_t *t = a; t; t = t == a ? b : NULL) {
        int32_t *ids;
        size_t n = encode_all(t, text, len, &ids);
        size_t k = 0;
        while (k < n && k < nwant && ids[k] == want[k]) k++;
        CHECK_MSG(n == nwant && k == n, "%s: %zu ids, want %zu; first difference at %zu",
                  t == a ? "vocab.json" : "tiktoken", n, nwant, k);
        size_t dl;
        char *d = ct_bpe_decode(t, ids, n, &dl);
        CHECK(d && dl == len && memcmp(d, text, len) == 0);
        free(d);
        free(ids);
    }
out:
    ct_bpe_free(a);
    ct_bpe_free(b);
    free(text);
    free(want);
}

static const char *k_corpus =
    "It's what they're saying: we've done it, I'm sure you'll agree he'd know. Don't   stop\n\n"
    "numbers 12345 and 2024-05-20, 3.14159; punctuation!!! (parens) [brackets] {braces}\n"
    "caf\xc3\xa9 na\xc3\xafve \xce\x9a\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1 "
    "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80\xf0\x9f\x91\x8d "
    "int main(void) {\n\treturn 0;\n}\n";

static void test_roundtrip(const char *dir)
{
    size_t base = strlen(k_corpus), len = 30 * base;
    char *text = malloc(len + 1);
    for (int i = 0; i < 30; i++) memcpy(text + i * base, k_corpus, base);
    text[len] = 0;
    ct_bpe_t *bpe = NULL, *g = NULL, *t = NULL;
    CHECK(ct_bpe_train((const char *const *)&text, &len, 1, 400, &bpe) == CT_OK);
    if (!bpe) goto out;
    char vj[4200], mt[4200], tk[4200], p1[4200], p2[4200];
    snprintf(vj, sizeof vj, "%s/vocab.json", dir);
    snprintf(mt, sizeof mt, "%s/merges.txt", dir);
    snprintf(tk, sizeof tk, "%s/t.tiktoken", dir);
    snprintf(p1, sizeof p1, "%s/a.bpe", dir);
    snprintf(p2, sizeof p2, "%s/b.bpe", dir);
    CHECK(ct_bpe_save_gpt2(bpe, vj, mt) == CT_OK);
    CHECK(ct_bpe_save_tiktoken(bpe, tk) == CT_OK);
    CHECK(ct_bpe_load(dir, &g) == CT_OK); /* a directory: vocab.json + merges.txt */
    CHECK(ct_bpe_load(tk, &t) == CT_OK);
    if (!g || !t) goto out;
    CHECK(g->native && t->native);
    CHECK(ct_bpe_vocab_size(g) == ct_bpe_vocab_size(bpe) && ct_bpe_eot(g) == ct_bpe_eot(bpe));
    int diff = 0;
    for (int id = 0; id < ct_bpe_vocab_size(bpe); id++) {
        int l1, l2, l3;
        const char *s1 = ct_bpe_token(bpe, id, &l1), *s2 = ct_bpe_token(g, id, &l2),
                   *s3 = ct_bpe_token(t, id, &l3);
        diff += l1 != l2 || l1 != l3 || memcmp(s1, s2, (size_t)l1) || memcmp(s1, s3, (size_t)l1);
    }
    CHECK_MSG(diff == 0, "%d tokens differ after the round trip", diff);
    CHECK(memcmp(bpe->merges, g->merges, sizeof(int32_t) * 2 * (size_t)bpe->n_merges) == 0);
    CHECK(memcmp(bpe->merges, t->merges, sizeof(int32_t) * 2 * (size_t)bpe->n_merges) == 0);
    CHECK(same_encoding(bpe, g, text, len) && same_encoding(bpe, t, text, len));
    /* Loaded back, a ctrain-layout tokenizer saves to the same .bpe file. */
    CHECK(ct_bpe_save(bpe, p1) == CT_OK && ct_bpe_save(t, p2) == CT_OK);
    size_t n1, n2;
    char *f1 = slurp(p1, &n1), *f2 = slurp(p2, &n2);
    CHECK(f1 && f2 && n1 == n2 && memcmp(f1, f2, n1) == 0);
    CHECK(f1 && strncmp(f1, "ctrain-bpe 2 ", 13) == 0);
    free(f1);
    free(f2);
out:
    ct_bpe_free(bpe);
    ct_bpe_free(g);
    ct_bpe_free(t);
    free(text);
}

/* A tokenizer whose merge order a tiktoken file cannot keep: "abc" is made
 * from "ab" + "c", but with the lower ranks "abc" splits as "a" + "bc". */
static void test_tiktoken_refused(const char *dir)
{
    int32_t merges[] = {'b', 'c', 'a', 'b', 257, 'c'};
    ct_bpe_t *bpe = NULL;
    int bad;
    CHECK(ct__bpe_new(merges, 3, &bpe, &bad) == CT_OK);
    if (!bpe) return;
    char path[4200], vj[4200], mt[4200];
    snprintf(path, sizeof path, "%s/refused.tiktoken", dir);
    ct_status_t st;
    CAPTURE_STDERR(st = ct_bpe_save_tiktoken(bpe, path));
    CHECK(st == CT_ERR_UNSUPPORTED);
    CHECK_CAPTURED("would load back as other parts");
    struct stat sb;
    CHECK(stat(path, &sb) != 0);
    /* GPT-2's format keeps the merges. */
    snprintf(vj, sizeof vj, "%s/r_vocab.json", dir);
    snprintf(mt, sizeof mt, "%s/r_merges.txt", dir);
    ct_bpe_t *g = NULL;
    CHECK(ct_bpe_save_gpt2(bpe, vj, mt) == CT_OK && ct_bpe_load_gpt2(vj, mt, &g) == CT_OK);
    if (g) CHECK(same_encoding(bpe, g, "abc abc xabcx", 13));
    ct_bpe_free(g);
    ct_bpe_free(bpe);
}

/* Writes a tiny GPT-2-format vocabulary (the 256 bytes, merges, extras)
 * with `vocab_extra` spliced into vocab.json and `merges` as merges.txt,
 * then expects loading to fail with `want_st` and `want_msg`. */
static void check_bad_gpt2(const char *dir, const char *name, const char *vocab_extra,
                           const char *merges, const char *want_msg)
{
    char vj[4200], mt[4200];
    snprintf(vj, sizeof vj, "%s/%s.json", dir, name);
    snprintf(mt, sizeof mt, "%s/%s.txt", dir, name);
    FILE *f = fopen(vj, "wb");
    fputs("{", f);
    for (int b = 0; b < 256; b++) {
        uint32_t cp = ct__bpe_byte_to_unicode((uint8_t)b);
        if (b) fputs(", ", f);
        if (cp == '"' || cp == '\\') fprintf(f, "\"\\%c\": %d", (char)cp, b);
        else if (cp < 0x80) fprintf(f, "\"%c\": %d", (char)cp, b);
        else fprintf(f, "\"\\u%04x\": %d", cp, b); /* escaped, as OpenAI's encoder.json */
    }
    fprintf(f, "%s}", vocab_extra);
    fclose(f);
    spit(mt, merges);
    ct_bpe_t *bpe = NULL;
    ct_status_t st;
    CAPTURE_STDERR(st = ct_bpe_load_gpt2(vj, mt, &bpe));
    if (!want_msg) {
        CHECK_MSG(st == CT_OK, "%s: %s", name, ct_status_name(st));
        if (bpe) {
            CHECK(ct_bpe_eot(bpe) == 258 && ct_bpe_vocab_size(bpe) == 259);
            int32_t *ids;
            size_t n = encode_all(bpe, "ab  c", 5, &ids);
            CHECK(n == 4 && ids[0] == 256 && ids[1] == ' ' && ids[2] == ' ' && ids[3] == 'c');
            free(ids);
        }
    } else {
        CHECK_MSG(st == CT_ERR_CORRUPT, "%s: got %s", name, ct_status_name(st));
        CHECK_CAPTURED(want_msg);
    }
    ct_bpe_free(bpe);
}

static void test_bad_files(const char *dir)
{
    const char *eot = ", \"<|endoftext|>\": 256";
    /* A token no merge makes ("ĠĠ") is allowed; end-of-text need not be last. */
    check_bad_gpt2(dir, "ok", ", \"ab\": 256, \"\\u0120\\u0120\": 257, \"<|endoftext|>\": 258",
                   "#version: 0.2\na b\r\n", NULL);
    check_bad_gpt2(dir, "dupbytes", ", \"ab\": 256, \"\xc4\x8a\": 257, \"<|endoftext|>\": 258",
                   "#version: 0.2\na b\n", "tokens 10 and 257 stand for the same bytes");
    check_bad_gpt2(dir, "noeot", ", \"ab\": 256", "a b\n", "no \"<|endoftext|>\" token");
    check_bad_gpt2(dir, "gap", ", \"ab\": 256, \"<|endoftext|>\": 300", "a b\n",
                   "token id 300, but there are only 258 tokens");
    check_bad_gpt2(dir, "dupid", ", \"ab\": 256, \"<|endoftext|>\": 256", "a b\n",
                   "id 256 is given to two tokens");
    check_bad_gpt2(dir, "notin", ", \"ab\": 256, \"<|endoftext|>\": 257", "a c\n",
                   "\"a c\" is not in");
    check_bad_gpt2(dir, "order", ", \"ab\": 256, \"abc\": 257, \"<|endoftext|>\": 258",
                   "ab c\na b\n",
                   ":1: bad merge: it uses a token that is neither a byte nor made by an earlier");
    check_bad_gpt2(dir, "twice", ", \"ab\": 256, \"<|endoftext|>\": 257", "a b\na b\n",
                   ":2: bad merge: it makes a token that a byte or an earlier merge made");
    check_bad_gpt2(dir, "space", eot, "a  b\n", ":1: expected \"A B\"");
    check_bad_gpt2(dir, "alpha", eot, "a\t b\n", "not written in GPT-2's byte alphabet");
    check_bad_gpt2(dir, "json", ", \"ab\": 2.5", "", "expected a token id");
    check_bad_gpt2(dir, "json2", ", \"ab\" 256", "", "expected ':'");
    check_bad_gpt2(dir, "json3", ", \"a\\qb\": 256", "", "unknown escape");
    check_bad_gpt2(dir, "json4", ", \"\\ud800\": 256", "", "lone high surrogate");
    check_bad_gpt2(dir, "json5", ", \"a\\udc00\": 256", "", "lone low surrogate");
    check_bad_gpt2(dir, "json6", ", \"ab\": -1", "", "expected a token id");
    check_bad_gpt2(dir, "json7", ", \"ab\": 99999999999999999999", "", "token id too large");

    /* Missing files and directories. */
    ct_bpe_t *bpe = NULL;
    ct_status_t st;
    char path[4200];
    snprintf(path, sizeof path, "%s/empty_dir", dir);
    mkdir(path, 0755);
    CAPTURE_STDERR(st = ct_bpe_load(path, &bpe));
    CHECK(st == CT_ERR_NOT_FOUND && bpe == NULL);
    CHECK_CAPTURED("holds no tokenizer files");
    snprintf(path, sizeof path, "%s/half_dir", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/half_dir/vocab.json", dir);
    spit(path, "{}");
    snprintf(path, sizeof path, "%s/half_dir", dir);
    CAPTURE_STDERR(st = ct_bpe_load(path, &bpe));
    CHECK(st == CT_ERR_NOT_FOUND);
    CHECK_CAPTURED("has vocab.json but not merges.txt");

    /* tiktoken files. */
    static const struct {
        const char *name, *body, *msg;
    } tk[] = {
        {"short", "YQ== 0\n", "1 tokens; a byte-level vocabulary"},
        {"b64", "!!!! 0\n", ":1: expected \"<base64"},
        {"norank", "YQ==\n", ":1: expected \"<base64"},
    };
    for (size_t i = 0; i < sizeof tk / sizeof tk[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.tiktoken", dir, tk[i].name);
        spit(path, tk[i].body);
        CAPTURE_STDERR(st = ct_bpe_load(path, &bpe));
        CHECK_MSG(st == CT_ERR_CORRUPT, "%s: %s", tk[i].name, ct_status_name(st));
        CHECK_CAPTURED(tk[i].msg);
    }
}

/* A full byte table in tiktoken form, then `extra`, for the rank checks. */
static void check_bad_tiktoken(const char *dir, const char *name, const char *extra,
                               const char *msg)
{
    static const char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.tiktoken", dir, name);
    FILE *f = fopen(path, "wb");
    for (int b = 0; b < 256; b++) fprintf(f, "%c%c== %d\n", k[b >> 2], k[(b & 3) << 4], b);
    fputs(extra, f);
    fclose(f);
    ct_bpe_t *bpe = NULL;
    ct_status_t st;
    CAPTURE_STDERR(st = ct_bpe_load(path, &bpe));
    if (!msg) {
        CHECK_MSG(st == CT_OK, "%s: %s", name, ct_status_name(st));
        if (bpe) CHECK(ct_bpe_eot(bpe) == 258 && bpe->native && bpe->merges[2] == 256);
    } else {
        CHECK_MSG(st == CT_ERR_CORRUPT, "%s: got %s", name, ct_status_name(st));
        CHECK_CAPTURED(msg);
    }
    ct_bpe_free(bpe);
}

static void test_tiktoken_ranks(const char *dir)
{
    check_bad_tiktoken(dir, "tk_ok", "YWI= 256\r\n\nYWJj 257\n", NULL); /* "ab", "abc" */
    check_bad_tiktoken(dir, "tk_dup", "YWI= 256\nYWI= 257\n", "the token of rank 257 repeats rank 256");
    check_bad_tiktoken(dir, "tk_rank", "YWI= 256\nYWJj 256\n", ":258: rank 256 repeats line 257");
    check_bad_tiktoken(dir, "tk_gap", "YWI= 256\nYWJj 258\n", "rank 258, but there are only 258");
    /* "abc" before "ab" exists: not two lower-ranked tokens merged. */
    check_bad_tiktoken(dir, "tk_bpe", "YWJj 256\nYWI= 257\n", ":257: the token of rank 256 is not");
}

/* Hostile tokenizer files: a token longer than CT__BPE_MAX_TOKEN_BYTES is
 * refused with its line before any work on it (a 128,000-byte tiktoken
 * token took 27.6 s of quadratic merging before); long legal tokens load in
 * O(k log k); a vocab.json whose first key is "" (once a memcpy from NULL)
 * loads. */
static void test_hostile_files(const char *dir)
{
    static const char k64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char path[4200];
    ct_bpe_t *bpe = NULL;
    ct_status_t st;
    /* one 128,000-byte token: the byte table, then "a" * 128000 */
    snprintf(path, sizeof path, "%s/long.tiktoken", dir);
    FILE *f = fopen(path, "wb");
    for (int b = 0; b < 256; b++) fprintf(f, "%c%c== %d\n", k64[b >> 2], k64[(b & 3) << 4], b);
    for (int i = 0; i < 128000 / 3; i++) fputs("YWFh", f); /* "aaa" */
    fputs("YWE= 256\n", f);                                /* + "aa" */
    fclose(f);
    CAPTURE_STDERR(st = ct_bpe_load(path, &bpe));
    CHECK_MSG(st == CT_ERR_CORRUPT && !bpe, "128,000-byte token: %s", ct_status_name(st));
    CHECK_CAPTURED("long.tiktoken:257: a token of 128000 bytes; a token may have at most 1024");
    ct_bpe_free(bpe);
    bpe = NULL;

    /* a chain "aa", "aaa", ..., up to 1024 bytes: each is two lower-ranked
     * tokens merged, found by the heap in derive_parts */
    snprintf(path, sizeof path, "%s/chain.tiktoken", dir);
    f = fopen(path, "wb");
    for (int b = 0; b < 256; b++) fprintf(f, "%c%c== %d\n", k64[b >> 2], k64[(b & 3) << 4], b);
    for (int len = 2; len <= CT__BPE_MAX_TOKEN_BYTES; len++) {
        for (int i = 0; i + 3 <= len; i += 3) fputs("YWFh", f);
        fputs(len % 3 == 1 ? "YQ==" : len % 3 == 2 ? "YWE=" : "", f);
        fprintf(f, " %d\n", 256 + len - 2);
    }
    fclose(f);
    CAPTURE_STDERR(st = ct_bpe_load(path, &bpe));
    CHECK_MSG(st == CT_OK, "the chain of 1023 tokens: %s", ct_status_name(st));
    if (bpe) {
        int len = 0;
        CHECK(ct_bpe_token(bpe, 256 + CT__BPE_MAX_TOKEN_BYTES - 2, &len) &&
              len == CT__BPE_MAX_TOKEN_BYTES);
        char *text = malloc(3000);
        memset(text, 'a', 3000);
        int32_t *ids;
        size_t n = encode_all(bpe, text, 3000, &ids);
        CHECK_MSG(n == 3, "3000 a's in %zu tokens, want 1024 + 1024 + 952", n);
        free(ids);
        free(text);
        ct_bpe_free(bpe);
        bpe = NULL;
    }
    /* the same chain one byte too long */
    f = fopen(path, "ab");
    for (int i = 0; i + 3 <= CT__BPE_MAX_TOKEN_BYTES + 1; i += 3) fputs("YWFh", f);
    fprintf(f, "YWE= %d\n", 256 + CT__BPE_MAX_TOKEN_BYTES - 1); /* 1023 + 2 = 1025 bytes */
    fclose(f);
    CAPTURE_STDERR(st = ct_bpe_load(path, &bpe));
    CHECK(st == CT_ERR_CORRUPT && !bpe);
    CHECK_CAPTURED("chain.tiktoken:1280: a token of 1025 bytes");

    /* vocab.json: a first key "", and a token of 1025 bytes */
    char vj[4200], mt[4200];
    snprintf(vj, sizeof vj, "%s/empty_key.json", dir);
    snprintf(mt, sizeof mt, "%s/empty_key.txt", dir);
    f = fopen(vj, "wb");
    fputs("{\"\": 0", f);
    for (int b = 0; b < 256; b++) {
        uint32_t cp = ct__bpe_byte_to_unicode((uint8_t)b);
        if (cp == '"' || cp == '\\') fprintf(f, ", \"\\%c\": %d", (char)cp, b + 1);
        else fprintf(f, ", \"\\u%04x\": %d", cp, b + 1);
    }
    fputs(", \"<|endoftext|>\": 257}", f);
    fclose(f);
    spit(mt, "#version: 0.2\n");
    CAPTURE_STDERR(st = ct_bpe_load_gpt2(vj, mt, &bpe));
    CHECK_MSG(st == CT_OK, "first key \"\": %s", ct_status_name(st));
    if (bpe) {
        int len = -1;
        CHECK(ct_bpe_token(bpe, 0, &len) && len == 0);
        ct_bpe_free(bpe);
        bpe = NULL;
    }
    char *big = malloc(1100);
    memset(big, 'x', 1025);
    big[1025] = 0;
    snprintf(vj, sizeof vj, "%s/bigtok.json", dir);
    f = fopen(vj, "wb");
    fprintf(f, "{\"%s\": 0}", big);
    fclose(f);
    free(big);
    CAPTURE_STDERR(st = ct_bpe_load_gpt2(vj, mt, &bpe));
    CHECK(st == CT_ERR_CORRUPT && !bpe);
    CHECK_CAPTURED("bigtok.json:1:2: a token of 1025 bytes; a token may have at most 1024");

    /* a 5000-byte merge part: clipped, so the reason still ends the line */
    char *merge = malloc(6000);
    strcpy(merge, "a ");
    memset(merge + 2, 'b', 5000);
    strcpy(merge + 5002, "\n");
    check_bad_gpt2(dir, "longmerge", ", \"ab\": 256, \"<|endoftext|>\": 257", merge,
                   "bbbb... (5000 bytes)\" is not in ");
    free(merge);
}

/* ---- shards: uint16 up to 65536 tokens, uint32 above ------------------------------------- */

/* A tokenizer whose merges join byte pairs: merge r joins bytes r / 256 and
 * r % 256, so ids reach 256 + n_merges. */
static ct_bpe_t *pair_tokenizer(int n_merges)
{
    int32_t *m = malloc(sizeof(int32_t) * 2 * (size_t)n_merges);
    for (int r = 0; r < n_merges; r++) m[2 * r] = r / 256, m[2 * r + 1] = r % 256;
    ct_bpe_t *bpe = NULL;
    int bad;
    CHECK(ct__bpe_new(m, n_merges, &bpe, &bad) == CT_OK);
    free(m);
    return bpe;
}

static void check_shard(const char *dir, ct_bpe_t *bpe, const char *text, size_t len, int width,
                        int32_t max_id)
{
    char prefix[4200], path[4300];
    snprintf(prefix, sizeof prefix, "%s/w%d", dir, ct_bpe_vocab_size(bpe));
    int32_t *ids;
    size_t n = encode_all(bpe, text, len, &ids);
    int32_t hi = 0;
    for (size_t i = 0; i < n; i++) hi = ids[i] > hi ? ids[i] : hi;
    CHECK_MSG(hi == max_id, "largest id %d, want %d", hi, max_id);
    ct_shard_writer_t *w = NULL;
    CHECK(ct_shard_writer_init(prefix, 1000000, ct_bpe_vocab_size(bpe), &w) == CT_OK);
    if (w) {
        CHECK(ct_shard_writer_push(w, ids, n) == CT_OK);
        CHECK(ct_shard_writer_close(w, NULL, NULL) == CT_OK);
    }
    snprintf(path, sizeof path, "%s_000000.bin", prefix);
    ct_shard_info_t info = {0};
    CHECK(ct_shard_read_header(path, &info) == CT_OK);
    CHECK_MSG(info.width == width && info.ntok == (int64_t)n, "vocab %d: width %d, want %d",
              ct_bpe_vocab_size(bpe), info.width, width);
    size_t flen;
    char *f = slurp(path, &flen);
    int ok = f && flen == CT_SHARD_HEADER_BYTES + n * (size_t)width;
    for (size_t i = 0; ok && i < n; i++) {
        const uint8_t *p = (const uint8_t *)f + CT_SHARD_HEADER_BYTES + i * (size_t)width;
        uint32_t v = width == 2 ? (uint32_t)(p[0] | p[1] << 8)
                                : (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                      (uint32_t)p[3] << 24;
        ok = v == (uint32_t)ids[i];
    }
    CHECK_MSG(ok, "vocab %d: the shard does not hold the ids", ct_bpe_vocab_size(bpe));
    free(f);
    free(ids);
}

static void test_shard_width(const char *dir)
{
    /* GPT-2's size, 50257: uint16. */
    ct_bpe_t *bpe = pair_tokenizer(50000);
    if (bpe) {
        CHECK(ct_bpe_vocab_size(bpe) == 50257 && ct_bpe_eot(bpe) == 50256);
        check_shard(dir, bpe, "\xc2\xa9", 2, 2, 256 + 0xC2A9); /* "©" */
    }
    ct_bpe_free(bpe);
    /* The boundary: 65536 tokens (ids up to 65535) still fit uint16, 65537 do not. */
    for (int V = 65536; V <= 65537; V++) {
        bpe = pair_tokenizer(V - 257);
        if (!bpe) continue;
        char prefix[4200], path[4300];
        snprintf(prefix, sizeof prefix, "%s/edge%d", dir, V);
        int32_t last = ct_bpe_eot(bpe);
        ct_shard_writer_t *w = NULL;
        CHECK(ct_shard_writer_init(prefix, 10, ct_bpe_vocab_size(bpe), &w) == CT_OK);
        if (w) {
            CHECK(ct_shard_writer_push(w, &last, 1) == CT_OK);
            CHECK(ct_shard_writer_close(w, NULL, NULL) == CT_OK);
        }
        snprintf(path, sizeof path, "%s_000000.bin", prefix);
        ct_shard_info_t info = {0};
        CHECK(ct_shard_read_header(path, &info) == CT_OK);
        CHECK_MSG(info.width == (V <= 65536 ? 2 : 4), "vocab %d: width %d", V, info.width);
        ct_bpe_free(bpe);
    }
    /* 65793 tokens: uint32, and ids above 65535 survive. */
    bpe = pair_tokenizer(65536);
    if (bpe) {
        CHECK(ct_bpe_vocab_size(bpe) == 65793);
        check_shard(dir, bpe, "\xff\xfe \xff\xff", 5, 4, 256 + 0xFFFE);
    }
    ct_bpe_free(bpe);
}

/* ---- GPT-2 itself, where its files are at hand ---------------------------------------------- */

static void test_real_gpt2(void)
{
    const char *dir = getenv("CT_GPT2_VOCAB_DIR");
    if (!dir || !*dir) {
        fprintf(stderr, "note: CT_GPT2_VOCAB_DIR not set; GPT-2's own ids not checked here "
                        "(tests/data/bpe_gpt2_reference.py checks them)\n");
        return;
    }
    char path[4300];
    size_t len, nwant;
    snprintf(path, sizeof path, "%s/tests/data/gpt2/mixed.txt", g_src);
    char *text = slurp(path, &len);
    snprintf(path, sizeof path, "%s/tests/data/gpt2/mixed.gpt2.ids", g_src);
    int32_t *want = read_ints(path, &nwant);
    ct_bpe_t *bpe = NULL;
    CHECK(ct_bpe_load(dir, &bpe) == CT_OK);
    if (bpe && text && want) {
        CHECK(ct_bpe_vocab_size(bpe) == 50257 && ct_bpe_eot(bpe) == 50256 && !bpe->native);
        int32_t *ids;
        size_t n = encode_all(bpe, text, len, &ids);
        CHECK_MSG(n == nwant && memcmp(ids, want, n * sizeof *ids) == 0,
                  "GPT-2: %zu ids, want %zu", n, nwant);
        int32_t *hello;
        size_t k = encode_all(bpe, "Hello world", 11, &hello);
        CHECK(k == 2 && hello[0] == 15496 && hello[1] == 995);
        free(hello);
        free(ids);
    }
    ct_bpe_free(bpe);
    free(text);
    free(want);
}

int main(void)
{
    ct_log_init();
    const char *src = getenv("CT_SOURCE_DIR");
    snprintf(g_src, sizeof g_src, "%s", src && *src ? src : ".");
    const char *dir = ct_test_dir("test_bpe_gpt2");
    char d[4096];
    snprintf(d, sizeof d, "%s", dir);
    test_alphabet();
    test_classes();
    test_pretok();
    test_v1_file(d);
    test_fixture_ids();
    test_roundtrip(d);
    test_tiktoken_refused(d);
    test_bad_files(d);
    test_tiktoken_ranks(d);
    test_hostile_files(d);
    test_shard_width(d);
    test_real_gpt2();
    return ct_test_finish("test_bpe_gpt2");
}
