/* The `train` and `sample` subcommands: argument parsing and the mapping
 * from ct_status_t to exit codes. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int ct__cli_take_set(int argc, char **argv, int *i, const char **sets, int *n_sets)
{
    if (!strcmp(argv[*i], "--set") && *i + 1 < argc) {
        sets[(*n_sets)++] = argv[++*i];
        return 1;
    }
    if (!strncmp(argv[*i], "--set=", 6)) {
        sets[(*n_sets)++] = argv[*i] + 6;
        return 1;
    }
    return 0;
}

static int parse_i64(const char *s, long long *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end) return -1;
    *out = v;
    return 0;
}

int ct_cmd_train(int argc, char **argv)
{
    const char *cfg_path = NULL;
    const char **sets = calloc((size_t)argc, sizeof *sets);
    int n_sets = 0;
    long long stop_at = 0;
    if (!sets) return 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(train_usage, stdout);
            free(sets);
            return 0;
        } else if (ct__cli_take_set(argc, argv, &i, sets, &n_sets)) {
        } else if (!strcmp(argv[i], "--stop-at") && i + 1 < argc) {
            if (parse_i64(argv[++i], &stop_at) != 0 || stop_at <= 0) {
                fprintf(stderr, "ctrain train: --stop-at wants a positive step, got '%s'\n", argv[i]);
                free(sets);
                return 2;
            }
        } else if (argv[i][0] == '-' || cfg_path) {
            fprintf(stderr, "ctrain train: unexpected argument '%s'\n%s", argv[i], train_usage);
            free(sets);
            return 2;
        } else {
            cfg_path = argv[i];
        }
    }
    if (!cfg_path) {
        fprintf(stderr, "ctrain train: missing CONFIG.yaml\n%s", train_usage);
        free(sets);
        return 2;
    }
    ct_config_t cfg;
    ct_status_t st = ct_config_load(cfg_path, sets, n_sets, &cfg);
    free(sets);
    if (st != CT_OK) return 1;
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
    const char *src = NULL, *dst = NULL;
    long long tp = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(reshard_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--tp") && i + 1 < argc) {
            if (parse_i64(argv[++i], &tp) != 0 || tp < 1) {
                fprintf(stderr, "ctrain reshard: --tp wants a positive integer, got '%s'\n",
                        argv[i]);
                return 2;
            }
        } else if (argv[i][0] == '-' || (src && dst)) {
            fprintf(stderr, "ctrain reshard: unexpected argument '%s'\n%s", argv[i], reshard_usage);
            return 2;
        } else if (!src) {
            src = argv[i];
        } else {
            dst = argv[i];
        }
    }
    if (!src || !dst || tp < 1) {
        fprintf(stderr, "ctrain reshard: need --tp N, SRC and DST\n%s", reshard_usage);
        return 2;
    }
    if (ct_ckpt_reshard(src, dst, (int)tp) != CT_OK) return 1;
    CT_LOG_INFO("resharded %s to tp=%lld in %s", src, tp, dst);
    return 0;
}

static const char sample_usage[] =
    "usage: ctrain sample CKPT_DIR|RUN_DIR [--tokenizer FILE.bpe] [--prompt TEXT]\n"
    "                     [--tokens N] [--temperature X] [--top-k K] [--seed S] [--count C]\n"
    "\n"
    "Generates text from a checkpoint directory (RUN_DIR/ckpt/step_NNNNNNNN) or a\n"
    "run directory (its newest checkpoint). The tokenizer defaults to the\n"
    "checkpoint config's eval.tokenizer; without one, token ids are printed.\n";

int ct_cmd_sample(int argc, char **argv)
{
    const char *dir_arg = NULL, *tok = NULL, *prompt = NULL;
    long long tokens = 64, top_k = -1, seed = 42, count = 1;
    double temperature = -1.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(sample_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--tokenizer") && has) {
            tok = argv[++i];
        } else if (!strcmp(a, "--prompt") && has) {
            prompt = argv[++i];
        } else if ((!strcmp(a, "--tokens") || !strcmp(a, "--top-k") || !strcmp(a, "--seed") ||
                    !strcmp(a, "--count")) && has) {
            long long v;
            if (parse_i64(argv[i + 1], &v) != 0 || v < 0) {
                fprintf(stderr, "ctrain sample: %s wants a non-negative integer, got '%s'\n", a,
                        argv[i + 1]);
                return 2;
            }
            i++;
            if (!strcmp(a, "--tokens")) tokens = v;
            else if (!strcmp(a, "--top-k")) top_k = v;
            else if (!strcmp(a, "--seed")) seed = v;
            else count = v;
        } else if (!strcmp(a, "--temperature") && has) {
            char *end;
            temperature = strtod(argv[++i], &end);
            if (*end || !(temperature > 0)) {
                fprintf(stderr, "ctrain sample: --temperature wants a number > 0\n");
                return 2;
            }
        } else if (a[0] == '-' || dir_arg) {
            fprintf(stderr, "ctrain sample: unexpected argument '%s'\n%s", a, sample_usage);
            return 2;
        } else {
            dir_arg = a;
        }
    }
    if (!dir_arg) {
        fprintf(stderr, "ctrain sample: missing CKPT_DIR or RUN_DIR\n%s", sample_usage);
        return 2;
    }
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
    int rc = 1;
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
