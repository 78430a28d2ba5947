/* Fuzzes the tokenizer file readers (data/bpe.c, data/bpe_gpt2.c,
 * data/bpe_hf_load.c) and the pre-tokenizer regex engine (data/bpe_regex.c) on
 * bytes in memory: the first byte picks ctrain's own format, a tiktoken rank
 * file, GPT-2's vocab.json and merges.txt (split at the first NUL), a
 * tokenizer.json, or a regex pattern (matched against a fixed text and the
 * input). A tokenizer that loads must encode and decode: decode(encode(x))
 * == x for a fixed text and for the input itself (for a tokenizer.json,
 * where its pipeline keeps the text). */
#include "data/bpe_impl.h"
#include "fuzz.h"

static void check_round_trip(ct_bpe_t *bpe, const char *text, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    ct_status_t st = ct_bpe_encode(bpe, text, len, &ids, &n, &cap);
    /* A tokenizer.json pattern may backtrack past its limit on some text. */
    FUZZ_REQUIRE(st == CT_OK || (bpe->hf && st == CT_ERR_UNSUPPORTED));
    for (size_t i = 0; i < n; i++) FUZZ_REQUIRE(ids[i] >= 0 && ids[i] < ct_bpe_vocab_size(bpe));
    size_t dlen = 0;
    char *back = ct_bpe_decode(bpe, ids, n, &dlen);
    FUZZ_REQUIRE(back != NULL);
    if (st == CT_OK && ct__bpe_hf_lossless(bpe))
        FUZZ_REQUIRE(dlen == len && memcmp(back, text, len) == 0);
    free(back);
    free(ids);
}

/* A pattern: when it compiles, every match found is inside the text and
 * searching goes forward. */
static void check_regex(const char *pat, size_t n)
{
    ct__re_t *re = NULL;
    ct__re_error_t err;
    if (ct__re_compile(pat, n, &re, &err) != CT_OK) {
        FUZZ_REQUIRE(err.offset <= n && err.msg[0]);
        return;
    }
    static const char text[] = "It's 12345 caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87\r\n\t  "
                               "\xff\xfe x  Y'LL \xf0\x9f\x98\x80 a1b2";
    const uint8_t *texts[2] = {(const uint8_t *)text, (const uint8_t *)pat};
    size_t lens[2] = {sizeof text - 1, n < 512 ? n : 512};
    for (int t = 0; t < 2; t++) {
        size_t from = 0, s, e;
        for (int k = 0; k < 64 && from <= lens[t]; k++) {
            int r = ct__re_search(re, texts[t], lens[t], from, &s, &e);
            FUZZ_REQUIRE(r >= -2 && r <= 1);
            if (r != 1) break;
            FUZZ_REQUIRE(s >= from && s <= e && e <= lens[t]);
            from = e > s ? e : s + 1;
        }
    }
    ct__re_free(re);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    ct_bpe_t *bpe = NULL;
    ct_status_t st;
    switch (data[0] % 5) {
    case 0: st = ct__bpe_parse_ctrain(p, n, "fuzz.bpe", &bpe); break;
    case 1: st = ct__bpe_parse_tiktoken(p, n, "fuzz.tiktoken", &bpe); break;
    case 3: st = ct__bpe_parse_hf(p, n, "tokenizer.json", &bpe); break;
    case 4: check_regex(p, n); return 0;
    default: {
        const char *nul = memchr(p, 0, n);
        size_t vn = nul ? (size_t)(nul - p) : n;
        const char *m = nul ? nul + 1 : p + n;
        st = ct__bpe_parse_gpt2(p, vn, "vocab.json", m, (size_t)(p + n - m), "merges.txt", &bpe);
    }
    }
    if (st != CT_OK) return 0;
    static const char text[] = "Hello world, it's 2024!\n\tcaf\xc3\xa9  \xe4\xb8\xad\xe6\x96\x87 "
                               "\xff\xfe <|endoftext|> aaaaaaaaaaaaaaaaaaaaaaaa";
    check_round_trip(bpe, text, sizeof text - 1);
    check_round_trip(bpe, (const char *)data, size < 4096 ? size : 4096);
    ct_bpe_free(bpe);
    return 0;
}
