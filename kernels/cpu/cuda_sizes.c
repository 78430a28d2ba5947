/* The CUDA ops' scratch and workspace sizes (kernels.h), compiled in every
 * build, with or without CUDA: they are arithmetic on the constants of
 * kernels/cuda/sizes.h, which the .cu files launch with. A build without a
 * GPU plans a GPU run's device memory with them (model/plan.c). */
#include "kernels/cuda/sizes.h"
#include "kernels/kernels.h"

size_t ct_cuda_context_bytes(void) { return CT__LT_WORKSPACE; }

long ct_cuda_layernorm_scratch_floats(int N, int C)
{
    if (N <= 0 || C <= 0) return 0;
    /* The larger of the two backwards' layouts, each growing with N, so a
     * buffer sized for the largest N serves every smaller one: the
     * one-kernel backward's counters and per-block and per-group (2, C)
     * partials; the three-kernel one's 2 * R * C. */
    int nblk = ct__ln_bwd_blocks(N);
    long fused = CT_LN_BWD_HDR + 2L * (nblk + ct__ln_bwd_groups(nblk)) * (long)C;
    long rmax = N < CT_LN_MAX_CHUNKS ? N : CT_LN_MAX_CHUNKS;
    long chunked = 2 * rmax * (long)C;
    return fused > chunked ? fused : chunked;
}

long ct_cuda_rmsnorm_scratch_floats(int N, int C)
{
    if (N <= 0 || C <= 0) return 0;
    /* rmsnorm.cu's dweight partials: R <= min(N, CT_LN_MAX_CHUNKS) rows of C */
    long rmax = N < CT_LN_MAX_CHUNKS ? N : CT_LN_MAX_CHUNKS;
    return rmax * (long)C;
}

long ct_cuda_matmul_scratch_floats(int N, int OC)
{
    return (long)ct__mm_dbias_chunks(N) * (long)OC;
}

long ct_cuda_attention_scratch_floats(int B, int T, int NH)
{
    return ct__attention_scratch_floats(B, T, NH);
}

long ct_cuda_sumsq_scratch_floats(long n) { return ct__sumsq_blocks(n); }
