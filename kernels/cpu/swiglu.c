/* SwiGLU, the gated MLP activation of Llama: out = silu(gate) * up with
 * silu(x) = x * sigmoid(x), forward and backward.
 *
 * Elementwise, OpenMP over 8-wide vector blocks with the vectorized exp of
 * cpu_impl.h (scalar expf does not vectorize without -ffast-math). The
 * gate and up halves come from two separate matmuls, so they are two
 * buffers rather than one interleaved one. The *_ref versions are plain
 * loops in double. */
#include <math.h>

#include "kernels/kernels.h"

#include "kernels/cpu/cpu_impl.h"

static inline ct__f8 sigmoid8(ct__f8 x) { return 1.0f / (1.0f + ct__exp8(-x)); }

void ct_swiglu_forward(float *out, const float *gate, const float *up, long n)
{
    long n8 = n / 8 * 8;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n8; i += 8) {
        ct__f8 g = ct__f8_load(gate + i);
        ct__f8_store(out + i, g * sigmoid8(g) * ct__f8_load(up + i));
    }
    if (n8 < n) {
        int k = (int)(n - n8);
        ct__f8 g = ct__f8_load_part(gate + n8, k, 0.0f);
        ct__f8_store_part(out + n8, g * sigmoid8(g) * ct__f8_load_part(up + n8, k, 0.0f), k);
    }
}

/* d silu(g)/dg = sigmoid(g) * (1 + g * (1 - sigmoid(g))) */
static inline void swiglu_grad8(float *dgate, float *dup, const float *dout, const float *gate,
                                const float *up, int k)
{
    ct__f8 g = ct__f8_load_part(gate, k, 0.0f), u = ct__f8_load_part(up, k, 0.0f);
    ct__f8 d = ct__f8_load_part(dout, k, 0.0f), s = sigmoid8(g);
    ct__f8 dg = ct__f8_load_part(dgate, k, 0.0f) + d * u * s * (1.0f + g * (1.0f - s));
    ct__f8 du = ct__f8_load_part(dup, k, 0.0f) + d * g * s;
    ct__f8_store_part(dgate, dg, k);
    ct__f8_store_part(dup, du, k);
}

void ct_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, long n)
{
    long n8 = n / 8 * 8;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n8; i += 8) {
        ct__f8 g = ct__f8_load(gate + i), u = ct__f8_load(up + i), d = ct__f8_load(dout + i);
        ct__f8 s = sigmoid8(g);
        ct__f8_store(dgate + i, ct__f8_load(dgate + i) + d * u * s * (1.0f + g * (1.0f - s)));
        ct__f8_store(dup + i, ct__f8_load(dup + i) + d * g * s);
    }
    if (n8 < n) swiglu_grad8(dgate + n8, dup + n8, dout + n8, gate + n8, up + n8, (int)(n - n8));
}

/* ---- plain-loop references -------------------------------------------------- */

void ct_swiglu_forward_ref(float *out, const float *gate, const float *up, long n)
{
    for (long i = 0; i < n; i++) {
        double g = gate[i];
        out[i] = (float)(g / (1.0 + exp(-g)) * up[i]);
    }
}

void ct_swiglu_backward_ref(float *dgate, float *dup, const float *dout, const float *gate,
                            const float *up, long n)
{
    for (long i = 0; i < n; i++) {
        double g = gate[i], s = 1.0 / (1.0 + exp(-g));
        dgate[i] += (float)(dout[i] * up[i] * s * (1.0 + g * (1.0 - s)));
        dup[i] += (float)(dout[i] * g * s);
    }
}
