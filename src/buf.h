/*
 * buf: fixed-size I/O buffers recycled through a free list, so the data
 * plane does not call malloc per connection once warmed up. A connection
 * holds a buffer only while bytes wait in it.
 */
#ifndef FERRY_BUF_H
#define FERRY_BUF_H

#include <stddef.h>

#define BUF_SIZE (16 * 1024)

struct buf {
    struct buf *next;    /* free-list link */
    size_t start;        /* first unsent byte */
    size_t end;          /* one past the last byte */
    char data[BUF_SIZE]; /* payload */
};

struct buf *buf_get(void);
void buf_put(struct buf *b);
/* Frees every buffer on the free list (at exit, for leak checkers). */
void buf_drain_free_list(void);

static inline size_t
buf_len(const struct buf *b)
{
    return b->end - b->start;
}

static inline size_t
buf_room(const struct buf *b)
{
    return BUF_SIZE - b->end;
}

#endif
