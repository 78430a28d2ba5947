/* Stand-in for attention_cudnn.cu in a build without cuDNN or the
 * cudnn-frontend headers: the context never selects the cuDNN path, so
 * init and prepare report CT_ERR_UNSUPPORTED and the kernels are
 * unreachable. */
#include "kernels/cuda/cuda_common.cuh"

int ct__cudnn_available(void) { return 0; }

ct_status_t ct__cudnn_init(ct_cuda_t *ctx)
{
    (void)ctx;
    CT_LOG_ERROR("cuDNN attention was requested, but this build has no cuDNN (configure with "
                 "cuDNN and the cudnn-frontend headers, or use the plain attention kernels)");
    return CT_ERR_UNSUPPORTED;
}

void ct__cudnn_free(ct_cuda_t *ctx) { (void)ctx; }

ct_status_t ct__cudnn_prepare(ct_cuda_t *ctx, int B, int T, int NH, int HS)
{
    (void)ctx;
    CT_LOG_ERROR("cuDNN attention for B=%d T=%d NH=%d HS=%d: this build has no cuDNN", B, T, NH,
                 HS);
    return CT_ERR_UNSUPPORTED;
}

void ct__cudnn_attention_forward(ct_cuda_t *ctx, ct_bf16_t *out, float *stats,
                                 const ct_bf16_t *qkv, int B, int T, int NH, int HS,
                                 cudaStream_t stream)
{
    (void)ctx, (void)out, (void)stats, (void)qkv, (void)stream;
    ct__fatal(__FILE__, __LINE__, __func__,
              "cuDNN attention forward (B=%d T=%d NH=%d HS=%d) in a build without cuDNN", B, T,
              NH, HS);
}

void ct__cudnn_attention_backward(ct_cuda_t *ctx, ct_bf16_t *dqkv, const ct_bf16_t *dout,
                                  const ct_bf16_t *qkv, const ct_bf16_t *out, const float *stats,
                                  int B, int T, int NH, int HS, cudaStream_t stream)
{
    (void)ctx, (void)dqkv, (void)dout, (void)qkv, (void)out, (void)stats, (void)stream;
    ct__fatal(__FILE__, __LINE__, __func__,
              "cuDNN attention backward (B=%d T=%d NH=%d HS=%d) in a build without cuDNN", B, T,
              NH, HS);
}

ct_status_t ct__cudnn_gqa_prepare(ct_cuda_t *ctx, int B, int T, int NH, int NKV, int HS)
{
    (void)ctx;
    CT_LOG_DEBUG("cuDNN attention for B=%d T=%d NH=%d NKV=%d HS=%d: this build has no cuDNN", B,
                 T, NH, NKV, HS);
    return CT_ERR_UNSUPPORTED;
}

void ct__cudnn_gqa_forward(ct_cuda_t *ctx, ct_bf16_t *out, float *stats, const ct_bf16_t *q,
                           const ct_bf16_t *k, const ct_bf16_t *v, int B, int T, int NH, int NKV,
                           int HS, cudaStream_t stream)
{
    (void)ctx, (void)out, (void)stats, (void)q, (void)k, (void)v, (void)stream;
    ct__fatal(__FILE__, __LINE__, __func__,
              "cuDNN GQA forward (B=%d T=%d NH=%d NKV=%d HS=%d) in a build without cuDNN", B, T,
              NH, NKV, HS);
}

void ct__cudnn_gqa_backward(ct_cuda_t *ctx, ct_bf16_t *dq, ct_bf16_t *dk, ct_bf16_t *dv,
                            const ct_bf16_t *dout, const ct_bf16_t *q, const ct_bf16_t *k,
                            const ct_bf16_t *v, const ct_bf16_t *out, const float *stats, int B,
                            int T, int NH, int NKV, int HS, cudaStream_t stream)
{
    (void)ctx, (void)dq, (void)dk, (void)dv, (void)dout, (void)q, (void)k, (void)v, (void)out;
    (void)stats, (void)stream;
    ct__fatal(__FILE__, __LINE__, __func__,
              "cuDNN GQA backward (B=%d T=%d NH=%d NKV=%d HS=%d) in a build without cuDNN", B, T,
              NH, NKV, HS);
}
