/* Read throughput of the byte sources (data/source.h): for each URL, each
 * range size and each thread count, threads read random whole ranges of one
 * object for a fixed time and we report MB/s (10^6 bytes) over all threads.
 *
 *   bench_source [--sizes MiB,...] [--threads N,...] [--seconds S] URL...
 *   bench_source --put URL MiB      write a test object (pseudo-random bytes)
 *
 * Credentials and endpoints come from the environment as for ctrain
 * (ct_source_env_from_environ). tests/source/bench.sh starts nginx and moto on
 * loopback and runs this against file, http, https and s3 URLs. Every read
 * is checked for its status only; the storage tests check the bytes. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "data/source.h"

typedef struct {
    ct_source_t *src;
    const char *url;
    int64_t size;
    size_t range;
    double seconds;
    uint64_t seed;
    int64_t bytes;
    int failed;
} worker_t;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *work(void *p)
{
    worker_t *w = p;
    void *buf = malloc(w->range);
    if (!buf) {
        w->failed = 1;
        return NULL;
    }
    int64_t nranges = w->size / (int64_t)w->range;
    double t0 = now_s();
    uint64_t s = w->seed;
    while (now_s() - t0 < w->seconds) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int64_t off = (int64_t)((s >> 17) % (uint64_t)nranges) * (int64_t)w->range;
        if (ct_source_read(w->src, w->url, off, w->range, w->size, buf) != CT_OK) {
            w->failed = 1;
            break;
        }
        w->bytes += (int64_t)w->range;
    }
    free(buf);
    return NULL;
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c) break;
        s = c + 1;
    }
    return n;
}

static int put(ct_source_t *src, const char *url, int mib)
{
    size_t n = (size_t)mib << 20;
    unsigned char *d = malloc(n);
    if (!d) return 1;
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        d[i] = (unsigned char)x;
    }
    double t0 = now_s();
    ct_status_t st = ct_source_write(src, url, d, n);
    double dt = now_s() - t0;
    free(d);
    if (st != CT_OK) return 1;
    printf("put %s: %d MiB in %.2f s (%.0f MB/s)\n", url, mib, dt, (double)n / dt / 1e6);
    return 0;
}

int main(int argc, char **argv)
{
    int sizes[16] = {1, 4, 8}, nsizes = 3, threads[16] = {1, 2, 4, 8}, nthreads = 4;
    double seconds = 2.0;
    ct_log_init();
    ct_source_env_t env;
    ct_source_env_from_environ(&env);
    ct_source_t *src;
    if (ct_source_init(&env, &src) != CT_OK) return 1;
    int first_url = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--put") == 0 && i + 2 < argc) {
            int rc = put(src, argv[i + 1], atoi(argv[i + 2]));
            ct_source_free(src);
            return rc;
        } else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
            nsizes = parse_list(argv[++i], sizes, 16);
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            nthreads = parse_list(argv[++i], threads, 16);
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_source [--sizes MiB,..] [--threads N,..] [--seconds S] "
                            "URL... | --put URL MiB\n");
            return 2;
        } else {
            first_url = i;
            break;
        }
    }
    int rc = 0;
    printf("%-44s %9s %8s %10s %10s\n", "url", "range_MiB", "threads", "MB/s", "reads/s");
    for (int u = first_url; u < argc; u++) {
        int64_t size;
        if (ct_source_size(src, argv[u], &size) != CT_OK) {
            rc = 1;
            continue;
        }
        for (int si = 0; si < nsizes; si++) {
            size_t range = (size_t)sizes[si] << 20;
            if ((int64_t)range > size) continue;
            for (int ti = 0; ti < nthreads; ti++) {
                int nt = threads[ti] < 64 ? threads[ti] : 64;
                pthread_t t[64];
                worker_t w[64];
                double t0 = now_s();
                for (int k = 0; k < nt; k++) {
                    w[k] = (worker_t){.src = src, .url = argv[u], .size = size, .range = range,
                                      .seconds = seconds, .seed = 1000u + (uint64_t)k * 7919u};
                    pthread_create(&t[k], NULL, work, &w[k]);
                }
                int64_t bytes = 0;
                int failed = 0;
                for (int k = 0; k < nt; k++) {
                    pthread_join(t[k], NULL);
                    bytes += w[k].bytes;
                    failed |= w[k].failed;
                }
                double dt = now_s() - t0;
                printf("%-44s %9d %8d %10.0f %10.1f%s\n", argv[u], sizes[si], nt,
                       (double)bytes / dt / 1e6, (double)bytes / (double)range / dt,
                       failed ? "  (read failed)" : "");
                fflush(stdout);
                rc |= failed;
            }
        }
    }
    ct_source_free(src);
    return rc;
}
