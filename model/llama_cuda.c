/* Llama on one CUDA device: the same model as llama_cpu.c, on the
 * kernels/cuda ops. bf16 weights and activations feed the matmuls and
 * attention; the residual stream, RMSNorm statistics, losses, gradients,
 * master weights and AdamW state are fp32 (model/model_cuda.c holds the
 * weights, the optimizer's device pieces, the streams, the DP reduce
 * overlapped with the backward and the per-op timing, shared with
 * gpt2_cuda.c).
 *
 * A layer: RMSNorm (fused with the previous residual add), q, k and v by
 * three matmuls, RoPE on q and k in one pass, grouped-query attention (key
 * and value heads shared by their query-head group, never copied), o_proj,
 * residual + RMSNorm, gate and up, SwiGLU, down_proj. In the backward the
 * input gradients of q/k/v (and of gate/up) are summed in fp32 by
 * cuBLASLt (beta 1) and reach the RMSNorm backward unrounded. The LM head
 * and cross-entropy run in chunks of rows, forward and backward together
 * (ct__cuda_head, shared with GPT-2), so the logits never exist for the
 * whole micro-batch (at a 128k vocabulary they would be the largest
 * activation); a forward with targets and its backward are one call
 * (forward_backward), and a backward after a plain forward runs the head
 * again.
 *
 * Tensor parallelism (tp > 1) is the CPU path's Megatron partitioning
 * (llama_cpu.c): q, gate and up column-parallel (whole query heads and
 * SwiGLU units), k and v split by whole key/value heads when n_kv_head
 * divides by tp and replicated otherwise, o_proj and down_proj
 * row-parallel, a vocab-parallel embedding and head with the parallel
 * cross-entropy. The TP collectives are NCCL calls on the compute stream.
 * Partial sums cross the TP group in fp32 and are rounded to bf16 once,
 * after the sum, as the single-GPU matmul rounds its one sum. Replicated
 * key/value heads: each rank's attention backward gives the part of dk and
 * dv its query heads contribute; they are summed over TP (in fp32) so that
 * every rank computes the same k_proj/v_proj gradients, and TP rank 0
 * alone adds their input gradient before the all-reduce of dln.
 *
 * Attention: the plain GQA kernels of attention_gqa.cu, or with
 * model.attention cudnn (an opt-in: not validated on a GPU yet) cuDNN's
 * SDPA with fewer key/value heads for the training shape.
 *
 * Left out: sequence parallelism and recompute (refused with a hint), the
 * flash kernels for GQA, overlapping the TP collectives with compute,
 * bit-exact reproducibility on a real GPU (the embedding backward uses
 * atomics). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/llama.h"
#include "model/model_cuda.h"

/* bf16 views of the weights, as ct_llama_tensors_t's fp32 ones. */
typedef union {
    struct {
        ct_bf16_t *wte, *ln1w, *wq, *wk, *wv, *wo, *ln2w, *wgate, *wup, *wdown, *lnfw, *head;
    };
    ct_bf16_t *t[CT_LLAMA_MAX_TENSORS];
} llama_bf16_tensors_t;

typedef struct {
    CT_CUDA_MODEL_BASE;
    llama_bf16_tensors_t p; /* views of params; head is wte when tied */
    ct_llama_tensors_t g;   /* views of grads */
    ct_llama_cuda_acts_t a;
    int last_B, last_T;
    int logits_row0;      /* the first row the logits buffer holds (sampling) */
    int cudnn_att;        /* model.attention cudnn: cuDNN's SDPA for the training shape */
    size_t act_bytes;
} llama_cuda_t;

static const ct_model_backend_t llama_cuda_backend;

static const char *const prof_names[F_N] = {"embedding", "rmsnorm", "matmul", "attention",
                                            "swiglu+rope", "cross-entropy", "tp comm", "dp comm",
                                            "optimizer", "other"};

static void llama_cuda_free(ct_model_t *m)
{
    llama_cuda_t *G = m->dev;
    if (!G) return;
    if (G->stream && G->comm_stream) ct__cuda_wait_reduces(&G->base);
    if (G->stream) ct_cuda_stream_sync(G->stream);
    void **bufs = (void **)&G->a;
    for (int i = 0; i < CT_LLAMA_CUDA_NUM_ACTS; i++) ct_cuda_dealloc(bufs[i]);
    ct__cuda_model_free(m);
    free(G);
    m->dev = NULL;
}

static CT_MUST_USE ct_status_t llama_setup(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                                           const ct_comm_groups_t *g, int device, int B, int T)
{
    llama_cuda_t *G = m->dev;
    const ct_model_dims_t *d = &m->d;
    ct_status_t st;
    int per_layer[CT_LLAMA_MAX_TENSORS];
    for (int i = 0; i < m->n_tensors; i++)
        per_layer[i] = i != CT_LLAMA_WTE && i != CT_LLAMA_LNFW && i != CT_LLAMA_HEAD;
    if ((st = ct__cuda_model_setup(m, o, cfg, device, prof_names, per_layer, B, T)) != CT_OK)
        return st;
    for (int i = 0; i < m->n_tensors; i++) {
        G->p.t[i] = G->params + m->offsets[i];
        G->g.t[i] = G->grads + m->offsets[i];
    }
    if (d->tied) {
        G->p.head = G->p.wte;
        G->g.head = G->g.wte;
    }
    ct_plan_item_t it[CT_PLAN_MAX_ITEMS];
    int n = ct__llama_cuda_act_items(d, B, T, it);
    for (int i = 0; i < n; i++) {
        void **slot = (void **)((char *)&G->a + it[i].slot);
        if ((st = ct__cuda_model_alloc(&G->base, slot, it[i].bytes, it[i].name)) != CT_OK)
            return st;
        if (it[i].kind == CT_PLAN_ACTS) G->act_bytes += it[i].bytes;
    }
    G->opt_scratch = G->a.scratch;
    G->opt_sumsq = G->a.sumsq;

    /* the RoPE tables, computed on the host as the CPU path's */
    const size_t tab = (size_t)d->maxT * (d->HS / 2);
    float *inv = malloc((size_t)(d->HS / 2) * sizeof(float)), *cs = malloc(2 * tab * sizeof(float));
    if (!inv || !cs) {
        free(inv), free(cs);
        CT_LOG_ERROR("out of host memory for the RoPE tables");
        return CT_ERR_NO_MEMORY;
    }
    ct_rope_inv_freq(inv, d->HS, d->rope.theta, d->rope.llama3, d->rope.factor,
                     d->rope.low_freq_factor, d->rope.high_freq_factor,
                     d->rope.original_max_seq_len);
    ct_rope_table(cs, cs + tab, inv, d->maxT, d->HS);
    ct_cuda_copy(G->a.rope_cos, cs, tab * sizeof(float), G->stream);
    ct_cuda_copy(G->a.rope_sin, cs + tab, tab * sizeof(float), G->stream);
    ct_cuda_stream_sync(G->stream);
    free(inv), free(cs);

    /* model.attention cudnn opts in to cuDNN's SDPA (GQA through fewer
     * key/value heads); auto and plain take the plain GQA kernels, which
     * the emulator validates against the CPU model */
    if (cfg->model.attention == CT_ATTENTION_CUDNN) {
        if (d->tp > 1 && !d->kv_sharded) {
            CT_LOG_ERROR("model.attention is cudnn, but parallel.tp = %d does not divide the %d "
                         "key/value heads, and cuDNN takes no replicated heads\n---> HINT: set "
                         "model.attention: auto, or parallel.tp to a divisor of n_kv_head",
                         d->tp, d->NKV);
            return CT_ERR_UNSUPPORTED;
        }
        if ((st = ct_cuda_gqa_prepare_cudnn(G->ctx, B, T, d->NHl, d->NKVl, d->HS)) != CT_OK) {
            CT_LOG_ERROR("model.attention is cudnn but cuDNN rejects grouped-query attention at "
                         "B=%d T=%d NH=%d NKV=%d HS=%d (CT_LOG_LEVEL=debug shows cuDNN's "
                         "reason)\n---> HINT: set model.attention: auto for the plain CUDA "
                         "kernels", B, T, d->NHl, d->NKVl, d->HS);
            return st;
        }
        G->cudnn_att = 1;
    }
    if ((st = ct__cuda_model_finish(m, o, g, B, T)) != CT_OK) return st;
    CT_LOG_INFO_R0("GPU model (llama, %d query and %d key/value heads%s): %.1f MiB of device "
                   "memory allocated, activations %.3f MiB; attention: %s",
                   d->NH, d->NKV,
                   d->tp == 1        ? ""
                   : d->kv_sharded ? ", tensor parallel"
                                   : ", tensor parallel with replicated key/value heads",
                   G->alloc_bytes / 1048576.0, G->act_bytes / 1048576.0,
                   G->cudnn_att ? "cuDNN" : "the plain GQA kernels");
    return CT_OK;
}

ct_status_t ct__llama_cuda_init(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                                const ct_comm_groups_t *g, int device, int B, int T)
{
    const ct_model_dims_t *d = &m->d;
    if (d->tp > 1 && cfg->parallel.sp) {
        CT_LOG_ERROR("parallel.sp with model.arch llama: the Llama GPU path has tensor "
                     "parallelism but no sequence parallelism yet\n---> HINT: set "
                     "parallel.sp: false");
        return CT_ERR_UNSUPPORTED;
    }
    /* gelu (the default) has nothing to recompute in a Llama (no GELU) */
    if (cfg->model.recompute == CT_RECOMPUTE_LN_GELU) {
        CT_LOG_ERROR("model.recompute: ln_gelu with model.arch llama: the Llama GPU path keeps "
                     "every norm's output (no recompute yet)\n---> HINT: set model.recompute: "
                     "gelu or none (the same for a Llama: it has no GELU)");
        return CT_ERR_UNSUPPORTED;
    }
    if (d->HS > 128) {
        CT_LOG_ERROR("model.n_embd/model.n_head = %d: the GPU attention supports head sizes up "
                     "to 128", d->HS);
        return CT_ERR_UNSUPPORTED;
    }
    m->dev = calloc(1, sizeof(llama_cuda_t));
    CT_ASSERT(m->dev != NULL);
    ct_status_t st = llama_setup(m, o, cfg, g, device, B, T);
    if (st != CT_OK) llama_cuda_free(m);
    else m->be = &llama_cuda_backend;
    return st;
}

/* ---- tensor-parallel pieces ------------------------------------------------ */

/* Sums n fp32 values over the TP group in place, on the compute stream (the
 * next op reads them); a failed collective ends the job. */
static void tp_allreduce(llama_cuda_t *G, float *x, size_t n)
{
    OP(F_TP, 0, n * 4, G->stream,
       ct__cuda_tp_check(ct_comm_allreduce(G->tpc, x, x, n, CT_DTYPE_F32, CT_OP_SUM, G->stream)));
}

/* A row-parallel matmul inp (N, Cin) @ w^T into a->proj (N, C): at tp = 1
 * one bf16 matmul; under TP the fp32 partials summed over the group, then
 * rounded once. */
static void row_parallel(llama_cuda_t *G, const ct_bf16_t *inp, const ct_bf16_t *w, int N,
                         int Cin, int C)
{
    void *s = G->stream;
    if (!G->tpc) {
        OP(F_MATMUL, 2.0 * N * Cin * C, 0, s,
           ct_cuda_matmul_forward(G->ctx, G->a.proj, NULL, inp, w, NULL, N, Cin, C, s));
        return;
    }
    OP(F_MATMUL, 2.0 * N * Cin * C, 0, s,
       ct_cuda_matmul_forward_f32(G->ctx, G->a.tp_f32, inp, w, N, Cin, C, s));
    tp_allreduce(G, G->a.tp_f32, (size_t)N * C);
    OP(F_OTHER, 0, (size_t)N * C * 6, s,
       ct_cuda_bias_to_bf16(G->a.proj, G->a.tp_f32, NULL, N, C, s));
}

/* ---- forward -------------------------------------------------------------- */

/* Embedding and transformer layers, up to the final RMSNorm (a->lnf). */
static void forward_body(ct_model_t *m, const int32_t *inputs, const int32_t *targets, int B,
                         int T)
{
    llama_cuda_t *G = m->dev;
    const ct_model_dims_t *d = &m->d;
    const int L = d->L, C = d->C, HS = d->HS, NH = d->NHl, NKV = d->NKVl, KV = NKV * HS;
    const int Cq = d->Cl; /* this rank's query channels */
    const int F = d->Fl, Vp = d->Vpl, N = B * T, group = d->NH / d->NKV;
    const int q_head0 = d->kv_sharded ? 0 : d->tp_rank * d->NHl; /* as llama_cpu.c */
    CT_ASSERT(N <= m->B * m->T && T <= m->T && T <= d->maxT);
    ct_llama_cuda_acts_t *a = &G->a;
    const llama_bf16_tensors_t *p = &G->p;
    void *s = G->stream;
    ct_cuda_t *ctx = G->ctx;
    const size_t NC = (size_t)N * C, NCq = (size_t)N * Cq, NKVs = (size_t)N * KV;
    const size_t NF = (size_t)N * F;
    const float eps = d->norm_eps;
    const double att_flop = 2.0 * B * NH * (double)T * T * HS; /* causal: half of 4 B NH T^2 HS */

    ct_cuda_copy(a->inputs, inputs, (size_t)N * sizeof(int32_t), s);
    if (targets) ct_cuda_copy(a->targets, targets, (size_t)N * sizeof(int32_t), s);
    /* vocab-parallel under TP: this rank's rows of wte, summed over the group */
    OP(F_EMBED, 0, NC * 6, s,
       ct_cuda_encoder_forward_vp(a->encoded, a->inputs, p->wte, NULL, B, T, C, d->v_start, Vp,
                                  s));
    if (G->tpc) tp_allreduce(G, a->encoded, NC);
    OP(F_LN, 0, NC * 6, s,
       ct_cuda_rmsnorm_forward(a->ln1, a->rstd1, a->encoded, p->ln1w, N, C, eps, s));
    for (int l = 0; l < L; l++) {
        ct_bf16_t *ln1 = a->ln1 + l * NC, *q = a->q + l * NCq, *k = a->k + l * NKVs;
        ct_bf16_t *v = a->v + l * NKVs, *atty = a->atty + l * NCq, *ln2 = a->ln2 + l * NC;
        ct_bf16_t *gate = a->gate + l * NF, *up = a->up + l * NF, *hmid = a->hmid + l * NF;
        float *res2 = a->residual2 + l * NC, *res3 = a->residual3 + l * NC;
        float *stats = a->att_stats + (size_t)l * B * NH * T;
        OP(F_MATMUL, 2.0 * N * C * Cq, 0, s,
           ct_cuda_matmul_forward(ctx, q, NULL, ln1, p->wq + (size_t)l * Cq * C, NULL, N, C, Cq,
                                  s));
        OP(F_MATMUL, 2.0 * N * C * KV, 0, s,
           ct_cuda_matmul_forward(ctx, k, NULL, ln1, p->wk + (size_t)l * KV * C, NULL, N, C, KV,
                                  s));
        OP(F_MATMUL, 2.0 * N * C * KV, 0, s,
           ct_cuda_matmul_forward(ctx, v, NULL, ln1, p->wv + (size_t)l * KV * C, NULL, N, C, KV,
                                  s));
        OP(F_GELU, 0, (NCq + NKVs) * 4, s,
           ct_cuda_rope_forward(q, k, a->rope_cos, a->rope_sin, B, T, NH, NKV, HS, s));
        if (G->cudnn_att && targets) /* sampling (any T): the plain kernels, no plan per length */
            OP(F_ATTN, att_flop, 0, s,
               ct_cuda_gqa_forward_cudnn(ctx, atty, stats, q, k, v, B, T, NH, NKV, HS, s));
        else
            OP(F_ATTN, att_flop, 0, s,
               ct_cuda_gqa_forward(atty, stats, q, k, v, B, T, NH, NKV, HS, group, q_head0, s));
        row_parallel(G, atty, p->wo + (size_t)l * C * Cq, N, Cq, C);
        const float *residual = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * NC;
        OP(F_LN, 0, NC * 12, s,
           ct_cuda_residual_rmsnorm_forward(res2, ln2, a->rstd2 + (size_t)l * N, residual,
                                            a->proj, p->ln2w + (size_t)l * C, N, C, eps, s));
        OP(F_MATMUL, 2.0 * N * C * F, 0, s,
           ct_cuda_matmul_forward(ctx, gate, NULL, ln2, p->wgate + (size_t)l * F * C, NULL, N, C,
                                  F, s));
        OP(F_MATMUL, 2.0 * N * C * F, 0, s,
           ct_cuda_matmul_forward(ctx, up, NULL, ln2, p->wup + (size_t)l * F * C, NULL, N, C, F,
                                  s));
        OP(F_GELU, 0, NF * 6, s, ct_cuda_swiglu_forward(hmid, gate, up, (long)NF, s));
        row_parallel(G, hmid, p->wdown + (size_t)l * C * F, N, F, C);
        /* residual3 = residual2 + down_proj, then the next RMSNorm: the next
         * layer's ln1 or the final one */
        if (l + 1 < L)
            OP(F_LN, 0, NC * 12, s,
               ct_cuda_residual_rmsnorm_forward(res3, a->ln1 + (l + 1) * NC,
                                                a->rstd1 + (size_t)(l + 1) * N, res2, a->proj,
                                                p->ln1w + (size_t)(l + 1) * C, N, C, eps, s));
        else
            OP(F_LN, 0, NC * 12, s,
               ct_cuda_residual_rmsnorm_forward(res3, a->lnf, a->rstdf, res2, a->proj, p->lnfw,
                                                N, C, eps, s));
    }
    G->last_B = B;
    G->last_T = T;
    m->last_targets = targets;
}

/* The LM head and cross-entropy, chunk by chunk (ct__cuda_head,
 * model/model_cuda.c, shared with GPT-2; mode CT_HEAD_*): the logits exist
 * for one chunk of rows at a time; in training the head's backward writes
 * the head's gradient (wte's when tied) and d(lnf) in fp32 into a->dln,
 * summed over the TP group once, after the last chunk. */
static void head(ct_model_t *m, int mode, float dloss)
{
    llama_cuda_t *G = m->dev;
    ct_llama_cuda_acts_t *a = &G->a;
    const int N = G->last_B * G->last_T;
    const ct_cuda_head_t h = {.x = a->lnf, .w = G->p.head, .dw = G->g.head,
                              .logits = a->logits, .targets = a->targets, .losses = a->losses,
                              .lse = a->lse, .xstats = a->xstats, .scratch = a->scratch,
                              .dx_bf = NULL, .dx_f32 = a->dln};
    const int r0 = ct__cuda_head(m, &h, N, mode, dloss);
    if (mode == CT_HEAD_LOGITS) G->logits_row0 = r0;
    if (mode == CT_HEAD_TRAIN && G->tpc) tp_allreduce(G, a->dln, (size_t)N * m->d.C);
}

static float llama_cuda_forward(ct_model_t *m, const int32_t *inputs, const int32_t *targets,
                                int B, int T)
{
    llama_cuda_t *G = m->dev;
    forward_body(m, inputs, targets, B, T);
    if (!targets) {
        head(m, CT_HEAD_LOGITS, 0.0f);
        if (G->tpc) ct__cuda_compute_sync(&G->base); /* the collectives of a sampling forward */
        return 0.0f;
    }
    head(m, CT_HEAD_LOSS, 0.0f);
    return ct__cuda_mean_loss(&G->base, G->a.losses, G->last_B * G->last_T);
}

static const float *llama_cuda_logits_row(ct_model_t *m, int row)
{
    llama_cuda_t *G = m->dev;
    /* the head keeps the last chunk's logits: every row of a sampling forward */
    CT_ASSERT(!m->last_targets && row >= G->logits_row0 &&
              row < G->logits_row0 + ct__model_head_rows(m->B, m->T));
    return ct__cuda_logits_row(m, G->a.logits, row - G->logits_row0);
}

/* ---- backward ------------------------------------------------------------- */

/* The backward of column-parallel matmuls reading the same bf16 input
 * inp (N, C): each weight's gradient (+=), and the input gradients of the
 * first n_dinp of them summed in fp32 into dln (overwritten), then over
 * the TP group. */
static void multi_matmul_backward(llama_cuda_t *G, int count, int n_dinp, float *const *dw,
                                  const ct_bf16_t *const *dout, const ct_bf16_t *const *w,
                                  const int *OC, const ct_bf16_t *inp, int N, int C)
{
    void *s = G->stream;
    for (int i = 0; i < count; i++) {
        OP(F_MATMUL, 2.0 * N * C * OC[i], 0, s,
           ct_cuda_matmul_backward(G->ctx, NULL, dw[i], NULL, dout[i], inp, w[i], NULL,
                                   G->a.scratch, N, C, OC[i], s));
        if (i >= n_dinp) continue;
        if (i == 0)
            OP(F_MATMUL, 2.0 * N * C * OC[i], 0, s,
               ct_cuda_matmul_dinp_f32(G->ctx, G->a.dln, dout[i], w[i], N, C, OC[i], s));
        else
            OP(F_MATMUL, 2.0 * N * C * OC[i], 0, s,
               ct_cuda_matmul_dinp_f32_add(G->ctx, G->a.dln, dout[i], w[i], N, C, OC[i], s));
    }
    if (G->tpc) tp_allreduce(G, G->a.dln, (size_t)N * C);
}

/* Replicated key/value heads under TP: this rank's dk, dv (its query
 * heads' part, fp32 in a->dkv_f32) summed over the group, rounded once. */
static void tp_sum_dkv(llama_cuda_t *G, size_t n)
{
    ct_llama_cuda_acts_t *a = &G->a;
    void *s = G->stream;
    tp_allreduce(G, a->dkv_f32, 2 * n);
    OP(F_OTHER, 0, n * 12, s, ct_cuda_f32_to_bf16(a->dk, a->dkv_f32, (long)n, s));
    OP(F_OTHER, 0, n * 12, s, ct_cuda_f32_to_bf16(a->dv, a->dkv_f32 + n, (long)n, s));
}

/* The backward from d(lnf) in a->dln (the head's backward wrote it) down to
 * the embedding. */
static void backward_body(ct_model_t *m, int B, int T)
{
    llama_cuda_t *G = m->dev;
    const ct_model_dims_t *d = &m->d;
    const int L = d->L, C = d->C, HS = d->HS, NH = d->NHl, NKV = d->NKVl, KV = NKV * HS;
    const int Cq = d->Cl, F = d->Fl, Vp = d->Vpl, N = B * T, group = d->NH / d->NKV;
    const int q_head0 = d->kv_sharded ? 0 : d->tp_rank * d->NHl;
    /* replicated key/value heads: dk, dv summed over TP, their input
     * gradient added on TP rank 0 only (see the top of the file) */
    const int kv_replicated = G->tpc && !d->kv_sharded;
    const int kv_dinp = !kv_replicated || d->tp_rank == 0;
    CT_ASSERT(m->last_targets != NULL && B == G->last_B && T == G->last_T);
    ct_llama_cuda_acts_t *a = &G->a;
    const llama_bf16_tensors_t *p = &G->p;
    const ct_llama_tensors_t *g = &G->g;
    void *s = G->stream;
    ct_cuda_t *ctx = G->ctx;
    const size_t NC = (size_t)N * C, NCq = (size_t)N * Cq, NKVs = (size_t)N * KV;
    const size_t NF = (size_t)N * F;
    const double att_flop = 4.0 * B * NH * (double)T * T * HS; /* twice the forward's */
    /* overlap the DP reduce with this backward when it is the last
     * micro-batch and the optimizer does not use ZeRO's reduce-scatter
     * (head_and_backward waited for reduces a skipped step left running) */
    const int overlap = G->dpc && m->grad_sync && !G->zero;

    OP(F_OTHER, 0, NC * 4, s, ct_cuda_zero(a->dres, NC * sizeof(float), s));
    const float *last = a->residual3 + (size_t)(L - 1) * NC; /* L >= 1 (config) */
    OP(F_LN, 0, NC * 16, s,
       ct_cuda_rmsnorm_backward(a->dres, a->dres_bf, g->lnfw, a->dln, last, p->lnfw, a->rstdf,
                                a->scratch, N, C, s));
    for (int l = L - 1; l >= 0; l--) {
        const float *residual = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * NC;
        const float *res2 = a->residual2 + l * NC;
        const ct_bf16_t *ln1 = a->ln1 + l * NC, *q = a->q + l * NCq, *k = a->k + l * NKVs;
        const ct_bf16_t *v = a->v + l * NKVs, *atty = a->atty + l * NCq, *ln2 = a->ln2 + l * NC;
        const ct_bf16_t *gate = a->gate + l * NF, *up = a->up + l * NF, *hmid = a->hmid + l * NF;
        const float *stats = a->att_stats + (size_t)l * B * NH * T;

        /* MLP: dres is d(residual3) == d(down_proj) */
        OP(F_MATMUL, 4.0 * N * F * C, 0, s,
           ct_cuda_matmul_backward(ctx, a->dh, g->wdown + (size_t)l * C * F, NULL, a->dres_bf,
                                   hmid, p->wdown + (size_t)l * C * F, NULL, a->scratch, N, F, C,
                                   s));
        OP(F_GELU, 0, NF * 10, s,
           ct_cuda_swiglu_backward(a->dgate, a->dup, a->dh, gate, up, (long)NF, s));
        {
            float *dw[] = {g->wgate + (size_t)l * F * C, g->wup + (size_t)l * F * C};
            const ct_bf16_t *dout[] = {a->dgate, a->dup};
            const ct_bf16_t *w[] = {p->wgate + (size_t)l * F * C, p->wup + (size_t)l * F * C};
            const int oc[] = {F, F};
            multi_matmul_backward(G, 2, 2, dw, dout, w, oc, ln2, N, C);
        }
        OP(F_LN, 0, NC * 16, s,
           ct_cuda_rmsnorm_backward(a->dres, a->dres_bf, g->ln2w + (size_t)l * C, a->dln, res2,
                                    p->ln2w + (size_t)l * C, a->rstd2 + (size_t)l * N,
                                    a->scratch, N, C, s));
        /* attention: dres is now d(residual2) == d(o_proj) */
        /* row-parallel o_proj: its input gradient stays on this rank */
        OP(F_MATMUL, 4.0 * N * Cq * C, 0, s,
           ct_cuda_matmul_backward(ctx, a->datty, g->wo + (size_t)l * C * Cq, NULL, a->dres_bf,
                                   atty, p->wo + (size_t)l * C * Cq, NULL, a->scratch, N, Cq, C,
                                   s));
        if (G->cudnn_att) {
            OP(F_ATTN, att_flop, 0, s,
               ct_cuda_gqa_backward_cudnn(ctx, a->dq, a->dk, a->dv, a->datty, q, k, v, atty,
                                          stats, B, T, NH, NKV, HS, s));
        } else if (!kv_replicated) {
            OP(F_ATTN, att_flop, 0, s,
               ct_cuda_gqa_backward(a->dq, a->dk, a->dv, a->datty, q, k, v, atty, stats,
                                    a->att_scratch, B, T, NH, NKV, HS, group, q_head0, s));
        } else {
            OP(F_ATTN, att_flop, 0, s,
               ct_cuda_gqa_backward_f32kv(a->dq, a->dkv_f32, a->dkv_f32 + NKVs, a->datty, q, k,
                                          v, atty, stats, a->att_scratch, B, T, NH, NKV, HS,
                                          group, q_head0, s));
            tp_sum_dkv(G, NKVs);
        }
        OP(F_GELU, 0, (NCq + NKVs) * 4, s,
           ct_cuda_rope_backward(a->dq, a->dk, a->rope_cos, a->rope_sin, B, T, NH, NKV, HS, s));
        {
            float *dw[] = {g->wq + (size_t)l * Cq * C, g->wk + (size_t)l * KV * C,
                           g->wv + (size_t)l * KV * C};
            const ct_bf16_t *dout[] = {a->dq, a->dk, a->dv};
            const ct_bf16_t *w[] = {p->wq + (size_t)l * Cq * C, p->wk + (size_t)l * KV * C,
                                    p->wv + (size_t)l * KV * C};
            const int oc[] = {Cq, KV, KV};
            multi_matmul_backward(G, 3, kv_dinp ? 3 : 1, dw, dout, w, oc, ln1, N, C);
        }
        OP(F_LN, 0, NC * 16, s,
           ct_cuda_rmsnorm_backward(a->dres, a->dres_bf, g->ln1w + (size_t)l * C, a->dln,
                                    residual, p->ln1w + (size_t)l * C, a->rstd1 + (size_t)l * N,
                                    a->scratch, N, C, s));
        if (overlap) ct__cuda_reduce_layer(m, l);
    }
    OP(F_EMBED, 0, NC * 12, s,
       ct_cuda_encoder_backward_vp(g->wte, NULL, a->dres, a->inputs, B, T, C, d->v_start, Vp,
                                   s));
    G->reduce_started = overlap;
}

/* The head in training mode (its gradients written) and the rest of the
 * backward, after DP reduces a skipped step left running. */
static void head_and_backward(ct_model_t *m, int B, int T, float loss_scale)
{
    llama_cuda_t *G = m->dev;
    ct__cuda_wait_reduces(&G->base);
    head(m, CT_HEAD_TRAIN, loss_scale / (float)(B * T));
    backward_body(m, B, T);
}

static void llama_cuda_backward(ct_model_t *m, const int32_t *inputs, int B, int T,
                                float loss_scale)
{
    (void)inputs; /* on the device since the forward */
    llama_cuda_t *G = m->dev;
    CT_ASSERT(m->last_targets != NULL && B == G->last_B && T == G->last_T);
    /* the logits of a plain forward are gone: the head runs again */
    head_and_backward(m, B, T, loss_scale);
}

static float llama_cuda_forward_backward(ct_model_t *m, const int32_t *inputs,
                                         const int32_t *targets, int B, int T, float loss_scale)
{
    llama_cuda_t *G = m->dev;
    forward_body(m, inputs, targets, B, T);
    head_and_backward(m, B, T, loss_scale);
    /* the losses stay in place through the backward: one wait, at the end */
    return ct__cuda_mean_loss(&G->base, G->a.losses, B * T);
}

static const ct_model_backend_t llama_cuda_backend = {
    .name = "llama/cuda",
    .forward = llama_cuda_forward,
    .backward = llama_cuda_backward,
    .forward_backward = llama_cuda_forward_backward,
    .zero_grad = ct__cuda_model_zero_grad,
    .logits_row = llama_cuda_logits_row,
    .to_host = ct__cuda_model_to_host,
    .grads_to_host = ct__cuda_model_grads_to_host,
    .free = llama_cuda_free,
    .device_name = ct__cuda_model_device_name,
    .peak_tflops = ct__cuda_model_peak_tflops,
    .peak_memory = ct__cuda_model_peak_memory,
    .profile_ops = ct__cuda_model_profile_ops,
    .op_times = ct__cuda_model_op_times,
    .grad_reduce = ct__cuda_model_grad_reduce,
    .grad_sumsq = ct__cuda_model_grad_sumsq,
    .adamw = ct__cuda_model_adamw,
    .param_gather = ct__cuda_model_param_gather,
    .step_norm = ct__cuda_model_step_norm,
};
