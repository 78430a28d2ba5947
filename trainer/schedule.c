/* The learning-rate schedule: linear warmup, then cosine, linear or constant
 * decay to a floor. */
#include <math.h>

#include "trainer/trainer.h"

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
