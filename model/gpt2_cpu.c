/* GPT-2 on the CPU kernels (fp32, OpenBLAS + OpenMP), with Megatron
 * tensor parallelism over the TP group. The backward keeps one running
 * residual gradient (dres) and reuses a handful of per-layer scratch
 * buffers, so activation gradients cost O(B*T*C), not O(L*B*T*C). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/timer.h"
#include "model/gpt2.h"

/* Activations for a capacity of (B, T); a smaller (B', T') reuses them.
 * With tp > 1, 3*C, C (attention), NH, 4*C and Vp are this rank's shares. */
typedef struct {
    float *encoded;   /* (B, T, C) */
    float *ln1;       /* (L, B, T, C) */
    float *ln1_mean;  /* (L, B, T) */
    float *ln1_rstd;  /* (L, B, T) */
    float *qkv;       /* (L, B, T, 3*C) */
    float *atty;      /* (L, B, T, C) */
    float *att;       /* (L, B, NH, T, T) */
    float *residual2; /* (L, B, T, C) */
    float *ln2;       /* (L, B, T, C) */
    float *ln2_mean;  /* (L, B, T) */
    float *ln2_rstd;  /* (L, B, T) */
    float *fch;       /* (L, B, T, 4*C) */
    float *fch_gelu;  /* (L, B, T, 4*C) */
    float *residual3; /* (L, B, T, C) */
    float *lnf;       /* (B, T, C) */
    float *lnf_mean;  /* (B, T) */
    float *lnf_rstd;  /* (B, T) */
    float *logits;    /* (B, T, Vp), becomes dlogits in backward */
    float *losses;    /* (B, T) */
    float *lse;       /* (B, T) */
    float *proj;      /* (B, T, C) scratch for the two projections */
    /* backward scratch */
    float *dres;      /* (B, T, C) running residual gradient */
    float *dln;       /* (B, T, C) */
    float *datty;     /* (B, T, C) */
    float *dqkv;      /* (B, T, 3*C) */
    float *dfch;      /* (B, T, 4*C) */
    float *dfch_gelu; /* (B, T, 4*C) */
    float *datt;      /* (B, NH, T, T) attention backward scratch */
    float *dloss;     /* (B, T) */
    float *xtmp;      /* (B, T) parallel cross-entropy scratch */
} gpt2_acts_t;
_Static_assert(sizeof(gpt2_acts_t) == CT_GPT2_CPU_NUM_ACTS * sizeof(float *),
               "ct__gpt2_cpu_act_sizes and ct__gpt2_cpu_act_names follow gpt2_acts_t");

/* m->host of GPT-2: named views of the host arenas, and the activations. */
typedef struct {
    ct_gpt2_tensors_t p, g;
    gpt2_acts_t a;
    ct_arena_t acts_arena;
} gpt2_cpu_t;

/* Sizes (in floats) of the activation tensors for capacity (B, T), in the
 * order of gpt2_acts_t; model/plan.c plans the CPU path's host memory with
 * them. */
#define GPT2_NUM_ACTS CT_GPT2_CPU_NUM_ACTS
const char *const ct__gpt2_cpu_act_names[CT_GPT2_CPU_NUM_ACTS] = {
    "encoded",  "ln1",   "ln1_mean", "ln1_rstd", "qkv",       "atty",  "att",      "residual2",
    "ln2",      "ln2_mean", "ln2_rstd", "fch",   "fch_gelu",  "residual3", "lnf",  "lnf_mean",
    "lnf_rstd", "logits", "losses",  "lse",      "proj",      "dres",  "dln",      "datty",
    "dqkv",     "dfch",  "dfch_gelu", "datt",    "dloss",     "xtmp"};

void ct__gpt2_cpu_act_sizes(const ct_model_dims_t *d, int B, int T, size_t *s)
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

static const ct_model_backend_t gpt2_cpu_backend;

ct_status_t ct__gpt2_cpu_init(ct_model_t *m, int B, int T)
{
    gpt2_cpu_t *H = calloc(1, sizeof *H);
    if (!H) {
        CT_LOG_ERROR("out of host memory for the model");
        return CT_ERR_NO_MEMORY;
    }
    m->host = H;
    m->be = &gpt2_cpu_backend;
    CT_GPT2_POINT(&H->p, m->params, m->offsets);
    CT_GPT2_POINT(&H->g, m->grads, m->offsets);
    size_t asz[GPT2_NUM_ACTS], total = 0;
    ct__gpt2_cpu_act_sizes(&m->d, B, T, asz);
    for (int i = 0; i < GPT2_NUM_ACTS; i++) total += ct_arena_align(asz[i] * sizeof(float));
    ct_status_t st = ct_arena_init(&H->acts_arena, total, "activations");
    if (st != CT_OK) return st;
    float **acts = (float **)&H->a;
    for (int i = 0; i < GPT2_NUM_ACTS; i++)
        acts[i] = ct_arena_alloc(&H->acts_arena, asz[i] * sizeof(float));
    return CT_OK;
}

void ct__gpt2_cpu_free(ct_model_t *m)
{
    gpt2_cpu_t *H = m->host;
    if (!H) return;
    ct_arena_free(&H->acts_arena);
    free(H);
    m->host = NULL;
}

static void gpt2_cpu_zero_grad(ct_model_t *m)
{
    float *g = m->grads;
    long n = (long)m->num_params;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) g[i] = 0.0f;
}

/* Sums x over the TP group in place (no-op without TP). */
static void gpt2_tp_allreduce(ct_model_t *m, float *x, size_t n, ct_op_t op)
{
    if (!m->tp) return;
    double t0 = ct_time_now();
    ct_status_t st = ct_comm_allreduce(m->tp, x, x, n, CT_DTYPE_F32, op, NULL);
    /* a failed TP collective leaves this rank's model state undefined */
    if (st != CT_OK) ct_comm_abort(1);
    m->comm_seconds += ct_time_now() - t0;
}

static const float *gpt2_cpu_logits_row(ct_model_t *m, int row)
{
    return ((gpt2_cpu_t *)m->host)->a.logits + (size_t)row * m->d.Vpl;
}

static float gpt2_cpu_forward(ct_model_t *m, const int32_t *inputs, const int32_t *targets, int B,
                              int T)
{
    gpt2_cpu_t *H = m->host;
    const ct_model_dims_t *d = &m->d;
    const int L = d->L, C = d->C, Cl = d->Cl, NHl = d->NHl, Vpl = d->Vpl, N = B * T;
    CT_ASSERT(N <= m->B * m->T && T <= m->T && T <= d->maxT);
    const ct_gpt2_tensors_t *p = &H->p;
    gpt2_acts_t *a = &H->a;
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

static void gpt2_cpu_backward(ct_model_t *m, const int32_t *inputs, int B, int T, float loss_scale)
{
    gpt2_cpu_t *H = m->host;
    const ct_model_dims_t *d = &m->d;
    const int L = d->L, C = d->C, Cl = d->Cl, NHl = d->NHl, Vpl = d->Vpl, N = B * T;
    const ct_gpt2_tensors_t *p = &H->p;
    const ct_gpt2_tensors_t *g = &H->g;
    gpt2_acts_t *a = &H->a;
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


static void gpt2_cpu_to_host(ct_model_t *m, ct_optim_t *o) { (void)m, (void)o; }

static void gpt2_cpu_grads_to_host(ct_model_t *m, float *dst)
{
    memcpy(dst, m->grads, m->num_params * sizeof(float));
}

static const char *gpt2_cpu_device_name(const ct_model_t *m) { return NULL; }
static double gpt2_cpu_peak_tflops(const ct_model_t *m) { return 0.0; }
static size_t gpt2_cpu_peak_memory(const ct_model_t *m) { return 0; }

static const ct_model_backend_t gpt2_cpu_backend = {
    .name = "gpt2/cpu",
    .forward = gpt2_cpu_forward,
    .backward = gpt2_cpu_backward,
    .zero_grad = gpt2_cpu_zero_grad,
    .logits_row = gpt2_cpu_logits_row,
    .to_host = gpt2_cpu_to_host,
    .grads_to_host = gpt2_cpu_grads_to_host,
    .free = NULL,
    .device_name = gpt2_cpu_device_name,
    .peak_tflops = gpt2_cpu_peak_tflops,
    .peak_memory = gpt2_cpu_peak_memory,
    .grad_reduce = ct__optim_cpu_grad_reduce,
    .grad_sumsq = ct__optim_cpu_grad_sumsq,
    .adamw = ct__optim_cpu_adamw,
    .param_gather = ct__optim_cpu_param_gather,
    .step_norm = ct__optim_cpu_step_norm,
};
