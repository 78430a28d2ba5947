/* Arena allocator: one allocation per lifetime, carved into tensors at
 * fixed offsets (llm.c's malloc_and_point_parameters). Nothing is freed
 * individually; ct_arena_free releases everything. Not thread-safe. */
#ifndef CT_CORE_ARENA_H
#define CT_CORE_ARENA_H

#include <stddef.h>

#include "core/status.h"

typedef struct {
    char *base;  /* 64-byte aligned, zero-filled */
    size_t size; /* capacity in bytes */
    size_t used; /* bytes handed out */
} ct_arena_t;

/* Allocates `size` zeroed bytes. Logs and returns CT_ERR_NO_MEMORY on
 * failure, naming `what`. */
CT_MUST_USE ct_status_t ct_arena_init(ct_arena_t *a, size_t size, const char *what);
/* Hands out `bytes` at the next 64-byte boundary; aborts if the arena is too
 * small (a sizing bug, not a user error). */
void *ct_arena_alloc(ct_arena_t *a, size_t bytes);
void ct_arena_free(ct_arena_t *a);
/* Rounds up to the arena's alignment; use it to size an arena. */
static inline size_t ct_arena_align(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

#endif
