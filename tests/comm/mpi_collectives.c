/* comm/ across ranks, run by mpirun: `mpi_collectives DP TP` with
 * DP*TP processes (DP 0: world/TP). Checks the group layout (tp_rank = rank % tp, dp_rank =
 * rank / tp) and every collective on the world, dp and tp groups against
 * values computed here from each member's rank-dependent data: exact
 * equality, odd counts, in place and not, and the chunked paths (with a
 * small chunk limit). Each rank's exit code is its verdict; mpirun returns
 * non-zero if any rank fails. */
#include <stdarg.h>
#include <stdint.h>

#include "comm/comm.h"
#include "comm/comm_impl.h" /* chunk and piece sizes, to exercise those paths */
#include "core/log.h"
#include "test_util.h"

static ct_comm_groups_t g;
static int dp_n, tp_n;

static const ct_dtype_t dts[] = {CT_DTYPE_F32, CT_DTYPE_F64, CT_DTYPE_I32, CT_DTYPE_I64};
static const char *const dt_names[] = {"f32", "f64", "i32", "i64"};
static const char *const op_names[] = {"sum", "avg", "max", "min"};

static size_t esize(ct_dtype_t dt) { return (dt == CT_DTYPE_F32 || dt == CT_DTYPE_I32) ? 4 : 8; }

/* Rank r's value at global index i: small integers (exact in every dtype and
 * in any summation order), signs and magnitudes that rank differently. */
static double val(int r, size_t i, ct_dtype_t dt)
{
    double sign = (i & 1) ? -1.0 : 1.0;
    double v = sign * (double)(r + 1) * (double)(i % 13 + 1) + (double)(((size_t)r * 7 + i) % 5);
    return dt == CT_DTYPE_I64 ? v * 8589934592.0 : v; /* 2^33: needs 64 bits */
}

static void put(void *b, ct_dtype_t dt, size_t i, double v)
{
    switch (dt) {
    case CT_DTYPE_F32: ((float *)b)[i] = (float)v; break;
    case CT_DTYPE_F64: ((double *)b)[i] = v; break;
    case CT_DTYPE_I32: ((int32_t *)b)[i] = (int32_t)v; break;
    case CT_DTYPE_I64: ((int64_t *)b)[i] = (int64_t)v; break;
    }
}

static double get(const void *b, ct_dtype_t dt, size_t i)
{
    switch (dt) {
    case CT_DTYPE_F32: return ((const float *)b)[i];
    case CT_DTYPE_F64: return ((const double *)b)[i];
    case CT_DTYPE_I32: return ((const int32_t *)b)[i];
    case CT_DTYPE_I64: return (double)((const int64_t *)b)[i];
    }
    return 0;
}

/* World ranks of c's members, in group-rank order. */
static int members(const ct_comm_t *c, int *m)
{
    int n = ct_comm_size(c);
    for (int k = 0; k < n; k++) {
        if (c == g.world) m[k] = k;
        else if (c == g.dp) m[k] = g.tp_rank + k * tp_n;
        else m[k] = g.dp_rank * tp_n + k;
    }
    return n;
}

/* op over the members' values at global index i, as the comm layer gives it. */
static double expect(const int *m, int n, size_t i, ct_dtype_t dt, ct_op_t op)
{
    double acc = val(m[0], i, dt);
    for (int k = 1; k < n; k++) {
        double v = val(m[k], i, dt);
        if (op == CT_OP_MAX) acc = v > acc ? v : acc;
        else if (op == CT_OP_MIN) acc = v < acc ? v : acc;
        else acc += v;
    }
    if (op == CT_OP_AVG) {
        if (dt == CT_DTYPE_I32 || dt == CT_DTYPE_I64) acc = (double)((int64_t)acc / n);
        else acc = acc / n; /* n is 1, 2 or 4 here: exact */
    }
    return acc;
}

/* One CHECK per case: how many elements were wrong, and the first. */
static void __attribute__((format(printf, 5, 6)))
report(size_t bad, size_t first, double got, double want, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    CHECK_MSG(bad == 0, "rank %d: %s: %zu wrong, first at %zu: got %.17g want %.17g", g.rank, what,
              bad, first, got, want);
}
#define REPORT report

static void test_layout(void)
{
    CHECK(g.world_size == dp_n * tp_n);
    CHECK(g.backend == (g.world_size > 1 ? CT_COMM_MPI : CT_COMM_LOCAL));
    CHECK(g.tp_rank == g.rank % tp_n && g.dp_rank == g.rank / tp_n);
    CHECK(g.dp_size == dp_n && g.tp_size == tp_n);
    CHECK(ct_comm_rank(g.world) == g.rank && ct_comm_size(g.world) == g.world_size);
    CHECK(ct_comm_rank(g.dp) == g.dp_rank && ct_comm_size(g.dp) == dp_n);
    CHECK(ct_comm_rank(g.tp) == g.tp_rank && ct_comm_size(g.tp) == tp_n);
    CHECK(strcmp(ct_comm_name(g.world), "world") == 0);
    CHECK(strcmp(ct_comm_name(g.dp), "dp") == 0);
    CHECK(strcmp(ct_comm_name(g.tp), "tp") == 0);
    /* mpirun on one machine: the node is the world, in rank order. */
    CHECK(g.local_size == g.world_size && g.local_rank == g.rank);
    CHECK(g.node == 0 && g.nodes == 1); /* one machine: one node */

    /* Who is in each group: gather the world ranks. */
    ct_comm_t *cs[3] = {g.world, g.dp, g.tp};
    for (int ci = 0; ci < 3; ci++) {
        int m[64], n = members(cs[ci], m);
        int32_t me = g.rank, got[64] = {0};
        CHECK(ct_comm_allgather(cs[ci], &me, got, 1, CT_DTYPE_I32, NULL) == CT_OK);
        for (int k = 0; k < n; k++)
            CHECK_MSG(got[k] == m[k], "rank %d group %s member %d: got %d want %d", g.rank,
                      ct_comm_name(cs[ci]), k, got[k], m[k]);
        CHECK(ct_comm_barrier(cs[ci]) == CT_OK);
    }
}

/* ct_comm_split: odd and even world ranks, ordered by descending rank. Each
 * group holds its parity's ranks, largest first, and all-reduces over them
 * alone. */
static void test_split(void)
{
    ct_comm_t *half = NULL;
    CHECK(ct_comm_split(g.world, g.rank % 2, -g.rank, "parity", &half) == CT_OK);
    if (!half) return;
    int n = (g.world_size - g.rank % 2 + 1) / 2; /* ranks of this parity */
    CHECK(ct_comm_size(half) == n);
    CHECK(strcmp(ct_comm_name(half), "parity") == 0);
    int32_t me = g.rank, got[64] = {0}, sum = 0;
    CHECK(ct_comm_allgather(half, &me, got, 1, CT_DTYPE_I32, NULL) == CT_OK);
    int top = g.world_size - 1 - ((g.world_size - 1 - g.rank % 2) % 2);
    for (int k = 0; k < n; k++)
        CHECK_MSG(got[k] == top - 2 * k, "rank %d parity group member %d: got %d want %d",
                  g.rank, k, got[k], top - 2 * k);
    CHECK(ct_comm_rank(half) == (top - g.rank) / 2);
    CHECK(ct_comm_allreduce(half, &me, &sum, 1, CT_DTYPE_I32, CT_OP_SUM, NULL) == CT_OK);
    int32_t want = 0;
    for (int r = g.rank % 2; r < g.world_size; r += 2) want += r;
    CHECK_MSG(sum == want, "rank %d parity sum %d, want %d", g.rank, sum, want);
    ct_comm_free(half);
}

static void test_allreduce(ct_comm_t *c, char *a, char *b)
{
    /* The large count (several pieces, see main) only for f32, and i64 sum. */
    const size_t counts[] = {1, 7, 1001, 1000003};
    int m[64], n = members(c, m);
    for (int ci = 0; ci < 4; ci++)
        for (int di = 0; di < 4; di++)
            for (int op = 0; op < 4; op++)
                for (int mode = 0; mode < 3; mode++) { /* out of place, in place, chunked */
                    size_t cnt = counts[ci];
                    ct_dtype_t dt = dts[di];
                    if (mode == 2 && (cnt < 7 || di % 2)) continue;
                    if (ci == 3 && !(dt == CT_DTYPE_F32 || (dt == CT_DTYPE_I64 && op == CT_OP_SUM)))
                        continue;
                    for (size_t i = 0; i < cnt; i++) put(a, dt, i, val(g.rank, i, dt));
                    memset(b, 0xff, cnt * esize(dt));
                    size_t chunk = cnt < 100 ? 3 : cnt < 2000 ? 97 : 65537;
                    ct__comm_set_max_chunk(mode == 2 ? chunk : 0);
                    ct_comm_set_activity("allreduce %s %s %s n=%zu", ct_comm_name(c),
                                         dt_names[di], op_names[op], cnt);
                    char *out = mode == 1 ? a : b;
                    CHECK(ct_comm_allreduce(c, a, out, cnt, dt, (ct_op_t)op, NULL) == CT_OK);
                    ct__comm_set_max_chunk(0);
                    size_t bad = 0, first = 0;
                    double got = 0, want = 0;
                    for (size_t i = 0; i < cnt; i++) {
                        double e = expect(m, n, i, dt, (ct_op_t)op), v = get(out, dt, i);
                        if (v != e && !bad++) first = i, got = v, want = e;
                    }
                    REPORT(bad, first, got, want, "allreduce group %s %s %s n=%zu mode %d",
                           ct_comm_name(c), dt_names[di], op_names[op], cnt, mode);
                    if (mode == 0) { /* sendbuf untouched */
                        size_t changed = 0;
                        for (size_t i = 0; i < cnt; i++)
                            changed += get(a, dt, i) != val(g.rank, i, dt);
                        CHECK_MSG(changed == 0, "allreduce changed sendbuf");
                    }
                }
}

static void test_reduce_scatter(ct_comm_t *c, char *a, char *b)
{
    /* 300007 elements per rank take the per-rank reduce path in 1 MiB
     * pieces (see main); only for f32, and i64 avg. */
    const size_t counts[] = {1, 7, 10007, 300007};
    int m[64], n = members(c, m), me = ct_comm_rank(c);
    for (int ci = 0; ci < 4; ci++)
        for (int di = 0; di < 4; di++)
            for (int op = 0; op < 4; op++)
                for (int mode = 0; mode < 4; mode++) { /* bit 0: in place, bit 1: chunked */
                    size_t rc = counts[ci], total = rc * (size_t)n;
                    ct_dtype_t dt = dts[di];
                    if (ci == 3 && (mode & 2)) continue;
                    if (ci == 3 && !(dt == CT_DTYPE_F32 || (dt == CT_DTYPE_I64 && op == CT_OP_AVG)))
                        continue;
                    size_t es = esize(dt);
                    for (size_t i = 0; i < total; i++) put(a, dt, i, val(g.rank, i, dt));
                    memset(b, 0xff, rc * es);
                    char *out = (mode & 1) ? a + (size_t)me * rc * es : b;
                    /* Chunked: below size*recvcount, with a ragged last piece. */
                    ct__comm_set_max_chunk((mode & 2) ? (rc < 100 ? 3 : 3001) : 0);
                    CHECK(ct_comm_reduce_scatter(c, a, out, rc, dt, (ct_op_t)op, NULL) == CT_OK);
                    ct__comm_set_max_chunk(0);
                    size_t bad = 0, first = 0;
                    double got = 0, want = 0;
                    for (size_t i = 0; i < rc; i++) {
                        double e = expect(m, n, (size_t)me * rc + i, dt, (ct_op_t)op);
                        double v = get(out, dt, i);
                        if (v != e && !bad++) first = i, got = v, want = e;
                    }
                    REPORT(bad, first, got, want, "reduce_scatter group %s %s %s n=%zu mode %d",
                           ct_comm_name(c), dt_names[di], op_names[op], rc, mode);
                }
}

static void test_allgather(ct_comm_t *c, char *a, char *b)
{
    const size_t counts[] = {1, 7, 10007};
    int m[64], n = members(c, m), me = ct_comm_rank(c);
    for (int ci = 0; ci < 3; ci++)
        for (int di = 0; di < 4; di++)
            for (int mode = 0; mode < 4; mode++) { /* bit 0: in place, bit 1: chunked */
                size_t sc = counts[ci];
                ct_dtype_t dt = dts[di];
                size_t es = esize(dt);
                memset(b, 0xff, sc * (size_t)n * es);
                char *in = (mode & 1) ? b + (size_t)me * sc * es : a;
                for (size_t i = 0; i < sc; i++) put(in, dt, i, val(g.rank, i, dt));
                ct__comm_set_max_chunk((mode & 2) ? (sc < 100 ? 3 : 3001) : 0);
                CHECK(ct_comm_allgather(c, in, b, sc, dt, NULL) == CT_OK);
                ct__comm_set_max_chunk(0);
                size_t bad = 0, first = 0;
                double got = 0, want = 0;
                for (int k = 0; k < n; k++)
                    for (size_t i = 0; i < sc; i++) {
                        double e = val(m[k], i, dt), v = get(b, dt, (size_t)k * sc + i);
                        if (v != e && !bad++) first = (size_t)k * sc + i, got = v, want = e;
                    }
                REPORT(bad, first, got, want, "allgather group %s %s n=%zu mode %d",
                       ct_comm_name(c), dt_names[di], sc, mode);
            }
}

static void test_broadcast(ct_comm_t *c, char *a)
{
    const size_t counts[] = {1, 7, 1000003};
    int m[64], n = members(c, m);
    for (int ci = 0; ci < 3; ci++)
        for (int root = 0; root < n; root++)
            for (int chunked = 0; chunked < 2; chunked++) {
                size_t cnt = counts[ci];
                ct_dtype_t dt = dts[(ci + root) % 4];
                for (size_t i = 0; i < cnt; i++) put(a, dt, i, val(g.rank, i, dt));
                ct__comm_set_max_chunk(chunked ? (cnt < 100 ? 3 : 65537) : 0);
                CHECK(ct_comm_broadcast(c, a, cnt, dt, root, NULL) == CT_OK);
                ct__comm_set_max_chunk(0);
                size_t bad = 0, first = 0;
                double got = 0, want = 0;
                for (size_t i = 0; i < cnt; i++) {
                    double e = val(m[root], i, dt), v = get(a, dt, i);
                    if (v != e && !bad++) first = i, got = v, want = e;
                }
                REPORT(bad, first, got, want, "broadcast group %s root %d n=%zu chunked %d",
                       ct_comm_name(c), root, cnt, chunked);
            }
}

int main(int argc, char **argv)
{
    ct_log_init();
    if (argc != 3) {
        fprintf(stderr, "usage: mpirun -np DP*TP %s DP TP\n", argv[0]);
        return 2;
    }
    dp_n = atoi(argv[1]);
    tp_n = atoi(argv[2]);

    /* A layout that does not match the world fails on every rank, and the
     * call can be retried. */
    ct_status_t st;
    char want[128];
    CAPTURE_STDERR(st = ct_comm_init(1000, tp_n, 30, &g));
    CHECK(st == CT_ERR_CONFIG);
    snprintf(want, sizeof want, "does not match parallel.dp 1000 x parallel.tp %d", tp_n);
    CHECK_CAPTURED(want);

    st = ct_comm_init(dp_n, tp_n, 60, &g); /* dp_n 0: world/tp */
    CHECK(st == CT_OK);
    if (st != CT_OK) return ct_test_finish("mpi_collectives");
    CHECK(dp_n == 0 || g.dp_size == dp_n);
    dp_n = g.dp_size;

    test_layout();
    test_split();
    /* Reductions above 1 MiB go in 1 MiB pieces, the last one ragged, as
     * large ones do in 8 MiB pieces. */
    ct__comm_piece_bytes = (size_t)1 << 20;
    size_t maxbytes = (size_t)1000003 * 8 * 4;
    char *a = malloc(maxbytes), *b = malloc(maxbytes);
    CT_ASSERT(a && b);
    ct_comm_t *cs[3] = {g.world, g.dp, g.tp};
    for (int ci = 0; ci < 3; ci++) {
        test_allreduce(cs[ci], a, b);
        test_reduce_scatter(cs[ci], a, b);
        test_allgather(cs[ci], a, b);
        test_broadcast(cs[ci], a);
        CHECK(ct_comm_barrier(cs[ci]) == CT_OK);
    }
    free(a);
    free(b);
    char name[64];
    snprintf(name, sizeof name, "mpi_collectives dp=%d tp=%d rank %d", dp_n, tp_n, g.rank);
    ct_comm_finalize(&g);
    return ct_test_finish(name);
}
