/* Reads Hugging Face tokenizer.json files whose model is byte-level BPE
 * (GPT-2, Llama 3, SmolLM2, Qwen2 and their kin) into the tokenizer of bpe.c
 * and the rest of their pipeline, which bpe_hf.c runs as tokenizers'
 * Tokenizer.encode(text, add_special_tokens=False) does:
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
                "SmolLM2, Qwen2 style); see data/bpe_hf_load.c for what is supported"

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
static int load_split(load_t *L, struct json_object *obj, const char *key, ct__hf_step_t *step)
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
    step->beh = (ct__hf_beh_t)found;
    int inv = get_bool(L, obj, "invert", key, 0);
    if (inv < 0) return -1;
    step->invert = inv;
    if (str) {
        size_t len = (size_t)json_object_get_string_len(str);
        snprintf(k, sizeof k, "%s.pattern.String", key);
        if (len == 0) return fail(L, CT_ERR_UNSUPPORTED, k, "an empty string");
        step->kind = CT__HF_STRING;
        step->str = malloc(len);
        if (!step->str) return fail(L, CT_ERR_NO_MEMORY, k, "out of memory");
        memcpy(step->str, json_object_get_string(str), len);
        step->str_len = len;
        return 0;
    }
    const char *p = json_object_get_string(rx);
    size_t len = (size_t)json_object_get_string_len(rx);
    if (len == strlen(HF_GPT2_PAT) && memcmp(p, HF_GPT2_PAT, len) == 0) {
        step->kind = CT__HF_GPT2; /* bpe.c's exact and faster scanner */
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
    step->kind = CT__HF_REGEX;
    return 0;
}

/* One pre-tokenizer: a step, or the final ByteLevel (returns 1). */
static int load_pretok(load_t *L, struct json_object *obj, const char *key, ct__hf_step_t *step,
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
        step->kind = CT__HF_DIGITS;
        step->beh = ind ? CT__HF_ISOLATED : CT__HF_CONTIGUOUS;
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
        ct__hf_step_t dummy = {0};
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
        ct__hf_step_t *step = &hf->steps[hf->n_steps];
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
    const ct__hf_added_t *a = x, *b = y;
    uint8_t fa = (uint8_t)a->s[0], fb = (uint8_t)b->s[0];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return memcmp(a->s, b->s, a->len);
}

static int build_sets(load_t *L, struct ct__bpe_hf *hf, const added_in_t *a, int na)
{
    hf->raw.tok = calloc((size_t)na + 1, sizeof(ct__hf_added_t));
    hf->norm.tok = calloc((size_t)na + 1, sizeof(ct__hf_added_t));
    if (!hf->raw.tok || !hf->norm.tok) return fail(L, CT_ERR_NO_MEMORY, "added_tokens", "out of memory");
    for (int k = 0; k < na; k++) {
        ct__hf_set_t *set = a[k].normalized ? &hf->norm : &hf->raw;
        ct__bpe_buf_t b = {0};
        if (a[k].norm) ct__bpe_buf_put(&b, a[k].norm, a[k].norm_len);
        else ct__bpe_buf_put(&b, a[k].content, a[k].len);
        if (b.oom) {
            free(b.p);
            return fail(L, CT_ERR_NO_MEMORY, "added_tokens", "out of memory");
        }
        set->tok[set->n++] = (ct__hf_added_t){.s = b.p, .len = b.n, .id = a[k].id,
                                          .lstrip = a[k].lstrip, .rstrip = a[k].rstrip};
    }
    ct__hf_set_t *sets[2] = {&hf->raw, &hf->norm};
    for (int s = 0; s < 2; s++) {
        ct__hf_set_t *set = sets[s];
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
        if (hf->steps[i].beh == CT__HF_REMOVED) hf->lossless = 0;
    for (int k = 0; k < n_added; k++) {
        const added_in_t *t = &added[k];
        if (t->lstrip || t->rstrip ||
            (size_t)(bpe->tok_off[t->id + 1] - bpe->tok_off[t->id]) != t->len ||
            memcmp(bpe->tok_bytes + bpe->tok_off[t->id], t->content, t->len) != 0)
            hf->lossless = 0; /* it swallows text, or decodes to other bytes than it matches */
    }
    bpe->hf = hf;
    bpe->hf_free = ct__bpe_hf_free;
    hf = NULL;
done:
    if (L.st == CT_OK) {
        *bpe_p = bpe;
    } else {
        ct_bpe_free(bpe);
    }
    ct__bpe_hf_free(hf);
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

