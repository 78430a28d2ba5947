/* The whole Llama on the GPU (bf16) against the CPU model (fp32), label gpu;
 * exits 77 (skipped) without a CUDA device. The GPT-2 test
 * (test_gpu_model.c) with Llama's shapes and the same tolerances:
 * 1. Gradients of one forward/backward from the same weights: relative L2
 *    error of each tensor's gradient <= 5e-2; the fused forward_backward
 *    (the LM head's forward and backward chunk by chunk) gives the separate
 *    calls' loss and gradients (1e-6 relative).
 * 2. Training: 10 AdamW steps (the trainer's forward_backward) on the same
 *    structured token stream; every step's loss within 2e-2 absolute +
 *    1e-2 relative of the CPU's.
 * 3. The weights copied back to the host stay within 1e-2 relative L2 of
 *    the CPU's after those steps.
 * Each for grouped-query attention (n_kv_head < n_head) with a tied and an
 * untied head, multi-query attention and plain multi-head attention, at
 * odd-ish widths (a SwiGLU width that is no power of two, llama3 RoPE scaling on
 * one), with head sizes that take the flash kernels and ones that take the
 * per-row kernels. With cuDNN (a real GPU; not on the emulator) the same
 * training checks run model.attention cudnn, cuDNN's SDPA with fewer
 * key/value heads; without it, asking for cudnn fails. Also: ln_gelu
 * recompute is refused with a hint (gelu, the default, is nothing to a
 * Llama), and model.device auto knows which layouts the GPU path takes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
#define C_ 48
#define F_ 88
#define V_ 200
#define DROP 0.2f
#define LR_ 3e-3f
#define NBATCH 2 /* two batches, repeated: the small model learns them within 10 steps */
#else
#define B 16
#define T 128
#define L_ 4
#define C_ 192 /* head sizes 32, 48, 64: flash and per-row kernels */
#define F_ 352
#define V_ 4096
#define DROP 0.2f
#define LR_ 1e-3f
#define NBATCH STEPS
#endif
#define STEPS 10

typedef struct {
    const char *name;
    int nh, nkv, tied, llama3;
    ct_attention_t attn;
} variant_t;

static const variant_t variants[] = {
    {"gqa, tied head", 6, 2, 1, 0, CT_ATTENTION_AUTO},
    {"gqa, untied head, llama3 rope", 6, 3, 0, 1, CT_ATTENTION_AUTO},
    {"mqa, untied head", 4, 1, 0, 0, CT_ATTENTION_AUTO},
    {"mha, tied head", 4, 4, 1, 0, CT_ATTENTION_AUTO},
    {"gqa, head size 16 (flash kernels on the emulator)", 3, 1, 0, 0, CT_ATTENTION_AUTO},
};
static const variant_t cudnn_variant = {"gqa, untied head, cudnn", 6, 2, 0, 0,
                                        CT_ATTENTION_CUDNN};

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

static ct_config_t llama_config(const variant_t *v)
{
    ct_config_t cfg;
    ct_config_defaults(&cfg);
    cfg.model.arch = CT_ARCH_LLAMA;
    cfg.model.n_layer = L_;
    cfg.model.n_head = v->nh;
    cfg.model.n_kv_head = v->nkv;
    cfg.model.n_embd = C_;
    cfg.model.ffn_dim = F_;
    cfg.model.max_seq_len = T + 3;
    cfg.model.vocab_size = V_;
    cfg.model.tie_embeddings = v->tied;
    cfg.model.rope_theta = 10000.0f;
    if (v->llama3) {
        cfg.model.rope_scaling = CT_ROPE_SCALING_LLAMA3;
        cfg.model.rope_factor = 8.0f;
        cfg.model.rope_original_max_seq_len = 8;
    }
    cfg.model.attention = v->attn;
    cfg.optim.lr = LR_;
    cfg.optim.warmup_steps = 0;
    return cfg;
}

static void setup(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg, int gpu)
{
    CHECK(ct_model_init(m, &cfg->model, gpu ? 0 : B, gpu ? 0 : T, NULL) == CT_OK);
    CHECK(ct_optim_init(o, m, 0, NULL, 25) == CT_OK);
    ct_model_init_weights(m, 1337, cfg->model.init_std);
    if (gpu) {
        CHECK(ct_model_to_device(m, o, cfg, NULL, 0, B, T) == CT_OK);
        CHECK(!strcmp(ct_model_backend_name(m), "llama/cuda"));
        CHECK(ct_model_device_name(m) != NULL);
    }
}

static void teardown(ct_model_t *m, ct_optim_t *o)
{
    ct_optim_free(o);
    ct_model_free(m);
}

static void test_gradients(const variant_t *v)
{
    ct_config_t cfg = llama_config(v);
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
    CHECK_MSG(fabsf(lc - lg) <= 1e-2f + 1e-2f * fabsf(lc), "%s: loss cpu %.6f gpu %.6f", v->name,
              lc, lg);
    ct_model_backward(&mc, inp, B, T, 1.0f);
    mg.grad_sync = 1;
    ct_model_backward(&mg, inp, B, T, 1.0f);
    float *gg = malloc(mg.num_params * sizeof(float));
    ct_model_grads_to_host(&mg, gg);
    for (int i = 0; i < mc.n_tensors; i++) {
        double e = rel_l2(gg + mg.offsets[i], mc.grads + mc.offsets[i], mc.sizes[i]);
        fprintf(stderr, "%s: gradient of %s: relative L2 error %.4f\n", v->name,
                ct_model_tensor_name(&mc.d, i), e);
        CHECK_MSG(e <= 5e-2, "%s: gradient of %s: relative L2 error %.4f", v->name,
                  ct_model_tensor_name(&mc.d, i), e);
    }
    /* The trainer's fused call (the head's forward and backward chunk by
     * chunk) against the separate calls above (whose backward runs the head
     * again): the same loss and gradients. */
    ct_model_zero_grad(&mg);
    float lfb = ct_model_forward_backward(&mg, inp, tgt, B, T, 1.0f);
    CHECK_MSG(fabsf(lfb - lg) <= 1e-6f * fabsf(lg), "%s: loss forward_backward %.7f forward %.7f",
              v->name, lfb, lg);
    float *gf = malloc(mg.num_params * sizeof(float));
    ct_model_grads_to_host(&mg, gf);
    for (int i = 0; i < mg.n_tensors; i++) {
        double e = rel_l2(gf + mg.offsets[i], gg + mg.offsets[i], mg.sizes[i]);
        CHECK_MSG(e <= 1e-6, "%s: gradient of %s: forward_backward vs forward + backward, "
                  "relative L2 %.2e", v->name, ct_model_tensor_name(&mg.d, i), e);
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

static void test_training(const variant_t *v)
{
    ct_config_t cfg = llama_config(v);
    ct_model_t mc, mg;
    ct_optim_t oc, og;
    setup(&mc, &oc, &cfg, 0);
    float ref[STEPS], got[STEPS];
    train(&mc, &oc, &cfg, ref);
    CHECK_MSG(ref[STEPS - 1] < ref[0] - DROP, "%s: CPU loss %.4f -> %.4f", v->name, ref[0],
              ref[STEPS - 1]);
    setup(&mg, &og, &cfg, 1);
    train(&mg, &og, &cfg, got);
    for (int s = 0; s < STEPS; s++) {
        fprintf(stderr, "%s step %d: cpu %.5f gpu %.5f\n", v->name, s + 1, ref[s], got[s]);
        CHECK_MSG(fabsf(got[s] - ref[s]) <= 2e-2f + 1e-2f * fabsf(ref[s]),
                  "%s: step %d loss gpu %.5f cpu %.5f", v->name, s + 1, got[s], ref[s]);
    }
    ct_model_to_host(&mg, &og);
    double e = rel_l2(mg.params, mc.params, mc.num_params);
    CHECK_MSG(e <= 1e-2, "%s: weights after %d steps differ by %.4f relative L2", v->name, STEPS,
              e);
    teardown(&mg, &og);
    teardown(&mc, &oc);
    ct_config_free(&cfg);
}

/* A device context with cuDNN: a build with it on a real GPU. */
static int have_cudnn(void)
{
    ct_cuda_t *ctx = NULL;
    ct_status_t st;
    CAPTURE_STDERR(st = ct_cuda_init(0, CT_ATTN_CUDNN, &ctx));
    if (st != CT_OK) return 0;
    ct_cuda_free(ctx);
    return 1;
}

/* What the GPU path does not take is refused on the spot, with a hint. */
static void test_refusals(int cudnn)
{
    ct_config_t cfg = llama_config(&variants[0]);
    ct_model_t m;
    ct_optim_t o;
    CHECK(ct_model_init(&m, &cfg.model, 0, 0, NULL) == CT_OK);
    CHECK(ct_optim_init(&o, &m, 0, NULL, 25) == CT_OK);
    ct_status_t st;
    if (!cudnn) {
        cfg.model.attention = CT_ATTENTION_CUDNN;
        CAPTURE_STDERR(st = ct_model_to_device(&m, &o, &cfg, NULL, 0, B, T));
        CHECK(st == CT_ERR_UNSUPPORTED);
        CHECK_CAPTURED("no cuDNN");
        CHECK(!strcmp(ct_model_backend_name(&m), "llama/cpu"));
        cfg.model.attention = CT_ATTENTION_AUTO;
    }
    cfg.model.recompute = CT_RECOMPUTE_LN_GELU;
    CAPTURE_STDERR(st = ct_model_to_device(&m, &o, &cfg, NULL, 0, B, T));
    CHECK(st == CT_ERR_UNSUPPORTED);
    CHECK_CAPTURED("model.recompute: gelu or none");
    CHECK(!ct_model_cuda_supports(&cfg));
    /* gelu, the default, has nothing to recompute in a Llama */
    cfg.model.recompute = CT_RECOMPUTE_GELU;
    CHECK(ct_model_cuda_supports(&cfg));
    cfg.model.recompute = CT_RECOMPUTE_NONE;
    CHECK(ct_model_cuda_supports(&cfg));
    cfg.parallel.tp = 2;
    CHECK(ct_model_cuda_supports(&cfg)); /* TP: test_llama_parallel_emu.sh */
    cfg.parallel.sp = 1;
    CHECK(ct_model_cuda_supports(&cfg)); /* and SP, there too */
    cfg.model.recompute = CT_RECOMPUTE_LN_GELU;
    CHECK(!ct_model_cuda_supports(&cfg));
    teardown(&m, &o);
    ct_config_free(&cfg);
}

int main(void)
{
    if (ct_cuda_device_count() == 0) {
        fprintf(stderr, "test_llama_gpu_model: no CUDA device, skipped\n");
        return 77;
    }
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        test_gradients(&variants[i]);
        test_training(&variants[i]);
    }
    const int cudnn = have_cudnn();
    if (cudnn) {
        test_gradients(&cudnn_variant);
        test_training(&cudnn_variant);
    } else {
        fprintf(stderr, "test_llama_gpu_model: no cuDNN, its variant skipped\n");
    }
    test_refusals(cudnn);
    return ct_test_finish("test_llama_gpu_model");
}
