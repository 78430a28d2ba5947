/* GPT-2 on one CUDA device: the same model as gpt2.c, on the kernels/cuda
 * ops. bf16 weights and activations feed the matmuls and attention; the
 * residual stream, LayerNorm statistics, losses, gradients, master weights
 * and AdamW state are fp32. Every device buffer is allocated once in
 * ct__gpt2_cuda_init; a step launches kernels on one compute stream, and the
 * DP gradient reduce runs on a second stream, layer by layer, overlapped
 * with the rest of the backward pass (events order the two). The host waits
 * only to read the loss (after each forward with targets) and the gradient
 * norm (at the end of the optimizer step).
 * Left out: tensor parallelism on the GPU (the CPU path has it), and
 * bit-exact reproducibility (the embedding backward uses atomics). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "kernels/kernels.h"
#include "model/gpt2.h"

/* Device activations (model/gpt2.h), allocated from the table in
 * model/gpt2_plan.c that the memory planner adds up. */
typedef ct_gpt2_cuda_acts_t gpu_acts_t;

typedef struct {
    ct_cuda_t *ctx;
    void *stream, *comm_stream;
    void **ev_layer;     /* (L) a layer's gradients are complete */
    void *ev_backward, *ev_reduced;
    float *master;       /* (num_params + pad) fp32 */
    ct_bf16_t *params;   /* (num_params) */
    float *grads;        /* (num_params + pad) fp32 */
    float *m, *v;        /* (o->count) AdamW state of the owned slice */
    ct_gpt2_bf16_tensors_t p; /* views of params */
    ct_gpt2_tensors_t g;      /* views of grads */
    gpu_acts_t a;
    int recompute, stochastic, zero;
    int last_B, last_T;
    float *host_losses;  /* (N) */
    float *host_row;     /* (Vp) */
    ct_bf16_t *host_row_bf; /* (Vp) */
    ct_comm_groups_t dev; /* NCCL groups (dp > 1) */
    int have_dev;
    int reduce_started;  /* layers already reduced during this backward */
    size_t alloc_bytes;
    double t0;           /* when the running optimizer step began */
} gpt2_cuda_t;

static const ct_model_backend_t gpt2_cuda_backend;
static void gpt2_cuda_free(ct_model_t *m);

static CT_MUST_USE ct_status_t gpu_alloc(gpt2_cuda_t *G, void **p, size_t bytes, const char *what)
{
    G->alloc_bytes += bytes;
    return ct_cuda_alloc(G->ctx, bytes, what, p);
}

#define GA(ptr, n, type, what)                                                  \
    do {                                                                        \
        if ((st = gpu_alloc(G, (void **)&(ptr), (size_t)(n) * sizeof(type), what)) != CT_OK) \
            return st;                                                          \
    } while (0)

static CT_MUST_USE ct_status_t gpu_alloc_acts(gpt2_cuda_t *G, const ct_model_dims_t *d, int B, int T)
{
    ct_status_t st;
    ct_plan_item_t it[CT_PLAN_MAX_ITEMS];
    int n = ct__gpt2_cuda_act_items(d, B, T, (ct_recompute_t)G->recompute, 0, it);
    CT_ASSERT(n == CT_GPT2_CUDA_NUM_ACTS);
    for (int i = 0; i < n; i++) {
        void **slot = (void **)((char *)&G->a + it[i].slot);
        if ((st = gpu_alloc(G, slot, it[i].bytes, it[i].name)) != CT_OK) return st;
    }
    return CT_OK;
}

static CT_MUST_USE ct_status_t gpu_setup(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                             const ct_comm_groups_t *g, int device, int B, int T)
{
    gpt2_cuda_t *G = m->dev;
    const ct_model_dims_t *d = &m->d;
    ct_status_t st;
    ct_attn_impl_t attn = cfg->model.attention == CT_ATTENTION_CUDNN   ? CT_ATTN_CUDNN
                          : cfg->model.attention == CT_ATTENTION_PLAIN ? CT_ATTN_PLAIN
                                                                       : CT_ATTN_AUTO;
    if ((st = ct_cuda_init(device, attn, &G->ctx)) != CT_OK) return st;
    G->stream = ct_cuda_stream_create();
    G->comm_stream = ct_cuda_stream_create();
    G->ev_backward = ct_cuda_event_create();
    G->ev_reduced = ct_cuda_event_create();
    G->ev_layer = calloc((size_t)d->L, sizeof(void *));
    CT_ASSERT(G->ev_layer != NULL);
    for (int l = 0; l < d->L; l++) G->ev_layer[l] = ct_cuda_event_create();
    m->B = B; /* the activation capacity, wherever the activations live */
    m->T = T;
    G->recompute = (int)cfg->model.recompute;
    G->stochastic = cfg->optim.stochastic_rounding;
    G->zero = o->zero;

    const size_t np = m->num_params, padded = np + CT_MODEL_PAD_FLOATS;
    GA(G->master, padded, float, "master weights");
    GA(G->params, np, ct_bf16_t, "bf16 weights");
    GA(G->grads, padded, float, "gradients");
    GA(G->m, o->count ? o->count : 1, float, "AdamW m");
    GA(G->v, o->count ? o->count : 1, float, "AdamW v");
    CT_GPT2_POINT(&G->p, G->params, m->offsets);
    CT_GPT2_POINT(&G->g, G->grads, m->offsets);
    if ((st = gpu_alloc_acts(G, d, B, T)) != CT_OK) return st;
    if ((st = ct_cuda_attention_prepare(G->ctx, B, T, d->NH, d->C / d->NH)) != CT_OK) {
        if (cfg->model.attention == CT_ATTENTION_CUDNN) {
            CT_LOG_ERROR("model.attention is cudnn but cuDNN rejects attention at B=%d T=%d "
                         "NH=%d HS=%d (CT_LOG_LEVEL=debug shows cuDNN's reason)\n---> HINT: set "
                         "model.attention: auto to fall back to the plain CUDA attention",
                         B, T, d->NH, d->C / d->NH);
            return st;
        }
        /* a shape cuDNN cannot do is no error under auto: one line, then the
         * plain kernels */
        CT_LOG_INFO_R0("cuDNN attention does not support B=%d T=%d NH=%d HS=%d; using the plain "
                       "CUDA attention (CT_LOG_LEVEL=debug shows cuDNN's reason)", B, T, d->NH,
                       d->C / d->NH);
        ct_cuda_set_attn_impl(G->ctx, CT_ATTN_PLAIN);
        if ((st = ct_cuda_attention_prepare(G->ctx, B, T, d->NH, d->C / d->NH)) != CT_OK)
            return st;
    }
    G->host_losses = malloc((size_t)B * T * sizeof(float));
    G->host_row = malloc((size_t)d->Vp * sizeof(float));
    G->host_row_bf = malloc((size_t)d->Vp * sizeof(ct_bf16_t));
    if (!G->host_losses || !G->host_row || !G->host_row_bf) {
        CT_LOG_ERROR("out of host memory for the GPU model's staging buffers");
        return CT_ERR_NO_MEMORY;
    }

    /* weights and optimizer state from the host */
    ct_cuda_zero(G->master, padded * sizeof(float), G->stream);
    ct_cuda_copy(G->master, m->params, np * sizeof(float), G->stream);
    ct_cuda_f32_to_bf16(G->params, G->master, (long)np, G->stream);
    ct_cuda_zero(G->grads, padded * sizeof(float), G->stream);
    ct_cuda_copy(G->m, o->m, o->count * sizeof(float), G->stream);
    ct_cuda_copy(G->v, o->v, o->count * sizeof(float), G->stream);
    ct_cuda_stream_sync(G->stream);

    if (g && g->dp_size > 1) {
        if ((st = ct_comm_device_groups_init(g, &G->dev)) != CT_OK) return st;
        G->have_dev = 1;
    }
    if (G->stochastic && o->zero)
        CT_LOG_WARN_R0("optim.stochastic_rounding applies to the weights a rank updates; with "
                       "optim.zero: 1 the gathered weights are rounded to nearest");
    CT_LOG_INFO_R0("GPU model: %.1f MiB of device memory allocated (recompute %s)",
                   G->alloc_bytes / 1048576.0,
                   G->recompute == CT_RECOMPUTE_NONE ? "none"
                   : G->recompute == CT_RECOMPUTE_GELU ? "gelu" : "ln_gelu");
    return CT_OK;
}

/* Orders the compute stream after DP reduces a backward started but no
 * optimizer step consumed (a step skipped for a non-finite loss). */
static void wait_reduces(gpt2_cuda_t *G)
{
    if (!G->reduce_started) return;
    ct_cuda_event_record(G->ev_reduced, G->comm_stream);
    ct_cuda_stream_wait_event(G->stream, G->ev_reduced);
    G->reduce_started = 0;
}

ct_status_t ct__gpt2_cuda_init(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                             const ct_comm_groups_t *g, int device, int B, int T)
{
    if (m->d.tp > 1) {
        CT_LOG_ERROR("parallel.tp=%d: tensor parallelism runs on the CPU path only so far\n"
                     "---> HINT: use parallel.tp: 1 on GPUs (data parallel over NCCL), or "
                     "model.device: cpu", m->d.tp);
        return CT_ERR_UNSUPPORTED;
    }
    if (m->d.C % m->d.NH != 0 || (m->d.C / m->d.NH) > 128) {
        CT_LOG_ERROR("model.n_embd/model.n_head = %d: the GPU attention supports head sizes up "
                     "to 128", m->d.C / m->d.NH);
        return CT_ERR_UNSUPPORTED;
    }
    m->dev = calloc(1, sizeof(gpt2_cuda_t));
    CT_ASSERT(m->dev != NULL);
    ct_status_t st = gpu_setup(m, o, cfg, g, device, B, T);
    if (st != CT_OK) gpt2_cuda_free(m);
    else m->be = &gpt2_cuda_backend;
    return st;
}

static void gpt2_cuda_free(ct_model_t *m)
{
    gpt2_cuda_t *G = m->dev;
    if (!G) return;
    if (G->stream && G->comm_stream) wait_reduces(G);
    if (G->stream) ct_cuda_stream_sync(G->stream);
    if (G->have_dev) ct_comm_device_groups_free(&G->dev);
    void **bufs = (void **)&G->a;
    for (size_t i = 0; i < sizeof(G->a) / sizeof(void *); i++) ct_cuda_dealloc(bufs[i]);
    ct_cuda_dealloc(G->master);
    ct_cuda_dealloc(G->params);
    ct_cuda_dealloc(G->grads);
    ct_cuda_dealloc(G->m);
    ct_cuda_dealloc(G->v);
    if (G->ev_layer)
        for (int l = 0; l < m->d.L; l++) ct_cuda_event_destroy(G->ev_layer[l]);
    free(G->ev_layer);
    ct_cuda_event_destroy(G->ev_backward);
    ct_cuda_event_destroy(G->ev_reduced);
    ct_cuda_stream_destroy(G->comm_stream);
    ct_cuda_stream_destroy(G->stream);
    ct_cuda_free(G->ctx);
    free(G->host_losses);
    free(G->host_row);
    free(G->host_row_bf);
    free(G);
    m->dev = NULL;
}

static void gpt2_cuda_to_host(ct_model_t *m, ct_optim_t *o)
{
    gpt2_cuda_t *G = m->dev;
    wait_reduces(G);
    ct_cuda_copy(m->params, G->master, m->num_params * sizeof(float), G->stream);
    ct_cuda_copy(o->m, G->m, o->count * sizeof(float), G->stream);
    ct_cuda_copy(o->v, G->v, o->count * sizeof(float), G->stream);
    ct_cuda_stream_sync(G->stream);
}

static void gpt2_cuda_grads_to_host(ct_model_t *m, float *dst)
{
    gpt2_cuda_t *G = m->dev;
    wait_reduces(G);
    ct_cuda_copy(dst, G->grads, m->num_params * sizeof(float), G->stream);
    ct_cuda_stream_sync(G->stream);
}

static const char *gpt2_cuda_device_name(const ct_model_t *m)
{
    return ct_cuda_device_name(((gpt2_cuda_t *)m->dev)->ctx);
}
static double gpt2_cuda_peak_tflops(const ct_model_t *m)
{
    return ct_cuda_peak_bf16_tflops(((gpt2_cuda_t *)m->dev)->ctx);
}
static size_t gpt2_cuda_peak_memory(const ct_model_t *m)
{
    return ct_cuda_peak_memory(((gpt2_cuda_t *)m->dev)->ctx);
}

static void gpt2_cuda_zero_grad(ct_model_t *m)
{
    gpt2_cuda_t *G = m->dev;
    wait_reduces(G);
    ct_cuda_zero(G->grads, m->num_params * sizeof(float), G->stream);
}

/* ---- forward -------------------------------------------------------------- */

static float gpt2_cuda_forward(ct_model_t *m, const int32_t *inputs, const int32_t *targets, int B,
                               int T)
{
    gpt2_cuda_t *G = m->dev;
    const ct_model_dims_t *d = &m->d;
    const int L = d->L, C = d->C, NH = d->NH, HS = C / NH, Vp = d->Vp, N = B * T;
    CT_ASSERT(N <= m->B * m->T && T <= m->T && T <= d->maxT);
    gpu_acts_t *a = &G->a;
    const ct_gpt2_bf16_tensors_t *p = &G->p;
    void *s = G->stream;
    const size_t NC = (size_t)N * C;
    const int ln_all = G->recompute != CT_RECOMPUTE_LN_GELU, gelu_all = G->recompute == CT_RECOMPUTE_NONE;

    ct_cuda_copy(a->inputs, inputs, (size_t)N * sizeof(int32_t), s);
    if (targets) ct_cuda_copy(a->targets, targets, (size_t)N * sizeof(int32_t), s);
    ct_cuda_encoder_forward(a->encoded, a->inputs, p->wte, p->wpe, B, T, C, s);
    ct_cuda_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->encoded, p->ln1w, p->ln1b, N, C, s);
    for (int l = 0; l < L; l++) {
        const float *residual = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * NC;
        ct_bf16_t *ln1 = a->ln1 + (ln_all ? l * NC : 0), *ln2 = a->ln2 + (ln_all ? l * NC : 0);
        ct_bf16_t *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        ct_bf16_t *fch = a->fch + l * 4 * NC, *fchg = a->fch_gelu + (gelu_all ? l * 4 * NC : 0);
        float *res2 = a->residual2 + l * NC, *res3 = a->residual3 + l * NC;
        float *stats = a->att_stats + (size_t)l * B * NH * T;
        ct_cuda_matmul_forward(G->ctx, qkv, NULL, ln1, p->qkvw + (size_t)l * 3 * C * C,
                               p->qkvb + (size_t)l * 3 * C, N, C, 3 * C, s);
        if (targets)
            ct_cuda_attention_forward(G->ctx, atty, stats, qkv, B, T, NH, HS, s);
        else /* sampling: any (1, t); no cuDNN plan per length */
            ct_cuda_attention_forward_plain(atty, stats, qkv, B, T, NH, HS, s);
        ct_cuda_matmul_forward(G->ctx, a->proj, NULL, atty, p->attprojw + (size_t)l * C * C,
                               p->attprojb + (size_t)l * C, N, C, C, s);
        ct_cuda_residual_layernorm_forward(res2, ln2, a->ln2_mean + (size_t)l * N,
                                           a->ln2_rstd + (size_t)l * N, residual, a->proj,
                                           p->ln2w + (size_t)l * C, p->ln2b + (size_t)l * C, N, C, s);
        ct_cuda_matmul_forward(G->ctx, fchg, fch, ln2, p->fcw + (size_t)l * 4 * C * C,
                               p->fcb + (size_t)l * 4 * C, N, C, 4 * C, s);
        ct_cuda_matmul_forward(G->ctx, a->proj, NULL, fchg, p->fcprojw + (size_t)l * C * 4 * C,
                               p->fcprojb + (size_t)l * C, N, 4 * C, C, s);
        /* residual3 = residual2 + proj, then the next LayerNorm: the next
         * layer's ln1 or the final one */
        if (l + 1 < L) {
            ct_bf16_t *next = a->ln1 + (ln_all ? (l + 1) * NC : 0);
            ct_cuda_residual_layernorm_forward(res3, next, a->ln1_mean + (size_t)(l + 1) * N,
                                               a->ln1_rstd + (size_t)(l + 1) * N, res2, a->proj,
                                               p->ln1w + (size_t)(l + 1) * C,
                                               p->ln1b + (size_t)(l + 1) * C, N, C, s);
        } else {
            ct_cuda_residual_layernorm_forward(res3, a->lnf, a->lnf_mean, a->lnf_rstd, res2,
                                               a->proj, p->lnfw, p->lnfb, N, C, s);
        }
    }
    ct_cuda_matmul_forward(G->ctx, a->logits, NULL, a->lnf, p->wte, NULL, N, C, Vp, s);
    G->last_B = B;
    G->last_T = T;
    m->last_targets = targets;
    if (!targets) return 0.0f;
    ct_cuda_xent_forward_backward(a->losses, a->logits, a->targets, 0.0f, N, d->V, Vp, s);
    /* the one host wait of a forward: the loss, for logging and the guards */
    ct_cuda_copy(G->host_losses, a->losses, (size_t)N * sizeof(float), s);
    ct_cuda_stream_sync(s);
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += G->host_losses[i];
    return (float)(sum / N);
}

static const float *gpt2_cuda_logits_row(ct_model_t *m, int row)
{
    gpt2_cuda_t *G = m->dev;
    const int Vp = m->d.Vp;
    ct_cuda_copy(G->host_row_bf, G->a.logits + (size_t)row * Vp, (size_t)Vp * sizeof(ct_bf16_t),
                 G->stream);
    ct_cuda_stream_sync(G->stream);
    for (int v = 0; v < Vp; v++) {
        uint32_t bits = (uint32_t)G->host_row_bf[v] << 16;
        memcpy(&G->host_row[v], &bits, sizeof bits);
    }
    return G->host_row;
}

/* ---- backward ------------------------------------------------------------- */

/* Starts the DP all-reduce of layer l's gradient slices on the comm stream,
 * after the compute stream has finished them. */
static void reduce_layer(ct_model_t *m, int l)
{
    gpt2_cuda_t *G = m->dev;
    ct_cuda_event_record(G->ev_layer[l], G->stream);
    ct_cuda_stream_wait_event(G->comm_stream, G->ev_layer[l]);
    ct_comm_set_activity("dp gradient reduce of layer %d", l);
    ct_comm_group_begin();
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) {
        if (!ct__gpt2_tensor_per_layer(i)) continue;
        size_t n = m->sizes[i] / (size_t)m->d.L;
        float *gi = G->g.t[i] + (size_t)l * n;
        if (ct_comm_allreduce(G->dev.dp, gi, gi, n, CT_DTYPE_F32, CT_OP_AVG, G->comm_stream) !=
            CT_OK)
            ct_comm_abort(1);
    }
    if (ct_comm_group_end() != CT_OK) ct_comm_abort(1);
}

static void gpt2_cuda_backward(ct_model_t *m, const int32_t *inputs, int B, int T, float loss_scale)
{
    gpt2_cuda_t *G = m->dev;
    const ct_model_dims_t *d = &m->d;
    const int L = d->L, C = d->C, NH = d->NH, HS = C / NH, Vp = d->Vp, N = B * T;
    CT_ASSERT(m->last_targets != NULL && B == G->last_B && T == G->last_T);
    gpu_acts_t *a = &G->a;
    const ct_gpt2_bf16_tensors_t *p = &G->p;
    const ct_gpt2_tensors_t *g = &G->g;
    void *s = G->stream;
    ct_cuda_t *ctx = G->ctx;
    const size_t NC = (size_t)N * C;
    const int ln_all = G->recompute != CT_RECOMPUTE_LN_GELU, gelu_all = G->recompute == CT_RECOMPUTE_NONE;
    /* overlap the DP reduce with this backward when it is the last
     * micro-batch and the optimizer does not use ZeRO's reduce-scatter */
    wait_reduces(G);
    const int overlap = G->have_dev && m->grad_sync && !G->zero;

    ct_cuda_xent_forward_backward(a->losses, a->logits, a->targets, loss_scale / (float)N, N,
                                  d->V, Vp, s);
    ct_cuda_matmul_backward(ctx, a->dln, g->wte, NULL, a->logits, a->lnf, p->wte, NULL, a->scratch,
                            N, C, Vp, s);
    ct_cuda_zero(a->dres, NC * sizeof(float), s);
    const float *last = a->residual3 + (size_t)(L - 1) * NC; /* L >= 1 (config) */
    ct_cuda_layernorm_backward(a->dres, a->dres_bf, g->lnfw, g->lnfb, a->dln, last, p->lnfw,
                               a->lnf_mean, a->lnf_rstd, a->scratch, N, C, s);
    for (int l = L - 1; l >= 0; l--) {
        const float *residual = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * NC;
        const float *res2 = a->residual2 + l * NC;
        ct_bf16_t *ln1 = a->ln1 + (ln_all ? l * NC : 0), *ln2 = a->ln2 + (ln_all ? l * NC : 0);
        const ct_bf16_t *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        const ct_bf16_t *fch = a->fch + l * 4 * NC;
        ct_bf16_t *fchg = a->fch_gelu + (gelu_all ? l * 4 * NC : 0);
        const float *stats = a->att_stats + (size_t)l * B * NH * T;
        float *ln1_mean = a->ln1_mean + (size_t)l * N, *ln1_rstd = a->ln1_rstd + (size_t)l * N;
        float *ln2_mean = a->ln2_mean + (size_t)l * N, *ln2_rstd = a->ln2_rstd + (size_t)l * N;

        if (!gelu_all) ct_cuda_gelu_forward(fchg, fch, (long)(4 * NC), s);
        /* fcproj, with GELU's backward fused: dfch = (dres @ W) * gelu'(fch) */
        ct_cuda_matmul_backward(ctx, a->dfch, g->fcprojw + (size_t)l * C * 4 * C, g->fcprojb + (size_t)l * C,
                                a->dres_bf, fchg, p->fcprojw + (size_t)l * C * 4 * C, fch, a->scratch,
                                N, 4 * C, C, s);
        if (!ln_all)
            ct_cuda_layernorm_forward(ln2, ln2_mean, ln2_rstd, res2, p->ln2w + (size_t)l * C,
                                      p->ln2b + (size_t)l * C, N, C, s);
        ct_cuda_matmul_backward(ctx, a->dln, g->fcw + (size_t)l * 4 * C * C,
                                g->fcb + (size_t)l * 4 * C, a->dfch, ln2,
                                p->fcw + (size_t)l * 4 * C * C, NULL, a->scratch, N, C, 4 * C, s);
        ct_cuda_layernorm_backward(a->dres, a->dres_bf, g->ln2w + (size_t)l * C, g->ln2b + (size_t)l * C,
                                   a->dln, res2, p->ln2w + (size_t)l * C, ln2_mean, ln2_rstd,
                                   a->scratch, N, C, s);
        /* dres is now d(residual2) */
        ct_cuda_matmul_backward(ctx, a->datty, g->attprojw + (size_t)l * C * C, g->attprojb + (size_t)l * C,
                                a->dres_bf, atty, p->attprojw + (size_t)l * C * C, NULL, a->scratch, N,
                                C, C, s);
        ct_cuda_attention_backward(ctx, a->dqkv, a->datty, qkv, atty, stats, B, T, NH, HS, s);
        if (!ln_all)
            ct_cuda_layernorm_forward(ln1, ln1_mean, ln1_rstd, residual, p->ln1w + (size_t)l * C,
                                      p->ln1b + (size_t)l * C, N, C, s);
        ct_cuda_matmul_backward(ctx, a->dln, g->qkvw + (size_t)l * 3 * C * C,
                                g->qkvb + (size_t)l * 3 * C, a->dqkv, ln1,
                                p->qkvw + (size_t)l * 3 * C * C, NULL, a->scratch, N, C, 3 * C, s);
        ct_cuda_layernorm_backward(a->dres, a->dres_bf, g->ln1w + (size_t)l * C, g->ln1b + (size_t)l * C,
                                   a->dln, residual, p->ln1w + (size_t)l * C, ln1_mean, ln1_rstd,
                                   a->scratch, N, C, s);
        if (overlap) reduce_layer(m, l);
    }
    ct_cuda_encoder_backward(g->wte, g->wpe, a->dres, a->inputs, B, T, C, s);
    G->reduce_started = overlap;
}

/* ---- optimizer -------------------------------------------------------------- */

/* The optimizer's device pieces under model/optim.c's skeleton. */

/* 1. average gradients over DP on the comm stream: what the backward did not
 * already reduce (wte, wpe, lnf), or ZeRO's reduce-scatter */
static CT_MUST_USE ct_status_t gpt2_cuda_grad_reduce(ct_model_t *m, ct_optim_t *o, int t)
{
    gpt2_cuda_t *G = m->dev;
    ct_status_t st = CT_OK;
    G->t0 = ct_time_now();
    if (G->have_dev) {
        ct_cuda_event_record(G->ev_backward, G->stream);
        ct_cuda_stream_wait_event(G->comm_stream, G->ev_backward);
        if (o->zero) {
            ct_comm_set_activity("step %d: dp gradient reduce-scatter", t);
            st = ct_comm_reduce_scatter(G->dev.dp, G->grads, G->grads + o->start, o->count,
                                        CT_DTYPE_F32, CT_OP_AVG, G->comm_stream);
        } else {
            ct_comm_set_activity("step %d: dp gradient reduce", t);
            ct_comm_group_begin();
            for (int i = 0; i < CT_GPT2_NUM_TENSORS && st == CT_OK; i++) {
                if (G->reduce_started && ct__gpt2_tensor_per_layer(i)) continue;
                st = ct_comm_allreduce(G->dev.dp, G->g.t[i], G->g.t[i], m->sizes[i], CT_DTYPE_F32,
                                       CT_OP_AVG, G->comm_stream);
            }
            ct_status_t st_end = ct_comm_group_end();
            if (st == CT_OK) st = st_end;
        }
        if (st != CT_OK) return st;
        ct_cuda_event_record(G->ev_reduced, G->comm_stream);
        ct_cuda_stream_wait_event(G->stream, G->ev_reduced);
    }
    G->reduce_started = 0;
    return CT_OK;
}

/* 2. the sum of squares of the owned slice stays on the device; with ZeRO
 * summed over DP */
static CT_MUST_USE ct_status_t gpt2_cuda_grad_sumsq(ct_model_t *m, ct_optim_t *o, int t, double *host_p)
{
    gpt2_cuda_t *G = m->dev;
    ct_cuda_sumsq(G->a.sumsq, G->grads + o->start, (long)o->count, 0, G->a.scratch, G->stream);
    if (G->have_dev && o->zero) {
        ct_comm_set_activity("step %d: gradient norm", t);
        return ct_comm_allreduce(G->dev.dp, G->a.sumsq, G->a.sumsq, 1, CT_DTYPE_F32, CT_OP_SUM,
                                 G->stream);
    }
    return CT_OK;
}

/* The stochastic-rounding seed of step t, tensor i (never 0: 0 means
 * round to nearest). */
static uint32_t sr_seed(int t, int i)
{
    uint32_t s = (uint32_t)ct_splitmix64(((uint64_t)(uint32_t)t << 32) | (uint32_t)i);
    return s ? s : 1u;
}

/* 3. AdamW on [a, b); the kernel reads the norm on the device (clip scale,
 * non-finite skip), so clip_scale is unused */
static void gpt2_cuda_adamw(ct_model_t *m, ct_optim_t *o, const ct_optim_config_t *cfg, size_t a,
                            size_t b, float lr, float wd, int t, int tensor, float clip_scale)
{
    gpt2_cuda_t *G = m->dev;
    const size_t lo = o->start;
    ct_cuda_adamw_update(G->master + a, o->zero ? NULL : G->params + a, G->grads + a,
                         G->m + (a - lo), G->v + (a - lo), (long)(b - a), lr, cfg->beta1,
                         cfg->beta2, cfg->eps, wd, t, G->a.sumsq, cfg->grad_clip,
                         G->stochastic ? sr_seed(t, tensor) : 0u, G->stream);
}

/* 4. ZeRO: everyone gets the updated weights */
static CT_MUST_USE ct_status_t gpt2_cuda_param_gather(ct_model_t *m, ct_optim_t *o, int t)
{
    gpt2_cuda_t *G = m->dev;
    if (!G->have_dev) return CT_OK;
    ct_comm_set_activity("step %d: dp parameter all-gather", t);
    ct_status_t st = ct_comm_allgather(G->dev.dp, G->master + o->start, G->master, o->count,
                                       CT_DTYPE_F32, G->stream);
    if (st != CT_OK) return st;
    ct_cuda_f32_to_bf16(G->params, G->master, (long)m->num_params, G->stream);
    return CT_OK;
}

/* 5. the one host wait of the step: the norm, for logging and guards;
 * ct_comm_sync bounds it by comm.timeout_s when NCCL is involved */
static CT_MUST_USE ct_status_t gpt2_cuda_step_norm(ct_model_t *m, ct_optim_t *o, int t, double host_sumsq,
                                       float *norm_p)
{
    gpt2_cuda_t *G = m->dev;
    ct_status_t st;
    if (G->have_dev) {
        ct_comm_set_activity("step %d: waiting for the device", t);
        if ((st = ct_comm_sync(G->dev.dp, G->stream)) != CT_OK) return st;
    }
    float sumsq = 0.0f;
    ct_cuda_copy(&sumsq, G->a.sumsq, sizeof(float), G->stream);
    ct_cuda_stream_sync(G->stream);
    if (G->have_dev) o->comm_seconds += ct_time_now() - G->t0; /* includes compute tail */
    *norm_p = sqrtf(sumsq);
    return CT_OK;
}

static const ct_model_backend_t gpt2_cuda_backend = {
    .name = "gpt2/cuda",
    .forward = gpt2_cuda_forward,
    .backward = gpt2_cuda_backward,
    .zero_grad = gpt2_cuda_zero_grad,
    .logits_row = gpt2_cuda_logits_row,
    .to_host = gpt2_cuda_to_host,
    .grads_to_host = gpt2_cuda_grads_to_host,
    .free = gpt2_cuda_free,
    .device_name = gpt2_cuda_device_name,
    .peak_tflops = gpt2_cuda_peak_tflops,
    .peak_memory = gpt2_cuda_peak_memory,
    .grad_reduce = gpt2_cuda_grad_reduce,
    .grad_sumsq = gpt2_cuda_grad_sumsq,
    .adamw = gpt2_cuda_adamw,
    .param_gather = gpt2_cuda_param_gather,
    .step_norm = gpt2_cuda_step_norm,
};
