/* The CUDA ops' scratch and workspace sizes as plain C: the constants the
 * .cu files launch with, and the size functions kernels.h declares
 * (defined in kernels/cpu/cuda_sizes.c, which every build compiles). A
 * build without CUDA can thus plan the device memory of a GPU run
 * (model/plan.c) from the same numbers the kernels use. Private to
 * kernels/; no CUDA headers here. */
#ifndef CT_KERNELS_CUDA_SIZES_H
#define CT_KERNELS_CUDA_SIZES_H

/* cuBLASLt workspace of a device context (device.cu). */
#define CT__LT_WORKSPACE ((size_t)32 << 20)

/* layernorm.cu, the three-kernel backward (C > 2048, or C % 4 != 0 and
 * C > 1024): row chunks of the dweight/dbias partials. */
#define CT_LN_MAX_CHUNKS 256

/* layernorm.cu, the one-kernel backward: CT_LN_BWD_WARPS rows at a time per
 * block; a grid of ct__ln_bwd_blocks(N) blocks (a function of N only, so the
 * partition and hence the summation order are the same on every device),
 * in groups of CT_LN_BWD_GROUP. scratch (floats): CT_LN_BWD_HDR words of
 * counters (1 + groups), then one (2, C) partial per block, then one per
 * group. */
#define CT_LN_BWD_WARPS 8
#define CT_LN_BWD_MAX_BLOCKS 256
#define CT_LN_BWD_GROUP 16
#define CT_LN_BWD_HDR 32 /* >= 1 + CT_LN_BWD_MAX_BLOCKS / CT_LN_BWD_GROUP, a multiple of 4 */

static inline int ct__ln_bwd_blocks(int N)
{
    int b = (N + CT_LN_BWD_WARPS - 1) / CT_LN_BWD_WARPS;
    if (b < 1) b = 1;
    return b < CT_LN_BWD_MAX_BLOCKS ? b : CT_LN_BWD_MAX_BLOCKS;
}

static inline int ct__ln_bwd_groups(int nblk)
{
    return (nblk + CT_LN_BWD_GROUP - 1) / CT_LN_BWD_GROUP;
}

/* matmul.cu: the dbias reduction's chunks of at least CT__DB_MIN_ROWS rows,
 * at most CT__DB_MAX_CHUNKS of them. */
#define CT__DB_MIN_ROWS 64
#define CT__DB_MAX_CHUNKS 256

/* adamw.cu: sumsq pass 1's block count depends on n only (never on the
 * device), so the partition and hence the result are reproducible. */
#define CT__SUMSQ_PER_BLOCK 4096L /* elements per block before the cap */
#define CT__SUMSQ_MAX_BLOCKS 1024L

static inline int ct__mm_dbias_chunks(int N)
{
    int c = (N + CT__DB_MIN_ROWS - 1) / CT__DB_MIN_ROWS;
    if (c > CT__DB_MAX_CHUNKS) c = CT__DB_MAX_CHUNKS;
    return c < 1 ? 1 : c;
}

static inline long ct__sumsq_blocks(long n)
{
    long b = (n + CT__SUMSQ_PER_BLOCK - 1) / CT__SUMSQ_PER_BLOCK;
    if (b < 1) b = 1;
    return b < CT__SUMSQ_MAX_BLOCKS ? b : CT__SUMSQ_MAX_BLOCKS;
}

/* attention.cu and attention_flash.cu: the plain backward's scratch, one float
 * per (b, h, row) (D_i = dout_i . out_i). */
static inline long ct__attention_scratch_floats(int B, int T, int NH) { return (long)B * NH * T; }

#endif
