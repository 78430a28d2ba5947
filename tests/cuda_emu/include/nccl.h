/* ctrain's CUDA emulator: the real nccl.h with the functions comm/nccl.c
 * calls renamed to ct_emu_*; emu_nccl.cpp implements them on MPI over
 * host memory (the emulator's "device" memory), so comm/nccl.c and the GPU
 * trainer's data-parallel path run under mpirun without GPUs. */
#ifndef CT_EMU_NCCL_H
#define CT_EMU_NCCL_H

#define ncclGetUniqueId ct_emu_ncclGetUniqueId
#define ncclCommInitRankConfig ct_emu_ncclCommInitRankConfig
#define ncclCommDestroy ct_emu_ncclCommDestroy
#define ncclCommAbort ct_emu_ncclCommAbort
#define ncclCommGetAsyncError ct_emu_ncclCommGetAsyncError
#define ncclGetErrorString ct_emu_ncclGetErrorString
#define ncclGetLastError ct_emu_ncclGetLastError
#define ncclAllReduce ct_emu_ncclAllReduce
#define ncclReduceScatter ct_emu_ncclReduceScatter
#define ncclAllGather ct_emu_ncclAllGather
#define ncclBroadcast ct_emu_ncclBroadcast
#define ncclGroupStart ct_emu_ncclGroupStart
#define ncclGroupEnd ct_emu_ncclGroupEnd

#include "cuda_runtime.h"
#include_next <nccl.h>

#endif
