/* RMSNorm over the last dimension (as kernels/cpu/rmsnorm.c): fp32 input
 * rows (the residual stream), bf16 weight and output, the fp32 reciprocal
 * RMS saved for the backward; the fused residual + RMSNorm forward; and the
 * backward from an fp32 output gradient (the sum of the column-parallel
 * input gradients, rounded nowhere before it arrives here).
 *
 * One warp per row, 8 rows per 256-thread block, grid-stride over rows; the
 * row is read from global memory (L1/L2) in each pass, every element by
 * the same lane in every pass, so the residual write needs no barrier.
 * dweight (+=) is deterministic: per-column partial sums over fixed chunks
 * of rows into scratch, then a per-column sum of the partials in chunk
 * order (layernorm.cu's scheme with one gradient instead of two). Left out:
 * the vectorised register path of layernorm.cu. */
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/sizes.h"

#define CT_RMS_WARPS 8
#define CT_RMS_COL_BLOCK 128

template <bool RES>
static __global__ void __launch_bounds__(32 * CT_RMS_WARPS)
    ct__rms_fwd_kernel(ct_bf16_t *__restrict__ out, float *__restrict__ rstd, float *res_out,
                       const float *inp, const ct_bf16_t *__restrict__ x,
                       const ct_bf16_t *__restrict__ weight, int N, int C, float eps)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (long row = (long)blockIdx.x * CT_RMS_WARPS + warp; row < N;
         row += (long)gridDim.x * CT_RMS_WARPS) {
        const float *src = inp + row * C;
        float ss = 0.0f;
        for (int c = lane; c < C; c += 32) {
            float a = src[c];
            if (RES) {
                a += ct__bf(x[row * C + c]);
                res_out[row * C + c] = a;
            }
            ss += a * a;
        }
        if (RES) src = res_out + row * C;
        float s = 1.0f / sqrtf(ct__warp_sum(ss) / (float)C + eps);
        ct_bf16_t *o = out + row * C;
        for (int c = lane; c < C; c += 32) o[c] = ct__to_bf(src[c] * s * ct__bf(weight[c]));
        if (lane == 0 && rstd) rstd[row] = s;
    }
}

/* dinp += s * w * d - x * s^3 * mean(w * d * x), and its optional bf16 copy. */
static __global__ void __launch_bounds__(32 * CT_RMS_WARPS)
    ct__rms_bwd_dinp_kernel(float *__restrict__ dinp, ct_bf16_t *__restrict__ dinp_bf16,
                            const float *__restrict__ dout, const float *__restrict__ inp,
                            const ct_bf16_t *__restrict__ weight, const float *__restrict__ rstd,
                            int N, int C)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (long row = (long)blockIdx.x * CT_RMS_WARPS + warp; row < N;
         row += (long)gridDim.x * CT_RMS_WARPS) {
        const float *xr = inp + row * C, *dr = dout + row * C;
        float s = rstd[row], gx = 0.0f;
        for (int c = lane; c < C; c += 32) gx += ct__bf(weight[c]) * dr[c] * xr[c];
        float k = s * s * s * ct__warp_sum(gx) / (float)C;
        float *gr = dinp + row * C;
        ct_bf16_t *gbr = dinp_bf16 ? dinp_bf16 + row * C : NULL;
        for (int c = lane; c < C; c += 32) {
            float g = gr[c] + (s * ct__bf(weight[c]) * dr[c] - k * xr[c]);
            gr[c] = g;
            if (gbr) gbr[c] = ct__to_bf(g);
        }
    }
}

static void rms_chunks(int N, int *rpc, int *R)
{
    *rpc = (N + CT_LN_MAX_CHUNKS - 1) / CT_LN_MAX_CHUNKS;
    *R = (N + *rpc - 1) / *rpc;
}

/* grid (ceil(C / 128), R): one thread per column, its chunk's rows in order. */
static __global__ void ct__rms_bwd_partial_kernel(float *__restrict__ scratch,
                                                  const float *__restrict__ dout,
                                                  const float *__restrict__ inp,
                                                  const float *__restrict__ rstd, int N, int C,
                                                  int rpc)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int chunk = blockIdx.y;
    if (c >= C) return;
    int r0 = chunk * rpc;
    int r1 = r0 + rpc < N ? r0 + rpc : N;
    float dw = 0.0f;
    for (int r = r0; r < r1; r++) {
        long i = (long)r * C + c;
        dw += inp[i] * rstd[r] * dout[i];
    }
    scratch[(long)chunk * C + c] = dw;
}

static __global__ void ct__rms_bwd_reduce_kernel(float *__restrict__ dweight,
                                                 const float *__restrict__ scratch, int C, int R)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float dw = 0.0f;
    for (int k = 0; k < R; k++) dw += scratch[(long)k * C + c];
    dweight[c] += dw;
}

void ct_cuda_rmsnorm_forward(ct_bf16_t *out, float *rstd, const float *inp,
                             const ct_bf16_t *weight, int N, int C, float eps, void *stream)
{
    if (N <= 0 || C <= 0) return;
    ct__rms_fwd_kernel<false><<<ct__grid_stride_blocks(N, CT_RMS_WARPS), 32 * CT_RMS_WARPS, 0,
                                ct__stream(stream)>>>(out, rstd, nullptr, inp, nullptr, weight, N, C,
                                                      eps);
    CT_CHECK_LAUNCH();
}

void ct_cuda_residual_rmsnorm_forward(float *res_out, ct_bf16_t *out, float *rstd,
                                      const float *res_in, const ct_bf16_t *x,
                                      const ct_bf16_t *weight, int N, int C, float eps,
                                      void *stream)
{
    if (N <= 0 || C <= 0) return;
    ct__rms_fwd_kernel<true><<<ct__grid_stride_blocks(N, CT_RMS_WARPS), 32 * CT_RMS_WARPS, 0,
                               ct__stream(stream)>>>(out, rstd, res_out, res_in, x, weight, N, C,
                                                     eps);
    CT_CHECK_LAUNCH();
}

void ct_cuda_rmsnorm_backward(float *dinp, ct_bf16_t *dinp_bf16, float *dweight,
                              const float *dout, const float *inp, const ct_bf16_t *weight,
                              const float *rstd, float *scratch, int N, int C, void *stream)
{
    if (N <= 0 || C <= 0) return;
    cudaStream_t s = ct__stream(stream);
    ct__rms_bwd_dinp_kernel<<<ct__grid_stride_blocks(N, CT_RMS_WARPS), 32 * CT_RMS_WARPS, 0, s>>>(
        dinp, dinp_bf16, dout, inp, weight, rstd, N, C);
    CT_CHECK_LAUNCH();
    int rpc, R;
    rms_chunks(N, &rpc, &R);
    dim3 pgrid((C + CT_RMS_COL_BLOCK - 1) / CT_RMS_COL_BLOCK, R);
    ct__rms_bwd_partial_kernel<<<pgrid, CT_RMS_COL_BLOCK, 0, s>>>(scratch, dout, inp, rstd, N, C,
                                                                  rpc);
    CT_CHECK_LAUNCH();
    ct__rms_bwd_reduce_kernel<<<(C + CT_RMS_COL_BLOCK - 1) / CT_RMS_COL_BLOCK, CT_RMS_COL_BLOCK,
                                0, s>>>(dweight, scratch, C, R);
    CT_CHECK_LAUNCH();
}
