/* The nccl backend: device buffers over NCCL, one communicator per group.
 * Built only with NCCL (builds without it take nccl_none.c).
 *
 * The groups come in two layers. The process runtime (mpi, or local for one
 * process) builds its world, dp and tp groups first: they give the ranks,
 * the node-local rank and a host channel. The device is then local_rank %
 * device count, and over each host group rank 0 makes an NCCL unique id,
 * broadcasts it, and every rank joins the group's communicator. The host
 * group stays under the NCCL one for barrier, ct_comm_agree and
 * ct_comm_host. ct_comm_device_groups_init builds the same communicators
 * over host groups the caller keeps (its own ct_comm_init), on the device
 * the caller made current.
 *
 * Communicators are blocking (NCCL's default), so init and launches return
 * once the work is enqueued (or the connections it needs are up); the
 * front's watchdog bounds those calls. Completion on the device is
 * ct_comm_sync's: it polls the stream and ncclCommGetAsyncError and, on an
 * error or at the timeout, aborts every communicator of the process.
 * Launch errors from bad arguments are programmer errors and abort the job;
 * the others (system, remote, internal) are logged and return CT_ERR_COMM.
 * What is left out: ncclCommSplit (one id per group instead), nonblocking
 * communicators, buffer registration, bf16/fp16 reductions, and any
 * recovery after an abort (the job ends and restarts from a checkpoint). */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/comm_impl.h"
#include "core/log.h"

/* Programmer and device errors: abort the job naming the statement. */
#define CT_CHECK_NCCL(stmt)                                               \
    CT_CHECK_GEN(ncclResult_t, stmt, _rc == ncclSuccess, ncclGetErrorString(_rc))
#define CT_CHECK_CUDA(stmt)                                               \
    CT_CHECK_GEN(cudaError_t, stmt, _rc == cudaSuccess, cudaGetErrorString(_rc))

typedef struct {
    ct_comm_t base;  /* first: a ct_comm_t * is an nccl_comm_t * */
    ct_comm_t *host; /* the runtime's group over the same ranks */
    int owns_host;   /* ct_comm_init_backend's groups: yes; device groups: no */
    ncclComm_t comm; /* NULL once aborted */
} nccl_comm_t;

/* Every communicator of the process, so that a failure seen on one stream
 * aborts them all: a peer that is gone from one group is gone from all. */
#define NCCL_MAX_LIVE 8
static nccl_comm_t *live[NCCL_MAX_LIVE];

static void live_add(nccl_comm_t *n)
{
    for (int i = 0; i < NCCL_MAX_LIVE; i++)
        if (!live[i]) {
            live[i] = n;
            return;
        }
    CT_ASSERT(!"more live nccl communicators than NCCL_MAX_LIVE");
}

static void live_remove(nccl_comm_t *n)
{
    for (int i = 0; i < NCCL_MAX_LIVE; i++)
        if (live[i] == n) live[i] = NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ncclDataType_t nccl_type(ct_dtype_t dt)
{
    switch (dt) {
    case CT_DTYPE_F32: return ncclFloat32;
    case CT_DTYPE_F64: return ncclFloat64;
    case CT_DTYPE_I32: return ncclInt32;
    case CT_DTYPE_I64: return ncclInt64;
    }
    return ncclNumTypes;
}

/* ncclAvg is what the front promises for AVG: floats pre-multiplied by
 * 1/size, integers summed then divided (truncating). */
static ncclRedOp_t nccl_op(ct_op_t op)
{
    switch (op) {
    case CT_OP_SUM: return ncclSum;
    case CT_OP_AVG: return ncclAvg;
    case CT_OP_MAX: return ncclMax;
    case CT_OP_MIN: return ncclMin;
    }
    return ncclNumOps;
}

/* 0 without a driver or a device: cudaGetDeviceCount then fails, and the
 * (non-sticky) error is cleared. The error, if any, goes to *err_p. */
static int device_count(cudaError_t *err_p)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        n = 0;
    }
    if (err_p) *err_p = e;
    return n;
}

static int nccl_available(void) { return device_count(NULL) > 0; }

/* Logs a failed NCCL call once and maps it to CT_ERR_COMM. `doing`
 * overrides the caller's activity (NULL: use it). */
static CT_MUST_USE ct_status_t nccl_fail(const char *group, const char *call, ncclResult_t r,
                             const char *doing)
{
    char activity[256];
    if (doing)
        snprintf(activity, sizeof activity, "%s", doing);
    else
        ct__comm_activity(activity, sizeof activity);
    const char *last = ncclGetLastError(NULL);
    CT_LOG_ERROR("rank %d: %s on group %s failed: %s%s%s while %s\n---> HINT: rerun with "
                 "NCCL_DEBUG=WARN for NCCL's own account",
                 ct_log_rank(), call, group, ncclGetErrorString(r), last && *last ? ": " : "",
                 last ? last : "", activity);
    return CT_ERR_COMM;
}

/* A launch failed: bad arguments or usage are the caller's bug (host
 * buffers on a device group, a call inside a bracket it may not be in). */
static CT_MUST_USE ct_status_t launch_fail(const char *group, const char *call, ncclResult_t r,
                               const char *file, int line)
{
    if (r == ncclInvalidArgument || r == ncclInvalidUsage) {
        const char *last = ncclGetLastError(NULL);
        ct__fatal(file, line, call, "%s on group %s failed: %s: %s (nccl groups take device "
                  "buffers, see ct_comm_is_device)",
                  call, group, ncclGetErrorString(r), last ? last : "");
    }
    return nccl_fail(group, call, r, NULL);
}

static CT_MUST_USE ct_status_t aborted_fail(const nccl_comm_t *n, const char *call)
{
    CT_LOG_ERROR("rank %d: %s on group %s: its nccl communicator was aborted after an earlier "
                 "failure\n---> HINT: end the job with ct_comm_abort once ct_comm_sync fails",
                 ct_log_rank(), call, n->base.name);
    return CT_ERR_COMM;
}

/* Launches an NCCL collective on n; on failure returns from the caller. */
#define NCCL_TRY(n, call, args)                                           \
    do {                                                                  \
        if (!(n)->comm) return aborted_fail((n), #call);                  \
        ncclResult_t _r = call args;                                      \
        if (_r != ncclSuccess) return launch_fail((n)->base.name, #call, _r, __FILE__, __LINE__); \
    } while (0)

/* Aborts every live communicator (kernels waiting on a dead peer return). */
static void abort_all(void)
{
    for (int i = 0; i < NCCL_MAX_LIVE; i++) {
        nccl_comm_t *n = live[i];
        if (!n || !n->comm) continue;
        ncclResult_t r = ncclCommAbort(n->comm);
        if (r != ncclSuccess)
            CT_LOG_WARN("rank %d: ncclCommAbort on group %s: %s", ct_log_rank(), n->base.name,
                        ncclGetErrorString(r));
        n->comm = NULL;
    }
}

/* ---- groups ------------------------------------------------------------------ */

static void nccl_comm_free(ct_comm_t *c)
{
    nccl_comm_t *n = (nccl_comm_t *)c;
    live_remove(n);
    if (n->comm) {
        ncclResult_t r = ncclCommDestroy(n->comm);
        if (r != ncclSuccess)
            CT_LOG_WARN("rank %d: ncclCommDestroy on group %s: %s", ct_log_rank(), c->name,
                        ncclGetErrorString(r));
    }
    if (n->owns_host) n->host->be->comm_free(n->host);
    free(n);
}

/* The NCCL communicator over host group h (taken on success if `own`) on
 * the current device. Rank 0 broadcasts [ok, id] so that every rank fails
 * alike if it cannot make an id; the int32 words carry the id's bytes. */
static CT_MUST_USE ct_status_t nccl_comm_new(ct_comm_t *h, int own, ct_comm_t **c_p)
{
    const char *doing = "building the nccl communicators";
    int32_t msg[1 + (sizeof(ncclUniqueId) + 3) / 4];
    memset(msg, 0, sizeof msg);
    ct_status_t id_st = CT_OK; /* rank 0's; msg[0] = 0 tells the others */
    if (h->rank == 0) {
        ncclUniqueId id;
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r == ncclSuccess) {
            msg[0] = 1;
            memcpy(&msg[1], &id, sizeof id);
        } else {
            id_st = nccl_fail(h->name, "ncclGetUniqueId", r, doing);
        }
    }
    ct_status_t st = h->be->broadcast(h, msg, sizeof msg / sizeof msg[0], CT_DTYPE_I32, 0, NULL);
    if (st != CT_OK) return st;
    if (!msg[0]) {
        if (h->rank != 0)
            CT_LOG_ERROR("rank %d: rank 0 of group %s could not make an nccl unique id "
                         "(see its log)", ct_log_rank(), h->name);
        return id_st != CT_OK ? id_st : CT_ERR_COMM;
    }
    ncclUniqueId id;
    memcpy(&id, &msg[1], sizeof id);

    nccl_comm_t *n = calloc(1, sizeof *n);
    if (!n) {
        CT_LOG_ERROR("out of memory creating the process groups");
        return CT_ERR_NO_MEMORY;
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.commName = h->name; /* names the communicator in NCCL's own logs */
    ncclResult_t r = ncclCommInitRankConfig(&n->comm, h->size, id, h->rank, &config);
    if (r != ncclSuccess) {
        free(n);
        return nccl_fail(h->name, "ncclCommInitRankConfig", r, doing);
    }
    n->base.be = &ct__comm_nccl;
    n->base.name = h->name;
    n->base.rank = h->rank;
    n->base.size = h->size;
    n->host = h;
    n->owns_host = own;
    live_add(n);
    *c_p = &n->base;
    return CT_OK;
}

/* 0 (logged) without a usable device. */
static int usable_devices(void)
{
    cudaError_t ce;
    int ndev = device_count(&ce);
    if (ndev == 0)
        CT_LOG_ERROR("comm backend nccl needs a CUDA device, but this process sees none (%s)"
                     "\n---> HINT: run on a GPU node with the NVIDIA driver loaded, check "
                     "CUDA_VISIBLE_DEVICES, or use comm backend auto or mpi",
                     ce != cudaSuccess ? cudaGetErrorString(ce) : "0 devices");
    return ndev;
}

/* Communicators over hosts[0..3) into *outs[i], in the same order on every
 * rank. On failure frees those it built (and, if `own`, every host). */
static CT_MUST_USE ct_status_t comms_over(ct_comm_t *const hosts[3], ct_comm_t **const outs[3], int own)
{
    ct_status_t st = CT_OK;
    int built = 0;
    for (; built < 3; built++)
        if ((st = nccl_comm_new(hosts[built], own, outs[built])) != CT_OK) break;
    if (st == CT_OK) return CT_OK;
    for (int i = 0; i < built; i++) {
        nccl_comm_free(*outs[i]); /* with its host if owned */
        *outs[i] = NULL;
    }
    if (own)
        for (int i = built; i < 3; i++) hosts[i]->be->comm_free(hosts[i]);
    return st;
}

static CT_MUST_USE ct_status_t nccl_groups_init(ct_comm_groups_t *g)
{
    int ndev = usable_devices();
    if (ndev == 0) return CT_ERR_UNSUPPORTED;

    ct_comm_groups_t h = *g;
    ct_status_t st = ct__comm_runtime()->groups_init(&h);
    if (st != CT_OK) return st;
    ct_comm_t *const hosts[3] = {h.world, h.dp, h.tp};

    /* Ranks of a node take its devices in turn. More ranks than devices is
     * fine when each rank sees its own (CUDA_VISIBLE_DEVICES per rank);
     * otherwise NCCL refuses two ranks of a communicator on one device. */
    int dev = h.local_rank % ndev;
    cudaError_t ce = cudaSetDevice(dev);
    if (ce != cudaSuccess) {
        (void)cudaGetLastError();
        CT_LOG_ERROR("rank %d: cannot use cuda device %d of %d: %s\n---> HINT: check that the "
                     "device is not in exclusive-process mode and held by another job "
                     "(nvidia-smi)",
                     g->rank, dev, ndev, cudaGetErrorString(ce));
        for (int i = 0; i < 3; i++) hosts[i]->be->comm_free(hosts[i]);
        return CT_ERR_UNSUPPORTED;
    }
    CT_LOG_DEBUG("comm: rank %d (node-local %d of %d) uses cuda device %d of %d", g->rank,
                 h.local_rank, h.local_size, dev, ndev);

    ct_comm_t **const outs[3] = {&g->world, &g->dp, &g->tp};
    if ((st = comms_over(hosts, outs, 1)) != CT_OK) return st;
    g->local_rank = h.local_rank;
    g->local_size = h.local_size;
    g->node = h.node;
    g->nodes = h.nodes;
    g->device = dev;
    return CT_OK;
}

/* Device groups over the caller's host groups, on the current device. */
static CT_MUST_USE ct_status_t nccl_groups_over(const ct_comm_groups_t *host, ct_comm_groups_t *g)
{
    int ndev = usable_devices();
    if (ndev == 0) return CT_ERR_UNSUPPORTED;
    int dev = host->device;
    if (dev >= 0) { /* the caller names the device */
        cudaError_t ce = dev < ndev ? cudaSetDevice(dev) : cudaErrorInvalidDevice;
        if (ce != cudaSuccess) {
            (void)cudaGetLastError();
            CT_LOG_ERROR("rank %d: cannot use cuda device %d of %d: %s\n---> HINT: check "
                         "CUDA_VISIBLE_DEVICES and that the device is not in exclusive-process "
                         "mode and held by another job (nvidia-smi)",
                         host->rank, dev, ndev, cudaGetErrorString(ce));
            return CT_ERR_UNSUPPORTED;
        }
    }
    CT_CHECK_CUDA(cudaGetDevice(&dev));
    ct_comm_t *const hosts[3] = {host->world, host->dp, host->tp};
    ct_comm_t **const outs[3] = {&g->world, &g->dp, &g->tp};
    ct_status_t st = comms_over(hosts, outs, 0);
    if (st != CT_OK) return st;
    g->device = dev;
    return CT_OK;
}

static ct_comm_t *nccl_host(ct_comm_t *c) { return ((nccl_comm_t *)c)->host; }

/* ---- collectives ----------------------------------------------------------- */

/* A reduction over one rank is the identity for every op and dtype: copy
 * (nothing in place). NCCL's own one-rank path is not exact: on an H200
 * (NCCL from the nvidia-nccl-cu13 wheel) an out-of-place ncclAvg of
 * 1000003 float64 values returned wrong elements while in place was right,
 * and a plain copy is also the fastest path. An aborted communicator still
 * fails as every other call does. */
static CT_MUST_USE ct_status_t one_rank_copy(nccl_comm_t *n, const void *sendbuf, void *recvbuf, size_t count,
                                 ct_dtype_t dt, void *stream)
{
    if (!n->comm) return aborted_fail(n, "reduction");
    if (sendbuf != recvbuf && count > 0)
        CT_CHECK_CUDA(cudaMemcpyAsync(recvbuf, sendbuf, count * ct__comm_dtype_size(dt),
                                      cudaMemcpyDefault, (cudaStream_t)stream));
    return CT_OK;
}

static CT_MUST_USE ct_status_t nccl_allreduce(ct_comm_t *c, const void *sendbuf, void *recvbuf, size_t count,
                                  ct_dtype_t dt, ct_op_t op, void *stream)
{
    nccl_comm_t *n = (nccl_comm_t *)c;
    if (c->size == 1) return one_rank_copy(n, sendbuf, recvbuf, count, dt, stream);
    NCCL_TRY(n, ncclAllReduce,
             (sendbuf, recvbuf, count, nccl_type(dt), nccl_op(op), n->comm, (cudaStream_t)stream));
    return CT_OK;
}

/* NCCL's in-place rules are the front's: recvbuf == sendbuf + rank*recvcount. */
static CT_MUST_USE ct_status_t nccl_reduce_scatter(ct_comm_t *c, const void *sendbuf, void *recvbuf,
                                       size_t recvcount, ct_dtype_t dt, ct_op_t op, void *stream)
{
    nccl_comm_t *n = (nccl_comm_t *)c;
    if (c->size == 1) return one_rank_copy(n, sendbuf, recvbuf, recvcount, dt, stream);
    NCCL_TRY(n, ncclReduceScatter, (sendbuf, recvbuf, recvcount, nccl_type(dt), nccl_op(op),
                                    n->comm, (cudaStream_t)stream));
    return CT_OK;
}

static CT_MUST_USE ct_status_t nccl_allgather(ct_comm_t *c, const void *sendbuf, void *recvbuf,
                                  size_t sendcount, ct_dtype_t dt, void *stream)
{
    nccl_comm_t *n = (nccl_comm_t *)c;
    NCCL_TRY(n, ncclAllGather,
             (sendbuf, recvbuf, sendcount, nccl_type(dt), n->comm, (cudaStream_t)stream));
    return CT_OK;
}

static CT_MUST_USE ct_status_t nccl_broadcast(ct_comm_t *c, void *buf, size_t count, ct_dtype_t dt, int root,
                                  void *stream)
{
    nccl_comm_t *n = (nccl_comm_t *)c;
    NCCL_TRY(n, ncclBroadcast,
             (buf, buf, count, nccl_type(dt), root, n->comm, (cudaStream_t)stream));
    return CT_OK;
}

/* Host-side, over the runtime's group: orders no device work. */
static CT_MUST_USE ct_status_t nccl_barrier(ct_comm_t *c)
{
    ct_comm_t *h = nccl_host(c);
    return h->be->barrier(h);
}

static void nccl_group_begin(void) { CT_CHECK_NCCL(ncclGroupStart()); }

static CT_MUST_USE ct_status_t nccl_group_end(void)
{
    ncclResult_t r = ncclGroupEnd();
    if (r != ncclSuccess) return launch_fail("(bracket)", "ncclGroupEnd", r, __FILE__, __LINE__);
    return CT_OK;
}

/* Polls, sleeping 10 us at first and doubling up to 1 ms, so that a short
 * wait costs little latency and a long one little CPU. */
static CT_MUST_USE ct_status_t nccl_sync(ct_comm_t *c, void *stream, double timeout_s)
{
    nccl_comm_t *n = (nccl_comm_t *)c;
    if (!n->comm) return aborted_fail(n, "sync");
    double t0 = now_s();
    long nap_ns = 10 * 1000;
    for (;;) {
        cudaError_t e = cudaStreamQuery((cudaStream_t)stream);
        if (e != cudaSuccess && e != cudaErrorNotReady) /* e.g. a kernel faulted */
            ct__fatal(__FILE__, __LINE__, __func__, "cudaStreamQuery on the stream of group %s "
                      "failed: %s", c->name, cudaGetErrorString(e));

        /* Checked after the stream is done too: a communicator that failed
         * (a peer's network error) ends its kernels early, results unmade. */
        for (int i = 0; i < NCCL_MAX_LIVE; i++) {
            if (!live[i] || !live[i]->comm) continue;
            ncclResult_t ae = ncclSuccess;
            CT_CHECK_NCCL(ncclCommGetAsyncError(live[i]->comm, &ae));
            if (ae == ncclSuccess || ae == ncclInProgress) continue;
            char activity[256];
            ct__comm_activity(activity, sizeof activity);
            const char *last = ncclGetLastError(live[i]->comm);
            CT_LOG_ERROR("rank %d: the nccl communicator of group %s failed: %s%s%s (seen in "
                         "ct_comm_sync on group %s) while %s; aborting the nccl communicators"
                         "\n---> HINT: a peer rank failed or died; check the other ranks' logs",
                         ct_log_rank(), live[i]->base.name, ncclGetErrorString(ae),
                         last && *last ? ": " : "", last ? last : "", c->name, activity);
            abort_all();
            return CT_ERR_COMM;
        }
        if (e == cudaSuccess) return CT_OK;

        double waited = now_s() - t0;
        if (timeout_s > 0 && waited > timeout_s) {
            char activity[256], who[768];
            ct__comm_activity(activity, sizeof activity);
            /* The front marked this wait as one on everything issued. */
            ct__comm_state_t self;
            ct__comm_state(&self);
            ct__comm_sc_blame(&self, who, sizeof who);
            CT_LOG_ERROR("rank %d: the work on group %s's stream has not completed after %.0f s "
                         "while %s; %s; aborting the nccl communicators\n---> HINT: check the "
                         "named rank's log and host; raise comm.timeout_s if the step is "
                         "legitimately slow",
                         ct_log_rank(), c->name, waited, activity, who);
            ct__comm_sc_log_details();
            abort_all();
            return CT_ERR_COMM;
        }
        struct timespec ts = {0, nap_ns};
        nanosleep(&ts, NULL);
        if (nap_ns < 1000 * 1000) nap_ns *= 2;
    }
}

/* ---- device memory for the self-test ---------------------------------------- */
static CT_MUST_USE ct_status_t nccl_mem_alloc(size_t bytes, void **p)
{
    cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaSuccess) return CT_OK;
    (void)cudaGetLastError();
    CT_LOG_ERROR("rank %d: cannot allocate %zu bytes of device memory: %s", ct_log_rank(), bytes,
                 cudaGetErrorString(e));
    return CT_ERR_NO_MEMORY;
}

static void nccl_mem_free(void *p) { CT_CHECK_CUDA(cudaFree(p)); }

static void nccl_mem_copy(void *dst, const void *src, size_t bytes)
{
    CT_CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, (cudaStream_t)0));
    CT_CHECK_CUDA(cudaStreamSynchronize((cudaStream_t)0));
}

const ct__comm_backend_t ct__comm_nccl = {
    .name = "nccl",
    /* start/stop/abort: the runtime (mpi or local) owns the process. */
    .groups_init = nccl_groups_init,
    .groups_over = nccl_groups_over,
    .comm_free = nccl_comm_free,
    .allreduce = nccl_allreduce,
    .reduce_scatter = nccl_reduce_scatter,
    .allgather = nccl_allgather,
    .broadcast = nccl_broadcast,
    .barrier = nccl_barrier,
    .is_device = 1,
    .available = nccl_available,
    .sync = nccl_sync,
    .group_begin = nccl_group_begin,
    .group_end = nccl_group_end,
    .mem_alloc = nccl_mem_alloc,
    .mem_free = nccl_mem_free,
    .mem_copy = nccl_mem_copy,
    .host = nccl_host,
};
