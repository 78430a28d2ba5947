/* GPT-2 (learned positions, pre-LN, tied embeddings, vocabulary padded to a
 * multiple of 128) on flat arenas: parameters, gradients and activations
 * each live in one allocation with tensors at fixed offsets (the AdamW state
 * is trainer/optim.h's).
 * Nothing is allocated inside a step. Private to trainer/. */
#ifndef CT_TRAINER_GPT2_H
#define CT_TRAINER_GPT2_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/status.h"

#define CT_GPT2_NUM_TENSORS 16
/* Zero floats after params and grads, so ZeRO can pad the flat length to a
 * multiple of dp (<= 1024 ranks). */
#define CT_GPT2_PAD_FLOATS 1024

/* Parameter tensors, in llm.c's order (so gpt2_124M.bin loads as one read).
 * Shapes are full; with tensor parallelism (tp > 1) a rank holds a shard:
 * wte rows [v_start, v_start + Vp/tp), qkvw/qkvb its heads' rows of each of
 * q, k and v, fcw/fcb rows of its 4C/tp hidden units, attprojw/fcprojw the
 * matching input columns; everything else is replicated. */
typedef struct {
    float *wte;      /* (Vp, C) token embedding, tied LM head */
    float *wpe;      /* (maxT, C) */
    float *ln1w;     /* (L, C) */
    float *ln1b;     /* (L, C) */
    float *qkvw;     /* (L, 3*C, C) */
    float *qkvb;     /* (L, 3*C) */
    float *attprojw; /* (L, C, C) */
    float *attprojb; /* (L, C) */
    float *ln2w;     /* (L, C) */
    float *ln2b;     /* (L, C) */
    float *fcw;      /* (L, 4*C, C) */
    float *fcb;      /* (L, 4*C) */
    float *fcprojw;  /* (L, C, 4*C) */
    float *fcprojb;  /* (L, C) */
    float *lnfw;     /* (C) */
    float *lnfb;     /* (C) */
} ct_gpt2_tensors_t;

/* Activations for a capacity of (B, T); a smaller (B', T') reuses them.
 * With tp > 1, 3*C, C (attention), NH, 4*C and Vp are this rank's shares. */
typedef struct {
    float *encoded;   /* (B, T, C) */
    float *ln1;       /* (L, B, T, C) */
    float *ln1_mean;  /* (L, B, T) */
    float *ln1_rstd;  /* (L, B, T) */
    float *qkv;       /* (L, B, T, 3*C) */
    float *atty;      /* (L, B, T, C) */
    float *att;       /* (L, B, NH, T, T) */
    float *residual2; /* (L, B, T, C) */
    float *ln2;       /* (L, B, T, C) */
    float *ln2_mean;  /* (L, B, T) */
    float *ln2_rstd;  /* (L, B, T) */
    float *fch;       /* (L, B, T, 4*C) */
    float *fch_gelu;  /* (L, B, T, 4*C) */
    float *residual3; /* (L, B, T, C) */
    float *lnf;       /* (B, T, C) */
    float *lnf_mean;  /* (B, T) */
    float *lnf_rstd;  /* (B, T) */
    float *logits;    /* (B, T, Vp), becomes dlogits in backward */
    float *losses;    /* (B, T) */
    float *lse;       /* (B, T) */
    float *proj;      /* (B, T, C) scratch for the two projections */
    /* backward scratch */
    float *dres;      /* (B, T, C) running residual gradient */
    float *dln;       /* (B, T, C) */
    float *datty;     /* (B, T, C) */
    float *dqkv;      /* (B, T, 3*C) */
    float *dfch;      /* (B, T, 4*C) */
    float *dfch_gelu; /* (B, T, 4*C) */
    float *datt;      /* (B, NH, T, T) attention backward scratch */
    float *dloss;     /* (B, T) */
    float *xtmp;      /* (B, T) parallel cross-entropy scratch */
} ct_gpt2_acts_t;

typedef struct {
    int L, NH, C, V, Vp, maxT;
    int tp, tp_rank;  /* tensor-parallel layout */
    int NHl, Cl;      /* local heads and attention width: NH/tp, C/tp */
    int Vpl, v_start; /* local vocabulary rows: Vp/tp, starting at v_start */
    int Vl;           /* real (unpadded) vocabulary rows in the shard, may be 0 */
} ct_gpt2_dims_t;

typedef struct ct_gpt2_gpu ct_gpt2_gpu_t; /* trainer/gpt2_gpu.c */

typedef struct {
    ct_gpt2_dims_t d;
    size_t sizes[CT_GPT2_NUM_TENSORS];   /* floats per tensor */
    size_t offsets[CT_GPT2_NUM_TENSORS]; /* float offset in the flat arrays */
    size_t num_params;
    ct_arena_t params_arena, grads_arena, acts_arena;
    float *params; /* (num_params + CT_GPT2_PAD_FLOATS) */
    float *grads;  /* (num_params + CT_GPT2_PAD_FLOATS) */
    ct_gpt2_tensors_t p, g;
    ct_gpt2_acts_t a;
    int B, T; /* activation capacity */
    const int32_t *last_targets; /* targets of the last forward, for backward */
    ct_comm_t *tp;               /* TP group, NULL for tp = 1 */
    double comm_seconds;         /* time spent in TP collectives, accumulated */
    /* The GPU path (NULL on the CPU): when set, forward/backward/zero_grad
     * and ct_optim_step run on the device, the host arenas above hold only
     * the fp32 parameters (copied back by ct_gpt2_gpu_to_host for
     * checkpoints) and no host activations. */
    ct_gpt2_gpu_t *gpu;
    /* Set by the caller before a backward: 1 when it is the last micro-batch
     * before an optimizer step, so the GPU path may start the DP gradient
     * reduce during that backward. */
    int grad_sync;
} ct_gpt2_t;

extern const char *const ct_gpt2_tensor_names[CT_GPT2_NUM_TENSORS];

/* Allocates the arenas for a batch capacity (B, T); weights are zero.
 * `tp` is the tensor-parallel group (NULL or size 1 for none). */
ct_status_t ct_gpt2_init(ct_gpt2_t *m, const ct_model_config_t *cfg, int B, int T,
                         ct_comm_t *tp);
void ct_gpt2_free(ct_gpt2_t *m);
/* GPT-2 init: N(0, std) for matrices and embeddings, residual projections
 * scaled by 1/sqrt(2L), LayerNorm weights 1, biases 0, padding rows 0.
 * Deterministic for a seed whatever the thread count, and a TP shard gets
 * exactly its slice of the tp = 1 initialisation. */
void ct_gpt2_init_weights(ct_gpt2_t *m, uint64_t seed, float std);
/* Loads llm.c's gpt2_*.bin (magic 20240326, version 3, fp32). */
ct_status_t ct_gpt2_load_llmc(ct_gpt2_t *m, const char *path);
/* Forward pass on (B, T) <= capacity. With targets, returns the mean loss;
 * without, returns 0 and leaves logits for the last call. */
float ct_gpt2_forward(ct_gpt2_t *m, const int32_t *inputs, const int32_t *targets, int B, int T);
/* Backward of the last forward, which must have had targets (still valid
 * memory); the loss being
 * differentiated is `loss_scale` times the mean loss. Accumulates into
 * m->grads. */
void ct_gpt2_backward(ct_gpt2_t *m, const int32_t *inputs, int B, int T, float loss_scale);
void ct_gpt2_zero_grad(ct_gpt2_t *m);
/* 1 for tensors that get weight decay (2-D: embeddings and matrices). */
int ct_gpt2_tensor_decays(int i);
/* 1 for tensors every TP rank holds whole (their gradients are identical
 * across the TP group by construction). */
int ct_gpt2_tensor_replicated(int i);
/* Floats in tensor i unsharded (as tp = 1 holds it). */
size_t ct_gpt2_full_size(const ct_gpt2_dims_t *d, int i);
/* Copies tensor i between its unsharded layout `full` and TP rank
 * `tp_rank`'s shard (layout d with d->tp ranks): to_shard 1 reads full,
 * 0 writes this shard's part of full. */
void ct_gpt2_shard_copy(const ct_gpt2_dims_t *d, int tp_rank, int i, float *full, float *shard,
                        int to_shard);
/* Dims of a model config under tp ranks, for rank tp_rank. */
void ct_gpt2_dims(const ct_model_config_t *cfg, int tp, int tp_rank, ct_gpt2_dims_t *d);
/* Floats per tensor for dims d (a shard when d->tp > 1). */
void ct_gpt2_tensor_sizes(const ct_gpt2_dims_t *d, size_t *sizes);
/* Logits of row `row` of the last forward (this rank's Vpl columns), in
 * host memory, valid until the next call. */
const float *ct_gpt2_logits_row(ct_gpt2_t *m, int row);

/* ---- the GPU path (trainer/gpt2_gpu.c; trainer/gpt2_nogpu.c in a build
 * without CUDA, where ct_gpt2_gpu_init returns CT_ERR_UNSUPPORTED) --------
 * Moves model m, whose host parameters and optimizer state o are already
 * initialised or loaded, to CUDA device `device` with activations for
 * (B, T): fp32 master weights, a bf16 copy for the kernels, fp32
 * gradients and AdamW state, bf16 activations with an fp32 residual
 * stream. With dp > 1 it builds NCCL communicators mirroring g's groups.
 * m->p/m->params stay the host copy. tp > 1 is not supported on the GPU
 * (CT_ERR_UNSUPPORTED, logged). */
struct ct_optim;
ct_status_t ct_gpt2_gpu_init(ct_gpt2_t *m, struct ct_optim *o, const ct_config_t *cfg,
                             const ct_comm_groups_t *g, int device, int B, int T);
void ct_gpt2_gpu_free(ct_gpt2_t *m);
/* Copies the device master weights and AdamW state into m->params and
 * o->m/o->v (synchronous), for checkpoints and export. */
void ct_gpt2_gpu_to_host(ct_gpt2_t *m, struct ct_optim *o);
/* Copies the device gradients (fp32, num_params) into dst (synchronous). */
void ct_gpt2_gpu_grads_to_host(ct_gpt2_t *m, float *dst);
/* Device name, bf16 peak (TFLOP/s, 0 unknown) and peak device memory. */
const char *ct_gpt2_gpu_device_name(const ct_gpt2_t *m);
double ct_gpt2_gpu_peak_tflops(const ct_gpt2_t *m);
size_t ct_gpt2_gpu_peak_memory(ct_gpt2_t *m);
/* Entry points the generic functions dispatch to when m->gpu is set. */
float ct__gpt2_gpu_forward(ct_gpt2_t *m, const int32_t *inputs, const int32_t *targets, int B,
                           int T);
void ct__gpt2_gpu_backward(ct_gpt2_t *m, const int32_t *inputs, int B, int T, float loss_scale);
void ct__gpt2_gpu_zero_grad(ct_gpt2_t *m);
const float *ct__gpt2_gpu_logits_row(ct_gpt2_t *m, int row);

/* Training FLOPs per token: 6*N + 12*L*C*T, N = parameters except wpe. */
double ct_gpt2_flops_per_token(const ct_gpt2_t *m, int T);

#endif
