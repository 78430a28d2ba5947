/* GPT-2 (learned positions, pre-LN, tied embeddings, vocabulary padded to a
 * multiple of 128): the architecture's tensor table and its CPU and CUDA
 * backends. Private to model/. */
#ifndef CT_MODEL_GPT2_H
#define CT_MODEL_GPT2_H

#include "kernels/kernels.h"
#include "model/model_impl.h"

#define CT_GPT2_NUM_TENSORS 16

/* Parameter tensors by name, in llm.c's order (so gpt2_124M.bin loads as one
 * read), over any element type: `.wte` or `.t[0]`. Shapes are full; with
 * tensor parallelism (tp > 1) a rank holds a shard: wte rows [v_start,
 * v_start + Vp/tp), qkvw/qkvb its heads' rows of each of q, k and v,
 * fcw/fcb rows of its 4C/tp hidden units, attprojw/fcprojw the matching
 * input columns; everything else is replicated. */
#define CT_GPT2_TENSORS(type)                                                                   \
    union {                                                                                     \
        struct {                                                                                \
            type *wte;      /* (Vp, C) token embedding, tied LM head */                        \
            type *wpe;      /* (maxT, C) */                                                    \
            type *ln1w;     /* (L, C) */                                                       \
            type *ln1b;     /* (L, C) */                                                       \
            type *qkvw;     /* (L, 3*C, C) */                                                  \
            type *qkvb;     /* (L, 3*C) */                                                     \
            type *attprojw; /* (L, C, C) */                                                    \
            type *attprojb; /* (L, C) */                                                       \
            type *ln2w;     /* (L, C) */                                                       \
            type *ln2b;     /* (L, C) */                                                       \
            type *fcw;      /* (L, 4*C, C) */                                                  \
            type *fcb;      /* (L, 4*C) */                                                     \
            type *fcprojw;  /* (L, C, 4*C) */                                                  \
            type *fcprojb;  /* (L, C) */                                                       \
            type *lnfw;     /* (C) */                                                          \
            type *lnfb;     /* (C) */                                                          \
        };                                                                                      \
        type *t[CT_GPT2_NUM_TENSORS];                                                           \
    }

typedef CT_GPT2_TENSORS(float) ct_gpt2_tensors_t;
typedef CT_GPT2_TENSORS(ct_bf16_t) ct_gpt2_bf16_tensors_t;

/* Points tensor i of t at base + offsets[i] (elements of t's type). */
#define CT_GPT2_POINT(views, base, offsets)                                                         \
    do {                                                                                        \
        for (int i_ = 0; i_ < CT_GPT2_NUM_TENSORS; i_++) (views)->t[i_] = (base) + (offsets)[i_]; \
    } while (0)

/* ---- the architecture (model/gpt2.c) ---------------------------------------- */
/* Vp: the padded vocabulary, a multiple of tp at least cfg->vocab_size. */
void ct__gpt2_dims(const ct_model_config_t *cfg, int tp, int tp_rank, int Vp, ct_model_dims_t *d);
extern const char *const ct__gpt2_tensor_names[CT_GPT2_NUM_TENSORS];
void ct__gpt2_tensor_sizes(const ct_model_dims_t *d, size_t *sizes);
size_t ct__gpt2_full_size(const ct_model_dims_t *d, int i);
int ct__gpt2_tensor_decays(int i);
int ct__gpt2_tensor_replicated(int i);
/* Tensors with one slice per layer (all but wte, wpe, lnfw, lnfb). */
int ct__gpt2_tensor_per_layer(int i);
void ct__gpt2_shard_copy(const ct_model_dims_t *d, int tp_rank, int i, float *full, float *shard,
                         int to_shard);
void ct__gpt2_full_repad(const ct_model_dims_t *from, const ct_model_dims_t *to, int i,
                         const float *src, float *dst);
void ct__gpt2_init_weights(ct_model_t *m, uint64_t seed, float std);
CT_MUST_USE ct_status_t ct__gpt2_load_llmc(ct_model_t *m, const char *path);
double ct__gpt2_flops_per_token(const ct_model_t *m, int T);

/* ---- the CPU backend (model/gpt2_cpu.c) ---------------------------------------- */
/* Builds m->host (named host tensors, activations for (B, T)) and installs
 * the gpt2/cpu backend; m's arenas are already allocated. */
CT_MUST_USE ct_status_t ct__gpt2_cpu_init(ct_model_t *m, int B, int T);
void ct__gpt2_cpu_free(ct_model_t *m);

/* Sizes (in floats) of the CPU backend's activations for capacity (B, T),
 * in the order of its struct, and their names. */
#define CT_GPT2_CPU_NUM_ACTS 30
extern const char *const ct__gpt2_cpu_act_names[CT_GPT2_CPU_NUM_ACTS];
void ct__gpt2_cpu_act_sizes(const ct_model_dims_t *d, int B, int T, size_t *s);

/* ---- the CUDA backend's activations (model/gpt2_plan.c) ---------------------- */
/* Device activations for capacity (B, T); N = B*T. With recompute, the
 * buffers marked (L or 1) hold one layer's worth. Shapes are tp = 1's; the
 * plan of the TP GPU path (gpt2_plan.c) splits them the Megatron way. */
typedef struct {
    float *encoded;      /* (N, C) fp32 the residual stream, added to in place */
    ct_bf16_t *ln_in;    /* (2L+1, N, C) bf16 copies of each LayerNorm's input (ln1 of
                          * layer l at 2l, ln2 at 2l+1, lnf at 2L), for the backward */
    float *ln_x;         /* (N, C) fp32 one of them again, for a recomputed LayerNorm
                          * (several buffers share memory: ct__gpt2_cuda_act_aliases) */
    ct_bf16_t *ln1;      /* (L or 1, N, C) */
    float *ln1_mean, *ln1_rstd; /* (L, N) */
    ct_bf16_t *qkv;      /* (L, N, 3C) */
    ct_bf16_t *atty;     /* (L, N, C) */
    float *att_stats;    /* (L, B, NH, T) log-sum-exp per query row */
    ct_bf16_t *ln2;      /* (L or 1, N, C) */
    float *ln2_mean, *ln2_rstd; /* (L, N) */
    ct_bf16_t *fch;      /* (L, N, 4C) before GELU */
    ct_bf16_t *fch_gelu; /* (L or 1, N, 4C) */
    ct_bf16_t *lnf;      /* (N, C) */
    float *lnf_mean, *lnf_rstd; /* (N) */
    ct_bf16_t *logits;   /* (R, Vp) one chunk of rows of the LM head (R =
                          * ct__model_head_rows); dlogits in training */
    float *losses;       /* (N) */
    ct_bf16_t *proj;     /* (N, C) projection outputs */
    /* backward */
    float *dres;         /* (N, C) fp32 residual gradient */
    ct_bf16_t *dres_bf;  /* (N, C) its bf16 copy */
    ct_bf16_t *dln;      /* (N, C) */
    ct_bf16_t *datty;    /* (N, C) */
    ct_bf16_t *dfch;     /* (N, 4C) */
    ct_bf16_t *dqkv;     /* (N, 3C) */
    int32_t *inputs, *targets; /* (N) */
    float *scratch;      /* reductions */
    float *sumsq;        /* (1) gradient sum of squares */
    /* tensor parallelism only (NULL at tp = 1) */
    float *tp_f32;       /* (N, C) fp32 partial sums of row-parallel outputs and of
                          * column-parallel input gradients, before their TP reduce */
    float *lse;          /* (N) log-sum-exp of the vocab-parallel cross-entropy */
    float *xstats;       /* (tp, R, 3) every rank's cross-entropy statistics of a chunk */
    ct_bf16_t *sp_gather; /* (N, C) sequence parallelism: a LayerNorm output gathered
                          * over the TP group for the next column-parallel matmul */
} ct_gpt2_cuda_acts_t;
#define CT_GPT2_CUDA_NUM_ACTS ((int)(sizeof(ct_gpt2_cuda_acts_t) / sizeof(void *)))

/* The CUDA backend's activation and scratch buffers for capacity (B, T)
 * under recompute mode rc, into it[0, n) (n returned, at most
 * CT_PLAN_MAX_ITEMS): each with its bytes and, in `slot`, the offset of its
 * pointer in ct_gpt2_cuda_acts_t. gpt2_cuda.c allocates exactly these; the
 * planner (model/plan.c) adds them up. With d->tp > 1 the sizes are the
 * Megatron split (plus the TP buffers), and sp = 1 adds sequence
 * parallelism (the LayerNorm/residual regions split along the sequence,
 * plus the all-gather buffer). Buffers a layout does not use are left out. */
int ct__gpt2_cuda_act_items(const ct_model_dims_t *d, int B, int T, ct_recompute_t rc, int sp,
                            ct_plan_item_t *it);

/* The buffers of ct_gpt2_cuda_acts_t that are not in the table because
 * they share another's memory (never live at the same time): pairs of
 * (offset of the pointer, offset of the one whose memory it uses) into
 * alias[0, n), n returned (at most CT_GPT2_CUDA_MAX_ALIASES). */
#define CT_GPT2_CUDA_MAX_ALIASES 4
int ct__gpt2_cuda_act_aliases(ct_recompute_t rc, size_t alias[][2]);

/* ---- the CUDA backend (model/gpt2_cuda.c; model/gpt2_nocuda.c without CUDA) -- */
CT_MUST_USE ct_status_t ct__gpt2_cuda_init(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                               const ct_comm_groups_t *g, int device, int B, int T);

#endif
