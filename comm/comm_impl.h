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

#include <stdint.h>

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
    /* Device backends: memory for their buffers on the current device
     * (ct_comm_selftest_allreduce). mem_alloc logs and returns
     * CT_ERR_NO_MEMORY on failure; mem_copy is synchronous, either way. */
    ct_status_t (*mem_alloc)(size_t bytes, void **p);
    void (*mem_free)(void *p);
    void (*mem_copy)(void *dst, const void *src, size_t bytes);
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

/* ---- naming a hung rank (the front and sidechannel.c) --------------------
 *
 * The front counts the collectives each rank has entered on each of its
 * groups. Ranks of one group enter its collectives in the same order, so
 * when collective #N on group dp does not complete, a member whose dp
 * count is below N has not entered it. Device (nccl) groups share the count
 * of the host group over the same ranks. The side channel (sidechannel.c)
 * lets the watchdog read those counts from the other ranks over TCP, which
 * works while MPI is stuck; see ct__comm_sc_blame. */

enum { CT__SLOT_WORLD = 0, CT__SLOT_DP = 1, CT__SLOT_TP = 2, CT__NSLOTS = 3 };
/* ct__comm_state_t.slot of a wait for every collective issued so far
 * (ct_comm_sync, a group bracket's launch); -1: none (init). */
#define CT__SLOT_ALL CT__NSLOTS

/* What one rank is doing, as the side channel tells it. Fixed-size fields:
 * it travels between ranks of one build as is. */
typedef struct {
    uint64_t seq[CT__NSLOTS]; /* collectives entered on each group */
    int32_t inside;           /* 1 while in a collective, a sync or a launch */
    int32_t slot;             /* its group (CT__SLOT_*), CT__SLOT_ALL or -1 */
    int32_t reported;         /* this rank's watchdog has logged its report */
    int32_t pad;
    double waited_s;          /* how long it has been inside */
    double suspended_s;       /* of which the process was not running */
    char op[16];              /* "allreduce", ..., "sync" */
    char activity[128];       /* ct_comm_set_activity, truncated */
} ct__comm_state_t;

/* comm.c: a snapshot of this rank's state. Any thread; never blocks for
 * long (the watchdog does not hold the lock while it asks its peers). */
void ct__comm_state(ct__comm_state_t *s);
/* "world", "dp", "tp", "every group" for a slot. */
const char *ct__comm_slot_name(int slot);

/* Starts the side channel for groups g (after groups_init, world > 1):
 * opens a TCP listener on every interface (ephemeral port) answered by a
 * thread, and exchanges rank, host, pid, port and IPv4 addresses with an
 * allgather on ct_comm_host(g->world). A rank that cannot listen warns and
 * takes part without it (its peers then cannot ask it). CT_ERR_COMM only if
 * the allgather fails (logged). Main thread, collective over the world. */
CT_MUST_USE ct_status_t ct__comm_sc_init(const ct_comm_groups_t *g);
/* Stops the thread and closes the listener. No-op when not started. */
void ct__comm_sc_free(void);
/* The report of a collective that timed out: asks the ranks this rank
 * waits for (and, for those that wait in turn, the ranks they wait for)
 * for their state, about 3 s at most in all, and finds the ranks that hold
 * the job up: those that do not answer (stopped, or hung with every thread
 * blocked), whose process is gone, or that answer but have not entered the
 * collective they are waited for in. Writes into summary either the one
 * such rank,
 *   "rank 3 (host n2, pid 1234) has not entered collective #57 (allreduce
 *    on tp, which rank 2 waits in): it is not in a collective ...", or
 *   "rank 3 (...) holds up collective #57 (...): it does not answer ..."
 * (a rank that does not answer may be stopped inside the collective),
 * or how many there are (then ct__comm_sc_log_details logs one line each),
 * or why none was found. self is this rank's state at the timeout (inside,
 * with its slot). Returns the number of ranks named. Any thread but the
 * responder; never calls MPI. Without a side channel (world 1, setup not
 * done) it says so and returns 0. */
int ct__comm_sc_blame(const ct__comm_state_t *self, char *summary, size_t size);
/* Logs one error line per rank named by the last ct__comm_sc_blame, when it
 * named more than one (one is in its summary already). */
void ct__comm_sc_log_details(void);
/* After the report: waits up to wait_s until the other ranks that wait in
 * a collective have logged their own report (or ended), so that the first
 * rank to exit does not get the others killed by the launcher before they
 * have named the culprit too. It asks every rank of a world of up to 64,
 * else its dp and tp peers and those the report found waiting. */
void ct__comm_sc_linger(double wait_s);

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
