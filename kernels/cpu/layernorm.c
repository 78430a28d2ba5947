/* LayerNorm over the last dimension (eps 1e-5), forward and backward.
 *
 * Rows are independent and split across OpenMP threads. In the backward,
 * dinp is computed row by row; dweight and dbias, which reduce over rows,
 * are computed in a second pass parallelized over blocks of channels, each
 * summed over rows in order, so they are deterministic and independent of
 * the thread count. The variance is the biased (1/C) one, as in GPT-2. */
#include <math.h>

#include "kernels/kernels.h"

#define CT_LN_EPS 1e-5f
#define CT_LN_CBLOCK 64

void ct_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *weight, const float *bias, int N, int C)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        float *o = out + (long)n * C;
        float m = 0.0f;
#pragma omp simd reduction(+ : m)
        for (int c = 0; c < C; c++) m += x[c];
        m /= (float)C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            v += d * d;
        }
        v /= (float)C;
        float s = 1.0f / sqrtf(v + CT_LN_EPS);
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

void ct_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, const float *mean,
                           const float *rstd, int N, int C)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        const float *d = dout + (long)n * C;
        float *di = dinp + (long)n * C;
        float m = mean[n], s = rstd[n];
        float dn_mean = 0.0f, dn_norm_mean = 0.0f;
#pragma omp simd reduction(+ : dn_mean, dn_norm_mean)
        for (int c = 0; c < C; c++) {
            float dn = weight[c] * d[c];
            dn_mean += dn;
            dn_norm_mean += dn * (x[c] - m) * s;
        }
        dn_mean /= (float)C;
        dn_norm_mean /= (float)C;
#pragma omp simd
        for (int c = 0; c < C; c++) {
            float norm = (x[c] - m) * s;
            di[c] += (weight[c] * d[c] - dn_mean - norm * dn_norm_mean) * s;
        }
    }

    int nblk = (C + CT_LN_CBLOCK - 1) / CT_LN_CBLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * CT_LN_CBLOCK;
        int c1 = c0 + CT_LN_CBLOCK < C ? c0 + CT_LN_CBLOCK : C;
        for (int n = 0; n < N; n++) {
            const float *x = inp + (long)n * C;
            const float *d = dout + (long)n * C;
            float m = mean[n], s = rstd[n];
#pragma omp simd
            for (int c = c0; c < c1; c++) {
                dweight[c] += (x[c] - m) * s * d[c];
                dbias[c] += d[c];
            }
        }
    }
}
