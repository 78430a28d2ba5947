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

/* Max of x[0, V); -inf for V = 0. */
static float row_max(const float *x, int V)
{
    int V8 = V / 8 * 8, tail = V - V8;
    ct__f8 vmax = ct__f8_set1(-INFINITY);
    for (int j = 0; j < V8; j += 8) vmax = ct__f8_max(vmax, ct__f8_load(x + j));
    if (tail) vmax = ct__f8_max(vmax, ct__f8_load_part(x + V8, tail, -INFINITY));
    return ct__f8_hmax(vmax);
}

/* Sum of exp(x[j] - mx) over [0, V). */
static float row_sumexp(const float *x, int V, float mx)
{
    int V8 = V / 8 * 8, tail = V - V8;
    ct__f8 vmx = ct__f8_set1(mx), vsum = ct__f8_set1(0.0f);
    for (int j = 0; j < V8; j += 8) vsum += ct__exp8(ct__f8_load(x + j) - vmx);
    if (tail) {
        ct__f8 e = ct__exp8(ct__f8_load_part(x + V8, tail, 0.0f) - vmx);
        vsum += ct__f8_select(ct__i8_lanes_below(tail), e, ct__f8_set1(0.0f));
    }
    return ct__f8_hsum(vsum);
}

/* Log-sum-exp of x[0, V). */
static float row_lse(const float *x, int V)
{
    float mx = row_max(x, V);
    return mx + logf(row_sumexp(x, V, mx));
}

void ct_xent_partial_max(float *rowmax, const float *logits, int N, int Vl, int Vpl)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) rowmax[n] = row_max(logits + (long)n * Vpl, Vl);
}

void ct_xent_partial_sumexp(float *sumexp, const float *logits, const float *rowmax, int N,
                            int Vl, int Vpl)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) sumexp[n] = row_sumexp(logits + (long)n * Vpl, Vl, rowmax[n]);
}

void ct_xent_partial_target(float *tlogit, const float *logits, const int32_t *targets, int N,
                            int v_start, int Vl, int Vpl)
{
    for (int n = 0; n < N; n++) {
        int v = targets[n] - v_start;
        tlogit[n] = v >= 0 && v < Vl ? logits[(long)n * Vpl + v] : 0.0f;
    }
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
    ct_xent_backward_vp(logits_to_dlogits, lse, targets, dloss, N, 0, V, Vp);
}

void ct_xent_backward_vp(float *logits_to_dlogits, const float *lse, const int32_t *targets,
                         const float *dloss, int N, int v_start, int V, int Vp)
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
        int t = targets[n] - v_start;
        if (t >= 0 && t < V) x[t] -= dl;
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

void ct_xent_vp_stats(float *stats, const float *logits, const int32_t *targets, int N,
                      int v_start, int Vl, int Vpl)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (long)n * Vpl;
        float mx = -INFINITY, sum = 0.0f;
        for (int j = 0; j < Vl; j++)
            if (x[j] > mx) mx = x[j];
        for (int j = 0; j < Vl; j++) sum += expf(x[j] - mx);
        int t = targets[n] - v_start;
        stats[(long)n * 3 + 0] = mx;
        stats[(long)n * 3 + 1] = sum;
        stats[(long)n * 3 + 2] = t >= 0 && t < Vl ? x[t] : 0.0f;
    }
}

void ct_xent_vp_finish(float *losses, float *lse, const float *all_stats, int N, int tp)
{
    for (int n = 0; n < N; n++) {
        float mx = -INFINITY, sum = 0.0f, tl = 0.0f;
        for (int r = 0; r < tp; r++) mx = fmaxf(mx, all_stats[((long)r * N + n) * 3]);
        for (int r = 0; r < tp; r++) {
            const float *st = all_stats + ((long)r * N + n) * 3;
            sum += st[0] > -INFINITY ? st[1] * expf(st[0] - mx) : st[1];
            tl += st[2];
        }
        lse[n] = mx + logf(sum);
        losses[n] = lse[n] - tl;
    }
}
