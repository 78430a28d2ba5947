/* A build without CUDA (CMake picks this file when CT_CUDA is OFF or nvcc is
 * missing): no device is ever usable, so the trainer takes the CPU path, and
 * a device context cannot be made. */
#include "kernels/kernels.h"

int ct_cuda_device_count(void) { return 0; }

ct_status_t ct_cuda_init(int device, ct_attn_impl_t attn, ct_cuda_t **ctx_p)
{
    (void)device, (void)attn;
    *ctx_p = NULL;
    return CT_ERR_UNSUPPORTED;
}

void ct_cuda_free(ct_cuda_t *ctx) { (void)ctx; }
