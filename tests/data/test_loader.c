/* Shard header checks and the deterministic sample order: strict headers,
 * clear errors that name the file, a permutation per epoch, and an order
 * that does not depend on how a batch is split across readers. */
#include "data/data.h"
#include "test_util.h"

#include <stdint.h>

/* Writes a shard by hand (not with ct_shard_writer, to test the reader
 * against the format, not against our own writer). tokens[i] = f(i). */
static void write_shard(const char *path, int magic, int version, int64_t ntok_hdr,
                        int64_t ntok_real, int width, uint32_t mod)
{
    FILE *f = fopen(path, "wb");
    int32_t h[256] = {0};
    h[0] = magic;
    h[1] = version;
    h[2] = (int32_t)ntok_hdr;
    fwrite(h, 4, 256, f);
    for (int64_t i = 0; i < ntok_real; i++) {
        uint32_t v = (uint32_t)((i * 7919u + 13u) % mod);
        if (width == 2) {
            uint16_t s = (uint16_t)v;
            fwrite(&s, 2, 1, f);
        } else {
            fwrite(&v, 4, 1, f);
        }
    }
    fclose(f);
}

static ct_status_t open_loader(const char *spec, int T, int V, uint64_t seed, int shuffle,
                               ct_loader_t **l)
{
    ct_loader_opts_t o = {.spec = spec, .T = T, .vocab_size = V, .seed = seed,
                          .chunk_tokens = 64, .window_chunks = 3, .shuffle = shuffle};
    return ct_loader_init(&o, l);
}

int main(void)
{
    const char *dir = ct_test_dir("loader");
    char a[4096], b[4096], spec[8300], p[4200];
    snprintf(a, sizeof a, "%s/c_000000.bin", dir);
    snprintf(b, sizeof b, "%s/c_000001.bin", dir);
    write_shard(a, CT_SHARD_MAGIC_U16, 1, 1001, 1001, 2, 500);
    write_shard(b, CT_SHARD_MAGIC_U32, 7, 777, 777, 4, 500);

    /* headers */
    ct_shard_info_t info;
    CHECK(ct_shard_read_header(a, &info) == CT_OK && info.ntok == 1001 && info.width == 2);
    CHECK(ct_shard_read_header(b, &info) == CT_OK && info.ntok == 777 && info.width == 4);

    /* order: a permutation of all samples in each epoch, deterministic */
    snprintf(spec, sizeof spec, "%s/c_*.bin", dir);
    const int T = 10, V = 500;
    ct_loader_t *l1, *l2;
    CHECK(open_loader(spec, T, V, 7, 1, &l1) == CT_OK);
    CHECK(open_loader(spec, T, V, 7, 1, &l2) == CT_OK);
    int64_t ns = ct_loader_num_samples(l1);
    CHECK(ns == (1001 - 1) / T + (777 - 1) / T);
    int32_t *in1 = malloc(sizeof(int32_t) * T * ns * 2), *tg1 = malloc(sizeof(int32_t) * T * ns * 2);
    int32_t *in2 = malloc(sizeof(int32_t) * T * ns * 2), *tg2 = malloc(sizeof(int32_t) * T * ns * 2);
    /* reader 1 reads two epochs in one call; reader 2 in odd-sized pieces */
    CHECK(ct_loader_read(l1, 0, (int)(2 * ns), in1, tg1) == CT_OK);
    for (int64_t i = 0; i < 2 * ns;) {
        int cnt = (int)((2 * ns - i) < 3 ? (2 * ns - i) : 3);
        CHECK(ct_loader_read(l2, i, cnt, in2 + i * T, tg2 + i * T) == CT_OK);
        i += cnt;
    }
    CHECK(memcmp(in1, in2, sizeof(int32_t) * T * ns * 2) == 0);
    CHECK(memcmp(tg1, tg2, sizeof(int32_t) * T * ns * 2) == 0);
    /* targets are inputs shifted by one */
    int shifted = 1;
    for (int64_t s = 0; s < 2 * ns; s++)
        for (int t = 0; t + 1 < T; t++) shifted &= tg1[s * T + t] == in1[s * T + t + 1];
    CHECK(shifted);
    /* each epoch covers every sample exactly once: compare first tokens as a
     * multiset against the file-order loader */
    ct_loader_t *lf;
    CHECK(open_loader(spec, T, V, 7, 0, &lf) == CT_OK);
    int32_t *inf = malloc(sizeof(int32_t) * T * ns), *tgf = malloc(sizeof(int32_t) * T * ns);
    CHECK(ct_loader_read(lf, 0, (int)ns, inf, tgf) == CT_OK);
    for (int e = 0; e < 2; e++) {
        int64_t *hits = calloc((size_t)ns, sizeof *hits);
        int all_found = 1;
        for (int64_t s = 0; s < ns; s++) {
            int found = 0;
            for (int64_t r = 0; r < ns && !found; r++)
                if (!hits[r] && memcmp(in1 + (e * ns + s) * T, inf + r * T, sizeof(int32_t) * T) == 0)
                    hits[r] = found = 1;
            all_found &= found;
        }
        CHECK_MSG(all_found, "epoch %d is not a permutation of the samples", e);
        free(hits);
    }
    /* shuffled differs from file order, and the two epochs differ */
    CHECK(memcmp(in1, inf, sizeof(int32_t) * T * ns) != 0);
    CHECK(memcmp(in1, in1 + ns * T, sizeof(int32_t) * T * ns) != 0);
    /* another seed gives another order */
    ct_loader_t *l3;
    CHECK(open_loader(spec, T, V, 8, 1, &l3) == CT_OK);
    CHECK(ct_loader_read(l3, 0, (int)ns, in2, tg2) == CT_OK);
    CHECK(memcmp(in1, in2, sizeof(int32_t) * T * ns) != 0);
    ct_loader_free(l1);
    ct_loader_free(l2);
    ct_loader_free(l3);
    ct_loader_free(lf);

    /* ---- bad input: each error names the file ---- */
    ct_loader_t *bad = NULL;
    snprintf(p, sizeof p, "%s/missing.bin", dir);
    CAPTURE_STDERR(CHECK(open_loader(p, T, V, 1, 1, &bad) == CT_ERR_NOT_FOUND));
    CHECK_CAPTURED("missing.bin");
    CHECK_CAPTURED("No such file");

    snprintf(p, sizeof p, "%s/nomatch_*.bin", dir);
    CAPTURE_STDERR(CHECK(open_loader(p, T, V, 1, 1, &bad) == CT_ERR_NOT_FOUND));
    CHECK_CAPTURED("no file matches");

    snprintf(p, sizeof p, "%s/magic.bin", dir);
    write_shard(p, 12345, 1, 100, 100, 2, 50);
    CAPTURE_STDERR(CHECK(open_loader(p, T, V, 1, 1, &bad) == CT_ERR_CORRUPT));
    CHECK_CAPTURED("magic.bin");
    CHECK_CAPTURED("bad magic");

    snprintf(p, sizeof p, "%s/version.bin", dir);
    write_shard(p, CT_SHARD_MAGIC_U16, 7, 100, 100, 2, 50);
    CAPTURE_STDERR(CHECK(open_loader(p, T, V, 1, 1, &bad) == CT_ERR_CORRUPT));
    CHECK_CAPTURED("version.bin");

    snprintf(p, sizeof p, "%s/trunc.bin", dir);
    write_shard(p, CT_SHARD_MAGIC_U16, 1, 100, 60, 2, 50);
    CAPTURE_STDERR(CHECK(open_loader(p, T, V, 1, 1, &bad) == CT_ERR_CORRUPT));
    CHECK_CAPTURED("trunc.bin");
    CHECK_CAPTURED("truncated");

    snprintf(p, sizeof p, "%s/short_header.bin", dir);
    FILE *f = fopen(p, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    CAPTURE_STDERR(CHECK(open_loader(p, T, V, 1, 1, &bad) == CT_ERR_CORRUPT));
    CHECK_CAPTURED("short_header.bin");

    /* a token at or above the vocabulary: found when the sample is read */
    snprintf(p, sizeof p, "%s/vocab.bin", dir);
    write_shard(p, CT_SHARD_MAGIC_U16, 1, 100, 100, 2, 500);
    CHECK(open_loader(p, T, 100, 1, 0, &bad) == CT_OK);
    int32_t in[100], tg[100];
    ct_status_t st = CT_OK;
    CAPTURE_STDERR(for (int64_t i = 0; i < ct_loader_num_samples(bad) && st == CT_OK; i++) st =
                       ct_loader_read(bad, i, 1, in, tg));
    CHECK(st == CT_ERR_CORRUPT);
    CHECK_CAPTURED("vocab.bin");
    CHECK_CAPTURED("outside the vocabulary");
    CHECK_CAPTURED("byte offset");
    ct_loader_free(bad);

    /* Out-of-vocabulary tokens only in the tail that no sample covers: 57
     * tokens at T = 10 make 5 samples over tokens 0..50; tokens 53 and 55
     * are bad. The shard is rejected as a whole, naming the file and the
     * first bad token's offset, in either token width. */
    for (int width = 2; width <= 4; width += 2) {
        snprintf(p, sizeof p, "%s/tail%d.bin", dir, width);
        FILE *tf = fopen(p, "wb");
        int32_t th[256] = {0};
        th[0] = width == 2 ? CT_SHARD_MAGIC_U16 : CT_SHARD_MAGIC_U32;
        th[1] = width == 2 ? 1 : 7;
        th[2] = 57;
        fwrite(th, 4, 256, tf);
        for (uint32_t i = 0; i < 57; i++) {
            uint32_t v = i == 53 || i == 55 ? 100 + i : i % 100;
            uint16_t v16 = (uint16_t)v;
            fwrite(width == 2 ? (void *)&v16 : (void *)&v, (size_t)width, 1, tf);
        }
        fclose(tf);
        bad = NULL;
        CHECK(open_loader(p, T, 100, 1, 0, &bad) == CT_OK);
        CHECK(bad && ct_loader_num_samples(bad) == 5);
        st = CT_OK;
        CAPTURE_STDERR(for (int64_t i = 0; bad && i < 5 && st == CT_OK; i++) st =
                           ct_loader_read(bad, i, 1, in, tg));
        CHECK_MSG(st == CT_ERR_CORRUPT, "tail OOV (width %d): %s", width, ct_status_name(st));
        CHECK_CAPTURED(p);
        char want[96];
        snprintf(want, sizeof want, "token 153 at byte offset %d (token 53)", 1024 + 53 * width);
        CHECK_CAPTURED(want);
        CHECK_CAPTURED("2 such tokens");
        ct_loader_free(bad);
    }
    /* a shard too short for one sample is still checked, when it is opened */
    snprintf(p, sizeof p, "%s/short_oov.bin", dir);
    write_shard(p, CT_SHARD_MAGIC_U16, 1, 5, 5, 2, 500);
    bad = NULL;
    CAPTURE_STDERR(st = open_loader(p, T, 10, 1, 0, &bad));
    CHECK_MSG(st == CT_ERR_CORRUPT, "short shard with OOV tokens: %s", ct_status_name(st));
    CHECK_CAPTURED("short_oov.bin");
    CHECK_CAPTURED("outside the vocabulary");

    /* a streaming buffer that cannot hold two windows is refused up front */
    snprintf(spec, sizeof spec, "%s/c_*.bin", dir);
    ct_loader_opts_t small = {.spec = spec, .T = T, .vocab_size = V, .seed = 1,
                              .chunk_tokens = 1 << 20, .window_chunks = 8, .shuffle = 1,
                              .prefetch_mib = 1};
    /* chunks here are whole shards (< 1 MiB): 1 MiB holds them; make them big */
    char big[4200];
    snprintf(big, sizeof big, "%s/big_000000.bin", dir);
    write_shard(big, CT_SHARD_MAGIC_U32, 7, 300000, 300000, 4, 500);
    small.spec = big;
    small.chunk_tokens = 200000;
    small.window_chunks = 1;
    bad = NULL;
    CAPTURE_STDERR(CHECK(ct_loader_init(&small, &bad) == CT_ERR_CONFIG));
    CHECK_CAPTURED("data.prefetch_mib = 1");
    CHECK_CAPTURED("raise data.prefetch_mib");

    /* many small chunks and windows: the streamed order across windows and
     * epochs equals the order computed without prefetching (fresh loaders
     * reading one sample at a time, each from a cold start) */
    ct_loader_opts_t many = {.spec = big, .T = 16, .vocab_size = V, .seed = 9,
                             .chunk_tokens = 64, .window_chunks = 3, .shuffle = 1};
    ct_loader_t *ls;
    CHECK(ct_loader_init(&many, &ls) == CT_OK);
    int64_t nsm = ct_loader_num_samples(ls);
    int32_t a16[17], b16[17], x16[17], y16[17];
    int same = 1;
    for (int64_t i = 0; i < 2 * nsm; i += nsm / 7 + 1) {
        ct_loader_t *cold;
        CHECK(ct_loader_init(&many, &cold) == CT_OK);
        CHECK(ct_loader_read(cold, i, 1, x16, y16) == CT_OK);
        ct_loader_free(cold);
        for (int64_t k = (i > 0 ? i - nsm / 7 - 1 + 1 : 0); k <= i; k++)
            CHECK(ct_loader_read(ls, k, 1, a16, b16) == CT_OK);
        same &= memcmp(a16, x16, sizeof(int32_t) * 16) == 0 && memcmp(b16, y16, sizeof(int32_t) * 16) == 0;
    }
    CHECK_MSG(same, "streamed samples differ from cold reads");
    CHECK(ct_loader_wait_seconds(ls) >= 0.0);
    CHECK(ct_loader_bytes_fetched(ls) > 0);
    ct_loader_free(ls);

    /* too short for one sample */
    snprintf(p, sizeof p, "%s/tiny.bin", dir);
    write_shard(p, CT_SHARD_MAGIC_U16, 1, 5, 5, 2, 50);
    bad = NULL;
    CAPTURE_STDERR(CHECK(open_loader(p, T, V, 1, 1, &bad) == CT_ERR_INVALID_ARG));
    CHECK_CAPTURED("no sample");

    free(in1);
    free(tg1);
    free(in2);
    free(tg2);
    free(inf);
    free(tgf);
    return ct_test_finish("test_loader");
}
