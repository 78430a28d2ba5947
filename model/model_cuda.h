/* What every CUDA backend of model/ shares (model/model_cuda.c): the device
 * copies of the flat arenas (fp32 master weights, bf16 weights, fp32
 * gradients, the AdamW state of the owned slice), the compute and DP
 * streams, the NCCL groups, per-op timing, and the optimizer's device
 * pieces, which see the model only as flat arenas and its tensor table.
 * The architectures' forward and backward (gpt2_cuda.c, llama_cuda.c) and
 * their activations stay in their own files. Private to model/; compiled
 * only in builds with CUDA (or the emulator).
 *
 * A backend's state struct begins with CT_CUDA_MODEL_BASE, so the shared
 * fields read as G->stream in the backend and m->dev is a ct_cuda_model_t
 * to the shared functions. */
#ifndef CT_MODEL_MODEL_CUDA_H
#define CT_MODEL_MODEL_CUDA_H

#include "kernels/kernels.h"
#include "model/model_impl.h"

/* Op families of the per-op timing (model/model.h), the same slots for
 * every architecture; each backend names them (F_LN is "layernorm" for
 * GPT-2, "rmsnorm" for Llama). */
enum { F_EMBED, F_LN, F_MATMUL, F_ATTN, F_GELU, F_XENT, F_TP, F_DP, F_OPTIM, F_OTHER, F_N };
_Static_assert(F_N == CT_MODEL_OP_FAMILIES, "one name per family");

struct ct_cuda_prof;

#define CT_CUDA_MODEL_FIELDS                                                                \
    ct_cuda_t *ctx;                                                                         \
    void *stream, *comm_stream;                                                             \
    void **ev_layer; /* (L) a layer's gradients are complete */                             \
    void *ev_backward, *ev_reduced;                                                         \
    float *master;      /* (num_params + pad) fp32 */                                       \
    ct_bf16_t *params;  /* (num_params) */                                                  \
    float *grads;       /* (num_params + pad) fp32 */                                       \
    float *m, *v;       /* (o->count) AdamW state of the owned slice */                     \
    float *opt_scratch; /* the backend's reduction scratch (ct_cuda_sumsq) */               \
    float *opt_sumsq;   /* (1) device gradient sum of squares */                            \
    int stochastic, zero;                                                                   \
    int sp;             /* sequence parallelism (tp > 1): norm/residual rows split */       \
    float *host_losses; /* (N) */                                                           \
    float *host_row;    /* (Vpl) */                                                         \
    ct_bf16_t *host_row_bf; /* (Vpl) */                                                     \
    ct_comm_groups_t dev; /* NCCL groups (dp > 1 or tp > 1) */                              \
    int have_dev;                                                                           \
    ct_comm_t *dpc, *tpc; /* dev.dp for dp > 1, dev.tp for tp > 1, else NULL */             \
    int reduce_started;   /* layers already reduced during this backward */                \
    size_t alloc_bytes;                                                                     \
    struct ct_cuda_prof *prof;       /* per-op timing, NULL when off */                     \
    const char *const *prof_names;   /* (F_N) the families' names */                        \
    unsigned char per_layer[CT_MODEL_MAX_TENSORS]; /* tensor i has one slice per layer */  \
    double t0; /* when the running optimizer step began */

typedef struct {
    CT_CUDA_MODEL_FIELDS
} ct_cuda_model_t;

/* The first member of a backend's state: the shared fields by name, and
 * the whole as `base`. */
#define CT_CUDA_MODEL_BASE                                                                  \
    union {                                                                                 \
        ct_cuda_model_t base;                                                               \
        struct {                                                                            \
            CT_CUDA_MODEL_FIELDS                                                            \
        };                                                                                  \
    }

static inline ct_cuda_model_t *ct__cuda_model(const ct_model_t *m)
{
    return (ct_cuda_model_t *)m->dev;
}

/* ---- per-op timing ---------------------------------------------------------- */
int ct__cuda_prof_begin(ct_cuda_model_t *c, int fam, double flop, double bytes, void *stream);
void ct__cuda_prof_end(ct_cuda_model_t *c, int k, void *stream);
/* Times one op call of the shared state c: CT_CUDA_OP(c, family, flops,
 * bytes, stream, the call). */
#define CT_CUDA_OP(c, fam, fl, by, st, ...)                                                \
    do {                                                                                   \
        int k_ = ct__cuda_prof_begin((c), (fam), (double)(fl), (double)(by), (st));        \
        __VA_ARGS__;                                                                       \
        ct__cuda_prof_end((c), k_, (st));                                                  \
    } while (0)
/* The same in a backend whose state is G: OP(family, flops, bytes, stream,
 * the call). */
#define OP(fam, fl, by, st, ...) CT_CUDA_OP(&G->base, fam, fl, by, st, __VA_ARGS__)

/* ---- setup and teardown --------------------------------------------------------- */
/* Device bytes, counted in alloc_bytes; `what` names it in an OOM error. */
CT_MUST_USE ct_status_t ct__cuda_model_alloc(ct_cuda_model_t *c, void **p, size_t bytes,
                                             const char *what);
/* The context, streams, events and the weight, gradient and AdamW buffers
 * (m->dev already points at the backend's zeroed state). */
CT_MUST_USE ct_status_t ct__cuda_model_setup(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                                             int device, const char *const *prof_names,
                                             const int *per_layer, int B, int T);
/* Prepares attention for (B, T, NH, HS), falling back under model.attention
 * auto to the plain kernels when cuDNN rejects the shape. */
CT_MUST_USE ct_status_t ct__cuda_model_prepare_attention(ct_cuda_model_t *c, const ct_config_t *cfg,
                                                         int B, int T, int NH, int HS);
/* Host staging, the weights and AdamW state copied to the device, the NCCL
 * groups; after the backend allocated its activations (opt_scratch and
 * opt_sumsq set). */
CT_MUST_USE ct_status_t ct__cuda_model_finish(ct_model_t *m, ct_optim_t *o, const ct_comm_groups_t *g,
                                              int B, int T);
/* Frees what setup and finish made; the backend frees its activations
 * first. Waits for the device. */
void ct__cuda_model_free(ct_model_t *m);

/* ---- helpers of a step ------------------------------------------------------------- */
/* Orders the compute stream after DP reduces a backward started but no
 * optimizer step consumed (a step skipped for a non-finite loss). */
void ct__cuda_wait_reduces(ct_cuda_model_t *c);
/* Waits for the compute stream: bounded by comm.timeout_s when it holds TP
 * collectives. */
void ct__cuda_compute_sync(ct_cuda_model_t *c);
/* A TP collective on the compute stream; a failed one leaves the model
 * state undefined, so the job ends. */
void ct__cuda_tp_check(ct_status_t st);
/* Starts the DP all-reduce of layer l's gradient slices (the per_layer
 * tensors) on the comm stream, after the compute stream finished them. */
void ct__cuda_reduce_layer(ct_model_t *m, int l);
/* Sum of the losses of the (N) device losses: one host wait. */
float ct__cuda_mean_loss(ct_cuda_model_t *c, const float *losses, int N);
/* Row `row` of (N, Vpl) bf16 logits, on the host in fp32. */
const float *ct__cuda_logits_row(ct_model_t *m, const ct_bf16_t *logits, int row);

/* ---- tensor and sequence parallelism ----------------------------------------------- *
 * Under sequence parallelism (c->sp) the norm/residual regions hold this
 * rank's N/tp tokens (a block of rows of the whole batch): the TP sum of a
 * row-parallel output or a column-parallel input gradient becomes a
 * reduce-scatter, and a norm's output is all-gathered before the
 * column-parallel matmuls that read it (in the backward again, for their
 * weight gradients). Every (N, C) buffer here has the model's C columns. */
/* Rows of this rank in a norm/residual region: all N, or N/tp under
 * sequence parallelism, starting at row *row0_p (may be NULL) of the batch. */
int ct__cuda_sp_rows(const ct_model_t *m, int N, size_t *row0_p);
/* The TP sum of (N, C) fp32 partials in buf: all-reduced in place, or
 * reduce-scattered in place (sequence parallelism), so that this rank's
 * rows hold their sums. Returns this rank's rows of buf. */
float *ct__cuda_tp_reduce_rows(ct_model_t *m, float *buf, int N);
/* Gathers the (N/tp, C) bf16 rows of every TP rank into full (N, C); in
 * place when rows is this rank's block of full. C must be even (bf16
 * travels as pairs). */
void ct__cuda_sp_gather_bf16(ct_model_t *m, const ct_bf16_t *rows, ct_bf16_t *full, int N);
/* The input of a column-parallel matmul: the norm output ln, or under
 * sequence parallelism (ln this rank's rows) the whole batch of it
 * gathered into full (N, C). */
const ct_bf16_t *ct__cuda_sp_col_input(ct_model_t *m, const ct_bf16_t *ln, ct_bf16_t *full,
                                       int N);
/* Under sequence parallelism: after this rank's rows of full (N, C) bf16
 * were written in place, every rank's rows, gathered (e.g. a residual
 * gradient for the row-parallel backward). A no-op otherwise. */
void ct__cuda_sp_gather_rows(ct_model_t *m, ct_bf16_t *full, int N);
/* Sequence parallelism: the gradients of the norm weights (replicated over
 * TP) come from this rank's rows only; they are summed over the TP group
 * once per step (m->grad_sync; they accumulate over micro-batches in
 * between), every rank then holding the whole. tensors: indices into the
 * tensor table, each either per layer (layer l's slice) or whole. No-op
 * without sequence parallelism. */
void ct__cuda_sp_sum_grads(ct_model_t *m, const int *tensors, int n, int l);

/* ---- the LM head and cross-entropy, chunk by chunk --------------------------------- */
/* What ct__cuda_head does with each chunk of rows after its logits:
 *   CT_HEAD_LOGITS (no targets): nothing; only the last chunk runs, and its
 *     logits stay for the backend's logits_row;
 *   CT_HEAD_LOSS: the per-row losses;
 *   CT_HEAD_TRAIN: the losses and, in place of the logits, their gradient,
 *     then at once the head's backward: dw += dlogits^T x and d(x). */
enum { CT_HEAD_LOGITS, CT_HEAD_LOSS, CT_HEAD_TRAIN };

/* The buffers of the head; R = ct__model_head_rows(m->B, m->T). */
typedef struct {
    const ct_bf16_t *x;      /* (N, C) the final norm's output, every token */
    const ct_bf16_t *w;      /* (Vpl, C) the head's weight (the embedding when tied) */
    float *dw;               /* (Vpl, C) its gradient, added to */
    ct_bf16_t *logits;       /* (R, Vpl) one chunk; dlogits in training */
    const int32_t *targets;  /* (N) */
    float *losses;           /* (N) */
    float *lse;              /* (N) log-sum-exp (TP only) */
    float *xstats;           /* (tp, R, 3) every rank's statistics of a chunk (TP only) */
    float *scratch;          /* the matmul backward's reduction scratch */
    ct_bf16_t *dx_bf;        /* (N, C) d(x) rounded to bf16, at tp = 1; or NULL: */
    float *dx_f32;           /* (N, C) d(x) in fp32, this rank's partial sums under TP */
} ct_cuda_head_t;

/* The LM head and cross-entropy over N rows, chunk by chunk of R rows, so
 * that the logits never exist for the whole micro-batch. At tp = 1 one
 * fused kernel computes a chunk's losses and dlogits in one pass over its
 * logits. Under TP (a vocab-parallel head) each chunk's cross-entropy
 * statistics are all-gathered (the logits never leave their rank), and
 * d(x) is left as this rank's partial sums for the caller to reduce over
 * the group. Returns the first row of the chunk the logits buffer holds. */
int ct__cuda_head(ct_model_t *m, const ct_cuda_head_t *h, int N, int mode, float dloss);

/* ---- backend table entries, the same for every architecture ----------------------- */
void ct__cuda_model_to_host(ct_model_t *m, ct_optim_t *o);
void ct__cuda_model_grads_to_host(ct_model_t *m, float *dst);
void ct__cuda_model_zero_grad(ct_model_t *m);
const char *ct__cuda_model_device_name(const ct_model_t *m);
double ct__cuda_model_peak_tflops(const ct_model_t *m);
size_t ct__cuda_model_peak_memory(const ct_model_t *m);
int ct__cuda_model_profile_ops(ct_model_t *m, int on);
int ct__cuda_model_op_times(ct_model_t *m, ct_model_op_times_t *t);
CT_MUST_USE ct_status_t ct__cuda_model_grad_reduce(ct_model_t *m, ct_optim_t *o, int t);
CT_MUST_USE ct_status_t ct__cuda_model_grad_sumsq(ct_model_t *m, ct_optim_t *o, int t,
                                                  double *host_p);
void ct__cuda_model_adamw(ct_model_t *m, ct_optim_t *o, const ct_optim_config_t *cfg, size_t a,
                          size_t b, float lr, float wd, int t, int tensor, float clip_scale);
CT_MUST_USE ct_status_t ct__cuda_model_param_gather(ct_model_t *m, ct_optim_t *o, int t);
CT_MUST_USE ct_status_t ct__cuda_model_step_norm(ct_model_t *m, ct_optim_t *o, int t,
                                                 double host_sumsq, float *norm_p);

#endif
