/* Causal self-attention, plain CUDA (the fallback to cuDNN SDPA), and the
 * dispatch on the context's attention implementation: cuDNN, or the plain
 * path, which takes the tensor-core kernels of attention_flash.cu where
 * they apply (head size, alignment) and the per-row kernels here otherwise.
 *
 * Same math as kernels/cpu/attention.c (scale 1/sqrt(HS), q/k/v heads at
 * [0,C), [C,2C), [2C,3C) of each (B,T,3C) token row) but the softmax is
 * never stored: the forward runs an online softmax in fp32 and keeps each
 * query row's log-sum-exp of the scaled scores in `stats`, and the
 * backward recomputes the probabilities from it, FlashAttention style.
 * One warp owns one (b, h, row); lane l holds elements d = l + 32*e of the
 * head (HS <= 128, so at most 4 per lane) and scores are warp reductions.
 * The backward is three kernels (D_i = dout_i . out_i, then dq by query
 * rows, then dk and dv by key rows), so every gradient element is written
 * by one warp in a fixed order: deterministic, no atomics.
 * Leaves out dropout, non-causal masks, HS > 128, tensor cores and shared
 * memory tiling: these kernels are the correctness reference and the
 * fallback; attention_flash.cu and cuDNN are the fast paths. */
#include <math.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/sizes.h"

#define CT__ATT_WARPS 8 /* warps (rows) per block */
#define CT__ATT_THREADS (32 * CT__ATT_WARPS)
#define CT__ATT_MAX_HS 128

/* ct_cuda_attention_scratch_floats: kernels/cpu/cuda_sizes.c (ct__attention_scratch_floats
 * here, so the emulator's translated kernels need nothing from the C objects) */

/* Sums two values over the warp at once (interleaved for latency). */
static __device__ __forceinline__ void ct__warp_sum2(float &a, float &b)
{
    for (int o = 16; o > 0; o >>= 1) {
        a += __shfl_xor_sync(0xffffffffu, a, o);
        b += __shfl_xor_sync(0xffffffffu, b, o);
    }
}

/* Forward: one warp per (b, h, t); rows are ordered longest first (t from
 * T-1 down) within each (b, h) so the heavy rows start early. */
template <int E>
static __global__ void __launch_bounds__(CT__ATT_THREADS)
    ct__attn_fwd_kernel(ct_bf16_t *__restrict__ out, float *__restrict__ stats,
                        const ct_bf16_t *__restrict__ qkv, int B, int T, int NH, int HS,
                        float scale)
{
    int lane = threadIdx.x % 32;
    long row = (long)blockIdx.x * CT__ATT_WARPS + threadIdx.x / 32;
    if (row >= (long)B * NH * T) return; /* warp-uniform */
    long bh = row / T;
    int t = T - 1 - (int)(row % T);
    int b = (int)(bh / NH), h = (int)(bh % NH);
    int C = NH * HS;
    long C3 = 3L * C;
    const ct_bf16_t *base = qkv + (long)b * T * C3 + (long)h * HS; /* q of token 0 */

    float q[E], acc[E];
    const ct_bf16_t *qp = base + (long)t * C3;
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        q[e] = d < HS ? ct__bf(qp[d]) : 0.0f;
        acc[e] = 0.0f;
    }
    float mx = -INFINITY, l = 0.0f;
    for (int j = 0; j <= t; j++) { /* t is warp-uniform */
        const ct_bf16_t *kp = base + (long)j * C3 + C, *vp = kp + C;
        float s = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) {
            int d = e * 32 + lane;
            if (d < HS) s += q[e] * ct__bf(kp[d]);
        }
        s = ct__warp_sum(s) * scale;
        float mnew = fmaxf(mx, s);
        float corr = expf(mx - mnew); /* 0 on the first key */
        float p = expf(s - mnew);
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
    ct_bf16_t *op = out + ((long)b * T + t) * C + (long)h * HS;
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        if (d < HS) op[d] = ct__to_bf(acc[e] * inv);
    }
    if (lane == 0) stats[bh * T + t] = mx + logf(l);
}

/* Backward 1: D[(b,h), t] = sum_d dout[b,t,h,d] * out[b,t,h,d]. */
template <int E>
static __global__ void __launch_bounds__(CT__ATT_THREADS)
    ct__attn_bwd_d_kernel(float *__restrict__ D, const ct_bf16_t *__restrict__ dout,
                          const ct_bf16_t *__restrict__ out, int B, int T, int NH, int HS)
{
    int lane = threadIdx.x % 32;
    long row = (long)blockIdx.x * CT__ATT_WARPS + threadIdx.x / 32;
    if (row >= (long)B * NH * T) return;
    long bh = row / T;
    int t = (int)(row % T);
    int b = (int)(bh / NH), h = (int)(bh % NH);
    long off = ((long)b * T + t) * NH * HS + (long)h * HS;
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        if (d < HS) s += ct__bf(dout[off + d]) * ct__bf(out[off + d]);
    }
    s = ct__warp_sum(s);
    if (lane == 0) D[row] = s;
}

/* Backward 2: dq by query row i (longest rows first):
 * dq_i = scale * sum_{j<=i} p_ij (dout_i . v_j - D_i) k_j. */
template <int E>
static __global__ void __launch_bounds__(CT__ATT_THREADS)
    ct__attn_bwd_dq_kernel(ct_bf16_t *__restrict__ dqkv, const ct_bf16_t *__restrict__ dout,
                           const ct_bf16_t *__restrict__ qkv, const float *__restrict__ stats,
                           const float *__restrict__ D, int B, int T, int NH, int HS,
                           float scale)
{
    int lane = threadIdx.x % 32;
    long row = (long)blockIdx.x * CT__ATT_WARPS + threadIdx.x / 32;
    if (row >= (long)B * NH * T) return;
    long bh = row / T;
    int i = T - 1 - (int)(row % T);
    int b = (int)(bh / NH), h = (int)(bh % NH);
    int C = NH * HS;
    long C3 = 3L * C;
    const ct_bf16_t *base = qkv + (long)b * T * C3 + (long)h * HS;
    const ct_bf16_t *qp = base + (long)i * C3;
    const ct_bf16_t *dop = dout + ((long)b * T + i) * C + (long)h * HS;

    float q[E], dO[E], acc[E];
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        q[e] = d < HS ? ct__bf(qp[d]) : 0.0f;
        dO[e] = d < HS ? ct__bf(dop[d]) : 0.0f;
        acc[e] = 0.0f;
    }
    float lse = stats[bh * T + i], Di = D[bh * T + i];
    for (int j = 0; j <= i; j++) { /* i is warp-uniform */
        const ct_bf16_t *kp = base + (long)j * C3 + C, *vp = kp + C;
        float k[E], s = 0.0f, dp = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) {
            int d = e * 32 + lane;
            k[e] = d < HS ? ct__bf(kp[d]) : 0.0f;
            float vd = d < HS ? ct__bf(vp[d]) : 0.0f;
            s += q[e] * k[e];
            dp += dO[e] * vd;
        }
        ct__warp_sum2(s, dp);
        float p = expf(s * scale - lse);
        float ds = p * (dp - Di);
#pragma unroll
        for (int e = 0; e < E; e++) acc[e] += ds * k[e];
    }
    ct_bf16_t *dqp = dqkv + ((long)b * T + i) * C3 + (long)h * HS;
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        if (d < HS) dqp[d] = ct__to_bf(acc[e] * scale);
    }
}

/* Backward 3: dk and dv by key row j (longest rows, small j, first):
 * dk_j = scale * sum_{i>=j} p_ij (dout_i . v_j - D_i) q_i,
 * dv_j = sum_{i>=j} p_ij dout_i. */
template <int E>
static __global__ void __launch_bounds__(CT__ATT_THREADS)
    ct__attn_bwd_dkdv_kernel(ct_bf16_t *__restrict__ dqkv, const ct_bf16_t *__restrict__ dout,
                             const ct_bf16_t *__restrict__ qkv, const float *__restrict__ stats,
                             const float *__restrict__ D, int B, int T, int NH, int HS,
                             float scale)
{
    int lane = threadIdx.x % 32;
    long row = (long)blockIdx.x * CT__ATT_WARPS + threadIdx.x / 32;
    if (row >= (long)B * NH * T) return;
    long bh = row / T;
    int j = (int)(row % T);
    int b = (int)(bh / NH), h = (int)(bh % NH);
    int C = NH * HS;
    long C3 = 3L * C;
    const ct_bf16_t *base = qkv + (long)b * T * C3 + (long)h * HS;
    const ct_bf16_t *kp = base + (long)j * C3 + C, *vp = kp + C;
    const ct_bf16_t *dobase = dout + (long)b * T * C + (long)h * HS;
    const float *lse_row = stats + bh * T, *D_row = D + bh * T;

    float k[E], v[E], dk[E], dv[E];
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        k[e] = d < HS ? ct__bf(kp[d]) : 0.0f;
        v[e] = d < HS ? ct__bf(vp[d]) : 0.0f;
        dk[e] = 0.0f;
        dv[e] = 0.0f;
    }
    for (int i = j; i < T; i++) { /* j and T are warp-uniform */
        const ct_bf16_t *qp = base + (long)i * C3, *dop = dobase + (long)i * C;
        float q[E], dO[E], s = 0.0f, dp = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) {
            int d = e * 32 + lane;
            q[e] = d < HS ? ct__bf(qp[d]) : 0.0f;
            dO[e] = d < HS ? ct__bf(dop[d]) : 0.0f;
            s += q[e] * k[e];
            dp += dO[e] * v[e];
        }
        ct__warp_sum2(s, dp);
        float p = expf(s * scale - lse_row[i]);
        float ds = p * (dp - D_row[i]);
#pragma unroll
        for (int e = 0; e < E; e++) {
            dk[e] += ds * q[e];
            dv[e] += p * dO[e];
        }
    }
    ct_bf16_t *dkp = dqkv + ((long)b * T + j) * C3 + C + (long)h * HS, *dvp = dkp + C;
#pragma unroll
    for (int e = 0; e < E; e++) {
        int d = e * 32 + lane;
        if (d < HS) {
            dkp[d] = ct__to_bf(dk[e] * scale);
            dvp[d] = ct__to_bf(dv[e]);
        }
    }
}

/* Launches kernel template K<E> with E = ceil(HS/32) in 1..4. */
#define CT__ATT_DISPATCH(K, grid, st, ...)                                \
    do {                                                                  \
        switch ((HS + 31) / 32) {                                         \
        case 1: K<1><<<(grid), CT__ATT_THREADS, 0, (st)>>>(__VA_ARGS__); break; \
        case 2: K<2><<<(grid), CT__ATT_THREADS, 0, (st)>>>(__VA_ARGS__); break; \
        case 3: K<3><<<(grid), CT__ATT_THREADS, 0, (st)>>>(__VA_ARGS__); break; \
        default: K<4><<<(grid), CT__ATT_THREADS, 0, (st)>>>(__VA_ARGS__); break; \
        }                                                                 \
        CT_CHECK_LAUNCH();                                                \
    } while (0)

void ct_cuda_attention_forward_plain(ct_bf16_t *out, float *stats, const ct_bf16_t *qkv, int B,
                                     int T, int NH, int HS, void *stream)
{
    long rows = (long)B * NH * T;
    if (B <= 0 || T <= 0 || NH <= 0) return;
    CT_ASSERT(HS >= 1 && HS <= CT__ATT_MAX_HS);
    float scale = 1.0f / sqrtf((float)HS);
    unsigned grid = (unsigned)ct__ceil_div(rows, CT__ATT_WARPS);
    CT__ATT_DISPATCH(ct__attn_fwd_kernel, grid, ct__stream(stream), out, stats, qkv, B, T, NH,
                     HS, scale);
}

void ct_cuda_attention_backward_plain(ct_bf16_t *dqkv, const ct_bf16_t *dout,
                                      const ct_bf16_t *qkv, const ct_bf16_t *out,
                                      const float *stats, float *scratch, int B, int T, int NH,
                                      int HS, void *stream)
{
    long rows = (long)B * NH * T;
    if (B <= 0 || T <= 0 || NH <= 0) return;
    CT_ASSERT(HS >= 1 && HS <= CT__ATT_MAX_HS);
    CT_ASSERT(scratch != NULL);
    float scale = 1.0f / sqrtf((float)HS);
    unsigned grid = (unsigned)ct__ceil_div(rows, CT__ATT_WARPS);
    cudaStream_t st = ct__stream(stream);
    CT__ATT_DISPATCH(ct__attn_bwd_d_kernel, grid, st, scratch, dout, out, B, T, NH, HS);
    CT__ATT_DISPATCH(ct__attn_bwd_dq_kernel, grid, st, dqkv, dout, qkv, stats, scratch, B, T, NH,
                     HS, scale);
    CT__ATT_DISPATCH(ct__attn_bwd_dkdv_kernel, grid, st, dqkv, dout, qkv, stats, scratch, B, T,
                     NH, HS, scale);
}

/* ---- dispatch ----------------------------------------------------------- */

void ct_cuda_attention_forward(ct_cuda_t *ctx, ct_bf16_t *out, float *stats,
                               const ct_bf16_t *qkv, int B, int T, int NH, int HS, void *stream)
{
    if (ctx->attn == CT_ATTN_CUDNN)
        ct__cudnn_attention_forward(ctx, out, stats, qkv, B, T, NH, HS, ct__stream(stream));
    else if (ct__use_flash(HS, out, qkv, qkv, qkv))
        ct_cuda_attention_forward_flash(out, stats, qkv, B, T, NH, HS, stream);
    else
        ct_cuda_attention_forward_plain(out, stats, qkv, B, T, NH, HS, stream);
}

void ct_cuda_attention_backward(ct_cuda_t *ctx, ct_bf16_t *dqkv, const ct_bf16_t *dout,
                                const ct_bf16_t *qkv, const ct_bf16_t *out, const float *stats,
                                int B, int T, int NH, int HS, void *stream)
{
    if (ctx->attn == CT_ATTN_CUDNN) {
        ct__cudnn_attention_backward(ctx, dqkv, dout, qkv, out, stats, B, T, NH, HS,
                                     ct__stream(stream));
        return;
    }
    long need = ct__attention_scratch_floats(B, T, NH);
    if (need <= 0) return;
    /* Sized by ct_cuda_attention_prepare, outside the training step. */
    CT_ASSERT(ctx->attn_scratch != NULL && ctx->attn_scratch_floats >= (size_t)need);
    if (ct__use_flash(HS, dqkv, dout, qkv, out))
        ct_cuda_attention_backward_flash(dqkv, dout, qkv, out, stats, ctx->attn_scratch, B, T, NH,
                                         HS, stream);
    else
        ct_cuda_attention_backward_plain(dqkv, dout, qkv, out, stats, ctx->attn_scratch, B, T,
                                         NH, HS, stream);
}

ct_status_t ct_cuda_attention_prepare(ct_cuda_t *ctx, int B, int T, int NH, int HS)
{
    /* The plain backward's scratch is kept for either implementation, so a
     * fallback to the plain kernels after cuDNN rejects a shape works. */
    long need = ct__attention_scratch_floats(B, T, NH);
    if (need > 0 && (size_t)need > ctx->attn_scratch_floats) {
        ct_cuda_dealloc(ctx->attn_scratch);
        ctx->attn_scratch = NULL;
        ctx->attn_scratch_floats = 0;
        void *p = NULL;
        ct_status_t st = ct_cuda_alloc(ctx, (size_t)need * sizeof(float),
                                       "plain attention backward scratch", &p);
        if (st != CT_OK) return st; /* logged by ct_cuda_alloc */
        ctx->attn_scratch = (float *)p;
        ctx->attn_scratch_floats = (size_t)need;
    }
    if (ctx->attn == CT_ATTN_CUDNN) return ct__cudnn_prepare(ctx, B, T, NH, HS);
    return CT_OK;
}

void ct_cuda_set_attn_impl(ct_cuda_t *ctx, ct_attn_impl_t impl)
{
    if (impl == CT_ATTN_PLAIN) {
        ctx->attn = CT_ATTN_PLAIN;
        return;
    }
    int ok = ct__cudnn_available();
    /* A context made with the plain kernels has no cuDNN state yet. */
    if (ok && !ctx->cudnn) ok = ct__cudnn_init(ctx) == CT_OK;
    if (ok) {
        ctx->attn = CT_ATTN_CUDNN;
    } else {
        if (impl == CT_ATTN_CUDNN)
            CT_LOG_WARN("cuDNN attention requested but unavailable, keeping the plain CUDA "
                        "attention kernels");
        ctx->attn = CT_ATTN_PLAIN;
    }
}
