/* BPE training.
 *
 * 1. Pre-tokenize every text with GPT-2's exact pre-tokenizer (so the result
 *    is a version 2 tokenizer) and count the distinct pre-tokens ("words").
 * 2. Hold each distinct word as an array of symbol ids with its count, and
 *    count every adjacent pair (weighted by word count) in a hash map; each
 *    pair keeps the list of words it occurs in.
 * 3. Repeatedly take the most frequent pair from a max-heap (ties: smallest
 *    (left, right)), merge it in the words on its list only, and update the
 *    counts of the pairs around each merged occurrence.
 *
 * Heap entries are invalidated lazily: a pair's count only goes down, except
 * for the pairs that contain the newest token, which are pushed once at the
 * end of their merge step. An entry whose stored count no longer matches is
 * re-pushed with the current count when it reaches the top. So the top, once
 * valid, is the true maximum and the result is deterministic.
 *
 * Left out: multithreading and training from more text than fits in memory. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/timer.h"
#include "data/bpe_impl.h"

/* Pre-tokens longer than this are counted as pieces of this length. A merge
 * costs time proportional to the length of every word that holds the pair,
 * so one 2 MB word (a DNA sequence, a base64 blob) would make every merge
 * scan 2 MB; pieces bound that, and tokens longer than this are of little use.
 * Encoding is unaffected. */
#define TRAIN_MAX_WORD 256
_Static_assert(TRAIN_MAX_WORD <= CT__BPE_MAX_TOKEN_BYTES, "trained tokens must load again");

typedef struct {
    int32_t left, right;
    int64_t count;
    int32_t *words; /* indices of words that contain (or once contained) the pair */
    int32_t nw, capw;
} pair_t;

/* A slot of the pair map; UINT64_MAX marks it empty. */
typedef struct {
    uint64_t key;
    int32_t idx;
} pslot_t;

/* One distinct word; kept together so a visit costs one cache miss. */
typedef struct {
    int64_t count;
    int64_t off;   /* into wsym */
    int32_t len;   /* symbols now */
    int32_t stamp; /* last merge step that touched the word */
} word_t;

typedef struct {
    int64_t count; /* pair count when pushed */
    int32_t pair;
} hent_t;

typedef struct {
    /* distinct words while counting: open addressing over entries */
    uint32_t *wslots;
    size_t wmask;
    uint64_t *whash;
    int64_t *wkey_off; /* into wkeys */
    int32_t *wkey_len;
    int64_t *wcount;
    int32_t nwords, capwords;
    char *wkeys;
    size_t wkeys_n, wkeys_cap;

    /* words as symbols: wsym[words[w].off .. + words[w].len) */
    int32_t *wsym;
    word_t *words;

    /* pairs */
    pair_t *pairs;
    int32_t npairs, cappairs;
    pslot_t *pslots; /* map (left << 32 | right) -> pair index */
    size_t pmask;
    hent_t *heap;
    size_t nheap, capheap;
    int32_t *fresh; /* pairs created in the current step */
    size_t nfresh, capfresh;
} trainer_t;


static int grow32(void **p, int32_t *cap, int32_t need, size_t elem)
{
    size_t c = (size_t)*cap;
    if (ct__bpe_grow(p, &c, (size_t)need, elem)) return -1;
    *cap = (int32_t)c;
    return 0;
}

/* ---- word counting ----------------------------------------------------------- */

static int words_rehash(trainer_t *t, size_t nslots)
{
    uint32_t *slots = calloc(nslots, sizeof(uint32_t));
    if (!slots) return -1;
    for (int32_t k = 0; k < t->nwords; k++) {
        size_t i = t->whash[k] & (nslots - 1);
        while (slots[i]) i = (i + 1) & (nslots - 1);
        slots[i] = (uint32_t)k + 1;
    }
    free(t->wslots);
    t->wslots = slots;
    t->wmask = nslots - 1;
    return 0;
}

static int word_add(trainer_t *t, const uint8_t *w, size_t len)
{
    uint64_t h = ct__bpe_hash_bytes(w, len);
    size_t i = h & t->wmask;
    for (;; i = (i + 1) & t->wmask) {
        uint32_t k = t->wslots[i];
        if (!k) break;
        k--;
        if (t->whash[k] == h && (size_t)t->wkey_len[k] == len &&
            memcmp(t->wkeys + t->wkey_off[k], w, len) == 0) {
            t->wcount[k]++;
            return 0;
        }
    }
    if (t->nwords == INT32_MAX - 1) return -1;
    int32_t k = t->nwords;
    int32_t cap = t->capwords;
    if (grow32((void **)&t->whash, &cap, k + 1, sizeof *t->whash)) return -1;
    cap = t->capwords;
    if (grow32((void **)&t->wkey_off, &cap, k + 1, sizeof *t->wkey_off)) return -1;
    cap = t->capwords;
    if (grow32((void **)&t->wkey_len, &cap, k + 1, sizeof *t->wkey_len)) return -1;
    cap = t->capwords;
    if (grow32((void **)&t->wcount, &cap, k + 1, sizeof *t->wcount)) return -1;
    t->capwords = cap;
    if (ct__bpe_grow((void **)&t->wkeys, &t->wkeys_cap, t->wkeys_n + len, 1)) return -1;
    memcpy(t->wkeys + t->wkeys_n, w, len);
    t->whash[k] = h;
    t->wkey_off[k] = (int64_t)t->wkeys_n;
    t->wkey_len[k] = (int32_t)len;
    t->wcount[k] = 1;
    t->wkeys_n += len;
    t->wslots[i] = (uint32_t)k + 1;
    t->nwords++;
    if (2 * (size_t)t->nwords > t->wmask + 1 && words_rehash(t, 2 * (t->wmask + 1))) return -1;
    return 0;
}

/* ---- pairs ------------------------------------------------------------------- */

static int pairs_rehash(trainer_t *t, size_t nslots)
{
    pslot_t *slots = malloc(nslots * sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < nslots; i++) slots[i].key = UINT64_MAX;
    for (int32_t p = 0; p < t->npairs; p++) {
        uint64_t key = ct__bpe_pair_key(t->pairs[p].left, t->pairs[p].right);
        size_t i = ct__bpe_hash_u64(key) & (nslots - 1);
        while (slots[i].key != UINT64_MAX) i = (i + 1) & (nslots - 1);
        slots[i].key = key;
        slots[i].idx = p;
    }
    free(t->pslots);
    t->pslots = slots;
    t->pmask = nslots - 1;
    return 0;
}

/* Index of pair (l, r); creates it (count 0) when `create`. -1 when absent
 * or out of memory (only possible with create; the caller tells them apart). */
static int32_t pair_get(trainer_t *t, int32_t l, int32_t r, int create)
{
    uint64_t key = ct__bpe_pair_key(l, r);
    size_t i = ct__bpe_hash_u64(key) & t->pmask;
    for (;; i = (i + 1) & t->pmask) {
        if (t->pslots[i].key == key) return t->pslots[i].idx;
        if (t->pslots[i].key == UINT64_MAX) break;
    }
    if (!create) return -1;
    if (grow32((void **)&t->pairs, &t->cappairs, t->npairs + 1, sizeof *t->pairs)) return -1;
    if (ct__bpe_grow((void **)&t->fresh, &t->capfresh, t->nfresh + 1, sizeof *t->fresh)) return -1;
    int32_t p = t->npairs++;
    t->pairs[p] = (pair_t){.left = l, .right = r};
    t->pslots[i].key = key;
    t->pslots[i].idx = p;
    t->fresh[t->nfresh++] = p;
    if (2 * (size_t)t->npairs > t->pmask + 1 && pairs_rehash(t, 2 * (t->pmask + 1))) return -1;
    return p;
}

static int pair_add_word(pair_t *p, int32_t w)
{
    if (p->nw > 0 && p->words[p->nw - 1] == w) return 0;
    if (p->nw == p->capw) {
        /* Most pairs occur in few words: start small. */
        int32_t nc = p->capw ? 2 * p->capw : 2;
        int32_t *q = realloc(p->words, sizeof(int32_t) * (size_t)nc);
        if (!q) return -1;
        p->words = q;
        p->capw = nc;
    }
    p->words[p->nw++] = w;
    return 0;
}

/* Heap order: higher count first, then smaller (left, right). */
static inline int hent_before(const trainer_t *t, hent_t a, hent_t b)
{
    if (a.count != b.count) return a.count > b.count;
    const pair_t *pa = &t->pairs[a.pair], *pb = &t->pairs[b.pair];
    if (pa->left != pb->left) return pa->left < pb->left;
    return pa->right < pb->right;
}

static int heap_push(trainer_t *t, int32_t pair)
{
    if (ct__bpe_grow((void **)&t->heap, &t->capheap, t->nheap + 1, sizeof *t->heap)) return -1;
    hent_t v = {t->pairs[pair].count, pair};
    size_t i = t->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hent_before(t, v, t->heap[p])) break;
        t->heap[i] = t->heap[p];
        i = p;
    }
    t->heap[i] = v;
    return 0;
}

static void heap_pop(trainer_t *t)
{
    hent_t v = t->heap[--t->nheap];
    size_t i = 0, n = t->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && hent_before(t, t->heap[c + 1], t->heap[c])) c++;
        if (!hent_before(t, t->heap[c], v)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n > 0) t->heap[i] = v;
}

/* The most frequent pair, or -1 when no pair is left. */
static int32_t heap_best(trainer_t *t)
{
    while (t->nheap > 0) {
        hent_t top = t->heap[0];
        int64_t c = t->pairs[top.pair].count;
        CT_ASSERT(top.count >= c); /* counts only fall, except fresh pairs (pushed late) */
        if (top.count == c && c > 0) return top.pair;
        heap_pop(t);
        if (c > 0 && heap_push(t, top.pair)) return -2;
    }
    return -1;
}

/* Merges (a, b) -> z in word w and updates the pair counts: the pairs that
 * touch a or b are removed, the pairs that touch a, b or z in the merged
 * word are added back. Pairs away from the merges cancel out. */
static int word_merge(trainer_t *t, int32_t w, int32_t a, int32_t b, int32_t z)
{
    word_t *wd = &t->words[w];
    int32_t *s = t->wsym + wd->off;
    int32_t n = wd->len;
    int64_t c = wd->count;
    int32_t first = 0;
    while (first + 1 < n && !(s[first] == a && s[first + 1] == b)) first++;
    if (first + 1 >= n) return 0; /* a stale entry: an earlier merge took the pair away */
    for (int32_t i = 0; i + 1 < n; i++) {
        if (s[i] == a || s[i] == b || s[i + 1] == a || s[i + 1] == b) {
            int32_t p = pair_get(t, s[i], s[i + 1], 0);
            CT_ASSERT(p >= 0);
            t->pairs[p].count -= c;
        }
    }
    int32_t out = 0;
    for (int32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            s[out++] = z;
            i += 2;
        } else {
            s[out++] = s[i++];
        }
    }
    n = wd->len = out;
    for (int32_t i = 0; i + 1 < n; i++) {
        int32_t x = s[i], y = s[i + 1];
        if (x == a || x == b || x == z || y == a || y == b || y == z) {
            int32_t p = pair_get(t, x, y, 1);
            if (p < 0) return -1;
            t->pairs[p].count += c;
            if ((x == z || y == z) && pair_add_word(&t->pairs[p], w)) return -1;
        }
    }
    return 0;
}

static void trainer_free(trainer_t *t)
{
    free(t->wslots);
    free(t->whash);
    free(t->wkey_off);
    free(t->wkey_len);
    free(t->wcount);
    free(t->wkeys);
    free(t->wsym);
    free(t->words);
    for (int32_t p = 0; p < t->npairs; p++) free(t->pairs[p].words);
    free(t->pairs);
    free(t->pslots);
    free(t->heap);
    free(t->fresh);
}

ct_status_t ct_bpe_train(const char *const *texts, const size_t *lens, int n, int vocab_size,
                         ct_bpe_t **bpe_p)
{
    if (vocab_size < 257 || vocab_size > CT__BPE_MAX_VOCAB) {
        CT_LOG_ERROR("bpe train: vocab_size %d out of range [257, %d] (256 bytes + merges + "
                     "end-of-text)", vocab_size, CT__BPE_MAX_VOCAB);
        return CT_ERR_INVALID_ARG;
    }
    int want = vocab_size - 257;
    double t0 = ct_time_now();
    trainer_t t = {0};
    int32_t *merges = NULL;
    ct_status_t st = CT_ERR_NO_MEMORY;

    /* 1. Distinct pre-tokens. */
    if (words_rehash(&t, 1 << 16)) goto oom;
    size_t total_bytes = 0;
    for (int d = 0; d < n; d++) {
        const uint8_t *s = (const uint8_t *)texts[d];
        size_t len = lens[d], pos = 0;
        total_bytes += len;
        while (pos < len) {
            size_t end = ct__bpe_pretok_next(s, len, pos);
            /* Long pre-tokens are counted in pieces (see TRAIN_MAX_WORD); single
             * bytes make no pairs. */
            for (; end - pos > TRAIN_MAX_WORD; pos += TRAIN_MAX_WORD)
                if (word_add(&t, s + pos, TRAIN_MAX_WORD)) goto oom;
            if (end - pos > 1 && word_add(&t, s + pos, end - pos)) goto oom;
            pos = end;
        }
    }
    free(t.wslots);
    t.wslots = NULL;
    double t1 = ct_time_now();

    /* 2. Symbols, pairs, heap. */
    int32_t nw = t.nwords;
    t.wsym = malloc(sizeof(int32_t) * (t.wkeys_n + 1));
    t.words = malloc(sizeof(word_t) * ((size_t)nw + 1));
    merges = malloc(sizeof(int32_t) * 2 * ((size_t)want + 1));
    if (!t.wsym || !t.words || !merges) goto oom;
    if (pairs_rehash(&t, 1 << 16)) goto oom;
    for (int32_t w = 0; w < nw; w++) {
        const uint8_t *k = (const uint8_t *)t.wkeys + t.wkey_off[w];
        int32_t len = t.wkey_len[w];
        int32_t *s = t.wsym + t.wkey_off[w];
        t.words[w] = (word_t){.count = t.wcount[w], .off = t.wkey_off[w], .len = len, .stamp = -1};
        for (int32_t i = 0; i < len; i++) s[i] = k[i];
        for (int32_t i = 0; i + 1 < len; i++) {
            int32_t p = pair_get(&t, s[i], s[i + 1], 1);
            if (p < 0) goto oom;
            t.pairs[p].count += t.wcount[w];
            if (pair_add_word(&t.pairs[p], w)) goto oom;
        }
    }
    for (int32_t p = 0; p < t.npairs; p++)
        if (heap_push(&t, p)) goto oom;
    t.nfresh = 0;

    /* 3. Merge loop. */
    int done = 0;
    for (; done < want; done++) {
        int32_t best = heap_best(&t);
        if (best == -2) goto oom;
        if (best < 0) break;
        int32_t a = t.pairs[best].left, b = t.pairs[best].right, z = 256 + done;
        merges[2 * done] = a;
        merges[2 * done + 1] = b;
        /* Merging never appends to (a, b)'s own list: every new pair holds z. */
        int32_t *wl = t.pairs[best].words, nwl = t.pairs[best].nw;
        for (int32_t k = 0; k < nwl; k++) {
            /* Words are visited in scattered order: fetch ahead. */
            if (k + 16 < nwl) __builtin_prefetch(&t.words[wl[k + 16]]);
            if (k + 8 < nwl) __builtin_prefetch(t.wsym + t.words[wl[k + 8]].off);
            int32_t w = wl[k];
            if (t.words[w].stamp == done) continue;
            t.words[w].stamp = done;
            if (word_merge(&t, w, a, b, z)) goto oom;
        }
        CT_ASSERT(t.pairs[best].count == 0);
        free(t.pairs[best].words);
        t.pairs[best].words = NULL;
        t.pairs[best].nw = t.pairs[best].capw = 0;
        for (size_t k = 0; k < t.nfresh; k++)
            if (t.pairs[t.fresh[k]].count > 0 && heap_push(&t, t.fresh[k])) goto oom;
        t.nfresh = 0;
    }
    double t2 = ct_time_now();
    if (done < want)
        CT_LOG_WARN("bpe train: the text has only enough pairs for %d merges, not %d; the "
                    "vocabulary has %d tokens instead of %d", done, want, 257 + done, vocab_size);
    CT_LOG_DEBUG("bpe train: %zu bytes, %d distinct words, %d pairs; counting %.3f s, merging "
                 "%.3f s", total_bytes, nw, t.npairs, t1 - t0, t2 - t1);
    int bad = -1;
    st = ct__bpe_new(merges, done, bpe_p, &bad);
    if (st == CT_ERR_CORRUPT) {
        CT_LOG_ERROR("bpe train: merge %d makes the tokens longer than the limit", bad);
        st = CT_ERR_UNSUPPORTED;
    } else if (st != CT_OK) {
        goto oom;
    }
    goto out;
oom:
    st = CT_ERR_NO_MEMORY;
    CT_LOG_ERROR("bpe train: out of memory (%d distinct words, %d pairs)", t.nwords, t.npairs);
out:
    free(merges);
    trainer_free(&t);
    return st;
}
