/* Matmuls on cuBLASLt: out = inp @ weight^T + bias (nn.Linear) and its
 * backward, bf16 operands with fp32 compute (CUBLAS_COMPUTE_32F).
 *
 * cuBLASLt is column-major. A row-major (R, S) buffer is, read column-major,
 * the (S x R) matrix with leading dimension S, i.e. its transpose. So every
 * product is written for the transposed outputs:
 *
 *   forward   out^T  (OC x N, ld OC) = op_T(weight: C x OC, ld C) * inp^T (C x N, ld C)
 *   dinp      dinp^T (C x N,  ld C)  = weight^T (C x OC, ld C)    * dout^T (OC x N, ld OC)
 *   dweight   dW^T   (C x OC, ld C)  = inp^T (C x N, ld C) * op_T(dout^T: OC x N, ld OC)
 *
 * (m, n, k) = (OC, N, C), (C, N, OC) and (C, OC, N). A layout describes the
 * matrix as stored, before its op: rows x cols = k x m for op_T(A), m x k
 * for A; k x n for B, n x k for op_T(B).
 *
 * Epilogues: the bias vector has one entry per row of D (OC in the forward);
 * GELU_AUX(_BIAS) stores the pre-activation (bias included) as an m x n
 * bf16 matrix with ld OC, which cuBLASLt requires to be a multiple of 8, and
 * DGELU reads it back in the dinp product (m x n = C x N, ld C). Bias
 * gradients are NOT taken from a BGRAD epilogue, which overwrites rather than
 * accumulates: a two-kernel column sum through `scratch` adds them into the
 * fp32 dbias in a fixed order (deterministic).
 *
 * Algorithms come from cublasLtMatmulAlgoGetHeuristic (best fit within the
 * context's workspace) and are cached in a small process-wide table keyed by
 * everything that shapes the query: handle, device, kind, N, C, OC, epilogue
 * and the alignment of each pointer (the heuristic assumes 256-byte aligned
 * buffers unless told otherwise, so the actual alignments are passed in the
 * preference and are part of the key). The descriptors are rebuilt on each
 * call (host-only objects; creating them allocates no device memory). */
#include <mutex>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/sizes.h"

/* The same check as cuda_common.cuh's CT_CHECK_CUBLAS: cublasLtGetStatusString
 * (ct_kernels links only libcublasLt, not libcublas's cublasGetStatusString). */
#define CT__CHECK_LT(stmt)                                                \
    CT_CHECK_GEN(cublasStatus_t, stmt, _rc == CUBLAS_STATUS_SUCCESS, cublasLtGetStatusString(_rc))

/* ---- algorithm cache ----------------------------------------------------- */

/* The kind names the product and its output type (a cached algorithm is
 * valid for one D type only). */
enum { CT__MM_FWD = 0, CT__MM_DINP = 1, CT__MM_DWEIGHT = 2, CT__MM_FWD_F32 = 3, CT__MM_DINP_F32 = 4,
       CT__MM_DINP_F32_ADD = 5 };
static const char *const ct__mm_kind_name[] = {"forward", "backward dinp", "backward dweight",
                                               "forward (fp32 out)", "backward dinp (fp32 out)",
                                               "backward dinp (fp32 out, accumulated)"};

struct ct__mm_key {
    cublasLtHandle_t lt;
    int device, kind, N, C, OC;
    uint32_t epilogue;
    unsigned align_a, align_b, align_d, align_bias, align_aux;
};

static bool ct__mm_key_eq(const ct__mm_key &a, const ct__mm_key &b)
{
    return a.lt == b.lt && a.device == b.device && a.kind == b.kind && a.N == b.N &&
           a.C == b.C && a.OC == b.OC && a.epilogue == b.epilogue && a.align_a == b.align_a &&
           a.align_b == b.align_b && a.align_d == b.align_d && a.align_bias == b.align_bias &&
           a.align_aux == b.align_aux;
}

#define CT__MM_CACHE_SIZE 256
struct ct__mm_cache_entry {
    ct__mm_key key;
    cublasLtMatmulAlgo_t algo;
};
static ct__mm_cache_entry ct__mm_cache[CT__MM_CACHE_SIZE];
static int ct__mm_cache_count; /* valid entries */
static int ct__mm_cache_next;  /* slot to overwrite once full */
static std::mutex ct__mm_cache_mutex;

static bool ct__mm_cache_find(const ct__mm_key &key, cublasLtMatmulAlgo_t *algo)
{
    std::lock_guard<std::mutex> lock(ct__mm_cache_mutex);
    for (int i = 0; i < ct__mm_cache_count; i++) {
        if (ct__mm_key_eq(ct__mm_cache[i].key, key)) {
            *algo = ct__mm_cache[i].algo;
            return true;
        }
    }
    return false;
}

static void ct__mm_cache_put(const ct__mm_key &key, const cublasLtMatmulAlgo_t &algo)
{
    std::lock_guard<std::mutex> lock(ct__mm_cache_mutex);
    int slot;
    if (ct__mm_cache_count < CT__MM_CACHE_SIZE) {
        slot = ct__mm_cache_count++;
    } else {
        slot = ct__mm_cache_next;
        ct__mm_cache_next = (ct__mm_cache_next + 1) % CT__MM_CACHE_SIZE;
    }
    ct__mm_cache[slot].key = key;
    ct__mm_cache[slot].algo = algo;
}

/* Largest power of two dividing the address, capped at 256 (cuBLASLt's
 * default assumption); 256 for NULL (unused operand). */
static unsigned ct__mm_align(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (a == 0) return 256;
    unsigned al = 1;
    while (al < 256 && (a & al) == 0) al <<= 1;
    return al;
}

/* ---- one cuBLASLt call --------------------------------------------------- */

struct ct__mm_call {
    int kind;
    cublasOperation_t ta, tb;
    int m, n, k;
    const void *A; /* bf16 */
    int lda;
    const void *B; /* bf16 */
    int ldb;
    void *D; /* also C; of type d_type */
    cudaDataType_t d_type;
    int ldd;
    float beta;
    cublasLtEpilogue_t epilogue;
    const void *bias; /* bf16, m entries, or NULL */
    void *aux;        /* bf16 m x n, ld aux_ld, or NULL */
    int64_t aux_ld;
};

static void ct__mm_run(ct_cuda_t *ctx, const ct__mm_call &c, int N, int C, int OC,
                       cudaStream_t stream)
{
    cublasLtMatmulDesc_t desc;
    CT__CHECK_LT(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    int32_t ta = (int32_t)c.ta, tb = (int32_t)c.tb;
    CT__CHECK_LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CT__CHECK_LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    uint32_t epi = (uint32_t)c.epilogue;
    CT__CHECK_LT(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (c.bias) {
        const void *bias = c.bias;
        int32_t bias_type = CUDA_R_16BF;
        CT__CHECK_LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                    sizeof bias));
        CT__CHECK_LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                    &bias_type, sizeof bias_type));
    }
    if (c.aux) {
        /* EPILOGUE_AUX_DATA_TYPE stays unset (-1): the GELU input matrix then
         * has D's type, bf16, which is what we store. cuBLAS documents
         * non-default values for FP8 kernels only and says to leave it unset
         * otherwise (a value set for an unsupported combination makes
         * cublasLtMatmul return CUBLAS_STATUS_INVALID_VALUE). */
        void *aux = c.aux;
        int64_t aux_ld = c.aux_ld;
        CT__CHECK_LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                    &aux, sizeof aux));
        CT__CHECK_LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD,
                                                    &aux_ld, sizeof aux_ld));
    }

    /* Layouts as stored (column-major): op_N -> rows x cols = m x k (A),
     * k x n (B); op_T swaps them. */
    uint64_t a_rows = c.ta == CUBLAS_OP_N ? c.m : c.k, a_cols = c.ta == CUBLAS_OP_N ? c.k : c.m;
    uint64_t b_rows = c.tb == CUBLAS_OP_N ? c.k : c.n, b_cols = c.tb == CUBLAS_OP_N ? c.n : c.k;
    cublasLtMatrixLayout_t la, lb, ld;
    CT__CHECK_LT(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, a_rows, a_cols, c.lda));
    CT__CHECK_LT(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, b_rows, b_cols, c.ldb));
    CT__CHECK_LT(cublasLtMatrixLayoutCreate(&ld, c.d_type, c.m, c.n, c.ldd));

    ct__mm_key key;
    memset(&key, 0, sizeof key);
    key.lt = ctx->lt;
    key.device = ctx->device;
    key.kind = c.kind;
    key.N = N;
    key.C = C;
    key.OC = OC;
    key.epilogue = epi;
    key.align_a = ct__mm_align(c.A);
    key.align_b = ct__mm_align(c.B);
    key.align_d = ct__mm_align(c.D);
    key.align_bias = ct__mm_align(c.bias);
    key.align_aux = ct__mm_align(c.aux);

    cublasLtMatmulAlgo_t algo;
    if (!ct__mm_cache_find(key, &algo)) {
        cublasLtMatmulPreference_t pref;
        CT__CHECK_LT(cublasLtMatmulPreferenceCreate(&pref));
        uint64_t ws = ctx->lt_ws_bytes;
        CT__CHECK_LT(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
        uint32_t al_a = key.align_a, al_b = key.align_b, al_d = key.align_d;
        CT__CHECK_LT(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
        CT__CHECK_LT(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
        CT__CHECK_LT(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d));
        CT__CHECK_LT(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d));
        cublasLtMatmulHeuristicResult_t res;
        memset(&res, 0, sizeof res);
        int found = 0;
        cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(ctx->lt, desc, la, lb, ld, ld, pref, 1,
                                                           &res, &found);
        CT__CHECK_LT(cublasLtMatmulPreferenceDestroy(pref));
        if (st != CUBLAS_STATUS_SUCCESS || found == 0 || res.state != CUBLAS_STATUS_SUCCESS) {
            CT_LOG_ERROR("cuBLASLt has no algorithm for the matmul %s with N=%d C=%d OC=%d "
                         "(m=%d n=%d k=%d, epilogue %u, alignments A %u B %u D %u bias %u aux %u, "
                         "workspace %zu bytes): %s",
                         ct__mm_kind_name[c.kind], N, C, OC, c.m, c.n, c.k, epi, key.align_a,
                         key.align_b, key.align_d, key.align_bias, key.align_aux,
                         ctx->lt_ws_bytes,
                         st != CUBLAS_STATUS_SUCCESS ? cublasLtGetStatusString(st)
                                                     : "no heuristic result");
            ct__fatal(__FILE__, __LINE__, __func__, "no cuBLASLt algorithm for %s N=%d C=%d OC=%d",
                      ct__mm_kind_name[c.kind], N, C, OC);
        }
        algo = res.algo;
        ct__mm_cache_put(key, algo);
    }

    float alpha = 1.0f, beta = c.beta;
    CT__CHECK_LT(cublasLtMatmul(ctx->lt, desc, &alpha, c.A, la, c.B, lb, &beta, c.D, ld, c.D, ld,
                                &algo, ctx->lt_ws, ctx->lt_ws_bytes, stream));

    CT__CHECK_LT(cublasLtMatrixLayoutDestroy(ld));
    CT__CHECK_LT(cublasLtMatrixLayoutDestroy(lb));
    CT__CHECK_LT(cublasLtMatrixLayoutDestroy(la));
    CT__CHECK_LT(cublasLtMatmulDescDestroy(desc));
}

/* ---- bias gradient: deterministic column sums ---------------------------
 * Rows are split into nchunks chunks of rpc rows. Kernel 1: block (32, 4)
 * covers 32*VEC columns of one chunk; thread (x, y) sums rows y, y+4, ...
 * of the chunk, then the 4 partials are added in y order and written to
 * partial[chunk][col]. Kernel 2: one thread per column adds the chunk
 * partials in chunk order into dbias. The order depends only on N and OC
 * (VEC only changes which columns a thread handles, not the order). */
/* CT__DB_MIN_ROWS, CT__DB_MAX_CHUNKS and ct__mm_dbias_chunks are in sizes.h. */
#define CT__DB_ROWS_Y 4

template <int VEC>
__global__ void __launch_bounds__(32 * CT__DB_ROWS_Y)
    ct__mm_dbias_partial_kernel(float *partial, const ct_bf16_t *dout, int N, int OC, int rpc)
{
    __shared__ float sh[CT__DB_ROWS_Y][VEC][32];
    int tx = threadIdx.x, ty = threadIdx.y;
    int col0 = (blockIdx.x * 32 + tx) * VEC;
    long r0 = (long)blockIdx.y * rpc;
    long r1 = r0 + rpc < (long)N ? r0 + rpc : (long)N;
    float acc[VEC];
#pragma unroll
    for (int v = 0; v < VEC; v++) acc[v] = 0.0f;
    if (col0 < OC) {
#pragma unroll 4
        for (long r = r0 + ty; r < r1; r += CT__DB_ROWS_Y) {
            const ct_bf16_t *p = dout + r * OC + col0;
            if constexpr (VEC == 8) {
                ct__bf16x8 x = *reinterpret_cast<const ct__bf16x8 *>(p);
#pragma unroll
                for (int v = 0; v < 8; v++) acc[v] += __bfloat162float(x.v[v]);
            } else {
#pragma unroll
                for (int v = 0; v < VEC; v++) acc[v] += ct__bf(p[v]);
            }
        }
    }
#pragma unroll
    for (int v = 0; v < VEC; v++) sh[ty][v][tx] = acc[v];
    __syncthreads();
    if (ty == 0 && col0 < OC) {
#pragma unroll
        for (int v = 0; v < VEC; v++) {
            float s = 0.0f;
#pragma unroll
            for (int y = 0; y < CT__DB_ROWS_Y; y++) s += sh[y][v][tx];
            partial[(long)blockIdx.y * OC + col0 + v] = s;
        }
    }
}

__global__ void ct__mm_dbias_final_kernel(float *dbias, const float *partial, int nchunks, int OC)
{
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= OC) return;
    float s = 0.0f;
    for (int k = 0; k < nchunks; k++) s += partial[(long)k * OC + col];
    dbias[col] += s;
}

static void ct__mm_dbias(float *dbias, const ct_bf16_t *dout, float *scratch, int N, int OC,
                         cudaStream_t stream)
{
    int nchunks = ct__mm_dbias_chunks(N);
    int rpc = ct__ceil_div(N, nchunks);
    dim3 block(32, CT__DB_ROWS_Y);
    if (OC % 8 == 0 && (uintptr_t)dout % 16 == 0) {
        dim3 grid(ct__ceil_div(OC, 32 * 8), nchunks);
        ct__mm_dbias_partial_kernel<8><<<grid, block, 0, stream>>>(scratch, dout, N, OC, rpc);
    } else {
        dim3 grid(ct__ceil_div(OC, 32), nchunks);
        ct__mm_dbias_partial_kernel<1><<<grid, block, 0, stream>>>(scratch, dout, N, OC, rpc);
    }
    CT_CHECK_LAUNCH();
    ct__mm_dbias_final_kernel<<<ct__ceil_div(OC, 256), 256, 0, stream>>>(dbias, scratch, nchunks,
                                                                          OC);
    CT_CHECK_LAUNCH();
}

/* ---- public API -------------------------------------------------------- */

/* ct_cuda_matmul_scratch_floats: kernels/cpu/cuda_sizes.c */

extern "C" void ct_cuda_matmul_forward(ct_cuda_t *ctx, ct_bf16_t *out, ct_bf16_t *pre_gelu,
                                       const ct_bf16_t *inp, const ct_bf16_t *weight,
                                       const ct_bf16_t *bias, int N, int C, int OC, void *stream)
{
    CT_ASSERT(ctx && out && inp && weight);
    CT_ASSERT(N > 0 && C > 0 && OC > 0);
    ct__mm_call c;
    memset(&c, 0, sizeof c);
    c.kind = CT__MM_FWD;
    c.ta = CUBLAS_OP_T;
    c.tb = CUBLAS_OP_N;
    c.m = OC;
    c.n = N;
    c.k = C;
    c.A = weight; /* stored C x OC, ld C; op_T gives W (OC x C) */
    c.lda = C;
    c.B = inp; /* C x N, ld C */
    c.ldb = C;
    c.D = out; /* OC x N, ld OC */
    c.d_type = CUDA_R_16BF;
    c.ldd = OC;
    c.beta = 0.0f;
    c.bias = bias;
    if (pre_gelu) {
        CT_ASSERT(OC % 8 == 0); /* EPILOGUE_AUX_LD must be a multiple of 8 */
        c.aux = pre_gelu;       /* OC x N, ld OC, i.e. row-major (N, OC) */
        c.aux_ld = OC;
        c.epilogue = bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    } else {
        c.epilogue = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    }
    ct__mm_run(ctx, c, N, C, OC, ct__stream(stream));
}

extern "C" void ct_cuda_matmul_backward(ct_cuda_t *ctx, ct_bf16_t *dinp, float *dweight,
                                        float *dbias, const ct_bf16_t *dout,
                                        const ct_bf16_t *inp, const ct_bf16_t *weight,
                                        const ct_bf16_t *pre_gelu, float *scratch, int N, int C,
                                        int OC, void *stream)
{
    CT_ASSERT(ctx && dweight && dout && inp);
    CT_ASSERT(N > 0 && C > 0 && OC > 0);
    cudaStream_t s = ct__stream(stream);

    if (dbias) {
        CT_ASSERT(scratch);
        ct__mm_dbias(dbias, dout, scratch, N, OC, s);
    }

    if (dinp) {
        CT_ASSERT(weight);
        ct__mm_call c;
        memset(&c, 0, sizeof c);
        c.kind = CT__MM_DINP;
        c.ta = CUBLAS_OP_N;
        c.tb = CUBLAS_OP_N;
        c.m = C;
        c.n = N;
        c.k = OC;
        c.A = weight; /* C x OC, ld C (= W^T) */
        c.lda = C;
        c.B = dout; /* OC x N, ld OC (= dout^T) */
        c.ldb = OC;
        c.D = dinp; /* C x N, ld C (= dinp^T), overwritten */
        c.d_type = CUDA_R_16BF;
        c.ldd = C;
        c.beta = 0.0f;
        if (pre_gelu) {
            CT_ASSERT(C % 8 == 0); /* EPILOGUE_AUX_LD must be a multiple of 8 */
            c.aux = (void *)pre_gelu; /* read only by DGELU: C x N, ld C */
            c.aux_ld = C;
            c.epilogue = CUBLASLT_EPILOGUE_DGELU;
        } else {
            c.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
        }
        ct__mm_run(ctx, c, N, C, OC, s);
    }

    /* dweight (fp32) += dout^T @ inp */
    ct__mm_call c;
    memset(&c, 0, sizeof c);
    c.kind = CT__MM_DWEIGHT;
    c.ta = CUBLAS_OP_N;
    c.tb = CUBLAS_OP_T;
    c.m = C;
    c.n = OC;
    c.k = N;
    c.A = inp; /* C x N, ld C (= inp^T) */
    c.lda = C;
    c.B = dout; /* stored OC x N, ld OC; op_T gives dout (N x OC) */
    c.ldb = OC;
    c.D = dweight; /* C x OC, ld C (= dweight^T), accumulated with beta 1 */
    c.d_type = CUDA_R_32F;
    c.ldd = C;
    c.beta = 1.0f;
    c.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    ct__mm_run(ctx, c, N, C, OC, s);
}

/* The tensor-parallel partial sums: fp32 outputs, no epilogue (the same
 * bf16 x bf16 -> fp32 product as dweight), summed over the TP group before
 * they are rounded to bf16. */
extern "C" void ct_cuda_matmul_forward_f32(ct_cuda_t *ctx, float *out, const ct_bf16_t *inp,
                                           const ct_bf16_t *weight, int N, int C, int OC,
                                           void *stream)
{
    CT_ASSERT(ctx && out && inp && weight);
    CT_ASSERT(N > 0 && C > 0 && OC > 0);
    ct__mm_call c;
    memset(&c, 0, sizeof c);
    c.kind = CT__MM_FWD_F32;
    c.ta = CUBLAS_OP_T;
    c.tb = CUBLAS_OP_N;
    c.m = OC;
    c.n = N;
    c.k = C;
    c.A = weight;
    c.lda = C;
    c.B = inp;
    c.ldb = C;
    c.D = out;
    c.d_type = CUDA_R_32F;
    c.ldd = OC;
    c.beta = 0.0f;
    c.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    ct__mm_run(ctx, c, N, C, OC, ct__stream(stream));
}

/* dinp (N, C) fp32 = dout @ weight, plus dinp itself when add (beta 1). */
static void ct__mm_dinp_f32(ct_cuda_t *ctx, float *dinp, const ct_bf16_t *dout,
                            const ct_bf16_t *weight, int N, int C, int OC, int add, void *stream)
{
    CT_ASSERT(ctx && dinp && dout && weight);
    CT_ASSERT(N > 0 && C > 0 && OC > 0);
    ct__mm_call c;
    memset(&c, 0, sizeof c);
    c.kind = add ? CT__MM_DINP_F32_ADD : CT__MM_DINP_F32;
    c.ta = CUBLAS_OP_N;
    c.tb = CUBLAS_OP_N;
    c.m = C;
    c.n = N;
    c.k = OC;
    c.A = weight;
    c.lda = C;
    c.B = dout;
    c.ldb = OC;
    c.D = dinp;
    c.d_type = CUDA_R_32F;
    c.ldd = C;
    c.beta = add ? 1.0f : 0.0f;
    c.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    ct__mm_run(ctx, c, N, C, OC, ct__stream(stream));
}

extern "C" void ct_cuda_matmul_dinp_f32(ct_cuda_t *ctx, float *dinp, const ct_bf16_t *dout,
                                        const ct_bf16_t *weight, int N, int C, int OC,
                                        void *stream)
{
    ct__mm_dinp_f32(ctx, dinp, dout, weight, N, C, OC, 0, stream);
}

extern "C" void ct_cuda_matmul_dinp_f32_add(ct_cuda_t *ctx, float *dinp, const ct_bf16_t *dout,
                                            const ct_bf16_t *weight, int N, int C, int OC,
                                            void *stream)
{
    ct__mm_dinp_f32(ctx, dinp, dout, weight, N, C, OC, 1, stream);
}
