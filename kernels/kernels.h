/* Tensor ops for the GPT-2 and Llama forward and backward passes, fp32 on
 * the CPU.
 *
 * Each op has a fast version (OpenBLAS sgemm for matmuls, OpenMP elsewhere)
 * and, where the two differ, a plain-loop reference `*_ref` that tests
 * compare against. Dimension letters follow llm.c: B batch, T time,
 * C channels, OC output channels, V real vocab, Vp padded vocab, NH heads,
 * HS head size, N = B*T rows.
 *
 * Conventions:
 * - Forward ops overwrite their outputs.
 * - Backward ops ACCUMULATE (+=) into every gradient they write, parameter
 *   and input gradients alike, so callers zero gradients once and gradient
 *   accumulation and residual branches need no extra adds.
 * - Pointers never alias unless a function says so.
 * - All functions are thread-safe for distinct outputs; the fast versions
 *   use OpenMP/OpenBLAS threads internally. */
#ifndef CT_KERNELS_KERNELS_H
#define CT_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- token + position embedding ---------------------------------------- */
/* out[b,t,:] = wte[inp[b,t],:] + wpe[t,:] */
void ct_encoder_forward(float *out,            /* (B,T,C) */
                        const int32_t *inp,    /* (B,T) token ids < Vp */
                        const float *wte,      /* (Vp,C) */
                        const float *wpe,      /* (maxT,C), T <= maxT */
                        int B, int T, int C);
void ct_encoder_backward(float *dwte,          /* (Vp,C) += */
                         float *dwpe,          /* (maxT,C) += */
                         const float *dout,    /* (B,T,C) */
                         const int32_t *inp,   /* (B,T) */
                         int B, int T, int C);

/* Vocab-parallel embedding: this rank holds rows [v_start, v_start+v_count)
 * of wte; other tokens contribute 0 (the TP group then all-reduces). wpe and
 * dwpe may be NULL (position embedding added on one rank only). */
void ct_encoder_forward_vp(float *out, const int32_t *inp, const float *wte_shard,
                           const float *wpe, int B, int T, int C, int v_start, int v_count);
void ct_encoder_backward_vp(float *dwte_shard, float *dwpe, const float *dout,
                            const int32_t *inp, int B, int T, int C, int v_start, int v_count);

/* ---- LayerNorm over the last dimension, eps 1e-5 ------------------------ */
void ct_layernorm_forward(float *out,          /* (N,C) */
                          float *mean,         /* (N) saved for backward */
                          float *rstd,         /* (N) saved for backward */
                          const float *inp,    /* (N,C) */
                          const float *weight, /* (C) */
                          const float *bias,   /* (C) */
                          int N, int C);
void ct_layernorm_backward(float *dinp,        /* (N,C) += */
                           float *dweight,     /* (C) += */
                           float *dbias,       /* (C) += */
                           const float *dout,  /* (N,C) */
                           const float *inp, const float *weight,
                           const float *mean, const float *rstd, int N, int C);

/* ---- matmul with optional bias: out = inp @ weight^T + bias ------------- */
void ct_matmul_forward(float *out,             /* (N,OC) */
                       const float *inp,       /* (N,C) */
                       const float *weight,    /* (OC,C) */
                       const float *bias,      /* (OC) or NULL */
                       int N, int C, int OC);
void ct_matmul_forward_ref(float *out, const float *inp, const float *weight,
                           const float *bias, int N, int C, int OC);
/* dinp may be NULL (no input gradient needed); dbias may be NULL. */
void ct_matmul_backward(float *dinp,           /* (N,C) += */
                        float *dweight,        /* (OC,C) += */
                        float *dbias,          /* (OC) += or NULL */
                        const float *dout,     /* (N,OC) */
                        const float *inp,      /* (N,C) */
                        const float *weight,   /* (OC,C) */
                        int N, int C, int OC);
void ct_matmul_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int C, int OC);

/* ---- causal multi-head self-attention ----------------------------------
 * qkv holds, per token, NH query heads, then NH key heads, then NH value
 * heads, each HS wide (llm.c's layout: q at [0,C), k at [C,2C), v at [2C,3C)
 * with C = NH*HS). att keeps the softmax probabilities for the backward
 * pass; entries above the diagonal are written as 0. Scale is 1/sqrt(HS). */
void ct_attention_forward(float *out,          /* (B,T,C) */
                          float *att,          /* (B,NH,T,T) */
                          const float *qkv,    /* (B,T,3C) */
                          int B, int T, int NH, int HS);
void ct_attention_forward_ref(float *out, float *att, const float *qkv, int B, int T, int NH,
                              int HS);
/* scratch: at least ct_attention_scratch_floats(B, T, NH) floats, contents
 * undefined on entry and exit. */
void ct_attention_backward(float *dqkv,        /* (B,T,3C) += */
                           const float *dout,  /* (B,T,C) */
                           const float *qkv,   /* (B,T,3C) */
                           const float *att,   /* (B,NH,T,T) from forward */
                           float *scratch, int B, int T, int NH, int HS);
void ct_attention_backward_ref(float *dqkv, const float *dout, const float *qkv,
                               const float *att, float *scratch, int B, int T, int NH, int HS);
long ct_attention_scratch_floats(int B, int T, int NH);

/* ---- GELU, tanh approximation ------------------------------------------- */
void ct_gelu_forward(float *out, const float *inp, long n);
void ct_gelu_backward(float *dinp /* += */, const float *inp, const float *dout, long n);

/* ---- residual: out = a + b ---------------------------------------------- */
void ct_residual_forward(float *out, const float *a, const float *b, long n);
/* out (N, C) = inp + bias (C); bias may be NULL; out may equal inp. */
void ct_add_bias(float *out, const float *inp, const float *bias, int N, int C);
/* da += dout and db += dout. */
void ct_residual_backward(float *da, float *db, const float *dout, long n);

/* ---- fused softmax + cross-entropy over the first V of Vp columns --------
 * Forward writes per-row losses and the row log-sum-exp; the probabilities
 * are never stored. Backward turns logits into dlogits IN PLACE:
 * dlogits[i,v] = (softmax(logits[i])[v] - [v == target[i]]) * dloss[i] for
 * v < V, and 0 for the padding columns V..Vp-1. */
void ct_xent_forward(float *losses,            /* (N) */
                     float *lse,               /* (N) saved for backward */
                     const float *logits,      /* (N,Vp) */
                     const int32_t *targets,   /* (N), each < V */
                     int N, int V, int Vp);
void ct_xent_backward(float *logits_to_dlogits, /* (N,Vp) in place */
                      const float *lse,        /* (N) */
                      const int32_t *targets,  /* (N) */
                      const float *dloss,      /* (N) */
                      int N, int V, int Vp);
void ct_xent_forward_ref(float *losses, float *lse, const float *logits,
                         const int32_t *targets, int N, int V, int Vp);
/* Vocab-parallel pieces (Megatron's parallel cross-entropy): a rank holds
 * (N, Vpl) logits for vocabulary ids [v_start, v_start+Vpl), of which the
 * first Vl are real (Vl may be 0). The caller all-reduces MAX over rowmax,
 * then SUM over sumexp and target logits, and sets lse = max + log(sum).
 * A target outside the shard contributes 0 to tlogit. */
void ct_xent_partial_max(float *rowmax, const float *logits, int N, int Vl, int Vpl);
void ct_xent_partial_sumexp(float *sumexp, const float *logits, const float *rowmax, int N,
                            int Vl, int Vpl);
void ct_xent_partial_target(float *tlogit, const float *logits, const int32_t *targets, int N,
                            int v_start, int Vl, int Vpl);
/* The statistics and combination of the CUDA path's vocab-parallel
 * cross-entropy (ct_cuda_xent_vp_*; one all-gather instead of three
 * all-reduces): stats (N, 3) = the shard's row max over its Vl real
 * columns, sum of exp(x - max), target logit or 0; finish combines
 * all_stats (tp, N, 3) in rank order into lse and losses. */
void ct_xent_vp_stats(float *stats, const float *logits, const int32_t *targets, int N,
                      int v_start, int Vl, int Vpl);
void ct_xent_vp_finish(float *losses, float *lse, const float *all_stats, int N, int tp);
/* Backward of a shard, in place; ct_xent_backward is v_start 0, Vl = V. */
void ct_xent_backward_vp(float *logits_to_dlogits, const float *lse, const int32_t *targets,
                         const float *dloss, int N, int v_start, int Vl, int Vpl);

/* ---- AdamW on a contiguous slice ---------------------------------------
 * t is the 1-based step used for bias correction. In place on params, m, v. */
void ct_adamw_update(float *params, const float *grads, float *m, float *v, long n, float lr,
                     float beta1, float beta2, float eps, float weight_decay, int t);
void ct_adamw_update_ref(float *params, const float *grads, float *m, float *v, long n,
                         float lr, float beta1, float beta2, float eps, float weight_decay,
                         int t);

/* Sum of squares in double, for gradient-norm clipping. */
double ct_sumsq(const float *x, long n);
/* x *= s */
void ct_scale(float *x, float s, long n);

/* ======================================================================== *
 * Llama-family ops (fp32, CPU): RMSNorm, rotary position embedding,
 * SwiGLU and grouped-query attention, each with a plain-loop reference
 * `*_ref`. Same conventions as above: forward ops overwrite, backward ops
 * accumulate (+=), no aliasing unless stated.
 * ======================================================================== */

/* ---- RMSNorm over the last dimension ------------------------------------
 * out = inp * rstd * weight with rstd = 1 / sqrt(mean(inp^2) + eps) per
 * row (no mean subtraction, no bias; the mean square in fp32 as Hugging
 * Face's LlamaRMSNorm). dweight is summed over rows in order, whatever
 * the thread count. */
void ct_rmsnorm_forward(float *out,            /* (N,C) */
                        float *rstd,           /* (N) saved for backward */
                        const float *inp,      /* (N,C) */
                        const float *weight,   /* (C) */
                        int N, int C, float eps);
void ct_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight, int N,
                            int C, float eps);
void ct_rmsnorm_backward(float *dinp,          /* (N,C) += */
                         float *dweight,       /* (C) += */
                         const float *dout,    /* (N,C) */
                         const float *inp, const float *weight, const float *rstd, int N, int C);
void ct_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp,
                             const float *weight, const float *rstd, int N, int C);

/* ---- rotary position embedding, Hugging Face's rotate-half convention ----
 * Within each head of HS channels, channel i < HS/2 pairs with i + HS/2 and
 * rotates by the angle t * inv_freq[i] at position t:
 *   out[i]        = x[i] cos - x[i + HS/2] sin
 *   out[i + HS/2] = x[i + HS/2] cos + x[i] sin.
 * ct_rope_inv_freq writes inv_freq[i] = theta^(-2i/HS) (HS/2 values), in
 * fp32 as transformers computes it, with Llama 3's frequency scaling when
 * llama3 is set (wavelengths above original/low_freq_factor divided by
 * factor, below original/high_freq_factor kept, blended in between).
 * ct_rope_table writes cos and sin of the fp32 angle (float)(t * inv_freq)
 * for t in [0, maxT), (maxT, HS/2) each. */
void ct_rope_inv_freq(float *inv_freq, int HS, float theta, int llama3, float factor,
                      float low_freq_factor, float high_freq_factor, int original_max_seq_len);
void ct_rope_table(float *cos_t, float *sin_t, const float *inv_freq, int maxT, int HS);
/* x holds (B,T) rows of NH heads of HS; row n is position n % T. out may
 * equal inp (in place). */
void ct_rope_forward(float *out, const float *inp, const float *cos_t, const float *sin_t, int B,
                     int T, int NH, int HS);
void ct_rope_forward_ref(float *out, const float *inp, const float *cos_t, const float *sin_t,
                         int B, int T, int NH, int HS);
/* dinp += the inverse rotation of dout; dinp must not alias dout. */
void ct_rope_backward(float *dinp, const float *dout, const float *cos_t, const float *sin_t,
                      int B, int T, int NH, int HS);
void ct_rope_backward_ref(float *dinp, const float *dout, const float *cos_t,
                          const float *sin_t, int B, int T, int NH, int HS);

/* ---- SwiGLU: out = silu(gate) * up, silu(x) = x * sigmoid(x) -------------- */
void ct_swiglu_forward(float *out, const float *gate, const float *up, long n);
void ct_swiglu_forward_ref(float *out, const float *gate, const float *up, long n);
/* dgate += dout * up * silu'(gate); dup += dout * silu(gate). */
void ct_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, long n);
void ct_swiglu_backward_ref(float *dgate, float *dup, const float *dout, const float *gate,
                            const float *up, long n);

/* ---- causal grouped-query self-attention ------------------------------------
 * q holds NH query heads per token, k and v NKV key/value heads, each HS
 * wide, in separate buffers: q (B,T,NH*HS), k and v (B,T,NKV*HS). Query
 * head h reads key/value head (q_head0 + h) / group, which must be below
 * NKV; the heads are shared, never copied. One process passes
 * group = NH/NKV and q_head0 = 0; a tensor-parallel rank holding query
 * heads [h0, h0 + NH) of a model with G query heads per key/value head
 * passes group = G and q_head0 = h0 - (its first key/value head) * G.
 * With NKV == NH and group 1 this is plain multi-head attention. att keeps
 * the softmax probabilities (B,NH,T,T), 0 above the diagonal. Scale
 * 1/sqrt(HS). out (B,T,NH*HS). */
void ct_gqa_forward(float *out, float *att, const float *q, const float *k, const float *v, int B,
                    int T, int NH, int NKV, int HS, int group, int q_head0);
void ct_gqa_forward_ref(float *out, float *att, const float *q, const float *k, const float *v,
                        int B, int T, int NH, int NKV, int HS, int group, int q_head0);
/* dq (B,T,NH*HS), dk and dv (B,T,NKV*HS) +=; a key/value head's gradient
 * sums over the query heads that read it, in head order. scratch: at least
 * ct_attention_scratch_floats(B, T, NH) floats, undefined on entry and
 * exit. */
void ct_gqa_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                     const float *k, const float *v, const float *att, float *scratch, int B,
                     int T, int NH, int NKV, int HS, int group, int q_head0);
void ct_gqa_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                         const float *k, const float *v, const float *att, float *scratch, int B,
                         int T, int NH, int NKV, int HS, int group, int q_head0);

/* ======================================================================== *
 * CUDA twins (kernels/cuda/, one op family per .cu file), bf16 with fp32
 * accumulation. Built when CMake enables CUDA (-DCT_CUDA=AUTO|ON); a build
 * without it has only ct_cuda_device_count(), which returns 0.
 *
 * Precision: weights and activations feeding matmuls are bf16; the
 * residual stream, LayerNorm statistics, losses, parameter gradients,
 * master weights and AdamW state are fp32; reductions accumulate in fp32.
 * Conventions (differing from the CPU ops where noted):
 * - every pointer is device memory unless it says host; `stream` is a
 *   cudaStream_t (NULL: the legacy default stream);
 * - calls only enqueue work on `stream`; none synchronises the host unless
 *   it says so, none allocates device memory (scratch is passed in);
 * - parameter gradients (fp32) ACCUMULATE (+=); activation gradients in
 *   bf16 are OVERWRITTEN; the fp32 residual-stream gradient accumulates.
 * Dimension letters as above. Errors in CUDA calls are programmer/device
 * errors: CT_CHECK_CUDA aborts the job with the failing statement.
 * ======================================================================== */
typedef uint16_t ct_bf16_t;         /* bf16 bit pattern (device buffers) */
typedef struct ct_cuda ct_cuda_t;   /* a device context: handles, workspace */

typedef enum { CT_ATTN_AUTO = 0, CT_ATTN_CUDNN = 1, CT_ATTN_PLAIN = 2 } ct_attn_impl_t;

/* Devices usable by this process: 0 in a build without CUDA, without a
 * driver, or with no GPU. Never aborts; safe on any machine. */
int ct_cuda_device_count(void);

/* Context on device `device`: selects it for the calling thread, creates
 * the cuBLASLt handle (and cuDNN handle when built with cuDNN), a 32 MiB
 * matmul workspace and the attention implementation's state. attn AUTO
 * picks cuDNN when the build has it, else the plain kernels. Returns
 * CT_ERR_UNSUPPORTED (logged) for CUDNN in a build without cuDNN, or a
 * device below compute capability 8.0. *ctx_p written only on success. */
CT_MUST_USE ct_status_t ct_cuda_init(int device, ct_attn_impl_t attn, ct_cuda_t **ctx_p);
void ct_cuda_free(ct_cuda_t *ctx);
/* Device bytes ct_cuda_init allocates (the matmul workspace). This and the
 * *_scratch_floats sizes below are plain arithmetic, defined in every build
 * (with or without CUDA), so device memory can be planned without a GPU. */
size_t ct_cuda_context_bytes(void);
/* Device name, bf16 dense peak (TFLOP/s, 0 if not in the table of known
 * GPUs: A100, H100 SXM/PCIe, H200, B200), and the attention path in use. */
const char *ct_cuda_device_name(const ct_cuda_t *ctx);
double ct_cuda_peak_bf16_tflops(const ct_cuda_t *ctx);
ct_attn_impl_t ct_cuda_attn_impl(const ct_cuda_t *ctx);
/* Peak bytes of device memory in use since init (cudaMemGetInfo sampled at
 * every ct_cuda_alloc and by ct_cuda_sample_memory). */
size_t ct_cuda_peak_memory(ct_cuda_t *ctx);
void ct_cuda_sample_memory(ct_cuda_t *ctx);

/* Device memory, allocated outside training steps. `what` names the buffer
 * in the out-of-memory error (CT_ERR_NO_MEMORY, logged with the size and
 * the free memory). */
CT_MUST_USE ct_status_t ct_cuda_alloc(ct_cuda_t *ctx, size_t bytes, const char *what, void **ptr_p);
void ct_cuda_dealloc(void *ptr);
/* Asynchronous copy in any direction (cudaMemcpyDefault) / memset 0. */
void ct_cuda_copy(void *dst, const void *src, size_t bytes, void *stream);
void ct_cuda_zero(void *ptr, size_t bytes, void *stream);
/* Blocks the host until `stream`'s work is done. */
void ct_cuda_stream_sync(void *stream);
/* Streams and events (cudaEventDisableTiming). */
void *ct_cuda_stream_create(void);
void ct_cuda_stream_destroy(void *stream);
void *ct_cuda_event_create(void);
void ct_cuda_event_destroy(void *event);
/* An event that records time (ct_cuda_event_create's do not, which makes
 * them cheaper), and the milliseconds between two such events, both
 * recorded and completed (synchronous). */
void *ct_cuda_timing_event_create(void);
float ct_cuda_event_elapsed_ms(void *start, void *end);
void ct_cuda_event_record(void *event, void *stream);
void ct_cuda_stream_wait_event(void *stream, void *event);

/* fp32 <-> bf16 (round to nearest even). */
void ct_cuda_f32_to_bf16(ct_bf16_t *dst, const float *src, long n, void *stream);
void ct_cuda_bf16_to_f32(float *dst, const ct_bf16_t *src, long n, void *stream);
/* out (N, C) bf16 = inp (fp32) + bias (C, bf16; NULL: none), rounded to
 * nearest even (CPU twin: ct_add_bias). */
void ct_cuda_bias_to_bf16(ct_bf16_t *out, const float *inp, const ct_bf16_t *bias, int N, int C,
                          void *stream);

/* ---- encoder.cu -------------------------------------------------------- */
/* out[b,t,:] = wte[inp[b,t],:] + wpe[t,:] (fp32 residual stream). */
void ct_cuda_encoder_forward(float *out, const int32_t *inp, const ct_bf16_t *wte,
                             const ct_bf16_t *wpe, int B, int T, int C, void *stream);
/* dwte, dwpe (fp32) += from dout (fp32). dwte rows use atomics (summation
 * order is not fixed); dwpe is deterministic. */
void ct_cuda_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp,
                              int B, int T, int C, void *stream);
/* Vocab-parallel twins of ct_encoder_forward_vp / ct_encoder_backward_vp:
 * wte rows [v_start, v_start + v_count) only; wpe and dwpe may be NULL. */
void ct_cuda_encoder_forward_vp(float *out, const int32_t *inp, const ct_bf16_t *wte_shard,
                                const ct_bf16_t *wpe, int B, int T, int C, int v_start,
                                int v_count, void *stream);
void ct_cuda_encoder_backward_vp(float *dwte_shard, float *dwpe, const float *dout,
                                 const int32_t *inp, int B, int T, int C, int v_start,
                                 int v_count, void *stream);

/* ---- layernorm.cu (eps 1e-5) ------------------------------------------- */
/* out = LN(inp); row_bf (NULL: not written) = bf16(inp), the input kept
 * for the backward. */
void ct_cuda_layernorm_forward(ct_bf16_t *out, float *mean, float *rstd, ct_bf16_t *row_bf,
                               const float *inp, const ct_bf16_t *weight, const ct_bf16_t *bias,
                               int N, int C, void *stream);
/* Fused residual + LayerNorm: res_out = res_in + x; out = LN(res_out);
 * row_bf (NULL: not written) = bf16(res_out). res_out may equal res_in (in
 * place). */
void ct_cuda_residual_layernorm_forward(float *res_out, ct_bf16_t *out, float *mean,
                                        float *rstd, ct_bf16_t *row_bf, const float *res_in,
                                        const ct_bf16_t *x, const ct_bf16_t *weight,
                                        const ct_bf16_t *bias, int N, int C, void *stream);
/* dinp (fp32) += the input gradient; dinp_bf16, when not NULL, then gets a
 * bf16 copy of the updated dinp (the next matmul's dout). dweight, dbias
 * (fp32) +=, reduced deterministically through `scratch`
 * (ct_cuda_layernorm_scratch_floats(N, C) floats). */
void ct_cuda_layernorm_backward(float *dinp, ct_bf16_t *dinp_bf16, float *dweight, float *dbias,
                                const ct_bf16_t *dout, const float *inp,
                                const ct_bf16_t *weight, const float *mean, const float *rstd,
                                float *scratch, int N, int C, void *stream);
/* The same with the input in bf16: the GPU model keeps each LayerNorm's
 * input as a bf16 copy (ct_cuda_residual_layernorm_forward's row_bf). */
void ct_cuda_layernorm_backward_bf16in(float *dinp, ct_bf16_t *dinp_bf16, float *dweight,
                                       float *dbias, const ct_bf16_t *dout,
                                       const ct_bf16_t *inp, const ct_bf16_t *weight,
                                       const float *mean, const float *rstd, float *scratch,
                                       int N, int C, void *stream);
long ct_cuda_layernorm_scratch_floats(int N, int C);

/* ---- gelu.cu (tanh approximation) --------------------------------------- */
void ct_cuda_gelu_forward(ct_bf16_t *out, const ct_bf16_t *inp, long n, void *stream);
/* dinp = gelu'(inp) * dout; dinp may equal dout (in place). */
void ct_cuda_gelu_backward(ct_bf16_t *dinp, const ct_bf16_t *inp, const ct_bf16_t *dout, long n,
                           void *stream);

/* ---- residual.cu -------------------------------------------------------- */
/* out = a + b (fp32 + bf16 -> fp32); out may equal a. */
void ct_cuda_residual_forward(float *out, const float *a, const ct_bf16_t *b, long n,
                              void *stream);

/* ---- matmul.cu (cuBLASLt, bf16 in, fp32 compute) -------------------------
 * out = inp @ weight^T + bias. With pre_gelu non-NULL the GELU epilogue is
 * fused: pre_gelu gets inp @ weight^T + bias and out gets gelu of it.
 * bias may be NULL. OC must be a multiple of 8 when pre_gelu is set (and C
 * when it is passed to the backward). */
void ct_cuda_matmul_forward(ct_cuda_t *ctx, ct_bf16_t *out, ct_bf16_t *pre_gelu,
                            const ct_bf16_t *inp, const ct_bf16_t *weight,
                            const ct_bf16_t *bias, int N, int C, int OC, void *stream);
/* dinp (bf16, overwritten; NULL to skip) = dout @ weight, times
 * gelu'(pre_gelu) when pre_gelu is non-NULL (the DGELU epilogue: pre_gelu
 * is the forward input of the GELU that produced this matmul's inp).
 * dweight (fp32) += dout^T @ inp. dbias (fp32, NULL to skip) += column sums
 * of dout, reduced deterministically through `scratch`
 * (ct_cuda_matmul_scratch_floats(N, OC) floats). */
void ct_cuda_matmul_backward(ct_cuda_t *ctx, ct_bf16_t *dinp, float *dweight, float *dbias,
                             const ct_bf16_t *dout, const ct_bf16_t *inp,
                             const ct_bf16_t *weight, const ct_bf16_t *pre_gelu, float *scratch,
                             int N, int C, int OC, void *stream);
long ct_cuda_matmul_scratch_floats(int N, int OC);
/* Tensor-parallel partial products in fp32 (no bias, no epilogue), to be
 * summed over the TP group before rounding: out (N, OC) = inp @ weight^T
 * (a row-parallel forward), dinp (N, C) = dout @ weight (a column-parallel
 * input gradient). Overwritten. */
void ct_cuda_matmul_forward_f32(ct_cuda_t *ctx, float *out, const ct_bf16_t *inp,
                                const ct_bf16_t *weight, int N, int C, int OC, void *stream);
void ct_cuda_matmul_dinp_f32(ct_cuda_t *ctx, float *dinp, const ct_bf16_t *dout,
                             const ct_bf16_t *weight, int N, int C, int OC, void *stream);
/* dinp (N, C) fp32 += dout @ weight: input gradients of several matmuls
 * that read the same input, summed before one rounding. */
void ct_cuda_matmul_dinp_f32_add(ct_cuda_t *ctx, float *dinp, const ct_bf16_t *dout,
                                 const ct_bf16_t *weight, int N, int C, int OC, void *stream);

/* ---- attention.cu (plain CUDA) and attention_cudnn.cu (cuDNN SDPA) -------
 * Causal self-attention on qkv in the CPU layout (B,T,3C): q, k, v heads
 * at [0,C), [C,2C), [2C,3C), C = NH*HS, scale 1/sqrt(HS). out (B,T,C) bf16;
 * stats (B,NH,T) fp32 gets each query row's log-sum-exp of the scaled
 * scores (the softmax is never stored). The context picks cuDNN or the
 * plain path: the flash kernels below where they apply, else the
 * one-warp-per-row kernels; ct_cuda_attention_*_plain always use the
 * per-row ones. */
void ct_cuda_attention_forward(ct_cuda_t *ctx, ct_bf16_t *out, float *stats,
                               const ct_bf16_t *qkv, int B, int T, int NH, int HS, void *stream);
/* dqkv (B,T,3C) bf16, overwritten, from dout and the forward's out/stats. */
void ct_cuda_attention_backward(ct_cuda_t *ctx, ct_bf16_t *dqkv, const ct_bf16_t *dout,
                                const ct_bf16_t *qkv, const ct_bf16_t *out, const float *stats,
                                int B, int T, int NH, int HS, void *stream);
/* Builds (and caches) the attention plans for one shape and sizes their
 * workspace, so that a training step allocates nothing; a call with an
 * unprepared shape prepares it on first use. CT_ERR_UNSUPPORTED when cuDNN
 * rejects the shape (cuDNN's reason logged at debug level: the caller
 * decides whether that is an error); the caller may fall back to the plain
 * kernels with ct_cuda_set_attn_impl. */
CT_MUST_USE ct_status_t ct_cuda_attention_prepare(ct_cuda_t *ctx, int B, int T, int NH, int HS);
void ct_cuda_set_attn_impl(ct_cuda_t *ctx, ct_attn_impl_t impl);
void ct_cuda_attention_forward_plain(ct_bf16_t *out, float *stats, const ct_bf16_t *qkv, int B,
                                     int T, int NH, int HS, void *stream);
/* scratch: ct_cuda_attention_scratch_floats(B, T, NH) floats. */
void ct_cuda_attention_backward_plain(ct_bf16_t *dqkv, const ct_bf16_t *dout,
                                      const ct_bf16_t *qkv, const ct_bf16_t *out,
                                      const float *stats, float *scratch, int B, int T, int NH,
                                      int HS, void *stream);
long ct_cuda_attention_scratch_floats(int B, int T, int NH);

/* ---- attention_flash.cu: the plain path's tensor-core kernels -----------
 * FlashAttention-style causal attention (key tiles, online softmax, bf16
 * WMMA products with fp32 accumulation, the backward recomputing the
 * softmax from stats); deterministic. Same arguments and results as
 * ct_cuda_attention_*_plain, scratch included
 * (ct_cuda_attention_scratch_floats), for head sizes where
 * ct_cuda_attention_flash_supports(HS) is nonzero and 16-byte aligned
 * tensors (both asserted). ct_cuda_attention_forward/backward use them on
 * the plain path when they apply; ct_cuda_attention_*_plain stay the
 * one-warp-per-row kernels (the reference). Any B, T >= 1. */
int ct_cuda_attention_flash_supports(int HS);
void ct_cuda_attention_forward_flash(ct_bf16_t *out, float *stats, const ct_bf16_t *qkv, int B,
                                     int T, int NH, int HS, void *stream);
void ct_cuda_attention_backward_flash(ct_bf16_t *dqkv, const ct_bf16_t *dout,
                                      const ct_bf16_t *qkv, const ct_bf16_t *out,
                                      const float *stats, float *scratch, int B, int T, int NH,
                                      int HS, void *stream);
/* The flash kernels on grouped-query attention's separate q, k, v
 * (ct_cuda_gqa_forward's layout and head mapping): each key/value head's dk
 * and dv are summed over its query heads in one fp32 accumulator, in head
 * order, and rounded once (fp32 kept in the _f32kv variant). */
void ct_cuda_gqa_forward_flash(ct_bf16_t *out, float *stats, const ct_bf16_t *q,
                               const ct_bf16_t *k, const ct_bf16_t *v, int B, int T, int NH,
                               int NKV, int HS, int group, int q_head0, void *stream);
void ct_cuda_gqa_backward_flash(ct_bf16_t *dq, ct_bf16_t *dk, ct_bf16_t *dv,
                                const ct_bf16_t *dout, const ct_bf16_t *q, const ct_bf16_t *k,
                                const ct_bf16_t *v, const ct_bf16_t *out, const float *stats,
                                float *scratch, int B, int T, int NH, int NKV, int HS, int group,
                                int q_head0, void *stream);
void ct_cuda_gqa_backward_flash_f32kv(ct_bf16_t *dq, float *dk, float *dv, const ct_bf16_t *dout,
                                      const ct_bf16_t *q, const ct_bf16_t *k, const ct_bf16_t *v,
                                      const ct_bf16_t *out, const float *stats, float *scratch,
                                      int B, int T, int NH, int NKV, int HS, int group,
                                      int q_head0, void *stream);

/* ---- Llama's ops on the GPU (CPU twins: the Llama-family ops above) ------ */

/* rmsnorm.cu: out (N, C) bf16 = inp * rstd * weight, rstd (N) fp32 (NULL:
 * not written) = 1 / sqrt(mean(inp^2) + eps), inp the fp32 residual
 * stream. The fused residual + RMSNorm: res_out = res_in + x, then out =
 * RMSNorm(res_out); res_out may equal res_in (in place). */
void ct_cuda_rmsnorm_forward(ct_bf16_t *out, float *rstd, const float *inp,
                             const ct_bf16_t *weight, int N, int C, float eps, void *stream);
void ct_cuda_residual_rmsnorm_forward(float *res_out, ct_bf16_t *out, float *rstd,
                                      const float *res_in, const ct_bf16_t *x,
                                      const ct_bf16_t *weight, int N, int C, float eps,
                                      void *stream);
/* dinp (fp32) += the input gradient of dout (fp32); dinp_bf16, when not
 * NULL, then gets a bf16 copy of the updated dinp. dweight (fp32) +=,
 * reduced deterministically through scratch
 * (ct_cuda_rmsnorm_scratch_floats(N, C) floats). */
void ct_cuda_rmsnorm_backward(float *dinp, ct_bf16_t *dinp_bf16, float *dweight,
                              const float *dout, const float *inp, const ct_bf16_t *weight,
                              const float *rstd, float *scratch, int N, int C, void *stream);
long ct_cuda_rmsnorm_scratch_floats(int N, int C);

/* rope.cu: the rotation of ct_rope_forward applied IN PLACE to the NH query
 * heads of q (B,T,NH*HS) and the NKV key heads of k (B,T,NKV*HS) in one
 * launch; cos_t, sin_t are ct_rope_table's (maxT, HS/2) fp32 tables on the
 * device. The backward applies the inverse rotation to dq and dk in place
 * (ct_rope_backward's result, overwriting instead of +=). */
void ct_cuda_rope_forward(ct_bf16_t *q, ct_bf16_t *k, const float *cos_t, const float *sin_t,
                          int B, int T, int NH, int NKV, int HS, void *stream);
void ct_cuda_rope_backward(ct_bf16_t *dq, ct_bf16_t *dk, const float *cos_t, const float *sin_t,
                           int B, int T, int NH, int NKV, int HS, void *stream);

/* swiglu.cu: out = silu(gate) * up; the backward OVERWRITES dgate = dout *
 * up * silu'(gate) and dup = dout * silu(gate). n elements, bf16. */
void ct_cuda_swiglu_forward(ct_bf16_t *out, const ct_bf16_t *gate, const ct_bf16_t *up, long n,
                            void *stream);
void ct_cuda_swiglu_backward(ct_bf16_t *dgate, ct_bf16_t *dup, const ct_bf16_t *dout,
                             const ct_bf16_t *gate, const ct_bf16_t *up, long n, void *stream);

/* attention_gqa.cu: causal grouped-query attention with ct_gqa_forward's
 * layout and head mapping (q (B,T,NH*HS), k and v (B,T,NKV*HS), query head
 * h reads key/value head (q_head0 + h) / group). out (B,T,NH*HS) bf16;
 * stats (B,NH,T) the rows' log-sum-exp, as ct_cuda_attention_forward's.
 * The backward OVERWRITES dq, dk, dv (a key/value head no query head reads
 * gets 0); scratch ct_cuda_attention_scratch_floats(B, T, NH) floats.
 * Deterministic. ct_cuda_gqa_forward/backward take the flash kernels where
 * they apply (a head size of ct_cuda_attention_flash_supports, 16-byte
 * aligned tensors) and the *_plain one-warp-per-row kernels (any HS <= 128;
 * the reference) otherwise. */
void ct_cuda_gqa_forward(ct_bf16_t *out, float *stats, const ct_bf16_t *q, const ct_bf16_t *k,
                         const ct_bf16_t *v, int B, int T, int NH, int NKV, int HS, int group,
                         int q_head0, void *stream);
void ct_cuda_gqa_backward(ct_bf16_t *dq, ct_bf16_t *dk, ct_bf16_t *dv, const ct_bf16_t *dout,
                          const ct_bf16_t *q, const ct_bf16_t *k, const ct_bf16_t *v,
                          const ct_bf16_t *out, const float *stats, float *scratch, int B, int T,
                          int NH, int NKV, int HS, int group, int q_head0, void *stream);
/* The same with dk and dv in fp32, unrounded (overwritten): a tensor-parallel
 * rank's part of replicated key/value heads' gradients, summed over the
 * group before one rounding. */
void ct_cuda_gqa_backward_f32kv(ct_bf16_t *dq, float *dk, float *dv, const ct_bf16_t *dout,
                                const ct_bf16_t *q, const ct_bf16_t *k, const ct_bf16_t *v,
                                const ct_bf16_t *out, const float *stats, float *scratch, int B,
                                int T, int NH, int NKV, int HS, int group, int q_head0,
                                void *stream);
void ct_cuda_gqa_forward_plain(ct_bf16_t *out, float *stats, const ct_bf16_t *q,
                               const ct_bf16_t *k, const ct_bf16_t *v, int B, int T, int NH,
                               int NKV, int HS, int group, int q_head0, void *stream);
void ct_cuda_gqa_backward_plain(ct_bf16_t *dq, ct_bf16_t *dk, ct_bf16_t *dv,
                                const ct_bf16_t *dout, const ct_bf16_t *q, const ct_bf16_t *k,
                                const ct_bf16_t *v, const ct_bf16_t *out, const float *stats,
                                float *scratch, int B, int T, int NH, int NKV, int HS, int group,
                                int q_head0, void *stream);
void ct_cuda_gqa_backward_plain_f32kv(ct_bf16_t *dq, float *dk, float *dv, const ct_bf16_t *dout,
                                      const ct_bf16_t *q, const ct_bf16_t *k, const ct_bf16_t *v,
                                      const ct_bf16_t *out, const float *stats, float *scratch,
                                      int B, int T, int NH, int NKV, int HS, int group,
                                      int q_head0, void *stream);
/* cuDNN's SDPA on the same buffers, for the plain mapping (group NH/NKV,
 * q_head0 0): prepare builds and caches the graphs of a shape and returns
 * CT_ERR_UNSUPPORTED (cuDNN's reason at debug level) when the context does
 * not use cuDNN or cuDNN rejects the shape; forward and backward need a
 * prepared shape. Not deterministic (cuDNN's backward); compiled in every
 * CUDA build, runnable only with cuDNN. */
CT_MUST_USE ct_status_t ct_cuda_gqa_prepare_cudnn(ct_cuda_t *ctx, int B, int T, int NH, int NKV,
                                                  int HS);
void ct_cuda_gqa_forward_cudnn(ct_cuda_t *ctx, ct_bf16_t *out, float *stats, const ct_bf16_t *q,
                               const ct_bf16_t *k, const ct_bf16_t *v, int B, int T, int NH,
                               int NKV, int HS, void *stream);
void ct_cuda_gqa_backward_cudnn(ct_cuda_t *ctx, ct_bf16_t *dq, ct_bf16_t *dk, ct_bf16_t *dv,
                                const ct_bf16_t *dout, const ct_bf16_t *q, const ct_bf16_t *k,
                                const ct_bf16_t *v, const ct_bf16_t *out, const float *stats,
                                int B, int T, int NH, int NKV, int HS, void *stream);

/* ---- xent.cu: fused softmax + cross-entropy over the first V of Vp ------
 * losses[i] (fp32) = lse_i - logits[i, targets[i]], computed in fp32 from
 * bf16 logits. With dloss != 0 the logits become dlogits IN PLACE:
 * (softmax - onehot) * dloss for v < V and 0 for the padding columns; with
 * dloss == 0 the logits are left as they are (evaluation). */
void ct_cuda_xent_forward_backward(float *losses, ct_bf16_t *logits, const int32_t *targets,
                                   float dloss, int N, int V, int Vp, void *stream);
/* The vocab-parallel cross-entropy of a TP shard (N, Vpl) holding ids
 * [v_start, v_start + Vpl), the first Vl real (CPU twins: ct_xent_vp_*).
 * stats (N, 3) fp32: the shard's row max, sum of exp(x - max) and the
 * target's logit (0 when another rank holds it). The TP group all-gathers
 * the stats in rank order into all_stats (tp, N, 3); finish turns them into
 * lse (N) and losses (N), the same bits on every rank. backward overwrites
 * the shard with dlogits = (softmax - onehot) * dloss, 0 in the padding. */
void ct_cuda_xent_vp_stats(float *stats, const ct_bf16_t *logits, const int32_t *targets, int N,
                           int v_start, int Vl, int Vpl, void *stream);
void ct_cuda_xent_vp_finish(float *losses, float *lse, const float *all_stats, int N, int tp,
                            void *stream);
void ct_cuda_xent_vp_backward(ct_bf16_t *logits, const float *lse, const int32_t *targets,
                              float dloss, int N, int v_start, int Vl, int Vpl, void *stream);

/* ---- adamw.cu ------------------------------------------------------------
 * AdamW on n fp32 master weights with fp32 gradients and moments; the
 * gradient is first scaled by grad_clip / sqrt(*sumsq) when grad_clip > 0
 * and the norm exceeds it (sumsq is a device scalar from ct_cuda_sumsq, so
 * the host never waits for it). If *sumsq is not finite nothing is
 * updated. params_bf16 (may be NULL) gets the new weights in bf16, rounded
 * to nearest, or stochastically when seed != 0 (a counter-based hash of
 * seed and the element index, so the rounding is reproducible). */
void ct_cuda_adamw_update(float *master, ct_bf16_t *params_bf16, const float *grads, float *m,
                          float *v, long n, float lr, float beta1, float beta2, float eps,
                          float weight_decay, int t, const float *sumsq, float grad_clip,
                          uint32_t seed, void *stream);
/* *out (device fp32) = sum of x[i]^2, or += when accumulate; deterministic
 * two-pass reduction through scratch (ct_cuda_sumsq_scratch_floats(n)). */
void ct_cuda_sumsq(float *out, const float *x, long n, int accumulate, float *scratch,
                   void *stream);
long ct_cuda_sumsq_scratch_floats(long n);

#ifdef __cplusplus
}
#endif

#endif
