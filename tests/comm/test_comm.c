/* comm/ in one process: the configuration errors (world != dp*tp, bad
 * sizes, nccl where it cannot run), then a dp=1 tp=1 world on the local backend whose
 * collectives are copies. Runs the same with and without MPI in the build
 * (with MPI it is a singleton world of 1). Multi-rank behaviour is in
 * mpi_collectives.c and the failure scripts. */
#include <stdint.h>

#include "comm/comm.h"
#include "core/log.h"
#include "test_util.h"

static void test_config_errors(void)
{
    ct_comm_groups_t g;
    memset(&g, 0x5a, sizeof g);
    ct_comm_groups_t before = g;
    ct_status_t st;

    CAPTURE_STDERR(st = ct_comm_init(2, 1, 10, &g));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("world size 1 does not match parallel.dp 2 x parallel.tp 1 = 2");
    CHECK_CAPTURED("HINT: run with mpirun -np 2 or set parallel.dp/tp");
    CHECK(memcmp(&g, &before, sizeof g) == 0); /* not written on failure */

    CAPTURE_STDERR(st = ct_comm_init(1, 3, 10, &g));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("parallel.tp 3");

    CAPTURE_STDERR(st = ct_comm_init(-1, 1, 10, &g));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("parallel.dp must be at least 1 (or 0 for the whole world)");
    CAPTURE_STDERR(st = ct_comm_init(1, 0, 10, &g));
    CHECK(st == CT_ERR_CONFIG);
    CAPTURE_STDERR(st = ct_comm_init(0, 2, 10, &g)); /* dp = world/tp, but 1 % 2 != 0 */
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("world size 1 is not a multiple of parallel.tp 2");

    /* nccl without NCCL in the build or without a device (tests/comm/
     * test_nccl.c covers it where it runs) */
    if (!ct_comm_backend_available(CT_COMM_NCCL)) {
        CAPTURE_STDERR(st = ct_comm_init_backend(CT_COMM_NCCL, 1, 1, 10, &g));
        CHECK(st == CT_ERR_UNSUPPORTED);
        CHECK_CAPTURED("comm backend nccl");
        CHECK_CAPTURED("HINT:");
    }

    if (!ct_comm_backend_available(CT_COMM_MPI)) {
        CAPTURE_STDERR(st = ct_comm_init_backend(CT_COMM_MPI, 1, 1, 10, &g));
        CHECK(st == CT_ERR_UNSUPPORTED);
        CHECK_CAPTURED("-DCT_MPI=ON");
    }
    CHECK(memcmp(&g, &before, sizeof g) == 0);

    CHECK(ct_comm_backend_available(CT_COMM_LOCAL));
    CHECK(ct_comm_backend_available(CT_COMM_AUTO));
    CHECK(strcmp(ct_comm_backend_name(CT_COMM_LOCAL), "local") == 0);
    CHECK(strcmp(ct_comm_backend_name(CT_COMM_MPI), "mpi") == 0);
    CHECK(strcmp(ct_comm_backend_name(CT_COMM_NCCL), "nccl") == 0);
}

/* Fills x with distinct values of dt. */
static void fill(void *x, size_t n, ct_dtype_t dt, int seed)
{
    for (size_t i = 0; i < n; i++) {
        long v = (long)(i * 7 + (size_t)seed) % 1001 - 500;
        switch (dt) {
        case CT_DTYPE_F32: ((float *)x)[i] = (float)v * 0.25f; break;
        case CT_DTYPE_F64: ((double *)x)[i] = (double)v * 0.125; break;
        case CT_DTYPE_I32: ((int32_t *)x)[i] = (int32_t)v; break;
        case CT_DTYPE_I64: ((int64_t *)x)[i] = (int64_t)v * ((int64_t)1 << 33); break;
        }
    }
}

static void test_local_world(void)
{
    ct_comm_groups_t g;
    ct_status_t st = ct_comm_init(0, 1, 10, &g); /* dp 0: the whole world, here 1 */
    CHECK(st == CT_OK);
    if (st != CT_OK) return;
    CHECK(g.backend == CT_COMM_LOCAL);
    CHECK(g.rank == 0 && g.world_size == 1);
    CHECK(g.dp_rank == 0 && g.dp_size == 1 && g.tp_rank == 0 && g.tp_size == 1);
    CHECK(g.local_rank == 0 && g.local_size == 1);
    CHECK(g.node == 0 && g.nodes == 1);
    CHECK(g.device == -1);
    CHECK(strcmp(ct_comm_name(g.world), "world") == 0);
    CHECK(strcmp(ct_comm_name(g.dp), "dp") == 0);
    CHECK(strcmp(ct_comm_name(g.tp), "tp") == 0);
    ct_comm_t *groups[3] = {g.world, g.dp, g.tp};
    for (int i = 0; i < 3; i++) {
        CHECK(ct_comm_rank(groups[i]) == 0 && ct_comm_size(groups[i]) == 1);
        /* host buffers, done on return: no device, its own host twin, sync a no-op */
        CHECK(!ct_comm_is_device(groups[i]));
        CHECK(ct_comm_host(groups[i]) == groups[i]);
        CHECK(ct_comm_sync(groups[i], NULL) == CT_OK);
    }
    /* a split of one process is a group of one, with the name given */
    ct_comm_t *node = NULL;
    CHECK(ct_comm_split(g.world, 3, 0, "node", &node) == CT_OK);
    if (node) {
        CHECK(ct_comm_rank(node) == 0 && ct_comm_size(node) == 1);
        CHECK(strcmp(ct_comm_name(node), "node") == 0);
        float x = 2.5f, y = 0;
        CHECK(ct_comm_allreduce(node, &x, &y, 1, CT_DTYPE_F32, CT_OP_SUM, NULL) == CT_OK && y == x);
        ct_comm_free(node);
    }
    ct_comm_free(NULL);

    char long_activity[600];
    memset(long_activity, 'x', sizeof long_activity - 1);
    long_activity[sizeof long_activity - 1] = 0;
    ct_comm_set_activity("test %s", long_activity); /* truncated, not overflowed */
    ct_comm_set_activity("unit test step %d", 1);

    const size_t counts[] = {1, 7, 1000003};
    const ct_dtype_t dts[] = {CT_DTYPE_F32, CT_DTYPE_F64, CT_DTYPE_I32, CT_DTYPE_I64};
    size_t maxn = 1000003;
    char *a = malloc(maxn * 8), *b = malloc(maxn * 8), *ref = malloc(maxn * 8);
    for (int di = 0; di < 4; di++) {
        ct_dtype_t dt = dts[di];
        size_t es = (dt == CT_DTYPE_F32 || dt == CT_DTYPE_I32) ? 4 : 8;
        for (int ci = 0; ci < 3; ci++) {
            size_t n = counts[ci];
            fill(ref, n, dt, ci + di);
            for (int op = CT_OP_SUM; op <= CT_OP_MIN; op++) {
                for (int gi = 0; gi < 3; gi++) {
                    /* Out of place: a copy; sendbuf untouched. */
                    memcpy(a, ref, n * es);
                    memset(b, 0, n * es);
                    CHECK(ct_comm_allreduce(groups[gi], a, b, n, dt, op, NULL) == CT_OK);
                    CHECK(memcmp(b, ref, n * es) == 0);
                    CHECK(memcmp(a, ref, n * es) == 0);
                    /* In place: a no-op. */
                    CHECK(ct_comm_allreduce(groups[gi], a, a, n, dt, op, NULL) == CT_OK);
                    CHECK(memcmp(a, ref, n * es) == 0);
                    memset(b, 0, n * es);
                    CHECK(ct_comm_reduce_scatter(groups[gi], a, b, n, dt, op, NULL) == CT_OK);
                    CHECK(memcmp(b, ref, n * es) == 0);
                    CHECK(ct_comm_reduce_scatter(groups[gi], a, a, n, dt, op, NULL) == CT_OK);
                    CHECK(memcmp(a, ref, n * es) == 0);
                }
            }
            memset(b, 0, n * es);
            CHECK(ct_comm_allgather(g.dp, a, b, n, dt, NULL) == CT_OK);
            CHECK(memcmp(b, ref, n * es) == 0);
            CHECK(ct_comm_allgather(g.tp, b, b, n, dt, NULL) == CT_OK);
            CHECK(memcmp(b, ref, n * es) == 0);
            CHECK(ct_comm_broadcast(g.world, b, n, dt, 0, NULL) == CT_OK);
            CHECK(memcmp(b, ref, n * es) == 0);
        }
    }
    /* count 0 is a no-op, even with NULL buffers. */
    CHECK(ct_comm_allreduce(g.dp, NULL, NULL, 0, CT_DTYPE_F32, CT_OP_SUM, NULL) == CT_OK);
    CHECK(ct_comm_allgather(g.dp, NULL, NULL, 0, CT_DTYPE_F32, NULL) == CT_OK);
    for (int i = 0; i < 3; i++) CHECK(ct_comm_barrier(groups[i]) == CT_OK);
    /* group begin/end brackets are no-ops here: the collectives run at once */
    fill(ref, 5, CT_DTYPE_F32, 3);
    memcpy(a, ref, 5 * 4);
    memset(b, 0, 5 * 4);
    ct_comm_group_begin();
    ct_comm_group_begin();
    CHECK(ct_comm_allreduce(g.dp, a, b, 5, CT_DTYPE_F32, CT_OP_SUM, NULL) == CT_OK);
    CHECK(ct_comm_group_end() == CT_OK);
    CHECK(memcmp(b, ref, 5 * 4) == 0);
    CHECK(ct_comm_group_end() == CT_OK);
    free(a);
    free(b);
    free(ref);

    ct_comm_finalize(&g);
    CHECK(g.world == NULL && g.dp == NULL && g.tp == NULL);
}

int main(void)
{
    ct_log_init();
    test_config_errors();
    test_local_world();
    return ct_test_finish("test_comm");
}
