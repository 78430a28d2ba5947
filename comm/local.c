/* The local backend: one process, so every group has one rank and every
 * collective is a copy (a no-op in place). It is also the process runtime
 * of builds without MPI; it then refuses to run as one of several processes
 * started by a launcher, which would otherwise train N unrelated copies. */
#include <stdlib.h>
#include <string.h>

#include "comm/comm_impl.h"
#include "core/env.h"
#include "core/log.h"

static CT_MUST_USE ct_status_t local_start(int *rank_p, int *world_p)
{
    /* Open MPI's mpirun and MPICH's hydra say how many processes they
     * started. Read here, where the no-MPI runtime starts. */
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = ct_env_get(vars[i]);
        if (v && atoi(v) > 1) {
            CT_LOG_ERROR("launched as one of %d processes (%s=%s) but this build has no MPI"
                         "\n---> HINT: install an MPI (libopenmpi-dev) and rebuild with "
                         "-DCT_MPI=ON",
                         atoi(v), vars[i], v);
            return CT_ERR_CONFIG;
        }
    }
    *rank_p = 0;
    *world_p = 1;
    return CT_OK;
}

static void local_stop(void) {}
static void local_abort(int code) { (void)code; }

static ct_comm_t *local_comm_new(const char *name)
{
    ct_comm_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->be = &ct__comm_local;
    c->name = name;
    c->rank = 0;
    c->size = 1;
    return c;
}

static void local_comm_free(ct_comm_t *c) { free(c); }

static CT_MUST_USE ct_status_t local_groups_init(ct_comm_groups_t *g)
{
    g->world = local_comm_new("world");
    g->dp = local_comm_new("dp");
    g->tp = local_comm_new("tp");
    if (!g->world || !g->dp || !g->tp) {
        free(g->world);
        free(g->dp);
        free(g->tp);
        g->world = g->dp = g->tp = NULL;
        CT_LOG_ERROR("out of memory creating the process groups");
        return CT_ERR_NO_MEMORY;
    }
    g->local_rank = 0;
    g->local_size = 1;
    g->node = 0;
    g->nodes = 1;
    return CT_OK;
}

/* One process: every color holds just this rank. */
static CT_MUST_USE ct_status_t local_split(ct_comm_t *c, int color, int key, const char *name,
                                           ct_comm_t **c_p)
{
    ct_comm_t *out = local_comm_new(name);
    if (!out) {
        CT_LOG_ERROR("out of memory creating group %s", name);
        return CT_ERR_NO_MEMORY;
    }
    *c_p = out;
    return CT_OK;
}

/* A one-rank reduction of sendbuf is sendbuf, whatever the op. */
static CT_MUST_USE ct_status_t local_allreduce(ct_comm_t *c, const void *sendbuf, void *recvbuf, size_t count,
                                   ct_dtype_t dt, ct_op_t op, void *stream)
{
    if (sendbuf != recvbuf) memmove(recvbuf, sendbuf, count * ct__comm_dtype_size(dt));
    return CT_OK;
}

static CT_MUST_USE ct_status_t local_reduce_scatter(ct_comm_t *c, const void *sendbuf, void *recvbuf,
                                        size_t recvcount, ct_dtype_t dt, ct_op_t op, void *stream)
{
    if (sendbuf != recvbuf) memmove(recvbuf, sendbuf, recvcount * ct__comm_dtype_size(dt));
    return CT_OK;
}

static CT_MUST_USE ct_status_t local_allgather(ct_comm_t *c, const void *sendbuf, void *recvbuf,
                                   size_t sendcount, ct_dtype_t dt, void *stream)
{
    if (sendbuf != recvbuf) memmove(recvbuf, sendbuf, sendcount * ct__comm_dtype_size(dt));
    return CT_OK;
}

static CT_MUST_USE ct_status_t local_broadcast(ct_comm_t *c, void *buf, size_t count, ct_dtype_t dt, int root,
                                   void *stream)
{
    return CT_OK;
}

static CT_MUST_USE ct_status_t local_barrier(ct_comm_t *c) { return CT_OK; }

const ct__comm_backend_t ct__comm_local = {
    .name = "local",
    .start = local_start,
    .stop = local_stop,
    .abort = local_abort,
    .groups_init = local_groups_init,
    .comm_free = local_comm_free,
    .split = local_split,
    .allreduce = local_allreduce,
    .reduce_scatter = local_reduce_scatter,
    .allgather = local_allgather,
    .broadcast = local_broadcast,
    .barrier = local_barrier,
};
