/*
 * buf: buffer free list (see buf.h).
 */
#include "buf.h"

#include <stdlib.h>

/* Buffers kept for reuse; beyond this they go back to malloc. */
#define BUF_FREE_MAX 4096

/* One free list per thread: each worker recycles its own buffers, with no
 * lock (buf_drain_free_list at the thread's end). */
static __thread struct buf *buf_free_list;
static __thread size_t buf_free_count;

struct buf *
buf_get(void)
{
    struct buf *b = buf_free_list;

    if (b != NULL) {
        buf_free_list = b->next;
        buf_free_count--;
    } else {
        b = malloc(sizeof(*b));
        if (b == NULL)
            return NULL;
    }
    b->next = NULL;
    b->start = b->end = 0;
    return b;
}

void
buf_put(struct buf *b)
{
    if (b == NULL)
        return;
    if (buf_free_count >= BUF_FREE_MAX) {
        free(b);
        return;
    }
    b->next = buf_free_list;
    buf_free_list = b;
    buf_free_count++;
}

void
buf_drain_free_list(void)
{
    while (buf_free_list != NULL) {
        struct buf *b = buf_free_list;
        buf_free_list = b->next;
        free(b);
    }
    buf_free_count = 0;
}
