/* ctrain's CUDA emulator (tests/cuda_emu): stands in for <cuda_runtime.h>
 * when kernels/cuda/(*).cu are compiled as host C++. The runtime functions
 * the kernels and device.cu call are renamed to ct_emu_* (so a binary may
 * also link the real CUDA runtime without clashing) and declared by the
 * real cuda_runtime_api.h under those names; emu_runtime.cpp defines them
 * on host memory. */
#ifndef CT_EMU_CUDA_RUNTIME_H
#define CT_EMU_CUDA_RUNTIME_H

#define cudaMalloc ct_emu_cudaMalloc
#define cudaFree ct_emu_cudaFree
#define cudaMemcpyAsync ct_emu_cudaMemcpyAsync
#define cudaMemsetAsync ct_emu_cudaMemsetAsync
#define cudaStreamSynchronize ct_emu_cudaStreamSynchronize
#define cudaDeviceSynchronize ct_emu_cudaDeviceSynchronize
#define cudaGetLastError ct_emu_cudaGetLastError
#define cudaPeekAtLastError ct_emu_cudaPeekAtLastError
#define cudaGetErrorString ct_emu_cudaGetErrorString
#define cudaGetDeviceCount ct_emu_cudaGetDeviceCount
#define cudaSetDevice ct_emu_cudaSetDevice
#define cudaGetDevice ct_emu_cudaGetDevice
#define cudaGetDeviceProperties ct_emu_cudaGetDeviceProperties
#define cudaMemGetInfo ct_emu_cudaMemGetInfo
#define cudaStreamCreateWithFlags ct_emu_cudaStreamCreateWithFlags
#define cudaStreamDestroy ct_emu_cudaStreamDestroy
#define cudaEventCreateWithFlags ct_emu_cudaEventCreateWithFlags
#define cudaEventDestroy ct_emu_cudaEventDestroy
#define cudaEventRecord ct_emu_cudaEventRecord
#define cudaEventElapsedTime ct_emu_cudaEventElapsedTime
#define cudaStreamWaitEvent ct_emu_cudaStreamWaitEvent
#define cudaStreamQuery ct_emu_cudaStreamQuery

#include <cuda_runtime_api.h>
#include <vector_types.h>

#endif
