/* Tensor ops for the GPT-2 forward and backward pass, fp32 on the CPU.
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

#include <stdint.h>

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

#endif
