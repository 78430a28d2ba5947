/* Fused softmax + cross-entropy over the first V of Vp logit columns.
 *
 * The forward keeps only the per-row loss and log-sum-exp; the backward
 * recomputes the probabilities from the lse and overwrites the logits with
 * dlogits in place, zeroing the padding columns. Rows are split across
 * OpenMP threads; exp is the vectorized one from cpu_impl.h (within 1.5 ulp
 * of expf). No label smoothing, no ignore index: every target counts. */
#include <math.h>

#include "kernels/kernels.h"

#include "kernels/cpu/cpu_impl.h"

/* Log-sum-exp of x[0, V). */
static float row_lse(const float *x, int V)
{
    int V8 = V / 8 * 8, tail = V - V8;
    ct__f8 vmax = ct__f8_set1(-INFINITY);
    for (int j = 0; j < V8; j += 8) vmax = ct__f8_max(vmax, ct__f8_load(x + j));
    if (tail) vmax = ct__f8_max(vmax, ct__f8_load_part(x + V8, tail, -INFINITY));
    float mx = ct__f8_hmax(vmax);
    ct__f8 vmx = ct__f8_set1(mx), vsum = ct__f8_set1(0.0f);
    for (int j = 0; j < V8; j += 8) vsum += ct__exp8(ct__f8_load(x + j) - vmx);
    if (tail) {
        ct__f8 e = ct__exp8(ct__f8_load_part(x + V8, tail, 0.0f) - vmx);
        vsum += ct__f8_select(ct__i8_lanes_below(tail), e, ct__f8_set1(0.0f));
    }
    return mx + logf(ct__f8_hsum(vsum));
}

void ct_xent_forward(float *losses, float *lse, const float *logits, const int32_t *targets,
                     int N, int V, int Vp)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (long)n * Vp;
        float l = row_lse(x, V);
        lse[n] = l;
        losses[n] = l - x[targets[n]];
    }
}

void ct_xent_backward(float *logits_to_dlogits, const float *lse, const int32_t *targets,
                      const float *dloss, int N, int V, int Vp)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *x = logits_to_dlogits + (long)n * Vp;
        float dl = dloss[n];
        int V8 = V / 8 * 8, tail = V - V8;
        ct__f8 vl = ct__f8_set1(lse[n]);
        for (int j = 0; j < V8; j += 8) ct__f8_store(x + j, ct__exp8(ct__f8_load(x + j) - vl) * dl);
        if (tail) {
            ct__f8 e = ct__exp8(ct__f8_load_part(x + V8, tail, 0.0f) - vl) * dl;
            ct__f8_store_part(x + V8, e, tail);
        }
        x[targets[n]] -= dl;
        for (int j = V; j < Vp; j++) x[j] = 0.0f;
    }
}

void ct_xent_forward_ref(float *losses, float *lse, const float *logits, const int32_t *targets,
                         int N, int V, int Vp)
{
    for (int n = 0; n < N; n++) {
        const float *x = logits + (long)n * Vp;
        float mx = -INFINITY;
        for (int j = 0; j < V; j++)
            if (x[j] > mx) mx = x[j];
        float sum = 0.0f;
        for (int j = 0; j < V; j++) sum += expf(x[j] - mx);
        lse[n] = mx + logf(sum);
        losses[n] = lse[n] - x[targets[n]];
    }
}
