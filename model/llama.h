/* Llama (rotary positions, RMSNorm, SwiGLU, grouped-query attention, no
 * biases, tied or untied LM head; also SmolLM2, Mistral-style and
 * Qwen2-without-biases shapes): the architecture's tensor table and its
 * CPU and CUDA backends. Private to model/. */
#ifndef CT_MODEL_LLAMA_H
#define CT_MODEL_LLAMA_H

#include "kernels/kernels.h"
#include "model/model_impl.h"

#define CT_LLAMA_MAX_TENSORS 12

/* Tensor indices; CT_LLAMA_HEAD exists only when the head is untied. */
enum {
    CT_LLAMA_WTE = 0, CT_LLAMA_LN1W, CT_LLAMA_WQ, CT_LLAMA_WK, CT_LLAMA_WV, CT_LLAMA_WO,
    CT_LLAMA_LN2W, CT_LLAMA_WGATE, CT_LLAMA_WUP, CT_LLAMA_WDOWN, CT_LLAMA_LNFW, CT_LLAMA_HEAD
};

/* Parameter tensors by name. Shapes are full, with KV = NKV*HS; with
 * tensor parallelism a rank holds: wte and head rows [v_start, v_start +
 * Vp/tp); wq its query heads' rows; wk, wv its key/value heads' rows when
 * kv_sharded, else all of them; wgate, wup rows of its F/tp hidden units;
 * wo, wdown the matching input columns; the RMSNorm weights whole. */
typedef union {
    struct {
        float *wte;   /* (Vp, C) token embedding, and the LM head when tied */
        float *ln1w;  /* (L, C) input_layernorm */
        float *wq;    /* (L, C, C) q_proj, C = NH*HS */
        float *wk;    /* (L, KV, C) k_proj */
        float *wv;    /* (L, KV, C) v_proj */
        float *wo;    /* (L, C, C) o_proj */
        float *ln2w;  /* (L, C) post_attention_layernorm */
        float *wgate; /* (L, F, C) gate_proj */
        float *wup;   /* (L, F, C) up_proj */
        float *wdown; /* (L, C, F) down_proj */
        float *lnfw;  /* (C) norm */
        float *head;  /* (Vp, C) lm_head; points at wte when tied */
    };
    float *t[CT_LLAMA_MAX_TENSORS];
} ct_llama_tensors_t;

/* ---- the architecture (model/llama.c) ---------------------------------------- */
/* Vp: the padded vocabulary, a multiple of tp at least cfg->vocab_size. */
void ct__llama_dims(const ct_model_config_t *cfg, int tp, int tp_rank, int Vp, ct_model_dims_t *d);
int ct__llama_num_tensors(const ct_model_dims_t *d);
extern const char *const ct__llama_tensor_names[CT_LLAMA_MAX_TENSORS];
void ct__llama_tensor_sizes(const ct_model_dims_t *d, size_t *sizes);
size_t ct__llama_full_size(const ct_model_dims_t *d, int i);
int ct__llama_tensor_decays(int i);
int ct__llama_tensor_replicated(const ct_model_dims_t *d, int i);
void ct__llama_shard_copy(const ct_model_dims_t *d, int tp_rank, int i, float *full, float *shard,
                          int to_shard);
void ct__llama_full_repad(const ct_model_dims_t *from, const ct_model_dims_t *to, int i,
                          const float *src, float *dst);
void ct__llama_init_weights(ct_model_t *m, uint64_t seed, float std);
double ct__llama_flops_per_token(const ct_model_t *m, int T);

/* ---- the CPU backend (model/llama_cpu.c) ----------------------------------------- */
/* Builds m->host (named host tensors, the RoPE table, activations for
 * (B, T)) and installs the llama/cpu backend; m's arenas are allocated. */
CT_MUST_USE ct_status_t ct__llama_cpu_init(ct_model_t *m, int B, int T);
void ct__llama_cpu_free(ct_model_t *m);

/* Sizes (in floats) of the CPU backend's activations for capacity (B, T),
 * in the order of its struct, and their names (model/plan.c). */
#define CT_LLAMA_CPU_NUM_ACTS 36
extern const char *const ct__llama_cpu_act_names[CT_LLAMA_CPU_NUM_ACTS];
void ct__llama_cpu_act_sizes(const ct_model_dims_t *d, int B, int T, size_t *s);

/* ---- the CUDA backend's activations (model/llama_plan.c) ------------------------ */
/* Device activations for capacity (B, T), N = B*T, in this rank's widths
 * (Cl = NHl*HS query channels, KVl = NKVl*HS key/value channels, Fl SwiGLU
 * units, Vpl vocabulary rows; all whole at tp = 1). The buffers marked
 * "TP only" are NULL at tp = 1. */
typedef struct {
    float *rope_cos, *rope_sin; /* (maxT, HS/2) fp32 tables */
    float *encoded;      /* (N, C) fp32 residual stream input */
    ct_bf16_t *ln1;      /* (L, N, C) */
    float *rstd1;        /* (L, N) */
    ct_bf16_t *q;        /* (L, N, Cl) after RoPE */
    ct_bf16_t *k;        /* (L, N, KVl) after RoPE */
    ct_bf16_t *v;        /* (L, N, KVl) */
    ct_bf16_t *atty;     /* (L, N, Cl) */
    float *att_stats;    /* (L, B, NHl, T) log-sum-exp per query row */
    float *residual2;    /* (L, N, C) fp32 */
    ct_bf16_t *ln2;      /* (L, N, C) */
    float *rstd2;        /* (L, N) */
    ct_bf16_t *gate;     /* (L, N, Fl) */
    ct_bf16_t *up;       /* (L, N, Fl) */
    ct_bf16_t *hmid;     /* (L, N, Fl) silu(gate) * up */
    float *residual3;    /* (L, N, C) fp32 */
    ct_bf16_t *lnf;      /* (N, C) */
    float *rstdf;        /* (N) */
    ct_bf16_t *logits;   /* (R, Vpl) one chunk of rows of the LM head (R =
                          * ct__model_head_rows); dlogits in training */
    float *losses;       /* (N) */
    ct_bf16_t *proj;     /* (N, C) projection outputs */
    /* backward */
    float *dres;         /* (N, C) fp32 residual gradient */
    ct_bf16_t *dres_bf;  /* (N, C) its bf16 copy */
    float *dln;          /* (N, C) fp32 gradient of an RMSNorm output */
    ct_bf16_t *datty;    /* (N, Cl) */
    ct_bf16_t *dq;       /* (N, Cl) */
    ct_bf16_t *dk, *dv;  /* (N, KVl) */
    ct_bf16_t *dh;       /* (N, Fl) */
    ct_bf16_t *dgate, *dup; /* (N, Fl) */
    int32_t *inputs, *targets; /* (N) */
    float *att_scratch;  /* (B, NHl, T) attention backward */
    float *scratch;      /* reductions */
    float *sumsq;        /* (1) gradient sum of squares */
    /* TP only */
    float *tp_f32;       /* (N, C) fp32 partial sums of the row-parallel outputs and
                          * the vocab-parallel embedding, before their TP all-reduce */
    float *lse;          /* (N) log-sum-exp of the vocab-parallel cross-entropy */
    float *xstats;       /* (tp, R, 3) every rank's cross-entropy statistics of a chunk */
    float *dkv_f32;      /* (2, N, KVl) replicated key/value heads: dk, dv summed over
                          * TP in fp32 (NULL when they are sharded) */
    ct_bf16_t *sp_gather; /* (N, C) sequence parallelism only: an RMSNorm output
                          * gathered over the TP group for the column-parallel matmuls */
} ct_llama_cuda_acts_t;
#define CT_LLAMA_CUDA_NUM_ACTS ((int)(sizeof(ct_llama_cuda_acts_t) / sizeof(void *)))

/* The CUDA backend's activation and scratch buffers for capacity (B, T),
 * into it[0, n) (n returned): bytes and the offset of the pointer in
 * ct_llama_cuda_acts_t. With sp = 1 (and d->tp > 1) the RMSNorm/residual
 * regions hold N/tp tokens (sequence parallelism), plus the all-gather
 * buffer. llama_cuda.c allocates exactly these; the planner adds them up. */
int ct__llama_cuda_act_items(const ct_model_dims_t *d, int B, int T, int sp, ct_plan_item_t *it);

/* ---- the CUDA backend (model/llama_cuda.c; model/llama_nocuda.c without CUDA) -- */
CT_MUST_USE ct_status_t ct__llama_cuda_init(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                                            const ct_comm_groups_t *g, int device, int B, int T);

#endif
