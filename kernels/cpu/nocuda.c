/* A build without CUDA (CMake picks this file when CT_CUDA is OFF or nvcc is
 * missing): no device is ever usable, so the trainer takes the CPU path. */
#include "kernels/kernels.h"

int ct_cuda_device_count(void) { return 0; }
