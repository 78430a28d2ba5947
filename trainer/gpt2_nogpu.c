/* The GPU path in a build without CUDA (CMake picks this file instead of
 * gpt2_gpu.c): ct_gpt2_gpu_init says so, and m->gpu therefore stays NULL,
 * so the dispatching entry points below are never reached. */
#include "core/log.h"
#include "trainer/gpt2.h"
#include "trainer/optim.h"

ct_status_t ct_gpt2_gpu_init(ct_gpt2_t *m, ct_optim_t *o, const ct_config_t *cfg,
                             const ct_comm_groups_t *g, int device, int B, int T)
{
    CT_LOG_ERROR("model.device is cuda but this ctrain was built without CUDA\n---> HINT: "
                 "rebuild with nvcc on PATH (-DCT_CUDA=ON), or set model.device: cpu");
    return CT_ERR_UNSUPPORTED;
}

void ct_gpt2_gpu_free(ct_gpt2_t *m) { (void)m; }
void ct_gpt2_gpu_to_host(ct_gpt2_t *m, ct_optim_t *o) { CT_ASSERT(!"no GPU path in this build"); }
void ct_gpt2_gpu_grads_to_host(ct_gpt2_t *m, float *dst) { CT_ASSERT(!"no GPU path in this build"); }
const char *ct_gpt2_gpu_device_name(const ct_gpt2_t *m) { return "none"; }
double ct_gpt2_gpu_peak_tflops(const ct_gpt2_t *m) { return 0.0; }
size_t ct_gpt2_gpu_peak_memory(ct_gpt2_t *m) { return 0; }

float ct__gpt2_gpu_forward(ct_gpt2_t *m, const int32_t *inputs, const int32_t *targets, int B,
                           int T)
{
    CT_ASSERT(!"no GPU path in this build");
    return 0.0f;
}
void ct__gpt2_gpu_backward(ct_gpt2_t *m, const int32_t *inputs, int B, int T, float loss_scale)
{
    CT_ASSERT(!"no GPU path in this build");
}
void ct__gpt2_gpu_zero_grad(ct_gpt2_t *m) { CT_ASSERT(!"no GPU path in this build"); }
const float *ct__gpt2_gpu_logits_row(ct_gpt2_t *m, int row)
{
    CT_ASSERT(!"no GPU path in this build");
    return NULL;
}
ct_status_t ct__gpt2_gpu_optim_step(ct_optim_t *o, ct_gpt2_t *m, const ct_optim_config_t *cfg,
                                    float lr, int t, float *norm_p)
{
    CT_ASSERT(!"no GPU path in this build");
    return CT_ERR_UNSUPPORTED;
}
