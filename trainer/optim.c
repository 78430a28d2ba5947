/* AdamW, LR schedule and gradient clipping. */
#include "trainer/optim.h"

#include <math.h>

#include "kernels/kernels.h"

float ct_lr_at(const ct_optim_config_t *o, int step, int total)
{
    float lr = o->lr, min_lr = o->lr * o->min_lr_frac;
    if (step < o->warmup_steps) return lr * (float)(step + 1) / (float)o->warmup_steps;
    if (o->decay == CT_DECAY_CONSTANT) return lr;
    int span = total - 1 - o->warmup_steps;
    float frac = span > 0 ? (float)(step - o->warmup_steps) / (float)span : 1.0f;
    if (frac > 1.0f) frac = 1.0f;
    float coeff = o->decay == CT_DECAY_COSINE ? 0.5f * (1.0f + cosf((float)M_PI * frac))
                                               : 1.0f - frac;
    return min_lr + coeff * (lr - min_lr);
}

float ct_optim_step(ct_gpt2_t *m, const ct_optim_config_t *o, float lr, int t)
{
    float norm = (float)sqrt(ct_sumsq(m->grads, (long)m->num_params));
    if (o->grad_clip > 0.0f && norm > o->grad_clip)
        ct_scale(m->grads, o->grad_clip / norm, (long)m->num_params);
    for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) {
        size_t off = m->offsets[i];
        float wd = ct_gpt2_tensor_decays(i) ? o->weight_decay : 0.0f;
        ct_adamw_update(m->params + off, m->grads + off, m->m + off, m->v + off,
                        (long)m->sizes[i], lr, o->beta1, o->beta2, o->eps, wd, t);
    }
    return norm;
}
