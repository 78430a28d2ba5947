/* The corpus and its deterministic sample order, over local shards.
 *
 * Samples are (T+1)-token windows at stride T inside one shard. Chunks are
 * runs of consecutive samples of about chunk_tokens tokens. For each epoch
 * the chunks are permuted (seeded by (seed, epoch)), then samples are
 * permuted inside windows of window_chunks consecutive permuted chunks
 * (seeded by (seed, epoch, window)). Sample i of a run is thus a pure
 * function of (seed, corpus, T, i): ranks ask for samples by absolute index
 * and get the same sequence whatever the number of ranks.
 *
 * Left out for now: remote byte sources and background prefetch (the
 * streaming issue); local files are read with pread, which the page cache
 * makes cheap. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rng.h"
#include "data/data.h"

typedef struct {
    char *path;
    int fd;
    int width;
    int64_t ntok;
    int64_t first_sample; /* corpus-wide id of its sample 0 */
    int64_t nsamples;
} shard_t;

typedef struct {
    int64_t first_sample; /* corpus-wide id */
    int64_t nsamples;
} chunk_t;

struct ct_loader {
    ct_loader_opts_t opts;
    shard_t *shards;
    int nshards;
    chunk_t *chunks;
    int64_t nchunks;
    int64_t nsamples;
    /* order of the cached epoch */
    int64_t epoch;        /* -1 = none */
    int64_t *chunk_perm;  /* (nchunks) */
    int64_t *pos_start;   /* (nchunks+1) position of each permuted chunk */
    /* the cached window */
    int64_t window;       /* -1 = none */
    int64_t *win_ids;     /* sample ids of the window, shuffled */
    int64_t win_cap;
    void *buf;            /* (T+1)*4 bytes */
};

static void loader_close_shards(ct_loader_t *l)
{
    for (int i = 0; i < l->nshards; i++) {
        if (l->shards[i].fd >= 0) close(l->shards[i].fd);
        free(l->shards[i].path);
    }
    free(l->shards);
    l->shards = NULL;
    l->nshards = 0;
}

void ct_loader_free(ct_loader_t *l)
{
    if (!l) return;
    loader_close_shards(l);
    free(l->chunks);
    free(l->chunk_perm);
    free(l->pos_start);
    free(l->win_ids);
    free(l->buf);
    free(l);
}

static ct_status_t loader_add_path(ct_loader_t *l, const char *path, int *cap)
{
    if (l->nshards == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        shard_t *s = realloc(l->shards, (size_t)*cap * sizeof *s);
        if (!s) return CT_ERR_NO_MEMORY;
        l->shards = s;
    }
    shard_t *s = &l->shards[l->nshards];
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->path = strdup(path);
    if (!s->path) return CT_ERR_NO_MEMORY;
    l->nshards++;
    ct_shard_info_t info;
    ct_status_t st = ct_shard_read_header(path, &info);
    if (st != CT_OK) return st;
    s->width = info.width;
    s->ntok = info.ntok;
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
        CT_LOG_ERROR("cannot open shard %s: %s", path, strerror(errno));
        return CT_ERR_IO;
    }
    return CT_OK;
}

/* Expands a glob or comma-separated list into shards, in order. */
static ct_status_t loader_open_spec(ct_loader_t *l, const char *spec)
{
    char *copy = strdup(spec);
    if (!copy) return CT_ERR_NO_MEMORY;
    ct_status_t st = CT_OK;
    int cap = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item && st == CT_OK;
         item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ') item++;
        if (!*item) continue;
        if (strncmp(item, "file://", 7) == 0) item += 7;
        if (strpbrk(item, "*?[")) {
            glob_t g;
            int rc = glob(item, 0, NULL, &g);
            if (rc == GLOB_NOMATCH) {
                CT_LOG_ERROR("no shard matches '%s'\n---> HINT: check the data path, or create "
                             "shards with `ctrain tokenize encode`", item);
                st = CT_ERR_NOT_FOUND;
            } else if (rc != 0) {
                CT_LOG_ERROR("cannot expand '%s': glob error %d", item, rc);
                st = CT_ERR_IO;
            } else {
                for (size_t i = 0; i < g.gl_pathc && st == CT_OK; i++)
                    st = loader_add_path(l, g.gl_pathv[i], &cap);
            }
            if (rc == 0) globfree(&g);
        } else {
            st = loader_add_path(l, item, &cap);
        }
    }
    free(copy);
    if (st == CT_OK && l->nshards == 0) {
        CT_LOG_ERROR("data spec '%s' names no shard", spec);
        st = CT_ERR_NOT_FOUND;
    }
    return st;
}

ct_status_t ct_loader_init(const ct_loader_opts_t *opts, ct_loader_t **loader_p)
{
    CT_ASSERT(opts->T > 0 && opts->chunk_tokens > 0 && opts->window_chunks > 0);
    ct_loader_t *l = calloc(1, sizeof *l);
    if (!l) return CT_ERR_NO_MEMORY;
    l->opts = *opts;
    l->opts.spec = NULL;
    l->epoch = -1;
    l->window = -1;
    ct_status_t st = loader_open_spec(l, opts->spec);
    if (st != CT_OK) goto fail;

    const int64_t T = opts->T;
    int64_t spc = opts->chunk_tokens / T; /* samples per chunk */
    if (spc < 1) spc = 1;
    for (int i = 0; i < l->nshards; i++) {
        shard_t *s = &l->shards[i];
        s->first_sample = l->nsamples;
        s->nsamples = s->ntok > T ? (s->ntok - 1) / T : 0;
        l->nsamples += s->nsamples;
        l->nchunks += (s->nsamples + spc - 1) / spc;
    }
    if (l->nsamples == 0) {
        CT_LOG_ERROR("data '%s' holds no sample of %d+1 tokens\n---> HINT: use more text or a "
                     "shorter train.seq_len", opts->spec, opts->T);
        st = CT_ERR_INVALID_ARG;
        goto fail;
    }
    l->chunks = malloc((size_t)l->nchunks * sizeof *l->chunks);
    l->chunk_perm = malloc((size_t)l->nchunks * sizeof *l->chunk_perm);
    l->pos_start = malloc((size_t)(l->nchunks + 1) * sizeof *l->pos_start);
    l->win_cap = spc * opts->window_chunks;
    l->win_ids = malloc((size_t)l->win_cap * sizeof *l->win_ids);
    l->buf = malloc((size_t)(T + 1) * 4);
    if (!l->chunks || !l->chunk_perm || !l->pos_start || !l->win_ids || !l->buf) {
        st = CT_ERR_NO_MEMORY;
        goto fail;
    }
    int64_t c = 0;
    for (int i = 0; i < l->nshards; i++) {
        shard_t *s = &l->shards[i];
        for (int64_t j = 0; j < s->nsamples; j += spc) {
            l->chunks[c].first_sample = s->first_sample + j;
            l->chunks[c].nsamples = s->nsamples - j < spc ? s->nsamples - j : spc;
            c++;
        }
    }
    *loader_p = l;
    return CT_OK;
fail:
    ct_loader_free(l);
    return st;
}

int64_t ct_loader_num_samples(const ct_loader_t *l) { return l->nsamples; }

static void loader_build_epoch(ct_loader_t *l, int64_t epoch)
{
    ct_rng_t rng;
    ct_rng_seed(&rng, l->opts.seed, (uint64_t)epoch, 0xC0FFEEull);
    for (int64_t i = 0; i < l->nchunks; i++) l->chunk_perm[i] = i;
    for (int64_t i = l->nchunks - 1; i > 0; i--) {
        int64_t j = (int64_t)ct_rng_below(&rng, (uint64_t)i + 1);
        int64_t t = l->chunk_perm[i];
        l->chunk_perm[i] = l->chunk_perm[j];
        l->chunk_perm[j] = t;
    }
    l->pos_start[0] = 0;
    for (int64_t k = 0; k < l->nchunks; k++)
        l->pos_start[k + 1] = l->pos_start[k] + l->chunks[l->chunk_perm[k]].nsamples;
    l->epoch = epoch;
    l->window = -1;
}

static void loader_build_window(ct_loader_t *l, int64_t w)
{
    int64_t W = l->opts.window_chunks;
    int64_t k0 = w * W, k1 = k0 + W < l->nchunks ? k0 + W : l->nchunks;
    int64_t n = 0;
    for (int64_t k = k0; k < k1; k++) {
        const chunk_t *c = &l->chunks[l->chunk_perm[k]];
        for (int64_t j = 0; j < c->nsamples; j++) l->win_ids[n++] = c->first_sample + j;
    }
    ct_rng_t rng;
    ct_rng_seed(&rng, l->opts.seed, (uint64_t)l->epoch, 1 + (uint64_t)w);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ct_rng_below(&rng, (uint64_t)i + 1);
        int64_t t = l->win_ids[i];
        l->win_ids[i] = l->win_ids[j];
        l->win_ids[j] = t;
    }
    l->window = w;
}

/* Corpus-wide sample id at absolute index i of the run. */
static int64_t loader_sample_id(ct_loader_t *l, int64_t i)
{
    int64_t epoch = i / l->nsamples, p = i % l->nsamples;
    if (!l->opts.shuffle) return p;
    if (epoch != l->epoch) loader_build_epoch(l, epoch);
    /* the permuted chunk holding position p: last k with pos_start[k] <= p */
    int64_t lo = 0, hi = l->nchunks - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (l->pos_start[mid] <= p) lo = mid;
        else hi = mid - 1;
    }
    int64_t w = lo / l->opts.window_chunks;
    if (w != l->window) loader_build_window(l, w);
    return l->win_ids[p - l->pos_start[w * l->opts.window_chunks]];
}

static ct_status_t loader_read_sample(ct_loader_t *l, int64_t id, int32_t *inp, int32_t *tgt)
{
    /* the shard holding id: last s with first_sample <= id */
    int lo = 0, hi = l->nshards - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (l->shards[mid].first_sample <= id) lo = mid;
        else hi = mid - 1;
    }
    const shard_t *s = &l->shards[lo];
    const int T = l->opts.T;
    int64_t tok0 = (id - s->first_sample) * T;
    size_t bytes = (size_t)(T + 1) * s->width;
    off_t off = CT_SHARD_HEADER_BYTES + (off_t)tok0 * s->width;
    size_t got = 0;
    while (got < bytes) {
        ssize_t r = pread(s->fd, (char *)l->buf + got, bytes - got, off + (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            CT_LOG_ERROR("short read from shard %s at byte offset %lld: %s\n---> HINT: the file "
                         "changed or was truncated after it was opened", s->path,
                         (long long)(off + (off_t)got), r < 0 ? strerror(errno) : "end of file");
            return CT_ERR_IO;
        }
        got += (size_t)r;
    }
    for (int t = 0; t <= T; t++) {
        uint32_t v = s->width == 2 ? ((const uint16_t *)l->buf)[t] : ((const uint32_t *)l->buf)[t];
        if (v >= (uint32_t)l->opts.vocab_size) {
            CT_LOG_ERROR("shard %s: token %u at byte offset %lld is outside the vocabulary "
                         "(model.vocab_size = %d)\n---> HINT: the shard was made with another "
                         "tokenizer, or model.vocab_size is too small", s->path, v,
                         (long long)(off + (off_t)t * s->width), l->opts.vocab_size);
            return CT_ERR_CORRUPT;
        }
        if (t < T) inp[t] = (int32_t)v;
        if (t > 0) tgt[t - 1] = (int32_t)v;
    }
    return CT_OK;
}

ct_status_t ct_loader_read(ct_loader_t *l, int64_t first, int count, int32_t *inputs,
                           int32_t *targets)
{
    const int T = l->opts.T;
    for (int b = 0; b < count; b++) {
        int64_t id = loader_sample_id(l, first + b);
        ct_status_t st = loader_read_sample(l, id, inputs + (size_t)b * T, targets + (size_t)b * T);
        if (st != CT_OK) return st;
    }
    return CT_OK;
}
