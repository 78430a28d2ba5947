/* The mpi backend: host buffers over MPI, and the process runtime of builds
 * with MPI (MPI_Init_thread at MPI_THREAD_SERIALIZED, MPI_Finalize, and
 * MPI_Abort for ct_comm_abort).
 *
 * Groups are MPI_Comm_dup(MPI_COMM_WORLD) and MPI_Comm_splits of it, all
 * with MPI_ERRORS_RETURN: every MPI return code is checked, logged with the
 * rank, group and activity, and turned into CT_ERR_COMM. MPI counts are int,
 * so buffers above ct__comm_max_chunk elements go in pieces; reductions go
 * in cache-sized pieces (ct__comm_piece_bytes) for speed. AVG is SUM, then
 * ct__comm_scale on each piece. What is left out: nonblocking collectives
 * and overlap with compute. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm_impl.h"
#include "core/log.h"

typedef struct {
    ct_comm_t base; /* first: a ct_comm_t * is an mpi_comm_t * */
    MPI_Comm comm;
} mpi_comm_t;

static int mpi_we_initialized; /* MPI_Init_thread was ours, so MPI_Finalize is too */

static MPI_Comm comm_of(const ct_comm_t *c) { return ((const mpi_comm_t *)c)->comm; }

static MPI_Datatype mpi_type(ct_dtype_t dt)
{
    switch (dt) {
    case CT_DTYPE_F32: return MPI_FLOAT;
    case CT_DTYPE_F64: return MPI_DOUBLE;
    case CT_DTYPE_I32: return MPI_INT32_T;
    case CT_DTYPE_I64: return MPI_INT64_T;
    }
    return MPI_DATATYPE_NULL;
}

static MPI_Op mpi_op(ct_op_t op)
{
    switch (op) {
    case CT_OP_SUM:
    case CT_OP_AVG: return MPI_SUM;
    case CT_OP_MAX: return MPI_MAX;
    case CT_OP_MIN: return MPI_MIN;
    }
    return MPI_OP_NULL;
}

/* Logs a failed MPI call once, where it is understood, and maps it to
 * CT_ERR_COMM. `doing` overrides the caller's activity (NULL: use it). */
static CT_MUST_USE ct_status_t mpi_fail(const char *group, const char *call, int rc, const char *doing)
{
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    msg[len < (int)sizeof msg ? len : (int)sizeof msg - 1] = 0;
    char activity[256];
    if (doing)
        snprintf(activity, sizeof activity, "%s", doing);
    else
        ct__comm_activity(activity, sizeof activity);
    CT_LOG_ERROR("rank %d: %s on group %s failed: %s while %s", ct_log_rank(), call, group, msg,
                 activity);
    return CT_ERR_COMM;
}

/* Runs an MPI call on group c; on failure returns from the caller. */
#define MPI_TRY(c, call, args)                                            \
    do {                                                                  \
        int _rc = call args;                                              \
        if (_rc != MPI_SUCCESS) return mpi_fail((c)->name, #call, _rc, NULL); \
    } while (0)

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* Elements per piece of a large reduction. */
static size_t piece_elems(size_t es)
{
    size_t n = min_sz(ct__comm_max_chunk, ct__comm_piece_bytes / es);
    return n ? n : 1;
}

/* ---- runtime --------------------------------------------------------------- */

static CT_MUST_USE ct_status_t mpi_start(int *rank_p, int *world_p)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) {
        CT_LOG_ERROR("MPI was finalized by an earlier ct_comm_finalize and cannot be restarted "
                     "in this process");
        return CT_ERR_UNSUPPORTED;
    }
    if (!inited) {
        /* SERIALIZED: collectives come from one thread at a time, maybe not
         * the main one. The watchdog thread never calls MPI. */
        int provided = MPI_THREAD_SINGLE;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
        if (rc != MPI_SUCCESS) return mpi_fail("world", "MPI_Init_thread", rc, "starting MPI");
        mpi_we_initialized = 1;
        if (provided < MPI_THREAD_SERIALIZED)
            CT_LOG_DEBUG("MPI provides thread level %d, below MPI_THREAD_SERIALIZED", provided);
    }
    int rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (rc != MPI_SUCCESS) return mpi_fail("world", "MPI_Comm_set_errhandler", rc, "starting MPI");
    rc = MPI_Comm_rank(MPI_COMM_WORLD, rank_p);
    if (rc != MPI_SUCCESS) return mpi_fail("world", "MPI_Comm_rank", rc, "starting MPI");
    rc = MPI_Comm_size(MPI_COMM_WORLD, world_p);
    if (rc != MPI_SUCCESS) return mpi_fail("world", "MPI_Comm_size", rc, "starting MPI");
    return CT_OK;
}

static void mpi_stop(void)
{
    if (!mpi_we_initialized) return;
    int rc = MPI_Finalize();
    /* logged; a process that is ending has no one to pass the status to */
    ct_status_t st = rc != MPI_SUCCESS ? mpi_fail("world", "MPI_Finalize", rc, "shutting down")
                                       : CT_OK;
    (void)st;
    mpi_we_initialized = 0;
}

static void mpi_abort(int code)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
}

/* ---- groups ------------------------------------------------------------------ */

static void mpi_comm_free(ct_comm_t *c)
{
    mpi_comm_t *m = (mpi_comm_t *)c;
    if (m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
    free(m);
}

/* Wraps comm (set to MPI_ERRORS_RETURN) as group `name`. Takes comm. */
static CT_MUST_USE ct_status_t mpi_comm_wrap(MPI_Comm comm, const char *name, ct_comm_t **c_p)
{
    const char *doing = "building the process groups";
    mpi_comm_t *m = calloc(1, sizeof *m);
    if (!m) {
        MPI_Comm_free(&comm);
        CT_LOG_ERROR("out of memory creating the process groups");
        return CT_ERR_NO_MEMORY;
    }
    m->base.be = &ct__comm_mpi;
    m->base.name = name;
    m->comm = comm;
    const char *call = "MPI_Comm_set_errhandler";
    int rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(comm, &m->base.rank), call = "MPI_Comm_rank";
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(comm, &m->base.size), call = "MPI_Comm_size";
    if (rc != MPI_SUCCESS) {
        mpi_comm_free(&m->base);
        return mpi_fail(name, call, rc, doing);
    }
    *c_p = &m->base;
    return CT_OK;
}

static CT_MUST_USE ct_status_t mpi_groups_init(ct_comm_groups_t *g)
{
    const char *doing = "building the process groups";
    ct_status_t st;
    MPI_Comm wc, dc, tc, node;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &wc);
    if (rc != MPI_SUCCESS) return mpi_fail("world", "MPI_Comm_dup", rc, doing);
    if ((st = mpi_comm_wrap(wc, "world", &g->world)) != CT_OK) return st;
    /* DP peers share a tp_rank, TP peers a dp_rank; order by the other. */
    rc = MPI_Comm_split(wc, g->tp_rank, g->dp_rank, &dc);
    if (rc != MPI_SUCCESS) {
        st = mpi_fail("dp", "MPI_Comm_split", rc, doing);
        goto free_world;
    }
    if ((st = mpi_comm_wrap(dc, "dp", &g->dp)) != CT_OK) goto free_world;
    rc = MPI_Comm_split(wc, g->dp_rank, g->tp_rank, &tc);
    if (rc != MPI_SUCCESS) {
        st = mpi_fail("tp", "MPI_Comm_split", rc, doing);
        goto free_dp;
    }
    if ((st = mpi_comm_wrap(tc, "tp", &g->tp)) != CT_OK) goto free_dp;
    rc = MPI_Comm_split_type(wc, MPI_COMM_TYPE_SHARED, g->rank, MPI_INFO_NULL, &node);
    if (rc != MPI_SUCCESS) {
        st = mpi_fail("world", "MPI_Comm_split_type", rc, doing);
        goto free_tp;
    }
    /* The node's index: the nodes before it among the first ranks of
     * every node (an exclusive prefix sum over the world; the split orders
     * a node's ranks by world rank, so its local rank 0 comes first), told
     * to the node's other ranks. */
    int first, before = 0;
    const char *call = "MPI_Comm_rank";
    rc = MPI_Comm_rank(node, &g->local_rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(node, &g->local_size);
    first = g->local_rank == 0;
    if (rc == MPI_SUCCESS) rc = MPI_Exscan(&first, &before, 1, MPI_INT, MPI_SUM, wc), call = "MPI_Exscan";
    if (g->rank == 0) before = 0; /* MPI_Exscan leaves rank 0's undefined */
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(&before, 1, MPI_INT, 0, node), call = "MPI_Bcast";
    g->node = before;
    if (rc == MPI_SUCCESS)
        rc = MPI_Allreduce(&first, &g->nodes, 1, MPI_INT, MPI_SUM, wc), call = "MPI_Allreduce";
    MPI_Comm_free(&node);
    if (rc != MPI_SUCCESS) {
        st = mpi_fail("node", call, rc, doing);
        goto free_tp;
    }
    return CT_OK;

free_tp:
    mpi_comm_free(g->tp);
    g->tp = NULL;
free_dp:
    mpi_comm_free(g->dp);
    g->dp = NULL;
free_world:
    mpi_comm_free(g->world);
    g->world = NULL;
    return st;
}

static CT_MUST_USE ct_status_t mpi_split(ct_comm_t *c, int color, int key, const char *name,
                                         ct_comm_t **c_p)
{
    MPI_Comm nc;
    int rc = MPI_Comm_split(comm_of(c), color, key, &nc);
    if (rc != MPI_SUCCESS) return mpi_fail(c->name, "MPI_Comm_split", rc, NULL);
    return mpi_comm_wrap(nc, name, c_p);
}

/* ---- collectives ----------------------------------------------------------- */

static CT_MUST_USE ct_status_t mpi_allreduce(ct_comm_t *c, const void *sendbuf, void *recvbuf, size_t count,
                                 ct_dtype_t dt, ct_op_t op, void *stream)
{
    MPI_Comm comm = comm_of(c);
    MPI_Datatype t = mpi_type(dt);
    size_t es = ct__comm_dtype_size(dt);
    size_t chunk = piece_elems(es);
    int inplace = sendbuf == recvbuf;
    for (size_t o = 0; o < count; o += chunk) {
        size_t n = min_sz(count - o, chunk);
        const void *s = inplace ? MPI_IN_PLACE : (const char *)sendbuf + o * es;
        char *r = (char *)recvbuf + o * es;
        MPI_TRY(c, MPI_Allreduce, (s, r, (int)n, t, mpi_op(op), comm));
        if (op == CT_OP_AVG) ct__comm_scale(r, n, dt, c->size);
    }
    return CT_OK;
}

static CT_MUST_USE ct_status_t mpi_reduce_scatter(ct_comm_t *c, const void *sendbuf, void *recvbuf,
                                      size_t recvcount, ct_dtype_t dt, ct_op_t op, void *stream)
{
    MPI_Comm comm = comm_of(c);
    MPI_Datatype t = mpi_type(dt);
    size_t es = ct__comm_dtype_size(dt), chunk = piece_elems(es);
    char *own = (char *)sendbuf + (size_t)c->rank * recvcount * es;
    int inplace = (char *)recvbuf == own;
    if ((size_t)c->size * recvcount <= chunk) {
        if (inplace) {
            /* MPI leaves the result at the start of the buffer. */
            MPI_TRY(c, MPI_Reduce_scatter_block,
                    (MPI_IN_PLACE, (void *)sendbuf, (int)recvcount, t, mpi_op(op), comm));
            if (own != sendbuf) memmove(own, sendbuf, recvcount * es);
        } else {
            MPI_TRY(c, MPI_Reduce_scatter_block,
                    (sendbuf, recvbuf, (int)recvcount, t, mpi_op(op), comm));
        }
    } else {
        /* Larger than a piece: a reduce to each rank in turn, per piece. */
        for (size_t o = 0; o < recvcount; o += chunk) {
            size_t n = min_sz(recvcount - o, chunk);
            for (int r = 0; r < c->size; r++) {
                const char *blk = (const char *)sendbuf + ((size_t)r * recvcount + o) * es;
                if (r != c->rank)
                    MPI_TRY(c, MPI_Reduce, (blk, NULL, (int)n, t, mpi_op(op), r, comm));
                else
                    MPI_TRY(c, MPI_Reduce, (inplace ? MPI_IN_PLACE : blk, (char *)recvbuf + o * es,
                                            (int)n, t, mpi_op(op), r, comm));
            }
        }
    }
    if (op == CT_OP_AVG) ct__comm_scale(recvbuf, recvcount, dt, c->size);
    return CT_OK;
}

static CT_MUST_USE ct_status_t mpi_allgather(ct_comm_t *c, const void *sendbuf, void *recvbuf,
                                 size_t sendcount, ct_dtype_t dt, void *stream)
{
    MPI_Comm comm = comm_of(c);
    MPI_Datatype t = mpi_type(dt);
    size_t es = ct__comm_dtype_size(dt), chunk = ct__comm_max_chunk;
    char *own = (char *)recvbuf + (size_t)c->rank * sendcount * es;
    int inplace = (const char *)sendbuf == own;
    if ((size_t)c->size * sendcount <= chunk) {
        MPI_TRY(c, MPI_Allgather, (inplace ? MPI_IN_PLACE : sendbuf, (int)sendcount, t, recvbuf,
                                   (int)sendcount, t, comm));
        return CT_OK;
    }
    /* Too big for one call: each rank broadcasts its block, per piece. */
    if (!inplace) memcpy(own, sendbuf, sendcount * es);
    for (size_t o = 0; o < sendcount; o += chunk) {
        size_t n = min_sz(sendcount - o, chunk);
        for (int r = 0; r < c->size; r++)
            MPI_TRY(c, MPI_Bcast,
                    ((char *)recvbuf + ((size_t)r * sendcount + o) * es, (int)n, t, r, comm));
    }
    return CT_OK;
}

static CT_MUST_USE ct_status_t mpi_broadcast(ct_comm_t *c, void *buf, size_t count, ct_dtype_t dt, int root,
                                 void *stream)
{
    MPI_Comm comm = comm_of(c);
    size_t es = ct__comm_dtype_size(dt), chunk = ct__comm_max_chunk;
    for (size_t o = 0; o < count; o += chunk)
        MPI_TRY(c, MPI_Bcast,
                ((char *)buf + o * es, (int)min_sz(count - o, chunk), mpi_type(dt), root, comm));
    return CT_OK;
}

static CT_MUST_USE ct_status_t mpi_barrier(ct_comm_t *c)
{
    MPI_TRY(c, MPI_Barrier, (comm_of(c)));
    return CT_OK;
}

const ct__comm_backend_t ct__comm_mpi = {
    .name = "mpi",
    .start = mpi_start,
    .stop = mpi_stop,
    .abort = mpi_abort,
    .groups_init = mpi_groups_init,
    .comm_free = mpi_comm_free,
    .split = mpi_split,
    .allreduce = mpi_allreduce,
    .reduce_scatter = mpi_reduce_scatter,
    .allgather = mpi_allgather,
    .broadcast = mpi_broadcast,
    .barrier = mpi_barrier,
};
