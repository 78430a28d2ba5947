/* CUDA ops (kernels.h, "CUDA twins") against the CPU ops on odd shapes.
 *
 * Every input the GPU reads as bf16 is rounded to bf16 on the host first,
 * so the fp32 CPU reference sees exactly the values the GPU sees; what is
 * left to compare is the GPU's bf16 output rounding, fp32 accumulation
 * order and, in flash attention, bf16 intermediates. Outputs the contract
 * says are overwritten are pre-filled with NaN bytes on the device; outputs
 * that accumulate are pre-filled with random values on both sides. Every
 * compare prints its worst element (ratio |d|/limit, < 1 passes) so the
 * tolerances can be judged from a GPU run's log.
 *
 * Exit 77 (ctest SKIP_RETURN_CODE) when there is no CUDA device or the
 * device is unsupported (compute capability < 8.0).
 *
 * Tolerances: an element passes when |gpu - cpu| <= atol + rtol*|cpu|.
 * bf16 keeps 8 significant bits, so rounding to nearest is within 2^-8|x|
 * (half an ulp just above a power of two); the GPU's fp32 value differs
 * slightly from the CPU's before that rounding and may fall on the other
 * side of a rounding boundary, hence rtol 1/128 (twice the rounding bound)
 * for every bf16 output: a correct kernel shows |d|/lim <= ~0.5 there. fp32 outputs computed from
 * the same bf16 inputs with fp32 accumulation differ only by summation
 * order: rtol 1e-4 or tighter. Where atol says "x S" it is multiplied per
 * case by the typical magnitude S of the terms being summed:
 * S = sqrt(K) * rms(a) * rms(b) for a length-K dot product of a and b.
 *
 *   output                        atol          rtol    rel-rms  why
 *   f32 <-> bf16                  exact (bits)                   same RNE as the host helper
 *   encoder fwd out (fp32)        1e-6          1e-6    -        one fp32 add of two bf16 values
 *   encoder bwd dwte, dwpe        1e-5          1e-5    -        fp32 sums over <= N rows, atomics
 *   residual fwd out (fp32)       exact                          one IEEE fp32 add, as on the CPU
 *   layernorm out (bf16)          1e-4          1/128   -        bf16 output
 *   layernorm mean, rstd (fp32)   1e-5          1e-4    -        fp32 row reductions, any order
 *   residual_layernorm res_out    exact                          one IEEE fp32 add
 *   layernorm bwd dinp (fp32)     per element (ln_bwd_bounds): fp32, sums over C then / C
 *   layernorm bwd dinp_bf16       1e-4          1/128   -        bf16 copy of dinp
 *   layernorm bwd dweight, dbias  per element (ln_bwd_bounds): fp32 sums over N rows
 *   gelu fwd, bwd (bf16)          2e-5          1/128   -        bf16 output; the CPU tanh is an
 *                                                                approximation within 3e-7
 *   matmul out, pre_gelu, dinp    1e-3 x S      1/128   1e-2     bf16 output, fp32 accumulation
 *                                                                over K = C (fwd) or OC (dinp)
 *   matmul dweight, dbias (fp32)  1e-4 x S      1e-4    -        fp32 sums over N rows
 *   attention out (bf16)          1e-2          1/128   2e-2     flash kernels round P to bf16
 *                                                                before P@V: error <= 2^-9 max|v|
 *   attention stats (fp32 lse)    1e-4          1e-4    -        fp32 softmax statistics
 *   attention dqkv (bf16)         3e-2          1/128   3e-2     P and dS rounded to bf16, and
 *                                                                rowsum(dO*O) uses the bf16 out
 *   xent losses (fp32)            1e-4          1e-4    -        fp32 log-sum-exp over V
 *   xent dlogits (bf16)           1e-5 x dloss  1/128   -        bf16 output; atol covers p ~ 1
 *   adamw master (fp32)           1e-6          1e-6    -        same formula; FMA contraction and
 *                                                                device powf differ by a few ulp
 *   adamw m                       1e-8          1e-5    -        a few ulp of the terms (~1e-2)
 *   adamw v                       1e-11         1e-5    -        a few ulp of the terms (~1e-3)
 *   adamw params_bf16, seed 0     exact                          RNE of the GPU's own master
 *   sumsq                         0             1e-5    -        fp32 two-pass reduction vs double
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/kernels.h"
#include "test_util.h"

typedef struct {
    double atol, rtol, rel_rms; /* rel_rms: bound on rms(gpu-cpu)/rms(cpu), 0 = none */
} tol_t;

static const tol_t TOL_EXACT = {0, 0, 0};
static const tol_t TOL_ENC_FWD = {1e-6, 1e-6, 0};
static const tol_t TOL_ENC_BWD = {1e-5, 1e-5, 0};
static const tol_t TOL_LN_OUT = {1e-4, 1.0 / 128, 0};
static const tol_t TOL_LN_STATS = {1e-5, 1e-4, 0};
static const tol_t TOL_LN_DINP_BF16 = {1e-4, 1.0 / 128, 0};
static const tol_t TOL_GELU = {2e-5, 1.0 / 128, 0};
static const tol_t TOL_MM_BF16 = {1e-3 /* x S */, 1.0 / 128, 1e-2};
static const tol_t TOL_MM_F32 = {1e-4 /* x S */, 1e-4, 0};
static const tol_t TOL_ATT_OUT = {1e-2, 1.0 / 128, 2e-2};
static const tol_t TOL_ATT_STATS = {1e-4, 1e-4, 0};
static const tol_t TOL_ATT_DQKV = {3e-2, 1.0 / 128, 3e-2};
static const tol_t TOL_XENT_LOSS = {1e-4, 1e-4, 0};
static const tol_t TOL_XENT_DLOGITS = {1e-5 /* x dloss */, 1.0 / 128, 0};
static const tol_t TOL_ADAM_MASTER = {1e-6, 1e-6, 0};
static const tol_t TOL_ADAM_M = {1e-8, 1e-5, 0};
static const tol_t TOL_ADAM_V = {1e-11, 1e-5, 0};
#define SUMSQ_RTOL 1e-5

static ct_rng_t rng;
static ct_cuda_t *ctx;

/* ---- host helpers -------------------------------------------------------- */

/* fp32 -> bf16, round to nearest even; NaN stays a (quiet) NaN. */
static uint16_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float bf2f(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float round_bf(float x) { return bf2f(f2bf(x)); }

static int bf_isnan(uint16_t b) { return (b & 0x7fffu) > 0x7f80u; }

static void *h_alloc(size_t bytes)
{
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) {
        fprintf(stderr, "test_cuda_ops: host out of memory\n");
        exit(2);
    }
    return p;
}

static float *h_f(long n) { return h_alloc((size_t)n * sizeof(float)); }

static float *h_copy(const float *src, long n)
{
    float *p = h_f(n);
    memcpy(p, src, (size_t)n * sizeof(float));
    return p;
}

/* scale * N(0,1) + offset, fp32. */
static float *h_randn(long n, float scale, float offset)
{
    float *p = h_f(n);
    for (long i = 0; i < n; i++) p[i] = offset + scale * ct_rng_normal(&rng);
    return p;
}

/* Same, rounded to bf16 values. */
static float *h_randn_bf(long n, float scale, float offset)
{
    float *p = h_randn(n, scale, offset);
    for (long i = 0; i < n; i++) p[i] = round_bf(p[i]);
    return p;
}

static double rms(const float *x, long n)
{
    double s = 0.0;
    for (long i = 0; i < n; i++) s += (double)x[i] * x[i];
    return n > 0 ? sqrt(s / (double)n) : 0.0;
}

static tol_t tol_x(tol_t t, double scale)
{
    t.atol *= scale;
    return t;
}

/* ---- device helpers ------------------------------------------------------- */

static void *d_alloc(size_t bytes, const char *what)
{
    void *p = NULL;
    ct_status_t st = ct_cuda_alloc(ctx, bytes ? bytes : 16, what, &p);
    if (st != CT_OK || !p) {
        fprintf(stderr, "test_cuda_ops: ct_cuda_alloc(%zu, %s) failed: %s\n", bytes, what,
                ct_status_name(st));
        exit(1);
    }
    return p;
}

static void d_free(void *p)
{
    if (p) ct_cuda_dealloc(p);
}

static void up_raw(void *d, const void *h, size_t bytes)
{
    if (bytes) ct_cuda_copy(d, h, bytes, NULL);
    ct_cuda_stream_sync(NULL);
}

static void down_raw(void *h, const void *d, size_t bytes)
{
    ct_cuda_stream_sync(NULL);
    if (bytes) ct_cuda_copy(h, d, bytes, NULL);
    ct_cuda_stream_sync(NULL);
}

static float *d_up_f32(const float *h, long n, const char *what)
{
    float *d = d_alloc((size_t)n * sizeof(float), what);
    up_raw(d, h, (size_t)n * sizeof(float));
    return d;
}

/* Uploads host floats (already bf16 values) as bf16. */
static ct_bf16_t *d_up_bf16(const float *h, long n, const char *what)
{
    uint16_t *bits = h_alloc((size_t)n * 2);
    for (long i = 0; i < n; i++) bits[i] = f2bf(h[i]);
    ct_bf16_t *d = d_alloc((size_t)n * 2, what);
    up_raw(d, bits, (size_t)n * 2);
    free(bits);
    return d;
}

static int32_t *d_up_i32(const int32_t *h, long n, const char *what)
{
    int32_t *d = d_alloc((size_t)n * 4, what);
    up_raw(d, h, (size_t)n * 4);
    return d;
}

/* All bytes 0xFF: NaN as fp32 and as bf16. */
static void d_fill_nan(void *d, size_t bytes)
{
    void *h = h_alloc(bytes);
    memset(h, 0xff, bytes);
    up_raw(d, h, bytes);
    free(h);
}

static void down_f32(float *h, const float *d, long n) { down_raw(h, d, (size_t)n * 4); }

static void down_bf16(float *h, const ct_bf16_t *d, long n)
{
    uint16_t *bits = h_alloc((size_t)n * 2);
    down_raw(bits, d, (size_t)n * 2);
    for (long i = 0; i < n; i++) h[i] = bf2f(bits[i]);
    free(bits);
}

/* ---- comparison ---------------------------------------------------------- */

/* |gpu - cpu| <= atol + rtol*|cpu| element-wise (NaN fails); prints the
 * worst element as [row,col] for row length `cols` (0: flat index). */
static void compare_b(const char *tag, const char *what, const float *gpu, const float *cpu, long n,
                      long cols, tol_t tol, const double *bound)
{
    long bad = 0, worst = -1;
    double worst_ratio = -1.0, se = 0.0, sr = 0.0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)gpu[i] - (double)cpu[i]);
        double lim = bound ? bound[i] : tol.atol + tol.rtol * fabs((double)cpu[i]);
        double ratio = d <= lim ? (lim > 0 ? d / lim : 0.0) : (isnan(d) || lim == 0 ? INFINITY : d / lim);
        if (!(d <= lim)) bad++;
        if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
        se += isnan(d) ? INFINITY : d * d;
        sr += (double)cpu[i] * cpu[i];
    }
    char where[64] = "-";
    if (worst >= 0) {
        if (cols > 0)
            snprintf(where, sizeof where, "[%ld,%ld]", worst / cols, worst % cols);
        else
            snprintf(where, sizeof where, "[%ld]", worst);
    }
    double rel_rms = sr > 0 ? sqrt(se / sr) : sqrt(se);
    double g = worst >= 0 ? gpu[worst] : 0.0, c = worst >= 0 ? cpu[worst] : 0.0;
    fprintf(stderr, "  %s %s: n=%ld worst %s gpu=%.8g cpu=%.8g |d|/lim=%.3g rel_rms=%.2e\n", tag,
            what, n, where, g, c, worst_ratio, rel_rms);
    if (bound)
        CHECK_MSG(bad == 0,
                  "%s %s: %ld of %ld elements outside their bound; worst %s gpu=%.8g cpu=%.8g "
                  "|d|=%.3g bound=%.3g",
                  tag, what, bad, n, where, g, c, fabs(g - c), worst >= 0 ? bound[worst] : 0.0);
    else
        CHECK_MSG(bad == 0,
                  "%s %s: %ld of %ld elements outside |gpu-cpu| <= %.3g + %.3g*|cpu|; worst %s "
                  "gpu=%.8g cpu=%.8g |d|=%.3g",
                  tag, what, bad, n, tol.atol, tol.rtol, where, g, c, fabs(g - c));
    if (tol.rel_rms > 0 && n > 0)
        CHECK_MSG(rel_rms <= tol.rel_rms, "%s %s: rms(gpu-cpu)/rms(cpu) = %.3g > %.3g", tag, what,
                  rel_rms, tol.rel_rms);
}

static void compare(const char *tag, const char *what, const float *gpu, const float *cpu, long n,
                    long cols, tol_t tol)
{
    compare_b(tag, what, gpu, cpu, n, cols, tol, NULL);
}

/* Downloads a bf16 / fp32 device array and compares it. */
static void cmp_bf16(const char *tag, const char *what, const ct_bf16_t *d, const float *cpu,
                     long n, long cols, tol_t tol)
{
    float *g = h_f(n);
    down_bf16(g, d, n);
    compare(tag, what, g, cpu, n, cols, tol);
    free(g);
}

static void cmp_f32(const char *tag, const char *what, const float *d, const float *cpu, long n,
                    long cols, tol_t tol)
{
    float *g = h_f(n);
    down_f32(g, d, n);
    compare(tag, what, g, cpu, n, cols, tol);
    free(g);
}

/* Bit-exact compare of 16- or 32-bit words; nan_ok: any NaN matches any NaN. */
static void compare_bits(const char *tag, const char *what, const void *gpu, const void *want,
                         long n, int width, int nan_ok)
{
    long bad = 0, first = -1;
    for (long i = 0; i < n; i++) {
        uint32_t a, b;
        int an, bn;
        if (width == 2) {
            a = ((const uint16_t *)gpu)[i], b = ((const uint16_t *)want)[i];
            an = bf_isnan((uint16_t)a), bn = bf_isnan((uint16_t)b);
        } else {
            a = ((const uint32_t *)gpu)[i], b = ((const uint32_t *)want)[i];
            an = (a & 0x7fffffffu) > 0x7f800000u, bn = (b & 0x7fffffffu) > 0x7f800000u;
        }
        if (a == b || (nan_ok && an && bn)) continue;
        if (first < 0) first = i;
        bad++;
    }
    uint32_t fa = 0, fb = 0;
    if (first >= 0) {
        fa = width == 2 ? ((const uint16_t *)gpu)[first] : ((const uint32_t *)gpu)[first];
        fb = width == 2 ? ((const uint16_t *)want)[first] : ((const uint32_t *)want)[first];
    }
    CHECK_MSG(bad == 0, "%s %s: %ld of %ld words differ, first [%ld] gpu=0x%0*x want=0x%0*x", tag,
              what, bad, n, first, 2 * width, fa, 2 * width, fb);
}

/* ---- f32 <-> bf16 ----------------------------------------------------------- */

static void test_convert(void)
{
    const long n = 1000003;
    uint32_t *src = h_alloc((size_t)n * 4);
    for (long i = 0; i < n; i++) src[i] = (uint32_t)(ct_rng_u64(&rng) >> 32);
    const uint32_t special[] = {
        0x00000000u, 0x80000000u, 0x3f800000u, 0x7f800000u, 0xff800000u, 0x7fc00000u,
        0xffc00001u, 0x7f800001u, 0x7f7fffffu, 0xff7fffffu, 0x00000001u, 0x007fffffu,
        0x80008000u, 0x3f808000u, 0x3f818000u, 0x3f808001u, 0xbf808000u, 0xbf818000u,
        0x7f7f8000u, 0x00008000u, 0x00018000u, 0x3f80ffffu, 0x477fe000u};
    memcpy(src, special, sizeof special);
    uint16_t *want = h_alloc((size_t)n * 2), *got = h_alloc((size_t)n * 2);
    for (long i = 0; i < n; i++) {
        float f;
        memcpy(&f, &src[i], 4);
        want[i] = f2bf(f);
    }
    float *d_src = d_alloc((size_t)n * 4, "convert src");
    ct_bf16_t *d_dst = d_alloc((size_t)n * 2, "convert dst");
    up_raw(d_src, src, (size_t)n * 4);
    const long ns[] = {1, 7, 23, n};
    for (int k = 0; k < 4; k++) {
        char tag[64];
        snprintf(tag, sizeof tag, "f32_to_bf16 n=%ld", ns[k]);
        d_fill_nan(d_dst, (size_t)n * 2);
        ct_cuda_f32_to_bf16(d_dst, d_src, ns[k], NULL);
        down_raw(got, d_dst, (size_t)n * 2);
        compare_bits(tag, "bits", got, want, ns[k], 2, 1);
        /* Nothing past n is written. */
        long past = 0;
        for (long i = ns[k]; i < n; i++) past += got[i] != 0xffffu;
        CHECK_MSG(past == 0, "%s: %ld elements past n written", tag, past);
    }

    /* bf16 -> f32: all 65536 patterns (and 3 more for an odd count). */
    const long m = 65539;
    uint16_t *bsrc = h_alloc((size_t)m * 2);
    uint32_t *fwant = h_alloc((size_t)m * 4), *fgot = h_alloc((size_t)m * 4);
    for (long i = 0; i < m; i++) bsrc[i] = (uint16_t)(i & 0xffff), fwant[i] = (uint32_t)bsrc[i] << 16;
    ct_bf16_t *d_b = d_alloc((size_t)m * 2, "convert bsrc");
    float *d_f = d_alloc((size_t)m * 4, "convert fdst");
    up_raw(d_b, bsrc, (size_t)m * 2);
    d_fill_nan(d_f, (size_t)m * 4);
    ct_cuda_bf16_to_f32(d_f, d_b, m, NULL);
    down_raw(fgot, d_f, (size_t)m * 4);
    compare_bits("bf16_to_f32 n=65539", "bits", fgot, fwant, m, 4, 1);
    d_free(d_src), d_free(d_dst), d_free(d_b), d_free(d_f);
    free(src), free(want), free(got), free(bsrc), free(fwant), free(fgot);
}

/* ---- encoder ------------------------------------------------------------------ */

static void test_encoder(int B, int T, int C, int Vp)
{
    char tag[96];
    snprintf(tag, sizeof tag, "encoder B=%d T=%d C=%d Vp=%d", B, T, C, Vp);
    long N = (long)B * T;
    int32_t *ids = h_alloc((size_t)N * 4);
    /* Few distinct ids, so dwte rows collect several contributions. */
    const int32_t pick[4] = {0, Vp / 3, 2 * Vp / 3, Vp - 1};
    for (long i = 0; i < N; i++) ids[i] = pick[ct_rng_below(&rng, 4)];
    ids[0] = Vp - 1;
    float *wte = h_randn_bf((long)Vp * C, 1.0f, 0.0f), *wpe = h_randn_bf((long)T * C, 1.0f, 0.0f);
    float *out = h_f(N * C);
    ct_encoder_forward(out, ids, wte, wpe, B, T, C);
    int32_t *d_ids = d_up_i32(ids, N, "enc ids");
    ct_bf16_t *d_wte = d_up_bf16(wte, (long)Vp * C, "enc wte");
    ct_bf16_t *d_wpe = d_up_bf16(wpe, (long)T * C, "enc wpe");
    float *d_out = d_alloc((size_t)N * C * 4, "enc out");
    d_fill_nan(d_out, (size_t)N * C * 4);
    ct_cuda_encoder_forward(d_out, d_ids, d_wte, d_wpe, B, T, C, NULL);
    cmp_f32(tag, "fwd out", d_out, out, N * C, C, TOL_ENC_FWD);

    float *dout = h_randn(N * C, 1.0f, 0.0f);
    float *dwte = h_randn((long)Vp * C, 1.0f, 0.0f), *dwpe = h_randn((long)T * C, 1.0f, 0.0f);
    float *d_dout = d_up_f32(dout, N * C, "enc dout");
    float *d_dwte = d_up_f32(dwte, (long)Vp * C, "enc dwte");
    float *d_dwpe = d_up_f32(dwpe, (long)T * C, "enc dwpe");
    ct_encoder_backward(dwte, dwpe, dout, ids, B, T, C);
    ct_cuda_encoder_backward(d_dwte, d_dwpe, d_dout, d_ids, B, T, C, NULL);
    cmp_f32(tag, "bwd dwte (+=)", d_dwte, dwte, (long)Vp * C, C, TOL_ENC_BWD);
    cmp_f32(tag, "bwd dwpe (+=)", d_dwpe, dwpe, (long)T * C, C, TOL_ENC_BWD);
    d_free(d_ids), d_free(d_wte), d_free(d_wpe), d_free(d_out), d_free(d_dout), d_free(d_dwte);
    d_free(d_dwpe);
    free(ids), free(wte), free(wpe), free(out), free(dout), free(dwte), free(dwpe);
}

/* ---- layernorm ---------------------------------------------------------------- */

/* Adds to bd_* a bound on |gpu - cpu| for one LayerNorm backward call on
 * these inputs (dinp, dw, db: the values before the call). Both sides get
 * the same fp32 inputs and statistics (bf16-exact dout and weight), so they
 * differ by fp32 rounding alone, u = 2^-24 per operation, to first order:
 *  - dweight, dbias: init + sum over N rows of t = (x - m) * s * dout (t =
 *    dout for dbias), each t within 3u of exact. The CPU adds row after
 *    row (depth N); the GPU sums rows per lane, then 8 warps, then <= 16
 *    blocks of a group, then <= 16 groups, then adds to init (the three-
 *    kernel fallback: chunks of rows, then chunks): depth <= N + 41. A sum
 *    of depth k is within k u (|init| + sum |t|) of exact, so the two are
 *    within (2N + 47) u (|init| + sum |t|).
 *  - dinp: init + (dn - a1 - n a2) s with dn = w dout, n = (x - m) s,
 *    a1 = mean(dn), a2 = mean(dn n) over C: a1 within (C + 2) u A1, a2 within
 *    (C + 5) u A2 on each side (A1 = mean |dn|, A2 = mean |dn n|), each of the
 *    other few operations within 4u of its terms, so the two are within
 *    2 (s ((C + 2) u A1 + |n| (C + 5) u A2 + 4u (|dn| + |a1| + |n a2|)) +
 *    u (|init| + |term|)).
 * Both bounds are doubled for the second-order terms left out. */
static void ln_bwd_bounds(double *bd_dinp, double *bd_dw, double *bd_db, const float *dinp,
                          const float *dw, const float *db, const float *dout, const float *inp,
                          const float *w, const float *mean, const float *rstd, int N, int C)
{
    const double u = ldexp(1.0, -24);
    double *sw = calloc((size_t)C, sizeof(double)), *sb = calloc((size_t)C, sizeof(double));
    CT_ASSERT(sw && sb);
    for (int r = 0; r < N; r++) {
        const float *x = inp + (long)r * C, *d = dout + (long)r * C;
        const double m = mean[r], sd = rstd[r];
        double a1 = 0, a2 = 0, A1 = 0, A2 = 0;
        for (int c = 0; c < C; c++) {
            double nr = (x[c] - m) * sd, dn = (double)w[c] * d[c];
            a1 += dn, a2 += dn * nr, A1 += fabs(dn), A2 += fabs(dn * nr);
            sw[c] += fabs(nr * d[c]);
            sb[c] += fabs((double)d[c]);
        }
        a1 /= C, a2 /= C, A1 /= C, A2 /= C;
        for (int c = 0; c < C; c++) {
            const long i = (long)r * C + c;
            double nr = (x[c] - m) * sd, dn = (double)w[c] * d[c];
            double term = (dn - a1 - nr * a2) * sd;
            double e = sd * ((C + 2) * u * A1 + fabs(nr) * (C + 5) * u * A2 +
                             4 * u * (fabs(dn) + fabs(a1) + fabs(nr * a2))) +
                       u * (fabs((double)dinp[i]) + fabs(term));
            bd_dinp[i] += 2 * 2 * e;
        }
    }
    for (int c = 0; c < C; c++) {
        bd_dw[c] += 2 * (2.0 * N + 47) * u * (fabs((double)dw[c]) + sw[c]);
        bd_db[c] += 2 * (2.0 * N + 47) * u * (fabs((double)db[c]) + sb[c]);
    }
    free(sw), free(sb);
}

static void test_layernorm(int N, int C)
{
    char tag[96];
    snprintf(tag, sizeof tag, "layernorm N=%d C=%d", N, C);
    long n = (long)N * C;
    float *inp = h_randn(n, 2.0f, 3.0f); /* fp32 residual stream, nonzero mean */
    float *w = h_randn_bf(C, 0.5f, 1.0f), *b = h_randn_bf(C, 0.5f, 0.0f);
    float *out = h_f(n), *mean = h_f(N), *rstd = h_f(N);
    ct_layernorm_forward(out, mean, rstd, inp, w, b, N, C);
    float *d_inp = d_up_f32(inp, n, "ln inp");
    ct_bf16_t *d_w = d_up_bf16(w, C, "ln w"), *d_b = d_up_bf16(b, C, "ln b");
    ct_bf16_t *d_out = d_alloc((size_t)n * 2, "ln out");
    float *d_mean = d_alloc((size_t)N * 4, "ln mean"), *d_rstd = d_alloc((size_t)N * 4, "ln rstd");
    d_fill_nan(d_out, (size_t)n * 2), d_fill_nan(d_mean, (size_t)N * 4);
    d_fill_nan(d_rstd, (size_t)N * 4);
    /* the bf16 copy of the input row kept for the backward: rounded to nearest */
    float *inp_bf = h_f(n);
    for (long i = 0; i < n; i++) inp_bf[i] = round_bf(inp[i]);
    ct_bf16_t *d_row_bf = d_alloc((size_t)n * 2, "ln row_bf");
    d_fill_nan(d_row_bf, (size_t)n * 2);
    ct_cuda_layernorm_forward(d_out, d_mean, d_rstd, d_row_bf, d_inp, d_w, d_b, N, C, NULL);
    cmp_bf16(tag, "fwd out", d_out, out, n, C, TOL_LN_OUT);
    cmp_bf16(tag, "fwd row_bf", d_row_bf, inp_bf, n, C, TOL_EXACT);
    cmp_f32(tag, "fwd mean", d_mean, mean, N, 0, TOL_LN_STATS);
    cmp_f32(tag, "fwd rstd", d_rstd, rstd, N, 0, TOL_LN_STATS);
    /* The backward gets the GPU's statistics on both sides. */
    float *mean_g = h_f(N), *rstd_g = h_f(N);
    down_f32(mean_g, d_mean, N), down_f32(rstd_g, d_rstd, N);

    /* Fused residual + LayerNorm, out of place and in place. */
    char tag2[112];
    snprintf(tag2, sizeof tag2, "residual_layernorm N=%d C=%d", N, C);
    float *res_in = h_randn(n, 2.0f, 3.0f), *x = h_randn_bf(n, 1.0f, 0.0f), *res = h_f(n);
    for (long i = 0; i < n; i++) res[i] = res_in[i] + x[i];
    float *out2 = h_f(n), *mean2 = h_f(N), *rstd2 = h_f(N);
    ct_layernorm_forward(out2, mean2, rstd2, res, w, b, N, C);
    float *d_res_in = d_up_f32(res_in, n, "rln res_in");
    ct_bf16_t *d_x = d_up_bf16(x, n, "rln x");
    float *d_res_out = d_alloc((size_t)n * 4, "rln res_out");
    for (int inplace = 0; inplace < 2; inplace++) {
        float *ro = inplace ? d_res_in : d_res_out;
        if (!inplace) d_fill_nan(d_res_out, (size_t)n * 4);
        d_fill_nan(d_out, (size_t)n * 2), d_fill_nan(d_mean, (size_t)N * 4);
        d_fill_nan(d_rstd, (size_t)N * 4);
        d_fill_nan(d_row_bf, (size_t)n * 2);
        /* out of place without the bf16 copy, in place with it */
        ct_cuda_residual_layernorm_forward(ro, d_out, d_mean, d_rstd, inplace ? d_row_bf : NULL,
                                           d_res_in, d_x, d_w, d_b, N, C, NULL);
        cmp_f32(tag2, inplace ? "res_out (in place)" : "res_out", ro, res, n, C, TOL_EXACT);
        if (inplace) {
            for (long i = 0; i < n; i++) inp_bf[i] = round_bf(res[i]);
            cmp_bf16(tag2, "row_bf (in place)", d_row_bf, inp_bf, n, C, TOL_EXACT);
        }
        cmp_bf16(tag2, inplace ? "out (in place)" : "out", d_out, out2, n, C, TOL_LN_OUT);
        cmp_f32(tag2, "mean", d_mean, mean2, N, 0, TOL_LN_STATS);
        cmp_f32(tag2, "rstd", d_rstd, rstd2, N, 0, TOL_LN_STATS);
    }

    /* Backward, twice: with the bf16 copy, then without; both accumulate.
     * Bounds per element (ln_bwd_bounds), carried over from the first call
     * into the second since the second accumulates onto the first's result. */
    float *dout = h_randn_bf(n, 1.0f, 0.0f);
    float *dinp = h_randn(n, 1.0f, 0.0f), *dw = h_randn(C, 1.0f, 0.0f), *db = h_randn(C, 1.0f, 0.0f);
    ct_bf16_t *d_dout = d_up_bf16(dout, n, "ln dout");
    float *d_dinp = d_up_f32(dinp, n, "ln dinp"), *d_dw = d_up_f32(dw, C, "ln dw");
    float *d_db = d_up_f32(db, C, "ln db");
    ct_bf16_t *d_dinp_bf = d_alloc((size_t)n * 2, "ln dinp_bf16");
    long nscr = ct_cuda_layernorm_scratch_floats(N, C);
    float *d_scr = d_alloc((size_t)(nscr > 0 ? nscr : 1) * 4, "ln scratch");
    up_raw(d_mean, mean_g, (size_t)N * 4), up_raw(d_rstd, rstd_g, (size_t)N * 4);
    double *bd_dinp = calloc((size_t)n, sizeof(double));
    double *bd_dw = calloc((size_t)C, sizeof(double)), *bd_db = calloc((size_t)C, sizeof(double));
    CT_ASSERT(bd_dinp && bd_dw && bd_db);
    float *g = h_f(n);
    /* the third call takes the input as a bf16 copy (the GPU model's), the
     * reference the same rounded values */
    for (long i = 0; i < n; i++) inp_bf[i] = round_bf(inp[i]);
    ct_bf16_t *d_inp_bf = d_up_bf16(inp_bf, n, "ln inp bf16");
    static const char *const what[3][3] = {
        {"bwd dinp (+=)", "bwd dweight (+=)", "bwd dbias (+=)"},
        {"bwd dinp (+= twice)", "bwd dweight (+= twice)", "bwd dbias (+= twice)"},
        {"bwd dinp (bf16 input)", "bwd dweight (bf16 input)", "bwd dbias (bf16 input)"}};
    for (int call = 0; call < 3; call++) {
        const float *x_in = call == 2 ? inp_bf : inp;
        ln_bwd_bounds(bd_dinp, bd_dw, bd_db, dinp, dw, db, dout, x_in, w, mean_g, rstd_g, N, C);
        ct_layernorm_backward(dinp, dw, db, dout, x_in, w, mean_g, rstd_g, N, C);
        d_fill_nan(d_dinp_bf, (size_t)n * 2);
        if (call < 2)
            ct_cuda_layernorm_backward(d_dinp, call == 0 ? d_dinp_bf : NULL, d_dw, d_db, d_dout,
                                       d_inp, d_w, d_mean, d_rstd, d_scr, N, C, NULL);
        else
            ct_cuda_layernorm_backward_bf16in(d_dinp, d_dinp_bf, d_dw, d_db, d_dout, d_inp_bf,
                                              d_w, d_mean, d_rstd, d_scr, N, C, NULL);
        down_f32(g, d_dinp, n);
        compare_b(tag, what[call][0], g, dinp, n, C, TOL_EXACT, bd_dinp);
        if (call != 1) cmp_bf16(tag, "bwd dinp_bf16", d_dinp_bf, dinp, n, C, TOL_LN_DINP_BF16);
        down_f32(g, d_dw, C);
        compare_b(tag, what[call][1], g, dw, C, 0, TOL_EXACT, bd_dw);
        down_f32(g, d_db, C);
        compare_b(tag, what[call][2], g, db, C, 0, TOL_EXACT, bd_db);
    }
    d_free(d_inp_bf);
    free(bd_dinp), free(bd_dw), free(bd_db), free(g);
    d_free(d_inp), d_free(d_w), d_free(d_b), d_free(d_out), d_free(d_mean), d_free(d_rstd);
    d_free(d_res_in), d_free(d_x), d_free(d_res_out), d_free(d_dout), d_free(d_dinp);
    d_free(d_dw), d_free(d_db), d_free(d_dinp_bf), d_free(d_scr), d_free(d_row_bf);
    free(inp), free(w), free(b), free(out), free(mean), free(rstd), free(mean_g), free(rstd_g);
    free(inp_bf);
    free(res_in), free(x), free(res), free(out2), free(mean2), free(rstd2), free(dout);
    free(dinp), free(dw), free(db);
}

/* ---- gelu and residual ---------------------------------------------------------- */

static void test_gelu_residual(long n)
{
    char tag[64];
    snprintf(tag, sizeof tag, "gelu n=%ld", n);
    float *x = h_randn_bf(n, 3.0f, 0.0f);
    if (n > 4) x[0] = 0.0f, x[1] = 12.0f, x[2] = -12.0f, x[3] = round_bf(-0.75f);
    float *y = h_f(n);
    ct_gelu_forward(y, x, n);
    ct_bf16_t *d_x = d_up_bf16(x, n, "gelu x"), *d_y = d_alloc((size_t)n * 2, "gelu y");
    d_fill_nan(d_y, (size_t)n * 2);
    ct_cuda_gelu_forward(d_y, d_x, n, NULL);
    cmp_bf16(tag, "fwd out", d_y, y, n, 0, TOL_GELU);

    /* The reference is gelu' of the tanh approximation in double: in the
     * saturated tail (|x| > 4) the CPU op's vectorised tanh (within 3e-7 of
     * tanhf) is amplified by x^3 into errors of ~1e-4, which would swamp a
     * 2e-5 tolerance, while the exact derivative is ~1e-6 there. */
    float *dout = h_randn_bf(n, 1.0f, 0.0f), *dinp = h_f(n);
    for (long i = 0; i < n; i++) {
        double xi = x[i], k = 0.7978845608028654, u = k * (xi + 0.044715 * xi * xi * xi);
        double th = tanh(u);
        double g = 0.5 * (1.0 + th) + 0.5 * xi * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * xi * xi);
        dinp[i] = (float)(g * dout[i]);
    }
    ct_bf16_t *d_dout = d_up_bf16(dout, n, "gelu dout");
    ct_bf16_t *d_dinp = d_alloc((size_t)n * 2, "gelu dinp");
    d_fill_nan(d_dinp, (size_t)n * 2);
    ct_cuda_gelu_backward(d_dinp, d_x, d_dout, n, NULL);
    cmp_bf16(tag, "bwd dinp", d_dinp, dinp, n, 0, TOL_GELU);
    ct_cuda_gelu_backward(d_dout, d_x, d_dout, n, NULL); /* dinp == dout */
    cmp_bf16(tag, "bwd dinp (in place)", d_dout, dinp, n, 0, TOL_GELU);

    snprintf(tag, sizeof tag, "residual n=%ld", n);
    float *a = h_randn(n, 1.0f, 0.0f), *b = h_randn_bf(n, 1.0f, 0.0f), *o = h_f(n);
    ct_residual_forward(o, a, b, n);
    float *d_a = d_up_f32(a, n, "res a"), *d_o = d_alloc((size_t)n * 4, "res out");
    ct_bf16_t *d_b = d_up_bf16(b, n, "res b");
    d_fill_nan(d_o, (size_t)n * 4);
    ct_cuda_residual_forward(d_o, d_a, d_b, n, NULL);
    cmp_f32(tag, "fwd out", d_o, o, n, 0, TOL_EXACT);
    ct_cuda_residual_forward(d_a, d_a, d_b, n, NULL); /* out == a */
    cmp_f32(tag, "fwd out (in place)", d_a, o, n, 0, TOL_EXACT);
    d_free(d_x), d_free(d_y), d_free(d_dout), d_free(d_dinp), d_free(d_a), d_free(d_o);
    d_free(d_b);
    free(x), free(y), free(dout), free(dinp), free(a), free(b), free(o);
}

/* ---- matmul -------------------------------------------------------------------- */

static void test_matmul(int N, int C, int OC)
{
    char tag[96];
    snprintf(tag, sizeof tag, "matmul N=%d C=%d OC=%d", N, C, OC);
    long nin = (long)N * C, nw = (long)OC * C, nout = (long)N * OC;
    float *inp = h_randn_bf(nin, 1.0f, 0.0f), *w = h_randn_bf(nw, 0.5f, 0.0f);
    float *bias = h_randn_bf(OC, 1.0f, 0.0f);
    float *out_nb = h_f(nout), *out_b = h_f(nout);
    ct_matmul_forward_ref(out_nb, inp, w, NULL, N, C, OC);
    ct_matmul_forward_ref(out_b, inp, w, bias, N, C, OC);
    double s_fwd = sqrt((double)C) * rms(inp, nin) * rms(w, nw);
    ct_bf16_t *d_inp = d_up_bf16(inp, nin, "mm inp"), *d_w = d_up_bf16(w, nw, "mm w");
    ct_bf16_t *d_bias = d_up_bf16(bias, OC, "mm bias");
    ct_bf16_t *d_out = d_alloc((size_t)nout * 2, "mm out");
    d_fill_nan(d_out, (size_t)nout * 2);
    ct_cuda_matmul_forward(ctx, d_out, NULL, d_inp, d_w, NULL, N, C, OC, NULL);
    cmp_bf16(tag, "fwd out (no bias)", d_out, out_nb, nout, OC, tol_x(TOL_MM_BF16, s_fwd));
    d_fill_nan(d_out, (size_t)nout * 2);
    ct_cuda_matmul_forward(ctx, d_out, NULL, d_inp, d_w, d_bias, N, C, OC, NULL);
    {
        /* bf16 error analysis: inputs are bf16-exact and the fp32 sum is
         * near exact (accumulation error below 2^-20 sum_k |inp_k||w_k|),
         * but the epilogue may round inp.w to bf16 before adding the bias
         * and rounds the result again, so the error is up to
         * 2^-9 (|inp.w| + |out|) <= 2^-8 (|inp.w| + |bias|).
         * It scales with the magnitudes that cancel, not with |out|: on an
         * H200 out = -0.0094 came back as -0.015625 (inp.w and bias near
         * +-1.6, one bf16 ulp there is 0.0078). */
        double *bound = malloc((size_t)nout * sizeof *bound);
        CT_ASSERT(bound != NULL);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < OC; j++) {
                double sabs = 0.0;
                for (int k = 0; k < C; k++)
                    sabs += fabs((double)inp[(long)i * C + k] * w[(long)j * C + k]);
                double ab = fabs((double)out_nb[(long)i * OC + j]);
                bound[(long)i * OC + j] =
                    ldexp(ab + fabs((double)bias[j]), -8) + ldexp(sabs, -20) + 1e-6;
            }
        float *g = h_f(nout);
        down_bf16(g, d_out, nout);
        compare_b(tag, "fwd out (bias)", g, out_b, nout, OC, TOL_MM_BF16, bound);
        free(g);
        free(bound);
    }
    if (OC % 8 == 0) { /* the contract requires it for the GELU epilogue */
        float *g = h_f(nout);
        ct_gelu_forward(g, out_b, nout);
        ct_bf16_t *d_pre = d_alloc((size_t)nout * 2, "mm pre_gelu");
        d_fill_nan(d_pre, (size_t)nout * 2), d_fill_nan(d_out, (size_t)nout * 2);
        ct_cuda_matmul_forward(ctx, d_out, d_pre, d_inp, d_w, d_bias, N, C, OC, NULL);
        cmp_bf16(tag, "fwd+gelu pre_gelu", d_pre, out_b, nout, OC, tol_x(TOL_MM_BF16, s_fwd));
        cmp_bf16(tag, "fwd+gelu out", d_out, g, nout, OC, tol_x(TOL_MM_BF16, s_fwd));
        d_free(d_pre);
        free(g);
    }

    /* Backward: CPU once into zeroed buffers; the GPU accumulates dweight
     * (and dbias) over three calls onto random starting values. */
    float *dout = h_randn_bf(nout, 1.0f, 0.0f);
    float *dinp1 = h_f(nin), *dw1 = h_f(nw), *db1 = h_f(OC);
    ct_matmul_backward_ref(dinp1, dw1, db1, dout, inp, w, N, C, OC);
    double s_dinp = sqrt((double)OC) * rms(dout, nout) * rms(w, nw);
    double s_dw = sqrt((double)N) * rms(dout, nout) * rms(inp, nin);
    double s_db = sqrt((double)N) * rms(dout, nout);
    float *dw_exp = h_randn(nw, 1.0f, 0.0f), *db_exp = h_randn(OC, 1.0f, 0.0f);
    ct_bf16_t *d_dout = d_up_bf16(dout, nout, "mm dout");
    float *d_dw = d_up_f32(dw_exp, nw, "mm dweight"), *d_db = d_up_f32(db_exp, OC, "mm dbias");
    ct_bf16_t *d_dinp = d_alloc((size_t)nin * 2, "mm dinp");
    long nscr = ct_cuda_matmul_scratch_floats(N, OC);
    float *d_scr = d_alloc((size_t)(nscr > 0 ? nscr : 1) * 4, "mm scratch");
    tol_t t_dw = tol_x(TOL_MM_F32, s_dw), t_db = tol_x(TOL_MM_F32, s_db);

    d_fill_nan(d_dinp, (size_t)nin * 2);
    ct_cuda_matmul_backward(ctx, d_dinp, d_dw, d_db, d_dout, d_inp, d_w, NULL, d_scr, N, C, OC,
                            NULL);
    for (long i = 0; i < nw; i++) dw_exp[i] += dw1[i];
    for (int i = 0; i < OC; i++) db_exp[i] += db1[i];
    cmp_bf16(tag, "bwd dinp", d_dinp, dinp1, nin, C, tol_x(TOL_MM_BF16, s_dinp));
    { /* the tensor-parallel partial products: fp32 out, no bias */
        float *d_f = d_alloc((size_t)(nin > nout ? nin : nout) * 4, "mm f32 out");
        d_fill_nan(d_f, (size_t)nout * 4);
        ct_cuda_matmul_forward_f32(ctx, d_f, d_inp, d_w, N, C, OC, NULL);
        cmp_f32(tag, "fwd out (fp32, tp partial)", d_f, out_nb, nout, OC, tol_x(TOL_MM_F32, s_fwd));
        d_fill_nan(d_f, (size_t)nin * 4);
        ct_cuda_matmul_dinp_f32(ctx, d_f, d_dout, d_w, N, C, OC, NULL);
        cmp_f32(tag, "bwd dinp (fp32, tp partial)", d_f, dinp1, nin, C, tol_x(TOL_MM_F32, s_dinp));
        { /* accumulated: dinp + dout @ W again, twice the product */
            float *twice = h_f(nin);
            for (long i = 0; i < nin; i++) twice[i] = 2.0f * dinp1[i];
            ct_cuda_matmul_dinp_f32_add(ctx, d_f, d_dout, d_w, N, C, OC, NULL);
            cmp_f32(tag, "bwd dinp (fp32, accumulated)", d_f, twice, nin, C,
                    tol_x(TOL_MM_F32, 2 * s_dinp));
            free(twice);
        }
        d_free(d_f);
    }
    cmp_f32(tag, "bwd dweight (+= 1)", d_dw, dw_exp, nw, C, t_dw);
    cmp_f32(tag, "bwd dbias (+= 1)", d_db, db_exp, OC, 0, t_db);

    /* what the device holds now is the baseline for "untouched" */
    ct_cuda_copy(db_exp, d_db, (size_t)OC * sizeof(float), NULL);
    ct_cuda_stream_sync(NULL);
    ct_cuda_matmul_backward(ctx, NULL, d_dw, NULL, d_dout, d_inp, d_w, NULL, d_scr, N, C, OC, NULL);
    for (long i = 0; i < nw; i++) dw_exp[i] += dw1[i];
    cmp_f32(tag, "bwd dinp=NULL dbias=NULL dweight (+= 2)", d_dw, dw_exp, nw, C, t_dw);
    cmp_f32(tag, "bwd dbias=NULL: dbias untouched", d_db, db_exp, OC, 0, TOL_EXACT);

    if (C % 8 == 0) { /* DGELU: pre_gelu (N,C) is cuBLASLt's aux matrix, ld C */
        float *pre = h_randn_bf(nin, 1.5f, 0.0f), *dg = h_f(nin);
        ct_gelu_backward(dg, pre, dinp1, nin); /* dg zeroed: (dout @ W) * gelu'(pre) */
        ct_bf16_t *d_pre = d_up_bf16(pre, nin, "mm pre_gelu");
        d_fill_nan(d_dinp, (size_t)nin * 2);
        ct_cuda_matmul_backward(ctx, d_dinp, d_dw, d_db, d_dout, d_inp, d_w, d_pre, d_scr, N, C,
                                OC, NULL);
        for (long i = 0; i < nw; i++) dw_exp[i] += dw1[i];
        for (int i = 0; i < OC; i++) db_exp[i] += db1[i];
        /* gelu' <= 1.13 scales the dot-product error */
        cmp_bf16(tag, "bwd dgelu dinp", d_dinp, dg, nin, C, tol_x(TOL_MM_BF16, 1.2 * s_dinp));
        cmp_f32(tag, "bwd dgelu dweight (+= 3)", d_dw, dw_exp, nw, C, t_dw);
        cmp_f32(tag, "bwd dgelu dbias (+= 2)", d_db, db_exp, OC, 0, t_db);
        d_free(d_pre);
        free(pre), free(dg);
    }
    d_free(d_inp), d_free(d_w), d_free(d_bias), d_free(d_out), d_free(d_dout), d_free(d_dw);
    d_free(d_db), d_free(d_dinp), d_free(d_scr);
    free(inp), free(w), free(bias), free(out_nb), free(out_b), free(dout), free(dinp1);
    free(dw1), free(db1), free(dw_exp), free(db_exp);
}

/* ---- attention ------------------------------------------------------------------- */

static const char *impl_name(ct_attn_impl_t i)
{
    return i == CT_ATTN_CUDNN ? "cudnn" : i == CT_ATTN_PLAIN ? "plain" : "auto";
}

static void test_attention(int B, int T, int NH, int HS)
{
    int C = NH * HS;
    long nqkv = (long)B * T * 3 * C, nout = (long)B * T * C, nst = (long)B * NH * T;
    float *qkv = h_randn_bf(nqkv, 1.0f, 0.0f), *dout = h_randn_bf(nout, 1.0f, 0.0f);
    float *out = h_f(nout), *att = h_f((long)B * NH * T * T), *dqkv = h_f(nqkv);
    float *scr = h_f(ct_attention_scratch_floats(B, T, NH)), *lse = h_f(nst);
    ct_attention_forward_ref(out, att, qkv, B, T, NH, HS);
    ct_attention_backward_ref(dqkv, dout, qkv, att, scr, B, T, NH, HS); /* dqkv zeroed */
    /* Stats: per (b,h,t) log-sum-exp of the scaled causal scores, in double. */
    double scale = 1.0 / sqrt((double)HS), *s = malloc((size_t)T * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((long)b * T + t) * 3 * C + h * HS;
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j <= t; j++) {
                    const float *k = qkv + ((long)b * T + j) * 3 * C + C + h * HS;
                    double d = 0.0;
                    for (int i = 0; i < HS; i++) d += (double)q[i] * k[i];
                    s[j] = d * scale;
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int j = 0; j <= t; j++) sum += exp(s[j] - mx);
                lse[((long)b * NH + h) * T + t] = (float)(mx + log(sum));
            }
    free(s);

    ct_bf16_t *d_qkv = d_up_bf16(qkv, nqkv, "att qkv"), *d_dout = d_up_bf16(dout, nout, "att dout");
    ct_bf16_t *d_out = d_alloc((size_t)nout * 2, "att out");
    ct_bf16_t *d_dqkv = d_alloc((size_t)nqkv * 2, "att dqkv");
    float *d_st = d_alloc((size_t)nst * 4, "att stats");
    long nscr = ct_cuda_attention_scratch_floats(B, T, NH);
    float *d_scr = d_alloc((size_t)(nscr > 0 ? nscr : 1) * 4, "att scratch");
    ct_attn_impl_t impl = ct_cuda_attn_impl(ctx);
    ct_status_t st = ct_cuda_attention_prepare(ctx, B, T, NH, HS);
    CHECK_MSG(st == CT_OK || (st == CT_ERR_UNSUPPORTED && impl == CT_ATTN_CUDNN),
              "attention_prepare B=%d T=%d NH=%d HS=%d (%s): %s", B, T, NH, HS, impl_name(impl),
              ct_status_name(st));
    for (int plain = 0; plain < 2; plain++) {
        char tag[128];
        snprintf(tag, sizeof tag, "attention[%s] B=%d T=%d NH=%d HS=%d",
                 plain ? "plain" : impl_name(impl), B, T, NH, HS);
        if (!plain && st != CT_OK) {
            fprintf(stderr, "  %s: prepare returned %s, context path skipped\n", tag,
                    ct_status_name(st));
            continue;
        }
        d_fill_nan(d_out, (size_t)nout * 2), d_fill_nan(d_st, (size_t)nst * 4);
        d_fill_nan(d_dqkv, (size_t)nqkv * 2);
        if (plain)
            ct_cuda_attention_forward_plain(d_out, d_st, d_qkv, B, T, NH, HS, NULL);
        else
            ct_cuda_attention_forward(ctx, d_out, d_st, d_qkv, B, T, NH, HS, NULL);
        cmp_bf16(tag, "fwd out", d_out, out, nout, C, TOL_ATT_OUT);
        cmp_f32(tag, "fwd stats (lse)", d_st, lse, nst, T, TOL_ATT_STATS);
        if (plain)
            ct_cuda_attention_backward_plain(d_dqkv, d_dout, d_qkv, d_out, d_st, d_scr, B, T, NH,
                                             HS, NULL);
        else
            ct_cuda_attention_backward(ctx, d_dqkv, d_dout, d_qkv, d_out, d_st, B, T, NH, HS, NULL);
        cmp_bf16(tag, "bwd dqkv", d_dqkv, dqkv, nqkv, 3 * C, TOL_ATT_DQKV);
    }
    d_free(d_qkv), d_free(d_dout), d_free(d_out), d_free(d_dqkv), d_free(d_st), d_free(d_scr);
    free(qkv), free(dout), free(out), free(att), free(dqkv), free(scr), free(lse);
}

/* ---- cross-entropy ------------------------------------------------------------------ */

static void test_xent(int N, int V, int Vp)
{
    char tag[96];
    snprintf(tag, sizeof tag, "xent N=%d V=%d Vp=%d", N, V, Vp);
    long nl = (long)N * Vp;
    float *logits = h_randn_bf(nl, 3.0f, 0.0f);
    /* Padding columns must be ignored, whatever they hold. */
    for (int i = 0; i < N; i++)
        for (int j = V; j < Vp; j++) logits[(long)i * Vp + j] = (j & 1) ? NAN : 1e30f;
    uint16_t *bits = h_alloc((size_t)nl * 2), *got = h_alloc((size_t)nl * 2);
    for (long i = 0; i < nl; i++) bits[i] = f2bf(logits[i]), logits[i] = bf2f(bits[i]);
    int32_t *tgt = h_alloc((size_t)N * 4);
    for (int i = 0; i < N; i++) tgt[i] = (int32_t)ct_rng_below(&rng, (uint64_t)V);
    tgt[0] = V - 1;
    float *loss = h_f(N), *lse = h_f(N);
    ct_xent_forward_ref(loss, lse, logits, tgt, N, V, Vp);
    float dl = 1.0f / (float)N, *dloss = h_f(N), *dlog = h_copy(logits, nl);
    for (int i = 0; i < N; i++) dloss[i] = dl;
    ct_xent_backward(dlog, lse, tgt, dloss, N, V, Vp);

    ct_bf16_t *d_log = d_alloc((size_t)nl * 2, "xent logits");
    int32_t *d_tgt = d_up_i32(tgt, N, "xent targets");
    float *d_loss = d_alloc((size_t)N * 4, "xent losses");
    for (int bwd = 0; bwd < 2; bwd++) {
        up_raw(d_log, bits, (size_t)nl * 2);
        d_fill_nan(d_loss, (size_t)N * 4);
        ct_cuda_xent_forward_backward(d_loss, d_log, d_tgt, bwd ? dl : 0.0f, N, V, Vp, NULL);
        cmp_f32(tag, bwd ? "fwd+bwd losses" : "fwd losses (dloss=0)", d_loss, loss, N, 0,
                TOL_XENT_LOSS);
        if (!bwd) {
            down_raw(got, d_log, (size_t)nl * 2);
            compare_bits(tag, "dloss=0: logits unchanged", got, bits, nl, 2, 0);
            continue;
        }
        float *g = h_f(nl);
        down_bf16(g, d_log, nl);
        compare(tag, "bwd dlogits (dloss=1/N)", g, dlog, nl, Vp, tol_x(TOL_XENT_DLOGITS, dl));
        long pad = 0;
        for (int i = 0; i < N; i++)
            for (int j = V; j < Vp; j++) pad += g[(long)i * Vp + j] != 0.0f;
        CHECK_MSG(pad == 0, "%s: %ld padding columns of dlogits not 0", tag, pad);
        free(g);
    }
    d_free(d_log), d_free(d_tgt), d_free(d_loss);
    free(logits), free(bits), free(got), free(tgt), free(loss), free(lse), free(dloss), free(dlog);
}

/* ---- tensor parallelism: vocab-parallel embedding and cross-entropy, bias rounding ---- */

/* The shard [v_start, v_start + v_count) of a (Vp, C) table, against the CPU
 * twins; wpe only on the first shard, as rank 0 adds it. */
static void test_encoder_vp(int B, int T, int C, int Vp, int tp)
{
    long N = (long)B * T;
    int Vpl = Vp / tp;
    int32_t *ids = h_alloc((size_t)N * 4);
    for (long i = 0; i < N; i++) ids[i] = (int32_t)ct_rng_below(&rng, (uint64_t)Vp);
    float *wte = h_randn_bf((long)Vp * C, 1.0f, 0.0f), *wpe = h_randn_bf((long)T * C, 1.0f, 0.0f);
    int32_t *d_ids = d_up_i32(ids, N, "encvp ids");
    for (int r = 0; r < tp; r++) {
        char tag[96];
        snprintf(tag, sizeof tag, "encoder_vp B=%d T=%d C=%d Vp=%d shard %d/%d", B, T, C, Vp, r,
                 tp);
        const float *shard = wte + (long)r * Vpl * C, *pe = r == 0 ? wpe : NULL;
        float *out = h_f(N * C);
        ct_encoder_forward_vp(out, ids, shard, pe, B, T, C, r * Vpl, Vpl);
        ct_bf16_t *d_wte = d_up_bf16(shard, (long)Vpl * C, "encvp wte");
        ct_bf16_t *d_wpe = pe ? d_up_bf16(pe, (long)T * C, "encvp wpe") : NULL;
        float *d_out = d_alloc((size_t)N * C * 4, "encvp out");
        d_fill_nan(d_out, (size_t)N * C * 4);
        ct_cuda_encoder_forward_vp(d_out, d_ids, d_wte, d_wpe, B, T, C, r * Vpl, Vpl, NULL);
        cmp_f32(tag, "fwd out", d_out, out, N * C, C, TOL_ENC_FWD);

        float *dout = h_randn(N * C, 1.0f, 0.0f);
        float *dwte = h_randn((long)Vpl * C, 1.0f, 0.0f), *dwpe = h_randn((long)T * C, 1.0f, 0.0f);
        float *d_dout = d_up_f32(dout, N * C, "encvp dout");
        float *d_dwte = d_up_f32(dwte, (long)Vpl * C, "encvp dwte");
        float *d_dwpe = d_up_f32(dwpe, (long)T * C, "encvp dwpe");
        float *dwpe_before = h_copy(dwpe, (long)T * C);
        ct_encoder_backward_vp(dwte, pe ? dwpe : NULL, dout, ids, B, T, C, r * Vpl, Vpl);
        ct_cuda_encoder_backward_vp(d_dwte, pe ? d_dwpe : NULL, d_dout, d_ids, B, T, C, r * Vpl,
                                    Vpl, NULL);
        cmp_f32(tag, "bwd dwte shard (+=)", d_dwte, dwte, (long)Vpl * C, C, TOL_ENC_BWD);
        cmp_f32(tag, pe ? "bwd dwpe (+=)" : "bwd dwpe NULL: untouched", d_dwpe,
                pe ? dwpe : dwpe_before, (long)T * C, C, pe ? TOL_ENC_BWD : TOL_EXACT);
        d_free(d_wte), d_free(d_wpe), d_free(d_out), d_free(d_dout), d_free(d_dwte);
        d_free(d_dwpe);
        free(out), free(dout), free(dwte), free(dwpe), free(dwpe_before);
    }
    d_free(d_ids);
    free(ids), free(wte), free(wpe);
}

/* The vocabulary [0, V) padded to Vp and split over tp shards: each shard's
 * statistics against the CPU twin, the combination against the CPU twin and
 * the unsplit cross-entropy, and each shard's dlogits against the CPU. */
static void test_xent_vp(int N, int V, int Vp, int tp)
{
    char tag[96];
    snprintf(tag, sizeof tag, "xent_vp N=%d V=%d Vp=%d tp=%d", N, V, Vp, tp);
    const int Vpl = Vp / tp;
    long nl = (long)N * Vp;
    float *full = h_randn_bf(nl, 3.0f, 0.0f);
    int32_t *tgt = h_alloc((size_t)N * 4);
    for (int i = 0; i < N; i++) tgt[i] = (int32_t)ct_rng_below(&rng, (uint64_t)V);
    tgt[0] = V - 1;
    float *loss_ref = h_f(N), *lse_ref = h_f(N);
    ct_xent_forward_ref(loss_ref, lse_ref, full, tgt, N, V, Vp);
    float *all = h_f((long)tp * N * 3), *shard = h_f((long)N * Vpl);
    float *d_all = d_alloc((size_t)tp * N * 3 * 4, "xentvp all stats");
    int32_t *d_tgt = d_up_i32(tgt, N, "xentvp targets");
    ct_bf16_t **d_sh = calloc((size_t)tp, sizeof *d_sh);
    CT_ASSERT(d_sh != NULL);
    for (int r = 0; r < tp; r++) {
        int v_start = r * Vpl, vl = V - v_start;
        vl = vl < 0 ? 0 : vl > Vpl ? Vpl : vl;
        for (int i = 0; i < N; i++) /* padding columns hold garbage */
            for (int j = 0; j < Vpl; j++)
                shard[(long)i * Vpl + j] = j < vl ? full[(long)i * Vp + v_start + j]
                                                  : ((j & 1) ? NAN : 1e30f);
        d_sh[r] = d_up_bf16(shard, (long)N * Vpl, "xentvp shard");
        ct_xent_vp_stats(all + (long)r * N * 3, shard, tgt, N, v_start, vl, Vpl);
        d_fill_nan(d_all + (long)r * N * 3, (size_t)N * 3 * 4);
        ct_cuda_xent_vp_stats(d_all + (long)r * N * 3, d_sh[r], d_tgt, N, v_start, vl, Vpl,
                              NULL);
        /* an empty shard's max is -inf on both sides: compare the others */
        float *g = h_f((long)N * 3);
        down_f32(g, d_all + (long)r * N * 3, (long)N * 3);
        long inf_mismatch = 0;
        for (long i = 0; i < (long)N * 3; i++)
            if (isinf(all[(long)r * N * 3 + i]) || isinf(g[i])) {
                inf_mismatch += g[i] != all[(long)r * N * 3 + i];
                g[i] = all[(long)r * N * 3 + i] = 0.0f;
            }
        CHECK_MSG(inf_mismatch == 0, "%s shard %d: %ld infinite stats differ", tag, r,
                  inf_mismatch);
        compare(tag, "stats (max, sumexp, target)", g, all + (long)r * N * 3, (long)N * 3, 3,
                TOL_XENT_LOSS);
        /* the stats the device computed feed both combinations below */
        down_f32(all + (long)r * N * 3, d_all + (long)r * N * 3, (long)N * 3);
        free(g);
    }
    float *loss = h_f(N), *lse = h_f(N);
    ct_xent_vp_finish(loss, lse, all, N, tp);
    compare(tag, "cpu finish vs unsplit losses", loss, loss_ref, N, 0, TOL_XENT_LOSS);
    float *d_loss = d_alloc((size_t)N * 4, "xentvp losses"), *d_lse = d_alloc((size_t)N * 4, "xentvp lse");
    d_fill_nan(d_loss, (size_t)N * 4), d_fill_nan(d_lse, (size_t)N * 4);
    ct_cuda_xent_vp_finish(d_loss, d_lse, d_all, N, tp, NULL);
    cmp_f32(tag, "finish losses", d_loss, loss, N, 0, TOL_XENT_LOSS);
    cmp_f32(tag, "finish lse", d_lse, lse, N, 0, TOL_XENT_LOSS);

    float dl = 1.0f / (float)N, *dloss = h_f(N);
    for (int i = 0; i < N; i++) dloss[i] = dl;
    for (int r = 0; r < tp; r++) {
        int v_start = r * Vpl, vl = V - v_start;
        vl = vl < 0 ? 0 : vl > Vpl ? Vpl : vl;
        down_bf16(shard, d_sh[r], (long)N * Vpl);
        ct_xent_backward_vp(shard, lse, tgt, dloss, N, v_start, vl, Vpl);
        ct_cuda_xent_vp_backward(d_sh[r], d_lse, d_tgt, dl, N, v_start, vl, Vpl, NULL);
        cmp_bf16(tag, "bwd dlogits shard", d_sh[r], shard, (long)N * Vpl, Vpl,
                 tol_x(TOL_XENT_DLOGITS, dl));
        d_free(d_sh[r]);
    }
    d_free(d_all), d_free(d_tgt), d_free(d_loss), d_free(d_lse);
    free(d_sh), free(full), free(tgt), free(loss_ref), free(lse_ref), free(all), free(shard);
    free(loss), free(lse), free(dloss);
}

static void test_bias_bf16(int N, int C)
{
    char tag[64];
    snprintf(tag, sizeof tag, "bias_to_bf16 N=%d C=%d", N, C);
    float *inp = h_randn((long)N * C, 2.0f, 0.0f), *bias = h_randn_bf(C, 1.0f, 0.0f);
    float *want = h_f((long)N * C), *want_nb = h_f((long)N * C);
    ct_add_bias(want, inp, bias, N, C);
    ct_add_bias(want_nb, inp, NULL, N, C);
    for (long i = 0; i < (long)N * C; i++) want[i] = round_bf(want[i]), want_nb[i] = round_bf(want_nb[i]);
    float *d_inp = d_up_f32(inp, (long)N * C, "bias inp");
    ct_bf16_t *d_bias = d_up_bf16(bias, C, "bias"), *d_out = d_alloc((size_t)N * C * 2, "bias out");
    d_fill_nan(d_out, (size_t)N * C * 2);
    ct_cuda_bias_to_bf16(d_out, d_inp, d_bias, N, C, NULL);
    cmp_bf16(tag, "out (bias)", d_out, want, (long)N * C, C, TOL_EXACT);
    d_fill_nan(d_out, (size_t)N * C * 2);
    ct_cuda_bias_to_bf16(d_out, d_inp, NULL, N, C, NULL);
    cmp_bf16(tag, "out (no bias)", d_out, want_nb, (long)N * C, C, TOL_EXACT);
    d_free(d_inp), d_free(d_bias), d_free(d_out);
    free(inp), free(bias), free(want), free(want_nb);
}

/* ---- sumsq ---------------------------------------------------------------------------- */

static void test_sumsq(long n)
{
    char tag[64];
    snprintf(tag, sizeof tag, "sumsq n=%ld", n);
    float *x = h_randn(n, 2.0f, 0.0f);
    double want = 0.0;
    for (long i = 0; i < n; i++) want += (double)x[i] * x[i];
    float *d_x = d_up_f32(x, n, "sumsq x"), *d_out = d_alloc(4, "sumsq out");
    long nscr = ct_cuda_sumsq_scratch_floats(n);
    float *d_scr = d_alloc((size_t)(nscr > 0 ? nscr : 1) * 4, "sumsq scratch");
    float got[2], prior = 123.5f;
    for (int rep = 0; rep < 2; rep++) {
        d_fill_nan(d_out, 4);
        ct_cuda_sumsq(d_out, d_x, n, 0, d_scr, NULL);
        down_f32(&got[rep], d_out, 1);
    }
    CHECK_MSG(fabs(got[0] - want) <= SUMSQ_RTOL * want, "%s: gpu=%.9g want=%.17g (rel %.3g)", tag,
              got[0], want, want > 0 ? fabs(got[0] - want) / want : fabs(got[0]));
    CHECK_MSG(memcmp(&got[0], &got[1], 4) == 0, "%s: not deterministic: %.9g then %.9g", tag,
              got[0], got[1]);
    up_raw(d_out, &prior, 4);
    ct_cuda_sumsq(d_out, d_x, n, 1, d_scr, NULL);
    float acc;
    down_f32(&acc, d_out, 1);
    double wacc = prior + want;
    CHECK_MSG(fabs(acc - wacc) <= SUMSQ_RTOL * wacc, "%s accumulate: gpu=%.9g want=%.17g", tag, acc,
              wacc);
    fprintf(stderr, "  %s: gpu=%.9g want=%.12g accumulate gpu=%.9g want=%.12g\n", tag, got[0],
            want, acc, wacc);
    d_free(d_x), d_free(d_out), d_free(d_scr);
    free(x);
}

/* ---- AdamW ------------------------------------------------------------------------------ */

enum { CLIP_OFF, CLIP_INACTIVE, CLIP_ACTIVE };

/* Stochastic rounding of master into bf: each value one of the two bf16
 * neighbours, unbiased on average. Returns nothing; CHECKs inside. */
static void check_stochastic(const char *tag, const float *master, const uint16_t *bf, long n)
{
    long not_nb = 0, far = 0, cnt = 0, cnt_lo = 0;
    double err = 0.0, err_lo = 0.0;
    for (long i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &master[i], 4);
        uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
        if ((u & 0xffffu) == 0) {
            not_nb += bf[i] != lo;
            continue;
        }
        if (bf[i] != lo && bf[i] != hi) {
            if (not_nb++ == 0)
                fprintf(stderr, "  %s: [%ld] master=%.9g bf16=0x%04x not 0x%04x or 0x%04x\n", tag, i,
                        master[i], bf[i], lo, hi);
            continue;
        }
        /* f: position of |master| between |lo| and |hi|, in [0,1) */
        double f = (fabs((double)master[i]) - fabs((double)bf2f(lo))) /
                   (fabs((double)bf2f(hi)) - fabs((double)bf2f(lo)));
        double r = bf[i] == hi ? 1.0 : 0.0;
        far += (r == 1.0) != (f > 0.5);
        err += r - f, cnt++;
        if (f > 0.05 && f < 0.45) err_lo += r - f, cnt_lo++;
    }
    CHECK_MSG(not_nb == 0, "%s: %ld of %ld bf16 values are not a neighbour of master", tag, not_nb,
              n);
    if (cnt < 100000) return;
    /* |r - f| has variance <= 1/4: 10 sigma of the mean is 5/sqrt(cnt). */
    double m_all = err / cnt, m_lo = err_lo / (cnt_lo ? cnt_lo : 1), p_far = (double)far / cnt;
    fprintf(stderr,
            "  %s: mean rounding error %.2e ulp (all), %.2e ulp (f in (0.05,0.45); RNE would be "
            "~-0.25), %.3f rounded away from nearest\n",
            tag, m_all, m_lo, p_far);
    CHECK_MSG(fabs(m_all) <= 5.0 / sqrt((double)cnt), "%s: stochastic rounding biased: %.3g ulp",
              tag, m_all);
    CHECK_MSG(fabs(m_lo) <= 5.0 / sqrt((double)cnt_lo) + 1e-3,
              "%s: stochastic rounding biased for f < 0.5: %.3g ulp (not stochastic?)", tag, m_lo);
    CHECK_MSG(p_far > 0.15 && p_far < 0.35, "%s: %.3f rounded away from nearest, want ~0.25", tag,
              p_far);
}

static void test_adamw(const char *name, long n, int t, int clip, int nonfinite, uint32_t seed,
                       int with_bf16)
{
    char tag[160];
    snprintf(tag, sizeof tag, "adamw[%s] n=%ld t=%d clip=%s nonfinite=%s seed=%u bf16=%d", name, n,
             t, clip == CLIP_OFF ? "off" : clip == CLIP_INACTIVE ? "inactive" : "active",
             nonfinite == 0 ? "no" : nonfinite == 1 ? "nan" : "inf", seed, with_bf16);
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
    float *master = h_randn(n, 1.0f, 0.0f), *g = h_randn(n, 0.1f, 0.0f);
    float *m = h_f(n), *v = h_f(n);
    if (t > 1)
        for (long i = 0; i < n; i++) {
            float r = 0.1f * ct_rng_normal(&rng);
            m[i] = 0.1f * ct_rng_normal(&rng), v[i] = r * r;
        }
    uint16_t *pattern = h_alloc((size_t)n * 2), *bf = h_alloc((size_t)n * 2);
    for (long i = 0; i < n; i++) pattern[i] = 0x1234;
    float *d_master = d_up_f32(master, n, "adamw master"), *d_g = d_up_f32(g, n, "adamw grads");
    float *d_m = d_up_f32(m, n, "adamw m"), *d_v = d_up_f32(v, n, "adamw v");
    ct_bf16_t *d_bf = with_bf16 ? d_alloc((size_t)n * 2, "adamw bf16") : NULL;
    if (d_bf) up_raw(d_bf, pattern, (size_t)n * 2);
    float *d_ss = d_alloc(4, "adamw sumsq");
    long nscr = ct_cuda_sumsq_scratch_floats(n);
    float *d_scr = d_alloc((size_t)(nscr > 0 ? nscr : 1) * 4, "adamw scratch");
    ct_cuda_sumsq(d_ss, d_g, n, 0, d_scr, NULL);
    float ss;
    down_f32(&ss, d_ss, 1);
    float norm = sqrtf(ss);
    float grad_clip = clip == CLIP_OFF ? 0.0f : clip == CLIP_INACTIVE ? 2.0f * norm : 0.37f * norm;
    if (nonfinite) {
        float bad = nonfinite == 1 ? NAN : INFINITY;
        up_raw(d_ss, &bad, 4);
    }
    ct_cuda_adamw_update(d_master, d_bf, d_g, d_m, d_v, n, lr, b1, b2, eps, wd, t, d_ss, grad_clip,
                         seed, NULL);

    float *pm = h_copy(master, n), *mm = h_copy(m, n), *vm = h_copy(v, n);
    float *gm = h_f(n), *vv = h_f(n);
    down_f32(gm, d_master, n);
    if (nonfinite) { /* nothing may change, bit for bit */
        compare_bits(tag, "master unchanged", gm, master, n, 4, 0);
        down_f32(vv, d_m, n), compare_bits(tag, "m unchanged", vv, m, n, 4, 0);
        down_f32(vv, d_v, n), compare_bits(tag, "v unchanged", vv, v, n, 4, 0);
        float *gg = h_f(n);
        down_f32(gg, d_g, n), compare_bits(tag, "grads unchanged", gg, g, n, 4, 0);
        free(gg);
        if (d_bf) down_raw(bf, d_bf, (size_t)n * 2), compare_bits(tag, "bf16 unchanged", bf, pattern, n, 2, 0);
    } else {
        float *gc = h_copy(g, n);
        if (clip == CLIP_ACTIVE) {
            float sc = grad_clip / norm;
            for (long i = 0; i < n; i++) gc[i] *= sc;
        }
        ct_adamw_update_ref(pm, gc, mm, vm, n, lr, b1, b2, eps, wd, t);
        compare(tag, "master", gm, pm, n, 0, TOL_ADAM_MASTER);
        cmp_f32(tag, "m", d_m, mm, n, 0, TOL_ADAM_M);
        cmp_f32(tag, "v", d_v, vm, n, 0, TOL_ADAM_V);
        free(gc);
        if (d_bf) {
            down_raw(bf, d_bf, (size_t)n * 2);
            if (seed == 0) {
                uint16_t *want = h_alloc((size_t)n * 2);
                for (long i = 0; i < n; i++) want[i] = f2bf(gm[i]);
                compare_bits(tag, "bf16 = RNE(master)", bf, want, n, 2, 0);
                free(want);
            } else {
                check_stochastic(tag, gm, bf, n);
                /* Reproducible for the same seed, different for another. */
                uint16_t *bf2 = h_alloc((size_t)n * 2);
                for (int rep = 0; rep < 2; rep++) {
                    up_raw(d_master, master, (size_t)n * 4), up_raw(d_m, m, (size_t)n * 4);
                    up_raw(d_v, v, (size_t)n * 4), up_raw(d_bf, pattern, (size_t)n * 2);
                    ct_cuda_adamw_update(d_master, d_bf, d_g, d_m, d_v, n, lr, b1, b2, eps, wd, t,
                                         d_ss, grad_clip, rep ? seed + 1 : seed, NULL);
                    down_raw(bf2, d_bf, (size_t)n * 2);
                    if (!rep) {
                        compare_bits(tag, "stochastic bf16 reproducible (same seed)", bf2, bf, n, 2, 0);
                    } else if (n >= 1000) {
                        long diff = 0;
                        for (long i = 0; i < n; i++) diff += bf2[i] != bf[i];
                        CHECK_MSG(diff > 0, "%s: seed %u and %u give the same rounding", tag, seed,
                                  seed + 1);
                    }
                }
                free(bf2);
            }
        }
    }
    d_free(d_master), d_free(d_g), d_free(d_m), d_free(d_v), d_free(d_bf), d_free(d_ss);
    d_free(d_scr);
    free(master), free(g), free(m), free(v), free(pattern), free(bf), free(pm), free(mm), free(vm);
    free(gm), free(vv);
}

/* ---- flash attention (attention_flash.cu) ------------------------------------------------
 *
 * The tensor-core kernels against the CPU reference (ct_attention_*_ref) and
 * the per-row CUDA kernels (ct_cuda_attention_*_plain), on T that are not
 * multiples of the tiles (16, 32, 64), several B and NH, each instantiated
 * head size. Each element gets its own bound, from a first-order analysis
 * of the bf16 roundings the flash kernels add, evaluated on the CPU's
 * values (P = softmax, dP_ij = dO_i . v_j, D_i = sum_j P_ij dP_ij,
 * dS = P (dP - D), in double):
 * - out_i = sum_j P_ij v_j / l_i with P rounded to bf16 (relative 2^-8, as
 *   in the header) before P V: |d out_id| <= 2^-8 sum_j P_ij |v_jd|.
 * - dv_j = sum_i P_ij dO_i, P^T rounded: |d dv_jd| <= 2^-8 sum_i P_ij |dO_id|.
 * - dq_i = scale sum_j dS_ij k_j and dk_j = scale sum_i dS_ij q_i, with the
 *   error e_ij of the dS_ij they use: dS rounded to bf16 (2^-8 |dS_ij|),
 *   plus P_ij times the error of D_i, which the GPU takes from the bf16 out
 *   of its forward: sum_d |dO_id| |out_gpu - out_cpu|_id (the measured
 *   difference). Then |d dq_id| <= scale sum_j e_ij |k_jd|, |d dk_jd| <=
 *   scale sum_i e_ij |q_id|.
 * - fp32 effects (dot products of <= 2T terms in another order, exp2/log2
 *   against exp/log, lse carried in fp32): relative 2^-16 of each sum of
 *   absolute terms (dP_ij, D_i, every P_ij), far above the ~T 2^-24 worst
 *   case; it keeps the bound non-zero where a value is exactly 0 on the CPU
 *   (dq at T = 1: dP - D = 0) but not on the GPU.
 * An element passes when |gpu - cpu| <= |cpu|/128 + 2 E: the first term is
 * the bf16 rounding of the output (as everywhere in this file), the factor 2
 * covers the second-order terms. Against the per-row kernels, which carry
 * the same output rounding and the same D, the bound is |ref|/64 + 2 E.
 * stats (fp32 lse) use TOL_ATT_STATS; out also has rms(gpu - cpu)/rms(cpu)
 * <= 1e-2 (a kernel with only bf16 rounding shows ~3e-3). The backward is
 * run twice and must match bit for bit (no atomics), and the context's plain
 * path must give the flash results bit for bit where flash applies and the
 * per-row results where it does not (an output not 16-byte aligned). */
#define FA_BF (1.0 / 256)    /* bf16 rounding of P, dS: relative, 8 significant bits */
#define FA_F32 (1.0 / 65536) /* fp32 effects, relative to the sum of |terms| */

/* Per-element error estimates E (see above) for out (B,T,C) and dqkv
 * (B,T,3C), zeroed by the caller; out_gpu is the out the GPU backward uses. */
static void flash_errors(double *e_out, double *e_dqkv, const float *qkv, const float *dout,
                         const float *att, const float *out_cpu, const float *out_gpu, int B,
                         int T, int NH, int HS)
{
    const int C = NH * HS;
    const long C3 = 3L * C;
    const double scale = 1.0 / sqrt((double)HS);
    double *dP = malloc((size_t)T * sizeof(double)), *A = malloc((size_t)T * sizeof(double));
    CT_ASSERT(dP && A);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                const float *P = att + (((long)b * NH + h) * T + i) * T;
                const float *dO = dout + ((long)b * T + i) * C + h * HS;
                const float *q = qkv + ((long)b * T + i) * C3 + h * HS;
                const float *oc = out_cpu + ((long)b * T + i) * C + h * HS;
                const float *og = out_gpu + ((long)b * T + i) * C + h * HS;
                double D = 0.0, dD = 0.0;
                for (int j = 0; j <= i; j++) {
                    const float *v = qkv + ((long)b * T + j) * C3 + 2 * C + h * HS;
                    double s = 0.0, a = 0.0;
                    for (int d = 0; d < HS; d++) s += (double)dO[d] * v[d], a += fabs((double)dO[d] * v[d]);
                    dP[j] = s, A[j] = a;
                    D += P[j] * s;
                }
                for (int d = 0; d < HS; d++)
                    dD += fabs((double)dO[d]) * (fabs((double)og[d] - oc[d]) + FA_F32 * fabs((double)oc[d]));
                for (int j = 0; j <= i; j++) {
                    const float *k = qkv + ((long)b * T + j) * C3 + C + h * HS, *v = k + C;
                    double p = P[j], ds = p * (dP[j] - D);
                    double e = p * (FA_F32 * A[j] + dD) + (FA_BF + FA_F32) * fabs(ds);
                    double *eo = e_out + ((long)b * T + i) * C + h * HS;
                    double *eq = e_dqkv + ((long)b * T + i) * C3 + h * HS;
                    double *ek = e_dqkv + ((long)b * T + j) * C3 + C + h * HS, *ev = ek + C;
                    for (int d = 0; d < HS; d++) {
                        eo[d] += (FA_BF + FA_F32) * p * fabs((double)v[d]);
                        ev[d] += (FA_BF + FA_F32) * p * fabs((double)dO[d]);
                        eq[d] += scale * e * fabs((double)k[d]);
                        ek[d] += scale * e * fabs((double)q[d]);
                    }
                }
            }
    free(dP), free(A);
}

/* bound[i] = |ref[i]| * rel + 2 * e[i] */
static double *flash_bound(const double *e, const float *ref, long n, double rel)
{
    double *bd = h_alloc((size_t)n * sizeof(double));
    for (long i = 0; i < n; i++) bd[i] = rel * fabs((double)ref[i]) + 2.0 * e[i];
    return bd;
}

/* extra: also the bit-for-bit checks (repeat, context dispatch, fallback). */
static void test_flash_attention(int B, int T, int NH, int HS, int extra)
{
    char tag[128];
    snprintf(tag, sizeof tag, "flash attention B=%d T=%d NH=%d HS=%d", B, T, NH, HS);
    CHECK_MSG(ct_cuda_attention_flash_supports(HS), "%s: head size not supported", tag);
    if (!ct_cuda_attention_flash_supports(HS)) return;
    const int C = NH * HS;
    const long nqkv = (long)B * T * 3 * C, nout = (long)B * T * C, nst = (long)B * NH * T;
    /* scores of rms 4: peaked rows, so the running max moves between key tiles */
    float *qkv = h_randn_bf(nqkv, 2.0f, 0.0f), *dout = h_randn_bf(nout, 1.0f, 0.0f);
    float *out = h_f(nout), *att = h_f((long)B * NH * T * T), *dqkv = h_f(nqkv);
    float *scr = h_f(ct_attention_scratch_floats(B, T, NH)), *lse = h_f(nst);
    ct_attention_forward_ref(out, att, qkv, B, T, NH, HS);
    ct_attention_backward_ref(dqkv, dout, qkv, att, scr, B, T, NH, HS); /* dqkv zeroed */
    for (long r = 0; r < nst; r++) { /* lse = log sum_j exp(s_j) = s_t - log P_tt */
        int t = (int)(r % T);
        long b = r / T / NH, h = r / T % NH;
        const float *q = qkv + (b * T + t) * 3 * C + h * HS, *k = q + C;
        double s = 0.0;
        for (int d = 0; d < HS; d++) s += (double)q[d] * k[d];
        lse[r] = (float)(s / sqrt((double)HS) - log((double)att[r * T + t]));
    }

    ct_bf16_t *d_qkv = d_up_bf16(qkv, nqkv, "fa qkv"), *d_dout = d_up_bf16(dout, nout, "fa dout");
    ct_bf16_t *d_out = d_alloc((size_t)nout * 2, "fa out"), *d_out2 = d_alloc((size_t)nout * 2 + 16, "fa out2");
    ct_bf16_t *d_dqkv = d_alloc((size_t)nqkv * 2, "fa dqkv"), *d_dqkv2 = d_alloc((size_t)nqkv * 2 + 16, "fa dqkv2");
    float *d_st = d_alloc((size_t)nst * 4, "fa stats"), *d_st2 = d_alloc((size_t)nst * 4, "fa stats2");
    float *d_scr = d_alloc((size_t)ct_cuda_attention_scratch_floats(B, T, NH) * 4, "fa scratch");
    float *g_out = h_f(nout), *g_out2 = h_f(nout), *g_dqkv = h_f(nqkv), *g_dqkv2 = h_f(nqkv);

    /* forward: flash, then the per-row kernels */
    d_fill_nan(d_out, (size_t)nout * 2), d_fill_nan(d_st, (size_t)nst * 4);
    ct_cuda_attention_forward_flash(d_out, d_st, d_qkv, B, T, NH, HS, NULL);
    d_fill_nan(d_out2, (size_t)nout * 2), d_fill_nan(d_st2, (size_t)nst * 4);
    ct_cuda_attention_forward_plain(d_out2, d_st2, d_qkv, B, T, NH, HS, NULL);
    down_bf16(g_out, d_out, nout), down_bf16(g_out2, d_out2, nout);
    double *e_out = h_alloc((size_t)nout * sizeof(double)), *e_dqkv = h_alloc((size_t)nqkv * sizeof(double));
    flash_errors(e_out, e_dqkv, qkv, dout, att, out, g_out, B, T, NH, HS);
    double *bd = flash_bound(e_out, out, nout, 1.0 / 128);
    const tol_t rms_out = {0, 0, 1e-2}, none = {0, 0, 0};
    compare_b(tag, "fwd out vs cpu", g_out, out, nout, C, rms_out, bd);
    free(bd), bd = flash_bound(e_out, g_out2, nout, 1.0 / 64);
    compare_b(tag, "fwd out vs per-row", g_out, g_out2, nout, C, none, bd);
    free(bd);
    cmp_f32(tag, "fwd stats vs cpu", d_st, lse, nst, T, TOL_ATT_STATS);
    float *g_st2 = h_f(nst);
    down_f32(g_st2, d_st2, nst);
    cmp_f32(tag, "fwd stats vs per-row", d_st, g_st2, nst, T, TOL_ATT_STATS);

    /* backward from the flash forward's out and stats: flash, then per-row */
    d_fill_nan(d_dqkv, (size_t)nqkv * 2), d_fill_nan(d_scr, (size_t)nst * 4);
    ct_cuda_attention_backward_flash(d_dqkv, d_dout, d_qkv, d_out, d_st, d_scr, B, T, NH, HS, NULL);
    d_fill_nan(d_dqkv2, (size_t)nqkv * 2);
    ct_cuda_attention_backward_plain(d_dqkv2, d_dout, d_qkv, d_out, d_st, d_scr, B, T, NH, HS, NULL);
    down_bf16(g_dqkv, d_dqkv, nqkv), down_bf16(g_dqkv2, d_dqkv2, nqkv);
    bd = flash_bound(e_dqkv, dqkv, nqkv, 1.0 / 128);
    compare_b(tag, "bwd dqkv vs cpu", g_dqkv, dqkv, nqkv, 3 * C, none, bd);
    free(bd), bd = flash_bound(e_dqkv, g_dqkv2, nqkv, 1.0 / 64);
    compare_b(tag, "bwd dqkv vs per-row", g_dqkv, g_dqkv2, nqkv, 3 * C, none, bd);
    free(bd);

    if (extra) {
        uint16_t *want = h_alloc((size_t)nqkv * 2), *got = h_alloc((size_t)nqkv * 2);
        down_raw(want, d_dqkv, (size_t)nqkv * 2);
        d_fill_nan(d_dqkv, (size_t)nqkv * 2);
        ct_cuda_attention_backward_flash(d_dqkv, d_dout, d_qkv, d_out, d_st, d_scr, B, T, NH, HS, NULL);
        down_raw(got, d_dqkv, (size_t)nqkv * 2);
        compare_bits(tag, "bwd repeated: same bits", got, want, nqkv, 2, 0);
        /* the context's plain path: flash bits where it applies ... */
        ct_attn_impl_t impl = ct_cuda_attn_impl(ctx);
        ct_cuda_set_attn_impl(ctx, CT_ATTN_PLAIN);
        ct_status_t st = ct_cuda_attention_prepare(ctx, B, T, NH, HS);
        CHECK_MSG(st == CT_OK, "%s: attention_prepare (plain): %s", tag, ct_status_name(st));
        uint16_t *wo = h_alloc((size_t)nout * 2), *go = h_alloc((size_t)nout * 2);
        uint32_t *ws = h_alloc((size_t)nst * 4), *gs = h_alloc((size_t)nst * 4);
        down_raw(wo, d_out, (size_t)nout * 2), down_raw(ws, d_st, (size_t)nst * 4);
        d_fill_nan(d_out2, (size_t)nout * 2), d_fill_nan(d_st2, (size_t)nst * 4);
        ct_cuda_attention_forward(ctx, d_out2, d_st2, d_qkv, B, T, NH, HS, NULL);
        down_raw(go, d_out2, (size_t)nout * 2), down_raw(gs, d_st2, (size_t)nst * 4);
        compare_bits(tag, "context plain fwd out = flash", go, wo, nout, 2, 0);
        compare_bits(tag, "context plain fwd stats = flash", gs, ws, nst, 4, 0);
        d_fill_nan(d_dqkv2, (size_t)nqkv * 2);
        ct_cuda_attention_backward(ctx, d_dqkv2, d_dout, d_qkv, d_out, d_st, B, T, NH, HS, NULL);
        down_raw(got, d_dqkv2, (size_t)nqkv * 2);
        compare_bits(tag, "context plain bwd dqkv = flash", got, want, nqkv, 2, 0);
        /* ... and the per-row bits for outputs that are not 16-byte aligned */
        ct_bf16_t *u_out = d_out2 + 1, *u_dqkv = d_dqkv2 + 1;
        ct_cuda_attention_forward_plain(d_out, d_st, d_qkv, B, T, NH, HS, NULL);
        down_raw(wo, d_out, (size_t)nout * 2), down_raw(ws, d_st, (size_t)nst * 4);
        ct_cuda_attention_forward(ctx, u_out, d_st2, d_qkv, B, T, NH, HS, NULL);
        down_raw(go, u_out, (size_t)nout * 2), down_raw(gs, d_st2, (size_t)nst * 4);
        compare_bits(tag, "context plain fwd, unaligned out = per-row", go, wo, nout, 2, 0);
        compare_bits(tag, "context plain fwd, unaligned out: stats = per-row", gs, ws, nst, 4, 0);
        ct_cuda_attention_backward_plain(d_dqkv, d_dout, d_qkv, d_out, d_st, d_scr, B, T, NH, HS,
                                         NULL);
        down_raw(want, d_dqkv, (size_t)nqkv * 2);
        ct_cuda_attention_backward(ctx, u_dqkv, d_dout, d_qkv, d_out, d_st, B, T, NH, HS, NULL);
        down_raw(got, u_dqkv, (size_t)nqkv * 2);
        compare_bits(tag, "context plain bwd, unaligned dqkv = per-row", got, want, nqkv, 2, 0);
        ct_cuda_set_attn_impl(ctx, impl);
        free(want), free(got), free(wo), free(go), free(ws), free(gs);
    }
    d_free(d_qkv), d_free(d_dout), d_free(d_out), d_free(d_out2), d_free(d_dqkv), d_free(d_dqkv2);
    d_free(d_st), d_free(d_st2), d_free(d_scr);
    free(qkv), free(dout), free(out), free(att), free(dqkv), free(scr), free(lse), free(g_out);
    free(g_out2), free(g_dqkv), free(g_dqkv2), free(g_st2), free(e_out), free(e_dqkv);
}

/* ---- main ------------------------------------------------------------------------------- */

/* ---- Llama: RMSNorm, RoPE, SwiGLU, grouped-query attention -------------------------- */

static const tol_t TOL_RMS_OUT = {1e-4, 1.0 / 128, 0};
static const tol_t TOL_RMS_STATS = {1e-5, 1e-5, 0};
static const tol_t TOL_RMS_BWD = {1e-4, 1e-4, 0};
static const tol_t TOL_BF16_OP = {1e-5, 1.0 / 128, 0}; /* one rounding of an fp32 result */

static void test_rmsnorm(int N, int C)
{
    char tag[96], tag2[112];
    snprintf(tag, sizeof tag, "rmsnorm N=%d C=%d", N, C);
    snprintf(tag2, sizeof tag2, "residual_rmsnorm N=%d C=%d", N, C);
    const float eps = 1e-5f;
    long n = (long)N * C;
    float *inp = h_randn(n, 2.0f, 0.5f), *w = h_randn_bf(C, 0.5f, 1.0f);
    float *out = h_f(n), *rstd = h_f(N);
    ct_rmsnorm_forward(out, rstd, inp, w, N, C, eps);
    float *d_inp = d_up_f32(inp, n, "rms inp");
    ct_bf16_t *d_w = d_up_bf16(w, C, "rms w"), *d_out = d_alloc((size_t)n * 2, "rms out");
    float *d_rstd = d_alloc((size_t)N * 4, "rms rstd");
    d_fill_nan(d_out, (size_t)n * 2), d_fill_nan(d_rstd, (size_t)N * 4);
    ct_cuda_rmsnorm_forward(d_out, d_rstd, d_inp, d_w, N, C, eps, NULL);
    cmp_bf16(tag, "fwd out", d_out, out, n, C, TOL_RMS_OUT);
    cmp_f32(tag, "fwd rstd", d_rstd, rstd, N, 0, TOL_RMS_STATS);
    float *rstd_g = h_f(N);
    down_f32(rstd_g, d_rstd, N);

    /* fused residual + RMSNorm, out of place and in place */
    float *res_in = h_randn(n, 2.0f, 0.5f), *x = h_randn_bf(n, 1.0f, 0.0f), *res = h_f(n);
    for (long i = 0; i < n; i++) res[i] = res_in[i] + x[i];
    float *out2 = h_f(n), *rstd2 = h_f(N);
    ct_rmsnorm_forward(out2, rstd2, res, w, N, C, eps);
    float *d_res_in = d_up_f32(res_in, n, "rrms res_in"), *d_res_out = d_alloc((size_t)n * 4, "o");
    ct_bf16_t *d_x = d_up_bf16(x, n, "rrms x");
    for (int inplace = 0; inplace < 2; inplace++) {
        float *ro = inplace ? d_res_in : d_res_out;
        if (!inplace) d_fill_nan(d_res_out, (size_t)n * 4);
        d_fill_nan(d_out, (size_t)n * 2), d_fill_nan(d_rstd, (size_t)N * 4);
        ct_cuda_residual_rmsnorm_forward(ro, d_out, d_rstd, d_res_in, d_x, d_w, N, C, eps, NULL);
        cmp_f32(tag2, inplace ? "res_out (in place)" : "res_out", ro, res, n, C, TOL_EXACT);
        cmp_bf16(tag2, "out", d_out, out2, n, C, TOL_RMS_OUT);
        cmp_f32(tag2, "rstd", d_rstd, rstd2, N, 0, TOL_RMS_STATS);
    }

    /* backward from an fp32 dout, twice: with the bf16 copy, then without */
    float *dout = h_randn(n, 1.0f, 0.0f), *dinp = h_randn(n, 1.0f, 0.0f), *dw = h_randn(C, 1.0f, 0.0f);
    float *d_dout = d_up_f32(dout, n, "rms dout"), *d_dinp = d_up_f32(dinp, n, "rms dinp");
    float *d_dw = d_up_f32(dw, C, "rms dw");
    ct_bf16_t *d_dinp_bf = d_alloc((size_t)n * 2, "rms dinp bf16");
    long nscr = ct_cuda_rmsnorm_scratch_floats(N, C);
    float *d_scr = d_alloc((size_t)(nscr > 0 ? nscr : 1) * 4, "rms scratch");
    up_raw(d_rstd, rstd_g, (size_t)N * 4);
    for (int call = 0; call < 2; call++) {
        ct_rmsnorm_backward_ref(dinp, dw, dout, inp, w, rstd_g, N, C);
        d_fill_nan(d_dinp_bf, (size_t)n * 2);
        ct_cuda_rmsnorm_backward(d_dinp, call == 0 ? d_dinp_bf : NULL, d_dw, d_dout, d_inp, d_w,
                                 d_rstd, d_scr, N, C, NULL);
        cmp_f32(tag, "bwd dinp (+=)", d_dinp, dinp, n, C, TOL_RMS_BWD);
        if (call == 0) cmp_bf16(tag, "bwd dinp_bf16", d_dinp_bf, dinp, n, C, TOL_LN_DINP_BF16);
        cmp_f32(tag, "bwd dweight (+=)", d_dw, dw, C, 0, tol_x(TOL_RMS_BWD, sqrt((double)N)));
    }
    d_free(d_inp), d_free(d_w), d_free(d_out), d_free(d_rstd), d_free(d_res_in), d_free(d_res_out);
    d_free(d_x), d_free(d_dout), d_free(d_dinp), d_free(d_dw), d_free(d_dinp_bf), d_free(d_scr);
    free(inp), free(w), free(out), free(rstd), free(rstd_g), free(res_in), free(x), free(res);
    free(out2), free(rstd2), free(dout), free(dinp), free(dw);
}

static void test_rope(int B, int T, int NH, int NKV, int HS, int llama3)
{
    char tag[96];
    snprintf(tag, sizeof tag, "rope B=%d T=%d NH=%d NKV=%d HS=%d%s", B, T, NH, NKV, HS,
             llama3 ? " llama3" : "");
    const int maxT = T + 5, half = HS / 2;
    float *inv = h_f(half), *cs = h_f((long)maxT * half), *sn = h_f((long)maxT * half);
    ct_rope_inv_freq(inv, HS, 500000.0f, llama3, 32.0f, 1.0f, 4.0f, 16);
    ct_rope_table(cs, sn, inv, maxT, HS);
    long nq = (long)B * T * NH * HS, nk = (long)B * T * NKV * HS;
    float *q = h_randn_bf(nq, 1.0f, 0.0f), *k = h_randn_bf(nk, 1.0f, 0.0f);
    float *qo = h_f(nq), *ko = h_f(nk), *dq = h_f(nq), *dk = h_f(nk);
    ct_rope_forward_ref(qo, q, cs, sn, B, T, NH, HS);
    ct_rope_forward_ref(ko, k, cs, sn, B, T, NKV, HS);
    memset(dq, 0, (size_t)nq * 4), memset(dk, 0, (size_t)nk * 4);
    ct_rope_backward_ref(dq, q, cs, sn, B, T, NH, HS); /* q, k as the gradients */
    ct_rope_backward_ref(dk, k, cs, sn, B, T, NKV, HS);
    float *d_cs = d_up_f32(cs, (long)maxT * half, "rope cos"), *d_sn = d_up_f32(sn, (long)maxT * half, "sin");
    ct_bf16_t *d_q = d_up_bf16(q, nq, "rope q"), *d_k = d_up_bf16(k, nk, "rope k");
    ct_cuda_rope_forward(d_q, d_k, d_cs, d_sn, B, T, NH, NKV, HS, NULL);
    cmp_bf16(tag, "fwd q (in place)", d_q, qo, nq, HS, TOL_BF16_OP);
    cmp_bf16(tag, "fwd k (in place)", d_k, ko, nk, HS, TOL_BF16_OP);
    d_free(d_q), d_free(d_k);
    d_q = d_up_bf16(q, nq, "rope dq"), d_k = d_up_bf16(k, nk, "rope dk");
    ct_cuda_rope_backward(d_q, d_k, d_cs, d_sn, B, T, NH, NKV, HS, NULL);
    cmp_bf16(tag, "bwd dq (in place)", d_q, dq, nq, HS, TOL_BF16_OP);
    cmp_bf16(tag, "bwd dk (in place)", d_k, dk, nk, HS, TOL_BF16_OP);
    d_free(d_q), d_free(d_k), d_free(d_cs), d_free(d_sn);
    free(inv), free(cs), free(sn), free(q), free(k), free(qo), free(ko), free(dq), free(dk);
}

static void test_swiglu(long n)
{
    char tag[64];
    snprintf(tag, sizeof tag, "swiglu n=%ld", n);
    float *g = h_randn_bf(n, 2.0f, 0.0f), *u = h_randn_bf(n, 1.0f, 0.0f);
    float *d = h_randn_bf(n, 1.0f, 0.0f), *o = h_f(n), *dg = h_f(n), *du = h_f(n);
    ct_swiglu_forward_ref(o, g, u, n);
    memset(dg, 0, (size_t)n * 4), memset(du, 0, (size_t)n * 4);
    ct_swiglu_backward_ref(dg, du, d, g, u, n);
    ct_bf16_t *d_g = d_up_bf16(g, n, "sw gate"), *d_u = d_up_bf16(u, n, "sw up");
    ct_bf16_t *d_d = d_up_bf16(d, n, "sw dout"), *d_o = d_alloc((size_t)n * 2, "sw out");
    ct_bf16_t *d_dg = d_alloc((size_t)n * 2, "sw dgate"), *d_du = d_alloc((size_t)n * 2, "sw dup");
    d_fill_nan(d_o, (size_t)n * 2), d_fill_nan(d_dg, (size_t)n * 2), d_fill_nan(d_du, (size_t)n * 2);
    ct_cuda_swiglu_forward(d_o, d_g, d_u, n, NULL);
    ct_cuda_swiglu_backward(d_dg, d_du, d_d, d_g, d_u, n, NULL);
    cmp_bf16(tag, "fwd", d_o, o, n, 0, TOL_BF16_OP);
    cmp_bf16(tag, "bwd dgate", d_dg, dg, n, 0, TOL_BF16_OP);
    cmp_bf16(tag, "bwd dup", d_du, du, n, 0, TOL_BF16_OP);
    d_free(d_g), d_free(d_u), d_free(d_d), d_free(d_o), d_free(d_dg), d_free(d_du);
    free(g), free(u), free(d), free(o), free(dg), free(du);
}

/* A grouped-query attention case: bf16-exact random q and k (rms qk_scale),
 * v and dout (rms 1), and the CPU reference's out, att and gradients. */
typedef struct {
    float *q, *k, *v, *dout, *out, *att, *scr, *dq, *dk, *dv;
} gqa_case_t;

static gqa_case_t gqa_case(int B, int T, int NH, int NKV, int HS, int group, int q_head0,
                           float qk_scale)
{
    const long nq = (long)B * T * NH * HS, nk = (long)B * T * NKV * HS;
    gqa_case_t c;
    /* one draw after the other (an initializer list's order is unspecified) */
    c.q = h_randn_bf(nq, qk_scale, 0.0f);
    c.k = h_randn_bf(nk, qk_scale, 0.0f);
    c.v = h_randn_bf(nk, 1.0f, 0.0f);
    c.dout = h_randn_bf(nq, 1.0f, 0.0f);
    c.out = h_f(nq), c.att = h_f((long)B * NH * T * T), c.scr = h_f(ct_attention_scratch_floats(B, T, NH));
    c.dq = h_f(nq), c.dk = h_f(nk), c.dv = h_f(nk);
    ct_gqa_forward_ref(c.out, c.att, c.q, c.k, c.v, B, T, NH, NKV, HS, group, q_head0);
    memset(c.dq, 0, (size_t)nq * 4), memset(c.dk, 0, (size_t)nk * 4), memset(c.dv, 0, (size_t)nk * 4);
    ct_gqa_backward_ref(c.dq, c.dk, c.dv, c.dout, c.q, c.k, c.v, c.att, c.scr, B, T, NH, NKV, HS,
                        group, q_head0);
    return c;
}

static void gqa_case_free(gqa_case_t *c)
{
    free(c->q), free(c->k), free(c->v), free(c->dout), free(c->out), free(c->att), free(c->scr);
    free(c->dq), free(c->dk), free(c->dv);
}

/* The per-row GQA kernels (the reference): NKV key/value heads read by NH
 * query heads through group and q_head0 (a tensor-parallel rank's view when
 * q_head0 > 0). */
static void test_gqa(int B, int T, int NH, int NKV, int HS, int group, int q_head0)
{
    char tag[128];
    snprintf(tag, sizeof tag, "gqa B=%d T=%d NH=%d NKV=%d HS=%d group=%d q_head0=%d", B, T, NH,
             NKV, HS, group, q_head0);
    long nq = (long)B * T * NH * HS, nk = (long)B * T * NKV * HS, nst = (long)B * NH * T;
    gqa_case_t c = gqa_case(B, T, NH, NKV, HS, group, q_head0, 1.0f);
    const float *q = c.q, *k = c.k, *v = c.v, *dout = c.dout, *out = c.out, *dq = c.dq;
    const float *dk = c.dk, *dv = c.dv;
    ct_bf16_t *d_q = d_up_bf16(q, nq, "gqa q"), *d_k = d_up_bf16(k, nk, "gqa k");
    ct_bf16_t *d_v = d_up_bf16(v, nk, "gqa v"), *d_do = d_up_bf16(dout, nq, "gqa dout");
    ct_bf16_t *d_o = d_alloc((size_t)nq * 2, "gqa out"), *d_dq = d_alloc((size_t)nq * 2, "gqa dq");
    ct_bf16_t *d_dk = d_alloc((size_t)nk * 2, "gqa dk"), *d_dv = d_alloc((size_t)nk * 2, "gqa dv");
    float *d_st = d_alloc((size_t)nst * 4, "gqa stats");
    float *d_scr = d_alloc((size_t)nst * 4, "gqa scratch");
    d_fill_nan(d_o, (size_t)nq * 2), d_fill_nan(d_dq, (size_t)nq * 2);
    d_fill_nan(d_dk, (size_t)nk * 2), d_fill_nan(d_dv, (size_t)nk * 2);
    ct_cuda_gqa_forward_plain(d_o, d_st, d_q, d_k, d_v, B, T, NH, NKV, HS, group, q_head0, NULL);
    cmp_bf16(tag, "fwd out", d_o, out, nq, NH * HS, TOL_ATT_OUT);
    ct_cuda_gqa_backward_plain(d_dq, d_dk, d_dv, d_do, d_q, d_k, d_v, d_o, d_st, d_scr, B, T, NH,
                               NKV, HS, group, q_head0, NULL);
    cmp_bf16(tag, "bwd dq", d_dq, dq, nq, NH * HS, TOL_ATT_DQKV);
    cmp_bf16(tag, "bwd dk", d_dk, dk, nk, NKV * HS, TOL_ATT_DQKV);
    cmp_bf16(tag, "bwd dv", d_dv, dv, nk, NKV * HS, TOL_ATT_DQKV);
    /* cuDNN's SDPA with fewer key/value heads, where the context has cuDNN
     * (a real GPU) and the mapping is the plain one */
    if (q_head0 == 0 && group * NKV == NH &&
        ct_cuda_gqa_prepare_cudnn(ctx, B, T, NH, NKV, HS) == CT_OK) {
        char tag2[160];
        snprintf(tag2, sizeof tag2, "%s [cudnn]", tag);
        d_fill_nan(d_o, (size_t)nq * 2), d_fill_nan(d_dq, (size_t)nq * 2);
        d_fill_nan(d_dk, (size_t)nk * 2), d_fill_nan(d_dv, (size_t)nk * 2);
        ct_cuda_gqa_forward_cudnn(ctx, d_o, d_st, d_q, d_k, d_v, B, T, NH, NKV, HS, NULL);
        cmp_bf16(tag2, "fwd out", d_o, out, nq, NH * HS, TOL_ATT_OUT);
        ct_cuda_gqa_backward_cudnn(ctx, d_dq, d_dk, d_dv, d_do, d_q, d_k, d_v, d_o, d_st, B, T, NH,
                                   NKV, HS, NULL);
        cmp_bf16(tag2, "bwd dq", d_dq, dq, nq, NH * HS, TOL_ATT_DQKV);
        cmp_bf16(tag2, "bwd dk", d_dk, dk, nk, NKV * HS, TOL_ATT_DQKV);
        cmp_bf16(tag2, "bwd dv", d_dv, dv, nk, NKV * HS, TOL_ATT_DQKV);
    }
    { /* fp32 key/value gradients (the tensor-parallel sum's input) */
        float *d_kv = d_alloc((size_t)nk * 8, "gqa dkv f32");
        d_fill_nan(d_kv, (size_t)nk * 8);
        ct_cuda_gqa_backward_plain_f32kv(d_dq, d_kv, d_kv + nk, d_do, d_q, d_k, d_v, d_o, d_st,
                                         d_scr, B, T, NH, NKV, HS, group, q_head0, NULL);
        cmp_bf16(tag, "bwd dq (f32kv)", d_dq, dq, nq, NH * HS, TOL_ATT_DQKV);
        cmp_f32(tag, "bwd dk (fp32)", d_kv, dk, nk, NKV * HS, TOL_ATT_DQKV);
        cmp_f32(tag, "bwd dv (fp32)", d_kv + nk, dv, nk, NKV * HS, TOL_ATT_DQKV);
        d_free(d_kv);
    }
    d_free(d_q), d_free(d_k), d_free(d_v), d_free(d_do), d_free(d_o), d_free(d_dq), d_free(d_dk);
    d_free(d_dv), d_free(d_st), d_free(d_scr);
    gqa_case_free(&c);
}

/* The flash kernels on grouped-query attention, against the CPU reference
 * with flash_errors' per-element bounds computed on the equivalent
 * multi-head problem (each query head's key/value head copied into an
 * expanded qkv); a key/value head's bound sums its query heads' bounds.
 * Bit for bit: out, stats and dq equal GPT-2's flash kernels on the
 * expanded qkv (the same tiles in the same order), and with group 1 dk and
 * dv too; the fp32 dk/dv rounded once equal the bf16 variant's; a repeated
 * backward gives the same bits; the dispatchers give the flash bits when
 * aligned and the per-row bits for an output off 16-byte alignment; key/
 * value heads no query head reads get exactly 0. */
static void test_gqa_flash(int B, int T, int NH, int NKV, int HS, int group, int q_head0)
{
    char tag[128];
    snprintf(tag, sizeof tag, "gqa flash B=%d T=%d NH=%d NKV=%d HS=%d group=%d q_head0=%d", B, T,
             NH, NKV, HS, group, q_head0);
    CHECK_MSG(ct_cuda_attention_flash_supports(HS), "%s: head size not supported", tag);
    if (!ct_cuda_attention_flash_supports(HS)) return;
    const int C = NH * HS, CK = NKV * HS;
    const long nq = (long)B * T * C, nk = (long)B * T * CK, nst = (long)B * NH * T;
    const long nqkv = 3 * nq;
    /* scores of rms 4, as test_flash_attention's */
    gqa_case_t c = gqa_case(B, T, NH, NKV, HS, group, q_head0, 2.0f);
    const float *q = c.q, *k = c.k, *v = c.v, *dout = c.dout, *out = c.out, *dq = c.dq;
    const float *dk = c.dk, *dv = c.dv, *att = c.att;
    /* the expanded multi-head qkv (B,T,3C) */
    float *qkv = h_f(nqkv);
    for (long bt = 0; bt < (long)B * T; bt++)
        for (int h = 0; h < NH; h++) {
            const int g = (q_head0 + h) / group;
            memcpy(qkv + bt * 3 * C + h * HS, q + bt * C + h * HS, (size_t)HS * 4);
            memcpy(qkv + bt * 3 * C + C + h * HS, k + bt * CK + g * HS, (size_t)HS * 4);
            memcpy(qkv + bt * 3 * C + 2 * C + h * HS, v + bt * CK + g * HS, (size_t)HS * 4);
        }

    ct_bf16_t *d_q = d_up_bf16(q, nq, "gqaf q"), *d_k = d_up_bf16(k, nk, "gqaf k");
    ct_bf16_t *d_v = d_up_bf16(v, nk, "gqaf v"), *d_do = d_up_bf16(dout, nq, "gqaf dout");
    ct_bf16_t *d_qkv = d_up_bf16(qkv, nqkv, "gqaf qkv");
    ct_bf16_t *d_o = d_alloc((size_t)nq * 2 + 16, "gqaf out"), *d_o2 = d_alloc((size_t)nq * 2, "gqaf out2");
    ct_bf16_t *d_dq = d_alloc((size_t)nq * 2 + 16, "gqaf dq"), *d_dk = d_alloc((size_t)nk * 2, "gqaf dk");
    ct_bf16_t *d_dv = d_alloc((size_t)nk * 2, "gqaf dv"), *d_dqkv = d_alloc((size_t)nqkv * 2, "gqaf dqkv");
    float *d_st = d_alloc((size_t)nst * 4, "gqaf stats"), *d_st2 = d_alloc((size_t)nst * 4, "gqaf stats2");
    float *d_scr = d_alloc((size_t)nst * 4, "gqaf scratch"), *d_kv = d_alloc((size_t)nk * 8, "gqaf dkv f32");

    /* forward against the CPU */
    d_fill_nan(d_o, (size_t)nq * 2), d_fill_nan(d_st, (size_t)nst * 4);
    ct_cuda_gqa_forward_flash(d_o, d_st, d_q, d_k, d_v, B, T, NH, NKV, HS, group, q_head0, NULL);
    float *g_out = h_f(nq);
    down_bf16(g_out, d_o, nq);
    double *e_out = h_alloc((size_t)nq * sizeof(double)), *e_dqkv = h_alloc((size_t)nqkv * sizeof(double));
    flash_errors(e_out, e_dqkv, qkv, dout, att, out, g_out, B, T, NH, HS);
    double *e_dq = h_alloc((size_t)nq * sizeof(double)), *e_dk = h_alloc((size_t)nk * sizeof(double));
    double *e_dv = h_alloc((size_t)nk * sizeof(double));
    for (long bt = 0; bt < (long)B * T; bt++)
        for (int h = 0; h < NH; h++) {
            const int g = (q_head0 + h) / group;
            for (int d = 0; d < HS; d++) {
                e_dq[bt * C + h * HS + d] = e_dqkv[bt * 3 * C + h * HS + d];
                e_dk[bt * CK + g * HS + d] += e_dqkv[bt * 3 * C + C + h * HS + d];
                e_dv[bt * CK + g * HS + d] += e_dqkv[bt * 3 * C + 2 * C + h * HS + d];
            }
        }
    const tol_t rms_out = {0, 0, 1e-2}, none = {0, 0, 0};
    double *bd = flash_bound(e_out, out, nq, 1.0 / 128);
    compare_b(tag, "fwd out vs cpu", g_out, out, nq, C, rms_out, bd);
    free(bd);

    /* backward, bf16 and fp32 key/value gradients, against the CPU */
    d_fill_nan(d_dq, (size_t)nq * 2), d_fill_nan(d_dk, (size_t)nk * 2), d_fill_nan(d_dv, (size_t)nk * 2);
    ct_cuda_gqa_backward_flash(d_dq, d_dk, d_dv, d_do, d_q, d_k, d_v, d_o, d_st, d_scr, B, T, NH,
                               NKV, HS, group, q_head0, NULL);
    float *g_dq = h_f(nq), *g_dk = h_f(nk), *g_dv = h_f(nk);
    down_bf16(g_dq, d_dq, nq), down_bf16(g_dk, d_dk, nk), down_bf16(g_dv, d_dv, nk);
    bd = flash_bound(e_dq, dq, nq, 1.0 / 128);
    compare_b(tag, "bwd dq vs cpu", g_dq, dq, nq, C, none, bd);
    free(bd), bd = flash_bound(e_dk, dk, nk, 1.0 / 128);
    compare_b(tag, "bwd dk vs cpu", g_dk, dk, nk, CK, none, bd);
    free(bd), bd = flash_bound(e_dv, dv, nk, 1.0 / 128);
    compare_b(tag, "bwd dv vs cpu", g_dv, dv, nk, CK, none, bd);
    free(bd);
    d_fill_nan(d_kv, (size_t)nk * 8);
    ct_cuda_gqa_backward_flash_f32kv(d_dq, d_kv, d_kv + nk, d_do, d_q, d_k, d_v, d_o, d_st, d_scr,
                                     B, T, NH, NKV, HS, group, q_head0, NULL);
    float *g_kv = h_f(2 * nk);
    down_f32(g_kv, d_kv, 2 * nk);
    bd = flash_bound(e_dk, dk, nk, FA_F32);
    compare_b(tag, "bwd dk (fp32) vs cpu", g_kv, dk, nk, CK, none, bd);
    free(bd), bd = flash_bound(e_dv, dv, nk, FA_F32);
    compare_b(tag, "bwd dv (fp32) vs cpu", g_kv + nk, dv, nk, CK, none, bd);
    free(bd);

    /* bits: the fp32 variant rounded once, dq of both variants */
    /* room for dqkv, or dq, dk, dv (NKV may exceed NH) */
    uint16_t *want = h_alloc((size_t)(nqkv + 2 * nk) * 2), *got = h_alloc((size_t)(nqkv + 2 * nk) * 2);
    uint16_t *want_q = h_alloc((size_t)nq * 2), *want_k = h_alloc((size_t)nk * 2);
    uint16_t *want_v = h_alloc((size_t)nk * 2);
    down_raw(got, d_dq, (size_t)nq * 2);
    d_fill_nan(d_dq, (size_t)nq * 2);
    ct_cuda_gqa_backward_flash(d_dq, d_dk, d_dv, d_do, d_q, d_k, d_v, d_o, d_st, d_scr, B, T, NH,
                               NKV, HS, group, q_head0, NULL);
    down_raw(want_q, d_dq, (size_t)nq * 2), down_raw(want_k, d_dk, (size_t)nk * 2);
    down_raw(want_v, d_dv, (size_t)nk * 2);
    compare_bits(tag, "bwd dq of the f32kv variant = bf16 variant", got, want_q, nq, 2, 0);
    for (long i = 0; i < 2 * nk; i++) got[i] = f2bf(g_kv[i]);
    compare_bits(tag, "bwd dk (fp32) rounded = bf16 variant", got, want_k, nk, 2, 0);
    compare_bits(tag, "bwd dv (fp32) rounded = bf16 variant", got + nk, want_v, nk, 2, 0);
    for (long i = 0; i < nk; i++) got[i] = f2bf(g_dk[i]); /* the first run's dk */
    compare_bits(tag, "bwd repeated: dk same bits", got, want_k, nk, 2, 0);

    /* bits: GPT-2's flash kernels on the expanded qkv */
    uint16_t *wo = h_alloc((size_t)nq * 2), *go = h_alloc((size_t)nq * 2);
    uint32_t *ws = h_alloc((size_t)nst * 4), *gs = h_alloc((size_t)nst * 4);
    down_raw(go, d_o, (size_t)nq * 2), down_raw(gs, d_st, (size_t)nst * 4);
    d_fill_nan(d_o2, (size_t)nq * 2), d_fill_nan(d_st2, (size_t)nst * 4);
    ct_cuda_attention_forward_flash(d_o2, d_st2, d_qkv, B, T, NH, HS, NULL);
    down_raw(wo, d_o2, (size_t)nq * 2), down_raw(ws, d_st2, (size_t)nst * 4);
    compare_bits(tag, "fwd out = MHA flash on expanded qkv", go, wo, nq, 2, 0);
    compare_bits(tag, "fwd stats = MHA flash on expanded qkv", gs, ws, nst, 4, 0);
    d_fill_nan(d_dqkv, (size_t)nqkv * 2);
    ct_cuda_attention_backward_flash(d_dqkv, d_do, d_qkv, d_o2, d_st2, d_scr, B, T, NH, HS, NULL);
    down_raw(want, d_dqkv, (size_t)nqkv * 2);
    const int same_heads = group == 1 && q_head0 == 0 && NKV == NH; /* dk, dv compare too */
    for (long bt = 0; bt < (long)B * T; bt++)
        for (int j = 0; j < C; j++) {
            got[bt * C + j] = want[bt * 3 * C + j];
            if (same_heads)
                got[nq + bt * C + j] = want[bt * 3 * C + C + j],
                got[2 * nq + bt * C + j] = want[bt * 3 * C + 2 * C + j];
        }
    compare_bits(tag, "bwd dq = MHA flash on expanded qkv", want_q, got, nq, 2, 0);
    if (same_heads) {
        compare_bits(tag, "bwd dk = MHA flash (group 1)", want_k, got + nq, nk, 2, 0);
        compare_bits(tag, "bwd dv = MHA flash (group 1)", want_v, got + 2 * nq, nk, 2, 0);
    }

    /* the dispatchers: flash bits when aligned ... */
    d_fill_nan(d_o2, (size_t)nq * 2), d_fill_nan(d_st2, (size_t)nst * 4);
    ct_cuda_gqa_forward(d_o2, d_st2, d_q, d_k, d_v, B, T, NH, NKV, HS, group, q_head0, NULL);
    down_raw(wo, d_o2, (size_t)nq * 2), down_raw(ws, d_st2, (size_t)nst * 4);
    compare_bits(tag, "dispatch fwd out = flash", wo, go, nq, 2, 0);
    compare_bits(tag, "dispatch fwd stats = flash", ws, gs, nst, 4, 0);
    d_fill_nan(d_dq, (size_t)nq * 2), d_fill_nan(d_dk, (size_t)nk * 2), d_fill_nan(d_dv, (size_t)nk * 2);
    ct_cuda_gqa_backward(d_dq, d_dk, d_dv, d_do, d_q, d_k, d_v, d_o, d_st, d_scr, B, T, NH, NKV,
                         HS, group, q_head0, NULL);
    down_raw(got, d_dq, (size_t)nq * 2), down_raw(got + nq, d_dk, (size_t)nk * 2);
    down_raw(got + nq + nk, d_dv, (size_t)nk * 2);
    compare_bits(tag, "dispatch bwd dq = flash", got, want_q, nq, 2, 0);
    compare_bits(tag, "dispatch bwd dk = flash", got + nq, want_k, nk, 2, 0);
    compare_bits(tag, "dispatch bwd dv = flash", got + nq + nk, want_v, nk, 2, 0);
    /* ... and the per-row bits for an output off 16-byte alignment */
    ct_bf16_t *u_o = d_o + 1, *u_dq = d_dq + 1;
    ct_cuda_gqa_forward_plain(d_o2, d_st2, d_q, d_k, d_v, B, T, NH, NKV, HS, group, q_head0, NULL);
    down_raw(wo, d_o2, (size_t)nq * 2), down_raw(ws, d_st2, (size_t)nst * 4);
    ct_cuda_gqa_forward(u_o, d_st, d_q, d_k, d_v, B, T, NH, NKV, HS, group, q_head0, NULL);
    down_raw(go, u_o, (size_t)nq * 2), down_raw(gs, d_st, (size_t)nst * 4);
    compare_bits(tag, "dispatch fwd, unaligned out = per-row", go, wo, nq, 2, 0);
    compare_bits(tag, "dispatch fwd, unaligned out: stats = per-row", gs, ws, nst, 4, 0);
    ct_cuda_gqa_backward_plain(d_dq, d_dk, d_dv, d_do, d_q, d_k, d_v, d_o2, d_st2, d_scr, B, T, NH,
                               NKV, HS, group, q_head0, NULL);
    down_raw(want, d_dq, (size_t)nq * 2), down_raw(want + nq, d_dk, (size_t)nk * 2);
    ct_cuda_gqa_backward(u_dq, d_dk, d_dv, d_do, d_q, d_k, d_v, d_o2, d_st2, d_scr, B, T, NH, NKV,
                         HS, group, q_head0, NULL);
    down_raw(got, u_dq, (size_t)nq * 2), down_raw(got + nq, d_dk, (size_t)nk * 2);
    compare_bits(tag, "dispatch bwd, unaligned dq = per-row", got, want, nq, 2, 0);
    compare_bits(tag, "dispatch bwd, unaligned dq: dk = per-row", got + nq, want + nq, nk, 2, 0);

    d_free(d_q), d_free(d_k), d_free(d_v), d_free(d_do), d_free(d_qkv), d_free(d_o), d_free(d_o2);
    d_free(d_dq), d_free(d_dk), d_free(d_dv), d_free(d_dqkv), d_free(d_st), d_free(d_st2);
    d_free(d_scr), d_free(d_kv);
    gqa_case_free(&c);
    free(qkv), free(g_out), free(e_out), free(e_dqkv), free(e_dq), free(e_dk), free(e_dv);
    free(g_dq), free(g_dk), free(g_dv), free(g_kv), free(want), free(got);
    free(want_q), free(want_k), free(want_v), free(wo), free(go), free(ws), free(gs);
}

int main(void)
{
    (void)ct_test_captured; /* test_util.h helper this test does not use */
    if (ct_cuda_device_count() == 0) {
        fprintf(stderr, "test_cuda_ops: no CUDA device, skipped\n");
        return 77;
    }
    ct_status_t st = ct_cuda_init(0, CT_ATTN_AUTO, &ctx);
    if (st == CT_ERR_UNSUPPORTED) {
        fprintf(stderr, "test_cuda_ops: device 0 unsupported (%s), skipped\n", ct_status_name(st));
        return 77;
    }
    CHECK_MSG(st == CT_OK && ctx, "ct_cuda_init(0, AUTO): %s", ct_status_name(st));
    if (st != CT_OK) return ct_test_finish("test_cuda_ops");
    fprintf(stderr, "test_cuda_ops: %s, bf16 peak %.0f TFLOP/s, attention impl %s\n",
            ct_cuda_device_name(ctx), ct_cuda_peak_bf16_tflops(ctx),
            impl_name(ct_cuda_attn_impl(ctx)));
    CHECK_MSG(ct_cuda_attn_impl(ctx) != CT_ATTN_AUTO, "ct_cuda_attn_impl returned AUTO");
    ct_rng_seed(&rng, 2024, 7, 0);

    test_convert();

    const int enc[][4] = {{2, 1, 37, 50}, {2, 7, 64, 128}, {3, 37, 96, 256}, {2, 130, 768, 1024}};
    for (size_t i = 0; i < sizeof enc / sizeof enc[0]; i++)
        test_encoder(enc[i][0], enc[i][1], enc[i][2], enc[i][3]);

    /* LayerNorm: C below, at and between multiples of 4, 32 and 128; N = 1,
     * N below one block of rows, several groups of blocks (N = 130) and the
     * capped grid with rows left over (N = 2100); C = 1030 and 2052 take the
     * three-kernel backward. */
    const int ln[][2] = {{1, 37}, {1, 96}, {7, 64}, {37, 96}, {37, 100}, {37, 33},
                         {130, 768}, {5, 1600}, {2100, 64}, {3, 1030}, {2, 2052}};
    for (size_t i = 0; i < sizeof ln / sizeof ln[0]; i++) test_layernorm(ln[i][0], ln[i][1]);

    const long ng[] = {1, 7, 37 * 37, 130 * 768 + 3};
    for (size_t i = 0; i < sizeof ng / sizeof ng[0]; i++) test_gelu_residual(ng[i]);

    /* (N, C, OC): odd C skips DGELU, OC not a multiple of 8 skips the GELU
     * epilogue; the last three are GPT-2's qkv, fc and fc_proj layers. */
    const int mm[][3] = {{1, 37, 24},     {7, 64, 40},      {37, 96, 37},
                         {130, 768, 2304}, {130, 768, 3072}, {64, 3072, 768}};
    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) test_matmul(mm[i][0], mm[i][1], mm[i][2]);

    const int Ts[] = {1, 17, 64, 129}, HSs[] = {16, 64};
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++) test_attention(2, Ts[i], 3, HSs[h]);

    test_xent(1, 50, 128);
    test_xent(7, 50, 128);
    test_xent(37, 1000, 1024);
    test_xent(4, 50257, 50304);

    /* tensor parallelism: shards of odd sizes, one with no real columns */
    test_encoder_vp(2, 7, 64, 256, 2);
    test_encoder_vp(3, 5, 37, 384, 3);
    test_xent_vp(7, 50, 256, 2);     /* shard 1 has no real column */
    test_xent_vp(37, 1000, 1152, 3);
    test_xent_vp(4, 50257, 50304, 4);
    test_bias_bf16(1, 37);
    test_bias_bf16(37, 96);

    test_sumsq(0);
    test_sumsq(1);
    test_sumsq(1000003);

    const long big = 1000003;
    test_adamw("plain", 37, 1, CLIP_OFF, 0, 0, 1);
    test_adamw("no clip", big, 7, CLIP_OFF, 0, 0, 1);
    test_adamw("clip above norm", big, 7, CLIP_INACTIVE, 0, 0, 1);
    test_adamw("clip active", big, 3, CLIP_ACTIVE, 0, 0, 0);
    test_adamw("clip active", 1, 1, CLIP_ACTIVE, 0, 0, 1);
    test_adamw("sumsq nan", 1003, 5, CLIP_ACTIVE, 1, 0, 1);
    test_adamw("sumsq inf", 1003, 5, CLIP_OFF, 2, 0, 1);
    test_adamw("stochastic", 37, 1, CLIP_OFF, 0, 99, 1);
    test_adamw("stochastic", big, 7, CLIP_ACTIVE, 0, 1234, 1);

    /* flash attention: T around the tiles (16, 32, 64), every head size */
    test_flash_attention(1, 1, 1, 64, 0);
    test_flash_attention(2, 17, 3, 32, 1);
    test_flash_attention(1, 63, 2, 64, 0);
    test_flash_attention(2, 65, 2, 128, 1);
    test_flash_attention(1, 129, 2, 64, 1);
    test_flash_attention(3, 65, 1, 16, 0);
    test_flash_attention(1, 129, 1, 128, 0);

    /* Llama's ops, odd shapes */
    const int rms[][2] = {{1, 37}, {7, 64}, {37, 96}, {130, 576}};
    for (size_t i = 0; i < sizeof rms / sizeof rms[0]; i++) test_rmsnorm(rms[i][0], rms[i][1]);
    test_rope(1, 1, 3, 1, 16, 0);
    test_rope(2, 17, 6, 2, 64, 1);
    test_rope(3, 37, 4, 4, 26, 0);
    test_swiglu(1);
    test_swiglu(37 * 37);
    test_swiglu(130 * 1536 + 5);
    test_gqa(2, 17, 6, 2, 16, 3, 0);  /* groups of 3 */
    test_gqa(1, 37, 4, 4, 64, 1, 0);  /* multi-head */
    test_gqa(2, 33, 3, 1, 40, 3, 0);  /* multi-query, HS not a multiple of 32 */
    test_gqa(1, 29, 2, 3, 32, 2, 2);  /* a TP rank's view: query heads 2-3 of replicated kv */
    /* the flash kernels: groups of 3 over 16-wide heads, 64-wide groups of 2
     * across key tiles, multi-query, a TP rank's view with unread kv heads 0
     * and 2, multi-head 128-wide */
    test_gqa_flash(2, 17, 6, 2, 16, 3, 0);
    test_gqa_flash(1, 65, 4, 2, 64, 2, 0);
    test_gqa_flash(2, 33, 3, 1, 32, 3, 0);
    test_gqa_flash(1, 29, 2, 3, 32, 2, 2);
    test_gqa_flash(1, 129, 2, 2, 128, 1, 0);

    ct_cuda_free(ctx);
    return ct_test_finish("test_cuda_ops");
}
