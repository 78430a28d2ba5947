/* GPT-2's CUDA activation buffers as one table: gpt2_cuda.c allocates its
 * activations and scratch from it, and the planner (model/plan.c) adds it
 * up, so the plan cannot drift from what the GPU path allocates. Compiled
 * in every build (the CUDA backend is not).
 *
 * With tp > 1 the table is the Megatron split the TP GPU path
 * allocates: the attention, MLP and
 * vocabulary regions hold this rank's heads, hidden units and vocabulary
 * rows (CT_PLAN_TP); the LayerNorm/residual regions stay whole, or with
 * sequence parallelism hold this rank's 1/tp of the tokens (CT_PLAN_SP); the
 * outputs of row-parallel matmuls (partial sums before their all-reduce or
 * reduce-scatter), their gathered gradients, the losses and the token ids
 * stay whole (CT_PLAN_FULL). TP adds an (N, C) fp32 buffer for the partial
 * sums before each TP reduce and the vocab-parallel cross-entropy's
 * statistics; sequence parallelism adds one (N, C) buffer for the
 * all-gather before each column-parallel matmul. */
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "model/gpt2.h"

int ct__gpt2_cuda_act_items(const ct_model_dims_t *d, int B, int T, ct_recompute_t rc, int sp,
                            ct_plan_item_t *it)
{
    const size_t tp = (size_t)d->tp, L = d->L, C = d->C, Cl = d->Cl, NHl = d->NHl;
    const size_t N = (size_t)B * T, R = (size_t)ct__model_head_rows(B, T);
    const int spl = sp && tp > 1;
    CT_ASSERT(!spl || N % tp == 0);
    const size_t Ns = spl ? N / tp : N; /* tokens of a LayerNorm/residual region */
    const int ln1 = rc == CT_RECOMPUTE_LN_GELU, gelu1 = rc != CT_RECOMPUTE_NONE;
    const size_t Lln = ln1 ? 1 : L, Lg = gelu1 ? 1 : L;
    const size_t f32 = sizeof(float), bf = sizeof(ct_bf16_t), i32 = sizeof(int32_t);
    const ct_plan_kind_t A = CT_PLAN_ACTS, W = CT_PLAN_WORKSPACE;
    const ct_plan_region_t S = CT_PLAN_SP, P = CT_PLAN_TP, F = CT_PLAN_FULL;
    /* the largest bias gradient reduced through the scratch: fc's 4C/tp
     * outputs, or the row-parallel projections' whole C */
    const long oc = (long)(4 * Cl > C ? 4 * Cl : C);
    long sc = ct_cuda_layernorm_scratch_floats((int)Ns, (int)C);
    long s2 = ct_cuda_matmul_scratch_floats((int)N, (int)oc);
    long s3 = ct_cuda_sumsq_scratch_floats(1L << 31);
    if (s2 > sc) sc = s2;
    if (s3 > sc) sc = s3;
    /* shapes of the LayerNorm/residual regions: N/tp tokens under SP */
    const char *nc32 = spl ? "(N/tp, C) fp32" : "(N, C) fp32";
    const char *lnin16 = spl ? "(2L+1, N/tp, C) bf16" : "(2L+1, N, C) bf16";
    const char *ln32 = spl ? "(L, N/tp) fp32" : "(L, N) fp32";
    const char *nc16 = spl ? "(N/tp, C) bf16" : "(N, C) bf16";
    const char *n32 = spl ? "(N/tp) fp32" : "(N) fp32";
    const char *lnshape = ln1 ? (spl ? "(1, N/tp, C) bf16" : "(1, N, C) bf16")
                              : (spl ? "(L, N/tp, C) bf16" : "(L, N, C) bf16");
    const char *gshape = "(L, N, 4C/tp) bf16";
    int n = 0;
#define ITEM(field, name, shape, kind, region, count, elem)                                      \
    it[n++] = (ct_plan_item_t){name, shape, kind, region, (size_t)(count) * (elem),             \
                               offsetof(ct_gpt2_cuda_acts_t, field)}
    /* The residual stream is fp32 in one buffer, added to in place; what
     * the backward needs of it, each LayerNorm's input, is kept in bf16
     * (ln_x, one of them in fp32 for a recomputed LayerNorm, reuses the
     * stream's buffer: ct__gpt2_cuda_act_aliases) */
    ITEM(encoded, "activations: residual stream", nc32, A, S, Ns * C, f32);
    ITEM(ln_in, "activations: LayerNorm inputs", lnin16, A, S, (2 * L + 1) * Ns * C, bf);
    ITEM(ln1, "activations: ln1", lnshape, A, S, Lln * Ns * C, bf);
    ITEM(ln1_mean, "activations: ln1 mean", ln32, A, S, L * Ns, f32);
    ITEM(ln1_rstd, "activations: ln1 rstd", ln32, A, S, L * Ns, f32);
    ITEM(qkv, "activations: qkv", "(L, N, 3C/tp) bf16", A, P, L * N * 3 * Cl, bf);
    ITEM(atty, "activations: attention out", "(L, N, C/tp) bf16", A, P, L * N * Cl, bf);
    ITEM(att_stats, "activations: attention stats", "(L, B, NH/tp, T) fp32", A, P,
         L * (size_t)B * NHl * (size_t)T, f32);
    ITEM(ln2, "activations: ln2", lnshape, A, S, Lln * Ns * C, bf);
    ITEM(ln2_mean, "activations: ln2 mean", ln32, A, S, L * Ns, f32);
    ITEM(ln2_rstd, "activations: ln2 rstd", ln32, A, S, L * Ns, f32);
    ITEM(fch, "activations: fc", "(L, N, 4C/tp) bf16", A, P, L * N * 4 * Cl, bf);
    if (!gelu1) ITEM(fch_gelu, "activations: gelu", gshape, A, P, Lg * N * 4 * Cl, bf);
    ITEM(lnf, "activations: lnf", nc16, A, S, Ns * C, bf);
    ITEM(lnf_mean, "activations: lnf mean", n32, A, S, Ns, f32);
    ITEM(lnf_rstd, "activations: lnf rstd", n32, A, S, Ns, f32);
    /* with GELU recomputed, its one layer of output shares the logits'
     * memory: the head runs after the last layer's forward and before the
     * first layer's backward */
    if (gelu1) {
        const size_t lg = R * (size_t)d->Vpl, ge = N * 4 * Cl;
        ITEM(logits, "activations: logits | gelu", "(~N/8, Vp/tp) | (1, N, 4C/tp) bf16", A, P,
             lg > ge ? lg : ge, bf);
    } else {
        ITEM(logits, "activations: logits", "(~N/8, Vp/tp) bf16", A, P, R * (size_t)d->Vpl, bf);
    }
    ITEM(losses, "activations: losses", "(N) fp32", A, F, N, f32);
    /* proj (forward only) shares dln's memory (backward only) */
    ITEM(dres, "activation gradients: residual", nc32, A, S, Ns * C, f32);
    ITEM(dres_bf, "activation gradients: residual bf16", "(N, C) bf16", A, F, N * C, bf);
    ITEM(dln, "activation gradients: ln | projection", "(N, C) bf16", A, F, N * C, bf);
    ITEM(datty, "activation gradients: attention out", "(N, C/tp) bf16", A, P, N * Cl, bf);
    /* dqkv shares dfch's memory: a layer's backward is done with dfch
     * before the attention backward writes dqkv */
    ITEM(dfch, "activation gradients: fc, qkv", "(N, 4C/tp) bf16", A, P, N * 4 * Cl, bf);
    ITEM(inputs, "inputs", "(N) int32", A, F, N, i32);
    ITEM(targets, "targets", "(N) int32", A, F, N, i32);
    ITEM(scratch, "reduction scratch", "LayerNorm/bias/norm partials", W, F, sc, f32);
    ITEM(sumsq, "gradient norm", "(1) fp32", W, F, 1, f32);
    if (tp > 1) {
        ITEM(tp_f32, "tp partial sums", "(N, C) fp32", A, F, N * C, f32);
        ITEM(lse, "activations: log-sum-exp", "(N) fp32", A, F, N, f32);
        ITEM(xstats, "cross-entropy statistics", "(tp, ~N/8, 3) fp32", W, F, tp * R * 3, f32);
    }
    if (spl) ITEM(sp_gather, "activations: sp all-gather", "(N, C) bf16", A, F, N * C, bf);
#undef ITEM
    CT_ASSERT(n <= CT_GPT2_CUDA_NUM_ACTS);
    return n;
}

int ct__gpt2_cuda_act_aliases(ct_recompute_t rc, size_t alias[][2])
{
    int n = 0;
#define ALIAS(field, of)                                                                          \
    (alias[n][0] = offsetof(ct_gpt2_cuda_acts_t, field),                                        \
     alias[n][1] = offsetof(ct_gpt2_cuda_acts_t, of), n++)
    ALIAS(dqkv, dfch);
    ALIAS(ln_x, encoded);
    ALIAS(proj, dln);
    if (rc != CT_RECOMPUTE_NONE) ALIAS(fch_gelu, logits);
#undef ALIAS
    return n;
}
