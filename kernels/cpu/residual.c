/* Residual connection: out = a + b, and its backward, which adds dout into
 * both input gradients, and a bias add (the CPU twin of the CUDA path's
 * tensor-parallel bias rounding). Elementwise, OpenMP + simd. */
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

void ct_add_bias(float *out, const float *inp, const float *bias, int N, int C)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            out[(long)n * C + c] = inp[(long)n * C + c] + (bias ? bias[c] : 0.0f);
}
