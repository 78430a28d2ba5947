/* The Llama-family CPU kernels: RMSNorm, RoPE, SwiGLU and grouped-query
 * attention.
 *
 * 1. Fast against plain-loop reference on odd shapes (T = 1, rows not a
 *    multiple of 8, T > 128 so attention crosses its row blocks, GQA groups
 *    of 1, 2 and 3, a TP rank's head offset), |a - b| <= 1e-4 + 1e-4 |b|;
 *    backward outputs start from random values (they accumulate).
 * 2. Independent checks: GQA with one key/value head per query head equals
 *    GPT-2's attention kernel on the packed qkv; GQA equals MHA on copied
 *    key/value heads; RoPE is a rotation (norms kept, position 0 the
 *    identity) and its backward its inverse; Llama 3 frequency scaling
 *    matches the formula in double.
 * 3. Central finite differences of every backward, as
 *    test_kernels_gradcheck.c does for GPT-2's ops: objective
 *    L = sum(out * R), |num - ana| <= 1e-2 max(|num|, |ana|) + abs_tol. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/kernels.h"
#include "test_util.h"

#define ATOL 1e-4
#define RTOL 1e-4
#define GC_COORDS 200
#define GC_RTOL 1e-2

static ct_rng_t rng;

static float *alloc_f(long n)
{
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static float *rand_f(long n, float scale)
{
    float *p = alloc_f(n);
    for (long i = 0; i < n; i++) p[i] = scale * ct_rng_normal(&rng);
    return p;
}

static float *copy_f(const float *src, long n)
{
    float *p = alloc_f(n);
    memcpy(p, src, (size_t)n * sizeof(float));
    return p;
}

static void check_close(const char *what, const float *a, const float *b, long n)
{
    long bad = 0, worst = -1;
    double worst_excess = 0.0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]), lim = ATOL + RTOL * fabs((double)b[i]);
        if (!(d <= lim)) {
            bad++;
            double excess = isnan(d) ? INFINITY : d / lim;
            if (worst < 0 || excess > worst_excess) worst_excess = excess, worst = i;
        }
    }
    CHECK_MSG(bad == 0, "%s: %ld of %ld differ, worst [%ld] %.8g vs %.8g", what, bad, n, worst,
              worst >= 0 ? a[worst] : 0.0, worst >= 0 ? b[worst] : 0.0);
}

static double dot_d(const float *a, const float *b, long n)
{
    double s = 0.0;
    for (long i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* ana against central differences of f in x at up to GC_COORDS coordinates. */
static void gradcheck(const char *what, float *x, long n, const float *ana, loss_fn f, void *ctx,
                      float eps, double abs_tol)
{
    long bad = 0, checked = 0;
    double max_ana = 0.0, worst = 0.0;
    for (long kk = 0; kk < (n < GC_COORDS ? n : GC_COORDS); kk++) {
        long i = n <= GC_COORDS ? kk : (long)ct_rng_below(&rng, (uint64_t)n);
        float saved = x[i], xp = saved + eps, xm = saved - eps;
        x[i] = xp;
        double lp = f(ctx);
        x[i] = xm;
        double lm = f(ctx);
        x[i] = saved;
        double num = (lp - lm) / ((double)xp - (double)xm), a = ana[i];
        double err = fabs(num - a), mag = fmax(fabs(num), fabs(a));
        checked++;
        if (!(err <= GC_RTOL * mag + abs_tol)) {
            if (bad < 5) fprintf(stderr, "  %s[%ld]: numeric %.7g analytic %.7g\n", what, i, num, a);
            bad++;
        }
        if (err > worst) worst = err;
        if (fabs(a) > max_ana) max_ana = fabs(a);
    }
    fprintf(stderr, "%-34s %4ld coords, max |grad| %.3g, worst abs err %.2g\n", what, checked,
            max_ana, worst);
    CHECK_MSG(bad == 0, "%s: %ld of %ld coordinates off", what, bad, checked);
    CHECK_MSG(max_ana > 100 * abs_tol, "%s: gradient too small (%g)", what, max_ana);
}

/* ---- RMSNorm ------------------------------------------------------------------ */

typedef struct {
    int N, C;
    float eps;
    float *inp, *w, *out, *rstd, *R;
} rms_ctx_t;

static double rms_loss(void *p)
{
    rms_ctx_t *c = p;
    ct_rmsnorm_forward(c->out, c->rstd, c->inp, c->w, c->N, c->C, c->eps);
    return dot_d(c->out, c->R, (long)c->N * c->C);
}

static void test_rmsnorm(int N, int C)
{
    long n = (long)N * C;
    rms_ctx_t c = {N, C, 1e-5f, rand_f(n, 1.0f), rand_f(C, 1.0f), alloc_f(n), alloc_f(N),
                   rand_f(n, 1.0f)};
    float *out_r = alloc_f(n), *rstd_r = alloc_f(N);
    rms_loss(&c);
    ct_rmsnorm_forward_ref(out_r, rstd_r, c.inp, c.w, N, C, c.eps);
    check_close("rmsnorm out", c.out, out_r, n);
    check_close("rmsnorm rstd", c.rstd, rstd_r, N);
    float *pi = rand_f(n, 1.0f), *pw = rand_f(C, 1.0f);
    float *di = copy_f(pi, n), *dw = copy_f(pw, C), *di_r = copy_f(pi, n), *dw_r = copy_f(pw, C);
    ct_rmsnorm_backward(di, dw, c.R, c.inp, c.w, c.rstd, N, C);
    ct_rmsnorm_backward_ref(di_r, dw_r, c.R, c.inp, c.w, c.rstd, N, C);
    check_close("rmsnorm dinp", di, di_r, n);
    check_close("rmsnorm dweight", dw, dw_r, C);

    float *gi = alloc_f(n), *gw = alloc_f(C);
    ct_rmsnorm_backward(gi, gw, c.R, c.inp, c.w, c.rstd, N, C);
    gradcheck("rmsnorm dinp", c.inp, n, gi, rms_loss, &c, 1e-2f, 1e-3);
    gradcheck("rmsnorm dweight", c.w, C, gw, rms_loss, &c, 1e-2f, 1e-3);
    free(c.inp), free(c.w), free(c.out), free(c.rstd), free(c.R), free(out_r), free(rstd_r);
    free(pi), free(pw), free(di), free(dw), free(di_r), free(dw_r), free(gi), free(gw);
}

/* ---- RoPE --------------------------------------------------------------------- */

typedef struct {
    int B, T, NH, HS;
    float *inp, *out, *cs, *sn, *R;
} rope_ctx_t;

static double rope_loss(void *p)
{
    rope_ctx_t *c = p;
    ct_rope_forward(c->out, c->inp, c->cs, c->sn, c->B, c->T, c->NH, c->HS);
    return dot_d(c->out, c->R, (long)c->B * c->T * c->NH * c->HS);
}

static void test_rope(int B, int T, int NH, int HS, float theta)
{
    long n = (long)B * T * NH * HS;
    float *inv = alloc_f(HS / 2);
    ct_rope_inv_freq(inv, HS, theta, 0, 1, 1, 4, 8192);
    for (int i = 0; i < HS / 2; i++) {
        double want = pow(theta, -2.0 * i / HS);
        CHECK_MSG(fabs(inv[i] - want) <= 1e-6 * want, "inv_freq[%d] %.9g, want %.9g", i, inv[i],
                  want);
    }
    rope_ctx_t c = {B, T, NH, HS, rand_f(n, 1.0f), alloc_f(n), alloc_f((long)T * HS / 2),
                    alloc_f((long)T * HS / 2), rand_f(n, 1.0f)};
    ct_rope_table(c.cs, c.sn, inv, T, HS);
    rope_loss(&c);
    float *ref = alloc_f(n);
    ct_rope_forward_ref(ref, c.inp, c.cs, c.sn, B, T, NH, HS);
    check_close("rope forward", c.out, ref, n);
    /* in place */
    float *inplace = copy_f(c.inp, n);
    ct_rope_forward(inplace, inplace, c.cs, c.sn, B, T, NH, HS);
    CHECK(memcmp(inplace, c.out, (size_t)n * sizeof(float)) == 0);
    /* a rotation: each pair keeps its norm; position 0 is the identity */
    long bad = 0;
    for (long r = 0; r < (long)B * T * NH; r++)
        for (int i = 0; i < HS / 2; i++) {
            const float *x = c.inp + r * HS, *y = c.out + r * HS;
            double a = hypot(x[i], x[i + HS / 2]), b = hypot(y[i], y[i + HS / 2]);
            if (fabs(a - b) > 1e-5 * (1 + a)) bad++;
            if ((r / NH) % T == 0 && (x[i] != y[i] || x[i + HS / 2] != y[i + HS / 2])) bad++;
        }
    CHECK_MSG(bad == 0, "rope: %ld pairs not rotated", bad);
    /* the angle at position t of pair i is t * inv_freq[i] */
    int t = T - 1, i = HS / 2 - 1;
    CHECK(fabs(c.cs[(long)t * HS / 2 + i] - cos((double)t * inv[i])) < 1e-5);
    /* backward: the inverse rotation, accumulating */
    float *pre = rand_f(n, 1.0f), *d = copy_f(pre, n), *d_r = copy_f(pre, n);
    ct_rope_backward(d, c.R, c.cs, c.sn, B, T, NH, HS);
    ct_rope_backward_ref(d_r, c.R, c.cs, c.sn, B, T, NH, HS);
    check_close("rope backward", d, d_r, n);
    float *back = alloc_f(n);
    ct_rope_backward(back, c.out, c.cs, c.sn, B, T, NH, HS);
    check_close("rope backward(forward(x)) = x", back, c.inp, n);
    float *g = alloc_f(n);
    ct_rope_backward(g, c.R, c.cs, c.sn, B, T, NH, HS);
    gradcheck("rope dinp", c.inp, n, g, rope_loss, &c, 1e-2f, 1e-4);
    free(inv), free(c.inp), free(c.out), free(c.cs), free(c.sn), free(c.R), free(ref);
    free(inplace), free(pre), free(d), free(d_r), free(back), free(g);
}

/* Llama 3's scaling against the formula (transformers'
 * _compute_llama3_parameters) in double. */
static void test_rope_llama3(void)
{
    const int HS = 64, orig = 8192;
    const double theta = 500000.0, factor = 32.0, lo = 1.0, hi = 4.0;
    float inv[32];
    ct_rope_inv_freq(inv, HS, (float)theta, 1, (float)factor, (float)lo, (float)hi, orig);
    int n_low = 0, n_mid = 0, n_high = 0;
    for (int i = 0; i < HS / 2; i++) {
        double f = pow(theta, -2.0 * i / HS), wl = 2 * M_PI / f, want;
        if (wl < orig / hi) {
            want = f;
            n_high++;
        } else if (wl > orig / lo) {
            want = f / factor;
            n_low++;
        } else {
            double s = (orig / wl - lo) / (hi - lo);
            want = (1 - s) * f / factor + s * f;
            n_mid++;
        }
        CHECK_MSG(fabs(inv[i] - want) <= 2e-6 * want, "llama3 inv_freq[%d] %.9g, want %.9g", i,
                  inv[i], want);
    }
    CHECK_MSG(n_low > 0 && n_mid > 0 && n_high > 0, "llama3 bands %d/%d/%d", n_low, n_mid, n_high);
}

/* ---- SwiGLU ------------------------------------------------------------------- */

typedef struct {
    long n;
    float *gate, *up, *out, *R;
} sw_ctx_t;

static double sw_loss(void *p)
{
    sw_ctx_t *c = p;
    ct_swiglu_forward(c->out, c->gate, c->up, c->n);
    return dot_d(c->out, c->R, c->n);
}

static void test_swiglu(long n)
{
    sw_ctx_t c = {n, rand_f(n, 3.0f), rand_f(n, 1.0f), alloc_f(n), rand_f(n, 1.0f)};
    if (n > 4) c.gate[0] = -100.0f, c.gate[1] = 100.0f, c.gate[2] = 0.0f; /* saturation */
    float *ref = alloc_f(n);
    sw_loss(&c);
    ct_swiglu_forward_ref(ref, c.gate, c.up, n);
    check_close("swiglu forward", c.out, ref, n);
    float *pg = rand_f(n, 1.0f), *pu = rand_f(n, 1.0f);
    float *dg = copy_f(pg, n), *du = copy_f(pu, n), *dg_r = copy_f(pg, n), *du_r = copy_f(pu, n);
    ct_swiglu_backward(dg, du, c.R, c.gate, c.up, n);
    ct_swiglu_backward_ref(dg_r, du_r, c.R, c.gate, c.up, n);
    check_close("swiglu dgate", dg, dg_r, n);
    check_close("swiglu dup", du, du_r, n);
    float *gg = alloc_f(n), *gu = alloc_f(n);
    ct_swiglu_backward(gg, gu, c.R, c.gate, c.up, n);
    gradcheck("swiglu dgate", c.gate, n, gg, sw_loss, &c, 1e-2f, 1e-4);
    gradcheck("swiglu dup", c.up, n, gu, sw_loss, &c, 1e-2f, 1e-4);
    free(c.gate), free(c.up), free(c.out), free(c.R), free(ref), free(pg), free(pu), free(dg);
    free(du), free(dg_r), free(du_r), free(gg), free(gu);
}

/* ---- grouped-query attention ---------------------------------------------------- */

typedef struct {
    int B, T, NH, NKV, HS, group, h0;
    float *q, *k, *v, *out, *att, *R;
} gqa_ctx_t;

static double gqa_loss(void *p)
{
    gqa_ctx_t *c = p;
    ct_gqa_forward(c->out, c->att, c->q, c->k, c->v, c->B, c->T, c->NH, c->NKV, c->HS, c->group,
                   c->h0);
    return dot_d(c->out, c->R, (long)c->B * c->T * c->NH * c->HS);
}

/* NH local query heads, NKV key/value heads, groups of `group`, offset h0. */
static void test_gqa(int B, int T, int NH, int NKV, int HS, int group, int h0, int gradcheck_it)
{
    long nq = (long)B * T * NH * HS, nk = (long)B * T * NKV * HS;
    long natt = (long)B * NH * T * T;
    gqa_ctx_t c = {B, T, NH, NKV, HS, group, h0, rand_f(nq, 1.0f), rand_f(nk, 1.0f),
                   rand_f(nk, 1.0f), alloc_f(nq), alloc_f(natt), rand_f(nq, 1.0f)};
    char what[96];
    gqa_loss(&c);
    float *out_r = alloc_f(nq), *att_r = alloc_f(natt);
    ct_gqa_forward_ref(out_r, att_r, c.q, c.k, c.v, B, T, NH, NKV, HS, group, h0);
    snprintf(what, sizeof what, "gqa B%d T%d NH%d NKV%d g%d h0=%d out", B, T, NH, NKV, group, h0);
    check_close(what, c.out, out_r, nq);
    check_close("gqa att", c.att, att_r, natt);

    float *scr = alloc_f(ct_attention_scratch_floats(B, T, NH));
    float *pq = rand_f(nq, 1.0f), *pk = rand_f(nk, 1.0f), *pv = rand_f(nk, 1.0f);
    float *dq = copy_f(pq, nq), *dk = copy_f(pk, nk), *dv = copy_f(pv, nk);
    float *dq_r = copy_f(pq, nq), *dk_r = copy_f(pk, nk), *dv_r = copy_f(pv, nk);
    ct_gqa_backward(dq, dk, dv, c.R, c.q, c.k, c.v, c.att, scr, B, T, NH, NKV, HS, group, h0);
    ct_gqa_backward_ref(dq_r, dk_r, dv_r, c.R, c.q, c.k, c.v, c.att, scr, B, T, NH, NKV, HS,
                        group, h0);
    check_close("gqa dq", dq, dq_r, nq);
    check_close("gqa dk", dk, dk_r, nk);
    check_close("gqa dv", dv, dv_r, nk);

    /* the same as multi-head attention with each key/value head copied to
     * its query heads (GPT-2's kernel on the packed layout) */
    int C = NH * HS;
    float *qkv = alloc_f((long)B * T * 3 * C), *o2 = alloc_f(nq), *a2 = alloc_f(natt);
    for (long n = 0; n < (long)B * T; n++)
        for (int h = 0; h < NH; h++) {
            int kv = (h0 + h) / group;
            memcpy(qkv + n * 3 * C + h * HS, c.q + n * C + h * HS, (size_t)HS * sizeof(float));
            memcpy(qkv + n * 3 * C + C + h * HS, c.k + (n * NKV + kv) * HS,
                   (size_t)HS * sizeof(float));
            memcpy(qkv + n * 3 * C + 2 * C + h * HS, c.v + (n * NKV + kv) * HS,
                   (size_t)HS * sizeof(float));
        }
    ct_attention_forward(o2, a2, qkv, B, T, NH, HS);
    check_close("gqa = mha on copied heads", c.out, o2, nq);
    /* and its backward: dk of a shared head is the sum over its query heads */
    float *dqkv = alloc_f((long)B * T * 3 * C), *dk2 = alloc_f(nk), *dv2 = alloc_f(nk);
    float *gq = alloc_f(nq), *gk = alloc_f(nk), *gv = alloc_f(nk);
    ct_attention_backward(dqkv, c.R, qkv, a2, scr, B, T, NH, HS);
    ct_gqa_backward(gq, gk, gv, c.R, c.q, c.k, c.v, c.att, scr, B, T, NH, NKV, HS, group, h0);
    for (long n = 0; n < (long)B * T; n++)
        for (int h = 0; h < NH; h++) {
            int kv = (h0 + h) / group;
            for (int i = 0; i < HS; i++) {
                dk2[(n * NKV + kv) * HS + i] += dqkv[n * 3 * C + C + h * HS + i];
                dv2[(n * NKV + kv) * HS + i] += dqkv[n * 3 * C + 2 * C + h * HS + i];
            }
        }
    check_close("gqa dk = summed mha dk", gk, dk2, nk);
    check_close("gqa dv = summed mha dv", gv, dv2, nk);

    if (gradcheck_it) {
        snprintf(what, sizeof what, "gqa NKV%d g%d h0=%d dq", NKV, group, h0);
        gradcheck(what, c.q, nq, gq, gqa_loss, &c, 1e-2f, 1e-3);
        snprintf(what, sizeof what, "gqa NKV%d g%d h0=%d dk", NKV, group, h0);
        gradcheck(what, c.k, nk, gk, gqa_loss, &c, 1e-2f, 1e-3);
        snprintf(what, sizeof what, "gqa NKV%d g%d h0=%d dv", NKV, group, h0);
        gradcheck(what, c.v, nk, gv, gqa_loss, &c, 1e-2f, 1e-3);
    }
    free(c.q), free(c.k), free(c.v), free(c.out), free(c.att), free(c.R), free(out_r);
    free(att_r), free(scr), free(pq), free(pk), free(pv), free(dq), free(dk), free(dv);
    free(dq_r), free(dk_r), free(dv_r), free(qkv), free(o2), free(a2), free(dqkv), free(dk2);
    free(dv2), free(gq), free(gk), free(gv);
}

/* The thread count does not change the GQA backward (one thread per group). */
static void test_gqa_threads(void)
{
    const int B = 2, T = 19, NH = 6, NKV = 2, HS = 8;
    long nq = (long)B * T * NH * HS, nk = (long)B * T * NKV * HS;
    float *q = rand_f(nq, 1.0f), *k = rand_f(nk, 1.0f), *v = rand_f(nk, 1.0f);
    float *o = alloc_f(nq), *att = alloc_f((long)B * NH * T * T), *R = rand_f(nq, 1.0f);
    float *scr = alloc_f(ct_attention_scratch_floats(B, T, NH));
    float *g[2][3];
    int saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r ? 1 : (saved > 1 ? saved : 2));
        g[r][0] = alloc_f(nq), g[r][1] = alloc_f(nk), g[r][2] = alloc_f(nk);
        ct_gqa_forward(o, att, q, k, v, B, T, NH, NKV, HS, 3, 0);
        ct_gqa_backward(g[r][0], g[r][1], g[r][2], R, q, k, v, att, scr, B, T, NH, NKV, HS, 3, 0);
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(g[0][0], g[1][0], (size_t)nq * sizeof(float)) == 0);
    CHECK(memcmp(g[0][1], g[1][1], (size_t)nk * sizeof(float)) == 0);
    CHECK(memcmp(g[0][2], g[1][2], (size_t)nk * sizeof(float)) == 0);
    for (int r = 0; r < 2; r++) free(g[r][0]), free(g[r][1]), free(g[r][2]);
    free(q), free(k), free(v), free(o), free(att), free(R), free(scr);
}

int main(void)
{
    ct_rng_seed(&rng, 2024, 0, 0);
    test_rmsnorm(14, 36);
    test_rmsnorm(1, 7);
    test_rmsnorm(9, 131);
    test_rope(2, 7, 3, 12, 10000.0f);
    test_rope(1, 1, 2, 8, 10000.0f);
    test_rope(1, 33, 1, 64, 500000.0f);
    test_rope_llama3();
    test_swiglu(1003);
    test_swiglu(5);
    /* B, T, NH (local query heads), NKV, HS, group, q_head0 */
    test_gqa(2, 7, 4, 2, 8, 2, 0, 1);   /* groups of 2 */
    test_gqa(1, 9, 6, 2, 6, 3, 0, 1);   /* groups of 3 */
    test_gqa(2, 5, 3, 3, 4, 1, 0, 1);   /* plain MHA */
    test_gqa(1, 6, 2, 1, 8, 4, 0, 1);   /* MQA shape */
    test_gqa(1, 1, 2, 1, 8, 2, 0, 0);   /* T = 1 */
    test_gqa(1, 7, 2, 2, 8, 4, 2, 1);   /* TP rank 1 of 4 with 2 KV heads (replicated) */
    test_gqa(1, 7, 3, 3, 4, 2, 3, 1);   /* rank 1 of 2 of NH 6, NKV 3: heads straddle groups */
    test_gqa(1, 131, 2, 1, 8, 2, 0, 0); /* crosses the 128-row blocks */
    test_gqa_threads();
    return ct_test_finish("test_kernels_llama");
}
