/* The model layer's entry points: the architecture's tensor table by
 * d->arch, the host arenas, and the device backend's table (m->be). Adding
 * an architecture adds a case to each switch below and its files; nothing
 * above model/ changes. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/gpt2.h"
#include "model/llama.h"

#define IS_LLAMA(d) ((d)->arch == CT_ARCH_LLAMA)

int ct_model_padded_vocab(int vocab_size, int tp)
{
    /* in 64 bits: the sum may pass INT_MAX before the division brings it back */
    int64_t q = 128 * (int64_t)tp;
    int64_t vp = ((int64_t)vocab_size + q - 1) / q * q;
    CT_ASSERT(vp <= INT32_MAX); /* core/config.c bounds vocab_size and tp well below */
    return (int)vp;
}

void ct_model_dims(const ct_model_config_t *cfg, int tp, int tp_rank, ct_model_dims_t *d)
{
    ct_model_dims_padded(cfg, tp, tp_rank, ct_model_padded_vocab(cfg->vocab_size, tp), d);
}

void ct_model_dims_padded(const ct_model_config_t *cfg, int tp, int tp_rank, int Vp,
                          ct_model_dims_t *d)
{
    CT_ASSERT(tp >= 1 && Vp >= cfg->vocab_size && Vp % tp == 0);
    if (cfg->arch == CT_ARCH_LLAMA) {
        ct__llama_dims(cfg, tp, tp_rank, Vp, d);
        return;
    }
    ct__gpt2_dims(cfg, tp, tp_rank, Vp, d);
    d->arch = CT_ARCH_GPT2;
}

const char *ct_model_arch_name(ct_arch_t arch) { return arch == CT_ARCH_LLAMA ? "llama" : "gpt2"; }

int ct_model_arch_has_cuda(ct_arch_t arch) { return arch == CT_ARCH_GPT2 || arch == CT_ARCH_LLAMA; }

int ct_model_cuda_supports(const ct_config_t *cfg)
{
    if (!ct_model_arch_has_cuda(cfg->model.arch)) return 0;
    return cfg->model.arch != CT_ARCH_LLAMA || cfg->model.recompute != CT_RECOMPUTE_LN_GELU;
}

int ct_model_tp_divides(const ct_model_config_t *cfg, int tp)
{
    if (tp < 1 || cfg->n_head % tp != 0) return 0;
    return cfg->arch != CT_ARCH_LLAMA || ct_config_ffn_dim(cfg) % tp == 0;
}

int ct_model_num_tensors(const ct_model_dims_t *d)
{
    return IS_LLAMA(d) ? ct__llama_num_tensors(d) : CT_GPT2_NUM_TENSORS;
}

const char *ct_model_tensor_name(const ct_model_dims_t *d, int i)
{
    CT_ASSERT(i >= 0 && i < ct_model_num_tensors(d));
    return IS_LLAMA(d) ? ct__llama_tensor_names[i] : ct__gpt2_tensor_names[i];
}

void ct_model_tensor_sizes(const ct_model_dims_t *d, size_t *sizes)
{
    if (IS_LLAMA(d)) ct__llama_tensor_sizes(d, sizes);
    else ct__gpt2_tensor_sizes(d, sizes);
}

size_t ct_model_full_size(const ct_model_dims_t *d, int i)
{
    return IS_LLAMA(d) ? ct__llama_full_size(d, i) : ct__gpt2_full_size(d, i);
}

int ct_model_tensor_decays(const ct_model_dims_t *d, int i)
{
    return IS_LLAMA(d) ? ct__llama_tensor_decays(i) : ct__gpt2_tensor_decays(i);
}

int ct_model_tensor_replicated(const ct_model_dims_t *d, int i)
{
    return IS_LLAMA(d) ? ct__llama_tensor_replicated(d, i) : ct__gpt2_tensor_replicated(i);
}

void ct_model_full_repad(const ct_model_dims_t *from, const ct_model_dims_t *to, int i,
                         const float *src, float *dst)
{
    if (IS_LLAMA(to)) ct__llama_full_repad(from, to, i, src, dst);
    else ct__gpt2_full_repad(from, to, i, src, dst);
}

void ct_model_shard_copy(const ct_model_dims_t *d, int tp_rank, int i, float *full, float *shard,
                         int to_shard)
{
    if (IS_LLAMA(d)) ct__llama_shard_copy(d, tp_rank, i, full, shard, to_shard);
    else ct__gpt2_shard_copy(d, tp_rank, i, full, shard, to_shard);
}

ct_status_t ct_model_init(ct_model_t *m, const ct_model_config_t *cfg, int B, int T,
                          ct_comm_t *tp)
{
    memset(m, 0, sizeof *m);
    ct_model_dims_t *d = &m->d;
    int tp_size = tp ? ct_comm_size(tp) : 1;
    ct_model_dims(cfg, tp_size, tp ? ct_comm_rank(tp) : 0, d);
    CT_ASSERT(d->C % d->NH == 0 && T <= d->maxT && d->NH % tp_size == 0 && d->Vp % tp_size == 0);
    CT_ASSERT(!IS_LLAMA(d) || (d->F % tp_size == 0 && d->NH % d->NKV == 0 && d->HS % 2 == 0));
    m->tp = tp_size > 1 ? tp : NULL;
    m->B = B;
    m->T = T;
    m->n_tensors = ct_model_num_tensors(d);
    ct_model_tensor_sizes(d, m->sizes);
    for (int i = 0; i < m->n_tensors; i++) {
        m->offsets[i] = m->num_params;
        m->num_params += m->sizes[i];
    }
    size_t pbytes = (m->num_params + CT_MODEL_PAD_FLOATS) * sizeof(float);
    ct_status_t st;
    if ((st = ct_arena_init(&m->params_arena, pbytes, "parameters")) != CT_OK) goto fail;
    if ((st = ct_arena_init(&m->grads_arena, pbytes, "gradients")) != CT_OK) goto fail;
    m->params = ct_arena_alloc(&m->params_arena, pbytes);
    m->grads = ct_arena_alloc(&m->grads_arena, pbytes);
    st = IS_LLAMA(d) ? ct__llama_cpu_init(m, B, T) : ct__gpt2_cpu_init(m, B, T);
    if (st != CT_OK) goto fail;
    return CT_OK;
fail:
    ct_model_free(m);
    return st;
}

void ct_model_free(ct_model_t *m)
{
    if (m->be && m->be->free) m->be->free(m);
    if (IS_LLAMA(&m->d)) ct__llama_cpu_free(m);
    else ct__gpt2_cpu_free(m);
    ct_arena_free(&m->grads_arena);
    ct_arena_free(&m->params_arena);
    m->be = NULL;
}

void ct_model_init_weights(ct_model_t *m, uint64_t seed, float std)
{
    if (IS_LLAMA(&m->d)) ct__llama_init_weights(m, seed, std);
    else ct__gpt2_init_weights(m, seed, std);
}

ct_status_t ct_model_load_llmc(ct_model_t *m, const char *path)
{
    if (IS_LLAMA(&m->d)) {
        CT_LOG_ERROR("model.init_from %s: llm.c's model files hold GPT-2 only, and this model "
                     "is a Llama (model.arch = llama)\n---> HINT: start from random weights "
                     "(model.init_from: \"\") or from a ctrain checkpoint (checkpoint.resume)",
                     path);
        return CT_ERR_UNSUPPORTED;
    }
    return ct__gpt2_load_llmc(m, path);
}

double ct_model_flops_per_token(const ct_model_t *m, int T)
{
    return IS_LLAMA(&m->d) ? ct__llama_flops_per_token(m, T) : ct__gpt2_flops_per_token(m, T);
}

ct_status_t ct_model_to_device(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                               const ct_comm_groups_t *g, int device, int B, int T)
{
    CT_ASSERT(m->dev == NULL);
    ct_status_t st = IS_LLAMA(&m->d) ? ct__llama_cuda_init(m, o, cfg, g, device, B, T)
                                     : ct__gpt2_cuda_init(m, o, cfg, g, device, B, T);
    if (st == CT_OK) { /* the device holds the gradients from now on */
        ct_arena_free(&m->grads_arena);
        m->grads = NULL;
    }
    return st;
}

float ct_model_forward(ct_model_t *m, const int32_t *inputs, const int32_t *targets, int B, int T)
{
    return m->be->forward(m, inputs, targets, B, T);
}

void ct_model_backward(ct_model_t *m, const int32_t *inputs, int B, int T, float loss_scale)
{
    m->be->backward(m, inputs, B, T, loss_scale);
}

float ct_model_forward_backward(ct_model_t *m, const int32_t *inputs, const int32_t *targets, int B,
                                int T, float loss_scale)
{
    CT_ASSERT(targets != NULL);
    if (m->be->forward_backward) return m->be->forward_backward(m, inputs, targets, B, T, loss_scale);
    float loss = m->be->forward(m, inputs, targets, B, T);
    m->be->backward(m, inputs, B, T, loss_scale);
    return loss;
}

void ct_model_zero_grad(ct_model_t *m) { m->be->zero_grad(m); }
const float *ct_model_logits_row(ct_model_t *m, int row) { return m->be->logits_row(m, row); }
void ct_model_to_host(ct_model_t *m, ct_optim_t *o) { m->be->to_host(m, o); }
void ct_model_grads_to_host(ct_model_t *m, float *dst) { m->be->grads_to_host(m, dst); }
const char *ct_model_backend_name(const ct_model_t *m) { return m->be->name; }
const char *ct_model_device_name(const ct_model_t *m) { return m->be->device_name(m); }
double ct_model_peak_tflops(const ct_model_t *m) { return m->be->peak_tflops(m); }
size_t ct_model_peak_memory(const ct_model_t *m) { return m->be->peak_memory(m); }

int ct_model_profile_ops(ct_model_t *m, int on)
{
    return m->be->profile_ops ? m->be->profile_ops(m, on) : 0;
}

int ct_model_op_times(ct_model_t *m, ct_model_op_times_t *t)
{
    memset(t, 0, sizeof *t);
    return m->be->op_times ? m->be->op_times(m, t) : 0;
}
