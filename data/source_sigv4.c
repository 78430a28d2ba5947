/* Byte sources, helpers: the parts of AWS Signature Version 4 that we do
 * ourselves. libcurl signs each request (CURLOPT_AWS_SIGV4), but 7.88 signs
 * the query string exactly as given and takes the payload hash from our
 * x-amz-content-sha256 header, so we build canonical query strings and hash
 * bodies (SHA-256, FIPS 180-4) here.
 *
 * Left out: the signature itself (libcurl's), chunked (streaming) payload
 * signing, and any other hash: SHA-256 is all SigV4 needs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/source_impl.h"

/* ---- canonical query strings ----------------------------------------------------------- */
typedef struct {
    char *name, *value;
} qpair_t;

static int qpair_cmp(const void *a, const void *b)
{
    const qpair_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

char *ct__query_canonical(const char *const *kv, int n)
{
    qpair_t *pairs = calloc(n > 0 ? (size_t)n : 1, sizeof *pairs);
    if (!pairs) return NULL;
    int oom = 0;
    for (int i = 0; i < n; i++) {
        ct__buf_t b = {0};
        ct__uri_encode(&b, kv[2 * i], 0);
        ct__buf_add(&b, "", 0);
        pairs[i].name = b.p;
        ct__buf_t v = {0};
        ct__uri_encode(&v, kv[2 * i + 1] ? kv[2 * i + 1] : "", 0);
        ct__buf_add(&v, "", 0);
        pairs[i].value = v.p;
        oom |= b.oom || v.oom || !b.p || !v.p;
    }
    char *out = NULL;
    if (!oom) {
        qsort(pairs, (size_t)n, sizeof *pairs, qpair_cmp);
        ct__buf_t q = {0};
        ct__buf_add(&q, "", 0);
        for (int i = 0; i < n; i++) {
            if (i) ct__buf_add(&q, "&", 1);
            ct__buf_str(&q, pairs[i].name);
            ct__buf_add(&q, "=", 1);
            ct__buf_str(&q, pairs[i].value);
        }
        if (q.oom) ct__buf_free(&q);
        out = q.p;
    }
    for (int i = 0; i < n; i++) {
        free(pairs[i].name);
        free(pairs[i].value);
    }
    free(pairs);
    return out;
}

/* ---- SHA-256 (FIPS 180-4) --------------------------------------------------------------- */
static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

void ct__sha256_hex(const void *data, size_t n, char hex[65])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) sha_block(h, p + i);
    unsigned char tail[128] = {0};
    size_t r = n - i;
    if (r) memcpy(tail, p + i, r);
    tail[r] = 0x80;
    size_t tl = r + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int j = 0; j < 8; j++) tail[tl - 1 - j] = (unsigned char)(bits >> (8 * j));
    sha_block(h, tail);
    if (tl == 128) sha_block(h, tail + 64);
    for (int j = 0; j < 8; j++) snprintf(hex + 8 * j, 9, "%08x", h[j]);
}
