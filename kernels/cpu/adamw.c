/* AdamW on a contiguous slice (llm.c's form: decoupled weight decay inside
 * the learning-rate product), plus the sum of squares and scaling used for
 * gradient-norm clipping.
 *
 * The fast update is an OpenMP + simd loop with the bias corrections
 * computed once; it performs the same float operations per element as the
 * reference, so the two agree bit for bit when the compiler contracts them
 * alike. ct_sumsq accumulates in double over a fixed number of chunks and
 * adds the chunk sums in order, so it is deterministic for any thread
 * count. No AMSGrad, no per-tensor learning rates: callers slice. */
#include <math.h>

#include "kernels/kernels.h"

#define CT_SUMSQ_CHUNKS 64

void ct_adamw_update(float *params, const float *grads, float *m, float *v, long n, float lr,
                     float beta1, float beta2, float eps, float weight_decay, int t)
{
    float bc1 = 1.0f - powf(beta1, (float)t);
    float bc2 = 1.0f - powf(beta2, (float)t);
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) {
        float g = grads[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        float mhat = mi / bc1;
        float vhat = vi / bc2;
        m[i] = mi;
        v[i] = vi;
        params[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * params[i]);
    }
}

void ct_adamw_update_ref(float *params, const float *grads, float *m, float *v, long n,
                         float lr, float beta1, float beta2, float eps, float weight_decay, int t)
{
    for (long i = 0; i < n; i++) {
        float g = grads[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        float mhat = mi / (1.0f - powf(beta1, (float)t));
        float vhat = vi / (1.0f - powf(beta2, (float)t));
        m[i] = mi;
        v[i] = vi;
        params[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * params[i]);
    }
}

double ct_sumsq(const float *x, long n)
{
    double part[CT_SUMSQ_CHUNKS];
    long chunk = (n + CT_SUMSQ_CHUNKS - 1) / CT_SUMSQ_CHUNKS;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < CT_SUMSQ_CHUNKS; c++) {
        long lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (long i = lo; i < hi; i++) s += (double)x[i] * (double)x[i];
        part[c] = s;
    }
    double total = 0.0;
    for (int c = 0; c < CT_SUMSQ_CHUNKS; c++) total += part[c];
    return total;
}

void ct_scale(float *x, float s, long n)
{
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) x[i] *= s;
}
