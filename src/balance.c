/*
 * balance: algorithm-independent part of member selection (see balance.h).
 */
#include "balance.h"

#include <stdlib.h>

static const struct balance_ops *const balance_ops_by_kind[] = {
    [BALANCE_ROUNDROBIN] = &balance_roundrobin_ops,
};

struct balance *
balance_create(enum config_balance kind, struct pool *pool)
{
    const struct balance_ops *ops = balance_ops_by_kind[kind];
    struct balance *b;

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
balance_effective_weight(const struct member *m, double slow_start,
                         double now)
{
    double w = (double)m->weight;
    double age = now - m->up_since;

    if (slow_start <= 0 || age >= slow_start)
        return w;
    if (age < 0)
        age = 0;
    return w * (0.1 + 0.9 * age / slow_start);
}
