/* The learning-rate schedule ct_lr_at against its definition, computed here
 * in double from the formula (not by calling the code under test again):
 *   step < warmup:  lr * (step + 1) / warmup
 *   constant:       lr
 *   otherwise:      frac = min(1, (step - warmup) / (total - 1 - warmup)),
 *                   or 1 when total - 1 - warmup <= 0;
 *                   min_lr + c(frac) * (lr - min_lr), min_lr = lr * min_lr_frac,
 *                   c = (1 + cos(pi frac)) / 2 (cosine) or 1 - frac (linear).
 * Besides whole sweeps, a few values are pinned by hand so that a wrong
 * reading of the formula in this file cannot hide a wrong schedule. */
#include <math.h>

#include "test_util.h"
#include "trainer/trainer.h"

static ct_optim_config_t sched(float lr, float min_frac, int warmup, ct_decay_t decay)
{
    ct_optim_config_t c;
    memset(&c, 0, sizeof c);
    c.lr = lr;
    c.min_lr_frac = min_frac;
    c.warmup_steps = warmup;
    c.decay = decay;
    return c;
}

static double expected(const ct_optim_config_t *c, int step, int total)
{
    double lr = c->lr, min_lr = (double)c->lr * c->min_lr_frac;
    if (step < c->warmup_steps) return lr * (step + 1) / c->warmup_steps;
    if (c->decay == CT_DECAY_CONSTANT) return lr;
    int span = total - 1 - c->warmup_steps;
    double frac = span > 0 ? (double)(step - c->warmup_steps) / span : 1.0;
    if (frac > 1.0) frac = 1.0;
    double coeff = c->decay == CT_DECAY_COSINE ? 0.5 * (1.0 + cos(M_PI * frac)) : 1.0 - frac;
    return min_lr + coeff * (lr - min_lr);
}

/* float against double: a few ulps of the peak, plus relative slack */
static int close_to(float got, double want, float lr)
{
    return fabs((double)got - want) <= 1e-6 * lr + 1e-5 * fabs(want);
}

#define CHECK_LR(c, step, total, want)                                                  \
    do {                                                                                \
        float _got = ct_lr_at((c), (step), (total));                                    \
        double _want = (want);                                                          \
        CHECK_MSG(close_to(_got, _want, (c)->lr), "step %d of %d: lr %.9g, want %.9g", \
                  (int)(step), (int)(total), _got, _want);                              \
    } while (0)

/* Every step of a run (and some past its end) against the formula. */
static void sweep(const ct_optim_config_t *c, int total)
{
    for (int s = 0; s < total + 20; s++) CHECK_LR(c, s, total, expected(c, s, total));
}

static void test_warmup(void)
{
    ct_optim_config_t c = sched(6e-4f, 0.1f, 10, CT_DECAY_COSINE);
    CHECK_LR(&c, 0, 111, 6e-5);  /* the first step already trains */
    CHECK_LR(&c, 4, 111, 3e-4);
    CHECK_LR(&c, 9, 111, 6e-4);  /* the last warmup step reaches the peak */
    CHECK_LR(&c, 10, 111, 6e-4); /* decay starts from the peak */
    for (int s = 1; s < 10; s++) CHECK(ct_lr_at(&c, s, 111) > ct_lr_at(&c, s - 1, 111));
    /* no warmup: the first step is at the peak */
    ct_optim_config_t n = sched(1e-3f, 0.0f, 0, CT_DECAY_LINEAR);
    CHECK_LR(&n, 0, 11, 1e-3);
}

static void test_cosine(void)
{
    /* warmup 10, decay over steps 10..110 (span 100) */
    ct_optim_config_t c = sched(6e-4f, 0.1f, 10, CT_DECAY_COSINE);
    CHECK_LR(&c, 60, 111, 6e-5 + 0.5 * 5.4e-4);                     /* half way: the midpoint */
    CHECK_LR(&c, 35, 111, 6e-5 + 0.5 * (1 + sqrt(0.5)) * 5.4e-4);   /* a quarter: cos(pi/4) */
    CHECK_LR(&c, 85, 111, 6e-5 + 0.5 * (1 - sqrt(0.5)) * 5.4e-4);
    CHECK_LR(&c, 110, 111, 6e-5);                                   /* the last step: the floor */
    for (int s = 11; s < 111; s++) CHECK(ct_lr_at(&c, s, 111) <= ct_lr_at(&c, s - 1, 111));
    sweep(&c, 111);
    ct_optim_config_t odd = sched(3e-3f, 0.05f, 7, CT_DECAY_COSINE);
    sweep(&odd, 53);
}

static void test_linear(void)
{
    ct_optim_config_t c = sched(1e-3f, 0.2f, 4, CT_DECAY_LINEAR);
    /* decay over steps 4..24 (span 20): 1e-3 down to 2e-4 in steps of 4e-5 */
    CHECK_LR(&c, 4, 25, 1e-3);
    CHECK_LR(&c, 9, 25, 1e-3 - 5 * 4e-5);
    CHECK_LR(&c, 14, 25, 6e-4);
    CHECK_LR(&c, 24, 25, 2e-4);
    sweep(&c, 25);
}

static void test_constant(void)
{
    ct_optim_config_t c = sched(5e-4f, 0.1f, 3, CT_DECAY_CONSTANT);
    CHECK_LR(&c, 0, 20, 5e-4 / 3);
    CHECK_LR(&c, 2, 20, 5e-4);
    CHECK_LR(&c, 3, 20, 5e-4);
    CHECK_LR(&c, 19, 20, 5e-4); /* no floor: constant stays at the peak */
    CHECK_LR(&c, 500, 20, 5e-4);
    sweep(&c, 20);
}

/* After warmup the schedule never goes below lr * min_lr_frac, and with a
 * floor of 0 it ends at exactly 0. */
static void test_floor(void)
{
    for (int decay = CT_DECAY_COSINE; decay <= CT_DECAY_LINEAR; decay++) {
        ct_optim_config_t c = sched(2e-3f, 0.25f, 5, (ct_decay_t)decay);
        for (int s = 5; s < 100; s++)
            CHECK_MSG(ct_lr_at(&c, s, 60) >= 5e-4f * (1 - 1e-6f), "decay %d step %d: %.9g below "
                      "the floor", decay, s, ct_lr_at(&c, s, 60));
        CHECK_LR(&c, 59, 60, 5e-4);
        ct_optim_config_t z = sched(2e-3f, 0.0f, 5, (ct_decay_t)decay);
        CHECK(ct_lr_at(&z, 59, 60) == 0.0f);
        sweep(&z, 60);
    }
}

/* Runs no longer than the warmup stay in warmup; the step after the warmup
 * of such a run (total - 1 - warmup <= 0) is at the floor. */
static void test_short_runs(void)
{
    ct_optim_config_t c = sched(1e-3f, 0.1f, 10, CT_DECAY_COSINE);
    for (int s = 0; s < 5; s++) CHECK_LR(&c, s, 5, 1e-3 * (s + 1) / 10);
    CHECK_LR(&c, 4, 5, 5e-4); /* total < warmup: the run ends half way up */
    CHECK_LR(&c, 9, 10, 1e-3); /* total == warmup: ends at the peak */
    CHECK_LR(&c, 10, 10, 1e-4);
    CHECK_LR(&c, 10, 11, 1e-4); /* total == warmup + 1: span 0, the one decay step is the floor */
    CHECK_LR(&c, 10, 1, 1e-4);
    sweep(&c, 5);
    sweep(&c, 10);
    sweep(&c, 11);
    sweep(&c, 12);
    ct_optim_config_t l = sched(1e-3f, 0.1f, 10, CT_DECAY_LINEAR);
    CHECK_LR(&l, 10, 11, 1e-4);
}

/* Steps past the end (a run extended by resuming with more steps than its
 * schedule was made for) stay at the floor instead of rising again. */
static void test_past_end(void)
{
    for (int decay = CT_DECAY_COSINE; decay <= CT_DECAY_LINEAR; decay++) {
        ct_optim_config_t c = sched(1e-3f, 0.1f, 2, (ct_decay_t)decay);
        CHECK_LR(&c, 21, 22, 1e-4);
        CHECK_LR(&c, 22, 22, 1e-4);
        CHECK_LR(&c, 40, 22, 1e-4); /* cosine would be back at the peak here */
        CHECK_LR(&c, 1000000, 22, 1e-4);
    }
}

int main(void)
{
    test_warmup();
    test_cosine();
    test_linear();
    test_constant();
    test_floor();
    test_short_runs();
    test_past_end();
    return ct_test_finish("test_lr_schedule");
}
