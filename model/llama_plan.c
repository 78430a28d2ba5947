/* Llama's CUDA activation buffers as one table: llama_cuda.c allocates its
 * activations and scratch from it, and the planner (model/plan.c) adds it
 * up, so the plan cannot drift from what the GPU path allocates. Compiled
 * in every build (the CUDA backend is not). Every activation is kept for
 * the backward (no recompute yet), except the logits: the LM head and
 * cross-entropy run in chunks of about N/8 rows, as GPT-2's (one chunk of
 * logits at a time); the RoPE tables are fp32 (maxT, HS/2).
 * With tp > 1 the attention, MLP and vocabulary buffers hold this rank's
 * heads, units and rows (CT_PLAN_TP); the RMSNorm/residual regions stay
 * whole, or with sequence parallelism hold this rank's 1/tp of the tokens
 * (CT_PLAN_SP); the gradients that cross the TP group as whole batches
 * (the residual gradient gathered for the row-parallel backward, the
 * norm-output gradient before its reduce-scatter) stay whole. TP adds the
 * fp32 partial-sum buffer, the cross-entropy statistics and, for
 * replicated key/value heads, their gradient sums; sequence parallelism
 * adds one (N, C) bf16 buffer for the all-gather of a norm's output before
 * the column-parallel matmuls that read it. */
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "model/llama.h"

int ct__llama_cuda_act_items(const ct_model_dims_t *d, int B, int T, int sp, ct_plan_item_t *it)
{
    const size_t L = d->L, C = d->C, Cl = d->Cl, KVl = (size_t)d->NKVl * d->HS, Fl = d->Fl;
    const size_t N = (size_t)B * T, NHl = d->NHl, half = (size_t)d->HS / 2;
    const size_t R = (size_t)ct__model_head_rows(B, T);
    const int spl = sp && d->tp > 1;
    CT_ASSERT(!spl || N % (size_t)d->tp == 0);
    const size_t Ns = spl ? N / (size_t)d->tp : N; /* tokens of an RMSNorm/residual region */
    /* shapes of the RMSNorm/residual regions: N/tp tokens under SP */
    const char *nc32 = spl ? "(N/tp, C) fp32" : "(N, C) fp32";
    const char *lnc32 = spl ? "(L, N/tp, C) fp32" : "(L, N, C) fp32";
    const char *lnc16 = spl ? "(L, N/tp, C) bf16" : "(L, N, C) bf16";
    const char *ln32 = spl ? "(L, N/tp) fp32" : "(L, N) fp32";
    const char *nc16 = spl ? "(N/tp, C) bf16" : "(N, C) bf16";
    const char *n32 = spl ? "(N/tp) fp32" : "(N) fp32";
    const size_t f32 = sizeof(float), bf = sizeof(ct_bf16_t), i32 = sizeof(int32_t);
    const ct_plan_kind_t A = CT_PLAN_ACTS, W = CT_PLAN_WORKSPACE;
    const ct_plan_region_t S = CT_PLAN_SP, P = CT_PLAN_TP, F = CT_PLAN_FULL;
    long sc = ct_cuda_rmsnorm_scratch_floats((int)Ns, (int)C);
    long s2 = ct_cuda_matmul_scratch_floats((int)N, (int)(C > Fl ? C : Fl));
    long s3 = ct_cuda_sumsq_scratch_floats(1L << 31);
    if (s2 > sc) sc = s2;
    if (s3 > sc) sc = s3;
    int n = 0;
#define ITEM(field, name, shape, kind, region, count, elem)                                      \
    it[n++] = (ct_plan_item_t){name, shape, kind, region, (size_t)(count) * (elem),             \
                               offsetof(ct_llama_cuda_acts_t, field)}
    ITEM(rope_cos, "rope cos table", "(maxT, HS/2) fp32", W, F, (size_t)d->maxT * half, f32);
    ITEM(rope_sin, "rope sin table", "(maxT, HS/2) fp32", W, F, (size_t)d->maxT * half, f32);
    ITEM(encoded, "activations: encoded", nc32, A, S, Ns * C, f32);
    ITEM(ln1, "activations: ln1", lnc16, A, S, L * Ns * C, bf);
    ITEM(rstd1, "activations: ln1 rstd", ln32, A, S, L * Ns, f32);
    ITEM(q, "activations: q", "(L, N, C/tp) bf16", A, P, L * N * Cl, bf);
    ITEM(k, "activations: k", "(L, N, KV/tp) bf16", A, P, L * N * KVl, bf);
    ITEM(v, "activations: v", "(L, N, KV/tp) bf16", A, P, L * N * KVl, bf);
    ITEM(atty, "activations: attention out", "(L, N, C/tp) bf16", A, P, L * N * Cl, bf);
    ITEM(att_stats, "activations: attention stats", "(L, B, NH/tp, T) fp32", A, P,
         L * (size_t)B * NHl * (size_t)T, f32);
    ITEM(residual2, "activations: residual2", lnc32, A, S, L * Ns * C, f32);
    ITEM(ln2, "activations: ln2", lnc16, A, S, L * Ns * C, bf);
    ITEM(rstd2, "activations: ln2 rstd", ln32, A, S, L * Ns, f32);
    ITEM(gate, "activations: gate", "(L, N, F/tp) bf16", A, P, L * N * Fl, bf);
    ITEM(up, "activations: up", "(L, N, F/tp) bf16", A, P, L * N * Fl, bf);
    ITEM(hmid, "activations: swiglu", "(L, N, F/tp) bf16", A, P, L * N * Fl, bf);
    ITEM(residual3, "activations: residual3", lnc32, A, S, L * Ns * C, f32);
    ITEM(lnf, "activations: lnf", nc16, A, S, Ns * C, bf);
    ITEM(rstdf, "activations: lnf rstd", n32, A, S, Ns, f32);
    /* the LM head runs in chunks of R rows (ct__model_head_rows): one
     * chunk's logits exist at a time */
    ITEM(logits, "activations: logits", "(~N/8, Vp/tp) bf16", A, P, R * (size_t)d->Vpl, bf);
    ITEM(losses, "activations: losses", "(N) fp32", A, F, N, f32);
    ITEM(proj, "activations: projection", nc16, A, S, Ns * C, bf);
    ITEM(dres, "activation gradients: residual", nc32, A, S, Ns * C, f32);
    ITEM(dres_bf, "activation gradients: residual bf16", "(N, C) bf16", A, F, N * C, bf);
    ITEM(dln, "activation gradients: rmsnorm out", "(N, C) fp32", A, F, N * C, f32);
    ITEM(datty, "activation gradients: attention out", "(N, C/tp) bf16", A, P, N * Cl, bf);
    ITEM(dq, "activation gradients: q", "(N, C/tp) bf16", A, P, N * Cl, bf);
    ITEM(dk, "activation gradients: k", "(N, KV/tp) bf16", A, P, N * KVl, bf);
    ITEM(dv, "activation gradients: v", "(N, KV/tp) bf16", A, P, N * KVl, bf);
    ITEM(dh, "activation gradients: swiglu", "(N, F/tp) bf16", A, P, N * Fl, bf);
    ITEM(dgate, "activation gradients: gate", "(N, F/tp) bf16", A, P, N * Fl, bf);
    ITEM(dup, "activation gradients: up", "(N, F/tp) bf16", A, P, N * Fl, bf);
    ITEM(inputs, "inputs", "(N) int32", A, F, N, i32);
    ITEM(targets, "targets", "(N) int32", A, F, N, i32);
    ITEM(att_scratch, "attention backward scratch", "(B, NH/tp, T) fp32", W, P,
         (size_t)ct_cuda_attention_scratch_floats(B, T, d->NHl), f32);
    ITEM(scratch, "reduction scratch", "RMSNorm/norm partials", W, F, sc, f32);
    ITEM(sumsq, "gradient norm", "(1) fp32", W, F, 1, f32);
    if (d->tp > 1) {
        ITEM(tp_f32, "tp partial sums", "(N, C) fp32", A, F, N * C, f32);
        ITEM(lse, "activations: log-sum-exp", "(N) fp32", A, F, N, f32);
        ITEM(xstats, "cross-entropy statistics", "(tp, ~N/8, 3) fp32", W, F,
             (size_t)d->tp * R * 3, f32);
        if (!d->kv_sharded)
            ITEM(dkv_f32, "replicated k/v gradient sums", "(2, N, KV) fp32", A, F, 2 * N * KVl,
                 f32);
    }
    if (spl) ITEM(sp_gather, "activations: sp all-gather", "(N, C) bf16", A, F, N * C, bf);
#undef ITEM
    CT_ASSERT(n <= CT_LLAMA_CUDA_NUM_ACTS && n <= CT_PLAN_MAX_ITEMS);
    return n;
}
