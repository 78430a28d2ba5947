/* All-reduce bandwidth through the comm API, the way the trainer reduces
 * gradients: fp32, in place, on the world group.
 *
 *   mpirun -np 2 bench_comm [MIB ...]        (default: 64 512)
 *   env: CT_BENCH_ITERS (default 5), CT_BENCH_OP (sum or avg, default avg)
 *
 * Rank 0 prints, per size, the best and median time of the timed iterations
 * (after one warm-up), the algorithm bandwidth bytes/time and the bus
 * bandwidth 2*(n-1)/n * bytes/time, the figure NCCL's tests report, which
 * for a ring is what each link carries. A world of one measures the local
 * copy path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/comm.h"
#include "core/env.h"
#include "core/log.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    ct_log_init();
    const char *it_env = ct_env_get("CT_BENCH_ITERS"), *op_env = ct_env_get("CT_BENCH_OP");
    int iters = it_env ? atoi(it_env) : 5;
    if (iters < 1 || iters > 1000) iters = 5;
    ct_op_t op = (op_env && strcmp(op_env, "sum") == 0) ? CT_OP_SUM : CT_OP_AVG;

    ct_comm_groups_t g;
    /* dp 0: every rank is a DP replica. A generous timeout for a slow machine. */
    if (ct_comm_init(0, 1, 600, &g) != CT_OK) return 1;

    size_t default_mib[] = {64, 512};
    int nsizes = argc > 1 ? argc - 1 : 2;
    double *times = malloc((size_t)iters * sizeof *times);
    int rc = 0;
    for (int s = 0; s < nsizes; s++) {
        size_t mib = argc > 1 ? (size_t)atol(argv[s + 1]) : default_mib[s];
        size_t bytes = mib << 20, count = bytes / sizeof(float);
        float *x = malloc(bytes);
        if (!x) {
            CT_LOG_ERROR("cannot allocate %zu MiB", mib);
            rc = 1;
            break;
        }
        for (size_t i = 0; i < count; i++) x[i] = (float)(i % 1000) * 1e-3f;
        ct_comm_set_activity("bench all-reduce %zu MiB", mib);
        for (int it = -1; it < iters; it++) {
            if (ct_comm_barrier(g.world) != CT_OK) {
                rc = 1;
                break;
            }
            double t0 = now_s();
            if (ct_comm_allreduce(g.world, x, x, count, CT_DTYPE_F32, op, NULL) != CT_OK) {
                rc = 1;
                break;
            }
            double t = now_s() - t0;
            if (it >= 0) times[it] = t;
        }
        free(x);
        if (rc) break;
        qsort(times, (size_t)iters, sizeof *times, cmp_double);
        double best = times[0], med = times[iters / 2];
        double n = g.world_size, busf = n > 1 ? 2.0 * (n - 1) / n : 1.0;
        if (g.rank == 0)
            printf("allreduce f32 %s %4zu MiB on %d ranks: best %.3f s median %.3f s  "
                   "algbw %6.0f MB/s  busbw %6.0f MB/s (median %6.0f MB/s)\n",
                   op == CT_OP_AVG ? "avg" : "sum", mib, g.world_size, best, med,
                   (double)bytes / best / 1e6, busf * (double)bytes / best / 1e6,
                   busf * (double)bytes / med / 1e6);
        fflush(stdout);
    }
    free(times);
    ct_comm_finalize(&g);
    return rc;
}
