/* AdamW over the flat parameter arena: the one optimizer-step skeleton every
 * backend shares (DP average, ZeRO-1 slice, global-norm clipping, skip on a
 * non-finite norm, decay rule, ZeRO all-gather), and the CPU backend's
 * pieces under it. The LR schedule is the trainer's (trainer/schedule.c). */
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "core/timer.h"
#include "kernels/kernels.h"
#include "model/model_impl.h"

void ct__optim_slice(size_t num_params, int zero, int dp, int dp_rank, size_t *padded_p,
                     size_t *start_p, size_t *count_p)
{
    const int z = zero && dp > 1;
    *padded_p = (num_params + (size_t)dp - 1) / (size_t)dp * (size_t)dp;
    *start_p = z ? (*padded_p / (size_t)dp) * (size_t)dp_rank : 0;
    *count_p = z ? *padded_p / (size_t)dp : num_params;
}

ct_status_t ct_optim_init(ct_optim_t *o, const ct_model_t *m, int zero, const ct_comm_groups_t *g,
                          int bucket_mib)
{
    memset(o, 0, sizeof *o);
    int dp = g ? g->dp_size : 1, dp_rank = g ? g->dp_rank : 0;
    o->dp = dp > 1 ? g->dp : NULL;
    o->tp = g && g->tp_size > 1 ? g->tp : NULL;
    o->world = g && g->world_size > 1 ? g->world : NULL;
    o->tp_rank = g ? g->tp_rank : 0;
    o->zero = zero && dp > 1;
    ct__optim_slice(m->num_params, zero, dp, dp_rank, &o->padded, &o->start, &o->count);
    CT_ASSERT(o->padded <= m->num_params + CT_MODEL_PAD_FLOATS);
    o->bucket_floats = (size_t)bucket_mib * (1u << 20) / sizeof(float);
    size_t bytes = o->count * sizeof(float);
    ct_status_t st = ct_arena_init(&o->arena, 2 * ct_arena_align(bytes), "AdamW state");
    if (st != CT_OK) return st;
    o->m = ct_arena_alloc(&o->arena, bytes);
    o->v = ct_arena_alloc(&o->arena, bytes);
    return CT_OK;
}

void ct_optim_free(ct_optim_t *o) { ct_arena_free(&o->arena); }

/* The sum of squares has no negative value: this one means "on the device". */
#define SUMSQ_ON_DEVICE (-1.0)

ct_status_t ct_optim_step(ct_optim_t *o, ct_model_t *m, const ct_optim_config_t *cfg, float lr,
                          int t, float *norm_p)
{
    const ct_model_backend_t *be = m->be;
    ct_status_t st;
    /* 1. average gradients over DP (or reduce-scatter them: ZeRO-1) */
    if ((st = be->grad_reduce(m, o, t)) != CT_OK) return st;

    /* 2. global norm over the slice this rank owns */
    double sumsq = SUMSQ_ON_DEVICE;
    if ((st = be->grad_sumsq(m, o, t, &sumsq)) != CT_OK) return st;
    float clip_scale = 1.0f;
    if (sumsq != SUMSQ_ON_DEVICE) {
        float norm = (float)sqrt(sumsq);
        if (!isfinite(norm)) { /* every rank sees the same norm: all skip */
            *norm_p = norm;
            return CT_OK;
        }
        if (cfg->grad_clip > 0.0f && norm > cfg->grad_clip) clip_scale = cfg->grad_clip / norm;
    } /* else the device's AdamW reads the norm, clips and skips itself */

    /* 3. AdamW on the owned slice, tensor by tensor for the decay rule */
    const size_t lo = o->start, hi = o->start + o->count;
    for (int i = 0; i < m->n_tensors; i++) {
        size_t a = m->offsets[i] > lo ? m->offsets[i] : lo;
        size_t b = m->offsets[i] + m->sizes[i] < hi ? m->offsets[i] + m->sizes[i] : hi;
        if (a >= b) continue;
        float wd = ct_model_tensor_decays(&m->d, i) ? cfg->weight_decay : 0.0f;
        be->adamw(m, o, cfg, a, b, lr, wd, t, i, clip_scale);
    }

    /* 4. ZeRO: everyone gets the updated parameters */
    if (o->zero && (st = be->param_gather(m, o, t)) != CT_OK) return st;
    return be->step_norm(m, o, t, sumsq, norm_p);
}

/* ---- the CPU backend's pieces ------------------------------------------------- */

static CT_MUST_USE ct_status_t timed(ct_optim_t *o, ct_status_t st, double t0)
{
    o->comm_seconds += ct_time_now() - t0;
    return st;
}

ct_status_t ct__optim_cpu_grad_reduce(ct_model_t *m, ct_optim_t *o, int t)
{
    ct_status_t st = CT_OK;
    double t0 = ct_time_now();
    if (o->zero) {
        ct_comm_set_activity("step %d: dp gradient reduce-scatter", t);
        st = ct_comm_reduce_scatter(o->dp, m->grads, m->grads + o->start, o->count, CT_DTYPE_F32,
                                    CT_OP_AVG, NULL);
    } else if (o->dp) {
        for (size_t off = 0, b = 0; off < m->num_params && st == CT_OK;
             off += o->bucket_floats, b++) {
            size_t n = m->num_params - off < o->bucket_floats ? m->num_params - off
                                                               : o->bucket_floats;
            ct_comm_set_activity("step %d: dp gradient bucket %zu", t, b);
            st = ct_comm_allreduce(o->dp, m->grads + off, m->grads + off, n, CT_DTYPE_F32,
                                   CT_OP_AVG, NULL);
        }
    }
    return timed(o, st, t0);
}

/* A replicated (non-TP) tensor counts on TP rank 0 only, so every parameter
 * counts once; with ZeRO the slices are summed over the world. */
ct_status_t ct__optim_cpu_grad_sumsq(ct_model_t *m, ct_optim_t *o, int t, double *host_p)
{
    const size_t lo = o->start, hi = o->start + o->count;
    double sumsq = 0.0;
    for (int i = 0; i < m->n_tensors; i++) {
        size_t a = m->offsets[i] > lo ? m->offsets[i] : lo;
        size_t b = m->offsets[i] + m->sizes[i] < hi ? m->offsets[i] + m->sizes[i] : hi;
        if (a >= b || (ct_model_tensor_replicated(&m->d, i) && o->tp_rank != 0)) continue;
        sumsq += ct_sumsq(m->grads + a, (long)(b - a));
    }
    ct_comm_t *norm_group = o->zero ? o->world : o->tp;
    if (norm_group) {
        double t0 = ct_time_now();
        ct_comm_set_activity("step %d: gradient norm", t);
        ct_status_t st =
            ct_comm_allreduce(norm_group, &sumsq, &sumsq, 1, CT_DTYPE_F64, CT_OP_SUM, NULL);
        if (timed(o, st, t0) != CT_OK) return st;
    }
    *host_p = sumsq;
    return CT_OK;
}

void ct__optim_cpu_adamw(ct_model_t *m, ct_optim_t *o, const ct_optim_config_t *cfg, size_t a,
                         size_t b, float lr, float wd, int t, int tensor, float clip_scale)
{
    if (clip_scale != 1.0f) ct_scale(m->grads + a, clip_scale, (long)(b - a));
    ct_adamw_update(m->params + a, m->grads + a, o->m + (a - o->start), o->v + (a - o->start),
                    (long)(b - a), lr, cfg->beta1, cfg->beta2, cfg->eps, wd, t);
}

ct_status_t ct__optim_cpu_param_gather(ct_model_t *m, ct_optim_t *o, int t)
{
    double t0 = ct_time_now();
    ct_comm_set_activity("step %d: dp parameter all-gather", t);
    ct_status_t st =
        ct_comm_allgather(o->dp, m->params + o->start, m->params, o->count, CT_DTYPE_F32, NULL);
    return timed(o, st, t0);
}

ct_status_t ct__optim_cpu_step_norm(ct_model_t *m, ct_optim_t *o, int t, double host_sumsq,
                                    float *norm_p)
{
    *norm_p = (float)sqrt(host_sumsq);
    return CT_OK;
}
