/* Small deterministic PRNG (splitmix64 seeding + xorshift64*). The state is a
 * single uint64 so it can be saved in a checkpoint and restored exactly. */
#ifndef CT_CORE_RNG_H
#define CT_CORE_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct {
    uint64_t s;
} ct_rng_t;

static inline uint64_t ct_splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Seeds from any number of 64-bit words, e.g. (seed, epoch, window). */
static inline void ct_rng_seed(ct_rng_t *r, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t s = ct_splitmix64(a);
    s = ct_splitmix64(s ^ b);
    s = ct_splitmix64(s ^ c);
    r->s = s ? s : 0x2545F4914F6CDD1Dull;
}

static inline uint64_t ct_rng_u64(ct_rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, 1) with 24 random bits. */
static inline float ct_rng_f32(ct_rng_t *r) { return (float)(ct_rng_u64(r) >> 40) / 16777216.0f; }

/* Uniform integer in [0, n); n > 0. Lemire's multiply-shift, tiny bias. */
static inline uint64_t ct_rng_below(ct_rng_t *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)ct_rng_u64(r) * n) >> 64);
}

/* Standard normal (Box-Muller, one value per call). */
static inline float ct_rng_normal(ct_rng_t *r)
{
    double u1 = ((ct_rng_u64(r) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (ct_rng_u64(r) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

#endif
