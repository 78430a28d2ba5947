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
 * Sequence parallelism (parallel.sp, tp > 1) is GPT-2's (gpt2_cuda.c, on
 * model_cuda.c's shared pieces): the RMSNorm/residual regions (the fp32
 * residual stream, the norm outputs and their statistics, the projection
 * outputs, the residual gradient) hold this rank's N/tp tokens; each TP
 * all-reduce of a row-parallel output or a column-parallel input gradient
 * becomes a reduce-scatter, and each norm output is all-gathered before
 * the column-parallel matmuls that read it (again in the backward, for
 * their weight gradients), so q, k, v, RoPE, attention and SwiGLU see the
 * whole sequences, as without SP. The residual gradient is all-gathered
 * (bf16) for the row-parallel backward and (fp32) for the embedding's;
 * the RMSNorm weight gradients, partial per rank, are summed over TP once
 * per step. Replicated key/value heads work as above: rank 0's input
 * gradient joins the reduce-scatter instead of the all-reduce.
 *
 * Attention: ct_cuda_gqa_forward/backward, which take the flash kernels
 * (attention_flash.cu: key tiles, online softmax, tensor cores; a shared
 * key/value head's gradient summed over its query heads in one fp32
 * accumulator) for head sizes 16/32/64/128 and the one-warp-per-row
 * kernels of attention_gqa.cu otherwise; or with model.attention cudnn (an
 * opt-in: not validated on a GPU yet) cuDNN's SDPA with fewer key/value
 * heads for the training shape.
 *
 * Left out: recompute (refused with a hint), overlapping the TP
 * collectives with compute,
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
    size_t act_bytes, norm_region_bytes; /* activations; of them the RMSNorm/residual regions */
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
    G->sp = d->tp > 1 && cfg->parallel.sp;
    ct_plan_item_t it[CT_PLAN_MAX_ITEMS];
    int n = ct__llama_cuda_act_items(d, B, T, G->sp, it);
    for (int i = 0; i < n; i++) {
        void **slot = (void **)((char *)&G->a + it[i].slot);
        if ((st = ct__cuda_model_alloc(&G->base, slot, it[i].bytes, it[i].name)) != CT_OK)
            return st;
        if (it[i].kind == CT_PLAN_ACTS) G->act_bytes += it[i].bytes;
        if (it[i].kind == CT_PLAN_ACTS && it[i].region == CT_PLAN_SP)
            G->norm_region_bytes += it[i].bytes;
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
     * key/value heads); auto and plain take our kernels (flash where the
     * head size allows), which the emulator validates against the CPU model */
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
    CT_LOG_INFO_R0("GPU model (llama, %d query and %d key/value heads%s%s): %.1f MiB of device "
                   "memory allocated, activations %.3f MiB, of them %.3f MiB in the "
                   "RMSNorm/residual regions; attention: %s",
                   d->NH, d->NKV,
                   d->tp == 1        ? ""
                   : d->kv_sharded ? ", tensor parallel"
                                   : ", tensor parallel with replicated key/value heads",
                   G->sp ? ", sequence parallel" : "", G->alloc_bytes / 1048576.0,
                   G->act_bytes / 1048576.0, G->norm_region_bytes / 1048576.0,
                   G->cudnn_att                            ? "cuDNN"
                   : ct_cuda_attention_flash_supports(d->HS) ? "the flash GQA kernels"
                                                             : "the per-row GQA kernels");
    return CT_OK;
}

ct_status_t ct__llama_cuda_init(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                                const ct_comm_groups_t *g, int device, int B, int T)
{
    const ct_model_dims_t *d = &m->d;
    if (d->tp > 1 && cfg->parallel.sp && d->C % 2 != 0) {
        /* the sequence-parallel all-gathers move bf16 rows as pairs */
        CT_LOG_ERROR("parallel.sp with model.n_embd = %d: sequence parallelism needs an even "
                     "n_embd on the GPU path\n---> HINT: set parallel.sp: false", d->C);
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

/* A row-parallel matmul inp (N, Cin) @ w^T into a->proj, this rank's rows
 * of the layer output: at tp = 1 one bf16 matmul; under TP the fp32
 * partials summed over the group (reduce-scattered under sequence
 * parallelism), then rounded once. */
static void row_parallel(ct_model_t *m, const ct_bf16_t *inp, const ct_bf16_t *w, int N, int Cin)
{
    llama_cuda_t *G = m->dev;
    void *s = G->stream;
    const int C = m->d.C;
    if (!G->tpc) {
        OP(F_MATMUL, 2.0 * N * Cin * C, 0, s,
           ct_cuda_matmul_forward(G->ctx, G->a.proj, NULL, inp, w, NULL, N, Cin, C, s));
        return;
    }
    OP(F_MATMUL, 2.0 * N * Cin * C, 0, s,
       ct_cuda_matmul_forward_f32(G->ctx, G->a.tp_f32, inp, w, N, Cin, C, s));
    const float *rows = ct__cuda_tp_reduce_rows(m, G->a.tp_f32, N);
    const int Ns = ct__cuda_sp_rows(m, N, NULL);
    OP(F_OTHER, 0, (size_t)Ns * C * 6, s, ct_cuda_bias_to_bf16(G->a.proj, rows, NULL, Ns, C, s));
}

/* The input of a column-parallel matmul: this RMSNorm output, or under
 * sequence parallelism the whole batch of it, gathered into a->sp_gather. */
static const ct_bf16_t *col_input(ct_model_t *m, const ct_bf16_t *ln, int N)
{
    return ct__cuda_sp_col_input(m, ln, ((llama_cuda_t *)m->dev)->a.sp_gather, N);
}

/* ---- forward -------------------------------------------------------------- */

/* Embedding and transformer layers, up to the final RMSNorm (a->lnf). */
static void forward_body(ct_model_t *m, const int32_t *inputs, const int32_t *targets, int B,
                         int T)
{
    llama_cuda_t *G = m->dev;
    const ct_model_dims_t *d = &m->d;
    const int T_in = T;
    /* Sequence parallelism splits the batch's tokens into tp blocks; a
     * sampling forward (one row of any length) is padded at the end, which
     * causal attention keeps from the rows before it. */
    if (G->sp && (B * T) % d->tp != 0) {
        CT_ASSERT(B == 1 && !targets);
        T = (T + d->tp - 1) / d->tp * d->tp;
    }
    const int L = d->L, C = d->C, HS = d->HS, NH = d->NHl, NKV = d->NKVl, KV = NKV * HS;
    const int Cq = d->Cl; /* this rank's query channels */
    const int F = d->Fl, Vp = d->Vpl, N = B * T, group = d->NH / d->NKV;
    const int q_head0 = d->kv_sharded ? 0 : d->tp_rank * d->NHl; /* as llama_cpu.c */
    CT_ASSERT(N <= m->B * m->T && T <= m->T && T <= d->maxT);
    ct_llama_cuda_acts_t *a = &G->a;
    const llama_bf16_tensors_t *p = &G->p;
    void *s = G->stream;
    ct_cuda_t *ctx = G->ctx;
    /* the RMSNorm/residual regions hold Ns = N/tp rows under SP, else N */
    const int Ns = ct__cuda_sp_rows(m, N, NULL);
    const size_t NC = (size_t)N * C, NsC = (size_t)Ns * C, NCq = (size_t)N * Cq;
    const size_t NKVs = (size_t)N * KV, NF = (size_t)N * F;
    const float eps = d->norm_eps;
    const double att_flop = 2.0 * B * NH * (double)T * T * HS; /* causal: half of 4 B NH T^2 HS */

    ct_cuda_copy(a->inputs, inputs, (size_t)B * T_in * sizeof(int32_t), s);
    if (T != T_in) ct_cuda_zero(a->inputs + T_in, (size_t)(T - T_in) * sizeof(int32_t), s);
    if (targets) ct_cuda_copy(a->targets, targets, (size_t)N * sizeof(int32_t), s);
    /* vocab-parallel under TP: this rank's rows of wte, summed over the
     * group (reduce-scattered to this rank's tokens under SP) */
    float *partial = G->sp ? a->tp_f32 : a->encoded;
    OP(F_EMBED, 0, NC * 6, s,
       ct_cuda_encoder_forward_vp(partial, a->inputs, p->wte, NULL, B, T, C, d->v_start, Vp, s));
    if (G->sp)
        OP(F_TP, 0, NC * 4, s,
           ct__cuda_tp_check(ct_comm_reduce_scatter(G->tpc, partial, a->encoded, NsC,
                                                    CT_DTYPE_F32, CT_OP_SUM, s)));
    else if (G->tpc)
        tp_allreduce(G, a->encoded, NC);
    OP(F_LN, 0, NsC * 6, s,
       ct_cuda_rmsnorm_forward(a->ln1, a->rstd1, a->encoded, p->ln1w, Ns, C, eps, s));
    for (int l = 0; l < L; l++) {
        ct_bf16_t *q = a->q + l * NCq, *k = a->k + l * NKVs;
        ct_bf16_t *v = a->v + l * NKVs, *atty = a->atty + l * NCq, *ln2 = a->ln2 + l * NsC;
        ct_bf16_t *gate = a->gate + l * NF, *up = a->up + l * NF, *hmid = a->hmid + l * NF;
        float *res2 = a->residual2 + l * NsC, *res3 = a->residual3 + l * NsC;
        float *stats = a->att_stats + (size_t)l * B * NH * T;
        const ct_bf16_t *ln1 = col_input(m, a->ln1 + l * NsC, N);
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
        row_parallel(m, atty, p->wo + (size_t)l * C * Cq, N, Cq);
        const float *residual = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * NsC;
        OP(F_LN, 0, NsC * 12, s,
           ct_cuda_residual_rmsnorm_forward(res2, ln2, a->rstd2 + (size_t)l * Ns, residual,
                                            a->proj, p->ln2w + (size_t)l * C, Ns, C, eps, s));
        const ct_bf16_t *ln2_in = col_input(m, ln2, N);
        OP(F_MATMUL, 2.0 * N * C * F, 0, s,
           ct_cuda_matmul_forward(ctx, gate, NULL, ln2_in, p->wgate + (size_t)l * F * C, NULL, N,
                                  C, F, s));
        OP(F_MATMUL, 2.0 * N * C * F, 0, s,
           ct_cuda_matmul_forward(ctx, up, NULL, ln2_in, p->wup + (size_t)l * F * C, NULL, N, C,
                                  F, s));
        OP(F_GELU, 0, NF * 6, s, ct_cuda_swiglu_forward(hmid, gate, up, (long)NF, s));
        row_parallel(m, hmid, p->wdown + (size_t)l * C * F, N, F);
        /* residual3 = residual2 + down_proj, then the next RMSNorm: the next
         * layer's ln1 or the final one */
        if (l + 1 < L)
            OP(F_LN, 0, NsC * 12, s,
               ct_cuda_residual_rmsnorm_forward(res3, a->ln1 + (l + 1) * NsC,
                                                a->rstd1 + (size_t)(l + 1) * Ns, res2, a->proj,
                                                p->ln1w + (size_t)(l + 1) * C, Ns, C, eps, s));
        else
            OP(F_LN, 0, NsC * 12, s,
               ct_cuda_residual_rmsnorm_forward(res3, a->lnf, a->rstdf, res2, a->proj, p->lnfw,
                                                Ns, C, eps, s));
    }
    G->last_B = B;
    G->last_T = T;
    m->last_targets = targets;
}

/* The LM head and cross-entropy, chunk by chunk (ct__cuda_head,
 * model/model_cuda.c, shared with GPT-2; mode CT_HEAD_*): the logits exist
 * for one chunk of rows at a time; in training the head's backward writes
 * the head's gradient (wte's when tied) and d(lnf) in fp32 into a->dln,
 * summed over the TP group once, after the last chunk (under SP into this
 * rank's rows of it). */
static void head(ct_model_t *m, int mode, float dloss)
{
    llama_cuda_t *G = m->dev;
    ct_llama_cuda_acts_t *a = &G->a;
    const int N = G->last_B * G->last_T;
    /* under SP the gathered lnf stays in a->sp_gather for the head's backward */
    const ct_cuda_head_t h = {.x = col_input(m, a->lnf, N), .w = G->p.head, .dw = G->g.head,
                              .logits = a->logits, .targets = a->targets, .losses = a->losses,
                              .lse = a->lse, .xstats = a->xstats, .scratch = a->scratch,
                              .dx_bf = NULL, .dx_f32 = a->dln};
    const int r0 = ct__cuda_head(m, &h, N, mode, dloss);
    if (mode == CT_HEAD_LOGITS) G->logits_row0 = r0;
    if (mode == CT_HEAD_TRAIN && G->tpc) ct__cuda_tp_reduce_rows(m, a->dln, N);
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
 * the TP group (under SP into this rank's rows of dln). */
static void multi_matmul_backward(ct_model_t *m, int count, int n_dinp, float *const *dw,
                                  const ct_bf16_t *const *dout, const ct_bf16_t *const *w,
                                  const int *OC, const ct_bf16_t *inp, int N)
{
    llama_cuda_t *G = m->dev;
    void *s = G->stream;
    const int C = m->d.C;
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
    if (G->tpc) ct__cuda_tp_reduce_rows(m, G->a.dln, N);
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
    /* the RMSNorm/residual regions: this rank's Ns rows from row0 under SP;
     * a->dln and a->dres_bf span the batch, the norms read their rows */
    size_t row0;
    const int Ns = ct__cuda_sp_rows(m, N, &row0);
    const size_t NsC = (size_t)Ns * C, NCq = (size_t)N * Cq, NKVs = (size_t)N * KV;
    const size_t NF = (size_t)N * F;
    const float *dln = a->dln + row0 * C;
    ct_bf16_t *dres_bf = a->dres_bf + row0 * C;
    const double att_flop = 4.0 * B * NH * (double)T * T * HS; /* twice the forward's */
    /* overlap the DP reduce with this backward when it is the last
     * micro-batch and the optimizer does not use ZeRO's reduce-scatter
     * (head_and_backward waited for reduces a skipped step left running) */
    const int overlap = G->dpc && m->grad_sync && !G->zero;
    static const int norm_layer[] = {CT_LLAMA_LN1W, CT_LLAMA_LN2W}, norm_final[] = {CT_LLAMA_LNFW};

    OP(F_OTHER, 0, NsC * 4, s, ct_cuda_zero(a->dres, NsC * sizeof(float), s));
    const float *last = a->residual3 + (size_t)(L - 1) * NsC; /* L >= 1 (config) */
    OP(F_LN, 0, NsC * 16, s,
       ct_cuda_rmsnorm_backward(a->dres, dres_bf, g->lnfw, dln, last, p->lnfw, a->rstdf,
                                a->scratch, Ns, C, s));
    ct__cuda_sp_gather_rows(m, a->dres_bf, N);
    for (int l = L - 1; l >= 0; l--) {
        const float *residual = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * NsC;
        const float *res2 = a->residual2 + l * NsC;
        const ct_bf16_t *ln1 = a->ln1 + l * NsC, *q = a->q + l * NCq, *k = a->k + l * NKVs;
        const ct_bf16_t *v = a->v + l * NKVs, *atty = a->atty + l * NCq, *ln2 = a->ln2 + l * NsC;
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
            multi_matmul_backward(m, 2, 2, dw, dout, w, oc, col_input(m, ln2, N), N);
        }
        OP(F_LN, 0, NsC * 16, s,
           ct_cuda_rmsnorm_backward(a->dres, dres_bf, g->ln2w + (size_t)l * C, dln, res2,
                                    p->ln2w + (size_t)l * C, a->rstd2 + (size_t)l * Ns,
                                    a->scratch, Ns, C, s));
        ct__cuda_sp_gather_rows(m, a->dres_bf, N);
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
            multi_matmul_backward(m, 3, kv_dinp ? 3 : 1, dw, dout, w, oc, col_input(m, ln1, N),
                                  N);
        }
        OP(F_LN, 0, NsC * 16, s,
           ct_cuda_rmsnorm_backward(a->dres, dres_bf, g->ln1w + (size_t)l * C, dln, residual,
                                    p->ln1w + (size_t)l * C, a->rstd1 + (size_t)l * Ns,
                                    a->scratch, Ns, C, s));
        if (l > 0) ct__cuda_sp_gather_rows(m, a->dres_bf, N);
        /* SP: the norm weights' gradients summed over TP before DP reduces them */
        ct__cuda_sp_sum_grads(m, norm_layer, 2, l);
        if (overlap) ct__cuda_reduce_layer(m, l);
    }
    const float *dres_all = a->dres;
    if (G->sp) { /* the embedding backward reads every token's gradient */
        OP(F_TP, 0, NsC * 4 * d->tp, s,
           ct__cuda_tp_check(ct_comm_allgather(G->tpc, a->dres, a->tp_f32, NsC, CT_DTYPE_F32,
                                               s)));
        dres_all = a->tp_f32;
    }
    OP(F_EMBED, 0, (size_t)N * C * 12, s,
       ct_cuda_encoder_backward_vp(g->wte, NULL, dres_all, a->inputs, B, T, C, d->v_start, Vp,
                                   s));
    ct__cuda_sp_sum_grads(m, norm_final, 1, 0);
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
