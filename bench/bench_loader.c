/* Loader throughput: reads samples in training order as fast as the loader
 * delivers them, through the same streaming path the trainer uses.
 *
 *   bench_loader SPEC T SECONDS PREFETCH_MIB [CHUNK_TOKENS WINDOW_CHUNKS]
 *
 * Prints tokens/s delivered to the trainer, MB/s fetched from the byte
 * source, and the fraction of time the reader waited for data. Credentials
 * and endpoints come from the AWS_* environment, as for `ctrain train`. */
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/timer.h"
#include "data/data.h"

int main(int argc, char **argv)
{
    ct_log_init();
    if (argc < 5) {
        fprintf(stderr, "usage: %s SPEC T SECONDS PREFETCH_MIB [CHUNK_TOKENS WINDOW_CHUNKS]\n",
                argv[0]);
        return 2;
    }
    int T = atoi(argv[2]), B = 64;
    double seconds = atof(argv[3]);
    ct_loader_opts_t o = {.spec = argv[1], .T = T, .vocab_size = 1 << 30, .seed = 1,
                          .chunk_tokens = argc > 5 ? atoi(argv[5]) : 1 << 20,
                          .window_chunks = argc > 6 ? atoi(argv[6]) : 8, .shuffle = 1,
                          .prefetch_mib = atoi(argv[4]), .max_retries = 5};
    ct_loader_t *l;
    double t_open = ct_time_now();
    if (ct_loader_init(&o, &l) != CT_OK) return 1;
    t_open = ct_time_now() - t_open;
    int32_t *inp = malloc(sizeof(int32_t) * B * T), *tgt = malloc(sizeof(int32_t) * B * T);
    int64_t samples = 0;
    double t0 = ct_time_now(), dt = 0;
    while ((dt = ct_time_now() - t0) < seconds) {
        if (ct_loader_read(l, samples, B, inp, tgt) != CT_OK) return 1;
        samples += B;
    }
    printf("%-40.40s prefetch %4d MiB: %10.0f tokens/s  %7.1f MB/s fetched  waited %4.1f%%  "
           "(open %.2f s, %lld samples)\n",
           argv[1], o.prefetch_mib, samples * (double)T / dt,
           ct_loader_bytes_fetched(l) / dt / 1e6, 100.0 * ct_loader_wait_seconds(l) / dt, t_open,
           (long long)samples);
    ct_loader_free(l);
    free(inp);
    free(tgt);
    return 0;
}
