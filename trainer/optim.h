/* AdamW over the flat parameter arena, the LR schedule, the data-parallel
 * gradient reduction (bucketed all-reduce, or ZeRO-1 reduce-scatter +
 * all-gather) and global-norm clipping. Private to trainer/. */
#ifndef CT_TRAINER_OPTIM_H
#define CT_TRAINER_OPTIM_H

#include "comm/comm.h"
#include "core/arena.h"
#include "core/config.h"
#include "trainer/gpt2.h"

typedef struct ct_optim {
    float *m, *v;        /* (count) AdamW moments of params [start, start+count) */
    size_t start, count; /* the slice this rank updates: all of it, or its ZeRO shard */
    size_t padded;       /* flat length rounded up to a multiple of dp */
    int zero;            /* ZeRO-1 */
    ct_comm_t *dp;       /* NULL for dp = 1 */
    ct_comm_t *tp;       /* NULL for tp = 1 */
    ct_comm_t *world;    /* NULL for a world of 1 */
    int tp_rank;
    size_t bucket_floats;
    double comm_seconds; /* time in DP collectives, accumulated */
    ct_arena_t arena;
} ct_optim_t;

/* Sizes the AdamW state for model m: all of it, or with zero = 1 the
 * dp_rank-th of dp equal slices. Groups may be NULL (size 1). */
ct_status_t ct_optim_init(ct_optim_t *o, const ct_gpt2_t *m, int zero, const ct_comm_groups_t *g,
                          int bucket_mib);
void ct_optim_free(ct_optim_t *o);

/* Learning rate for 0-based `step` of `total`: linear warmup from lr/warmup
 * to lr over warmup_steps, then cosine/linear decay (or constant) to
 * lr*min_lr_frac at the last step. */
float ct_lr_at(const ct_optim_config_t *cfg, int step, int total);

/* One optimizer step on accumulated gradients: average them over DP,
 * clip to the global norm cfg->grad_clip (counting every parameter once
 * across TP shards and DP replicas), AdamW with bias-correction step t
 * (1-based) and weight decay on 2-D tensors only, then (ZeRO) all-gather the
 * parameters. *norm_p gets the norm before clipping. */
ct_status_t ct_optim_step(ct_optim_t *o, ct_gpt2_t *m, const ct_optim_config_t *cfg, float lr,
                          int t, float *norm_p);

/* ct_optim_step's GPU twin (trainer/gpt2_gpu.c), used when m->gpu is set. */
ct_status_t ct__gpt2_gpu_optim_step(ct_optim_t *o, ct_gpt2_t *m, const ct_optim_config_t *cfg,
                                    float lr, int t, float *norm_p);

#endif
