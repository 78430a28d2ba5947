/* Rotary position embedding on bf16, Hugging Face's rotate-half convention
 * (as kernels/cpu/rope.c), applied to the query and the key heads of a
 * token in one launch, in place: one thread per (row, head, pair i <
 * HS/2), cos and sin from the fp32 (maxT, HS/2) tables of ct_rope_table
 * (Llama 3's frequency scaling is in the table). The backward applies the
 * inverse rotation to dq and dk in place. Computed in fp32, rounded once. */
#include "kernels/cuda/cuda_common.cuh"

/* dir +1: rotate by the angle (forward); -1: by minus it (backward). */
static __global__ void ct__rope_kernel(ct_bf16_t *__restrict__ q, ct_bf16_t *__restrict__ k,
                                       const float *__restrict__ cos_t,
                                       const float *__restrict__ sin_t, long N, int T, int NH,
                                       int NKV, int HS, float dir)
{
    const int half = HS / 2, heads = NH + NKV;
    const long total = N * heads * half;
    for (long idx = (long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long)gridDim.x * blockDim.x) {
        int i = (int)(idx % half);
        long rh = idx / half;
        int h = (int)(rh % heads);
        long n = rh / heads;
        int t = (int)(n % T);
        ct_bf16_t *x = h < NH ? q + (n * NH + h) * HS : k + (n * NKV + (h - NH)) * HS;
        float c = cos_t[(long)t * half + i], s = dir * sin_t[(long)t * half + i];
        float x1 = ct__bf(x[i]), x2 = ct__bf(x[i + half]);
        x[i] = ct__to_bf(x1 * c - x2 * s);
        x[i + half] = ct__to_bf(x2 * c + x1 * s);
    }
}

static void rope_launch(ct_bf16_t *q, ct_bf16_t *k, const float *cos_t, const float *sin_t, int B,
                        int T, int NH, int NKV, int HS, float dir, void *stream)
{
    long N = (long)B * T, total = N * (NH + NKV) * (HS / 2);
    if (total <= 0) return;
    CT_ASSERT(HS % 2 == 0);
    ct__rope_kernel<<<ct__grid_stride_blocks(total, 256), 256, 0, ct__stream(stream)>>>(
        q, k, cos_t, sin_t, N, T, NH, NKV, HS, dir);
    CT_CHECK_LAUNCH();
}

void ct_cuda_rope_forward(ct_bf16_t *q, ct_bf16_t *k, const float *cos_t, const float *sin_t,
                          int B, int T, int NH, int NKV, int HS, void *stream)
{
    rope_launch(q, k, cos_t, sin_t, B, T, NH, NKV, HS, 1.0f, stream);
}

void ct_cuda_rope_backward(ct_bf16_t *dq, ct_bf16_t *dk, const float *cos_t, const float *sin_t,
                           int B, int T, int NH, int NKV, int HS, void *stream)
{
    rope_launch(dq, dk, cos_t, sin_t, B, T, NH, NKV, HS, -1.0f, stream);
}
