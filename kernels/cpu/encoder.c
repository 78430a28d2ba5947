/* Token + position embedding: out[b,t,:] = wte[inp[b,t],:] + wpe[t,:].
 *
 * The backward scatters into dwte, where token ids repeat, so it is
 * parallelized over blocks of channels rather than rows: every dwte and dwpe
 * element is owned by one thread and summed over rows in (b,t) order. The
 * result is therefore the same for any thread count. Token ids are trusted
 * to be < Vp (the data loader checks them). The _vp variants serve a
 * vocab-parallel shard: rows for tokens outside [v_start, v_start+v_count)
 * contribute zero. */
#include "kernels/kernels.h"

#include <stdint.h>

#define CT_ENC_CBLOCK 64

void ct_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe,
                        int B, int T, int C)
{
    ct_encoder_forward_vp(out, inp, wte, wpe, B, T, C, 0, INT32_MAX);
}

void ct_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp, int B,
                         int T, int C)
{
    ct_encoder_backward_vp(dwte, dwpe, dout, inp, B, T, C, 0, INT32_MAX);
}

void ct_encoder_forward_vp(float *out, const int32_t *inp, const float *wte, const float *wpe,
                           int B, int T, int C, int v_start, int v_count)
{
    long N = (long)B * T;
#pragma omp parallel for schedule(static)
    for (long n = 0; n < N; n++) {
        float *o = out + n * C;
        int64_t v = (int64_t)inp[n] - v_start;
        int mine = v >= 0 && v < v_count;
        const float *we = wte + (mine ? v : 0) * C;
        if (mine && wpe) {
            const float *wp = wpe + (n % T) * C;
#pragma omp simd
            for (int c = 0; c < C; c++) o[c] = we[c] + wp[c];
        } else if (mine) {
            for (int c = 0; c < C; c++) o[c] = we[c];
        } else if (wpe) {
            const float *wp = wpe + (n % T) * C;
            for (int c = 0; c < C; c++) o[c] = wp[c];
        } else {
            for (int c = 0; c < C; c++) o[c] = 0.0f;
        }
    }
}

void ct_encoder_backward_vp(float *dwte, float *dwpe, const float *dout, const int32_t *inp,
                            int B, int T, int C, int v_start, int v_count)
{
    long N = (long)B * T;
    int nblk = (C + CT_ENC_CBLOCK - 1) / CT_ENC_CBLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * CT_ENC_CBLOCK;
        int c1 = c0 + CT_ENC_CBLOCK < C ? c0 + CT_ENC_CBLOCK : C;
        for (long n = 0; n < N; n++) {
            const float *d = dout + n * C;
            int64_t v = (int64_t)inp[n] - v_start;
            if (v >= 0 && v < v_count) {
                float *dw = dwte + v * C;
#pragma omp simd
                for (int c = c0; c < c1; c++) dw[c] += d[c];
            }
            if (dwpe) {
                float *dp = dwpe + (n % T) * C;
#pragma omp simd
                for (int c = c0; c < c1; c++) dp[c] += d[c];
            }
        }
    }
}
