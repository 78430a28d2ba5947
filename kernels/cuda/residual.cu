/* Residual add into the fp32 stream: out = a + b with a fp32 and b bf16
 * (a branch output), out fp32; out may equal a. Grid-stride, 4 elements per
 * step (one float4 of a and out, 8 bytes of b) when out and a are 16-byte
 * and b 8-byte aligned, else one element per step. The backward is not here:
 * the residual-stream gradient simply accumulates in fp32 (see kernels.h). */
#include "kernels/cuda/cuda_common.cuh"

#define CT_RES_BLOCK 256
#define res_grid(work) ct__grid_stride_blocks(work, CT_RES_BLOCK)

/* out and a may alias: no __restrict__ on them. Each element is read and
 * then written by the same thread. */
static __global__ void ct__residual_fwd_kernel(float *out, const float *a,
                                               const ct_bf16_t *__restrict__ b, long n, int vec)
{
    long tid = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long stride = (long)gridDim.x * blockDim.x;
    long start = 0;
    if (vec) {
        long n4 = n / 4;
        const float4 *a4 = reinterpret_cast<const float4 *>(a);
        const uint2 *b4 = reinterpret_cast<const uint2 *>(b);
        float4 *o4 = reinterpret_cast<float4 *>(out);
        for (long i = tid; i < n4; i += stride) {
            float4 x = a4[i];
            uint2 y = b4[i];
            x.x += __uint_as_float(y.x << 16);
            x.y += __uint_as_float(y.x & 0xffff0000u);
            x.z += __uint_as_float(y.y << 16);
            x.w += __uint_as_float(y.y & 0xffff0000u);
            o4[i] = x;
        }
        start = n4 * 4;
    }
    for (long i = start + tid; i < n; i += stride) out[i] = a[i] + ct__bf(b[i]);
}

void ct_cuda_residual_forward(float *out, const float *a, const ct_bf16_t *b, long n,
                              void *stream)
{
    if (n <= 0) return;
    int vec = ((uintptr_t)out % 16 == 0) && ((uintptr_t)a % 16 == 0) && ((uintptr_t)b % 8 == 0);
    long work = vec ? (n + 3) / 4 : n;
    ct__residual_fwd_kernel<<<res_grid(work), CT_RES_BLOCK, 0, ct__stream(stream)>>>(out, a, b,
                                                                                     n, vec);
    CT_CHECK_LAUNCH();
}
