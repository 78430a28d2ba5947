/* Llama on the CPU kernels (fp32, OpenBLAS + OpenMP), with Megatron tensor
 * parallelism over the TP group: query heads, key/value heads (when
 * n_kv_head divides by tp) and SwiGLU units split, the attention and MLP
 * outputs all-reduced, a vocab-parallel embedding and head with the
 * parallel cross-entropy. As in gpt2_cpu.c the backward keeps one running
 * residual gradient and reuses per-layer scratch.
 *
 * Replicated key/value heads (n_kv_head % tp != 0): every rank computes
 * all of them, and each rank's attention backward yields the part of dk and
 * dv its query heads contribute. Those are summed over the TP group before
 * the k/v projections' backward, so every rank computes the same k_proj and
 * v_proj gradients (the invariant of a replicated tensor); TP rank 0 alone
 * then adds their input gradient, which the all-reduce of dln sums once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/timer.h"
#include "model/llama.h"

/* Activations for a capacity of (B, T); a smaller (B', T') reuses them.
 * Cl = NHl*HS (this rank's query heads), KVl = NKVl*HS, Fl this rank's
 * SwiGLU units, Vpl its vocabulary rows. */
typedef struct {
    float *rope_cos;  /* (maxT, HS/2) */
    float *rope_sin;  /* (maxT, HS/2) */
    float *encoded;   /* (B, T, C) */
    float *ln1;       /* (L, B, T, C) */
    float *rstd1;     /* (L, B, T) */
    float *q;         /* (L, B, T, Cl) after RoPE */
    float *k;         /* (L, B, T, KVl) after RoPE */
    float *v;         /* (L, B, T, KVl) */
    float *att;       /* (L, B, NHl, T, T) */
    float *atty;      /* (L, B, T, Cl) */
    float *residual2; /* (L, B, T, C) */
    float *ln2;       /* (L, B, T, C) */
    float *rstd2;     /* (L, B, T) */
    float *gate;      /* (L, B, T, Fl) */
    float *up;        /* (L, B, T, Fl) */
    float *hmid;      /* (L, B, T, Fl) silu(gate) * up */
    float *residual3; /* (L, B, T, C) */
    float *lnf;       /* (B, T, C) */
    float *rstdf;     /* (B, T) */
    float *logits;    /* (B, T, Vpl), becomes dlogits in backward */
    float *losses;    /* (B, T) */
    float *lse;       /* (B, T) */
    float *proj;      /* (B, T, C) scratch for the two projections */
    /* backward scratch */
    float *dres;      /* (B, T, C) running residual gradient */
    float *dln;       /* (B, T, C) */
    float *datty;     /* (B, T, Cl) */
    float *dq;        /* (B, T, Cl) after RoPE */
    float *dkv;       /* (2, B, T, KVl): dk then dv, after RoPE, adjacent for one all-reduce */
    float *dqr;       /* (B, T, Cl) before RoPE */
    float *dkr;       /* (B, T, KVl) before RoPE */
    float *dgate;     /* (B, T, Fl) */
    float *dup;       /* (B, T, Fl) */
    float *dh;        /* (B, T, Fl) */
    float *datt;      /* (B, NHl, T, T) attention backward scratch */
    float *dloss;     /* (B, T) */
    float *xtmp;      /* (B, T) parallel cross-entropy scratch */
} llama_acts_t;
_Static_assert(sizeof(llama_acts_t) == CT_LLAMA_CPU_NUM_ACTS * sizeof(float *),
               "ct__llama_cpu_act_sizes and ct__llama_cpu_act_names follow llama_acts_t");

/* m->host of Llama: named views of the host arenas, and the activations. */
typedef struct {
    ct_llama_tensors_t p, g;
    llama_acts_t a;
    ct_arena_t acts_arena;
} llama_cpu_t;

const char *const ct__llama_cpu_act_names[CT_LLAMA_CPU_NUM_ACTS] = {
    "rope_cos", "rope_sin", "encoded", "ln1",      "rstd1",  "q",     "k",    "v",
    "att",      "atty",     "residual2", "ln2",    "rstd2",  "gate",  "up",   "hmid",
    "residual3", "lnf",     "rstdf",   "logits",   "losses", "lse",   "proj", "dres",
    "dln",      "datty",    "dq",      "dkv",      "dqr",    "dkr",   "dgate", "dup",
    "dh",       "datt",     "dloss",   "xtmp"};

void ct__llama_cpu_act_sizes(const ct_model_dims_t *d, int B, int T, size_t *s)
{
    size_t L = d->L, C = d->C, Cl = d->Cl, KVl = (size_t)d->NKVl * d->HS, Fl = d->Fl;
    size_t BT = (size_t)B * T, att = (size_t)B * d->NHl * T * T;
    size_t i = 0;
    s[i++] = (size_t)d->maxT * d->HS / 2; /* rope_cos */
    s[i++] = (size_t)d->maxT * d->HS / 2; /* rope_sin */
    s[i++] = BT * C;           /* encoded */
    s[i++] = L * BT * C;       /* ln1 */
    s[i++] = L * BT;           /* rstd1 */
    s[i++] = L * BT * Cl;      /* q */
    s[i++] = L * BT * KVl;     /* k */
    s[i++] = L * BT * KVl;     /* v */
    s[i++] = L * att;          /* att */
    s[i++] = L * BT * Cl;      /* atty */
    s[i++] = L * BT * C;       /* residual2 */
    s[i++] = L * BT * C;       /* ln2 */
    s[i++] = L * BT;           /* rstd2 */
    s[i++] = L * BT * Fl;      /* gate */
    s[i++] = L * BT * Fl;      /* up */
    s[i++] = L * BT * Fl;      /* hmid */
    s[i++] = L * BT * C;       /* residual3 */
    s[i++] = BT * C;           /* lnf */
    s[i++] = BT;               /* rstdf */
    s[i++] = BT * d->Vpl;      /* logits */
    s[i++] = BT;               /* losses */
    s[i++] = BT;               /* lse */
    s[i++] = BT * C;           /* proj */
    s[i++] = BT * C;           /* dres */
    s[i++] = BT * C;           /* dln */
    s[i++] = BT * Cl;          /* datty */
    s[i++] = BT * Cl;          /* dq */
    s[i++] = 2 * BT * KVl;     /* dkv */
    s[i++] = BT * Cl;          /* dqr */
    s[i++] = BT * KVl;         /* dkr */
    s[i++] = BT * Fl;          /* dgate */
    s[i++] = BT * Fl;          /* dup */
    s[i++] = BT * Fl;          /* dh */
    s[i++] = (size_t)ct_attention_scratch_floats(B, T, d->NHl); /* datt */
    s[i++] = BT;               /* dloss */
    s[i++] = BT;               /* xtmp */
    CT_ASSERT(i == CT_LLAMA_CPU_NUM_ACTS);
}

static const ct_model_backend_t llama_cpu_backend;

static void llama_point(ct_llama_tensors_t *v, float *base, const ct_model_t *m)
{
    memset(v, 0, sizeof *v);
    for (int i = 0; i < m->n_tensors; i++) v->t[i] = base + m->offsets[i];
    if (m->d.tied) v->head = v->wte;
}

ct_status_t ct__llama_cpu_init(ct_model_t *m, int B, int T)
{
    llama_cpu_t *H = calloc(1, sizeof *H);
    if (!H) {
        CT_LOG_ERROR("out of host memory for the model");
        return CT_ERR_NO_MEMORY;
    }
    m->host = H;
    m->be = &llama_cpu_backend;
    llama_point(&H->p, m->params, m);
    llama_point(&H->g, m->grads, m);
    size_t asz[CT_LLAMA_CPU_NUM_ACTS], total = 0;
    ct__llama_cpu_act_sizes(&m->d, B, T, asz);
    for (int i = 0; i < CT_LLAMA_CPU_NUM_ACTS; i++) total += ct_arena_align(asz[i] * sizeof(float));
    ct_status_t st = ct_arena_init(&H->acts_arena, total, "activations");
    if (st != CT_OK) return st;
    float **acts = (float **)&H->a;
    for (int i = 0; i < CT_LLAMA_CPU_NUM_ACTS; i++)
        acts[i] = ct_arena_alloc(&H->acts_arena, asz[i] * sizeof(float));
    const ct_model_dims_t *d = &m->d;
    float *inv_freq = malloc((size_t)d->HS / 2 * sizeof(float));
    if (!inv_freq) {
        CT_LOG_ERROR("out of host memory for the model");
        return CT_ERR_NO_MEMORY;
    }
    ct_rope_inv_freq(inv_freq, d->HS, d->rope.theta, d->rope.llama3, d->rope.factor,
                     d->rope.low_freq_factor, d->rope.high_freq_factor,
                     d->rope.original_max_seq_len);
    ct_rope_table(H->a.rope_cos, H->a.rope_sin, inv_freq, d->maxT, d->HS);
    free(inv_freq);
    return CT_OK;
}

void ct__llama_cpu_free(ct_model_t *m)
{
    llama_cpu_t *H = m->host;
    if (!H) return;
    ct_arena_free(&H->acts_arena);
    free(H);
    m->host = NULL;
}

static void llama_cpu_zero_grad(ct_model_t *m)
{
    float *g = m->grads;
    long n = (long)m->num_params;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) g[i] = 0.0f;
}

/* Sums x over the TP group in place (no-op without TP). */
static void llama_tp_allreduce(ct_model_t *m, float *x, size_t n, ct_op_t op)
{
    if (!m->tp) return;
    double t0 = ct_time_now();
    ct_status_t st = ct_comm_allreduce(m->tp, x, x, n, CT_DTYPE_F32, op, NULL);
    /* a failed TP collective leaves this rank's model state undefined */
    if (st != CT_OK) ct_comm_abort(1);
    m->comm_seconds += ct_time_now() - t0;
}

static const float *llama_cpu_logits_row(ct_model_t *m, int row)
{
    return ((llama_cpu_t *)m->host)->a.logits + (size_t)row * m->d.Vpl;
}

/* Query head h of this rank reads key/value head (q_head0 + h) / group of
 * those it holds (kernels.h, ct_gqa_forward). */
static int llama_q_head0(const ct_model_dims_t *d) { return d->kv_sharded ? 0 : d->tp_rank * d->NHl; }

static float llama_cpu_forward(ct_model_t *m, const int32_t *inputs, const int32_t *targets, int B,
                               int T)
{
    llama_cpu_t *H = m->host;
    const ct_model_dims_t *d = &m->d;
    const int L = d->L, C = d->C, Cl = d->Cl, HS = d->HS, NHl = d->NHl, NKVl = d->NKVl;
    const int KVl = NKVl * HS, Fl = d->Fl, Vpl = d->Vpl, N = B * T;
    CT_ASSERT(N <= m->B * m->T && T <= m->T && T <= d->maxT);
    const ct_llama_tensors_t *p = &H->p;
    llama_acts_t *a = &H->a;
    const size_t NC = (size_t)N * C, NCl = (size_t)N * Cl, NKV = (size_t)N * KVl;
    const size_t NF = (size_t)N * Fl, att_sz = (size_t)B * NHl * T * T;
    const int group = d->NH / d->NKV, q_head0 = llama_q_head0(d);
    const float eps = d->norm_eps;

    ct_encoder_forward_vp(a->encoded, inputs, p->wte, NULL, B, T, C, d->v_start, Vpl);
    llama_tp_allreduce(m, a->encoded, NC, CT_OP_SUM);
    const float *residual = a->encoded;
    for (int l = 0; l < L; l++) {
        float *ln1 = a->ln1 + l * NC, *q = a->q + l * NCl, *k = a->k + l * NKV;
        float *v = a->v + l * NKV, *att = a->att + l * att_sz, *atty = a->atty + l * NCl;
        float *res2 = a->residual2 + l * NC, *ln2 = a->ln2 + l * NC, *gate = a->gate + l * NF;
        float *up = a->up + l * NF, *hmid = a->hmid + l * NF, *res3 = a->residual3 + l * NC;
        ct_rmsnorm_forward(ln1, a->rstd1 + (size_t)l * N, residual, p->ln1w + l * C, N, C, eps);
        ct_matmul_forward(q, ln1, p->wq + (size_t)l * Cl * C, NULL, N, C, Cl);
        ct_matmul_forward(k, ln1, p->wk + (size_t)l * KVl * C, NULL, N, C, KVl);
        ct_matmul_forward(v, ln1, p->wv + (size_t)l * KVl * C, NULL, N, C, KVl);
        ct_rope_forward(q, q, a->rope_cos, a->rope_sin, B, T, NHl, HS);
        ct_rope_forward(k, k, a->rope_cos, a->rope_sin, B, T, NKVl, HS);
        ct_gqa_forward(atty, att, q, k, v, B, T, NHl, NKVl, HS, group, q_head0);
        ct_matmul_forward(a->proj, atty, p->wo + (size_t)l * C * Cl, NULL, N, Cl, C);
        llama_tp_allreduce(m, a->proj, NC, CT_OP_SUM);
        ct_residual_forward(res2, residual, a->proj, (long)NC);
        ct_rmsnorm_forward(ln2, a->rstd2 + (size_t)l * N, res2, p->ln2w + l * C, N, C, eps);
        ct_matmul_forward(gate, ln2, p->wgate + (size_t)l * Fl * C, NULL, N, C, Fl);
        ct_matmul_forward(up, ln2, p->wup + (size_t)l * Fl * C, NULL, N, C, Fl);
        ct_swiglu_forward(hmid, gate, up, (long)NF);
        ct_matmul_forward(a->proj, hmid, p->wdown + (size_t)l * C * Fl, NULL, N, Fl, C);
        llama_tp_allreduce(m, a->proj, NC, CT_OP_SUM);
        ct_residual_forward(res3, res2, a->proj, (long)NC);
        residual = res3;
    }
    ct_rmsnorm_forward(a->lnf, a->rstdf, residual, p->lnfw, N, C, eps);
    ct_matmul_forward(a->logits, a->lnf, p->head, NULL, N, C, Vpl);
    m->last_targets = targets;
    if (!targets) return 0.0f;
    if (m->tp) {
        /* parallel cross-entropy: never gathers the (N, Vp) logits */
        ct_xent_partial_max(a->lse, a->logits, N, d->Vl, Vpl);
        llama_tp_allreduce(m, a->lse, (size_t)N, CT_OP_MAX);
        ct_xent_partial_sumexp(a->xtmp, a->logits, a->lse, N, d->Vl, Vpl);
        llama_tp_allreduce(m, a->xtmp, (size_t)N, CT_OP_SUM);
        for (int i = 0; i < N; i++) a->lse[i] += logf(a->xtmp[i]);
        ct_xent_partial_target(a->xtmp, a->logits, targets, N, d->v_start, d->Vl, Vpl);
        llama_tp_allreduce(m, a->xtmp, (size_t)N, CT_OP_SUM);
        for (int i = 0; i < N; i++) a->losses[i] = a->lse[i] - a->xtmp[i];
    } else {
        ct_xent_forward(a->losses, a->lse, a->logits, targets, N, d->V, Vpl);
    }
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += a->losses[i];
    return (float)(sum / N);
}

static void llama_cpu_backward(ct_model_t *m, const int32_t *inputs, int B, int T,
                               float loss_scale)
{
    llama_cpu_t *H = m->host;
    const ct_model_dims_t *d = &m->d;
    const int L = d->L, C = d->C, Cl = d->Cl, HS = d->HS, NHl = d->NHl, NKVl = d->NKVl;
    const int KVl = NKVl * HS, Fl = d->Fl, Vpl = d->Vpl, N = B * T;
    const ct_llama_tensors_t *p = &H->p;
    const ct_llama_tensors_t *g = &H->g;
    llama_acts_t *a = &H->a;
    const size_t NC = (size_t)N * C, NCl = (size_t)N * Cl, NKV = (size_t)N * KVl;
    const size_t NF = (size_t)N * Fl, att_sz = (size_t)B * NHl * T * T;
    const int group = d->NH / d->NKV, q_head0 = llama_q_head0(d);
    /* replicated key/value heads: dk, dv summed over TP, their input
     * gradient added on TP rank 0 only (see the top of the file) */
    const int kv_replicated = m->tp && !d->kv_sharded;
    const int kv_dinp = !kv_replicated || d->tp_rank == 0;
    float *dk = a->dkv, *dv = a->dkv + NKV;

    for (int i = 0; i < N; i++) a->dloss[i] = loss_scale / (float)N;
    CT_ASSERT(m->last_targets != NULL);
    ct_xent_backward_vp(a->logits, a->lse, m->last_targets, a->dloss, N, d->v_start, d->Vl, Vpl);
    memset(a->dln, 0, NC * sizeof(float));
    ct_matmul_backward(a->dln, g->head, NULL, a->logits, a->lnf, p->head, N, C, Vpl);
    llama_tp_allreduce(m, a->dln, NC, CT_OP_SUM);
    memset(a->dres, 0, NC * sizeof(float));
    const float *last = L > 0 ? a->residual3 + (size_t)(L - 1) * NC : a->encoded;
    ct_rmsnorm_backward(a->dres, g->lnfw, a->dln, last, p->lnfw, a->rstdf, N, C);
    for (int l = L - 1; l >= 0; l--) {
        const float *residual = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * NC;
        const float *ln1 = a->ln1 + l * NC, *q = a->q + l * NCl, *k = a->k + l * NKV;
        const float *v = a->v + l * NKV, *att = a->att + l * att_sz, *atty = a->atty + l * NCl;
        const float *res2 = a->residual2 + l * NC, *ln2 = a->ln2 + l * NC;
        const float *gate = a->gate + l * NF, *up = a->up + l * NF, *hmid = a->hmid + l * NF;
        /* MLP: dres is d(residual3) == d(down_proj) == part of d(residual2) */
        memset(a->dh, 0, NF * sizeof(float));
        ct_matmul_backward(a->dh, g->wdown + (size_t)l * C * Fl, NULL, a->dres, hmid,
                           p->wdown + (size_t)l * C * Fl, N, Fl, C);
        memset(a->dgate, 0, NF * sizeof(float));
        memset(a->dup, 0, NF * sizeof(float));
        ct_swiglu_backward(a->dgate, a->dup, a->dh, gate, up, (long)NF);
        memset(a->dln, 0, NC * sizeof(float));
        ct_matmul_backward(a->dln, g->wgate + (size_t)l * Fl * C, NULL, a->dgate, ln2,
                           p->wgate + (size_t)l * Fl * C, N, C, Fl);
        ct_matmul_backward(a->dln, g->wup + (size_t)l * Fl * C, NULL, a->dup, ln2,
                           p->wup + (size_t)l * Fl * C, N, C, Fl);
        llama_tp_allreduce(m, a->dln, NC, CT_OP_SUM);
        ct_rmsnorm_backward(a->dres, g->ln2w + l * C, a->dln, res2, p->ln2w + l * C,
                            a->rstd2 + (size_t)l * N, N, C);
        /* attention: dres is now d(residual2) == d(o_proj) == part of d(residual) */
        memset(a->datty, 0, NCl * sizeof(float));
        ct_matmul_backward(a->datty, g->wo + (size_t)l * C * Cl, NULL, a->dres, atty,
                           p->wo + (size_t)l * C * Cl, N, Cl, C);
        memset(a->dq, 0, NCl * sizeof(float));
        memset(a->dkv, 0, 2 * NKV * sizeof(float));
        ct_gqa_backward(a->dq, dk, dv, a->datty, q, k, v, att, a->datt, B, T, NHl, NKVl, HS,
                        group, q_head0);
        if (kv_replicated) llama_tp_allreduce(m, a->dkv, 2 * NKV, CT_OP_SUM);
        memset(a->dqr, 0, NCl * sizeof(float));
        ct_rope_backward(a->dqr, a->dq, a->rope_cos, a->rope_sin, B, T, NHl, HS);
        memset(a->dkr, 0, NKV * sizeof(float));
        ct_rope_backward(a->dkr, dk, a->rope_cos, a->rope_sin, B, T, NKVl, HS);
        memset(a->dln, 0, NC * sizeof(float));
        ct_matmul_backward(a->dln, g->wq + (size_t)l * Cl * C, NULL, a->dqr, ln1,
                           p->wq + (size_t)l * Cl * C, N, C, Cl);
        ct_matmul_backward(kv_dinp ? a->dln : NULL, g->wk + (size_t)l * KVl * C, NULL, a->dkr,
                           ln1, p->wk + (size_t)l * KVl * C, N, C, KVl);
        ct_matmul_backward(kv_dinp ? a->dln : NULL, g->wv + (size_t)l * KVl * C, NULL, dv, ln1,
                           p->wv + (size_t)l * KVl * C, N, C, KVl);
        llama_tp_allreduce(m, a->dln, NC, CT_OP_SUM);
        ct_rmsnorm_backward(a->dres, g->ln1w + l * C, a->dln, residual, p->ln1w + l * C,
                            a->rstd1 + (size_t)l * N, N, C);
    }
    ct_encoder_backward_vp(g->wte, NULL, a->dres, inputs, B, T, C, d->v_start, Vpl);
}

static void llama_cpu_to_host(ct_model_t *m, ct_optim_t *o) { (void)m, (void)o; }

static void llama_cpu_grads_to_host(ct_model_t *m, float *dst)
{
    memcpy(dst, m->grads, m->num_params * sizeof(float));
}

static const char *llama_cpu_device_name(const ct_model_t *m) { return NULL; }
static double llama_cpu_peak_tflops(const ct_model_t *m) { return 0.0; }
static size_t llama_cpu_peak_memory(const ct_model_t *m) { return 0; }

static const ct_model_backend_t llama_cpu_backend = {
    .name = "llama/cpu",
    .forward = llama_cpu_forward,
    .backward = llama_cpu_backward,
    .zero_grad = llama_cpu_zero_grad,
    .logits_row = llama_cpu_logits_row,
    .to_host = llama_cpu_to_host,
    .grads_to_host = llama_cpu_grads_to_host,
    .free = NULL,
    .device_name = llama_cpu_device_name,
    .peak_tflops = llama_cpu_peak_tflops,
    .peak_memory = llama_cpu_peak_memory,
    .grad_reduce = ct__optim_cpu_grad_reduce,
    .grad_sumsq = ct__optim_cpu_grad_sumsq,
    .adamw = ct__optim_cpu_adamw,
    .param_gather = ct__optim_cpu_param_gather,
    .step_norm = ct__optim_cpu_step_norm,
};
