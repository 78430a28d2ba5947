/* Private to data/: the BPE tokenizer's layout, shared by bpe.c (encode,
 * decode, save, load) and bpe_train.c (training), plus the internal hooks
 * that tests/data/test_bpe.c checks directly (pre-tokenizer, the two word
 * merge algorithms). */
#ifndef CT_DATA_BPE_IMPL_H
#define CT_DATA_BPE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "data/data.h"

#define CT__BPE_MAGIC "ctrain-bpe"
#define CT__BPE_VERSION 1
#define CT__BPE_MAX_VOCAB (1 << 24)
#define CT__BPE_EOT_TEXT "<|endoftext|>"

/* Per-word encode cache: pre-token bytes -> token ids. Words longer than
 * CT__BPE_CACHE_MAX_KEY bytes are not cached; the cache is emptied when it
 * holds CT__BPE_CACHE_MAX_ENTRIES words or CT__BPE_CACHE_MAX_BYTES bytes of
 * keys and ids. */
#define CT__BPE_CACHE_MAX_KEY 256
#define CT__BPE_CACHE_MAX_ENTRIES (1 << 20)
#define CT__BPE_CACHE_MAX_BYTES ((size_t)64 << 20)

typedef struct {
    uint64_t hash;
    uint64_t key_off; /* into keys */
    uint64_t ids_off; /* into ids */
    uint32_t key_len;
    uint32_t n_ids;
} ct__bpe_cache_entry_t;

typedef struct {
    uint32_t *slots; /* open addressing: 0 = empty, else entry index + 1 */
    size_t mask;     /* slots - 1 */
    ct__bpe_cache_entry_t *ents;
    size_t n, cap;
    char *keys;
    size_t keys_n, keys_cap;
    int32_t *ids;
    size_t ids_n, ids_cap;
} ct__bpe_cache_t;

struct ct_bpe {
    int vocab_size;   /* 256 + n_merges + 1 */
    int n_merges;
    int32_t *merges;  /* (n_merges, 2): left and right id of merge r; it makes id 256 + r */
    char *tok_bytes;  /* the bytes of every token, back to back */
    int64_t *tok_off; /* (vocab_size + 1) offsets into tok_bytes */
    uint64_t *mm_keys; /* merge map, open addressing: (left << 32 | right) -> rank */
    int32_t *mm_rank;
    size_t mm_mask;
    ct__bpe_cache_t cache;
    /* Scratch for long words (heap merge), grown on demand. */
    int32_t *scr_next, *scr_prev;
    uint64_t *scr_heap;
    size_t scr_cap;
};

/* Builds a tokenizer from n_merges (left, right) pairs. Merge r may only use
 * ids below 256 + r, and no pair may appear twice; otherwise returns
 * CT_ERR_CORRUPT without logging and sets *bad_p to r (the caller knows the
 * file and line). Copies `merges`. */
ct_status_t ct__bpe_new(const int32_t *merges, int n_merges, ct_bpe_t **bpe_p, int *bad_p);

/* Rank of the merge (left, right), or -1. */
int ct__bpe_rank(const ct_bpe_t *bpe, int32_t left, int32_t right);

/* GPT-2-style pre-tokenizer: returns the end of the pre-token that starts at
 * s[pos] (pos < n). Splits like
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * with an approximate Unicode classification: ASCII exactly; for valid UTF-8
 * multi-byte characters a few common blocks are classified (Latin-1
 * punctuation and spaces, General Punctuation, arrows and symbols, CJK
 * punctuation, emoji) and everything else counts as a letter. Invalid UTF-8
 * bytes count as punctuation, one byte each. */
size_t ct__bpe_pretok_next(const uint8_t *s, size_t n, size_t pos);

/* Applies the merges to syms[0..n) in place (lowest rank first, each rank
 * left to right) and returns the new length. use_heap selects the
 * O(n log n) algorithm instead of the O(n^2) scan; both give the same
 * result. The heap variant uses the scratch space in bpe (hence not const)
 * and returns -1 if it cannot be allocated. */
int ct__bpe_merge_word(ct_bpe_t *bpe, int32_t *syms, int n, int use_heap);

/* 64-bit FNV-1a with a final mix. */
static inline uint64_t ct__bpe_hash_bytes(const void *p, size_t n)
{
    const uint8_t *s = (const uint8_t *)p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
    h ^= h >> 32;
    return h;
}

/* splitmix64 finaliser, for integer keys. */
static inline uint64_t ct__bpe_hash_u64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline uint64_t ct__bpe_pair_key(int32_t left, int32_t right)
{
    return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
}

#endif
