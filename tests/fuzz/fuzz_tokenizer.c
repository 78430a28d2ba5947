/* Fuzzes the tokenizer file readers (data/bpe.c, data/bpe_gpt2.c) on bytes
 * in memory: the first byte picks ctrain's own format, a tiktoken rank file,
 * or GPT-2's vocab.json and merges.txt (split at the first NUL). A
 * tokenizer that loads must encode and decode: decode(encode(x)) == x for
 * a fixed text and for the input itself. */
#include "data/bpe_impl.h"
#include "fuzz.h"

static void check_round_trip(ct_bpe_t *bpe, const char *text, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    FUZZ_REQUIRE(ct_bpe_encode(bpe, text, len, &ids, &n, &cap) == CT_OK);
    for (size_t i = 0; i < n; i++) FUZZ_REQUIRE(ids[i] >= 0 && ids[i] < ct_bpe_vocab_size(bpe));
    size_t dlen = 0;
    char *back = ct_bpe_decode(bpe, ids, n, &dlen);
    FUZZ_REQUIRE(back && dlen == len && memcmp(back, text, len) == 0);
    free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    ct_bpe_t *bpe = NULL;
    ct_status_t st;
    switch (data[0] % 3) {
    case 0: st = ct__bpe_parse_ctrain(p, n, "fuzz.bpe", &bpe); break;
    case 1: st = ct__bpe_parse_tiktoken(p, n, "fuzz.tiktoken", &bpe); break;
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
