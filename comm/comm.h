/* Process groups and collectives.
 *
 * world = dp x tp. Tensor-parallel peers are adjacent ranks:
 * tp_rank = rank % tp, dp_rank = rank / tp. ct_comm_init builds the world,
 * DP and TP groups once. One collective API serves every backend:
 *   - local: one process (or a build without MPI); collectives are copies;
 *   - mpi:   CPU buffers over MPI (communicators use MPI_ERRORS_RETURN);
 *   - nccl:  device buffers over NCCL, one communicator per group, on
 *            top of the runtime's groups (mpi, or local for one process).
 * Every collective takes a `stream` argument that the CPU backends ignore.
 * local and mpi collectives are done when they return; nccl collectives
 * only enqueue work on `stream` (a cudaStream_t, NULL: the legacy default
 * stream) and ct_comm_sync waits for it.
 *
 * Errors come back as ct_status_t and are logged once with the rank, the
 * group, the operation and what the caller said it was doing
 * (ct_comm_set_activity).
 *
 * Failure handling. A collective that does not complete within the timeout
 * given to ct_comm_init ends the process: a watchdog thread (which never
 * calls MPI) logs a line naming this rank, the collective's number on its
 * group ("collective #57 (allreduce on group dp)"), the activity and the
 * rank(s) holding it up, then calls _exit(CT_COMM_EXIT_TIMEOUT). The
 * launcher (mpirun, srun) then tears the other ranks down, so a dead or
 * hung peer fails the job instead of hanging it. Apart from that watchdog
 * and ct_comm_abort, comm/ never ends the process. For nccl the device
 * work is bounded by ct_comm_sync instead: it aborts the communicators and
 * returns CT_ERR_COMM (the watchdog stays as a backstop, one timeout later).
 *
 * Naming the hung rank. Every rank counts the collectives it enters on each
 * group, and in a world of more than one with a timeout it answers, on a
 * TCP port of its own served by a thread (not MPI), with those counts and
 * whether it is inside a collective; ports, hosts and pids are exchanged at
 * init. A rank that times out in collective #N asks the ranks it waits for
 * and names those that do not answer (stopped by SIGSTOP or a debugger, or
 * hung with every thread blocked: "rank 3 (host n2, pid 1234) holds up
 * collective #57 (allreduce on dp): it does not answer ..."), whose process
 * is gone, or whose count shows they have not entered #N ("... has not
 * entered collective #57 ...: it is not in a collective ... while step 9").
 * One that waits in another collective itself is followed to the rank it
 * waits for, so every rank that times out names the same culprit, and the
 * ranks that have entered are not named; if none is missing, the line says
 * the transport is stuck. A rank that was itself stopped (its watchdog sees
 * a gap in time) says "this rank was suspended for X s" and does not count
 * that time against its timeout, so a rank resumed with SIGCONT neither
 * blames its peers nor ends a job whose peers still wait. The port answers
 * anyone who connects with those counts, the pid and the activity string:
 * nothing secret.
 *
 * Thread-safety: collectives (on any group) must be issued from one thread
 * at a time; MPI runs at MPI_THREAD_SERIALIZED. ct_comm_set_activity may be
 * called from any thread. In-place operation is allowed where noted. */
#ifndef CT_COMM_COMM_H
#define CT_COMM_COMM_H

#include <stddef.h>

#include "core/status.h"

#ifdef __cplusplus
#define _Noreturn [[noreturn]]
extern "C" {
#endif

typedef struct ct_comm ct_comm_t; /* one group */

typedef enum { CT_DTYPE_F32 = 0, CT_DTYPE_F64 = 1, CT_DTYPE_I32 = 2, CT_DTYPE_I64 = 3 } ct_dtype_t;
typedef enum { CT_OP_SUM = 0, CT_OP_AVG = 1, CT_OP_MAX = 2, CT_OP_MIN = 3 } ct_op_t;
/* CT_COMM_AUTO picks local for a world of one and mpi otherwise; it never
 * appears in ct_comm_groups_t.backend. */
typedef enum {
    CT_COMM_LOCAL = 0,
    CT_COMM_MPI = 1,
    CT_COMM_NCCL = 2,
    CT_COMM_AUTO = 3,
} ct_comm_backend_t;

/* Exit status of a process whose collective timed out. */
#define CT_COMM_EXIT_TIMEOUT 3

typedef struct {
    ct_comm_t *world, *dp, *tp;
    int rank, world_size;
    int dp_rank, dp_size;
    int tp_rank, tp_size;
    int local_rank, local_size; /* within the node (MPI_COMM_TYPE_SHARED) */
    int node, nodes; /* this rank's node, 0..nodes-1 in the order of each
                      * node's lowest world rank, and how many there are */
    ct_comm_backend_t backend;  /* the one chosen: local, mpi or nccl */
    int device; /* nccl: the CUDA device, local_rank % device count, made
                 * current in the thread that called ct_comm_init; else -1 */
} ct_comm_groups_t;

/* Starts MPI when the build has it (MPI_Init_thread; a run without mpirun
 * is a singleton world of 1), checks world == dp*tp on every rank, and
 * builds the groups: the local backend for a world of 1, mpi otherwise.
 * dp == 0 means world/tp (every rank not in TP is a DP replica).
 * timeout_s bounds every collective; timeout_s <= 0 disables the watchdog.
 * Returns CT_ERR_CONFIG (logged on every rank) if world != dp*tp.
 * On failure *g_p is not written and MPI stays initialized, so the call may
 * be retried; a caller that gives up either exits non-zero or calls
 * ct_comm_finalize on a zeroed ct_comm_groups_t to finalize MPI first.
 * Not thread-safe; one successful init at a time per process. MPI cannot be
 * restarted, so after ct_comm_finalize a build with MPI cannot init again. */
CT_MUST_USE ct_status_t ct_comm_init(int dp, int tp, double timeout_s, ct_comm_groups_t *g_p);
/* ct_comm_init with the backend named. CT_ERR_UNSUPPORTED for a backend
 * this build lacks (mpi without MPI, nccl without NCCL) or this machine
 * cannot run (nccl without a CUDA device); CT_ERR_COMM if NCCL fails to
 * create a communicator; CT_ERR_CONFIG for local in a world of more than
 * one process. nccl runs on the runtime's groups (mpi, or local for one
 * process without MPI), which carry the NCCL unique ids (rank 0 of each
 * group makes one and broadcasts it). */
CT_MUST_USE ct_status_t ct_comm_init_backend(ct_comm_backend_t backend, int dp, int tp, double timeout_s,
                                 ct_comm_groups_t *g_p);
/* NCCL groups over the live groups of ct_comm_init (local or mpi), for a
 * trainer that keeps those for host work and runs device collectives on
 * these: *dev_p is *g with world/dp/tp replaced by nccl groups over the
 * same ranks (ct_comm_host of each gives back g's group), backend
 * CT_COMM_NCCL and `device` the calling thread's current CUDA device, which
 * the communicators use (make it current first, e.g. by ct_cuda_init; or
 * pass a copy of g whose `device` is >= 0, and that device is made current
 * here: CT_ERR_UNSUPPORTED, logged, if it cannot be). Rank
 * 0 of each group makes an NCCL unique id and broadcasts it over g's group.
 * Collective over the world; bounded by the watchdog like ct_comm_init.
 * CT_ERR_UNSUPPORTED (logged) without NCCL in the build or without a
 * device, CT_ERR_COMM if NCCL fails. *dev_p written only on success. One
 * set at a time; free it with ct_comm_device_groups_free before
 * ct_comm_finalize(g). */
CT_MUST_USE ct_status_t ct_comm_device_groups_init(const ct_comm_groups_t *g, ct_comm_groups_t *dev_p);
/* Destroys the communicators (not g's groups) and zeroes *dev. NULL or a
 * zeroed struct: no-op. Every rank of a node calls it (NCCL's destroy is
 * an intra-node collective); after a failed ct_comm_sync, end the job with
 * ct_comm_abort instead. */
void ct_comm_device_groups_free(ct_comm_groups_t *dev);
/* Stops the watchdog, frees the groups, finalizes MPI if ct_comm_init started
 * it and zeroes *g. Collective over the world when MPI runs. */
void ct_comm_finalize(ct_comm_groups_t *g);
/* Ends the whole job now, with exit status `code`: MPI_Abort(MPI_COMM_WORLD)
 * when MPI is running, else exit(). Besides cli/main.c this is the one
 * sanctioned way to end the process: the trainer calls it after a rank-local
 * error so that peers blocked in a collective do not wait for the timeout.
 * Also installed as core/log's abort hook, so CT_ASSERT failures take the
 * whole job down. */
_Noreturn void ct_comm_abort(int code);

/* A new host group of the ranks of c that pass the same color, ordered by
 * key, then by rank in c (MPI_Comm_split). For groups other than the
 * world, dp and tp of ct_comm_init, e.g. the ranks of one node. Collective
 * over c, bounded by the watchdog. `name` (e.g. "node") must outlive the
 * group. CT_ERR_UNSUPPORTED (logged) for a device group (nccl), CT_ERR_COMM
 * if the split fails. *c_p written only on success; the caller frees it with
 * ct_comm_free before ct_comm_finalize. */
CT_MUST_USE ct_status_t ct_comm_split(ct_comm_t *c, int color, int key, const char *name,
                                      ct_comm_t **c_p);
/* Frees a group made by ct_comm_split; NULL: no-op. Not collective. */
void ct_comm_free(ct_comm_t *c);

/* 1 if this build can run the backend (local and auto always, mpi when built
 * with MPI, nccl when built with NCCL and cudaGetDeviceCount finds a
 * device), else 0. Never aborts, with or without a driver. */
int ct_comm_backend_available(ct_comm_backend_t b);
const char *ct_comm_backend_name(ct_comm_backend_t b); /* "local", "mpi", "nccl", "auto" */

int ct_comm_rank(const ct_comm_t *c);
int ct_comm_size(const ct_comm_t *c);
const char *ct_comm_name(const ct_comm_t *c); /* "world", "dp" or "tp" */
/* 1 if c's collectives take device buffers (nccl), 0 for host buffers. */
int ct_comm_is_device(const ct_comm_t *c);
/* The group over the same ranks that takes host buffers and completes its
 * collectives before returning: c itself for local and mpi groups, the
 * runtime's group under a nccl group. Owned by c. */
ct_comm_t *ct_comm_host(ct_comm_t *c);

/* What this rank is doing, shown when a collective fails or times out,
 * e.g. "step 12: dp gradient bucket 3". Copied (truncated to 255 bytes). */
void ct_comm_set_activity(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* All collectives return CT_OK, or CT_ERR_COMM after logging the cause.
 * count == 0 is a no-op. Buffers are host memory for local and mpi, device
 * memory for nccl (ct_comm_is_device); nccl collectives are asynchronous on
 * `stream`, so their buffers must stay valid until ct_comm_sync (or later
 * work on that stream) has seen them done. */

/* recvbuf = op over ranks of sendbuf. In place if sendbuf == recvbuf.
 * AVG is SUM times 1/size for floats (as NCCL's ncclAvg; exact when size is
 * a power of two) and SUM / size, truncated, for integers. */
CT_MUST_USE ct_status_t ct_comm_allreduce(ct_comm_t *c, const void *sendbuf, void *recvbuf, size_t count,
                              ct_dtype_t dt, ct_op_t op, void *stream);
/* sendbuf holds size*recvcount elements; rank r gets block r reduced. In
 * place if recvbuf == sendbuf + rank*recvcount; the other blocks of sendbuf
 * are then clobbered. */
CT_MUST_USE ct_status_t ct_comm_reduce_scatter(ct_comm_t *c, const void *sendbuf, void *recvbuf,
                                   size_t recvcount, ct_dtype_t dt, ct_op_t op, void *stream);
/* recvbuf (size*sendcount) gets every rank's sendbuf in rank order. In place
 * if sendbuf == recvbuf + rank*sendcount. */
CT_MUST_USE ct_status_t ct_comm_allgather(ct_comm_t *c, const void *sendbuf, void *recvbuf, size_t sendcount,
                              ct_dtype_t dt, void *stream);
/* buf on every rank = buf on `root` (a rank within the group). */
CT_MUST_USE ct_status_t ct_comm_broadcast(ct_comm_t *c, void *buf, size_t count, ct_dtype_t dt, int root,
                              void *stream);
/* Returns when every rank of the group has entered it. Host-side only: for
 * nccl it orders no device work (ct_comm_sync first for that). */
CT_MUST_USE ct_status_t ct_comm_barrier(ct_comm_t *c);
/* The worst (largest) status over the group, so that every rank takes the
 * same path after a step that can fail on some ranks only. c may be NULL
 * (one process): returns st. A failed collective gives CT_ERR_COMM. Runs
 * on ct_comm_host(c), so it takes no stream. */
CT_MUST_USE ct_status_t ct_comm_agree(ct_comm_t *c, ct_status_t st);

/* Waits until everything enqueued on `stream` (a cudaStream_t; NULL: the
 * legacy default stream) has finished, polling about every millisecond, and
 * enforces the timeout given to ct_comm_init. On an asynchronous NCCL error
 * (a peer failed) or after timeout_s it logs the rank, the group and the
 * activity, aborts every NCCL communicator of this process and returns
 * CT_ERR_COMM; the caller should then end the job with ct_comm_abort (the
 * groups can only be finalized). CT_OK at once for local and mpi groups,
 * whose collectives are done when they return. Not inside a group_begin/end
 * bracket. A CUDA error found on the stream aborts the job (device error). */
CT_MUST_USE ct_status_t ct_comm_sync(ct_comm_t *c, void *stream);
/* Collectives issued between ct_comm_group_begin and ct_comm_group_end (on
 * any groups, from this thread) are launched together by group_end, as
 * ncclGroupStart/ncclGroupEnd: use it to fuse many small collectives, or to
 * issue collectives on several groups without ordering deadlocks. Brackets
 * nest; the outermost end launches. No-ops for local and mpi groups (their
 * collectives run at once) and before ct_comm_init. group_end returns
 * CT_ERR_COMM (logged) if the launch fails, like a collective. */
void ct_comm_group_begin(void);
CT_MUST_USE ct_status_t ct_comm_group_end(void);

/* A self-test of group c, for `ctrain doctor`: all-reduces (sum) `count`
 * floats, element i of group rank k being (k+1)*(i%7+1), so the sum is
 * size*(size+1)/2*(i%7+1), exact in float; then, when that sum is right,
 * times `iters` more all-reduces of the same buffers (waited for by
 * ct_comm_sync). The buffers are allocated here and freed before it returns:
 * host memory for host groups, memory on the calling thread's current
 * device for device groups (nccl), whose collectives run on the legacy
 * default stream. Collective over c. On CT_OK, *res_p: bad == count when
 * the sum was exact (else the first wrong element, its value and the one
 * expected, and seconds is 0), seconds the mean time of a timed all-reduce.
 * Errors: CT_ERR_NO_MEMORY (logged), or a collective's CT_ERR_COMM (after a
 * device group's, end the job with ct_comm_abort). */
typedef struct {
    double seconds;
    size_t bad;
    float bad_value, want;
} ct_comm_selftest_t;
CT_MUST_USE ct_status_t ct_comm_selftest_allreduce(ct_comm_t *c, size_t count, int iters,
                                                   ct_comm_selftest_t *res_p);

#ifdef __cplusplus
}
#endif

#endif
