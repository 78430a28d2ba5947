/* RMSNorm over the last dimension (Llama), forward and backward:
 * out = x * rstd * w with rstd = 1/sqrt(mean(x^2) + eps).
 *
 * As in layernorm.c, rows are independent and split across OpenMP threads;
 * the backward computes dinp row by row and dweight in a second pass over
 * blocks of channels, each summed over rows in order, so the result does
 * not depend on the thread count. The *_ref versions are plain loops. */
#include <math.h>

#include "kernels/kernels.h"

#define CT_RMS_CBLOCK 64

void ct_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                        int C, float eps)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        float *o = out + (long)n * C;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float s = 1.0f / sqrtf(ss / (float)C + eps);
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = x[c] * s * weight[c];
        rstd[n] = s;
    }
}

/* With s = rstd and g = w * dout:
 *   dx_j = s * g_j - x_j * s^3 * mean(g * x),  dw_j = sum_rows dout_j * x_j * s. */
void ct_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                         const float *weight, const float *rstd, int N, int C)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        const float *d = dout + (long)n * C;
        float *di = dinp + (long)n * C;
        float s = rstd[n], gx = 0.0f;
#pragma omp simd reduction(+ : gx)
        for (int c = 0; c < C; c++) gx += weight[c] * d[c] * x[c];
        float k = s * s * s * gx / (float)C;
#pragma omp simd
        for (int c = 0; c < C; c++) di[c] += s * weight[c] * d[c] - k * x[c];
    }

    int nblk = (C + CT_RMS_CBLOCK - 1) / CT_RMS_CBLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * CT_RMS_CBLOCK;
        int c1 = c0 + CT_RMS_CBLOCK < C ? c0 + CT_RMS_CBLOCK : C;
        for (int n = 0; n < N; n++) {
            const float *x = inp + (long)n * C;
            const float *d = dout + (long)n * C;
            float s = rstd[n];
#pragma omp simd
            for (int c = c0; c < c1; c++) dweight[c] += x[c] * s * d[c];
        }
    }
}

/* ---- plain-loop references (double accumulation) -------------------------- */

void ct_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight, int N,
                            int C, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        double s = 1.0 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++) out[(long)n * C + c] = (float)(x[c] * s * weight[c]);
        rstd[n] = (float)s;
    }
}

void ct_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp,
                             const float *weight, const float *rstd, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        const float *d = dout + (long)n * C;
        double s = rstd[n], gx = 0.0;
        for (int c = 0; c < C; c++) gx += (double)weight[c] * d[c] * x[c];
        for (int c = 0; c < C; c++) {
            dinp[(long)n * C + c] += (float)(s * weight[c] * d[c] - s * s * s * gx / C * x[c]);
            dweight[c] += (float)(x[c] * s * d[c]);
        }
    }
}
