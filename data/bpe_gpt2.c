/* GPT-2's tokenizer files: vocab.json + merges.txt (Hugging Face's names;
 * OpenAI's release calls them encoder.json + vocab.bpe) and tiktoken rank
 * files, read into and written from the tokenizer of bpe.c.
 *
 * vocab.json maps token strings to ids. A string is the token's bytes, each
 * written as the printable character of GPT-2's bytes_to_unicode() (space is
 * "Ġ", newline "Ċ"). merges.txt has a "#version: 0.2" line, then one merge
 * per line, "A B", lowest rank first; merge r makes the token A+B, whose id
 * vocab.json gives. A tiktoken file has one "base64(bytes) rank" line per
 * token; ranks are ids, and the merges are rebuilt from the ranks the way
 * Hugging Face converts tiktoken files (see derive_parts).
 *
 * Tokens in vocab.json whose strings use characters outside the byte
 * alphabet (added special tokens) are kept with their UTF-8 bytes; no merge
 * may use or make them. Left out here: added-token files (added_tokens.json)
 * and special tokens other than <|endoftext|>; tokenizer.json is bpe_hf.c's. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/json.h"
#include "core/log.h"
#include "core/utf8.h"
#include "data/bpe_impl.h"

#define GPT2_MERGES_HEADER "#version: 0.2\n"

/* ---- the byte alphabet as UTF-8 ------------------------------------------------ */

/* UTF-8 of bytes_to_unicode(b): 1 or 2 bytes (the characters are below U+0800). */
static int alpha_utf8(uint8_t b, char out[4])
{
    return (int)ct_utf8_encode(ct__bpe_byte_to_unicode(b), out);
}

/* Turns the alphabet string s[0..n) into the bytes it stands for, in place
 * (never longer). Returns the byte count, or -1 when s holds a character
 * outside the alphabet or invalid UTF-8. */
static long alpha_decode(char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = ct_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        int b = k ? ct__bpe_unicode_to_byte(cp) : -1;
        if (b < 0) return -1;
        s[o++] = (char)b;
        i += k;
    }
    return (long)o;
}

/* ---- token bytes -> id --------------------------------------------------------- */

typedef struct {
    const ct_bpe_t *bpe;
    int32_t *slots; /* -1 empty, else id */
    size_t mask;
} tokmap_t;

static int64_t tok_len(const ct_bpe_t *bpe, int32_t id)
{
    return bpe->tok_off[id + 1] - bpe->tok_off[id];
}

static int32_t tokmap_find(const tokmap_t *m, const char *p, size_t n)
{
    const ct_bpe_t *bpe = m->bpe;
    for (size_t i = ct__bpe_hash_bytes(p, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t id = m->slots[i];
        if (id < 0) return -1;
        if ((size_t)tok_len(bpe, id) == n && memcmp(bpe->tok_bytes + bpe->tok_off[id], p, n) == 0)
            return id;
    }
}

/* Maps the bytes of the tokens with ids below n_ids and skip[id] == 0
 * (skip may be NULL). Returns 0, -1 when out of memory, or 1 when two
 * tokens have the same bytes (their ids in dup[0] < dup[1]). */
static int tokmap_init(tokmap_t *m, const ct_bpe_t *bpe, int n_ids, const uint8_t *skip,
                       int32_t dup[2])
{
    size_t cap = 16;
    while (cap < 2 * (size_t)n_ids) cap *= 2;
    m->bpe = bpe;
    m->mask = cap - 1;
    m->slots = malloc(sizeof(int32_t) * cap);
    if (!m->slots) return -1;
    memset(m->slots, 0xff, sizeof(int32_t) * cap);
    for (int32_t id = 0; id < n_ids; id++) {
        if (skip && skip[id]) continue;
        const char *p = bpe->tok_bytes + bpe->tok_off[id];
        size_t n = (size_t)tok_len(bpe, id);
        int32_t old = tokmap_find(m, p, n);
        if (old >= 0) {
            dup[0] = old;
            dup[1] = id;
            return 1;
        }
        size_t i = ct__bpe_hash_bytes(p, n) & m->mask;
        while (m->slots[i] >= 0) i = (i + 1) & m->mask;
        m->slots[i] = id;
    }
    return 0;
}

/* Sets byte_id from the single-byte tokens of the map; -1 (with *missing_p)
 * when a byte has no token. */
static int set_byte_ids(ct_bpe_t *bpe, const tokmap_t *m, int *missing_p)
{
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        bpe->byte_id[b] = tokmap_find(m, &c, 1);
        if (bpe->byte_id[b] < 0) {
            *missing_p = b;
            return -1;
        }
    }
    return 0;
}

/* Line and column (1-based) of byte `pos` of buf. */
static void line_col(const char *buf, size_t pos, int *line_p, int *col_p)
{
    int line = 1, col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (buf[i] == '\n') line++, col = 1;
        else col++;
    }
    *line_p = line;
    *col_p = col;
}

/* ---- vocab.json ------------------------------------------------------------------- */

typedef struct {
    const char *path, *buf;
    char *bytes; /* decoded token bytes, back to back */
    size_t nbytes, capbytes;
    int64_t *off; /* (n + 1) entry offsets into bytes */
    int32_t *id;
    uint8_t *special; /* string outside the byte alphabet: kept as UTF-8 */
    size_t n, cap;
} vocab_t;

static void vocab_fail(const vocab_t *v, size_t at, const char *msg)
{
    int l, c;
    line_col(v->buf, at, &l, &c);
    CT_LOG_ERROR("%s:%d:%d: %s\n---> HINT: expected GPT-2's vocab.json, a JSON object of token "
                 "strings to ids", v->path, l, c, msg);
}

/* Appends n bytes (n may be 0: the buffer is allocated all the same, so
 * v->bytes is never NULL once an entry exists; a first key "" once made a
 * memcpy from NULL). */
static int bytes_put(vocab_t *v, const char *p, size_t n)
{
    if (!v->bytes || v->nbytes + n > v->capbytes) {
        size_t nc = v->capbytes ? 2 * v->capbytes : 1 << 16;
        while (nc < v->nbytes + n) nc *= 2;
        char *q = realloc(v->bytes, nc);
        if (!q) return -1;
        v->bytes = q;
        v->capbytes = nc;
    }
    if (n) memcpy(v->bytes + v->nbytes, p, n);
    v->nbytes += n;
    return 0;
}

static int vocab_grow(vocab_t *v)
{
    if (v->n + 1 < v->cap) return 0;
    size_t nc = v->cap ? 2 * v->cap : 65536;
    int64_t *off = realloc(v->off, sizeof(int64_t) * (nc + 1));
    if (off) v->off = off;
    int32_t *id = realloc(v->id, sizeof(int32_t) * nc);
    if (id) v->id = id;
    uint8_t *sp = realloc(v->special, nc);
    if (sp) v->special = sp;
    if (!off || !id || !sp) return -1;
    v->cap = nc;
    return 0;
}

/* Parses vocab.json (len bytes at v->buf) into v: entry i has bytes
 * [off[i], off[i+1]) and id[i], in file order. A string repeated in the file
 * stays two entries (so the duplicate is reported below, by id); a lone
 * surrogate escape is an error, as in Hugging Face tokenizers. */
static CT_MUST_USE ct_status_t vocab_parse(vocab_t *v, size_t len)
{
    ct_json_iter_t it;
    ct_json_error_t err;
    if (ct_json_iter_init(&it, v->buf, len, CT_JSON_STRICT_SURROGATES, &err) != 0) {
        vocab_fail(v, err.offset, strcmp(err.msg, "expected an object") ? err.msg : "expected '{'");
        return CT_ERR_CORRUPT;
    }
    ct_status_t st = CT_OK;
    const char *key;
    size_t key_len;
    struct json_object *val;
    while (ct_json_iter_next(&it, &key, &key_len, &val)) {
        if (vocab_grow(v)) goto oom;
        if (v->n == 0) v->off[0] = 0;
        size_t before = v->nbytes;
        if (bytes_put(v, key, key_len)) goto oom;
        long k = alpha_decode(v->bytes + before, v->nbytes - before);
        v->special[v->n] = k < 0;
        if (k >= 0) v->nbytes = before + (size_t)k;
        if (v->nbytes - before > CT__BPE_MAX_TOKEN_BYTES) {
            char msg[96];
            snprintf(msg, sizeof msg, "a token of %zu bytes; a token may have at most %d",
                     v->nbytes - before, CT__BPE_MAX_TOKEN_BYTES);
            vocab_fail(v, it.key_offset, msg);
            st = CT_ERR_CORRUPT;
            goto done;
        }
        v->off[v->n + 1] = (int64_t)v->nbytes;
        int64_t id;
        int r = ct_json_get_int64(val, &id);
        if (r < 0 || (r == 0 && id < 0)) {
            vocab_fail(v, it.value_offset, "expected a token id (an integer >= 0)");
            st = CT_ERR_CORRUPT;
            goto done;
        }
        if (r > 0 || id >= CT__BPE_MAX_VOCAB) {
            char msg[64];
            snprintf(msg, sizeof msg, "token id too large (at most %d)", CT__BPE_MAX_VOCAB - 1);
            vocab_fail(v, it.value_offset, msg);
            st = CT_ERR_CORRUPT;
            goto done;
        }
        v->id[v->n++] = (int32_t)id;
    }
    if (v->n == 0) {
        vocab_fail(v, it.pos, "the vocabulary is empty");
        st = CT_ERR_CORRUPT;
    }
    goto done;
oom:
    st = CT_ERR_NO_MEMORY;
done:
    ct_json_iter_free(&it);
    return st;
}

/* ---- merges.txt --------------------------------------------------------------------- */

typedef struct {
    const char *s; /* the line, without "\n" or "\r\n" */
    size_t len;
    int line;
} mline_t;

/* Splits merges.txt into merge lines: the "#version" first line and the
 * empty line after the last newline are left out. */
static CT_MUST_USE ct_status_t merges_lines(const char *buf, size_t n, mline_t **lines_p, int *n_p)
{
    size_t count = 1;
    for (size_t i = 0; i < n; i++) count += buf[i] == '\n';
    mline_t *lines = malloc(sizeof *lines * count);
    if (!lines) return CT_ERR_NO_MEMORY;
    int k = 0, line = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(buf + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - buf) : n;
        size_t len = e - i;
        if (len > 0 && buf[e - 1] == '\r') len--;
        line++;
        if (!(line == 1 && len >= 8 && memcmp(buf + i, "#version", 8) == 0)) {
            lines[k].s = buf + i;
            lines[k].len = len;
            lines[k].line = line;
            k++;
        }
        i = e + 1;
    }
    *lines_p = lines;
    *n_p = k;
    return CT_OK;
}

/* ---- loading GPT-2's files ---------------------------------------------------------- */

#define GPT2_FAIL(code, ...)                                                                      \
    do {                                                                                          \
        CT_LOG_ERROR(__VA_ARGS__);                                                                \
        st = (code);                                                                              \
        goto done;                                                                                \
    } while (0)

ct_status_t ct_bpe_load_gpt2(const char *vocab_json, const char *merges_txt, ct_bpe_t **bpe_p)
{
    static const char *hint = "GPT-2's vocab.json and merges.txt come with its Hugging Face "
                              "model files (encoder.json and vocab.bpe in OpenAI's release)";
    char *vbuf = NULL, *mbuf = NULL;
    size_t vn, mn;
    ct_status_t st = ct__bpe_read_file(vocab_json, hint, &vbuf, &vn);
    if (st == CT_OK) st = ct__bpe_read_file(merges_txt, hint, &mbuf, &mn);
    if (st == CT_OK) st = ct__bpe_parse_gpt2(vbuf, vn, vocab_json, mbuf, mn, merges_txt, bpe_p);
    free(vbuf);
    free(mbuf);
    return st;
}

ct_status_t ct__bpe_parse_gpt2(const char *vbuf, size_t vn, const char *vocab_json,
                               const char *mbuf, size_t mn, const char *merges_txt,
                               ct_bpe_t **bpe_p)
{
    ct_status_t st;
    char *scratch = NULL;
    vocab_t v = {.path = vocab_json};
    mline_t *lines = NULL;
    int32_t *pos_of = NULL;
    ct_bpe_t *bpe = NULL;
    tokmap_t map = {0};
    v.buf = vbuf;
    if ((st = vocab_parse(&v, vn)) != CT_OK) goto oom_or_done;
    int V = (int)v.n, n_merges;
    if ((st = merges_lines(mbuf, mn, &lines, &n_merges)) != CT_OK) goto oom_or_done;
    if (n_merges >= V)
        GPT2_FAIL(CT_ERR_CORRUPT, "%s has %d merges but %s only %d tokens\n---> HINT: are the two "
                  "files from the same tokenizer?", merges_txt, n_merges, vocab_json, V);

    /* Place the entries by id: the ids must be exactly 0..V-1. */
    pos_of = malloc(sizeof(int32_t) * (size_t)V);
    if (!pos_of) goto oom;
    memset(pos_of, 0xff, sizeof(int32_t) * (size_t)V);
    for (int i = 0; i < V; i++) {
        if (v.id[i] >= V)
            GPT2_FAIL(CT_ERR_CORRUPT, "%s: token id %d, but there are only %d tokens (ids must be "
                      "0..%d)", vocab_json, v.id[i], V, V - 1);
        if (pos_of[v.id[i]] >= 0)
            GPT2_FAIL(CT_ERR_CORRUPT, "%s: id %d is given to two tokens", vocab_json, v.id[i]);
        pos_of[v.id[i]] = i;
    }
    if (!(bpe = ct__bpe_alloc(V, n_merges)) || !(bpe->tok_bytes = malloc(v.nbytes + 1))) goto oom;
    uint8_t *special = malloc((size_t)V);
    if (!special) goto oom;
    int64_t o = 0;
    for (int id = 0; id < V; id++) {
        int i = pos_of[id];
        int64_t len = v.off[i + 1] - v.off[i];
        bpe->tok_off[id] = o;
        memcpy(bpe->tok_bytes + o, v.bytes + v.off[i], (size_t)len);
        special[id] = v.special[i];
        o += len;
    }
    bpe->tok_off[V] = o;
    int32_t dup[2];
    int r = tokmap_init(&map, bpe, V, special, dup);
    free(special);
    if (r < 0) goto oom;
    if (r > 0)
        GPT2_FAIL(CT_ERR_CORRUPT, "%s: tokens %d and %d stand for the same bytes", vocab_json,
                  dup[0], dup[1]);
    int missing;
    if (set_byte_ids(bpe, &map, &missing))
        GPT2_FAIL(CT_ERR_CORRUPT, "%s has no token for byte 0x%02x\n---> HINT: a byte-level BPE "
                  "vocabulary holds all 256 bytes", vocab_json, missing);
    bpe->eot = tokmap_find(&map, CT__BPE_EOT_TEXT, strlen(CT__BPE_EOT_TEXT));
    if (bpe->eot < 0)
        GPT2_FAIL(CT_ERR_CORRUPT, "%s has no \"%s\" token\n---> HINT: ctrain needs GPT-2's "
                  "end-of-text token to separate documents", vocab_json, CT__BPE_EOT_TEXT);

    /* The merges: each part, and the two joined, must be tokens of the vocabulary. */
    scratch = malloc(2 * mn + 1);
    if (!scratch) goto oom;
    for (int m = 0; m < n_merges; m++) {
        const mline_t *ln = &lines[m];
        const char *sp = memchr(ln->s, ' ', ln->len);
        if (!sp || sp == ln->s || sp + 1 == ln->s + ln->len ||
            memchr(sp + 1, ' ', (size_t)(ln->s + ln->len - sp - 1)))
            GPT2_FAIL(CT_ERR_CORRUPT, "%s:%d: expected \"A B\": two tokens and one space",
                      merges_txt, ln->line);
        size_t la = (size_t)(sp - ln->s), lb = ln->len - la - 1;
        memcpy(scratch, ln->s, la);
        memcpy(scratch + la, sp + 1, lb);
        long ba = alpha_decode(scratch, la);
        long bb = ba < 0 ? -1 : alpha_decode(scratch + la, lb);
        char shown[CT_LOG_CLIP_BUF];
        if (ba < 0 || bb < 0)
            GPT2_FAIL(CT_ERR_CORRUPT, "%s:%d: \"%s\" is not written in GPT-2's byte alphabet",
                      merges_txt, ln->line,
                      ct_log_clip_n(ba < 0 ? ln->s : sp + 1, ba < 0 ? la : lb, shown));
        memmove(scratch + ba, scratch + la, (size_t)bb);
        int32_t a = tokmap_find(&map, scratch, (size_t)ba);
        int32_t b = tokmap_find(&map, scratch + ba, (size_t)bb);
        int32_t z = tokmap_find(&map, scratch, (size_t)(ba + bb));
        if (a < 0 || b < 0 || z < 0)
            GPT2_FAIL(CT_ERR_CORRUPT, "%s:%d: \"%s\" is not in %s\n---> HINT: are the two files "
                      "from the same tokenizer?", merges_txt, ln->line,
                      ct_log_clip_n(a < 0 ? ln->s : b < 0 ? sp + 1 : ln->s,
                                    a < 0 ? la : b < 0 ? lb : ln->len, shown), vocab_json);
        bpe->merges[2 * m] = a;
        bpe->merges[2 * m + 1] = b;
        bpe->merge_id[m] = z;
    }
    int bad;
    const char *why;
    if ((st = ct__bpe_index(bpe, &bad, &why)) == CT_ERR_CORRUPT) {
        if (bad < 0) GPT2_FAIL(st, "%s: %s", vocab_json, why);
        GPT2_FAIL(st, "%s:%d: bad merge: %s", merges_txt, lines[bad].line, why);
    }
oom_or_done:
    if (st == CT_ERR_NO_MEMORY) goto oom;
    goto done;
oom:
    st = CT_ERR_NO_MEMORY;
    CT_LOG_ERROR("out of memory loading %s and %s", vocab_json, merges_txt);
done:
    if (st == CT_OK) *bpe_p = bpe;
    else ct_bpe_free(bpe);
    free(map.slots);
    free(scratch);
    free(pos_of);
    free(lines);
    free(v.bytes);
    free(v.off);
    free(v.id);
    free(v.special);
    return st;
}

/* ---- tiktoken ------------------------------------------------------------------------ */

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes standard padded base64 s[0..n) into out; returns the length or -1. */
static long b64_decode(const char *s, size_t n, char *out)
{
    if (n == 0 || n % 4) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int pad = (s[i + 3] == '=') + (s[i + 2] == '=' && s[i + 3] == '=');
        if (pad && i + 4 != n) return -1;
        int a = b64val((unsigned char)s[i]), b = b64val((unsigned char)s[i + 1]);
        int c = pad >= 2 ? 0 : b64val((unsigned char)s[i + 2]);
        int d = pad >= 1 ? 0 : b64val((unsigned char)s[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (char)(v >> 16);
        if (pad < 2) out[o++] = (char)(v >> 8);
        if (pad < 1) out[o++] = (char)v;
    }
    return (long)o;
}

static void b64_encode(ct__bpe_buf_t *b, const uint8_t *p, size_t n)
{
    static const char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        char q[4] = {k[v >> 18], k[(v >> 12) & 63], i + 1 < n ? k[(v >> 6) & 63] : '=',
                     i + 2 < n ? k[v & 63] : '='};
        ct__bpe_buf_put(b, q, 4);
    }
}

/* Scratch of derive_parts for tokens of up to cap bytes. */
typedef struct {
    int32_t *next, *prev; /* parts as a list over their first byte */
    int32_t *pid;         /* id of the pair of parts starting at a byte, or -1 */
    uint64_t *heap;       /* (pair id, first byte), at most 3 per byte */
    size_t cap;
} derive_t;

static int derive_init(derive_t *s, size_t cap)
{
    s->cap = cap;
    s->next = malloc(sizeof(int32_t) * (cap + 1));
    s->prev = malloc(sizeof(int32_t) * (cap + 1));
    s->pid = malloc(sizeof(int32_t) * (cap + 1));
    s->heap = malloc(sizeof(uint64_t) * 3 * (cap + 1));
    return s->next && s->prev && s->pid && s->heap ? 0 : -1;
}

static void derive_free(derive_t *s)
{
    free(s->next);
    free(s->prev);
    free(s->pid);
    free(s->heap);
}

/* Id of the token p[a..c) if it ranks below t, else -1. */
static int32_t pair_below(const tokmap_t *m, const char *p, int32_t a, int32_t c, int32_t t)
{
    int32_t id = tokmap_find(m, p + a, (size_t)(c - a));
    return id >= 0 && id < t ? id : -1;
}

/* Hugging Face's tiktoken conversion: BPE on the bytes of token t, where
 * any two adjacent parts whose bytes form a token ranked below t may merge,
 * the lowest-ranked first, the leftmost of equal ones (ranks are ids).
 * Returns the number of parts left; the ids of the first two go to
 * parts[0..1]. A min-heap of (pair id, position) over a linked list of
 * parts, stale entries skipped: O(k log k) for a token of k bytes (the scan
 * after every merge made it O(k^2) lookups: 27.6 s for one 128,000-byte
 * token). */
static int derive_parts(const tokmap_t *m, int32_t t, derive_t *s, int32_t parts[2])
{
    const ct_bpe_t *bpe = m->bpe;
    const char *p = bpe->tok_bytes + bpe->tok_off[t];
    int k = (int)tok_len(bpe, t), n = k;
    CT_ASSERT((size_t)k <= s->cap);
    int32_t *next = s->next, *prev = s->prev, *pid = s->pid;
    size_t nh = 0;
    for (int i = 0; i < k; i++) {
        next[i] = i + 1;
        prev[i] = i - 1;
        pid[i] = i + 1 < k ? pair_below(m, p, i, i + 2, t) : -1;
        if (pid[i] >= 0) ct__bpe_heap_push(s->heap, &nh, (uint64_t)pid[i] << 32 | (uint32_t)i);
    }
    /* Each merge removes a part and pushes at most two entries. */
    while (nh > 0) {
        uint64_t e = ct__bpe_heap_pop(s->heap, &nh);
        int32_t id = (int32_t)(e >> 32), i = (int32_t)(uint32_t)e;
        if (pid[i] != id) continue; /* stale: the pair at i changed, or i was merged away */
        int32_t j = next[i];
        next[i] = next[j];
        if (next[j] < k) prev[next[j]] = i;
        pid[j] = -1;
        n--;
        pid[i] = next[i] < k ? pair_below(m, p, i, next[next[i]], t) : -1;
        if (pid[i] >= 0) ct__bpe_heap_push(s->heap, &nh, (uint64_t)pid[i] << 32 | (uint32_t)i);
        if (prev[i] >= 0) {
            int32_t h = prev[i];
            pid[h] = pair_below(m, p, h, next[i], t);
            if (pid[h] >= 0) ct__bpe_heap_push(s->heap, &nh, (uint64_t)pid[h] << 32 | (uint32_t)h);
        }
    }
    if (n >= 1) parts[0] = tokmap_find(m, p, (size_t)next[0]);
    if (n >= 2) parts[1] = tokmap_find(m, p + next[0], (size_t)(next[next[0]] - next[0]));
    return n;
}

ct_status_t ct_bpe_load_tiktoken(const char *path, ct_bpe_t **bpe_p)
{
    char *buf = NULL;
    size_t n;
    ct_status_t st = ct__bpe_read_file(path, "tiktoken files hold lines \"base64(token) rank\"",
                                       &buf, &n);
    if (st != CT_OK) return st;
    st = ct__bpe_parse_tiktoken(buf, n, path, bpe_p);
    free(buf);
    return st;
}

ct_status_t ct__bpe_parse_tiktoken(const char *buf, size_t n, const char *path, ct_bpe_t **bpe_p)
{
    ct_status_t st;
    char *bytes = NULL;
    int64_t *ent_off = NULL;
    int32_t *ent_rank = NULL, *pos_of = NULL;
    int *ent_line = NULL;
    ct_bpe_t *bpe = NULL;
    tokmap_t map = {0};
    derive_t dv = {0};
    size_t max_lines = 1;
    for (size_t i = 0; i < n; i++) max_lines += buf[i] == '\n';
    bytes = malloc(n + 1);
    ent_off = malloc(sizeof(int64_t) * (max_lines + 1));
    ent_rank = malloc(sizeof(int32_t) * max_lines);
    ent_line = malloc(sizeof(int) * max_lines);
    if (!bytes || !ent_off || !ent_rank || !ent_line) goto oom;
    int N = 0, line = 0;
    size_t nb = 0;
    ent_off[0] = 0;
    for (size_t i = 0; i < n;) {
        const char *s = buf + i, *nl = memchr(s, '\n', n - i);
        size_t len = nl ? (size_t)(nl - s) : n - i;
        i += len + 1;
        line++;
        if (len > 0 && s[len - 1] == '\r') len--;
        if (len == 0) continue;
        const char *sp = memchr(s, ' ', len);
        long k = sp ? b64_decode(s, (size_t)(sp - s), bytes + nb) : -1;
        const char *q = sp ? sp + 1 : s;
        int64_t rank = 0;
        while (q < s + len && *q >= '0' && *q <= '9' && rank < CT__BPE_MAX_VOCAB)
            rank = rank * 10 + (*q++ - '0');
        if (k <= 0 || q == sp + 1 || q != s + len || rank >= CT__BPE_MAX_VOCAB - 1)
            GPT2_FAIL(CT_ERR_CORRUPT, "%s:%d: expected \"<base64 of the token's bytes> <rank>\""
                      "\n---> HINT: is this a tiktoken file such as gpt2.tiktoken?", path, line);
        if (k > CT__BPE_MAX_TOKEN_BYTES)
            GPT2_FAIL(CT_ERR_CORRUPT, "%s:%d: a token of %ld bytes; a token may have at most %d",
                      path, line, k, CT__BPE_MAX_TOKEN_BYTES);
        nb += (size_t)k;
        ent_rank[N] = (int32_t)rank;
        ent_line[N] = line;
        ent_off[++N] = (int64_t)nb;
    }
    if (N < 256)
        GPT2_FAIL(CT_ERR_CORRUPT, "%s: %d tokens; a byte-level vocabulary has at least the 256 "
                  "bytes", path, N);
    pos_of = malloc(sizeof(int32_t) * (size_t)N);
    if (!pos_of) goto oom;
    memset(pos_of, 0xff, sizeof(int32_t) * (size_t)N);
    for (int i = 0; i < N; i++) {
        if (ent_rank[i] >= N)
            GPT2_FAIL(CT_ERR_CORRUPT, "%s:%d: rank %d, but there are only %d tokens (ranks must "
                      "be 0..%d)", path, ent_line[i], ent_rank[i], N, N - 1);
        if (pos_of[ent_rank[i]] >= 0)
            GPT2_FAIL(CT_ERR_CORRUPT, "%s:%d: rank %d repeats line %d", path, ent_line[i],
                      ent_rank[i], ent_line[pos_of[ent_rank[i]]]);
        pos_of[ent_rank[i]] = i;
    }
    /* Ids are ranks; end-of-text comes after them, as in tiktoken's gpt2. */
    int V = N + 1;
    size_t eot_len = strlen(CT__BPE_EOT_TEXT);
    if (!(bpe = ct__bpe_alloc(V, N - 256)) || !(bpe->tok_bytes = malloc(nb + eot_len))) goto oom;
    int64_t o = 0;
    for (int id = 0; id < N; id++) {
        int i = pos_of[id];
        bpe->tok_off[id] = o;
        memcpy(bpe->tok_bytes + o, bytes + ent_off[i], (size_t)(ent_off[i + 1] - ent_off[i]));
        o += ent_off[i + 1] - ent_off[i];
    }
    bpe->tok_off[N] = o;
    memcpy(bpe->tok_bytes + o, CT__BPE_EOT_TEXT, eot_len);
    bpe->tok_off[V] = o + (int64_t)eot_len;
    bpe->eot = N;
    int32_t dup[2];
    int r = tokmap_init(&map, bpe, N, NULL, dup); /* the ranked tokens, not end-of-text */
    if (r < 0) goto oom;
    if (r > 0)
        GPT2_FAIL(CT_ERR_CORRUPT, "%s:%d: the token of rank %d repeats rank %d", path,
                  ent_line[pos_of[dup[1]]], dup[1], dup[0]);
    int missing;
    if (set_byte_ids(bpe, &map, &missing))
        GPT2_FAIL(CT_ERR_CORRUPT, "%s has no token for byte 0x%02x\n---> HINT: a byte-level BPE "
                  "vocabulary holds all 256 bytes", path, missing);
    int64_t longest = 0;
    for (int id = 0; id < N; id++)
        if (tok_len(bpe, id) > longest) longest = tok_len(bpe, id);
    if (derive_init(&dv, (size_t)longest)) goto oom;
    int m = 0;
    for (int id = 0; id < N; id++) {
        if (tok_len(bpe, id) < 2) continue;
        int32_t parts[2];
        if (derive_parts(&map, id, &dv, parts) != 2)
            GPT2_FAIL(CT_ERR_CORRUPT, "%s:%d: the token of rank %d is not two lower-ranked tokens "
                      "merged\n---> HINT: tiktoken files list a BPE vocabulary by rank", path,
                      ent_line[pos_of[id]], id);
        bpe->merges[2 * m] = parts[0];
        bpe->merges[2 * m + 1] = parts[1];
        bpe->merge_id[m] = id;
        m++;
    }
    CT_ASSERT(m == N - 256);
    int bad;
    const char *why;
    if ((st = ct__bpe_index(bpe, &bad, &why)) == CT_ERR_CORRUPT) {
        if (bad < 0) GPT2_FAIL(st, "%s: %s", path, why);
        GPT2_FAIL(st, "%s:%d: bad token: %s", path, ent_line[pos_of[bpe->merge_id[bad]]], why);
    }
    if (st == CT_ERR_NO_MEMORY) goto oom;
    goto done;
oom:
    st = CT_ERR_NO_MEMORY;
    CT_LOG_ERROR("out of memory loading %s", path);
done:
    if (st == CT_OK) *bpe_p = bpe;
    else ct_bpe_free(bpe);
    free(map.slots);
    derive_free(&dv);
    free(pos_of);
    free(ent_off);
    free(ent_rank);
    free(ent_line);
    free(bytes);
    return st;
}

/* ---- a directory of GPT-2 files ---------------------------------------------------------- */

static int is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

ct_status_t ct__bpe_load_dir(const char *dir, ct_bpe_t **bpe_p)
{
    static const char *pairs[][2] = {{"vocab.json", "merges.txt"}, {"encoder.json", "vocab.bpe"}};
    char a[4200], b[4200];
    /* A Hugging Face model directory: tokenizer.json describes it whole (a
     * Qwen2 directory also has vocab.json and merges.txt, without its
     * pre-tokenizer and special tokens). */
    snprintf(a, sizeof a, "%s/tokenizer.json", dir);
    if (is_file(a)) return ct_bpe_load_hf(a, bpe_p);
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        snprintf(a, sizeof a, "%s/%s", dir, pairs[i][0]);
        snprintf(b, sizeof b, "%s/%s", dir, pairs[i][1]);
        int ha = is_file(a), hb = is_file(b);
        if (ha && hb) return ct_bpe_load_gpt2(a, b, bpe_p);
        if (ha || hb) {
            CT_LOG_ERROR("%s has %s but not %s\n---> HINT: GPT-2's tokenizer needs both files",
                         dir, ha ? pairs[i][0] : pairs[i][1], ha ? pairs[i][1] : pairs[i][0]);
            return CT_ERR_NOT_FOUND;
        }
    }
    snprintf(a, sizeof a, "%s/gpt2.tiktoken", dir);
    if (is_file(a)) return ct_bpe_load_tiktoken(a, bpe_p);
    CT_LOG_ERROR("%s holds no tokenizer files\n---> HINT: expected tokenizer.json, vocab.json + "
                 "merges.txt, encoder.json + vocab.bpe, or gpt2.tiktoken", dir);
    return CT_ERR_NOT_FOUND;
}

/* ---- writing ------------------------------------------------------------------------------ */

/* Appends the token's bytes in the byte alphabet. */
static void put_alpha(ct__bpe_buf_t *b, const ct_bpe_t *bpe, int32_t id, int json)
{
    const uint8_t *p = (const uint8_t *)bpe->tok_bytes + bpe->tok_off[id];
    for (int64_t i = 0; i < tok_len(bpe, id); i++) {
        char u[4];
        int k = alpha_utf8(p[i], u);
        if (json && (u[0] == '"' || u[0] == '\\')) ct__bpe_buf_put(b, "\\", 1);
        ct__bpe_buf_put(b, u, (size_t)k);
    }
}

ct_status_t ct_bpe_save_gpt2(const ct_bpe_t *bpe, const char *vocab_json, const char *merges_txt)
{
    if (bpe->hf) return ct__bpe_refuse_hf(vocab_json);
    ct_status_t st = CT_OK;
    tokmap_t map = {0};
    int32_t dup[2];
    int r = tokmap_init(&map, bpe, bpe->vocab_size, NULL, dup);
    free(map.slots);
    if (r < 0) {
        CT_LOG_ERROR("out of memory writing %s", vocab_json);
        return CT_ERR_NO_MEMORY;
    }
    if (r > 0) {
        CT_LOG_ERROR("cannot write %s: tokens %d and %d have the same bytes, so vocab.json would "
                     "hold one string twice", vocab_json, dup[0], dup[1]);
        return CT_ERR_UNSUPPORTED;
    }
    /* As GPT-2's files are: json.dumps(ensure_ascii=False) with no newline at
     * the end, and the merges after a "#version: 0.2" line. */
    ct__bpe_buf_t v = {0}, m = {0};
    ct__bpe_buf_put(&v, "{", 1);
    for (int32_t id = 0; id < bpe->vocab_size; id++) {
        if (id) ct__bpe_buf_put(&v, ", ", 2);
        ct__bpe_buf_put(&v, "\"", 1);
        put_alpha(&v, bpe, id, 1);
        ct__bpe_buf_printf(&v, "\": %d", id);
    }
    ct__bpe_buf_put(&v, "}", 1);
    ct__bpe_buf_put(&m, GPT2_MERGES_HEADER, strlen(GPT2_MERGES_HEADER));
    for (int k = 0; k < bpe->n_merges; k++) {
        put_alpha(&m, bpe, bpe->merges[2 * k], 0);
        ct__bpe_buf_put(&m, " ", 1);
        put_alpha(&m, bpe, bpe->merges[2 * k + 1], 0);
        ct__bpe_buf_put(&m, "\n", 1);
    }
    if (v.oom || m.oom) {
        CT_LOG_ERROR("out of memory writing %s", vocab_json);
        st = CT_ERR_NO_MEMORY;
    }
    if (st == CT_OK) st = ct__bpe_write_file(vocab_json, v.p, v.n);
    if (st == CT_OK) st = ct__bpe_write_file(merges_txt, m.p, m.n);
    free(v.p);
    free(m.p);
    return st;
}

ct_status_t ct_bpe_save_tiktoken(const ct_bpe_t *bpe, const char *path)
{
    if (bpe->hf) return ct__bpe_refuse_hf(path);
    int V = bpe->vocab_size;
    ct_status_t st = CT_ERR_UNSUPPORTED;
    tokmap_t map = {0};
    derive_t dv = {0};
    uint8_t *made = calloc((size_t)V, 1);
    ct__bpe_buf_t b = {0};
    if (!made) goto oom;
    if (bpe->eot != V - 1)
        GPT2_FAIL(CT_ERR_UNSUPPORTED, "cannot write %s as tiktoken: the end-of-text token is not "
                  "the last id", path);
    int64_t longest = 1;
    for (int b2 = 0; b2 < 256; b2++) made[bpe->byte_id[b2]] = 1;
    for (int r = 0; r < bpe->n_merges; r++) {
        made[bpe->merge_id[r]] = 1;
        if (r > 0 && bpe->merge_id[r] < bpe->merge_id[r - 1])
            GPT2_FAIL(CT_ERR_UNSUPPORTED, "cannot write %s as tiktoken: merge %d makes id %d, "
                      "below the id of merge %d (tiktoken ranks are the merge order)", path, r,
                      bpe->merge_id[r], r - 1);
        if (tok_len(bpe, bpe->merge_id[r]) > longest) longest = tok_len(bpe, bpe->merge_id[r]);
    }
    for (int id = 0; id < V - 1; id++)
        if (!made[id])
            GPT2_FAIL(CT_ERR_UNSUPPORTED, "cannot write %s as tiktoken: token %d is neither a "
                      "byte nor made by a merge", path, id);
    /* The file must load back to the same merges. */
    int32_t dup[2];
    int r = tokmap_init(&map, bpe, V - 1, NULL, dup); /* the ranked tokens, not end-of-text */
    if (r < 0 || derive_init(&dv, (size_t)longest)) goto oom;
    CT_ASSERT(r == 0); /* a merge always makes a new token */
    for (int k = 0; k < bpe->n_merges; k++) {
        int32_t parts[2];
        if (derive_parts(&map, bpe->merge_id[k], &dv, parts) != 2 ||
            parts[0] != bpe->merges[2 * k] || parts[1] != bpe->merges[2 * k + 1])
            GPT2_FAIL(CT_ERR_UNSUPPORTED, "cannot write %s as tiktoken: token %d (merge %d) would "
                      "load back as other parts, so the tokenizer would encode differently"
                      "\n---> HINT: write it in GPT-2's format, which keeps the merges", path,
                      bpe->merge_id[k], k);
    }
    for (int id = 0; id < V - 1; id++) {
        b64_encode(&b, (const uint8_t *)bpe->tok_bytes + bpe->tok_off[id], (size_t)tok_len(bpe, id));
        ct__bpe_buf_printf(&b, " %d\n", id);
    }
    if (b.oom) goto oom;
    st = ct__bpe_write_file(path, b.p, b.n);
    goto done;
oom:
    st = CT_ERR_NO_MEMORY;
    CT_LOG_ERROR("out of memory writing %s", path);
done:
    free(b.p);
    free(made);
    derive_free(&dv);
    free(map.slots);
    return st;
}
