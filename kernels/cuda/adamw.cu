/* AdamW on fp32 master weights (kernels/cpu/adamw.c's math: bias correction
 * with the 1-based step, decoupled weight decay lr*wd*param) with
 * gradient-norm clipping read from a device scalar, an optional bf16 copy
 * of the new weights (round to nearest even, or stochastic rounding from a
 * counter-based hash of seed and index), and the deterministic two-pass sum
 * of squares that feeds the clipping. Leaves out AMSGrad, per-tensor
 * learning rates and fused multi-tensor launches: callers slice. */
#include <math.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/sizes.h"

#define CT__ADAMW_THREADS 256
#define CT__ADAMW_MAX_BLOCKS (1L << 20)

/* sumsq pass 1's block count (ct__sumsq_blocks) is in sizes.h */
#define CT__SUMSQ_THREADS 256

/* splitmix64's finaliser over (seed, index): a counter-based hash. */
static __device__ __forceinline__ uint32_t ct__sr_hash(uint32_t seed, long i)
{
    uint64_t z = (uint64_t)i + (uint64_t)seed * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z >> 32);
}

/* fp32 -> bf16 by stochastic rounding: add 16 random bits below the kept
 * mantissa, then truncate. NaN and Inf convert plainly. */
static __device__ __forceinline__ ct_bf16_t ct__to_bf_stochastic(float x, uint32_t seed, long i)
{
    if (!isfinite(x)) return ct__to_bf(x);
    uint32_t bits = __float_as_uint(x);
    bits += ct__sr_hash(seed, i) & 0xFFFFu;
    return (ct_bf16_t)(bits >> 16);
}

static __global__ void ct__adamw_kernel(float *__restrict__ master,
                                        ct_bf16_t *__restrict__ params_bf16,
                                        const float *__restrict__ grads, float *__restrict__ m,
                                        float *__restrict__ v, long n, float lr, float beta1,
                                        float beta2, float bc1, float bc2, float eps,
                                        float weight_decay, const float *__restrict__ sumsq,
                                        float grad_clip, uint32_t seed)
{
    float ss = sumsq ? *sumsq : 0.0f; /* NULL: no clipping, no check */
    if (!isfinite(ss)) return;
    float scale = 1.0f;
    if (grad_clip > 0.0f && sumsq) {
        float norm = sqrtf(ss);
        if (norm > grad_clip) scale = grad_clip / norm;
    }
    long stride = (long)gridDim.x * blockDim.x;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float g = grads[i] * scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        float mhat = mi / bc1;
        float vhat = vi / bc2;
        m[i] = mi;
        v[i] = vi;
        float p = master[i];
        p -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p);
        master[i] = p;
        if (params_bf16) params_bf16[i] = seed ? ct__to_bf_stochastic(p, seed, i) : ct__to_bf(p);
    }
}

void ct_cuda_adamw_update(float *master, ct_bf16_t *params_bf16, const float *grads, float *m,
                          float *v, long n, float lr, float beta1, float beta2, float eps,
                          float weight_decay, int t, const float *sumsq, float grad_clip,
                          uint32_t seed, void *stream)
{
    if (n <= 0) return;
    CT_ASSERT(t >= 1);
    /* As the CPU code: the bias corrections in float from powf. */
    float bc1 = 1.0f - powf(beta1, (float)t);
    float bc2 = 1.0f - powf(beta2, (float)t);
    long blocks = (n + CT__ADAMW_THREADS - 1) / CT__ADAMW_THREADS;
    if (blocks > CT__ADAMW_MAX_BLOCKS) blocks = CT__ADAMW_MAX_BLOCKS;
    ct__adamw_kernel<<<(unsigned)blocks, CT__ADAMW_THREADS, 0, ct__stream(stream)>>>(
        master, params_bf16, grads, m, v, n, lr, beta1, beta2, bc1, bc2, eps, weight_decay,
        sumsq, grad_clip, seed);
    CT_CHECK_LAUNCH();
}

/* ct_cuda_sumsq_scratch_floats: kernels/cpu/cuda_sizes.c */

/* Pass 1: block b sums x[i]^2 for i in the grid-stride sequence starting at
 * b*256 + tid, in order per thread, then over the block by a fixed tree. */
static __global__ void ct__sumsq_partial_kernel(float *__restrict__ partial,
                                                const float *__restrict__ x, long n)
{
    __shared__ float sh[32];
    long stride = (long)gridDim.x * blockDim.x;
    float s = 0.0f;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float xi = x[i];
        s = fmaf(xi, xi, s);
    }
    s = ct__block_sum(s, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/* Pass 2: one block adds the nparts partials in a fixed order. */
static __global__ void ct__sumsq_final_kernel(float *__restrict__ out,
                                              const float *__restrict__ partial, int nparts,
                                              int accumulate)
{
    __shared__ float sh[32];
    float s = 0.0f;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) s += partial[i];
    s = ct__block_sum(s, sh);
    if (threadIdx.x == 0) *out = accumulate ? *out + s : s;
}

void ct_cuda_sumsq(float *out, const float *x, long n, int accumulate, float *scratch,
                   void *stream)
{
    cudaStream_t st = ct__stream(stream);
    if (n <= 0) {
        if (!accumulate) CT_CHECK_CUDA(cudaMemsetAsync(out, 0, sizeof(float), st));
        return;
    }
    int nb = (int)ct__sumsq_blocks(n);
    ct__sumsq_partial_kernel<<<nb, CT__SUMSQ_THREADS, 0, st>>>(scratch, x, n);
    CT_CHECK_LAUNCH();
    ct__sumsq_final_kernel<<<1, CT__SUMSQ_THREADS, 0, st>>>(out, scratch, nb, accumulate);
    CT_CHECK_LAUNCH();
}
