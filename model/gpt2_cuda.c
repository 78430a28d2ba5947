/* GPT-2 on one CUDA device: the same model as gpt2.c, on the kernels/cuda
 * ops. bf16 weights and activations feed the matmuls and attention; the
 * residual stream, LayerNorm statistics, losses, gradients, master weights
 * and AdamW state are fp32. The residual stream is one fp32 buffer added to
 * in place (the forward's sums are exact to fp32); the backward gets each
 * LayerNorm's input as a bf16 copy kept by the forward, as llm.c keeps its
 * whole residual stream in bf16. The LM head and cross-entropy run in
 * chunks of rows, forward and backward together (head()), so the logits
 * never exist for the whole micro-batch; buffers never live at the same
 * time share memory (model/gpt2_plan.c). Every device buffer is allocated once in
 * ct__gpt2_cuda_init; a step launches kernels on one compute stream, and the
 * DP gradient reduce runs on a second stream, layer by layer, overlapped
 * with the rest of the backward pass (events order the two). The host waits
 * only to read the loss (after each forward with targets) and the gradient
 * norm (at the end of the optimizer step).
 *
 * Tensor parallelism (tp > 1) is Megatron's partitioning, as on the CPU
 * path (gpt2_cpu.c): qkv and fc column-parallel, the projections
 * row-parallel, a vocab-parallel embedding and LM head with the parallel
 * cross-entropy. The TP collectives are NCCL calls on the compute stream
 * (the next op needs their result). Partial sums cross the TP group in
 * fp32 and are rounded to bf16 once, after the sum, as the single-GPU
 * matmul rounds its one sum, so a TP run follows the single-GPU run to
 * fp32 reordering. With sequence parallelism (parallel.sp) the
 * LayerNorm/residual regions hold this rank's N/tp tokens: each TP
 * all-reduce becomes a reduce-scatter, and each LayerNorm output is
 * all-gathered before the column-parallel matmul that reads it (again in
 * the backward, for the weight gradient); the LayerNorm weight gradients
 * are then partial per rank and are summed over the TP group once per step.
 * Left out: bit-exact reproducibility (the embedding backward uses
 * atomics), overlapping the TP collectives with compute. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "kernels/kernels.h"
#include "model/gpt2.h"
#include "model/model_cuda.h"

/* Device activations (model/gpt2.h), allocated from the table in
 * model/gpt2_plan.c that the memory planner adds up. */
typedef ct_gpt2_cuda_acts_t gpu_acts_t;

/* The shared device state (model/model_cuda.h: streams, master weights,
 * gradients, AdamW state, NCCL groups, timing) by name, then GPT-2's own. */
typedef struct {
    CT_CUDA_MODEL_BASE;
    ct_gpt2_bf16_tensors_t p; /* views of params */
    ct_gpt2_tensors_t g;      /* views of grads */
    gpu_acts_t a;
    int recompute;
    int last_B, last_T;
    int logits_row0;     /* the first row the logits buffer holds (sampling) */
    size_t act_bytes, ln_region_bytes; /* activations; of them the LayerNorm/residual regions */
} gpt2_cuda_t;

static const ct_model_backend_t gpt2_cuda_backend;
static void gpt2_cuda_free(ct_model_t *m);

/* per-op timing (model/model.h): the families' names; the timing itself
 * is model/model_cuda.c's */
static const char *const prof_names[F_N] = {"embedding", "layernorm", "matmul", "attention",
                                            "gelu",      "cross-entropy", "tp comm", "dp comm",
                                            "optimizer", "other"};

static CT_MUST_USE ct_status_t gpu_alloc_acts(gpt2_cuda_t *G, const ct_model_dims_t *d, int B, int T)
{
    ct_status_t st;
    ct_plan_item_t it[CT_PLAN_MAX_ITEMS];
    int n = ct__gpt2_cuda_act_items(d, B, T, (ct_recompute_t)G->recompute, G->sp, it);
    for (int i = 0; i < n; i++) {
        void **slot = (void **)((char *)&G->a + it[i].slot);
        if ((st = ct__cuda_model_alloc(&G->base, slot, it[i].bytes, it[i].name)) != CT_OK)
            return st;
        if (it[i].kind == CT_PLAN_ACTS) G->act_bytes += it[i].bytes;
        if (it[i].kind == CT_PLAN_ACTS && it[i].region == CT_PLAN_SP)
            G->ln_region_bytes += it[i].bytes;
    }
    /* the buffers that share another's memory (model/gpt2_plan.c) */
    size_t alias[CT_GPT2_CUDA_MAX_ALIASES][2];
    const int na = ct__gpt2_cuda_act_aliases((ct_recompute_t)G->recompute, alias);
    for (int i = 0; i < na; i++)
        *(void **)((char *)&G->a + alias[i][0]) = *(void **)((char *)&G->a + alias[i][1]);
    return CT_OK;
}

static CT_MUST_USE ct_status_t gpu_setup(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                             const ct_comm_groups_t *g, int device, int B, int T)
{
    gpt2_cuda_t *G = m->dev;
    const ct_model_dims_t *d = &m->d;
    ct_status_t st;
    int per_layer[CT_GPT2_NUM_TENSORS];
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) per_layer[i] = ct__gpt2_tensor_per_layer(i);
    if ((st = ct__cuda_model_setup(m, o, cfg, device, prof_names, per_layer, B, T)) != CT_OK)
        return st;
    G->recompute = (int)cfg->model.recompute;
    G->sp = d->tp > 1 && cfg->parallel.sp;
    CT_GPT2_POINT(&G->p, G->params, m->offsets);
    CT_GPT2_POINT(&G->g, G->grads, m->offsets);
    if ((st = gpu_alloc_acts(G, d, B, T)) != CT_OK) return st;
    G->opt_scratch = G->a.scratch;
    G->opt_sumsq = G->a.sumsq;
    if ((st = ct__cuda_model_prepare_attention(&G->base, cfg, B, T, d->NHl, d->C / d->NH)) !=
        CT_OK)
        return st;
    if ((st = ct__cuda_model_finish(m, o, g, B, T)) != CT_OK) return st;
    CT_LOG_INFO_R0("GPU model: %.1f MiB of device memory allocated (recompute %s%s); "
                   "activations %.3f MiB, of them %.3f MiB in the LayerNorm/residual regions",
                   G->alloc_bytes / 1048576.0,
                   G->recompute == CT_RECOMPUTE_NONE ? "none"
                   : G->recompute == CT_RECOMPUTE_GELU ? "gelu" : "ln_gelu",
                   d->tp == 1 ? "" : G->sp ? ", tensor parallel with sequence parallelism"
                                           : ", tensor parallel",
                   G->act_bytes / 1048576.0, G->ln_region_bytes / 1048576.0);
    return CT_OK;
}

ct_status_t ct__gpt2_cuda_init(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                             const ct_comm_groups_t *g, int device, int B, int T)
{
    const ct_model_dims_t *d = &m->d;
    if (d->tp > 1 && (4 * d->Cl) % 8 != 0) {
        /* cuBLASLt's GELU epilogues need the fc width (4C/tp) a multiple of 8 */
        CT_LOG_ERROR("parallel.tp=%d: each rank's MLP width 4*n_embd/tp = %d is not a multiple "
                     "of 8, which the GPU path's fused GELU needs\n---> HINT: choose "
                     "parallel.tp so that n_embd/tp is even", d->tp, 4 * d->Cl);
        return CT_ERR_UNSUPPORTED;
    }
    if (d->tp > 1 && cfg->parallel.sp && d->C % 2 != 0) {
        CT_LOG_ERROR("parallel.sp with model.n_embd = %d: sequence parallelism needs an even "
                     "n_embd on the GPU path\n---> HINT: set parallel.sp: false", d->C);
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
    if (G->stream && G->comm_stream) ct__cuda_wait_reduces(&G->base);
    if (G->stream) ct_cuda_stream_sync(G->stream);
    size_t alias[CT_GPT2_CUDA_MAX_ALIASES][2]; /* each buffer freed once */
    const int na = ct__gpt2_cuda_act_aliases((ct_recompute_t)G->recompute, alias);
    for (int i = 0; i < na; i++) *(void **)((char *)&G->a + alias[i][0]) = NULL;
    void **bufs = (void **)&G->a;
    for (size_t i = 0; i < sizeof(G->a) / sizeof(void *); i++) ct_cuda_dealloc(bufs[i]);
    ct__cuda_model_free(m);
    free(G);
    m->dev = NULL;
}

/* ---- tensor-parallel pieces ------------------------------------------------ */

/* A TP collective on the compute stream (the next op reads its result); a
 * failed one leaves the model state undefined, so the job ends. */
static void tp_check(ct_model_t *m, ct_status_t st)
{
    (void)m;
    ct__cuda_tp_check(st);
}

/* The input of a column-parallel matmul: this LayerNorm output, or under
 * sequence parallelism the whole batch of it, gathered into a->sp_gather. */
static const ct_bf16_t *col_input(ct_model_t *m, const ct_bf16_t *ln, int N)
{
    return ct__cuda_sp_col_input(m, ln, ((gpt2_cuda_t *)m->dev)->a.sp_gather, N);
}

/* A row-parallel matmul (inp (N, Cin) @ w^T + bias) into a->proj, this
 * rank's rows of the layer output: at tp = 1 one bf16 matmul with the bias
 * epilogue; under TP the fp32 partials are summed over the group, then the
 * bias is added and the sum rounded once. */
static void row_parallel(ct_model_t *m, const ct_bf16_t *inp, const ct_bf16_t *w,
                         const ct_bf16_t *bias, int N, int Cin)
{
    gpt2_cuda_t *G = m->dev;
    const int C = m->d.C;
    const double fl = 2.0 * N * Cin * C;
    if (!G->tpc) {
        OP(F_MATMUL, fl, 0, G->stream,
           ct_cuda_matmul_forward(G->ctx, G->a.proj, NULL, inp, w, bias, N, Cin, C, G->stream));
        return;
    }
    OP(F_MATMUL, fl, 0, G->stream,
       ct_cuda_matmul_forward_f32(G->ctx, G->a.tp_f32, inp, w, N, Cin, C, G->stream));
    const float *rows = ct__cuda_tp_reduce_rows(m, G->a.tp_f32, N);
    const int Ns = ct__cuda_sp_rows(m, N, NULL);
    OP(F_OTHER, 0, (size_t)Ns * C * 6, G->stream,
       ct_cuda_bias_to_bf16(G->a.proj, rows, bias, Ns, C, G->stream));
}

/* Under TP: the (N, C) fp32 input-gradient partials in a->tp_f32 summed
 * over the group, this rank's rows rounded once into a->dln. */
static void tp_dinp_to_dln(ct_model_t *m, int N)
{
    gpt2_cuda_t *G = m->dev;
    const float *rows = ct__cuda_tp_reduce_rows(m, G->a.tp_f32, N);
    const long n = (long)ct__cuda_sp_rows(m, N, NULL) * m->d.C;
    OP(F_OTHER, 0, n * 6, G->stream, ct_cuda_f32_to_bf16(G->a.dln, rows, n, G->stream));
}

/* The backward of a column-parallel matmul (dout (N, OC) from inp (N, C)):
 * the weight and bias gradients of this rank's shard, and the input
 * gradient into a->dln, this rank's rows: at tp = 1 one call; under TP the
 * fp32 partials are summed over the group and rounded once. */
static void col_parallel_backward(ct_model_t *m, float *dw, float *db, const ct_bf16_t *dout,
                                  const ct_bf16_t *inp, const ct_bf16_t *w, int N, int OC)
{
    gpt2_cuda_t *G = m->dev;
    const int C = m->d.C;
    const double fl = 2.0 * N * C * OC;
    if (!G->tpc) {
        OP(F_MATMUL, 2 * fl, 0, G->stream,
           ct_cuda_matmul_backward(G->ctx, G->a.dln, dw, db, dout, inp, w, NULL, G->a.scratch, N,
                                   C, OC, G->stream));
        return;
    }
    OP(F_MATMUL, fl, 0, G->stream,
       ct_cuda_matmul_backward(G->ctx, NULL, dw, db, dout, inp, w, NULL, G->a.scratch, N, C, OC,
                               G->stream));
    OP(F_MATMUL, fl, 0, G->stream,
       ct_cuda_matmul_dinp_f32(G->ctx, G->a.tp_f32, dout, w, N, C, OC, G->stream));
    tp_dinp_to_dln(m, N);
}

/* After a LayerNorm backward wrote this rank's rows of a->dres_bf: under
 * sequence parallelism, every rank's rows, for the row-parallel backward. */
static void sp_gather_dres(ct_model_t *m, int N)
{
    ct__cuda_sp_gather_rows(m, ((gpt2_cuda_t *)m->dev)->a.dres_bf, N);
}

/* Waits for the compute stream: bounded by comm.timeout_s when it holds
 * collectives (a dead TP peer fails the job instead of hanging it). */
static void compute_sync(gpt2_cuda_t *G) { ct__cuda_compute_sync(&G->base); }

/* ---- forward -------------------------------------------------------------- */

/* Embedding and transformer layers, up to the final LayerNorm (a->lnf). */
static void forward_body(ct_model_t *m, const int32_t *inputs, const int32_t *targets, int B, int T)
{
    gpt2_cuda_t *G = m->dev;
    const ct_model_dims_t *d = &m->d;
    const int T_in = T;
    /* Sequence parallelism splits the batch's tokens into tp blocks; a
     * sampling forward (one row of any length) is padded at the end, which
     * causal attention keeps from the rows before it. */
    if (G->sp && (B * T) % d->tp != 0) {
        CT_ASSERT(B == 1 && !targets);
        T = (T + d->tp - 1) / d->tp * d->tp;
    }
    const int L = d->L, C = d->C, NHl = d->NHl, HS = C / d->NH, Cl = d->Cl, Vpl = d->Vpl;
    const int N = B * T;
    CT_ASSERT(N <= m->B * m->T && T <= m->T && T <= d->maxT);
    gpu_acts_t *a = &G->a;
    const ct_gpt2_bf16_tensors_t *p = &G->p;
    void *s = G->stream;
    const int Ns = ct__cuda_sp_rows(m, N, NULL);
    const size_t NC = (size_t)N * C, NsC = (size_t)Ns * C, NCl = (size_t)N * Cl;
    const int ln_all = G->recompute != CT_RECOMPUTE_LN_GELU, gelu_all = G->recompute == CT_RECOMPUTE_NONE;
    const double att_flop = 2.0 * B * NHl * (double)T * T * HS; /* causal: half of 4 B NH T^2 HS */

    ct_cuda_copy(a->inputs, inputs, (size_t)B * T_in * sizeof(int32_t), s);
    if (T != T_in) ct_cuda_zero(a->inputs + T_in, (size_t)(T - T_in) * sizeof(int32_t), s);
    if (targets) ct_cuda_copy(a->targets, targets, (size_t)N * sizeof(int32_t), s);
    if (!G->tpc) {
        OP(F_EMBED, 0, NC * 8, s,
           ct_cuda_encoder_forward(a->encoded, a->inputs, p->wte, p->wpe, B, T, C, s));
    } else {
        /* vocab-parallel: this rank's rows of wte, positions added on rank 0 */
        float *partial = G->sp ? a->tp_f32 : a->encoded;
        OP(F_EMBED, 0, NC * 8, s,
           ct_cuda_encoder_forward_vp(partial, a->inputs, p->wte, d->tp_rank == 0 ? p->wpe : NULL,
                                      B, T, C, d->v_start, Vpl, s));
        if (G->sp)
            OP(F_TP, 0, NC * 4, s,
               tp_check(m, ct_comm_reduce_scatter(G->tpc, partial, a->encoded, NsC, CT_DTYPE_F32,
                                                  CT_OP_SUM, s)));
        else
            OP(F_TP, 0, NC * 4, s,
               tp_check(m, ct_comm_allreduce(G->tpc, partial, partial, NC, CT_DTYPE_F32,
                                             CT_OP_SUM, s)));
    }
    OP(F_LN, 0, NsC * 6, s,
       ct_cuda_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->ln_in, a->encoded, p->ln1w,
                                 p->ln1b, Ns, C, s));
    /* the residual stream stays fp32 in a->encoded (each residual add is in
     * place); the backward gets each LayerNorm's input in bf16 (a->ln_in) */
    float *const res = a->encoded;
    for (int l = 0; l < L; l++) {
        ct_bf16_t *ln1 = a->ln1 + (ln_all ? l * NsC : 0), *ln2 = a->ln2 + (ln_all ? l * NsC : 0);
        ct_bf16_t *qkv = a->qkv + l * 3 * NCl, *atty = a->atty + l * NCl;
        ct_bf16_t *fch = a->fch + l * 4 * NCl, *fchg = a->fch_gelu + (gelu_all ? l * 4 * NCl : 0);
        float *stats = a->att_stats + (size_t)l * B * NHl * T;
        const ct_bf16_t *ln1_in = col_input(m, ln1, N);
        OP(F_MATMUL, 2.0 * N * C * 3 * Cl, 0, s,
           ct_cuda_matmul_forward(G->ctx, qkv, NULL, ln1_in, p->qkvw + (size_t)l * 3 * Cl * C,
                                  p->qkvb + (size_t)l * 3 * Cl, N, C, 3 * Cl, s));
        if (targets)
            OP(F_ATTN, att_flop, 0, s,
               ct_cuda_attention_forward(G->ctx, atty, stats, qkv, B, T, NHl, HS, s));
        else /* sampling: any (1, t); no cuDNN plan per length */
            OP(F_ATTN, att_flop, 0, s,
               ct_cuda_attention_forward_plain(atty, stats, qkv, B, T, NHl, HS, s));
        row_parallel(m, atty, p->attprojw + (size_t)l * C * Cl, p->attprojb + (size_t)l * C, N,
                     Cl);
        OP(F_LN, 0, NsC * 12, s,
           ct_cuda_residual_layernorm_forward(res, ln2, a->ln2_mean + (size_t)l * Ns,
                                              a->ln2_rstd + (size_t)l * Ns,
                                              a->ln_in + (2 * l + 1) * NsC, res, a->proj,
                                              p->ln2w + (size_t)l * C, p->ln2b + (size_t)l * C,
                                              Ns, C, s));
        const ct_bf16_t *ln2_in = col_input(m, ln2, N);
        OP(F_MATMUL, 2.0 * N * C * 4 * Cl, 0, s,
           ct_cuda_matmul_forward(G->ctx, fchg, fch, ln2_in, p->fcw + (size_t)l * 4 * Cl * C,
                                  p->fcb + (size_t)l * 4 * Cl, N, C, 4 * Cl, s));
        row_parallel(m, fchg, p->fcprojw + (size_t)l * C * 4 * Cl, p->fcprojb + (size_t)l * C, N,
                     4 * Cl);
        /* the MLP's residual add, then the next LayerNorm: the next layer's
         * ln1 or the final one */
        if (l + 1 < L) {
            ct_bf16_t *next = a->ln1 + (ln_all ? (l + 1) * NsC : 0);
            OP(F_LN, 0, NsC * 12, s,
               ct_cuda_residual_layernorm_forward(res, next, a->ln1_mean + (size_t)(l + 1) * Ns,
                                                  a->ln1_rstd + (size_t)(l + 1) * Ns,
                                                  a->ln_in + (2 * l + 2) * NsC, res, a->proj,
                                                  p->ln1w + (size_t)(l + 1) * C,
                                                  p->ln1b + (size_t)(l + 1) * C, Ns, C, s));
        } else {
            OP(F_LN, 0, NsC * 12, s,
               ct_cuda_residual_layernorm_forward(res, a->lnf, a->lnf_mean, a->lnf_rstd,
                                                  a->ln_in + (2 * l + 2) * NsC, res, a->proj,
                                                  p->lnfw, p->lnfb, Ns, C, s));
        }
    }
    G->last_B = B;
    G->last_T = T;
    m->last_targets = targets;
}

/* The LM head and cross-entropy, chunk by chunk (ct__cuda_head,
 * model/model_cuda.c; mode CT_HEAD_*): the logits exist for one chunk of
 * rows at a time; in training the head's backward writes wte's gradient
 * and d(lnf) into a->dln (this rank's rows). Under TP the input gradient
 * partials of all chunks are summed over the group once, at the end. */
static void head(ct_model_t *m, int mode, float dloss)
{
    gpt2_cuda_t *G = m->dev;
    gpu_acts_t *a = &G->a;
    const int N = G->last_B * G->last_T;
    /* under SP the gathered lnf stays in a->sp_gather for the backward */
    const ct_cuda_head_t h = {.x = col_input(m, a->lnf, N), .w = G->p.wte, .dw = G->g.wte,
                              .logits = a->logits, .targets = a->targets, .losses = a->losses,
                              .lse = a->lse, .xstats = a->xstats, .scratch = a->scratch,
                              .dx_bf = G->tpc ? NULL : a->dln, .dx_f32 = a->tp_f32};
    const int r0 = ct__cuda_head(m, &h, N, mode, dloss);
    if (mode == CT_HEAD_LOGITS) G->logits_row0 = r0;
    if (mode == CT_HEAD_TRAIN && G->tpc) tp_dinp_to_dln(m, N);
}

static float gpt2_cuda_forward(ct_model_t *m, const int32_t *inputs, const int32_t *targets, int B,
                               int T)
{
    gpt2_cuda_t *G = m->dev;
    forward_body(m, inputs, targets, B, T);
    if (!targets) {
        head(m, CT_HEAD_LOGITS, 0.0f);
        if (G->tpc) compute_sync(G); /* the collectives of a sampling forward */
        return 0.0f;
    }
    head(m, CT_HEAD_LOSS, 0.0f);
    return ct__cuda_mean_loss(&G->base, G->a.losses, G->last_B * G->last_T);
}

static const float *gpt2_cuda_logits_row(ct_model_t *m, int row)
{
    gpt2_cuda_t *G = m->dev;
    /* the head keeps the last chunk's logits: every row of a sampling forward */
    CT_ASSERT(!m->last_targets && row >= G->logits_row0 &&
              row < G->logits_row0 + ct__model_head_rows(m->B, m->T));
    return ct__cuda_logits_row(m, G->a.logits, row - G->logits_row0);
}

/* ---- backward ------------------------------------------------------------- */

/* LayerNorm k's input (model/gpt2.h: ln_in) in fp32, in a->ln_x, for a
 * LayerNorm forward recomputed in the backward (model.recompute: ln_gelu);
 * the LayerNorm backward reads the bf16 copy itself. */
static const float *ln_input(ct_model_t *m, int k, int Ns)
{
    gpt2_cuda_t *G = m->dev;
    const size_t n = (size_t)Ns * m->d.C;
    OP(F_LN, 0, n * 6, G->stream,
       ct_cuda_bf16_to_f32(G->a.ln_x, G->a.ln_in + (size_t)k * n, (long)n, G->stream));
    return G->a.ln_x;
}

/* The backward from d(lnf) in a->dln (the head's backward wrote it) down to
 * the embedding. */
static void backward_body(ct_model_t *m, int B, int T)
{
    gpt2_cuda_t *G = m->dev;
    const ct_model_dims_t *d = &m->d;
    const int L = d->L, C = d->C, NHl = d->NHl, HS = C / d->NH, Cl = d->Cl, Vpl = d->Vpl;
    const int N = B * T;
    CT_ASSERT(m->last_targets != NULL && B == G->last_B && T == G->last_T);
    gpu_acts_t *a = &G->a;
    const ct_gpt2_bf16_tensors_t *p = &G->p;
    const ct_gpt2_tensors_t *g = &G->g;
    void *s = G->stream;
    ct_cuda_t *ctx = G->ctx;
    size_t row0;
    const int Ns = ct__cuda_sp_rows(m, N, &row0);
    const size_t NsC = (size_t)Ns * C, NCl = (size_t)N * Cl;
    ct_bf16_t *dres_bf = a->dres_bf + row0 * C; /* this rank's rows of it */
    const int ln_all = G->recompute != CT_RECOMPUTE_LN_GELU, gelu_all = G->recompute == CT_RECOMPUTE_NONE;
    /* overlap the DP reduce with this backward when it is the last
     * micro-batch and the optimizer does not use ZeRO's reduce-scatter
     * (head_and_backward waited for reduces a skipped step left running) */
    const int overlap = G->dpc && m->grad_sync && !G->zero;
    static const int ln_layer[] = {2, 3, 8, 9}, ln_final[] = {14, 15}; /* ln1w/b, ln2w/b; lnfw/b */

    const double att_flop = 4.0 * B * NHl * (double)T * T * HS; /* twice the forward's */
    OP(F_OTHER, 0, NsC * 4, s, ct_cuda_zero(a->dres, NsC * sizeof(float), s));
    const ct_bf16_t *last = a->ln_in + 2 * (size_t)L * NsC;
    OP(F_LN, 0, NsC * 14, s,
       ct_cuda_layernorm_backward_bf16in(a->dres, dres_bf, g->lnfw, g->lnfb, a->dln, last, p->lnfw,
                                  a->lnf_mean, a->lnf_rstd, a->scratch, Ns, C, s));
    sp_gather_dres(m, N);
    for (int l = L - 1; l >= 0; l--) {
        ct_bf16_t *ln1 = a->ln1 + (ln_all ? l * NsC : 0), *ln2 = a->ln2 + (ln_all ? l * NsC : 0);
        const ct_bf16_t *qkv = a->qkv + l * 3 * NCl, *atty = a->atty + l * NCl;
        const ct_bf16_t *fch = a->fch + l * 4 * NCl;
        ct_bf16_t *fchg = a->fch_gelu + (gelu_all ? l * 4 * NCl : 0);
        const float *stats = a->att_stats + (size_t)l * B * NHl * T;
        float *ln1_mean = a->ln1_mean + (size_t)l * Ns, *ln1_rstd = a->ln1_rstd + (size_t)l * Ns;
        float *ln2_mean = a->ln2_mean + (size_t)l * Ns, *ln2_rstd = a->ln2_rstd + (size_t)l * Ns;

        if (!gelu_all)
            OP(F_GELU, 0, 4 * NCl * 4, s, ct_cuda_gelu_forward(fchg, fch, (long)(4 * NCl), s));
        /* fcproj (row-parallel: its input gradient stays on this rank), with
         * GELU's backward fused: dfch = (dres @ W) * gelu'(fch) */
        OP(F_MATMUL, 4.0 * N * 4 * Cl * C, 0, s,
           ct_cuda_matmul_backward(ctx, a->dfch, g->fcprojw + (size_t)l * C * 4 * Cl,
                                   g->fcprojb + (size_t)l * C, a->dres_bf, fchg,
                                   p->fcprojw + (size_t)l * C * 4 * Cl, fch, a->scratch, N,
                                   4 * Cl, C, s));
        const ct_bf16_t *res2 = a->ln_in + (2 * (size_t)l + 1) * NsC;
        if (!ln_all) /* from the bf16 input; the forward's statistics stay */
            OP(F_LN, 0, NsC * 6, s,
               ct_cuda_layernorm_forward(ln2, NULL, NULL, NULL, ln_input(m, 2 * l + 1, Ns),
                                         p->ln2w + (size_t)l * C, p->ln2b + (size_t)l * C, Ns, C,
                                         s));
        col_parallel_backward(m, g->fcw + (size_t)l * 4 * Cl * C, g->fcb + (size_t)l * 4 * Cl,
                              a->dfch, col_input(m, ln2, N), p->fcw + (size_t)l * 4 * Cl * C, N,
                              4 * Cl);
        OP(F_LN, 0, NsC * 14, s,
           ct_cuda_layernorm_backward_bf16in(a->dres, dres_bf, g->ln2w + (size_t)l * C,
                                      g->ln2b + (size_t)l * C, a->dln, res2,
                                      p->ln2w + (size_t)l * C, ln2_mean, ln2_rstd, a->scratch, Ns,
                                      C, s));
        sp_gather_dres(m, N);
        /* dres is now d(residual2) */
        OP(F_MATMUL, 4.0 * N * Cl * C, 0, s,
           ct_cuda_matmul_backward(ctx, a->datty, g->attprojw + (size_t)l * C * Cl,
                                   g->attprojb + (size_t)l * C, a->dres_bf, atty,
                                   p->attprojw + (size_t)l * C * Cl, NULL, a->scratch, N, Cl, C,
                                   s));
        OP(F_ATTN, att_flop, 0, s,
           ct_cuda_attention_backward(ctx, a->dqkv, a->datty, qkv, atty, stats, B, T, NHl, HS,
                                      s));
        const ct_bf16_t *residual = a->ln_in + 2 * (size_t)l * NsC;
        if (!ln_all)
            OP(F_LN, 0, NsC * 6, s,
               ct_cuda_layernorm_forward(ln1, NULL, NULL, NULL, ln_input(m, 2 * l, Ns),
                                         p->ln1w + (size_t)l * C, p->ln1b + (size_t)l * C, Ns, C,
                                         s));
        col_parallel_backward(m, g->qkvw + (size_t)l * 3 * Cl * C, g->qkvb + (size_t)l * 3 * Cl,
                              a->dqkv, col_input(m, ln1, N), p->qkvw + (size_t)l * 3 * Cl * C, N,
                              3 * Cl);
        OP(F_LN, 0, NsC * 14, s,
           ct_cuda_layernorm_backward_bf16in(a->dres, dres_bf, g->ln1w + (size_t)l * C,
                                      g->ln1b + (size_t)l * C, a->dln, residual,
                                      p->ln1w + (size_t)l * C, ln1_mean, ln1_rstd, a->scratch, Ns,
                                      C, s));
        if (l > 0) sp_gather_dres(m, N);
        ct__cuda_sp_sum_grads(m, ln_layer, 4, l);
        if (overlap) ct__cuda_reduce_layer(m, l);
    }
    const float *dres_all = a->dres;
    if (G->sp) { /* the embedding backward reads every token's gradient */
        OP(F_TP, 0, NsC * 4 * d->tp, s,
           tp_check(m, ct_comm_allgather(G->tpc, a->dres, a->tp_f32, NsC, CT_DTYPE_F32, s)));
        dres_all = a->tp_f32;
    }
    if (!G->tpc)
        OP(F_EMBED, 0, (size_t)N * C * 12, s,
           ct_cuda_encoder_backward(g->wte, g->wpe, dres_all, a->inputs, B, T, C, s));
    else
        OP(F_EMBED, 0, (size_t)N * C * 12, s,
           ct_cuda_encoder_backward_vp(g->wte, g->wpe, dres_all, a->inputs, B, T, C, d->v_start,
                                       Vpl, s));
    ct__cuda_sp_sum_grads(m, ln_final, 2, 0);
    G->reduce_started = overlap;
}

/* The head in training mode (its gradients written) and the rest of the
 * backward, after DP reduces a skipped step left running. */
static void head_and_backward(ct_model_t *m, int B, int T, float loss_scale)
{
    gpt2_cuda_t *G = m->dev;
    ct__cuda_wait_reduces(&G->base);
    head(m, CT_HEAD_TRAIN, loss_scale / (float)(B * T));
    backward_body(m, B, T);
}

static void gpt2_cuda_backward(ct_model_t *m, const int32_t *inputs, int B, int T, float loss_scale)
{
    (void)inputs;
    gpt2_cuda_t *G = m->dev;
    CT_ASSERT(m->last_targets != NULL && B == G->last_B && T == G->last_T);
    /* the logits of a plain forward are gone: the head runs again */
    head_and_backward(m, B, T, loss_scale);
}

static float gpt2_cuda_forward_backward(ct_model_t *m, const int32_t *inputs,
                                        const int32_t *targets, int B, int T, float loss_scale)
{
    gpt2_cuda_t *G = m->dev;
    forward_body(m, inputs, targets, B, T);
    head_and_backward(m, B, T, loss_scale);
    /* the losses stay in place through the backward: one wait, at the end */
    return ct__cuda_mean_loss(&G->base, G->a.losses, B * T);
}

static const ct_model_backend_t gpt2_cuda_backend = {
    .name = "gpt2/cuda",
    .forward = gpt2_cuda_forward,
    .backward = gpt2_cuda_backward,
    .forward_backward = gpt2_cuda_forward_backward,
    .zero_grad = ct__cuda_model_zero_grad,
    .logits_row = gpt2_cuda_logits_row,
    .to_host = ct__cuda_model_to_host,
    .grads_to_host = ct__cuda_model_grads_to_host,
    .free = gpt2_cuda_free,
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
