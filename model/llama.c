/* Llama's tensor table, independent of the device: dims and TP shards,
 * initialisation, FLOPs. The forward and backward live in the backend,
 * llama_cpu.c.
 *
 * Tensor parallelism (Megatron, as GPT-2): q_proj, gate_proj and up_proj
 * are column-parallel (rows split: whole query heads, whole hidden units),
 * o_proj and down_proj row-parallel (input columns split), the embedding
 * and LM head vocab-parallel. k_proj and v_proj split by whole key/value
 * heads when n_kv_head divides by tp; otherwise every rank holds all of
 * them (replicated, as the RMSNorm weights are) and the backend keeps their
 * gradients identical across the TP group. */
#include "model/llama.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"

const char *const ct__llama_tensor_names[CT_LLAMA_MAX_TENSORS] = {
    "wte", "ln1w", "wq", "wk", "wv", "wo", "ln2w", "wgate", "wup", "wdown", "lnfw", "lm_head"};

void ct__llama_dims(const ct_model_config_t *cfg, int tp, int tp_rank, int Vp, ct_model_dims_t *d)
{
    memset(d, 0, sizeof *d);
    d->arch = CT_ARCH_LLAMA;
    d->L = cfg->n_layer;
    d->NH = cfg->n_head;
    d->C = cfg->n_embd;
    d->V = cfg->vocab_size;
    d->Vp = Vp;
    d->maxT = cfg->max_seq_len;
    d->tp = tp;
    d->tp_rank = tp_rank;
    d->HS = d->C / d->NH;
    d->NHl = d->NH / tp;
    d->Cl = d->NHl * d->HS;
    d->Vpl = d->Vp / tp;
    d->v_start = tp_rank * d->Vpl;
    int vl = d->V - d->v_start;
    d->Vl = vl < 0 ? 0 : (vl < d->Vpl ? vl : d->Vpl);
    d->NKV = cfg->n_kv_head ? cfg->n_kv_head : cfg->n_head;
    d->kv_sharded = d->NKV % tp == 0;
    d->NKVl = d->kv_sharded ? d->NKV / tp : d->NKV;
    d->F = ct_config_ffn_dim(cfg);
    d->Fl = d->F / tp;
    d->tied = cfg->tie_embeddings;
    d->norm_eps = cfg->norm_eps;
    d->rope.theta = cfg->rope_theta;
    d->rope.llama3 = cfg->rope_scaling == CT_ROPE_SCALING_LLAMA3;
    d->rope.factor = cfg->rope_factor;
    d->rope.low_freq_factor = cfg->rope_low_freq_factor;
    d->rope.high_freq_factor = cfg->rope_high_freq_factor;
    d->rope.original_max_seq_len = cfg->rope_original_max_seq_len;
}

int ct__llama_num_tensors(const ct_model_dims_t *d)
{
    return d->tied ? CT_LLAMA_MAX_TENSORS - 1 : CT_LLAMA_MAX_TENSORS;
}

/* How tensor i is laid out and split: `outer` blocks of R rows of K
 * columns, split over TP ranks by rows (1) or columns (2), or replicated
 * (0). */
typedef struct {
    size_t outer, R, K;
    int split;
} shard_desc_t;

static shard_desc_t llama_shard_desc(const ct_model_dims_t *d, int i)
{
    size_t L = d->L, C = d->C, KV = (size_t)d->NKV * d->HS, F = d->F, Vp = d->Vp;
    switch (i) {
    case CT_LLAMA_WTE: case CT_LLAMA_HEAD: return (shard_desc_t){1, Vp, C, 1};
    case CT_LLAMA_WQ: return (shard_desc_t){L, C, C, 1};
    case CT_LLAMA_WK: case CT_LLAMA_WV: return (shard_desc_t){L, KV, C, d->kv_sharded ? 1 : 0};
    case CT_LLAMA_WO: return (shard_desc_t){L, C, C, 2};
    case CT_LLAMA_WGATE: case CT_LLAMA_WUP: return (shard_desc_t){L, F, C, 1};
    case CT_LLAMA_WDOWN: return (shard_desc_t){L, C, F, 2};
    case CT_LLAMA_LNFW: return (shard_desc_t){1, 1, C, 0};
    default: return (shard_desc_t){L, 1, C, 0}; /* ln1w, ln2w */
    }
}

int ct__llama_tensor_replicated(const ct_model_dims_t *d, int i)
{
    return llama_shard_desc(d, i).split == 0;
}

int ct__llama_tensor_decays(int i)
{
    return i != CT_LLAMA_LN1W && i != CT_LLAMA_LN2W && i != CT_LLAMA_LNFW;
}

size_t ct__llama_full_size(const ct_model_dims_t *d, int i)
{
    shard_desc_t s = llama_shard_desc(d, i);
    return s.outer * s.R * s.K;
}

void ct__llama_tensor_sizes(const ct_model_dims_t *d, size_t *sizes)
{
    for (int i = 0; i < ct__llama_num_tensors(d); i++) {
        shard_desc_t s = llama_shard_desc(d, i);
        size_t n = s.outer * s.R * s.K;
        sizes[i] = s.split ? n / (size_t)d->tp : n;
    }
}

/* The embedding and the untied head have vocabulary rows: the first V rows
 * are copied, the rest of dst is the padding, zero. */
void ct__llama_full_repad(const ct_model_dims_t *from, const ct_model_dims_t *to, int i,
                          const float *src, float *dst)
{
    size_t n = ct__llama_full_size(to, i);
    if (i != CT_LLAMA_WTE && i != CT_LLAMA_HEAD) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    size_t real = (size_t)to->V * (size_t)to->C;
    CT_ASSERT(from->V == to->V && from->C == to->C && real <= n);
    memcpy(dst, src, real * sizeof(float));
    memset(dst + real, 0, (n - real) * sizeof(float));
}

void ct__llama_shard_copy(const ct_model_dims_t *d, int tp_rank, int i, float *full, float *shard,
                          int to_shard)
{
    shard_desc_t s = llama_shard_desc(d, i);
    size_t tp = (size_t)d->tp;
    size_t Rl = s.split == 1 ? s.R / tp : s.R, Kl = s.split == 2 ? s.K / tp : s.K;
    size_t r0 = s.split == 1 ? (size_t)tp_rank * Rl : 0, k0 = s.split == 2 ? (size_t)tp_rank * Kl : 0;
    for (size_t o = 0; o < s.outer; o++) {
        for (size_t r = 0; r < Rl; r++) {
            float *f = full + (o * s.R + r0 + r) * s.K + k0;
            float *l = shard + (o * Rl + r) * Kl;
            if (to_shard) memcpy(l, f, Kl * sizeof(float));
            else memcpy(f, l, Kl * sizeof(float));
        }
    }
}

/* Fills t[0, n) of tensor i with N(0, std): blocks of 4096 values, each from
 * its own stream, so the result is the same for any thread count. */
static void llama_fill_normal(float *t, size_t n, uint64_t seed, int i, float std)
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

/* Matrices and embeddings N(0, std), the residual projections (o_proj,
 * down_proj) scaled by 1/sqrt(2L) as GPT-2's, RMSNorm weights 1, padding
 * rows 0. */
void ct__llama_init_weights(ct_model_t *m, uint64_t seed, float std)
{
    const ct_model_dims_t *d = &m->d;
    memset(m->params, 0, m->num_params * sizeof(float));
    float proj_std = std / sqrtf(2.0f * (float)d->L);
    for (int i = 0; i < m->n_tensors; i++) {
        float *t = m->params + m->offsets[i];
        size_t n = m->sizes[i];
        if (!ct__llama_tensor_decays(i)) { /* RMSNorm weights */
            for (size_t j = 0; j < n; j++) t[j] = 1.0f;
            continue;
        }
        float s = (i == CT_LLAMA_WO || i == CT_LLAMA_WDOWN) ? proj_std : std;
        int vocab = i == CT_LLAMA_WTE || i == CT_LLAMA_HEAD;
        size_t full_n = ct__llama_full_size(d, i), drawn = vocab ? (size_t)d->V * d->C : full_n;
        if (d->tp == 1 || ct__llama_tensor_replicated(d, i)) {
            llama_fill_normal(t, drawn, seed, i, s);
            continue;
        }
        /* a shard: draw the whole tensor as tp = 1 would, keep our slice */
        float *full = calloc(full_n, sizeof(float));
        CT_ASSERT(full != NULL);
        llama_fill_normal(full, drawn, seed, i, s);
        ct__llama_shard_copy(d, d->tp_rank, i, full, t, 1);
        free(full);
    }
}

/* 6 FLOPs per weight a token meets in a matmul (the embedding lookup is
 * not one, unless it is also the head), plus attention's 12 * L * C * T
 * (QK^T and PV over the whole T x T, forward and backward, as for GPT-2). */
double ct__llama_flops_per_token(const ct_model_t *m, int T)
{
    const ct_model_dims_t *d = &m->d;
    double n = 0.0; /* the whole model, not this rank's shard */
    for (int i = 0; i < ct__llama_num_tensors(d); i++)
        if (i != CT_LLAMA_WTE || d->tied) n += (double)ct__llama_full_size(d, i);
    return 6.0 * n + 12.0 * d->L * d->C * (double)T;
}
