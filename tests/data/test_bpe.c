/* Byte-level BPE: training (hand-checked merges, tie-breaking, determinism),
 * save/load round trip and strict loading, exact decode(encode(x)) on
 * arbitrary bytes, the pre-tokenizer's boundaries, and the two word-merge
 * algorithms agreeing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "data/bpe_impl.h"
#include "data/data.h"
#include "test_util.h"

static const char *k_text =
    "In the beginning God created the heaven and the earth. And the earth was without form, "
    "and void; and darkness was upon the face of the deep. And the Spirit of God moved upon "
    "the face of the waters. And God said, Let there be light: and there was light. And God "
    "saw the light, that it was good: and God divided the light from the darkness. It's "
    "what they're saying: we've done it, I'm sure you'll agree he'd know. Don't   stop\n\n"
    "numbers 12345 and 2024-05-20, 3.14159; punctuation!!! (parens) [brackets] {braces}\n";

/* A few kilobytes of English: k_text with its sentences shuffled around. */
static char *make_corpus(size_t *len_p)
{
    size_t base = strlen(k_text), n = 0, cap = base * 24;
    char *s = malloc(cap + 1);
    uint64_t r = 12345;
    for (int i = 0; i < 20; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t start = (size_t)(r >> 33) % base;
        memcpy(s + n, k_text + start, base - start);
        n += base - start;
        memcpy(s + n, k_text, start);
        n += start;
    }
    s[n] = 0;
    *len_p = n;
    return s;
}

static ct_bpe_t *train1(const char *text, size_t len, int vocab)
{
    ct_bpe_t *bpe = NULL;
    ct_status_t st = ct_bpe_train(&text, &len, 1, vocab, &bpe);
    CHECK_MSG(st == CT_OK, "train: %s", ct_status_name(st));
    return bpe;
}

static int roundtrip(ct_bpe_t *bpe, const char *text, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0, cap = 0, dlen = 0;
    if (ct_bpe_encode(bpe, text, len, &ids, &n, &cap) != CT_OK) return 0;
    char *d = ct_bpe_decode(bpe, ids, n, &dlen);
    int ok = d && dlen == len && memcmp(d, text, len) == 0 && d[dlen] == 0;
    free(d);
    free(ids);
    return ok;
}

static char *read_file(const char *path, size_t *len_p)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = 0;
    *len_p = n;
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* Splits text with the pre-tokenizer and compares with the expected pieces,
 * given as one string with '|' between pieces. */
static void check_pretok(const char *text, const char *expect)
{
    char got[1024] = "";
    size_t n = strlen(text), pos = 0, g = 0;
    while (pos < n) {
        size_t end = ct__bpe_pretok_next((const uint8_t *)text, n, pos);
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

static void test_pretokenizer(void)
{
    check_pretok("Hello world's end", "Hello| world|'s| end");
    check_pretok("it's they're we've I'm you'll he'd",
                 "it|'s| they|'re| we|'ve| I|'m| you|'ll| he|'d");
    check_pretok("don't", "don|'t");
    check_pretok("''s x", "''|s| x");
    check_pretok("a  b", "a| | b");
    check_pretok("a   \n\nb", "a|   \n|\n|b");
    check_pretok("end   ", "end|   ");
    check_pretok("x\ty", "x|\t|y");
    check_pretok("abc123 456", "abc|123| 456");
    check_pretok("wait... what?!", "wait|...| what|?!");
    check_pretok(" (x)", " (|x|)");
    /* UTF-8: letters glue, curly quote and em dash are punctuation, NBSP is space. */
    check_pretok("caf\xc3\xa9 na\xc3\xafve", "caf\xc3\xa9| na\xc3\xafve");
    check_pretok("\xce\x9a\xce\xb1\xce\xbb\xce\xb7 \xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c",
                 "\xce\x9a\xce\xb1\xce\xbb\xce\xb7| \xe4\xbd\xa0\xe5\xa5\xbd|\xef\xbc\x8c");
    check_pretok("don\xe2\x80\x99t \xe2\x80\x94 ok", "don|\xe2\x80\x99|t| \xe2\x80\x94| ok");
    check_pretok("hi \xf0\x9f\x98\x80\xf0\x9f\x98\x80!", "hi| \xf0\x9f\x98\x80\xf0\x9f\x98\x80!");
    check_pretok("a\xc2\xa0\xc2\xa0" "b", "a|\xc2\xa0|\xc2\xa0|b");
    /* Invalid UTF-8 is punctuation, one byte at a time, and never overruns. */
    check_pretok("a\xff\xfe" "b\xc3", "a|\xff\xfe|b|\xc3");
}

static void test_hand_checked(void)
{
    /* "aaaa" has (a,a) three times: merge it, then (256,256). */
    ct_bpe_t *bpe = train1("aaaa", 4, 259);
    if (!bpe) return;
    CHECK(ct_bpe_vocab_size(bpe) == 259);
    CHECK(bpe->n_merges == 2);
    CHECK(bpe->merges[0] == 'a' && bpe->merges[1] == 'a');
    CHECK(bpe->merges[2] == 256 && bpe->merges[3] == 256);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    CHECK(ct_bpe_encode(bpe, "aaaa", 4, &ids, &n, &cap) == CT_OK);
    CHECK(n == 1 && ids[0] == 257);
    n = 0;
    CHECK(ct_bpe_encode(bpe, "aaa", 3, &ids, &n, &cap) == CT_OK);
    CHECK(n == 2 && ids[0] == 256 && ids[1] == 'a');
    free(ids);
    CHECK(ct_bpe_eot(bpe) == 258);
    int l = 0;
    const char *eot = ct_bpe_token(bpe, 258, &l);
    CHECK(eot && l == 13 && memcmp(eot, "<|endoftext|>", 13) == 0);
    CHECK(ct_bpe_token(bpe, 259, &l) == NULL && ct_bpe_token(bpe, -1, &l) == NULL);
    int32_t bad[2] = {97, 259};
    size_t dl;
    CHECK(ct_bpe_decode(bpe, bad, 2, &dl) == NULL);
    int32_t with_eot[3] = {258, 257, 258};
    char *d = ct_bpe_decode(bpe, with_eot, 3, &dl);
    CHECK(d && dl == 30 && strcmp(d, "<|endoftext|>aaaa<|endoftext|>") == 0);
    free(d);
    ct_bpe_free(bpe);

    /* Ties go to the smallest (left, right): (' ', 'c') before ('a', 'b'). */
    bpe = train1("ab cd", 5, 258);
    if (!bpe) return;
    CHECK(bpe->merges[0] == ' ' && bpe->merges[1] == 'c');
    ct_bpe_free(bpe);

    /* More merges than the text has pairs: a warning and a smaller vocab. */
    CAPTURE_STDERR(bpe = train1("abc", 3, 1000));
    CHECK_CAPTURED("only enough pairs for 2 merges");
    if (bpe) CHECK(ct_bpe_vocab_size(bpe) == 259);
    ct_bpe_free(bpe);

    /* A long word is counted in pieces of at most 256 bytes, so no token is
     * longer, and encoding still covers it exactly. */
    size_t dl2 = 100000;
    char *dna = malloc(dl2);
    uint64_t r = 5;
    for (size_t i = 0; i < dl2; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        dna[i] = "ACGT"[r >> 62];
    }
    bpe = train1(dna, dl2, 2000);
    if (bpe) {
        int longest = 0;
        for (int id = 0; id < ct_bpe_vocab_size(bpe) - 1; id++) {
            int tl;
            ct_bpe_token(bpe, id, &tl);
            if (tl > longest) longest = tl;
        }
        CHECK_MSG(longest <= 256, "longest token %d bytes", longest);
        CHECK(roundtrip(bpe, dna, dl2));
    }
    ct_bpe_free(bpe);
    free(dna);

    const char *t = "x";
    size_t tl = 1;
    bpe = NULL;
    CAPTURE_STDERR(CHECK(ct_bpe_train(&t, &tl, 1, 256, &bpe) == CT_ERR_INVALID_ARG));
    CHECK(bpe == NULL);
    CHECK_CAPTURED("vocab_size 256");
}

static void test_train_save_load(const char *dir)
{
    size_t len;
    char *corpus = make_corpus(&len);
    ct_bpe_t *a = train1(corpus, len, 400);
    ct_bpe_t *b = train1(corpus, len, 400);
    if (!a || !b) goto out;
    CHECK(ct_bpe_vocab_size(a) == 400);

    char pa[4200], pb[4200];
    snprintf(pa, sizeof pa, "%s/a.bpe", dir);
    snprintf(pb, sizeof pb, "%s/b.bpe", dir);
    CHECK(ct_bpe_save(a, pa) == CT_OK);
    CHECK(ct_bpe_save(b, pb) == CT_OK);
    size_t la, lb;
    char *fa = read_file(pa, &la), *fb = read_file(pb, &lb);
    CHECK(fa && fb && la == lb && memcmp(fa, fb, la) == 0); /* determinism */
    CHECK(fa && strncmp(fa, "ctrain-bpe 2 400\n", 17) == 0);
    free(fa);
    free(fb);

    ct_bpe_t *l = NULL;
    CHECK(ct_bpe_load(pa, &l) == CT_OK);
    if (!l) goto out;
    CHECK(ct_bpe_vocab_size(l) == 400 && ct_bpe_eot(l) == 399);
    for (int id = 0; id < 400; id++) {
        int l1, l2;
        const char *s1 = ct_bpe_token(a, id, &l1), *s2 = ct_bpe_token(l, id, &l2);
        CHECK_MSG(l1 == l2 && memcmp(s1, s2, (size_t)l1) == 0, "token %d differs after load", id);
    }
    int32_t *ia = NULL, *il = NULL;
    size_t na = 0, nl = 0, ca = 0, cl = 0;
    CHECK(ct_bpe_encode(a, corpus, len, &ia, &na, &ca) == CT_OK);
    CHECK(ct_bpe_encode(l, corpus, len, &il, &nl, &cl) == CT_OK);
    CHECK(na == nl && memcmp(ia, il, na * sizeof(int32_t)) == 0);
    /* Compression: English text takes well under half an id per byte. */
    CHECK_MSG(na * 5 < len * 2, "%zu ids for %zu bytes", na, len);
    /* A warm cache encodes the same as a cold one. */
    size_t n2 = 0;
    CHECK(ct_bpe_encode(l, corpus, len, &il, &n2, &cl) == CT_OK);
    CHECK(n2 == nl && memcmp(ia, il, na * sizeof(int32_t)) == 0);

    /* Token boundaries include every pre-token boundary: merges never
     * cross words. */
    char *is_tok_end = calloc(len + 1, 1);
    size_t off = 0;
    for (size_t i = 0; i < na; i++) {
        int tl;
        ct_bpe_token(a, ia[i], &tl);
        off += (size_t)tl;
        is_tok_end[off] = 1;
    }
    CHECK(off == len);
    int crossing = 0;
    for (size_t pos = 0; pos < len;) {
        pos = ct__bpe_pretok_next((const uint8_t *)corpus, len, pos);
        if (!is_tok_end[pos]) crossing++;
    }
    CHECK_MSG(crossing == 0, "%d pre-token boundaries inside tokens", crossing);
    free(is_tok_end);

    /* "'s" and " world" are single tokens: the apostrophe never glues to the word before. */
    size_t n3 = 0;
    CHECK(ct_bpe_encode(a, "It's", 4, &ia, &n3, &ca) == CT_OK);
    CHECK(n3 >= 2);
    if (n3 >= 2) {
        int tl;
        const char *last = ct_bpe_token(a, ia[n3 - 1], &tl);
        CHECK(tl == 2 && memcmp(last, "'s", 2) == 0);
    }
    free(ia);
    free(il);
    ct_bpe_free(l);
out:
    ct_bpe_free(a);
    ct_bpe_free(b);
    free(corpus);
}

static void test_roundtrip(void)
{
    size_t len;
    char *corpus = make_corpus(&len);
    ct_bpe_t *bpe = train1(corpus, len, 450);
    free(corpus);
    if (!bpe) return;
    uint64_t r = 42;
    size_t sizes[] = {0, 1, 2, 17, 1000, 100000};
    for (int mode = 0; mode < 4; mode++) {
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            size_t n = sizes[k];
            char *buf = malloc(n + 1);
            for (size_t i = 0; i < n; i++) {
                r = r * 6364136223846793005ULL + 1442695040888963407ULL;
                uint8_t b = (uint8_t)(r >> 56);
                if (mode == 1) b = (r >> 40) & 1 ? 0 : b;   /* many NULs */
                if (mode == 2) b |= 0x80;                    /* only high bytes */
                if (mode == 3) b = (uint8_t)" aet'\n\xc3\xa9"[(r >> 40) % 8]; /* word-like */
                buf[i] = (char)b;
            }
            CHECK_MSG(roundtrip(bpe, buf, n), "round trip mode %d size %zu", mode, n);
            free(buf);
        }
    }
    /* Long runs: a 200 kB word and a 200 kB whitespace run use the heap merge
     * and bypass the cache. */
    size_t n = 200000;
    char *run = malloc(n);
    memset(run, 'e', n);
    CHECK(roundtrip(bpe, run, n));
    memset(run, ' ', n);
    CHECK(roundtrip(bpe, run, n));
    for (size_t i = 0; i < n; i++) run[i] = "the"[i % 3];
    CHECK(roundtrip(bpe, run, n));
    free(run);
    const char *utf8 =
        "\xce\x9a\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1 \xce\xba\xcf\x8c\xcf\x83"
        "\xce\xbc\xce\xb5! "
        "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c\xe3\x80\x82 "
        "emoji \xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd and flags \xf0\x9f\x87\xab\xf0\x9f"
        "\x87\xb7, caf\xc3\xa9 na\xc3\xafve \xe2\x80\x9cquoted\xe2\x80\x9d\n";
    CHECK(roundtrip(bpe, utf8, strlen(utf8)));
    ct_bpe_free(bpe);
}

/* The O(n^2) and heap word merges agree on words made of common fragments. */
static void test_merge_algorithms(void)
{
    size_t len;
    char *corpus = make_corpus(&len);
    ct_bpe_t *bpe = train1(corpus, len, 450);
    free(corpus);
    if (!bpe) return;
    const char *frag[] = {"the", "and",  "e",   "a",    "th", "ea",
                          "rth", "ness", "God", "ight", "aa", "ee"};
    uint64_t r = 7;
    int mismatches = 0;
    for (int trial = 0; trial < 300; trial++) {
        int32_t s1[600], s2[600];
        int n = 0;
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        int nf = 1 + (int)((r >> 33) % 100);
        for (int f = 0; f < nf; f++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            const char *p = frag[(r >> 33) % 12];
            for (; *p && n < 600; p++) s1[n++] = (uint8_t)*p;
        }
        memcpy(s2, s1, sizeof(int32_t) * (size_t)n);
        int m1 = ct__bpe_merge_word(bpe, s1, n, 0);
        int m2 = ct__bpe_merge_word(bpe, s2, n, 1);
        if (m1 != m2 || memcmp(s1, s2, sizeof(int32_t) * (size_t)m1) != 0) mismatches++;
    }
    CHECK_MSG(mismatches == 0, "%d of 300 words merge differently", mismatches);
    ct_bpe_free(bpe);
}

/* Writes `content` as a tokenizer file and expects load to fail with
 * `want`, logging `path:line`. */
static void check_corrupt(const char *dir, const char *name, const char *content, ct_status_t want,
                          int line)
{
    char path[4200], where[4300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, content);
    ct_bpe_t *bpe = NULL;
    ct_status_t st;
    CAPTURE_STDERR(st = ct_bpe_load(path, &bpe));
    CHECK_MSG(st == want, "%s: got %s, want %s", name, ct_status_name(st), ct_status_name(want));
    CHECK(bpe == NULL);
    snprintf(where, sizeof where, "%s:%d:", path, line);
    CHECK_CAPTURED(where);
}

static void test_corrupt(const char *dir)
{
    check_corrupt(dir, "magic.bpe", "gpt2-bpe 1 258\n97 97\n", CT_ERR_CORRUPT, 1);
    check_corrupt(dir, "empty.bpe", "", CT_ERR_CORRUPT, 1);
    check_corrupt(dir, "version.bpe", "ctrain-bpe 3 258\n97 97\n", CT_ERR_UNSUPPORTED, 1);
    check_corrupt(dir, "version0.bpe", "ctrain-bpe 0 258\n97 97\n", CT_ERR_UNSUPPORTED, 1);
    check_corrupt(dir, "vocab.bpe", "ctrain-bpe 1 12\n", CT_ERR_CORRUPT, 1);
    check_corrupt(dir, "header.bpe", "ctrain-bpe 1 258 x\n97 97\n", CT_ERR_CORRUPT, 1);
    check_corrupt(dir, "trunc.bpe", "ctrain-bpe 1 260\n97 97\n256 97\n", CT_ERR_CORRUPT, 4);
    check_corrupt(dir, "nonl.bpe", "ctrain-bpe 1 259\n97 97\n256 97", CT_ERR_CORRUPT, 3);
    check_corrupt(dir, "range.bpe", "ctrain-bpe 1 259\n97 97\n257 97\n", CT_ERR_CORRUPT, 3);
    check_corrupt(dir, "neg.bpe", "ctrain-bpe 1 258\n-1 97\n", CT_ERR_CORRUPT, 2);
    check_corrupt(dir, "text.bpe", "ctrain-bpe 1 258\nab cd\n", CT_ERR_CORRUPT, 2);
    check_corrupt(dir, "dup.bpe", "ctrain-bpe 1 259\n97 97\n97 97\n", CT_ERR_CORRUPT, 3);
    check_corrupt(dir, "trail.bpe", "ctrain-bpe 1 258\n97 97\nextra\n", CT_ERR_CORRUPT, 3);
    /* Tokens that double at every merge: 70 merges would need 2^70 bytes,
     * and 28 (a 239-byte file) built a token of 2^28 bytes (720 MB). A
     * token may have 1024 bytes: merge 10 (line 12) makes 2048. */
    char big[4096] = "ctrain-bpe 1 327\n97 97\n";
    for (int r = 1; r < 70; r++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%d %d\n", 255 + r, 255 + r);
    check_corrupt(dir, "huge.bpe", big, CT_ERR_CORRUPT, 12);
    char d28[512] = "ctrain-bpe 1 285\n97 97\n";
    for (int r = 1; r < 28; r++)
        snprintf(d28 + strlen(d28), sizeof d28 - strlen(d28), "%d %d\n", 255 + r, 255 + r);
    check_corrupt(dir, "double28.bpe", d28, CT_ERR_CORRUPT, 12);
    CHECK_CAPTURED("merge 10 makes a token of 2048 bytes; a token may have at most 1024");
    /* 1024 bytes is still a token */
    char d10[512] = "ctrain-bpe 1 267\n97 97\n";
    for (int r = 1; r < 10; r++)
        snprintf(d10 + strlen(d10), sizeof d10 - strlen(d10), "%d %d\n", 255 + r, 255 + r);
    char p10[4200];
    snprintf(p10, sizeof p10, "%s/double10.bpe", dir);
    write_file(p10, d10);
    ct_bpe_t *b10 = NULL;
    CHECK(ct_bpe_load(p10, &b10) == CT_OK);
    int l10 = 0;
    CHECK(b10 && ct_bpe_token(b10, 265, &l10) && l10 == 1024);
    ct_bpe_free(b10);

    char path[4200];
    snprintf(path, sizeof path, "%s/missing.bpe", dir);
    ct_bpe_t *bpe = NULL;
    ct_status_t st;
    CAPTURE_STDERR(st = ct_bpe_load(path, &bpe));
    CHECK(st == CT_ERR_NOT_FOUND && bpe == NULL);
    CHECK_CAPTURED(path);

    /* A minimal valid file loads. */
    snprintf(path, sizeof path, "%s/ok.bpe", dir);
    write_file(path, "ctrain-bpe 1 259\n97 97\n256 97\n");
    CHECK(ct_bpe_load(path, &bpe) == CT_OK);
    if (bpe) {
        int l;
        const char *s = ct_bpe_token(bpe, 257, &l);
        CHECK(l == 3 && memcmp(s, "aaa", 3) == 0);
        ct_bpe_free(bpe);
    }
}

int main(void)
{
    ct_log_init();
    const char *dir = ct_test_dir("test_bpe");
    char d[4096];
    snprintf(d, sizeof d, "%s", dir);
    test_pretokenizer();
    test_hand_checked();
    test_train_save_load(d);
    test_roundtrip();
    test_merge_algorithms();
    test_corrupt(d);
    return ct_test_finish("test_bpe");
}
