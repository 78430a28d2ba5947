/* Rotary position embedding in Hugging Face's rotate-half convention
 * (LlamaRotaryEmbedding, apply_rotary_pos_emb): channel i of a head pairs
 * with channel i + HS/2, not with its neighbour as in Meta's complex
 * formulation, so Hugging Face checkpoints load without permuting q and k.
 *
 * The frequencies and the cos/sin table follow transformers' fp32
 * arithmetic (theta ** (2i/HS) in fp32, the angle rounded to fp32 before
 * its cosine), so positions far from 0 agree with it to the last bits the
 * angle has. Rows are split across OpenMP threads; the backward is the
 * inverse rotation. The *_ref versions are plain loops. Left out: the
 * other rope_type scalings of transformers (linear, dynamic NTK, YaRN). */
#include <math.h>

#include "kernels/kernels.h"

void ct_rope_inv_freq(float *inv_freq, int HS, float theta, int llama3, float factor,
                      float low_freq_factor, float high_freq_factor, int original_max_seq_len)
{
    const float two_pi = (float)(2.0 * M_PI);
    const float low_wavelen = (float)original_max_seq_len / low_freq_factor;
    const float high_wavelen = (float)original_max_seq_len / high_freq_factor;
    for (int i = 0; i < HS / 2; i++) {
        float f = 1.0f / powf(theta, (float)(2 * i) / (float)HS);
        if (llama3) {
            float wavelen = two_pi / f;
            if (wavelen > low_wavelen) {
                f = f / factor;
            } else if (!(wavelen < high_wavelen)) {
                float smooth = ((float)original_max_seq_len / wavelen - low_freq_factor) /
                               (high_freq_factor - low_freq_factor);
                f = (1.0f - smooth) * f / factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}

void ct_rope_table(float *cos_t, float *sin_t, const float *inv_freq, int maxT, int HS)
{
    const int half = HS / 2;
    for (int t = 0; t < maxT; t++)
        for (int i = 0; i < half; i++) {
            float angle = (float)t * inv_freq[i];
            cos_t[(long)t * half + i] = (float)cos((double)angle);
            sin_t[(long)t * half + i] = (float)sin((double)angle);
        }
}

void ct_rope_forward(float *out, const float *inp, const float *cos_t, const float *sin_t, int B,
                     int T, int NH, int HS)
{
    const int half = HS / 2;
    const long N = (long)B * T;
#pragma omp parallel for schedule(static)
    for (long n = 0; n < N; n++) {
        const float *cs = cos_t + (n % T) * half, *sn = sin_t + (n % T) * half;
        for (int h = 0; h < NH; h++) {
            const float *x = inp + (n * NH + h) * HS;
            float *o = out + (n * NH + h) * HS;
#pragma omp simd
            for (int i = 0; i < half; i++) {
                float x1 = x[i], x2 = x[i + half];
                o[i] = x1 * cs[i] - x2 * sn[i];
                o[i + half] = x2 * cs[i] + x1 * sn[i];
            }
        }
    }
}

void ct_rope_backward(float *dinp, const float *dout, const float *cos_t, const float *sin_t,
                      int B, int T, int NH, int HS)
{
    const int half = HS / 2;
    const long N = (long)B * T;
#pragma omp parallel for schedule(static)
    for (long n = 0; n < N; n++) {
        const float *cs = cos_t + (n % T) * half, *sn = sin_t + (n % T) * half;
        for (int h = 0; h < NH; h++) {
            const float *d = dout + (n * NH + h) * HS;
            float *di = dinp + (n * NH + h) * HS;
#pragma omp simd
            for (int i = 0; i < half; i++) {
                float d1 = d[i], d2 = d[i + half];
                di[i] += d1 * cs[i] + d2 * sn[i];
                di[i + half] += d2 * cs[i] - d1 * sn[i];
            }
        }
    }
}

/* ---- plain-loop references ------------------------------------------------ */

void ct_rope_forward_ref(float *out, const float *inp, const float *cos_t, const float *sin_t,
                         int B, int T, int NH, int HS)
{
    const int half = HS / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                long base = (((long)b * T + t) * NH + h) * HS;
                for (int i = 0; i < half; i++) {
                    double c = cos_t[(long)t * half + i], s = sin_t[(long)t * half + i];
                    double x1 = inp[base + i], x2 = inp[base + i + half];
                    out[base + i] = (float)(x1 * c - x2 * s);
                    out[base + i + half] = (float)(x2 * c + x1 * s);
                }
            }
}

void ct_rope_backward_ref(float *dinp, const float *dout, const float *cos_t,
                          const float *sin_t, int B, int T, int NH, int HS)
{
    const int half = HS / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                long base = (((long)b * T + t) * NH + h) * HS;
                for (int i = 0; i < half; i++) {
                    double c = cos_t[(long)t * half + i], s = sin_t[(long)t * half + i];
                    double d1 = dout[base + i], d2 = dout[base + i + half];
                    dinp[base + i] += (float)(d1 * c + d2 * s);
                    dinp[base + i + half] += (float)(d2 * c - d1 * s);
                }
            }
}
