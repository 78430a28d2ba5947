/* GPT-2's tensor table, independent of the device: dims and TP shards,
 * initialisation, llm.c's checkpoint format, FLOPs. The forward and backward
 * live in the backends, gpt2_cpu.c and gpt2_cuda.c. */
#include "model/gpt2.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"

const char *const ct__gpt2_tensor_names[CT_GPT2_NUM_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};

void ct__gpt2_dims(const ct_model_config_t *cfg, int tp, int tp_rank, int Vp, ct_model_dims_t *d)
{
    memset(d, 0, sizeof *d);
    d->L = cfg->n_layer;
    d->NH = cfg->n_head;
    d->C = cfg->n_embd;
    d->V = cfg->vocab_size;
    d->Vp = Vp;
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

static shard_desc_t gpt2_shard_desc(const ct_model_dims_t *d, int i)
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

int ct__gpt2_tensor_per_layer(int i) { return i >= 2 && i <= 13; }

int ct__gpt2_tensor_replicated(int i)
{ return !(i == 0 || i == 4 || i == 5 || i == 6 || i == 10 || i == 11 || i == 12); }

size_t ct__gpt2_full_size(const ct_model_dims_t *d, int i)
{
    shard_desc_t s = gpt2_shard_desc(d, i);
    return s.outer * s.G * s.R * s.K;
}

void ct__gpt2_tensor_sizes(const ct_model_dims_t *d, size_t *sizes)
{
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) {
        shard_desc_t s = gpt2_shard_desc(d, i);
        size_t n = s.outer * s.G * s.R * s.K;
        sizes[i] = s.split ? n / (size_t)d->tp : n;
    }
}

/* Only wte has vocabulary rows: its first V rows are copied, the rest of
 * dst is the padding, zero. */
void ct__gpt2_full_repad(const ct_model_dims_t *from, const ct_model_dims_t *to, int i,
                         const float *src, float *dst)
{
    size_t n = ct__gpt2_full_size(to, i);
    if (i != 0) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    size_t real = (size_t)to->V * (size_t)to->C;
    CT_ASSERT(from->V == to->V && from->C == to->C && real <= n);
    memcpy(dst, src, real * sizeof(float));
    memset(dst + real, 0, (n - real) * sizeof(float));
}

void ct__gpt2_shard_copy(const ct_model_dims_t *d, int tp_rank, int i, float *full, float *shard,
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

int ct__gpt2_tensor_decays(int i)
{
    return i == 0 || i == 1 || i == 4 || i == 6 || i == 10 || i == 12;
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

void ct__gpt2_init_weights(ct_model_t *m, uint64_t seed, float std)
{
    const ct_model_dims_t *d = &m->d;
    memset(m->params, 0, m->num_params * sizeof(float));
    float proj_std = std / sqrtf(2.0f * (float)d->L);
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) {
        float *t = m->params + m->offsets[i];
        size_t n = m->sizes[i];
        if (i == 2 || i == 8 || i == 14) { /* LayerNorm weights */
            for (size_t j = 0; j < n; j++) t[j] = 1.0f;
            continue;
        }
        if (!ct__gpt2_tensor_decays(i)) continue; /* biases stay 0 */
        float s = (i == 6 || i == 12) ? proj_std : std;
        if (d->tp == 1 || ct__gpt2_tensor_replicated(i)) {
            gpt2_fill_normal(t, i == 0 ? (size_t)d->V * d->C : n, seed, i, s);
            continue;
        }
        /* a shard: draw the whole tensor as tp = 1 would, keep our slice */
        size_t full_n = ct__gpt2_full_size(d, i);
        float *full = calloc(full_n, sizeof(float));
        CT_ASSERT(full != NULL);
        gpt2_fill_normal(full, i == 0 ? (size_t)d->V * d->C : full_n, seed, i, s);
        ct__gpt2_shard_copy(d, d->tp_rank, i, full, t, 1);
        free(full);
    }
}

ct_status_t ct__gpt2_load_llmc(ct_model_t *m, const char *path)
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
    const ct_model_dims_t *d = &m->d;
    const struct { const char *key; int file, cfg; } dims[] = {
        {"model.max_seq_len", h[2], d->maxT}, {"model.vocab_size", h[3], d->V},
        {"model.n_layer", h[4], d->L},        {"model.n_head", h[5], d->NH},
        {"model.n_embd", h[6], d->C},
        {"padded vocab", h[7], ct_model_padded_vocab(d->V, 1)}}; /* llm.c's: 128 */
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        if (dims[i].file != dims[i].cfg) {
            CT_LOG_ERROR("%s: %s is %d in the file but %d in the config\n---> HINT: set %s: %d",
                         path, dims[i].key, dims[i].file, dims[i].cfg, dims[i].key, dims[i].file);
            st = CT_ERR_CONFIG;
            goto out;
        }
    }
    /* the file's layout: one rank, llm.c's padding (ours is wider under TP) */
    ct_model_dims_t fd = *d;
    fd.Vp = h[7];
    size_t full_params = 0;
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) full_params += ct__gpt2_full_size(&fd, i);
    for (int i = 0; i < CT_GPT2_NUM_TENSORS && st == CT_OK; i++) {
        /* a TP shard reads the whole tensor, repads it, and keeps its slice */
        size_t nf = ct__gpt2_full_size(&fd, i), n = ct__gpt2_full_size(d, i);
        float *dst = m->params + m->offsets[i];
        int direct = nf == n && n == m->sizes[i];
        float *buf = direct ? dst : malloc((nf + (n != nf ? n : 0)) * sizeof(float));
        float *full = buf && n != nf ? buf + nf : buf;
        if (!buf) {
            st = CT_ERR_NO_MEMORY;
        } else if (fread(buf, sizeof(float), nf, f) != nf) {
            CT_LOG_ERROR("%s: truncated, expected %zu parameters after the header", path,
                         full_params);
            st = CT_ERR_CORRUPT;
        } else if (!direct) {
            if (full != buf) ct__gpt2_full_repad(&fd, d, i, buf, full);
            ct__gpt2_shard_copy(d, d->tp_rank, i, full, dst, 1);
        }
        if (!direct) free(buf);
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

double ct__gpt2_flops_per_token(const ct_model_t *m, int T)
{
    double n = 0.0; /* the whole model, not this rank's shard */
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++)
        if (i != 1) n += (double)ct__gpt2_full_size(&m->d, i);
    return 6.0 * n + 12.0 * m->d.L * m->d.C * (double)T;
}
