/* The corpus, its deterministic sample order, and the streaming reader.
 *
 * Samples are (T+1)-token windows at stride T inside one shard. Chunks are
 * runs of consecutive samples of about chunk_tokens tokens, fetched with one
 * ranged read each; a shard's last chunk also reads the tail of fewer than T
 * tokens that no sample covers. Every token of every fetched chunk is
 * checked against the vocabulary as it arrives, so a shard is valid or not
 * as a whole: a bad token anywhere in it, tail included, stops the run when
 * its chunk is fetched, within the first epoch (shards too short for one
 * sample are read and checked when the loader opens). For each epoch the chunks are permuted (seeded by
 * (seed, epoch)), then samples are permuted inside windows of window_chunks
 * consecutive permuted chunks (seeded by (seed, epoch, window)). Sample i
 * of a run is thus a pure function of (seed, corpus, T, i): ranks ask for
 * samples by absolute index and get the same sequence whatever the number
 * of ranks, and local files and object stores give identical tokens.
 *
 * Streaming: a fixed set of chunk slots (prefetch_mib) and background
 * threads that fetch the chunks of the current window, then of the next
 * one, through the byte sources of data/source.h (which retry transient
 * failures). The consumer only waits when a chunk is not there yet; that
 * time is measured. Memory never exceeds the slots. With cache_dir, chunks
 * of remote shards are also kept on local disk (LRU by mtime, bounded by
 * cache_mib), so later epochs and restarts read them locally.
 *
 * Left out: a DP rank fetches every chunk of its windows, because the
 * rank-independent sample order spreads each rank's slice of a global batch
 * over the whole window; bytes are therefore read by each DP rank that needs
 * them, not by exactly one. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "data/data.h"
#include "data/source.h"

typedef struct {
    char *url;
    int64_t size; /* bytes, as listed */
    int width;
    int64_t ntok;
    int64_t first_sample; /* corpus-wide id of its sample 0 */
    int64_t nsamples;
} shard_t;

typedef struct {
    int shard;
    int64_t first_sample; /* corpus-wide id */
    int64_t nsamples;
} chunk_t;

enum { SLOT_EMPTY, SLOT_LOADING, SLOT_READY, SLOT_FAILED };

typedef struct {
    int64_t chunk; /* -1 when empty */
    int state;
    ct_status_t st;
    char *buf;
} slot_t;

struct ct_loader {
    ct_loader_opts_t opts;
    ct_source_t *src;
    shard_t *shards;
    int nshards;
    chunk_t *chunks;
    int64_t nchunks;
    int64_t nsamples;
    size_t chunk_bytes_max;
    /* order of the cached epoch (consumer thread only) */
    int64_t epoch;        /* -1 = none */
    int64_t *chunk_perm;  /* (nchunks) */
    int64_t *pos_start;   /* (nchunks+1) position of each permuted chunk */
    int64_t window;       /* the window whose sample permutation is cached */
    int64_t *win_ids;
    /* streaming state, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot_t *slots;
    int nslots;
    int64_t *wanted; /* chunks to hold, in priority order */
    int nwanted;
    int stop;
    pthread_t *threads;
    int nthreads;
    double wait_s;
    int64_t fetched;
    /* local chunk cache (remote shards only), under cache_mu */
    char *cache_dir;
    int64_t cache_bytes, cache_limit;
    pthread_mutex_t cache_mu;
};

/* ---- setup ------------------------------------------------------------------ */
/* Tokens of a chunk: its samples' span, and for a shard's last chunk the
 * rest of the shard (the tail no sample covers). */
static int64_t loader_chunk_tokens(const shard_t *s, int64_t tok0, int64_t nsamples, int64_t T,
                                   int last)
{
    return last ? s->ntok - tok0 : nsamples * T + 1;
}

/* Checks n tokens of width bytes read from `url` at byte offset `off`
 * against the vocabulary: one pass for the largest token, a second only to
 * name the first bad one and count them. Logs the error. */
static CT_MUST_USE ct_status_t loader_check_tokens(const ct_loader_t *l, const char *url, int64_t off,
                                       const char *buf, int64_t n, int width)
{
    const uint32_t V = (uint32_t)l->opts.vocab_size;
    uint32_t most = 0;
    if (width == 2) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t x;
            memcpy(&x, buf + 2 * i, 2);
            most = x > most ? x : most;
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            uint32_t x;
            memcpy(&x, buf + 4 * i, 4);
            most = x > most ? x : most;
        }
    }
    if (most < V) return CT_OK;
    int64_t first = -1, bad = 0;
    uint32_t first_v = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t v;
        if (width == 2) {
            uint16_t x;
            memcpy(&x, buf + 2 * i, 2);
            v = x;
        } else {
            memcpy(&v, buf + 4 * i, 4);
        }
        if (v < V) continue;
        if (first < 0) first = i, first_v = v;
        bad++;
    }
    CT_LOG_ERROR("shard %s: token %u at byte offset %lld (token %lld) is outside the vocabulary "
                 "(model.vocab_size = %d); %lld such token%s in bytes %lld..%lld\n---> HINT: the "
                 "shard was made with another tokenizer, or model.vocab_size is too small",
                 url, first_v, (long long)(off + first * width),
                 (long long)((off - CT_SHARD_HEADER_BYTES) / width + first), (int)V,
                 (long long)bad, bad == 1 ? "" : "s", (long long)off, (long long)(off + n * width));
    return CT_ERR_CORRUPT;
}

static CT_MUST_USE ct_status_t loader_open_shards(ct_loader_t *l, const char *spec)
{
    ct_object_t *objs = NULL;
    int n = 0;
    ct_status_t st = ct_source_list(l->src, spec, &objs, &n);
    if (st != CT_OK) return st;
    if (n == 0) {
        CT_LOG_ERROR("data spec '%s' names no shard", spec);
        ct_objects_free(objs, n);
        return CT_ERR_NOT_FOUND;
    }
    l->shards = calloc((size_t)n, sizeof *l->shards);
    if (!l->shards) {
        ct_objects_free(objs, n);
        return CT_ERR_NO_MEMORY;
    }
    for (int i = 0; i < n && st == CT_OK; i++) {
        shard_t *s = &l->shards[i];
        s->url = strdup(objs[i].url);
        s->size = objs[i].size;
        l->nshards++;
        if (!s->url) {
            st = CT_ERR_NO_MEMORY;
            break;
        }
        if (objs[i].size < CT_SHARD_HEADER_BYTES) {
            CT_LOG_ERROR("shard %s is truncated: %lld bytes, shorter than the 1024-byte header",
                         s->url, (long long)objs[i].size);
            st = CT_ERR_CORRUPT;
            break;
        }
        char hdr[CT_SHARD_HEADER_BYTES];
        st = ct_source_read(l->src, s->url, 0, sizeof hdr, s->size, hdr);
        ct_shard_info_t info;
        if (st == CT_OK) st = ct_shard_check_header(hdr, objs[i].size, s->url, &info);
        if (st == CT_OK) {
            s->width = info.width;
            s->ntok = info.ntok;
        }
    }
    ct_objects_free(objs, n);
    return st;
}

static void *loader_fetch_main(void *arg);

/* ---- local chunk cache ---------------------------------------------------- */
static int loader_is_remote(const char *url) { return strstr(url, "://") && strncmp(url, "file://", 7); }

static CT_MUST_USE ct_status_t loader_cache_open(ct_loader_t *l, const ct_loader_opts_t *o)
{
    if (mkdir(o->cache_dir, 0755) != 0 && errno != EEXIST) {
        CT_LOG_ERROR("cannot create data.cache_dir %s: %s", o->cache_dir, strerror(errno));
        return CT_ERR_IO;
    }
    l->cache_dir = strdup(o->cache_dir);
    if (!l->cache_dir) return CT_ERR_NO_MEMORY;
    l->cache_limit = (int64_t)o->cache_mib * 1048576;
    DIR *d = opendir(o->cache_dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        struct stat st;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", o->cache_dir, e->d_name);
        if (strstr(e->d_name, ".chunk") && stat(path, &st) == 0) l->cache_bytes += st.st_size;
    }
    if (d) closedir(d);
    return CT_OK;
}

/* The cache file of (url, off, len): a 64-bit FNV-1a of the three. */
static void loader_cache_path(const ct_loader_t *l, const char *url, int64_t off, size_t len,
                              char *path, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = url; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    uint64_t v[2] = {(uint64_t)off, (uint64_t)len};
    for (int i = 0; i < 16; i++) h = (h ^ ((const unsigned char *)v)[i]) * 0x100000001b3ull;
    snprintf(path, n, "%s/%016llx.chunk", l->cache_dir, (unsigned long long)h);
}

/* 1 and the bytes in buf when the cache holds exactly len bytes for the key. */
static int loader_cache_get(ct_loader_t *l, const char *path, size_t len, char *buf)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(buf, 1, len, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != len || extra) return 0;
    utimes(path, NULL); /* LRU by mtime */
    return 1;
}

/* Evicts the least recently used chunks until the cache fits its limit. */
static void loader_cache_trim(ct_loader_t *l)
{
    while (l->cache_bytes > l->cache_limit) {
        DIR *d = opendir(l->cache_dir);
        if (!d) return;
        char oldest[4400] = "";
        time_t t_old = 0;
        off_t sz_old = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char path[4400];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", l->cache_dir, e->d_name);
            if (!strstr(e->d_name, ".chunk") || stat(path, &st) != 0) continue;
            if (!oldest[0] || st.st_mtime < t_old) {
                snprintf(oldest, sizeof oldest, "%s", path);
                t_old = st.st_mtime;
                sz_old = st.st_size;
            }
        }
        closedir(d);
        if (!oldest[0] || unlink(oldest) != 0) return;
        l->cache_bytes -= sz_old;
    }
}

static void loader_cache_put(ct_loader_t *l, const char *path, const char *buf, size_t len)
{
    char tmp[4500];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return; /* a cache that cannot be written is only slower */
    int ok = fwrite(buf, 1, len, f) == len;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return;
    }
    pthread_mutex_lock(&l->cache_mu);
    l->cache_bytes += (int64_t)len;
    loader_cache_trim(l);
    pthread_mutex_unlock(&l->cache_mu);
}

/* Reads a chunk through the cache when there is one. */
static CT_MUST_USE ct_status_t loader_fetch(ct_loader_t *l, const shard_t *s, int64_t off, size_t len,
                                char *buf)
{
    const char *url = s->url;
    char path[4400];
    int cached = l->cache_dir && loader_is_remote(url);
    if (cached) {
        loader_cache_path(l, url, off, len, path, sizeof path);
        if (loader_cache_get(l, path, len, buf)) return CT_OK;
    }
    ct_status_t st = ct_source_read(l->src, url, off, len, s->size, buf);
    if (st == CT_OK && cached) loader_cache_put(l, path, buf, len);
    return st;
}

void ct_loader_free(ct_loader_t *l)
{
    if (!l) return;
    if (l->threads) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->nthreads; i++) pthread_join(l->threads[i], NULL);
        free(l->threads);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    for (int i = 0; i < l->nslots; i++) free(l->slots[i].buf);
    free(l->slots);
    free(l->wanted);
    pthread_mutex_destroy(&l->cache_mu);
    free(l->cache_dir);
    for (int i = 0; i < l->nshards; i++) free(l->shards[i].url);
    free(l->shards);
    free(l->chunks);
    free(l->chunk_perm);
    free(l->pos_start);
    free(l->win_ids);
    ct_source_free(l->src);
    free(l);
}

ct_status_t ct_loader_init(const ct_loader_opts_t *opts, ct_loader_t **loader_p)
{
    CT_ASSERT(opts->T > 0 && opts->chunk_tokens > 0 && opts->window_chunks > 0);
    ct_loader_t *l = calloc(1, sizeof *l);
    if (!l) return CT_ERR_NO_MEMORY;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    pthread_mutex_init(&l->cache_mu, NULL);
    l->opts = *opts;
    l->opts.spec = NULL;
    l->opts.cache_dir = NULL;
    l->epoch = -1;
    l->window = -1;
    ct_source_env_t env;
    ct_source_env_from_environ(&env);
    if (opts->max_retries > 0) env.max_retries = opts->max_retries;
    ct_status_t st = ct_source_init(&env, &l->src);
    if (st != CT_OK) goto fail;
    if (opts->cache_dir && *opts->cache_dir && (st = loader_cache_open(l, opts)) != CT_OK) goto fail;
    if ((st = loader_open_shards(l, opts->spec)) != CT_OK) goto fail;

    const int64_t T = opts->T;
    int64_t spc = opts->chunk_tokens / T; /* samples per chunk */
    if (spc < 1) spc = 1;
    for (int i = 0; i < l->nshards && st == CT_OK; i++) {
        shard_t *s = &l->shards[i];
        s->first_sample = l->nsamples;
        s->nsamples = s->ntok > T ? (s->ntok - 1) / T : 0;
        l->nsamples += s->nsamples;
        l->nchunks += (s->nsamples + spc - 1) / spc;
        if (s->nsamples) {
            int64_t nlast = s->nsamples - (s->nsamples - 1) / spc * spc;
            int64_t full = s->nsamples > nlast ? spc : 0;
            int64_t toks = loader_chunk_tokens(s, (s->nsamples - nlast) * T, nlast, T, 1);
            if (toks < full * T + 1) toks = full * T + 1;
            size_t cb = (size_t)toks * (size_t)s->width;
            if (cb > l->chunk_bytes_max) l->chunk_bytes_max = cb;
        } else if (s->ntok > 0) { /* no sample reads it: check it now (< T+1 tokens) */
            size_t n = (size_t)s->ntok * (size_t)s->width;
            char *buf = malloc(n);
            if (!buf) {
                st = CT_ERR_NO_MEMORY;
                break;
            }
            st = ct_source_read(l->src, s->url, CT_SHARD_HEADER_BYTES, n, s->size, buf);
            if (st == CT_OK)
                st = loader_check_tokens(l, s->url, CT_SHARD_HEADER_BYTES, buf, s->ntok, s->width);
            free(buf);
        }
    }
    if (st != CT_OK) goto fail;
    if (l->nsamples == 0) {
        CT_LOG_ERROR("data '%s' holds no sample of %d+1 tokens\n---> HINT: use more text or a "
                     "shorter train.seq_len", opts->spec, opts->T);
        st = CT_ERR_INVALID_ARG;
        goto fail;
    }
    /* slots: the current window and the next one, at least */
    int64_t W = opts->window_chunks;
    int64_t need = 2 * W < l->nchunks ? 2 * W : l->nchunks;
    int64_t fit = (int64_t)opts->prefetch_mib * 1048576 / (int64_t)l->chunk_bytes_max;
    if (opts->prefetch_mib > 0 && fit < need) {
        CT_LOG_ERROR("data.prefetch_mib = %d holds %lld chunks of %.1f MiB, but streaming needs "
                     "%lld (two windows of data.window_chunks)\n---> HINT: raise data.prefetch_mib "
                     "to %lld or lower data.chunk_tokens / data.window_chunks",
                     opts->prefetch_mib, (long long)fit, l->chunk_bytes_max / 1048576.0,
                     (long long)need,
                     (long long)((need * (int64_t)l->chunk_bytes_max + 1048575) / 1048576));
        st = CT_ERR_CONFIG;
        goto fail;
    }
    l->nslots = (int)need; /* more slots than two windows would never be used */
    l->chunks = malloc((size_t)l->nchunks * sizeof *l->chunks);
    l->chunk_perm = malloc((size_t)l->nchunks * sizeof *l->chunk_perm);
    l->pos_start = malloc((size_t)(l->nchunks + 1) * sizeof *l->pos_start);
    l->win_ids = malloc((size_t)(spc * opts->window_chunks) * sizeof *l->win_ids);
    l->slots = calloc((size_t)l->nslots, sizeof *l->slots);
    l->wanted = malloc((size_t)(2 * W) * sizeof *l->wanted);
    if (!l->chunks || !l->chunk_perm || !l->pos_start || !l->win_ids || !l->slots || !l->wanted) {
        st = CT_ERR_NO_MEMORY;
        goto fail;
    }
    for (int i = 0; i < l->nslots; i++) {
        l->slots[i].chunk = -1;
        if (!(l->slots[i].buf = malloc(l->chunk_bytes_max))) {
            st = CT_ERR_NO_MEMORY;
            goto fail;
        }
    }
    int64_t c = 0;
    for (int i = 0; i < l->nshards; i++) {
        shard_t *s = &l->shards[i];
        for (int64_t j = 0; j < s->nsamples; j += spc) {
            l->chunks[c].shard = i;
            l->chunks[c].first_sample = s->first_sample + j;
            l->chunks[c].nsamples = s->nsamples - j < spc ? s->nsamples - j : spc;
            c++;
        }
    }
    l->nthreads = opts->threads > 0 ? opts->threads : 4;
    l->threads = calloc((size_t)l->nthreads, sizeof *l->threads);
    if (!l->threads) {
        st = CT_ERR_NO_MEMORY;
        goto fail;
    }
    for (int i = 0; i < l->nthreads; i++) {
        if (pthread_create(&l->threads[i], NULL, loader_fetch_main, l) != 0) {
            l->nthreads = i;
            st = CT_ERR_NO_MEMORY;
            goto fail;
        }
    }
    *loader_p = l;
    return CT_OK;
fail:
    ct_loader_free(l);
    return st;
}

int64_t ct_loader_num_samples(const ct_loader_t *l) { return l->nsamples; }

/* ---- the order ------------------------------------------------------------- */
static void shuffle_i64(int64_t *a, int64_t n, ct_rng_t *rng)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ct_rng_below(rng, (uint64_t)i + 1);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* The chunk order of an epoch: a permutation, or file order without shuffle. */
static void loader_chunk_perm(const ct_loader_t *l, int64_t epoch, int64_t *perm)
{
    for (int64_t i = 0; i < l->nchunks; i++) perm[i] = i;
    if (!l->opts.shuffle) return;
    ct_rng_t rng;
    ct_rng_seed(&rng, l->opts.seed, (uint64_t)epoch, 0xC0FFEEull);
    shuffle_i64(perm, l->nchunks, &rng);
}

static void loader_build_epoch(ct_loader_t *l, int64_t epoch)
{
    loader_chunk_perm(l, epoch, l->chunk_perm);
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
    if (l->opts.shuffle) {
        ct_rng_t rng;
        ct_rng_seed(&rng, l->opts.seed, (uint64_t)l->epoch, 1 + (uint64_t)w);
        shuffle_i64(l->win_ids, n, &rng);
    }
    l->window = w;
}

static int64_t loader_num_windows(const ct_loader_t *l)
{
    return (l->nchunks + l->opts.window_chunks - 1) / l->opts.window_chunks;
}

/* Sets *w_p to the window of absolute position i and returns the
 * corpus-wide sample id there (building the epoch and window as needed). */
static int64_t loader_sample_id(ct_loader_t *l, int64_t i, int64_t *w_p)
{
    int64_t epoch = i / l->nsamples, p = i % l->nsamples;
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
    *w_p = w;
    return l->win_ids[p - l->pos_start[w * l->opts.window_chunks]];
}

static int64_t loader_chunk_of(const ct_loader_t *l, int64_t id)
{
    int64_t lo = 0, hi = l->nchunks - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (l->chunks[mid].first_sample <= id) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* ---- streaming ------------------------------------------------------------- */
/* Marks the chunks of window w of the current epoch, then of the next
 * window (possibly the next epoch's first), as wanted. Caller holds mu. */
static void loader_want(ct_loader_t *l, int64_t chunk, int64_t *n)
{
    for (int64_t q = 0; q < *n; q++)
        if (l->wanted[q] == chunk) return;
    if (*n < 2 * (int64_t)l->opts.window_chunks) l->wanted[(*n)++] = chunk;
}

/* Marks the chunks of window w of the current epoch, then of the next
 * window (possibly the next epoch's first), as wanted. Caller holds mu. */
static void loader_set_wanted(ct_loader_t *l, int64_t w)
{
    int64_t W = l->opts.window_chunks, n = 0;
    for (int64_t k = w * W; k < (w + 1) * W && k < l->nchunks; k++)
        loader_want(l, l->chunk_perm[k], &n);
    if (w + 1 < loader_num_windows(l)) {
        for (int64_t k = (w + 1) * W; k < (w + 2) * W && k < l->nchunks; k++)
            loader_want(l, l->chunk_perm[k], &n);
    } else {
        int64_t *next = malloc((size_t)l->nchunks * sizeof *next);
        if (next) {
            loader_chunk_perm(l, l->epoch + 1, next);
            for (int64_t k = 0; k < W && k < l->nchunks; k++) loader_want(l, next[k], &n);
            free(next);
        }
    }
    if (n > l->nslots) n = l->nslots;
    l->nwanted = (int)n;
    pthread_cond_broadcast(&l->cv);
}

static int loader_is_wanted(const ct_loader_t *l, int64_t chunk)
{
    for (int i = 0; i < l->nwanted; i++)
        if (l->wanted[i] == chunk) return 1;
    return 0;
}

static slot_t *loader_find_slot(ct_loader_t *l, int64_t chunk)
{
    for (int i = 0; i < l->nslots; i++)
        if (l->slots[i].chunk == chunk) return &l->slots[i];
    return NULL;
}

static void loader_chunk_range(const ct_loader_t *l, int64_t c, int64_t *off_p, size_t *len_p)
{
    const chunk_t *ch = &l->chunks[c];
    const shard_t *s = &l->shards[ch->shard];
    int64_t tok0 = (ch->first_sample - s->first_sample) * l->opts.T;
    int last = ch->first_sample + ch->nsamples == s->first_sample + s->nsamples;
    *off_p = CT_SHARD_HEADER_BYTES + tok0 * s->width;
    *len_p = (size_t)loader_chunk_tokens(s, tok0, ch->nsamples, l->opts.T, last) * (size_t)s->width;
}

/* Fetch thread: takes the first wanted chunk that is neither resident nor
 * loading, puts it in a slot that holds nothing wanted, reads it. */
static void *loader_fetch_main(void *arg)
{
    ct_loader_t *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        int64_t chunk = -1;
        slot_t *slot = NULL;
        for (int i = 0; i < l->nwanted && chunk < 0; i++)
            if (!loader_find_slot(l, l->wanted[i])) chunk = l->wanted[i];
        if (chunk >= 0) {
            for (int i = 0; i < l->nslots && !slot; i++) {
                slot_t *s = &l->slots[i];
                if (s->state != SLOT_LOADING && (s->chunk < 0 || !loader_is_wanted(l, s->chunk)))
                    slot = s;
            }
        }
        if (!slot) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        slot->chunk = chunk;
        slot->state = SLOT_LOADING;
        pthread_mutex_unlock(&l->mu);
        int64_t off;
        size_t len;
        loader_chunk_range(l, chunk, &off, &len);
        const shard_t *sh = &l->shards[l->chunks[chunk].shard];
        ct_status_t st = loader_fetch(l, sh, off, len, slot->buf);
        if (st == CT_OK)
            st = loader_check_tokens(l, sh->url, off, slot->buf, (int64_t)len / sh->width, sh->width);
        pthread_mutex_lock(&l->mu);
        slot->st = st;
        slot->state = st == CT_OK ? SLOT_READY : SLOT_FAILED;
        if (st == CT_OK) l->fetched += (int64_t)len;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Copies sample `id` (in chunk c, resident) out of its slot. Its tokens
 * were checked against the vocabulary when the chunk arrived. */
static void loader_copy_sample(ct_loader_t *l, const slot_t *slot, int64_t c, int64_t id,
                               int32_t *inp, int32_t *tgt)
{
    const chunk_t *ch = &l->chunks[c];
    const shard_t *s = &l->shards[ch->shard];
    const int T = l->opts.T;
    size_t at = (size_t)(id - ch->first_sample) * (size_t)T * (size_t)s->width;
    const char *p = slot->buf + at;
    for (int t = 0; t <= T; t++) {
        uint32_t v;
        if (s->width == 2) {
            uint16_t x;
            memcpy(&x, p + 2 * t, 2);
            v = x;
        } else {
            memcpy(&v, p + 4 * t, 4);
        }
        if (t < T) inp[t] = (int32_t)v;
        if (t > 0) tgt[t - 1] = (int32_t)v;
    }
}

ct_status_t ct_loader_read(ct_loader_t *l, int64_t first, int count, int32_t *inputs,
                           int32_t *targets)
{
    const int T = l->opts.T;
    ct_status_t st = CT_OK;
    for (int b = 0; b < count && st == CT_OK; b++) {
        int64_t w, prev_window = l->window, prev_epoch = l->epoch;
        int64_t id = loader_sample_id(l, first + b, &w);
        int64_t c = loader_chunk_of(l, id);
        pthread_mutex_lock(&l->mu);
        if (l->window != prev_window || l->epoch != prev_epoch || l->nwanted == 0)
            loader_set_wanted(l, w);
        slot_t *slot;
        double t0 = 0.0;
        while (!(slot = loader_find_slot(l, c)) || slot->state == SLOT_LOADING) {
            if (t0 == 0.0) t0 = ct_time_now();
            pthread_cond_wait(&l->cv, &l->mu);
        }
        if (t0 != 0.0) l->wait_s += ct_time_now() - t0;
        if (slot->state == SLOT_FAILED) {
            st = slot->st; /* the source logged the URL, offset and cause */
            slot->chunk = -1;
            slot->state = SLOT_EMPTY;
        } else {
            loader_copy_sample(l, slot, c, id, inputs + (size_t)b * T, targets + (size_t)b * T);
        }
        pthread_mutex_unlock(&l->mu);
    }
    return st;
}

double ct_loader_wait_seconds(const ct_loader_t *l) { return l->wait_s; }

int64_t ct_loader_bytes_fetched(const ct_loader_t *l) { return l->fetched; }
