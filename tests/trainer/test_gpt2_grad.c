/* Whole-model checks on a tiny GPT-2:
 * 1. gradients against central finite differences on a few hundred random
 *    parameter coordinates (every tensor is sampled);
 * 2. overfitting one batch: the loss falls below 0.05 within 400 steps;
 * 3. activations sized for (B, T) serve a smaller (1, t) forward with the
 *    same logits as a model sized exactly (1, t).
 * Tolerance for 1: |num - ana| <= 2e-2 * max(|num|, |ana|) + 2e-4, with
 * eps = 1e-2 in fp32 (truncation error O(eps^2), rounding ~1e-5). */
#include "core/rng.h"
#include "test_util.h"
#include "model/model.h"
#include "trainer/trainer.h"

static ct_model_config_t tiny_cfg(void)
{
    ct_model_config_t c = {.n_layer = 2, .n_head = 2, .n_embd = 16, .max_seq_len = 8,
                           .vocab_size = 37, .init_from = "", .init_std = 0.1f};
    return c;
}

static void fill_tokens(int32_t *x, int n, int V, uint64_t seed)
{
    ct_rng_t r;
    ct_rng_seed(&r, seed, 0, 0);
    for (int i = 0; i < n; i++) x[i] = (int32_t)ct_rng_below(&r, (uint64_t)V);
}

static void test_gradcheck(void)
{
    ct_model_config_t mc = tiny_cfg();
    const int B = 2, T = 7;
    ct_model_t m;
    CHECK(ct_model_init(&m, &mc, B, T, NULL) == CT_OK);
    ct_model_init_weights(&m, 3, mc.init_std);
    /* non-trivial LayerNorm params and biases, so their gradients matter */
    ct_rng_t r;
    ct_rng_seed(&r, 99, 0, 0);
    for (int i = 0; i < m.n_tensors; i++)
        if (!ct_model_tensor_decays(&m.d, i))
            for (size_t j = 0; j < m.sizes[i]; j++)
                m.params[m.offsets[i] + j] += 0.1f * ct_rng_normal(&r);
    int32_t inp[14], tgt[14];
    fill_tokens(inp, B * T, mc.vocab_size, 1);
    fill_tokens(tgt, B * T, mc.vocab_size, 2);

    ct_model_zero_grad(&m);
    float loss = ct_model_forward(&m, inp, tgt, B, T);
    CHECK(loss > 3.0f && loss < 4.5f);
    ct_model_backward(&m, inp, B, T, 1.0f);

    const float eps = 1e-2f;
    int bad = 0, checked = 0, per_tensor = 20;
    for (int ti = 0; ti < m.n_tensors; ti++) {
        size_t n = m.sizes[ti];
        if (ti == 0) n = (size_t)mc.vocab_size * mc.n_embd; /* padding rows: no gradient */
        for (int k = 0; k < per_tensor; k++) {
            size_t j = m.offsets[ti] + (size_t)ct_rng_below(&r, n);
            if (ti == 1) j = m.offsets[1] + (size_t)ct_rng_below(&r, (uint64_t)T * mc.n_embd);
            float save = m.params[j];
            m.params[j] = save + eps;
            float lp = ct_model_forward(&m, inp, tgt, B, T);
            m.params[j] = save - eps;
            float lm = ct_model_forward(&m, inp, tgt, B, T);
            m.params[j] = save;
            float num = (lp - lm) / (2 * eps), ana = m.grads[j];
            float tol = 2e-2f * fmaxf(fabsf(num), fabsf(ana)) + 2e-4f;
            checked++;
            if (fabsf(num - ana) > tol) {
                bad++;
                fprintf(stderr, "grad mismatch %s[%zu]: numeric %.6g analytic %.6g\n",
                        ct_model_tensor_name(&m.d, ti), j - m.offsets[ti], num, ana);
            }
        }
    }
    CHECK_MSG(bad == 0, "%d of %d gradient coordinates out of tolerance", bad, checked);
    /* padding rows of wte get no gradient */
    float pad = 0.0f;
    for (size_t j = (size_t)mc.vocab_size * mc.n_embd; j < m.sizes[0]; j++)
        pad += fabsf(m.grads[j]);
    CHECK(pad == 0.0f);
    ct_model_free(&m);
}

static void test_overfit(void)
{
    ct_model_config_t mc = tiny_cfg();
    mc.n_embd = 32;
    mc.max_seq_len = 16;
    mc.init_std = 0.02f;
    const int B = 2, T = 16;
    ct_model_t m;
    CHECK(ct_model_init(&m, &mc, B, T, NULL) == CT_OK);
    ct_model_init_weights(&m, 5, mc.init_std);
    int32_t inp[32], tgt[32];
    fill_tokens(inp, B * T, mc.vocab_size, 11);
    fill_tokens(tgt, B * T, mc.vocab_size, 12);
    ct_optim_config_t o = {.lr = 1e-2f, .min_lr_frac = 1.0f, .warmup_steps = 0,
                           .decay = CT_DECAY_CONSTANT, .weight_decay = 0.0f, .beta1 = 0.9f,
                           .beta2 = 0.95f, .eps = 1e-8f, .grad_clip = 1.0f};
    ct_optim_t opt;
    CHECK(ct_optim_init(&opt, &m, 0, NULL, 25) == CT_OK);
    float loss = 0.0f, norm;
    int step;
    for (step = 0; step < 400; step++) {
        ct_model_zero_grad(&m);
        loss = ct_model_forward(&m, inp, tgt, B, T);
        if (loss < 0.05f) break;
        ct_model_backward(&m, inp, B, T, 1.0f);
        CHECK(ct_optim_step(&opt, &m, &o, ct_lr_at(&o, step, 400), step + 1, &norm) == CT_OK);
    }
    fprintf(stderr, "overfit: loss %.4f after %d steps\n", loss, step);
    CHECK_MSG(loss < 0.05f, "loss %.4f did not fall below 0.05 in 400 steps", loss);
    ct_optim_free(&opt);
    ct_model_free(&m);
}

static void test_smaller_forward(void)
{
    ct_model_config_t mc = tiny_cfg();
    ct_model_t big, small;
    CHECK(ct_model_init(&big, &mc, 3, 8, NULL) == CT_OK);
    CHECK(ct_model_init(&small, &mc, 1, 5, NULL) == CT_OK);
    ct_model_init_weights(&big, 7, 0.1f);
    ct_model_init_weights(&small, 7, 0.1f);
    CHECK(memcmp(big.params, small.params, big.num_params * sizeof(float)) == 0);
    int32_t inp[5];
    fill_tokens(inp, 5, mc.vocab_size, 4);
    ct_model_forward(&big, inp, NULL, 1, 5);
    ct_model_forward(&small, inp, NULL, 1, 5);
    for (int t = 0; t < 5; t++)
        CHECK(memcmp(ct_model_logits_row(&big, t), ct_model_logits_row(&small, t),
                     (size_t)big.d.Vp * sizeof(float)) == 0);
    ct_model_free(&big);
    ct_model_free(&small);
}

int main(void)
{
    test_gradcheck();
    test_overfit();
    test_smaller_forward();
    return ct_test_finish("test_gpt2_grad");
}
