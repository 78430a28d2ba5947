/* The pieces every CUDA backend shares (model/model_cuda.h), moved out of
 * gpt2_cuda.c so that llama_cuda.c uses the same ones: device buffers for
 * the flat arenas, streams and NCCL groups, per-op timing, the per-layer DP
 * reduce overlapped with the backward, and the optimizer's device pieces
 * under model/optim.c's skeleton. Nothing here knows an architecture beyond
 * its tensor table (offsets, sizes, which tensors are per layer, which are
 * replicated under TP). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "model/model_cuda.h"

/* ---- per-op timing (model/model.h) -----------------------------------------
 * A pool of timing events; each timed op takes a begin and an end event on
 * its stream, and read_prof adds up the elapsed times by family once the
 * step's work is done. */
#define PROF_CAP 16384 /* ops per read: a few micro-batches of a 48-layer model */
struct ct_cuda_prof {
    void *ev[2 * PROF_CAP];
    unsigned char fam[PROF_CAP];
    int n, steps;
    long dropped;
    ct_model_op_times_t acc;
};

int ct__cuda_prof_begin(ct_cuda_model_t *c, int fam, double flop, double bytes, void *stream)
{
    struct ct_cuda_prof *P = c->prof;
    if (!P) return -1;
    if (P->n == PROF_CAP) {
        P->dropped++;
        return -1;
    }
    int k = P->n++;
    P->fam[k] = (unsigned char)fam;
    P->acc.calls[fam]++;
    P->acc.flop[fam] += flop;
    P->acc.bytes[fam] += bytes;
    ct_cuda_event_record(P->ev[2 * k], stream);
    return k;
}

void ct__cuda_prof_end(ct_cuda_model_t *c, int k, void *stream)
{
    if (k >= 0) ct_cuda_event_record(c->prof->ev[2 * k + 1], stream);
}

/* Adds the elapsed times of the recorded ops (all complete) to the totals. */
static void read_prof(ct_cuda_model_t *c)
{
    struct ct_cuda_prof *P = c->prof;
    if (!P) return;
    for (int k = 0; k < P->n; k++)
        P->acc.ms[P->fam[k]] += ct_cuda_event_elapsed_ms(P->ev[2 * k], P->ev[2 * k + 1]);
    P->n = 0;
    P->steps++;
}

static void prof_free(ct_cuda_model_t *c)
{
    if (!c->prof) return;
    for (int i = 0; i < 2 * PROF_CAP; i++) ct_cuda_event_destroy(c->prof->ev[i]);
    free(c->prof);
    c->prof = NULL;
}

int ct__cuda_model_profile_ops(ct_model_t *m, int on)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    if (!on) {
        prof_free(c);
        return 1;
    }
    if (c->prof) return 1;
    c->prof = calloc(1, sizeof *c->prof);
    CT_ASSERT(c->prof != NULL);
    for (int i = 0; i < 2 * PROF_CAP; i++) c->prof->ev[i] = ct_cuda_timing_event_create();
    return 1;
}

int ct__cuda_model_op_times(ct_model_t *m, ct_model_op_times_t *t)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    struct ct_cuda_prof *P = c->prof;
    if (!P) return 0;
    *t = P->acc;
    t->n = F_N;
    t->steps = P->steps;
    t->dropped = P->dropped;
    for (int f = 0; f < F_N; f++) t->name[f] = c->prof_names[f];
    memset(&P->acc, 0, sizeof P->acc);
    P->steps = 0;
    P->dropped = 0;
    return 1;
}

/* ---- setup and teardown ------------------------------------------------------- */

ct_status_t ct__cuda_model_alloc(ct_cuda_model_t *c, void **p, size_t bytes, const char *what)
{
    c->alloc_bytes += bytes;
    return ct_cuda_alloc(c->ctx, bytes, what, p);
}

#define GA(ptr, n, type, what)                                                            \
    do {                                                                                  \
        if ((st = ct__cuda_model_alloc(c, (void **)&(ptr), (size_t)(n) * sizeof(type),    \
                                       what)) != CT_OK)                                   \
            return st;                                                                    \
    } while (0)

ct_status_t ct__cuda_model_setup(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg, int device,
                                 const char *const *prof_names, const int *per_layer, int B,
                                 int T)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    const ct_model_dims_t *d = &m->d;
    ct_status_t st;
    ct_attn_impl_t attn = cfg->model.attention == CT_ATTENTION_CUDNN   ? CT_ATTN_CUDNN
                          : cfg->model.attention == CT_ATTENTION_PLAIN ? CT_ATTN_PLAIN
                                                                       : CT_ATTN_AUTO;
    c->prof_names = prof_names;
    for (int i = 0; i < m->n_tensors; i++) c->per_layer[i] = (unsigned char)per_layer[i];
    if ((st = ct_cuda_init(device, attn, &c->ctx)) != CT_OK) return st;
    c->stream = ct_cuda_stream_create();
    c->comm_stream = ct_cuda_stream_create();
    c->ev_backward = ct_cuda_event_create();
    c->ev_reduced = ct_cuda_event_create();
    c->ev_layer = calloc((size_t)d->L, sizeof(void *));
    CT_ASSERT(c->ev_layer != NULL);
    for (int l = 0; l < d->L; l++) c->ev_layer[l] = ct_cuda_event_create();
    m->B = B; /* the activation capacity, wherever the activations live */
    m->T = T;
    c->stochastic = cfg->optim.stochastic_rounding;
    c->zero = o->zero;

    const size_t np = m->num_params, padded = np + CT_MODEL_PAD_FLOATS;
    GA(c->master, padded, float, "master weights");
    GA(c->params, np, ct_bf16_t, "bf16 weights");
    GA(c->grads, padded, float, "gradients");
    GA(c->m, o->count ? o->count : 1, float, "AdamW m");
    GA(c->v, o->count ? o->count : 1, float, "AdamW v");
    return CT_OK;
}

ct_status_t ct__cuda_model_prepare_attention(ct_cuda_model_t *c, const ct_config_t *cfg, int B,
                                             int T, int NH, int HS)
{
    ct_status_t st;
    if ((st = ct_cuda_attention_prepare(c->ctx, B, T, NH, HS)) == CT_OK) return CT_OK;
    if (cfg->model.attention == CT_ATTENTION_CUDNN) {
        CT_LOG_ERROR("model.attention is cudnn but cuDNN rejects attention at B=%d T=%d "
                     "NH=%d HS=%d (CT_LOG_LEVEL=debug shows cuDNN's reason)\n---> HINT: set "
                     "model.attention: auto to fall back to the plain CUDA attention",
                     B, T, NH, HS);
        return st;
    }
    /* a shape cuDNN cannot do is no error under auto: one line, then the
     * plain kernels */
    CT_LOG_INFO_R0("cuDNN attention does not support B=%d T=%d NH=%d HS=%d; using the plain "
                   "CUDA attention (CT_LOG_LEVEL=debug shows cuDNN's reason)", B, T, NH, HS);
    ct_cuda_set_attn_impl(c->ctx, CT_ATTN_PLAIN);
    return ct_cuda_attention_prepare(c->ctx, B, T, NH, HS);
}

ct_status_t ct__cuda_model_finish(ct_model_t *m, ct_optim_t *o, const ct_comm_groups_t *g, int B,
                                  int T)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    const ct_model_dims_t *d = &m->d;
    ct_status_t st;
    c->host_losses = malloc((size_t)B * T * sizeof(float));
    c->host_row = malloc((size_t)d->Vpl * sizeof(float));
    c->host_row_bf = malloc((size_t)d->Vpl * sizeof(ct_bf16_t));
    if (!c->host_losses || !c->host_row || !c->host_row_bf) {
        CT_LOG_ERROR("out of host memory for the GPU model's staging buffers");
        return CT_ERR_NO_MEMORY;
    }

    /* weights and optimizer state from the host */
    const size_t np = m->num_params, padded = np + CT_MODEL_PAD_FLOATS;
    ct_cuda_zero(c->master, padded * sizeof(float), c->stream);
    ct_cuda_copy(c->master, m->params, np * sizeof(float), c->stream);
    ct_cuda_f32_to_bf16(c->params, c->master, (long)np, c->stream);
    ct_cuda_zero(c->grads, padded * sizeof(float), c->stream);
    ct_cuda_copy(c->m, o->m, o->count * sizeof(float), c->stream);
    ct_cuda_copy(c->v, o->v, o->count * sizeof(float), c->stream);
    ct_cuda_stream_sync(c->stream);

    if (g && (g->dp_size > 1 || g->tp_size > 1)) {
        if ((st = ct_comm_device_groups_init(g, &c->dev)) != CT_OK) return st;
        c->have_dev = 1;
        c->dpc = g->dp_size > 1 ? c->dev.dp : NULL;
        c->tpc = g->tp_size > 1 ? c->dev.tp : NULL;
    }
    CT_ASSERT((d->tp > 1) == (c->tpc != NULL));
    if (c->stochastic && o->zero)
        CT_LOG_WARN_R0("optim.stochastic_rounding applies to the weights a rank updates; with "
                       "optim.zero: 1 the gathered weights are rounded to nearest");
    return CT_OK;
}

void ct__cuda_model_free(ct_model_t *m)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    if (c->stream && c->comm_stream) ct__cuda_wait_reduces(c);
    if (c->stream) ct_cuda_stream_sync(c->stream);
    if (c->have_dev) ct_comm_device_groups_free(&c->dev);
    ct_cuda_dealloc(c->master);
    ct_cuda_dealloc(c->params);
    ct_cuda_dealloc(c->grads);
    ct_cuda_dealloc(c->m);
    ct_cuda_dealloc(c->v);
    if (c->ev_layer)
        for (int l = 0; l < m->d.L; l++) ct_cuda_event_destroy(c->ev_layer[l]);
    free(c->ev_layer);
    ct_cuda_event_destroy(c->ev_backward);
    ct_cuda_event_destroy(c->ev_reduced);
    ct_cuda_stream_destroy(c->comm_stream);
    ct_cuda_stream_destroy(c->stream);
    prof_free(c);
    ct_cuda_free(c->ctx);
    free(c->host_losses);
    free(c->host_row);
    free(c->host_row_bf);
}

/* ---- helpers of a step ---------------------------------------------------------- */

void ct__cuda_wait_reduces(ct_cuda_model_t *c)
{
    if (!c->reduce_started) return;
    ct_cuda_event_record(c->ev_reduced, c->comm_stream);
    ct_cuda_stream_wait_event(c->stream, c->ev_reduced);
    c->reduce_started = 0;
}

void ct__cuda_compute_sync(ct_cuda_model_t *c)
{
    if (c->tpc) {
        if (ct_comm_sync(c->tpc, c->stream) != CT_OK) ct_comm_abort(1);
    } else {
        ct_cuda_stream_sync(c->stream);
    }
}

void ct__cuda_tp_check(ct_status_t st)
{
    if (st != CT_OK) ct_comm_abort(1);
}

void ct__cuda_reduce_layer(ct_model_t *m, int l)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    ct_cuda_event_record(c->ev_layer[l], c->stream);
    ct_cuda_stream_wait_event(c->comm_stream, c->ev_layer[l]);
    ct_comm_set_activity("dp gradient reduce of layer %d", l);
    double bytes = 0.0;
    for (int i = 0; i < m->n_tensors; i++)
        if (c->per_layer[i]) bytes += 4.0 * (double)(m->sizes[i] / (size_t)m->d.L);
    const int k = ct__cuda_prof_begin(c, F_DP, 0, bytes, c->comm_stream);
    ct_comm_group_begin();
    for (int i = 0; i < m->n_tensors; i++) {
        if (!c->per_layer[i]) continue;
        size_t n = m->sizes[i] / (size_t)m->d.L;
        float *gi = c->grads + m->offsets[i] + (size_t)l * n;
        if (ct_comm_allreduce(c->dpc, gi, gi, n, CT_DTYPE_F32, CT_OP_AVG, c->comm_stream) !=
            CT_OK)
            ct_comm_abort(1);
    }
    if (ct_comm_group_end() != CT_OK) ct_comm_abort(1);
    ct__cuda_prof_end(c, k, c->comm_stream);
}

float ct__cuda_mean_loss(ct_cuda_model_t *c, const float *losses, int N)
{
    /* the one host wait of a forward: the loss, for logging and the guards */
    ct_cuda_copy(c->host_losses, losses, (size_t)N * sizeof(float), c->stream);
    ct__cuda_compute_sync(c);
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += c->host_losses[i];
    return (float)(sum / N);
}

const float *ct__cuda_logits_row(ct_model_t *m, const ct_bf16_t *logits, int row)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    const int Vpl = m->d.Vpl;
    ct_cuda_copy(c->host_row_bf, logits + (size_t)row * Vpl, (size_t)Vpl * sizeof(ct_bf16_t),
                 c->stream);
    ct_cuda_stream_sync(c->stream);
    for (int v = 0; v < Vpl; v++) {
        uint32_t bits = (uint32_t)c->host_row_bf[v] << 16;
        memcpy(&c->host_row[v], &bits, sizeof bits);
    }
    return c->host_row;
}

/* ---- tensor and sequence parallelism --------------------------------------------------- */

int ct__cuda_sp_rows(const ct_model_t *m, int N, size_t *row0_p)
{
    const ct_cuda_model_t *c = ct__cuda_model(m);
    const int Ns = c->sp ? N / m->d.tp : N;
    if (row0_p) *row0_p = c->sp ? (size_t)m->d.tp_rank * Ns : 0;
    return Ns;
}

float *ct__cuda_tp_reduce_rows(ct_model_t *m, float *buf, int N)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    const size_t C = (size_t)m->d.C;
    size_t row0;
    const int Ns = ct__cuda_sp_rows(m, N, &row0);
    if (!c->sp) {
        CT_CUDA_OP(c, F_TP, 0, (size_t)N * C * 4, c->stream,
                   ct__cuda_tp_check(ct_comm_allreduce(c->tpc, buf, buf, (size_t)N * C,
                                                       CT_DTYPE_F32, CT_OP_SUM, c->stream)));
        return buf;
    }
    float *rows = buf + row0 * C;
    CT_CUDA_OP(c, F_TP, 0, (size_t)N * C * 4, c->stream,
               ct__cuda_tp_check(ct_comm_reduce_scatter(c->tpc, buf, rows, (size_t)Ns * C,
                                                        CT_DTYPE_F32, CT_OP_SUM, c->stream)));
    return rows;
}

void ct__cuda_sp_gather_bf16(ct_model_t *m, const ct_bf16_t *rows, ct_bf16_t *full, int N)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    const size_t n = (size_t)(N / m->d.tp) * (size_t)m->d.C;
    CT_CUDA_OP(c, F_TP, 0, n * 2 * (size_t)m->d.tp, c->stream,
               ct__cuda_tp_check(ct_comm_allgather(c->tpc, rows, full, n / 2, CT_DTYPE_I32,
                                                   c->stream)));
}

const ct_bf16_t *ct__cuda_sp_col_input(ct_model_t *m, const ct_bf16_t *ln, ct_bf16_t *full,
                                       int N)
{
    if (!ct__cuda_model(m)->sp) return ln;
    ct__cuda_sp_gather_bf16(m, ln, full, N);
    return full;
}

void ct__cuda_sp_gather_rows(ct_model_t *m, ct_bf16_t *full, int N)
{
    if (!ct__cuda_model(m)->sp) return;
    size_t row0;
    ct__cuda_sp_rows(m, N, &row0);
    ct__cuda_sp_gather_bf16(m, full + row0 * m->d.C, full, N);
}

void ct__cuda_sp_sum_grads(ct_model_t *m, const int *tensors, int n, int l)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    if (!c->sp || !m->grad_sync) return;
    /* one timed op around the group: its collectives launch at group_end */
    const int k_ = ct__cuda_prof_begin(c, F_TP, 0, (double)n * m->d.C * 4, c->stream);
    ct_comm_group_begin();
    for (int k = 0; k < n; k++) {
        const int i = tensors[k];
        const size_t len = c->per_layer[i] ? m->sizes[i] / (size_t)m->d.L : m->sizes[i];
        float *gi = c->grads + m->offsets[i] + (c->per_layer[i] ? (size_t)l * len : 0);
        ct__cuda_tp_check(ct_comm_allreduce(c->tpc, gi, gi, len, CT_DTYPE_F32, CT_OP_SUM,
                                            c->stream));
    }
    ct__cuda_tp_check(ct_comm_group_end());
    ct__cuda_prof_end(c, k_, c->stream);
}

/* ---- the LM head and cross-entropy, chunk by chunk ------------------------------------ */

int ct__cuda_head(ct_model_t *m, const ct_cuda_head_t *h, int N, int mode, float dloss)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    const ct_model_dims_t *d = &m->d;
    void *s = c->stream;
    const int C = d->C, Vpl = d->Vpl;
    const int R = ct__model_head_rows(m->B, m->T);
    const int first = mode == CT_HEAD_LOGITS ? (N - 1) / R * R : 0;
    for (int r0 = first; r0 < N; r0 += R) {
        const int n = N - r0 < R ? N - r0 : R;
        const ct_bf16_t *x = h->x + (size_t)r0 * C;
        CT_CUDA_OP(c, F_MATMUL, 2.0 * n * C * Vpl, 0, s,
                   ct_cuda_matmul_forward(c->ctx, h->logits, NULL, x, h->w, NULL, n, C, Vpl, s));
        if (mode == CT_HEAD_LOGITS) return r0;
        const float dl = mode == CT_HEAD_TRAIN ? dloss : 0.0f;
        if (!c->tpc) {
            CT_CUDA_OP(c, F_XENT, 0, (size_t)n * Vpl * (dl != 0.0f ? 4 : 2), s,
                       ct_cuda_xent_forward_backward(h->losses + r0, h->logits, h->targets + r0,
                                                     dl, n, d->V, Vpl, s));
        } else {
            float *mine = h->xstats + (size_t)d->tp_rank * n * 3;
            CT_CUDA_OP(c, F_XENT, 0, (size_t)n * Vpl * 2, s,
                       ct_cuda_xent_vp_stats(mine, h->logits, h->targets + r0, n, d->v_start,
                                             d->Vl, Vpl, s));
            CT_CUDA_OP(c, F_TP, 0, (size_t)n * 12 * d->tp, s,
                       ct__cuda_tp_check(ct_comm_allgather(c->tpc, mine, h->xstats,
                                                           (size_t)n * 3, CT_DTYPE_F32, s)));
            CT_CUDA_OP(c, F_XENT, 0, (size_t)n * 12 * d->tp, s,
                       ct_cuda_xent_vp_finish(h->losses + r0, h->lse + r0, h->xstats, n, d->tp,
                                              s));
            if (mode == CT_HEAD_TRAIN)
                CT_CUDA_OP(c, F_XENT, 0, (size_t)n * Vpl * 4, s,
                           ct_cuda_xent_vp_backward(h->logits, h->lse + r0, h->targets + r0, dl,
                                                    n, d->v_start, d->Vl, Vpl, s));
        }
        if (mode != CT_HEAD_TRAIN) continue;
        if (h->dx_bf) { /* the weight and the rounded input gradient in one call */
            CT_CUDA_OP(c, F_MATMUL, 4.0 * n * C * Vpl, 0, s,
                       ct_cuda_matmul_backward(c->ctx, h->dx_bf + (size_t)r0 * C, h->dw, NULL,
                                               h->logits, x, h->w, NULL, h->scratch, n, C, Vpl,
                                               s));
        } else {
            CT_CUDA_OP(c, F_MATMUL, 2.0 * n * C * Vpl, 0, s,
                       ct_cuda_matmul_backward(c->ctx, NULL, h->dw, NULL, h->logits, x, h->w,
                                               NULL, h->scratch, n, C, Vpl, s));
            CT_CUDA_OP(c, F_MATMUL, 2.0 * n * C * Vpl, 0, s,
                       ct_cuda_matmul_dinp_f32(c->ctx, h->dx_f32 + (size_t)r0 * C, h->logits,
                                               h->w, n, C, Vpl, s));
        }
    }
    return first;
}

/* ---- backend table entries ----------------------------------------------------------- */

void ct__cuda_model_to_host(ct_model_t *m, ct_optim_t *o)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    ct__cuda_wait_reduces(c);
    ct_cuda_copy(m->params, c->master, m->num_params * sizeof(float), c->stream);
    ct_cuda_copy(o->m, c->m, o->count * sizeof(float), c->stream);
    ct_cuda_copy(o->v, c->v, o->count * sizeof(float), c->stream);
    ct_cuda_stream_sync(c->stream);
}

void ct__cuda_model_grads_to_host(ct_model_t *m, float *dst)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    ct__cuda_wait_reduces(c);
    ct_cuda_copy(dst, c->grads, m->num_params * sizeof(float), c->stream);
    ct_cuda_stream_sync(c->stream);
}

void ct__cuda_model_zero_grad(ct_model_t *m)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    ct__cuda_wait_reduces(c);
    ct_cuda_zero(c->grads, m->num_params * sizeof(float), c->stream);
}

const char *ct__cuda_model_device_name(const ct_model_t *m)
{
    return ct_cuda_device_name(ct__cuda_model(m)->ctx);
}
double ct__cuda_model_peak_tflops(const ct_model_t *m)
{
    return ct_cuda_peak_bf16_tflops(ct__cuda_model(m)->ctx);
}
size_t ct__cuda_model_peak_memory(const ct_model_t *m)
{
    return ct_cuda_peak_memory(ct__cuda_model(m)->ctx);
}

/* ---- optimizer ---------------------------------------------------------------- */

/* 1. average gradients over DP on the comm stream: what the backward did not
 * already reduce (the tensors that are not per layer), or ZeRO's
 * reduce-scatter */
ct_status_t ct__cuda_model_grad_reduce(ct_model_t *m, ct_optim_t *o, int t)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    ct_status_t st = CT_OK;
    c->t0 = ct_time_now();
    if (c->dpc) {
        ct_cuda_event_record(c->ev_backward, c->stream);
        ct_cuda_stream_wait_event(c->comm_stream, c->ev_backward);
        const int k = ct__cuda_prof_begin(c, F_DP, 0, 4.0 * (double)m->num_params, c->comm_stream);
        if (o->zero) {
            ct_comm_set_activity("step %d: dp gradient reduce-scatter", t);
            st = ct_comm_reduce_scatter(c->dpc, c->grads, c->grads + o->start, o->count,
                                        CT_DTYPE_F32, CT_OP_AVG, c->comm_stream);
        } else {
            ct_comm_set_activity("step %d: dp gradient reduce", t);
            ct_comm_group_begin();
            for (int i = 0; i < m->n_tensors && st == CT_OK; i++) {
                if (c->reduce_started && c->per_layer[i]) continue;
                float *gi = c->grads + m->offsets[i];
                st = ct_comm_allreduce(c->dpc, gi, gi, m->sizes[i], CT_DTYPE_F32, CT_OP_AVG,
                                       c->comm_stream);
            }
            ct_status_t st_end = ct_comm_group_end();
            if (st == CT_OK) st = st_end;
        }
        ct__cuda_prof_end(c, k, c->comm_stream);
        if (st != CT_OK) return st;
        ct_cuda_event_record(c->ev_reduced, c->comm_stream);
        ct_cuda_stream_wait_event(c->stream, c->ev_reduced);
    }
    c->reduce_started = 0;
    return CT_OK;
}

/* 2. the sum of squares of the owned slice stays on the device; under TP
 * every parameter counts once (a replicated tensor on TP rank 0 only, as
 * model/optim.c's CPU rule) and the sum runs over the TP group; with ZeRO
 * it is also summed over DP */
ct_status_t ct__cuda_model_grad_sumsq(ct_model_t *m, ct_optim_t *o, int t, double *host_p)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    ct_status_t st = CT_OK;
    (void)host_p;
    const int k = ct__cuda_prof_begin(c, F_OPTIM, 0, 4.0 * (double)o->count, c->stream);
    if (!c->tpc) {
        ct_cuda_sumsq(c->opt_sumsq, c->grads + o->start, (long)o->count, 0, c->opt_scratch,
                      c->stream);
        ct__cuda_prof_end(c, k, c->stream);
    } else {
        const size_t lo = o->start, hi = o->start + o->count;
        int first = 1;
        for (int i = 0; i < m->n_tensors; i++) {
            size_t a = m->offsets[i] > lo ? m->offsets[i] : lo;
            size_t b = m->offsets[i] + m->sizes[i] < hi ? m->offsets[i] + m->sizes[i] : hi;
            if (a >= b || (ct_model_tensor_replicated(&m->d, i) && m->d.tp_rank != 0)) continue;
            ct_cuda_sumsq(c->opt_sumsq, c->grads + a, (long)(b - a), !first, c->opt_scratch,
                          c->stream);
            first = 0;
        }
        if (first) ct_cuda_zero(c->opt_sumsq, sizeof(float), c->stream);
        ct__cuda_prof_end(c, k, c->stream);
        ct_comm_set_activity("step %d: gradient norm over tp", t);
        st = ct_comm_allreduce(c->tpc, c->opt_sumsq, c->opt_sumsq, 1, CT_DTYPE_F32, CT_OP_SUM,
                               c->stream);
    }
    if (st == CT_OK && c->dpc && o->zero) {
        ct_comm_set_activity("step %d: gradient norm", t);
        st = ct_comm_allreduce(c->dpc, c->opt_sumsq, c->opt_sumsq, 1, CT_DTYPE_F32, CT_OP_SUM,
                               c->stream);
    }
    return st;
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
void ct__cuda_model_adamw(ct_model_t *m, ct_optim_t *o, const ct_optim_config_t *cfg, size_t a,
                          size_t b, float lr, float wd, int t, int tensor, float clip_scale)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    const size_t lo = o->start;
    (void)clip_scale;
    const int k = ct__cuda_prof_begin(c, F_OPTIM, 0, 30.0 * (double)(b - a), c->stream);
    ct_cuda_adamw_update(c->master + a, o->zero ? NULL : c->params + a, c->grads + a,
                         c->m + (a - lo), c->v + (a - lo), (long)(b - a), lr, cfg->beta1,
                         cfg->beta2, cfg->eps, wd, t, c->opt_sumsq, cfg->grad_clip,
                         c->stochastic ? sr_seed(t, tensor) : 0u, c->stream);
    ct__cuda_prof_end(c, k, c->stream);
}

/* 4. ZeRO: everyone gets the updated weights */
ct_status_t ct__cuda_model_param_gather(ct_model_t *m, ct_optim_t *o, int t)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    if (!c->dpc) return CT_OK;
    ct_comm_set_activity("step %d: dp parameter all-gather", t);
    int k = ct__cuda_prof_begin(c, F_DP, 0, 4.0 * (double)m->num_params, c->stream);
    ct_status_t st = ct_comm_allgather(c->dpc, c->master + o->start, c->master, o->count,
                                       CT_DTYPE_F32, c->stream);
    ct__cuda_prof_end(c, k, c->stream);
    if (st != CT_OK) return st;
    k = ct__cuda_prof_begin(c, F_OPTIM, 0, 6.0 * (double)m->num_params, c->stream);
    ct_cuda_f32_to_bf16(c->params, c->master, (long)m->num_params, c->stream);
    ct__cuda_prof_end(c, k, c->stream);
    return CT_OK;
}

/* 5. the one host wait of the step: the norm, for logging and guards;
 * ct_comm_sync bounds it by comm.timeout_s when NCCL is involved */
ct_status_t ct__cuda_model_step_norm(ct_model_t *m, ct_optim_t *o, int t, double host_sumsq,
                                     float *norm_p)
{
    ct_cuda_model_t *c = ct__cuda_model(m);
    ct_status_t st;
    (void)host_sumsq;
    if (c->have_dev) {
        ct_comm_set_activity("step %d: waiting for the device", t);
        if ((st = ct_comm_sync(c->dpc ? c->dpc : c->tpc, c->stream)) != CT_OK) return st;
    }
    float sumsq = 0.0f;
    ct_cuda_copy(&sumsq, c->opt_sumsq, sizeof(float), c->stream);
    ct_cuda_stream_sync(c->stream);
    read_prof(c); /* every timed op of the step is done */
    if (c->dpc) o->comm_seconds += ct_time_now() - c->t0; /* includes compute tail */
    *norm_p = sqrtf(sumsq);
    return CT_OK;
}
