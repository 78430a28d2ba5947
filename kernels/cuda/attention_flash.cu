/* Causal self-attention on bf16 tensor cores, FlashAttention style: the
 * plain CUDA path's fast kernels (attention.cu dispatches to them for the
 * head sizes they support and keeps its one-warp-per-row kernels as the
 * reference and the fallback).
 *
 * Same contract as kernels/cpu/attention.c and the per-row kernels: q, k, v
 * heads at [0,C), [C,2C), [2C,3C) of each (B,T,3C) token row, scale
 * 1/sqrt(HS), stats = each query row's log-sum-exp of the scaled scores.
 * The same kernels serve grouped-query attention (attention_gqa.cu's
 * contract: separate q, k, v, a key/value head read by a group of query
 * heads): a ct__fa_layout says where each head's rows are. The dk/dv
 * kernel then runs per key/value head and walks every query head of its
 * group, so a shared head's gradient is one fp32 sum, rounded once, as
 * the per-row kernels do.
 *
 * Work split. A block is 4 warps; a warp owns 16 rows. The forward and the
 * dq kernel take a tile of 64 query rows and walk the key tiles up to the
 * diagonal (blocks past the diagonal are never loaded); the dk/dv kernel
 * takes a tile of 64 key rows and walks the query tiles from the diagonal
 * down, for each query head that reads the key head. Matrix products are
 * WMMA bf16 m16n16k16 with fp32 accumulators; K/V (or Q/dO) tiles are
 * staged in shared memory, padded by 16 bytes a row.
 * - forward: S = Q K^T per key tile, an online softmax in fp32 (running max
 *   and sum per row, log2 domain), P rounded to bf16, O += P V; O and the
 *   row state are rescaled per tile. stats = max + log(sum).
 * - backward: dq kernel (also computes D_i = dO_i . O_i into the scratch),
 *   then dk/dv kernel; each recomputes P = exp(scale S - lse) from the
 *   saved stats: dS = P (dP - D), dP = dO V^T, dq = scale dS K, dv = P^T dO,
 *   dk = scale dS^T Q. Every output element is written once, by one warp,
 *   in a fixed order: deterministic, no atomics, no fp32 dq buffer, at the
 *   price of computing S and dP twice (7 tile products per tile instead of
 *   5).
 *
 * Fragments are touched only through the WMMA API and element-wise work
 * between fragments of one type, so nothing depends on the element-to-lane
 * mapping (which the CUDA documentation leaves unspecified, and which the
 * emulator in tests/cuda_emu scrambles). Row-wise work (the softmax max and
 * sum, rescaling by a per-row factor, the bf16 conversion of P and dS) goes
 * through shared memory: a per-row (or per-column) value becomes a
 * fragment by loading a 16x16 tile that repeats it along the row (column),
 * and the causal mask of a diagonal 16x16 block is a fragment of 0 / -inf.
 *
 * Needs head sizes of ct_cuda_attention_flash_supports (multiples of 16 up
 * to 128 that are instantiated below) and 16-byte aligned tensors. Leaves
 * out dropout, non-causal masks, cp.async / TMA pipelining and the
 * Hopper-only wgmma instructions. */
#include <math.h>
#include <mma.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/sizes.h"

namespace wmma = nvcuda::wmma;

#define CT__FA_WARPS 4
#define CT__FA_THREADS (32 * CT__FA_WARPS)
#define CT__FA_ROWS (16 * CT__FA_WARPS) /* query (fwd, dq) or key (dk/dv) rows per block */
#define CT__FA_LOG2E 1.4426950408889634f
#define CT__FA_LN2 0.6931471805599453f

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> ct__fa_a;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> ct__fa_brow;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> ct__fa_bcol;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> ct__fa_acc;

/* Tile sizes for head size HS. KT: keys per tile of the forward and dq
 * kernels (64, or 32 from HS 80 up so that static shared memory stays under
 * 48 KiB); QT: queries per tile of the dk/dv kernel. LDH: the bf16 row
 * stride of a staged head tile. */
template <int HS> struct ct__fa_cfg {
    static_assert(HS % 16 == 0 && HS >= 16 && HS <= 128, "head size: a multiple of 16 up to 128");
    static constexpr int KT = HS <= 64 ? 64 : 32;
    static constexpr int QT = 32;
    static constexpr int LDH = HS + 8;
    static constexpr int NK = HS / 16; /* 16-wide slices of a head */
};

/* Rows [t0, t0 + R) of one head (HS columns at src + t * ld) into dst (row
 * stride HS + 8), 16 bytes per thread and step; rows from T on are zeros.
 * All threads of the block call it. */
template <int HS, int R>
static __device__ __forceinline__ void ct__fa_stage(__nv_bfloat16 *dst, const ct_bf16_t *src,
                                                    long ld, int t0, int T)
{
    constexpr int CH = HS / 8;
    for (int i = threadIdx.x; i < R * CH; i += CT__FA_THREADS) {
        int r = i / CH, c = (i % CH) * 8;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (t0 + r < T) v = *reinterpret_cast<const uint4 *>(src + (long)(t0 + r) * ld + c);
        *reinterpret_cast<uint4 *>(dst + r * (HS + 8) + c) = v;
    }
}

/* The warp's 16 x (16 n) fp32 tile sw (row stride lds) to bf16 in pw (row
 * stride ldp), columns [c0, c1): lanes 2r and 2r+1 share row r, each taking
 * every other pair of columns. */
static __device__ __forceinline__ void ct__fa_to_bf16(__nv_bfloat16 *pw, int ldp, const float *sw,
                                                      int lds, int c0, int c1)
{
    int lane = threadIdx.x % 32, r = lane >> 1, half = lane & 1;
    for (int c = c0 + 2 * half; c < c1; c += 4) {
        float2 v = *reinterpret_cast<const float2 *>(sw + r * lds + c);
        *reinterpret_cast<__nv_bfloat162 *>(pw + r * ldp + c) = __floats2bfloat162_rn(v.x, v.y);
    }
}

/* A fragment whose row r holds v_r (the value of lanes 2r and 2r+1), through
 * the warp's scratch tile sw (row stride lds; columns 0..15 overwritten).
 * Starts and ends with __syncwarp so sw may be in use around it. */
static __device__ __forceinline__ void ct__fa_row_frag(ct__fa_acc &f, float *sw, int lds, float v)
{
    int lane = threadIdx.x % 32, r = lane >> 1, half = lane & 1;
    __syncwarp();
#pragma unroll
    for (int c = 0; c < 8; c++) sw[r * lds + 8 * half + c] = v;
    __syncwarp();
    wmma::load_matrix_sync(f, sw, lds, wmma::mem_row_major);
    __syncwarp();
}

/* Eight values times `mul` to 8 consecutive outputs: bf16 (one 16-byte
 * store) or fp32 (two). */
static __device__ __forceinline__ void ct__fa_put8(ct_bf16_t *o, const float *src, float mul)
{
    ct__bf16x8 p;
#pragma unroll
    for (int e = 0; e < 8; e++) p.v[e] = __float2bfloat16_rn(src[e] * mul);
    *reinterpret_cast<ct__bf16x8 *>(o) = p;
}
static __device__ __forceinline__ void ct__fa_put8(float *o, const float *src, float mul)
{
    reinterpret_cast<float4 *>(o)[0] = make_float4(src[0] * mul, src[1] * mul, src[2] * mul,
                                                   src[3] * mul);
    reinterpret_cast<float4 *>(o)[1] = make_float4(src[4] * mul, src[5] * mul, src[6] * mul,
                                                   src[7] * mul);
}

/* The warp's accumulators f[0..n) (16 x 16n, fp32) times `mul` into rows
 * [row0, row0 + 16) of dst (bf16 or fp32, row stride ld, rows >= T
 * skipped), through sw (row stride lds, 16 x chunk columns; chunk a
 * multiple of 16). */
template <int N, typename OutT>
static __device__ __forceinline__ void ct__fa_store_rows(OutT *dst, long ld, int row0, int T,
                                                         const ct__fa_acc (&f)[N], float mul,
                                                         float *sw, int lds, int chunk)
{
    int lane = threadIdx.x % 32, r = lane >> 1, half = lane & 1;
    for (int d0 = 0; d0 < N; d0 += chunk / 16) {
        int nd = N - d0 < chunk / 16 ? N - d0 : chunk / 16;
        __syncwarp();
        for (int d = 0; d < nd; d++)
            wmma::store_matrix_sync(sw + 16 * d, f[d0 + d], lds, wmma::mem_row_major);
        __syncwarp();
        if (row0 + r < T) {
            OutT *o = dst + (long)(row0 + r) * ld + 16 * d0;
            for (int c = 8 * half; c < 16 * nd; c += 16) ct__fa_put8(o + c, sw + r * lds + c, mul);
        }
    }
    __syncwarp();
}

/* Where the heads are. Row t of batch b of query head h starts at
 * q + (b T + t) ldq + h HS; of key/value head g at k (v) + (b T + t) ldkv
 * + g HS; out and dout rows have stride ldo, stats and D are (B, NH, T).
 * Query head h reads key/value head (q_head0 + h) / group: GPT-2's packed
 * qkv is q = qkv, k = qkv + C, v = qkv + 2C, ldq = ldkv = 3C, group 1;
 * a Llama's separate q (NH HS wide) and k, v (NKV HS wide) share a key/value
 * head among `group` query heads, never copied. */
struct ct__fa_layout {
    const ct_bf16_t *q, *k, *v;
    long ldq, ldkv, ldo;
    int T, NH, NKV, group, q_head0;
};

/* ---- forward ------------------------------------------------------------ */

/* grid (B*NH, query tiles), the last query tile (the most keys) first. */
template <int HS>
static __global__ void __launch_bounds__(CT__FA_THREADS)
    ct__fa_fwd_kernel(ct_bf16_t *__restrict__ out, float *__restrict__ stats, ct__fa_layout L,
                      float sl)
{
    typedef ct__fa_cfg<HS> cfg;
    constexpr int KT = cfg::KT, LDH = cfg::LDH, NK = cfg::NK, NC = KT / 16;
    constexpr int LDS = KT + 4, LDP = KT + 8;
    static_assert(2 * KT >= CT__FA_ROWS, "the Q tile is staged in the K/V buffer");
    __shared__ __align__(32) __nv_bfloat16 kv[2 * KT * LDH]; /* K tile, V tile */
    __shared__ __align__(32) float sbuf[CT__FA_WARPS][16 * LDS];
    __shared__ __align__(32) __nv_bfloat16 pbuf[CT__FA_WARPS][16 * LDP];

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r = lane >> 1, half = lane & 1;
    const long bh = blockIdx.x;
    const int T = L.T, b = (int)(bh / L.NH), h = (int)(bh % L.NH), g = (L.q_head0 + h) / L.group;
    const int q0 = (gridDim.y - 1 - blockIdx.y) * CT__FA_ROWS;
    const int row0 = q0 + 16 * warp, qrow = row0 + r; /* the warp's rows; this lane's row */
    const ct_bf16_t *qb = L.q + (long)b * T * L.ldq + (long)h * HS;
    const ct_bf16_t *kb = L.k + (long)b * T * L.ldkv + (long)g * HS;
    const ct_bf16_t *vb = L.v + (long)b * T * L.ldkv + (long)g * HS;
    float *sw = sbuf[warp];
    __nv_bfloat16 *pw = pbuf[warp];

    ct__fa_stage<HS, CT__FA_ROWS>(kv, qb, L.ldq, q0, T);
    __syncthreads();
    ct__fa_a qf[NK];
#pragma unroll
    for (int k = 0; k < NK; k++) wmma::load_matrix_sync(qf[k], kv + 16 * warp * LDH + 16 * k, LDH);
    __syncthreads();

    ct__fa_acc o[NK];
#pragma unroll
    for (int d = 0; d < NK; d++) wmma::fill_fragment(o[d], 0.0f);
    float m = -INFINITY, l = 0.0f; /* row qrow's running max (log2 units) and sum */
    const int kend = T < q0 + CT__FA_ROWS ? T : q0 + CT__FA_ROWS;
    for (int k0 = 0; k0 < kend; k0 += KT) {
        ct__fa_stage<HS, KT>(kv, kb, L.ldkv, k0, T);
        ct__fa_stage<HS, KT>(kv + KT * LDH, vb, L.ldkv, k0, T);
        __syncthreads();
        if (k0 <= row0) { /* warp-uniform; k0 and row0 are multiples of 16 */
            /* 16-key slices n with k0 + 16n <= row0 hold a visible key */
            const int nvis = (row0 - k0) / 16 + 1 < NC ? (row0 - k0) / 16 + 1 : NC;
            for (int n = 0; n < nvis; n++) {
                ct__fa_acc s;
                wmma::fill_fragment(s, 0.0f);
#pragma unroll
                for (int k = 0; k < NK; k++) {
                    ct__fa_bcol kf;
                    wmma::load_matrix_sync(kf, kv + 16 * n * LDH + 16 * k, LDH);
                    wmma::mma_sync(s, qf[k], kf, s);
                }
                wmma::store_matrix_sync(sw + 16 * n, s, LDS, wmma::mem_row_major);
            }
            __syncwarp();
            /* online softmax of row qrow over keys k0 + c, c < 16 nvis */
            const int ncol = 16 * nvis, vis = qrow - k0; /* columns c <= vis are visible */
            float mx = -INFINITY;
            for (int c = 2 * half; c < ncol; c += 4) {
                float2 v = *reinterpret_cast<const float2 *>(sw + r * LDS + c);
                if (c <= vis) mx = fmaxf(mx, v.x * sl);
                if (c + 1 <= vis) mx = fmaxf(mx, v.y * sl);
            }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            const float mnew = fmaxf(m, mx); /* finite: key k0 <= row0 <= qrow is visible */
            const float corr = exp2f(m - mnew);
            float sum = 0.0f;
            for (int c = 2 * half; c < ncol; c += 4) {
                float2 v = *reinterpret_cast<const float2 *>(sw + r * LDS + c);
                float p0 = c <= vis ? exp2f(v.x * sl - mnew) : 0.0f;
                float p1 = c + 1 <= vis ? exp2f(v.y * sl - mnew) : 0.0f;
                sum += p0 + p1;
                *reinterpret_cast<__nv_bfloat162 *>(pw + r * LDP + c) =
                    __floats2bfloat162_rn(p0, p1);
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            l = l * corr + sum;
            m = mnew;
            ct__fa_acc cf; /* corr of each row, to rescale O */
            ct__fa_row_frag(cf, sw, LDS, corr);
#pragma unroll
            for (int d = 0; d < NK; d++)
                for (int i = 0; i < cf.num_elements; i++) o[d].x[i] *= cf.x[i];
            for (int n = 0; n < nvis; n++) {
                ct__fa_a pf;
                wmma::load_matrix_sync(pf, pw + 16 * n, LDP);
#pragma unroll
                for (int d = 0; d < NK; d++) {
                    ct__fa_brow vf;
                    wmma::load_matrix_sync(vf, kv + KT * LDH + 16 * n * LDH + 16 * d, LDH);
                    wmma::mma_sync(o[d], pf, vf, o[d]);
                }
            }
        }
        __syncthreads(); /* the K/V tiles are restaged */
    }
    ct__fa_store_rows(out + (long)b * T * L.ldo + (long)h * HS, L.ldo, row0, T, o, 1.0f / l, sw,
                      LDS, KT);
    if (half == 0 && qrow < T) stats[bh * T + qrow] = (m + log2f(l)) * CT__FA_LN2;
}

/* ---- backward ----------------------------------------------------------- */

/* dq (row stride lddq) for a tile of 64 query rows, and D_i = dO_i . O_i of
 * those rows into D. grid (B*NH, query tiles), the last query tile first. */
template <int HS>
static __global__ void __launch_bounds__(CT__FA_THREADS)
    ct__fa_bwd_dq_kernel(ct_bf16_t *__restrict__ dq_out, long lddq, float *__restrict__ D,
                         const ct_bf16_t *__restrict__ dout, const ct_bf16_t *__restrict__ out,
                         const float *__restrict__ stats, ct__fa_layout L, float scale, float sl)
{
    typedef ct__fa_cfg<HS> cfg;
    constexpr int KT = cfg::KT, LDH = cfg::LDH, NK = cfg::NK, NC = KT / 16;
    constexpr int LDS = KT + 4, LDP = KT + 8;
    static_assert(2 * KT >= CT__FA_ROWS, "the Q and dO tiles are staged in the K/V buffer");
    __shared__ __align__(32) __nv_bfloat16 kv[2 * KT * LDH];
    __shared__ __align__(32) float sbuf[CT__FA_WARPS][16 * LDS];
    __shared__ __align__(32) __nv_bfloat16 pbuf[CT__FA_WARPS][16 * LDP];
    __shared__ __align__(32) float mask[16 * 16]; /* S[i][j]: -inf where j > i */

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r = lane >> 1, half = lane & 1;
    const long bh = blockIdx.x;
    const int T = L.T, b = (int)(bh / L.NH), h = (int)(bh % L.NH), g = (L.q_head0 + h) / L.group;
    const int q0 = (gridDim.y - 1 - blockIdx.y) * CT__FA_ROWS;
    const int row0 = q0 + 16 * warp, qrow = row0 + r;
    const ct_bf16_t *qb = L.q + (long)b * T * L.ldq + (long)h * HS;
    const ct_bf16_t *kb = L.k + (long)b * T * L.ldkv + (long)g * HS;
    const ct_bf16_t *vb = L.v + (long)b * T * L.ldkv + (long)g * HS;
    const ct_bf16_t *dob = dout + (long)b * T * L.ldo + (long)h * HS;
    float *sw = sbuf[warp];
    __nv_bfloat16 *pw = pbuf[warp];

    /* D of row qrow (lanes 2r and 2r+1 take half the head each) and lse */
    float dsum = 0.0f, lse = INFINITY; /* rows >= T: P = 0 */
    if (qrow < T) {
        const ct_bf16_t *dr = dob + (long)qrow * L.ldo;
        const ct_bf16_t *orow = out + ((long)b * T + qrow) * L.ldo + (long)h * HS;
        for (int c = half * (HS / 2); c < (half + 1) * (HS / 2); c += 8) {
            ct__bf16x8 x = *reinterpret_cast<const ct__bf16x8 *>(dr + c);
            ct__bf16x8 y = *reinterpret_cast<const ct__bf16x8 *>(orow + c);
#pragma unroll
            for (int e = 0; e < 8; e++) dsum += __bfloat162float(x.v[e]) * __bfloat162float(y.v[e]);
        }
        lse = stats[bh * T + qrow];
    }
    dsum += __shfl_xor_sync(0xffffffffu, dsum, 1);
    if (half == 0 && qrow < T) D[bh * T + qrow] = dsum;
    /* S starts from -lse/scale (P = exp2(sl * (S - lse/scale))), dP from -D */
    ct__fa_acc linit, dinit, mk;
    ct__fa_row_frag(linit, sw, LDS, -lse / scale);
    ct__fa_row_frag(dinit, sw, LDS, -dsum);
    for (int i = threadIdx.x; i < 256; i += CT__FA_THREADS)
        mask[i] = i % 16 > i / 16 ? -INFINITY : 0.0f;

    ct__fa_a qf[NK], df[NK];
    ct__fa_stage<HS, CT__FA_ROWS>(kv, qb, L.ldq, q0, T);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < NK; k++) wmma::load_matrix_sync(qf[k], kv + 16 * warp * LDH + 16 * k, LDH);
    wmma::load_matrix_sync(mk, mask, 16, wmma::mem_row_major);
    __syncthreads();
    ct__fa_stage<HS, CT__FA_ROWS>(kv, dob, L.ldo, q0, T);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < NK; k++) wmma::load_matrix_sync(df[k], kv + 16 * warp * LDH + 16 * k, LDH);
    __syncthreads();

    ct__fa_acc dq[NK];
#pragma unroll
    for (int d = 0; d < NK; d++) wmma::fill_fragment(dq[d], 0.0f);
    const int kend = T < q0 + CT__FA_ROWS ? T : q0 + CT__FA_ROWS;
    for (int k0 = 0; k0 < kend; k0 += KT) {
        ct__fa_stage<HS, KT>(kv, kb, L.ldkv, k0, T);
        ct__fa_stage<HS, KT>(kv + KT * LDH, vb, L.ldkv, k0, T);
        __syncthreads();
        if (k0 <= row0) {
            const int nvis = (row0 - k0) / 16 + 1 < NC ? (row0 - k0) / 16 + 1 : NC;
            for (int n = 0; n < nvis; n++) {
                ct__fa_acc s = linit, dp = dinit;
#pragma unroll
                for (int k = 0; k < NK; k++) {
                    ct__fa_bcol kf;
                    wmma::load_matrix_sync(kf, kv + 16 * n * LDH + 16 * k, LDH);
                    wmma::mma_sync(s, qf[k], kf, s);
                }
                if (k0 + 16 * n == row0) /* the diagonal block */
                    for (int i = 0; i < s.num_elements; i++) s.x[i] += mk.x[i];
#pragma unroll
                for (int k = 0; k < NK; k++) {
                    ct__fa_bcol vf;
                    wmma::load_matrix_sync(vf, kv + KT * LDH + 16 * n * LDH + 16 * k, LDH);
                    wmma::mma_sync(dp, df[k], vf, dp);
                }
                for (int i = 0; i < s.num_elements; i++) dp.x[i] *= exp2f(sl * s.x[i]); /* dS */
                wmma::store_matrix_sync(sw + 16 * n, dp, LDS, wmma::mem_row_major);
            }
            __syncwarp();
            ct__fa_to_bf16(pw, LDP, sw, LDS, 0, 16 * nvis);
            __syncwarp();
            for (int n = 0; n < nvis; n++) {
                ct__fa_a dsf;
                wmma::load_matrix_sync(dsf, pw + 16 * n, LDP);
#pragma unroll
                for (int d = 0; d < NK; d++) {
                    ct__fa_brow kf;
                    wmma::load_matrix_sync(kf, kv + 16 * n * LDH + 16 * d, LDH);
                    wmma::mma_sync(dq[d], dsf, kf, dq[d]);
                }
            }
        }
        __syncthreads();
    }
    ct__fa_store_rows(dq_out + (long)b * T * lddq + (long)h * HS, lddq, row0, T, dq, scale, sw,
                      LDS, KT);
}

/* dk and dv (OutT: bf16 or fp32, row stride lddkv) of key/value head g for a
 * tile of 64 key rows, summed over the query heads that read g in head
 * order (reads D from the dq kernel); a head no query head reads gets 0.
 * grid (B*NKV, key tiles), the first key tile (the most queries) first. */
template <int HS, typename OutT>
static __global__ void __launch_bounds__(CT__FA_THREADS)
    ct__fa_bwd_dkdv_kernel(OutT *__restrict__ dk_out, OutT *__restrict__ dv_out, long lddkv,
                           const ct_bf16_t *__restrict__ dout, const float *__restrict__ stats,
                           const float *__restrict__ D, ct__fa_layout L, float scale, float sl)
{
    typedef ct__fa_cfg<HS> cfg;
    constexpr int QT = cfg::QT, LDH = cfg::LDH, NK = cfg::NK, NQ = QT / 16;
    constexpr int LDS = QT + 4, LDP = QT + 8;
    static_assert(2 * QT >= CT__FA_ROWS, "the K and V tiles are staged in the Q/dO buffer");
    __shared__ __align__(32) __nv_bfloat16 qd[2 * QT * LDH]; /* Q tile, dO tile */
    __shared__ __align__(32) float lt[16 * LDS], dt[16 * LDS]; /* -lse_i/scale, -D_i by column */
    __shared__ __align__(32) float sbuf[CT__FA_WARPS][16 * LDS], sbuf2[CT__FA_WARPS][16 * LDS];
    __shared__ __align__(32) __nv_bfloat16 pbuf[CT__FA_WARPS][16 * LDP];
    __shared__ __align__(32) float mask[16 * 16]; /* S^T[j][i]: -inf where i < j */

    const int warp = threadIdx.x / 32, T = L.T;
    const int b = (int)(blockIdx.x / L.NKV), g = (int)(blockIdx.x % L.NKV);
    const int k0 = blockIdx.y * CT__FA_ROWS, row0 = k0 + 16 * warp; /* the warp's keys */
    const ct_bf16_t *kb = L.k + (long)b * T * L.ldkv + (long)g * HS;
    const ct_bf16_t *vb = L.v + (long)b * T * L.ldkv + (long)g * HS;
    /* the query heads h with (q_head0 + h) / group == g */
    const int h_first = g * L.group - L.q_head0, h_end = h_first + L.group;
    const int h_lo = h_first > 0 ? h_first : 0, h_hi = h_end < L.NH ? h_end : L.NH;
    float *sw = sbuf[warp], *sw2 = sbuf2[warp]; /* P^T, dS^T */
    __nv_bfloat16 *pw = pbuf[warp];

    for (int i = threadIdx.x; i < 256; i += CT__FA_THREADS)
        mask[i] = i % 16 < i / 16 ? -INFINITY : 0.0f;
    ct__fa_a kf[NK], vf[NK];
    ct__fa_acc mk;
    ct__fa_stage<HS, CT__FA_ROWS>(qd, kb, L.ldkv, k0, T);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < NK; k++) wmma::load_matrix_sync(kf[k], qd + 16 * warp * LDH + 16 * k, LDH);
    wmma::load_matrix_sync(mk, mask, 16, wmma::mem_row_major);
    __syncthreads();
    ct__fa_stage<HS, CT__FA_ROWS>(qd, vb, L.ldkv, k0, T);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < NK; k++) wmma::load_matrix_sync(vf[k], qd + 16 * warp * LDH + 16 * k, LDH);
    __syncthreads();

    ct__fa_acc dk[NK], dv[NK];
#pragma unroll
    for (int d = 0; d < NK; d++) wmma::fill_fragment(dk[d], 0.0f), wmma::fill_fragment(dv[d], 0.0f);
    const float inv_scale = 1.0f / scale;
    for (int h = h_lo; h < h_hi; h++) {
        const long bh = (long)b * L.NH + h;
        const ct_bf16_t *qb = L.q + (long)b * T * L.ldq + (long)h * HS;
        const ct_bf16_t *dob = dout + (long)b * T * L.ldo + (long)h * HS;
        const float *lse_bh = stats + bh * T, *D_bh = D + bh * T;
        for (int q0 = k0; q0 < T; q0 += QT) { /* k0 is a multiple of QT */
            ct__fa_stage<HS, QT>(qd, qb, L.ldq, q0, T);
            ct__fa_stage<HS, QT>(qd + QT * LDH, dob, L.ldo, q0, T);
            for (int i = threadIdx.x; i < 16 * QT; i += CT__FA_THREADS) {
                int rr = i / QT, c = i % QT, t = q0 + c;
                lt[rr * LDS + c] = t < T ? -lse_bh[t] * inv_scale : -INFINITY; /* P = 0 past T */
                dt[rr * LDS + c] = t < T ? -D_bh[t] : 0.0f;
            }
            __syncthreads();
            /* 16-query slices n with q0 + 16n >= row0 hold a visible query */
            const int nfirst = row0 > q0 ? (row0 - q0) / 16 : 0;
            if (nfirst < NQ) { /* warp-uniform */
                for (int n = nfirst; n < NQ; n++) {
                    ct__fa_acc p, ds;
                    wmma::load_matrix_sync(p, lt + 16 * n, LDS, wmma::mem_row_major);
                    wmma::load_matrix_sync(ds, dt + 16 * n, LDS, wmma::mem_row_major);
#pragma unroll
                    for (int k = 0; k < NK; k++) {
                        ct__fa_bcol qf, of;
                        wmma::load_matrix_sync(qf, qd + 16 * n * LDH + 16 * k, LDH);
                        wmma::mma_sync(p, kf[k], qf, p);
                        wmma::load_matrix_sync(of, qd + QT * LDH + 16 * n * LDH + 16 * k, LDH);
                        wmma::mma_sync(ds, vf[k], of, ds);
                    }
                    if (q0 + 16 * n == row0) /* the diagonal block */
                        for (int i = 0; i < p.num_elements; i++) p.x[i] += mk.x[i];
                    for (int i = 0; i < p.num_elements; i++) {
                        p.x[i] = exp2f(sl * p.x[i]); /* P^T */
                        ds.x[i] *= p.x[i];           /* dS^T */
                    }
                    wmma::store_matrix_sync(sw + 16 * n, p, LDS, wmma::mem_row_major);
                    wmma::store_matrix_sync(sw2 + 16 * n, ds, LDS, wmma::mem_row_major);
                }
                __syncwarp();
                ct__fa_to_bf16(pw, LDP, sw, LDS, 16 * nfirst, QT);
                __syncwarp();
                for (int n = nfirst; n < NQ; n++) { /* dv += P^T dO */
                    ct__fa_a pf;
                    wmma::load_matrix_sync(pf, pw + 16 * n, LDP);
#pragma unroll
                    for (int d = 0; d < NK; d++) {
                        ct__fa_brow of;
                        wmma::load_matrix_sync(of, qd + QT * LDH + 16 * n * LDH + 16 * d, LDH);
                        wmma::mma_sync(dv[d], pf, of, dv[d]);
                    }
                }
                __syncwarp(); /* every lane has loaded P^T from pw */
                ct__fa_to_bf16(pw, LDP, sw2, LDS, 16 * nfirst, QT);
                __syncwarp();
                for (int n = nfirst; n < NQ; n++) { /* dk += dS^T Q */
                    ct__fa_a dsf;
                    wmma::load_matrix_sync(dsf, pw + 16 * n, LDP);
#pragma unroll
                    for (int d = 0; d < NK; d++) {
                        ct__fa_brow qf;
                        wmma::load_matrix_sync(qf, qd + 16 * n * LDH + 16 * d, LDH);
                        wmma::mma_sync(dk[d], dsf, qf, dk[d]);
                    }
                }
            }
            __syncthreads();
        }
    }
    ct__fa_store_rows(dk_out + (long)b * T * lddkv + (long)g * HS, lddkv, row0, T, dk, scale, sw,
                      LDS, QT);
    ct__fa_store_rows(dv_out + (long)b * T * lddkv + (long)g * HS, lddkv, row0, T, dv, 1.0f, sw,
                      LDS, QT);
}

/* ---- host --------------------------------------------------------------- */

/* The instantiated head sizes: X(HS) for each. */
#define CT__FA_HEAD_SIZES(X) X(16) X(32) X(64) X(128)

int ct_cuda_attention_flash_supports(int HS)
{
#define CT__FA_IS(v) || HS == v
    return 0 CT__FA_HEAD_SIZES(CT__FA_IS);
#undef CT__FA_IS
}

/* The kernels' 128-bit loads and stores: 16-byte aligned tensors and row
 * strides of whole 16-byte units (asserted: the dispatchers check first). */
static void ct__fa_check(const void *p, long ld_bytes, const char *what)
{
    if (((uintptr_t)p & 15u) != 0 || ld_bytes % 16 != 0) {
        CT_LOG_ERROR("flash attention: %s at %p (row stride %ld bytes) is not 16-byte aligned",
                     what, p, ld_bytes);
        CT_ASSERT(((uintptr_t)p & 15u) == 0 && ld_bytes % 16 == 0);
    }
}

static void ct__fa_check_layout(const ct__fa_layout &L, int HS)
{
    CT_ASSERT(ct_cuda_attention_flash_supports(HS));
    CT_ASSERT(L.group >= 1 && L.q_head0 >= 0 && L.NKV >= 1);
    /* every query head reads a key/value head these buffers hold */
    CT_ASSERT(L.NH <= 0 || (L.q_head0 + L.NH - 1) / L.group < L.NKV);
    ct__fa_check(L.q, 2 * L.ldq, "q"), ct__fa_check(L.k, 2 * L.ldkv, "k");
    ct__fa_check(L.v, 2 * L.ldkv, "v");
}

static void ct__fa_forward(ct_bf16_t *out, float *stats, const ct__fa_layout &L, int B, int HS,
                           void *stream)
{
    if (B <= 0 || L.T <= 0 || L.NH <= 0) return;
    ct__fa_check_layout(L, HS);
    ct__fa_check(out, 2 * L.ldo, "out");
    float sl = CT__FA_LOG2E / sqrtf((float)HS);
    dim3 grid((unsigned)((long)B * L.NH), (unsigned)ct__ceil_div(L.T, CT__FA_ROWS));
    cudaStream_t st = ct__stream(stream);
    switch (HS) {
#define CT__FA_FWD(v)                                                               \
    case v:                                                                         \
        ct__fa_fwd_kernel<v><<<grid, CT__FA_THREADS, 0, st>>>(out, stats, L, sl); \
        break;
        CT__FA_HEAD_SIZES(CT__FA_FWD)
#undef CT__FA_FWD
    }
    CT_CHECK_LAUNCH();
}

/* dq (row stride lddq) and dk, dv (OutT, row stride lddkv) OVERWRITTEN;
 * scratch holds D, (B, NH, T) floats. */
template <typename OutT>
static void ct__fa_backward(ct_bf16_t *dq, long lddq, OutT *dk, OutT *dv, long lddkv,
                            const ct_bf16_t *dout, const ct_bf16_t *out, const float *stats,
                            float *scratch, const ct__fa_layout &L, int B, int HS, void *stream)
{
    if (B <= 0 || L.T <= 0 || (L.NH <= 0 && L.NKV <= 0)) return;
    ct__fa_check_layout(L, HS);
    CT_ASSERT(scratch != NULL);
    ct__fa_check(dq, 2 * lddq, "dq"), ct__fa_check(dk, (long)sizeof(OutT) * lddkv, "dk");
    ct__fa_check(dv, (long)sizeof(OutT) * lddkv, "dv"), ct__fa_check(dout, 2 * L.ldo, "dout");
    ct__fa_check(out, 2 * L.ldo, "out");
    float scale = 1.0f / sqrtf((float)HS), sl = CT__FA_LOG2E * scale;
    const unsigned tiles = (unsigned)ct__ceil_div(L.T, CT__FA_ROWS);
    dim3 grid_q((unsigned)((long)B * L.NH), tiles), grid_kv((unsigned)((long)B * L.NKV), tiles);
    cudaStream_t st = ct__stream(stream);
    switch (HS) {
#define CT__FA_BWD(v)                                                                         \
    case v:                                                                                   \
        if (L.NH > 0)                                                                         \
            ct__fa_bwd_dq_kernel<v><<<grid_q, CT__FA_THREADS, 0, st>>>(                       \
                dq, lddq, scratch, dout, out, stats, L, scale, sl);                           \
        CT_CHECK_LAUNCH();                                                                    \
        if (L.NKV > 0)                                                                        \
            ct__fa_bwd_dkdv_kernel<v, OutT><<<grid_kv, CT__FA_THREADS, 0, st>>>(              \
                dk, dv, lddkv, dout, stats, scratch, L, scale, sl);                           \
        break;
        CT__FA_HEAD_SIZES(CT__FA_BWD)
#undef CT__FA_BWD
    }
    CT_CHECK_LAUNCH();
}

/* GPT-2's packed (B, T, 3C) qkv: one key/value head per query head. */
static ct__fa_layout ct__fa_packed(const ct_bf16_t *qkv, int T, int NH, int HS)
{
    const long C = (long)NH * HS;
    ct__fa_layout L = {qkv, qkv + C, qkv + 2 * C, 3 * C, 3 * C, C, T, NH, NH, 1, 0};
    return L;
}

static ct__fa_layout ct__fa_gqa(const ct_bf16_t *q, const ct_bf16_t *k, const ct_bf16_t *v, int T,
                                int NH, int NKV, int HS, int group, int q_head0)
{
    ct__fa_layout L = {q, k, v, (long)NH * HS, (long)NKV * HS, (long)NH * HS,
                       T, NH, NKV, group, q_head0};
    return L;
}

void ct_cuda_attention_forward_flash(ct_bf16_t *out, float *stats, const ct_bf16_t *qkv, int B,
                                     int T, int NH, int HS, void *stream)
{
    ct__fa_forward(out, stats, ct__fa_packed(qkv, T, NH, HS), B, HS, stream);
}

void ct_cuda_attention_backward_flash(ct_bf16_t *dqkv, const ct_bf16_t *dout,
                                      const ct_bf16_t *qkv, const ct_bf16_t *out,
                                      const float *stats, float *scratch, int B, int T, int NH,
                                      int HS, void *stream)
{
    const long C = (long)NH * HS;
    ct__fa_backward(dqkv, 3 * C, dqkv + C, dqkv + 2 * C, 3 * C, dout, out, stats, scratch,
                    ct__fa_packed(qkv, T, NH, HS), B, HS, stream);
}

void ct_cuda_gqa_forward_flash(ct_bf16_t *out, float *stats, const ct_bf16_t *q,
                               const ct_bf16_t *k, const ct_bf16_t *v, int B, int T, int NH,
                               int NKV, int HS, int group, int q_head0, void *stream)
{
    ct__fa_forward(out, stats, ct__fa_gqa(q, k, v, T, NH, NKV, HS, group, q_head0), B, HS,
                   stream);
}

void ct_cuda_gqa_backward_flash(ct_bf16_t *dq, ct_bf16_t *dk, ct_bf16_t *dv,
                                const ct_bf16_t *dout, const ct_bf16_t *q, const ct_bf16_t *k,
                                const ct_bf16_t *v, const ct_bf16_t *out, const float *stats,
                                float *scratch, int B, int T, int NH, int NKV, int HS, int group,
                                int q_head0, void *stream)
{
    ct__fa_backward(dq, (long)NH * HS, dk, dv, (long)NKV * HS, dout, out, stats, scratch,
                    ct__fa_gqa(q, k, v, T, NH, NKV, HS, group, q_head0), B, HS, stream);
}

void ct_cuda_gqa_backward_flash_f32kv(ct_bf16_t *dq, float *dk, float *dv, const ct_bf16_t *dout,
                                      const ct_bf16_t *q, const ct_bf16_t *k, const ct_bf16_t *v,
                                      const ct_bf16_t *out, const float *stats, float *scratch,
                                      int B, int T, int NH, int NKV, int HS, int group,
                                      int q_head0, void *stream)
{
    ct__fa_backward(dq, (long)NH * HS, dk, dv, (long)NKV * HS, dout, out, stats, scratch,
                    ct__fa_gqa(q, k, v, T, NH, NKV, HS, group, q_head0), B, HS, stream);
}
