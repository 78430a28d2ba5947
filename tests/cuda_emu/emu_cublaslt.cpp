/* ctrain's CUDA emulator: cuBLASLt as a plain column-major GEMM on host
 * memory, D = epilogue(alpha * op(A) op(B) + beta * C), accumulating in
 * double, with the epilogues kernels/cuda/matmul.cu uses: BIAS (one entry
 * per row of D), GELU_AUX(_BIAS) (aux gets the pre-activation, ld AUX_LD,
 * D gets its tanh-approximation GELU) and DGELU (D = acc * gelu'(aux)).
 * It rejects what cuBLASLt documents as invalid (leading dimensions below
 * the rows, an aux ld that is not a multiple of 8, unknown attributes), so
 * a wrong mapping in matmul.cu fails here as it would on a GPU. */
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cublasLt.h"

namespace {
struct Desc {
    int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
    uint32_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    const void *bias = nullptr, *aux_in = nullptr;
    void *aux = nullptr;
    int64_t aux_ld = 0;
    int32_t bias_type = -1, aux_type = -1;
    cublasComputeType_t compute;
    cudaDataType_t scale;
};
struct Layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};

float bf_to_f(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
uint16_t f_to_bf(float f)
{
    __nv_bfloat16 b = __float2bfloat16_rn(f);
    uint16_t u;
    memcpy(&u, &b, 2);
    return u;
}
double load(const void *p, cudaDataType_t t, size_t i)
{
    if (t == CUDA_R_16BF) return bf_to_f(((const uint16_t *)p)[i]);
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    fprintf(stderr, "cuda_emu cublasLt: unsupported data type %d\n", (int)t);
    abort();
}
void store(void *p, cudaDataType_t t, size_t i, double v)
{
    if (t == CUDA_R_16BF) ((uint16_t *)p)[i] = f_to_bf((float)v);
    else ((float *)p)[i] = (float)v;
}
double gelu(double x)
{
    double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    return 0.5 * x * (1.0 + std::tanh(u));
}
double gelu_grad(double x)
{
    double u = 0.7978845608028654 * (x + 0.044715 * x * x * x), th = std::tanh(u);
    return 0.5 * (1.0 + th) +
           0.5 * x * (1.0 - th * th) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
}
cublasStatus_t invalid(const char *why)
{
    fprintf(stderr, "cuda_emu cublasLt: invalid value: %s\n", why);
    return CUBLAS_STATUS_INVALID_VALUE;
}
} // namespace

extern "C" {
cublasStatus_t ct_emu_cublasLtCreate(cublasLtHandle_t *h)
{
    static char dummy;
    *h = (cublasLtHandle_t)&dummy;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t ct_emu_cublasLtDestroy(cublasLtHandle_t h) { return CUBLAS_STATUS_SUCCESS; }
const char *ct_emu_cublasLtGetStatusString(cublasStatus_t s)
{
    return s == CUBLAS_STATUS_SUCCESS ? "success (emulated)" : "emulated cuBLASLt error";
}
cublasStatus_t ct_emu_cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t c,
                                              cudaDataType_t s)
{
    Desc *x = new Desc();
    x->compute = c;
    x->scale = s;
    *d = (cublasLtMatmulDesc_t)x;
    return c == CUBLAS_COMPUTE_32F && s == CUDA_R_32F ? CUBLAS_STATUS_SUCCESS
                                                      : invalid("compute/scale type");
}
cublasStatus_t ct_emu_cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d)
{
    delete (Desc *)d;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t ct_emu_cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d,
                                                    cublasLtMatmulDescAttributes_t a,
                                                    const void *buf, size_t n)
{
    Desc *x = (Desc *)d;
    switch (a) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
        if (n != 4) return invalid("TRANSA size");
        memcpy(&x->transa, buf, 4);
        break;
    case CUBLASLT_MATMUL_DESC_TRANSB:
        if (n != 4) return invalid("TRANSB size");
        memcpy(&x->transb, buf, 4);
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        if (n != 4) return invalid("EPILOGUE size");
        memcpy(&x->epi, buf, 4);
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        if (n != sizeof(void *)) return invalid("BIAS_POINTER size");
        memcpy(&x->bias, buf, n);
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
        if (n != 4) return invalid("BIAS_DATA_TYPE size");
        memcpy(&x->bias_type, buf, 4);
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER:
        if (n != sizeof(void *)) return invalid("AUX_POINTER size");
        memcpy(&x->aux, buf, n);
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD:
        if (n != 8) return invalid("AUX_LD size");
        memcpy(&x->aux_ld, buf, 8);
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE:
        if (n != 4) return invalid("AUX_DATA_TYPE size");
        memcpy(&x->aux_type, buf, 4);
        break;
    default: return invalid("matmul descriptor attribute not emulated");
    }
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t ct_emu_cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType t,
                                                uint64_t rows, uint64_t cols, int64_t ld)
{
    Layout *x = new Layout{t, rows, cols, ld};
    *l = (cublasLtMatrixLayout_t)x;
    if (ld < (int64_t)rows || rows == 0 || cols == 0) return invalid("layout ld < rows or empty");
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t ct_emu_cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l)
{
    delete (Layout *)l;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t ct_emu_cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p)
{
    static char dummy;
    *p = (cublasLtMatmulPreference_t)&dummy;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t ct_emu_cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p)
{
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t ct_emu_cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                          cublasLtMatmulPreferenceAttributes_t a,
                                                          const void *buf, size_t n)
{
    switch (a) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return n == 8 ? CUBLAS_STATUS_SUCCESS : invalid("workspace size");
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
        return n == 4 ? CUBLAS_STATUS_SUCCESS : invalid("alignment size");
    default: return invalid("preference attribute not emulated");
    }
}
cublasStatus_t ct_emu_cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
    cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t p, int req,
    cublasLtMatmulHeuristicResult_t *res, int *n)
{
    memset(res, 0, sizeof *res);
    res->state = CUBLAS_STATUS_SUCCESS;
    *n = req > 0 ? 1 : 0;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t ct_emu_cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op,
                                    const void *alpha_p, const void *A, cublasLtMatrixLayout_t la,
                                    const void *B, cublasLtMatrixLayout_t lb, const void *beta_p,
                                    const void *C, cublasLtMatrixLayout_t lc, void *D,
                                    cublasLtMatrixLayout_t ld_, const cublasLtMatmulAlgo_t *algo,
                                    void *ws, size_t ws_bytes, cudaStream_t s)
{
    const Desc *x = (const Desc *)op;
    const Layout *a = (const Layout *)la, *b = (const Layout *)lb, *c = (const Layout *)lc,
                 *d = (const Layout *)ld_;
    const double alpha = *(const float *)alpha_p, beta = *(const float *)beta_p;
    const bool ta = x->transa == CUBLAS_OP_T, tb = x->transb == CUBLAS_OP_T;
    const uint64_t m = d->rows, n = d->cols;
    const uint64_t am = ta ? a->cols : a->rows, k = ta ? a->rows : a->cols;
    const uint64_t bk = tb ? b->cols : b->rows, bn = tb ? b->rows : b->cols;
    if (am != m || bk != k || bn != n) return invalid("op(A) op(B) shapes do not match D");
    if (c->rows != m || c->cols != n || c->type != d->type) return invalid("C layout differs from D");
    if (a->type != CUDA_R_16BF || b->type != CUDA_R_16BF) return invalid("A/B must be bf16 here");
    if (beta != 0.0 && C != D) return invalid("beta != 0 with C != D is not used by ctrain");
    const uint32_t e = x->epi;
    const bool has_bias = e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    const bool gelu_aux = e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    const bool dgelu = e == CUBLASLT_EPILOGUE_DGELU;
    if (!(e == CUBLASLT_EPILOGUE_DEFAULT || has_bias || gelu_aux || dgelu))
        return invalid("epilogue not emulated");
    if (has_bias && (!x->bias || (x->bias_type != -1 && x->bias_type != CUDA_R_16BF)))
        return invalid("bias pointer/type");
    if ((gelu_aux || dgelu) && (!x->aux || x->aux_ld < (int64_t)m || x->aux_ld % 8 != 0))
        return invalid("aux pointer, or aux ld below the rows of D or not a multiple of 8");
    if ((gelu_aux || dgelu) && x->aux_type != -1 && x->aux_type != CUDA_R_16BF)
        return invalid("aux type");
    /* op(A)'s rows and op(B)'s columns unpacked to contiguous doubles
     * (exact for bf16), then four columns of D at a time; each element's
     * products are still summed in order p = 0..k-1, exactly (a bf16
     * product fits a double), so the result does not depend on the
     * blocking. */
    std::vector<double> ap(m * k), bp(n * k);
    for (uint64_t i = 0; i < m; i++)
        for (uint64_t p = 0; p < k; p++)
            ap[i * k + p] = load(A, a->type, ta ? p + i * a->ld : i + p * a->ld);
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t p = 0; p < k; p++)
            bp[j * k + p] = load(B, b->type, tb ? j + p * b->ld : p + j * b->ld);
    double acc[4];
    for (uint64_t j0 = 0; j0 < n; j0 += 4) {
        const uint64_t nj = n - j0 < 4 ? n - j0 : 4;
        for (uint64_t i = 0; i < m; i++) {
            const double *ar = &ap[i * k];
            if (nj == 4) {
                const double *b0 = &bp[j0 * k], *b1 = b0 + k, *b2 = b1 + k, *b3 = b2 + k;
                double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
                for (uint64_t p = 0; p < k; p++) {
                    s0 += ar[p] * b0[p];
                    s1 += ar[p] * b1[p];
                    s2 += ar[p] * b2[p];
                    s3 += ar[p] * b3[p];
                }
                acc[0] = s0, acc[1] = s1, acc[2] = s2, acc[3] = s3;
            } else {
                for (uint64_t jj = 0; jj < nj; jj++) {
                    const double *bc = &bp[(j0 + jj) * k];
                    double s0 = 0.0;
                    for (uint64_t p = 0; p < k; p++) s0 += ar[p] * bc[p];
                    acc[jj] = s0;
                }
            }
            for (uint64_t jj = 0; jj < nj; jj++) {
                const uint64_t j = j0 + jj;
                double v = alpha * acc[jj];
                if (beta != 0.0) v += beta * load(C, c->type, i + j * c->ld);
                if (has_bias) v += bf_to_f(((const uint16_t *)x->bias)[i]);
                if (gelu_aux) {
                    ((uint16_t *)x->aux)[i + j * x->aux_ld] = f_to_bf((float)v);
                    v = gelu(v);
                } else if (dgelu) {
                    v *= gelu_grad(bf_to_f(((const uint16_t *)x->aux)[i + j * x->aux_ld]));
                }
                store(D, d->type, i + j * d->ld, v);
            }
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}
}
