/* Token data: llm.c-compatible shards, the deterministic sample order, and
 * the byte-level BPE tokenizer.
 *
 * Shard format (DESIGN.md): 256 little-endian int32 header words (magic,
 * version, token count, rest 0), then the tokens. Magic 20240520 version 1
 * stores uint16 tokens; magic 20240801 version 7 stores uint32 tokens. The
 * file size must equal 1024 + count * width.
 *
 * Nothing in data/ exits the process; errors are logged once with the file
 * and offset and returned as ct_status_t. */
#ifndef CT_DATA_DATA_H
#define CT_DATA_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define CT_SHARD_MAGIC_U16 20240520
#define CT_SHARD_VERSION_U16 1
#define CT_SHARD_MAGIC_U32 20240801
#define CT_SHARD_VERSION_U32 7
#define CT_SHARD_HEADER_BYTES 1024

/* ---- shards: reading ------------------------------------------------------ */
typedef struct {
    int64_t ntok; /* tokens in the shard */
    int width;    /* bytes per token: 2 or 4 */
} ct_shard_info_t;

/* Reads and checks the header of `path` against its size. */
ct_status_t ct_shard_read_header(const char *path, ct_shard_info_t *info_p);

/* ---- shards: writing ------------------------------------------------------ */
typedef struct ct_shard_writer ct_shard_writer_t;
/* Writes `prefix_000000.bin`, `prefix_000001.bin`, ... rotating every
 * `shard_tokens` tokens. uint16 shards when vocab_size <= 65536, else
 * uint32. The header is written when each shard is closed. */
ct_status_t ct_shard_writer_init(const char *prefix, int64_t shard_tokens, int vocab_size,
                                 ct_shard_writer_t **w_p);
ct_status_t ct_shard_writer_push(ct_shard_writer_t *w, const int32_t *tokens, size_t n);
/* Closes the last shard; returns its status. Always frees w. */
ct_status_t ct_shard_writer_close(ct_shard_writer_t *w, int *n_shards_p, int64_t *n_tokens_p);

/* ---- corpus and sample order ---------------------------------------------
 * A corpus is a list of shards given as a glob or a comma-separated list of
 * paths (sorted by name after glob expansion). Each shard is cut into
 * samples of T+1 tokens at stride T; samples never cross shards.
 *
 * The order of samples is a pure function of (seed, epoch, corpus, T):
 * the corpus is cut into chunks of `chunk_tokens`, chunks are shuffled per
 * epoch, and samples are shuffled within windows of `window_chunks`
 * consecutive shuffled chunks. Sample i of the run (counting from 0 across
 * epochs) is therefore fixed, independent of ranks and batch sizes: a trainer
 * asks for samples by absolute index. With shuffle off the order is file
 * order (validation). */
typedef struct ct_loader ct_loader_t;

typedef struct {
    const char *spec;  /* glob or comma-separated list */
    int T;             /* sequence length */
    int vocab_size;    /* every token must be < vocab_size */
    uint64_t seed;
    int chunk_tokens;  /* > 0 */
    int window_chunks; /* > 0 */
    int shuffle;       /* 0 = file order */
} ct_loader_opts_t;

ct_status_t ct_loader_init(const ct_loader_opts_t *opts, ct_loader_t **loader_p);
void ct_loader_free(ct_loader_t *l);
/* Samples per epoch. */
int64_t ct_loader_num_samples(const ct_loader_t *l);
/* Reads samples [first, first+count) of the order into inputs and targets,
 * each (count, T). Not thread-safe on one loader. */
ct_status_t ct_loader_read(ct_loader_t *l, int64_t first, int count, int32_t *inputs,
                           int32_t *targets);

/* ---- byte-level BPE tokenizer ---------------------------------------------
 * Token ids 0..255 are the raw bytes, then one id per merge in merge order,
 * then the end-of-text token (the last id). Encoding splits text with a
 * GPT-2-style pre-tokeniser, so merges never cross word boundaries, and
 * decode(encode(x)) == x for any bytes. */
typedef struct ct_bpe ct_bpe_t;

/* Trains on n texts (documents). vocab_size counts the 256 bytes, the merges
 * and the end-of-text token, so merges = vocab_size - 257. */
ct_status_t ct_bpe_train(const char *const *texts, const size_t *lens, int n, int vocab_size,
                         ct_bpe_t **bpe_p);
ct_status_t ct_bpe_save(const ct_bpe_t *bpe, const char *path);
ct_status_t ct_bpe_load(const char *path, ct_bpe_t **bpe_p);
void ct_bpe_free(ct_bpe_t *bpe);
int ct_bpe_vocab_size(const ct_bpe_t *bpe);
int ct_bpe_eot(const ct_bpe_t *bpe);
/* Appends the ids of text[0..len) to *ids (a malloc'd array of *n used and
 * *cap allocated entries, grown with realloc). Not thread-safe per bpe
 * (it caches words). */
ct_status_t ct_bpe_encode(ct_bpe_t *bpe, const char *text, size_t len, int32_t **ids, size_t *n,
                          size_t *cap);
/* Bytes of one token; the end-of-text token decodes to "<|endoftext|>". */
const char *ct_bpe_token(const ct_bpe_t *bpe, int id, int *len_p);
/* Decodes ids to a malloc'd NUL-terminated string (caller frees); *len_p gets
 * the byte length (the text may hold NULs). Invalid ids -> NULL. */
char *ct_bpe_decode(const ct_bpe_t *bpe, const int32_t *ids, size_t n, size_t *len_p);

#endif
