/* Private helpers shared by the CPU kernels: an 8-wide float vector type
 * built on GCC/Clang vector extensions, and vectorized exp and tanh.
 *
 * Why not plain loops with `#pragma omp simd`: glibc's expf and tanhf only
 * have vector variants under -ffast-math, scalar tanhf costs about 35 ns,
 * and GCC will not if-convert the range clamps these functions need while
 * -ftrapping-math is on (the default). Writing the clamps as explicit
 * vector selects makes the code vectorize on any target GCC supports, and
 * keeps NaN inputs propagating as NaN.
 *
 * Accuracy measured against double over the whole float range: exp within
 * 1.5 ulp inside its clamp range [-87.3, 88.3], tanh within 3e-7 absolute
 * and relative. Also the causal softmax the attention kernels share.
 * Private to kernels/cpu. */
#ifndef CT_KERNELS_CPU_CPU_IMPL_H
#define CT_KERNELS_CPU_CPU_IMPL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef float ct__f8 __attribute__((vector_size(32)));
typedef int32_t ct__i8 __attribute__((vector_size(32)));
typedef uint32_t ct__u8 __attribute__((vector_size(32)));

static inline ct__f8 ct__f8_set1(float a) { return (ct__f8){a, a, a, a, a, a, a, a}; }

/* Unaligned load and store. */
static inline ct__f8 ct__f8_load(const float *p)
{
    ct__f8 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void ct__f8_store(float *p, ct__f8 v) { memcpy(p, &v, sizeof v); }

/* Loads the first k < 8 floats of p, the other lanes set to `fill`. */
static inline ct__f8 ct__f8_load_part(const float *p, int k, float fill)
{
    float buf[8];
    for (int i = 0; i < 8; i++) buf[i] = i < k ? p[i] : fill;
    return ct__f8_load(buf);
}
/* Stores the first k < 8 lanes of v to p. */
static inline void ct__f8_store_part(float *p, ct__f8 v, int k)
{
    float buf[8];
    ct__f8_store(buf, v);
    for (int i = 0; i < k; i++) p[i] = buf[i];
}

/* mask ? a : b, lane by lane; mask lanes are 0 or -1 (a vector compare). */
static inline ct__f8 ct__f8_select(ct__i8 mask, ct__f8 a, ct__f8 b)
{
    return (ct__f8)((mask & (ct__i8)a) | (~mask & (ct__i8)b));
}

/* Lanes [0, k) set (-1), the others 0. */
static inline ct__i8 ct__i8_lanes_below(int k)
{
    const ct__i8 idx = {0, 1, 2, 3, 4, 5, 6, 7};
    return idx < (ct__i8){k, k, k, k, k, k, k, k};
}

static inline ct__f8 ct__f8_max(ct__f8 a, ct__f8 b) { return ct__f8_select(a > b, a, b); }

/* Sum of the lanes in a fixed order. */
static inline float ct__f8_hsum(ct__f8 v)
{
    return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}
static inline float ct__f8_hmax(ct__f8 v)
{
    float m = v[0];
    for (int i = 1; i < 8; i++) m = v[i] > m ? v[i] : m;
    return m;
}

/* exp(x), Cephes-style: Cody-Waite reduction by ln 2 and a degree-5
 * polynomial. Inputs are clamped to [-87.3, 88.3], so very negative inputs
 * give about 1e-38 rather than 0 and large ones stay finite. NaN stays NaN. */
static inline ct__f8 ct__exp8(ct__f8 x)
{
    const ct__f8 lo = ct__f8_set1(-87.3f), hi = ct__f8_set1(88.3f);
    x = ct__f8_select(x < lo, lo, x);
    x = ct__f8_select(x > hi, hi, x);
    /* Round x/ln2 to the nearest integer with the 1.5*2^23 trick; the low
     * mantissa bits of `big` then hold n as an integer. */
    const ct__f8 magic = ct__f8_set1(12582912.0f);
    ct__f8 big = x * 1.44269504088896341f + magic;
    ct__f8 n = big - magic;
    ct__f8 r = x - n * 0.693359375f + n * 2.12194440e-4f;
    ct__f8 p = ct__f8_set1(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    ct__f8 y = p * r * r + r + 1.0f;
    ct__u8 e = ((ct__u8)big - 0x4B400000u + 127u) << 23; /* 2^n */
    return y * (ct__f8)e;
}

/* tanh(x) as a 13/6 rational function on [-7.9053, 7.9053] (Eigen's
 * generic_fast_tanh_float coefficients), saturating outside. */
static inline ct__f8 ct__tanh8(ct__f8 x)
{
    const ct__f8 lo = ct__f8_set1(-7.90531110763549805f), hi = ct__f8_set1(7.90531110763549805f);
    x = ct__f8_select(x < lo, lo, x);
    x = ct__f8_select(x > hi, hi, x);
    ct__f8 x2 = x * x;
    ct__f8 p = ct__f8_set1(-2.76076847742355e-16f);
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * x;
    ct__f8 q = ct__f8_set1(1.19825839466702e-06f);
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return p / q;
}

/* For attention.c and attention_gqa.c: the in-place causal softmax of
 * rows [r0, r1) of a (T,T) score matrix whose rows hold scaled scores in
 * columns [0, r1); writes zeros in columns (t, T) of row t. */
static inline void ct__causal_softmax_rows(float *att, int T, int r0, int r1)
{
    for (int t = r0; t < r1; t++) {
        float *row = att + (long)t * T;
        int len = t + 1, len8 = len / 8 * 8, tail = len - len8;
        ct__f8 vmax = ct__f8_set1(-INFINITY);
        for (int j = 0; j < len8; j += 8) vmax = ct__f8_max(vmax, ct__f8_load(row + j));
        if (tail) vmax = ct__f8_max(vmax, ct__f8_load_part(row + len8, tail, -INFINITY));
        float mx = ct__f8_hmax(vmax);
        ct__f8 vmx = ct__f8_set1(mx), vsum = ct__f8_set1(0.0f);
        for (int j = 0; j < len8; j += 8) {
            ct__f8 e = ct__exp8(ct__f8_load(row + j) - vmx);
            ct__f8_store(row + j, e);
            vsum += e;
        }
        if (tail) {
            ct__f8 e = ct__exp8(ct__f8_load_part(row + len8, tail, 0.0f) - vmx);
            e = ct__f8_select(ct__i8_lanes_below(tail), e, ct__f8_set1(0.0f));
            ct__f8_store_part(row + len8, e, tail);
            vsum += e;
        }
        float inv = 1.0f / ct__f8_hsum(vsum);
        for (int j = 0; j < len; j++) row[j] *= inv;
        for (int j = len; j < T; j++) row[j] = 0.0f;
    }
}

#endif
