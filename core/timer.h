/* Monotonic wall-clock timing. */
#ifndef CT_CORE_TIMER_H
#define CT_CORE_TIMER_H

#include <time.h>

/* Seconds from an arbitrary fixed point, CLOCK_MONOTONIC. */
static inline double ct_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
