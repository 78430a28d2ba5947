/* Private to kernels/cuda/: the device context, the CT_CHECK_* macros for
 * CUDA and its libraries, bf16 helpers and block reductions shared by the
 * op files. Nothing here is visible outside kernels/. */
#ifndef CT_KERNELS_CUDA_COMMON_CUH
#define CT_KERNELS_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "core/log.h"
#include "kernels/kernels.h"

#define CT_CHECK_CUDA(stmt) CT_CHECK_GEN(cudaError_t, stmt, _rc == cudaSuccess, cudaGetErrorString(_rc))
#define CT_CHECK_CUBLAS(stmt)                                             \
    CT_CHECK_GEN(cublasStatus_t, stmt, _rc == CUBLAS_STATUS_SUCCESS, cublasLtGetStatusString(_rc))
/* After a kernel launch: catches bad launch configurations at once. */
#define CT_CHECK_LAUNCH() CT_CHECK_CUDA(cudaGetLastError())

struct ct_cuda {
    int device;
    char name[256];
    int cc_major, cc_minor, sm_count;
    double peak_tflops; /* bf16 dense, 0 if unknown */
    cublasLtHandle_t lt;
    void *lt_ws; /* cuBLASLt workspace */
    size_t lt_ws_bytes;
    ct_attn_impl_t attn; /* CT_ATTN_CUDNN or CT_ATTN_PLAIN, never AUTO */
    void *cudnn;         /* attention_cudnn.cu's state, NULL without cuDNN */
    float *attn_scratch; /* plain backward scratch, grown by prepare */
    size_t attn_scratch_floats;
    size_t peak_mem;
};

/* attention_cudnn.cu (or its stub in a build without cuDNN). */
int ct__cudnn_available(void);
CT_MUST_USE ct_status_t ct__cudnn_init(ct_cuda_t *ctx);
void ct__cudnn_free(ct_cuda_t *ctx);
CT_MUST_USE ct_status_t ct__cudnn_prepare(ct_cuda_t *ctx, int B, int T, int NH, int HS);
void ct__cudnn_attention_forward(ct_cuda_t *ctx, ct_bf16_t *out, float *stats,
                                 const ct_bf16_t *qkv, int B, int T, int NH, int HS,
                                 cudaStream_t stream);
void ct__cudnn_attention_backward(ct_cuda_t *ctx, ct_bf16_t *dqkv, const ct_bf16_t *dout,
                                  const ct_bf16_t *qkv, const ct_bf16_t *out, const float *stats,
                                  int B, int T, int NH, int HS, cudaStream_t stream);
/* Grouped-query attention on separate q (B,T,NH,HS) and k, v (B,T,NKV,HS)
 * buffers, key/value head h / (NH/NKV) for query head h (attention_gqa.cu
 * dispatches to these). */
CT_MUST_USE ct_status_t ct__cudnn_gqa_prepare(ct_cuda_t *ctx, int B, int T, int NH, int NKV, int HS);
void ct__cudnn_gqa_forward(ct_cuda_t *ctx, ct_bf16_t *out, float *stats, const ct_bf16_t *q,
                           const ct_bf16_t *k, const ct_bf16_t *v, int B, int T, int NH, int NKV,
                           int HS, cudaStream_t stream);
void ct__cudnn_gqa_backward(ct_cuda_t *ctx, ct_bf16_t *dq, ct_bf16_t *dk, ct_bf16_t *dv,
                            const ct_bf16_t *dout, const ct_bf16_t *q, const ct_bf16_t *k,
                            const ct_bf16_t *v, const ct_bf16_t *out, const float *stats, int B,
                            int T, int NH, int NKV, int HS, cudaStream_t stream);

static inline cudaStream_t ct__stream(void *s) { return (cudaStream_t)s; }
static inline int ct__ceil_div(long a, long b) { return (int)((a + b - 1) / b); }

/* The flash attention kernels apply (attention.cu and attention_gqa.cu
 * dispatch on this): a head size they are built for, and 16-byte aligned
 * tensors for their 128-bit loads and stores (row strides are whole heads,
 * multiples of 16 elements, for every supported head size). */
static inline int ct__use_flash(int HS, const void *a, const void *b, const void *c,
                                const void *d, const void *e = nullptr,
                                const void *f = nullptr, const void *g = nullptr,
                                const void *h = nullptr)
{
    uintptr_t any = (uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d | (uintptr_t)e |
                    (uintptr_t)f | (uintptr_t)g | (uintptr_t)h;
    return ct_cuda_attention_flash_supports(HS) && (any & 15u) == 0;
}

/* Blocks for a grid-stride loop over `work` items with `block` threads:
 * one item per thread, at least 1 block, at most 65536 (the loop covers the
 * rest). */
#define CT__MAX_GRID 65536L
static inline int ct__grid_stride_blocks(long work, int block)
{
    long g = (work + block - 1) / block;
    if (g < 1) g = 1;
    return (int)(g < CT__MAX_GRID ? g : CT__MAX_GRID);
}

/* 128-bit packs of bf16 / fp32 for vectorised loads and stores. */
struct __align__(16) ct__bf16x8 { __nv_bfloat16 v[8]; };
struct __align__(16) ct__f32x4 { float v[4]; };

__device__ __forceinline__ float ct__bf(ct_bf16_t x)
{
    return __uint_as_float(((unsigned)x) << 16);
}
__device__ __forceinline__ ct_bf16_t ct__to_bf(float x)
{
    __nv_bfloat16 b = __float2bfloat16_rn(x);
    return *reinterpret_cast<ct_bf16_t *>(&b);
}

__device__ __forceinline__ float ct__warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float ct__warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread
 * gets the result. `sh` holds 32 floats; the call ends with a barrier so
 * `sh` may be reused by the next reduction. */
__device__ __forceinline__ float ct__block_sum(float v, float *sh)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = ct__warp_sum(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    v = ct__warp_sum(v);
    __syncthreads();
    return v;
}
__device__ __forceinline__ float ct__block_max(float v, float *sh)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = ct__warp_max(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    v = ct__warp_max(v);
    __syncthreads();
    return v;
}

/* GELU, tanh approximation, and its derivative (as kernels/cpu/gelu.c). */
#define CT__GELU_K 0.7978845608028654f /* sqrt(2/pi) */
__device__ __forceinline__ float ct__gelu(float x)
{
    float u = CT__GELU_K * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}
__device__ __forceinline__ float ct__gelu_grad(float x)
{
    float u = CT__GELU_K * (x + 0.044715f * x * x * x);
    float th = tanhf(u), sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * CT__GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
}

#endif
