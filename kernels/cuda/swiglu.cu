/* SwiGLU on bf16 (as kernels/cpu/swiglu.c): out = silu(gate) * up, and the
 * backward of both inputs in one pass, computed in fp32 and rounded once.
 * Grid-stride, one element per thread. Left out: a cuBLASLt epilogue (there
 * is no gated one) and vectorised loads. */
#include "kernels/cuda/cuda_common.cuh"

static __global__ void ct__swiglu_fwd_kernel(ct_bf16_t *__restrict__ out,
                                             const ct_bf16_t *__restrict__ gate,
                                             const ct_bf16_t *__restrict__ up, long n)
{
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        float g = ct__bf(gate[i]);
        float sg = 1.0f / (1.0f + expf(-g));
        out[i] = ct__to_bf(g * sg * ct__bf(up[i]));
    }
}

static __global__ void ct__swiglu_bwd_kernel(ct_bf16_t *__restrict__ dgate,
                                             ct_bf16_t *__restrict__ dup,
                                             const ct_bf16_t *__restrict__ dout,
                                             const ct_bf16_t *__restrict__ gate,
                                             const ct_bf16_t *__restrict__ up, long n)
{
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        float g = ct__bf(gate[i]), u = ct__bf(up[i]), d = ct__bf(dout[i]);
        float sg = 1.0f / (1.0f + expf(-g));
        dgate[i] = ct__to_bf(d * u * sg * (1.0f + g * (1.0f - sg)));
        dup[i] = ct__to_bf(d * g * sg);
    }
}

void ct_cuda_swiglu_forward(ct_bf16_t *out, const ct_bf16_t *gate, const ct_bf16_t *up, long n,
                            void *stream)
{
    if (n <= 0) return;
    ct__swiglu_fwd_kernel<<<ct__grid_stride_blocks(n, 256), 256, 0, ct__stream(stream)>>>(
        out, gate, up, n);
    CT_CHECK_LAUNCH();
}

void ct_cuda_swiglu_backward(ct_bf16_t *dgate, ct_bf16_t *dup, const ct_bf16_t *dout,
                             const ct_bf16_t *gate, const ct_bf16_t *up, long n, void *stream)
{
    if (n <= 0) return;
    ct__swiglu_bwd_kernel<<<ct__grid_stride_blocks(n, 256), 256, 0, ct__stream(stream)>>>(
        dgate, dup, dout, gate, up, n);
    CT_CHECK_LAUNCH();
}
