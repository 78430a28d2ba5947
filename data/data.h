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
CT_MUST_USE ct_status_t ct_shard_read_header(const char *path, ct_shard_info_t *info_p);
/* Checks a shard header already read (`hdr`, 1024 bytes) against the
 * object's size; `name` (a path or URL) is used in the error message. */
CT_MUST_USE ct_status_t ct_shard_check_header(const void *hdr, int64_t size, const char *name,
                                  ct_shard_info_t *info_p);

/* ---- shards: writing ------------------------------------------------------ */
typedef struct ct_shard_writer ct_shard_writer_t;
/* Writes `prefix_000000.bin`, `prefix_000001.bin`, ... rotating every
 * `shard_tokens` tokens. uint16 shards when vocab_size <= 65536, else
 * uint32. The header is written when each shard is closed. */
CT_MUST_USE ct_status_t ct_shard_writer_init(const char *prefix, int64_t shard_tokens, int vocab_size,
                                 ct_shard_writer_t **w_p);
CT_MUST_USE ct_status_t ct_shard_writer_push(ct_shard_writer_t *w, const int32_t *tokens, size_t n);
/* Closes the last shard; returns its status. Always frees w. */
CT_MUST_USE ct_status_t ct_shard_writer_close(ct_shard_writer_t *w, int *n_shards_p, int64_t *n_tokens_p);

/* ---- corpus and sample order ---------------------------------------------
 * A corpus is a list of shards given as a glob, a URL (file://, http(s)://,
 * s3://, gs://), an s3/gs prefix, or a comma-separated list of these (sorted
 * by name within each item). Each shard is cut into samples of T+1 tokens
 * at stride T; samples never cross shards.
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
    int prefetch_mib;  /* chunk buffer; must hold two windows, 0 = just that */
    int threads;       /* background fetch threads, 0 = 4 */
    int max_retries;   /* transient failures retried per request */
    const char *cache_dir; /* local disk cache of remote chunks, NULL/"" = none */
    int cache_mib;     /* its size limit (least recently used chunks go first) */
} ct_loader_opts_t;

CT_MUST_USE ct_status_t ct_loader_init(const ct_loader_opts_t *opts, ct_loader_t **loader_p);
void ct_loader_free(ct_loader_t *l);
/* Samples per epoch. */
int64_t ct_loader_num_samples(const ct_loader_t *l);
/* Reads samples [first, first+count) of the order into inputs and targets,
 * each (count, T). Chunks are fetched ahead by background threads (the
 * chunks of the current and the next window), so in steady state this
 * copies from memory. Not thread-safe on one loader: one consumer. */
CT_MUST_USE ct_status_t ct_loader_read(ct_loader_t *l, int64_t first, int count, int32_t *inputs,
                           int32_t *targets);
/* Seconds ct_loader_read has spent waiting for data, accumulated. */
double ct_loader_wait_seconds(const ct_loader_t *l);
/* Bytes fetched from the byte source (and from the chunk cache). */
int64_t ct_loader_bytes_fetched(const ct_loader_t *l);

/* ---- byte-level BPE tokenizer ---------------------------------------------
 * Byte-level BPE as GPT-2 does it: text is split into pre-tokens (words) by
 * GPT-2's regex with exact Unicode classes (or a tokenizer.json's own
 * pre-tokenizer), merges never cross words, and each word's bytes are merged
 * by rank. decode(encode(x)) == x for any bytes (for a tokenizer.json, unless
 * its normalizer or added tokens' lstrip/rstrip change the text).
 *
 * Tokenizers come from four kinds of files:
 * - ctrain's own (ct_bpe_train, ct_bpe_save): ids 0..255 are the raw bytes,
 *   then one id per merge in merge order, then the end-of-text token (the
 *   last id);
 * - GPT-2's vocab.json + merges.txt (the names Hugging Face uses; OpenAI's
 *   release calls them encoder.json and vocab.bpe), which give GPT-2's ids;
 * - tiktoken rank files (gpt2.tiktoken): "base64(token bytes) rank" lines;
 *   the end-of-text token gets the id after the largest rank, as tiktoken's
 *   gpt2 encoding has it (50256).
 * - Hugging Face tokenizer.json files of byte-level BPE models
 *   (ct_bpe_load_hf), with their own pre-tokenizer, normalizer and added
 *   tokens.
 * With GPT-2's files, encode gives exactly the ids of tiktoken's
 * encode_ordinary and of Hugging Face's GPT-2 tokenizer; with a
 * tokenizer.json, those of Hugging Face tokenizers. */
typedef struct ct_bpe ct_bpe_t;

/* Trains on n texts (documents). vocab_size counts the 256 bytes, the merges
 * and the end-of-text token, so merges = vocab_size - 257. */
CT_MUST_USE ct_status_t ct_bpe_train(const char *const *texts, const size_t *lens, int n, int vocab_size,
                         ct_bpe_t **bpe_p);
/* Writes a ctrain tokenizer file (atomically). Only tokenizers with the
 * ctrain id layout can be written (CT_ERR_UNSUPPORTED otherwise, e.g. for
 * GPT-2's); any tokenizer can be written in GPT-2's format. */
CT_MUST_USE ct_status_t ct_bpe_save(const ct_bpe_t *bpe, const char *path);
/* Loads a tokenizer by path: a directory is read as a Hugging Face model's
 * tokenizer.json, else as GPT-2's files (vocab.json + merges.txt, else
 * encoder.json + vocab.bpe, else gpt2.tiktoken); a path ending in ".json"
 * as a tokenizer.json, one ending in ".tiktoken" as a tiktoken file,
 * anything else as a ctrain file. */
CT_MUST_USE ct_status_t ct_bpe_load(const char *path, ct_bpe_t **bpe_p);
/* Loads a Hugging Face tokenizer.json whose model is byte-level BPE (GPT-2,
 * Llama 3, SmolLM2, Qwen2 style) with its added tokens, normalizer (none or
 * NFC) and pre-tokenizer (Split with a regex or string, Digits, ByteLevel);
 * data/bpe_hf_load.c lists what is supported. Encoding then gives the ids of
 * tokenizers' encode(text, add_special_tokens=False): added tokens (special
 * tokens such as <|begin_of_text|>) spelled in the text ARE matched, as
 * tokenizers does. The end-of-text id (ct_bpe_eot) is the special token
 * the post-processor puts before a text (Llama 3's <|begin_of_text|>), else
 * <|endoftext|>. Such a tokenizer is not written back in other formats. */
CT_MUST_USE ct_status_t ct_bpe_load_hf(const char *path, ct_bpe_t **bpe_p);
/* Loads GPT-2's vocab.json (token string -> id, strings in GPT-2's
 * byte-to-unicode alphabet) and merges.txt ("#version" line, then one
 * "A B" merge per line, by rank). The ids must be 0..V-1 and the vocabulary
 * must hold "<|endoftext|>". */
CT_MUST_USE ct_status_t ct_bpe_load_gpt2(const char *vocab_json, const char *merges_txt, ct_bpe_t **bpe_p);
/* Loads a tiktoken rank file. Merges are rebuilt as Hugging Face converts
 * tiktoken files: token of rank R is the merge of the two parts that BPE with
 * the ranks below R leaves of it. */
CT_MUST_USE ct_status_t ct_bpe_load_tiktoken(const char *path, ct_bpe_t **bpe_p);
/* Writes vocab.json and merges.txt as GPT-2 ships them (atomically each). */
CT_MUST_USE ct_status_t ct_bpe_save_gpt2(const ct_bpe_t *bpe, const char *vocab_json, const char *merges_txt);
/* Writes a tiktoken rank file: ranks are ids, the end-of-text token is left
 * out. Fails (CT_ERR_UNSUPPORTED) unless the file loads back to the same
 * merges: end-of-text must be the last id, every other token a byte or made
 * by a merge, merges in id order, and each token rebuilt from its own parts. */
CT_MUST_USE ct_status_t ct_bpe_save_tiktoken(const ct_bpe_t *bpe, const char *path);
void ct_bpe_free(ct_bpe_t *bpe);
int ct_bpe_vocab_size(const ct_bpe_t *bpe);
int ct_bpe_eot(const ct_bpe_t *bpe);
/* Appends the ids of text[0..len) to *ids (a malloc'd array of *n used and
 * *cap allocated entries, grown with realloc). Not thread-safe per bpe
 * (it caches words). Text that spells "<|endoftext|>" is plain text, except
 * with a tokenizer.json, whose added tokens are matched (ct_bpe_load_hf). */
CT_MUST_USE ct_status_t ct_bpe_encode(ct_bpe_t *bpe, const char *text, size_t len, int32_t **ids, size_t *n,
                          size_t *cap);
/* The end of the pre-token that starts at text[pos] (pos < len) under bpe's
 * pre-tokenizer, or GPT-2's when bpe is NULL or has a tokenizer.json
 * pipeline (use ct_bpe_pretokenize for those). Thread-safe. Bytes that are
 * not valid UTF-8 are single characters of their own, like punctuation. */
size_t ct_bpe_pretok_next(const ct_bpe_t *bpe, const char *text, size_t len, size_t pos);
/* Receives one piece of ct_bpe_pretokenize: a word that merges apply to
 * (id -1), or an added token (its id; p is the text it matched). */
typedef ct_status_t (*ct_bpe_piece_fn)(void *ctx, const char *p, size_t n, int32_t id);
/* Splits text as ct_bpe_encode does before merging, calling fn for each
 * piece in order (GPT-2's pre-tokenizer when bpe is NULL). For tokenizer.json
 * pipelines the words are normalized and may carry a prefix space, so they
 * are not always pieces of text. Stops at and returns fn's first error. Not
 * thread-safe per bpe. */
CT_MUST_USE ct_status_t ct_bpe_pretokenize(ct_bpe_t *bpe, const char *text, size_t len,
                                           ct_bpe_piece_fn fn, void *ctx);
/* Bytes of one token; the end-of-text token decodes to "<|endoftext|>". */
const char *ct_bpe_token(const ct_bpe_t *bpe, int id, int *len_p);
/* Decodes ids to a malloc'd NUL-terminated string (caller frees); *len_p gets
 * the byte length (the text may hold NULs). Invalid ids -> NULL. */
char *ct_bpe_decode(const ct_bpe_t *bpe, const int32_t *ids, size_t n, size_t *len_p);

#endif
