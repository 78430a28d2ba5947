/* Fused softmax + cross-entropy over the first V of Vp bf16 logit columns,
 * statistics in fp32: losses[i] = lse_i - logits[i, targets[i]] and, when
 * dloss != 0, the row overwritten IN PLACE with dlogits =
 * (softmax - onehot) * dloss for v < V and 0 for the padding columns (the
 * order of kernels/cpu/xent.c: exp(x - lse) * dloss, then - dloss at the
 * target). One block per row (grid-stride over rows); the max and sum-exp
 * come from one online pass (per-thread running max and rescaled sum,
 * merged with a block max and a block sum), and the target logit is read
 * before the reductions' barriers, so every read of the row precedes every
 * write to it. 16-byte loads and stores when Vp % 8 == 0 and logits is
 * 16-byte aligned, else one element per step. No lse output, no label
 * smoothing, no ignore index; targets are trusted to be < V.
 *
 * The vocab-parallel cross-entropy (a TP rank holds the logits of
 * vocabulary ids [v_start, v_start + Vpl), the first Vl of them real) in
 * three steps around one all-gather: per-row statistics of the shard (its
 * max, the sum of exp(x - max) and the target's logit when the shard holds
 * it), the combination of every rank's statistics into lse and the loss (in
 * rank order, so every rank computes the same bits), and the backward in
 * place from lse. The logits are never gathered. */
#include "kernels/cuda/cuda_common.cuh"

#define CT_XENT_BLOCK 512
#define CT_XENT_MAX_GRID 65536

/* Two bf16 in one 32-bit word (element 0 in the low half). */
static __device__ __forceinline__ float lo_bf(unsigned w) { return __uint_as_float(w << 16); }
static __device__ __forceinline__ float hi_bf(unsigned w)
{
    return __uint_as_float(w & 0xffff0000u);
}
static __device__ __forceinline__ unsigned pack_bf(float lo, float hi)
{
    return (unsigned)ct__to_bf(lo) | ((unsigned)ct__to_bf(hi) << 16);
}

/* Running max m and sum s of exp(x - m); -inf inputs add nothing, a NaN
 * input makes s NaN (so the loss shows it). */
static __device__ __forceinline__ void online_add(float x, float &m, float &s)
{
    if (x > m) {
        s = s * expf(m - x) + 1.0f; /* m = -inf at first: 0 * 0 + 1 */
        m = x;
    } else if (x != -INFINITY) {
        s += expf(x - m);
    }
}

/* dlogit for column j of a row, as a float. */
static __device__ __forceinline__ float dlogit(float x, int j, int V, int tgt, float lse,
                                               float dloss)
{
    if (j >= V) return 0.0f;
    float g = expf(x - lse) * dloss;
    return j == tgt ? g - dloss : g;
}

static __global__ void __launch_bounds__(CT_XENT_BLOCK)
    ct__xent_kernel(float *__restrict__ losses, ct_bf16_t *__restrict__ logits,
                    const int32_t *__restrict__ targets, float dloss, int N, int V, int Vp,
                    int vec)
{
    __shared__ float sh[32];
    int tid = threadIdx.x;
    for (long row = blockIdx.x; row < N; row += gridDim.x) {
        ct_bf16_t *x = logits + row * Vp;
        int tgt = targets[row];
        float tl = ct__bf(x[tgt]); /* read before the barriers below */
        float m = -INFINITY, s = 0.0f;
        if (vec) {
            const uint4 *x8 = reinterpret_cast<const uint4 *>(x);
            int P = (V + 7) / 8; /* packs holding real columns; <= Vp / 8 */
            for (int p = tid; p < P; p += blockDim.x) {
                uint4 u = x8[p];
                unsigned w[4] = {u.x, u.y, u.z, u.w};
                int j0 = p * 8;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    if (j0 + 2 * k < V) online_add(lo_bf(w[k]), m, s);
                    if (j0 + 2 * k + 1 < V) online_add(hi_bf(w[k]), m, s);
                }
            }
        } else {
            for (int j = tid; j < V; j += blockDim.x) online_add(ct__bf(x[j]), m, s);
        }
        float M = ct__block_max(m, sh);
        /* m == -inf: the thread saw no finite column, s is 0 (or NaN) */
        float st = m > -INFINITY ? s * expf(m - M) : s;
        float S = ct__block_sum(st, sh);
        float lse = M + logf(S);
        if (tid == 0) losses[row] = lse - tl;
        if (dloss != 0.0f) {
            if (vec) {
                uint4 *x8 = reinterpret_cast<uint4 *>(x);
                int P = Vp / 8;
                for (int p = tid; p < P; p += blockDim.x) {
                    uint4 u = x8[p];
                    unsigned w[4] = {u.x, u.y, u.z, u.w};
                    int j0 = p * 8;
#pragma unroll
                    for (int k = 0; k < 4; k++) {
                        int j = j0 + 2 * k;
                        w[k] = pack_bf(dlogit(lo_bf(w[k]), j, V, tgt, lse, dloss),
                                       dlogit(hi_bf(w[k]), j + 1, V, tgt, lse, dloss));
                    }
                    x8[p] = make_uint4(w[0], w[1], w[2], w[3]);
                }
            } else {
                for (int j = tid; j < Vp; j += blockDim.x)
                    x[j] = ct__to_bf(dlogit(ct__bf(x[j]), j, V, tgt, lse, dloss));
            }
        }
    }
}

void ct_cuda_xent_forward_backward(float *losses, ct_bf16_t *logits, const int32_t *targets,
                                   float dloss, int N, int V, int Vp, void *stream)
{
    if (N <= 0) return;
    int vec = Vp % 8 == 0 && (uintptr_t)logits % 16 == 0;
    int grid = N < CT_XENT_MAX_GRID ? N : CT_XENT_MAX_GRID;
    ct__xent_kernel<<<grid, CT_XENT_BLOCK, 0, ct__stream(stream)>>>(losses, logits, targets,
                                                                    dloss, N, V, Vp, vec);
    CT_CHECK_LAUNCH();
}

/* ---- vocab-parallel ---------------------------------------------------------- */

static __global__ void __launch_bounds__(CT_XENT_BLOCK)
    ct__xent_vp_stats_kernel(float *__restrict__ stats, const ct_bf16_t *__restrict__ logits,
                             const int32_t *__restrict__ targets, int N, int v_start, int Vl,
                             int Vpl)
{
    __shared__ float sh[32];
    int tid = threadIdx.x;
    for (long row = blockIdx.x; row < N; row += gridDim.x) {
        const ct_bf16_t *x = logits + row * Vpl;
        long tj = (long)targets[row] - v_start;
        float tl = (unsigned long)tj < (unsigned long)Vl ? ct__bf(x[tj]) : 0.0f;
        float m = -INFINITY, s = 0.0f;
        for (int j = tid; j < Vl; j += blockDim.x) online_add(ct__bf(x[j]), m, s);
        float M = ct__block_max(m, sh);
        float st = m > -INFINITY ? s * expf(m - M) : s;
        float S = ct__block_sum(st, sh);
        if (tid == 0) {
            stats[row * 3 + 0] = M;
            stats[row * 3 + 1] = S;
            stats[row * 3 + 2] = tl;
        }
    }
}

static __global__ void ct__xent_vp_finish_kernel(float *__restrict__ losses,
                                                 float *__restrict__ lse,
                                                 const float *__restrict__ all, int N, int tp)
{
    long stride = (long)gridDim.x * blockDim.x;
    for (long row = (long)blockIdx.x * blockDim.x + threadIdx.x; row < N; row += stride) {
        float M = -INFINITY, tl = 0.0f;
        for (int r = 0; r < tp; r++) M = fmaxf(M, all[((long)r * N + row) * 3]);
        float S = 0.0f;
        for (int r = 0; r < tp; r++) {
            const float *st = all + ((long)r * N + row) * 3;
            if (st[0] > -INFINITY) S += st[1] * expf(st[0] - M);
            else S += st[1]; /* an empty shard: 0 (NaN stays NaN) */
            tl += st[2];
        }
        float l = M + logf(S);
        lse[row] = l;
        losses[row] = l - tl;
    }
}

static __global__ void ct__xent_vp_bwd_kernel(ct_bf16_t *__restrict__ logits,
                                              const float *__restrict__ lse,
                                              const int32_t *__restrict__ targets, float dloss,
                                              int N, int v_start, int Vl, int Vpl)
{
    long total = (long)N * Vpl;
    long stride = (long)gridDim.x * blockDim.x;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        long row = i / Vpl;
        int j = (int)(i - row * Vpl);
        int tgt = targets[row] - v_start; /* may be outside [0, Vl) */
        logits[i] = ct__to_bf(dlogit(ct__bf(logits[i]), j, Vl, tgt, lse[row], dloss));
    }
}

void ct_cuda_xent_vp_stats(float *stats, const ct_bf16_t *logits, const int32_t *targets, int N,
                           int v_start, int Vl, int Vpl, void *stream)
{
    if (N <= 0) return;
    int grid = N < CT_XENT_MAX_GRID ? N : CT_XENT_MAX_GRID;
    ct__xent_vp_stats_kernel<<<grid, CT_XENT_BLOCK, 0, ct__stream(stream)>>>(
        stats, logits, targets, N, v_start, Vl, Vpl);
    CT_CHECK_LAUNCH();
}

void ct_cuda_xent_vp_finish(float *losses, float *lse, const float *all_stats, int N, int tp,
                            void *stream)
{
    if (N <= 0) return;
    ct__xent_vp_finish_kernel<<<ct__grid_stride_blocks(N, 256), 256, 0, ct__stream(stream)>>>(
        losses, lse, all_stats, N, tp);
    CT_CHECK_LAUNCH();
}

void ct_cuda_xent_vp_backward(ct_bf16_t *logits, const float *lse, const int32_t *targets,
                              float dloss, int N, int v_start, int Vl, int Vpl, void *stream)
{
    if (N <= 0) return;
    long total = (long)N * Vpl;
    ct__xent_vp_bwd_kernel<<<ct__grid_stride_blocks(total, 256), 256, 0, ct__stream(stream)>>>(
        logits, lse, targets, dloss, N, v_start, Vl, Vpl);
    CT_CHECK_LAUNCH();
}
