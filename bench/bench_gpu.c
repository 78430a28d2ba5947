/* GPU benchmark (bench/gpu.sh): training steps of GPT-2 124M and 350M at
 * T=1024 with the largest micro-batch that fits, and the bf16 GEMM rate at
 * 4096^3 through our matmul and through cuBLASLt alone.
 *   bench_gpu model L NH C [T] [steps] [auto|cudnn|plain] [B]
 *                                        one model (model.attention as given,
 *                                        default auto); prints key=value lines
 *   bench_gpu config CFG.yaml [T] [steps] [auto|cudnn|plain]
 *                                        the model of a ctrain config (GPT-2 or
 *                                        Llama, e.g. configs/smollm2-135m.yaml)
 *   bench_gpu gemm [M]                   the GEMM comparison
 *   bench_gpu attention B T NH HS [iters]
 *                                        causal attention forward and backward
 *                                        alone: the flash kernels, the per-row
 *                                        kernels and cuDNN (when built), ms and
 *                                        TFLOP/s each, and the flash results'
 *                                        largest difference from the per-row ones
 *   bench_gpu layernorm N C [iters]      the LayerNorm forward, fused residual +
 *                                        LayerNorm forward and backward alone
 *                                        (124M at B=64, T=1024: N=65536 C=768):
 *                                        ms per call and GB/s of the bytes moved
 * MFU = model FLOPs (6N + 12LCT per token, N without wpe) / time / the
 * device's bf16 dense peak (table in kernels/cuda/device.cu; CT_PEAK_TFLOPS
 * overrides). Tokens are random: speed does not depend on them. Exits 77
 * without a CUDA device. */
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/env.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "kernels/kernels.h"
#include "model/model.h"

static double peak_tflops(double table)
{
    const char *e = ct_env_get("CT_PEAK_TFLOPS");
    return e && *e ? atof(e) : table;
}

/* Tries B = 64, 48, 32, ... until the model and its activations fit (or
 * only B_only when it is > 0); cfg's model (GPT-2 or Llama) at sequence
 * length T. Prints the peak device memory next to the plan's total for the
 * same layout (`ctrain plan`). */
static int bench_config(ct_config_t *cfg_in, int T, int steps, int B_only)
{
    ct_config_t cfg = *cfg_in;
    const ct_attention_t attention = cfg.model.attention;
    const int V = cfg.model.vocab_size;
    if (cfg.model.max_seq_len < T) cfg.model.max_seq_len = T;
    const int tries[] = {64, 48, 40, 32, 24, 16, 12, 8, 4, 2, 1};
    ct_model_t m;
    ct_optim_t o;
    int B = 0;
    int saved = ct__log_level;
    /* B_only > 0: that micro-batch or nothing */
    const size_t ntries = B_only > 0 ? 1 : sizeof tries / sizeof tries[0];
    for (size_t i = 0; i < ntries; i++) {
        const int Btry = B_only > 0 ? B_only : tries[i];
        if (ct_model_init(&m, &cfg.model, 0, 0, NULL) != CT_OK) return 1;
        if (ct_optim_init(&o, &m, 0, NULL, 25) != CT_OK) return 1;
        ct_model_init_weights(&m, 1, 0.02f);
        ct__log_level = CT_LOG_LEVEL_WARN - 1; /* quiet out-of-memory tries */
        ct_status_t st = ct_model_to_device(&m, &o, &cfg, NULL, 0, Btry, T);
        ct__log_level = saved;
        if (st == CT_OK) {
            B = Btry;
            break;
        }
        ct_optim_free(&o);
        ct_model_free(&m);
        if (st != CT_ERR_NO_MEMORY) return 1;
    }
    if (!B) {
        if (B_only > 0) fprintf(stderr, "bench_gpu: B=%d does not fit\n", B_only);
        else fprintf(stderr, "bench_gpu: not even B=1 fits\n");
        return 1;
    }
    int32_t *inp = malloc((size_t)B * T * sizeof *inp), *tgt = malloc((size_t)B * T * sizeof *tgt);
    ct_rng_t r;
    ct_rng_seed(&r, 5, 0, 0);
    for (long i = 0; i < (long)B * T; i++) {
        inp[i] = (int32_t)ct_rng_below(&r, (uint64_t)V);
        tgt[i] = (int32_t)ct_rng_below(&r, (uint64_t)V);
    }
    double t_sum = 0.0;
    float loss = 0.0f, norm = 0.0f;
    for (int s = 0; s < steps + 3; s++) {
        double t0 = ct_time_now();
        ct_model_zero_grad(&m);
        m.grad_sync = 1;
        loss = ct_model_forward_backward(&m, inp, tgt, B, T, 1.0f);
        if (ct_optim_step(&o, &m, &cfg.optim, 1e-4f, s + 1, &norm) != CT_OK) return 1;
        if (s >= 3) t_sum += ct_time_now() - t0; /* 3 warm-up steps */
    }
    double dt = t_sum / steps, tokens = (double)B * T;
    double flops = ct_model_flops_per_token(&m, T) * tokens / dt;
    double peak = peak_tflops(ct_model_peak_tflops(&m)) * 1e12;
    printf("model %s L=%d NH=%d NKV=%d C=%d T=%d B=%d params=%.1fM device=\"%s\" attention=%s\n",
           ct_model_arch_name(cfg.model.arch), m.d.L, m.d.NH,
           m.d.NKV ? m.d.NKV : m.d.NH, m.d.C, T, B, m.num_params / 1e6, ct_model_device_name(&m),
           attention == CT_ATTENTION_PLAIN ? "plain" : attention == CT_ATTENTION_CUDNN ? "cudnn" : "auto");
    /* what `ctrain plan` says this run allocates, next to what it did */
    ct_model_plan_t plan;
    cfg.train.batch_size = B;
    cfg.train.seq_len = T;
    cfg.train.batch_tokens = 0;
    double plan_mib = ct_model_plan(&cfg, 1, 0, 0, 0, &plan) == CT_OK
                          ? plan.device.total / 1048576.0 : -1.0;
    printf("  ms_per_step=%.1f tokens_per_s=%.0f tflops=%.1f mfu=%s%.1f%% peak_mem_mib=%.0f "
           "plan_mib=%.0f loss=%.3f\n",
           dt * 1e3, tokens / dt, flops / 1e12, peak > 0 ? "" : "(unknown peak) ",
           peak > 0 ? 100.0 * flops / peak : 0.0, ct_model_peak_memory(&m) / 1048576.0, plan_mib,
           loss);
    free(inp);
    free(tgt);
    ct_optim_free(&o);
    ct_model_free(&m);
    return 0;
}

/* GPT-2 with L layers, NH heads, width C. */
static int bench_model(int L, int NH, int C, int T, int steps, ct_attention_t attention,
                       int B_only)
{
    ct_config_t cfg;
    ct_config_defaults(&cfg);
    cfg.model.attention = attention;
    cfg.model.n_layer = L;
    cfg.model.n_head = NH;
    cfg.model.n_embd = C;
    cfg.model.max_seq_len = T;
    cfg.model.vocab_size = 50257;
    int rc = bench_config(&cfg, T, steps, B_only);
    ct_config_free(&cfg);
    return rc;
}

/* The model of a ctrain config file (its model: section; the rest is
 * ignored), e.g. configs/smollm2-135m.yaml. */
static int bench_config_file(const char *path, int T, int steps, const char *attention)
{
    ct_config_t cfg;
    char att[64];
    snprintf(att, sizeof att, "model.attention=%s", attention);
    const char *sets[] = {"model.device=cuda", att};
    if (ct_config_load(path, sets, 2, &cfg) != CT_OK) return 1;
    int rc = bench_config(&cfg, T, steps, 0);
    ct_config_free(&cfg);
    return rc;
}

/* cuBLASLt alone: D = A^T B in bf16 with fp32 compute, the best of the
 * heuristic's first 8 algorithms; returns TFLOP/s. */
static double gemm_lt(int M, void *A, void *Bm, void *D, void *ws, size_t ws_bytes)
{
    cublasLtHandle_t lt;
    cublasLtCreate(&lt);
    cublasLtMatmulDesc_t op;
    cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, M, M, M);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, M, M, M);
    cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, M, M, M);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                         sizeof ws_bytes);
    cublasLtMatmulHeuristicResult_t res[8];
    int n = 0;
    cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, ld, ld, pref, 8, res, &n);
    float alpha = 1.0f, beta = 0.0f;
    double best = 0.0;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int k = 0; k < n; k++) {
        for (int w = 0; w < 3; w++)
            cublasLtMatmul(lt, op, &alpha, A, la, Bm, lb, &beta, D, ld, D, ld, &res[k].algo, ws,
                           ws_bytes, 0);
        cudaEventRecord(e0, 0);
        for (int it = 0; it < 20; it++)
            cublasLtMatmul(lt, op, &alpha, A, la, Bm, lb, &beta, D, ld, D, ld, &res[k].algo, ws,
                           ws_bytes, 0);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        double tf = 2.0 * M * (double)M * M * 20 / (ms * 1e-3) / 1e12;
        if (tf > best) best = tf;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(op);
    cublasLtDestroy(lt);
    return best;
}

static int bench_gemm(int M)
{
    ct_cuda_t *ctx;
    if (ct_cuda_init(0, CT_ATTN_PLAIN, &ctx) != CT_OK) return 1;
    size_t bytes = (size_t)M * M * sizeof(ct_bf16_t), ws_bytes = 32u << 20;
    void *A, *Bm, *D, *ws;
    if (ct_cuda_alloc(ctx, bytes, "A", &A) || ct_cuda_alloc(ctx, bytes, "B", &Bm) ||
        ct_cuda_alloc(ctx, bytes, "D", &D) || ct_cuda_alloc(ctx, ws_bytes, "ws", &ws))
        return 1;
    float *tmp;
    if (ct_cuda_alloc(ctx, (size_t)M * M * sizeof(float), "init", (void **)&tmp)) return 1;
    float *h = malloc((size_t)M * M * sizeof(float));
    ct_rng_t r;
    ct_rng_seed(&r, 3, 0, 0);
    for (long i = 0; i < (long)M * M; i++) h[i] = ct_rng_normal(&r) * 0.02f;
    ct_cuda_copy(tmp, h, (size_t)M * M * sizeof(float), NULL);
    ct_cuda_f32_to_bf16(A, tmp, (long)M * M, NULL);
    ct_cuda_f32_to_bf16(Bm, tmp, (long)M * M, NULL);
    ct_cuda_stream_sync(NULL);
    free(h);
    /* ours: out (N=M, OC=M) = inp (M, C=M) @ weight^T */
    double ours = 0.0;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int rep = 0; rep < 3; rep++) {
        for (int w = 0; w < 3; w++) ct_cuda_matmul_forward(ctx, D, NULL, A, Bm, NULL, M, M, M, NULL);
        cudaEventRecord(e0, 0);
        for (int it = 0; it < 20; it++)
            ct_cuda_matmul_forward(ctx, D, NULL, A, Bm, NULL, M, M, M, NULL);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        double tf = 2.0 * M * (double)M * M * 20 / (ms * 1e-3) / 1e12;
        if (tf > ours) ours = tf;
    }
    double lt = gemm_lt(M, A, Bm, D, ws, ws_bytes);
    double peak = peak_tflops(ct_cuda_peak_bf16_tflops(ctx));
    printf("gemm M=N=K=%d bf16: ours %.1f TFLOP/s, cuBLASLt alone %.1f TFLOP/s (%.1f%%)%s\n", M,
           ours, lt, 100.0 * ours / lt, peak > 0 ? "" : "");
    if (peak > 0) printf("  = %.1f%% of the %.0f TFLOP/s bf16 dense peak\n", 100.0 * ours / peak, peak);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    ct_cuda_dealloc(A);
    ct_cuda_dealloc(Bm);
    ct_cuda_dealloc(D);
    ct_cuda_dealloc(ws);
    ct_cuda_dealloc(tmp);
    ct_cuda_free(ctx);
    return 0;
}

/* ---- attention alone ------------------------------------------------------ */

typedef struct {
    ct_cuda_t *ctx;
    int B, T, NH, HS;
    ct_bf16_t *qkv, *out, *dout, *dqkv;
    float *stats, *scratch;
} bench_att_t;

enum { ATT_FLASH, ATT_ROW, ATT_CUDNN };

static void att_run(const bench_att_t *a, int which, int bwd)
{
    if (which == ATT_FLASH && !bwd)
        ct_cuda_attention_forward_flash(a->out, a->stats, a->qkv, a->B, a->T, a->NH, a->HS, NULL);
    else if (which == ATT_FLASH)
        ct_cuda_attention_backward_flash(a->dqkv, a->dout, a->qkv, a->out, a->stats, a->scratch,
                                         a->B, a->T, a->NH, a->HS, NULL);
    else if (which == ATT_ROW && !bwd)
        ct_cuda_attention_forward_plain(a->out, a->stats, a->qkv, a->B, a->T, a->NH, a->HS, NULL);
    else if (which == ATT_ROW)
        ct_cuda_attention_backward_plain(a->dqkv, a->dout, a->qkv, a->out, a->stats, a->scratch,
                                         a->B, a->T, a->NH, a->HS, NULL);
    else if (!bwd) /* the context is on cuDNN */
        ct_cuda_attention_forward(a->ctx, a->out, a->stats, a->qkv, a->B, a->T, a->NH, a->HS, NULL);
    else
        ct_cuda_attention_backward(a->ctx, a->dqkv, a->dout, a->qkv, a->out, a->stats, a->B,
                                   a->T, a->NH, a->HS, NULL);
}

/* Mean ms of `iters` calls after 2 warm-up calls (CUDA events). */
static double att_time(const bench_att_t *a, int which, int bwd, int iters)
{
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int w = 0; w < 2; w++) att_run(a, which, bwd);
    cudaEventRecord(e0, 0);
    for (int i = 0; i < iters; i++) att_run(a, which, bwd);
    cudaEventRecord(e1, 0);
    cudaEventSynchronize(e1);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, e0, e1);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return ms / iters;
}

static float *att_down(const ct_bf16_t *d, long n)
{
    uint16_t *h = malloc((size_t)n * 2);
    float *f = malloc((size_t)n * sizeof(float));
    ct_cuda_stream_sync(NULL);
    ct_cuda_copy(h, d, (size_t)n * 2, NULL);
    ct_cuda_stream_sync(NULL);
    for (long i = 0; i < n; i++) {
        uint32_t u = (uint32_t)h[i] << 16;
        memcpy(&f[i], &u, 4);
    }
    free(h);
    return f;
}

static double max_abs_diff(const float *x, const float *y, long n)
{
    double m = 0.0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)x[i] - y[i]);
        if (!(d <= m)) m = d; /* NaN wins */
    }
    return m;
}

static double max_abs(const float *x, long n)
{
    double m = 0.0;
    for (long i = 0; i < n; i++)
        if (!(fabs((double)x[i]) <= m)) m = fabs((double)x[i]);
    return m;
}

static int bench_attention(int B, int T, int NH, int HS, int iters)
{
    bench_att_t a = {.B = B, .T = T, .NH = NH, .HS = HS};
    if (ct_cuda_init(0, CT_ATTN_AUTO, &a.ctx) != CT_OK) return 1;
    const long C = (long)NH * HS, nqkv = (long)B * T * 3 * C, nout = (long)B * T * C;
    const long nst = (long)B * NH * T, nscr = ct_cuda_attention_scratch_floats(B, T, NH);
    float *tmp;
    if (ct_cuda_alloc(a.ctx, (size_t)nqkv * 2, "qkv", (void **)&a.qkv) ||
        ct_cuda_alloc(a.ctx, (size_t)nout * 2, "out", (void **)&a.out) ||
        ct_cuda_alloc(a.ctx, (size_t)nout * 2, "dout", (void **)&a.dout) ||
        ct_cuda_alloc(a.ctx, (size_t)nqkv * 2, "dqkv", (void **)&a.dqkv) ||
        ct_cuda_alloc(a.ctx, (size_t)nst * 4, "stats", (void **)&a.stats) ||
        ct_cuda_alloc(a.ctx, (size_t)nscr * 4, "scratch", (void **)&a.scratch) ||
        ct_cuda_alloc(a.ctx, (size_t)nqkv * 4, "init", (void **)&tmp))
        return 1;
    float *h = malloc((size_t)nqkv * sizeof(float));
    ct_rng_t r;
    ct_rng_seed(&r, 11, 0, 0);
    for (long i = 0; i < nqkv; i++) h[i] = ct_rng_normal(&r);
    ct_cuda_copy(tmp, h, (size_t)nqkv * 4, NULL);
    ct_cuda_f32_to_bf16(a.qkv, tmp, nqkv, NULL);
    ct_cuda_f32_to_bf16(a.dout, tmp + nqkv - nout, nout, NULL);
    ct_cuda_stream_sync(NULL);
    free(h);
    /* causal: S = Q K^T and P V over the lower triangle; the backward's
     * five products are 2.5 times that (FLOPs counted as cuDNN's) */
    double fwd_flop = 4.0 * B * NH * HS * ((double)T * (T + 1) / 2), bwd_flop = 2.5 * fwd_flop;
    int have[3] = {ct_cuda_attention_flash_supports(HS), 1, 0};
    if (ct_cuda_attn_impl(a.ctx) == CT_ATTN_CUDNN)
        have[ATT_CUDNN] = ct_cuda_attention_prepare(a.ctx, B, T, NH, HS) == CT_OK;
    const char *name[3] = {"flash", "per-row", "cudnn"};
    double tot[3] = {0, 0, 0};
    printf("attention B=%d T=%d NH=%d HS=%d device=\"%s\"\n", B, T, NH, HS,
           ct_cuda_device_name(a.ctx));
    for (int w = 0; w < 3; w++) {
        if (!have[w]) {
            printf("  %-8s unavailable\n", name[w]);
            continue;
        }
        int it = w == ATT_ROW ? (iters + 4) / 5 : iters; /* the per-row kernels are slow */
        double f = att_time(&a, w, 0, it), b = att_time(&a, w, 1, it);
        tot[w] = f + b;
        printf("  %-8s fwd_ms=%.3f (%.0f TFLOP/s) bwd_ms=%.3f (%.0f TFLOP/s) total_ms=%.3f\n",
               name[w], f, fwd_flop / (f * 1e9), b, bwd_flop / (b * 1e9), f + b);
    }
    if (have[ATT_FLASH] && have[ATT_CUDNN])
        printf("  flash/cudnn=%.2f\n", tot[ATT_FLASH] / tot[ATT_CUDNN]);
    if (have[ATT_FLASH] && have[ATT_ROW])
        printf("  per-row/flash=%.1f\n", tot[ATT_ROW] / tot[ATT_FLASH]);
    if (have[ATT_FLASH]) { /* sanity on the real device: flash against per-row */
        att_run(&a, ATT_FLASH, 0), att_run(&a, ATT_FLASH, 1);
        float *fo = att_down(a.out, nout), *fd = att_down(a.dqkv, nqkv);
        att_run(&a, ATT_ROW, 0), att_run(&a, ATT_ROW, 1);
        float *ro = att_down(a.out, nout), *rd = att_down(a.dqkv, nqkv);
        printf("  flash vs per-row: max|d out|=%.3g (max|out|=%.3g) max|d dqkv|=%.3g "
               "(max|dqkv|=%.3g)\n",
               max_abs_diff(fo, ro, nout), max_abs(ro, nout), max_abs_diff(fd, rd, nqkv),
               max_abs(rd, nqkv));
        free(fo), free(fd), free(ro), free(rd);
    }
    ct_cuda_dealloc(a.qkv), ct_cuda_dealloc(a.out), ct_cuda_dealloc(a.dout);
    ct_cuda_dealloc(a.dqkv), ct_cuda_dealloc(a.stats), ct_cuda_dealloc(a.scratch);
    ct_cuda_dealloc(tmp);
    ct_cuda_free(a.ctx);
    return 0;
}

/* ---- LayerNorm alone -------------------------------------------------------- */

typedef struct {
    int N, C;
    float *inp, *res, *mean, *rstd, *dinp, *dw, *db, *scratch;
    ct_bf16_t *x, *out, *w, *b, *dout, *dinp_bf16;
} bench_ln_t;

enum { LN_FWD, LN_RES_FWD, LN_BWD, LN_BWD_BF16 };

static void ln_run(const bench_ln_t *a, int which)
{
    if (which == LN_FWD)
        ct_cuda_layernorm_forward(a->out, a->mean, a->rstd, NULL, a->inp, a->w, a->b, a->N, a->C,
                                  NULL);
    else if (which == LN_RES_FWD)
        /* as the model calls it: the bf16 copy of the row kept too */
        ct_cuda_residual_layernorm_forward(a->res, a->out, a->mean, a->rstd, a->dinp_bf16, a->inp,
                                           a->x, a->w, a->b, a->N, a->C, NULL);
    else
        ct_cuda_layernorm_backward(a->dinp, which == LN_BWD_BF16 ? a->dinp_bf16 : NULL, a->dw,
                                   a->db, a->dout, a->inp, a->w, a->mean, a->rstd, a->scratch,
                                   a->N, a->C, NULL);
}

/* Mean ms of `iters` calls after 2 warm-up calls (CUDA events). */
static double ln_time(const bench_ln_t *a, int which, int iters)
{
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int w = 0; w < 2; w++) ln_run(a, which);
    cudaEventRecord(e0, 0);
    for (int i = 0; i < iters; i++) ln_run(a, which);
    cudaEventRecord(e1, 0);
    cudaEventSynchronize(e1);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, e0, e1);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return ms / iters;
}

/* The LayerNorm ops of kernels.h on (N, C): ms per call and the rate of
 * the bytes each must move at least (fp32 residual stream, bf16 rest). The
 * inputs are random normals with the residual stream's offset, the
 * statistics those of the forward. */
static int bench_layernorm(int N, int C, int iters)
{
    if (N < 1 || C < 1) {
        fprintf(stderr, "bench_gpu: layernorm needs N >= 1 and C >= 1\n");
        return 2;
    }
    ct_cuda_t *ctx;
    if (ct_cuda_init(0, CT_ATTN_AUTO, &ctx) != CT_OK) return 1;
    bench_ln_t a = {.N = N, .C = C};
    const long n = (long)N * C, nscr = ct_cuda_layernorm_scratch_floats(N, C);
    float *tmp;
    if (ct_cuda_alloc(ctx, (size_t)n * 4, "inp", (void **)&a.inp) ||
        ct_cuda_alloc(ctx, (size_t)n * 4, "res", (void **)&a.res) ||
        ct_cuda_alloc(ctx, (size_t)n * 4, "dinp", (void **)&a.dinp) ||
        ct_cuda_alloc(ctx, (size_t)N * 4, "mean", (void **)&a.mean) ||
        ct_cuda_alloc(ctx, (size_t)N * 4, "rstd", (void **)&a.rstd) ||
        ct_cuda_alloc(ctx, (size_t)C * 4, "dw", (void **)&a.dw) ||
        ct_cuda_alloc(ctx, (size_t)C * 4, "db", (void **)&a.db) ||
        ct_cuda_alloc(ctx, (size_t)nscr * 4, "scratch", (void **)&a.scratch) ||
        ct_cuda_alloc(ctx, (size_t)n * 2, "x", (void **)&a.x) ||
        ct_cuda_alloc(ctx, (size_t)n * 2, "out", (void **)&a.out) ||
        ct_cuda_alloc(ctx, (size_t)n * 2, "dout", (void **)&a.dout) ||
        ct_cuda_alloc(ctx, (size_t)n * 2, "dinp_bf16", (void **)&a.dinp_bf16) ||
        ct_cuda_alloc(ctx, (size_t)C * 2, "w", (void **)&a.w) ||
        ct_cuda_alloc(ctx, (size_t)C * 2, "b", (void **)&a.b) ||
        ct_cuda_alloc(ctx, (size_t)n * 4, "init", (void **)&tmp))
        return 1;
    float *h = malloc((size_t)n * sizeof(float));
    ct_rng_t r;
    ct_rng_seed(&r, 12, 0, 0);
    for (long i = 0; i < n; i++) h[i] = 3.0f + 2.0f * ct_rng_normal(&r);
    ct_cuda_copy(a.inp, h, (size_t)n * 4, NULL);
    for (long i = 0; i < n; i++) h[i] = ct_rng_normal(&r);
    ct_cuda_copy(tmp, h, (size_t)n * 4, NULL);
    ct_cuda_f32_to_bf16(a.x, tmp, n, NULL);
    ct_cuda_f32_to_bf16(a.dout, tmp, n, NULL);
    ct_cuda_f32_to_bf16(a.w, tmp, C, NULL);
    ct_cuda_f32_to_bf16(a.b, N > 1 ? tmp + C : tmp, C, NULL);
    ct_cuda_zero(a.dinp, (size_t)n * 4, NULL);
    ct_cuda_zero(a.dw, (size_t)C * 4, NULL);
    ct_cuda_zero(a.db, (size_t)C * 4, NULL);
    ln_run(&a, LN_FWD);
    ct_cuda_stream_sync(NULL);
    free(h);
    const char *name[4] = {"fwd", "residual_fwd", "bwd", "bwd+bf16"};
    const double bytes[4] = {6.0 * n, 14.0 * n, 14.0 * n, 16.0 * n};
    printf("layernorm N=%d C=%d device=\"%s\"\n", N, C, ct_cuda_device_name(ctx));
    for (int k = 0; k < 4; k++) {
        /* the residual forward last: it overwrites nothing the others read */
        int which = k == 0 ? LN_FWD : k == 1 ? LN_BWD : k == 2 ? LN_BWD_BF16 : LN_RES_FWD;
        double ms = ln_time(&a, which, iters);
        printf("  %-13s ms=%.4f  %.0f GB/s (%.0f bytes per element)\n", name[which], ms,
               bytes[which] / (ms * 1e6), bytes[which] / n);
    }
    ct_cuda_dealloc(a.inp), ct_cuda_dealloc(a.res), ct_cuda_dealloc(a.dinp);
    ct_cuda_dealloc(a.mean), ct_cuda_dealloc(a.rstd), ct_cuda_dealloc(a.dw), ct_cuda_dealloc(a.db);
    ct_cuda_dealloc(a.scratch), ct_cuda_dealloc(a.x), ct_cuda_dealloc(a.out);
    ct_cuda_dealloc(a.dout), ct_cuda_dealloc(a.dinp_bf16), ct_cuda_dealloc(a.w);
    ct_cuda_dealloc(a.b), ct_cuda_dealloc(tmp);
    ct_cuda_free(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    ct_log_init();
    if (ct_cuda_device_count() == 0) {
        fprintf(stderr, "bench_gpu: no CUDA device available\n");
        return 77;
    }
    if (argc >= 2 && strcmp(argv[1], "gemm") == 0) return bench_gemm(argc > 2 ? atoi(argv[2]) : 4096);
    if (argc >= 5 && strcmp(argv[1], "model") == 0) {
        ct_attention_t att = CT_ATTENTION_AUTO;
        if (argc > 7 && strcmp(argv[7], "plain") == 0) att = CT_ATTENTION_PLAIN;
        else if (argc > 7 && strcmp(argv[7], "cudnn") == 0) att = CT_ATTENTION_CUDNN;
        else if (argc > 7 && strcmp(argv[7], "auto") != 0) {
            fprintf(stderr, "bench_gpu: attention must be auto, cudnn or plain, got '%s'\n", argv[7]);
            return 2;
        }
        return bench_model(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]),
                           argc > 5 ? atoi(argv[5]) : 1024, argc > 6 ? atoi(argv[6]) : 10, att,
                           argc > 8 ? atoi(argv[8]) : 0);
    }
    if (argc >= 3 && strcmp(argv[1], "config") == 0)
        return bench_config_file(argv[2], argc > 3 ? atoi(argv[3]) : 2048,
                                 argc > 4 ? atoi(argv[4]) : 10, argc > 5 ? argv[5] : "auto");
    if (argc >= 6 && strcmp(argv[1], "attention") == 0)
        return bench_attention(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]),
                               argc > 6 ? atoi(argv[6]) : 20);
    if (argc >= 4 && strcmp(argv[1], "layernorm") == 0)
        return bench_layernorm(atoi(argv[2]), atoi(argv[3]), argc > 4 ? atoi(argv[4]) : 50);
    fprintf(stderr, "usage: bench_gpu model L NH C [T] [steps] [auto|cudnn|plain] [B] | bench_gpu "
                    "config CFG.yaml [T] [steps] [attention] | bench_gpu gemm [M] | bench_gpu "
                    "attention B T NH HS [iters] | bench_gpu layernorm N C [iters]\n");
    return 2;
}
