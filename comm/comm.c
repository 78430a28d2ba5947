/* The common front of comm/: backend choice, group setup, argument checks,
 * and the watchdog that ends a process whose collective hangs.
 *
 * The watchdog is one pthread per process. Each collective records (op,
 * group, start time) before it runs and clears it after; the thread wakes
 * about ten times per timeout period and, if a collective has run longer
 * than the timeout, logs one line and _exits. It never calls MPI: it cannot
 * know whether the MPI library is in a state where a call would return.
 * nccl collectives only enqueue, so the watchdog sees short calls (it still
 * bounds a launch that blocks on connection setup); ct_comm_sync is where
 * their timeout bites: the backend aborts its communicators and returns,
 * and the watchdog stands behind it, firing one timeout later if that
 * abort itself hangs.
 * The front also numbers the collectives per group and keeps what this rank
 * is inside, for sidechannel.c, which names the rank a timed-out collective
 * waits for. The watchdog ticks at least every 0.5 s; a longer gap means
 * the process was stopped, and that time is not counted against the
 * timeout.
 * What is left out: per-group timeouts, and recovery (a timed-out job is
 * restarted from its last checkpoint by whoever launched it). */
#include "comm/comm_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

/* The backend table: the one place that knows which backends were built.
 * ct__comm_nccl is always there: CMake builds nccl.c with NCCL and
 * nccl_none.c (an unavailable slot) without. */
static const ct__comm_backend_t *const backends[] = {
    [CT_COMM_LOCAL] = &ct__comm_local,
#ifdef CT_HAVE_MPI
    [CT_COMM_MPI] = &ct__comm_mpi,
#endif
    [CT_COMM_NCCL] = &ct__comm_nccl,
};
#ifdef CT_HAVE_MPI
static const ct__comm_backend_t *const runtime = &ct__comm_mpi;
#else
static const ct__comm_backend_t *const runtime = &ct__comm_local;
#endif

static const char *const backend_names[] = {"local", "mpi", "nccl", "auto"};

#define CT__COMM_DEFAULT_CHUNK ((size_t)1 << 30)
size_t ct__comm_max_chunk = CT__COMM_DEFAULT_CHUNK;
size_t ct__comm_piece_bytes = (size_t)8 << 20;

static int runtime_up;   /* runtime->start succeeded and stop has not run */
static int groups_live;  /* a ct_comm_init succeeded and was not finalized */
static const ct__comm_backend_t *live_be; /* its backend, for group begin/end */
static double live_timeout_s;             /* its timeout, for ct_comm_sync */
static const ct__comm_backend_t *device_be; /* live ct_comm_device_groups_init's */
static int group_depth;                   /* open ct_comm_group_begin brackets */
static const ct__comm_backend_t *group_be; /* the one bracketed: device_be, else live_be */

const ct__comm_backend_t *ct__comm_runtime(void) { return runtime; }

/* ---- watchdog ------------------------------------------------------------ */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled to stop the thread */
    pthread_t thread;
    int running, stop;
    double timeout_s;
    int busy;          /* a collective is in flight */
    int firing;        /* the watchdog is reporting; no collective may start */
    int reported;      /* it has logged its report */
    const char *op, *group;
    int slot;          /* busy's group (CT__SLOT_*), CT__SLOT_ALL or -1 */
    uint64_t seq[CT__NSLOTS]; /* collectives entered per group */
    double t0, grace;  /* fires once it has run timeout_s + grace */
    double suspended;  /* of busy's time, how long the process was stopped */
    char activity[256];
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER, .slot = -1};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ct_comm_set_activity(const char *fmt, ...)
{
    char buf[sizeof wd.activity];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&wd.mu);
    memcpy(wd.activity, buf, sizeof buf);
    pthread_mutex_unlock(&wd.mu);
}

void ct__comm_activity(char *buf, size_t size)
{
    pthread_mutex_lock(&wd.mu);
    snprintf(buf, size, "%s", wd.activity[0] ? wd.activity : "(activity not set)");
    pthread_mutex_unlock(&wd.mu);
}

/* With wd.mu held. */
static void state_locked(ct__comm_state_t *s, double t)
{
    memset(s, 0, sizeof *s);
    memcpy(s->seq, wd.seq, sizeof s->seq);
    s->inside = wd.busy;
    s->slot = wd.busy ? wd.slot : -1;
    s->reported = wd.reported;
    s->waited_s = wd.busy ? t - wd.t0 + wd.suspended : 0;
    s->suspended_s = wd.busy ? wd.suspended : 0;
    snprintf(s->op, sizeof s->op, "%s", wd.busy && wd.op ? wd.op : "");
    snprintf(s->activity, sizeof s->activity, "%s", wd.activity);
}

void ct__comm_state(ct__comm_state_t *s)
{
    double t = now_s();
    pthread_mutex_lock(&wd.mu);
    state_locked(s, t);
    pthread_mutex_unlock(&wd.mu);
}

static int slot_of(const char *group)
{
    if (!strcmp(group, "world")) return CT__SLOT_WORLD;
    if (!strcmp(group, "dp")) return CT__SLOT_DP;
    if (!strcmp(group, "tp")) return CT__SLOT_TP;
    return -1;
}

/* A collective (or a wait) starts. slot: the group whose count it takes
 * (counted), CT__SLOT_ALL for a wait on everything issued, or -1. grace > 0
 * delays the watchdog for calls that enforce the timeout themselves
 * (ct_comm_sync). */
static void wd_enter_grace(const char *op, const char *group, int slot, double grace)
{
    if (!wd.running) return;
    double t = now_s();
    pthread_mutex_lock(&wd.mu);
    while (wd.firing) pthread_cond_wait(&wd.cv, &wd.mu); /* until the watchdog _exits */
    if (slot >= 0 && slot < CT__NSLOTS) wd.seq[slot]++;
    wd.op = op;
    wd.group = group;
    wd.slot = slot;
    wd.t0 = t;
    wd.grace = grace;
    wd.suspended = 0;
    wd.busy = 1;
    pthread_mutex_unlock(&wd.mu);
}

/* A collective on group c. */
static void wd_enter(const char *op, const ct_comm_t *c)
{
    wd_enter_grace(op, c->name, slot_of(c->name), 0);
}

static void wd_leave(void)
{
    if (!wd.running) return;
    pthread_mutex_lock(&wd.mu);
    wd.busy = 0;
    pthread_mutex_unlock(&wd.mu);
}

/* The collective has run past the timeout: name who holds it up, on every
 * rank that times out, then end the process. Called with wd.mu held; drops
 * it while it asks the peers, so that this rank's responder can answer
 * theirs, and keeps collectives from starting meanwhile (wd.firing). */
static _Noreturn void wd_fire(double t)
{
    ct__comm_state_t self;
    state_locked(&self, t);
    char group[32], activity[sizeof wd.activity];
    snprintf(group, sizeof group, "%s", wd.group);
    snprintf(activity, sizeof activity, "%s", wd.activity[0] ? wd.activity : "(activity not set)");
    wd.firing = 1;
    pthread_mutex_unlock(&wd.mu);

    char what[160], who[768];
    if (self.slot >= 0 && self.slot < CT__NSLOTS)
        snprintf(what, sizeof what, "collective #%llu (%s on group %s)",
                 (unsigned long long)self.seq[self.slot], self.op, group);
    else
        snprintf(what, sizeof what, "collective %s on group %s", self.op, group);
    if (self.suspended_s > 0) {
        /* This process was stopped during the wait, which is not counted;
         * its peers, which were not, most likely timed out and left. */
        snprintf(who, sizeof who, "this rank was suspended for %.1f s during it (SIGSTOP, a "
                 "debugger or a paused machine), so its peers probably timed out while it was "
                 "stopped; no peer is blamed", self.suspended_s);
    } else {
        ct__comm_sc_blame(&self, who, sizeof who);
    }
    CT_LOG_ERROR("rank %d: %s has not completed after %.0f s while %s; %s\n---> HINT: check the "
                 "named rank's log and host (a stopped or swapping process, a stuck file system, "
                 "a debugger); raise comm.timeout_s if the step is legitimately slow",
                 ct_log_rank(), what, self.waited_s, activity, who);
    ct__comm_sc_log_details();
    fflush(stderr);
    pthread_mutex_lock(&wd.mu);
    wd.reported = 1;
    pthread_mutex_unlock(&wd.mu);
    /* The launcher kills the job when the first rank exits: give the
     * others that wait a moment to report too. */
    ct__comm_sc_linger(3.0);
    _exit(CT_COMM_EXIT_TIMEOUT);
}

/* A gap between two ticks beyond this (seconds past the period) means the
 * process was not running: stopped (SIGSTOP, a debugger) or the machine
 * paused. CLOCK_MONOTONIC runs on while a process is stopped. */
#define WD_SUSPENDED_S 1.0

static void *wd_main(void *arg)
{
    /* At most 0.5 s, so that a suspension is measured to within that. */
    double period = wd.timeout_s / 10;
    if (period < 0.01) period = 0.01;
    if (period > 0.5) period = 0.5;
    double last = now_s();
    pthread_mutex_lock(&wd.mu);
    while (!wd.stop) {
        struct timespec ts;
        double wake = now_s() + period;
        ts.tv_sec = (time_t)wake;
        ts.tv_nsec = (long)((wake - (double)ts.tv_sec) * 1e9);
        while (!wd.stop && pthread_cond_timedwait(&wd.cv, &wd.mu, &ts) != ETIMEDOUT) {
        }
        double t = now_s(), lost = t - last - period;
        last = t;
        if (lost > WD_SUSPENDED_S) {
            /* The time this rank was stopped does not count against its
             * own collective: its peers waited, not it. */
            if (wd.busy) {
                wd.t0 += lost;
                wd.suspended += lost;
                CT_LOG_WARN("rank %d: this rank was suspended for %.1f s (SIGSTOP, a debugger or "
                            "a paused machine) while in collective %s on group %s; that time does "
                            "not count against comm.timeout_s, but peers that waited for it may "
                            "have timed out",
                            ct_log_rank(), lost, wd.op, wd.group);
            } else {
                CT_LOG_WARN("rank %d: this rank was suspended for %.1f s (SIGSTOP, a debugger or "
                            "a paused machine); peers that waited for it in a collective may have "
                            "timed out",
                            ct_log_rank(), lost);
            }
        }
        if (wd.stop || !wd.busy) continue;
        if (t - wd.t0 <= wd.timeout_s + wd.grace) continue;
        wd_fire(t);
    }
    pthread_mutex_unlock(&wd.mu);
    return NULL;
}

static CT_MUST_USE ct_status_t wd_start(double timeout_s)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd.cv, &ca);
    pthread_condattr_destroy(&ca);
    wd.timeout_s = timeout_s;
    wd.stop = 0;
    wd.busy = 0;
    wd.firing = wd.reported = 0;
    memset(wd.seq, 0, sizeof wd.seq);
    int rc = pthread_create(&wd.thread, NULL, wd_main, NULL);
    if (rc != 0) {
        CT_LOG_ERROR("cannot start the comm watchdog thread: %s", strerror(rc));
        pthread_cond_destroy(&wd.cv);
        return CT_ERR_NO_MEMORY;
    }
    wd.running = 1;
    return CT_OK;
}

static void wd_stop(void)
{
    if (!wd.running) return;
    pthread_mutex_lock(&wd.mu);
    wd.stop = 1;
    pthread_cond_signal(&wd.cv);
    pthread_mutex_unlock(&wd.mu);
    pthread_join(wd.thread, NULL);
    pthread_cond_destroy(&wd.cv);
    wd.running = 0;
}

/* ---- setup --------------------------------------------------------------- */

int ct_comm_backend_available(ct_comm_backend_t b)
{
    if (b == CT_COMM_AUTO) return 1;
    if ((int)b < 0 || (int)b >= (int)(sizeof backends / sizeof backends[0])) return 0;
    const ct__comm_backend_t *be = backends[b];
    return be != NULL && be->groups_init != NULL && be->allreduce != NULL &&
           (be->available == NULL || be->available());
}

const char *ct_comm_backend_name(ct_comm_backend_t b)
{
    if ((int)b < 0 || (int)b >= (int)(sizeof backend_names / sizeof backend_names[0])) return "?";
    return backend_names[b];
}

static void abort_hook(int code) { runtime->abort(code); }

_Noreturn void ct_comm_abort(int code)
{
    fflush(stdout);
    fflush(stderr);
    runtime->abort(code); /* returns only when no runtime is up */
    exit(code);
}

static void groups_free(ct_comm_groups_t *g)
{
    ct_comm_t *cs[3] = {g->world, g->dp, g->tp};
    for (int i = 0; i < 3; i++)
        if (cs[i]) cs[i]->be->comm_free(cs[i]);
    g->world = g->dp = g->tp = NULL;
}

ct_status_t ct_comm_init_backend(ct_comm_backend_t backend, int dp, int tp, double timeout_s,
                                 ct_comm_groups_t *g_p)
{
    CT_ASSERT(g_p != NULL);
    CT_ASSERT(!groups_live); /* one ct_comm_init at a time */
    if ((int)backend < 0 || backend > CT_COMM_AUTO) {
        CT_LOG_ERROR("unknown comm backend %d", (int)backend);
        return CT_ERR_INVALID_ARG;
    }
    if (backend == CT_COMM_MPI && !backends[CT_COMM_MPI]) {
        CT_LOG_ERROR("comm backend mpi is not in this build\n---> HINT: install an MPI "
                     "(libopenmpi-dev) and configure with -DCT_MPI=ON");
        return CT_ERR_UNSUPPORTED;
    }
    if (dp < 0 || tp < 1) {
        CT_LOG_ERROR("parallel.dp must be at least 1 (or 0 for the whole world) and parallel.tp "
                     "at least 1, got dp %d, tp %d",
                     dp, tp);
        return CT_ERR_CONFIG;
    }

    /* The runtime comes up once; later calls (a retry) only ask it. */
    int rank = 0, world = 1;
    ct_status_t st = runtime->start(&rank, &world);
    if (st != CT_OK) return st;
    if (!runtime_up) {
        runtime_up = 1;
        if (runtime != &ct__comm_local) ct_log_set_abort_hook(abort_hook);
    }
    ct_log_set_rank(rank, world);

    if (dp == 0) {
        if (world % tp != 0) {
            CT_LOG_ERROR("world size %d is not a multiple of parallel.tp %d\n---> HINT: run with "
                         "mpirun -np N where N is a multiple of %d, or change parallel.tp",
                         world, tp, tp);
            return CT_ERR_CONFIG;
        }
        dp = world / tp;
    }
    if ((long)dp * tp != world) {
        CT_LOG_ERROR("world size %d does not match parallel.dp %d x parallel.tp %d = %ld"
                     "\n---> HINT: run with mpirun -np %ld or set parallel.dp/tp so that "
                     "dp*tp = %d",
                     world, dp, tp, (long)dp * tp, (long)dp * tp, world);
        return CT_ERR_CONFIG;
    }

    /* Without MPI the world is 1, so auto never picks a missing backend. */
    if (backend == CT_COMM_AUTO) backend = world == 1 ? CT_COMM_LOCAL : CT_COMM_MPI;
    const ct__comm_backend_t *be = backends[backend];
    if (be == &ct__comm_local && world > 1) {
        CT_LOG_ERROR("comm backend local serves one process, but this is rank %d of %d"
                     "\n---> HINT: use comm backend auto or mpi",
                     rank, world);
        return CT_ERR_CONFIG;
    }

    ct_comm_groups_t g = {
        .rank = rank,
        .world_size = world,
        .dp_rank = rank / tp,
        .dp_size = dp,
        .tp_rank = rank % tp,
        .tp_size = tp,
        .local_rank = 0,
        .local_size = 1,
        .node = 0,
        .nodes = 1,
        .backend = backend,
        .device = -1,
    };
    /* The watchdog also covers the group setup: a communicator split waits
     * for every rank. The local backend has no peers to wait for. */
    if (be != &ct__comm_local && timeout_s > 0) {
        st = wd_start(timeout_s);
        if (st != CT_OK) return st;
    }
    wd_enter_grace("init", "world", -1, 0);
    st = be->groups_init(&g);
    wd_leave();
    if (st != CT_OK) {
        wd_stop();
        return st;
    }
    /* The side channel that names a hung rank serves the watchdog. */
    if (wd.running && world > 1) {
        st = ct__comm_sc_init(&g);
        if (st != CT_OK) {
            groups_free(&g);
            wd_stop();
            return st;
        }
    }
    CT_ASSERT(g.world && g.dp && g.tp);
    CT_ASSERT(g.world->size == world && g.world->rank == rank);
    CT_ASSERT(g.dp->size == dp && g.dp->rank == g.dp_rank);
    CT_ASSERT(g.tp->size == tp && g.tp->rank == g.tp_rank);

    groups_live = 1;
    live_be = be;
    live_timeout_s = timeout_s;
    *g_p = g;
    if (world == 1 && be == &ct__comm_local)
        CT_LOG_DEBUG("comm: backend local, one process");
    else if (wd.running)
        CT_LOG_INFO_R0("comm: backend %s, world %d = dp %d x tp %d, %d per node on %d node%s, "
                       "timeout %g s", be->name, world, dp, tp, g.local_size, g.nodes,
                       g.nodes == 1 ? "" : "s", timeout_s);
    else
        CT_LOG_INFO_R0("comm: backend %s, world %d = dp %d x tp %d, %d per node on %d node%s, "
                       "no timeout", be->name, world, dp, tp, g.local_size, g.nodes,
                       g.nodes == 1 ? "" : "s");
    return CT_OK;
}

ct_status_t ct_comm_init(int dp, int tp, double timeout_s, ct_comm_groups_t *g_p)
{
    return ct_comm_init_backend(CT_COMM_AUTO, dp, tp, timeout_s, g_p);
}

ct_status_t ct_comm_device_groups_init(const ct_comm_groups_t *g, ct_comm_groups_t *dev_p)
{
    CT_ASSERT(g != NULL && dev_p != NULL);
    CT_ASSERT(groups_live && g->world && !g->world->be->is_device); /* ct_comm_init's groups */
    CT_ASSERT(device_be == NULL); /* one set at a time */
    const ct__comm_backend_t *be = backends[CT_COMM_NCCL];
    ct_comm_groups_t d = *g;
    d.backend = CT_COMM_NCCL;
    wd_enter_grace("init", "world", -1, 0);
    ct_status_t st = be->groups_over(g, &d);
    wd_leave();
    if (st != CT_OK) return st;
    CT_ASSERT(d.world && d.dp && d.tp);
    device_be = be;
    *dev_p = d;
    CT_LOG_INFO_R0("comm: nccl device groups, world %d = dp %d x tp %d", d.world_size, d.dp_size,
                   d.tp_size);
    return CT_OK;
}

void ct_comm_device_groups_free(ct_comm_groups_t *dev)
{
    if (!dev || !dev->world) return;
    groups_free(dev);
    memset(dev, 0, sizeof *dev);
    device_be = NULL;
}

void ct_comm_finalize(ct_comm_groups_t *g)
{
    if (!g) return;
    wd_stop();
    ct__comm_sc_free();
    groups_free(g);
    memset(g, 0, sizeof *g);
    groups_live = 0;
    live_be = NULL;
    if (runtime_up) {
        ct_log_set_abort_hook(NULL);
        runtime->stop();
        runtime_up = 0;
    }
}

ct_status_t ct_comm_split(ct_comm_t *c, int color, int key, const char *name, ct_comm_t **c_p)
{
    CT_ASSERT(c != NULL && name != NULL && c_p != NULL && color >= 0);
    if (!c->be->split) {
        CT_LOG_ERROR("rank %d: group %s (backend %s) cannot be split into group %s\n---> HINT: "
                     "split its host group (ct_comm_host)", ct_log_rank(), c->name, c->be->name,
                     name);
        return CT_ERR_UNSUPPORTED;
    }
    ct_comm_t *out = NULL;
    wd_enter("split", c);
    ct_status_t st = c->be->split(c, color, key, name, &out);
    wd_leave();
    if (st != CT_OK) return st;
    *c_p = out;
    return CT_OK;
}

void ct_comm_free(ct_comm_t *c)
{
    if (c) c->be->comm_free(c);
}

/* ---- collectives ----------------------------------------------------------- */

int ct_comm_rank(const ct_comm_t *c) { return c->rank; }
int ct_comm_size(const ct_comm_t *c) { return c->size; }
const char *ct_comm_name(const ct_comm_t *c) { return c->name; }
int ct_comm_is_device(const ct_comm_t *c) { return c->be->is_device; }

ct_comm_t *ct_comm_host(ct_comm_t *c)
{
    CT_ASSERT(c != NULL && c->be != NULL);
    return c->be->host ? c->be->host(c) : c;
}

size_t ct__comm_dtype_size(ct_dtype_t dt)
{
    switch (dt) {
    case CT_DTYPE_F32: return 4;
    case CT_DTYPE_F64: return 8;
    case CT_DTYPE_I32: return 4;
    case CT_DTYPE_I64: return 8;
    }
    return 0;
}

void ct__comm_scale(void *buf, size_t count, ct_dtype_t dt, int n)
{
    if (n == 1) return;
    switch (dt) {
    /* Floats multiply by 1/n, as NCCL's ncclAvg does: exact for n a power
     * of two, within an ulp of x/n otherwise, and several times cheaper. */
    case CT_DTYPE_F32: {
        float *x = buf, r = 1.0f / (float)n;
        for (size_t i = 0; i < count; i++) x[i] *= r;
        break;
    }
    case CT_DTYPE_F64: {
        double *x = buf, r = 1.0 / (double)n;
        for (size_t i = 0; i < count; i++) x[i] *= r;
        break;
    }
    case CT_DTYPE_I32: {
        int32_t *x = buf;
        for (size_t i = 0; i < count; i++) x[i] /= n;
        break;
    }
    case CT_DTYPE_I64: {
        int64_t *x = buf;
        for (size_t i = 0; i < count; i++) x[i] /= n;
        break;
    }
    }
}

void ct__comm_set_max_chunk(size_t elems)
{
    CT_ASSERT(elems <= CT__COMM_DEFAULT_CHUNK);
    ct__comm_max_chunk = elems ? elems : CT__COMM_DEFAULT_CHUNK;
}

#define CHECK_ARGS(c, dt)                                                 \
    do {                                                                  \
        CT_ASSERT((c) != NULL && (c)->be != NULL);                        \
        CT_ASSERT((unsigned)(dt) <= CT_DTYPE_I64);                        \
    } while (0)

ct_status_t ct_comm_allreduce(ct_comm_t *c, const void *sendbuf, void *recvbuf, size_t count,
                              ct_dtype_t dt, ct_op_t op, void *stream)
{
    CHECK_ARGS(c, dt);
    CT_ASSERT((unsigned)op <= CT_OP_MIN);
    if (count == 0) return CT_OK;
    CT_ASSERT(sendbuf && recvbuf);
    wd_enter("allreduce", c);
    ct_status_t st = c->be->allreduce(c, sendbuf, recvbuf, count, dt, op, stream);
    wd_leave();
    return st;
}

ct_status_t ct_comm_reduce_scatter(ct_comm_t *c, const void *sendbuf, void *recvbuf,
                                   size_t recvcount, ct_dtype_t dt, ct_op_t op, void *stream)
{
    CHECK_ARGS(c, dt);
    CT_ASSERT((unsigned)op <= CT_OP_MIN);
    if (recvcount == 0) return CT_OK;
    CT_ASSERT(sendbuf && recvbuf);
    wd_enter("reduce_scatter", c);
    ct_status_t st = c->be->reduce_scatter(c, sendbuf, recvbuf, recvcount, dt, op, stream);
    wd_leave();
    return st;
}

ct_status_t ct_comm_allgather(ct_comm_t *c, const void *sendbuf, void *recvbuf, size_t sendcount,
                              ct_dtype_t dt, void *stream)
{
    CHECK_ARGS(c, dt);
    if (sendcount == 0) return CT_OK;
    CT_ASSERT(sendbuf && recvbuf);
    wd_enter("allgather", c);
    ct_status_t st = c->be->allgather(c, sendbuf, recvbuf, sendcount, dt, stream);
    wd_leave();
    return st;
}

ct_status_t ct_comm_broadcast(ct_comm_t *c, void *buf, size_t count, ct_dtype_t dt, int root,
                              void *stream)
{
    CHECK_ARGS(c, dt);
    CT_ASSERT(root >= 0 && root < c->size);
    if (count == 0) return CT_OK;
    CT_ASSERT(buf != NULL);
    wd_enter("broadcast", c);
    ct_status_t st = c->be->broadcast(c, buf, count, dt, root, stream);
    wd_leave();
    return st;
}

ct_status_t ct_comm_barrier(ct_comm_t *c)
{
    CT_ASSERT(c != NULL && c->be != NULL);
    CT_ASSERT(group_depth == 0); /* it would wait for collectives not yet launched */
    wd_enter("barrier", c);
    ct_status_t st = c->be->barrier(c);
    wd_leave();
    return st;
}

ct_status_t ct_comm_agree(ct_comm_t *c, ct_status_t st)
{
    if (!c || ct_comm_size(c) == 1) return st;
    int64_t v = st;
    if (ct_comm_allreduce(ct_comm_host(c), &v, &v, 1, CT_DTYPE_I64, CT_OP_MAX, NULL) != CT_OK)
        return CT_ERR_COMM;
    return (ct_status_t)v;
}

ct_status_t ct_comm_sync(ct_comm_t *c, void *stream)
{
    CT_ASSERT(c != NULL && c->be != NULL);
    CT_ASSERT(group_depth == 0); /* the bracket's collectives are not launched yet */
    if (!c->be->sync) return CT_OK;
    wd_enter_grace("sync", c->name, CT__SLOT_ALL, live_timeout_s);
    ct_status_t st = c->be->sync(c, stream, live_timeout_s);
    wd_leave();
    return st;
}

ct_status_t ct_comm_selftest_allreduce(ct_comm_t *c, size_t count, int iters,
                                       ct_comm_selftest_t *res_p)
{
    CT_ASSERT(c != NULL && c->be != NULL && count > 0 && iters >= 0 && res_p != NULL);
    const ct__comm_backend_t *be = c->be;
    const int dev = be->is_device;
    CT_ASSERT(!dev || (be->mem_alloc && be->mem_free && be->mem_copy));
    const size_t bytes = count * sizeof(float);
    float *host = malloc(bytes);
    void *send = NULL, *recv = NULL;
    ct_status_t st = CT_OK;
    if (!host) {
        CT_LOG_ERROR("rank %d: out of memory for the %zu-byte all-reduce self-test of group %s",
                     ct_log_rank(), bytes, c->name);
        return CT_ERR_NO_MEMORY;
    }
    const int k = c->rank;
    for (size_t i = 0; i < count; i++) host[i] = (float)(k + 1) * (float)(i % 7 + 1);
    if (dev) {
        if ((st = be->mem_alloc(bytes, &send)) != CT_OK) goto out;
        if ((st = be->mem_alloc(bytes, &recv)) != CT_OK) goto out;
        be->mem_copy(send, host, bytes);
    } else {
        send = host;
        recv = malloc(bytes);
        if (!recv) {
            CT_LOG_ERROR("rank %d: out of memory for the %zu-byte all-reduce self-test of group "
                         "%s", ct_log_rank(), bytes, c->name);
            st = CT_ERR_NO_MEMORY;
            goto out;
        }
    }
    ct_comm_set_activity("all-reduce self-test over %s", c->name);
    if ((st = ct_comm_allreduce(c, send, recv, count, CT_DTYPE_F32, CT_OP_SUM, NULL)) != CT_OK ||
        (st = ct_comm_sync(c, NULL)) != CT_OK)
        goto out;
    float *got = host;
    if (dev) be->mem_copy(host, recv, bytes);
    else got = recv;
    const float tri = (float)c->size * (float)(c->size + 1) / 2.0f;
    ct_comm_selftest_t r = {.bad = count};
    for (size_t i = 0; i < count && r.bad == count; i++)
        if (got[i] != tri * (float)(i % 7 + 1)) {
            r.bad = i;
            r.bad_value = got[i];
            r.want = tri * (float)(i % 7 + 1);
        }
    if (r.bad == count && iters > 0) {
        double t0 = now_s();
        for (int it = 0; it < iters && st == CT_OK; it++)
            st = ct_comm_allreduce(c, send, recv, count, CT_DTYPE_F32, CT_OP_SUM, NULL);
        if (st == CT_OK) st = ct_comm_sync(c, NULL);
        r.seconds = (now_s() - t0) / iters;
    }
    if (st == CT_OK) *res_p = r;
out:
    if (dev) {
        if (send) be->mem_free(send);
        if (recv) be->mem_free(recv);
    } else {
        free(recv);
    }
    free(host);
    return st;
}

void ct_comm_group_begin(void)
{
    if (group_depth++ == 0) group_be = device_be ? device_be : live_be;
    if (group_be && group_be->group_begin) group_be->group_begin();
}

ct_status_t ct_comm_group_end(void)
{
    CT_ASSERT(group_depth > 0); /* an end without its begin */
    group_depth--;
    if (!group_be || !group_be->group_end) return CT_OK;
    wd_enter_grace("group_end", "(bracket)", CT__SLOT_ALL, 0);
    ct_status_t st = group_be->group_end();
    wd_leave();
    return st;
}
