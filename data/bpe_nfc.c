/* Unicode NFC for tokenizer.json normalizers ("NFC", as Qwen2 sets), exactly
 * as Hugging Face tokenizers applies it: its tables are at Unicode 9.0 (the
 * unicode-normalization-alignments crate), so data/unicode_hf_tables.h holds
 * the decompositions, combining classes and composites it knows, and marks
 * added since stay starters that never move.
 *
 * Canonical decomposition, canonical ordering and canonical composition
 * (UAX #15), Hangul by arithmetic. Text in which no character can change
 * or make a neighbour change (all ASCII, most text) is left as it is
 * without copying. Bytes that are not valid UTF-8 pass through unchanged,
 * as starters that compose with nothing. Left out: NFD, NFKC, NFKD. */
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "data/bpe_impl.h"
#include "data/unicode_hf_tables.h"

#define S_BASE 0xAC00u
#define L_BASE 0x1100u
#define V_BASE 0x1161u
#define T_BASE 0x11A7u
#define L_COUNT 19u
#define V_COUNT 21u
#define T_COUNT 28u
#define S_COUNT (L_COUNT * V_COUNT * T_COUNT)
/* A byte that is not valid UTF-8, kept as it is. */
#define RAW_BYTE 0x80000000u

static int ccc(uint32_t cp)
{
    if (cp < 0x300 || cp & RAW_BYTE) return 0;
    size_t lo = 0, hi = CT__UHF_NCCC;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t c = ct__uhf_ccc[mid] >> 8;
        if (c == cp) return (int)(ct__uhf_ccc[mid] & 0xFF);
        if (c < cp) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* Appends the full canonical decomposition of cp to out[*m]; out has room. */
static void decompose(uint32_t cp, uint32_t *out, size_t *m)
{
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE, t = s % T_COUNT;
        out[(*m)++] = L_BASE + s / (V_COUNT * T_COUNT);
        out[(*m)++] = V_BASE + (s % (V_COUNT * T_COUNT)) / T_COUNT;
        if (t) out[(*m)++] = T_BASE + t;
        return;
    }
    size_t lo = 0, hi = CT__UHF_NDECOMP;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t c = ct__uhf_decomp[mid][0];
        if (c == cp) {
            uint32_t off = ct__uhf_decomp[mid][1] >> 3, len = ct__uhf_decomp[mid][1] & 7;
            for (uint32_t k = 0; k < len; k++) out[(*m)++] = ct__uhf_pool[off + k];
            return;
        }
        if (c < cp) lo = mid + 1;
        else hi = mid;
    }
    out[(*m)++] = cp;
}

/* The primary composite of a and b, or 0. */
static uint32_t compose(uint32_t a, uint32_t b)
{
    if ((a | b) & RAW_BYTE) return 0;
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE &&
        b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    uint64_t key = (uint64_t)a << 21 | b;
    size_t lo = 0, hi = CT__UHF_NCOMP;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ct__uhf_comp_key[mid] == key) return ct__uhf_comp_val[mid];
        if (ct__uhf_comp_key[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

static uint32_t decode(const uint8_t *s, size_t n, size_t i, size_t *len_p)
{
    uint32_t cp;
    size_t k = ct_utf8_decode(s + i, n - i, &cp);
    if (k == 0) {
        *len_p = 1;
        return RAW_BYTE | s[i];
    }
    *len_p = k;
    return cp;
}

int ct__bpe_nfc(const uint8_t *s, size_t n, ct__bpe_buf_t *out)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp = decode(s, n, i, &len);
        if (!(cp & RAW_BYTE) && (ct__bpe_uprops(cp) & CT__BPE_UP_NFC)) break;
        i += len;
    }
    if (i == n) return 1;

    /* A full decomposition has at most 4 code points (3 for Hangul). */
    uint32_t *a = malloc(sizeof(uint32_t) * 4 * n);
    if (!a) return -1;
    size_t m = 0;
    for (i = 0; i < n;) {
        size_t len;
        uint32_t cp = decode(s, n, i, &len);
        if (cp & RAW_BYTE || cp < 0xC0) a[m++] = cp;
        else decompose(cp, a, &m);
        i += len;
    }
    /* Canonical ordering: non-starters sorted by class, stably. */
    for (size_t j = 1; j < m; j++) {
        int cj = ccc(a[j]);
        if (cj == 0) continue;
        for (size_t k = j; k > 0 && ccc(a[k - 1]) > cj; k--) {
            uint32_t t = a[k];
            a[k] = a[k - 1];
            a[k - 1] = t;
        }
    }
    /* Canonical composition (UAX #15's algorithm). */
    size_t o = 1, starter = 0;
    int last = ccc(a[0]) ? 256 : 0;
    for (size_t j = 1; j < m; j++) {
        uint32_t c = a[j];
        int cc = ccc(c);
        uint32_t z = compose(a[starter], c);
        if (z && (last < cc || last == 0)) {
            a[starter] = z;
            continue;
        }
        if (cc == 0) starter = o;
        last = cc;
        a[o++] = c;
    }
    for (size_t j = 0; j < o; j++) {
        if (a[j] & RAW_BYTE) {
            uint8_t b = (uint8_t)a[j];
            ct__bpe_buf_put(out, &b, 1);
        } else {
            char u[4];
            ct__bpe_buf_put(out, u, ct_utf8_encode(a[j], u));
        }
    }
    free(a);
    return out->oom ? -1 : 0;
}
