/* The nccl backend slot: GPU buffers over NCCL, with the unique id sent by
 * MPI_Bcast and one communicator per group. Empty until the CUDA path lands;
 * selecting it returns CT_ERR_UNSUPPORTED. */
#include "comm/comm_impl.h"
#include "core/log.h"

static ct_status_t nccl_groups_init(ct_comm_groups_t *g)
{
    CT_LOG_ERROR("comm backend nccl is not available: the nccl backend arrives with the CUDA "
                 "path ---> HINT: use comm backend auto or mpi");
    return CT_ERR_UNSUPPORTED;
}

/* Only groups_init is set: ct_comm_backend_available() reports 0. */
const ct__comm_backend_t ct__comm_nccl = {
    .name = "nccl",
    .groups_init = nccl_groups_init,
};
