/* Hugging Face tokenizer.json files whose model is byte-level BPE (GPT-2,
 * Llama 3, SmolLM2, Qwen2 and their kin), read into the tokenizer of bpe.c
 * together with the rest of their pipeline, which encoding then follows as
 * tokenizers' Tokenizer.encode(text, add_special_tokens=False) does:
 *
 * 1. Added tokens ("added_tokens", special or not) are cut out of the text:
 *    those with "normalized": false from the raw text, then the normalizer
 *    runs on each piece left, then those with "normalized": true are cut
 *    out of the normalized pieces; leftmost-longest, and "lstrip"/"rstrip"
 *    swallow the whitespace beside a token, as tokenizers does.
 * 2. "normalizer": none or NFC (bpe_nfc.c; also in a Sequence).
 * 3. "pre_tokenizer": ByteLevel, alone or last in a Sequence after Split
 *    steps (a Regex, run by bpe_regex.c, or a String; all five behaviors;
 *    invert) and Digits steps. ByteLevel's own regex (use_regex) is
 *    GPT-2's, run by bpe.c's exact pre-tokenizer.
 * 4. "model": BPE over the bytes, merges by rank, in either format ("a b"
 *    strings or [a, b] pairs), "ignore_merges" honoured (a word that is
 *    itself in the vocabulary is one token, as Llama 3 sets).
 * Decoding is byte-level; an added token decodes to its content.
 *
 * Ids are the ones tokenizers gives: the model's vocabulary, then each added
 * token not in it gets the next id in file order (a different "id" in the
 * file draws a warning, as tokenizers gives). The document separator
 * (ct_bpe_eot) is the special token the post_processor puts before a
 * sequence (Llama 3's <|begin_of_text|>), else <|endoftext|>.
 *
 * Refused, with the file and the key: models other than BPE (Unigram,
 * WordPiece, WordLevel), BPE dropout, subword prefixes and suffixes, a
 * vocabulary without the 256 byte characters, normalizers, pre-tokenizers
 * and decoders other than those above, steps after ByteLevel, patterns
 * outside bpe_regex.c's subset, "single_word" added tokens. Ignored:
 * truncation and padding (ctrain never truncates or pads), the rest of the
 * post_processor, trim_offsets. */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "core/utf8.h"
#include "data/bpe_impl.h"

#define HF_GPT2_PAT "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define HF_HINT "ctrain reads tokenizer.json files of byte-level BPE models (GPT-2, Llama 3, " \
                "SmolLM2, Qwen2 style); see data/bpe_hf.c for what is supported"
/* Pieces are encoded in words of at most this many bytes. */
#define HF_MAX_WORD (1 << 30)

typedef enum { BEH_REMOVED, BEH_ISOLATED, BEH_MERGED_PREV, BEH_MERGED_NEXT, BEH_CONTIGUOUS } hf_beh_t;
typedef enum { STEP_REGEX, STEP_STRING, STEP_DIGITS, STEP_GPT2 } hf_kind_t;

typedef struct {
    hf_kind_t kind;
    hf_beh_t beh;
    int invert;
    ct__re_t *re; /* STEP_REGEX */
    char *str;    /* STEP_STRING */
    size_t str_len;
} hf_step_t;

typedef struct {
    char *s; /* the bytes matched: the content, under NFC when normalized */
    size_t len;
    int32_t id;
    uint8_t lstrip, rstrip;
} hf_added_t;

/* Added tokens matched in one form of the text, by first byte, longest first. */
typedef struct {
    hf_added_t *tok;
    int n;
    int32_t start[257]; /* tokens with first byte b: [start[b], start[b + 1]) */
} hf_set_t;

struct ct__bpe_hf {
    int lossless; /* decode(encode(x)) == x: no NFC, Removed, lstrip/rstrip, prefix space */
    int nfc;
    hf_step_t *steps; /* before ByteLevel */
    int n_steps;
    int byte_regex, prefix_space; /* ByteLevel's use_regex and add_prefix_space */
    hf_set_t raw, norm;
    int32_t *whole; /* ignore_merges: model tokens by their bytes (open addressing, -1 empty) */
    size_t whole_mask;
    ct__bpe_buf_t nbuf, pbuf; /* normalized text, a piece with its prefix space */
};

static void hf_free(void *p)
{
    struct ct__bpe_hf *hf = p;
    if (!hf) return;
    for (int i = 0; i < hf->n_steps; i++) {
        ct__re_free(hf->steps[i].re);
        free(hf->steps[i].str);
    }
    free(hf->steps);
    for (int i = 0; i < hf->raw.n; i++) free(hf->raw.tok[i].s);
    for (int i = 0; i < hf->norm.n; i++) free(hf->norm.tok[i].s);
    free(hf->raw.tok);
    free(hf->norm.tok);
    free(hf->whole);
    free(hf->nbuf.p);
    free(hf->pbuf.p);
    free(hf);
}

/* ---- characters ------------------------------------------------------------------- */

/* Length of the character at s[i] (i < n): invalid UTF-8 is one byte. */
static size_t char_len(const uint8_t *s, size_t n, size_t i)
{
    uint32_t cp;
    size_t k = s[i] < 0x80 ? 1 : ct_utf8_decode(s + i, n - i, &cp);
    return k ? k : 1;
}

static int is_ws(uint32_t cp) { return (ct__bpe_uprops(cp) & CT__BPE_UP_WS) != 0; }

/* Start of the whitespace that ends s[0..end). */
static size_t ws_before(const uint8_t *s, size_t end)
{
    while (end > 0) {
        size_t q = end - 1;
        while (q > 0 && end - q < 4 && (s[q] & 0xC0) == 0x80) q--;
        uint32_t cp;
        size_t k = ct_utf8_decode(s + q, end - q, &cp);
        if (k != end - q || !is_ws(cp)) break;
        end = q;
    }
    return end;
}

/* Length of the whitespace that starts s[0..n). */
static size_t ws_after(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = ct_utf8_decode(s + i, n - i, &cp);
        if (!k || !is_ws(cp)) break;
        i += k;
    }
    return i;
}

/* ---- the pipeline ----------------------------------------------------------------- */

/* Receives each piece: a word to merge (id -1) or an added token (its id;
 * the bytes are the text it matched). */
typedef ct_status_t (*hf_sink_t)(void *ctx, const uint8_t *p, size_t n, int32_t id);

typedef struct {
    ct_bpe_t *bpe;
    hf_sink_t sink;
    void *ctx;
} hf_run_t;

static CT_MUST_USE ct_status_t run_steps(hf_run_t *r, int i, const uint8_t *s, size_t n);

typedef struct {
    hf_run_t *r;
    int next; /* the step the pieces go to */
    const uint8_t *s;
    hf_beh_t beh;
    int invert;
    size_t pa, pb; /* the pending piece */
    int have, pm;  /* a piece is pending; it (or the span before) is a match */
} fold_t;

static CT_MUST_USE ct_status_t fold_emit(fold_t *f, size_t a, size_t b)
{
    return b > a ? run_steps(f->r, f->next, f->s + a, b - a) : CT_OK;
}

/* tokenizers' NormalizedString::split: spans (match or not, in order,
 * covering the piece) folded into pieces by the behavior; empty pieces
 * dropped. */
static CT_MUST_USE ct_status_t fold_span(fold_t *f, size_t a, size_t b, int m)
{
    ct_status_t st = CT_OK;
    if (f->invert) m = !m;
    switch (f->beh) {
    case BEH_ISOLATED: return fold_emit(f, a, b);
    case BEH_REMOVED: return m ? CT_OK : fold_emit(f, a, b);
    case BEH_CONTIGUOUS: /* runs of spans of one kind become one piece */
        if (f->have && m == f->pm) {
            f->pb = b;
            return CT_OK;
        }
        break;
    case BEH_MERGED_PREV: /* a match joins the piece before it, unless that ends in a match */
        if (m && f->have && !f->pm) {
            f->pb = b;
            f->pm = m;
            return CT_OK;
        }
        break;
    case BEH_MERGED_NEXT: /* a match joins the span after it, unless that is a match */
        if (f->have) {
            f->have = 0;
            if (!m) return fold_emit(f, f->pa, b);
            st = fold_emit(f, f->pa, f->pb);
        }
        if (!m) return st == CT_OK ? fold_emit(f, a, b) : st;
        break;
    }
    if (st == CT_OK && f->have) st = fold_emit(f, f->pa, f->pb);
    f->pa = a;
    f->pb = b;
    f->pm = m;
    f->have = 1;
    return st;
}

static CT_MUST_USE ct_status_t fold_end(fold_t *f)
{
    return f->have ? fold_emit(f, f->pa, f->pb) : CT_OK;
}

/* The ByteLevel step: the prefix space, GPT-2's regex, then the model. */
static CT_MUST_USE ct_status_t byte_level(hf_run_t *r, const uint8_t *s, size_t n)
{
    struct ct__bpe_hf *hf = r->bpe->hf;
    if (hf->prefix_space && s[0] != ' ') {
        hf->pbuf.n = 0;
        ct__bpe_buf_put(&hf->pbuf, " ", 1);
        ct__bpe_buf_put(&hf->pbuf, s, n);
        if (hf->pbuf.oom) {
            CT_LOG_ERROR("bpe encode: out of memory for a piece of %zu bytes", n);
            return CT_ERR_NO_MEMORY;
        }
        s = (const uint8_t *)hf->pbuf.p;
        n++;
    }
    if (!hf->byte_regex) return r->sink(r->ctx, s, n, -1);
    for (size_t pos = 0; pos < n;) {
        size_t end = ct__bpe_pretok_next(s, n, pos);
        ct_status_t st = r->sink(r->ctx, s + pos, end - pos, -1);
        if (st != CT_OK) return st;
        pos = end;
    }
    return CT_OK;
}

static CT_MUST_USE ct_status_t run_steps(hf_run_t *r, int i, const uint8_t *s, size_t n)
{
    struct ct__bpe_hf *hf = r->bpe->hf;
    if (i == hf->n_steps) return byte_level(r, s, n);
    const hf_step_t *step = &hf->steps[i];
    fold_t f = {.r = r, .next = i + 1, .s = s, .beh = step->beh, .invert = step->invert};
    ct_status_t st = CT_OK;
    size_t prev = 0;
    switch (step->kind) {
    case STEP_GPT2: /* its matches cover the text */
        for (size_t pos = 0; pos < n && st == CT_OK;) {
            size_t end = ct__bpe_pretok_next(s, n, pos);
            st = fold_span(&f, pos, end, 1);
            pos = end;
        }
        prev = n;
        break;
    case STEP_REGEX: {
        /* Oniguruma's find_iter: an empty match right after the previous
         * match is skipped by searching again one character on. */
        size_t from = 0, last = 0;
        int have_last = 0;
        while (st == CT_OK && from <= n) {
            size_t ms, me;
            int k = ct__re_search(step->re, s, n, from, &ms, &me);
            if (k == 0) break;
            if (k < 0) {
                CT_LOG_ERROR("bpe encode: %s matching the pre-tokenizer's pattern on a piece of "
                             "%zu bytes", k == -1 ? "out of memory" : "too much backtracking", n);
                return k == -1 ? CT_ERR_NO_MEMORY : CT_ERR_UNSUPPORTED;
            }
            if (ms == me && have_last && last == me) {
                from += from < n ? char_len(s, n, from) : 1;
                continue;
            }
            from = last = me;
            have_last = 1;
            if (prev != ms) st = fold_span(&f, prev, ms, 0);
            if (st == CT_OK) st = fold_span(&f, ms, me, 1);
            prev = me;
        }
        break;
    }
    case STEP_STRING:
        for (;;) {
            const uint8_t *hit = memmem(s + prev, n - prev, step->str, step->str_len);
            if (!hit || st != CT_OK) break;
            size_t ms = (size_t)(hit - s);
            if (prev != ms) st = fold_span(&f, prev, ms, 0);
            if (st == CT_OK) st = fold_span(&f, ms, ms + step->str_len, 1);
            prev = ms + step->str_len;
        }
        break;
    case STEP_DIGITS: /* each numeric character (Nd, Nl, No) is a match */
        for (size_t pos = 0; pos < n && st == CT_OK;) {
            size_t k = char_len(s, n, pos);
            uint32_t cp = s[pos];
            if (k > 1 && ct_utf8_decode(s + pos, k, &cp) != k) cp = 0x110000;
            int cat = ct__bpe_uprops(cp) & CT__BPE_UP_CAT;
            if (cat == CT__BPE_UP_ND || cat == CT__BPE_UP_NL || cat == CT__BPE_UP_NO) {
                if (prev != pos) st = fold_span(&f, prev, pos, 0);
                if (st == CT_OK) st = fold_span(&f, pos, pos + k, 1);
                prev = pos + k;
            }
            pos += k;
        }
        break;
    }
    if (st == CT_OK && prev != n) st = fold_span(&f, prev, n, 0);
    return st == CT_OK ? fold_end(&f) : st;
}

/* The longest added token of the set at s[0..n), or NULL. */
static const hf_added_t *added_at(const hf_set_t *set, const uint8_t *s, size_t n)
{
    for (int k = set->start[s[0]]; k < set->start[s[0] + 1]; k++) {
        const hf_added_t *t = &set->tok[k];
        if (t->len <= n && memcmp(t->s, s, t->len) == 0) return t;
    }
    return NULL;
}

/* tokenizers' AddedVocabulary::find_matches: cuts the set's tokens out of
 * s[0..n); the pieces between go to `rest` (stage 2: normalize, or the
 * pre-tokenizer). */
static CT_MUST_USE ct_status_t cut_added(hf_run_t *r, const hf_set_t *set, const uint8_t *s,
                                         size_t n, int stage);

static CT_MUST_USE ct_status_t stage_rest(hf_run_t *r, const uint8_t *s, size_t n, int stage)
{
    struct ct__bpe_hf *hf = r->bpe->hf;
    if (stage == 2) return run_steps(r, 0, s, n);
    if (hf->nfc) {
        hf->nbuf.n = 0;
        int k = ct__bpe_nfc(s, n, &hf->nbuf);
        if (k < 0) {
            CT_LOG_ERROR("bpe encode: out of memory normalizing %zu bytes", n);
            return CT_ERR_NO_MEMORY;
        }
        if (k == 0) {
            s = (const uint8_t *)hf->nbuf.p;
            n = hf->nbuf.n;
        }
    }
    return cut_added(r, &hf->norm, s, n, 2);
}

static CT_MUST_USE ct_status_t cut_added(hf_run_t *r, const hf_set_t *set, const uint8_t *s,
                                         size_t n, int stage)
{
    size_t done = 0, pos = 0; /* done: the end of the last token, with what it swallowed */
    ct_status_t st = CT_OK;
    while (set->n > 0 && pos < n && st == CT_OK) {
        const hf_added_t *t = NULL;
        size_t at = pos;
        for (; at < n; at++)
            if (set->start[s[at]] < set->start[s[at] + 1] && (t = added_at(set, s + at, n - at)))
                break;
        if (!t) break;
        size_t start = at, stop = at + t->len;
        pos = stop; /* the search goes on after the token itself */
        if (t->lstrip) {
            start = ws_before(s, start);
            if (start < done) start = done;
        }
        if (t->rstrip) stop += ws_after(s + stop, n - stop);
        if (done < start) st = stage_rest(r, s + done, start - done, stage);
        if (st == CT_OK) st = r->sink(r->ctx, s + start, stop - start, t->id);
        done = stop;
    }
    if (st == CT_OK && done < n) st = stage_rest(r, s + done, n - done, stage);
    return st;
}

static CT_MUST_USE ct_status_t hf_run(hf_run_t *r, const char *text, size_t len)
{
    if (len == 0) return CT_OK;
    return cut_added(r, &r->bpe->hf->raw, (const uint8_t *)text, len, 1);
}

typedef struct {
    ct_bpe_t *bpe;
    int32_t **ids;
    size_t *n, *cap;
} enc_t;

static CT_MUST_USE ct_status_t sink_encode(void *ctx, const uint8_t *p, size_t n, int32_t id)
{
    enc_t *e = ctx;
    ct_status_t st;
    if (id >= 0) {
        if (*e->n == *e->cap && ct__bpe_grow((void **)e->ids, e->cap, *e->n + 1, sizeof(int32_t))) {
            CT_LOG_ERROR("bpe encode: out of memory growing the id array");
            return CT_ERR_NO_MEMORY;
        }
        (*e->ids)[(*e->n)++] = id;
        return CT_OK;
    }
    for (; n > HF_MAX_WORD; p += HF_MAX_WORD, n -= HF_MAX_WORD)
        if ((st = ct__bpe_encode_word(e->bpe, p, HF_MAX_WORD, e->ids, e->n, e->cap)) != CT_OK)
            return st;
    return ct__bpe_encode_word(e->bpe, p, n, e->ids, e->n, e->cap);
}

ct_status_t ct__bpe_hf_encode(ct_bpe_t *bpe, const char *text, size_t len, int32_t **ids,
                              size_t *n, size_t *cap)
{
    enc_t e = {.bpe = bpe, .ids = ids, .n = n, .cap = cap};
    hf_run_t r = {.bpe = bpe, .sink = sink_encode, .ctx = &e};
    return hf_run(&r, text, len);
}

typedef struct {
    ct_bpe_piece_fn fn;
    void *ctx;
} piece_t;

static CT_MUST_USE ct_status_t sink_piece(void *ctx, const uint8_t *p, size_t n, int32_t id)
{
    piece_t *q = ctx;
    return q->fn(q->ctx, (const char *)p, n, id);
}

ct_status_t ct__bpe_hf_pretokenize(ct_bpe_t *bpe, const char *text, size_t len,
                                   ct_bpe_piece_fn fn, void *ctx)
{
    piece_t q = {.fn = fn, .ctx = ctx};
    hf_run_t r = {.bpe = bpe, .sink = sink_piece, .ctx = &q};
    return hf_run(&r, text, len);
}

int ct__bpe_hf_lossless(const ct_bpe_t *bpe) { return !bpe->hf || bpe->hf->lossless; }

int32_t ct__bpe_hf_whole(const ct_bpe_t *bpe, const uint8_t *w, size_t n)
{
    const struct ct__bpe_hf *hf = bpe->hf;
    if (!hf->whole) return -1;
    for (size_t i = ct__bpe_hash_bytes(w, n) & hf->whole_mask;; i = (i + 1) & hf->whole_mask) {
        int32_t id = hf->whole[i];
        if (id < 0) return -1;
        if ((size_t)(bpe->tok_off[id + 1] - bpe->tok_off[id]) == n &&
            memcmp(bpe->tok_bytes + bpe->tok_off[id], w, n) == 0)
            return id;
    }
}

/* ---- loading ------------------------------------------------------------------------ */

typedef struct {
    const char *path;
    struct json_object *root;
    ct_status_t st;
    /* the model's vocabulary: string -> id (json-c's object), and by id */
    struct json_object *vocab;
    int nv; /* model tokens: ids 0..nv-1 */
    const char **vstr;
    size_t *vlen;
    uint8_t *vspecial; /* a string outside the byte alphabet: kept as UTF-8 */
    int V;
    char *scratch; /* for NUL-terminated lookups, grown by scratch_for */
    size_t scap;
} load_t;

/* L->scratch with room for need bytes, or NULL when out of memory. */
static char *scratch_for(load_t *L, size_t need)
{
    if (need > L->scap) {
        size_t nc = 2 * need;
        char *p = realloc(L->scratch, nc);
        if (!p) return NULL;
        L->scratch = p;
        L->scap = nc;
    }
    return L->scratch;
}

static int fail(load_t *L, ct_status_t st, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(load_t *L, ct_status_t st, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    CT_LOG_ERROR("%s: %s%s%s\n---> HINT: %s", L->path, key, *key ? ": " : "", msg,
                 st == CT_ERR_UNSUPPORTED ? HF_HINT
                 : st == CT_ERR_NO_MEMORY ? "the tokenizer needs more memory than is free"
                                          : "is this a tokenizer.json that Hugging Face "
                                            "tokenizers writes?");
    L->st = st;
    return -1;
}

/* obj[key]: the value (NULL for JSON null), *found_p whether the key is there. */
static struct json_object *member(struct json_object *obj, const char *key, int *found_p)
{
    struct json_object *v = NULL;
    int found = obj && json_object_is_type(obj, json_type_object) &&
                json_object_object_get_ex(obj, key, &v);
    if (found_p) *found_p = found;
    return found ? v : NULL;
}

static const char *type_of(struct json_object *obj)
{
    struct json_object *t = member(obj, "type", NULL);
    return t && json_object_is_type(t, json_type_string) ? json_object_get_string(t) : NULL;
}

/* A boolean member: 0 or 1, dflt when absent or null, -1 (logged) otherwise. */
static int get_bool(load_t *L, struct json_object *obj, const char *key, const char *path, int dflt)
{
    struct json_object *v = member(obj, key, NULL);
    if (!v) return dflt;
    if (!json_object_is_type(v, json_type_boolean)) {
        char k[256];
        snprintf(k, sizeof k, "%s.%s", path, key);
        return fail(L, CT_ERR_CORRUPT, k, "expected true or false");
    }
    return json_object_get_boolean(v) ? 1 : 0;
}

/* Decodes the byte-alphabet string s[0..n) into out (at most n bytes):
 * the byte count, or -1 when a character is outside the alphabet. */
static long alpha_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = ct_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        int b = k ? ct__bpe_unicode_to_byte(cp) : -1;
        if (b < 0) return -1;
        out[o++] = (char)b;
        i += k;
    }
    return (long)o;
}

/* The id of vocabulary string s[0..n), or -1. */
static int32_t vocab_id(load_t *L, const char *s, size_t n, char *scratch)
{
    memcpy(scratch, s, n);
    scratch[n] = 0;
    if (strlen(scratch) != n) return -1; /* a NUL inside: json-c's keys cannot hold it */
    struct json_object *v;
    if (!json_object_object_get_ex(L->vocab, scratch, &v)) return -1;
    int64_t id;
    if (ct_json_get_int64(v, &id) != 0 || id < 0 || id >= L->nv) return -1;
    return (int32_t)id;
}

static int load_vocab(load_t *L, struct json_object *model)
{
    struct json_object *vocab = member(model, "vocab", NULL);
    if (!vocab || !json_object_is_type(vocab, json_type_object))
        return fail(L, CT_ERR_CORRUPT, "model.vocab", "expected an object of token strings to ids");
    L->vocab = vocab;
    int nv = json_object_object_length(vocab);
    if (nv < 256 || nv >= CT__BPE_MAX_VOCAB)
        return fail(L, CT_ERR_CORRUPT, "model.vocab", "%d tokens; a byte-level vocabulary has at "
                    "least the 256 bytes and at most %d tokens", nv, CT__BPE_MAX_VOCAB - 1);
    L->nv = nv;
    L->vstr = calloc((size_t)nv, sizeof *L->vstr);
    L->vlen = calloc((size_t)nv, sizeof *L->vlen);
    if (!L->vstr || !L->vlen) return fail(L, CT_ERR_NO_MEMORY, "model.vocab", "out of memory");
    json_object_object_foreach(vocab, key, val) {
        int64_t id;
        char k[CT_LOG_CLIP_BUF + 32];
        if (ct_json_get_int64(val, &id) != 0 || id < 0) {
            snprintf(k, sizeof k, "model.vocab[\"%s\"]", ct_log_clip(key, k + 32));
            return fail(L, CT_ERR_CORRUPT, k, "expected a token id (an integer >= 0)");
        }
        if (id >= nv) {
            snprintf(k, sizeof k, "model.vocab[\"%s\"]", ct_log_clip(key, k + 32));
            return fail(L, CT_ERR_CORRUPT, k, "id %lld, but the vocabulary has %d tokens (ids must "
                        "be 0..%d)", (long long)id, nv, nv - 1);
        }
        if (L->vstr[id]) {
            snprintf(k, sizeof k, "model.vocab[\"%s\"]", ct_log_clip(key, k + 32));
            return fail(L, CT_ERR_CORRUPT, k, "id %lld is given to two tokens", (long long)id);
        }
        L->vstr[id] = key;
        L->vlen[id] = strlen(key);
    }
    return 0;
}

typedef struct {
    const char *content;
    size_t len;
    char *norm; /* the content under the normalizer, when "normalized" (else NULL) */
    size_t norm_len;
    int32_t id;
    uint8_t lstrip, rstrip, normalized;
} added_in_t;

static void added_free(added_in_t *a, int n)
{
    for (int k = 0; a && k < n; k++) free(a[k].norm);
    free(a);
}

/* added_tokens, with the ids tokenizers gives them (see the top). */
static int load_added(load_t *L, int nfc, added_in_t **out_p, int *n_p)
{
    struct json_object *arr = member(L->root, "added_tokens", NULL);
    *out_p = NULL;
    *n_p = 0;
    L->V = L->nv;
    if (!arr) return 0;
    if (!json_object_is_type(arr, json_type_array))
        return fail(L, CT_ERR_CORRUPT, "added_tokens", "expected an array");
    size_t count = json_object_array_length(arr);
    added_in_t *a = calloc(count + 1, sizeof *a);
    if (!a) return fail(L, CT_ERR_NO_MEMORY, "added_tokens", "out of memory");
    *out_p = a;
    int n = 0;
    int64_t next = L->nv;
    for (size_t i = 0; i < count; i++) {
        char key[96];
        snprintf(key, sizeof key, "added_tokens[%zu]", i);
        struct json_object *t = json_object_array_get_idx(arr, i);
        struct json_object *c = member(t, "content", NULL);
        if (!c || !json_object_is_type(c, json_type_string))
            return fail(L, CT_ERR_CORRUPT, key, "expected an object with a \"content\" string");
        const char *content = json_object_get_string(c);
        size_t len = (size_t)json_object_get_string_len(c);
        int sw = get_bool(L, t, "single_word", key, 0);
        int ls = get_bool(L, t, "lstrip", key, 0);
        int rs = get_bool(L, t, "rstrip", key, 0);
        int nz = get_bool(L, t, "normalized", key, 1);
        if (sw < 0 || ls < 0 || rs < 0 || nz < 0) return -1;
        if (sw) {
            char k2[128];
            snprintf(k2, sizeof k2, "%s.single_word", key);
            return fail(L, CT_ERR_UNSUPPORTED, k2, "true: added tokens that match only whole "
                        "words are not supported");
        }
        if (len == 0) continue; /* tokenizers ignores it */
        if (len > CT__BPE_MAX_TOKEN_BYTES)
            return fail(L, CT_ERR_CORRUPT, key, "a token of %zu bytes; a token may have at most %d",
                        len, CT__BPE_MAX_TOKEN_BYTES);
        int k;
        for (k = 0; k < n; k++)
            if (a[k].len == len && memcmp(a[k].content, content, len) == 0) break;
        int32_t id;
        if (k < n) {
            id = a[k].id; /* the same content again: its flags replace the first's */
        } else {
            char *scratch = scratch_for(L, len + 1);
            if (!scratch) return fail(L, CT_ERR_NO_MEMORY, key, "out of memory");
            id = vocab_id(L, content, len, scratch);
            if (id < 0) {
                if (next >= CT__BPE_MAX_VOCAB)
                    return fail(L, CT_ERR_CORRUPT, key, "over %d tokens", CT__BPE_MAX_VOCAB);
                id = (int32_t)next++;
            }
            *n_p = ++n;
        }
        free(a[k].norm);
        a[k] = (added_in_t){.content = content, .len = len, .id = id, .lstrip = (uint8_t)ls,
                            .rstrip = (uint8_t)rs, .normalized = (uint8_t)nz};
        if (nz && nfc) {
            /* Matched, and decoded, in its normalized form (as tokenizers does). */
            ct__bpe_buf_t b = {0};
            int r = ct__bpe_nfc((const uint8_t *)content, len, &b);
            if (r < 0 || b.oom) {
                free(b.p);
                return fail(L, CT_ERR_NO_MEMORY, key, "out of memory");
            }
            a[k].norm = b.p;
            a[k].norm_len = b.n;
        }
        int64_t fid;
        struct json_object *jid = member(t, "id", NULL);
        if (jid && ct_json_get_int64(jid, &fid) == 0 && fid != id) {
            char shown[CT_LOG_CLIP_BUF];
            CT_LOG_WARN("%s: %s: \"%s\" has id %lld in the file, but is token %d (as Hugging Face "
                        "tokenizers numbers it too)", L->path, key,
                        ct_log_clip_n(content, len, shown), (long long)fid, id);
        }
    }
    L->V = (int)next;
    return 0;
}

static int load_normalizer(load_t *L, int *nfc_p)
{
    struct json_object *nz = member(L->root, "normalizer", NULL);
    *nfc_p = 0;
    if (!nz) return 0;
    const char *t = type_of(nz);
    if (t && strcmp(t, "NFC") == 0) {
        *nfc_p = 1;
        return 0;
    }
    if (t && strcmp(t, "Sequence") == 0) {
        struct json_object *arr = member(nz, "normalizers", NULL);
        if (!arr || !json_object_is_type(arr, json_type_array))
            return fail(L, CT_ERR_CORRUPT, "normalizer.normalizers", "expected an array");
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
            const char *ti = type_of(json_object_array_get_idx(arr, i));
            if (!ti || strcmp(ti, "NFC") != 0) {
                char key[96];
                snprintf(key, sizeof key, "normalizer.normalizers[%zu].type", i);
                return fail(L, CT_ERR_UNSUPPORTED, key, "\"%s\" (ctrain supports no normalizer "
                            "or NFC)", ti ? ti : "?");
            }
            *nfc_p = 1;
        }
        return 0;
    }
    return fail(L, CT_ERR_UNSUPPORTED, "normalizer.type", "\"%s\" (ctrain supports no normalizer "
                "or NFC)", t ? t : "?");
}

/* One Split step; key names it in errors. */
static int load_split(load_t *L, struct json_object *obj, const char *key, hf_step_t *step)
{
    char k[160];
    struct json_object *pat = member(obj, "pattern", NULL);
    struct json_object *rx = member(pat, "Regex", NULL), *str = member(pat, "String", NULL);
    snprintf(k, sizeof k, "%s.pattern", key);
    if (!(rx && json_object_is_type(rx, json_type_string)) &&
        !(str && json_object_is_type(str, json_type_string)))
        return fail(L, CT_ERR_CORRUPT, k, "expected {\"Regex\": \"...\"} or {\"String\": \"...\"}");
    struct json_object *beh = member(obj, "behavior", NULL);
    static const char *k_beh[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                  "Contiguous"};
    const char *b = beh && json_object_is_type(beh, json_type_string) ? json_object_get_string(beh)
                                                                       : "";
    int found = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(b, k_beh[i]) == 0) found = i;
    if (found < 0) {
        snprintf(k, sizeof k, "%s.behavior", key);
        return fail(L, CT_ERR_CORRUPT, k, "\"%s\" (expected Removed, Isolated, MergedWithPrevious, "
                    "MergedWithNext or Contiguous)", b);
    }
    step->beh = (hf_beh_t)found;
    int inv = get_bool(L, obj, "invert", key, 0);
    if (inv < 0) return -1;
    step->invert = inv;
    if (str) {
        size_t len = (size_t)json_object_get_string_len(str);
        snprintf(k, sizeof k, "%s.pattern.String", key);
        if (len == 0) return fail(L, CT_ERR_UNSUPPORTED, k, "an empty string");
        step->kind = STEP_STRING;
        step->str = malloc(len);
        if (!step->str) return fail(L, CT_ERR_NO_MEMORY, k, "out of memory");
        memcpy(step->str, json_object_get_string(str), len);
        step->str_len = len;
        return 0;
    }
    const char *p = json_object_get_string(rx);
    size_t len = (size_t)json_object_get_string_len(rx);
    if (len == strlen(HF_GPT2_PAT) && memcmp(p, HF_GPT2_PAT, len) == 0) {
        step->kind = STEP_GPT2; /* bpe.c's exact and faster scanner */
        return 0;
    }
    ct__re_error_t err;
    ct_status_t st = ct__re_compile(p, len, &step->re, &err);
    if (st != CT_OK) {
        char shown[CT_LOG_CLIP_BUF];
        snprintf(k, sizeof k, "%s.pattern.Regex", key);
        return fail(L, st, k, "%s, at byte %zu of the pattern \"%s\"", err.msg, err.offset,
                    ct_log_clip_n(p, len, shown));
    }
    step->kind = STEP_REGEX;
    return 0;
}

/* One pre-tokenizer: a step, or the final ByteLevel (returns 1). */
static int load_pretok(load_t *L, struct json_object *obj, const char *key, hf_step_t *step,
                       struct ct__bpe_hf *hf)
{
    char k[160];
    const char *t = type_of(obj);
    snprintf(k, sizeof k, "%s.type", key);
    if (!t) return fail(L, CT_ERR_CORRUPT, k, "missing");
    if (strcmp(t, "ByteLevel") == 0) {
        int aps = get_bool(L, obj, "add_prefix_space", key, 1);
        int ur = get_bool(L, obj, "use_regex", key, 1);
        if (aps < 0 || ur < 0) return -1;
        hf->prefix_space = aps;
        hf->byte_regex = ur;
        return 1;
    }
    if (strcmp(t, "Split") == 0) return load_split(L, obj, key, step);
    if (strcmp(t, "Digits") == 0) {
        int ind = get_bool(L, obj, "individual_digits", key, 0);
        if (ind < 0) return -1;
        step->kind = STEP_DIGITS;
        step->beh = ind ? BEH_ISOLATED : BEH_CONTIGUOUS;
        return 0;
    }
    return fail(L, CT_ERR_UNSUPPORTED, k, "\"%s\" (ctrain supports Split, Digits and ByteLevel "
                "pre-tokenizers)", t);
}

static int load_pre_tokenizer(load_t *L, struct ct__bpe_hf *hf)
{
    struct json_object *pt = member(L->root, "pre_tokenizer", NULL);
    if (!pt)
        return fail(L, CT_ERR_UNSUPPORTED, "pre_tokenizer", "none; a byte-level BPE tokenizer has "
                    "a ByteLevel pre-tokenizer");
    const char *t = type_of(pt);
    if (!t || strcmp(t, "Sequence") != 0) {
        hf_step_t dummy = {0};
        int r = load_pretok(L, pt, "pre_tokenizer", &dummy, hf);
        if (r == 0) {
            ct__re_free(dummy.re);
            free(dummy.str);
            return fail(L, CT_ERR_UNSUPPORTED, "pre_tokenizer", "no ByteLevel pre-tokenizer (a "
                        "byte-level BPE tokenizer ends its pre-tokenizers with one)");
        }
        return r < 0 ? -1 : 0;
    }
    struct json_object *arr = member(pt, "pretokenizers", NULL);
    if (!arr || !json_object_is_type(arr, json_type_array))
        return fail(L, CT_ERR_CORRUPT, "pre_tokenizer.pretokenizers", "expected an array");
    size_t count = json_object_array_length(arr);
    hf->steps = calloc(count + 1, sizeof *hf->steps);
    if (!hf->steps) return fail(L, CT_ERR_NO_MEMORY, "pre_tokenizer", "out of memory");
    for (size_t i = 0; i < count; i++) {
        char key[96];
        snprintf(key, sizeof key, "pre_tokenizer.pretokenizers[%zu]", i);
        hf_step_t *step = &hf->steps[hf->n_steps];
        int r = load_pretok(L, json_object_array_get_idx(arr, i), key, step, hf);
        if (r < 0) {
            ct__re_free(step->re);
            free(step->str);
            memset(step, 0, sizeof *step);
            return -1;
        }
        if (r == 1) {
            if (i + 1 < count) {
                snprintf(key, sizeof key, "pre_tokenizer.pretokenizers[%zu]", i + 1);
                return fail(L, CT_ERR_UNSUPPORTED, key, "a step after ByteLevel (ctrain supports "
                            "ByteLevel last)");
            }
            return 0;
        }
        hf->n_steps++;
    }
    return fail(L, CT_ERR_UNSUPPORTED, "pre_tokenizer.pretokenizers", "no ByteLevel step (a "
                "byte-level BPE tokenizer ends its pre-tokenizers with one)");
}

static int load_decoder(load_t *L)
{
    struct json_object *d = member(L->root, "decoder", NULL);
    if (!d) return 0; /* decoding here is byte-level whatever the file says */
    const char *t = type_of(d);
    if (t && strcmp(t, "ByteLevel") == 0) return 0;
    if (t && strcmp(t, "Sequence") == 0) {
        struct json_object *arr = member(d, "decoders", NULL);
        size_t count = arr && json_object_is_type(arr, json_type_array)
                           ? json_object_array_length(arr) : 0;
        for (size_t i = 0; i < count; i++) {
            const char *ti = type_of(json_object_array_get_idx(arr, i));
            if (!ti || strcmp(ti, "ByteLevel") != 0) {
                char key[96];
                snprintf(key, sizeof key, "decoder.decoders[%zu].type", i);
                return fail(L, CT_ERR_UNSUPPORTED, key, "\"%s\" (ctrain decodes byte-level only)",
                            ti ? ti : "?");
            }
        }
        return 0;
    }
    return fail(L, CT_ERR_UNSUPPORTED, "decoder.type", "\"%s\" (ctrain decodes byte-level only)",
                t ? t : "?");
}

/* The id of the special token the post_processor puts first, or -1. */
static int32_t template_bos(load_t *L, struct json_object *pp, const added_in_t *a, int na)
{
    const char *t = type_of(pp);
    if (!t) return -1;
    if (strcmp(t, "Sequence") == 0) {
        struct json_object *arr = member(pp, "processors", NULL);
        size_t count = arr && json_object_is_type(arr, json_type_array)
                           ? json_object_array_length(arr) : 0;
        for (size_t i = 0; i < count; i++) {
            int32_t id = template_bos(L, json_object_array_get_idx(arr, i), a, na);
            if (id >= 0) return id;
        }
        return -1;
    }
    if (strcmp(t, "RobertaProcessing") == 0 || strcmp(t, "BertProcessing") == 0) {
        struct json_object *cls = member(pp, "cls", NULL);
        int64_t id;
        if (cls && json_object_is_type(cls, json_type_array) && json_object_array_length(cls) == 2 &&
            ct_json_get_int64(json_object_array_get_idx(cls, 1), &id) == 0 && id >= 0 && id < L->V)
            return (int32_t)id;
        return -1;
    }
    if (strcmp(t, "TemplateProcessing") != 0) return -1;
    struct json_object *single = member(pp, "single", NULL);
    if (!single || !json_object_is_type(single, json_type_array) ||
        json_object_array_length(single) == 0)
        return -1;
    struct json_object *first = member(json_object_array_get_idx(single, 0), "SpecialToken", NULL);
    struct json_object *name = member(first, "id", NULL);
    if (!name || !json_object_is_type(name, json_type_string)) return -1;
    struct json_object *spec = member(member(pp, "special_tokens", NULL),
                                      json_object_get_string(name), NULL);
    struct json_object *ids = member(spec, "ids", NULL);
    int64_t id;
    if (ids && json_object_is_type(ids, json_type_array) && json_object_array_length(ids) == 1 &&
        ct_json_get_int64(json_object_array_get_idx(ids, 0), &id) == 0 && id >= 0 && id < L->V)
        return (int32_t)id;
    for (int k = 0; k < na; k++)
        if (strcmp(a[k].content, json_object_get_string(name)) == 0) return a[k].id;
    return -1;
}

static int cmp_added(const void *x, const void *y)
{
    const hf_added_t *a = x, *b = y;
    uint8_t fa = (uint8_t)a->s[0], fb = (uint8_t)b->s[0];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return memcmp(a->s, b->s, a->len);
}

static int build_sets(load_t *L, struct ct__bpe_hf *hf, const added_in_t *a, int na)
{
    hf->raw.tok = calloc((size_t)na + 1, sizeof(hf_added_t));
    hf->norm.tok = calloc((size_t)na + 1, sizeof(hf_added_t));
    if (!hf->raw.tok || !hf->norm.tok) return fail(L, CT_ERR_NO_MEMORY, "added_tokens", "out of memory");
    for (int k = 0; k < na; k++) {
        hf_set_t *set = a[k].normalized ? &hf->norm : &hf->raw;
        ct__bpe_buf_t b = {0};
        if (a[k].norm) ct__bpe_buf_put(&b, a[k].norm, a[k].norm_len);
        else ct__bpe_buf_put(&b, a[k].content, a[k].len);
        if (b.oom) {
            free(b.p);
            return fail(L, CT_ERR_NO_MEMORY, "added_tokens", "out of memory");
        }
        set->tok[set->n++] = (hf_added_t){.s = b.p, .len = b.n, .id = a[k].id,
                                          .lstrip = a[k].lstrip, .rstrip = a[k].rstrip};
    }
    hf_set_t *sets[2] = {&hf->raw, &hf->norm};
    for (int s = 0; s < 2; s++) {
        hf_set_t *set = sets[s];
        qsort(set->tok, (size_t)set->n, sizeof *set->tok, cmp_added);
        int k = 0;
        for (int b = 0; b <= 256; b++) {
            while (k < set->n && (uint8_t)set->tok[k].s[0] < b) k++;
            set->start[b] = k;
        }
    }
    return 0;
}

/* The ignore_merges map: model tokens (in the byte alphabet) by their bytes. */
static int build_whole(load_t *L, struct ct__bpe_hf *hf, const ct_bpe_t *bpe)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)L->nv) cap *= 2;
    hf->whole = malloc(sizeof(int32_t) * cap);
    if (!hf->whole) return fail(L, CT_ERR_NO_MEMORY, "model.vocab", "out of memory");
    memset(hf->whole, 0xff, sizeof(int32_t) * cap);
    hf->whole_mask = cap - 1;
    for (int32_t id = 0; id < L->nv; id++) {
        if (L->vspecial[id]) continue;
        const char *p = bpe->tok_bytes + bpe->tok_off[id];
        size_t n = (size_t)(bpe->tok_off[id + 1] - bpe->tok_off[id]);
        size_t i = ct__bpe_hash_bytes(p, n) & hf->whole_mask;
        while (hf->whole[i] >= 0) i = (i + 1) & hf->whole_mask;
        hf->whole[i] = id;
    }
    return 0;
}

/* model.merges[r] as (left, right, made) ids. */
static int load_merge(load_t *L, struct json_object *m, int r, int32_t out[3])
{
    char key[64];
    snprintf(key, sizeof key, "model.merges[%d]", r);
    const char *a, *b;
    size_t la, lb;
    if (m && json_object_is_type(m, json_type_string)) {
        const char *s = json_object_get_string(m);
        size_t n = (size_t)json_object_get_string_len(m);
        const char *sp = memchr(s, ' ', n);
        if (!sp || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
            return fail(L, CT_ERR_CORRUPT, key, "expected \"A B\": two tokens and one space");
        a = s, la = (size_t)(sp - s), b = sp + 1, lb = (size_t)(s + n - sp - 1);
    } else if (m && json_object_is_type(m, json_type_array) && json_object_array_length(m) == 2 &&
               json_object_is_type(json_object_array_get_idx(m, 0), json_type_string) &&
               json_object_is_type(json_object_array_get_idx(m, 1), json_type_string)) {
        struct json_object *x = json_object_array_get_idx(m, 0), *y = json_object_array_get_idx(m, 1);
        a = json_object_get_string(x), la = (size_t)json_object_get_string_len(x);
        b = json_object_get_string(y), lb = (size_t)json_object_get_string_len(y);
    } else {
        return fail(L, CT_ERR_CORRUPT, key, "expected \"A B\" or [\"A\", \"B\"]");
    }
    char *scratch = scratch_for(L, la + lb + 1), *tmp = malloc(la + lb + 1);
    if (!scratch || !tmp) {
        free(tmp);
        return fail(L, CT_ERR_NO_MEMORY, key, "out of memory");
    }
    memcpy(tmp, a, la);
    memcpy(tmp + la, b, lb);
    out[0] = vocab_id(L, a, la, scratch);
    out[1] = vocab_id(L, b, lb, scratch);
    out[2] = vocab_id(L, tmp, la + lb, scratch);
    int bad = out[0] < 0 ? 0 : out[1] < 0 ? 1 : out[2] < 0 ? 2 : -1;
    if (bad >= 0) {
        char shown[CT_LOG_CLIP_BUF];
        const char *what = bad == 0 ? a : bad == 1 ? b : tmp;
        size_t wl = bad == 0 ? la : bad == 1 ? lb : la + lb;
        fail(L, CT_ERR_CORRUPT, key, "\"%s\" is not in model.vocab", ct_log_clip_n(what, wl, shown));
    }
    free(tmp);
    return bad >= 0 ? -1 : 0;
}

ct_status_t ct__bpe_parse_hf(const char *buf, size_t n, const char *path, ct_bpe_t **bpe_p)
{
    load_t L = {.path = path, .st = CT_OK};
    ct_json_error_t jerr;
    added_in_t *added = NULL;
    int n_added = 0;
    ct_bpe_t *bpe = NULL;
    struct ct__bpe_hf *hf = calloc(1, sizeof *hf);
    if (!hf) {
        CT_LOG_ERROR("out of memory loading %s", path);
        return CT_ERR_NO_MEMORY;
    }
    L.root = ct_json_parse(buf, n, CT_JSON_STRICT_SURROGATES, &jerr);
    if (!L.root) {
        CT_LOG_ERROR("%s:%d:%d: %s\n---> HINT: a tokenizer.json file is one JSON object, as "
                     "Hugging Face tokenizers writes it", path, jerr.line, jerr.col,
                     jerr.msg[0] ? jerr.msg : "expected an object, not null");
        L.st = CT_ERR_CORRUPT;
        goto done;
    }
    if (!json_object_is_type(L.root, json_type_object)) {
        fail(&L, CT_ERR_CORRUPT, "", "expected a JSON object");
        goto done;
    }
    struct json_object *ver = member(L.root, "version", NULL);
    if (ver && (!json_object_is_type(ver, json_type_string) ||
                strcmp(json_object_get_string(ver), "1.0") != 0)) {
        fail(&L, CT_ERR_UNSUPPORTED, "version", "\"%s\" (tokenizers writes and reads \"1.0\")",
             json_object_get_string(ver));
        goto done;
    }
    int found;
    struct json_object *model = member(L.root, "model", &found);
    if (!model || !json_object_is_type(model, json_type_object)) {
        fail(&L, CT_ERR_CORRUPT, "model", found ? "expected an object" : "missing");
        goto done;
    }
    const char *mt = type_of(model);
    if (mt ? strcmp(mt, "BPE") != 0 : !member(model, "merges", NULL)) {
        fail(&L, CT_ERR_UNSUPPORTED, "model.type", "\"%s\": ctrain reads byte-level BPE "
             "tokenizers only", mt ? mt : "(none, and no merges)");
        goto done;
    }
    struct json_object *v;
    if ((v = member(model, "dropout", NULL)) && json_object_get_double(v) != 0.0) {
        fail(&L, CT_ERR_UNSUPPORTED, "model.dropout", "%s: BPE dropout is for training "
             "tokenizers, not for encoding data", json_object_get_string(v));
        goto done;
    }
    static const char *k_affix[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++)
        if ((v = member(model, k_affix[i], NULL)) &&
            (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) > 0)) {
            char key[64];
            snprintf(key, sizeof key, "model.%s", k_affix[i]);
            fail(&L, CT_ERR_UNSUPPORTED, key, "\"%s\": byte-level BPE has none",
                 json_object_get_string(v));
            goto done;
        }
    int im = get_bool(&L, model, "ignore_merges", "model", 0);
    if (im < 0) goto done;
    if (load_vocab(&L, model) || load_normalizer(&L, &hf->nfc) ||
        load_added(&L, hf->nfc, &added, &n_added) || load_pre_tokenizer(&L, hf) ||
        load_decoder(&L))
        goto done;

    struct json_object *merges = member(model, "merges", NULL);
    if (!merges || !json_object_is_type(merges, json_type_array)) {
        fail(&L, CT_ERR_CORRUPT, "model.merges", "expected an array");
        goto done;
    }
    int V = L.V, nm = (int)json_object_array_length(merges);
    if (json_object_array_length(merges) > CT__BPE_MAX_MERGES) {
        fail(&L, CT_ERR_CORRUPT, "model.merges", "%zu merges; at most %d are read",
             json_object_array_length(merges), CT__BPE_MAX_MERGES);
        goto done;
    }

    /* Token bytes: model tokens from the byte alphabet (others as UTF-8),
     * then the added tokens that are not in the model's vocabulary. */
    size_t total = 0;
    for (int id = 0; id < L.nv; id++) total += L.vlen[id];
    for (int k = 0; k < n_added; k++) total += added[k].norm ? added[k].norm_len : added[k].len;
    L.vspecial = calloc((size_t)L.nv, 1);
    if (!(bpe = ct__bpe_alloc(V, nm)) || !(bpe->tok_bytes = malloc(total + 1)) || !L.vspecial) {
        fail(&L, CT_ERR_NO_MEMORY, "model", "out of memory");
        goto done;
    }
    bpe->relaxed = 1;
    int64_t o = 0;
    for (int id = 0; id < L.nv; id++) {
        bpe->tok_off[id] = o;
        long k = alpha_decode(L.vstr[id], L.vlen[id], bpe->tok_bytes + o);
        if (k < 0) {
            L.vspecial[id] = 1;
            memcpy(bpe->tok_bytes + o, L.vstr[id], L.vlen[id]);
            k = (long)L.vlen[id];
        }
        if (k > CT__BPE_MAX_TOKEN_BYTES) {
            char key[CT_LOG_CLIP_BUF + 32];
            snprintf(key, sizeof key, "model.vocab[\"%s\"]", ct_log_clip(L.vstr[id], key + 32));
            fail(&L, CT_ERR_CORRUPT, key, "a token of %ld bytes; a token may have at most %d", k,
                 CT__BPE_MAX_TOKEN_BYTES);
            goto done;
        }
        o += k;
    }
    for (int id = L.nv; id < V; id++) {
        int k = 0;
        while (added[k].id != id) k++;
        bpe->tok_off[id] = o;
        const char *c = added[k].norm ? added[k].norm : added[k].content;
        size_t cl = added[k].norm ? added[k].norm_len : added[k].len;
        memcpy(bpe->tok_bytes + o, c, cl);
        o += (int64_t)cl;
    }
    bpe->tok_off[V] = o;
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t k = ct_utf8_encode(ct__bpe_byte_to_unicode((uint8_t)b), u);
        char tmp[8];
        int32_t id = vocab_id(&L, u, k, tmp);
        if (id < 0) {
            u[k] = 0;
            fail(&L, CT_ERR_CORRUPT, "model.vocab", "no token for byte 0x%02x (\"%s\"): a "
                 "byte-level vocabulary holds all 256 byte characters", b, u);
            goto done;
        }
        bpe->byte_id[b] = id;
    }
    for (int r = 0; r < nm; r++) {
        int32_t m[3] = {0, 0, 0};
        if (load_merge(&L, json_object_array_get_idx(merges, (size_t)r), r, m))
            goto done;
        bpe->merges[2 * r] = m[0];
        bpe->merges[2 * r + 1] = m[1];
        bpe->merge_id[r] = m[2];
    }

    /* The document separator. */
    bpe->eot = template_bos(&L, member(L.root, "post_processor", NULL), added, n_added);
    for (int k = 0; k < n_added && bpe->eot < 0; k++)
        if (added[k].len == strlen(CT__BPE_EOT_TEXT) &&
            memcmp(added[k].content, CT__BPE_EOT_TEXT, added[k].len) == 0)
            bpe->eot = added[k].id;
    char eot_buf[sizeof CT__BPE_EOT_TEXT];
    if (bpe->eot < 0) bpe->eot = vocab_id(&L, CT__BPE_EOT_TEXT, strlen(CT__BPE_EOT_TEXT), eot_buf);
    if (bpe->eot < 0) {
        fail(&L, CT_ERR_UNSUPPORTED, "post_processor", "no document separator: the post-processor "
             "puts no special token before a text (as Llama 3's <|begin_of_text|>) and there is "
             "no " CT__BPE_EOT_TEXT " token");
        goto done;
    }

    int bad;
    const char *why;
    ct_status_t st = ct__bpe_index(bpe, &bad, &why);
    if (st == CT_ERR_CORRUPT) {
        char key[64];
        if (bad < 0) snprintf(key, sizeof key, "model.vocab");
        else snprintf(key, sizeof key, "model.merges[%d]", bad);
        fail(&L, st, key, "%s", why);
        goto done;
    }
    if (st != CT_OK) {
        fail(&L, st, "model", "out of memory");
        goto done;
    }
    bpe->native = 0; /* never written as a ctrain file: the pipeline would be lost */
    if (build_sets(&L, hf, added, n_added) || (im && build_whole(&L, hf, bpe))) goto done;
    hf->lossless = !hf->nfc && !hf->prefix_space;
    for (int i = 0; i < hf->n_steps; i++)
        if (hf->steps[i].beh == BEH_REMOVED) hf->lossless = 0;
    for (int k = 0; k < n_added; k++) {
        const added_in_t *t = &added[k];
        if (t->lstrip || t->rstrip ||
            (size_t)(bpe->tok_off[t->id + 1] - bpe->tok_off[t->id]) != t->len ||
            memcmp(bpe->tok_bytes + bpe->tok_off[t->id], t->content, t->len) != 0)
            hf->lossless = 0; /* it swallows text, or decodes to other bytes than it matches */
    }
    bpe->hf = hf;
    bpe->hf_free = hf_free;
    hf = NULL;
done:
    if (L.st == CT_OK) {
        *bpe_p = bpe;
    } else {
        ct_bpe_free(bpe);
    }
    hf_free(hf);
    free(L.scratch);
    added_free(added, n_added);
    free(L.vstr);
    free(L.vlen);
    free(L.vspecial);
    if (L.root) json_object_put(L.root);
    return L.st;
}

ct_status_t ct_bpe_load_hf(const char *path, ct_bpe_t **bpe_p)
{
    char *buf = NULL;
    size_t n;
    ct_status_t st = ct__bpe_read_file(path, "tokenizer.json comes with a Hugging Face model "
                                       "(for instance in its snapshot directory)", &buf, &n);
    if (st != CT_OK) return st;
    st = ct__bpe_parse_hf(buf, n, path, bpe_p);
    free(buf);
    return st;
}

ct_status_t ct__bpe_refuse_hf(const char *path)
{
    CT_LOG_ERROR("cannot write %s: the tokenizer comes from a tokenizer.json whose pre-tokenizer, "
                 "normalizer and added tokens another format would lose\n---> HINT: keep the "
                 "tokenizer.json; ctrain reads it everywhere a tokenizer is asked for", path);
    return CT_ERR_UNSUPPORTED;
}
