/* Where each rank runs: the device it drives and whether the launch's layout
 * suits it. Every rank contributes one record (node, node-local rank, GPUs
 * seen, the GPU it would drive, host name) to one all-gather over the
 * world, and then every rank reaches the same verdict from the same table,
 * so a bad layout fails on every rank with the same message.
 *
 * The rules, on the GPU path (model.device cuda, or auto with a GPU on
 * every rank):
 *   - one rank per GPU: a rank drives GPU (node-local rank % GPUs it sees).
 *     Two ranks of a node that would drive the same GPU are an error unless
 *     CT_ALLOW_GPU_SHARING=1. A GPU is named by the rank's
 *     CUDA_VISIBLE_DEVICES entry (an index, a UUID or a MIG id), else its
 *     index, so ranks that each see a GPU of their own (Slurm
 *     --gpus-per-task, a per-rank CUDA_VISIBLE_DEVICES) are one per GPU
 *     even though each sees one device;
 *   - TP groups (adjacent ranks, rank / tp) inside one node: TP all-reduces
 *     run in every layer, forward and backward, and belong on NVLink, not
 *     the network. A group spread over nodes is an error unless
 *     CT_ALLOW_TP_ACROSS_NODES=1.
 * On the CPU path a TP group across nodes is only a warning: its
 * all-reduces go through MPI either way, slower over the network but
 * correct, and small CPU nodes may need it. Ranks per node against cores is
 * `ctrain doctor`'s business (it warns), not an error.
 *
 * What it leaves out: checking that a CUDA_VISIBLE_DEVICES UUID and an index
 * name different GPUs (mixed forms are compared as text), and GPU
 * topology inside a node (NVLink islands, PCIe switches). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/env.h"
#include "core/log.h"
#include "kernels/kernels.h"
#include "trainer/trainer.h"

#define ID_LEN 64

/* One rank's line of the table; int32-aligned, gathered as int32 words. */
typedef struct {
    int32_t node, local_rank, local_size, gpus, pad;
    char host[64];
    char gpu[ID_LEN]; /* the GPU it would drive; "" without one */
} rec_t;
_Static_assert(sizeof(rec_t) % sizeof(int32_t) == 0, "rec_t is gathered as int32 words");

/* name=1 sets *on_p, 0 or unset clears it; anything else is an error. */
static CT_MUST_USE ct_status_t env_flag(const char *name, int *on_p)
{
    const char *v = ct_env_get(name);
    if (!v || !*v || !strcmp(v, "0")) {
        *on_p = 0;
        return CT_OK;
    }
    if (!strcmp(v, "1")) {
        *on_p = 1;
        return CT_OK;
    }
    CT_LOG_ERROR("environment variable %s is '%s'\n---> HINT: set it to 1 (on) or 0 (off), or "
                 "unset it", name, v);
    return CT_ERR_CONFIG;
}

/* The GPU a rank drives: entry `dev` of CUDA_VISIBLE_DEVICES (cvd, NULL
 * when unset), else the index itself. */
static void gpu_name(const char *cvd, int dev, char *out, size_t n)
{
    if (cvd && *cvd) {
        const char *p = cvd;
        for (int i = 0; i < dev && p; i++) {
            p = strchr(p, ',');
            if (p) p++;
        }
        if (p) {
            while (*p == ' ') p++;
            size_t len = strcspn(p, ", ");
            if (len > 0) {
                snprintf(out, n, "%.*s", (int)len, p);
                return;
            }
        }
    }
    snprintf(out, n, "%d", dev);
}

static const char *device_name(ct_device_t d)
{
    return d == CT_DEVICE_CUDA ? "cuda" : d == CT_DEVICE_CPU ? "cpu" : "auto";
}

/* Rank a, then b, drive the same GPU of one node: the first such pair in
 * rank order; 0 when there is none. */
static int find_shared(const rec_t *r, int n, int *a_p, int *b_p)
{
    for (int b = 1; b < n; b++)
        for (int a = 0; a < b; a++)
            if (r[a].node == r[b].node && r[a].gpu[0] && !strcmp(r[a].gpu, r[b].gpu)) {
                *a_p = a;
                *b_p = b;
                return 1;
            }
    return 0;
}

/* The number of nodes TP group k (ranks k*tp .. k*tp+tp-1) spans. */
static int group_nodes(const rec_t *r, int k, int tp)
{
    int nodes = 0;
    for (int i = k * tp; i < (k + 1) * tp; i++) {
        int seen = 0;
        for (int j = k * tp; j < i && !seen; j++) seen = r[j].node == r[i].node;
        nodes += !seen;
    }
    return nodes;
}

/* One rank per GPU. */
static CT_MUST_USE ct_status_t check_sharing(const rec_t *r, int n, int me, const ct_config_t *cfg,
                                             int allow, ct_placement_t *p)
{
    int a, b;
    if (!find_shared(r, n, &a, &b)) return CT_OK;
    for (int j = 0; j < n; j++) /* is this rank's GPU driven by another? */
        if (j != me && r[j].node == r[me].node && r[me].gpu[0] && !strcmp(r[j].gpu, r[me].gpu))
            p->shared = 1;
    const char *cvd = ct_env_get("CUDA_VISIBLE_DEVICES");
    char seen[160];
    if (cvd) snprintf(seen, sizeof seen, "this rank has CUDA_VISIBLE_DEVICES=%.120s", cvd);
    else snprintf(seen, sizeof seen, "CUDA_VISIBLE_DEVICES is not set on this rank");
    const int L = r[a].local_size, G = r[a].gpus;
    if (allow) {
        CT_LOG_WARN_R0("ranks %d and %d on node %s share GPU %s (CT_ALLOW_GPU_SHARING=1): %d "
                       "ranks there, %d GPU(s); each GPU's memory and time are split between "
                       "its ranks", a, b, r[a].host, r[a].gpu, L, G);
        return CT_OK;
    }
    CT_LOG_ERROR("%d ranks run on node %s but it shows them %d GPU(s), so ranks %d and %d would "
                 "both drive GPU %s (%s); model.device=%s needs one rank per GPU\n---> HINT: "
                 "start at most %d rank(s) per node, one per GPU: mpirun --map-by ppr:%d:node "
                 "(PPN=%d launch/mpirun.sh), Slurm --ntasks-per-node=%d --gpus-per-node=%d, an "
                 "MPIJob with slotsPerWorker = nvidia.com/gpu = %d; or give each node more GPUs "
                 "(CUDA_VISIBLE_DEVICES). To share GPUs on purpose, set CT_ALLOW_GPU_SHARING=1",
                 L, r[a].host, G, a, b, r[a].gpu, seen, device_name(cfg->model.device), G, G, G,
                 G, G, G);
    return CT_ERR_CONFIG;
}

/* TP groups inside one node: an error on GPUs (unless allowed), a warning
 * on the CPU. */
static CT_MUST_USE ct_status_t check_tp(const rec_t *r, int n, int me, int tp, int gpu, int allow,
                                        ct_placement_t *p)
{
    if (tp <= 1) return CT_OK;
    const int groups = n / tp;
    int split = 0, first = -1;
    for (int k = 0; k < groups; k++)
        if (group_nodes(r, k, tp) > 1) {
            split++;
            if (first < 0) first = k;
        }
    p->tp_nodes = group_nodes(r, me / tp, tp);
    if (!split) return CT_OK;
    const int lo = first * tp, hi = lo + tp - 1, L = r[0].local_size;
    int other = hi; /* a rank of that group on another node than its first */
    for (int i = lo + 1; i <= hi; i++)
        if (r[i].node != r[lo].node) {
            other = i;
            break;
        }
    char fix[384];
    if (tp > L)
        snprintf(fix, sizeof fix, "parallel.tp=%d is more than the %d ranks on node %s: lower "
                 "parallel.tp to a divisor of the ranks (GPUs) per node, or use nodes with more "
                 "GPUs", tp, L, r[0].host);
    else if (L % tp)
        snprintf(fix, sizeof fix, "parallel.tp=%d does not divide the %d ranks on node %s: run a "
                 "multiple of %d ranks per node (mpirun --map-by ppr:N:node, Slurm "
                 "--ntasks-per-node=N), or pick a parallel.tp that divides it", tp, L, r[0].host,
                 tp);
    else
        snprintf(fix, sizeof fix, "pack ranks by node, in rank order: mpirun --map-by "
                 "ppr:%d:node (PPN=%d launch/mpirun.sh), never --map-by node; Slurm's default "
                 "block distribution (--ntasks-per-node=%d), not --distribution=cyclic", L, L, L);
    if (!gpu) {
        CT_LOG_WARN_R0("parallel.tp=%d: %d of %d TP groups span nodes, e.g. ranks %d-%d on %s "
                       "and %s: their all-reduces, in every layer, cross the network\n---> "
                       "HINT: %s", tp, split, groups, lo, hi, r[lo].host, r[other].host, fix);
        return CT_OK;
    }
    if (allow) {
        CT_LOG_WARN_R0("parallel.tp=%d: %d of %d TP groups span nodes, e.g. ranks %d-%d on %s and "
                       "%s (CT_ALLOW_TP_ACROSS_NODES=1): their all-reduces cross the network",
                       tp, split, groups, lo, hi, r[lo].host, r[other].host);
        return CT_OK;
    }
    CT_LOG_ERROR("parallel.tp=%d but %d of %d TP groups span nodes, e.g. ranks %d-%d on %s and %s "
                 "(this rank's group spans %d); TP all-reduces run in every layer and need the "
                 "GPU links inside a node (NVLink), not the network\n---> HINT: %s. To run TP "
                 "across nodes on purpose, set CT_ALLOW_TP_ACROSS_NODES=1",
                 tp, split, groups, lo, hi, r[lo].host, r[other].host, p->tp_nodes, fix);
    return CT_ERR_CONFIG;
}

ct_status_t ct_train_place(const ct_config_t *cfg, const ct_comm_groups_t *g,
                           ct_placement_t *place_p)
{
    const ct_device_t want = cfg->model.device;
    const int n = g ? g->world_size : 1, me = g ? g->rank : 0, tp = g ? g->tp_size : 1;
    int allow_share = 0, allow_tp = 0;
    ct_status_t st = env_flag("CT_ALLOW_GPU_SHARING", &allow_share);
    if (st == CT_OK) st = env_flag("CT_ALLOW_TP_ACROSS_NODES", &allow_tp);

    rec_t mine;
    memset(&mine, 0, sizeof mine);
    mine.node = g ? g->node : 0;
    mine.local_rank = g ? g->local_rank : 0;
    mine.local_size = g ? g->local_size : 1;
    mine.gpus = want == CT_DEVICE_CPU ? 0 : ct_cuda_device_count();
    if (gethostname(mine.host, sizeof mine.host - 1) != 0) snprintf(mine.host, sizeof mine.host, "?");
    mine.host[strcspn(mine.host, ".")] = 0;
    if (mine.gpus > 0)
        gpu_name(ct_env_get("CUDA_VISIBLE_DEVICES"), mine.local_rank % mine.gpus, mine.gpu,
                 sizeof mine.gpu);

    rec_t *r = calloc((size_t)n, sizeof *r);
    if (!r && st == CT_OK) {
        CT_LOG_ERROR("out of memory for the placement table of %d ranks", n);
        st = CT_ERR_NO_MEMORY;
    }
    if (g && n > 1) {
        st = ct_comm_agree(g->world, st); /* no rank waits in the gather alone */
        if (st == CT_OK) {
            ct_comm_set_activity("gathering where the ranks run");
            st = ct_comm_allgather(g->world, &mine, r, sizeof mine / sizeof(int32_t), CT_DTYPE_I32,
                                   NULL);
        }
    } else if (r) {
        r[0] = mine;
    }
    if (st != CT_OK) {
        free(r);
        return st;
    }

    ct_placement_t p = {.device = -1, .gpus = mine.gpus, .shared = 0, .tp_nodes = 1};
    int without = -1, with = -1; /* a rank with no GPU, one with */
    for (int k = 0; k < n; k++) {
        if (r[k].gpus == 0 && without < 0) without = k;
        if (r[k].gpus > 0 && with < 0) with = k;
    }
    int gpu = 0;
    if (want == CT_DEVICE_CUDA && without >= 0) {
        if (mine.gpus == 0)
            CT_LOG_ERROR("model.device is cuda but no CUDA device is usable on this machine "
                         "(no GPU, no driver, or a build without CUDA)\n---> HINT: check "
                         "nvidia-smi and CUDA_VISIBLE_DEVICES, or set model.device: cpu");
        else
            CT_LOG_ERROR("model.device is cuda but rank %d on %s sees no CUDA device\n---> HINT: "
                         "check nvidia-smi and CUDA_VISIBLE_DEVICES on %s, or set model.device: "
                         "cpu", without, r[without].host, r[without].host);
        st = CT_ERR_UNSUPPORTED;
    } else if (want == CT_DEVICE_AUTO && without >= 0 && with >= 0) {
        CT_LOG_ERROR("model.device is auto but rank %d on %s sees no CUDA device while rank %d on "
                     "%s sees %d: the ranks would train on different devices\n---> HINT: set "
                     "model.device: cuda and fix %s (nvidia-smi, CUDA_VISIBLE_DEVICES), or set "
                     "model.device: cpu", without, r[without].host, with, r[with].host,
                     r[with].gpus, r[without].host);
        st = CT_ERR_CONFIG;
    } else if (want != CT_DEVICE_CPU && without < 0) {
        gpu = 1;
    } else if (want == CT_DEVICE_AUTO) {
        CT_LOG_INFO_R0("no CUDA device found: training on the CPU");
    }
    if (st == CT_OK && gpu) {
        st = check_sharing(r, n, me, cfg, allow_share, &p);
        p.device = mine.local_rank % mine.gpus;
    }
    if (st == CT_OK || gpu) { /* both errors of a bad GPU layout at once */
        ct_status_t tst = check_tp(r, n, me, tp, gpu, allow_tp, &p);
        if (st == CT_OK) st = tst;
    }
    free(r);
    if (st == CT_OK) *place_p = p;
    return st;
}
