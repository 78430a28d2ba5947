/* Fast CPU kernels against plain-loop references on odd shapes.
 *
 * matmul, attention, xent and AdamW are compared with their *_ref versions
 * in kernels.h; encoder, layernorm, GELU, residual and the xent backward
 * with double-precision loops written here. Shapes include T = 1, row
 * counts that are not multiples of 8, and T > 128 so attention crosses its
 * row blocks. Backward outputs start from random values to check that they
 * accumulate. Also checks that results are deterministic run to run, and
 * across thread counts where the kernels promise it.
 *
 * Tolerance (fp32 vs reference): |a - b| <= 1e-4 + 1e-4 * |b| per element.
 * AdamW fast vs ref: |a - b| <= 1e-6 * max(1, |b|). */
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

static double *alloc_d(long n)
{
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
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

/* Checks |a - b| <= ATOL + RTOL*|b| element-wise; reports the worst one. */
static void check_close(const char *what, const float *a, const float *b, long n)
{
    long bad = 0, worst = -1;
    double worst_excess = 0.0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double lim = ATOL + RTOL * fabs((double)b[i]);
        if (!(d <= lim)) {
            bad++;
            double excess = isnan(d) ? INFINITY : d / lim;
            if (worst < 0 || excess > worst_excess) worst_excess = excess, worst = i;
        }
    }
    CHECK_MSG(bad == 0, "%s: %ld of %ld differ, worst [%ld] %.8g vs %.8g", what, bad, n, worst,
              worst >= 0 ? a[worst] : 0.0, worst >= 0 ? b[worst] : 0.0);
}

static void check_close_d(const char *what, const float *a, const double *b, long n)
{
    float *bf = alloc_f(n);
    for (long i = 0; i < n; i++) bf[i] = (float)b[i];
    check_close(what, a, bf, n);
    free(bf);
}

static int bit_equal(const float *a, const float *b, long n)
{
    return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}

typedef struct {
    int B, T, C, NH, V, Vp;
} shape_t;

/* ---- matmul --------------------------------------------------------------- */

static void test_matmul(int N, int C, int OC, int with_bias, int with_dinp)
{
    char tag[96];
    snprintf(tag, sizeof tag, "matmul N=%d C=%d OC=%d bias=%d dinp=%d", N, C, OC, with_bias,
             with_dinp);
    float *inp = rand_f((long)N * C, 1.0f), *w = rand_f((long)OC * C, 0.5f);
    float *bias = with_bias ? rand_f(OC, 1.0f) : NULL;
    float *out = alloc_f((long)N * OC), *out_ref = alloc_f((long)N * OC);
    ct_matmul_forward(out, inp, w, bias, N, C, OC);
    ct_matmul_forward_ref(out_ref, inp, w, bias, N, C, OC);
    char what[160];
    snprintf(what, sizeof what, "%s forward", tag);
    check_close(what, out, out_ref, (long)N * OC);

    float *dout = rand_f((long)N * OC, 1.0f);
    float *dinp = with_dinp ? rand_f((long)N * C, 1.0f) : NULL;
    float *dw = rand_f((long)OC * C, 1.0f);
    float *db = with_bias ? rand_f(OC, 1.0f) : NULL;
    float *dinp_r = with_dinp ? copy_f(dinp, (long)N * C) : NULL;
    float *dw_r = copy_f(dw, (long)OC * C);
    float *db_r = with_bias ? copy_f(db, OC) : NULL;
    ct_matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
    ct_matmul_backward_ref(dinp_r, dw_r, db_r, dout, inp, w, N, C, OC);
    if (with_dinp) {
        snprintf(what, sizeof what, "%s dinp", tag);
        check_close(what, dinp, dinp_r, (long)N * C);
    }
    snprintf(what, sizeof what, "%s dweight", tag);
    check_close(what, dw, dw_r, (long)OC * C);
    if (with_bias) {
        snprintf(what, sizeof what, "%s dbias", tag);
        check_close(what, db, db_r, OC);
    }
    free(inp), free(w), free(bias), free(out), free(out_ref), free(dout), free(dinp), free(dw);
    free(db), free(dinp_r), free(dw_r), free(db_r);
}

/* ---- attention ------------------------------------------------------------ */

static void test_attention(shape_t s)
{
    int B = s.B, T = s.T, NH = s.NH, C = s.C, HS = C / NH;
    char tag[96];
    snprintf(tag, sizeof tag, "attention B=%d T=%d NH=%d HS=%d", B, T, NH, HS);
    long nqkv = (long)B * T * 3 * C, nout = (long)B * T * C, natt = (long)B * NH * T * T;
    float *qkv = rand_f(nqkv, 1.0f);
    float *out = alloc_f(nout), *out_r = alloc_f(nout);
    float *att = alloc_f(natt), *att_r = alloc_f(natt);
    /* Garbage in the outputs must not leak through. */
    for (long i = 0; i < natt; i++) att[i] = att_r[i] = NAN;
    ct_attention_forward(out, att, qkv, B, T, NH, HS);
    ct_attention_forward_ref(out_r, att_r, qkv, B, T, NH, HS);
    char what[160];
    snprintf(what, sizeof what, "%s out", tag);
    check_close(what, out, out_r, nout);
    snprintf(what, sizeof what, "%s att", tag);
    check_close(what, att, att_r, natt);
    /* Rows sum to 1 and the upper triangle is exactly 0. */
    long upper_nonzero = 0;
    double worst_rowsum = 0.0;
    for (long bh = 0; bh < (long)B * NH; bh++) {
        for (int t = 0; t < T; t++) {
            const float *row = att + (bh * T + t) * T;
            double sum = 0.0;
            for (int j = 0; j < T; j++) {
                if (j > t && row[j] != 0.0f) upper_nonzero++;
                sum += row[j];
            }
            if (fabs(sum - 1.0) > worst_rowsum) worst_rowsum = fabs(sum - 1.0);
        }
    }
    CHECK_MSG(upper_nonzero == 0, "%s: %ld nonzero entries above the diagonal", tag,
              upper_nonzero);
    CHECK_MSG(worst_rowsum < 1e-5, "%s: softmax row sums off by %g", tag, worst_rowsum);

    float *dout = rand_f(nout, 1.0f);
    float *dqkv = rand_f(nqkv, 1.0f), *dqkv_r = copy_f(dqkv, nqkv);
    long nscr = ct_attention_scratch_floats(B, T, NH);
    float *scr = alloc_f(nscr);
    ct_attention_backward(dqkv, dout, qkv, att, scr, B, T, NH, HS);
    ct_attention_backward_ref(dqkv_r, dout, qkv, att_r, scr, B, T, NH, HS);
    snprintf(what, sizeof what, "%s dqkv", tag);
    check_close(what, dqkv, dqkv_r, nqkv);

    free(qkv), free(out), free(out_r), free(att), free(att_r), free(dout), free(dqkv);
    free(dqkv_r), free(scr);
}

/* ---- cross-entropy -------------------------------------------------------- */

static void test_xent(int N, int V, int Vp)
{
    char tag[96];
    snprintf(tag, sizeof tag, "xent N=%d V=%d Vp=%d", N, V, Vp);
    long nl = (long)N * Vp;
    float *logits = rand_f(nl, 3.0f);
    /* Padding columns must be ignored by the forward, whatever they hold. */
    for (int n = 0; n < N; n++)
        for (int j = V; j < Vp; j++) logits[(long)n * Vp + j] = (j & 1) ? NAN : 1e30f;
    int32_t *tgt = malloc((size_t)N * sizeof(int32_t));
    for (int n = 0; n < N; n++) tgt[n] = (int32_t)ct_rng_below(&rng, (uint64_t)V);
    float *loss = alloc_f(N), *lse = alloc_f(N), *loss_r = alloc_f(N), *lse_r = alloc_f(N);
    ct_xent_forward(loss, lse, logits, tgt, N, V, Vp);
    ct_xent_forward_ref(loss_r, lse_r, logits, tgt, N, V, Vp);
    char what[160];
    snprintf(what, sizeof what, "%s losses", tag);
    check_close(what, loss, loss_r, N);
    snprintf(what, sizeof what, "%s lse", tag);
    check_close(what, lse, lse_r, N);

    /* Backward against softmax in double. */
    float *dloss = rand_f(N, 1.0f);
    double *want = alloc_d(nl);
    for (int n = 0; n < N; n++) {
        const float *x = logits + (long)n * Vp;
        double mx = -INFINITY, sum = 0.0;
        for (int j = 0; j < V; j++) mx = x[j] > mx ? x[j] : mx;
        for (int j = 0; j < V; j++) sum += exp((double)x[j] - mx);
        for (int j = 0; j < Vp; j++) {
            double p = j < V ? exp((double)x[j] - mx) / sum : 0.0;
            double ind = j == tgt[n] ? 1.0 : 0.0;
            want[(long)n * Vp + j] = j < V ? (p - ind) * dloss[n] : 0.0;
        }
    }
    float *d = copy_f(logits, nl);
    ct_xent_backward(d, lse, tgt, dloss, N, V, Vp);
    snprintf(what, sizeof what, "%s dlogits", tag);
    check_close_d(what, d, want, nl);
    long pad_nonzero = 0;
    for (int n = 0; n < N; n++)
        for (int j = V; j < Vp; j++)
            if (d[(long)n * Vp + j] != 0.0f) pad_nonzero++;
    CHECK_MSG(pad_nonzero == 0, "%s: %ld padding columns not zeroed", tag, pad_nonzero);
    free(logits), free(tgt), free(loss), free(lse), free(loss_r), free(lse_r), free(dloss);
    free(want), free(d);
}

/* ---- encoder, layernorm, gelu, residual (double loops here) --------------- */

static void test_encoder(shape_t s)
{
    int B = s.B, T = s.T, C = s.C, Vp = s.Vp;
    long N = (long)B * T;
    int32_t *inp = malloc((size_t)N * sizeof(int32_t));
    /* Few distinct ids so rows of dwte collect several contributions. */
    for (long i = 0; i < N; i++) inp[i] = (int32_t)ct_rng_below(&rng, 3) * (Vp / 3);
    float *wte = rand_f((long)Vp * C, 1.0f), *wpe = rand_f((long)T * C, 1.0f);
    float *out = alloc_f(N * C);
    ct_encoder_forward(out, inp, wte, wpe, B, T, C);
    double *want = alloc_d(N * C);
    for (long n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            want[n * C + c] = (double)wte[(long)inp[n] * C + c] + wpe[(n % T) * C + c];
    check_close_d("encoder forward", out, want, N * C);

    float *dout = rand_f(N * C, 1.0f);
    float *dwte = rand_f((long)Vp * C, 1.0f), *dwpe = rand_f((long)T * C, 1.0f);
    double *w_dwte = alloc_d((long)Vp * C);
    double *w_dwpe = alloc_d((long)T * C);
    for (long i = 0; i < (long)Vp * C; i++) w_dwte[i] = dwte[i];
    for (long i = 0; i < (long)T * C; i++) w_dwpe[i] = dwpe[i];
    for (long n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            w_dwte[(long)inp[n] * C + c] += dout[n * C + c];
            w_dwpe[(n % T) * C + c] += dout[n * C + c];
        }
    ct_encoder_backward(dwte, dwpe, dout, inp, B, T, C);
    check_close_d("encoder dwte", dwte, w_dwte, (long)Vp * C);
    check_close_d("encoder dwpe", dwpe, w_dwpe, (long)T * C);
    free(inp), free(wte), free(wpe), free(out), free(want), free(dout), free(dwte), free(dwpe);
    free(w_dwte), free(w_dwpe);
}

static void test_layernorm(int N, int C)
{
    float *inp = rand_f((long)N * C, 2.0f), *w = rand_f(C, 1.0f), *b = rand_f(C, 1.0f);
    for (long i = 0; i < (long)N * C; i++) inp[i] += 3.0f; /* nonzero mean */
    float *out = alloc_f((long)N * C), *mean = alloc_f(N), *rstd = alloc_f(N);
    ct_layernorm_forward(out, mean, rstd, inp, w, b, N, C);
    double *want = alloc_d((long)N * C);
    double *wm = alloc_d(N), *wr = alloc_d(N);
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        double m = 0.0, v = 0.0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        double r = 1.0 / sqrt(v + 1e-5);
        for (int c = 0; c < C; c++) want[(long)n * C + c] = (x[c] - m) * r * w[c] + b[c];
        wm[n] = m, wr[n] = r;
    }
    check_close_d("layernorm out", out, want, (long)N * C);
    check_close_d("layernorm mean", mean, wm, N);
    check_close_d("layernorm rstd", rstd, wr, N);

    float *dout = rand_f((long)N * C, 1.0f);
    float *dinp = rand_f((long)N * C, 1.0f), *dw = rand_f(C, 1.0f), *db = rand_f(C, 1.0f);
    double *w_dinp = alloc_d((long)N * C);
    double *w_dw = alloc_d(C), *w_db = alloc_d(C);
    for (long i = 0; i < (long)N * C; i++) w_dinp[i] = dinp[i];
    for (int c = 0; c < C; c++) w_dw[c] = dw[c], w_db[c] = db[c];
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C, *d = dout + (long)n * C;
        double a = 0.0, bb = 0.0;
        for (int c = 0; c < C; c++) {
            double norm = (x[c] - wm[n]) * wr[n];
            a += w[c] * d[c];
            bb += w[c] * d[c] * norm;
            w_dw[c] += norm * d[c];
            w_db[c] += d[c];
        }
        a /= C, bb /= C;
        for (int c = 0; c < C; c++) {
            double norm = (x[c] - wm[n]) * wr[n];
            w_dinp[(long)n * C + c] += (w[c] * d[c] - a - norm * bb) * wr[n];
        }
    }
    ct_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    check_close_d("layernorm dinp", dinp, w_dinp, (long)N * C);
    check_close_d("layernorm dweight", dw, w_dw, C);
    check_close_d("layernorm dbias", db, w_db, C);
    free(inp), free(w), free(b), free(out), free(mean), free(rstd), free(want), free(wm);
    free(wr), free(dout), free(dinp), free(dw), free(db), free(w_dinp), free(w_dw), free(w_db);
}

static void test_gelu_residual(long n)
{
    float *x = rand_f(n, 3.0f), *y = alloc_f(n);
    /* Include the saturated tails and exact zeros. */
    if (n > 3) x[0] = 0.0f, x[1] = 12.0f, x[2] = -12.0f;
    ct_gelu_forward(y, x, n);
    double *want = alloc_d(n), *wd = alloc_d(n);
    const double k = sqrt(2.0 / M_PI);
    float *dout = rand_f(n, 1.0f), *dinp = rand_f(n, 1.0f);
    for (long i = 0; i < n; i++) {
        double xi = x[i], u = k * (xi + 0.044715 * xi * xi * xi), th = tanh(u);
        want[i] = 0.5 * xi * (1.0 + th);
        double g = 0.5 * (1.0 + th) +
                   0.5 * xi * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * xi * xi);
        wd[i] = dinp[i] + g * dout[i];
    }
    check_close_d("gelu forward", y, want, n);
    ct_gelu_backward(dinp, x, dout, n);
    check_close_d("gelu backward", dinp, wd, n);

    float *a = rand_f(n, 1.0f), *b = rand_f(n, 1.0f), *o = alloc_f(n);
    float *da = rand_f(n, 1.0f), *db = rand_f(n, 1.0f);
    double *wa = alloc_d(n), *wb = alloc_d(n);
    for (long i = 0; i < n; i++) {
        want[i] = (double)a[i] + b[i];
        wa[i] = (double)da[i] + dout[i];
        wb[i] = (double)db[i] + dout[i];
    }
    ct_residual_forward(o, a, b, n);
    check_close_d("residual forward", o, want, n);
    ct_residual_backward(da, db, dout, n);
    check_close_d("residual da", da, wa, n);
    check_close_d("residual db", db, wb, n);
    free(x), free(y), free(want), free(wd), free(dout), free(dinp), free(a), free(b), free(o);
    free(da), free(db), free(wa), free(wb);
}

/* ---- AdamW, sumsq, scale -------------------------------------------------- */

static void test_adamw(long n)
{
    float *p = rand_f(n, 1.0f), *m = alloc_f(n), *v = alloc_f(n);
    memset(m, 0, (size_t)n * sizeof(float));
    memset(v, 0, (size_t)n * sizeof(float));
    float *p_r = copy_f(p, n), *m_r = copy_f(m, n), *v_r = copy_f(v, n);
    for (int t = 1; t <= 5; t++) {
        float *g = rand_f(n, 0.1f);
        ct_adamw_update(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
        ct_adamw_update_ref(p_r, g, m_r, v_r, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
        free(g);
    }
    long bad = 0, exact = 0;
    for (long i = 0; i < n; i++) {
        double lim = 1e-6 * fmax(1.0, fabs((double)p_r[i]));
        if (!(fabs((double)p[i] - p_r[i]) <= lim)) bad++;
        if (!(fabs((double)m[i] - m_r[i]) <= 1e-6 * fmax(1.0, fabs((double)m_r[i])))) bad++;
        if (!(fabs((double)v[i] - v_r[i]) <= 1e-6 * fmax(1.0, fabs((double)v_r[i])))) bad++;
        if (p[i] == p_r[i] && m[i] == m_r[i] && v[i] == v_r[i]) exact++;
    }
    CHECK_MSG(bad == 0, "adamw n=%ld: %ld values differ from the reference", n, bad);
    fprintf(stderr, "adamw n=%ld: %ld of %ld elements bit-identical to the reference\n", n,
            exact, n);
    free(p), free(m), free(v), free(p_r), free(m_r), free(v_r);
}

static void test_sumsq_scale(long n)
{
    float *x = rand_f(n, 2.0f);
    double want = 0.0;
    for (long i = 0; i < n; i++) want += (double)x[i] * x[i];
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    double s1 = ct_sumsq(x, n);
    omp_set_num_threads(2);
    double s2 = ct_sumsq(x, n);
    omp_set_num_threads(saved);
    double s3 = ct_sumsq(x, n);
    CHECK_MSG(fabs(s1 - want) <= 1e-12 * want + 1e-300, "sumsq n=%ld: %.17g vs %.17g", n, s1,
              want);
    CHECK_MSG(s1 == s2 && s1 == s3, "sumsq n=%ld differs across thread counts", n);
    float *y = copy_f(x, n);
    ct_scale(y, 0.37f, n);
    long bad = 0;
    for (long i = 0; i < n; i++)
        if (y[i] != x[i] * 0.37f) bad++;
    CHECK_MSG(bad == 0, "scale n=%ld: %ld elements wrong", n, bad);
    free(x), free(y);
}

/* ---- determinism ------------------------------------------------------------ */

/* Runs every backward twice on the same inputs and requires bit-identical
 * gradients; the encoder, layernorm, bias and sumsq reductions must also
 * match between 1 and 2 threads. */
static void test_determinism(void)
{
    const int B = 2, T = 33, NH = 4, HS = 16, C = NH * HS, Vp = 50, OC = 3 * C;
    const long N = (long)B * T;
    int32_t inp[2 * 33];
    for (long i = 0; i < N; i++) inp[i] = (int32_t)ct_rng_below(&rng, 5);
    float *x = rand_f(N * C, 1.0f), *w = rand_f((long)OC * C, 1.0f), *lw = rand_f(C, 1.0f);
    float *dout = rand_f(N * OC, 1.0f), *dx = rand_f(N * C, 1.0f);
    float *mean = alloc_f(N), *rstd = alloc_f(N), *tmp = alloc_f(N * C);
    ct_layernorm_forward(tmp, mean, rstd, x, lw, lw, N, C);
    float *qkv = rand_f(N * 3 * C, 1.0f), *att = alloc_f((long)B * NH * T * T);
    float *scr = alloc_f(ct_attention_scratch_floats(B, T, NH));
    ct_attention_forward(tmp, att, qkv, B, T, NH, HS);

    float *res[3][6]; /* run 0 and 1 with the default threads, run 2 with one */
    int saved = omp_get_max_threads();
    for (int run = 0; run < 3; run++) {
        omp_set_num_threads(run == 2 ? 1 : saved);
        float **r = res[run];
        r[0] = calloc((size_t)Vp * C, sizeof(float));  /* dwte */
        r[1] = calloc((size_t)T * C, sizeof(float));   /* dwpe */
        r[2] = calloc((size_t)C * 2, sizeof(float));   /* ln dweight, dbias */
        r[3] = calloc((size_t)OC * C + OC, sizeof(float)); /* matmul dw, db */
        r[4] = calloc((size_t)N * 3 * C, sizeof(float)); /* dqkv */
        r[5] = calloc((size_t)N * C, sizeof(float));     /* ln dinp */
        ct_encoder_backward(r[0], r[1], dx, inp, B, T, C);
        ct_layernorm_backward(r[5], r[2], r[2] + C, dx, x, lw, mean, rstd, N, C);
        ct_matmul_backward(NULL, r[3], r[3] + (long)OC * C, dout, x, w, N, C, OC);
        ct_attention_backward(r[4], dx, qkv, att, scr, B, T, NH, HS);
    }
    omp_set_num_threads(saved);
    long sizes[6] = {(long)Vp * C, (long)T * C, 2L * C, (long)OC * C + OC, N * 3 * C, N * C};
    const char *names[6] = {"encoder dwte", "encoder dwpe", "layernorm dweight/dbias",
                            "matmul dweight/dbias", "attention dqkv", "layernorm dinp"};
    for (int i = 0; i < 6; i++)
        CHECK_MSG(bit_equal(res[0][i], res[1][i], sizes[i]), "%s not deterministic", names[i]);
    CHECK_MSG(bit_equal(res[0][0], res[2][0], sizes[0]), "encoder dwte depends on threads");
    CHECK_MSG(bit_equal(res[0][1], res[2][1], sizes[1]), "encoder dwpe depends on threads");
    CHECK_MSG(bit_equal(res[0][2], res[2][2], sizes[2]), "layernorm dw/db depends on threads");
    CHECK_MSG(bit_equal(res[0][3] + (long)OC * C, res[2][3] + (long)OC * C, OC),
              "matmul dbias depends on threads");
    for (int run = 0; run < 3; run++)
        for (int i = 0; i < 6; i++) free(res[run][i]);
    free(x), free(w), free(lw), free(dout), free(dx), free(mean), free(rstd), free(tmp);
    free(qkv), free(att), free(scr);
}

int main(void)
{
    (void)ct_test_captured; /* test_util.h helper this test does not use */
    ct_rng_seed(&rng, 1234, 0, 0);
    const shape_t shapes[] = {
        {2, 7, 36, 3, 97, 128},  /* the odd shape from the spec */
        {1, 1, 16, 2, 5, 8},     /* T = 1 */
        {3, 13, 20, 4, 33, 40},  /* N = 39, HS = 5 */
        {1, 300, 64, 2, 1000, 1024}, /* T > 128: several attention row blocks */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        shape_t s = shapes[i];
        int N = s.B * s.T;
        test_matmul(N, s.C, 3 * s.C, 1, 1);
        test_matmul(N, s.C, 4 * s.C, 0, 1);
        test_matmul(N, 4 * s.C, s.C, 1, 0);
        test_matmul(N, s.C, s.Vp, 0, 1); /* lm head */
        test_attention(s);
        test_xent(N, s.V, s.Vp);
        test_encoder(s);
        test_layernorm(N, s.C);
        test_gelu_residual((long)N * 4 * s.C + 3);
    }
    test_xent(5, 50257, 50304); /* GPT-2's vocabulary */
    test_gelu_residual(1);
    test_gelu_residual(7);
    test_adamw(1003);
    test_adamw(1);
    test_sumsq_scale(0);
    test_sumsq_scale(5);
    test_sumsq_scale(100003);
    test_determinism();
    return ct_test_finish("test_kernels_ref");
}
