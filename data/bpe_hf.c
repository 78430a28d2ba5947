/* Hugging Face tokenizer.json pipelines at encoding time (bpe_hf_load.c
 * builds them from the file): the steps that tokenizers'
 * Tokenizer.encode(text, add_special_tokens=False) takes before the BPE
 * model, in its order:
 *
 * 1. Added tokens (special or not) are cut out of the text: those with
 *    "normalized": false from the raw text, then the normalizer runs on each
 *    piece left, then those with "normalized": true are cut out of the
 *    normalized pieces; leftmost-longest, "lstrip"/"rstrip" swallowing the
 *    whitespace beside a token, as tokenizers' AddedVocabulary does.
 * 2. The normalizer: none or NFC (bpe_nfc.c).
 * 3. The pre-tokenizers: Split (a regex run by bpe_regex.c, or a string)
 *    and Digits steps, each splitting every piece and folding the spans by
 *    its behavior as tokenizers' NormalizedString::split does, then
 *    ByteLevel: the prefix space, GPT-2's regex (bpe.c's exact scanner).
 * 4. Each word is merged by bpe.c (ct__bpe_encode_word), ignore_merges
 *    first (ct__bpe_hf_whole).
 * Pieces stream through the steps (no list of pieces is built), so memory
 * stays bounded by the document. Left out: anything tokenizers does after
 * the model (post-processing, truncation, padding). */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/utf8.h"
#include "data/bpe_impl.h"

/* Pieces are encoded in words of at most this many bytes. */
#define HF_MAX_WORD (1 << 30)

void ct__bpe_hf_free(void *p)
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
    ct__hf_beh_t beh;
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
    case CT__HF_ISOLATED: return fold_emit(f, a, b);
    case CT__HF_REMOVED: return m ? CT_OK : fold_emit(f, a, b);
    case CT__HF_CONTIGUOUS: /* runs of spans of one kind become one piece */
        if (f->have && m == f->pm) {
            f->pb = b;
            return CT_OK;
        }
        break;
    case CT__HF_MERGED_PREV: /* a match joins the piece before it, unless that ends in a match */
        if (m && f->have && !f->pm) {
            f->pb = b;
            f->pm = m;
            return CT_OK;
        }
        break;
    case CT__HF_MERGED_NEXT: /* a match joins the span after it, unless that is a match */
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
    const ct__hf_step_t *step = &hf->steps[i];
    fold_t f = {.r = r, .next = i + 1, .s = s, .beh = step->beh, .invert = step->invert};
    ct_status_t st = CT_OK;
    size_t prev = 0;
    switch (step->kind) {
    case CT__HF_GPT2: /* its matches cover the text */
        for (size_t pos = 0; pos < n && st == CT_OK;) {
            size_t end = ct__bpe_pretok_next(s, n, pos);
            st = fold_span(&f, pos, end, 1);
            pos = end;
        }
        prev = n;
        break;
    case CT__HF_REGEX: {
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
    case CT__HF_STRING:
        for (;;) {
            const uint8_t *hit = memmem(s + prev, n - prev, step->str, step->str_len);
            if (!hit || st != CT_OK) break;
            size_t ms = (size_t)(hit - s);
            if (prev != ms) st = fold_span(&f, prev, ms, 0);
            if (st == CT_OK) st = fold_span(&f, ms, ms + step->str_len, 1);
            prev = ms + step->str_len;
        }
        break;
    case CT__HF_DIGITS: /* each numeric character (Nd, Nl, No) is a match */
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
static const ct__hf_added_t *added_at(const ct__hf_set_t *set, const uint8_t *s, size_t n)
{
    for (int k = set->start[s[0]]; k < set->start[s[0] + 1]; k++) {
        const ct__hf_added_t *t = &set->tok[k];
        if (t->len <= n && memcmp(t->s, s, t->len) == 0) return t;
    }
    return NULL;
}

/* tokenizers' AddedVocabulary::find_matches: cuts the set's tokens out of
 * s[0..n); the pieces between go to `rest` (stage 2: normalize, or the
 * pre-tokenizer). */
static CT_MUST_USE ct_status_t cut_added(hf_run_t *r, const ct__hf_set_t *set, const uint8_t *s,
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

static CT_MUST_USE ct_status_t cut_added(hf_run_t *r, const ct__hf_set_t *set, const uint8_t *s,
                                         size_t n, int stage)
{
    size_t done = 0, pos = 0; /* done: the end of the last token, with what it swallowed */
    ct_status_t st = CT_OK;
    while (set->n > 0 && pos < n && st == CT_OK) {
        const ct__hf_added_t *t = NULL;
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

ct_status_t ct__bpe_refuse_hf(const char *path)
{
    CT_LOG_ERROR("cannot write %s: the tokenizer comes from a tokenizer.json whose pre-tokenizer, "
                 "normalizer and added tokens another format would lose\n---> HINT: keep the "
                 "tokenizer.json; ctrain reads it everywhere a tokenizer is asked for", path);
    return CT_ERR_UNSUPPORTED;
}
