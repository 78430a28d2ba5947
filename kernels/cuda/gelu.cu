/* GELU (tanh approximation, ct__gelu / ct__gelu_grad from cuda_common.cuh,
 * the formulas of kernels/cpu/gelu.c) on bf16 activations, computed in fp32:
 * forward out = gelu(inp); backward dinp = gelu'(inp) * dout, OVERWRITTEN
 * (bf16 activation gradient, unlike the CPU op's +=), in place allowed
 * (dinp == dout). Grid-stride, 8 elements per step (16-byte loads and
 * stores) when every pointer is 16-byte aligned, else one per step. The
 * matmul's fused GELU epilogues are in matmul.cu, not here. */
#include "kernels/cuda/cuda_common.cuh"

#define CT_GELU_BLOCK 256
#define gelu_grid(work) ct__grid_stride_blocks(work, CT_GELU_BLOCK)

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

static __global__ void ct__gelu_fwd_kernel(ct_bf16_t *__restrict__ out,
                                           const ct_bf16_t *__restrict__ inp, long n, int vec)
{
    long tid = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long stride = (long)gridDim.x * blockDim.x;
    long start = 0;
    if (vec) {
        long n8 = n / 8;
        const uint4 *i8 = reinterpret_cast<const uint4 *>(inp);
        uint4 *o8 = reinterpret_cast<uint4 *>(out);
        for (long i = tid; i < n8; i += stride) {
            uint4 x = i8[i], y;
            y.x = pack_bf(ct__gelu(lo_bf(x.x)), ct__gelu(hi_bf(x.x)));
            y.y = pack_bf(ct__gelu(lo_bf(x.y)), ct__gelu(hi_bf(x.y)));
            y.z = pack_bf(ct__gelu(lo_bf(x.z)), ct__gelu(hi_bf(x.z)));
            y.w = pack_bf(ct__gelu(lo_bf(x.w)), ct__gelu(hi_bf(x.w)));
            o8[i] = y;
        }
        start = n8 * 8;
    }
    for (long i = start + tid; i < n; i += stride) out[i] = ct__to_bf(ct__gelu(ct__bf(inp[i])));
}

static __device__ __forceinline__ unsigned gelu_bwd2(unsigned x, unsigned d)
{
    return pack_bf(ct__gelu_grad(lo_bf(x)) * lo_bf(d), ct__gelu_grad(hi_bf(x)) * hi_bf(d));
}

/* dinp may equal dout: no __restrict__ on them; each element is read and
 * then written by the same thread. */
static __global__ void ct__gelu_bwd_kernel(ct_bf16_t *dinp, const ct_bf16_t *__restrict__ inp,
                                           const ct_bf16_t *dout, long n, int vec)
{
    long tid = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long stride = (long)gridDim.x * blockDim.x;
    long start = 0;
    if (vec) {
        long n8 = n / 8;
        const uint4 *i8 = reinterpret_cast<const uint4 *>(inp);
        const uint4 *d8 = reinterpret_cast<const uint4 *>(dout);
        uint4 *g8 = reinterpret_cast<uint4 *>(dinp);
        for (long i = tid; i < n8; i += stride) {
            uint4 x = i8[i], d = d8[i], g;
            g.x = gelu_bwd2(x.x, d.x);
            g.y = gelu_bwd2(x.y, d.y);
            g.z = gelu_bwd2(x.z, d.z);
            g.w = gelu_bwd2(x.w, d.w);
            g8[i] = g;
        }
        start = n8 * 8;
    }
    for (long i = start + tid; i < n; i += stride)
        dinp[i] = ct__to_bf(ct__gelu_grad(ct__bf(inp[i])) * ct__bf(dout[i]));
}

void ct_cuda_gelu_forward(ct_bf16_t *out, const ct_bf16_t *inp, long n, void *stream)
{
    if (n <= 0) return;
    int vec = ((uintptr_t)out % 16 == 0) && ((uintptr_t)inp % 16 == 0);
    long work = vec ? (n + 7) / 8 : n;
    ct__gelu_fwd_kernel<<<gelu_grid(work), CT_GELU_BLOCK, 0, ct__stream(stream)>>>(out, inp, n,
                                                                                   vec);
    CT_CHECK_LAUNCH();
}

void ct_cuda_gelu_backward(ct_bf16_t *dinp, const ct_bf16_t *inp, const ct_bf16_t *dout, long n,
                           void *stream)
{
    if (n <= 0) return;
    int vec = ((uintptr_t)dinp % 16 == 0) && ((uintptr_t)inp % 16 == 0) &&
              ((uintptr_t)dout % 16 == 0);
    long work = vec ? (n + 7) / 8 : n;
    ct__gelu_bwd_kernel<<<gelu_grid(work), CT_GELU_BLOCK, 0, ct__stream(stream)>>>(dinp, inp,
                                                                                   dout, n, vec);
    CT_CHECK_LAUNCH();
}
