/* The `train` and `sample` subcommands: argument parsing and the mapping
 * from ct_status_t to exit codes. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rng.h"
#include "cli/cli.h"
#include "trainer/trainer.h"

static const char train_usage[] =
    "usage: ctrain train CONFIG.yaml [--set section.key=value]... [--stop-at STEP]\n"
    "\n"
    "Trains the model described by CONFIG.yaml. Each --set overrides one key\n"
    "(e.g. --set train.steps=100). --stop-at ends the run after STEP completed\n"
    "steps with a checkpoint, as a preemption would; resume with\n"
    "--set checkpoint.resume=auto. Progress goes to stderr, metrics to\n"
    "RUN_DIR/metrics.jsonl, checkpoints to RUN_DIR/ckpt/step_NNNNNNNN/.\n"
    "\n"
    "SIGTERM, SIGUSR1 or SIGINT on any rank: every rank finishes the current\n"
    "step, they save a checkpoint together and exit with status 75 (a second\n"
    "SIGINT exits at once). Resume with --set checkpoint.resume=auto.\n";

/* Exit status of a run stopped by SIGTERM/SIGUSR1/SIGINT after saving its
 * checkpoint (EX_TEMPFAIL: "try again later", i.e. requeue and resume). */
#define CT_EXIT_PREEMPTED 75

static void on_stop_signal(int sig)
{
    if (sig == SIGINT && ct_train_stop_signal == SIGINT) _exit(130); /* second ^C: now */
    ct_train_stop_signal = sig;
}

static void install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* After a preemption save nothing is left to lose, but MPI_Finalize never
 * returns when mpirun itself was signalled (it has stopped serving the
 * finalize handshake), and the rank would wait for SIGKILL. A thread ends
 * the process with `code` after `seconds` unless main() returns first. */
static int deadline_code;
static void *deadline_main(void *arg)
{
    struct timespec ts = {.tv_sec = (time_t)(intptr_t)arg};
    while (nanosleep(&ts, &ts) != 0) {
    }
    fprintf(stderr, "ctrain: MPI_Finalize did not return within %d s of the preemption save; "
                    "exiting with status %d\n", (int)(intptr_t)arg, deadline_code);
    fflush(NULL);
    _exit(deadline_code);
}

static void exit_deadline(int seconds, int code)
{
    pthread_t t;
    deadline_code = code;
    if (pthread_create(&t, NULL, deadline_main, (void *)(intptr_t)seconds) == 0) pthread_detach(t);
}

int ct_cmd_train(int argc, char **argv)
{
    const char *stop_s = NULL;
    long long stop_at = 0;
    const ct_opt_t opts[] = {{"--set", NULL, CT_OPT_SET, NULL},
                             {"--stop-at", NULL, CT_OPT_STR, &stop_s}};
    ct_args_t a = {.cmd = "train", .usage = train_usage, .opts = opts, .n_opts = 2,
                   .min_pos = 1, .max_pos = 1, .pos_names = "CONFIG.yaml"};
    int rc = ct_args_parse(&a, argc, argv, 1);
    if (rc < 0 && stop_s) rc = ct_args_int(a.cmd, "--stop-at", stop_s, 1, INT64_MAX, &stop_at);
    if (rc >= 0) {
        ct_args_free(&a);
        return rc;
    }
    ct_config_t cfg;
    ct_status_t st = ct_config_load(a.pos[0], a.sets, a.n_sets, &cfg);
    ct_args_free(&a);
    if (st != CT_OK) {
        /* Under a launcher every rank read the same config and logs the
         * same error; meet once before exiting, so mpirun (which tears the
         * job down at the first non-zero exit) does not cut the others off
         * before they have said it. */
        ct_comm_groups_t g0;
        if (ct_log_world() > 1 && ct_comm_init(0, 1, 30.0, &g0) == CT_OK) {
            if (ct_comm_barrier(g0.world) != CT_OK) ct_comm_abort(1);
            ct_comm_finalize(&g0);
        }
        return 1;
    }
    char *yaml = ct_config_to_yaml(&cfg);
    if (yaml && ct_log_rank() == 0) CT_LOG_DEBUG("resolved config:\n%s", yaml);
    free(yaml);
    ct_comm_groups_t g;
    st = ct_comm_init(cfg.parallel.dp, cfg.parallel.tp, cfg.comm.timeout_s, &g);
    if (st != CT_OK) {
        ct_config_free(&cfg);
        return 1;
    }
    install_stop_handlers();
    ct_train_summary_t sum;
    st = ct_train_run(&cfg, &g, stop_at, &sum);
    ct_config_free(&cfg);
    if (st == CT_ERR_INTERRUPTED) { /* every rank saved and stopped together */
        exit_deadline(CT_PREEMPT_EXIT_GRACE_S, CT_EXIT_PREEMPTED);
        ct_comm_finalize(&g);
        return CT_EXIT_PREEMPTED;
    }
    if (st != CT_OK) {
        CT_LOG_ERROR("training failed on rank %d: %s", g.rank, ct_status_str(st));
        /* peers may be blocked in a collective: take the whole job down now */
        if (g.world_size > 1) ct_comm_abort(1);
        ct_comm_finalize(&g);
        return 1;
    }
    ct_comm_finalize(&g);
    return 0;
}

static const char reshard_usage[] =
    "usage: ctrain reshard --tp N SRC_CKPT_DIR DST_CKPT_DIR\n"
    "\n"
    "Rewrites a checkpoint for N tensor-parallel ranks (parameters and AdamW\n"
    "state). The result resumes with parallel.tp = N and any parallel.dp, with\n"
    "or without ZeRO. Runs offline in one process; needs memory for the whole\n"
    "model and its AdamW state.\n";

int ct_cmd_reshard(int argc, char **argv)
{
    const char *tp_s = NULL;
    long long tp = 0;
    const ct_opt_t opts[] = {{"--tp", NULL, CT_OPT_STR, &tp_s}};
    ct_args_t a = {.cmd = "reshard", .usage = reshard_usage, .opts = opts, .n_opts = 1,
                   .min_pos = 2, .max_pos = 2, .pos_names = "SRC_CKPT_DIR and DST_CKPT_DIR"};
    int rc = ct_args_parse(&a, argc, argv, 1);
    if (rc < 0 && !tp_s) rc = ct_cli_usage_error(a.cmd, "--tp N is required");
    if (rc < 0) rc = ct_args_int(a.cmd, "--tp", tp_s, 1, 1 << 20, &tp);
    const char *src = a.pos && a.n_pos > 0 ? a.pos[0] : NULL, *dst = a.n_pos > 1 ? a.pos[1] : NULL;
    if (rc < 0) rc = ct_ckpt_reshard(src, dst, (int)tp) == CT_OK ? 0 : 1;
    if (rc == 0 && src) CT_LOG_INFO("resharded %s to tp=%lld in %s", src, tp, dst);
    ct_args_free(&a);
    return rc;
}
static const char sample_usage[] =
    "usage: ctrain sample CKPT_DIR|RUN_DIR [--tokenizer PATH] [--prompt TEXT]\n"
    "                     [--tokens N] [--temperature X] [--top-k K] [--seed S] [--count C]\n"
    "\n"
    "Generates text from a checkpoint directory (RUN_DIR/ckpt/step_NNNNNNNN) or a\n"
    "run directory (its newest checkpoint). The tokenizer defaults to the\n"
    "checkpoint config's eval.tokenizer; without one, token ids are printed. PATH is\n"
    "any tokenizer 'ctrain tokenize' reads: a .bpe or .tiktoken file, a Hugging Face\n"
    "tokenizer.json or model directory, a directory of GPT-2 files.\n";

int ct_cmd_sample(int argc, char **argv)
{
    const char *tok = NULL, *prompt = NULL, *tokens_s = NULL, *top_k_s = NULL, *seed_s = NULL,
               *count_s = NULL, *temp_s = NULL;
    long long tokens = 64, top_k = -1, seed = 42, count = 1;
    double temperature = -1.0;
    const ct_opt_t opts[] = {
        {"--tokenizer", NULL, CT_OPT_STR, &tok}, {"--prompt", NULL, CT_OPT_STR, &prompt},
        {"--tokens", NULL, CT_OPT_STR, &tokens_s}, {"--top-k", NULL, CT_OPT_STR, &top_k_s},
        {"--seed", NULL, CT_OPT_STR, &seed_s},     {"--count", NULL, CT_OPT_STR, &count_s},
        {"--temperature", NULL, CT_OPT_STR, &temp_s}};
    ct_args_t a = {.cmd = "sample", .usage = sample_usage, .opts = opts,
                   .n_opts = (int)(sizeof opts / sizeof opts[0]), .min_pos = 1, .max_pos = 1,
                   .pos_names = "CKPT_DIR or RUN_DIR"};
    int rc = ct_args_parse(&a, argc, argv, 1);
    const struct {
        const char *name, *s;
        long long *v;
        long long max;
    } ints[] = {{"--tokens", tokens_s, &tokens, INT32_MAX},
                {"--top-k", top_k_s, &top_k, INT32_MAX},
                {"--seed", seed_s, &seed, INT64_MAX},
                {"--count", count_s, &count, INT64_MAX}};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0] && rc < 0; k++)
        if (ints[k].s) rc = ct_args_int(a.cmd, ints[k].name, ints[k].s, 0, ints[k].max, ints[k].v);
    if (rc < 0 && temp_s) rc = ct_args_double(a.cmd, "--temperature", temp_s, 0.0, &temperature);
    const char *dir_arg = rc < 0 ? a.pos[0] : NULL;
    ct_args_free(&a);
    if (rc >= 0) return rc;
    char *dir = NULL;
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/manifest.yaml", dir_arg);
    FILE *probe = fopen(mpath, "r");
    if (probe) {
        fclose(probe);
        dir = strdup(dir_arg);
    } else if (ct_ckpt_find_latest(dir_arg, &dir) != CT_OK) {
        dir = strdup(dir_arg); /* let the loader report what is missing */
    }
    rc = 1;
    ct_config_t cfg;
    ct_model_t model;
    ct_bpe_t *bpe = NULL;
    int have_model = 0;
    if (ct_ckpt_read_config(dir, &cfg) != CT_OK) goto out_dir;
    if (ct_model_init(&model, &cfg.model, 1, cfg.model.max_seq_len, NULL) != CT_OK) goto out_cfg;
    have_model = 1;
    if (ct_ckpt_load(dir, &model, NULL, NULL) != CT_OK) goto out_cfg;
    if (!tok && cfg.eval.tokenizer && *cfg.eval.tokenizer) tok = cfg.eval.tokenizer;
    if (tok && ct_bpe_load(tok, &bpe) != CT_OK) goto out_cfg;
    ct_rng_t rng;
    ct_rng_seed(&rng, (uint64_t)seed, 0, 0);
    rc = 0;
    for (long long k = 0; k < count && rc == 0; k++) {
        if (count > 1) printf("---- sample %lld ----\n", k + 1);
        if (ct_sample_print(&model, bpe, prompt ? prompt : cfg.eval.prompt, (int)tokens,
                            temperature > 0 ? (float)temperature : cfg.eval.temperature,
                            top_k >= 0 ? (int)top_k : cfg.eval.top_k, &rng, stdout) != CT_OK)
            rc = 1;
    }
out_cfg:
    if (bpe) ct_bpe_free(bpe);
    if (have_model) ct_model_free(&model);
    ct_config_free(&cfg);
out_dir:
    free(dir);
    return rc;
}
