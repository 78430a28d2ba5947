/* The whole GPT-2 on the GPU (bf16) against the CPU model (fp32), label gpu;
 * exits 77 (skipped) without a CUDA device.
 * 1. Gradients of one forward/backward from the same weights: relative L2
 *    error of each tensor's gradient <= 5e-2 (bf16 activations carry 8
 *    mantissa bits; the error of a sum over N*C products of such values is
 *    ~1e-2 relative in aggregate).
 * 2. Training: 10 AdamW steps of configs/tiny.yaml's model (L=4, NH=4,
 *    C=128, V=4096, B=16, T=128) on the same structured token stream; every
 *    step's loss within 2e-2 absolute + 1e-2 relative of the CPU's, for
 *    each recompute setting and for the plain and cuDNN attention.
 * 3. The weights copied back to the host (ct_model_to_host) stay within
 *    1e-2 relative L2 of the CPU's after those steps. */
#include <math.h>
#include <stdlib.h>

#include "core/config.h"
#include "core/rng.h"
#include "kernels/kernels.h"
#include "test_util.h"
#include "model/model.h"

#ifdef CT_TEST_EMU
/* on tests/cuda_emu (the kernels executed on the CPU, one OS thread per
 * CUDA thread): a small model, same checks */
#define B 2
#define T 16
#define L_ 2
#define NH_ 2
#define C_ 32
#define V_ 200
#define DROP 0.2f
#define LR_ 3e-3f
#define NBATCH 2 /* two batches, repeated: the small model learns them within 10 steps */
#else
#define B 16
#define T 128
#define L_ 4
#define NH_ 4
#define C_ 128
#define V_ 4096
#define DROP 0.2f
#define LR_ 1e-3f
#define NBATCH STEPS
#endif
#define STEPS 10

/* A learnable stream: each token mostly follows from the previous one. */
static void make_batch(int32_t *inp, int32_t *tgt, int V, int step)
{
    ct_rng_t r;
    ct_rng_seed(&r, 7, (uint64_t)step, 0);
    for (int b = 0; b < B; b++) {
        int32_t x = (int32_t)ct_rng_below(&r, (uint64_t)V);
        for (int t = 0; t <= T; t++) {
            int32_t nx = ct_rng_below(&r, 4) ? (int32_t)((x * 17 + 3) % V)
                                              : (int32_t)ct_rng_below(&r, (uint64_t)V);
            if (t < T) inp[b * T + t] = x;
            if (t > 0) tgt[b * T + t - 1] = x;
            x = nx;
        }
    }
}

static double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static ct_config_t tiny_config(ct_recompute_t rc, ct_attention_t attn)
{
    ct_config_t cfg;
    ct_config_defaults(&cfg);
    cfg.model.n_layer = L_;
    cfg.model.n_head = NH_;
    cfg.model.n_embd = C_;
    cfg.model.max_seq_len = T;
    cfg.model.vocab_size = V_;
    cfg.model.recompute = rc;
    cfg.model.attention = attn;
    cfg.optim.lr = LR_;
    cfg.optim.warmup_steps = 0;
    return cfg;
}

static void setup(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg, int gpu)
{
    CHECK(ct_model_init(m, &cfg->model, gpu ? 0 : B, gpu ? 0 : T, NULL) == CT_OK);
    CHECK(ct_optim_init(o, m, 0, NULL, 25) == CT_OK);
    ct_model_init_weights(m, 1337, cfg->model.init_std);
    if (gpu) CHECK(ct_model_to_device(m, o, cfg, NULL, 0, B, T) == CT_OK);
}

static void teardown(ct_model_t *m, ct_optim_t *o)
{
    ct_optim_free(o);
    ct_model_free(m);
}

static void test_gradients(void)
{
    ct_config_t cfg = tiny_config(CT_RECOMPUTE_NONE, CT_ATTENTION_AUTO);
    ct_model_t mc, mg;
    ct_optim_t oc, og;
    setup(&mc, &oc, &cfg, 0);
    setup(&mg, &og, &cfg, 1);
    int32_t *inp = malloc(B * T * sizeof *inp), *tgt = malloc(B * T * sizeof *tgt);
    make_batch(inp, tgt, cfg.model.vocab_size, 0);
    ct_model_zero_grad(&mc);
    ct_model_zero_grad(&mg);
    float lc = ct_model_forward(&mc, inp, tgt, B, T);
    float lg = ct_model_forward(&mg, inp, tgt, B, T);
    CHECK_MSG(fabsf(lc - lg) <= 1e-2f + 1e-2f * fabsf(lc), "loss cpu %.6f gpu %.6f", lc, lg);
    ct_model_backward(&mc, inp, B, T, 1.0f);
    mg.grad_sync = 1;
    ct_model_backward(&mg, inp, B, T, 1.0f);
    float *gg = malloc(mg.num_params * sizeof(float));
    ct_model_grads_to_host(&mg, gg);
    for (int i = 0; i < mc.n_tensors; i++) {
        double e = rel_l2(gg + mg.offsets[i], mc.grads + mc.offsets[i], mc.sizes[i]);
        CHECK_MSG(e <= 5e-2, "gradient of %s: relative L2 error %.4f", ct_model_tensor_name(&mc.d, i), e);
    }
    /* The trainer's fused call (the head's forward and backward chunk by
     * chunk) against the separate calls above (whose backward runs the head
     * again): the same loss and gradients. */
    ct_model_zero_grad(&mg);
    float lfb = ct_model_forward_backward(&mg, inp, tgt, B, T, 1.0f);
    CHECK_MSG(fabsf(lfb - lg) <= 1e-6f * fabsf(lg), "loss forward_backward %.7f forward %.7f",
              lfb, lg);
    float *gf = malloc(mg.num_params * sizeof(float));
    ct_model_grads_to_host(&mg, gf);
    for (int i = 0; i < mg.n_tensors; i++) {
        double e = rel_l2(gf + mg.offsets[i], gg + mg.offsets[i], mg.sizes[i]);
        CHECK_MSG(e <= 1e-6, "gradient of %s: forward_backward vs forward + backward, relative "
                  "L2 %.2e", ct_model_tensor_name(&mg.d, i), e);
    }
    free(gf);
    free(gg);
    free(inp);
    free(tgt);
    teardown(&mc, &oc);
    teardown(&mg, &og);
    ct_config_free(&cfg);
}

#ifdef CT_TEST_EMU
/* tests/cuda_emu's counters of device allocations and host waits */
extern long ct_emu_count_malloc, ct_emu_count_sync;
#endif

/* STEPS optimizer steps; losses into out[STEPS]. On the emulator, also
 * checks that a GPU step allocates no device memory and waits for the
 * device exactly twice: for the loss and for the gradient norm. */
static void train(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg, float *out)
{
    int32_t *inp = malloc(B * T * sizeof *inp), *tgt = malloc(B * T * sizeof *tgt);
    for (int s = 0; s < STEPS; s++) {
#ifdef CT_TEST_EMU
        long mallocs = ct_emu_count_malloc, syncs = ct_emu_count_sync;
#endif
        make_batch(inp, tgt, cfg->model.vocab_size, s % NBATCH);
        ct_model_zero_grad(m);
        m->grad_sync = 1;
        out[s] = ct_model_forward_backward(m, inp, tgt, B, T, 1.0f);
        float norm;
        CHECK(ct_optim_step(o, m, &cfg->optim, cfg->optim.lr, s + 1, &norm) == CT_OK);
        CHECK(isfinite(norm));
#ifdef CT_TEST_EMU
        if (ct_model_device_name(m)) {
            CHECK_MSG(ct_emu_count_malloc == mallocs, "step %d allocated device memory %ld times",
                      s + 1, ct_emu_count_malloc - mallocs);
            CHECK_MSG(ct_emu_count_sync - syncs == 2, "step %d waited for the device %ld times",
                      s + 1, ct_emu_count_sync - syncs);
        }
#endif
    }
    free(inp);
    free(tgt);
}

static void test_training(void)
{
    ct_config_t cfg = tiny_config(CT_RECOMPUTE_NONE, CT_ATTENTION_AUTO);
    ct_model_t mc;
    ct_optim_t oc;
    setup(&mc, &oc, &cfg, 0);
    float ref[STEPS];
    train(&mc, &oc, &cfg, ref);
    CHECK_MSG(ref[STEPS - 1] < ref[0] - DROP, "CPU loss %.4f -> %.4f", ref[0], ref[STEPS - 1]);

    const struct { ct_recompute_t rc; ct_attention_t attn; const char *name; } runs[] = {
        {CT_RECOMPUTE_NONE, CT_ATTENTION_AUTO, "recompute none, attention auto"},
        {CT_RECOMPUTE_GELU, CT_ATTENTION_AUTO, "recompute gelu"},
        {CT_RECOMPUTE_LN_GELU, CT_ATTENTION_AUTO, "recompute ln_gelu"},
        {CT_RECOMPUTE_NONE, CT_ATTENTION_PLAIN, "plain attention"},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        ct_config_t gcfg = tiny_config(runs[r].rc, runs[r].attn);
        ct_model_t mg;
        ct_optim_t og;
        setup(&mg, &og, &gcfg, 1);
        float got[STEPS];
        train(&mg, &og, &gcfg, got);
        for (int s = 0; s < STEPS; s++) {
            fprintf(stderr, "%s step %d: cpu %.5f gpu %.5f\n", runs[r].name, s + 1, ref[s], got[s]);
            CHECK_MSG(fabsf(got[s] - ref[s]) <= 2e-2f + 1e-2f * fabsf(ref[s]),
                      "%s: step %d loss gpu %.5f cpu %.5f", runs[r].name, s + 1, got[s], ref[s]);
        }
        ct_model_to_host(&mg, &og);
        double e = rel_l2(mg.params, mc.params, mc.num_params);
        CHECK_MSG(e <= 1e-2, "%s: weights after %d steps differ by %.4f relative L2",
                  runs[r].name, STEPS, e);
        teardown(&mg, &og);
        ct_config_free(&gcfg);
    }
    teardown(&mc, &oc);
    ct_config_free(&cfg);
}

int main(void)
{
    if (ct_cuda_device_count() == 0) {
        fprintf(stderr, "test_gpu_model: no CUDA device, skipped\n");
        return 77;
    }
    test_gradients();
    test_training();
    return ct_test_finish("test_gpu_model");
}
