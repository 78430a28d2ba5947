/* Arena allocator. */
#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

ct_status_t ct_arena_init(ct_arena_t *a, size_t size, const char *what)
{
    a->base = NULL;
    a->size = a->used = 0;
    if (size == 0) return CT_OK;
    size = ct_arena_align(size);
    void *p = aligned_alloc(64, size);
    if (!p) {
        CT_LOG_ERROR("out of memory allocating %.1f MiB for %s", size / 1048576.0, what);
        return CT_ERR_NO_MEMORY;
    }
    memset(p, 0, size);
    a->base = p;
    a->size = size;
    return CT_OK;
}

void *ct_arena_alloc(ct_arena_t *a, size_t bytes)
{
    size_t n = ct_arena_align(bytes);
    CT_ASSERT(a->used + n <= a->size);
    void *p = a->base + a->used;
    a->used += n;
    return p;
}

void ct_arena_free(ct_arena_t *a)
{
    free(a->base);
    a->base = NULL;
    a->size = a->used = 0;
}
