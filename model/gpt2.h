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

/* ---- the CUDA backend (model/gpt2_cuda.c; model/gpt2_nocuda.c without CUDA) -- */
CT_MUST_USE ct_status_t ct__gpt2_cuda_init(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                               const ct_comm_groups_t *g, int device, int B, int T);

#endif
