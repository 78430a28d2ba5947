/* Fuzzes the shard reader (data/shard.c, data/loader.c): the first 1024
 * bytes as a header checked against the input's size
 * (ct_shard_check_header); a shard whose header passes is then written to a
 * file and read whole through the loader, which checks every token against
 * the vocabulary. Header words 3 and 4 (zero in real shards, unchecked)
 * choose the sequence length and the vocabulary size, so the fuzzer can
 * move both. */
#include <unistd.h>

#include "data/data.h"
#include "fuzz.h"

static char shard_path[64];

static void remove_shard(void) { unlink(shard_path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t hdr[CT_SHARD_HEADER_BYTES] = {0};
    memcpy(hdr, data, size < sizeof hdr ? size : sizeof hdr);
    ct_shard_info_t info;
    if (ct_shard_check_header(hdr, (int64_t)size, "fuzz.bin", &info) != CT_OK) return 0;
    FUZZ_REQUIRE(info.width == 2 || info.width == 4);
    FUZZ_REQUIRE(CT_SHARD_HEADER_BYTES + info.ntok * info.width == (int64_t)size);
    if (size > (1 << 20)) return 0;
    if (!shard_path[0]) {
        snprintf(shard_path, sizeof shard_path, "/tmp/ct_fuzz_shard.%d.bin", (int)getpid());
        atexit(remove_shard);
    }
    FILE *f = fopen(shard_path, "wb");
    if (!f) abort();
    if (fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
    uint32_t w3, w4;
    memcpy(&w3, hdr + 12, 4);
    memcpy(&w4, hdr + 16, 4);
    ct_loader_opts_t o = {.spec = shard_path, .T = 1 + (int)(w3 % 64),
                          .vocab_size = 1 + (int)(w4 % 70000), .seed = 1, .chunk_tokens = 64,
                          .window_chunks = 2, .shuffle = (int)(w3 >> 8 & 1), .threads = 1};
    ct_loader_t *l = NULL;
    if (ct_loader_init(&o, &l) != CT_OK) return 0;
    int64_t n = ct_loader_num_samples(l);
    int32_t *in = malloc(sizeof(int32_t) * (size_t)o.T), *tg = malloc(sizeof(int32_t) * (size_t)o.T);
    for (int64_t i = 0; i < n && i < 4096; i++) {
        if (ct_loader_read(l, i, 1, in, tg) != CT_OK) break;
        for (int t = 0; t < o.T; t++) FUZZ_REQUIRE(in[t] >= 0 && in[t] < o.vocab_size);
    }
    free(in);
    free(tg);
    ct_loader_free(l);
    return 0;
}
