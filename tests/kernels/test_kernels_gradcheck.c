/* Central finite differences against every backward kernel.
 *
 * Each op gets a scalar objective L = sum(out * R) with a fixed random R
 * (for xent, L = sum(losses * dloss)), so dout = R. The forward runs in fp32
 * through the fast kernels and L is summed in double; perturbing one input
 * leaves every output that does not depend on it bit-identical, so only the
 * affected outputs add rounding noise. The exception is xent, whose
 * objective is evaluated in double (see xent_loss). Up to COORDS random coordinates of
 * each input are checked with
 *
 *     |num - ana| <= 1e-2 * max(|num|, |ana|) + abs_tol,
 *
 * where abs_tol is set per op next to its call (about 1e-3 of the typical
 * gradient size) and eps is chosen per op. Separately, every backward is run
 * into zeroed and into pre-filled gradient buffers, and the difference must
 * be the pre-filled values: backward ops accumulate. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/kernels.h"
#include "test_util.h"

#define COORDS 300
#define RTOL 1e-2

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

static double dot_d(const float *a, const float *b, long n)
{
    double s = 0.0;
    for (long i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

/* The objective: runs the forward for the current inputs and returns L. */
typedef double (*loss_fn)(void *ctx);

/* Compares ana against central differences of f in x at up to COORDS
 * random coordinates (all of them when x is small). */
static void gradcheck(const char *what, float *x, long n, const float *ana, loss_fn f, void *ctx,
                      float eps, double abs_tol)
{
    long bad = 0, checked = 0;
    double worst_rel = 0.0, worst_abs = 0.0, max_ana = 0.0;
    for (long k = 0; k < (n < COORDS ? n : COORDS); k++) {
        long i = n <= COORDS ? k : (long)ct_rng_below(&rng, (uint64_t)n);
        float saved = x[i];
        float xp = saved + eps, xm = saved - eps;
        x[i] = xp;
        double lp = f(ctx);
        x[i] = xm;
        double lm = f(ctx);
        x[i] = saved;
        double num = (lp - lm) / ((double)xp - (double)xm);
        double a = ana[i], err = fabs(num - a), mag = fmax(fabs(num), fabs(a));
        checked++;
        if (!(err <= RTOL * mag + abs_tol)) {
            if (bad < 5)
                fprintf(stderr, "  %s[%ld]: numeric %.7g analytic %.7g\n", what, i, num, a);
            bad++;
        }
        if (err > worst_abs) worst_abs = err;
        if (mag > 10 * abs_tol && err / mag > worst_rel) worst_rel = err / mag;
        if (fabs(a) > max_ana) max_ana = fabs(a);
    }
    fprintf(stderr, "%-32s %4ld coords, max |grad| %.3g, worst abs err %.2g, worst rel err %.2g\n",
            what, checked, max_ana, worst_abs, worst_rel);
    CHECK_MSG(bad == 0, "%s: %ld of %ld coordinates off", what, bad, checked);
    CHECK_MSG(max_ana > 100 * abs_tol, "%s: gradient too small (%g) for abs_tol %g", what, max_ana,
              abs_tol);
}

/* Accumulation: `after` came from a backward into buffers pre-filled with
 * `pre`, `fresh` from one into zeroed buffers. */
static void check_accumulates(const char *what, const float *after, const float *pre,
                              const float *fresh, long n)
{
    long bad = 0;
    for (long i = 0; i < n; i++) {
        double want = (double)pre[i] + fresh[i];
        if (!(fabs(after[i] - want) <= 1e-5 * (1.0 + fabs(want)))) bad++;
    }
    CHECK_MSG(bad == 0, "%s does not accumulate: %ld of %ld wrong", what, bad, n);
}

/* Copies of `n` random floats, for pre-filled gradient buffers. */
static float *prefill(const float *pre, long n)
{
    float *p = alloc_f(n);
    memcpy(p, pre, (size_t)n * sizeof(float));
    return p;
}

/* ---- encoder ---------------------------------------------------------------- */

typedef struct {
    int B, T, C, Vp;
    int32_t *inp;
    float *wte, *wpe, *out, *R;
} enc_ctx_t;

static double enc_loss(void *p)
{
    enc_ctx_t *c = p;
    ct_encoder_forward(c->out, c->inp, c->wte, c->wpe, c->B, c->T, c->C);
    return dot_d(c->out, c->R, (long)c->B * c->T * c->C);
}

static void test_encoder(int B, int T, int C, int Vp)
{
    long N = (long)B * T;
    enc_ctx_t c = {B, T, C, Vp, malloc((size_t)N * sizeof(int32_t)), rand_f((long)Vp * C, 1.0f),
                   rand_f((long)T * C, 1.0f), alloc_f(N * C), rand_f(N * C, 1.0f)};
    /* Repeated ids, and most rows of wte unused (their gradient must be 0). */
    for (long i = 0; i < N; i++) c.inp[i] = (int32_t)ct_rng_below(&rng, 4);
    float *dwte = alloc_f((long)Vp * C), *dwpe = alloc_f((long)T * C);
    ct_encoder_backward(dwte, dwpe, c.R, c.inp, B, T, C);
    gradcheck("encoder dwte", c.wte, (long)Vp * C, dwte, enc_loss, &c, 1e-2f, 1e-4);
    /* The used rows specifically. */
    gradcheck("encoder dwte (used rows)", c.wte, 4L * C, dwte, enc_loss, &c, 1e-2f, 1e-4);
    gradcheck("encoder dwpe", c.wpe, (long)T * C, dwpe, enc_loss, &c, 1e-2f, 1e-4);

    float *pte = rand_f((long)Vp * C, 1.0f), *ppe = rand_f((long)T * C, 1.0f);
    float *ate = prefill(pte, (long)Vp * C), *ape = prefill(ppe, (long)T * C);
    ct_encoder_backward(ate, ape, c.R, c.inp, B, T, C);
    check_accumulates("encoder dwte", ate, pte, dwte, (long)Vp * C);
    check_accumulates("encoder dwpe", ape, ppe, dwpe, (long)T * C);
    free(c.inp), free(c.wte), free(c.wpe), free(c.out), free(c.R), free(dwte), free(dwpe);
    free(pte), free(ppe), free(ate), free(ape);
}

/* ---- layernorm -------------------------------------------------------------- */

typedef struct {
    int N, C;
    float *inp, *w, *b, *out, *mean, *rstd, *R;
} ln_ctx_t;

static double ln_loss(void *p)
{
    ln_ctx_t *c = p;
    ct_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C);
    return dot_d(c->out, c->R, (long)c->N * c->C);
}

static void test_layernorm(int N, int C)
{
    ln_ctx_t c = {N,
                  C,
                  rand_f((long)N * C, 1.0f),
                  rand_f(C, 1.0f),
                  rand_f(C, 1.0f),
                  alloc_f((long)N * C),
                  alloc_f(N),
                  alloc_f(N),
                  rand_f((long)N * C, 1.0f)};
    for (long i = 0; i < (long)N * C; i++) c.inp[i] += 0.5f;
    ln_loss(&c);
    float *dinp = alloc_f((long)N * C), *dw = alloc_f(C), *db = alloc_f(C);
    ct_layernorm_backward(dinp, dw, db, c.R, c.inp, c.w, c.mean, c.rstd, N, C);
    gradcheck("layernorm dinp", c.inp, (long)N * C, dinp, ln_loss, &c, 1e-2f, 1e-3);
    gradcheck("layernorm dweight", c.w, C, dw, ln_loss, &c, 1e-2f, 1e-3);
    gradcheck("layernorm dbias", c.b, C, db, ln_loss, &c, 1e-2f, 1e-3);

    ln_loss(&c);
    float *pi = rand_f((long)N * C, 1.0f), *pw = rand_f(C, 1.0f), *pb = rand_f(C, 1.0f);
    float *ai = prefill(pi, (long)N * C), *aw = prefill(pw, C), *ab = prefill(pb, C);
    ct_layernorm_backward(ai, aw, ab, c.R, c.inp, c.w, c.mean, c.rstd, N, C);
    check_accumulates("layernorm dinp", ai, pi, dinp, (long)N * C);
    check_accumulates("layernorm dweight", aw, pw, dw, C);
    check_accumulates("layernorm dbias", ab, pb, db, C);
    free(c.inp), free(c.w), free(c.b), free(c.out), free(c.mean), free(c.rstd), free(c.R);
    free(dinp), free(dw), free(db), free(pi), free(pw), free(pb), free(ai), free(aw), free(ab);
}

/* ---- matmul ----------------------------------------------------------------- */

typedef struct {
    int N, C, OC;
    float *inp, *w, *b, *out, *R;
} mm_ctx_t;

static double mm_loss(void *p)
{
    mm_ctx_t *c = p;
    ct_matmul_forward(c->out, c->inp, c->w, c->b, c->N, c->C, c->OC);
    return dot_d(c->out, c->R, (long)c->N * c->OC);
}

static void test_matmul(int N, int C, int OC)
{
    mm_ctx_t c = {N,
                  C,
                  OC,
                  rand_f((long)N * C, 1.0f),
                  rand_f((long)OC * C, 1.0f),
                  rand_f(OC, 1.0f),
                  alloc_f((long)N * OC),
                  rand_f((long)N * OC, 1.0f)};
    float *dinp = alloc_f((long)N * C), *dw = alloc_f((long)OC * C), *db = alloc_f(OC);
    ct_matmul_backward(dinp, dw, db, c.R, c.inp, c.w, N, C, OC);
    char what[64];
    snprintf(what, sizeof what, "matmul %dx%dx%d dinp", N, C, OC);
    gradcheck(what, c.inp, (long)N * C, dinp, mm_loss, &c, 1e-2f, 1e-3);
    snprintf(what, sizeof what, "matmul %dx%dx%d dweight", N, C, OC);
    gradcheck(what, c.w, (long)OC * C, dw, mm_loss, &c, 1e-2f, 1e-3);
    snprintf(what, sizeof what, "matmul %dx%dx%d dbias", N, C, OC);
    gradcheck(what, c.b, OC, db, mm_loss, &c, 1e-2f, 1e-3);

    float *pi = rand_f((long)N * C, 1.0f), *pw = rand_f((long)OC * C, 1.0f);
    float *pb = rand_f(OC, 1.0f);
    float *ai = prefill(pi, (long)N * C), *aw = prefill(pw, (long)OC * C), *ab = prefill(pb, OC);
    ct_matmul_backward(ai, aw, ab, c.R, c.inp, c.w, N, C, OC);
    check_accumulates("matmul dinp", ai, pi, dinp, (long)N * C);
    check_accumulates("matmul dweight", aw, pw, dw, (long)OC * C);
    check_accumulates("matmul dbias", ab, pb, db, OC);
    /* Optional outputs left out: dweight is unchanged. */
    float *aw2 = prefill(pw, (long)OC * C);
    ct_matmul_backward(NULL, aw2, NULL, c.R, c.inp, c.w, N, C, OC);
    check_accumulates("matmul dweight (no dinp, no dbias)", aw2, pw, dw, (long)OC * C);
    free(c.inp), free(c.w), free(c.b), free(c.out), free(c.R), free(dinp), free(dw), free(db);
    free(pi), free(pw), free(pb), free(ai), free(aw), free(ab), free(aw2);
}

/* ---- attention -------------------------------------------------------------- */

typedef struct {
    int B, T, NH, HS;
    float *qkv, *out, *att, *R;
} att_ctx_t;

static double att_loss(void *p)
{
    att_ctx_t *c = p;
    ct_attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->NH, c->HS);
    return dot_d(c->out, c->R, (long)c->B * c->T * c->NH * c->HS);
}

static void test_attention(int B, int T, int NH, int HS)
{
    int C = NH * HS;
    long nqkv = (long)B * T * 3 * C;
    att_ctx_t c = {B,
                   T,
                   NH,
                   HS,
                   rand_f(nqkv, 1.0f),
                   alloc_f((long)B * T * C),
                   alloc_f((long)B * NH * T * T),
                   rand_f((long)B * T * C, 1.0f)};
    att_loss(&c);
    float *scr = alloc_f(ct_attention_scratch_floats(B, T, NH));
    float *dqkv = alloc_f(nqkv);
    ct_attention_backward(dqkv, c.R, c.qkv, c.att, scr, B, T, NH, HS);
    char what[64];
    snprintf(what, sizeof what, "attention T=%d dqkv", T);
    /* At T = 1 the softmax is constant: q and k get no gradient, so only v
     * is checked for size. */
    gradcheck(what, c.qkv, nqkv, dqkv, att_loss, &c, 1e-2f, 1e-3);

    att_loss(&c);
    float *pre = rand_f(nqkv, 1.0f), *acc = prefill(pre, nqkv);
    ct_attention_backward(acc, c.R, c.qkv, c.att, scr, B, T, NH, HS);
    check_accumulates("attention dqkv", acc, pre, dqkv, nqkv);
    free(c.qkv), free(c.out), free(c.att), free(c.R), free(scr), free(dqkv), free(pre);
    free(acc);
}

/* ---- gelu and residual ------------------------------------------------------ */

typedef struct {
    long n;
    float *a, *b, *out, *R;
} ew_ctx_t;

static double gelu_loss(void *p)
{
    ew_ctx_t *c = p;
    ct_gelu_forward(c->out, c->a, c->n);
    return dot_d(c->out, c->R, c->n);
}

static double residual_loss(void *p)
{
    ew_ctx_t *c = p;
    ct_residual_forward(c->out, c->a, c->b, c->n);
    return dot_d(c->out, c->R, c->n);
}

static void test_gelu_residual(long n)
{
    ew_ctx_t c = {n, rand_f(n, 2.0f), rand_f(n, 1.0f), alloc_f(n), rand_f(n, 1.0f)};
    float *da = alloc_f(n), *db = alloc_f(n);
    ct_gelu_backward(da, c.a, c.R, n);
    gradcheck("gelu dinp", c.a, n, da, gelu_loss, &c, 1e-2f, 1e-4);
    float *pre = rand_f(n, 1.0f), *acc = prefill(pre, n);
    ct_gelu_backward(acc, c.a, c.R, n);
    check_accumulates("gelu dinp", acc, pre, da, n);

    memset(da, 0, (size_t)n * sizeof(float));
    ct_residual_backward(da, db, c.R, n);
    gradcheck("residual da", c.a, n, da, residual_loss, &c, 1e-2f, 1e-4);
    gradcheck("residual db", c.b, n, db, residual_loss, &c, 1e-2f, 1e-4);
    float *pre2 = rand_f(n, 1.0f), *acc2 = prefill(pre2, n);
    memcpy(acc, pre, (size_t)n * sizeof(float));
    ct_residual_backward(acc, acc2, c.R, n);
    check_accumulates("residual da", acc, pre, da, n);
    check_accumulates("residual db", acc2, pre2, db, n);
    free(c.a), free(c.b), free(c.out), free(c.R), free(da), free(db), free(pre), free(acc);
    free(pre2), free(acc2);
}

/* ---- cross-entropy ---------------------------------------------------------- */

typedef struct {
    int N, V, Vp;
    float *logits, *losses, *lse, *dloss;
    int32_t *targets;
} xent_ctx_t;

/* The fp32 loss is rounded at the scale of the log-sum-exp (about log V),
 * which swamps differences of size eps * dloss / V, so this objective is
 * evaluated in double. test_kernels_ref checks the fp32 forward itself. */
static double xent_loss(void *p)
{
    xent_ctx_t *c = p;
    double L = 0.0;
    for (int n = 0; n < c->N; n++) {
        const float *x = c->logits + (long)n * c->Vp;
        double mx = -INFINITY, sum = 0.0;
        for (int j = 0; j < c->V; j++) mx = x[j] > mx ? x[j] : mx;
        for (int j = 0; j < c->V; j++) sum += exp((double)x[j] - mx);
        L += (mx + log(sum) - x[c->targets[n]]) * c->dloss[n];
    }
    return L;
}

static void test_xent(int N, int V, int Vp)
{
    long nl = (long)N * Vp;
    xent_ctx_t c = {N,           V,           Vp, rand_f(nl, 2.0f), alloc_f(N),
                    alloc_f(N), rand_f(N, 1.0f), malloc((size_t)N * sizeof(int32_t))};
    for (int n = 0; n < N; n++) {
        c.targets[n] = (int32_t)ct_rng_below(&rng, (uint64_t)V);
        c.dloss[n] = 1.0f + fabsf(c.dloss[n]); /* |dloss| >= 1 keeps gradients well above 0 */
    }
    ct_xent_forward(c.losses, c.lse, c.logits, c.targets, N, V, Vp);
    float *d = prefill(c.logits, nl);
    ct_xent_backward(d, c.lse, c.targets, c.dloss, N, V, Vp);
    char what[64];
    snprintf(what, sizeof what, "xent V=%d dlogits", V);
    /* Gradients are about dloss/V except at the targets. */
    gradcheck(what, c.logits, nl, d, xent_loss, &c, 1e-2f, 1e-5);
    /* Target columns specifically: the largest gradients. */
    long bad = 0;
    for (int n = 0; n < N; n++) {
        long i = (long)n * Vp + c.targets[n];
        float saved = c.logits[i];
        c.logits[i] = saved + 1e-2f;
        double lp = xent_loss(&c);
        c.logits[i] = saved - 1e-2f;
        double lm = xent_loss(&c);
        c.logits[i] = saved;
        double num = (lp - lm) / ((double)(saved + 1e-2f) - (double)(saved - 1e-2f));
        if (!(fabs(num - d[i]) <= RTOL * fmax(fabs(num), fabs(d[i])) + 1e-5)) bad++;
    }
    CHECK_MSG(bad == 0, "xent: %ld of %d target columns off", bad, N);
    long pad = 0;
    for (int n = 0; n < N; n++)
        for (int j = V; j < Vp; j++)
            if (d[(long)n * Vp + j] != 0.0f) pad++;
    CHECK_MSG(pad == 0, "xent: %ld padding columns not zeroed", pad);
    free(c.logits), free(c.losses), free(c.lse), free(c.dloss), free(c.targets), free(d);
}

int main(void)
{
    (void)ct_test_captured; /* test_util.h helper this test does not use */
    ct_rng_seed(&rng, 4321, 0, 0);
    test_encoder(2, 7, 36, 128);
    test_encoder(1, 1, 20, 8);
    test_layernorm(14, 36);
    test_layernorm(1, 7);
    test_matmul(14, 36, 108);
    test_matmul(13, 20, 37);
    test_attention(2, 7, 3, 12);
    test_attention(1, 1, 2, 8);
    test_attention(1, 131, 2, 8); /* crosses the 128-row attention blocks */
    test_gelu_residual(1003);
    test_xent(14, 97, 128);
    test_xent(3, 5, 8);
    return ct_test_finish("test_kernels_gradcheck");
}
