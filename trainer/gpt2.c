/* GPT-2 forward and backward on the CPU kernels. The backward keeps one
 * running residual gradient (dres) and reuses a handful of per-layer
 * scratch buffers, so activation gradients cost O(B*T*C), not O(L*B*T*C).
 * With m->gpu set, forward/backward/zero_grad hand over to gpt2_gpu.c. */
#include "trainer/gpt2.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "kernels/kernels.h"

const char *const ct_gpt2_tensor_names[CT_GPT2_NUM_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};

void ct_gpt2_dims(const ct_model_config_t *cfg, int tp, int tp_rank, ct_gpt2_dims_t *d)
{
    memset(d, 0, sizeof *d);
    d->L = cfg->n_layer;
    d->NH = cfg->n_head;
    d->C = cfg->n_embd;
    d->V = cfg->vocab_size;
    d->Vp = (cfg->vocab_size + 127) / 128 * 128;
    d->maxT = cfg->max_seq_len;
    d->tp = tp;
    d->tp_rank = tp_rank;
    d->NHl = d->NH / tp;
    d->Cl = d->C / tp;
    d->Vpl = d->Vp / tp;
    d->v_start = tp_rank * d->Vpl;
    int vl = d->V - d->v_start;
    d->Vl = vl < 0 ? 0 : (vl < d->Vpl ? vl : d->Vpl);
}

/* How tensor i is laid out and split: `outer` blocks of G groups of R rows
 * of K columns, split over TP ranks by rows (1) or columns (2), or
 * replicated (0). */
typedef struct {
    size_t outer, G, R, K;
    int split;
} shard_desc_t;

static shard_desc_t gpt2_shard_desc(const ct_gpt2_dims_t *d, int i)
{
    size_t L = d->L, C = d->C;
    switch (i) {
    case 0: return (shard_desc_t){1, 1, (size_t)d->Vp, C, 1};     /* wte */
    case 4: return (shard_desc_t){L, 3, C, C, 1};                 /* qkvw */
    case 5: return (shard_desc_t){L, 3, C, 1, 1};                 /* qkvb */
    case 6: return (shard_desc_t){L, 1, C, C, 2};                 /* attprojw */
    case 10: return (shard_desc_t){L, 1, 4 * C, C, 1};            /* fcw */
    case 11: return (shard_desc_t){L, 1, 4 * C, 1, 1};            /* fcb */
    case 12: return (shard_desc_t){L, 1, C, 4 * C, 2};            /* fcprojw */
    case 1: return (shard_desc_t){1, 1, (size_t)d->maxT, C, 0};   /* wpe */
    case 14: case 15: return (shard_desc_t){1, 1, 1, C, 0};       /* lnf */
    default: return (shard_desc_t){L, 1, 1, C, 0};                /* per-layer vectors */
    }
}

int ct_gpt2_tensor_replicated(int i) { return !(i == 0 || i == 4 || i == 5 || i == 6 || i == 10 || i == 11 || i == 12); }

size_t ct_gpt2_full_size(const ct_gpt2_dims_t *d, int i)
{
    shard_desc_t s = gpt2_shard_desc(d, i);
    return s.outer * s.G * s.R * s.K;
}

void ct_gpt2_tensor_sizes(const ct_gpt2_dims_t *d, size_t *sizes)
{
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) {
        shard_desc_t s = gpt2_shard_desc(d, i);
        size_t n = s.outer * s.G * s.R * s.K;
        sizes[i] = s.split ? n / (size_t)d->tp : n;
    }
}

void ct_gpt2_shard_copy(const ct_gpt2_dims_t *d, int tp_rank, int i, float *full, float *shard,
                        int to_shard)
{
    shard_desc_t s = gpt2_shard_desc(d, i);
    size_t tp = (size_t)d->tp;
    size_t Rl = s.split == 1 ? s.R / tp : s.R, Kl = s.split == 2 ? s.K / tp : s.K;
    size_t r0 = s.split == 1 ? (size_t)tp_rank * Rl : 0, k0 = s.split == 2 ? (size_t)tp_rank * Kl : 0;
    for (size_t o = 0; o < s.outer * s.G; o++) {
        for (size_t r = 0; r < Rl; r++) {
            float *f = full + (o * s.R + r0 + r) * s.K + k0;
            float *l = shard + (o * Rl + r) * Kl;
            if (to_shard) memcpy(l, f, Kl * sizeof(float));
            else memcpy(f, l, Kl * sizeof(float));
        }
    }
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
#define GPT2_NUM_ACTS 30
static void gpt2_act_sizes(const ct_gpt2_dims_t *d, int B, int T, size_t *s)
{
    size_t L = d->L, C = d->C, Cl = d->Cl, BT = (size_t)B * T;
    size_t att = (size_t)B * d->NHl * T * T;
    size_t i = 0;
    s[i++] = BT * C;           /* encoded */
    s[i++] = L * BT * C;       /* ln1 */
    s[i++] = L * BT;           /* ln1_mean */
    s[i++] = L * BT;           /* ln1_rstd */
    s[i++] = L * BT * 3 * Cl;  /* qkv */
    s[i++] = L * BT * Cl;      /* atty */
    s[i++] = L * att;          /* att */
    s[i++] = L * BT * C;       /* residual2 */
    s[i++] = L * BT * C;       /* ln2 */
    s[i++] = L * BT;           /* ln2_mean */
    s[i++] = L * BT;           /* ln2_rstd */
    s[i++] = L * BT * 4 * Cl;  /* fch */
    s[i++] = L * BT * 4 * Cl;  /* fch_gelu */
    s[i++] = L * BT * C;       /* residual3 */
    s[i++] = BT * C;           /* lnf */
    s[i++] = BT;               /* lnf_mean */
    s[i++] = BT;               /* lnf_rstd */
    s[i++] = BT * d->Vpl;      /* logits */
    s[i++] = BT;               /* losses */
    s[i++] = BT;               /* lse */
    s[i++] = BT * C;           /* proj */
    s[i++] = BT * C;           /* dres */
    s[i++] = BT * C;           /* dln */
    s[i++] = BT * Cl;          /* datty */
    s[i++] = BT * 3 * Cl;      /* dqkv */
    s[i++] = BT * 4 * Cl;      /* dfch */
    s[i++] = BT * 4 * Cl;      /* dfch_gelu */
    s[i++] = (size_t)ct_attention_scratch_floats(B, T, d->NHl); /* datt */
    s[i++] = BT;               /* dloss */
    s[i++] = BT;               /* xtmp */
    CT_ASSERT(i == GPT2_NUM_ACTS);
}

ct_status_t ct_gpt2_init(ct_gpt2_t *m, const ct_model_config_t *cfg, int B, int T,
                         ct_comm_t *tp)
{
    memset(m, 0, sizeof *m);
    ct_gpt2_dims_t *d = &m->d;
    int tp_size = tp ? ct_comm_size(tp) : 1;
    ct_gpt2_dims(cfg, tp_size, tp ? ct_comm_rank(tp) : 0, d);
    CT_ASSERT(d->C % d->NH == 0 && T <= d->maxT && d->NH % tp_size == 0 && d->Vp % tp_size == 0);
    m->tp = tp_size > 1 ? tp : NULL;
    m->B = B;
    m->T = T;
    ct_gpt2_tensor_sizes(d, m->sizes);
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) {
        m->offsets[i] = m->num_params;
        m->num_params += m->sizes[i];
    }
    size_t pbytes = (m->num_params + CT_GPT2_PAD_FLOATS) * sizeof(float);
    ct_status_t st;
    if ((st = ct_arena_init(&m->params_arena, pbytes, "parameters")) != CT_OK) goto fail;
    if ((st = ct_arena_init(&m->grads_arena, pbytes, "gradients")) != CT_OK) goto fail;
    m->params = ct_arena_alloc(&m->params_arena, pbytes);
    m->grads = ct_arena_alloc(&m->grads_arena, pbytes);
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
    ct_arena_free(&m->grads_arena);
    ct_arena_free(&m->params_arena);
}

/* Fills t[0, n) of tensor i with N(0, std): blocks of 4096 values, each from
 * its own stream, so the result is the same for any thread count. */
static void gpt2_fill_normal(float *t, size_t n, uint64_t seed, int i, float std)
{
    long nblocks = (long)((n + 4095) / 4096);
#pragma omp parallel for schedule(static)
    for (long blk = 0; blk < nblocks; blk++) {
        ct_rng_t r;
        ct_rng_seed(&r, seed, (uint64_t)i, (uint64_t)blk);
        size_t end = (size_t)(blk + 1) * 4096 < n ? (size_t)(blk + 1) * 4096 : n;
        for (size_t j = (size_t)blk * 4096; j < end; j++) t[j] = std * ct_rng_normal(&r);
    }
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
        if (d->tp == 1 || ct_gpt2_tensor_replicated(i)) {
            gpt2_fill_normal(t, i == 0 ? (size_t)d->V * d->C : n, seed, i, s);
            continue;
        }
        /* a shard: draw the whole tensor as tp = 1 would, keep our slice */
        size_t full_n = ct_gpt2_full_size(d, i);
        float *full = calloc(full_n, sizeof(float));
        CT_ASSERT(full != NULL);
        gpt2_fill_normal(full, i == 0 ? (size_t)d->V * d->C : full_n, seed, i, s);
        ct_gpt2_shard_copy(d, d->tp_rank, i, full, t, 1);
        free(full);
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
    size_t full_params = 0;
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) full_params += ct_gpt2_full_size(d, i);
    for (int i = 0; i < CT_GPT2_NUM_TENSORS && st == CT_OK; i++) {
        /* a TP shard reads the whole tensor and keeps its slice */
        size_t n = ct_gpt2_full_size(d, i);
        float *dst = m->params + m->offsets[i];
        float *buf = n == m->sizes[i] ? dst : malloc(n * sizeof(float));
        if (!buf) {
            st = CT_ERR_NO_MEMORY;
        } else if (fread(buf, sizeof(float), n, f) != n) {
            CT_LOG_ERROR("%s: truncated, expected %zu parameters after the header", path,
                         full_params);
            st = CT_ERR_CORRUPT;
        } else if (buf != dst) {
            ct_gpt2_shard_copy(d, d->tp_rank, i, buf, dst, 1);
        }
        if (buf != dst) free(buf);
    }
    if (st != CT_OK) goto out;
    if (fgetc(f) != EOF) {
        CT_LOG_ERROR("%s: trailing bytes after %zu parameters", path, full_params);
        st = CT_ERR_CORRUPT;
    }
out:
    fclose(f);
    return st;
}

void ct_gpt2_zero_grad(ct_gpt2_t *m)
{
    if (m->gpu) {
        ct__gpt2_gpu_zero_grad(m);
        return;
    }
    float *g = m->grads;
    long n = (long)m->num_params;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) g[i] = 0.0f;
}

/* Sums x over the TP group in place (no-op without TP). */
static void gpt2_tp_allreduce(ct_gpt2_t *m, float *x, size_t n, ct_op_t op)
{
    if (!m->tp) return;
    double t0 = ct_time_now();
    ct_status_t st = ct_comm_allreduce(m->tp, x, x, n, CT_DTYPE_F32, op, NULL);
    /* a failed TP collective leaves this rank's model state undefined */
    if (st != CT_OK) ct_comm_abort(1);
    m->comm_seconds += ct_time_now() - t0;
}

const float *ct_gpt2_logits_row(ct_gpt2_t *m, int row)
{
    if (m->gpu) return ct__gpt2_gpu_logits_row(m, row);
    return m->a.logits + (size_t)row * m->d.Vpl;
}

float ct_gpt2_forward(ct_gpt2_t *m, const int32_t *inputs, const int32_t *targets, int B, int T)
{
    if (m->gpu) return ct__gpt2_gpu_forward(m, inputs, targets, B, T);
    const ct_gpt2_dims_t *d = &m->d;
    const int L = d->L, C = d->C, Cl = d->Cl, NHl = d->NHl, Vpl = d->Vpl, N = B * T;
    CT_ASSERT(N <= m->B * m->T && T <= m->T && T <= d->maxT);
    const ct_gpt2_tensors_t *p = &m->p;
    ct_gpt2_acts_t *a = &m->a;
    const size_t NC = (size_t)N * C, NCl = (size_t)N * Cl, att_sz = (size_t)B * NHl * T * T;
    /* replicated biases after a row-parallel matmul are added by TP rank 0 */
    const int add_bias = d->tp_rank == 0;

    if (m->tp) {
        ct_encoder_forward_vp(a->encoded, inputs, p->wte, add_bias ? p->wpe : NULL, B, T, C,
                              d->v_start, d->Vpl);
        gpt2_tp_allreduce(m, a->encoded, NC, CT_OP_SUM);
    } else {
        ct_encoder_forward(a->encoded, inputs, p->wte, p->wpe, B, T, C);
    }
    const float *residual = a->encoded;
    for (int l = 0; l < L; l++) {
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NCl, *atty = a->atty + l * NCl;
        float *att = a->att + l * att_sz, *res2 = a->residual2 + l * NC, *ln2 = a->ln2 + l * NC;
        float *fch = a->fch + l * 4 * NCl, *fchg = a->fch_gelu + l * 4 * NCl;
        float *res3 = a->residual3 + l * NC;
        ct_layernorm_forward(ln1, a->ln1_mean + (size_t)l * N, a->ln1_rstd + (size_t)l * N,
                             residual, p->ln1w + l * C, p->ln1b + l * C, N, C);
        ct_matmul_forward(qkv, ln1, p->qkvw + (size_t)l * 3 * Cl * C, p->qkvb + l * 3 * Cl, N, C,
                          3 * Cl);
        ct_attention_forward(atty, att, qkv, B, T, NHl, C / d->NH);
        ct_matmul_forward(a->proj, atty, p->attprojw + (size_t)l * C * Cl,
                          add_bias ? p->attprojb + l * C : NULL, N, Cl, C);
        gpt2_tp_allreduce(m, a->proj, NC, CT_OP_SUM);
        ct_residual_forward(res2, residual, a->proj, (long)NC);
        ct_layernorm_forward(ln2, a->ln2_mean + (size_t)l * N, a->ln2_rstd + (size_t)l * N, res2,
                             p->ln2w + l * C, p->ln2b + l * C, N, C);
        ct_matmul_forward(fch, ln2, p->fcw + (size_t)l * 4 * Cl * C, p->fcb + l * 4 * Cl, N, C,
                          4 * Cl);
        ct_gelu_forward(fchg, fch, (long)(4 * NCl));
        ct_matmul_forward(a->proj, fchg, p->fcprojw + (size_t)l * C * 4 * Cl,
                          add_bias ? p->fcprojb + l * C : NULL, N, 4 * Cl, C);
        gpt2_tp_allreduce(m, a->proj, NC, CT_OP_SUM);
        ct_residual_forward(res3, res2, a->proj, (long)NC);
        residual = res3;
    }
    ct_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, residual, p->lnfw, p->lnfb, N, C);
    ct_matmul_forward(a->logits, a->lnf, p->wte, NULL, N, C, Vpl);
    m->last_targets = targets;
    if (!targets) return 0.0f;
    if (m->tp) {
        /* parallel cross-entropy: never gathers the (N, Vp) logits */
        ct_xent_partial_max(a->lse, a->logits, N, d->Vl, Vpl);
        gpt2_tp_allreduce(m, a->lse, (size_t)N, CT_OP_MAX);
        ct_xent_partial_sumexp(a->xtmp, a->logits, a->lse, N, d->Vl, Vpl);
        gpt2_tp_allreduce(m, a->xtmp, (size_t)N, CT_OP_SUM);
        for (int i = 0; i < N; i++) a->lse[i] += logf(a->xtmp[i]);
        ct_xent_partial_target(a->xtmp, a->logits, targets, N, d->v_start, d->Vl, Vpl);
        gpt2_tp_allreduce(m, a->xtmp, (size_t)N, CT_OP_SUM);
        for (int i = 0; i < N; i++) a->losses[i] = a->lse[i] - a->xtmp[i];
    } else {
        ct_xent_forward(a->losses, a->lse, a->logits, targets, N, d->V, Vpl);
    }
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += a->losses[i];
    return (float)(sum / N);
}

void ct_gpt2_backward(ct_gpt2_t *m, const int32_t *inputs, int B, int T, float loss_scale)
{
    if (m->gpu) {
        ct__gpt2_gpu_backward(m, inputs, B, T, loss_scale);
        return;
    }
    const ct_gpt2_dims_t *d = &m->d;
    const int L = d->L, C = d->C, Cl = d->Cl, NHl = d->NHl, Vpl = d->Vpl, N = B * T;
    const ct_gpt2_tensors_t *p = &m->p;
    const ct_gpt2_tensors_t *g = &m->g;
    ct_gpt2_acts_t *a = &m->a;
    const size_t NC = (size_t)N * C, NCl = (size_t)N * Cl, att_sz = (size_t)B * NHl * T * T;

    for (int i = 0; i < N; i++) a->dloss[i] = loss_scale / (float)N;
    CT_ASSERT(m->last_targets != NULL);
    ct_xent_backward_vp(a->logits, a->lse, m->last_targets, a->dloss, N, d->v_start, d->Vl, Vpl);
    memset(a->dln, 0, NC * sizeof(float));
    ct_matmul_backward(a->dln, g->wte, NULL, a->logits, a->lnf, p->wte, N, C, Vpl);
    gpt2_tp_allreduce(m, a->dln, NC, CT_OP_SUM);
    memset(a->dres, 0, NC * sizeof(float));
    const float *last = L > 0 ? a->residual3 + (size_t)(L - 1) * NC : a->encoded;
    ct_layernorm_backward(a->dres, g->lnfw, g->lnfb, a->dln, last, p->lnfw, a->lnf_mean,
                          a->lnf_rstd, N, C);
    for (int l = L - 1; l >= 0; l--) {
        const float *residual = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * NC;
        const float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NCl, *atty = a->atty + l * NCl;
        const float *att = a->att + l * att_sz, *res2 = a->residual2 + l * NC;
        const float *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NCl;
        const float *fchg = a->fch_gelu + l * 4 * NCl;
        /* dres is d(residual3) == d(fcproj) == part of d(residual2) */
        memset(a->dfch_gelu, 0, 4 * NCl * sizeof(float));
        ct_matmul_backward(a->dfch_gelu, g->fcprojw + (size_t)l * C * 4 * Cl, g->fcprojb + l * C,
                           a->dres, fchg, p->fcprojw + (size_t)l * C * 4 * Cl, N, 4 * Cl, C);
        memset(a->dfch, 0, 4 * NCl * sizeof(float));
        ct_gelu_backward(a->dfch, fch, a->dfch_gelu, (long)(4 * NCl));
        memset(a->dln, 0, NC * sizeof(float));
        ct_matmul_backward(a->dln, g->fcw + (size_t)l * 4 * Cl * C, g->fcb + l * 4 * Cl, a->dfch,
                           ln2, p->fcw + (size_t)l * 4 * Cl * C, N, C, 4 * Cl);
        gpt2_tp_allreduce(m, a->dln, NC, CT_OP_SUM);
        ct_layernorm_backward(a->dres, g->ln2w + l * C, g->ln2b + l * C, a->dln, res2,
                              p->ln2w + l * C, a->ln2_mean + (size_t)l * N,
                              a->ln2_rstd + (size_t)l * N, N, C);
        /* dres is now d(residual2) == d(attproj) == part of d(residual) */
        memset(a->datty, 0, NCl * sizeof(float));
        ct_matmul_backward(a->datty, g->attprojw + (size_t)l * C * Cl, g->attprojb + l * C,
                           a->dres, atty, p->attprojw + (size_t)l * C * Cl, N, Cl, C);
        memset(a->dqkv, 0, 3 * NCl * sizeof(float));
        ct_attention_backward(a->dqkv, a->datty, qkv, att, a->datt, B, T, NHl, C / d->NH);
        memset(a->dln, 0, NC * sizeof(float));
        ct_matmul_backward(a->dln, g->qkvw + (size_t)l * 3 * Cl * C, g->qkvb + l * 3 * Cl,
                           a->dqkv, ln1, p->qkvw + (size_t)l * 3 * Cl * C, N, C, 3 * Cl);
        gpt2_tp_allreduce(m, a->dln, NC, CT_OP_SUM);
        ct_layernorm_backward(a->dres, g->ln1w + l * C, g->ln1b + l * C, a->dln, residual,
                              p->ln1w + l * C, a->ln1_mean + (size_t)l * N,
                              a->ln1_rstd + (size_t)l * N, N, C);
    }
    if (m->tp)
        ct_encoder_backward_vp(g->wte, g->wpe, a->dres, inputs, B, T, C, d->v_start, d->Vpl);
    else
        ct_encoder_backward(g->wte, g->wpe, a->dres, inputs, B, T, C);
}

double ct_gpt2_flops_per_token(const ct_gpt2_t *m, int T)
{
    double n = 0.0; /* the whole model, not this rank's shard */
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++)
        if (i != 1) n += (double)ct_gpt2_full_size(&m->d, i);
    return 6.0 * n + 12.0 * m->d.L * m->d.C * (double)T;
}
