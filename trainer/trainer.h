/* The trainer layer's one public header: the train loop, the LR schedule,
 * checkpoints and sampling, over model/model.h's models. The commands that
 * drive them live in cli/. */
#ifndef CT_TRAINER_TRAINER_H
#define CT_TRAINER_TRAINER_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "comm/comm.h"
#include "core/config.h"
#include "core/rng.h"
#include "core/status.h"
#include "data/data.h"
#include "model/model.h"

typedef struct {
    int64_t steps_run;   /* optimizer steps taken by this call */
    int64_t final_step;  /* steps completed overall (after resume) */
    float last_loss;     /* train loss of the last step */
    float last_val_loss; /* -1 if never evaluated */
    float unigram_loss;  /* validation loss of a unigram model, -1 if unknown */
    int64_t skipped_steps; /* updates skipped for a non-finite loss or gradient */
    int64_t spikes;      /* loss spikes logged */
} ct_train_summary_t;

/* Set (to the signal number) by the CLI's SIGTERM/SIGUSR1/SIGINT handler:
 * ct_train_run then saves a checkpoint after the current step and returns
 * CT_ERR_INTERRUPTED, on every rank together. */
extern volatile sig_atomic_t ct_train_stop_signal;

/* Preemption under a launcher (trainer/preempt.c). The seconds between the
 * launcher's stop signal reaching the ranks and SIGKILL: Open MPI's
 * odls_base_sigkill_timeout (default 1) under its mpirun, Slurm's KillWait
 * when the sbatch script passes it in CT_KILL_WAIT_S, or -1 when unknown or
 * moot (one process, or CT_LAUNCHER set by a wrapper that forwards the stop
 * at once, as launch/mpirun.sh does). */
double ct_preempt_kill_timeout(void);
/* Warns (on rank 0) when need_s, the time to finish a step, save a
 * checkpoint and exit, exceeds that timeout, and says what to set; basis
 * says how need_s was found. Returns 1 if it warned. */
int ct_preempt_check(double need_s, const char *basis);
/* The grace a rank gives MPI_Finalize after a preemption save before it
 * exits anyway: when mpirun itself was signalled it no longer completes
 * the finalize handshake, and the ranks would sit there until SIGKILL. */
#define CT_PREEMPT_EXIT_GRACE_S 2

/* Runs training as configured, on the process groups g (NULL: one process;
 * collective over g's world otherwise). stop_at > 0 ends the run after that
 * many completed steps (with a checkpoint), as a preemption would. */
CT_MUST_USE ct_status_t ct_train_run(const ct_config_t *cfg, const ct_comm_groups_t *g, int64_t stop_at,
                         ct_train_summary_t *summary_p);

/* ---- placement (trainer/placement.c) ------------------------------------------- */
typedef struct {
    int device;   /* the CUDA device this rank drives, or -1: the CPU */
    int gpus;     /* CUDA devices this rank sees */
    int shared;   /* another rank of its node drives the same GPU (allowed by
                   * CT_ALLOW_GPU_SHARING=1) */
    int tp_nodes; /* nodes its TP group spans: 1 when inside one node */
} ct_placement_t;
/* Picks this rank's device from model.device and the GPUs it sees (GPU
 * node-local rank % GPUs) and checks the launch's layout: on the GPU path
 * one rank per GPU and every TP group inside one node, unless
 * CT_ALLOW_GPU_SHARING=1 / CT_ALLOW_TP_ACROSS_NODES=1 (warned on rank 0
 * then); on the CPU path a TP group across nodes is a warning. Collective
 * over g's world (g NULL: one process); every rank reaches the same verdict
 * and logs the same error, naming the setting and the fix: CT_ERR_CONFIG for
 * a bad layout, CT_ERR_UNSUPPORTED for model.device cuda where a rank has no
 * GPU. *place_p written only on success. */
CT_MUST_USE ct_status_t ct_train_place(const ct_config_t *cfg, const ct_comm_groups_t *g,
                                       ct_placement_t *place_p);

/* ---- the LR schedule (trainer/schedule.c) ------------------------------------- */
/* Learning rate for 0-based `step` of `total`: linear warmup from lr/warmup
 * to lr over warmup_steps, then cosine/linear decay (or constant) to
 * lr*min_lr_frac at the last step. */
float ct_lr_at(const ct_optim_config_t *cfg, int step, int total);

/* ---- checkpoints ----------------------------------------------------------------
 * A directory per step, RUN_DIR/ckpt/step_00000100/, holding
 *   params_tp<r>.bin        the flat parameter shard of TP rank r,
 *   optim_tp<r>.bin         AdamW m then v of TP rank r (no ZeRO), or
 *   optim_tp<r>_z<s>.bin    ZeRO shard s of it,
 *   manifest.yaml           format, step, data position, RNG state, model
 *                           dims, parallel layout, the resolved config and a
 *                           tensor table (file, offset, bytes, crc32; flat
 *                           start for optimizer pieces).
 * The manifest is written last, by rank 0, only after every rank has
 * written and fsynced its files, through manifest.yaml.tmp, fsync and
 * rename: a directory without manifest.yaml is an incomplete save and is
 * never picked by `resume: auto`. Loading re-slices the optimizer state for
 * any DP size, with or without ZeRO; a different TP size needs
 * ct_ckpt_reshard. */
typedef struct {
    int64_t step;        /* optimizer steps completed */
    int64_t samples;     /* data position: samples consumed from the order */
    uint64_t sample_rng; /* state of the text-sampling RNG */
} ct_ckpt_state_t;

/* Saves to RUN_DIR/ckpt/step_%08d. Collective over g's world (g may be
 * NULL for one process); every rank gets the same status. *dir_p
 * (optional) gets a malloc'd path. */
CT_MUST_USE ct_status_t ct_ckpt_save(const char *run_dir, const ct_model_t *m, const ct_optim_t *o,
                         const ct_config_t *cfg, const ct_ckpt_state_t *state,
                         const ct_comm_groups_t *g, char **dir_p);
/* Newest complete checkpoint under RUN_DIR/ckpt, as a malloc'd path;
 * CT_ERR_NOT_FOUND (not logged) when there is none. Step directories
 * without a manifest (interrupted saves or prunes) are skipped with a
 * warning, once per directory per process (rank 0). Main thread only. */
CT_MUST_USE ct_status_t ct_ckpt_find_latest(const char *run_dir, char **dir_p);
/* Newest complete checkpoint whose step is below `before`. */
CT_MUST_USE ct_status_t ct_ckpt_find_before(const char *run_dir, int64_t before, char **dir_p);
/* Reads the config stored in a checkpoint's manifest into cfg. */
CT_MUST_USE ct_status_t ct_ckpt_read_config(const char *dir, ct_config_t *cfg);
/* Loads this rank's parameter shard (and, with o, its slice of the AdamW
 * state) into a model whose dims and TP size must match, verifying every
 * checksum. No collectives. */
CT_MUST_USE ct_status_t ct_ckpt_load(const char *dir, ct_model_t *m, ct_optim_t *o, ct_ckpt_state_t *state_p);
/* Rewrites checkpoint src for new_tp tensor-parallel ranks into directory
 * dst (offline, one process). The vocabulary is repadded for new_tp (real
 * rows only), so it also converts a checkpoint saved when the padding was
 * 128 rows for every tp, which ct_ckpt_load refuses with this hint. */
CT_MUST_USE ct_status_t ct_ckpt_reshard(const char *src, const char *dst, int new_tp);
/* Deletes complete checkpoints older than the newest keep_last (> 0),
 * except those whose step is a multiple of keep_every (> 0), and the
 * incomplete step directories older than the newest complete checkpoint
 * (never a newer one). Each goes by a rename to step_N.deleting first, so
 * an interruption leaves no step directory that is neither a checkpoint
 * nor gone; leftovers of that are removed by the next prune. Call it after
 * a save has completed (no save in flight). Main thread only. */
void ct_ckpt_prune(const char *run_dir, int keep_last, int keep_every);

/* ---- sampling ----------------------------------------------------------------- */
/* ids holds n_prompt >= 1 tokens and room for n_new more; appends n_new
 * sampled tokens. Uses the model's activations (batch 1, a window of the
 * last m->T tokens). temperature > 0; top_k 0 = all of V. `scratch` holds
 * 2*Vp floats. With TP, every rank of the group must call it (same RNG). */
void ct_sample_generate(ct_model_t *m, int32_t *ids, int n_prompt, int n_new, float temperature,
                      int top_k, ct_rng_t *rng, float *scratch);

/* Samples n_new tokens after `prompt` (encoded with bpe if given, else the
 * end-of-text token) and writes the text, or ids without a tokenizer, to
 * out (NULL: generate only, for ranks that do not print). bpe may be NULL. */
CT_MUST_USE ct_status_t ct_sample_print(ct_model_t *m, ct_bpe_t *bpe, const char *prompt, int n_new,
                            float temperature, int top_k, ct_rng_t *rng, FILE *out);

/* ---- Hugging Face files (trainer/hf.c) --------------------------------------------
 * What `ctrain import` and `ctrain export` need that is no file I/O: the
 * tensors of GPT2LMHeadModel and the readers of config.json and of a
 * safetensors JSON header, on bytes in memory. Nothing here allocates the
 * model; thread-safe (no shared state). */
#define CT_HF_NAME_MAX 96
typedef struct {
    char name[CT_HF_NAME_MAX]; /* "transformer.h.0.attn.c_attn.weight" */
    int src;                   /* our tensor */
    size_t off;                /* float offset into it */
    int R, K, transpose;       /* a (R, K) slab, stored (K, R) by HF when transposed;
                                  R == 1: a 1-D tensor of K */
} ct_hf_tensor_t;

/* GPT2LMHeadModel's tensors for dims d (tp = 1), in model order, without
 * the tied lm_head: a malloc'd array of *n_p, or NULL when out of memory. */
ct_hf_tensor_t *ct_hf_tensors(const ct_model_dims_t *d, int *n_p);
/* The HF shape of e, 1 or 2 dims, into shape; returns the number of dims. */
int ct_hf_shape(const ct_hf_tensor_t *e, long long shape[2]);
/* Reads config.json text (len bytes; path names it in errors) into the
 * model dims of mc (the other members are left alone). Logs and returns
 * CT_ERR_CORRUPT or CT_ERR_UNSUPPORTED. */
CT_MUST_USE ct_status_t ct_hf_parse_config(const char *text, size_t len, const char *path,
                                           ct_model_config_t *mc);

/* Where one tensor lies in a safetensors file's data section. */
typedef struct {
    int entry;      /* index into the ct_hf_tensors array, or n for lm_head.weight */
    int dtype;      /* 4 F32, 2 F16, 3 BF16 */
    int64_t offset; /* bytes from the start of the data section */
    size_t count;   /* elements */
} ct_hf_read_t;

/* Checks a safetensors JSON header (hlen bytes) against the n tensors e of
 * a model, for a data section of data_len bytes: every tensor present once,
 * with its shape, a supported dtype and offsets inside the data. On success
 * *reads_p (malloc'd, caller frees) lists the *n_reads_p tensors to read, in
 * file order. Logs the cause and returns CT_ERR_CORRUPT, CT_ERR_UNSUPPORTED
 * or CT_ERR_NO_MEMORY. */
CT_MUST_USE ct_status_t ct_hf_parse_header(const char *hdr, size_t hlen, const char *path,
                                           const ct_hf_tensor_t *e, int n, int64_t data_len,
                                           ct_hf_read_t **reads_p, int *n_reads_p);

/* ---- Hugging Face Llama files and sharded checkpoints (trainer/hf.c) ---------------
 * ct_hf_tensors and ct_hf_parse_config serve LlamaForCausalLM too: for dims
 * of arch llama the tensors are model.embed_tokens.weight, the layers'
 * input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm,
 * mlp.{gate,up,down}_proj, model.norm.weight and, untied, lm_head.weight
 * (all stored as ours, none transposed); a config.json of model_type
 * llama fills the Llama keys of mc (arch, n_kv_head, ffn_dim, rope_*,
 * norm_eps, tie_embeddings), any model_type but gpt2 and llama is
 * CT_ERR_UNSUPPORTED. */

/* ct_hf_parse_header for one file of a sharded checkpoint: in_file (n + 1
 * flags, the last for a copy of a tied head) says which tensors the index
 * puts in this file; each must be there, and no other. in_file NULL: all
 * n, as ct_hf_parse_header. */
CT_MUST_USE ct_status_t ct_hf_parse_header_part(const char *hdr, size_t hlen, const char *path,
                                                const ct_hf_tensor_t *e, int n,
                                                const unsigned char *in_file, int64_t data_len,
                                                ct_hf_read_t **reads_p, int *n_reads_p);
/* Reads model.safetensors.index.json text: its weight_map must name every
 * one of the n tensors e (buffers such as rotary_emb.inv_freq are
 * ignored; an unknown tensor or a file outside the directory is an error).
 * On success *files_p (malloc'd array of malloc'd names, caller frees) holds
 * the *n_files_p distinct files in order of first mention, and file_of[k]
 * (n + 1 ints) the file of tensor k, -1 for an unlisted copy of a tied head
 * (k = n). Logs and returns CT_ERR_CORRUPT or CT_ERR_NO_MEMORY. */
CT_MUST_USE ct_status_t ct_hf_parse_index(const char *text, size_t len, const char *path,
                                          const ct_hf_tensor_t *e, int n, char ***files_p,
                                          int *n_files_p, int *file_of);

/* ---- reading Hugging Face directories (trainer/hf_io.c) ---------------------------- */
/* Reads the config.json at path into mc's model keys (ct_hf_parse_config;
 * the other members are left alone). Logs; CT_ERR_NOT_FOUND when missing. */
CT_MUST_USE ct_status_t ct_hf_read_config(const char *path, ct_model_config_t *mc);
/* Reads HF_DIR's weights (model.safetensors, or the files its
 * model.safetensors.index.json lists) into m's host parameters; m is a
 * tp = 1 model whose dims match the files (ct_hf_read_config). Padding rows
 * are left as they are. Logs the file and tensor on any error. */
CT_MUST_USE ct_status_t ct_hf_read_weights(const char *dir, ct_model_t *m);
/* model.init_from for a Hugging Face directory: checks its config.json
 * against mc (architecture and shapes must agree: CT_ERR_CONFIG naming the
 * key; context length, RoPE and norm epsilon may differ, with a warning),
 * then loads the weights into m, this rank's shard of them under TP. */
CT_MUST_USE ct_status_t ct_hf_init_from(const char *dir, const ct_model_config_t *mc,
                                        ct_model_t *m);

#endif
