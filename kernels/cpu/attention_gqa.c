/* Causal grouped-query self-attention (Llama, Mistral, Qwen2): NH query
 * heads read NKV <= NH key/value heads, query head h reading key/value
 * head (q_head0 + h) / group. q, k and v are separate buffers (the
 * projections are separate tensors), read in place through their row
 * strides: a key/value head is shared by its query heads, never copied.
 *
 * The fast versions follow attention.c: per (batch, query head), blocks of
 * query rows [r0, r1) see keys [0, r1) only, so the sgemms skip most of the
 * masked triangle at large T; each sgemm runs single-threaded inside the
 * OpenMP loop. The forward is parallel over (batch, query head). The
 * backward is parallel over (batch, key/value head): the query heads of a
 * group add into the same dk and dv rows, so one thread owns a group and
 * adds its heads in order, and the result does not depend on the thread
 * count. The *_ref versions are plain loops. Neither does dropout. */
#include <cblas.h>
#include <math.h>

#include "core/log.h"
#include "kernels/kernels.h"

#include "kernels/cpu/cpu_impl.h"

#define CT_GQA_ROW_BLOCK 128

static void gqa_check(int NH, int NKV, int group, int q_head0)
{
    CT_ASSERT(NH >= 1 && NKV >= 1 && group >= 1 && q_head0 >= 0);
    CT_ASSERT((q_head0 + NH - 1) / group < NKV);
}

/* One (batch, query head): q, out with row stride ldq; k, v with ldk. */
static void gqa_forward_head(float *out, float *att, const float *q, const float *k,
                             const float *v, int T, int HS, int ldq, int ldk)
{
    const float scale = 1.0f / sqrtf((float)HS);
    for (int r0 = 0; r0 < T; r0 += CT_GQA_ROW_BLOCK) {
        int r1 = r0 + CT_GQA_ROW_BLOCK < T ? r0 + CT_GQA_ROW_BLOCK : T;
        float *a = att + (long)r0 * T;
        /* S[r0:r1, 0:r1] = scale * Q[r0:r1] K[0:r1]^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, HS, scale,
                    q + (long)r0 * ldq, ldq, k, ldk, 0.0f, a, T);
        ct__causal_softmax_rows(att, T, r0, r1);
        /* out[r0:r1] = P[r0:r1, 0:r1] V[0:r1] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, HS, r1, 1.0f, a, T, v,
                    ldk, 0.0f, out + (long)r0 * ldq, ldq);
    }
}

void ct_gqa_forward(float *out, float *att, const float *q, const float *k, const float *v, int B,
                    int T, int NH, int NKV, int HS, int group, int q_head0)
{
    gqa_check(NH, NKV, group, q_head0);
    const int ldq = NH * HS, ldk = NKV * HS;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH, kv = (q_head0 + h) / group;
        long qo = (long)b * T * ldq + (long)h * HS, ko = (long)b * T * ldk + (long)kv * HS;
        gqa_forward_head(out + qo, att + (long)bh * T * T, q + qo, k + ko, v + ko, T, HS, ldq,
                         ldk);
    }
}

/* One (batch, query head) of the backward: dq of the head, dk and dv of its
 * key/value head (+=); ds is the head's (T,T) scratch. */
static void gqa_backward_head(float *dq, float *dk, float *dv, const float *dout, const float *q,
                              const float *k, const float *v, const float *att, float *ds, int T,
                              int HS, int ldq, int ldk)
{
    const float scale = 1.0f / sqrtf((float)HS);
    for (int r0 = 0; r0 < T; r0 += CT_GQA_ROW_BLOCK) {
        int r1 = r0 + CT_GQA_ROW_BLOCK < T ? r0 + CT_GQA_ROW_BLOCK : T;
        int rows = r1 - r0;
        const float *p = att + (long)r0 * T;
        const float *dob = dout + (long)r0 * ldq;
        float *dsb = ds + (long)r0 * T;
        /* dP[r0:r1, 0:r1] = dO[r0:r1] V[0:r1]^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1, HS, 1.0f, dob, ldq, v, ldk,
                    0.0f, dsb, T);
        /* dV[0:r1] += P[r0:r1, 0:r1]^T dO[r0:r1] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, HS, rows, 1.0f, p, T, dob, ldq,
                    1.0f, dv, ldk);
        /* dS = P * (dP - rowsum(P * dP)) * scale; zero right of the diagonal */
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
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, r1, 1.0f, dsb, T, k, ldk,
                    1.0f, dq + (long)r0 * ldq, ldq);
        /* dK[0:r1] += dS[r0:r1, 0:r1]^T Q[r0:r1] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, HS, rows, 1.0f, dsb, T,
                    q + (long)r0 * ldq, ldq, 1.0f, dk, ldk);
    }
}

void ct_gqa_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                     const float *k, const float *v, const float *att, float *scratch, int B,
                     int T, int NH, int NKV, int HS, int group, int q_head0)
{
    gqa_check(NH, NKV, group, q_head0);
    const int ldq = NH * HS, ldk = NKV * HS;
#pragma omp parallel for schedule(static)
    for (int bk = 0; bk < B * NKV; bk++) {
        int b = bk / NKV, kv = bk % NKV;
        /* the query heads reading kv: (q_head0 + h) / group == kv */
        int h0 = kv * group - q_head0, h1 = h0 + group;
        if (h0 < 0) h0 = 0;
        if (h1 > NH) h1 = NH;
        long ko = (long)b * T * ldk + (long)kv * HS;
        for (int h = h0; h < h1; h++) {
            long qo = (long)b * T * ldq + (long)h * HS, bh = (long)b * NH + h;
            gqa_backward_head(dq + qo, dk + ko, dv + ko, dout + qo, q + qo, k + ko, v + ko,
                              att + bh * T * T, scratch + bh * T * T, T, HS, ldq, ldk);
        }
    }
}

/* ---- plain-loop references ------------------------------------------------ */

void ct_gqa_forward_ref(float *out, float *att, const float *q, const float *k, const float *v,
                        int B, int T, int NH, int NKV, int HS, int group, int q_head0)
{
    gqa_check(NH, NKV, group, q_head0);
    const long ldq = (long)NH * HS, ldk = (long)NKV * HS;
    const float scale = 1.0f / sqrtf((float)HS);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const int kv = (q_head0 + h) / group;
            for (int t = 0; t < T; t++) {
                const float *qt = q + ((long)b * T + t) * ldq + h * HS;
                float *a = att + (((long)b * NH + h) * T + t) * T;
                float mx = -INFINITY;
                for (int j = 0; j <= t; j++) {
                    const float *kj = k + ((long)b * T + j) * ldk + kv * HS;
                    float s = 0.0f;
                    for (int i = 0; i < HS; i++) s += qt[i] * kj[i];
                    a[j] = s * scale;
                    if (a[j] > mx) mx = a[j];
                }
                float sum = 0.0f;
                for (int j = 0; j <= t; j++) {
                    a[j] = expf(a[j] - mx);
                    sum += a[j];
                }
                for (int j = 0; j <= t; j++) a[j] /= sum;
                for (int j = t + 1; j < T; j++) a[j] = 0.0f;
                float *o = out + ((long)b * T + t) * ldq + h * HS;
                for (int i = 0; i < HS; i++) o[i] = 0.0f;
                for (int j = 0; j <= t; j++) {
                    const float *vj = v + ((long)b * T + j) * ldk + kv * HS;
                    for (int i = 0; i < HS; i++) o[i] += a[j] * vj[i];
                }
            }
        }
    }
}

void ct_gqa_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                         const float *k, const float *v, const float *att, float *scratch, int B,
                         int T, int NH, int NKV, int HS, int group, int q_head0)
{
    gqa_check(NH, NKV, group, q_head0);
    const long ldq = (long)NH * HS, ldk = (long)NKV * HS;
    const float scale = 1.0f / sqrtf((float)HS);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const int kv = (q_head0 + h) / group;
            for (int t = 0; t < T; t++) {
                const float *a = att + (((long)b * NH + h) * T + t) * T;
                float *dp = scratch + (((long)b * NH + h) * T + t) * T;
                const float *dO = dout + ((long)b * T + t) * ldq + h * HS;
                const float *qt = q + ((long)b * T + t) * ldq + h * HS;
                float *dqt = dq + ((long)b * T + t) * ldq + h * HS;
                for (int j = 0; j <= t; j++) {
                    const float *vj = v + ((long)b * T + j) * ldk + kv * HS;
                    float *dvj = dv + ((long)b * T + j) * ldk + kv * HS;
                    float s = 0.0f;
                    for (int i = 0; i < HS; i++) {
                        s += dO[i] * vj[i];
                        dvj[i] += a[j] * dO[i];
                    }
                    dp[j] = s;
                }
                float dot = 0.0f;
                for (int j = 0; j <= t; j++) dot += a[j] * dp[j];
                for (int j = 0; j <= t; j++) {
                    float ds = a[j] * (dp[j] - dot) * scale;
                    const float *kj = k + ((long)b * T + j) * ldk + kv * HS;
                    float *dkj = dk + ((long)b * T + j) * ldk + kv * HS;
                    for (int i = 0; i < HS; i++) {
                        dqt[i] += ds * kj[i];
                        dkj[i] += ds * qt[i];
                    }
                }
            }
        }
    }
}
