/* Private to comm/: the backend vtable and helpers the backends share.
 *
 * A backend is a table of functions (UCX/Open MPI MCA style). The front
 * (comm.c) validates arguments, tracks the running collective for the
 * watchdog and dispatches through c->be. One backend is also the process
 * "runtime": mpi when the build has MPI, else local. Its start/stop/abort
 * run once per process whatever backend serves the collectives, because MPI
 * must be up to learn the world size. */
#ifndef CT_COMM_COMM_IMPL_H
#define CT_COMM_COMM_IMPL_H

#include "comm/comm.h"

typedef struct ct__comm_backend ct__comm_backend_t;

/* A group. Backends embed this as the first member of their own struct. */
struct ct_comm {
    const ct__comm_backend_t *be;
    const char *name; /* "world", "dp", "tp" */
    int rank, size;
};

struct ct__comm_backend {
    const char *name;
    /* Runtime (called on the runtime backend only). start brings the runtime
     * up if needed and reports this process's rank and the world size; stop
     * shuts down what start brought up; abort ends the job if the runtime is
     * up and returns otherwise. */
    ct_status_t (*start)(int *rank_p, int *world_p);
    void (*stop)(void);
    void (*abort)(int code);
    /* Builds g->world, g->dp, g->tp and g->local_rank/local_size (and
     * g->device, for a device backend). The front has filled the ranks and
     * sizes. On failure frees what it built. */
    ct_status_t (*groups_init)(ct_comm_groups_t *g);
    /* Device backends: builds g->world, g->dp, g->tp over the live host
     * groups in `host` (which stay the caller's) and sets g->device. *g is
     * a copy of *host on entry. On failure frees what it built. */
    ct_status_t (*groups_over)(const ct_comm_groups_t *host, ct_comm_groups_t *g);
    void (*comm_free)(ct_comm_t *c);
    /* A group of c's ranks with the same color, ordered by key, named
     * `name` (ct_comm_split). NULL: the backend cannot split (nccl). */
    ct_status_t (*split)(ct_comm_t *c, int color, int key, const char *name, ct_comm_t **c_p);
    /* Collectives; arguments are validated and count > 0. */
    ct_status_t (*allreduce)(ct_comm_t *c, const void *sendbuf, void *recvbuf, size_t count,
                             ct_dtype_t dt, ct_op_t op, void *stream);
    ct_status_t (*reduce_scatter)(ct_comm_t *c, const void *sendbuf, void *recvbuf,
                                  size_t recvcount, ct_dtype_t dt, ct_op_t op, void *stream);
    ct_status_t (*allgather)(ct_comm_t *c, const void *sendbuf, void *recvbuf, size_t sendcount,
                             ct_dtype_t dt, void *stream);
    ct_status_t (*broadcast)(ct_comm_t *c, void *buf, size_t count, ct_dtype_t dt, int root,
                             void *stream);
    ct_status_t (*barrier)(ct_comm_t *c);

    /* Optional; NULL (or 0) suits a backend whose collectives are done when
     * they return (local, mpi). */
    int is_device;          /* buffers are device memory */
    int (*available)(void); /* can run on this machine now; NULL: yes */
    /* Waits until `stream` has finished, giving up after timeout_s (<= 0:
     * never) or on an asynchronous error. NULL: CT_OK at once. */
    ct_status_t (*sync)(ct_comm_t *c, void *stream, double timeout_s);
    /* Brackets collectives that are launched together. NULL: no-ops. */
    void (*group_begin)(void);
    ct_status_t (*group_end)(void);
    /* The runtime's group with c's ranks, for host buffers. NULL: c. */
    ct_comm_t *(*host)(ct_comm_t *c);
};

extern const ct__comm_backend_t ct__comm_local;
extern const ct__comm_backend_t ct__comm_mpi; /* only in builds with CT_HAVE_MPI */
extern const ct__comm_backend_t ct__comm_nccl; /* nccl.c, or nccl_none.c without NCCL */

/* The process runtime: mpi in builds with MPI, else local. A backend that
 * needs host-side groups (nccl: the unique id exchange) builds them with it. */
const ct__comm_backend_t *ct__comm_runtime(void);

/* Bytes per element of dt. */
size_t ct__comm_dtype_size(ct_dtype_t dt);
/* buf[i] /= n, for AVG after a SUM (floats multiply by 1/n, integers
 * truncate). */
void ct__comm_scale(void *buf, size_t count, ct_dtype_t dt, int n);
/* Copies the current activity (or "(activity not set)") into buf. */
void ct__comm_activity(char *buf, size_t size);

/* Most elements one MPI call moves: MPI counts are int, so large buffers go
 * in pieces. Default 2^30. Tests lower it to exercise the chunked paths. */
extern size_t ct__comm_max_chunk;
void ct__comm_set_max_chunk(size_t elems); /* 0 restores the default */

/* Large reductions go in pieces of this many bytes (default 8 MiB), each
 * its own MPI call: a piece's buffers stay in cache through the reduction,
 * which measured 2-3x faster than one 512 MiB MPI_Allreduce over shared
 * memory (bench/bench_comm.c), and AVG divides each piece while it is hot.
 * Reduce-scatters above one piece become one MPI_Reduce per rank per piece:
 * Open MPI's MPI_Reduce_scatter_block measured 2-3x slower at 512 MiB. */
extern size_t ct__comm_piece_bytes;

#endif
