/* GPT-2 forward and backward on the CPU kernels. The backward keeps one
 * running residual gradient (dres) and reuses a handful of per-layer
 * scratch buffers, so activation gradients cost O(B*T*C), not O(L*B*T*C).
 * Left out: activation recompute (the GPU issue) and tensor parallelism
 * (the distributed issue). */
#include "trainer/gpt2.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "kernels/kernels.h"

const char *const ct_gpt2_tensor_names[CT_GPT2_NUM_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};

static void gpt2_tensor_sizes(const ct_gpt2_dims_t *d, size_t *s)
{
    size_t L = d->L, C = d->C;
    s[0] = (size_t)d->Vp * C;
    s[1] = (size_t)d->maxT * C;
    s[2] = L * C;
    s[3] = L * C;
    s[4] = L * 3 * C * C;
    s[5] = L * 3 * C;
    s[6] = L * C * C;
    s[7] = L * C;
    s[8] = L * C;
    s[9] = L * C;
    s[10] = L * 4 * C * C;
    s[11] = L * 4 * C;
    s[12] = L * C * 4 * C;
    s[13] = L * C;
    s[14] = C;
    s[15] = C;
}

static void gpt2_point_tensors(ct_gpt2_tensors_t *t, float *base, const size_t *offsets)
{
    float **ptrs[CT_GPT2_NUM_TENSORS] = {
        &t->wte, &t->wpe, &t->ln1w, &t->ln1b, &t->qkvw, &t->qkvb, &t->attprojw, &t->attprojb,
        &t->ln2w, &t->ln2b, &t->fcw, &t->fcb, &t->fcprojw, &t->fcprojb, &t->lnfw, &t->lnfb};
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) *ptrs[i] = base + offsets[i];
}

int ct_gpt2_tensor_decays(int i)
{
    return i == 0 || i == 1 || i == 4 || i == 6 || i == 10 || i == 12;
}

/* Sizes (in floats) of the activation tensors for capacity (B, T), in the
 * order of ct_gpt2_acts_t. */
#define GPT2_NUM_ACTS 29
static void gpt2_act_sizes(const ct_gpt2_dims_t *d, int B, int T, size_t *s)
{
    size_t L = d->L, C = d->C, BT = (size_t)B * T, NH = d->NH;
    size_t att = (size_t)B * NH * T * T;
    size_t i = 0;
    s[i++] = BT * C;           /* encoded */
    s[i++] = L * BT * C;       /* ln1 */
    s[i++] = L * BT;           /* ln1_mean */
    s[i++] = L * BT;           /* ln1_rstd */
    s[i++] = L * BT * 3 * C;   /* qkv */
    s[i++] = L * BT * C;       /* atty */
    s[i++] = L * att;          /* att */
    s[i++] = L * BT * C;       /* residual2 */
    s[i++] = L * BT * C;       /* ln2 */
    s[i++] = L * BT;           /* ln2_mean */
    s[i++] = L * BT;           /* ln2_rstd */
    s[i++] = L * BT * 4 * C;   /* fch */
    s[i++] = L * BT * 4 * C;   /* fch_gelu */
    s[i++] = L * BT * C;       /* residual3 */
    s[i++] = BT * C;           /* lnf */
    s[i++] = BT;               /* lnf_mean */
    s[i++] = BT;               /* lnf_rstd */
    s[i++] = BT * d->Vp;       /* logits */
    s[i++] = BT;               /* losses */
    s[i++] = BT;               /* lse */
    s[i++] = BT * C;           /* proj */
    s[i++] = BT * C;           /* dres */
    s[i++] = BT * C;           /* dln */
    s[i++] = BT * C;           /* datty */
    s[i++] = BT * 3 * C;       /* dqkv */
    s[i++] = BT * 4 * C;       /* dfch */
    s[i++] = BT * 4 * C;       /* dfch_gelu */
    s[i++] = (size_t)ct_attention_scratch_floats(B, T, d->NH); /* datt */
    s[i++] = BT;               /* dloss */
    CT_ASSERT(i == GPT2_NUM_ACTS);
}

ct_status_t ct_gpt2_init(ct_gpt2_t *m, const ct_model_config_t *cfg, int B, int T)
{
    memset(m, 0, sizeof *m);
    ct_gpt2_dims_t *d = &m->d;
    d->L = cfg->n_layer;
    d->NH = cfg->n_head;
    d->C = cfg->n_embd;
    d->V = cfg->vocab_size;
    d->Vp = (cfg->vocab_size + 127) / 128 * 128;
    d->maxT = cfg->max_seq_len;
    CT_ASSERT(d->C % d->NH == 0 && T <= d->maxT);
    m->B = B;
    m->T = T;
    gpt2_tensor_sizes(d, m->sizes);
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) {
        m->offsets[i] = m->num_params;
        m->num_params += m->sizes[i];
    }
    size_t pbytes = m->num_params * sizeof(float);
    ct_status_t st;
    if ((st = ct_arena_init(&m->params_arena, pbytes, "parameters")) != CT_OK) goto fail;
    if ((st = ct_arena_init(&m->grads_arena, pbytes, "gradients")) != CT_OK) goto fail;
    if ((st = ct_arena_init(&m->opt_arena, 2 * ct_arena_align(pbytes), "AdamW state")) != CT_OK)
        goto fail;
    m->params = ct_arena_alloc(&m->params_arena, pbytes);
    m->grads = ct_arena_alloc(&m->grads_arena, pbytes);
    m->m = ct_arena_alloc(&m->opt_arena, pbytes);
    m->v = ct_arena_alloc(&m->opt_arena, pbytes);
    gpt2_point_tensors(&m->p, m->params, m->offsets);
    gpt2_point_tensors(&m->g, m->grads, m->offsets);

    size_t asz[GPT2_NUM_ACTS], total = 0;
    gpt2_act_sizes(d, B, T, asz);
    for (int i = 0; i < GPT2_NUM_ACTS; i++) total += ct_arena_align(asz[i] * sizeof(float));
    if ((st = ct_arena_init(&m->acts_arena, total, "activations")) != CT_OK) goto fail;
    float **acts = (float **)&m->a;
    for (int i = 0; i < GPT2_NUM_ACTS; i++)
        acts[i] = ct_arena_alloc(&m->acts_arena, asz[i] * sizeof(float));
    return CT_OK;
fail:
    ct_gpt2_free(m);
    return st;
}

void ct_gpt2_free(ct_gpt2_t *m)
{
    ct_arena_free(&m->acts_arena);
    ct_arena_free(&m->opt_arena);
    ct_arena_free(&m->grads_arena);
    ct_arena_free(&m->params_arena);
}

void ct_gpt2_init_weights(ct_gpt2_t *m, uint64_t seed, float std)
{
    const ct_gpt2_dims_t *d = &m->d;
    memset(m->params, 0, m->num_params * sizeof(float));
    float proj_std = std / sqrtf(2.0f * (float)d->L);
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) {
        float *t = m->params + m->offsets[i];
        size_t n = m->sizes[i];
        if (i == 2 || i == 8 || i == 14) { /* LayerNorm weights */
            for (size_t j = 0; j < n; j++) t[j] = 1.0f;
            continue;
        }
        if (!ct_gpt2_tensor_decays(i)) continue; /* biases stay 0 */
        float s = (i == 6 || i == 12) ? proj_std : std;
        if (i == 0) n = (size_t)d->V * d->C; /* padding rows stay 0 */
        /* blocks of 4096 values, each from its own stream: deterministic
         * for any thread count */
        long nblocks = (long)((n + 4095) / 4096);
#pragma omp parallel for schedule(static)
        for (long blk = 0; blk < nblocks; blk++) {
            ct_rng_t r;
            ct_rng_seed(&r, seed, (uint64_t)i, (uint64_t)blk);
            size_t end = (size_t)(blk + 1) * 4096 < n ? (size_t)(blk + 1) * 4096 : n;
            for (size_t j = (size_t)blk * 4096; j < end; j++) t[j] = s * ct_rng_normal(&r);
        }
    }
}

ct_status_t ct_gpt2_load_llmc(ct_gpt2_t *m, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        CT_LOG_ERROR("cannot open model.init_from %s: %s", path, strerror(errno));
        return CT_ERR_NOT_FOUND;
    }
    int32_t h[256];
    ct_status_t st = CT_OK;
    if (fread(h, sizeof(int32_t), 256, f) != 256) {
        CT_LOG_ERROR("%s: truncated llm.c checkpoint header", path);
        st = CT_ERR_CORRUPT;
        goto out;
    }
    if (h[0] != 20240326 || h[1] != 3) {
        CT_LOG_ERROR("%s: magic/version %d/%d, expected 20240326/3 (llm.c fp32 model)\n---> HINT: "
                     "bf16 files (version 5) are not supported; export fp32 from llm.c",
                     path, h[0], h[1]);
        st = CT_ERR_CORRUPT;
        goto out;
    }
    const ct_gpt2_dims_t *d = &m->d;
    const struct { const char *key; int file, cfg; } dims[] = {
        {"model.max_seq_len", h[2], d->maxT}, {"model.vocab_size", h[3], d->V},
        {"model.n_layer", h[4], d->L},        {"model.n_head", h[5], d->NH},
        {"model.n_embd", h[6], d->C},         {"padded vocab", h[7], d->Vp}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        if (dims[i].file != dims[i].cfg) {
            CT_LOG_ERROR("%s: %s is %d in the file but %d in the config\n---> HINT: set %s: %d",
                         path, dims[i].key, dims[i].file, dims[i].cfg, dims[i].key, dims[i].file);
            st = CT_ERR_CONFIG;
            goto out;
        }
    }
    if (fread(m->params, sizeof(float), m->num_params, f) != m->num_params) {
        CT_LOG_ERROR("%s: truncated, expected %zu parameters after the header", path,
                     m->num_params);
        st = CT_ERR_CORRUPT;
        goto out;
    }
    if (fgetc(f) != EOF) {
        CT_LOG_ERROR("%s: trailing bytes after %zu parameters", path, m->num_params);
        st = CT_ERR_CORRUPT;
    }
out:
    fclose(f);
    return st;
}

void ct_gpt2_zero_grad(ct_gpt2_t *m)
{
    float *g = m->grads;
    long n = (long)m->num_params;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) g[i] = 0.0f;
}

float ct_gpt2_forward(ct_gpt2_t *m, const int32_t *inputs, const int32_t *targets, int B, int T)
{
    const ct_gpt2_dims_t *d = &m->d;
    const int L = d->L, C = d->C, NH = d->NH, Vp = d->Vp, N = B * T;
    CT_ASSERT(N <= m->B * m->T && T <= m->T && T <= d->maxT);
    const ct_gpt2_tensors_t *p = &m->p;
    ct_gpt2_acts_t *a = &m->a;
    const size_t NC = (size_t)N * C, att_sz = (size_t)B * NH * T * T;

    ct_encoder_forward(a->encoded, inputs, p->wte, p->wpe, B, T, C);
    const float *residual = a->encoded;
    for (int l = 0; l < L; l++) {
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        float *att = a->att + l * att_sz, *res2 = a->residual2 + l * NC, *ln2 = a->ln2 + l * NC;
        float *fch = a->fch + l * 4 * NC, *fchg = a->fch_gelu + l * 4 * NC;
        float *res3 = a->residual3 + l * NC;
        ct_layernorm_forward(ln1, a->ln1_mean + (size_t)l * N, a->ln1_rstd + (size_t)l * N,
                             residual, p->ln1w + l * C, p->ln1b + l * C, N, C);
        ct_matmul_forward(qkv, ln1, p->qkvw + (size_t)l * 3 * C * C, p->qkvb + l * 3 * C, N, C,
                          3 * C);
        ct_attention_forward(atty, att, qkv, B, T, NH, C / NH);
        ct_matmul_forward(a->proj, atty, p->attprojw + (size_t)l * C * C, p->attprojb + l * C, N,
                          C, C);
        ct_residual_forward(res2, residual, a->proj, (long)NC);
        ct_layernorm_forward(ln2, a->ln2_mean + (size_t)l * N, a->ln2_rstd + (size_t)l * N, res2,
                             p->ln2w + l * C, p->ln2b + l * C, N, C);
        ct_matmul_forward(fch, ln2, p->fcw + (size_t)l * 4 * C * C, p->fcb + l * 4 * C, N, C,
                          4 * C);
        ct_gelu_forward(fchg, fch, (long)(4 * NC));
        ct_matmul_forward(a->proj, fchg, p->fcprojw + (size_t)l * 4 * C * C, p->fcprojb + l * C,
                          N, 4 * C, C);
        ct_residual_forward(res3, res2, a->proj, (long)NC);
        residual = res3;
    }
    ct_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, residual, p->lnfw, p->lnfb, N, C);
    ct_matmul_forward(a->logits, a->lnf, p->wte, NULL, N, C, Vp);
    m->last_targets = targets;
    if (!targets) return 0.0f;
    ct_xent_forward(a->losses, a->lse, a->logits, targets, N, d->V, Vp);
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += a->losses[i];
    return (float)(sum / N);
}

void ct_gpt2_backward(ct_gpt2_t *m, const int32_t *inputs, int B, int T, float loss_scale)
{
    const ct_gpt2_dims_t *d = &m->d;
    const int L = d->L, C = d->C, NH = d->NH, Vp = d->Vp, N = B * T;
    const ct_gpt2_tensors_t *p = &m->p;
    const ct_gpt2_tensors_t *g = &m->g;
    ct_gpt2_acts_t *a = &m->a;
    const size_t NC = (size_t)N * C, att_sz = (size_t)B * NH * T * T;
    for (int i = 0; i < N; i++) a->dloss[i] = loss_scale / (float)N;
    CT_ASSERT(m->last_targets != NULL);
    ct_xent_backward(a->logits, a->lse, m->last_targets, a->dloss, N, d->V, Vp);
    memset(a->dln, 0, NC * sizeof(float));
    ct_matmul_backward(a->dln, g->wte, NULL, a->logits, a->lnf, p->wte, N, C, Vp);
    memset(a->dres, 0, NC * sizeof(float));
    const float *last = L > 0 ? a->residual3 + (size_t)(L - 1) * NC : a->encoded;
    ct_layernorm_backward(a->dres, g->lnfw, g->lnfb, a->dln, last, p->lnfw, a->lnf_mean,
                          a->lnf_rstd, N, C);
    for (int l = L - 1; l >= 0; l--) {
        const float *residual = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * NC;
        const float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        const float *att = a->att + l * att_sz, *res2 = a->residual2 + l * NC;
        const float *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NC;
        const float *fchg = a->fch_gelu + l * 4 * NC;
        /* dres is d(residual3) == d(fcproj) == part of d(residual2) */
        memset(a->dfch_gelu, 0, 4 * NC * sizeof(float));
        ct_matmul_backward(a->dfch_gelu, g->fcprojw + (size_t)l * 4 * C * C, g->fcprojb + l * C,
                           a->dres, fchg, p->fcprojw + (size_t)l * 4 * C * C, N, 4 * C, C);
        memset(a->dfch, 0, 4 * NC * sizeof(float));
        ct_gelu_backward(a->dfch, fch, a->dfch_gelu, (long)(4 * NC));
        memset(a->dln, 0, NC * sizeof(float));
        ct_matmul_backward(a->dln, g->fcw + (size_t)l * 4 * C * C, g->fcb + l * 4 * C, a->dfch,
                           ln2, p->fcw + (size_t)l * 4 * C * C, N, C, 4 * C);
        ct_layernorm_backward(a->dres, g->ln2w + l * C, g->ln2b + l * C, a->dln, res2,
                              p->ln2w + l * C, a->ln2_mean + (size_t)l * N,
                              a->ln2_rstd + (size_t)l * N, N, C);
        /* dres is now d(residual2) == d(attproj) == part of d(residual) */
        memset(a->datty, 0, NC * sizeof(float));
        ct_matmul_backward(a->datty, g->attprojw + (size_t)l * C * C, g->attprojb + l * C,
                           a->dres, atty, p->attprojw + (size_t)l * C * C, N, C, C);
        memset(a->dqkv, 0, 3 * NC * sizeof(float));
        ct_attention_backward(a->dqkv, a->datty, qkv, att, a->datt, B, T, NH, C / NH);
        memset(a->dln, 0, NC * sizeof(float));
        ct_matmul_backward(a->dln, g->qkvw + (size_t)l * 3 * C * C, g->qkvb + l * 3 * C, a->dqkv,
                           ln1, p->qkvw + (size_t)l * 3 * C * C, N, C, 3 * C);
        ct_layernorm_backward(a->dres, g->ln1w + l * C, g->ln1b + l * C, a->dln, residual,
                              p->ln1w + l * C, a->ln1_mean + (size_t)l * N,
                              a->ln1_rstd + (size_t)l * N, N, C);
    }
    ct_encoder_backward(g->wte, g->wpe, a->dres, inputs, B, T, C);
}

double ct_gpt2_flops_per_token(const ct_gpt2_t *m, int T)
{
    double n = (double)(m->num_params - m->sizes[1]);
    return 6.0 * n + 12.0 * m->d.L * m->d.C * (double)T;
}
