/* fp32 <-> bf16 conversion of a flat buffer: fp32 -> bf16 rounds to nearest
 * even (NaN stays NaN), bf16 -> fp32 is exact. One element per thread in a
 * grid-stride loop; no vectorised path (these run outside the hot loop:
 * weight upload, checkpoints, tests) and no stochastic rounding (that is
 * AdamW's). ct_cuda_bias_to_bf16 is the one in the hot loop: under tensor
 * parallelism it rounds a row-parallel matmul's summed fp32 partials, bias
 * added, as the single-GPU matmul's epilogue does. */
#include "kernels/cuda/cuda_common.cuh"

#define CT_CONV_BLOCK 256
#define conv_grid(n) ct__grid_stride_blocks(n, CT_CONV_BLOCK)

static __global__ void ct__f32_to_bf16_kernel(ct_bf16_t *__restrict__ dst,
                                              const float *__restrict__ src, long n)
{
    long stride = (long)gridDim.x * blockDim.x;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = ct__to_bf(src[i]);
}

static __global__ void ct__bf16_to_f32_kernel(float *__restrict__ dst,
                                              const ct_bf16_t *__restrict__ src, long n)
{
    long stride = (long)gridDim.x * blockDim.x;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = ct__bf(src[i]);
}

void ct_cuda_f32_to_bf16(ct_bf16_t *dst, const float *src, long n, void *stream)
{
    if (n <= 0) return;
    ct__f32_to_bf16_kernel<<<conv_grid(n), CT_CONV_BLOCK, 0, ct__stream(stream)>>>(dst, src, n);
    CT_CHECK_LAUNCH();
}

void ct_cuda_bf16_to_f32(float *dst, const ct_bf16_t *src, long n, void *stream)
{
    if (n <= 0) return;
    ct__bf16_to_f32_kernel<<<conv_grid(n), CT_CONV_BLOCK, 0, ct__stream(stream)>>>(dst, src, n);
    CT_CHECK_LAUNCH();
}

static __global__ void ct__bias_to_bf16_kernel(ct_bf16_t *__restrict__ out,
                                               const float *__restrict__ inp,
                                               const ct_bf16_t *__restrict__ bias, long n, int C)
{
    long stride = (long)gridDim.x * blockDim.x;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = ct__to_bf(bias ? inp[i] + ct__bf(bias[i % C]) : inp[i]);
}

void ct_cuda_bias_to_bf16(ct_bf16_t *out, const float *inp, const ct_bf16_t *bias, int N, int C,
                          void *stream)
{
    long n = (long)N * C;
    if (n <= 0) return;
    ct__bias_to_bf16_kernel<<<conv_grid(n), CT_CONV_BLOCK, 0, ct__stream(stream)>>>(out, inp,
                                                                                   bias, n, C);
    CT_CHECK_LAUNCH();
}
