/* The train loop: gradient accumulation to a global batch, global-norm
 * clipping, AdamW, LR schedule, periodic validation, text samples and
 * checkpoints, one progress line per step on rank 0 and JSONL metrics in
 * RUN_DIR/metrics.jsonl.
 *
 * Determinism: optimizer step s consumes samples [s*G, (s+1)*G) of the data
 * order (G samples per global batch), validation reads the same held-out
 * windows every time (see eval_val_loss), and the sampling RNG is separate
 * and checkpointed, so N steps + resume + N steps equals 2N steps bit for
 * bit. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/env.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "data/data.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "trainer/trainer.h"

volatile sig_atomic_t ct_train_stop_signal = 0;

typedef struct {
    const ct_config_t *cfg;
    const ct_comm_groups_t *g; /* NULL: one process */
    ct_model_t model;
    ct_optim_t optim;
    ct_loader_t *train, *val;
    ct_bpe_t *bpe;
    int32_t *inputs, *targets; /* (B, T) */
    FILE *metrics;
    ct_rng_t sample_rng;
    int64_t step, samples;
    int64_t nan_at[8];     /* test hook CT_TEST_NAN_AT: steps whose loss is made NaN */
    int n_nan_at;
    int B, T, accum;       /* accum: micro-batches per rank per step */
    int64_t n_val;         /* held-out windows each validation reads */
    int dp, dp_rank;
    int device;            /* CUDA device, or -1 for the CPU */
    int made_run_dir;      /* train.run_dir did not exist before this run */
    double peak_flops;     /* per rank, for MFU; 0 = unknown */
    double step_seconds;   /* summed over steps_timed steps of this run */
    int64_t steps_timed;
    int preempt_checked;   /* the preemption budget was checked on measured times */
} train_ctx_t;

/* The validation loss: the mean per-token loss over the first n_val windows
 * of the held-out set in file order (all of them unless eval.tokens caps
 * it). The windows are a fixed grid that depends on neither the number of
 * ranks nor the batch size: DP rank r takes the r-th contiguous share of
 * them, reads it in micro-batches of up to B windows, and one all-reduce
 * sums (loss sum, token count) over the DP group; TP ranks evaluate their
 * DP rank's share together. Batch size and DP size thus change the result
 * only by floating-point rounding. */
static CT_MUST_USE ct_status_t eval_val_loss(train_ctx_t *c, float *loss_p)
{
    const int64_t n = c->n_val, first = n * c->dp_rank / c->dp, end = n * (c->dp_rank + 1) / c->dp;
    double acc[2] = {0.0, 0.0}; /* loss summed over tokens, tokens */
    for (int64_t i = first; i < end; i += c->B) {
        int b = end - i < c->B ? (int)(end - i) : c->B;
        ct_status_t st = ct_loader_read(c->val, i, b, c->inputs, c->targets);
        if (st != CT_OK) return st;
        acc[0] += (double)ct_model_forward(&c->model, c->inputs, c->targets, b, c->T) * b * c->T;
        acc[1] += (double)b * c->T;
    }
    if (c->dp > 1) {
        ct_comm_set_activity("validation loss");
        ct_status_t st = ct_comm_allreduce(c->g->dp, acc, acc, 2, CT_DTYPE_F64, CT_OP_SUM, NULL);
        if (st != CT_OK) return st;
    }
    *loss_p = (float)(acc[0] / acc[1]);
    return CT_OK;
}

/* Cross-entropy of the validation windows under the train unigram
 * distribution (add-one smoothed), from at most 16M train tokens. */
static CT_MUST_USE ct_status_t unigram_baseline(train_ctx_t *c, float *loss_p)
{
    const ct_config_t *cfg = c->cfg;
    const int V = cfg->model.vocab_size, T = c->T;
    ct_loader_opts_t o = {.spec = cfg->data.train, .T = T, .vocab_size = V, .seed = 0,
                          .chunk_tokens = 1 << 20, .window_chunks = 1, .shuffle = 0,
                          .max_retries = cfg->data.max_retries};
    ct_loader_t *l;
    ct_status_t st = ct_loader_init(&o, &l);
    if (st != CT_OK) return st;
    double *counts = calloc((size_t)V, sizeof *counts);
    int32_t *tgt = malloc((size_t)T * sizeof *tgt), *inp = malloc((size_t)T * sizeof *inp);
    st = CT_ERR_NO_MEMORY;
    if (!counts || !tgt || !inp) goto out;
    int64_t ns = ct_loader_num_samples(l), cap = (16 << 20) / T;
    double total = 0.0;
    for (int64_t i = 0; i < ns && i < cap; i++) {
        if ((st = ct_loader_read(l, i, 1, inp, tgt)) != CT_OK) goto out;
        for (int t = 0; t < T; t++) counts[tgt[t]] += 1.0;
        total += T;
    }
    int64_t nval = c->n_val;
    double xent = 0.0;
    for (int64_t i = 0; i < nval; i++) {
        if ((st = ct_loader_read(c->val, i, 1, inp, tgt)) != CT_OK) goto out;
        for (int t = 0; t < T; t++) xent -= log((counts[tgt[t]] + 1.0) / (total + V));
    }
    *loss_p = nval > 0 ? (float)(xent / (double)(nval * T)) : -1.0f;
out:
    free(counts);
    free(tgt);
    free(inp);
    ct_loader_free(l);
    return st;
}

/* Every rank generates (TP ranks must, and the RNG stays in step); rank 0
 * prints. */
static void print_sample(train_ctx_t *c, int64_t step)
{
    const ct_eval_config_t *e = &c->cfg->eval;
    if (e->sample_tokens <= 0) return;
    FILE *out = ct_log_rank() == 0 ? stdout : NULL;
    if (out) fprintf(out, "---- sample at step %lld ----\n", (long long)step);
    ct_status_t st = ct_sample_print(&c->model, c->bpe, e->prompt, e->sample_tokens,
                                     e->temperature, e->top_k, &c->sample_rng, out);
    if (st != CT_OK) /* a sample is a progress report: training goes on */
        CT_LOG_WARN("the text sample at step %lld failed: %s", (long long)step,
                    ct_status_str(st));
    if (out) {
        fprintf(out, "----\n");
        fflush(out);
    }
}

static CT_MUST_USE ct_status_t save_ckpt(train_ctx_t *c)
{
    ct_model_to_host(&c->model, &c->optim);
    ct_ckpt_state_t s = {.step = c->step, .samples = c->samples, .sample_rng = c->sample_rng.s};
    char *dir = NULL;
    double t0 = ct_time_now();
    ct_status_t st =
        ct_ckpt_save(c->cfg->train.run_dir, &c->model, &c->optim, c->cfg, &s, c->g, &dir);
    if (st != CT_OK) return st;
    double took = ct_time_now() - t0;
    CT_LOG_INFO_R0("saved checkpoint %s (%.2f s)", dir, took);
    free(dir);
    if (!c->preempt_checked && c->steps_timed > 0) {
        char basis[160];
        double step = c->step_seconds / (double)c->steps_timed;
        snprintf(basis, sizeof basis, "measured: a step %.2f s and the last save %.2f s, plus %d s to exit",
                 step, took, CT_PREEMPT_EXIT_GRACE_S);
        c->preempt_checked = 1;
        ct_preempt_check(step + took + CT_PREEMPT_EXIT_GRACE_S, basis);
    }
    if (ct_log_rank() == 0)
        ct_ckpt_prune(c->cfg->train.run_dir, c->cfg->checkpoint.keep_last,
                      c->cfg->checkpoint.keep_every);
    return CT_OK;
}

/* train.profile_ops: the device time of each op family in the step just
 * done (ct_model_op_times), appended to the metrics line as "ops_ms" with
 * "tp_comm_ms" and "dp_comm_ms", and with `print` a table on rank 0: time,
 * share of the step's wall time, calls and the achieved FLOP or byte rate
 * (dp comm runs on its own stream, overlapped: its share is busy time). */
static void ops_report(train_ctx_t *c, double dt, int print, char *buf, size_t n)
{
    ct_model_op_times_t t;
    if (!ct_model_op_times(&c->model, &t) || t.steps == 0) return;
    size_t at = (size_t)snprintf(buf, n, ",\"ops_ms\":{");
    double tp = 0.0, dpc = 0.0;
    for (int f = 0; f < t.n && at < n; f++) {
        at += (size_t)snprintf(buf + at, n - at, "%s\"%s\":%.4f", f ? "," : "", t.name[f], t.ms[f]);
        if (strcmp(t.name[f], "tp comm") == 0) tp = t.ms[f];
        if (strcmp(t.name[f], "dp comm") == 0) dpc = t.ms[f];
    }
    if (at < n)
        snprintf(buf + at, n - at, "},\"tp_comm_ms\":%.4f,\"dp_comm_ms\":%.4f", tp, dpc);
    if (!print || ct_log_rank() != 0) return;
    char table[2048];
    size_t k = (size_t)snprintf(table, sizeof table,
                                "device time by op, step %lld (CUDA events; %d step%s):\n"
                                "  %-14s %10s %7s %7s  %s",
                                (long long)c->step, t.steps, t.steps == 1 ? "" : "s", "op", "ms",
                                "share", "calls", "rate");
    for (int f = 0; f < t.n && k < sizeof table; f++) {
        if (t.calls[f] == 0) continue;
        char rate[32] = "-";
        double s = t.ms[f] * 1e-3;
        if (s > 0 && t.flop[f] > 0) snprintf(rate, sizeof rate, "%.1f TFLOP/s", t.flop[f] / s / 1e12);
        else if (s > 0 && t.bytes[f] > 0) snprintf(rate, sizeof rate, "%.1f GB/s", t.bytes[f] / s / 1e9);
        k += (size_t)snprintf(table + k, sizeof table - k, "\n  %-14s %10.3f %6.1f%% %7ld  %s",
                              t.name[f], t.ms[f] / t.steps, 100.0 * t.ms[f] / t.steps / (dt * 1e3),
                              t.calls[f] / t.steps, rate);
    }
    if (t.dropped && k < sizeof table)
        snprintf(table + k, sizeof table - k, "\n  (%ld ops not timed: the event pool ran out)",
                 t.dropped);
    CT_LOG_INFO("%s", table);
}

static void fmt_eta(char *buf, size_t n, double s)
{
    if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

/* The worst status over every rank: a checkpoint file may be bad on one
 * rank only, and all ranks must take the same path. */
static CT_MUST_USE ct_status_t agree(train_ctx_t *c, ct_status_t st)
{
    ct_comm_set_activity("agreeing on a status");
    return ct_comm_agree(c->g ? c->g->world : NULL, st);
}

/* Where this rank runs, one DEBUG line per rank (the line's prefix names the
 * host): what a multi-node launch got wrong shows here, e.g. a TP group
 * spread over two nodes, or a node-local rank that is not per node. */
static void log_placement(const train_ctx_t *c)
{
    const ct_comm_groups_t *g = c->g;
    char dev[32] = "cpu";
    if (c->device >= 0) snprintf(dev, sizeof dev, "cuda:%d", c->device);
    CT_LOG_DEBUG("placement: rank %d of %d, dp rank %d of %d, tp rank %d of %d, local rank %d "
                 "of %d on this node, device %s; node %d of %d", g ? g->rank : 0,
                 g ? g->world_size : 1, g ? g->dp_rank : 0, g ? g->dp_size : 1,
                 g ? g->tp_rank : 0, g ? g->tp_size : 1, g ? g->local_rank : 0,
                 g ? g->local_size : 1, dev, g ? g->node : 0, g ? g->nodes : 1);
}

/* CPU or CUDA, from model.device and what the ranks have; one rank per
 * GPU, by node-local rank, and TP groups inside a node (trainer/placement.c). */
static CT_MUST_USE ct_status_t choose_device_for(train_ctx_t *c)
{
    if (c->cfg->model.device == CT_DEVICE_AUTO && !ct_model_cuda_supports(c->cfg)) {
        /* every rank takes this path: the config is the same everywhere */
        CT_LOG_INFO_R0("model.arch %s has no CUDA backend for this layout (parallel.tp = %d, "
                       "model.recompute) yet: training on the CPU",
                       ct_model_arch_name(c->cfg->model.arch), c->cfg->parallel.tp);
        c->device = -1;
        return CT_OK;
    }
    ct_placement_t p;
    ct_status_t st = ct_train_place(c->cfg, c->g, &p);
    c->device = st == CT_OK ? p.device : -1;
    return st;
}

static CT_MUST_USE ct_status_t choose_device(train_ctx_t *c)
{
    ct_status_t st = choose_device_for(c);
    if (st == CT_OK) log_placement(c);
    return st;
}

static CT_MUST_USE ct_status_t train_setup(train_ctx_t *c)
{
    const ct_config_t *cfg = c->cfg;
    ct_status_t st;
    c->B = cfg->train.batch_size;
    c->T = cfg->train.seq_len;
    c->dp = c->g ? c->g->dp_size : 1;
    c->dp_rank = c->g ? c->g->dp_rank : 0;
    int tp = c->g ? c->g->tp_size : 1;
    if (c->dp != cfg->parallel.dp || tp != cfg->parallel.tp) {
        CT_LOG_ERROR("this process runs with dp=%d tp=%d but the config says parallel.dp=%d "
                     "parallel.tp=%d", c->dp, tp, cfg->parallel.dp, cfg->parallel.tp);
        return CT_ERR_CONFIG;
    }
    /* the layout first: a bad one fails before any shard is opened */
    if ((st = agree(c, choose_device(c))) != CT_OK) return st;
    int64_t bt = (int64_t)c->B * c->T;
    int64_t gb = cfg->train.batch_tokens ? cfg->train.batch_tokens : bt * c->dp;
    c->accum = (int)(gb / (bt * c->dp));
    if (!cfg->data.train || !*cfg->data.train) {
        CT_LOG_ERROR("config key data.train is empty\n---> HINT: point it at token shards, e.g. "
                     "data/kjv/kjv_train_*.bin");
        return CT_ERR_CONFIG;
    }
    if (cfg->train.steps < cfg->optim.warmup_steps)
        CT_LOG_WARN_R0("train.steps = %d is below optim.warmup_steps = %d: the learning rate "
                       "never leaves warmup and peaks at %.3g, %.0f%% of optim.lr\n---> HINT: "
                       "lower optim.warmup_steps (a few percent of train.steps is usual) or "
                       "raise train.steps", cfg->train.steps, cfg->optim.warmup_steps,
                       ct_lr_at(&cfg->optim, cfg->train.steps - 1, cfg->train.steps),
                       100.0 * cfg->train.steps / cfg->optim.warmup_steps);
    if (cfg->train.threads > 0) omp_set_num_threads(cfg->train.threads);
    const char *nan_at = ct_env_get("CT_TEST_NAN_AT"); /* a test hook */
    for (char *p = (char *)nan_at; p && *p && c->n_nan_at < 8;) {
        char *end;
        c->nan_at[c->n_nan_at++] = strtoll(p, &end, 10);
        p = *end == ',' ? end + 1 : end + strlen(end);
    }

    ct_loader_opts_t o = {.spec = cfg->data.train, .T = c->T, .vocab_size = cfg->model.vocab_size,
                          .seed = (uint64_t)cfg->data.seed, .chunk_tokens = cfg->data.chunk_tokens,
                          .window_chunks = cfg->data.window_chunks, .shuffle = 1,
                          .prefetch_mib = cfg->data.prefetch_mib,
                          .max_retries = cfg->data.max_retries, .cache_dir = cfg->data.cache_dir,
                          .cache_mib = cfg->data.cache_mib};
    if ((st = ct_loader_init(&o, &c->train)) != CT_OK) return st;
    if (cfg->data.val && *cfg->data.val) {
        o.spec = cfg->data.val;
        o.shuffle = 0;
        if ((st = ct_loader_init(&o, &c->val)) != CT_OK) return st;
        const int64_t all = ct_loader_num_samples(c->val), cap = cfg->eval.tokens / c->T;
        c->n_val = cfg->eval.tokens > 0 && cap < all ? (cap > 0 ? cap : 1) : all;
    }
    if (cfg->eval.tokenizer && *cfg->eval.tokenizer) {
        if ((st = ct_bpe_load(cfg->eval.tokenizer, &c->bpe)) != CT_OK) return st;
        if (ct_bpe_vocab_size(c->bpe) != cfg->model.vocab_size) {
            CT_LOG_ERROR("tokenizer %s has %d tokens but model.vocab_size is %d",
                         cfg->eval.tokenizer, ct_bpe_vocab_size(c->bpe), cfg->model.vocab_size);
            return CT_ERR_CONFIG;
        }
    }
    /* the inputs are readable: only now does the run get a directory */
    struct stat sb;
    c->made_run_dir = stat(cfg->train.run_dir, &sb) != 0 && errno == ENOENT;
    if ((st = ct_fs_mkdir_p(cfg->train.run_dir)) != CT_OK) return st;
    c->inputs = malloc((size_t)bt * sizeof(int32_t));
    c->targets = malloc((size_t)bt * sizeof(int32_t));
    if (!c->inputs || !c->targets) return CT_ERR_NO_MEMORY;
    /* on the GPU the host model keeps only weights: no activations */
    int hostB = c->device >= 0 ? 0 : c->B, hostT = c->device >= 0 ? 0 : c->T;
    if ((st = ct_model_init(&c->model, &cfg->model, hostB, hostT, c->g ? c->g->tp : NULL)) != CT_OK)
        return st;
    if ((st = ct_optim_init(&c->optim, &c->model, cfg->optim.zero, c->g, cfg->comm.bucket_mib)) !=
        CT_OK)
        return st;
    ct_rng_seed(&c->sample_rng, (uint64_t)cfg->eval.sample_seed, 0, 0);

    /* initial weights, then possibly a checkpoint on top */
    const char *resume = cfg->checkpoint.resume;
    int resumed = 0;
    if (strcmp(resume, "auto") == 0) {
        /* newest complete checkpoint; one with a bad file on any rank is
         * skipped, with a warning, for the one before it */
        int64_t before = INT64_MAX;
        char *dir = NULL;
        while (!resumed && ct_ckpt_find_before(cfg->train.run_dir, before, &dir) == CT_OK) {
            ct_ckpt_state_t s = {0};
            st = agree(c, ct_ckpt_load(dir, &c->model, &c->optim, &s));
            if (st == CT_OK) {
                c->step = s.step;
                c->samples = s.samples;
                c->sample_rng.s = s.sample_rng;
                resumed = 1;
                CT_LOG_INFO_R0("resumed from %s at step %lld", dir, (long long)s.step);
            } else if (st == CT_ERR_CORRUPT || st == CT_ERR_NOT_FOUND) {
                CT_LOG_WARN("checkpoint %s is unusable (%s); falling back to the one before it",
                            dir, ct_status_str(st));
                const char *base = strrchr(dir, '/');
                before = base ? strtoll(base + 6, NULL, 10) : 0;
            } else {
                free(dir);
                return st;
            }
            free(dir);
            dir = NULL;
        }
        if (!resumed)
            CT_LOG_INFO_R0("resume: auto found no usable checkpoint in %s/ckpt, starting fresh",
                           cfg->train.run_dir);
    } else if (strcmp(resume, "none") != 0) {
        ct_ckpt_state_t s;
        if ((st = agree(c, ct_ckpt_load(resume, &c->model, &c->optim, &s))) != CT_OK) return st;
        c->step = s.step;
        c->samples = s.samples;
        c->sample_rng.s = s.sample_rng;
        resumed = 1;
        CT_LOG_INFO_R0("resumed from %s at step %lld", resume, (long long)s.step);
    }
    if (!resumed && cfg->model.init_from && *cfg->model.init_from) {
        /* a directory is a Hugging Face model, a file llm.c's format */
        struct stat ib;
        const char *from = cfg->model.init_from;
        int hf = stat(from, &ib) == 0 && S_ISDIR(ib.st_mode);
        st = hf ? ct_hf_init_from(from, &cfg->model, &c->model) : ct_model_load_llmc(&c->model, from);
        if ((st = agree(c, st)) != CT_OK) return st;
        CT_LOG_INFO_R0("initial weights from %s%s", from, hf ? " (Hugging Face)" : "");
    } else if (!resumed) {
        ct_model_init_weights(&c->model, (uint64_t)cfg->train.seed, cfg->model.init_std);
        memset(c->optim.m, 0, c->optim.count * sizeof(float)); /* after a failed load */
        memset(c->optim.v, 0, c->optim.count * sizeof(float));
    }
    if (c->device >= 0) {
        st = ct_model_to_device(&c->model, &c->optim, cfg, c->g, c->device, c->B, c->T);
        if ((st = agree(c, st)) != CT_OK) return st;
        double peak = cfg->train.peak_tflops > 0 ? cfg->train.peak_tflops
                                                 : ct_model_peak_tflops(&c->model);
        c->peak_flops = peak * 1e12;
        if (peak <= 0)
            CT_LOG_WARN_R0("%s is not in the table of known GPUs: MFU is not reported\n---> "
                           "HINT: set train.peak_tflops to its bf16 dense peak",
                           ct_model_device_name(&c->model));
    } else if (cfg->train.peak_tflops > 0) {
        c->peak_flops = cfg->train.peak_tflops * 1e12;
    }
    if (cfg->train.profile_ops && !ct_model_profile_ops(&c->model, 1))
        CT_LOG_WARN_R0("train.profile_ops times the GPU path's ops; %s has no per-op timing",
                       ct_model_backend_name(&c->model));

    if (ct_log_rank() != 0) return CT_OK;
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", cfg->train.run_dir);
    c->metrics = fopen(path, "a");
    if (!c->metrics) {
        CT_LOG_ERROR("cannot open %s: %s", path, strerror(errno));
        return CT_ERR_IO;
    }
    return CT_OK;
}

static void train_teardown(train_ctx_t *c)
{
    if (c->metrics) fclose(c->metrics);
    ct_optim_free(&c->optim);
    ct_model_free(&c->model);
    ct_loader_free(c->train);
    ct_loader_free(c->val);
    if (c->bpe) ct_bpe_free(c->bpe);
    free(c->inputs);
    free(c->targets);
}

static struct rusage peak_usage(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru;
}

/* Appends one JSON line to the metrics file (rank 0 only). */
static void metric(train_ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void metric(train_ctx_t *c, const char *fmt, ...)
{
    if (!c->metrics) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->metrics, fmt, ap);
    va_end(ap);
    fputc('\n', c->metrics);
    fflush(c->metrics);
}

static CT_MUST_USE ct_status_t run_eval(train_ctx_t *c, int64_t step, ct_train_summary_t *sum)
{
    ct_status_t st = eval_val_loss(c, &sum->last_val_loss);
    if (st != CT_OK) return st;
    CT_LOG_INFO_R0("step %lld/%d | val loss %.4f", (long long)step, c->cfg->train.steps,
                   sum->last_val_loss);
    metric(c, "{\"step\":%lld,\"val_loss\":%.9g}", (long long)step, sum->last_val_loss);
    return CT_OK;
}

ct_status_t ct_train_run(const ct_config_t *cfg, const ct_comm_groups_t *g, int64_t stop_at,
                         ct_train_summary_t *summary_p)
{
    train_ctx_t c;
    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    c.g = g && g->world_size > 1 ? g : NULL;
    ct_train_summary_t sum = {.last_val_loss = -1.0f, .unigram_loss = -1.0f};
    ct_status_t st = train_setup(&c);
    if (st != CT_OK) {
        /* a run that never started leaves no empty directory behind (rmdir
         * fails, harmlessly, once anything is in it) */
        if (c.made_run_dir) rmdir(cfg->train.run_dir);
        goto out;
    }

    const ct_model_t *m = &c.model;
    const int total = cfg->train.steps;
    const int64_t per_rank = (int64_t)c.accum * c.B;          /* samples per rank per step */
    const int64_t tokens_per_step = per_rank * c.dp * c.T;     /* the whole job's */
    const double flops_per_step = ct_model_flops_per_token(m, c.T) * (double)tokens_per_step;
    CT_LOG_INFO_R0("model: L=%d NH=%d C=%d V=%d (padded %d), %.2fM parameters on this rank; "
                   "dp=%d tp=%d; batch %d x %d x %d accum x %d dp = %lld tokens/step; %d threads",
                   m->d.L, m->d.NH, m->d.C, m->d.V, m->d.Vp, m->num_params / 1e6, c.dp, m->d.tp,
                   c.B, c.T, c.accum, c.dp, (long long)tokens_per_step, omp_get_max_threads());
    CT_LOG_INFO_R0("AdamW state: %.3f MiB per rank%s", 2.0 * c.optim.count * 4 / 1048576.0,
                   c.optim.zero ? " (ZeRO-1)" : "");
    CT_LOG_INFO_R0("train data: %lld samples of %d tokens", (long long)ct_loader_num_samples(c.train),
                   c.T);
    if (c.val && cfg->eval.every > 0) {
        const int64_t all = ct_loader_num_samples(c.val);
        if (c.n_val == all)
            CT_LOG_INFO_R0("validation: %lld windows of %d tokens, the whole held-out set",
                           (long long)c.n_val, c.T);
        else
            CT_LOG_INFO_R0("validation: the first %lld of %lld held-out windows of %d tokens "
                           "(eval.tokens = %lld)", (long long)c.n_val, (long long)all, c.T,
                           (long long)cfg->eval.tokens);
    }
    if (c.val && cfg->eval.every > 0 && c.step == 0 && ct_log_rank() == 0) {
        if ((st = unigram_baseline(&c, &sum.unigram_loss)) != CT_OK) goto out;
        CT_LOG_INFO_R0("unigram baseline (validation loss of token frequencies): %.4f",
                       sum.unigram_loss);
        metric(&c, "{\"step\":0,\"unigram_val_loss\":%.6f}", sum.unigram_loss);
    }

    /* Preemption budget under mpirun, first from an estimate of the save
     * (this rank's parameters and AdamW moments at an assumed 200 MB/s),
     * then, if that passed, from the first save and steps measured. */
    const double ckpt_mb = ((double)m->num_params + 2.0 * (double)c.optim.count) * 4.0 / 1e6;
    char basis[160];
    snprintf(basis, sizeof basis, "estimated: a %.0f MB checkpoint per rank at an assumed "
             "200 MB/s, plus %d s to exit; the step time is not known yet", ckpt_mb,
             CT_PREEMPT_EXIT_GRACE_S);
    c.preempt_checked = ct_preempt_check(ckpt_mb / 200.0 + CT_PREEMPT_EXIT_GRACE_S, basis);

    double t_start = ct_time_now();
    int64_t last_saved = c.step;
    int consecutive_skips = 0, n_hist = 0, hist_at = 0;
    double hist[64];
    while (c.step < total) {
        if (stop_at > 0 && c.step >= stop_at) break;
        const int64_t s = c.step;
        if (c.val && cfg->eval.every > 0 && s % cfg->eval.every == 0)
            if ((st = run_eval(&c, s, &sum)) != CT_OK) goto out;
        if (cfg->eval.sample_every > 0 && s > 0 && s % cfg->eval.sample_every == 0)
            print_sample(&c, s);

        double t0 = ct_time_now(), comm0 = c.model.comm_seconds + c.optim.comm_seconds;
        double wait0 = ct_loader_wait_seconds(c.train);
        ct_model_zero_grad(&c.model);
        double loss = 0.0;
        /* this DP rank's contiguous slice of the step's samples */
        const int64_t first = c.samples + (int64_t)c.dp_rank * per_rank;
        for (int k = 0; k < c.accum; k++) {
            ct_comm_set_activity("step %lld: micro-batch %d", (long long)s, k);
            st = ct_loader_read(c.train, first + (int64_t)k * c.B, c.B, c.inputs, c.targets);
            if (st != CT_OK) goto out;
            c.model.grad_sync = k == c.accum - 1;
            loss += ct_model_forward_backward(&c.model, c.inputs, c.targets, c.B, c.T,
                                              1.0f / (float)c.accum);
        }
        loss /= c.accum;
        for (int i = 0; i < c.n_nan_at; i++)
            if (c.nan_at[i] == s + 1) loss = NAN;
        if (c.dp > 1) {
            ct_comm_set_activity("step %lld: loss average", (long long)s);
            if ((st = ct_comm_allreduce(c.g->dp, &loss, &loss, 1, CT_DTYPE_F64, CT_OP_AVG, NULL)) !=
                CT_OK)
                goto out;
        }
        float lr = ct_lr_at(&cfg->optim, (int)s, total), norm = NAN;
        /* numerical guard: a non-finite loss or gradient norm skips the update */
        int skipped = !isfinite(loss);
        if (!skipped) {
            if ((st = ct_optim_step(&c.optim, &c.model, &cfg->optim, lr, (int)s + 1, &norm)) != CT_OK)
                goto out;
            skipped = !isfinite(norm);
        }
        if (skipped) {
            sum.skipped_steps++;
            consecutive_skips++;
            CT_LOG_WARN("step %lld: non-finite %s (%g); update skipped (%d in a row, %lld in all)",
                        (long long)s + 1, isfinite(loss) ? "gradient norm" : "loss",
                        isfinite(loss) ? (double)norm : loss, consecutive_skips,
                        (long long)sum.skipped_steps);
            if (consecutive_skips >= cfg->train.max_skips) {
                CT_LOG_ERROR("%d consecutive steps had a non-finite loss or gradient; stopping "
                             "at step %lld\n---> HINT: lower optim.lr, check the data, or resume "
                             "from an earlier checkpoint", consecutive_skips, (long long)s + 1);
                st = CT_ERR_INVALID_ARG;
                goto out;
            }
        } else {
            consecutive_skips = 0;
            /* loss spikes: z-score against the last 64 losses */
            if (cfg->train.spike_z > 0 && n_hist >= 16) {
                double mean = 0, var = 0;
                for (int i = 0; i < n_hist; i++) mean += hist[i];
                mean /= n_hist;
                for (int i = 0; i < n_hist; i++) var += (hist[i] - mean) * (hist[i] - mean);
                double sd = sqrt(var / n_hist);
                if (sd > 0 && (loss - mean) / sd > cfg->train.spike_z) {
                    sum.spikes++;
                    CT_LOG_WARN_R0("step %lld: loss spike %.4f, %.1f standard deviations above "
                                   "the recent mean %.4f", (long long)s + 1, loss,
                                   (loss - mean) / sd, mean);
                }
            }
            hist[hist_at] = loss;
            hist_at = (hist_at + 1) % 64;
            if (n_hist < 64) n_hist++;
        }
        c.samples += per_rank * c.dp;
        c.step++;
        double dt = ct_time_now() - t0;
        double comm_frac = (c.model.comm_seconds + c.optim.comm_seconds - comm0) / dt;
        double wait_frac = (ct_loader_wait_seconds(c.train) - wait0) / dt;
        c.step_seconds += dt;
        c.steps_timed++;
        sum.steps_run++;
        sum.last_loss = (float)loss;
        double tok_s = tokens_per_step / dt, flops = flops_per_step / dt;
        /* MFU per device: the model's FLOPs over every rank's peak (dp x tp) */
        const double ranks = c.g ? (double)c.g->world_size : 1.0;
        if (c.step % cfg->train.log_every == 0 || c.step == total) {
            char eta[32];
            fmt_eta(eta, sizeof eta, (total - c.step) * (c.step_seconds / (double)c.steps_timed));
            char mfu_s[32] = "";
            if (c.peak_flops > 0)
                snprintf(mfu_s, sizeof mfu_s, " | mfu %.1f%%", 100.0 * flops / ranks / c.peak_flops);
            CT_LOG_INFO_R0("step %lld/%d | loss %.4f | lr %.2e | norm %.3f | %.1f ms | %.0f tok/s "
                           "| %.2f GFLOP/s%s | comm %.0f%% | eta %s",
                           (long long)c.step, total, loss, lr, norm, dt * 1e3, tok_s, flops / 1e9,
                           mfu_s, 100.0 * comm_frac, eta);
        }
        /* mfu only where a peak is known, device memory only on a GPU */
        char extra[96] = "";
        int ne = 0;
        if (c.peak_flops > 0)
            ne += snprintf(extra + ne, sizeof extra - (size_t)ne, ",\"mfu\":%.4f",
                           flops / ranks / c.peak_flops);
        if (ct_model_device_name(&c.model))
            snprintf(extra + ne, sizeof extra - (size_t)ne, ",\"device_mem_mib\":%.1f",
                     ct_model_peak_memory(&c.model) / 1048576.0);
        char ops[1024] = "";
        if (cfg->train.profile_ops) ops_report(&c, dt, c.step % cfg->train.log_every == 0 ||
                                                           c.step == total, ops, sizeof ops);
        metric(&c,
               "{\"step\":%lld,\"loss\":%.9g,\"lr\":%.9g,\"grad_norm\":%.9g,\"ms\":%.3f,"
               "\"tok_s\":%.1f,\"flop_s\":%.4g,\"comm_frac\":%.4f,\"data_wait_frac\":%.4f,"
               "\"max_rss_mib\":%.1f,\"skipped\":%d%s%s}",
               (long long)c.step, loss, lr, norm, dt * 1e3, tok_s, flops, comm_frac, wait_frac,
               peak_usage().ru_maxrss / 1024.0, skipped, extra, ops);
        /* preemption: SIGTERM/SIGUSR1/SIGINT on any rank stops every rank after
         * this same step, with a checkpoint */
        int64_t stop = ct_train_stop_signal;
        if (c.g) {
            ct_comm_set_activity("step %lld: stop check", (long long)c.step);
            if ((st = ct_comm_allreduce(c.g->world, &stop, &stop, 1, CT_DTYPE_I64, CT_OP_MAX,
                                        NULL)) != CT_OK)
                goto out;
        }
        if (stop) {
            CT_LOG_INFO_R0("signal %s: saving a checkpoint at step %lld and exiting",
                           strsignal((int)stop), (long long)c.step);
            if ((st = save_ckpt(&c)) != CT_OK) goto out;
            st = CT_ERR_INTERRUPTED;
            goto out;
        }
        if (cfg->checkpoint.every > 0 && c.step % cfg->checkpoint.every == 0 && c.step < total) {
            if ((st = save_ckpt(&c)) != CT_OK) goto out;
            last_saved = c.step;
        }
    }
    if (c.step >= total && c.val && cfg->eval.every > 0 && sum.steps_run > 0)
        if ((st = run_eval(&c, c.step, &sum)) != CT_OK) goto out;
    if (c.step != last_saved && (st = save_ckpt(&c)) != CT_OK) goto out;
    if (c.step >= total && sum.steps_run > 0) print_sample(&c, c.step);
    CT_LOG_INFO_R0("done: %lld steps in %.1f s, peak RSS %.0f MiB", (long long)sum.steps_run,
                   ct_time_now() - t_start, peak_usage().ru_maxrss / 1024.0);
    if (ct_model_device_name(&c.model))
        CT_LOG_INFO_R0("peak device memory %.0f MiB on %s",
                       ct_model_peak_memory(&c.model) / 1048576.0,
                       ct_model_device_name(&c.model));
out:
    sum.final_step = c.step;
    train_teardown(&c);
    if (summary_p) *summary_p = sum;
    return st;
}
