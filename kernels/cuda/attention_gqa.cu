/* Causal grouped-query attention on bf16, plain CUDA (as
 * kernels/cpu/attention_gqa.c): q (B,T,NH*HS), k and v (B,T,NKV*HS) in
 * separate buffers; query head h reads key/value head (q_head0 + h) /
 * group, shared by the group's query heads, never copied. Scale
 * 1/sqrt(HS); out (B,T,NH*HS); stats (B,NH,T) the log-sum-exp of each query
 * row's scaled scores (the softmax is never stored).
 *
 * attention.cu's scheme: one warp per (b, h, row), lane l holding elements
 * d = l + 32*e of the head (HS <= 128), an online softmax in fp32 in the
 * forward; the backward is D_i = dout_i . out_i, then dq by query rows,
 * then dk and dv by key rows, where the warp of key/value head g's row j
 * sums over every query head of g's group in a fixed order: each gradient
 * element is written by one warp, deterministic, no atomics. The *_cudnn
 * entry points run cuDNN's SDPA on the same buffers (attention_cudnn.cu;
 * its stub in builds without cuDNN). ct_cuda_gqa_forward/backward run
 * attention_flash.cu's tensor-core kernels where they apply (head sizes
 * 16/32/64/128, aligned tensors) and these per-row kernels, the
 * reference, otherwise. */
#include <math.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/sizes.h"

#define CT__GQA_WARPS 8
#define CT__GQA_THREADS (32 * CT__GQA_WARPS)

struct ct__gqa_shape {
    int B, T, NH, NKV, HS, group, q_head0;
    float scale;
};

static __device__ __forceinline__ int ct__gqa_kv(const ct__gqa_shape &s, int h)
{
    return (s.q_head0 + h) / s.group;
}

template <int E>
static __global__ void __launch_bounds__(CT__GQA_THREADS)
    ct__gqa_fwd_kernel(ct_bf16_t *__restrict__ out, float *__restrict__ stats,
                       const ct_bf16_t *__restrict__ q, const ct_bf16_t *__restrict__ k,
                       const ct_bf16_t *__restrict__ v, ct__gqa_shape s)
{
    int lane = threadIdx.x % 32;
    long row = (long)blockIdx.x * CT__GQA_WARPS + threadIdx.x / 32;
    if (row >= (long)s.B * s.NH * s.T) return; /* warp-uniform */
    long bh = row / s.T;
    int t = s.T - 1 - (int)(row % s.T);
    int b = (int)(bh / s.NH), h = (int)(bh % s.NH), g = ct__gqa_kv(s, h);
    const int HS = s.HS;
    const long Cq = (long)s.NH * HS, Ck = (long)s.NKV * HS;
    const ct_bf16_t *qp = q + ((long)b * s.T + t) * Cq + (long)h * HS;
    const ct_bf16_t *kb = k + (long)b * s.T * Ck + (long)g * HS;
    const ct_bf16_t *vb = v + (long)b * s.T * Ck + (long)g * HS;
    float qr[E], acc[E];
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        qr[e] = d < HS ? ct__bf(qp[d]) : 0.0f;
        acc[e] = 0.0f;
    }
    float mx = -INFINITY, l = 0.0f;
    for (int j = 0; j <= t; j++) {
        const ct_bf16_t *kp = kb + (long)j * Ck, *vp = vb + (long)j * Ck;
        float sc = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) {
            int d = e * 32 + lane;
            if (d < HS) sc += qr[e] * ct__bf(kp[d]);
        }
        sc = ct__warp_sum(sc) * s.scale;
        float mnew = fmaxf(mx, sc);
        float corr = expf(mx - mnew);
        float p = expf(sc - mnew);
        l = l * corr + p;
#pragma unroll
        for (int e = 0; e < E; e++) {
            int d = e * 32 + lane;
            float vd = d < HS ? ct__bf(vp[d]) : 0.0f;
            acc[e] = acc[e] * corr + p * vd;
        }
        mx = mnew;
    }
    float inv = 1.0f / l;
    ct_bf16_t *op = out + ((long)b * s.T + t) * Cq + (long)h * HS;
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        if (d < HS) op[d] = ct__to_bf(acc[e] * inv);
    }
    if (lane == 0) stats[bh * s.T + t] = mx + logf(l);
}

/* D[(b,h), t] = dout . out over the head. */
template <int E>
static __global__ void __launch_bounds__(CT__GQA_THREADS)
    ct__gqa_bwd_d_kernel(float *__restrict__ D, const ct_bf16_t *__restrict__ dout,
                         const ct_bf16_t *__restrict__ out, ct__gqa_shape s)
{
    int lane = threadIdx.x % 32;
    long row = (long)blockIdx.x * CT__GQA_WARPS + threadIdx.x / 32;
    if (row >= (long)s.B * s.NH * s.T) return;
    long bh = row / s.T;
    int t = (int)(row % s.T);
    int b = (int)(bh / s.NH), h = (int)(bh % s.NH);
    long off = ((long)b * s.T + t) * s.NH * s.HS + (long)h * s.HS;
    float acc = 0.0f;
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        if (d < s.HS) acc += ct__bf(dout[off + d]) * ct__bf(out[off + d]);
    }
    acc = ct__warp_sum(acc);
    if (lane == 0) D[row] = acc;
}

/* dq_i = scale * sum_{j<=i} p_ij (dout_i . v_j - D_i) k_j, by query row. */
template <int E>
static __global__ void __launch_bounds__(CT__GQA_THREADS)
    ct__gqa_bwd_dq_kernel(ct_bf16_t *__restrict__ dq, const ct_bf16_t *__restrict__ dout,
                          const ct_bf16_t *__restrict__ q, const ct_bf16_t *__restrict__ k,
                          const ct_bf16_t *__restrict__ v, const float *__restrict__ stats,
                          const float *__restrict__ D, ct__gqa_shape s)
{
    int lane = threadIdx.x % 32;
    long row = (long)blockIdx.x * CT__GQA_WARPS + threadIdx.x / 32;
    if (row >= (long)s.B * s.NH * s.T) return;
    long bh = row / s.T;
    int i = s.T - 1 - (int)(row % s.T);
    int b = (int)(bh / s.NH), h = (int)(bh % s.NH), g = ct__gqa_kv(s, h);
    const int HS = s.HS;
    const long Cq = (long)s.NH * HS, Ck = (long)s.NKV * HS;
    const ct_bf16_t *qp = q + ((long)b * s.T + i) * Cq + (long)h * HS;
    const ct_bf16_t *dop = dout + ((long)b * s.T + i) * Cq + (long)h * HS;
    const ct_bf16_t *kb = k + (long)b * s.T * Ck + (long)g * HS;
    const ct_bf16_t *vb = v + (long)b * s.T * Ck + (long)g * HS;
    float qr[E], dO[E], acc[E];
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        qr[e] = d < HS ? ct__bf(qp[d]) : 0.0f;
        dO[e] = d < HS ? ct__bf(dop[d]) : 0.0f;
        acc[e] = 0.0f;
    }
    float lse = stats[bh * s.T + i], Di = D[bh * s.T + i];
    for (int j = 0; j <= i; j++) {
        const ct_bf16_t *kp = kb + (long)j * Ck, *vp = vb + (long)j * Ck;
        float kr[E], sc = 0.0f, dp = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) {
            int d = e * 32 + lane;
            kr[e] = d < HS ? ct__bf(kp[d]) : 0.0f;
            float vd = d < HS ? ct__bf(vp[d]) : 0.0f;
            sc += qr[e] * kr[e];
            dp += dO[e] * vd;
        }
        sc = ct__warp_sum(sc);
        dp = ct__warp_sum(dp);
        float p = expf(sc * s.scale - lse);
        float ds = p * (dp - Di);
#pragma unroll
        for (int e = 0; e < E; e++) acc[e] += ds * kr[e];
    }
    ct_bf16_t *dqp = dq + ((long)b * s.T + i) * Cq + (long)h * HS;
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        if (d < HS) dqp[d] = ct__to_bf(acc[e] * s.scale);
    }
}

/* dk_j and dv_j of key/value head g, by key row j: sums over the query
 * heads h of g's group (in order), then over i >= j:
 * dk_j = scale * sum p_ij (dout_i . v_j - D_i) q_i, dv_j = sum p_ij dout_i. */
template <int E>
static __global__ void __launch_bounds__(CT__GQA_THREADS)
    ct__gqa_bwd_dkdv_kernel(ct_bf16_t *__restrict__ dk, ct_bf16_t *__restrict__ dv,
                            float *__restrict__ dk32, float *__restrict__ dv32,
                            const ct_bf16_t *__restrict__ dout, const ct_bf16_t *__restrict__ q,
                            const ct_bf16_t *__restrict__ k, const ct_bf16_t *__restrict__ v,
                            const float *__restrict__ stats, const float *__restrict__ D,
                            ct__gqa_shape s)
{
    int lane = threadIdx.x % 32;
    long row = (long)blockIdx.x * CT__GQA_WARPS + threadIdx.x / 32;
    if (row >= (long)s.B * s.NKV * s.T) return;
    long bg = row / s.T;
    int j = (int)(row % s.T);
    int b = (int)(bg / s.NKV), g = (int)(bg % s.NKV);
    const int HS = s.HS;
    const long Cq = (long)s.NH * HS, Ck = (long)s.NKV * HS;
    const ct_bf16_t *kp = k + ((long)b * s.T + j) * Ck + (long)g * HS;
    const ct_bf16_t *vp = v + ((long)b * s.T + j) * Ck + (long)g * HS;
    float kr[E], vr[E], dkr[E], dvr[E];
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        kr[e] = d < HS ? ct__bf(kp[d]) : 0.0f;
        vr[e] = d < HS ? ct__bf(vp[d]) : 0.0f;
        dkr[e] = 0.0f;
        dvr[e] = 0.0f;
    }
    /* query heads h with (q_head0 + h) / group == g */
    int h0 = g * s.group - s.q_head0, h1 = h0 + s.group;
    if (h0 < 0) h0 = 0;
    if (h1 > s.NH) h1 = s.NH;
    for (int h = h0; h < h1; h++) {
        const ct_bf16_t *qb = q + (long)b * s.T * Cq + (long)h * HS;
        const ct_bf16_t *dob = dout + (long)b * s.T * Cq + (long)h * HS;
        const float *lse_row = stats + ((long)b * s.NH + h) * s.T;
        const float *D_row = D + ((long)b * s.NH + h) * s.T;
        for (int i = j; i < s.T; i++) {
            const ct_bf16_t *qp = qb + (long)i * Cq, *dop = dob + (long)i * Cq;
            float qr[E], dO[E], sc = 0.0f, dp = 0.0f;
#pragma unroll
            for (int e = 0; e < E; e++) {
                int d = e * 32 + lane;
                qr[e] = d < HS ? ct__bf(qp[d]) : 0.0f;
                dO[e] = d < HS ? ct__bf(dop[d]) : 0.0f;
                sc += qr[e] * kr[e];
                dp += dO[e] * vr[e];
            }
            sc = ct__warp_sum(sc);
            dp = ct__warp_sum(dp);
            float p = expf(sc * s.scale - lse_row[i]);
            float ds = p * (dp - D_row[i]);
#pragma unroll
            for (int e = 0; e < E; e++) {
                dkr[e] += ds * qr[e];
                dvr[e] += p * dO[e];
            }
        }
    }
    const long off = ((long)b * s.T + j) * Ck + (long)g * HS;
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        if (d >= HS) continue;
        if (dk32) { /* unrounded, for a sum over tensor-parallel ranks */
            dk32[off + d] = dkr[e] * s.scale;
            dv32[off + d] = dvr[e];
        } else {
            dk[off + d] = ct__to_bf(dkr[e] * s.scale);
            dv[off + d] = ct__to_bf(dvr[e]);
        }
    }
}

#define CT__GQA_DISPATCH(K, rows, st, ...)                                                    \
    do {                                                                                      \
        unsigned grid_ = (unsigned)ct__ceil_div((rows), CT__GQA_WARPS);                       \
        switch ((sh.HS + 31) / 32) {                                                          \
        case 1: K<1><<<grid_, CT__GQA_THREADS, 0, (st)>>>(__VA_ARGS__); break;                \
        case 2: K<2><<<grid_, CT__GQA_THREADS, 0, (st)>>>(__VA_ARGS__); break;                \
        case 3: K<3><<<grid_, CT__GQA_THREADS, 0, (st)>>>(__VA_ARGS__); break;                \
        default: K<4><<<grid_, CT__GQA_THREADS, 0, (st)>>>(__VA_ARGS__); break;               \
        }                                                                                     \
        CT_CHECK_LAUNCH();                                                                    \
    } while (0)

static ct__gqa_shape gqa_shape(int B, int T, int NH, int NKV, int HS, int group, int q_head0)
{
    CT_ASSERT(HS >= 1 && HS <= 128 && NKV >= 1 && group >= 1 && q_head0 >= 0);
    /* every query head reads a key/value head this rank holds */
    CT_ASSERT((q_head0 + NH - 1) / group < NKV);
    ct__gqa_shape s = {B, T, NH, NKV, HS, group, q_head0, 1.0f / sqrtf((float)HS)};
    return s;
}

void ct_cuda_gqa_forward_plain(ct_bf16_t *out, float *stats, const ct_bf16_t *q,
                               const ct_bf16_t *k, const ct_bf16_t *v, int B, int T, int NH,
                               int NKV, int HS, int group, int q_head0, void *stream)
{
    if (B <= 0 || T <= 0 || NH <= 0) return;
    ct__gqa_shape sh = gqa_shape(B, T, NH, NKV, HS, group, q_head0);
    CT__GQA_DISPATCH(ct__gqa_fwd_kernel, (long)B * NH * T, ct__stream(stream), out, stats, q, k,
                     v, sh);
}

static void gqa_backward(ct_bf16_t *dq, ct_bf16_t *dk, ct_bf16_t *dv, float *dk32, float *dv32,
                         const ct_bf16_t *dout, const ct_bf16_t *q, const ct_bf16_t *k,
                         const ct_bf16_t *v, const ct_bf16_t *out, const float *stats,
                         float *scratch, int B, int T, int NH, int NKV, int HS, int group,
                         int q_head0, void *stream)
{
    if (B <= 0 || T <= 0 || NH <= 0) return;
    CT_ASSERT(scratch != NULL);
    ct__gqa_shape sh = gqa_shape(B, T, NH, NKV, HS, group, q_head0);
    cudaStream_t st = ct__stream(stream);
    CT__GQA_DISPATCH(ct__gqa_bwd_d_kernel, (long)B * NH * T, st, scratch, dout, out, sh);
    CT__GQA_DISPATCH(ct__gqa_bwd_dq_kernel, (long)B * NH * T, st, dq, dout, q, k, v, stats,
                     scratch, sh);
    CT__GQA_DISPATCH(ct__gqa_bwd_dkdv_kernel, (long)B * NKV * T, st, dk, dv, dk32, dv32, dout, q,
                     k, v, stats, scratch, sh);
}

void ct_cuda_gqa_backward_plain(ct_bf16_t *dq, ct_bf16_t *dk, ct_bf16_t *dv,
                                const ct_bf16_t *dout, const ct_bf16_t *q, const ct_bf16_t *k,
                                const ct_bf16_t *v, const ct_bf16_t *out, const float *stats,
                                float *scratch, int B, int T, int NH, int NKV, int HS, int group,
                                int q_head0, void *stream)
{
    gqa_backward(dq, dk, dv, nullptr, nullptr, dout, q, k, v, out, stats, scratch, B, T, NH, NKV,
                 HS, group, q_head0, stream);
}

void ct_cuda_gqa_backward_plain_f32kv(ct_bf16_t *dq, float *dk, float *dv, const ct_bf16_t *dout,
                                      const ct_bf16_t *q, const ct_bf16_t *k, const ct_bf16_t *v,
                                      const ct_bf16_t *out, const float *stats, float *scratch,
                                      int B, int T, int NH, int NKV, int HS, int group,
                                      int q_head0, void *stream)
{
    CT_ASSERT(dk != NULL && dv != NULL);
    gqa_backward(dq, nullptr, nullptr, dk, dv, dout, q, k, v, out, stats, scratch, B, T, NH, NKV,
                 HS, group, q_head0, stream);
}

/* ---- dispatch: the flash kernels where they apply ---------------------- */

void ct_cuda_gqa_forward(ct_bf16_t *out, float *stats, const ct_bf16_t *q, const ct_bf16_t *k,
                         const ct_bf16_t *v, int B, int T, int NH, int NKV, int HS, int group,
                         int q_head0, void *stream)
{
    if (ct__use_flash(HS, out, q, k, v))
        ct_cuda_gqa_forward_flash(out, stats, q, k, v, B, T, NH, NKV, HS, group, q_head0, stream);
    else
        ct_cuda_gqa_forward_plain(out, stats, q, k, v, B, T, NH, NKV, HS, group, q_head0, stream);
}

void ct_cuda_gqa_backward(ct_bf16_t *dq, ct_bf16_t *dk, ct_bf16_t *dv, const ct_bf16_t *dout,
                          const ct_bf16_t *q, const ct_bf16_t *k, const ct_bf16_t *v,
                          const ct_bf16_t *out, const float *stats, float *scratch, int B, int T,
                          int NH, int NKV, int HS, int group, int q_head0, void *stream)
{
    if (ct__use_flash(HS, dq, dk, dv, dout, q, k, v, out))
        ct_cuda_gqa_backward_flash(dq, dk, dv, dout, q, k, v, out, stats, scratch, B, T, NH, NKV,
                                   HS, group, q_head0, stream);
    else
        ct_cuda_gqa_backward_plain(dq, dk, dv, dout, q, k, v, out, stats, scratch, B, T, NH, NKV,
                                   HS, group, q_head0, stream);
}

void ct_cuda_gqa_backward_f32kv(ct_bf16_t *dq, float *dk, float *dv, const ct_bf16_t *dout,
                                const ct_bf16_t *q, const ct_bf16_t *k, const ct_bf16_t *v,
                                const ct_bf16_t *out, const float *stats, float *scratch, int B,
                                int T, int NH, int NKV, int HS, int group, int q_head0,
                                void *stream)
{
    if (ct__use_flash(HS, dq, dk, dv, dout, q, k, v, out))
        ct_cuda_gqa_backward_flash_f32kv(dq, dk, dv, dout, q, k, v, out, stats, scratch, B, T,
                                         NH, NKV, HS, group, q_head0, stream);
    else
        ct_cuda_gqa_backward_plain_f32kv(dq, dk, dv, dout, q, k, v, out, stats, scratch, B, T,
                                         NH, NKV, HS, group, q_head0, stream);
}

/* ---- cuDNN ----------------------------------------------------------------- */

ct_status_t ct_cuda_gqa_prepare_cudnn(ct_cuda_t *ctx, int B, int T, int NH, int NKV, int HS)
{
    if (ctx->attn != CT_ATTN_CUDNN || !ctx->cudnn) return CT_ERR_UNSUPPORTED;
    return ct__cudnn_gqa_prepare(ctx, B, T, NH, NKV, HS);
}

void ct_cuda_gqa_forward_cudnn(ct_cuda_t *ctx, ct_bf16_t *out, float *stats, const ct_bf16_t *q,
                               const ct_bf16_t *k, const ct_bf16_t *v, int B, int T, int NH,
                               int NKV, int HS, void *stream)
{
    ct__cudnn_gqa_forward(ctx, out, stats, q, k, v, B, T, NH, NKV, HS, ct__stream(stream));
}

void ct_cuda_gqa_backward_cudnn(ct_cuda_t *ctx, ct_bf16_t *dq, ct_bf16_t *dk, ct_bf16_t *dv,
                                const ct_bf16_t *dout, const ct_bf16_t *q, const ct_bf16_t *k,
                                const ct_bf16_t *v, const ct_bf16_t *out, const float *stats,
                                int B, int T, int NH, int NKV, int HS, void *stream)
{
    ct__cudnn_gqa_backward(ctx, dq, dk, dv, dout, q, k, v, out, stats, B, T, NH, NKV, HS,
                           ct__stream(stream));
}
