/* LayerNorm over the last dimension (eps 1e-5, biased variance, as
 * kernels/cpu/layernorm.c): fp32 input rows (the residual stream), bf16
 * weight/bias/output, fp32 statistics; the fused residual + LayerNorm
 * forward; and the backward.
 *
 * Forward: one warp per row (8 rows per 256-thread block, grid-stride over
 * rows). When C % 4 == 0, C <= 2048 and the pointers allow 16-byte fp32 /
 * 8-byte bf16 accesses, the row is held in registers (K float4 per lane)
 * and mean and variance are computed in two passes over them; otherwise a
 * scalar path re-reads the row from global memory (L1/L2) for each pass.
 * Backward, one kernel: one warp per row, the row held in registers, dinp
 * (+=, fp32) and its optional bf16 copy; each lane accumulates
 * dweight/dbias for its own columns over the warp's rows, the block sums
 * its warps in shared memory and writes one partial; the last block of
 * each group of 16 sums the group's partials, and the last group to finish
 * sums the group partials into dweight/dbias (+=). Every sum has a fixed
 * order, so the result is deterministic. It covers C <= 2048 with C % 4 ==
 * 0 (and aligned pointers) and C <= 1024 otherwise; wider rows take the
 * three-kernel backward (dinp; per-column partials over row chunks; their
 * sum). No mean/rstd recomputation in the backward (the saved ones are
 * used) and no fused bf16 input for the plain forward (inp is the fp32
 * residual stream). mean and rstd may be NULL in the forward (not
 * written); row_bf, when not NULL, gets the bf16 copy of each row
 * normalised (after the residual add): what the GPU model keeps of the
 * residual stream for the backward. */
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/sizes.h"

#define CT_LN_EPS 1e-5f
#define CT_LN_WARPS 8 /* rows per block in the row kernels */
#define CT_LN_COL_BLOCK 128  /* columns per block in the partial/reduce kernels */

/* one warp per row, CT_LN_WARPS rows per block, grid-stride over rows */
#define ln_row_grid(N) ct__grid_stride_blocks((long)(N), CT_LN_WARPS)

static int aligned(const void *p, unsigned a) { return (uintptr_t)p % a == 0; }

/* Two bf16 in one 32-bit word (element 0 in the low half). */
static __device__ __forceinline__ float lo_bf(unsigned w) { return __uint_as_float(w << 16); }
static __device__ __forceinline__ float hi_bf(unsigned w)
{
    return __uint_as_float(w & 0xffff0000u);
}
static __device__ __forceinline__ unsigned pack_bf(float lo, float hi)
{
    return (unsigned)ct__to_bf(lo) | ((unsigned)ct__to_bf(hi) << 16);
}

/* One element of a LayerNorm input, fp32 or bf16 (the backward takes both). */
static __device__ __forceinline__ float ld_x(const float *p) { return *p; }
static __device__ __forceinline__ float ld_x(const ct_bf16_t *p) { return ct__bf(*p); }
/* Four consecutive ones (16-byte fp32 or 8-byte bf16 aligned). */
static __device__ __forceinline__ float4 ld_x4(const float *p)
{
    return *reinterpret_cast<const float4 *>(p);
}
static __device__ __forceinline__ float4 ld_x4(const ct_bf16_t *p)
{
    uint2 t = *reinterpret_cast<const uint2 *>(p);
    return make_float4(lo_bf(t.x), hi_bf(t.x), lo_bf(t.y), hi_bf(t.y));
}

/* ---- forward ------------------------------------------------------------ */

/* Register path: C % 4 == 0, C / 4 <= 32 * K. With RES, the row is
 * res_in + x, written to res_out (which may equal res_in: each float4 is
 * read and written by the same lane) before it is normalised. */
template <int K, bool RES>
static __global__ void __launch_bounds__(32 * CT_LN_WARPS)
    ct__ln_fwd_vec_kernel(ct_bf16_t *__restrict__ out, float *__restrict__ mean,
                          float *__restrict__ rstd, ct_bf16_t *__restrict__ row_bf,
                          float *res_out, const float *inp,
                          const ct_bf16_t *__restrict__ x, const ct_bf16_t *__restrict__ weight,
                          const ct_bf16_t *__restrict__ bias, int N, int C)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int C4 = C / 4;
    const uint2 *w4 = reinterpret_cast<const uint2 *>(weight);
    const uint2 *b4 = reinterpret_cast<const uint2 *>(bias);
    for (long row = (long)blockIdx.x * CT_LN_WARPS + warp; row < N;
         row += (long)gridDim.x * CT_LN_WARPS) {
        const float4 *in4 = reinterpret_cast<const float4 *>(inp + row * C);
        float4 v[K];
        float sum = 0.0f;
#pragma unroll
        for (int k = 0; k < K; k++) {
            int j = k * 32 + lane;
            if (j < C4) {
                float4 a = in4[j];
                if (RES) {
                    uint2 y = reinterpret_cast<const uint2 *>(x + row * C)[j];
                    a.x += lo_bf(y.x);
                    a.y += hi_bf(y.x);
                    a.z += lo_bf(y.y);
                    a.w += hi_bf(y.y);
                    reinterpret_cast<float4 *>(res_out + row * C)[j] = a;
                }
                if (row_bf) {
                    uint2 r;
                    r.x = pack_bf(a.x, a.y);
                    r.y = pack_bf(a.z, a.w);
                    reinterpret_cast<uint2 *>(row_bf + row * C)[j] = r;
                }
                v[k] = a;
                sum += (a.x + a.y) + (a.z + a.w);
            } else {
                v[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
        }
        float m = ct__warp_sum(sum) / (float)C;
        float var = 0.0f;
#pragma unroll
        for (int k = 0; k < K; k++) {
            int j = k * 32 + lane;
            if (j < C4) {
                float d0 = v[k].x - m, d1 = v[k].y - m, d2 = v[k].z - m, d3 = v[k].w - m;
                var += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
            }
        }
        var = ct__warp_sum(var) / (float)C;
        float s = 1.0f / sqrtf(var + CT_LN_EPS);
        uint2 *o4 = reinterpret_cast<uint2 *>(out + row * C);
#pragma unroll
        for (int k = 0; k < K; k++) {
            int j = k * 32 + lane;
            if (j < C4) {
                uint2 w = w4[j], b = b4[j], o;
                o.x = pack_bf((v[k].x - m) * s * lo_bf(w.x) + lo_bf(b.x),
                              (v[k].y - m) * s * hi_bf(w.x) + hi_bf(b.x));
                o.y = pack_bf((v[k].z - m) * s * lo_bf(w.y) + lo_bf(b.y),
                              (v[k].w - m) * s * hi_bf(w.y) + hi_bf(b.y));
                o4[j] = o;
            }
        }
        if (lane == 0) {
            if (mean) mean[row] = m;
            if (rstd) rstd[row] = s;
        }
    }
}

/* Scalar path, any C: three passes over the row in global memory. With RES
 * the first pass writes res_out and the later passes read it back; every
 * element is handled by the same lane in all passes, so no sync is needed. */
template <bool RES>
static __global__ void __launch_bounds__(32 * CT_LN_WARPS)
    ct__ln_fwd_scalar_kernel(ct_bf16_t *__restrict__ out, float *__restrict__ mean,
                             float *__restrict__ rstd, ct_bf16_t *__restrict__ row_bf,
                             float *res_out, const float *inp,
                             const ct_bf16_t *__restrict__ x,
                             const ct_bf16_t *__restrict__ weight,
                             const ct_bf16_t *__restrict__ bias, int N, int C)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (long row = (long)blockIdx.x * CT_LN_WARPS + warp; row < N;
         row += (long)gridDim.x * CT_LN_WARPS) {
        const float *src = inp + row * C;
        float sum = 0.0f;
        for (int c = lane; c < C; c += 32) {
            float a = src[c];
            if (RES) {
                a += ct__bf(x[row * C + c]);
                res_out[row * C + c] = a;
            }
            if (row_bf) row_bf[row * C + c] = ct__to_bf(a);
            sum += a;
        }
        if (RES) src = res_out + row * C;
        float m = ct__warp_sum(sum) / (float)C;
        float var = 0.0f;
        for (int c = lane; c < C; c += 32) {
            float d = src[c] - m;
            var += d * d;
        }
        var = ct__warp_sum(var) / (float)C;
        float s = 1.0f / sqrtf(var + CT_LN_EPS);
        ct_bf16_t *o = out + row * C;
        for (int c = lane; c < C; c += 32)
            o[c] = ct__to_bf((src[c] - m) * s * ct__bf(weight[c]) + ct__bf(bias[c]));
        if (lane == 0) {
            if (mean) mean[row] = m;
            if (rstd) rstd[row] = s;
        }
    }
}

template <bool RES>
static void ln_fwd_launch(ct_bf16_t *out, float *mean, float *rstd, ct_bf16_t *row_bf,
                          float *res_out, const float *inp, const ct_bf16_t *x, const ct_bf16_t *weight,
                          const ct_bf16_t *bias, int N, int C, cudaStream_t s)
{
    int vec = C % 4 == 0 && aligned(inp, 16) && aligned(out, 8) && aligned(weight, 8) &&
              aligned(bias, 8) && (!RES || (aligned(res_out, 16) && aligned(x, 8))) &&
              (!row_bf || aligned(row_bf, 8));
    int K = (C / 4 + 31) / 32; /* float4 per lane */
    dim3 grid(ln_row_grid(N)), block(32 * CT_LN_WARPS);
#define CT__LN_FWD_VEC(KK)                                                                    \
    ct__ln_fwd_vec_kernel<KK, RES><<<grid, block, 0, s>>>(out, mean, rstd, row_bf, res_out,     \
                                                          inp, x, weight, bias, N, C)
    if (vec && K <= 1) CT__LN_FWD_VEC(1);
    else if (vec && K <= 2) CT__LN_FWD_VEC(2);
    else if (vec && K <= 4) CT__LN_FWD_VEC(4);
    else if (vec && K <= 6) CT__LN_FWD_VEC(6);
    else if (vec && K <= 8) CT__LN_FWD_VEC(8);
    else if (vec && K <= 12) CT__LN_FWD_VEC(12);
    else if (vec && K <= 16) CT__LN_FWD_VEC(16);
    else
        ct__ln_fwd_scalar_kernel<RES><<<grid, block, 0, s>>>(out, mean, rstd, row_bf, res_out,
                                                             inp, x, weight, bias, N, C);
#undef CT__LN_FWD_VEC
    CT_CHECK_LAUNCH();
}

void ct_cuda_layernorm_forward(ct_bf16_t *out, float *mean, float *rstd, ct_bf16_t *row_bf,
                               const float *inp, const ct_bf16_t *weight, const ct_bf16_t *bias,
                               int N, int C, void *stream)
{
    if (N <= 0 || C <= 0) return;
    ln_fwd_launch<false>(out, mean, rstd, row_bf, NULL, inp, NULL, weight, bias, N, C,
                         ct__stream(stream));
}

void ct_cuda_residual_layernorm_forward(float *res_out, ct_bf16_t *out, float *mean,
                                        float *rstd, ct_bf16_t *row_bf, const float *res_in,
                                        const ct_bf16_t *x, const ct_bf16_t *weight,
                                        const ct_bf16_t *bias, int N, int C, void *stream)
{
    if (N <= 0 || C <= 0) return;
    ln_fwd_launch<true>(out, mean, rstd, row_bf, res_out, res_in, x, weight, bias, N, C,
                        ct__stream(stream));
}

/* ---- backward: dinp ----------------------------------------------------- */

/* One warp per row: dnorm = dout * weight, its mean and the mean of
 * dnorm * norm, then dinp += (dnorm - mean1 - norm * mean2) * rstd and the
 * optional bf16 copy of the updated dinp. VEC: C % 4 == 0, inp and dinp
 * 16-byte, dout, weight and dinp_bf16 8-byte aligned. */
template <bool VEC, typename TI>
static __global__ void __launch_bounds__(32 * CT_LN_WARPS)
    ct__ln_bwd_dinp_kernel(float *__restrict__ dinp, ct_bf16_t *__restrict__ dinp_bf16,
                           const ct_bf16_t *__restrict__ dout, const TI *__restrict__ inp,
                           const ct_bf16_t *__restrict__ weight, const float *__restrict__ mean,
                           const float *__restrict__ rstd, int N, int C)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (long row = (long)blockIdx.x * CT_LN_WARPS + warp; row < N;
         row += (long)gridDim.x * CT_LN_WARPS) {
        float m = mean[row], s = rstd[row];
        float a1 = 0.0f, a2 = 0.0f;
        if (VEC) {
            int C4 = C / 4;
            const TI *x4 = inp + row * C;
            const uint2 *d4 = reinterpret_cast<const uint2 *>(dout + row * C);
            const uint2 *w4 = reinterpret_cast<const uint2 *>(weight);
            for (int j = lane; j < C4; j += 32) {
                float4 xv = ld_x4(x4 + 4 * j);
                uint2 dv = d4[j], wv = w4[j];
                float n0 = lo_bf(wv.x) * lo_bf(dv.x), n1 = hi_bf(wv.x) * hi_bf(dv.x);
                float n2 = lo_bf(wv.y) * lo_bf(dv.y), n3 = hi_bf(wv.y) * hi_bf(dv.y);
                a1 += (n0 + n1) + (n2 + n3);
                a2 += (n0 * ((xv.x - m) * s) + n1 * ((xv.y - m) * s)) +
                      (n2 * ((xv.z - m) * s) + n3 * ((xv.w - m) * s));
            }
        } else {
            const TI *xr = inp + row * C;
            const ct_bf16_t *dr = dout + row * C;
            for (int c = lane; c < C; c += 32) {
                float dn = ct__bf(weight[c]) * ct__bf(dr[c]);
                a1 += dn;
                a2 += dn * ((ld_x(xr + c) - m) * s);
            }
        }
        a1 = ct__warp_sum(a1) / (float)C;
        a2 = ct__warp_sum(a2) / (float)C;
        if (VEC) {
            int C4 = C / 4;
            const TI *x4 = inp + row * C;
            const uint2 *d4 = reinterpret_cast<const uint2 *>(dout + row * C);
            const uint2 *w4 = reinterpret_cast<const uint2 *>(weight);
            float4 *g4 = reinterpret_cast<float4 *>(dinp + row * C);
            uint2 *gb4 = dinp_bf16 ? reinterpret_cast<uint2 *>(dinp_bf16 + row * C) : NULL;
            for (int j = lane; j < C4; j += 32) {
                float4 xv = ld_x4(x4 + 4 * j), g = g4[j];
                uint2 dv = d4[j], wv = w4[j];
                g.x += (lo_bf(wv.x) * lo_bf(dv.x) - a1 - ((xv.x - m) * s) * a2) * s;
                g.y += (hi_bf(wv.x) * hi_bf(dv.x) - a1 - ((xv.y - m) * s) * a2) * s;
                g.z += (lo_bf(wv.y) * lo_bf(dv.y) - a1 - ((xv.z - m) * s) * a2) * s;
                g.w += (hi_bf(wv.y) * hi_bf(dv.y) - a1 - ((xv.w - m) * s) * a2) * s;
                g4[j] = g;
                if (gb4) {
                    uint2 gb;
                    gb.x = pack_bf(g.x, g.y);
                    gb.y = pack_bf(g.z, g.w);
                    gb4[j] = gb;
                }
            }
        } else {
            const TI *xr = inp + row * C;
            const ct_bf16_t *dr = dout + row * C;
            float *gr = dinp + row * C;
            ct_bf16_t *gbr = dinp_bf16 ? dinp_bf16 + row * C : NULL;
            for (int c = lane; c < C; c += 32) {
                float norm = (ld_x(xr + c) - m) * s;
                float g = gr[c] + (ct__bf(weight[c]) * ct__bf(dr[c]) - a1 - norm * a2) * s;
                gr[c] = g;
                if (gbr) gbr[c] = ct__to_bf(g);
            }
        }
    }
}

/* ---- backward: dweight, dbias ------------------------------------------
 * Rows are split into R = ceil(N / rpc) chunks of rpc = ceil(N / 256) rows
 * (R <= min(N, 256)). scratch layout: [R][C] dweight partials, then [R][C]
 * dbias partials. */

static void ln_chunks(int N, int *rpc, int *R)
{
    *rpc = (N + CT_LN_MAX_CHUNKS - 1) / CT_LN_MAX_CHUNKS;
    *R = (N + *rpc - 1) / *rpc;
}

/* grid (ceil(C / 128), R): one thread per column, summing its chunk's rows
 * in order. No barriers, so out-of-range threads just return. */
template <typename TI>
static __global__ void ct__ln_bwd_partial_kernel(float *__restrict__ scratch,
                                                 const ct_bf16_t *__restrict__ dout,
                                                 const TI *__restrict__ inp,
                                                 const float *__restrict__ mean,
                                                 const float *__restrict__ rstd, int N, int C,
                                                 int rpc, int R)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int chunk = blockIdx.y;
    if (c >= C) return;
    int r0 = chunk * rpc;
    int r1 = r0 + rpc < N ? r0 + rpc : N;
    float dw = 0.0f, db = 0.0f;
#pragma unroll 4
    for (int r = r0; r < r1; r++) {
        long i = (long)r * C + c;
        float d = ct__bf(dout[i]);
        dw += (ld_x(inp + i) - mean[r]) * rstd[r] * d;
        db += d;
    }
    scratch[(long)chunk * C + c] = dw;
    scratch[((long)R + chunk) * C + c] = db;
}

/* One thread per column: sums the R partials in chunk order, then +=. */
static __global__ void ct__ln_bwd_reduce_kernel(float *__restrict__ dweight,
                                                float *__restrict__ dbias,
                                                const float *__restrict__ scratch, int C, int R)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float dw = 0.0f, db = 0.0f;
    for (int k = 0; k < R; k++) {
        dw += scratch[(long)k * C + c];
        db += scratch[((long)R + k) * C + c];
    }
    dweight[c] += dw;
    dbias[c] += db;
}

/* ---- backward, one kernel --------------------------------------------- */

/* V consecutive columns: fp32 / bf16 loads and stores of 16 / 8 bytes when
 * V == 4, scalar when V == 1. */
template <int V> static __device__ __forceinline__ void ld_f32(float (&o)[V], const float *p)
{
    if constexpr (V == 4) {
        float4 t = *reinterpret_cast<const float4 *>(p);
        o[0] = t.x, o[1] = t.y, o[2] = t.z, o[3] = t.w;
    } else {
        o[0] = *p;
    }
}
template <int V> static __device__ __forceinline__ void ld_bf16(float (&o)[V], const ct_bf16_t *p)
{
    if constexpr (V == 4) {
        uint2 t = *reinterpret_cast<const uint2 *>(p);
        o[0] = lo_bf(t.x), o[1] = hi_bf(t.x), o[2] = lo_bf(t.y), o[3] = hi_bf(t.y);
    } else {
        o[0] = ct__bf(*p);
    }
}
template <int V> static __device__ __forceinline__ void st_f32(float *p, const float (&o)[V])
{
    if constexpr (V == 4)
        *reinterpret_cast<float4 *>(p) = make_float4(o[0], o[1], o[2], o[3]);
    else
        *p = o[0];
}
template <int V> static __device__ __forceinline__ void st_bf16(ct_bf16_t *p, const float (&o)[V])
{
    if constexpr (V == 4) {
        uint2 t;
        t.x = pack_bf(o[0], o[1]);
        t.y = pack_bf(o[2], o[3]);
        *reinterpret_cast<uint2 *>(p) = t;
    } else {
        *p = ct__to_bf(o[0]);
    }
}

/* Sums n (2, C) partials of stride 2C in order into dst[i] for i < 2C
 * (add == 0) or into dweight/dbias (+=, add != 0). Reads through L2: the
 * partials were written by other blocks. */
static __device__ void ln_sum_partials(float *dst, float *dweight, float *dbias,
                                       const float *src, int n, int C, int add)
{
    const long C2 = 2L * C;
    for (int i = threadIdx.x; i < C2; i += blockDim.x) {
        float acc = 0.0f;
        for (int k = 0; k < n; k++) acc += __ldcg(src + k * C2 + i);
        if (!add) dst[i] = acc;
        else if (i < C) dweight[i] += acc;
        else dbias[i - C] += acc;
    }
}

/* Column groups of V columns, group j = k * 32 + lane for k < K (G = C / V
 * groups); grid ct__ln_bwd_blocks(N), block 32 * CT_LN_BWD_WARPS. scratch:
 * sizes.h; its counters are zero on entry. */
template <int V, int K, typename TI>
static __global__ void __launch_bounds__(32 * CT_LN_BWD_WARPS)
    ct__ln_bwd_kernel(float *__restrict__ dinp, ct_bf16_t *__restrict__ dinp_bf16,
                      float *__restrict__ dweight, float *__restrict__ dbias,
                      const ct_bf16_t *__restrict__ dout, const TI *__restrict__ inp,
                      const ct_bf16_t *__restrict__ weight, const float *__restrict__ mean,
                      const float *__restrict__ rstd, float *scratch, int N, int C)
{
    __shared__ float sh[2 * 32 * K * V]; /* the block's dweight, dbias */
    __shared__ int last;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, G = C / V;
    float dw[K][V], db[K][V];
#pragma unroll
    for (int k = 0; k < K; k++)
#pragma unroll
        for (int v = 0; v < V; v++) dw[k][v] = 0.0f, db[k][v] = 0.0f;

    for (long row = (long)blockIdx.x * CT_LN_BWD_WARPS + warp; row < N;
         row += (long)gridDim.x * CT_LN_BWD_WARPS) {
        const float m = mean[row], s = rstd[row];
        float nrm[K][V], d[K][V];
        float a1 = 0.0f, a2 = 0.0f;
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int j = k * 32 + lane;
            if (j < G) {
                float w[V];
                if constexpr (V == 4) {
                    float4 t = ld_x4(inp + row * C + j * 4);
                    nrm[k][0] = t.x, nrm[k][1] = t.y, nrm[k][2] = t.z, nrm[k][3] = t.w;
                } else {
                    nrm[k][0] = ld_x(inp + row * C + j);
                }
                ld_bf16<V>(d[k], dout + row * C + j * V);
                ld_bf16<V>(w, weight + j * V);
#pragma unroll
                for (int v = 0; v < V; v++) {
                    float n = (nrm[k][v] - m) * s, dn = w[v] * d[k][v];
                    nrm[k][v] = n;
                    a1 += dn;
                    a2 += dn * n;
                    dw[k][v] += n * d[k][v];
                    db[k][v] += d[k][v];
                }
            }
        }
        a1 = ct__warp_sum(a1) / (float)C;
        a2 = ct__warp_sum(a2) / (float)C;
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int j = k * 32 + lane;
            if (j < G) {
                float w[V], g[V];
                ld_bf16<V>(w, weight + j * V);
                ld_f32<V>(g, dinp + row * C + j * V);
#pragma unroll
                for (int v = 0; v < V; v++) g[v] += (w[v] * d[k][v] - a1 - nrm[k][v] * a2) * s;
                st_f32<V>(dinp + row * C + j * V, g);
                if (dinp_bf16) st_bf16<V>(dinp_bf16 + row * C + j * V, g);
            }
        }
    }

    /* The block's partial: its warps in order. */
    for (int w = 0; w < CT_LN_BWD_WARPS; w++) {
        if (warp == w) {
#pragma unroll
            for (int k = 0; k < K; k++) {
                const int j = k * 32 + lane;
                if (j < G) {
#pragma unroll
                    for (int v = 0; v < V; v++) {
                        const int c = j * V + v;
                        sh[c] = w ? sh[c] + dw[k][v] : dw[k][v];
                        sh[C + c] = w ? sh[C + c] + db[k][v] : db[k][v];
                    }
                }
            }
        }
        __syncthreads();
    }
    const long C2 = 2L * C;
    const int nblk = gridDim.x, ngrp = (nblk + CT_LN_BWD_GROUP - 1) / CT_LN_BWD_GROUP;
    unsigned *count = reinterpret_cast<unsigned *>(scratch);
    float *part = scratch + CT_LN_BWD_HDR, *gpart = part + nblk * C2;
    for (int i = threadIdx.x; i < C2; i += blockDim.x) part[blockIdx.x * C2 + i] = sh[i];

    /* The last block of its group to get here sums the group's partials. */
    const int g = blockIdx.x / CT_LN_BWD_GROUP, g0 = g * CT_LN_BWD_GROUP;
    const int gn = nblk - g0 < CT_LN_BWD_GROUP ? nblk - g0 : CT_LN_BWD_GROUP;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&count[1 + g], 1u) == (unsigned)gn - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    ln_sum_partials(gpart + g * C2, NULL, NULL, part + g0 * C2, gn, C, 0);

    /* The last group to get here sums the group partials into dweight and
     * dbias. */
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&count[0], 1u) == (unsigned)ngrp - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    ln_sum_partials(NULL, dweight, dbias, gpart, ngrp, C, 1);
}

/* ct_cuda_layernorm_scratch_floats: kernels/cpu/cuda_sizes.c */

template <typename TI>
static void ln_bwd_launch(float *dinp, ct_bf16_t *dinp_bf16, float *dweight, float *dbias,
                                const ct_bf16_t *dout, const TI *inp,
                                const ct_bf16_t *weight, const float *mean, const float *rstd,
                                float *scratch, int N, int C, void *stream)
{
    if (N <= 0 || C <= 0) return;
    cudaStream_t s = ct__stream(stream);
    int vec = C % 4 == 0 && aligned(dinp, 16) && aligned(inp, 4 * sizeof(TI)) && aligned(dout, 8) &&
              aligned(weight, 8) && (dinp_bf16 == NULL || aligned(dinp_bf16, 8));
    const int nblk = ct__ln_bwd_blocks(N);
    const int K4 = (C / 4 + 31) / 32, K1 = (C + 31) / 32; /* column groups per lane */
    if ((vec && K4 <= 16) || K1 <= 32) {
        CT_CHECK_CUDA(cudaMemsetAsync(scratch, 0, (1 + ct__ln_bwd_groups(nblk)) * sizeof(unsigned),
                                      s));
        dim3 bgrid(nblk), bblock(32 * CT_LN_BWD_WARPS);
#define CT__LN_BWD(VV, KK)                                                                        \
    ct__ln_bwd_kernel<VV, KK, TI><<<bgrid, bblock, 0, s>>>(dinp, dinp_bf16, dweight, dbias, dout, inp, \
                                                        weight, mean, rstd, scratch, N, C)
        if (vec && K4 <= 1) CT__LN_BWD(4, 1);
        else if (vec && K4 <= 2) CT__LN_BWD(4, 2);
        else if (vec && K4 <= 4) CT__LN_BWD(4, 4);
        else if (vec && K4 <= 6) CT__LN_BWD(4, 6);
        else if (vec && K4 <= 8) CT__LN_BWD(4, 8);
        else if (vec && K4 <= 12) CT__LN_BWD(4, 12);
        else if (vec) CT__LN_BWD(4, 16);
        else if (K1 <= 2) CT__LN_BWD(1, 2);
        else if (K1 <= 4) CT__LN_BWD(1, 4);
        else if (K1 <= 8) CT__LN_BWD(1, 8);
        else if (K1 <= 16) CT__LN_BWD(1, 16);
        else CT__LN_BWD(1, 32);
#undef CT__LN_BWD
        CT_CHECK_LAUNCH();
        return;
    }

    /* Wide rows: three kernels. */
    dim3 grid(ln_row_grid(N)), block(32 * CT_LN_WARPS);
    if (vec)
        ct__ln_bwd_dinp_kernel<true, TI><<<grid, block, 0, s>>>(dinp, dinp_bf16, dout, inp, weight,
                                                            mean, rstd, N, C);
    else
        ct__ln_bwd_dinp_kernel<false, TI><<<grid, block, 0, s>>>(dinp, dinp_bf16, dout, inp, weight,
                                                             mean, rstd, N, C);
    CT_CHECK_LAUNCH();

    int rpc, R;
    ln_chunks(N, &rpc, &R);
    dim3 pgrid((C + CT_LN_COL_BLOCK - 1) / CT_LN_COL_BLOCK, R);
    ct__ln_bwd_partial_kernel<TI><<<pgrid, CT_LN_COL_BLOCK, 0, s>>>(scratch, dout, inp, mean, rstd,
                                                                N, C, rpc, R);
    CT_CHECK_LAUNCH();
    ct__ln_bwd_reduce_kernel<<<(C + CT_LN_COL_BLOCK - 1) / CT_LN_COL_BLOCK, CT_LN_COL_BLOCK, 0,
                               s>>>(dweight, dbias, scratch, C, R);
    CT_CHECK_LAUNCH();
}

void ct_cuda_layernorm_backward(float *dinp, ct_bf16_t *dinp_bf16, float *dweight, float *dbias,
                                const ct_bf16_t *dout, const float *inp,
                                const ct_bf16_t *weight, const float *mean, const float *rstd,
                                float *scratch, int N, int C, void *stream)
{
    ln_bwd_launch(dinp, dinp_bf16, dweight, dbias, dout, inp, weight, mean, rstd, scratch, N, C,
                  stream);
}

void ct_cuda_layernorm_backward_bf16in(float *dinp, ct_bf16_t *dinp_bf16, float *dweight,
                                       float *dbias, const ct_bf16_t *dout,
                                       const ct_bf16_t *inp, const ct_bf16_t *weight,
                                       const float *mean, const float *rstd, float *scratch,
                                       int N, int C, void *stream)
{
    ln_bwd_launch(dinp, dinp_bf16, dweight, dbias, dout, inp, weight, mean, rstd, scratch, N, C,
                  stream);
}
