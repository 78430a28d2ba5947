/* Causal multi-head self-attention on llm.c's packed qkv layout, forward and
 * backward.
 *
 * The fast versions work per (batch, head) directly on the strided q, k, v
 * columns of qkv (lda 3C, no copies), in blocks of query rows: a block of
 * rows [r0, r1) only sees keys [0, r1), so the sgemms skip most of the
 * masked upper triangle when T is large. Heads are spread over OpenMP
 * threads and each sgemm inside runs single-threaded; that measured faster
 * than looping over heads with OpenBLAS-threaded sgemms at both small and
 * large T. The *_ref versions are plain loops. Neither does dropout. */
#include <cblas.h>
#include <math.h>

#include "kernels/kernels.h"

#include "kernels/cpu/cpu_impl.h"

/* Query rows per block; see the note at the top. */
#define CT_ATT_ROW_BLOCK 128

long ct_attention_scratch_floats(int B, int T, int NH) { return (long)B * NH * T * T; }

static void attention_forward_head(float *out, float *att, const float *qkv, int T, int NH,
                                   int HS)
{
    int C = NH * HS, C3 = 3 * C;
    const float *q = qkv, *k = qkv + C, *v = qkv + 2 * C;
    float scale = 1.0f / sqrtf((float)HS);
    for (int r0 = 0; r0 < T; r0 += CT_ATT_ROW_BLOCK) {
        int r1 = r0 + CT_ATT_ROW_BLOCK < T ? r0 + CT_ATT_ROW_BLOCK : T;
        int rows = r1 - r0;
        float *a = att + (long)r0 * T;
        /* S[r0:r1, 0:r1] = scale * Q[r0:r1] K[0:r1]^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1, HS, scale,
                    q + (long)r0 * C3, C3, k, C3, 0.0f, a, T);
        ct__causal_softmax_rows(att, T, r0, r1);
        /* out[r0:r1] = P[r0:r1, 0:r1] V[0:r1] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, r1, 1.0f, a, T, v, C3,
                    0.0f, out + (long)r0 * C, C);
    }
}

void ct_attention_forward(float *out, float *att, const float *qkv, int B, int T, int NH, int HS)
{
    int C = NH * HS;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        attention_forward_head(out + (long)b * T * C + h * HS, att + (long)bh * T * T,
                               qkv + (long)b * T * 3 * C + h * HS, T, NH, HS);
    }
}

static void attention_backward_head(float *dqkv, const float *dout, const float *qkv,
                                    const float *att, float *ds, int T, int NH, int HS)
{
    int C = NH * HS, C3 = 3 * C;
    const float *q = qkv, *k = qkv + C, *v = qkv + 2 * C;
    float *dq = dqkv, *dk = dqkv + C, *dv = dqkv + 2 * C;
    float scale = 1.0f / sqrtf((float)HS);
    for (int r0 = 0; r0 < T; r0 += CT_ATT_ROW_BLOCK) {
        int r1 = r0 + CT_ATT_ROW_BLOCK < T ? r0 + CT_ATT_ROW_BLOCK : T;
        int rows = r1 - r0;
        const float *p = att + (long)r0 * T;
        const float *dob = dout + (long)r0 * C;
        float *dsb = ds + (long)r0 * T;
        /* dP[r0:r1, 0:r1] = dO[r0:r1] V[0:r1]^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1, HS, 1.0f, dob, C, v, C3,
                    0.0f, dsb, T);
        /* dV[0:r1] += P[r0:r1, 0:r1]^T dO[r0:r1] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, HS, rows, 1.0f, p, T, dob, C,
                    1.0f, dv, C3);
        /* dS = P * (dP - rowsum(P * dP)) * scale; zero right of the diagonal. */
        for (int t = r0; t < r1; t++) {
            const float *pr = att + (long)t * T;
            float *dr = ds + (long)t * T;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int j = 0; j <= t; j++) dot += pr[j] * dr[j];
#pragma omp simd
            for (int j = 0; j <= t; j++) dr[j] = pr[j] * (dr[j] - dot) * scale;
            for (int j = t + 1; j < r1; j++) dr[j] = 0.0f;
        }
        /* dQ[r0:r1] += dS[r0:r1, 0:r1] K[0:r1] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, r1, 1.0f, dsb, T, k, C3,
                    1.0f, dq + (long)r0 * C3, C3);
        /* dK[0:r1] += dS[r0:r1, 0:r1]^T Q[r0:r1] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, HS, rows, 1.0f, dsb, T,
                    q + (long)r0 * C3, C3, 1.0f, dk, C3);
    }
}

void ct_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                           float *scratch, int B, int T, int NH, int HS)
{
    int C = NH * HS;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        long qoff = (long)b * T * 3 * C + h * HS;
        attention_backward_head(dqkv + qoff, dout + (long)b * T * C + h * HS, qkv + qoff,
                                att + (long)bh * T * T, scratch + (long)bh * T * T, T, NH, HS);
    }
}

/* ---- plain-loop references ---------------------------------------------- */

void ct_attention_forward_ref(float *out, float *att, const float *qkv, int B, int T, int NH,
                              int HS)
{
    int C = NH * HS, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((long)b * T + t) * C3 + h * HS;
                float *a = att + (((long)b * NH + h) * T + t) * T;
                float mx = -INFINITY;
                for (int j = 0; j <= t; j++) {
                    const float *k = qkv + ((long)b * T + j) * C3 + C + h * HS;
                    float s = 0.0f;
                    for (int i = 0; i < HS; i++) s += q[i] * k[i];
                    s *= scale;
                    a[j] = s;
                    if (s > mx) mx = s;
                }
                float sum = 0.0f;
                for (int j = 0; j <= t; j++) {
                    a[j] = expf(a[j] - mx);
                    sum += a[j];
                }
                for (int j = 0; j <= t; j++) a[j] /= sum;
                for (int j = t + 1; j < T; j++) a[j] = 0.0f;
                float *o = out + ((long)b * T + t) * C + h * HS;
                for (int i = 0; i < HS; i++) o[i] = 0.0f;
                for (int j = 0; j <= t; j++) {
                    const float *v = qkv + ((long)b * T + j) * C3 + 2 * C + h * HS;
                    for (int i = 0; i < HS; i++) o[i] += a[j] * v[i];
                }
            }
        }
    }
}

void ct_attention_backward_ref(float *dqkv, const float *dout, const float *qkv,
                               const float *att, float *scratch, int B, int T, int NH, int HS)
{
    int C = NH * HS, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const float *a = att + (((long)b * NH + h) * T + t) * T;
                float *dp = scratch + (((long)b * NH + h) * T + t) * T;
                const float *dO = dout + ((long)b * T + t) * C + h * HS;
                const float *q = qkv + ((long)b * T + t) * C3 + h * HS;
                float *dq = dqkv + ((long)b * T + t) * C3 + h * HS;
                /* dP and dV */
                for (int j = 0; j <= t; j++) {
                    const float *v = qkv + ((long)b * T + j) * C3 + 2 * C + h * HS;
                    float *dv = dqkv + ((long)b * T + j) * C3 + 2 * C + h * HS;
                    float s = 0.0f;
                    for (int i = 0; i < HS; i++) {
                        s += dO[i] * v[i];
                        dv[i] += a[j] * dO[i];
                    }
                    dp[j] = s;
                }
                /* softmax backward, then dQ and dK */
                float dot = 0.0f;
                for (int j = 0; j <= t; j++) dot += a[j] * dp[j];
                for (int j = 0; j <= t; j++) {
                    float ds = a[j] * (dp[j] - dot) * scale;
                    const float *k = qkv + ((long)b * T + j) * C3 + C + h * HS;
                    float *dk = dqkv + ((long)b * T + j) * C3 + C + h * HS;
                    for (int i = 0; i < HS; i++) {
                        dq[i] += ds * k[i];
                        dk[i] += ds * q[i];
                    }
                }
            }
        }
    }
}
