/* The `plan` subcommand: the memory and FLOP plan of a configured layout,
 * per rank, on any machine (no GPU, MPI or data). The numbers come from
 * ct_model_plan (model/plan.c); this file prints them: a header (model,
 * layout, batch, FLOPs), then one table per path planned and per distinct
 * rank shape (ranks whose buffers are the same size collapse into one), and
 * on the GPU path the activations under every recompute mode, with and
 * without sequence parallelism. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "cli/cli.h"
#include "model/model.h"

static const char plan_usage[] =
    "usage: ctrain plan CONFIG.yaml [--set section.key=value]... [--sp] [--detail]\n"
    "                   [--gpu-mem GIB]\n"
    "\n"
    "Prints what each rank of the configured job would allocate, without a GPU,\n"
    "MPI or data: the GPU path's device memory (weights, gradients, AdamW state,\n"
    "activations, workspaces) and host memory, or the CPU path's host memory, in\n"
    "MiB, and the model FLOPs per step. The layout is the config's: model.*,\n"
    "parallel.dp, parallel.tp, optim.zero, model.recompute, train.batch_size,\n"
    "train.seq_len and train.batch_tokens; change any with --set. model.device\n"
    "picks the path: cuda the GPU path, cpu the CPU path, auto both. Ranks of\n"
    "the same shape share one table.\n"
    "\n"
    "  --sp           plan sequence parallelism (the GPU path with parallel.tp > 1;\n"
    "                 the default when the config sets parallel.sp: true)\n"
    "  --detail       list every buffer with its shape and how it splits over TP:\n"
    "                 [tp] split by tp, [sp] split by tp under sequence parallelism\n"
    "  --gpu-mem GIB  say whether the GPU plan fits a device of GIB GiB\n"
    "\n"
    "The sizes come from the functions the model allocates with, so the plan is\n"
    "what the GPU path allocates (checked on the CUDA emulator). With\n"
    "parallel.tp > 1 the GPU plan is the Megatron partitioning a TP GPU run\n"
    "allocates. Not planned: the CUDA\n"
    "context, the libraries' own memory (cuBLASLt handle, NCCL buffers, cuDNN's\n"
    "attention workspace), the data loader and allocator rounding. FLOPs are\n"
    "model FLOPs (6 x parameters + attention per token, as the step line's);\n"
    "recompute re-runs GELU and LayerNorm, which add no matmul FLOPs.\n"
    "Exit status 0, 1 for a layout the model cannot split, 2 for a usage error.\n";

static const char *const kind_names[CT_PLAN_NUM_KINDS] = {"weights", "gradients", "optimizer",
                                                           "activations", "workspaces"};
static const char *const recompute_names[] = {"none", "gelu", "ln_gelu"};

static double mib(size_t bytes) { return bytes / 1048576.0; }

/* A distinct rank shape: its plan and the ranks that have it, as ranges. */
typedef struct {
    ct_model_plan_t plan;
    int count;
    char ranks[96];
    int first, last; /* the range being extended */
    size_t len;
} shape_t;

static int same_mem(const ct_plan_mem_t *a, const ct_plan_mem_t *b)
{
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (a->item[i].bytes != b->item[i].bytes) return 0;
    return 1;
}

static void range_flush(shape_t *s)
{
    if (s->first < 0 || s->len >= sizeof s->ranks - 16) return;
    const char *sep = s->len ? "," : "";
    if (s->first == s->last)
        s->len += (size_t)snprintf(s->ranks + s->len, sizeof s->ranks - s->len, "%s%d", sep,
                                   s->first);
    else
        s->len += (size_t)snprintf(s->ranks + s->len, sizeof s->ranks - s->len, "%s%d-%d", sep,
                                   s->first, s->last);
    if (s->len >= sizeof s->ranks - 16) /* long lists end in "..." */
        s->len += (size_t)snprintf(s->ranks + s->len, sizeof s->ranks - s->len, ",...");
}

static void range_add(shape_t *s, int rank)
{
    s->count++;
    if (s->first >= 0 && rank == s->last + 1) {
        s->last = rank;
        return;
    }
    range_flush(s);
    s->first = s->last = rank;
}

static const char *region_tag(ct_plan_region_t r)
{
    return r == CT_PLAN_TP ? "[tp]" : r == CT_PLAN_SP ? "[sp]" : "";
}

/* One table: a line per kind (what it holds after it), the items under it
 * with --detail, the total. */
static void print_mem(const ct_plan_mem_t *m, const char *const *what, int detail)
{
    for (int k = 0; k < CT_PLAN_NUM_KINDS; k++) {
        int any = 0;
        for (int i = 0; i < m->n; i++) any |= m->item[i].kind == (ct_plan_kind_t)k;
        if (!any) continue;
        printf("  %-12s %10.1f MiB  %s\n", kind_names[k], mib(m->kind_bytes[k]), what[k]);
        for (int i = 0; detail && i < m->n; i++) {
            const ct_plan_item_t *it = &m->item[i];
            if (it->kind != (ct_plan_kind_t)k) continue;
            printf("      %-38s %-24s %10.1f MiB%s%s\n", it->name, it->shape, mib(it->bytes),
                   it->region != CT_PLAN_FULL ? " " : "", region_tag(it->region));
        }
    }
    printf("  %-12s %10.1f MiB  (%zu bytes)\n", "total", mib(m->total), m->total);
}

/* The activations of the GPU plan under every recompute mode, sp off and
 * (tp > 1) on; a Llama's GPU path has no norm recompute yet (its none and
 * gelu rows are the same: it has no GELU). */
static int print_act_modes(const ct_config_t *cfg, const ct_model_plan_t *p)
{
    const int llama = cfg->model.arch == CT_ARCH_LLAMA;
    const int tp = cfg->parallel.tp;
    printf("  activations by mode (MiB per rank)  %10s%s\n", "sp off", tp > 1 ? "      sp on" : "");
    for (int r = 0; r < (llama ? 2 : 3); r++) { /* a Llama: none = gelu (no GELU) */
        ct_config_t c = *cfg; /* shallow: ct_model_plan only reads it */
        c.model.recompute = (ct_recompute_t)r;
        printf("    recompute %-8s%s               ", recompute_names[r],
               r == (int)cfg->model.recompute ? " *" : "  ");
        for (int sp = 0; sp <= (tp > 1 && cfg->train.seq_len % tp == 0); sp++) {
            ct_model_plan_t q;
            if (ct_model_plan(&c, 1, p->tp_rank, p->dp_rank, sp, &q) != CT_OK) return 1;
            printf(" %10.1f", mib(q.device.kind_bytes[CT_PLAN_ACTS]));
        }
        printf("\n");
    }
    if (tp > 1 && cfg->train.seq_len % tp != 0)
        printf("    (sp on needs train.seq_len divisible by parallel.tp)\n");
    printf("    (* the configured model.recompute)\n");
    return 0;
}

static void print_header(const char *path, const ct_config_t *cfg, const ct_model_plan_t *p,
                         int sp_asked)
{
    const ct_model_dims_t *d = &p->d;
    const int dp = cfg->parallel.dp, tp = cfg->parallel.tp, world = dp * tp;
    printf("plan of %s, per rank (no device, MPI or data used)\n", path);
    printf("model   %s L=%d NH=%d C=%d V=%d (padded %d) maxT=%d", ct_model_arch_name(d->arch),
           d->L, d->NH, d->C, d->V, d->Vp, d->maxT);
    if (d->arch == CT_ARCH_LLAMA)
        printf(" NKV=%d F=%d %s head", d->NKV, d->F, d->tied ? "tied" : "untied");
    printf(": %.2fM parameters", p->full_params / 1e6);
    if (tp > 1) printf(", %.2fM on each TP rank", p->num_params / 1e6);
    printf("\n");
    printf("layout  dp=%d x tp=%d = %d rank%s, optim.zero=%d, model.recompute=%s, sp %s%s\n", dp,
           tp, world, world == 1 ? "" : "s", cfg->optim.zero,
           recompute_names[cfg->model.recompute], sp_asked && tp > 1 ? "on" : "off",
           sp_asked && tp == 1 ? " (--sp has no effect at parallel.tp = 1)" : "");
    printf("batch   micro-batch %d x %d = %lld tokens, %d accum x %d dp = %lld tokens per step\n",
           p->B, p->T, (long long)p->B * p->T, p->accum, dp, (long long)p->tokens_per_step);
    printf("flops   %.4g per token x %lld tokens = %.4g model FLOPs per step, %.4g per rank;\n"
           "        recompute adds no matmul FLOPs (it re-runs GELU and LayerNorm only)\n",
           p->flops_per_token, (long long)p->tokens_per_step, p->flops_per_step,
           p->flops_per_step / world);
}

/* Plans every rank of one path, collapses equal shapes, prints their
 * tables. 0, or 1 after a logged error. */
static int plan_path(const ct_config_t *cfg, int gpu, int sp, int detail, double gpu_mem_gib)
{
    const int dp = cfg->parallel.dp, tp = cfg->parallel.tp, world = dp * tp;
    enum { MAX_SHAPES = 8 };
    shape_t *shapes = calloc(MAX_SHAPES, sizeof *shapes);
    CT_ASSERT(shapes != NULL);
    int n_shapes = 0, rc = 0;
    ct_model_plan_t *q = malloc(sizeof *q);
    CT_ASSERT(q != NULL);
    for (int rank = 0; rank < world && rc == 0; rank++) {
        if (ct_model_plan(cfg, gpu, rank % tp, rank / tp, sp, q) != CT_OK) {
            rc = 1;
            break;
        }
        int s = 0;
        while (s < n_shapes && !(same_mem(&shapes[s].plan.device, &q->device) &&
                                 same_mem(&shapes[s].plan.host, &q->host)))
            s++;
        if (s == n_shapes) {
            CT_ASSERT(n_shapes < MAX_SHAPES);
            shapes[s].plan = *q;
            shapes[s].first = -1;
            n_shapes++;
        }
        range_add(&shapes[s], rank);
    }
    free(q);
    for (int s = 0; s < n_shapes && rc == 0; s++) {
        const ct_model_plan_t *p = &shapes[s].plan;
        range_flush(&shapes[s]);
        char who[160];
        snprintf(who, sizeof who, "%s %s (%d of %d)", shapes[s].count == 1 ? "rank" : "ranks",
                 shapes[s].ranks, shapes[s].count, world);
        char zero_s[64] = "";
        if (p->optim_count < p->num_params)
            snprintf(zero_s, sizeof zero_s, ", ZeRO-1: 1/%d of them", dp);
        char opt_s[96], act_s[96];
        snprintf(opt_s, sizeof opt_s, "AdamW m + v fp32%s", zero_s);
        if (gpu) {
            snprintf(act_s, sizeof act_s, "recompute %s, sp %s, micro-batch %d x %d",
                     recompute_names[cfg->model.recompute], p->sp ? "on" : "off", p->B, p->T);
            printf("\nGPU path, device memory: %s\n", who);
            const char *what[CT_PLAN_NUM_KINDS] = {
                "fp32 master + bf16 copy", "fp32", opt_s, act_s,
                "cuBLASLt, reductions, plain attention backward"};
            print_mem(&p->device, what, detail);
            printf("  not planned: CUDA context, cuBLASLt handle, NCCL buffers, cuDNN attention "
                   "workspace\n");
            if (gpu_mem_gib > 0) {
                double need = p->device.total / 1073741824.0;
                if (need <= gpu_mem_gib)
                    printf("  fits a %.1f GiB GPU: yes, %.2f GiB planned, %.2f GiB left for what "
                           "is not planned\n", gpu_mem_gib, need, gpu_mem_gib - need);
                else
                    printf("  fits a %.1f GiB GPU: no, %.2f GiB planned, %.2f GiB over; lower "
                           "train.batch_size, set model.recompute: ln_gelu, optim.zero: 1 or a "
                           "larger parallel.tp\n", gpu_mem_gib, need, need - gpu_mem_gib);
            }
            if (print_act_modes(cfg, p) != 0) rc = 1;
            const char *hwhat[CT_PLAN_NUM_KINDS] = {
                "fp32 copy for checkpoints", "", opt_s,
                "", "loss and logits-row staging"};
            printf("\nGPU path, host memory: %s\n", who);
            print_mem(&p->host, hwhat, detail);
        } else {
            snprintf(act_s, sizeof act_s, "fp32, with backward scratch, micro-batch %d x %d",
                     p->B, p->T);
            const char *hwhat[CT_PLAN_NUM_KINDS] = {"fp32", "fp32", opt_s, act_s, ""};
            printf("\nCPU path, host memory: %s\n", who);
            print_mem(&p->host, hwhat, detail);
        }
    }
    free(shapes);
    return rc;
}

int ct_cmd_plan(int argc, char **argv)
{
    int sp = 0, detail = 0;
    const char *mem_s = NULL;
    double gpu_mem = 0.0;
    const ct_opt_t opts[] = {{"--set", NULL, CT_OPT_SET, NULL},
                             {"--sp", NULL, CT_OPT_FLAG, &sp},
                             {"--detail", NULL, CT_OPT_FLAG, &detail},
                             {"--gpu-mem", NULL, CT_OPT_STR, &mem_s}};
    ct_args_t a = {.cmd = "plan", .usage = plan_usage, .opts = opts,
                   .n_opts = (int)(sizeof opts / sizeof opts[0]), .min_pos = 1, .max_pos = 1,
                   .pos_names = "CONFIG.yaml"};
    int rc = ct_args_parse(&a, argc, argv, 1);
    if (rc < 0 && mem_s) rc = ct_args_double(a.cmd, "--gpu-mem", mem_s, 0.0, &gpu_mem);
    if (rc >= 0) {
        ct_args_free(&a);
        return rc;
    }
    ct_config_t cfg;
    ct_status_t st = ct_config_load(a.pos[0], a.sets, a.n_sets, &cfg);
    char *path = strdup(a.pos[0]);
    ct_args_free(&a);
    if (st != CT_OK) {
        free(path);
        return 1;
    }
    /* model.device auto plans both paths, the GPU one where the model has it */
    const int gpu = cfg.model.device == CT_DEVICE_CUDA ||
                    (cfg.model.device == CT_DEVICE_AUTO && ct_model_cuda_supports(&cfg));
    const int cpu = cfg.model.device != CT_DEVICE_CUDA;
    if (sp && !gpu) {
        free(path);
        ct_config_free(&cfg);
        return ct_cli_usage_error("plan", "--sp plans the GPU path, but model.device is cpu (the "
                                  "CPU path has no sequence parallelism)");
    }
    if (gpu && cfg.parallel.sp) sp = 1; /* the config's parallel.sp, as train runs it */
    rc = 1;
    ct_model_plan_t *p = malloc(sizeof *p);
    CT_ASSERT(p != NULL);
    if (ct_model_plan(&cfg, gpu, 0, 0, sp, p) == CT_OK) {
        print_header(path, &cfg, p, sp);
        rc = 0;
        if (gpu) rc = plan_path(&cfg, 1, sp, detail, gpu_mem);
        if (rc == 0 && cpu) rc = plan_path(&cfg, 0, 0, detail, 0.0);
    }
    fflush(stdout);
    free(p);
    free(path);
    ct_config_free(&cfg);
    return rc;
}
