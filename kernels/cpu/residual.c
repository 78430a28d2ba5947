/* Residual connection: out = a + b, and its backward, which adds dout into
 * both input gradients. Elementwise, OpenMP + simd; nothing else. */
#include "kernels/kernels.h"

void ct_residual_forward(float *out, const float *a, const float *b, long n)
{
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void ct_residual_backward(float *da, float *db, const float *dout, long n)
{
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}
