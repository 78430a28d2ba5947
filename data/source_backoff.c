/* Byte sources, helpers: the retry policy. Which HTTP answers are worth
 * retrying, how long to wait before each retry (exponential backoff with
 * "equal jitter"), the thread-safe uniform draw behind the jitter, and the
 * sleep itself.
 *
 * Left out: which libcurl errors are transient (source_curl.c, next to the
 * libcurl codes), and the retry loops themselves, which live with the
 * requests they repeat. */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "data/source_impl.h"

/* ---- retry policy --------------------------------------------------------------------- */
int ct__http_retryable(long status, const char *code)
{
    if (status == 408 || status == 429) return 1;
    if (status >= 500 && status != 501 && status != 505) return 1;
    if (status == 400 && code && strcmp(code, "RequestTimeout") == 0) return 1;
    return 0;
}

double ct__backoff_s(int attempt, double base, double max, double u)
{
    double d = base;
    for (int i = 0; i < attempt && d < max; i++) d *= 2;
    if (d > max) d = max;
    return d * (0.5 + 0.5 * u);
}

double ct__random01(void)
{
    static _Atomic uint64_t counter = 0;
    uint64_t x = atomic_fetch_add(&counter, 0x9E3779B97F4A7C15ull);
    if (x == 0) x = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
    x += (uint64_t)clock();
    /* splitmix64 */
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return (double)(x >> 11) / 9007199254740992.0;
}

void ct__sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}
