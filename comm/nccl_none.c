/* The nccl backend slot of builds without NCCL (CMake picks this file
 * instead of nccl.c): selecting it logs why and returns CT_ERR_UNSUPPORTED,
 * and ct_comm_backend_available reports 0. */
#include "comm/comm_impl.h"
#include "core/log.h"

static CT_MUST_USE ct_status_t nccl_groups_init(ct_comm_groups_t *g)
{
    CT_LOG_ERROR("comm backend nccl is not in this build\n---> HINT: install the CUDA toolkit and "
                 "NCCL (libnccl-dev, or point NCCL_ROOT at it) and configure with -DCT_CUDA=ON");
    return CT_ERR_UNSUPPORTED;
}

static CT_MUST_USE ct_status_t nccl_groups_over(const ct_comm_groups_t *host, ct_comm_groups_t *g)
{
    return nccl_groups_init(g);
}

/* No collectives: ct_comm_backend_available() reports 0. */
const ct__comm_backend_t ct__comm_nccl = {
    .name = "nccl",
    .groups_init = nccl_groups_init,
    .groups_over = nccl_groups_over,
};
