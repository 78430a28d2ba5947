/* CPU benchmark: one training step (forward, backward, AdamW) at a given
 * (B, T), the GFLOP/s of the model's matmuls at their real shapes, and raw
 * OpenBLAS sgemm at 2048^3 on the same threads, all in one run.
 *
 *   bench_cpu [--config FILE.yaml] [B T steps [L NH C V]]
 *       defaults: 4 64 5, GPT-2 124M; --config takes the model section of a
 *       config (a Llama's, e.g. configs/smollm2-135m.yaml)
 *
 * Model FLOPs per token are ct_model_flops_per_token (GPT-2: 6*N + 12*L*C*T,
 * N = parameters except wpe); the "CPU MFU" printed is model GFLOP/s over
 * the sgemm GFLOP/s. Tokens are random: throughput does not depend on the
 * data. */
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/rng.h"
#include "core/timer.h"
#include "kernels/kernels.h"
#include "model/model.h"

static double sgemm_gflops(int n, int reps)
{
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n);
    float *c = malloc(sizeof(float) * n * n);
    for (long i = 0; i < (long)n * n; i++) a[i] = b[i] = 0.001f * (float)(i % 1000), c[i] = 0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = ct_time_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = ct_time_now() - t0;
        if (dt < best) best = dt;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

/* GFLOP/s of the model's matmuls (forward + both backward gemms) at N rows,
 * summed over one layer's projections and the LM head: GPT-2's four (with
 * biases), or Llama's seven (q, k, v, o, gate, up, down). */
static double model_matmul_gflops(int N, const ct_model_dims_t *d, int reps)
{
    const int C = d->C, Vp = d->Vp, KV = d->NKV * d->HS, F = d->F;
    const int llama = d->arch == CT_ARCH_LLAMA;
    int gpt2_shapes[5][2] = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}, {C, Vp}};
    int llama_shapes[8][2] = {{C, C}, {C, KV}, {C, KV}, {C, C}, {C, F}, {C, F}, {F, C}, {C, Vp}};
    int (*shapes)[2] = llama ? llama_shapes : gpt2_shapes;
    const int ns = llama ? 8 : 5;
    double flops = 0.0, time = 0.0;
    for (int s = 0; s < ns; s++) {
        int IC = shapes[s][0], OC = shapes[s][1];
        float *inp = calloc((size_t)N * IC, 4), *w = calloc((size_t)OC * IC, 4);
        float *out = calloc((size_t)N * OC, 4), *dinp = calloc((size_t)N * IC, 4);
        float *dw = calloc((size_t)OC * IC, 4), *b = calloc((size_t)OC, 4), *db = calloc((size_t)OC, 4);
        for (long i = 0; i < (long)N * IC; i++) inp[i] = 0.01f;
        for (long i = 0; i < (long)OC * IC; i++) w[i] = 0.01f;
        const float *bias = !llama && s < 4 ? b : NULL;
        float *dbias = !llama && s < 4 ? db : NULL;
        ct_matmul_forward(out, inp, w, bias, N, IC, OC);
        ct_matmul_backward(dinp, dw, dbias, out, inp, w, N, IC, OC);
        double t0 = ct_time_now();
        for (int r = 0; r < reps; r++) {
            ct_matmul_forward(out, inp, w, bias, N, IC, OC);
            ct_matmul_backward(dinp, dw, dbias, out, inp, w, N, IC, OC);
        }
        time += ct_time_now() - t0;
        flops += 6.0 * N * (double)IC * OC * reps;
        free(inp), free(w), free(out), free(dinp), free(dw), free(b), free(db);
    }
    return flops / time / 1e9;
}

static const char usage[] =
    "usage: bench_cpu [--config FILE.yaml] [B T STEPS [L NH C V]]\n"
    "\n"
    "Times STEPS training steps (forward, backward, AdamW) at batch B and\n"
    "sequence length T, the model's matmuls at their shapes, and OpenBLAS sgemm.\n"
    "Defaults: 4 64 5, and GPT-2 124M (L=12 NH=12 C=768 V=50257). Every argument\n"
    "is a positive integer; C must be a multiple of NH. --config takes the model\n"
    "from a config file's model section (GPT-2 or Llama; L NH C V not allowed).\n";

int main(int argc, char **argv)
{
    /* B T steps L NH C V, positive integers, defaults in order */
    long a[7] = {4, 64, 5, 12, 12, 768, 50257};
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(usage, stdout);
        return 0;
    }
    const char *config = NULL;
    if (argc > 2 && !strcmp(argv[1], "--config")) {
        config = argv[2];
        argv += 2;
        argc -= 2;
    }
    if (argc > (config ? 4 : 8)) {
        fprintf(stderr, "bench_cpu: %d arguments, at most %d\n%s", argc - 1, config ? 3 : 7,
                usage);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        char *end;
        errno = 0;
        a[i - 1] = strtol(argv[i], &end, 10);
        if (end == argv[i] || *end || errno || a[i - 1] <= 0 || a[i - 1] > INT_MAX) {
            fprintf(stderr, "bench_cpu: argument %d is '%s', not a positive integer\n%s", i,
                    argv[i], usage);
            return 2;
        }
    }
    if (a[5] % a[4] != 0) {
        fprintf(stderr, "bench_cpu: C=%ld is not a multiple of NH=%ld\n%s", a[5], a[4], usage);
        return 2;
    }
    int B = (int)a[0], T = (int)a[1], steps = (int)a[2];
    ct_config_t cfg;
    ct_config_defaults(&cfg);
    if (config) {
        ct_config_free(&cfg);
        if (ct_config_load(config, NULL, 0, &cfg) != CT_OK) return 1;
    } else {
        cfg.model.n_layer = (int)a[3], cfg.model.n_head = (int)a[4];
        cfg.model.n_embd = (int)a[5], cfg.model.vocab_size = (int)a[6];
    }
    ct_model_config_t mc = cfg.model;
    if (!config || mc.max_seq_len < T) mc.max_seq_len = T > 1024 ? T : 1024;
    ct_optim_config_t oc = {.lr = 1e-4f, .min_lr_frac = 0.1f, .warmup_steps = 0,
                            .decay = CT_DECAY_COSINE, .weight_decay = 0.1f, .beta1 = 0.9f,
                            .beta2 = 0.95f, .eps = 1e-8f, .grad_clip = 1.0f};
    printf("threads: %d\n", omp_get_max_threads());
    double sg = sgemm_gflops(2048, 3);
    printf("sgemm 2048^3: %.1f GFLOP/s\n", sg);

    ct_model_t m;
    if (ct_model_init(&m, &mc, B, T, NULL) != CT_OK) return 1;
    ct_model_init_weights(&m, 1, 0.02f);
    int32_t *inp = malloc(sizeof(int32_t) * B * T), *tgt = malloc(sizeof(int32_t) * B * T);
    ct_rng_t r;
    ct_rng_seed(&r, 1, 2, 3);
    for (int i = 0; i < B * T; i++) {
        inp[i] = (int32_t)ct_rng_below(&r, (uint64_t)mc.vocab_size);
        tgt[i] = (int32_t)ct_rng_below(&r, (uint64_t)mc.vocab_size);
    }
    ct_optim_t o;
    if (ct_optim_init(&o, &m, 0, NULL, 25) != CT_OK) return 1;
    double fwd = 0, bwd = 0, opt = 0, total = 0;
    float norm;
    for (int s = 0; s <= steps; s++) { /* step 0 is warm-up */
        double t0 = ct_time_now();
        ct_model_zero_grad(&m);
        ct_model_forward(&m, inp, tgt, B, T);
        double t1 = ct_time_now();
        ct_model_backward(&m, inp, B, T, 1.0f);
        double t2 = ct_time_now();
        if (ct_optim_step(&o, &m, &oc, 1e-4f, s + 1, &norm) != CT_OK) return 1;
        double t3 = ct_time_now();
        if (s == 0) continue;
        fwd += t1 - t0, bwd += t2 - t1, opt += t3 - t2, total += t3 - t0;
    }
    struct rusage ru; /* peak of the training steps, before the matmul probe */
    getrusage(RUSAGE_SELF, &ru);
    double ms = 1e3 * total / steps;
    double flops = ct_model_flops_per_token(&m, T) * B * T;
    double gf = flops / (total / steps) / 1e9;
    double mm = model_matmul_gflops(B * T, &m.d, 3);
    printf("model: %s L=%d NH=%d C=%d V=%d, %.1fM params, B=%d T=%d\n",
           ct_model_arch_name(mc.arch), mc.n_layer, mc.n_head, mc.n_embd, mc.vocab_size,
           m.num_params / 1e6, B, T);
    printf("step: %.1f ms (forward %.1f, backward %.1f, optimizer %.1f)\n", ms,
           1e3 * fwd / steps, 1e3 * bwd / steps, 1e3 * opt / steps);
    printf("tokens/s: %.0f\n", B * T / (total / steps));
    printf("model GFLOP/s: %.1f (CPU MFU vs sgemm: %.0f%%)\n", gf, 100.0 * gf / sg);
    printf("matmul GFLOP/s at the model's shapes (N=%d): %.1f (%.0f%% of sgemm)\n", B * T, mm,
           100.0 * mm / sg);
    printf("peak RSS during training steps: %.0f MiB\n", ru.ru_maxrss / 1024.0);
    ct_optim_free(&o);
    ct_model_free(&m);
    ct_config_free(&cfg);
    free(inp);
    free(tgt);
    return 0;
}
