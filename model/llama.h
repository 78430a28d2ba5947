/* Llama (rotary positions, RMSNorm, SwiGLU, grouped-query attention, no
 * biases, tied or untied LM head; also SmolLM2, Mistral-style and
 * Qwen2-without-biases shapes): the architecture's tensor table and its
 * CPU backend. Private to model/. No CUDA backend yet:
 * ct_model_to_device refuses arch llama. */
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

#endif
