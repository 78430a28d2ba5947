/* The `doctor` subcommand: checks, on every rank, that a job as configured
 * can start, before it is queued for hours. Each rank checks MPI and the
 * process groups, its device, an all-reduce over each group (exact sum and
 * bandwidth), that the train and val shards open, and that the checkpoint
 * directory is writable. Besides world, dp and tp, two groups measure the
 * links: the ranks of each node (by host name), and one rank per node (the
 * ranks with the same place among their node's ranks, all such groups at
 * once, as DP traffic crosses nodes). Rank 0 gathers the results and prints
 * one table, then one bandwidth line per node and one across nodes; the
 * exit code is the verdict (0 all passed, 1 any failed).
 *
 * The device row is train's placement check (trainer/placement.c): one
 * rank per GPU, TP groups inside a node. On GPUs one more row all-reduces
 * over the TP group's NCCL communicator on device memory (the TP traffic of
 * training); elsewhere that row says why it was skipped.
 *
 * It does not build the model, read samples beyond the shard headers, or
 * run kernels on a GPU besides NCCL's. It leaves RUN_DIR/ckpt behind (train
 * would create it anyway) but removes its probe file. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <omp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/env.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/data.h"
#include "cli/cli.h"
#include "trainer/trainer.h"

static const char doctor_usage[] =
    "usage: ctrain doctor CONFIG.yaml [--set section.key=value]...\n"
    "\n"
    "Checks, on every rank of the job as it would be launched (run it under\n"
    "the same mpirun/srun line as train), that training can start:\n"
    "  mpi        MPI starts and the world size is parallel.dp x parallel.tp\n"
    "  device     the compute device, threads and cores per rank on each node;\n"
    "             on GPUs one rank per GPU and each TP group inside a node\n"
    "  allreduce  an all-reduce over the world, dp and tp groups gives the\n"
    "             exact sum; its bandwidth at 16 MiB. Also within each node\n"
    "             (allreduce.node) and across nodes, one rank per node\n"
    "             (allreduce.inter); one bandwidth line per node follows\n"
    "             the table. On GPUs, allreduce.tp_gpu: the same over the TP\n"
    "             group's NCCL communicator on device memory (SKIP elsewhere)\n"
    "  data.train, data.val  the shards open and their headers are sane\n"
    "  ckpt_dir   RUN_DIR/ckpt can be created and written (fsync'd probe),\n"
    "             and its write speed\n"
    "  preempt    under mpirun (or the sbatch script), the launcher's kill\n"
    "             timeout leaves time to save a checkpoint after SIGTERM\n"
    "Rank 0 prints a table (rank, host, check, status, detail). Exit status 0\n"
    "when every check passes (WARN and SKIP do not fail), 1 when any fails.\n";

enum { ST_OK = 0, ST_WARN = 1, ST_FAIL = 2, ST_SKIP = 3 };
static const char *const status_names[] = {"OK", "WARN", "FAIL", "SKIP"};

/* One result row. Fixed size and int32-aligned, so the rows of every rank
 * are gathered with one int32 allgather. */
typedef struct {
    int32_t rank, status;
    char host[64];
    char check[32];
    char detail[224];
    float busbw; /* MB/s of an all-reduce row over 2+ ranks, else -1 */
} row_t;

#define MAX_ROWS 14
typedef struct {
    int32_t n;
    row_t rows[MAX_ROWS];
} report_t;

#define ALLREDUCE_BYTES (16u << 20)
#define ALLREDUCE_ITERS 3

static char host_name[64];

static void add_row(report_t *r, int rank, const char *check, int status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add_row(report_t *r, int rank, const char *check, int status, const char *fmt, ...)
{
    CT_ASSERT(r->n < MAX_ROWS);
    row_t *w = &r->rows[r->n++];
    memset(w, 0, sizeof *w);
    w->rank = rank;
    w->status = status;
    snprintf(w->host, sizeof w->host, "%s", host_name);
    snprintf(w->check, sizeof w->check, "%s", check);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->detail, sizeof w->detail, fmt, ap);
    va_end(ap);
    w->busbw = -1.0f;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- capturing the cause a library logged --------------------------------
 * data/ logs the exact cause of a failure once, where it is understood. The
 * doctor wants that cause in its table too: a log hook installed around the
 * call keeps the message of the last ERROR line (the lines still go to
 * stderr as usual). */
typedef struct {
    char *reason;
    size_t reason_len;
} capture_t;

static void capture_hook(void *ctx, ct_log_level_t level, const char *line, const char *msg)
{
    capture_t *c = ctx;
    if (level != CT_LOG_LEVEL_ERROR || !c->reason_len) return;
    snprintf(c->reason, c->reason_len, "%s", msg);
    c->reason[strcspn(c->reason, "\n")] = 0; /* one table row: a "\n---> HINT" is left out */
}

static void capture_begin(capture_t *c, char *reason, size_t reason_len)
{
    c->reason = reason;
    c->reason_len = reason_len;
    if (reason_len) reason[0] = 0;
    ct_log_set_hook(capture_hook, c);
}

static void capture_end(void) { ct_log_set_hook(NULL, NULL); }

/* ---- checks ------------------------------------------------------------------ */
/* train's device choice and layout check (collective over the world), as a
 * row; *place_p is this rank's placement, device -1 when it failed. */
static void check_device(report_t *r, const ct_comm_groups_t *g, const ct_config_t *cfg,
                         ct_placement_t *place_p)
{
    capture_t cap;
    char reason[sizeof r->rows[0].detail];
    capture_begin(&cap, reason, sizeof reason);
    ct_status_t st = ct_train_place(cfg, g, place_p);
    capture_end();
    if (st != CT_OK) {
        *place_p = (ct_placement_t){.device = -1, .gpus = -1, .shared = 0, .tp_nodes = 1};
        add_row(r, g->rank, "device", ST_FAIL, "%s", reason[0] ? reason : ct_status_str(st));
        return;
    }
    const ct_placement_t *p = place_p;
    char tp_note[96] = "";
    if (p->tp_nodes > 1)
        snprintf(tp_note, sizeof tp_note, "; its TP group spans %d nodes%s", p->tp_nodes,
                 p->device >= 0 ? " (CT_ALLOW_TP_ACROSS_NODES=1)" : "");
    if (p->device >= 0) {
        int status = p->shared || p->tp_nodes > 1 ? ST_WARN : ST_OK;
        add_row(r, g->rank, "device", status, "cuda device %d of %d (local rank %d/%d, node %d "
                "of %d)%s%s", p->device, p->gpus, g->local_rank, g->local_size, g->node,
                g->nodes, p->shared ? "; shares its GPU with another rank (CT_ALLOW_GPU_SHARING=1)"
                                    : "", tp_note);
        return;
    }
    int threads = omp_get_max_threads();
    long node_cores = sysconf(_SC_NPROCESSORS_ONLN);
    int bound = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) bound = CPU_COUNT(&set);
    long want = (long)g->local_size * threads;
    int status = p->tp_nodes > 1 ? ST_WARN : ST_OK;
    char warn[96] = "";
    if (node_cores > 0 && want > node_cores) {
        status = ST_WARN;
        snprintf(warn, sizeof warn, "; %d ranks x %d threads exceed the node's %ld cores",
                 g->local_size, threads, node_cores);
    } else if (bound > 0 && threads > bound) {
        status = ST_WARN;
        snprintf(warn, sizeof warn, "; %d threads on %d bound cores", threads, bound);
    }
    add_row(r, g->rank, "device", status,
            "cpu, %d OpenMP threads; local rank %d/%d, %d cores bound, %ld cores on node%s%s",
            threads, g->local_rank, g->local_size, bound, node_cores, warn, tp_note);
}

/* All-reduces ALLREDUCE_BYTES of floats over c and checks the exact sum,
 * then times it (ct_comm_selftest_allreduce: host or device memory, as c
 * takes). The row is `name`, or "allreduce.<group>" when NULL; `where` (may
 * be NULL) follows "over N ranks" in the row, e.g. "of node n1". */
static CT_MUST_USE ct_status_t check_allreduce(report_t *r, int rank, ct_comm_t *c,
                                               const char *name, const char *where)
{
    const char *sp = where ? " " : "";
    where = where ? where : "";
    char row[32];
    if (!name) snprintf(row, sizeof row, "allreduce.%s", ct_comm_name(c));
    name = name ? name : row;
    int size = ct_comm_size(c);
    ct_comm_selftest_t res;
    ct_status_t st = ct_comm_selftest_allreduce(c, ALLREDUCE_BYTES / sizeof(float), ALLREDUCE_ITERS,
                                                &res);
    if (st != CT_OK) {
        add_row(r, rank, name, ST_FAIL, "%s over %d ranks%s%s: %s", ct_comm_name(c), size, sp,
                where, ct_status_str(st));
    } else if (res.bad != ALLREDUCE_BYTES / sizeof(float)) {
        add_row(r, rank, name, ST_FAIL, "wrong sum over %d ranks: element %zu is %g, expected %g",
                size, res.bad, (double)res.bad_value, (double)res.want);
    } else {
        double mb = (double)ALLREDUCE_BYTES / 1e6;
        double algbw = res.seconds > 0 ? mb / res.seconds : 0.0;
        double busbw = algbw * 2.0 * (size - 1) / size; /* NCCL's bus bandwidth */
        if (size == 1) {
            add_row(r, rank, name, ST_OK,
                    "exact sum over 1 rank%s%s; %u MiB: %.0f MB/s (a local copy)", sp, where,
                    ALLREDUCE_BYTES >> 20, algbw);
        } else {
            add_row(r, rank, name, ST_OK,
                    "exact sum over %d ranks%s%s; %u MiB: %.0f MB/s algbw, %.0f MB/s busbw", size,
                    sp, where, ALLREDUCE_BYTES >> 20, algbw, busbw);
            r->rows[r->n - 1].busbw = (float)busbw;
        }
    }
    return st;
}

/* The TP group's all-reduce on the GPUs, over NCCL device groups built for
 * it, when every rank drives a GPU; else a SKIP row with the reason. A
 * failed device collective leaves the job unusable: the caller aborts. */
static CT_MUST_USE ct_status_t check_gpu_tp(report_t *r, const ct_comm_groups_t *g,
                                            const ct_config_t *cfg, const ct_placement_t *p)
{
    const char *name = "allreduce.tp_gpu";
    int32_t can = p->device >= 0;
    ct_comm_set_activity("doctor: can every rank use its GPU");
    ct_status_t st = ct_comm_allreduce(g->world, &can, &can, 1, CT_DTYPE_I32, CT_OP_MIN, NULL);
    if (st != CT_OK) {
        add_row(r, g->rank, name, ST_FAIL, "agreeing on the GPUs: %s", ct_status_str(st));
        return st;
    }
    if (!can) {
        const char *why = p->device >= 0 ? "another rank has no GPU to use"
                          : cfg->model.device == CT_DEVICE_CPU ? "model.device is cpu"
                          : p->gpus == 0 ? "no CUDA device on this rank"
                                         : "the device check failed (the device row says why)";
        add_row(r, g->rank, name, ST_SKIP, "skipped: %s", why);
        return CT_OK;
    }
    ct_comm_groups_t host = *g, dev;
    host.device = p->device;
    capture_t cap;
    char reason[sizeof r->rows[0].detail];
    capture_begin(&cap, reason, sizeof reason);
    st = ct_comm_device_groups_init(&host, &dev);
    capture_end();
    if (st != CT_OK) {
        add_row(r, g->rank, name, ST_FAIL, "cannot build the nccl groups: %s",
                reason[0] ? reason : ct_status_str(st));
        return st;
    }
    char where[64];
    snprintf(where, sizeof where, "on cuda device %d (nccl)", p->device);
    st = check_allreduce(r, g->rank, dev.tp, name, where);
    if (st != CT_OK) return st; /* the communicators are aborted: no free */
    ct_comm_device_groups_free(&dev);
    return CT_OK;
}

/* The links between ranks: an all-reduce within this node (the ranks with
 * this host name) and one across nodes (one rank per node: those at the
 * same place among their node's ranks; every such group runs at once). The
 * node comes from the host names, gathered over the world. */
static CT_MUST_USE ct_status_t check_nodes(report_t *r, const ct_comm_groups_t *g)
{
    enum { WORDS = sizeof host_name / sizeof(int32_t) };
    int32_t mine[WORDS] = {0};
    int32_t *hosts = calloc((size_t)g->world_size, sizeof mine);
    if (!hosts) {
        add_row(r, g->rank, "allreduce.node", ST_FAIL, "out of memory for %d host names",
                g->world_size);
        return CT_ERR_NO_MEMORY;
    }
    memcpy(mine, host_name, strnlen(host_name, sizeof host_name - 1));
    ct_comm_set_activity("doctor: gathering host names");
    ct_status_t st = ct_comm_allgather(g->world, mine, hosts, WORDS, CT_DTYPE_I32, NULL);
    if (st != CT_OK) {
        add_row(r, g->rank, "allreduce.node", ST_FAIL, "gathering host names: %s",
                ct_status_str(st));
        free(hosts);
        return st;
    }
    /* node: the first world rank on this host; place: my ranks before me there */
    int node = -1, place = 0, nodes = 0;
    for (int k = 0; k < g->world_size; k++) {
        const int32_t *hk = &hosts[(size_t)k * WORDS];
        int first = 1;
        for (int j = 0; j < k && first; j++) first = memcmp(&hosts[(size_t)j * WORDS], hk, sizeof mine) != 0;
        nodes += first;
        if (!memcmp(hk, mine, sizeof mine)) {
            if (node < 0) node = k;
            if (k < g->rank) place++;
        }
    }
    free(hosts);
    ct_comm_t *local = NULL, *inter = NULL;
    char where[96];
    st = ct_comm_split(g->world, node, g->rank, "node", &local);
    if (st == CT_OK) {
        snprintf(where, sizeof where, "of node %s", host_name);
        st = check_allreduce(r, g->rank, local, NULL, where);
    } else {
        add_row(r, g->rank, "allreduce.node", ST_FAIL, "cannot build the node group: %s",
                ct_status_str(st));
    }
    if (st == CT_OK) {
        st = ct_comm_split(g->world, place, g->rank, "inter", &inter);
        if (st != CT_OK) {
            add_row(r, g->rank, "allreduce.inter", ST_FAIL, "cannot build the group: %s",
                    ct_status_str(st));
        } else if (nodes == 1) {
            add_row(r, g->rank, "allreduce.inter", ST_OK, "one node: no link between nodes");
        } else {
            snprintf(where, sizeof where, "on %d of %d nodes (local rank %d of each)",
                     ct_comm_size(inter), nodes, place);
            st = check_allreduce(r, g->rank, inter, NULL, where);
        }
    }
    ct_comm_free(inter);
    ct_comm_free(local);
    return st;
}

/* Shards a spec names, counted locally for plain paths and globs; -1 when any
 * item is remote (the loader lists those itself). */
static int count_local_shards(const char *spec)
{
    char *copy = strdup(spec);
    if (!copy) return -1;
    int total = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (!strncmp(item, "file://", 7)) item += 7;
        if (strstr(item, "://")) {
            total = -1;
            break;
        }
        glob_t gl;
        if (glob(item, 0, NULL, &gl) == 0) total += (int)gl.gl_pathc;
        globfree(&gl);
    }
    free(copy);
    return total;
}

static void check_data(report_t *r, int rank, const ct_config_t *cfg, const char *check,
                       const char *spec, int shuffle)
{
    ct_loader_opts_t o = {.spec = spec, .T = cfg->train.seq_len, .vocab_size = cfg->model.vocab_size,
                          .seed = (uint64_t)cfg->data.seed, .chunk_tokens = cfg->data.chunk_tokens,
                          .window_chunks = cfg->data.window_chunks, .shuffle = shuffle,
                          .prefetch_mib = cfg->data.prefetch_mib, .threads = 1,
                          .max_retries = cfg->data.max_retries, .cache_dir = cfg->data.cache_dir,
                          .cache_mib = cfg->data.cache_mib};
    if (!spec || !*spec) {
        add_row(r, rank, check, ST_FAIL, "config key %s is empty", check);
        return;
    }
    ct_loader_t *l = NULL;
    capture_t cap;
    char reason[sizeof r->rows[0].detail];
    capture_begin(&cap, reason, sizeof reason);
    ct_status_t st = ct_loader_init(&o, &l);
    capture_end();
    if (st != CT_OK) {
        add_row(r, rank, check, ST_FAIL, "%s: %s", ct_status_name(st),
                reason[0] ? reason : ct_status_str(st));
        return;
    }
    int64_t samples = ct_loader_num_samples(l);
    int shards = count_local_shards(spec);
    char nshards[32] = "remote shards";
    if (shards >= 0) snprintf(nshards, sizeof nshards, "%d shard%s", shards, shards == 1 ? "" : "s");
    add_row(r, rank, check, samples > 0 ? ST_OK : ST_FAIL, "%s, %lld samples of T=%d%s", nshards,
            (long long)samples, cfg->train.seq_len, samples > 0 ? "" : ": too short for one sample");
    ct_loader_free(l);
}

/* The probe: enough to time the file system's write speed (written,
 * fsync'd, removed), which the preempt check uses. */
#define PROBE_BYTES (32u << 20)

/* Returns the measured write speed in MB/s (0 if the probe failed). */
static double check_ckpt_dir(report_t *r, int rank, const ct_config_t *cfg)
{
    char dir[4096], probe[4200], err[sizeof r->rows[0].detail];
    snprintf(dir, sizeof dir, "%s/ckpt", cfg->train.run_dir);
    capture_t cap;
    capture_begin(&cap, err, sizeof err);
    ct_status_t st = ct_fs_mkdir_p(dir);
    capture_end();
    if (st != CT_OK) {
        add_row(r, rank, "ckpt_dir", ST_FAIL, "%s", err);
        return 0;
    }
    /* one probe per rank, so ranks sharing a file system do not collide */
    snprintf(probe, sizeof probe, "%s/.doctor_probe.%s.%d", dir, host_name, (int)getpid());
    char *payload = calloc(1, PROBE_BYTES);
    int fd = payload ? open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
    if (fd < 0) {
        add_row(r, rank, "ckpt_dir", ST_FAIL, "cannot create %s: %s", probe,
                payload ? strerror(errno) : "out of memory");
        free(payload);
        return 0;
    }
    const char *what = NULL;
    int e = 0;
    double t0 = now_s();
    for (size_t done = 0; done < PROBE_BYTES && !what;) {
        ssize_t w = write(fd, payload + done, PROBE_BYTES - done);
        if (w > 0) done += (size_t)w;
        else if (w < 0 && errno == EINTR) continue;
        else {
            what = "write";
            e = w < 0 ? errno : ENOSPC;
        }
    }
    free(payload);
    if (what) {
    } else if (fsync(fd) != 0) {
        what = "fsync";
        e = errno;
    }
    if (close(fd) != 0 && !what) {
        what = "close";
        e = errno;
    }
    double mbps = (double)PROBE_BYTES / 1e6 / (now_s() - t0 + 1e-9);
    int rm = unlink(probe);
    int rm_errno = errno;
    if (what)
        add_row(r, rank, "ckpt_dir", ST_FAIL, "%s of %s failed: %s", what, probe, strerror(e));
    else if (rm != 0)
        add_row(r, rank, "ckpt_dir", ST_FAIL, "cannot remove %s: %s", probe, strerror(rm_errno));
    else
        add_row(r, rank, "ckpt_dir", ST_OK,
                "%s writable: %u MiB probe written and fsync'd at %.0f MB/s, removed", dir,
                PROBE_BYTES >> 20, mbps);
    return what || rm != 0 ? 0 : mbps;
}

/* Whether a launcher's SIGTERM leaves the ranks time to save: the kill
 * timeout (trainer/preempt.c) against this rank's checkpoint (parameters
 * and AdamW moments, fp32) at the speed just measured, plus the exit. The
 * step time is unknown here; train checks again with measured times. */
static void check_preempt(report_t *r, const ct_comm_groups_t *g, const ct_config_t *cfg,
                          double mbps)
{
    double t = ct_preempt_kill_timeout();
    if (t < 0) {
        const char *lau = ct_env_get("CT_LAUNCHER");
        add_row(r, g->rank, "preempt", ST_OK, "%s",
                lau && *lau ? "the launcher passes SIGTERM on to the ranks at once"
                            : "no kill timeout to check (not under mpirun or the sbatch script)");
        return;
    }
    ct_model_dims_t d;
    ct_model_dims(&cfg->model, g->tp_size, g->tp_rank, &d);
    size_t n = (size_t)ct_model_num_tensors(&d), params = 0;
    size_t *sizes = calloc(n, sizeof *sizes);
    if (sizes) ct_model_tensor_sizes(&d, sizes);
    for (size_t i = 0; sizes && i < n; i++) params += sizes[i];
    free(sizes);
    double moments = cfg->optim.zero ? 2.0 * (double)params / g->dp_size : 2.0 * (double)params;
    double mb = ((double)params + moments) * 4.0 / 1e6;
    if (mbps <= 0) {
        add_row(r, g->rank, "preempt", ST_WARN, "kill timeout %.0f s; the save speed is unknown "
                "(ckpt_dir failed)", t);
        return;
    }
    double need = mb / mbps + CT_PREEMPT_EXIT_GRACE_S;
    if (need + 1.0 > t) /* and a step, unknown here */
        add_row(r, g->rank, "preempt", ST_WARN,
                "kill timeout %.0f s < a step + %.1f s to save %.0f MB at %.0f MB/s and exit: "
                "use launch/mpirun.sh or set OMPI_MCA_odls_base_sigkill_timeout=%d",
                t, need, mb, mbps, (int)(need * 1.5 + 10.0));
    else
        add_row(r, g->rank, "preempt", ST_OK,
                "kill timeout %.0f s; a save of %.0f MB at %.0f MB/s and the exit take %.1f s "
                "(plus a step)", t, mb, mbps, need);
}

/* ---- report ------------------------------------------------------------------ */
/* Below the table: per node, the slowest busbw of its allreduce.node rows;
 * then the slowest allreduce.inter busbw, and the slowest allreduce.tp_gpu. */
static void print_bandwidth(const report_t *all, int world)
{
    const row_t **rows = malloc((size_t)world * MAX_ROWS * sizeof *rows);
    if (!rows) return;
    int n = 0;
    for (int k = 0; k < world; k++)
        for (int i = 0; i < all[k].n && i < MAX_ROWS; i++)
            if (!strcmp(all[k].rows[i].check, "allreduce.node")) rows[n++] = &all[k].rows[i];
    for (int a = 0; a < n; a++) {
        int seen = 0, ranks = 0;
        float bw = -1.0f;
        for (int b = 0; b < a && !seen; b++) seen = !strcmp(rows[b]->host, rows[a]->host);
        if (seen) continue;
        for (int b = a; b < n; b++) {
            if (strcmp(rows[b]->host, rows[a]->host)) continue;
            ranks++;
            if (rows[b]->busbw >= 0 && (bw < 0 || rows[b]->busbw < bw)) bw = rows[b]->busbw;
        }
        if (bw >= 0)
            printf("doctor: node %.64s: %d ranks, all-reduce within the node %.0f MB/s busbw "
                   "(%u MiB, slowest rank)\n", rows[a]->host, ranks, (double)bw,
                   ALLREDUCE_BYTES >> 20);
        else
            printf("doctor: node %.64s: %d rank%s, no all-reduce within the node\n",
                   rows[a]->host, ranks, ranks == 1 ? "" : "s");
    }
    free(rows);
    float inter = -1.0f;
    int m = 0;
    for (int k = 0; k < world; k++)
        for (int i = 0; i < all[k].n && i < MAX_ROWS; i++) {
            const row_t *w = &all[k].rows[i];
            if (strcmp(w->check, "allreduce.inter") || w->busbw < 0) continue;
            m++;
            if (inter < 0 || w->busbw < inter) inter = w->busbw;
        }
    if (m)
        printf("doctor: across nodes: all-reduce %.0f MB/s busbw (%u MiB, slowest of %d ranks, "
               "every node's ranks at once)\n", (double)inter, ALLREDUCE_BYTES >> 20, m);
    float tp = -1.0f;
    m = 0;
    for (int k = 0; k < world; k++)
        for (int i = 0; i < all[k].n && i < MAX_ROWS; i++) {
            const row_t *w = &all[k].rows[i];
            if (strcmp(w->check, "allreduce.tp_gpu") || w->busbw < 0) continue;
            m++;
            if (tp < 0 || w->busbw < tp) tp = w->busbw;
        }
    if (m)
        printf("doctor: TP groups on the GPUs: all-reduce %.0f MB/s busbw (%u MiB, nccl, slowest "
               "of %d ranks, every TP group at once)\n", (double)tp, ALLREDUCE_BYTES >> 20, m);
}

static int print_table(const report_t *all, int world)
{
    int fails = 0, warns = 0, skips = 0, rows = 0;
    printf("%-4s  %-16s  %-16s  %-6s  %s\n", "rank", "host", "check", "status", "detail");
    for (int k = 0; k < world; k++) {
        for (int i = 0; i < all[k].n && i < MAX_ROWS; i++) {
            const row_t *w = &all[k].rows[i];
            int s = w->status >= ST_OK && w->status <= ST_SKIP ? w->status : ST_FAIL;
            printf("%-4d  %-16.64s  %-16.32s  %-6s  %.224s\n", w->rank, w->host, w->check,
                   status_names[s], w->detail);
            fails += s == ST_FAIL;
            warns += s == ST_WARN;
            skips += s == ST_SKIP;
            rows++;
        }
    }
    print_bandwidth(all, world);
    if (fails)
        printf("doctor: %d of %d checks FAILED on %d rank%s\n", fails, rows, world,
               world == 1 ? "" : "s");
    else
        printf("doctor: all %d checks passed on %d rank%s%s%s\n", rows - skips, world,
               world == 1 ? "" : "s", warns ? " (with warnings)" : "",
               skips ? ", some skipped (SKIP)" : "");
    fflush(stdout);
    return fails;
}

int ct_cmd_doctor(int argc, char **argv)
{
    const ct_opt_t opts[] = {{"--set", NULL, CT_OPT_SET, NULL}};
    ct_args_t a = {.cmd = "doctor", .usage = doctor_usage, .opts = opts, .n_opts = 1,
                   .min_pos = 1, .max_pos = 1, .pos_names = "CONFIG.yaml"};
    int rc = ct_args_parse(&a, argc, argv, 1);
    if (rc >= 0) {
        ct_args_free(&a);
        return rc;
    }
    const char *cfg_path = a.pos[0];
    if (gethostname(host_name, sizeof host_name) != 0) strcpy(host_name, "?");
    host_name[sizeof host_name - 1] = 0;
    host_name[strcspn(host_name, ".")] = 0;

    ct_config_t cfg;
    ct_status_t st = ct_config_load(cfg_path, a.sets, a.n_sets, &cfg);
    ct_args_free(&a);
    if (st != CT_OK) {
        fprintf(stderr, "doctor: FAIL config: %s does not load (cause logged above)\n", cfg_path);
        return 1;
    }
    if (cfg.train.threads > 0) omp_set_num_threads(cfg.train.threads);

    /* (1) MPI and the groups. A world that is not dp x tp fails on every
     * rank, before any group exists to gather over: each rank says so. */
    ct_comm_groups_t g;
    st = ct_comm_init(cfg.parallel.dp, cfg.parallel.tp, cfg.comm.timeout_s, &g);
    if (st != CT_OK) {
        fprintf(stderr,
                "doctor: FAIL mpi on %s rank %d: the process groups could not be built (%s): "
                "parallel.dp %d x parallel.tp %d must equal the number of ranks launched "
                "(cause logged above)\n",
                host_name, ct_log_rank(), ct_status_name(st), cfg.parallel.dp, cfg.parallel.tp);
        ct_config_free(&cfg);
        ct_comm_groups_t zero;
        memset(&zero, 0, sizeof zero);
        ct_comm_finalize(&zero);
        return 1;
    }

    report_t *mine = calloc(1, sizeof *mine);
    report_t *all = calloc((size_t)g.world_size, sizeof *all);
    if (!mine || !all) {
        CT_LOG_ERROR("out of memory for the doctor's report (%d ranks)", g.world_size);
        free(mine);
        free(all);
        ct_config_free(&cfg);
        ct_comm_abort(1);
    }
    add_row(mine, g.rank, "mpi", ST_OK, "backend %s, world %d = dp %d x tp %d; dp rank %d, tp rank %d",
            ct_comm_backend_name(g.backend), g.world_size, g.dp_size, g.tp_size, g.dp_rank,
            g.tp_rank);
    /* (2) device and layout */
    ct_placement_t place;
    check_device(mine, &g, &cfg, &place);
    /* (3) one all-reduce per group; a failed collective leaves the groups
     * unusable, so later collectives are skipped */
    ct_status_t comm_st = check_allreduce(mine, g.rank, g.world, NULL, NULL);
    if (comm_st == CT_OK) comm_st = check_allreduce(mine, g.rank, g.dp, NULL, NULL);
    if (comm_st == CT_OK) comm_st = check_allreduce(mine, g.rank, g.tp, NULL, NULL);
    if (comm_st == CT_OK) comm_st = check_nodes(mine, &g);
    if (comm_st == CT_OK) comm_st = check_gpu_tp(mine, &g, &cfg, &place);
    /* (4) data, (5) checkpoint directory */
    check_data(mine, g.rank, &cfg, "data.train", cfg.data.train, 1);
    if (cfg.data.val && *cfg.data.val) check_data(mine, g.rank, &cfg, "data.val", cfg.data.val, 0);
    double mbps = check_ckpt_dir(mine, g.rank, &cfg);
    check_preempt(mine, &g, &cfg, mbps);
    ct_config_free(&cfg);

    int fails = 0;
    if (comm_st == CT_OK) {
        ct_comm_set_activity("doctor: gathering the report");
        comm_st = ct_comm_allgather(g.world, mine, all, sizeof *mine / sizeof(int32_t),
                                    CT_DTYPE_I32, NULL);
    }
    if (comm_st == CT_OK) {
        int32_t f = g.rank == 0 ? print_table(all, g.world_size) : 0;
        comm_st = ct_comm_broadcast(g.world, &f, 1, CT_DTYPE_I32, 0, NULL);
        fails = f;
    }
    if (comm_st != CT_OK) {
        /* nothing can be gathered: every rank prints its own rows */
        fprintf(stderr, "doctor: rank %d cannot gather the report (%s); its own results:\n",
                g.rank, ct_status_str(comm_st));
        fflush(stderr);
        print_table(mine, 1);
        free(mine);
        free(all);
        ct_comm_abort(1);
    }
    free(mine);
    free(all);
    ct_comm_finalize(&g);
    return fails ? 1 : 0;
}
