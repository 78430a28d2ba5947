/* The memory and FLOP plan of one rank (ct_model_plan, model/model.h): every
 * buffer the model layer would allocate, sized by the functions it
 * allocates with: the tensor table (ct_model_tensor_sizes), AdamW's ZeRO
 * slice (ct__optim_slice), the CUDA backend's activation table
 * (ct__gpt2_cuda_act_items and ct__llama_cuda_act_items, which gpt2_cuda.c
 * and llama_cuda.c allocate from), the CPU
 * backend's activation sizes, the kernels' scratch and workspace sizes,
 * and the arenas' alignment; FLOPs from ct_model_flops_per_token.
 *
 * Left out, because the model layer does not size them: the CUDA context
 * and the libraries' own memory (cuBLASLt handle, NCCL buffers, cuDNN's
 * attention workspace, which cuDNN picks when it builds its plan), the
 * trainer's and the data loader's buffers, and allocator rounding. */
#include <stdint.h>
#include <string.h>

#include "core/log.h"
#include "kernels/kernels.h"
#include "model/gpt2.h"
#include "model/llama.h"

int ct__model_head_rows(int B, int T)
{
    const long N = (long)B * T;
    long r = (N + 7) / 8;
    if (r < T) r = T;
    r = (r + 7) / 8 * 8;
    return (int)(r < N ? r : N);
}

static void add(ct_plan_mem_t *m, const char *name, const char *shape, ct_plan_kind_t kind,
                ct_plan_region_t region, size_t bytes)
{
    CT_ASSERT(m->n < CT_PLAN_MAX_ITEMS);
    m->item[m->n++] = (ct_plan_item_t){name, shape, kind, region, bytes, SIZE_MAX};
}

static void sum_up(ct_plan_mem_t *m)
{
    m->total = 0;
    memset(m->kind_bytes, 0, sizeof m->kind_bytes);
    for (int i = 0; i < m->n; i++) {
        m->kind_bytes[m->item[i].kind] += m->item[i].bytes;
        m->total += m->item[i].bytes;
    }
}

/* The host arenas every path has (ct_model_init, ct_optim_init). */
static void plan_host_arenas(ct_model_plan_t *p, int gpu)
{
    const size_t pbytes = ct_arena_align((p->num_params + CT_MODEL_PAD_FLOATS) * sizeof(float));
    const size_t obytes = ct_arena_align(p->optim_count * sizeof(float));
    add(&p->host, "weights", "(P + pad) fp32", CT_PLAN_WEIGHTS, CT_PLAN_TP, pbytes);
    if (!gpu) /* ct_model_to_device frees it: the device holds the gradients */
        add(&p->host, "gradients", "(P + pad) fp32", CT_PLAN_GRADS, CT_PLAN_TP, pbytes);
    add(&p->host, "AdamW m", p->optim_count < p->num_params ? "(P/dp) fp32" : "(P) fp32",
        CT_PLAN_OPTIM, CT_PLAN_TP, obytes);
    add(&p->host, "AdamW v", p->optim_count < p->num_params ? "(P/dp) fp32" : "(P) fp32",
        CT_PLAN_OPTIM, CT_PLAN_TP, obytes);
}

/* The CPU backend's activation arena for capacity (B, T); a buffer counts
 * as split by tp when it is smaller than at tp = 1. */
static void plan_cpu_acts(ct_model_plan_t *p, const ct_model_config_t *mc)
{
    enum { MAX_ACTS = CT_GPT2_CPU_NUM_ACTS > CT_LLAMA_CPU_NUM_ACTS ? CT_GPT2_CPU_NUM_ACTS
                                                                   : CT_LLAMA_CPU_NUM_ACTS };
    size_t s[MAX_ACTS], s1[MAX_ACTS];
    ct_model_dims_t d1;
    ct_model_dims(mc, 1, 0, &d1);
    const int llama = p->d.arch == CT_ARCH_LLAMA;
    const int n = llama ? CT_LLAMA_CPU_NUM_ACTS : CT_GPT2_CPU_NUM_ACTS;
    const char *const *names = llama ? ct__llama_cpu_act_names : ct__gpt2_cpu_act_names;
    if (llama) {
        ct__llama_cpu_act_sizes(&p->d, p->B, p->T, s);
        ct__llama_cpu_act_sizes(&d1, p->B, p->T, s1);
    } else {
        ct__gpt2_cpu_act_sizes(&p->d, p->B, p->T, s);
        ct__gpt2_cpu_act_sizes(&d1, p->B, p->T, s1);
    }
    for (int i = 0; i < n; i++)
        add(&p->host, names[i], "", CT_PLAN_ACTS, s[i] < s1[i] ? CT_PLAN_TP : CT_PLAN_FULL,
            ct_arena_align(s[i] * sizeof(float)));
}

static void plan_gpu(ct_model_plan_t *p, ct_recompute_t rc)
{
    const ct_model_dims_t *d = &p->d;
    const size_t np = p->num_params, padded = np + CT_MODEL_PAD_FLOATS;
    const size_t oc = p->optim_count ? p->optim_count : 1; /* gpt2_cuda.c's minimum */
    const char *oshape = p->optim_count < np ? "(P/dp) fp32" : "(P) fp32";
    ct_plan_mem_t *dev = &p->device;
    add(dev, "master weights", "(P + pad) fp32", CT_PLAN_WEIGHTS, CT_PLAN_TP,
        padded * sizeof(float));
    add(dev, "bf16 weights", "(P) bf16", CT_PLAN_WEIGHTS, CT_PLAN_TP, np * sizeof(ct_bf16_t));
    add(dev, "gradients", "(P + pad) fp32", CT_PLAN_GRADS, CT_PLAN_TP, padded * sizeof(float));
    add(dev, "AdamW m", oshape, CT_PLAN_OPTIM, CT_PLAN_TP, oc * sizeof(float));
    add(dev, "AdamW v", oshape, CT_PLAN_OPTIM, CT_PLAN_TP, oc * sizeof(float));
    const int llama = d->arch == CT_ARCH_LLAMA;
    if (llama) /* the attention scratch is one of its buffers */
        dev->n += ct__llama_cuda_act_items(d, p->B, p->T, p->sp, dev->item + dev->n);
    else
        dev->n += ct__gpt2_cuda_act_items(d, p->B, p->T, rc, p->sp, dev->item + dev->n);
    CT_ASSERT(dev->n <= CT_PLAN_MAX_ITEMS - 2);
    add(dev, "cuBLASLt workspace", "per device context", CT_PLAN_WORKSPACE, CT_PLAN_FULL,
        ct_cuda_context_bytes());
    if (!llama)
        add(dev, "plain attention backward scratch", "(B, NH/tp, T) fp32", CT_PLAN_WORKSPACE,
            CT_PLAN_TP,
            (size_t)ct_cuda_attention_scratch_floats(p->B, p->T, d->NHl) * sizeof(float));
    sum_up(dev);

    /* the host side of a GPU run: ct_model_init's weights (no activations,
     * no gradients), the optimizer's host copy, gpt2_cuda.c's staging */
    plan_host_arenas(p, 1);
    add(&p->host, "staging: losses", "(N) fp32", CT_PLAN_WORKSPACE, CT_PLAN_FULL,
        (size_t)p->B * p->T * sizeof(float));
    add(&p->host, "staging: logits row", "(Vp) fp32 + bf16", CT_PLAN_WORKSPACE, CT_PLAN_FULL,
        (size_t)d->Vp * (sizeof(float) + sizeof(ct_bf16_t)));
}

ct_status_t ct_model_plan(const ct_config_t *cfg, int gpu, int tp_rank, int dp_rank, int sp,
                          ct_model_plan_t *plan_p)
{
    const ct_model_config_t *mc = &cfg->model;
    const int tp = cfg->parallel.tp, dp = cfg->parallel.dp;
    CT_ASSERT(tp >= 1 && dp >= 1 && tp_rank >= 0 && tp_rank < tp && dp_rank >= 0 && dp_rank < dp);
    if (mc->n_embd % mc->n_head != 0 || mc->n_head % tp != 0) {
        CT_LOG_ERROR("model.n_head = %d does not split over parallel.tp = %d ranks (or does not "
                     "divide model.n_embd = %d)\n---> HINT: choose parallel.tp among the "
                     "divisors of n_head", mc->n_head, tp, mc->n_embd);
        return CT_ERR_CONFIG;
    }
    if (!ct_model_tp_divides(mc, tp)) {
        CT_LOG_ERROR("the SwiGLU width %d (model.ffn_dim, or the rule from model.n_embd) does "
                     "not split over parallel.tp = %d ranks\n---> HINT: set model.ffn_dim to a "
                     "multiple of parallel.tp", ct_config_ffn_dim(mc), tp);
        return CT_ERR_CONFIG;
    }
    if (gpu && mc->arch == CT_ARCH_LLAMA && mc->recompute == CT_RECOMPUTE_LN_GELU) {
        CT_LOG_ERROR("model.arch is llama, whose GPU path has no norm recompute yet\n---> "
                     "HINT: plan with model.recompute: gelu or none, or the CPU path with --set "
                     "model.device=cpu");
        return CT_ERR_UNSUPPORTED;
    }
    ct_model_plan_t plan, *p = &plan;
    memset(p, 0, sizeof *p);
    ct_model_dims(mc, tp, tp_rank, &p->d);
    if (p->d.Vp % tp != 0) {
        CT_LOG_ERROR("the padded vocabulary (%d, from model.vocab_size = %d) does not split over "
                     "parallel.tp = %d ranks\n---> HINT: choose parallel.tp among the divisors "
                     "of %d", p->d.Vp, mc->vocab_size, tp, p->d.Vp);
        return CT_ERR_CONFIG;
    }
    p->gpu = gpu;
    p->tp_rank = tp_rank;
    p->dp_rank = dp_rank;
    p->sp = gpu && sp && tp > 1;
    p->B = cfg->train.batch_size;
    p->T = cfg->train.seq_len;
    if (gpu && mc->n_embd / mc->n_head > 128) {
        CT_LOG_ERROR("model.n_embd/model.n_head = %d: the GPU attention supports head sizes up "
                     "to 128\n---> HINT: raise model.n_head, or plan the CPU path with --set "
                     "model.device=cpu", mc->n_embd / mc->n_head);
        return CT_ERR_UNSUPPORTED;
    }
    if (p->sp && p->T % tp != 0) {
        CT_LOG_ERROR("sequence parallelism splits train.seq_len = %d over parallel.tp = %d "
                     "ranks, which does not divide it\n---> HINT: choose train.seq_len a "
                     "multiple of %d", p->T, tp, tp);
        return CT_ERR_CONFIG;
    }
    size_t sizes[CT_MODEL_MAX_TENSORS];
    ct_model_tensor_sizes(&p->d, sizes);
    for (int i = 0; i < ct_model_num_tensors(&p->d); i++) {
        p->num_params += sizes[i];
        p->full_params += ct_model_full_size(&p->d, i);
    }
    size_t padded, start;
    ct__optim_slice(p->num_params, cfg->optim.zero, dp, dp_rank, &padded, &start, &p->optim_count);

    const int64_t bt = (int64_t)p->B * p->T;
    p->tokens_per_step = cfg->train.batch_tokens ? cfg->train.batch_tokens : bt * dp;
    p->accum = (int)(p->tokens_per_step / (bt * dp));
    /* ct_model_flops_per_token reads only the dims of a model */
    ct_model_t shape;
    memset(&shape, 0, sizeof shape);
    shape.d = p->d;
    p->flops_per_token = ct_model_flops_per_token(&shape, p->T);
    p->flops_per_step = p->flops_per_token * (double)p->tokens_per_step;

    if (gpu) {
        plan_gpu(p, mc->recompute);
    } else {
        plan_host_arenas(p, 0);
        plan_cpu_acts(p, mc);
    }
    sum_up(&p->host);
    *plan_p = *p;
    return CT_OK;
}
