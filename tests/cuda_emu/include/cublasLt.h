/* ctrain's CUDA emulator: the real cublasLt.h with the functions
 * kernels/cuda/matmul.cu and device.cu call renamed to ct_emu_*;
 * emu_cublaslt.cpp implements them as a plain column-major GEMM with the
 * documented epilogues, so matmul.cu's layout mapping is exercised. */
#ifndef CT_EMU_CUBLASLT_H
#define CT_EMU_CUBLASLT_H

#define cublasLtCreate ct_emu_cublasLtCreate
#define cublasLtDestroy ct_emu_cublasLtDestroy
#define cublasLtGetStatusString ct_emu_cublasLtGetStatusString
#define cublasLtMatmul ct_emu_cublasLtMatmul
#define cublasLtMatmulAlgoGetHeuristic ct_emu_cublasLtMatmulAlgoGetHeuristic
#define cublasLtMatmulDescCreate ct_emu_cublasLtMatmulDescCreate
#define cublasLtMatmulDescDestroy ct_emu_cublasLtMatmulDescDestroy
#define cublasLtMatmulDescSetAttribute ct_emu_cublasLtMatmulDescSetAttribute
#define cublasLtMatmulPreferenceCreate ct_emu_cublasLtMatmulPreferenceCreate
#define cublasLtMatmulPreferenceDestroy ct_emu_cublasLtMatmulPreferenceDestroy
#define cublasLtMatmulPreferenceSetAttribute ct_emu_cublasLtMatmulPreferenceSetAttribute
#define cublasLtMatrixLayoutCreate ct_emu_cublasLtMatrixLayoutCreate
#define cublasLtMatrixLayoutDestroy ct_emu_cublasLtMatrixLayoutDestroy

#include "cuda_runtime.h"
#include_next <cublasLt.h>

#endif
