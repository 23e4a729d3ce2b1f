/*
 * balance: algorithm-independent part of member selection (see balance.h).
 */
#include "balance.h"

#include <netinet/in.h>
#include <stdlib.h>

static const struct balance_ops *const balance_ops_by_kind[] = {
    [BALANCE_ROUNDROBIN] = &balance_roundrobin_ops,
    [BALANCE_WEIGHTED] = &balance_weighted_ops,
    [BALANCE_LEASTCONN] = &balance_leastconn_ops,
    [BALANCE_HASH] = &balance_hash_ops,
};

/* Heap nodes visited in key order before balance_heap_find gives up on the
 * best-first walk and scans: covers a full tried set plus a few members
 * that went down since the rebuild. */
#define BALANCE_FRONTIER_MAX (2 * BALANCE_TRIED_MAX + 16)

struct balance *
balance_create(enum config_balance kind, struct pool *pool)
{
    const struct balance_ops *ops;
    struct balance *b;

    if ((size_t)kind >=
        sizeof(balance_ops_by_kind) / sizeof(balance_ops_by_kind[0]))
        return NULL;
    ops = balance_ops_by_kind[kind];
    if (ops == NULL)
        return NULL;
    b = calloc(1, ops->size);
    if (b == NULL)
        return NULL;
    b->ops = ops;
    b->pool = pool;
    if (ops->rebuild(b) != 0) {
        if (ops->deinit != NULL)
            ops->deinit(b);
        free(b);
        return NULL;
    }
    return b;
}

void
balance_destroy(struct balance *b)
{
    if (b == NULL)
        return;
    if (b->ops->deinit != NULL)
        b->ops->deinit(b);
    free(b);
}

int
balance_rebuild(struct balance *b)
{
    return b->ops->rebuild(b);
}

struct member *
balance_pick(struct balance *b, const struct balance_ctx *ctx)
{
    struct member *m = b->ops->pick(b, ctx);

    if (m != NULL) {
        m->active++;
        member_ref(m);
        if (b->ops->taken != NULL)
            b->ops->taken(b, m);
    }
    return m;
}

void
balance_release(struct balance *b, struct member *m,
                enum balance_outcome outcome)
{
    m->active--;
    if (b != NULL && b->ops->release != NULL && !m->gone)
        b->ops->release(b, m, outcome);
    member_unref(m);
}

void
balance_key_client_ip(struct balance_ctx *ctx,
                      const struct sockaddr_storage *peer)
{
    if (peer->ss_family == AF_INET6) {
        ctx->key = &((const struct sockaddr_in6 *)peer)->sin6_addr;
        ctx->keylen = 16;
    } else {
        ctx->key = &((const struct sockaddr_in *)peer)->sin_addr;
        ctx->keylen = 4;
    }
}

void
balance_tried_add(struct balance_tried *t, const struct member *m)
{
    if (t->n < BALANCE_TRIED_MAX)
        t->m[t->n++] = m;
}

bool
balance_tried_has(const struct balance_tried *t, const struct member *m)
{
    if (t == NULL)
        return false;
    for (unsigned i = 0; i < t->n; i++)
        if (t->m[i] == m)
            return true;
    return false;
}

bool
balance_normal_up(const struct pool *p)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct member *m = p->members[i];
        if (!m->backup && m->up && !m->gone && m->weight > 0)
            return true;
    }
    return false;
}

bool
balance_eligible(const struct member *m, const struct balance_ctx *ctx)
{
    return m->up && !m->gone && m->weight > 0 &&
           !balance_tried_has(ctx->tried, m);
}

double
balance_effective_weight(const struct member *m, double slow_start, double now)
{
    double w = (double)m->weight;
    double age = now - m->up_since;

    if (slow_start <= 0 || age >= slow_start)
        return w;
    if (age < 0)
        age = 0;
    return w * (0.1 + 0.9 * age / slow_start);
}

uint32_t
balance_new_owner(void)
{
    /* Starts at 1 so a zeroed member's bal_tag never looks owned. */
    static uint32_t next_owner;

    if (++next_owner == 0)
        next_owner = 1;
    return next_owner;
}

int
balance_heap_reset(struct balance_heap *h, size_t cap)
{
    if (cap > h->cap) {
        struct balance_node *nodes = malloc(cap * sizeof(*nodes));
        struct member **slots = malloc(cap * sizeof(*slots));
        uint32_t *pos = malloc(cap * sizeof(*pos));

        if (nodes == NULL || slots == NULL || pos == NULL || cap > UINT32_MAX) {
            free(nodes);
            free(slots);
            free(pos);
            return -1;
        }
        balance_heap_free(h);
        h->nodes = nodes;
        h->slots = slots;
        h->pos = pos;
        h->cap = cap;
    }
    h->n = 0;
    return 0;
}

void
balance_heap_free(struct balance_heap *h)
{
    free(h->nodes);
    free(h->slots);
    free(h->pos);
    h->nodes = NULL;
    h->slots = NULL;
    h->pos = NULL;
    h->n = 0;
    h->cap = 0;
}

void
balance_heap_append(struct balance_heap *h, struct member *m, double key,
                    uint64_t seq)
{
    uint32_t slot = (uint32_t)h->n;

    h->slots[slot] = m;
    h->pos[slot] = slot;
    h->nodes[h->n].key = key;
    h->nodes[h->n].seq = seq;
    h->nodes[h->n].slot = slot;
    h->n++;
}

static inline bool
heap_less(const struct balance_node *a, const struct balance_node *b)
{
    if (a->key != b->key)
        return a->key < b->key;
    if (a->seq != b->seq)
        return a->seq < b->seq;
    return a->slot < b->slot;
}

static inline void
heap_place(struct balance_heap *h, size_t i, const struct balance_node *nd)
{
    h->nodes[i] = *nd;
    h->pos[nd->slot] = (uint32_t)i;
}

static void
heap_sift_down(struct balance_heap *h, size_t i)
{
    struct balance_node nd = h->nodes[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && heap_less(&h->nodes[c + 1], &h->nodes[c]))
            c++;
        if (!heap_less(&h->nodes[c], &nd))
            break;
        heap_place(h, i, &h->nodes[c]);
        i = c;
    }
    heap_place(h, i, &nd);
}

static void
heap_sift_up(struct balance_heap *h, size_t i)
{
    struct balance_node nd = h->nodes[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(&nd, &h->nodes[parent]))
            break;
        heap_place(h, i, &h->nodes[parent]);
        i = parent;
    }
    heap_place(h, i, &nd);
}

void
balance_heap_order(struct balance_heap *h)
{
    for (size_t i = h->n / 2; i-- > 0;)
        heap_sift_down(h, i);
}

void
balance_heap_fix(struct balance_heap *h, size_t i)
{
    if (i > 0 && heap_less(&h->nodes[i], &h->nodes[(i - 1) / 2]))
        heap_sift_up(h, i);
    else
        heap_sift_down(h, i);
}

long
balance_heap_find(const struct balance_heap *h, const struct balance_ctx *ctx)
{
    size_t frontier[BALANCE_FRONTIER_MAX];
    size_t nf = 0;
    long best = -1;

    if (h->n == 0)
        return -1;
    if (balance_eligible(h->slots[h->nodes[0].slot], ctx))
        return 0;
    /* Best-first walk: the frontier holds the roots of the unvisited
     * subtrees, so its minimum is the next node in key order. */
    frontier[nf++] = 0;
    while (nf > 0) {
        size_t k = 0;
        for (size_t j = 1; j < nf; j++)
            if (heap_less(&h->nodes[frontier[j]], &h->nodes[frontier[k]]))
                k = j;
        size_t i = frontier[k];
        frontier[k] = frontier[--nf];
        if (balance_eligible(h->slots[h->nodes[i].slot], ctx))
            return (long)i;
        if (nf + 2 > BALANCE_FRONTIER_MAX)
            goto scan;
        if (2 * i + 1 < h->n)
            frontier[nf++] = 2 * i + 1;
        if (2 * i + 2 < h->n)
            frontier[nf++] = 2 * i + 2;
    }
    return -1;

scan:
    for (size_t i = 0; i < h->n; i++) {
        if (best >= 0 && !heap_less(&h->nodes[i], &h->nodes[best]))
            continue;
        if (balance_eligible(h->slots[h->nodes[i].slot], ctx))
            best = (long)i;
    }
    return best;
}
