/* Whole-model checks on tiny Llama models (GQA, untied and tied heads, Llama
 * 3 RoPE scaling, a vocabulary that is not a multiple of 128):
 * 1. the forward against a naive reference written here in double (plain
 *    loops over the parameter arrays: RMSNorm, rotate-half RoPE, GQA,
 *    SwiGLU, head), loss within 1e-5 relative and logits within 1e-4;
 * 2. gradients against central finite differences on a few hundred random
 *    parameter coordinates, every tensor sampled (as test_gpt2_grad.c),
 *    |num - ana| <= 2e-2 * max(|num|, |ana|) + 2e-4 with eps = 1e-2;
 *    padding rows get no gradient;
 * 3. overfitting one batch: the loss falls below 0.05 within 400 steps;
 * 4. activations sized for (B, T) serve a smaller (1, t) forward with the
 *    same logits as a model sized exactly (1, t);
 * 5. the tensor table: names, sizes and parameter counts of the SmolLM2-135M
 *    and Llama-3.2-1B shapes, and TP shards that reassemble the whole;
 * 6. the GPU path refuses what it lacks (recompute here; without CUDA, any
 *    device), and the model stays on the CPU backend. */
#include "core/rng.h"
#include "test_util.h"
#include "model/model.h"
#include "trainer/trainer.h"

static ct_config_t cfg_store[8];
static int n_cfg;

static void set_tiny(ct_model_config_t *m, int tied, int rope_llama3)
{
    m->arch = CT_ARCH_LLAMA;
    m->n_layer = 2;
    m->n_head = 4;
    m->n_kv_head = 2;
    m->n_embd = 32;
    m->ffn_dim = 24;
    m->max_seq_len = 8;
    m->vocab_size = 37;
    m->init_std = 0.1f;
    m->tie_embeddings = tied;
    m->norm_eps = 1e-5f;
    if (rope_llama3) {
        m->rope_scaling = CT_ROPE_SCALING_LLAMA3;
        m->rope_theta = 500000.0f;
        m->rope_factor = 8.0f;
        m->rope_original_max_seq_len = 16;
    }
}

/* A tiny Llama config (owned by cfg_store, freed at the end). */
static ct_model_config_t *tiny_cfg(int tied, int rope_llama3)
{
    ct_config_t *c = &cfg_store[n_cfg++];
    ct_config_defaults(c);
    set_tiny(&c->model, tied, rope_llama3);
    return &c->model;
}

static void fill_tokens(int32_t *x, int n, int V, uint64_t seed)
{
    ct_rng_t r;
    ct_rng_seed(&r, seed, 0, 0);
    for (int i = 0; i < n; i++) x[i] = (int32_t)ct_rng_below(&r, (uint64_t)V);
}

/* ---- 1. a naive reference forward in double ------------------------------------ */

/* y (C) = rmsnorm(x) * w */
static void ref_rms(double *y, const double *x, const float *w, int C, double eps)
{
    double ss = 0;
    for (int c = 0; c < C; c++) ss += x[c] * x[c];
    double r = 1.0 / sqrt(ss / C + eps);
    for (int c = 0; c < C; c++) y[c] = x[c] * r * w[c];
}

/* y (R) = W (R, K) x (K) */
static void ref_mv(double *y, const float *W, const double *x, int R, int K)
{
    for (int r = 0; r < R; r++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += (double)W[(long)r * K + k] * x[k];
        y[r] = s;
    }
}

/* Mean loss of the batch and (optionally) every row's logits, (B*T, V). */
static double ref_forward(const ct_model_t *m, const ct_model_config_t *mc, const int32_t *inp,
                          const int32_t *tgt, int B, int T, double *logits_out)
{
    const ct_model_dims_t *d = &m->d;
    const int L = d->L, C = d->C, NH = d->NH, NKV = d->NKV, HS = d->HS, F = d->F, V = d->V;
    const int KV = NKV * HS, G = NH / NKV, half = HS / 2;
    const float *P = m->params;
    const float *wte = P + m->offsets[0], *ln1w = P + m->offsets[1], *wq = P + m->offsets[2];
    const float *wk = P + m->offsets[3], *wv = P + m->offsets[4], *wo = P + m->offsets[5];
    const float *ln2w = P + m->offsets[6], *wg = P + m->offsets[7], *wu = P + m->offsets[8];
    const float *wd = P + m->offsets[9], *lnf = P + m->offsets[10];
    const float *head = d->tied ? wte : P + m->offsets[11];
    /* RoPE frequencies from the config, in double */
    double inv[64];
    for (int i = 0; i < half; i++) {
        double f = pow(mc->rope_theta, -2.0 * i / HS);
        if (mc->rope_scaling == CT_ROPE_SCALING_LLAMA3) {
            double wl = 2 * M_PI / f, orig = mc->rope_original_max_seq_len;
            double lo = mc->rope_low_freq_factor, hi = mc->rope_high_freq_factor;
            if (wl > orig / lo) f /= mc->rope_factor;
            else if (wl >= orig / hi) {
                double s = (orig / wl - lo) / (hi - lo);
                f = (1 - s) * f / mc->rope_factor + s * f;
            }
        }
        inv[i] = f;
    }
    const int N = B * T;
    double *x = calloc((size_t)N * C, sizeof(double)), *h = malloc((size_t)C * sizeof(double));
    double *q = malloc((size_t)N * C * sizeof(double)), *k = malloc((size_t)N * KV * sizeof(double));
    double *v = malloc((size_t)N * KV * sizeof(double)), *y = malloc((size_t)C * sizeof(double));
    double *o = malloc((size_t)N * C * sizeof(double)), *g = malloc((size_t)F * sizeof(double));
    double *u = malloc((size_t)F * sizeof(double)), *lg = malloc((size_t)V * sizeof(double));
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) x[(long)n * C + c] = wte[(long)inp[n] * C + c];
    for (int l = 0; l < L; l++) {
        for (int n = 0; n < N; n++) {
            ref_rms(h, x + (long)n * C, ln1w + l * C, C, mc->norm_eps);
            ref_mv(q + (long)n * C, wq + (long)l * C * C, h, C, C);
            ref_mv(k + (long)n * KV, wk + (long)l * KV * C, h, KV, C);
            ref_mv(v + (long)n * KV, wv + (long)l * KV * C, h, KV, C);
            int t = n % T; /* rotate half of every q and k head */
            for (int hh = 0; hh < NH + NKV; hh++) {
                double *z = hh < NH ? q + (long)n * C + hh * HS : k + (long)n * KV + (hh - NH) * HS;
                for (int i = 0; i < half; i++) {
                    double a = t * inv[i], z1 = z[i], z2 = z[i + half];
                    z[i] = z1 * cos(a) - z2 * sin(a);
                    z[i + half] = z2 * cos(a) + z1 * sin(a);
                }
            }
        }
        for (int b = 0; b < B; b++)
            for (int hh = 0; hh < NH; hh++)
                for (int t = 0; t < T; t++) {
                    long n = (long)b * T + t;
                    double s[64], mx = -1e300, sum = 0;
                    for (int j = 0; j <= t; j++) {
                        double dot = 0;
                        for (int i = 0; i < HS; i++)
                            dot += q[n * C + hh * HS + i] * k[((long)b * T + j) * KV + (hh / G) * HS + i];
                        s[j] = dot / sqrt((double)HS);
                        if (s[j] > mx) mx = s[j];
                    }
                    for (int j = 0; j <= t; j++) sum += (s[j] = exp(s[j] - mx));
                    for (int i = 0; i < HS; i++) {
                        double acc = 0;
                        for (int j = 0; j <= t; j++)
                            acc += s[j] / sum * v[((long)b * T + j) * KV + (hh / G) * HS + i];
                        o[n * C + hh * HS + i] = acc;
                    }
                }
        for (int n = 0; n < N; n++) {
            ref_mv(y, wo + (long)l * C * C, o + (long)n * C, C, C);
            for (int c = 0; c < C; c++) x[(long)n * C + c] += y[c];
            ref_rms(h, x + (long)n * C, ln2w + l * C, C, mc->norm_eps);
            ref_mv(g, wg + (long)l * F * C, h, F, C);
            ref_mv(u, wu + (long)l * F * C, h, F, C);
            for (int f = 0; f < F; f++) g[f] = g[f] / (1 + exp(-g[f])) * u[f];
            ref_mv(y, wd + (long)l * C * F, g, C, F);
            for (int c = 0; c < C; c++) x[(long)n * C + c] += y[c];
        }
    }
    double loss = 0;
    for (int n = 0; n < N; n++) {
        ref_rms(h, x + (long)n * C, lnf, C, mc->norm_eps);
        ref_mv(lg, head, h, V, C);
        double mx = -1e300, sum = 0;
        for (int j = 0; j < V; j++) mx = lg[j] > mx ? lg[j] : mx;
        for (int j = 0; j < V; j++) sum += exp(lg[j] - mx);
        loss += mx + log(sum) - lg[tgt[n]];
        if (logits_out) memcpy(logits_out + (long)n * V, lg, (size_t)V * sizeof(double));
    }
    free(x), free(h), free(q), free(k), free(v), free(y), free(o), free(g), free(u), free(lg);
    return loss / N;
}

static void test_reference(const char *what, ct_model_config_t *mc)
{
    const int B = 2, T = 8;
    ct_model_t m;
    CHECK(ct_model_init(&m, mc, B, T, NULL) == CT_OK);
    ct_model_init_weights(&m, 11, 0.2f);
    ct_rng_t r;
    ct_rng_seed(&r, 5, 0, 0);
    for (int i = 0; i < m.n_tensors; i++) /* RMSNorm weights away from 1 */
        if (!ct_model_tensor_decays(&m.d, i))
            for (size_t j = 0; j < m.sizes[i]; j++) m.params[m.offsets[i] + j] += 0.2f * ct_rng_normal(&r);
    int32_t inp[16], tgt[16];
    fill_tokens(inp, B * T, mc->vocab_size, 3);
    fill_tokens(tgt, B * T, mc->vocab_size, 4);
    double *lg = malloc((size_t)B * T * mc->vocab_size * sizeof(double));
    double want = ref_forward(&m, mc, inp, tgt, B, T, lg);
    float got = ct_model_forward(&m, inp, tgt, B, T);
    CHECK_MSG(fabs(got - want) <= 1e-5 * fabs(want), "%s: loss %.7f, reference %.7f", what, got,
              want);
    ct_model_forward(&m, inp, NULL, B, T);
    double worst = 0;
    for (int n = 0; n < B * T; n++) {
        const float *row = ct_model_logits_row(&m, n);
        for (int j = 0; j < mc->vocab_size; j++)
            worst = fmax(worst, fabs(row[j] - lg[(long)n * mc->vocab_size + j]));
    }
    fprintf(stderr, "%s: loss %.6f (reference %.6f), worst logit difference %.2g\n", what, got,
            want, worst);
    CHECK_MSG(worst <= 1e-4, "%s: logits differ from the reference by %g", what, worst);
    free(lg);
    ct_model_free(&m);
}

/* ---- 2. finite differences ------------------------------------------------------ */

static void test_gradcheck(const char *what, ct_model_config_t *mc)
{
    const int B = 2, T = 7;
    ct_model_t m;
    CHECK(ct_model_init(&m, mc, B, T, NULL) == CT_OK);
    ct_model_init_weights(&m, 3, mc->init_std);
    ct_rng_t r;
    ct_rng_seed(&r, 99, 0, 0);
    for (int i = 0; i < m.n_tensors; i++)
        if (!ct_model_tensor_decays(&m.d, i))
            for (size_t j = 0; j < m.sizes[i]; j++)
                m.params[m.offsets[i] + j] += 0.1f * ct_rng_normal(&r);
    int32_t inp[14], tgt[14];
    fill_tokens(inp, B * T, mc->vocab_size, 1);
    fill_tokens(tgt, B * T, mc->vocab_size, 2);
    ct_model_zero_grad(&m);
    float loss = ct_model_forward(&m, inp, tgt, B, T);
    CHECK(loss > 3.0f && loss < 4.5f);
    ct_model_backward(&m, inp, B, T, 1.0f);

    const float eps = 1e-2f;
    int bad = 0, checked = 0, per_tensor = 24;
    for (int ti = 0; ti < m.n_tensors; ti++) {
        const char *name = ct_model_tensor_name(&m.d, ti);
        int vocab = !strcmp(name, "wte") || !strcmp(name, "lm_head");
        size_t n = vocab ? (size_t)mc->vocab_size * mc->n_embd : m.sizes[ti];
        for (int k = 0; k < per_tensor; k++) {
            size_t j = m.offsets[ti] + (size_t)ct_rng_below(&r, n);
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
                fprintf(stderr, "%s: grad mismatch %s[%zu]: numeric %.6g analytic %.6g\n", what,
                        name, j - m.offsets[ti], num, ana);
            }
        }
        if (vocab) { /* padding rows get no gradient */
            float pad = 0.0f;
            for (size_t j = n; j < m.sizes[ti]; j++) pad += fabsf(m.grads[m.offsets[ti] + j]);
            CHECK_MSG(pad == 0.0f, "%s: padding rows of %s have gradient %g", what, name, pad);
        }
    }
    fprintf(stderr, "%s: %d gradient coordinates over %d tensors checked\n", what, checked,
            m.n_tensors);
    CHECK_MSG(bad == 0, "%s: %d of %d gradient coordinates out of tolerance", what, bad, checked);
    ct_model_free(&m);
}

/* ---- 3, 4 -------------------------------------------------------------------------- */

static void test_overfit(ct_model_config_t *mc)
{
    mc->max_seq_len = 16;
    mc->init_std = 0.02f;
    const int B = 2, T = 16;
    ct_model_t m;
    CHECK(ct_model_init(&m, mc, B, T, NULL) == CT_OK);
    ct_model_init_weights(&m, 5, mc->init_std);
    int32_t inp[32], tgt[32];
    fill_tokens(inp, B * T, mc->vocab_size, 11);
    fill_tokens(tgt, B * T, mc->vocab_size, 12);
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

static void test_smaller_forward(ct_model_config_t *mc)
{
    ct_model_t big, small;
    CHECK(ct_model_init(&big, mc, 3, 8, NULL) == CT_OK);
    CHECK(ct_model_init(&small, mc, 1, 5, NULL) == CT_OK);
    ct_model_init_weights(&big, 7, 0.1f);
    ct_model_init_weights(&small, 7, 0.1f);
    CHECK(memcmp(big.params, small.params, big.num_params * sizeof(float)) == 0);
    int32_t inp[5];
    fill_tokens(inp, 5, mc->vocab_size, 4);
    ct_model_forward(&big, inp, NULL, 1, 5);
    ct_model_forward(&small, inp, NULL, 1, 5);
    for (int t = 0; t < 5; t++)
        CHECK(memcmp(ct_model_logits_row(&big, t), ct_model_logits_row(&small, t),
                     (size_t)big.d.Vp * sizeof(float)) == 0);
    ct_model_free(&big);
    ct_model_free(&small);
}

/* ---- 5. the tensor table ------------------------------------------------------------ */

static size_t full_params(const ct_model_config_t *mc)
{
    ct_model_dims_t d;
    ct_model_dims(mc, 1, 0, &d);
    size_t n = 0;
    for (int i = 0; i < ct_model_num_tensors(&d); i++) n += ct_model_full_size(&d, i);
    /* the real model has no padding rows */
    return n - (size_t)(d.Vp - d.V) * d.C * (d.tied ? 1 : 2);
}

static void test_shapes(void)
{
    ct_config_t c;
    ct_config_defaults(&c);
    ct_model_config_t *m = &c.model;
    /* SmolLM2-135M: 134,515,008 parameters (tied) */
    m->arch = CT_ARCH_LLAMA, m->n_layer = 30, m->n_head = 9, m->n_kv_head = 3, m->n_embd = 576;
    m->ffn_dim = 1536, m->vocab_size = 49152, m->max_seq_len = 64;
    CHECK_MSG(full_params(m) == 134515008, "SmolLM2-135M: %zu parameters", full_params(m));
    /* Llama-3.2-1B: 1,235,814,400 (tied); the rule gives its 8192 units */
    m->n_layer = 16, m->n_head = 32, m->n_kv_head = 8, m->n_embd = 2048, m->ffn_dim = 0;
    m->ffn_multiplier = 1.5f, m->ffn_multiple_of = 256, m->vocab_size = 128256;
    CHECK(ct_config_ffn_dim(m) == 8192);
    CHECK_MSG(full_params(m) == 1235814400, "Llama-3.2-1B: %zu parameters", full_params(m));
    /* Llama-3-8B's rule: 4096 * 8/3 * 1.3 rounded to 1024 = 14336 */
    m->n_embd = 4096, m->ffn_multiplier = 1.3f, m->ffn_multiple_of = 1024;
    CHECK(ct_config_ffn_dim(m) == 14336);
    ct_config_free(&c);

    /* names, and TP shards (KV sharded at tp 2, replicated at tp 4) that
     * reassemble the whole tensors */
    ct_model_config_t *mc = tiny_cfg(0, 0);
    ct_model_dims_t d1;
    ct_model_dims(mc, 1, 0, &d1);
    CHECK(ct_model_num_tensors(&d1) == 12);
    CHECK(!strcmp(ct_model_tensor_name(&d1, 11), "lm_head"));
    CHECK(!strcmp(ct_model_tensor_name(&d1, 3), "wk"));
    mc->ffn_dim = 28;
    for (int tp = 2; tp <= 4; tp += 2) {
        ct_model_dims(mc, tp, 0, &d1);
        CHECK(d1.kv_sharded == (tp == 2) && d1.NKVl == (tp == 2 ? 1 : 2));
        CHECK(ct_model_tensor_replicated(&d1, 3) == (tp == 4));
        for (int i = 0; i < ct_model_num_tensors(&d1); i++) {
            size_t n = ct_model_full_size(&d1, i);
            float *full = malloc(n * sizeof(float)), *back = calloc(n, sizeof(float));
            for (size_t j = 0; j < n; j++) full[j] = (float)j;
            for (int r = 0; r < tp; r++) {
                ct_model_dims_t d;
                ct_model_dims(mc, tp, r, &d);
                size_t sz[CT_MODEL_MAX_TENSORS];
                ct_model_tensor_sizes(&d, sz);
                float *sh = malloc(sz[i] * sizeof(float));
                ct_model_shard_copy(&d, r, i, full, sh, 1);
                ct_model_shard_copy(&d, r, i, back, sh, 0);
                free(sh);
            }
            CHECK_MSG(memcmp(full, back, n * sizeof(float)) == 0, "tp %d: tensor %s does not "
                      "reassemble", tp, ct_model_tensor_name(&d1, i));
            free(full), free(back);
        }
    }
    mc->ffn_dim = 26; /* 13 units per rank at tp 2, none split at tp 4 */
    CHECK(ct_model_tp_divides(mc, 2) && !ct_model_tp_divides(mc, 4) && !ct_model_tp_divides(mc, 3));
    mc->ffn_dim = 24;
}

/* ---- 6 ------------------------------------------------------------------------------- */

static void test_no_device(void)
{
    ct_config_t c;
    ct_config_defaults(&c);
    set_tiny(&c.model, 1, 0);
    ct_model_t m;
    ct_optim_t o;
    CHECK(ct_model_init(&m, &c.model, 0, 0, NULL) == CT_OK);
    CHECK(ct_optim_init(&o, &m, 0, NULL, 25) == CT_OK);
    c.model.recompute = CT_RECOMPUTE_LN_GELU;
    ct_status_t st;
    CAPTURE_STDERR(st = ct_model_to_device(&m, &o, &c, NULL, 0, 2, 8));
    CHECK(st == CT_ERR_UNSUPPORTED);
    CHECK_CAPTURED("HINT");
    CHECK(!strcmp(ct_model_backend_name(&m), "llama/cpu"));
    CHECK(ct_model_arch_has_cuda(CT_ARCH_LLAMA) && ct_model_arch_has_cuda(CT_ARCH_GPT2));
    CHECK(!ct_model_cuda_supports(&c));
    c.model.recompute = CT_RECOMPUTE_NONE;
    CHECK(ct_model_cuda_supports(&c));
    ct_optim_free(&o);
    ct_model_free(&m);
    ct_config_free(&c);
}

int main(void)
{
    test_reference("untied, GQA", tiny_cfg(0, 0));
    test_reference("tied, llama3 rope", tiny_cfg(1, 1));
    test_gradcheck("untied, GQA", tiny_cfg(0, 0));
    test_gradcheck("tied, llama3 rope", tiny_cfg(1, 1));
    ct_model_config_t *mha = tiny_cfg(0, 0);
    mha->n_kv_head = 0; /* = n_head */
    test_gradcheck("untied, MHA", mha);
    test_overfit(tiny_cfg(0, 0));
    test_smaller_forward(tiny_cfg(0, 0));
    test_shapes();
    test_no_device();
    for (int i = 0; i < n_cfg; i++) ct_config_free(&cfg_store[i]);
    return ct_test_finish("test_llama_grad");
}
