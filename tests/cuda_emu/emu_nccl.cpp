/* ctrain's CUDA emulator: NCCL on MPI over host memory. Collectives run
 * eagerly and blocking (the emulator's streams are synchronous), group
 * calls are no-ops (every rank issues the same sequence, so eager blocking
 * collectives cannot deadlock), and a communicator is an MPI communicator
 * split from MPI_COMM_WORLD by its unique id: comm/nccl.c creates the
 * world, DP and TP communicators in the same order on every rank, so every
 * rank takes part in each split. Async errors never happen here. */
#define OMPI_SKIP_MPICXX 1 /* the C API only */
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "nccl.h"

struct ncclComm {
    MPI_Comm mpi;
    int rank, size;
};

namespace {
MPI_Datatype mpi_type(ncclDataType_t t, size_t *bytes)
{
    switch (t) {
    case ncclFloat32: *bytes = 4; return MPI_FLOAT;
    case ncclFloat64: *bytes = 8; return MPI_DOUBLE;
    case ncclInt32: *bytes = 4; return MPI_INT32_T;
    case ncclInt64: *bytes = 8; return MPI_INT64_T;
    default: fprintf(stderr, "cuda_emu nccl: data type %d not emulated\n", (int)t); abort();
    }
}
MPI_Op mpi_op(ncclRedOp_t op)
{
    switch (op) {
    case ncclSum: case ncclAvg: return MPI_SUM;
    case ncclMax: return MPI_MAX;
    case ncclMin: return MPI_MIN;
    default: fprintf(stderr, "cuda_emu nccl: op %d not emulated\n", (int)op); abort();
    }
}
void average(void *buf, size_t count, ncclDataType_t t, int n)
{
    if (t == ncclFloat32)
        for (size_t i = 0; i < count; i++) ((float *)buf)[i] *= 1.0f / (float)n;
    else if (t == ncclFloat64)
        for (size_t i = 0; i < count; i++) ((double *)buf)[i] /= n;
    else { fprintf(stderr, "cuda_emu nccl: ncclAvg on integers\n"); abort(); }
}
int counter = 0;
} // namespace

extern "C" {
ncclResult_t ct_emu_ncclGetUniqueId(ncclUniqueId *id)
{
    int world_rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    memset(id, 0, sizeof *id);
    int words[3] = {0x43544e43, world_rank, ++counter};
    memcpy(id->internal, words, sizeof words);
    return ncclSuccess;
}
ncclResult_t ct_emu_ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId id,
                                           int rank, ncclConfig_t *config)
{
    int words[3];
    memcpy(words, id.internal, sizeof words);
    if (words[0] != 0x43544e43) return ncclInvalidArgument;
    ncclComm *c = new ncclComm();
    int color = words[1] * 4096 + words[2];
    MPI_Comm_split(MPI_COMM_WORLD, color, rank, &c->mpi);
    MPI_Comm_rank(c->mpi, &c->rank);
    MPI_Comm_size(c->mpi, &c->size);
    if (c->size != nranks || c->rank != rank) {
        fprintf(stderr, "cuda_emu nccl: communicator of %d ranks (rank %d), expected %d (%d)\n",
                c->size, c->rank, nranks, rank);
        return ncclInvalidUsage;
    }
    *comm = c;
    return ncclSuccess;
}
ncclResult_t ct_emu_ncclCommDestroy(ncclComm_t c)
{
    MPI_Comm_free(&c->mpi);
    delete c;
    return ncclSuccess;
}
ncclResult_t ct_emu_ncclCommAbort(ncclComm_t c)
{
    delete c; /* the MPI communicator is left to MPI_Finalize/MPI_Abort */
    return ncclSuccess;
}
ncclResult_t ct_emu_ncclCommGetAsyncError(ncclComm_t c, ncclResult_t *e)
{
    *e = ncclSuccess;
    return ncclSuccess;
}
const char *ct_emu_ncclGetErrorString(ncclResult_t r) { return r ? "emulated nccl error" : "no error"; }
const char *ct_emu_ncclGetLastError(ncclComm_t c) { return ""; }
ncclResult_t ct_emu_ncclGroupStart(void) { return ncclSuccess; }
ncclResult_t ct_emu_ncclGroupEnd(void) { return ncclSuccess; }

ncclResult_t ct_emu_ncclAllReduce(const void *send, void *recv, size_t count,
                                  ncclDataType_t t, ncclRedOp_t op, ncclComm_t c,
                                  cudaStream_t s)
{
    size_t b;
    MPI_Datatype mt = mpi_type(t, &b);
    if (MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, (int)count, mt, mpi_op(op),
                      c->mpi) != MPI_SUCCESS)
        return ncclSystemError;
    if (op == ncclAvg) average(recv, count, t, c->size);
    return ncclSuccess;
}
ncclResult_t ct_emu_ncclReduceScatter(const void *send, void *recv, size_t recvcount,
                                      ncclDataType_t t, ncclRedOp_t op, ncclComm_t c,
                                      cudaStream_t s)
{
    size_t b;
    MPI_Datatype mt = mpi_type(t, &b);
    std::vector<char> tmp(recvcount * b * (size_t)c->size);
    memcpy(tmp.data(), send, tmp.size()); /* in place is allowed: copy first */
    if (MPI_Reduce_scatter_block(tmp.data(), recv, (int)recvcount, mt, mpi_op(op), c->mpi) !=
        MPI_SUCCESS)
        return ncclSystemError;
    if (op == ncclAvg) average(recv, recvcount, t, c->size);
    return ncclSuccess;
}
ncclResult_t ct_emu_ncclAllGather(const void *send, void *recv, size_t sendcount,
                                  ncclDataType_t t, ncclComm_t c, cudaStream_t s)
{
    size_t b;
    MPI_Datatype mt = mpi_type(t, &b);
    const bool in_place = (const char *)send == (const char *)recv + (size_t)c->rank * sendcount * b;
    if (MPI_Allgather(in_place ? MPI_IN_PLACE : send, (int)sendcount, mt, recv, (int)sendcount,
                      mt, c->mpi) != MPI_SUCCESS)
        return ncclSystemError;
    return ncclSuccess;
}
ncclResult_t ct_emu_ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t t,
                                  int root, ncclComm_t c, cudaStream_t s)
{
    size_t b;
    MPI_Datatype mt = mpi_type(t, &b);
    if (c->rank == root && send != recv) memcpy(recv, send, count * b);
    return MPI_Bcast(recv, (int)count, mt, root, c->mpi) == MPI_SUCCESS ? ncclSuccess
                                                                          : ncclSystemError;
}
}
