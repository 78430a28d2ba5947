/* AdamW, LR schedule, data-parallel gradient reduction and clipping. */
#include "trainer/optim.h"

#include <math.h>
#include <string.h>

#include "core/log.h"
#include "core/timer.h"
#include "kernels/kernels.h"

ct_status_t ct_optim_init(ct_optim_t *o, const ct_gpt2_t *m, int zero, const ct_comm_groups_t *g,
                          int bucket_mib)
{
    memset(o, 0, sizeof *o);
    int dp = g ? g->dp_size : 1, dp_rank = g ? g->dp_rank : 0;
    o->dp = dp > 1 ? g->dp : NULL;
    o->tp = g && g->tp_size > 1 ? g->tp : NULL;
    o->world = g && g->world_size > 1 ? g->world : NULL;
    o->tp_rank = g ? g->tp_rank : 0;
    o->zero = zero && dp > 1;
    o->padded = (m->num_params + (size_t)dp - 1) / (size_t)dp * (size_t)dp;
    CT_ASSERT(o->padded <= m->num_params + CT_GPT2_PAD_FLOATS);
    o->start = o->zero ? (o->padded / (size_t)dp) * (size_t)dp_rank : 0;
    o->count = o->zero ? o->padded / (size_t)dp : m->num_params;
    o->bucket_floats = (size_t)bucket_mib * (1u << 20) / sizeof(float);
    size_t bytes = o->count * sizeof(float);
    ct_status_t st = ct_arena_init(&o->arena, 2 * ct_arena_align(bytes), "AdamW state");
    if (st != CT_OK) return st;
    o->m = ct_arena_alloc(&o->arena, bytes);
    o->v = ct_arena_alloc(&o->arena, bytes);
    return CT_OK;
}

void ct_optim_free(ct_optim_t *o) { ct_arena_free(&o->arena); }

float ct_lr_at(const ct_optim_config_t *cfg, int step, int total)
{
    float lr = cfg->lr, min_lr = cfg->lr * cfg->min_lr_frac;
    if (step < cfg->warmup_steps) return lr * (float)(step + 1) / (float)cfg->warmup_steps;
    if (cfg->decay == CT_DECAY_CONSTANT) return lr;
    int span = total - 1 - cfg->warmup_steps;
    float frac = span > 0 ? (float)(step - cfg->warmup_steps) / (float)span : 1.0f;
    if (frac > 1.0f) frac = 1.0f;
    float coeff = cfg->decay == CT_DECAY_COSINE ? 0.5f * (1.0f + cosf((float)M_PI * frac))
                                                 : 1.0f - frac;
    return min_lr + coeff * (lr - min_lr);
}

static ct_status_t timed(ct_optim_t *o, ct_status_t st, double t0)
{
    o->comm_seconds += ct_time_now() - t0;
    return st;
}

ct_status_t ct_optim_step(ct_optim_t *o, ct_gpt2_t *m, const ct_optim_config_t *cfg, float lr,
                          int t, float *norm_p)
{
    if (m->gpu) return ct__gpt2_gpu_optim_step(o, m, cfg, lr, t, norm_p);
    ct_status_t st = CT_OK;
    double t0 = ct_time_now();
    /* 1. average gradients over DP */
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
    if (timed(o, st, t0) != CT_OK) return st;

    /* 2. global norm over the slice this rank owns; a replicated (non-TP)
     * tensor counts on TP rank 0 only, so every parameter counts once */
    const size_t lo = o->start, hi = o->start + o->count;
    double sumsq = 0.0;
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) {
        size_t a = m->offsets[i] > lo ? m->offsets[i] : lo;
        size_t b = m->offsets[i] + m->sizes[i] < hi ? m->offsets[i] + m->sizes[i] : hi;
        if (a >= b || (ct_gpt2_tensor_replicated(i) && o->tp_rank != 0)) continue;
        sumsq += ct_sumsq(m->grads + a, (long)(b - a));
    }
    ct_comm_t *norm_group = o->zero ? o->world : o->tp;
    if (norm_group) {
        t0 = ct_time_now();
        ct_comm_set_activity("step %d: gradient norm", t);
        st = ct_comm_allreduce(norm_group, &sumsq, &sumsq, 1, CT_DTYPE_F64, CT_OP_SUM, NULL);
        if (timed(o, st, t0) != CT_OK) return st;
    }
    float norm = (float)sqrt(sumsq);
    float scale = cfg->grad_clip > 0.0f && norm > cfg->grad_clip ? cfg->grad_clip / norm : 1.0f;

    /* 3. AdamW on the owned slice, tensor by tensor for the decay rule */
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) {
        size_t a = m->offsets[i] > lo ? m->offsets[i] : lo;
        size_t b = m->offsets[i] + m->sizes[i] < hi ? m->offsets[i] + m->sizes[i] : hi;
        if (a >= b) continue;
        if (scale != 1.0f) ct_scale(m->grads + a, scale, (long)(b - a));
        float wd = ct_gpt2_tensor_decays(i) ? cfg->weight_decay : 0.0f;
        ct_adamw_update(m->params + a, m->grads + a, o->m + (a - lo), o->v + (a - lo),
                        (long)(b - a), lr, cfg->beta1, cfg->beta2, cfg->eps, wd, t);
    }

    /* 4. ZeRO: everyone gets the updated parameters */
    if (o->zero) {
        t0 = ct_time_now();
        ct_comm_set_activity("step %d: dp parameter all-gather", t);
        st = ct_comm_allgather(o->dp, m->params + o->start, m->params, o->count, CT_DTYPE_F32,
                               NULL);
        if (timed(o, st, t0) != CT_OK) return st;
    }
    *norm_p = norm;
    return CT_OK;
}
