/* Loading llm.c's gpt2_*.bin (magic 20240326, version 3, fp32): a file
 * written in that layout by hand loads into identical parameters, and files
 * with the wrong version, mismatched dims or a short body are rejected with
 * messages naming the file and the key. */
#include "test_util.h"
#include "model/model.h"

static void write_llmc(const char *path, const ct_model_t *m, int version, int L_override,
                       size_t nparams)
{
    int32_t h[256] = {0};
    h[0] = 20240326;
    h[1] = version;
    h[2] = m->d.maxT;
    h[3] = m->d.V;
    h[4] = L_override ? L_override : m->d.L;
    h[5] = m->d.NH;
    h[6] = m->d.C;
    h[7] = m->d.Vp;
    FILE *f = fopen(path, "wb");
    fwrite(h, 4, 256, f);
    fwrite(m->params, sizeof(float), nparams, f);
    fclose(f);
}

int main(void)
{
    const char *dir = ct_test_dir("llmc");
    ct_model_config_t mc = {.n_layer = 2, .n_head = 2, .n_embd = 16, .max_seq_len = 8,
                            .vocab_size = 50, .init_from = "", .init_std = 0.02f};
    ct_model_t src, dst;
    CHECK(ct_model_init(&src, &mc, 1, 8, NULL) == CT_OK);
    CHECK(ct_model_init(&dst, &mc, 1, 8, NULL) == CT_OK);
    ct_model_init_weights(&src, 17, 0.02f);
    CHECK(src.d.Vp == 128);
    char path[4200];

    snprintf(path, sizeof path, "%s/good.bin", dir);
    write_llmc(path, &src, 3, 0, src.num_params);
    CHECK(ct_model_load_llmc(&dst, path) == CT_OK);
    CHECK(memcmp(src.params, dst.params, src.num_params * sizeof(float)) == 0);
    /* same logits, i.e. the tensor order is llm.c's */
    int32_t inp[8] = {1, 2, 3, 4, 5, 6, 7, 49};
    ct_model_forward(&src, inp, NULL, 1, 8);
    ct_model_forward(&dst, inp, NULL, 1, 8);
    for (int t = 0; t < 8; t++)
        CHECK(memcmp(ct_model_logits_row(&src, t), ct_model_logits_row(&dst, t),
                     128 * sizeof(float)) == 0);

    snprintf(path, sizeof path, "%s/bf16.bin", dir);
    write_llmc(path, &src, 5, 0, src.num_params);
    CAPTURE_STDERR(CHECK(ct_model_load_llmc(&dst, path) == CT_ERR_CORRUPT));
    CHECK_CAPTURED("bf16.bin");
    CHECK_CAPTURED("magic/version 20240326/5");

    snprintf(path, sizeof path, "%s/dims.bin", dir);
    write_llmc(path, &src, 3, 3, src.num_params);
    CAPTURE_STDERR(CHECK(ct_model_load_llmc(&dst, path) == CT_ERR_CONFIG));
    CHECK_CAPTURED("dims.bin");
    CHECK_CAPTURED("model.n_layer is 3 in the file but 2 in the config");

    snprintf(path, sizeof path, "%s/short.bin", dir);
    write_llmc(path, &src, 3, 0, src.num_params - 10);
    CAPTURE_STDERR(CHECK(ct_model_load_llmc(&dst, path) == CT_ERR_CORRUPT));
    CHECK_CAPTURED("short.bin: truncated");

    snprintf(path, sizeof path, "%s/absent.bin", dir);
    CAPTURE_STDERR(CHECK(ct_model_load_llmc(&dst, path) == CT_ERR_NOT_FOUND));
    CHECK_CAPTURED("absent.bin");

    ct_model_free(&src);
    ct_model_free(&dst);
    return ct_test_finish("test_llmc");
}
