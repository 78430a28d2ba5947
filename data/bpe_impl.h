/* Private to data/: the BPE tokenizer's layout, shared by bpe.c (encode,
 * decode, the ctrain format), bpe_gpt2.c (GPT-2 and tiktoken files) and
 * bpe_train.c (training), all three built on bpe_common.c (the object's
 * allocation, index and free, the byte alphabet, buffers, whole files),
 * plus the internal hooks that the tests in tests/data/ check directly
 * (pre-tokenizers, the two word merge algorithms, GPT-2's byte alphabet). */
#ifndef CT_DATA_BPE_IMPL_H
#define CT_DATA_BPE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "data/data.h"

#define CT__BPE_MAGIC "ctrain-bpe"
/* Version 2: GPT-2's exact pre-tokenizer. Version 1 files still load and
 * keep the approximate pre-tokenizer they were trained with. */
#define CT__BPE_VERSION 2
#define CT__BPE_MAX_VOCAB (1 << 24)
/* tokenizer.json lists more merges than tokens (Llama 3: 280,147 for 128,256). */
#define CT__BPE_MAX_MERGES (1 << 26)
#define CT__BPE_EOT_TEXT "<|endoftext|>"
/* The longest token a tokenizer file may hold, in bytes. Real vocabularies
 * stay far below it (GPT-2's longest token has 128 bytes; ctrain's trainer
 * makes none longer than 256); without it a 239-byte file of 28 doubling
 * merges described a token of 2^28 bytes, and a tiktoken file one 128,000
 * bytes long. */
#define CT__BPE_MAX_TOKEN_BYTES 1024

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

/* Pre-tokenizers: GPT-2's regex with exact Unicode classes, or the
 * approximation that ctrain-bpe version 1 files were trained with. */
typedef enum { CT__BPE_PRETOK_GPT2, CT__BPE_PRETOK_V1 } ct__bpe_pretok_t;

/* Ids are arbitrary: a ctrain tokenizer has byte b as id b, merge r making
 * id 256 + r and end-of-text last ("native" layout); GPT-2's vocab.json
 * orders the 256 bytes differently, and other files may add tokens that no
 * merge makes (special tokens). Invariants, checked by ct__bpe_index: the
 * parts of merge r are byte tokens or made by earlier merges, each merge
 * makes a new token whose bytes are its parts' bytes, and no pair repeats.
 * So every pair that holds the token of merge r has a rank above r. */
struct ct_bpe {
    int vocab_size;
    int n_merges;
    int eot;          /* the end-of-text id */
    int native;       /* the ctrain layout (see above), so ct_bpe_save can write it */
    int version;      /* of the ctrain file it was loaded from, or CT__BPE_VERSION */
    ct__bpe_pretok_t pretok;
    int32_t byte_id[256]; /* id of the token of each single byte */
    int32_t *merges;  /* (n_merges, 2): left and right id of merge r */
    int32_t *merge_id; /* (n_merges) id made by merge r */
    char *tok_bytes;  /* the bytes of every token, back to back */
    int64_t *tok_off; /* (vocab_size + 1) offsets into tok_bytes */
    uint64_t *mm_keys; /* merge map, open addressing: (left << 32 | right) -> rank */
    int32_t *mm_rank;
    size_t mm_mask;
    ct__bpe_cache_t cache;
    /* tokenizer.json (bpe_hf_load.c): merges checked only as tokenizers checks
     * them (ct__bpe_index); when their order lets the O(n^2) scan differ
     * from tokenizers' heap merge, only the heap is used. */
    int relaxed, heap_only;
    struct ct__bpe_hf *hf; /* the rest of a tokenizer.json pipeline, or NULL */
    void (*hf_free)(void *);
    /* Scratch for long words (heap merge), grown on demand. */
    int32_t *scr_next, *scr_prev;
    uint64_t *scr_heap;
    size_t scr_cap;
};

/* Builds a native tokenizer (see struct ct_bpe) from n_merges (left, right)
 * pairs. Merge r may only use ids below 256 + r, and no pair may appear
 * twice; otherwise returns CT_ERR_CORRUPT without logging and sets *bad_p to
 * r (the caller knows the file and line). Copies `merges`. */
CT_MUST_USE ct_status_t ct__bpe_new(const int32_t *merges, int n_merges, ct_bpe_t **bpe_p, int *bad_p);

/* For other layouts: allocates a tokenizer of V tokens and n_merges merges
 * (at most CT__BPE_MAX_MERGES) with merges, merge_id and tok_off (V + 1
 * entries) uninitialised and tok_bytes NULL; the caller fills them,
 * byte_id and eot, then calls ct__bpe_index. NULL when out of memory. */
ct_bpe_t *ct__bpe_alloc(int V, int n_merges);

/* Checks the invariants of struct ct_bpe and builds the merge map. On a
 * violation returns CT_ERR_CORRUPT without logging, with *bad_p the merge
 * (or -1 for the byte tokens) and *why_p a static description. With
 * bpe->relaxed (tokenizer.json) only what tokenizers checks is checked:
 * parts may be any tokens, several merges may make one token, and a pair
 * given twice takes its later rank; heap_only is set when merges are out
 * of order. */
CT_MUST_USE ct_status_t ct__bpe_index(ct_bpe_t *bpe, int *bad_p, const char **why_p);

/* Loads GPT-2's files from a directory (bpe_gpt2.c; see ct_bpe_load). */
CT_MUST_USE ct_status_t ct__bpe_load_dir(const char *dir, ct_bpe_t **bpe_p);

/* Reads a whole file into a malloc'd buffer with a NUL after the last byte.
 * Logs failures, with `hint` when the file cannot be opened. */
CT_MUST_USE ct_status_t ct__bpe_read_file(const char *path, const char *hint, char **buf_p, size_t *len_p);
/* Writes path atomically: a temporary file, fsync, rename. Logs failures. */
CT_MUST_USE ct_status_t ct__bpe_write_file(const char *path, const char *data, size_t len);

/* A growing output buffer; after an allocation failure oom is set and
 * further writes are dropped. */
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} ct__bpe_buf_t;
void ct__bpe_buf_put(ct__bpe_buf_t *b, const void *p, size_t n);
void ct__bpe_buf_printf(ct__bpe_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Rank of the merge (left, right), or -1. */
int ct__bpe_rank(const ct_bpe_t *bpe, int32_t left, int32_t right);

/* GPT-2's pre-tokenizer: returns the end of the pre-token that starts at
 * s[pos] (pos < n). Splits exactly like GPT-2's regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * as tiktoken, Hugging Face tokenizers and the Python `regex` module match
 * it on the decoded text, with the Unicode 16.0 classes of
 * data/unicode_tables.h (\s is White_Space). GPT-2 works
 * on str, where invalid UTF-8 cannot occur; here each byte that does not
 * start a valid UTF-8 sequence (overlong forms, surrogates, truncated or
 * stray bytes) is one character of class "other", like punctuation. */
size_t ct__bpe_pretok_next(const uint8_t *s, size_t n, size_t pos);

/* The version 1 pre-tokenizer: the same regex with an approximate Unicode
 * classification: ASCII exactly; for valid UTF-8 multi-byte characters a few
 * common blocks are classified (Latin-1 punctuation and spaces, General
 * Punctuation, arrows and symbols, CJK punctuation, emoji) and everything
 * else counts as a letter. Invalid UTF-8 as above. */
size_t ct__bpe_pretok_next_v1(const uint8_t *s, size_t n, size_t pos);

/* Class of a code point under the GPT-2 pre-tokenizer. */
enum { CT__BPE_CL_OTHER, CT__BPE_CL_LETTER, CT__BPE_CL_NUMBER, CT__BPE_CL_SPACE };
int ct__bpe_cp_class(uint32_t cp);

/* GPT-2's bytes_to_unicode(): the printable character that stands for byte b
 * in vocab.json and merges.txt. ct__bpe_unicode_to_byte is its inverse: the
 * byte, or -1 when cp stands for none. */
uint32_t ct__bpe_byte_to_unicode(uint8_t b);
int ct__bpe_unicode_to_byte(uint32_t cp);

/* Applies the merges to the token ids syms[0..n) in place (lowest rank
 * first, each rank left to right) and returns the new length. use_heap selects the
 * O(n log n) algorithm instead of the O(n^2) scan; both give the same
 * result. The heap variant uses the scratch space in bpe (hence not const)
 * and returns -1 if it cannot be allocated. */
int ct__bpe_merge_word(ct_bpe_t *bpe, int32_t *syms, int n, int use_heap);

/* A binary min-heap of n uint64 entries at h (room for one more on push). */
void ct__bpe_heap_push(uint64_t *h, size_t *n, uint64_t v);
uint64_t ct__bpe_heap_pop(uint64_t *h, size_t *n);

/* The file readers on bytes in memory (buf[0..n), no NUL needed); path
 * names the file in errors. ct_bpe_load, ct_bpe_load_gpt2 and
 * ct_bpe_load_tiktoken read the files and call these, as the fuzzing
 * harness (tests/fuzz/fuzz_tokenizer.c) does. */
CT_MUST_USE ct_status_t ct__bpe_parse_ctrain(const char *buf, size_t n, const char *path,
                                             ct_bpe_t **bpe_p);
CT_MUST_USE ct_status_t ct__bpe_parse_gpt2(const char *vbuf, size_t vn, const char *vocab_json,
                                           const char *mbuf, size_t mn, const char *merges_txt,
                                           ct_bpe_t **bpe_p);
CT_MUST_USE ct_status_t ct__bpe_parse_tiktoken(const char *buf, size_t n, const char *path,
                                               ct_bpe_t **bpe_p);

/* ---- the pre-tokenizer regex engine (bpe_regex.c) ----------------------------
 * Oniguruma's matching (leftmost, alternatives in order, backtracking) for
 * the subset of its syntax that tokenizer.json patterns use; the subset is
 * listed at the top of bpe_regex.c. */
typedef struct ct__re ct__re_t;
typedef struct {
    size_t offset; /* byte offset in the pattern */
    char msg[192]; /* lowercase cause, e.g. "a lookbehind (?<=" */
} ct__re_error_t;

/* Compiles pat[0..len). CT_ERR_UNSUPPORTED for a construct outside the
 * subset, CT_ERR_CORRUPT for a malformed pattern, CT_ERR_NO_MEMORY; then
 * *err says what and where (nothing is logged). Free with ct__re_free. */
CT_MUST_USE ct_status_t ct__re_compile(const char *pat, size_t len, ct__re_t **re_p,
                                       ct__re_error_t *err);
void ct__re_free(ct__re_t *re);
/* The leftmost match in s[0..n) that starts at or after `from` (a
 * character boundary): 1 with [*start_p, *end_p), 0 when there is none, -1
 * when out of memory, -2 when backtracking ran past its limit. Not
 * thread-safe per pattern (it keeps its backtracking stack). */
int ct__re_search(ct__re_t *re, const uint8_t *s, size_t n, size_t from, size_t *start_p,
                  size_t *end_p);
/* The match that starts at s[at] exactly, as ct__re_search. */
int ct__re_match(ct__re_t *re, const uint8_t *s, size_t n, size_t at, size_t *end_p);

/* ---- tokenizer.json (bpe_hf.c, bpe_hf_load.c) and its Unicode data ------------ */
/* A tokenizer.json pipeline (bpe_hf.c runs it, bpe_hf_load.c builds it).
 * Split behaviors as tokenizers names them, and the kinds of steps before
 * ByteLevel (CT__HF_GPT2: a Split whose regex is GPT-2's, run by bpe.c's
 * exact pre-tokenizer). */
typedef enum {
    CT__HF_REMOVED,
    CT__HF_ISOLATED,
    CT__HF_MERGED_PREV,
    CT__HF_MERGED_NEXT,
    CT__HF_CONTIGUOUS
} ct__hf_beh_t;
typedef enum { CT__HF_REGEX, CT__HF_STRING, CT__HF_DIGITS, CT__HF_GPT2 } ct__hf_kind_t;

typedef struct {
    ct__hf_kind_t kind;
    ct__hf_beh_t beh;
    int invert;
    ct__re_t *re; /* CT__HF_REGEX */
    char *str;    /* CT__HF_STRING */
    size_t str_len;
} ct__hf_step_t;

typedef struct {
    char *s; /* the bytes matched: the content, under NFC when normalized */
    size_t len;
    int32_t id;
    uint8_t lstrip, rstrip;
} ct__hf_added_t;

/* Added tokens matched in one form of the text, by first byte, longest first. */
typedef struct {
    ct__hf_added_t *tok;
    int n;
    int32_t start[257]; /* tokens with first byte b: [start[b], start[b + 1]) */
} ct__hf_set_t;

struct ct__bpe_hf {
    int lossless; /* decode(encode(x)) == x: no NFC, Removed, lstrip/rstrip, prefix space */
    int nfc;
    ct__hf_step_t *steps; /* before ByteLevel */
    int n_steps;
    int byte_regex, prefix_space; /* ByteLevel's use_regex and add_prefix_space */
    ct__hf_set_t raw, norm;
    int32_t *whole; /* ignore_merges: model tokens by their bytes (open addressing, -1 empty) */
    size_t whole_mask;
    ct__bpe_buf_t nbuf, pbuf; /* normalized text, a piece with its prefix space */
};

/* Frees a struct ct__bpe_hf (ct_bpe_free calls it through bpe->hf_free). */
void ct__bpe_hf_free(void *hf);

/* Encodes one pre-token (word) of len >= 1 bytes: cache, ignore_merges,
 * merges (bpe.c). */
CT_MUST_USE ct_status_t ct__bpe_encode_word(ct_bpe_t *bpe, const uint8_t *w, size_t len,
                                            int32_t **ids, size_t *n, size_t *cap);
/* ct_bpe_encode and ct_bpe_pretokenize for a tokenizer with a pipeline. */
CT_MUST_USE ct_status_t ct__bpe_hf_encode(ct_bpe_t *bpe, const char *text, size_t len,
                                          int32_t **ids, size_t *n, size_t *cap);
CT_MUST_USE ct_status_t ct__bpe_hf_pretokenize(ct_bpe_t *bpe, const char *text, size_t len,
                                               ct_bpe_piece_fn fn, void *ctx);
/* Whether decode(encode(x)) == x for every x: always, but for a pipeline
 * with NFC, a Removed split, a prefix space or added tokens that swallow
 * whitespace or decode to other bytes than they match. */
int ct__bpe_hf_lossless(const ct_bpe_t *bpe);
/* With ignore_merges: the model token whose bytes are w[0..n), else -1. */
int32_t ct__bpe_hf_whole(const ct_bpe_t *bpe, const uint8_t *w, size_t n);
/* Logs that a tokenizer.json tokenizer is not written to path as another
 * format, and returns CT_ERR_UNSUPPORTED. */
CT_MUST_USE ct_status_t ct__bpe_refuse_hf(const char *path);
/* Reads tokenizer.json bytes in memory (ct_bpe_load_hf reads the file). */
CT_MUST_USE ct_status_t ct__bpe_parse_hf(const char *buf, size_t n, const char *path,
                                         ct_bpe_t **bpe_p);

/* NFC of s[0..n) as Hugging Face tokenizers computes it (bpe_nfc.c): 1 when
 * NFC leaves the text as it is (nothing written), 0 with the normalized
 * bytes appended to out, -1 when out of memory. */
int ct__bpe_nfc(const uint8_t *s, size_t n, ct__bpe_buf_t *out);

/* Unicode properties of a code point (bpe_regex.c, from
 * data/unicode_hf_tables.h): the general category (CT__BPE_UP_CAT bits:
 * Lu Ll Lt Lm Lo Mn Mc Me Nd Nl No Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So Zs Zl
 * Zp Cc Cf Cs Co Cn, from 0), White_Space, and whether NFC may change the
 * code point or its neighbours. Above U+10FFFF: Cn. */
#define CT__BPE_UP_CAT 0x1f
#define CT__BPE_UP_WS 0x20
#define CT__BPE_UP_NFC 0x40
#define CT__BPE_UP_ND 8
#define CT__BPE_UP_NL 9
#define CT__BPE_UP_NO 10
int ct__bpe_uprops(uint32_t cp);

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

/* Grows the array *p (of *cap elements of elem bytes) to hold `need`
 * elements, doubling from 256; 0 on success, -1 (unchanged) when out of
 * memory. Shared by the encoder and the trainer. */
int ct__bpe_grow(void **p, size_t *cap, size_t need, size_t elem);

#endif
