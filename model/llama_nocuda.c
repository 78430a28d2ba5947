/* The Llama CUDA backend in a build without CUDA (CMake picks this file
 * instead of llama_cuda.c): moving a model to a device says so, and the
 * model stays on the CPU backend. */
#include "core/log.h"
#include "model/llama.h"

ct_status_t ct__llama_cuda_init(ct_model_t *m, ct_optim_t *o, const ct_config_t *cfg,
                                const ct_comm_groups_t *g, int device, int B, int T)
{
    CT_LOG_ERROR("model.device is cuda but this ctrain was built without CUDA\n---> HINT: "
                 "rebuild with nvcc on PATH (-DCT_CUDA=ON), or set model.device: cpu");
    return CT_ERR_UNSUPPORTED;
}
