/* The nccl backend on device buffers (label gpu). Exits 77 (skipped) when
 * ct_comm_backend_available(CT_COMM_NCCL) is 0: a build without NCCL, or no
 * CUDA device. One mode per process (MPI cannot restart after finalize):
 *   test_nccl [backend [DP TP]]    ct_comm_init_backend(CT_COMM_NCCL), then
 *       every collective, dtype and op on the world, dp and tp groups, in
 *       and out of place, checked against sums computed here; group
 *       begin/end, barrier, agree and the host twin.
 *   test_nccl device_groups [DP TP]  the same on ct_comm_device_groups_init
 *       over the groups of a plain ct_comm_init.
 *   test_nccl timeout   a stream held by a host function makes ct_comm_sync
 *       time out (timeout 10 s), abort the communicators and return
 *       CT_ERR_COMM; later collectives fail cleanly. Takes about 10 s.
 * One process by default; the first two also run under mpirun with one GPU
 * per rank (DP and TP pick the layout; default dp = world, tp = 1). */
#include <cuda_runtime.h>
#include <stdint.h>
#include <time.h>

#include "comm/comm.h"
#include "core/log.h"
#include "test_util.h"

#define CUDA_OK(stmt)                                                     \
    do {                                                                  \
        cudaError_t _e = (stmt);                                          \
        if (_e != cudaSuccess) {                                          \
            fprintf(stderr, "FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #stmt, \
                    cudaGetErrorString(_e));                              \
            exit(1);                                                      \
        }                                                                 \
    } while (0)

static const ct_dtype_t dts[] = {CT_DTYPE_F32, CT_DTYPE_F64, CT_DTYPE_I32, CT_DTYPE_I64};
static const size_t counts[] = {1, 7, 1000003};
#define MAXN 1000003

static size_t esize(ct_dtype_t dt) { return dt == CT_DTYPE_F32 || dt == CT_DTYPE_I32 ? 4 : 8; }
static int is_float(ct_dtype_t dt) { return dt == CT_DTYPE_F32 || dt == CT_DTYPE_F64; }

/* Element i of group rank r's input, before scaling to dt. */
static int64_t iv(size_t i, int r) { return (int64_t)((i * 7 + (size_t)r * 13) % 1001) - 500; }
/* The same scaled to dt's values: exact in every type, sums too. */
static double fval(ct_dtype_t dt, int64_t v)
{
    return (double)v * (dt == CT_DTYPE_F32 ? 0.25 : 0.125);
}
static int64_t ival(ct_dtype_t dt, int64_t v)
{
    return dt == CT_DTYPE_I32 ? v : v * ((int64_t)1 << 33);
}

static void put(void *x, size_t i, ct_dtype_t dt, int64_t v)
{
    switch (dt) {
    case CT_DTYPE_F32: ((float *)x)[i] = (float)fval(dt, v); break;
    case CT_DTYPE_F64: ((double *)x)[i] = fval(dt, v); break;
    case CT_DTYPE_I32: ((int32_t *)x)[i] = (int32_t)ival(dt, v); break;
    case CT_DTYPE_I64: ((int64_t *)x)[i] = ival(dt, v); break;
    }
}

static double getf(const void *x, size_t i, ct_dtype_t dt)
{
    return dt == CT_DTYPE_F32 ? (double)((const float *)x)[i] : ((const double *)x)[i];
}

static int64_t geti(const void *x, size_t i, ct_dtype_t dt)
{
    return dt == CT_DTYPE_I32 ? (int64_t)((const int32_t *)x)[i] : ((const int64_t *)x)[i];
}

/* 1 if got[i] is op over group ranks 0..n-1 of element idx. AVG: floats
 * within rounding (NCCL pre-multiplies by 1/n), integers sum/n truncated. */
static int elem_ok(const void *got, size_t i, ct_dtype_t dt, ct_op_t op, int n, size_t idx)
{
    if (is_float(dt)) {
        double acc = fval(dt, iv(idx, 0));
        for (int r = 1; r < n; r++) {
            double v = fval(dt, iv(idx, r));
            if (op == CT_OP_SUM || op == CT_OP_AVG) acc += v;
            if (op == CT_OP_MAX && v > acc) acc = v;
            if (op == CT_OP_MIN && v < acc) acc = v;
        }
        if (op == CT_OP_AVG) acc /= n;
        double tol = (dt == CT_DTYPE_F32 ? 1e-6 : 1e-14) * (fabs(acc) + 1) * n;
        return fabs(getf(got, i, dt) - acc) <= tol;
    }
    int64_t acc = ival(dt, iv(idx, 0));
    for (int r = 1; r < n; r++) {
        int64_t v = ival(dt, iv(idx, r));
        if (op == CT_OP_SUM || op == CT_OP_AVG) acc += v;
        if (op == CT_OP_MAX && v > acc) acc = v;
        if (op == CT_OP_MIN && v < acc) acc = v;
    }
    if (op == CT_OP_AVG) acc /= n;
    return geti(got, i, dt) == acc;
}

/* Counts the elements of got[0..n) that fail elem_ok(.., idx0 + i). */
static size_t bad_elems(const void *got, size_t n, ct_dtype_t dt, ct_op_t op, int size, size_t idx0)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !elem_ok(got, i, dt, op, size, idx0 + i);
    return bad;
}

typedef struct {
    cudaStream_t s;
    char *d_a, *d_b; /* device, MAXN * size * 8 bytes each */
    char *h, *h2;    /* host, as large */
} bufs_t;

static void upload_input(bufs_t *b, void *dst, size_t n, ct_dtype_t dt, int rank)
{
    for (size_t i = 0; i < n; i++) put(b->h, i, dt, iv(i, rank));
    CUDA_OK(cudaMemcpy(dst, b->h, n * esize(dt), cudaMemcpyHostToDevice));
}

static void download(bufs_t *b, const void *src, size_t n, ct_dtype_t dt)
{
    CUDA_OK(cudaMemcpy(b->h2, src, n * esize(dt), cudaMemcpyDeviceToHost));
}

static void test_reductions(ct_comm_t *c, bufs_t *b, ct_dtype_t dt, size_t n, ct_op_t op)
{
    int r = ct_comm_rank(c), size = ct_comm_size(c);
    size_t es = esize(dt);

    /* allreduce out of place: sendbuf untouched */
    upload_input(b, b->d_a, n, dt, r);
    CUDA_OK(cudaMemset(b->d_b, 0, n * es));
    CHECK(ct_comm_allreduce(c, b->d_a, b->d_b, n, dt, op, b->s) == CT_OK);
    CHECK(ct_comm_sync(c, b->s) == CT_OK);
    download(b, b->d_b, n, dt);
    CHECK_MSG(bad_elems(b->h2, n, dt, op, size, 0) == 0, "allreduce %s dt %d op %d n %zu",
              ct_comm_name(c), (int)dt, (int)op, n);
    download(b, b->d_a, n, dt);
    CHECK(memcmp(b->h2, b->h, n * es) == 0);
    /* in place */
    CHECK(ct_comm_allreduce(c, b->d_a, b->d_a, n, dt, op, b->s) == CT_OK);
    CHECK(ct_comm_sync(c, b->s) == CT_OK);
    download(b, b->d_a, n, dt);
    CHECK_MSG(bad_elems(b->h2, n, dt, op, size, 0) == 0, "allreduce in place %s dt %d op %d n %zu",
              ct_comm_name(c), (int)dt, (int)op, n);

    /* reduce_scatter: rank r gets block r of size*n inputs */
    upload_input(b, b->d_a, (size_t)size * n, dt, r);
    CUDA_OK(cudaMemset(b->d_b, 0, n * es));
    CHECK(ct_comm_reduce_scatter(c, b->d_a, b->d_b, n, dt, op, b->s) == CT_OK);
    CHECK(ct_comm_sync(c, b->s) == CT_OK);
    download(b, b->d_b, n, dt);
    CHECK_MSG(bad_elems(b->h2, n, dt, op, size, (size_t)r * n) == 0,
              "reduce_scatter %s dt %d op %d n %zu", ct_comm_name(c), (int)dt, (int)op, n);
    /* in place: recvbuf = sendbuf + rank*n */
    char *own = b->d_a + (size_t)r * n * es;
    CHECK(ct_comm_reduce_scatter(c, b->d_a, own, n, dt, op, b->s) == CT_OK);
    CHECK(ct_comm_sync(c, b->s) == CT_OK);
    download(b, own, n, dt);
    CHECK_MSG(bad_elems(b->h2, n, dt, op, size, (size_t)r * n) == 0,
              "reduce_scatter in place %s dt %d op %d n %zu", ct_comm_name(c), (int)dt, (int)op, n);
}

/* got[q*n + i] must be rank q's element i. */
static size_t bad_gather(const void *got, size_t n, ct_dtype_t dt, int size)
{
    size_t bad = 0;
    for (int q = 0; q < size; q++)
        for (size_t i = 0; i < n; i++) {
            size_t k = (size_t)q * n + i;
            if (is_float(dt))
                bad += getf(got, k, dt) != fval(dt, iv(i, q));
            else
                bad += geti(got, k, dt) != ival(dt, iv(i, q));
        }
    return bad;
}

static void test_gather_bcast(ct_comm_t *c, bufs_t *b, ct_dtype_t dt, size_t n)
{
    int r = ct_comm_rank(c), size = ct_comm_size(c);
    size_t es = esize(dt);

    upload_input(b, b->d_a, n, dt, r);
    CUDA_OK(cudaMemset(b->d_b, 0, (size_t)size * n * es));
    CHECK(ct_comm_allgather(c, b->d_a, b->d_b, n, dt, b->s) == CT_OK);
    CHECK(ct_comm_sync(c, b->s) == CT_OK);
    download(b, b->d_b, (size_t)size * n, dt);
    CHECK_MSG(bad_gather(b->h2, n, dt, size) == 0, "allgather %s dt %d n %zu", ct_comm_name(c),
              (int)dt, n);
    /* in place: sendbuf = recvbuf + rank*n, the other blocks garbage */
    CUDA_OK(cudaMemset(b->d_b, 0x7f, (size_t)size * n * es));
    char *own = b->d_b + (size_t)r * n * es;
    upload_input(b, own, n, dt, r);
    CHECK(ct_comm_allgather(c, own, b->d_b, n, dt, b->s) == CT_OK);
    CHECK(ct_comm_sync(c, b->s) == CT_OK);
    download(b, b->d_b, (size_t)size * n, dt);
    CHECK_MSG(bad_gather(b->h2, n, dt, size) == 0, "allgather in place %s dt %d n %zu",
              ct_comm_name(c), (int)dt, n);

    /* broadcast from the last rank */
    int root = size - 1;
    upload_input(b, b->d_a, n, dt, r);
    CHECK(ct_comm_broadcast(c, b->d_a, n, dt, root, b->s) == CT_OK);
    CHECK(ct_comm_sync(c, b->s) == CT_OK);
    download(b, b->d_a, n, dt);
    for (size_t i = 0; i < n; i++) put(b->h, i, dt, iv(i, root));
    CHECK_MSG(memcmp(b->h2, b->h, n * es) == 0, "broadcast %s dt %d n %zu", ct_comm_name(c),
              (int)dt, n);
}

/* Two allreduces on two groups launched by one bracket (the second in a
 * nested one), then one sync. */
static void test_group_bracket(ct_comm_groups_t *g, bufs_t *b)
{
    const size_t n = 4099;
    const ct_dtype_t dt = CT_DTYPE_F32;
    char *x = b->d_a, *y = b->d_b;
    upload_input(b, x, n, dt, g->rank);
    upload_input(b, y, n, dt, g->dp_rank);
    ct_comm_group_begin();
    CHECK(ct_comm_allreduce(g->world, x, x, n, dt, CT_OP_SUM, b->s) == CT_OK);
    ct_comm_group_begin();
    CHECK(ct_comm_allreduce(g->dp, y, y, n, dt, CT_OP_MAX, b->s) == CT_OK);
    CHECK(ct_comm_group_end() == CT_OK); /* inner: launches nothing yet */
    CHECK(ct_comm_group_end() == CT_OK);
    CHECK(ct_comm_sync(g->world, b->s) == CT_OK);
    download(b, x, n, dt);
    CHECK(bad_elems(b->h2, n, dt, CT_OP_SUM, g->world_size, 0) == 0);
    download(b, y, n, dt);
    CHECK(bad_elems(b->h2, n, dt, CT_OP_MAX, g->dp_size, 0) == 0);
}

static ct_status_t init_nccl(int dp, int tp, double timeout_s, ct_comm_groups_t *g)
{
    ct_status_t st = ct_comm_init_backend(CT_COMM_NCCL, dp, tp, timeout_s, g);
    CHECK(st == CT_OK);
    if (st != CT_OK) return st;
    CHECK(g->backend == CT_COMM_NCCL);
    int ndev = 0;
    CUDA_OK(cudaGetDeviceCount(&ndev));
    CHECK(g->device == g->local_rank % ndev);
    int cur = -1;
    CUDA_OK(cudaGetDevice(&cur));
    CHECK(cur == g->device);
    return CT_OK;
}

/* Everything on the nccl groups g. */
static void test_collectives(ct_comm_groups_t g)
{
    ct_comm_t *groups[3] = {g.world, g.dp, g.tp};
    for (int i = 0; i < 3; i++) {
        CHECK(ct_comm_is_device(groups[i]) == 1);
        ct_comm_t *h = ct_comm_host(groups[i]);
        CHECK(h != NULL && h != groups[i] && !ct_comm_is_device(h));
        CHECK(ct_comm_rank(h) == ct_comm_rank(groups[i]));
        CHECK(ct_comm_size(h) == ct_comm_size(groups[i]));
        CHECK(strcmp(ct_comm_name(h), ct_comm_name(groups[i])) == 0);
        CHECK(ct_comm_host(h) == h);
    }
    ct_comm_set_activity("test_nccl collectives");

    bufs_t b;
    size_t bytes = (size_t)MAXN * (size_t)g.world_size * 8;
    CUDA_OK(cudaStreamCreate(&b.s));
    CUDA_OK(cudaMalloc((void **)&b.d_a, bytes));
    CUDA_OK(cudaMalloc((void **)&b.d_b, bytes));
    b.h = malloc(bytes);
    b.h2 = malloc(bytes);
    CT_ASSERT(b.h && b.h2);

    for (int di = 0; di < 4; di++)
        for (int ci = 0; ci < 3; ci++)
            for (int gi = 0; gi < 3; gi++) {
                for (int op = CT_OP_SUM; op <= CT_OP_MIN; op++)
                    test_reductions(groups[gi], &b, dts[di], counts[ci], (ct_op_t)op);
                test_gather_bcast(groups[gi], &b, dts[di], counts[ci]);
            }
    test_group_bracket(&g, &b);

    /* count 0 is a no-op, even with NULL buffers; the legacy stream works */
    CHECK(ct_comm_allreduce(g.world, NULL, NULL, 0, CT_DTYPE_F32, CT_OP_SUM, b.s) == CT_OK);
    CHECK(ct_comm_allreduce(g.world, b.d_a, b.d_a, 3, CT_DTYPE_F32, CT_OP_SUM, NULL) == CT_OK);
    CHECK(ct_comm_sync(g.world, NULL) == CT_OK);

    /* host-side helpers */
    for (int i = 0; i < 3; i++) CHECK(ct_comm_barrier(groups[i]) == CT_OK);
    CHECK(ct_comm_agree(g.world, CT_OK) == CT_OK);
    CHECK(ct_comm_agree(g.world, g.rank == 0 ? CT_ERR_IO : CT_OK) == CT_ERR_IO);
    int64_t v = g.rank + 1;
    ct_comm_t *hw = ct_comm_host(g.world);
    CHECK(ct_comm_allreduce(hw, &v, &v, 1, CT_DTYPE_I64, CT_OP_SUM, NULL) == CT_OK);
    CHECK(v == (int64_t)g.world_size * (g.world_size + 1) / 2);

    CUDA_OK(cudaFree(b.d_a));
    CUDA_OK(cudaFree(b.d_b));
    CUDA_OK(cudaStreamDestroy(b.s));
    free(b.h);
    free(b.h2);
}

static void test_backend(int dp, int tp)
{
    ct_comm_groups_t g;
    if (init_nccl(dp, tp, 120, &g) != CT_OK) return;
    test_collectives(g);
    ct_comm_finalize(&g);
    CHECK(g.world == NULL && g.dp == NULL && g.tp == NULL);
}

static void test_device_groups(int dp, int tp)
{
    ct_comm_groups_t g, dev;
    ct_status_t st = ct_comm_init(dp, tp, 120, &g);
    CHECK(st == CT_OK);
    if (st != CT_OK) return;
    CHECK(g.device == -1);
    int ndev = 0;
    CUDA_OK(cudaGetDeviceCount(&ndev));
    CUDA_OK(cudaSetDevice(g.local_rank % ndev)); /* the caller picks the device */
    st = ct_comm_device_groups_init(&g, &dev);
    CHECK(st == CT_OK);
    if (st == CT_OK) {
        CHECK(dev.backend == CT_COMM_NCCL && dev.device == g.local_rank % ndev);
        CHECK(dev.rank == g.rank && dev.world_size == g.world_size);
        CHECK(dev.dp_rank == g.dp_rank && dev.dp_size == g.dp_size);
        CHECK(dev.tp_rank == g.tp_rank && dev.tp_size == g.tp_size);
        CHECK(ct_comm_host(dev.world) == g.world && ct_comm_host(dev.dp) == g.dp &&
              ct_comm_host(dev.tp) == g.tp);
        test_collectives(dev);
        ct_comm_device_groups_free(&dev);
        CHECK(dev.world == NULL);
        ct_comm_device_groups_free(&dev); /* a zeroed struct: no-op */
    }
    /* g's groups are still whole */
    int64_t v = 1;
    CHECK(ct_comm_allreduce(g.world, &v, &v, 1, CT_DTYPE_I64, CT_OP_SUM, NULL) == CT_OK);
    CHECK(v == g.world_size);
    ct_comm_finalize(&g);
}

/* Holds the stream until released, or for HOLD_MAX_S at most. The bound
 * matters on a real GPU: after the timeout, ncclCommAbort frees device
 * memory, and cudaFree waits for the whole device, this held stream
 * included (a hung NCCL kernel would see the abort flag and end; a host
 * function does not). Without it the abort waits until the comm watchdog
 * ends the process (observed on an H200: exit 3 after 21 s). */
#define HOLD_MAX_S 14.0
static volatile int hold_released;
static double now_s(void);
static void CUDART_CB hold_stream(void *arg)
{
    double t0 = now_s();
    while (!hold_released && now_s() - t0 < HOLD_MAX_S) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_timeout(void)
{
    const double timeout_s = 10;
    ct_comm_groups_t g;
    if (init_nccl(1, 1, timeout_s, &g) != CT_OK) return;
    cudaStream_t s;
    float *x;
    CUDA_OK(cudaStreamCreate(&s));
    CUDA_OK(cudaMalloc((void **)&x, 1024 * sizeof *x));
    CUDA_OK(cudaMemset(x, 0, 1024 * sizeof *x));
    CHECK(ct_comm_allreduce(g.dp, x, x, 1024, CT_DTYPE_F32, CT_OP_SUM, s) == CT_OK);
    CHECK(ct_comm_sync(g.dp, s) == CT_OK);

    ct_comm_set_activity("test_nccl holding the stream");
    CUDA_OK(cudaLaunchHostFunc(s, hold_stream, NULL));
    ct_status_t st;
    double t0 = now_s();
    CAPTURE_STDERR(st = ct_comm_sync(g.dp, s));
    double waited = now_s() - t0;
    CHECK(st == CT_ERR_COMM);
    CHECK_MSG(waited >= timeout_s && waited < 2 * timeout_s, "waited %.1f s", waited);
    CHECK_CAPTURED("has not completed after 10 s");
    CHECK_CAPTURED("test_nccl holding the stream");
    CHECK_CAPTURED("group dp");
    hold_released = 1;
    CUDA_OK(cudaStreamSynchronize(s));

    /* Every communicator was aborted: later calls fail, without a crash. */
    CAPTURE_STDERR(st = ct_comm_allreduce(g.world, x, x, 1024, CT_DTYPE_F32, CT_OP_SUM, s));
    CHECK(st == CT_ERR_COMM);
    CHECK_CAPTURED("was aborted");
    CAPTURE_STDERR(st = ct_comm_sync(g.tp, s));
    CHECK(st == CT_ERR_COMM);
    CUDA_OK(cudaFree(x));
    CUDA_OK(cudaStreamDestroy(s));
    ct_comm_finalize(&g);
}

int main(int argc, char **argv)
{
    ct_log_init();
    if (!ct_comm_backend_available(CT_COMM_NCCL)) {
        fprintf(stderr, "test_nccl: skipped: no nccl backend (no NCCL in this build, or no CUDA "
                        "device)\n");
        return 77;
    }
    const char *mode = argc > 1 ? argv[1] : "backend";
    int dp = argc > 3 ? atoi(argv[2]) : 0, tp = argc > 3 ? atoi(argv[3]) : 1;
    if (strcmp(mode, "backend") == 0)
        test_backend(dp, tp);
    else if (strcmp(mode, "device_groups") == 0)
        test_device_groups(dp, tp);
    else if (strcmp(mode, "timeout") == 0)
        test_timeout();
    else {
        fprintf(stderr, "usage: test_nccl [backend|device_groups [DP TP]|timeout]\n");
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "test_nccl %s", mode);
    return ct_test_finish(name);
}
