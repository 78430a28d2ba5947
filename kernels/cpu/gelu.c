/* GELU, tanh approximation: 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3))).
 *
 * Elementwise, OpenMP over 8-wide vector blocks; tanh is the vectorized
 * rational approximation from cpu_impl.h (within 3e-7 of tanhf), because
 * scalar tanhf would cost more than the matmuls around it. There is no
 * separate reference version: a plain loop over the same formula is what
 * the gradient check compares against. */
#include "kernels/kernels.h"

#include "kernels/cpu/cpu_impl.h"

#define CT_GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define CT_GELU_A 0.044715f

static inline ct__f8 gelu8(ct__f8 x)
{
    ct__f8 u = CT_GELU_K * (x + CT_GELU_A * x * x * x);
    return 0.5f * x * (1.0f + ct__tanh8(u));
}

/* d gelu(x) / dx */
static inline ct__f8 gelu_grad8(ct__f8 x)
{
    ct__f8 x2 = x * x;
    ct__f8 th = ct__tanh8(CT_GELU_K * (x + CT_GELU_A * x2 * x));
    ct__f8 sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * CT_GELU_K * (1.0f + 3.0f * CT_GELU_A * x2);
}

void ct_gelu_forward(float *out, const float *inp, long n)
{
    long n8 = n / 8 * 8;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n8; i += 8) ct__f8_store(out + i, gelu8(ct__f8_load(inp + i)));
    if (n8 < n) {
        int k = (int)(n - n8);
        ct__f8_store_part(out + n8, gelu8(ct__f8_load_part(inp + n8, k, 0.0f)), k);
    }
}

void ct_gelu_backward(float *dinp, const float *inp, const float *dout, long n)
{
    long n8 = n / 8 * 8;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n8; i += 8) {
        ct__f8 g = gelu_grad8(ct__f8_load(inp + i)) * ct__f8_load(dout + i);
        ct__f8_store(dinp + i, ct__f8_load(dinp + i) + g);
    }
    if (n8 < n) {
        int k = (int)(n - n8);
        ct__f8 g = gelu_grad8(ct__f8_load_part(inp + n8, k, 0.0f)) *
                   ct__f8_load_part(dout + n8, k, 0.0f);
        ct__f8_store_part(dinp + n8, ct__f8_load_part(dinp + n8, k, 0.0f) + g, k);
    }
}
