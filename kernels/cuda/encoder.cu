/* Token + position embedding into the fp32 residual stream:
 * out[b,t,:] = wte[inp[b,t],:] + wpe[t,:] with bf16 tables, and its
 * backward into fp32 dwte/dwpe (+=). The forward is grid-stride over
 * elements, 4 channels per step when C % 4 == 0 and out is 16-byte, wte and
 * wpe 8-byte aligned. The backward scatters dwte rows with fp32 atomicAdd
 * (summation order not fixed), while dwpe gets one thread per (t,c) summing
 * over b in order on top of the old value, as kernels/cpu/encoder.c does, so
 * it is deterministic. Token ids are trusted to be < Vp. The vocab-parallel
 * (_vp) variants serve a tensor-parallel shard of rows [v_start, v_start +
 * v_count): other tokens read zeros and get no gradient, and wpe (dwpe) may
 * be NULL; the plain functions are the shard [0, INT_MAX). */
#include <limits.h>

#include "kernels/cuda/cuda_common.cuh"

#define CT_ENC_BLOCK 256
#define enc_grid(work) ct__grid_stride_blocks(work, CT_ENC_BLOCK)

/* vec: C % 4 == 0 and aligned pointers; one step covers 4 channels. */
static __global__ void ct__encoder_fwd_kernel(float *__restrict__ out,
                                              const int32_t *__restrict__ inp,
                                              const ct_bf16_t *__restrict__ wte,
                                              const ct_bf16_t *__restrict__ wpe, int N, int T,
                                              int C, int v_start, int v_count, int vec)
{
    long tid = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long stride = (long)gridDim.x * blockDim.x;
    if (vec) {
        int C4 = C / 4;
        long total = (long)N * C4;
        for (long i = tid; i < total; i += stride) {
            long n = i / C4;
            int c = (int)(i - n * C4) * 4;
            int t = (int)(n % T);
            long id = (long)inp[n] - v_start;
            uint2 e = (unsigned long)id < (unsigned long)v_count
                          ? *reinterpret_cast<const uint2 *>(wte + id * C + c)
                          : make_uint2(0u, 0u);
            uint2 p = wpe ? *reinterpret_cast<const uint2 *>(wpe + (long)t * C + c)
                          : make_uint2(0u, 0u);
            float4 o;
            o.x = __uint_as_float(e.x << 16) + __uint_as_float(p.x << 16);
            o.y = __uint_as_float(e.x & 0xffff0000u) + __uint_as_float(p.x & 0xffff0000u);
            o.z = __uint_as_float(e.y << 16) + __uint_as_float(p.y << 16);
            o.w = __uint_as_float(e.y & 0xffff0000u) + __uint_as_float(p.y & 0xffff0000u);
            *reinterpret_cast<float4 *>(out + n * C + c) = o;
        }
    } else {
        long total = (long)N * C;
        for (long i = tid; i < total; i += stride) {
            long n = i / C;
            int c = (int)(i - n * C);
            int t = (int)(n % T);
            long id = (long)inp[n] - v_start;
            float e = (unsigned long)id < (unsigned long)v_count ? ct__bf(wte[id * C + c]) : 0.0f;
            out[i] = e + (wpe ? ct__bf(wpe[(long)t * C + c]) : 0.0f);
        }
    }
}

/* dwte[inp[n], c] += dout[n, c], one thread per (n, c). */
static __global__ void ct__encoder_bwd_wte_kernel(float *__restrict__ dwte,
                                                  const float *__restrict__ dout,
                                                  const int32_t *__restrict__ inp, int N, int C,
                                                  int v_start, int v_count)
{
    long total = (long)N * C;
    long stride = (long)gridDim.x * blockDim.x;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        long n = i / C;
        int c = (int)(i - n * C);
        long id = (long)inp[n] - v_start;
        if ((unsigned long)id < (unsigned long)v_count) atomicAdd(dwte + id * C + c, dout[i]);
    }
}

/* dwpe[t, c] += sum over b of dout[b, t, c], one thread per (t, c), b in order. */
static __global__ void ct__encoder_bwd_wpe_kernel(float *__restrict__ dwpe,
                                                  const float *__restrict__ dout, int B, int T,
                                                  int C)
{
    long total = (long)T * C;
    long stride = (long)gridDim.x * blockDim.x;
    long bstride = (long)T * C;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        float acc = dwpe[i];
        for (int b = 0; b < B; b++) acc += dout[b * bstride + i];
        dwpe[i] = acc;
    }
}

void ct_cuda_encoder_forward_vp(float *out, const int32_t *inp, const ct_bf16_t *wte_shard,
                                const ct_bf16_t *wpe, int B, int T, int C, int v_start,
                                int v_count, void *stream)
{
    int N = B * T;
    if (N <= 0 || C <= 0) return;
    int vec = C % 4 == 0 && (uintptr_t)out % 16 == 0 && (uintptr_t)wte_shard % 8 == 0 &&
              (uintptr_t)wpe % 8 == 0;
    long work = vec ? (long)N * (C / 4) : (long)N * C;
    ct__encoder_fwd_kernel<<<enc_grid(work), CT_ENC_BLOCK, 0, ct__stream(stream)>>>(
        out, inp, wte_shard, wpe, N, T, C, v_start, v_count, vec);
    CT_CHECK_LAUNCH();
}

void ct_cuda_encoder_forward(float *out, const int32_t *inp, const ct_bf16_t *wte,
                             const ct_bf16_t *wpe, int B, int T, int C, void *stream)
{
    ct_cuda_encoder_forward_vp(out, inp, wte, wpe, B, T, C, 0, INT_MAX, stream);
}

void ct_cuda_encoder_backward_vp(float *dwte_shard, float *dwpe, const float *dout,
                                 const int32_t *inp, int B, int T, int C, int v_start,
                                 int v_count, void *stream)
{
    int N = B * T;
    if (N <= 0 || C <= 0) return;
    cudaStream_t s = ct__stream(stream);
    ct__encoder_bwd_wte_kernel<<<enc_grid((long)N * C), CT_ENC_BLOCK, 0, s>>>(
        dwte_shard, dout, inp, N, C, v_start, v_count);
    CT_CHECK_LAUNCH();
    if (!dwpe) return;
    ct__encoder_bwd_wpe_kernel<<<enc_grid((long)T * C), CT_ENC_BLOCK, 0, s>>>(dwpe, dout, B, T,
                                                                             C);
    CT_CHECK_LAUNCH();
}

void ct_cuda_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp,
                              int B, int T, int C, void *stream)
{
    ct_cuda_encoder_backward_vp(dwte, dwpe, dout, inp, B, T, C, 0, INT_MAX, stream);
}
