/* The model layer's one public header: a language model on flat arenas,
 * reached through a backend table chosen once when the model is placed on
 * its device, and the AdamW optimizer over those arenas.
 *
 * A model is an architecture (its tensor table, initialisation and FLOP
 * count: GPT-2 or Llama) times a device backend (forward, backward, zero_grad,
 * the optimizer's device pieces, logits for sampling, copies to and from the
 * host: cpu and cuda). ct_model_init builds it on the CPU;
 * ct_model_to_device moves it to a CUDA device once, before training. Code
 * above model/ calls the ct_model_* functions below and never asks which
 * device it runs on.
 *
 * The host arenas: `params` and `grads` are flat (num_params +
 * CT_MODEL_PAD_FLOATS) floats with tensor i at offsets[i], sizes[i] floats.
 * On a device they hold the fp32 weights as of the last ct_model_to_host
 * (checkpoints, export) and no activations.
 *
 * Left out: norm recompute for Llama on the GPU (model.recompute: ln_gelu;
 * ct_model_to_device refuses it). */
#ifndef CT_MODEL_MODEL_H
#define CT_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/status.h"

/* Room for any architecture's tensor table. */
#define CT_MODEL_MAX_TENSORS 16
/* Zero floats after params and grads, so ZeRO can pad the flat length to a
 * multiple of dp (<= 1024 ranks). */
#define CT_MODEL_PAD_FLOATS 1024

/* ct_arch_t (CT_ARCH_GPT2, CT_ARCH_LLAMA) is model.arch, in core/config.h. */

/* Shapes of a model and of this rank's tensor-parallel shard. */
typedef struct {
    ct_arch_t arch;
    int L, NH, C, V, Vp, maxT; /* Vp: the padded vocabulary, ct_model_padded_vocab */
    int tp, tp_rank;           /* tensor-parallel layout */
    int NHl, Cl;               /* local heads and attention width: NH/tp, C/tp */
    int Vpl, v_start;          /* local vocabulary rows: Vp/tp, starting at v_start */
    int Vl;                    /* real (unpadded) vocabulary rows in the shard, may be 0 */

    /* Llama (arch CT_ARCH_LLAMA; zero for GPT-2). Query heads split over TP
     * as GPT-2's do; key/value heads split too when NKV % tp == 0
     * (kv_sharded), else every rank holds all NKV of them. */
    int HS;                    /* head size C/NH */
    int NKV, NKVl;             /* key/value heads, this rank's: NKV/tp or all NKV */
    int kv_sharded;
    int F, Fl;                 /* SwiGLU hidden units, this rank's F/tp */
    int tied;                  /* the LM head is the token embedding */
    float norm_eps;            /* RMSNorm */
    struct {
        float theta;           /* base */
        int llama3;            /* Llama 3 frequency scaling, with: */
        float factor, low_freq_factor, high_freq_factor;
        int original_max_seq_len;
    } rope;
} ct_model_dims_t;

typedef struct ct_model_backend ct_model_backend_t; /* model/model_impl.h */
typedef struct ct_optim ct_optim_t;

typedef struct ct_model {
    ct_model_dims_t d;
    int n_tensors;
    size_t sizes[CT_MODEL_MAX_TENSORS];   /* floats per tensor (this rank's shard) */
    size_t offsets[CT_MODEL_MAX_TENSORS]; /* float offset in the flat arrays */
    size_t num_params;
    ct_arena_t params_arena, grads_arena;
    float *params; /* (num_params + CT_MODEL_PAD_FLOATS) host copy */
    float *grads;  /* (num_params + CT_MODEL_PAD_FLOATS) host gradients (CPU backend) */
    int B, T;      /* activation capacity */
    const int32_t *last_targets; /* targets of the last forward, for backward */
    ct_comm_t *tp;               /* TP group, NULL for tp = 1 */
    double comm_seconds;         /* time spent in TP collectives, accumulated */
    /* Set by the caller before a backward: 1 when it is the last micro-batch
     * before an optimizer step, so a backend may start the DP gradient
     * reduce during that backward. */
    int grad_sync;
    const ct_model_backend_t *be; /* the device backend */
    void *host;                   /* the CPU backend's state (named tensors, activations) */
    void *dev;                    /* a device backend's state, NULL on the CPU */
} ct_model_t;

/* ---- the architecture: tensor table (no model needed) ---------------------- */

/* The vocabulary rows a model has under tp tensor-parallel ranks:
 * vocab_size rounded up to a multiple of 128 * tp, as Megatron-LM pads
 * (make-vocab-size-divisible-by 128, times the TP size). Every rank then
 * holds Vp/tp rows, a multiple of 128, so any tp that divides n_head works
 * with any vocabulary. The padding rows are zero and stay zero (no token
 * reads them and the cross-entropy never sees them), so layouts with
 * different Vp hold the same model: checkpoints record their Vp, and
 * ct_model_full_repad converts between them. */
int ct_model_padded_vocab(int vocab_size, int tp);
/* Dims of a model config under tp ranks, for rank tp_rank, with the
 * vocabulary padded by ct_model_padded_vocab. */
void ct_model_dims(const ct_model_config_t *cfg, int tp, int tp_rank, ct_model_dims_t *d);
/* The same with the padded vocabulary Vp given: a layout saved by another
 * padding rule. Vp >= cfg->vocab_size and Vp % tp == 0 (asserted). */
void ct_model_dims_padded(const ct_model_config_t *cfg, int tp, int tp_rank, int Vp,
                          ct_model_dims_t *d);
int ct_model_num_tensors(const ct_model_dims_t *d);
/* The tensor's name in checkpoints ("wte", "qkvw", ...). */
const char *ct_model_tensor_name(const ct_model_dims_t *d, int i);
/* Floats per tensor for dims d (a shard when d->tp > 1). */
void ct_model_tensor_sizes(const ct_model_dims_t *d, size_t *sizes);
/* Floats in tensor i unsharded (as tp = 1 holds it). */
size_t ct_model_full_size(const ct_model_dims_t *d, int i);
/* 1 for tensors that get weight decay (2-D: embeddings and matrices). */
int ct_model_tensor_decays(const ct_model_dims_t *d, int i);
/* 1 for tensors every TP rank holds whole (their gradients are identical
 * across the TP group by construction). */
int ct_model_tensor_replicated(const ct_model_dims_t *d, int i);
/* Copies unsharded tensor i from layout `from` (from->Vp vocabulary rows)
 * to layout `to` (to->Vp rows), two dims of one model that differ at most
 * in the padding: the real rows are copied and to's padding rows zeroed.
 * Not in place. */
void ct_model_full_repad(const ct_model_dims_t *from, const ct_model_dims_t *to, int i,
                         const float *src, float *dst);
/* Copies tensor i between its unsharded layout `full` and TP rank
 * `tp_rank`'s shard (layout d with d->tp ranks): to_shard 1 reads full,
 * 0 writes this shard's part of full. */
void ct_model_shard_copy(const ct_model_dims_t *d, int tp_rank, int i, float *full, float *shard,
                         int to_shard);

/* ---- architectures ------------------------------------------------------------
 * model.arch picks the tensor table and the backends: gpt2 (model/gpt2*.c)
 * or llama (model/llama*.c), each on the CPU and CUDA. Every function of this header
 * serves both; the dims say which (d->arch). */
/* "gpt2" or "llama". */
const char *ct_model_arch_name(ct_arch_t arch);
/* 1 when cfg's model splits over tp tensor-parallel ranks: whole query
 * heads, and for Llama whole SwiGLU units (key/value heads that do not
 * divide are replicated). */
int ct_model_tp_divides(const ct_model_config_t *cfg, int tp);
/* 1 when the architecture has a CUDA backend (GPT-2 and Llama). */
int ct_model_arch_has_cuda(ct_arch_t arch);
/* 1 when cfg's model and layout train on the GPU path: the architecture
 * has a CUDA backend and, for Llama, model.recompute is not ln_gelu (its
 * GPU path recomputes no norms). model.device auto means the CPU otherwise. */
int ct_model_cuda_supports(const ct_config_t *cfg);

/* ---- a model ------------------------------------------------------------------ */

/* Allocates the host arenas and the CPU backend with activations for a batch
 * capacity (B, T) (0, 0 for none: a model headed for a device, or one only
 * loaded and saved); weights are zero. `tp` is the tensor-parallel group
 * (NULL or size 1 for none). The caller owns m and calls ct_model_free. */
CT_MUST_USE ct_status_t ct_model_init(ct_model_t *m, const ct_model_config_t *cfg, int B, int T,
                          ct_comm_t *tp);
/* Frees the device backend (if any) and the host arenas. */
void ct_model_free(ct_model_t *m);
/* The architecture's init (GPT-2: N(0, std) for matrices and embeddings,
 * residual projections scaled by 1/sqrt(2L), LayerNorm weights 1, biases 0,
 * padding rows 0). Deterministic for a seed whatever the thread count, and a
 * TP shard gets exactly its slice of the tp = 1 initialisation. Host
 * weights: call before ct_model_to_device. */
void ct_model_init_weights(ct_model_t *m, uint64_t seed, float std);
/* Loads llm.c's gpt2_*.bin (magic 20240326, version 3, fp32) into the host
 * weights. */
CT_MUST_USE ct_status_t ct_model_load_llmc(ct_model_t *m, const char *path);
/* Training FLOPs per token of the whole model (not this rank's shard). */
double ct_model_flops_per_token(const ct_model_t *m, int T);

/* Moves model m, whose host parameters and optimizer state o are already
 * initialised or loaded, to CUDA device `device` with activations for
 * (B, T), and switches it to the cuda backend: fp32 master weights, a bf16
 * copy for the kernels, fp32 gradients and AdamW state, bf16 activations
 * with an fp32 residual stream. With dp > 1 or tp > 1 it builds NCCL
 * communicators mirroring g's groups; with tp > 1 the model is this rank's
 * Megatron shard (parallel.sp adds sequence parallelism). Errors (logged):
 * CT_ERR_UNSUPPORTED in a build without CUDA or for a shape the GPU path
 * cannot run (head size over 128, 4C/tp not a multiple of 8, SP with an
 * odd n_embd), and device allocation failures. Once. */
CT_MUST_USE ct_status_t ct_model_to_device(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                               const ct_comm_groups_t *g, int device, int B, int T);
/* Forward pass on (B, T) <= capacity. With targets, returns the mean loss;
 * without, returns 0 and leaves logits for ct_model_logits_row. */
float ct_model_forward(ct_model_t *m, const int32_t *inputs, const int32_t *targets, int B, int T);
/* Backward of the last forward, which must have had targets (still valid
 * memory); the loss being differentiated is `loss_scale` times the mean
 * loss. Accumulates into the gradients. */
void ct_model_backward(ct_model_t *m, const int32_t *inputs, int B, int T, float loss_scale);
/* A training micro-batch: the forward with targets and the backward of
 * loss_scale times its mean loss, in one call; returns the mean loss.
 * Equal to ct_model_forward then ct_model_backward, but a backend may fuse
 * across the two: the GPU path computes the LM head, the cross-entropy and
 * their backward together, chunk by chunk of rows, so that the logits
 * never exist for the whole batch at once (the trainer's call). */
float ct_model_forward_backward(ct_model_t *m, const int32_t *inputs, const int32_t *targets, int B,
                                int T, float loss_scale);
void ct_model_zero_grad(ct_model_t *m);
/* Logits of row `row` of the last forward (this rank's Vpl columns), in
 * host memory, valid until the next call. */
const float *ct_model_logits_row(ct_model_t *m, int row);
/* Copies the device weights and AdamW state into m->params and o->m/o->v
 * (synchronous; nothing to do on the CPU), for checkpoints and export. */
void ct_model_to_host(ct_model_t *m, ct_optim_t *o);
/* Copies the gradients (fp32, num_params) into dst (synchronous). */
void ct_model_grads_to_host(ct_model_t *m, float *dst);
/* "gpt2/cpu", "gpt2/cuda". */
const char *ct_model_backend_name(const ct_model_t *m);
/* The accelerator's name, or NULL on the CPU. */
const char *ct_model_device_name(const ct_model_t *m);
/* bf16 dense peak of the device in TFLOP/s (0: unknown or the CPU) and peak
 * device memory in bytes (0 on the CPU). */
double ct_model_peak_tflops(const ct_model_t *m);
size_t ct_model_peak_memory(const ct_model_t *m);

/* ---- per-op timing (device backends) ----------------------------------------
 * CUDA events around every op of the forward, backward and optimizer step,
 * read back at the end of each optimizer step (where the host waits anyway)
 * and summed by op family: how long the device spent in each, how many
 * calls, and the FLOPs (matmuls, attention) or bytes moved (the rest) that
 * give the achieved rate. "tp comm" is the TP collectives on the compute
 * stream (on the critical path); "dp comm" is the DP gradient reduce on its
 * own stream (overlapped with the backward, so it is busy time, not all
 * of it exposed). The events cost a little, so it is off unless asked. */
#define CT_MODEL_OP_FAMILIES 10
typedef struct {
    int n;     /* families, in a fixed order */
    int steps; /* optimizer steps the times cover */
    long dropped; /* ops not timed: the event pool ran out (raise steps read) */
    const char *name[CT_MODEL_OP_FAMILIES]; /* "matmul", "tp comm", ... (static) */
    double ms[CT_MODEL_OP_FAMILIES];
    long calls[CT_MODEL_OP_FAMILIES];
    double flop[CT_MODEL_OP_FAMILIES];  /* 0 where the op is counted in bytes */
    double bytes[CT_MODEL_OP_FAMILIES]; /* read + written, or sent for comm */
} ct_model_op_times_t;
/* Turns per-op timing on (1) or off (0); returns 0 when the backend cannot
 * time ops (the CPU), 1 otherwise. */
int ct_model_profile_ops(ct_model_t *m, int on);
/* The times accumulated since the previous call, then cleared; returns 0
 * (and zeroes *t) when timing is off or unsupported. */
int ct_model_op_times(ct_model_t *m, ct_model_op_times_t *t);

/* ---- planning: memory and FLOPs of a layout, without a device (model/plan.c) ---
 * Every buffer the model layer would allocate for one rank of a layout, from
 * the same size functions it allocates with (the CUDA backend allocates its
 * activations from the very table planned here), and the FLOPs per step.
 * Nothing is allocated; no GPU, MPI or data is needed. */
typedef enum {
    CT_PLAN_WEIGHTS = 0,
    CT_PLAN_GRADS,
    CT_PLAN_OPTIM,
    CT_PLAN_ACTS,
    CT_PLAN_WORKSPACE,
    CT_PLAN_NUM_KINDS
} ct_plan_kind_t;
/* How a buffer scales with tensor parallelism (Megatron): whole on every TP
 * rank, split by tp (sharded weights, the attention/MLP/vocab regions), or
 * split by tp under sequence parallelism only (the LayerNorm/residual
 * regions). */
typedef enum { CT_PLAN_FULL = 0, CT_PLAN_TP = 1, CT_PLAN_SP = 2 } ct_plan_region_t;

typedef struct {
    const char *name;  /* "activations: qkv" (static) */
    const char *shape; /* "(L, N, 3C/tp)", N = B*T tokens of a micro-batch (static) */
    ct_plan_kind_t kind;
    ct_plan_region_t region;
    size_t bytes;
    size_t slot; /* the backend's use: where the buffer's pointer lives; SIZE_MAX none */
} ct_plan_item_t;

#define CT_PLAN_MAX_ITEMS 64
typedef struct {
    int n;
    ct_plan_item_t item[CT_PLAN_MAX_ITEMS];
    size_t kind_bytes[CT_PLAN_NUM_KINDS];
    size_t total;
} ct_plan_mem_t;

typedef struct {
    int gpu;         /* the path planned: 1 the GPU path (device + host), 0 the CPU path */
    int tp_rank, dp_rank;
    int sp;          /* sequence parallelism planned (GPU path, tp > 1) */
    ct_model_dims_t d;
    size_t num_params;  /* this rank's (its TP shard) */
    size_t full_params; /* the whole model */
    size_t optim_count; /* AdamW elements per moment on this rank (its ZeRO shard) */
    int B, T, accum;    /* micro-batch, micro-batches per rank per step */
    int64_t tokens_per_step; /* the whole job's */
    double flops_per_token;  /* ct_model_flops_per_token: whole model, matmuls + attention */
    double flops_per_step;   /* the whole job's: flops_per_token * tokens_per_step */
    ct_plan_mem_t device;    /* the GPU path's device memory (gpu = 1) */
    ct_plan_mem_t host;      /* host memory of the path planned */
} ct_model_plan_t;

/* Plans rank (tp_rank, dp_rank) of cfg's layout (parallel.dp, parallel.tp,
 * optim.zero, model.recompute, train.batch_size/seq_len/batch_tokens) on
 * the GPU path (gpu = 1; sp = 1 for sequence parallelism, meaningful with
 * tp > 1) or the CPU path (gpu = 0, sp = 0). For tp > 1 the GPU plan is the
 * Megatron partitioning the TP GPU path allocates.
 * Errors (logged, naming the key and the fix): CT_ERR_CONFIG for a layout
 * the model cannot split, CT_ERR_UNSUPPORTED for one the GPU path refuses.
 * *plan_p written only on success. Thread-safe. */
CT_MUST_USE ct_status_t ct_model_plan(const ct_config_t *cfg, int gpu, int tp_rank, int dp_rank,
                                      int sp, ct_model_plan_t *plan_p);

/* ---- AdamW (model/optim.c) ------------------------------------------------------
 * One step skeleton for every backend: the DP gradient average (bucketed
 * all-reduce, or ZeRO-1 reduce-scatter), the global norm over the slice this
 * rank owns (every parameter counted once across TP and DP), clipping,
 * AdamW tensor by tensor (weight decay on 2-D tensors only), an update
 * skipped when the norm is not finite, and ZeRO's parameter all-gather. The
 * backend supplies the device's pieces (model/model_impl.h). */
struct ct_optim {
    float *m, *v;        /* (count) host AdamW moments of params [start, start+count) */
    size_t start, count; /* the slice this rank updates: all of it, or its ZeRO shard */
    size_t padded;       /* flat length rounded up to a multiple of dp */
    int zero;            /* ZeRO-1 */
    ct_comm_t *dp;       /* NULL for dp = 1 */
    ct_comm_t *tp;       /* NULL for tp = 1 */
    ct_comm_t *world;    /* NULL for a world of 1 */
    int tp_rank;
    size_t bucket_floats;
    double comm_seconds; /* time in DP collectives, accumulated */
    ct_arena_t arena;
};

/* Sizes the AdamW state for model m: all of it, or with zero = 1 the
 * dp_rank-th of dp equal slices. Groups may be NULL (size 1). */
CT_MUST_USE ct_status_t ct_optim_init(ct_optim_t *o, const ct_model_t *m, int zero, const ct_comm_groups_t *g,
                          int bucket_mib);
void ct_optim_free(ct_optim_t *o);

/* One optimizer step on accumulated gradients with learning rate lr and
 * bias-correction step t (1-based). *norm_p gets the global gradient norm
 * before clipping; when it is not finite the weights and AdamW state are
 * left unchanged (the caller counts a skipped step). */
CT_MUST_USE ct_status_t ct_optim_step(ct_optim_t *o, ct_model_t *m, const ct_optim_config_t *cfg, float lr,
                          int t, float *norm_p);

#endif
