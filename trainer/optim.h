/* AdamW over the flat parameter arena, the LR schedule and global-norm
 * clipping. Private to trainer/. */
#ifndef CT_TRAINER_OPTIM_H
#define CT_TRAINER_OPTIM_H

#include "core/config.h"
#include "trainer/gpt2.h"

/* Learning rate for 0-based `step` of `total`: linear warmup from lr/warmup
 * to lr over warmup_steps, then cosine/linear decay (or constant) to
 * lr*min_lr_frac at the last step. */
float ct_lr_at(const ct_optim_config_t *o, int step, int total);
/* Clips gradients to the global norm o->grad_clip (if > 0) and applies one
 * AdamW update with bias-correction step t (1-based). Weight decay goes to
 * 2-D tensors only. Returns the gradient norm before clipping. */
float ct_optim_step(ct_gpt2_t *m, const ct_optim_config_t *o, float lr, int t);

#endif
