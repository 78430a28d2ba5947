/* Jobs in which one rank fails, for run_failure.sh and run_hang.sh.
 *
 * Two ranks, rank 1 fails in step 3 of a loop of dp all-reduces:
 *   mpi_failure hang TIMEOUT_S   rank 1 sleeps instead of entering the
 *                                all-reduce: rank 0's watchdog must end it;
 *   mpi_failure stop TIMEOUT_S   rank 1 stops itself with SIGSTOP (same);
 *   mpi_failure kill TIMEOUT_S   rank 1 dies by SIGKILL: the launcher must
 *                                end the job and name rank 1.
 * Reaching the end is the failure: it exits 0, which the script rejects.
 *
 * Any number of ranks, stopped from outside:
 *   mpi_failure loop TIMEOUT_S TP SECONDS [K K_TIMEOUT_S]
 * Every rank prints "mpi_failure: rank R of N pid P ready", then runs steps
 * of a tp all-reduce, a dp all-reduce and a world all-reduce (which also
 * carries rank 0's decision to stop) until SECONDS have passed, sleeping
 * 2 ms between steps, and exits 0. Rank K, if given, uses K_TIMEOUT_S as its
 * collective timeout. The script SIGSTOPs a rank and checks who is named. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm.h"
#include "core/log.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int run_loop(int argc, char **argv)
{
    double timeout_s = atof(argv[2]), seconds = atof(argv[4]);
    int tp = atoi(argv[3]);
    if (argc == 7) {
        /* The rank is known only after init; Open MPI says it earlier. */
        const char *r = getenv("OMPI_COMM_WORLD_RANK");
        if (r && atoi(r) == atoi(argv[5])) timeout_s = atof(argv[6]);
    }
    ct_comm_groups_t g;
    if (ct_comm_init(0, tp, timeout_s, &g) != CT_OK) return 2;
    fprintf(stderr, "mpi_failure: rank %d of %d pid %d ready\n", g.rank, g.world_size,
            (int)getpid());
    fflush(stderr);
    double t0 = now_s();
    float x[256];
    int64_t stop = 0;
    int step;
    for (step = 0; !stop; step++) {
        for (int i = 0; i < 256; i++) x[i] = (float)(g.rank + i);
        ct_comm_set_activity("step %d: tp all-reduce", step);
        if (ct_comm_allreduce(g.tp, x, x, 256, CT_DTYPE_F32, CT_OP_SUM, NULL) != CT_OK) return 2;
        ct_comm_set_activity("step %d: dp all-reduce", step);
        if (ct_comm_allreduce(g.dp, x, x, 256, CT_DTYPE_F32, CT_OP_SUM, NULL) != CT_OK) return 2;
        ct_comm_set_activity("step %d: world stop flag", step);
        stop = g.rank == 0 && now_s() - t0 > seconds;
        if (ct_comm_allreduce(g.world, &stop, &stop, 1, CT_DTYPE_I64, CT_OP_MAX, NULL) != CT_OK)
            return 2;
        ct_comm_set_activity("step %d: between steps", step);
        usleep(2000);
    }
    ct_comm_finalize(&g);
    fprintf(stderr, "mpi_failure: rank %d finished %d steps\n", ct_log_rank(), step);
    return 0;
}

int main(int argc, char **argv)
{
    ct_log_init();
    const char *mode = argc >= 2 ? argv[1] : "";
    if (!strcmp(mode, "loop") && (argc == 5 || argc == 7)) return run_loop(argc, argv);
    if (argc != 3 || (strcmp(mode, "hang") && strcmp(mode, "stop") && strcmp(mode, "kill"))) {
        fprintf(stderr,
                "usage: mpirun -np 2 %s hang|stop|kill TIMEOUT_S\n"
                "       mpirun -np N %s loop TIMEOUT_S TP SECONDS [K K_TIMEOUT_S]\n",
                argv[0], argv[0]);
        return 2;
    }
    ct_comm_groups_t g;
    if (ct_comm_init(2, 1, atof(argv[2]), &g) != CT_OK) return 2;
    float x[1024];
    for (int step = 0; step < 6; step++) {
        for (int i = 0; i < 1024; i++) x[i] = (float)(g.rank + i);
        ct_comm_set_activity("step %d: dp gradient all-reduce", step);
        if (step == 3 && g.rank == 1) {
            fprintf(stderr, "mpi_failure: rank 1 %s in step %d\n", mode, step);
            fflush(stderr);
            if (!strcmp(mode, "kill")) kill(getpid(), SIGKILL);
            if (!strcmp(mode, "stop")) raise(SIGSTOP);
            sleep(300);
        }
        if (ct_comm_allreduce(g.dp, x, x, 1024, CT_DTYPE_F32, CT_OP_SUM, NULL) != CT_OK) return 2;
    }
    ct_comm_finalize(&g);
    fprintf(stderr, "mpi_failure: the job finished, but rank 1 should have failed it\n");
    return 0;
}
