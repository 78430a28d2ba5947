/* The backend table behind model/model.h: one per architecture x device
 * (gpt2 x cpu in model/gpt2_cpu.c, gpt2 x cuda in model/gpt2_cuda.c), chosen
 * once: ct_model_init installs the CPU one, ct_model_to_device a device one.
 * Private to model/. */
#ifndef CT_MODEL_MODEL_IMPL_H
#define CT_MODEL_MODEL_IMPL_H

#include "model/model.h"

struct ct_model_backend {
    const char *name; /* "gpt2/cpu" */
    float (*forward)(ct_model_t *m, const int32_t *inputs, const int32_t *targets, int B, int T);
    void (*backward)(ct_model_t *m, const int32_t *inputs, int B, int T, float loss_scale);
    /* forward with targets + backward in one (model.h); NULL: the two calls */
    float (*forward_backward)(ct_model_t *m, const int32_t *inputs, const int32_t *targets, int B,
                              int T, float loss_scale);
    void (*zero_grad)(ct_model_t *m);
    const float *(*logits_row)(ct_model_t *m, int row);
    void (*to_host)(ct_model_t *m, ct_optim_t *o);
    void (*grads_to_host)(ct_model_t *m, float *dst);
    /* frees m->dev (device backends; NULL on the CPU) */
    void (*free)(ct_model_t *m);
    const char *(*device_name)(const ct_model_t *m);
    double (*peak_tflops)(const ct_model_t *m);
    size_t (*peak_memory)(const ct_model_t *m);
    /* per-op timing (model/model.h); NULL where the backend has none */
    int (*profile_ops)(ct_model_t *m, int on);
    int (*op_times)(ct_model_t *m, ct_model_op_times_t *t);

    /* The optimizer's device pieces, called by ct_optim_step in this order:
     * grad_reduce (DP average of what the backward has not reduced yet, or
     * ZeRO's reduce-scatter into [o->start, o->start + o->count)), grad_sumsq
     * (the sum of squares of the owned slice, every parameter counted once
     * across TP and DP; into *host_p when the backend has it on the host,
     * else left on the device and *host_p untouched), adamw for each
     * tensor's part [a, b) of the owned slice (clipping to grad_clip by the
     * norm, skipping a non-finite one), param_gather (ZeRO), and
     * step_norm (the norm, waiting for the device if it must). */
    ct_status_t (*grad_reduce)(ct_model_t *m, ct_optim_t *o, int t);
    ct_status_t (*grad_sumsq)(ct_model_t *m, ct_optim_t *o, int t, double *host_p);
    void (*adamw)(ct_model_t *m, ct_optim_t *o, const ct_optim_config_t *cfg, size_t a, size_t b,
                  float lr, float wd, int t, int tensor, float clip_scale);
    ct_status_t (*param_gather)(ct_model_t *m, ct_optim_t *o, int t);
    ct_status_t (*step_norm)(ct_model_t *m, ct_optim_t *o, int t, double host_sumsq,
                             float *norm_p);
};

/* The slice of the flat parameters the AdamW state of DP rank dp_rank
 * covers: all num_params, or with zero (and dp > 1) its 1/dp of the length
 * padded to a multiple of dp. ct_optim_init and the planner share it. */
void ct__optim_slice(size_t num_params, int zero, int dp, int dp_rank, size_t *padded_p,
                     size_t *start_p, size_t *count_p);

/* Rows of one chunk of the GPU paths' LM head and cross-entropy
 * (ct__cuda_head) for micro-batch capacity (B, T): the logits exist for R
 * rows at a time, never for all N = B*T (at a real vocabulary they would
 * be the largest activation). R is about N/8, a multiple of 8 (aligned
 * bf16 rows for cuBLASLt), at least T (a sampling forward, one row of up
 * to T tokens, is one chunk) and at most N. The planner sizes the chunk
 * buffers with it (model/plan.c). */
int ct__model_head_rows(int B, int T);

/* The CPU backend's optimizer pieces, shared by every architecture on the
 * CPU (model/optim.c). */
CT_MUST_USE ct_status_t ct__optim_cpu_grad_reduce(ct_model_t *m, ct_optim_t *o, int t);
CT_MUST_USE ct_status_t ct__optim_cpu_grad_sumsq(ct_model_t *m, ct_optim_t *o, int t, double *host_p);
void ct__optim_cpu_adamw(ct_model_t *m, ct_optim_t *o, const ct_optim_config_t *cfg, size_t a,
                         size_t b, float lr, float wd, int t, int tensor, float clip_scale);
CT_MUST_USE ct_status_t ct__optim_cpu_param_gather(ct_model_t *m, ct_optim_t *o, int t);
CT_MUST_USE ct_status_t ct__optim_cpu_step_norm(ct_model_t *m, ct_optim_t *o, int t, double host_sumsq,
                                    float *norm_p);

#endif
