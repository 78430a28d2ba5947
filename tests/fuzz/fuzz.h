/* Shared by the libFuzzer harnesses of tests/fuzz: each defines
 * LLVMFuzzerTestOneInput over one reader of outside bytes. Built two ways:
 * with clang's -fsanitize=fuzzer (CT_FUZZ=ON, tests/fuzz/build_and_run.sh)
 * to fuzz, and with replay.c's main in the ordinary build, where ctest runs
 * each harness over its committed seeds and crash reproducers. */
#ifndef CT_TESTS_FUZZ_H
#define CT_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the harness checks failed: report it and crash, so the
 * fuzzer saves the input. */
#define FUZZ_REQUIRE(cond)                                                           \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "fuzz property failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* A NUL-terminated copy of the input (the readers that take C strings). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

#endif
