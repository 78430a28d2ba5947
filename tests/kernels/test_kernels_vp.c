/* Vocab-parallel kernels: splitting the vocabulary over P simulated ranks
 * and combining the pieces the way the TP group does (MAX, then SUM) must
 * reproduce the fused single-rank embedding and cross-entropy, forward and
 * backward, within 1e-5 relative; shards made only of padding (Vl = 0)
 * included. */
#include <math.h>

#include "core/rng.h"
#include "kernels/kernels.h"
#include "test_util.h"

static int close_enough(float a, float b) { return fabsf(a - b) <= 1e-6f + 1e-5f * fabsf(b); }

static void check_split(int N, int V, int Vp, int P)
{
    const int Vpl = Vp / P;
    ct_rng_t r;
    ct_rng_seed(&r, (uint64_t)V, (uint64_t)P, 1);
    float *logits = malloc(sizeof(float) * N * Vp), *full = malloc(sizeof(float) * N * Vp);
    int32_t *tg = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N * Vp; i++) logits[i] = 3.0f * ct_rng_normal(&r);
    for (int n = 0; n < N; n++) tg[n] = (int32_t)ct_rng_below(&r, (uint64_t)V);
    float *loss = malloc(sizeof(float) * N), *lse = malloc(sizeof(float) * N);
    float *dloss = malloc(sizeof(float) * N);
    for (int n = 0; n < N; n++) dloss[n] = 0.5f + ct_rng_f32(&r);
    memcpy(full, logits, sizeof(float) * N * Vp);
    ct_xent_forward(loss, lse, full, tg, N, V, Vp);
    ct_xent_backward(full, lse, tg, dloss, N, V, Vp);

    /* shards: columns [p*Vpl, (p+1)*Vpl) of each row */
    float *sh = malloc(sizeof(float) * N * Vpl), *mx = malloc(sizeof(float) * N);
    float *part = malloc(sizeof(float) * N), *gmax = malloc(sizeof(float) * N);
    float *gsum = calloc((size_t)N, sizeof(float)), *gt = calloc((size_t)N, sizeof(float));
    for (int n = 0; n < N; n++) gmax[n] = -INFINITY;
    for (int p = 0; p < P; p++) {
        int vs = p * Vpl, Vl = V - vs < 0 ? 0 : (V - vs < Vpl ? V - vs : Vpl);
        for (int n = 0; n < N; n++) memcpy(sh + n * Vpl, logits + n * Vp + vs, sizeof(float) * Vpl);
        ct_xent_partial_max(mx, sh, N, Vl, Vpl);
        for (int n = 0; n < N; n++) gmax[n] = fmaxf(gmax[n], mx[n]);
    }
    for (int p = 0; p < P; p++) {
        int vs = p * Vpl, Vl = V - vs < 0 ? 0 : (V - vs < Vpl ? V - vs : Vpl);
        for (int n = 0; n < N; n++) memcpy(sh + n * Vpl, logits + n * Vp + vs, sizeof(float) * Vpl);
        ct_xent_partial_sumexp(part, sh, gmax, N, Vl, Vpl);
        for (int n = 0; n < N; n++) gsum[n] += part[n];
        ct_xent_partial_target(part, sh, tg, N, vs, Vl, Vpl);
        for (int n = 0; n < N; n++) gt[n] += part[n];
    }
    int ok = 1;
    for (int n = 0; n < N; n++) {
        float l = gmax[n] + logf(gsum[n]);
        ok &= close_enough(l, lse[n]) && close_enough(l - gt[n], loss[n]);
        gmax[n] = l; /* now the lse */
    }
    CHECK_MSG(ok, "split forward differs (N=%d V=%d Vp=%d P=%d)", N, V, Vp, P);
    ok = 1;
    for (int p = 0; p < P; p++) {
        int vs = p * Vpl, Vl = V - vs < 0 ? 0 : (V - vs < Vpl ? V - vs : Vpl);
        for (int n = 0; n < N; n++) memcpy(sh + n * Vpl, logits + n * Vp + vs, sizeof(float) * Vpl);
        ct_xent_backward_vp(sh, gmax, tg, dloss, N, vs, Vl, Vpl);
        for (int n = 0; n < N; n++)
            for (int j = 0; j < Vpl; j++) ok &= close_enough(sh[n * Vpl + j], full[n * Vp + vs + j]);
    }
    CHECK_MSG(ok, "split backward differs (N=%d V=%d Vp=%d P=%d)", N, V, Vp, P);
    free(logits), free(full), free(tg), free(loss), free(lse), free(dloss), free(sh), free(mx);
    free(part), free(gmax), free(gsum), free(gt);
}

static void check_embedding(int B, int T, int C, int V, int P)
{
    const int Vp = (V + 127) / 128 * 128, Vpl = Vp / P, N = B * T;
    ct_rng_t r;
    ct_rng_seed(&r, 5, (uint64_t)P, 2);
    float *wte = malloc(sizeof(float) * Vp * C), *wpe = malloc(sizeof(float) * T * C);
    for (int i = 0; i < Vp * C; i++) wte[i] = ct_rng_normal(&r);
    for (int i = 0; i < T * C; i++) wpe[i] = ct_rng_normal(&r);
    int32_t *inp = malloc(sizeof(int32_t) * N);
    for (int n = 0; n < N; n++) inp[n] = (int32_t)ct_rng_below(&r, (uint64_t)V);
    float *ref = malloc(sizeof(float) * N * C), *sum = calloc((size_t)N * C, sizeof(float));
    float *out = malloc(sizeof(float) * N * C), *dout = malloc(sizeof(float) * N * C);
    for (int i = 0; i < N * C; i++) dout[i] = ct_rng_normal(&r);
    ct_encoder_forward(ref, inp, wte, wpe, B, T, C);
    float *dwte = calloc((size_t)Vp * C, sizeof(float)), *dwpe = calloc((size_t)T * C, sizeof(float));
    float *dwte_p = calloc((size_t)Vp * C, sizeof(float)), *dwpe_p = calloc((size_t)T * C, sizeof(float));
    ct_encoder_backward(dwte, dwpe, dout, inp, B, T, C);
    for (int p = 0; p < P; p++) {
        ct_encoder_forward_vp(out, inp, wte + (size_t)p * Vpl * C, p == 0 ? wpe : NULL, B, T, C,
                              p * Vpl, Vpl);
        for (int i = 0; i < N * C; i++) sum[i] += out[i];
        ct_encoder_backward_vp(dwte_p + (size_t)p * Vpl * C, p == 0 ? dwpe_p : NULL, dout, inp, B,
                               T, C, p * Vpl, Vpl);
    }
    int ok = 1;
    for (int i = 0; i < N * C; i++) ok &= sum[i] == ref[i];
    CHECK_MSG(ok, "vocab-parallel embedding forward differs (P=%d)", P);
    CHECK(memcmp(dwte, dwte_p, sizeof(float) * Vp * C) == 0);
    CHECK(memcmp(dwpe, dwpe_p, sizeof(float) * T * C) == 0);
    free(wte), free(wpe), free(inp), free(ref), free(sum), free(out), free(dout), free(dwte);
    free(dwpe), free(dwte_p), free(dwpe_p);
}

int main(void)
{
    check_split(9, 97, 128, 2);    /* rank 1 holds 33 real columns */
    check_split(9, 37, 128, 2);    /* rank 1 holds only padding */
    check_split(5, 250, 256, 4);
    check_split(3, 1000, 1024, 8);
    check_embedding(2, 7, 36, 97, 2);
    check_embedding(3, 5, 16, 300, 4);
    return ct_test_finish("test_kernels_vp");
}
