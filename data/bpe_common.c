/* Byte-level BPE, the pieces that every tokenizer file shares: the
 * tokenizer object (allocation, the index that checks its invariants and
 * builds the merge map, the merge-rank lookup, free), GPT-2's byte alphabet,
 * a growable array and output buffer, and reading and writing whole files.
 * bpe.c (the ctrain format, encoding), bpe_gpt2.c (GPT-2 and tiktoken files)
 * and bpe_train.c call these; this file calls none of them.
 *
 * Left out: any file format and any encoding; this is the common ground
 * under them, so that the format files depend on it and not on each other. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "data/bpe_impl.h"

/* ---- GPT-2's byte alphabet --------------------------------------------------- */

/* bytes_to_unicode() in GPT-2's encoder.py: the printable bytes '!'..'~',
 * U+00A1..U+00AC and U+00AE..U+00FF stand for themselves; the other 68 bytes,
 * in order, become U+0100, U+0101, ... */
static inline int byte_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t ct__bpe_byte_to_unicode(uint8_t b)
{
    if (byte_printable(b)) return b;
    uint32_t k = 0;
    for (unsigned x = 0; x < b; x++) k += !byte_printable(x);
    return 0x100 + k;
}

int ct__bpe_unicode_to_byte(uint32_t cp)
{
    if (cp < 0x100) return byte_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    uint32_t k = cp - 0x100;
    for (unsigned x = 0; x < 256; x++)
        if (!byte_printable(x) && k-- == 0) return (int)x;
    return -1;
}

/* ---- the tokenizer object --------------------------------------------------- */

int ct__bpe_rank(const ct_bpe_t *bpe, int32_t left, int32_t right)
{
    uint64_t key = ct__bpe_pair_key(left, right);
    for (size_t i = ct__bpe_hash_u64(key) & bpe->mm_mask;; i = (i + 1) & bpe->mm_mask) {
        if (bpe->mm_keys[i] == key) return bpe->mm_rank[i];
        if (bpe->mm_keys[i] == UINT64_MAX) return -1;
    }
}

ct_bpe_t *ct__bpe_alloc(int V, int n_merges)
{
    CT_ASSERT(V >= 1 && n_merges >= 0 && n_merges <= CT__BPE_MAX_MERGES);
    ct_bpe_t *bpe = calloc(1, sizeof *bpe);
    if (!bpe) return NULL;
    bpe->vocab_size = V;
    bpe->n_merges = n_merges;
    bpe->version = CT__BPE_VERSION;
    bpe->pretok = CT__BPE_PRETOK_GPT2;
    bpe->merges = malloc(sizeof(int32_t) * 2 * (size_t)(n_merges + 1));
    bpe->merge_id = malloc(sizeof(int32_t) * (size_t)(n_merges + 1));
    bpe->tok_off = malloc(sizeof(int64_t) * (size_t)(V + 1));
    if (!bpe->merges || !bpe->merge_id || !bpe->tok_off) {
        ct_bpe_free(bpe);
        return NULL;
    }
    return bpe;
}

static int64_t tok_len(const ct_bpe_t *bpe, int32_t id)
{
    return bpe->tok_off[id + 1] - bpe->tok_off[id];
}

#define INDEX_FAIL(r, msg)                                                                        \
    do {                                                                                          \
        *bad_p = (r);                                                                             \
        *why_p = (msg);                                                                           \
        st = CT_ERR_CORRUPT;                                                                      \
        goto done;                                                                                \
    } while (0)

ct_status_t ct__bpe_index(ct_bpe_t *bpe, int *bad_p, const char **why_p)
{
    int V = bpe->vocab_size, n_merges = bpe->n_merges;
    ct_status_t st = CT_OK;
    free(bpe->mm_keys);
    free(bpe->mm_rank);
    size_t mm_cap = 16;
    while (mm_cap < 2 * (size_t)n_merges) mm_cap *= 2;
    bpe->mm_keys = malloc(sizeof(uint64_t) * mm_cap);
    bpe->mm_rank = malloc(sizeof(int32_t) * mm_cap);
    uint8_t *made = calloc((size_t)V, 1); /* 1: a byte token or made by an earlier merge */
    if (!bpe->mm_keys || !bpe->mm_rank || !made) {
        st = CT_ERR_NO_MEMORY;
        goto done;
    }
    memset(bpe->mm_keys, 0xff, sizeof(uint64_t) * mm_cap);
    bpe->mm_mask = mm_cap - 1;
    if (bpe->eot < 0 || bpe->eot >= V) INDEX_FAIL(-1, "the end-of-text id is out of range");
    for (int b = 0; b < 256; b++) {
        int32_t id = bpe->byte_id[b];
        if (id < 0 || id >= V) INDEX_FAIL(-1, "a byte token id is out of range");
        if (tok_len(bpe, id) != 1 || (uint8_t)bpe->tok_bytes[bpe->tok_off[id]] != b)
            INDEX_FAIL(-1, "a byte token does not hold its byte");
        made[id] = 1;
    }
    for (int r = 0; r < n_merges; r++) {
        int32_t l = bpe->merges[2 * r], rt = bpe->merges[2 * r + 1], z = bpe->merge_id[r];
        if (l < 0 || l >= V || rt < 0 || rt >= V || z < 0 || z >= V)
            INDEX_FAIL(r, "an id is out of range");
        if (!bpe->relaxed) {
            if (!made[l] || !made[rt])
                INDEX_FAIL(r, "it uses a token that is neither a byte nor made by an earlier merge");
            if (made[z]) INDEX_FAIL(r, "it makes a token that a byte or an earlier merge made");
            if (z == bpe->eot) INDEX_FAIL(r, "it makes the end-of-text token");
            if (ct__bpe_rank(bpe, l, rt) >= 0) INDEX_FAIL(r, "it repeats an earlier merge");
        } else if (tok_len(bpe, z) < 2) {
            INDEX_FAIL(r, "it makes a single byte");
        }
        int64_t ll = tok_len(bpe, l);
        if (tok_len(bpe, z) != ll + tok_len(bpe, rt) ||
            memcmp(bpe->tok_bytes + bpe->tok_off[z], bpe->tok_bytes + bpe->tok_off[l],
                   (size_t)ll) != 0 ||
            memcmp(bpe->tok_bytes + bpe->tok_off[z] + ll, bpe->tok_bytes + bpe->tok_off[rt],
                   (size_t)tok_len(bpe, rt)) != 0)
            INDEX_FAIL(r, "the token it makes is not its two parts joined");
        uint64_t key = ct__bpe_pair_key(l, rt);
        size_t i = ct__bpe_hash_u64(key) & bpe->mm_mask;
        while (bpe->mm_keys[i] != UINT64_MAX && bpe->mm_keys[i] != key) i = (i + 1) & bpe->mm_mask;
        bpe->mm_keys[i] = key; /* relaxed: a pair given again takes the later rank */
        bpe->mm_rank[i] = r;
        made[z] = 1;
    }
    /* The scan merges every occurrence of the lowest rank, the heap the
     * leftmost first; they agree when each merge comes after every merge
     * that makes one of its parts (then a new pair ranks above the merge
     * that made it). Strict files are so by construction. */
    bpe->heap_only = 0;
    if (bpe->relaxed) {
        int32_t *last = malloc(sizeof(int32_t) * (size_t)V);
        if (!last) {
            st = CT_ERR_NO_MEMORY;
            goto done;
        }
        memset(last, 0xff, sizeof(int32_t) * (size_t)V);
        for (int r = 0; r < n_merges; r++) last[bpe->merge_id[r]] = r;
        for (int r = 0; r < n_merges && !bpe->heap_only; r++)
            bpe->heap_only = last[bpe->merges[2 * r]] >= r || last[bpe->merges[2 * r + 1]] >= r;
        free(last);
    }
    /* The ctrain layout: bytes in order, merge r makes 256 + r, end-of-text last. */
    int native = V == 257 + n_merges && bpe->eot == V - 1;
    for (int b = 0; b < 256 && native; b++) native = bpe->byte_id[b] == b;
    for (int r = 0; r < n_merges && native; r++) native = bpe->merge_id[r] == 256 + r;
    bpe->native = native;
done:
    free(made);
    return st;
}

void ct_bpe_free(ct_bpe_t *bpe)
{
    if (!bpe) return;
    free(bpe->merges);
    free(bpe->merge_id);
    free(bpe->tok_bytes);
    free(bpe->tok_off);
    free(bpe->mm_keys);
    free(bpe->mm_rank);
    free(bpe->cache.slots);
    free(bpe->cache.ents);
    free(bpe->cache.keys);
    free(bpe->cache.ids);
    free(bpe->scr_next);
    free(bpe->scr_prev);
    free(bpe->scr_heap);
    if (bpe->hf) bpe->hf_free(bpe->hf);
    free(bpe);
}

/* ---- a min-heap of uint64 ----------------------------------------------------- */

void ct__bpe_heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

uint64_t ct__bpe_heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (v <= h[c]) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* ---- buffers and files ------------------------------------------------------ */

int ct__bpe_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 256;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

void ct__bpe_buf_put(ct__bpe_buf_t *b, const void *p, size_t n)
{
    if (b->oom) return;
    if (ct__bpe_grow((void **)&b->p, &b->cap, b->n + n + 1, 1)) {
        b->oom = 1;
        return;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

void ct__bpe_buf_printf(ct__bpe_buf_t *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    CT_ASSERT(k >= 0 && (size_t)k < sizeof tmp);
    ct__bpe_buf_put(b, tmp, (size_t)k);
}

ct_status_t ct__bpe_write_file(const char *path, const char *data, size_t len)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return CT_ERR_NO_MEMORY;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        CT_LOG_ERROR("cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return CT_ERR_IO;
    }
    int bad = fwrite(data, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0;
    int err = errno;
    if (fclose(f) != 0 && !bad) bad = 1, err = errno;
    if (!bad && rename(tmp, path) != 0) {
        CT_LOG_ERROR("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return CT_ERR_IO;
    }
    if (bad) {
        CT_LOG_ERROR("cannot write %s: %s", tmp, strerror(err));
        unlink(tmp);
        free(tmp);
        return CT_ERR_IO;
    }
    free(tmp);
    return CT_OK;
}

ct_status_t ct__bpe_read_file(const char *path, const char *hint, char **buf_p, size_t *len_p)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int err = errno;
        CT_LOG_ERROR("cannot open %s: %s\n---> HINT: %s", path, strerror(err), hint);
        return err == ENOENT ? CT_ERR_NOT_FOUND : CT_ERR_IO;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (ct__bpe_grow((void **)&buf, &cap, n + 65536, 1)) {
            fclose(f);
            free(buf);
            CT_LOG_ERROR("out of memory reading %s (%zu bytes so far)", path, n);
            return CT_ERR_NO_MEMORY;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        CT_LOG_ERROR("cannot read %s", path);
        free(buf);
        return CT_ERR_IO;
    }
    buf[n] = 0;
    *buf_p = buf;
    *len_p = n;
    return CT_OK;
}
