/* A two-rank job in which rank 1 fails in step 3 of a loop of dp
 * all-reduces, for run_failure.sh:
 *   mpi_failure hang TIMEOUT_S   rank 1 sleeps instead of entering the
 *                                all-reduce: rank 0's watchdog must end it;
 *   mpi_failure stop TIMEOUT_S   rank 1 stops itself with SIGSTOP (same);
 *   mpi_failure kill TIMEOUT_S   rank 1 dies by SIGKILL: the launcher must
 *                                end the job and name rank 1.
 * Reaching the end is the failure: it exits 0, which the script rejects. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "core/log.h"

int main(int argc, char **argv)
{
    ct_log_init();
    const char *mode = argc == 3 ? argv[1] : "";
    if (strcmp(mode, "hang") && strcmp(mode, "stop") && strcmp(mode, "kill")) {
        fprintf(stderr, "usage: mpirun -np 2 %s hang|stop|kill TIMEOUT_S\n", argv[0]);
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
