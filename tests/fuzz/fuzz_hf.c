/* Fuzzes the Hugging Face import readers (trainer/hf.c): the input up to
 * its first NUL as config.json (ct_hf_parse_config, GPT-2 or Llama), the
 * rest as a safetensors JSON header (ct_hf_parse_header), as `ctrain
 * import` reads them: the dims from config.json must pass the config's
 * ranges first (the import checks them by loading the resolved config),
 * else a tiny model's dims are used, so the header is fuzzed either way.
 * The same rest is also read as a model.safetensors.index.json
 * (ct_hf_parse_index). */
#include "core/config.h"
#include "fuzz.h"
#include "trainer/trainer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *nul = memchr(p, 0, size);
    size_t clen = nul ? (size_t)(nul - p) : size;
    const char *hdr = nul ? nul + 1 : p + size;
    size_t hlen = (size_t)(p + size - hdr);

    ct_config_t cfg;
    ct_config_defaults(&cfg);
    ct_model_config_t hm = cfg.model;
    int use_hf = ct_hf_parse_config(p, clen, "config.json", &hm) == CT_OK;
    if (use_hf) {
        FUZZ_REQUIRE(hm.n_layer > 0 && hm.n_head > 0 && hm.n_embd % hm.n_head == 0 &&
                     hm.vocab_size > 0 && hm.max_seq_len > 0);
        FUZZ_REQUIRE(hm.arch != CT_ARCH_LLAMA || (hm.ffn_dim > 0 && hm.n_kv_head >= 0));
        cfg.model = hm;
        if (cfg.train.seq_len > hm.max_seq_len) cfg.train.seq_len = hm.max_seq_len;
        char *y = ct_config_to_yaml(&cfg); /* what cmd_import checks */
        ct_config_t check;
        if (y && ct_config_load_string(y, "the imported config", &check) == CT_OK)
            ct_config_free(&check);
        else
            use_hf = 0;
        free(y);
    }
    if (!use_hf) {
        cfg.model.n_layer = 1, cfg.model.n_head = 1, cfg.model.n_embd = 4;
        cfg.model.max_seq_len = 4, cfg.model.vocab_size = 8;
    }
    ct_model_dims_t d;
    ct_model_dims(&cfg.model, 1, 0, &d);
    int n = 0;
    ct_hf_tensor_t *e = ct_hf_tensors(&d, &n);
    FUZZ_REQUIRE(e != NULL && n == (d.arch == CT_ARCH_LLAMA ? 2 + 9 * d.L + !d.tied : 4 + 12 * d.L));
    ct_hf_read_t *reads = NULL;
    int nr = 0;
    const int64_t data_len = 1 << 20;
    if (ct_hf_parse_header(hdr, hlen, "model.safetensors", e, n, data_len, &reads, &nr) == CT_OK) {
        FUZZ_REQUIRE(nr >= n && nr <= n + 1);
        for (int i = 0; i < nr; i++) {
            const ct_hf_tensor_t *t = &e[reads[i].entry < n ? reads[i].entry : 0];
            size_t esz = reads[i].dtype == 4 ? 4 : 2;
            FUZZ_REQUIRE(reads[i].count == (size_t)t->R * t->K);
            FUZZ_REQUIRE(reads[i].offset >= 0 &&
                         reads[i].offset + (int64_t)(reads[i].count * esz) <= data_len);
        }
    }
    free(reads);
    char **files = NULL;
    int nf = 0, *file_of = malloc((size_t)(n + 1) * sizeof *file_of);
    FUZZ_REQUIRE(file_of != NULL);
    if (ct_hf_parse_index(hdr, hlen, "model.safetensors.index.json", e, n, &files, &nf,
                          file_of) == CT_OK) {
        for (int k = 0; k < n; k++) FUZZ_REQUIRE(file_of[k] >= 0 && file_of[k] < nf);
        for (int f = 0; f < nf; f++) {
            FUZZ_REQUIRE(files[f][0] && !strchr(files[f], '/'));
            free(files[f]);
        }
        free(files);
    }
    free(file_of);
    free(e);
    ct_config_free(&cfg);
    return 0;
}
