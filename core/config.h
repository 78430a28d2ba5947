/* Run configuration: one typed struct per section, loaded from YAML with
 * libcyaml, then overridden by `--set section.key=value` from the CLI.
 *
 * Validation is strict: an unknown section or key, a value of the wrong type
 * and a value out of range are errors that name the key and the YAML line
 * (or the --set argument). Integers are parsed strictly by us, not by
 * libcyaml, so `1.5`, `1x`, `1e3` and `010` are rejected. Defaults live in one
 * table in config.c. Strings in the struct are owned by the config and are
 * released by ct_config_free. */
#ifndef CT_CORE_CONFIG_H
#define CT_CORE_CONFIG_H

#include <stdint.h>

#include "core/status.h"

/* Every integer key has a range (shown after each member below as [min, max];
 * K = 2^10, M = 2^20, G = 2^30), far above any real run, so that no product
 * the code forms from settings can overflow. */
#define CT_CONFIG_MAX_VOCAB (1 << 24)
/* A config file, or the config stored in a checkpoint, is refused above
 * this size, and YAML nested deeper than CT_CONFIG_MAX_DEPTH, before it is
 * parsed (a config is 2 levels deep and a few KiB). */
#define CT_CONFIG_MAX_BYTES (4 << 20)
#define CT_CONFIG_MAX_DEPTH 64

typedef enum { CT_DEVICE_AUTO = 0, CT_DEVICE_CPU = 1, CT_DEVICE_CUDA = 2 } ct_device_t;
typedef enum { CT_RECOMPUTE_NONE = 0, CT_RECOMPUTE_GELU = 1, CT_RECOMPUTE_LN_GELU = 2 } ct_recompute_t;
typedef enum { CT_ATTENTION_AUTO = 0, CT_ATTENTION_CUDNN = 1, CT_ATTENTION_PLAIN = 2 } ct_attention_t;
/* The model family: GPT-2 (learned positions, LayerNorm, GELU MLP, tied
 * head) or Llama (RoPE, RMSNorm, SwiGLU, grouped-query attention, no
 * biases, tied or untied head). */
typedef enum { CT_ARCH_GPT2 = 0, CT_ARCH_LLAMA = 1 } ct_arch_t;
typedef enum { CT_ROPE_SCALING_NONE = 0, CT_ROPE_SCALING_LLAMA3 = 1 } ct_rope_scaling_t;

typedef struct {
    int n_layer;      /* L [1, 1K] */
    int n_head;       /* NH [1, 1K] */
    int n_embd;       /* C [1, 64K] */
    int max_seq_len;  /* maxT, size of the position embedding [1, 1M] */
    int vocab_size;   /* V, real vocabulary; padded to a multiple of 128 inside
                         [2, CT_CONFIG_MAX_VOCAB = 16M] */
    char *init_from;  /* weights to start from: llm.c gpt2_*.bin (v3, fp32), a Hugging Face
                         model directory (config.json + safetensors, GPT-2 or Llama), or "" */
    float init_std;   /* std of the normal init of matrices */
    ct_device_t device;       /* auto (CUDA when a GPU is present) | cpu | cuda */
    ct_recompute_t recompute; /* GPU activation recompute: none | gelu | ln_gelu */
    ct_attention_t attention; /* GPU attention: auto (cuDNN if built) | cudnn | plain */

    /* The architecture, and the settings only Llama reads. With arch gpt2
     * every llama-only key must keep its default (an error names the key
     * otherwise). Names follow Hugging Face's LlamaConfig where it has one. */
    ct_arch_t arch;           /* gpt2 | llama */
    int n_kv_head;            /* key/value heads (GQA), dividing n_head; 0 = n_head [0, 1K] */
    int ffn_dim;              /* SwiGLU hidden units (intermediate_size); 0 = the rule
                                 below, ct_config_ffn_dim [0, 1M] */
    int ffn_multiple_of;      /* the rule: 8*n_embd/3 times ffn_multiplier, rounded up to a
                                 multiple of this (Meta's multiple_of) [1, 64K] */
    float ffn_multiplier;     /* Meta's ffn_dim_multiplier, in (0, 64] */
    float rope_theta;         /* RoPE base, > 0 */
    ct_rope_scaling_t rope_scaling; /* none | llama3 (Llama 3.1+ frequency scaling) */
    float rope_factor;        /* llama3: long wavelengths are divided by this, >= 1 */
    float rope_low_freq_factor;  /* llama3: low_freq_factor, > 0 */
    float rope_high_freq_factor; /* llama3: high_freq_factor, > rope_low_freq_factor */
    int rope_original_max_seq_len; /* llama3: original_max_position_embeddings [1, 1M] */
    float norm_eps;           /* RMSNorm epsilon, > 0 */
    int tie_embeddings;       /* 1: the LM head is the token embedding [0, 1] */
} ct_model_config_t;

/* The SwiGLU width of a Llama config: ffn_dim when set, else Meta's rule
 * multiple_of * ceil(int(ffn_multiplier * int(8 * n_embd / 3)) / multiple_of). */
int ct_config_ffn_dim(const ct_model_config_t *m);

typedef struct {
    char *train;      /* shard glob or comma-separated list of paths */
    char *val;        /* validation shards, same syntax, or "" for none */
    int64_t seed;     /* sample-order seed [0, INT64_MAX] */
    int chunk_tokens; /* tokens per shuffle chunk [1, 1G] */
    int window_chunks;/* chunks shuffled together at sample level [1, 64K] */
    int prefetch_mib; /* streaming buffer; 0 = two windows of chunks [0, 1M] */
    int max_retries;  /* transient read failures retried (with backoff) [0, 100] */
    char *cache_dir;  /* local disk cache of remote chunks, "" = none */
    int cache_mib;    /* its size limit [1, 16M] */
} ct_data_config_t;

typedef enum { CT_DECAY_COSINE = 0, CT_DECAY_LINEAR = 1, CT_DECAY_CONSTANT = 2 } ct_decay_t;

typedef struct {
    float lr;           /* peak learning rate */
    float min_lr_frac;  /* floor as a fraction of lr */
    int warmup_steps;   /* [0, 1G] */
    ct_decay_t decay;   /* cosine | linear | constant */
    float weight_decay; /* applied to matrices only */
    float beta1, beta2, eps;
    float grad_clip;    /* global-norm clip; 0 disables */
    int zero;           /* 0: every DP rank holds all AdamW state; 1: ZeRO-1 shards it [0, 1] */
    int stochastic_rounding; /* GPU: round the bf16 weight copy stochastically [0, 1] */
} ct_optim_config_t;

typedef struct {
    char *run_dir;        /* metrics.jsonl and ckpt/ go here */
    int steps;            /* total optimizer steps [1, 1G] */
    int batch_size;       /* micro-batch B [1, 1M]; B * T at most INT_MAX */
    int seq_len;          /* T [1, 1M], at most model.max_seq_len */
    int64_t batch_tokens; /* global batch in tokens; multiple of B*T*dp; 0 = B*T*dp [0, 2^40] */
    int64_t seed;         /* parameter init seed [0, INT64_MAX] */
    int log_every;        /* [1, 1G] */
    int threads;          /* 0 = OpenMP default [0, 4K] */
    int max_skips;        /* consecutive non-finite steps (skipped) before stopping [1, 1M] */
    float spike_z;        /* log a loss this many std devs above its recent mean; 0 = off */
    float peak_tflops;    /* device peak for MFU; 0 = the known-GPU table (bf16 dense) */
    int profile_ops;      /* GPU: time every op by family (CUDA events), log a table per
                           * logged step and the times in metrics.jsonl: false | true */
} ct_train_config_t;

typedef struct {
    int every;           /* validation every N steps; 0 disables [0, 1G] */
    int64_t tokens;      /* validation tokens per evaluation, the first tokens/seq_len
                            held-out windows; 0 = the whole held-out set [0, 2^48] */
    int sample_every;    /* sample text every N steps; 0 disables [0, 1G] */
    int sample_tokens;   /* tokens per sample; 0 = no samples at all [0, 1M] */
    float temperature;
    int top_k;           /* 0 = no top-k [0, 16M] */
    int64_t sample_seed; /* [0, INT64_MAX] */
    char *prompt;        /* text prompt for samples, "" = end-of-text */
    char *tokenizer;     /* tokenizer file, to decode samples; "" = print ids */
} ct_eval_config_t;

typedef struct {
    int every;      /* save every N steps; 0 = only at the end [0, 1G] */
    char *resume;   /* "none" | "auto" | path to a checkpoint directory */
    int keep_last;  /* 0 keeps all [0, 1M] */
    int keep_every; /* also keep every checkpoint whose step is a multiple; 0 = none [0, 1G] */
} ct_ckpt_config_t;

typedef struct {
    int dp;           /* data-parallel ranks [1, 64K] */
    int tp;           /* tensor-parallel ranks (adjacent ranks); world = dp * tp [1, 1K] */
    int sp;           /* sequence parallelism (GPU path, tp > 1): the LayerNorm/residual
                       * regions split along the sequence over the TP group: false | true */
} ct_parallel_config_t;

typedef struct {
    float timeout_s;  /* a collective slower than this ends the job; 0 = no limit;
                         at most 1e6 (11 days) */
    int bucket_mib;   /* DP gradient all-reduce bucket size [1, 64K] */
} ct_comm_config_t;

typedef struct {
    ct_model_config_t model;
    ct_data_config_t data;
    ct_optim_config_t optim;
    ct_train_config_t train;
    ct_eval_config_t eval;
    ct_ckpt_config_t checkpoint;
    ct_parallel_config_t parallel;
    ct_comm_config_t comm;
} ct_config_t;

/* Fills `cfg` with the defaults. Call ct_config_free afterwards. */
void ct_config_defaults(ct_config_t *cfg);
/* Loads `path` (may be NULL for defaults only) and applies `n_sets`
 * "section.key=value" overrides in order, then validates ranges. On error
 * logs the key and line once and returns CT_ERR_CONFIG (CT_ERR_NOT_FOUND for a
 * missing file); `cfg` is then left freed. */
CT_MUST_USE ct_status_t ct_config_load(const char *path, const char *const *sets, int n_sets, ct_config_t *cfg);
/* Applies one "section.key=value" override; `origin` names it in errors. */
CT_MUST_USE ct_status_t ct_config_set(ct_config_t *cfg, const char *assignment, const char *origin);
/* Writes the resolved config as YAML to a malloc'd string (caller frees).
 * ct_config_load of that text gives back the same config. */
char *ct_config_to_yaml(const ct_config_t *cfg);
/* Parses YAML text (as ct_config_to_yaml writes) into cfg; `origin` names it in errors.
 * Keys an older version wrote and that have since been removed are skipped,
 * so the configs stored in old checkpoints still load. */
CT_MUST_USE ct_status_t ct_config_load_string(const char *yaml, const char *origin, ct_config_t *cfg);
void ct_config_free(ct_config_t *cfg);

#endif
