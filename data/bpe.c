/* Byte-level BPE: GPT-2's pre-tokenizer, encoding (merges by rank with a
 * per-word cache), decoding, and the ctrain text file format.
 *
 * File format (version 2), plain ASCII:
 *   ctrain-bpe 2 <vocab_size>\n
 *   <left> <right>\n            one line per merge, vocab_size - 257 lines
 * Merge r makes token 256 + r from two earlier tokens. The end-of-text token
 * is vocab_size - 1. Version 2 means GPT-2's exact pre-tokenizer; version 1
 * (same layout) means the approximate one that ctrain used before, and such
 * files keep it, so they encode as they did when they were trained.
 *
 * Deliberately left out: special tokens other than end-of-text (text that
 * spells "<|endoftext|>" is encoded as plain text, as tiktoken's
 * encode_ordinary does). GPT-2's vocab.json/merges.txt and tiktoken files
 * live in bpe_gpt2.c, training in bpe_train.c, and what they all share (the
 * tokenizer object, the byte alphabet, buffers and files) in bpe_common.c.
 * Calls: ct_bpe_load hands directories and .tiktoken files to bpe_gpt2.c
 * and *.json files to bpe_hf_load.c (as bpe_gpt2.c does a model directory
 * holding tokenizer.json); ct_bpe_encode hands a tokenizer.json's text to
 * bpe_hf.c, which calls back here for each word (ct__bpe_encode_word). All
 * of them call bpe_common.c, which calls none of them. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "core/log.h"
#include "data/bpe_impl.h"
#include "data/unicode_tables.h"

_Static_assert(CT__UC_OTHER == CT__BPE_CL_OTHER && CT__UC_LETTER == CT__BPE_CL_LETTER &&
                   CT__UC_NUMBER == CT__BPE_CL_NUMBER && CT__UC_SPACE == CT__BPE_CL_SPACE,
               "unicode_tables.h classes must match bpe_impl.h");

/* Words with more symbols than this use the heap merge. */
#define BPE_NAIVE_MAX 64
/* Pre-tokens are encoded in pieces of at most this many bytes. */
#define BPE_MAX_WORD (1 << 30)
/* Limit on the bytes of all tokens together (guards against merge files
 * whose tokens double in length at every merge). */
#define BPE_MAX_TOKEN_BYTES ((int64_t)1 << 30)

/* ---- pre-tokenizers ---------------------------------------------------------- */

enum { CL_OTHER = CT__BPE_CL_OTHER, CL_LETTER = CT__BPE_CL_LETTER,
       CL_NUMBER = CT__BPE_CL_NUMBER, CL_SPACE = CT__BPE_CL_SPACE };

/* ASCII classes, the same for both pre-tokenizers: \s is \t \n \v \f \r and
 * space (not U+001C..U+001F, which are not White_Space). */
static const uint8_t k_ascii_class[128] = {
#define O CL_OTHER
#define L CL_LETTER
#define N CL_NUMBER
#define S CL_SPACE
    O, O, O, O, O, O, O, O, O, S, S, S, S, S, O, O, /* 0x00 */
    O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, /* 0x10 */
    S, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, /* 0x20 */
    N, N, N, N, N, N, N, N, N, N, O, O, O, O, O, O, /* 0x30 */
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* 0x40 */
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O, /* 0x50 */
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* 0x60 */
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O, /* 0x70 */
#undef O
#undef L
#undef N
#undef S
};

/* Exact class of a non-ASCII code point: binary search for the run of
 * unicode_tables.h that holds it. */
static inline int uc_class(uint32_t cp)
{
    uint32_t key = cp << 2 | 3;
    size_t lo = 0, hi = CT__UC_NRUNS;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (ct__uc_runs[mid] <= key) lo = mid;
        else hi = mid;
    }
    return (int)(ct__uc_runs[lo] & 3);
}

int ct__bpe_cp_class(uint32_t cp)
{
    if (cp < 0x80) return k_ascii_class[cp];
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return CL_OTHER;
    return uc_class(cp);
}

/* Approximate class of a non-ASCII code point (version 1; see bpe_impl.h). */
static int v1_class(uint32_t cp)
{
    if (cp < 0x100) {
        if (cp == 0x85 || cp == 0xA0) return CL_SPACE;
        if (cp == 0xAA || cp == 0xB5 || cp == 0xBA) return CL_LETTER;
        if (cp == 0xB2 || cp == 0xB3 || cp == 0xB9 || (cp >= 0xBC && cp <= 0xBE)) return CL_NUMBER;
        if (cp < 0xC0 || cp == 0xD7 || cp == 0xF7) return CL_OTHER;
        return CL_LETTER;
    }
    if (cp >= 0x0300 && cp <= 0x036F) return CL_OTHER; /* combining marks */
    if (cp == 0x1680 || cp == 0x3000) return CL_SPACE;
    if (cp >= 0x2000 && cp <= 0x206F) { /* General Punctuation */
        if (cp <= 0x200A || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F)
            return CL_SPACE;
        return CL_OTHER;
    }
    if (cp >= 0x20A0 && cp <= 0x20CF) return CL_OTHER; /* currency */
    if ((cp >= 0x2460 && cp <= 0x249B) || (cp >= 0x24EA && cp <= 0x24FF) ||
        (cp >= 0x2776 && cp <= 0x2793))
        return CL_NUMBER; /* enclosed and dingbat digits */
    if (cp >= 0x2190 && cp <= 0x2BFF) return CL_OTHER; /* arrows, math, shapes, dingbats */
    if ((cp >= 0x3001 && cp <= 0x3004) || (cp >= 0x3008 && cp <= 0x3020) || cp == 0x3030 ||
        cp == 0x303D)
        return CL_OTHER; /* CJK punctuation */
    if ((cp >= 0xFE00 && cp <= 0xFE1F) || (cp >= 0xFE30 && cp <= 0xFE4F) || cp == 0xFEFF)
        return CL_OTHER; /* variation selectors, vertical forms, BOM */
    if (cp >= 0xFF10 && cp <= 0xFF19) return CL_NUMBER; /* fullwidth digits */
    if ((cp >= 0xFF01 && cp <= 0xFF0F) || (cp >= 0xFF1A && cp <= 0xFF20) ||
        (cp >= 0xFF3B && cp <= 0xFF40) || (cp >= 0xFF5B && cp <= 0xFF65))
        return CL_OTHER; /* fullwidth punctuation */
    if (cp >= 0x1F000 && cp <= 0x1FAFF) return CL_OTHER; /* emoji and pictographs */
    return CL_LETTER;
}

/* Class of the character at s[i]; *len_p gets its byte length. A byte that
 * does not start a valid UTF-8 sequence is one character of class other.
 * `v1` is a constant at every call, so each pre-tokenizer gets its own copy. */
static inline __attribute__((always_inline)) int char_at(const uint8_t *s, size_t n, size_t i,
                                                         size_t *len_p, int v1)
{
    uint8_t c = s[i];
    if (c < 0x80) {
        *len_p = 1;
        return k_ascii_class[c];
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else goto invalid;
    if (i + len > n) goto invalid;
    for (size_t k = 1; k < len; k++) {
        uint8_t b = s[i + k];
        if ((b & 0xC0) != 0x80) goto invalid;
        cp = (cp << 6) | (b & 0x3F);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) goto invalid;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) goto invalid;
    *len_p = len;
    return v1 ? v1_class(cp) : uc_class(cp);
invalid:
    *len_p = 1;
    return CL_OTHER;
}

static inline __attribute__((always_inline)) size_t pretok_next(const uint8_t *s, size_t n,
                                                                size_t pos, int v1)
{
    /* 's|'t|'re|'ve|'m|'ll|'d */
    if (s[pos] == '\'' && pos + 1 < n) {
        uint8_t a = s[pos + 1];
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return pos + 2;
        if (pos + 2 < n) {
            uint8_t b = s[pos + 2];
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
                return pos + 3;
        }
    }
    size_t len0, len;
    int c0 = char_at(s, n, pos, &len0, v1);
    /* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional space, then a run */
    size_t i = pos;
    int c = c0;
    len = len0;
    if (s[pos] == ' ' && pos + 1 < n) {
        size_t len1;
        int c1 = char_at(s, n, pos + 1, &len1, v1);
        if (c1 != CL_SPACE) i = pos + 1, c = c1, len = len1;
    }
    if (c != CL_SPACE) {
        i += len;
        /* ASCII letters are most of English text: a tight loop for them. */
        if (c == CL_LETTER)
            while (i < n && s[i] < 0x80 && k_ascii_class[s[i]] == CL_LETTER) i++;
        while (i < n && char_at(s, n, i, &len, v1) == c) i += len;
        return i;
    }
    /* '\s+(?!\S)' keeps the last whitespace character for the next token
     * when non-space follows; a single whitespace character is '\s+'. */
    size_t last = pos;
    i = pos + len0;
    while (i < n && char_at(s, n, i, &len, v1) == CL_SPACE) last = i, i += len;
    if (i == n || last == pos) return i;
    return last;
}

size_t ct__bpe_pretok_next(const uint8_t *s, size_t n, size_t pos)
{
    return pretok_next(s, n, pos, 0);
}

size_t ct__bpe_pretok_next_v1(const uint8_t *s, size_t n, size_t pos)
{
    return pretok_next(s, n, pos, 1);
}

size_t ct_bpe_pretok_next(const ct_bpe_t *bpe, const char *text, size_t len, size_t pos)
{
    const uint8_t *s = (const uint8_t *)text;
    if (bpe && bpe->pretok == CT__BPE_PRETOK_V1) return pretok_next(s, len, pos, 1);
    return pretok_next(s, len, pos, 0);
}

ct_status_t ct_bpe_pretokenize(ct_bpe_t *bpe, const char *text, size_t len, ct_bpe_piece_fn fn,
                               void *ctx)
{
    if (bpe && bpe->hf) return ct__bpe_hf_pretokenize(bpe, text, len, fn, ctx);
    for (size_t pos = 0; pos < len;) {
        size_t end = ct_bpe_pretok_next(bpe, text, len, pos);
        ct_status_t st = fn(ctx, text + pos, end - pos, -1);
        if (st != CT_OK) return st;
        pos = end;
    }
    return CT_OK;
}

/* ---- construction ----------------------------------------------------------- */

ct_status_t ct__bpe_new(const int32_t *merges, int n_merges, ct_bpe_t **bpe_p, int *bad_p)
{
    CT_ASSERT(n_merges >= 0 && n_merges <= CT__BPE_MAX_VOCAB - 257);
    int V = 256 + n_merges + 1;
    ct_bpe_t *bpe = ct__bpe_alloc(V, n_merges);
    if (!bpe) return CT_ERR_NO_MEMORY;
    ct_status_t st = CT_ERR_CORRUPT;
    memcpy(bpe->merges, merges, sizeof(int32_t) * 2 * (size_t)n_merges);
    bpe->eot = V - 1;
    for (int b = 0; b < 256; b++) bpe->byte_id[b] = b;

    /* Token offsets first: merge r may only use the ids before its own. */
    int64_t *off = bpe->tok_off;
    for (int i = 0; i <= 256; i++) off[i] = i;
    for (int r = 0; r < n_merges; r++) {
        int32_t l = merges[2 * r], rt = merges[2 * r + 1];
        bpe->merge_id[r] = 256 + r;
        if (l < 0 || rt < 0 || l >= 256 + r || rt >= 256 + r) {
            *bad_p = r;
            goto fail;
        }
        int64_t len = (off[l + 1] - off[l]) + (off[rt + 1] - off[rt]);
        if (len > CT__BPE_MAX_TOKEN_BYTES || off[256 + r] + len > BPE_MAX_TOKEN_BYTES) {
            *bad_p = r;
            goto fail;
        }
        off[256 + r + 1] = off[256 + r] + len;
    }
    off[V] = off[V - 1] + (int64_t)strlen(CT__BPE_EOT_TEXT);
    bpe->tok_bytes = malloc((size_t)off[V]);
    if (!bpe->tok_bytes) {
        st = CT_ERR_NO_MEMORY;
        goto fail;
    }
    for (int i = 0; i < 256; i++) bpe->tok_bytes[i] = (char)i;
    for (int r = 0; r < n_merges; r++) {
        int32_t l = merges[2 * r], rt = merges[2 * r + 1];
        char *dst = bpe->tok_bytes + off[256 + r];
        memcpy(dst, bpe->tok_bytes + off[l], (size_t)(off[l + 1] - off[l]));
        memcpy(dst + (off[l + 1] - off[l]), bpe->tok_bytes + off[rt],
               (size_t)(off[rt + 1] - off[rt]));
    }
    memcpy(bpe->tok_bytes + off[V - 1], CT__BPE_EOT_TEXT, strlen(CT__BPE_EOT_TEXT));
    const char *why;
    if ((st = ct__bpe_index(bpe, bad_p, &why)) != CT_OK) goto fail;
    CT_ASSERT(bpe->native);
    *bpe_p = bpe;
    return CT_OK;
fail:
    ct_bpe_free(bpe);
    return st;
}

int ct_bpe_vocab_size(const ct_bpe_t *bpe) { return bpe->vocab_size; }

int ct_bpe_eot(const ct_bpe_t *bpe) { return bpe->eot; }

const char *ct_bpe_token(const ct_bpe_t *bpe, int id, int *len_p)
{
    if (id < 0 || id >= bpe->vocab_size) return NULL;
    if (len_p) *len_p = (int)(bpe->tok_off[id + 1] - bpe->tok_off[id]);
    return bpe->tok_bytes + bpe->tok_off[id];
}

/* ---- merging one word -------------------------------------------------------- */

/* GPT-2's loop: find the lowest-ranked adjacent pair, merge every occurrence
 * of it left to right, repeat. */
static int merge_naive(const ct_bpe_t *bpe, int32_t *s, int n)
{
    while (n >= 2) {
        int best = INT_MAX;
        for (int i = 0; i + 1 < n; i++) {
            int r = ct__bpe_rank(bpe, s[i], s[i + 1]);
            if (r >= 0 && r < best) best = r;
        }
        if (best == INT_MAX) break;
        int32_t l = bpe->merges[2 * best], rt = bpe->merges[2 * best + 1];
        int32_t z = bpe->merge_id[best];
        int out = 0;
        for (int i = 0; i < n;) {
            if (i + 1 < n && s[i] == l && s[i + 1] == rt) {
                s[out++] = z;
                i += 2;
            } else {
                s[out++] = s[i++];
            }
        }
        n = out;
    }
    return n;
}

/* The same result in O(n log n): a min-heap of (rank, position) over a
 * linked list of symbols. Any pair made by merge r contains the token it
 * made, so its rank is above r (an invariant of struct ct_bpe): all pairs of rank r are merged, in position order,
 * before any higher rank, exactly as in merge_naive. */
static int merge_heap(ct_bpe_t *bpe, int32_t *s, int n)
{
    if (n < 2) return n;
    if ((size_t)n > bpe->scr_cap) {
        size_t cap = (size_t)n;
        int32_t *nx = realloc(bpe->scr_next, sizeof(int32_t) * cap);
        if (nx) bpe->scr_next = nx;
        int32_t *pv = realloc(bpe->scr_prev, sizeof(int32_t) * cap);
        if (pv) bpe->scr_prev = pv;
        uint64_t *hp = realloc(bpe->scr_heap, sizeof(uint64_t) * 2 * cap);
        if (hp) bpe->scr_heap = hp;
        if (!nx || !pv || !hp) return -1;
        bpe->scr_cap = cap;
    }
    int32_t *next = bpe->scr_next, *prev = bpe->scr_prev;
    uint64_t *heap = bpe->scr_heap;
    size_t nh = 0;
    for (int i = 0; i < n; i++) {
        next[i] = i + 1;
        prev[i] = i - 1;
        if (i + 1 < n) {
            int r = ct__bpe_rank(bpe, s[i], s[i + 1]);
            if (r >= 0) ct__bpe_heap_push(heap, &nh, ((uint64_t)r << 32) | (uint32_t)i);
        }
    }
    /* Each merge removes a symbol and pushes at most two entries, so the heap
     * never holds more than 2n entries. */
    while (nh > 0) {
        uint64_t e = ct__bpe_heap_pop(heap, &nh);
        int r = (int)(e >> 32), i = (int)(uint32_t)e;
        if (s[i] < 0) continue;
        int j = next[i];
        if (j >= n || s[i] != bpe->merges[2 * r] || s[j] != bpe->merges[2 * r + 1]) continue;
        s[i] = bpe->merge_id[r];
        s[j] = -1;
        next[i] = next[j];
        if (next[j] < n) prev[next[j]] = i;
        if (prev[i] >= 0) {
            int r2 = ct__bpe_rank(bpe, s[prev[i]], s[i]);
            if (r2 >= 0) ct__bpe_heap_push(heap, &nh, ((uint64_t)r2 << 32) | (uint32_t)prev[i]);
        }
        if (next[i] < n) {
            int r2 = ct__bpe_rank(bpe, s[i], s[next[i]]);
            if (r2 >= 0) ct__bpe_heap_push(heap, &nh, ((uint64_t)r2 << 32) | (uint32_t)i);
        }
    }
    int out = 0;
    for (int i = 0; i < n; i = next[i]) s[out++] = s[i];
    return out;
}

int ct__bpe_merge_word(ct_bpe_t *bpe, int32_t *syms, int n, int use_heap)
{
    return use_heap ? merge_heap(bpe, syms, n) : merge_naive(bpe, syms, n);
}

/* ---- word cache --------------------------------------------------------------- */

static const ct__bpe_cache_entry_t *cache_find(const ct__bpe_cache_t *c, const uint8_t *w,
                                               size_t len, uint64_t h)
{
    if (!c->slots) return NULL;
    for (size_t i = h & c->mask;; i = (i + 1) & c->mask) {
        uint32_t k = c->slots[i];
        if (!k) return NULL;
        const ct__bpe_cache_entry_t *e = &c->ents[k - 1];
        if (e->hash == h && e->key_len == len && memcmp(c->keys + e->key_off, w, len) == 0)
            return e;
    }
}

static void cache_clear(ct__bpe_cache_t *c)
{
    c->n = c->keys_n = c->ids_n = 0;
    if (c->slots) memset(c->slots, 0, sizeof(uint32_t) * (c->mask + 1));
}

/* Best effort: on allocation failure the word is simply not cached. */
static void cache_insert(ct__bpe_cache_t *c, const uint8_t *w, size_t len, uint64_t h,
                         const int32_t *ids, size_t n_ids)
{
    if (c->n >= CT__BPE_CACHE_MAX_ENTRIES ||
        c->keys_n + len + sizeof(int32_t) * (c->ids_n + n_ids) > CT__BPE_CACHE_MAX_BYTES)
        cache_clear(c);
    if (!c->slots || 2 * (c->n + 1) > c->mask + 1) {
        size_t nslots = c->slots ? 2 * (c->mask + 1) : 4096;
        uint32_t *slots = calloc(nslots, sizeof(uint32_t));
        if (!slots) return;
        for (size_t k = 0; k < c->n; k++) {
            size_t i = c->ents[k].hash & (nslots - 1);
            while (slots[i]) i = (i + 1) & (nslots - 1);
            slots[i] = (uint32_t)(k + 1);
        }
        free(c->slots);
        c->slots = slots;
        c->mask = nslots - 1;
    }
    if (ct__bpe_grow((void **)&c->ents, &c->cap, c->n + 1, sizeof *c->ents) ||
        ct__bpe_grow((void **)&c->keys, &c->keys_cap, c->keys_n + len, 1) ||
        ct__bpe_grow((void **)&c->ids, &c->ids_cap, c->ids_n + n_ids, sizeof(int32_t)))
        return;
    ct__bpe_cache_entry_t *e = &c->ents[c->n];
    e->hash = h;
    e->key_off = c->keys_n;
    e->key_len = (uint32_t)len;
    e->ids_off = c->ids_n;
    e->n_ids = (uint32_t)n_ids;
    memcpy(c->keys + c->keys_n, w, len);
    memcpy(c->ids + c->ids_n, ids, sizeof(int32_t) * n_ids);
    c->keys_n += len;
    c->ids_n += n_ids;
    size_t i = h & c->mask;
    while (c->slots[i]) i = (i + 1) & c->mask;
    c->slots[i] = (uint32_t)(++c->n);
}

/* ---- encode and decode -------------------------------------------------------- */

static CT_MUST_USE ct_status_t ids_reserve(int32_t **ids, size_t *n, size_t *cap, size_t more)
{
    if (*n + more <= *cap) return CT_OK;
    size_t nc = *cap ? *cap : 1024;
    while (nc < *n + more) nc *= 2;
    int32_t *p = realloc(*ids, nc * sizeof(int32_t));
    if (!p) {
        CT_LOG_ERROR("bpe encode: out of memory growing the id array to %zu entries", nc);
        return CT_ERR_NO_MEMORY;
    }
    *ids = p;
    *cap = nc;
    return CT_OK;
}

ct_status_t ct__bpe_encode_word(ct_bpe_t *bpe, const uint8_t *w, size_t len, int32_t **ids,
                                size_t *n, size_t *cap)
{
    ct_status_t st;
    if (len == 1) {
        if ((st = ids_reserve(ids, n, cap, 1)) != CT_OK) return st;
        (*ids)[(*n)++] = bpe->byte_id[w[0]];
        return CT_OK;
    }
    int cacheable = len <= CT__BPE_CACHE_MAX_KEY;
    uint64_t h = 0;
    if (cacheable) {
        h = ct__bpe_hash_bytes(w, len);
        const ct__bpe_cache_entry_t *e = cache_find(&bpe->cache, w, len, h);
        if (e) {
            if ((st = ids_reserve(ids, n, cap, e->n_ids)) != CT_OK) return st;
            memcpy(*ids + *n, bpe->cache.ids + e->ids_off, sizeof(int32_t) * e->n_ids);
            *n += e->n_ids;
            return CT_OK;
        }
    }
    if ((st = ids_reserve(ids, n, cap, len)) != CT_OK) return st;
    int32_t *out = *ids + *n;
    int m;
    /* tokenizer.json's ignore_merges: a word that is a token stays whole. */
    if (bpe->hf && (out[0] = ct__bpe_hf_whole(bpe, w, len)) >= 0) {
        m = 1;
    } else {
        for (size_t i = 0; i < len; i++) out[i] = bpe->byte_id[w[i]];
        m = ct__bpe_merge_word(bpe, out, (int)len, len > BPE_NAIVE_MAX || bpe->heap_only);
    }
    if (m < 0) {
        CT_LOG_ERROR("bpe encode: out of memory for a %zu-byte word", len);
        return CT_ERR_NO_MEMORY;
    }
    if (cacheable) cache_insert(&bpe->cache, w, len, h, out, (size_t)m);
    *n += (size_t)m;
    return CT_OK;
}

ct_status_t ct_bpe_encode(ct_bpe_t *bpe, const char *text, size_t len, int32_t **ids, size_t *n,
                          size_t *cap)
{
    if (bpe->hf) return ct__bpe_hf_encode(bpe, text, len, ids, n, cap);
    const uint8_t *s = (const uint8_t *)text;
    int v1 = bpe->pretok == CT__BPE_PRETOK_V1;
    size_t pos = 0;
    while (pos < len) {
        size_t end = v1 ? pretok_next(s, len, pos, 1) : pretok_next(s, len, pos, 0);
        /* Absurdly long pre-tokens (over 1 GiB) are encoded in pieces. */
        while (end - pos > BPE_MAX_WORD) {
            ct_status_t st = ct__bpe_encode_word(bpe, s + pos, BPE_MAX_WORD, ids, n, cap);
            if (st != CT_OK) return st;
            pos += BPE_MAX_WORD;
        }
        ct_status_t st = ct__bpe_encode_word(bpe, s + pos, end - pos, ids, n, cap);
        if (st != CT_OK) return st;
        pos = end;
    }
    return CT_OK;
}

char *ct_bpe_decode(const ct_bpe_t *bpe, const int32_t *ids, size_t n, size_t *len_p)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= bpe->vocab_size) return NULL;
        total += (size_t)(bpe->tok_off[ids[i] + 1] - bpe->tok_off[ids[i]]);
    }
    char *out = malloc(total + 1);
    if (!out) return NULL;
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        size_t l = (size_t)(bpe->tok_off[ids[i] + 1] - bpe->tok_off[ids[i]]);
        memcpy(p, bpe->tok_bytes + bpe->tok_off[ids[i]], l);
        p += l;
    }
    *p = 0;
    if (len_p) *len_p = total;
    return out;
}

/* ---- save and load ------------------------------------------------------------ */

ct_status_t ct_bpe_save(const ct_bpe_t *bpe, const char *path)
{
    if (bpe->hf) return ct__bpe_refuse_hf(path);
    if (!bpe->native) {
        CT_LOG_ERROR("cannot save %s: the tokenizer's ids do not follow the ctrain layout (bytes "
                     "0..255, merge r making 256 + r, end-of-text last)\n---> HINT: keep it in the "
                     "GPT-2 or tiktoken format it came in", path);
        return CT_ERR_UNSUPPORTED;
    }
    ct__bpe_buf_t b = {0};
    ct__bpe_buf_printf(&b, "%s %d %d\n", CT__BPE_MAGIC, bpe->version, bpe->vocab_size);
    for (int r = 0; r < bpe->n_merges; r++)
        ct__bpe_buf_printf(&b, "%d %d\n", bpe->merges[2 * r], bpe->merges[2 * r + 1]);
    ct_status_t st = CT_ERR_NO_MEMORY;
    if (b.oom) CT_LOG_ERROR("out of memory saving %s", path);
    else st = ct__bpe_write_file(path, b.p, b.n);
    free(b.p);
    return st;
}

/* Parses a decimal number without sign at *p, at most max. */
static int parse_num(const char **p, const char *end, int64_t max, int64_t *v_p)
{
    const char *s = *p;
    int64_t v = 0;
    if (s >= end || *s < '0' || *s > '9') return -1;
    while (s < end && *s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > max) return -1;
        s++;
    }
    *p = s;
    *v_p = v;
    return 0;
}

#define LOAD_FAIL(code, line, ...)                                                                \
    do {                                                                                          \
        char _m[256];                                                                             \
        snprintf(_m, sizeof _m, __VA_ARGS__);                                                     \
        CT_LOG_ERROR(                                                                             \
            "%s:%d: %s\n---> HINT: is this a tokenizer written by 'ctrain tokenize train'?", path, \
            (line), _m);                                                                          \
        st = (code);                                                                              \
        goto done;                                                                                \
    } while (0)

ct_status_t ct_bpe_load(const char *path, ct_bpe_t **bpe_p)
{
    char *buf = NULL;
    size_t n;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return ct__bpe_load_dir(path, bpe_p);
    size_t plen = strlen(path), tl = strlen(".tiktoken");
    if (plen > tl && strcmp(path + plen - tl, ".tiktoken") == 0)
        return ct_bpe_load_tiktoken(path, bpe_p);
    if (plen > 5 && strcmp(path + plen - 5, ".json") == 0) return ct_bpe_load_hf(path, bpe_p);
    ct_status_t st = ct__bpe_read_file(path, "make one with 'ctrain tokenize train'", &buf, &n);
    if (st != CT_OK) return st;
    st = ct__bpe_parse_ctrain(buf, n, path, bpe_p);
    free(buf);
    return st;
}

/* Length of the token that merge `bad` makes (merges 0..bad already
 * checked to use only earlier ids). */
static int64_t merged_len(const int32_t *merges, int bad)
{
    int64_t *len = malloc(sizeof(int64_t) * (size_t)(257 + bad));
    if (!len) return -1;
    for (int i = 0; i < 256; i++) len[i] = 1;
    for (int r = 0; r <= bad; r++) {
        len[256 + r] = len[merges[2 * r]] + len[merges[2 * r + 1]];
        if (len[256 + r] > BPE_MAX_TOKEN_BYTES) len[256 + r] = BPE_MAX_TOKEN_BYTES + 1;
    }
    int64_t k = len[256 + bad];
    free(len);
    return k;
}

ct_status_t ct__bpe_parse_ctrain(const char *buf, size_t n, const char *path, ct_bpe_t **bpe_p)
{
    ct_status_t st = CT_OK;
    int32_t *merges = NULL;
    const char *p = buf, *end = buf + n;
    size_t ml = strlen(CT__BPE_MAGIC);
    if (n < ml + 1 || memcmp(p, CT__BPE_MAGIC, ml) != 0 || p[ml] != ' ')
        LOAD_FAIL(CT_ERR_CORRUPT, 1, "bad magic: not a ctrain BPE tokenizer (GPT-2's files are "
                  "loaded by giving their directory, tiktoken files by a name ending in "
                  "\".tiktoken\")");
    p += ml + 1;
    int64_t version, vocab;
    if (parse_num(&p, end, INT32_MAX, &version) || p >= end || *p != ' ')
        LOAD_FAIL(CT_ERR_CORRUPT, 1, "malformed header (expected \"%s <version> <vocab_size>\")",
                  CT__BPE_MAGIC);
    if (version < 1 || version > CT__BPE_VERSION)
        LOAD_FAIL(CT_ERR_UNSUPPORTED, 1, "unsupported version %lld (this build reads 1 to %d)",
                  (long long)version, CT__BPE_VERSION);
    p++;
    if (parse_num(&p, end, INT32_MAX, &vocab) || p >= end || *p != '\n')
        LOAD_FAIL(CT_ERR_CORRUPT, 1, "malformed header (expected \"%s <version> <vocab_size>\")",
                  CT__BPE_MAGIC);
    if (vocab < 257 || vocab > CT__BPE_MAX_VOCAB)
        LOAD_FAIL(CT_ERR_CORRUPT, 1, "vocab_size %lld out of range [257, %d]", (long long)vocab,
                  CT__BPE_MAX_VOCAB);
    p++;
    int n_merges = (int)vocab - 257;
    merges = malloc(sizeof(int32_t) * 2 * (size_t)(n_merges + 1));
    if (!merges) {
        st = CT_ERR_NO_MEMORY;
        goto done;
    }
    for (int r = 0; r < n_merges; r++) {
        int line = r + 2;
        if (p >= end)
            LOAD_FAIL(CT_ERR_CORRUPT, line, "truncated: expected %d merges, found %d", n_merges, r);
        int64_t l, rt;
        if (parse_num(&p, end, INT32_MAX, &l) || p >= end || *p != ' ')
            LOAD_FAIL(CT_ERR_CORRUPT, line, "malformed merge (expected \"<left> <right>\")");
        p++;
        if (parse_num(&p, end, INT32_MAX, &rt))
            LOAD_FAIL(CT_ERR_CORRUPT, line, "malformed merge (expected \"<left> <right>\")");
        if (p >= end)
            LOAD_FAIL(CT_ERR_CORRUPT, line, "truncated: no newline at end of file");
        if (*p != '\n')
            LOAD_FAIL(CT_ERR_CORRUPT, line, "malformed merge (expected \"<left> <right>\")");
        p++;
        if (l >= 256 + r || rt >= 256 + r)
            LOAD_FAIL(CT_ERR_CORRUPT, line, "merge %d (%lld %lld) uses an id >= %d", r,
                      (long long)l, (long long)rt, 256 + r);
        merges[2 * r] = (int32_t)l;
        merges[2 * r + 1] = (int32_t)rt;
    }
    if (p < end)
        LOAD_FAIL(CT_ERR_CORRUPT, n_merges + 2, "trailing data after %d merges", n_merges);
    int bad = -1;
    st = ct__bpe_new(merges, n_merges, bpe_p, &bad);
    if (st == CT_ERR_CORRUPT) {
        for (int r = 0; r < bad; r++)
            if (merges[2 * r] == merges[2 * bad] && merges[2 * r + 1] == merges[2 * bad + 1])
                LOAD_FAIL(CT_ERR_CORRUPT, bad + 2, "merge %d (%d %d) repeats line %d", bad,
                          merges[2 * bad], merges[2 * bad + 1], r + 2);
        int64_t len = merged_len(merges, bad);
        if (len > CT__BPE_MAX_TOKEN_BYTES)
            LOAD_FAIL(CT_ERR_CORRUPT, bad + 2, "merge %d makes a token of %s%lld bytes; a token "
                      "may have at most %d", bad, len > BPE_MAX_TOKEN_BYTES ? "over " : "",
                      (long long)(len > BPE_MAX_TOKEN_BYTES ? BPE_MAX_TOKEN_BYTES : len),
                      CT__BPE_MAX_TOKEN_BYTES);
        LOAD_FAIL(CT_ERR_CORRUPT, bad + 2,
                  "merge %d makes the tokens longer than %lld bytes in all", bad,
                  (long long)BPE_MAX_TOKEN_BYTES);
    }
    if (st == CT_ERR_NO_MEMORY) CT_LOG_ERROR("out of memory loading tokenizer %s", path);
    if (st == CT_OK && version == 1) {
        (*bpe_p)->version = 1;
        (*bpe_p)->pretok = CT__BPE_PRETOK_V1;
        CT_LOG_INFO("%s is a version 1 tokenizer: it keeps the approximate pre-tokenizer it was "
                    "trained with; train again for GPT-2's exact one", path);
    }
done:
    free(merges);
    return st;
}
