/*
 * balance_leastconn: the member with the fewest active connections relative
 * to its effective weight (active / weight), ties to the member picked
 * longest ago, so equally loaded members take turns.
 *
 * Each class (normal, backup) keeps the members that were up at rebuild in
 * a binary heap ordered by (active / effective weight, last-pick stamp).
 * balance_pick's slot (taken) and balance_release move one member's node,
 * so pick, take and release are O(log n). The effective weight is read with
 * the loop time of the last pick; a member in slow start has its key
 * refreshed whenever its connection count changes.
 *
 * Member scratch: bal_tag = (owner << 32 | heap slot) finds a member's node
 * from release; bal_current keeps its last-pick stamp across rebuilds.
 */
#include "balance.h"

#include <stdlib.h>

/* One class of members: normal ([0]) or backup ([1]). */
struct lc_class {
    struct balance_heap heap; /* members by (load, stamp) */
    uint32_t owner;           /* tags bal_tag of our members */
};

struct balance_lc {
    struct balance base;    /* must be first */
    struct lc_class cls[2]; /* [backup] */
    uint64_t clock;         /* last-pick stamps, increasing */
    uint64_t version;       /* pool->version built for */
    size_t next;            /* rotation start of the slow scan */
    double now;             /* loop time of the last pick */
};

static double
lc_load(const struct balance_lc *lc, const struct member *m)
{
    double ss = lc->base.pool->slow_start;

    if (ss <= 0)
        return (double)m->active / (double)m->weight;
    return (double)m->active / balance_effective_weight(m, ss, lc->now);
}

static int
lc_rebuild(struct balance *b)
{
    struct balance_lc *lc = (struct balance_lc *)b;
    struct pool *p = b->pool;

    for (int k = 0; k < 2; k++) {
        struct lc_class *c = &lc->cls[k];
        size_t count = 0;

        if (c->owner == 0)
            c->owner = balance_new_owner();
        for (size_t i = 0; i < p->n; i++) {
            const struct member *m = p->members[i];
            count += m->backup == k && m->up && !m->gone && m->weight > 0;
        }
        if (balance_heap_reset(&c->heap, count) != 0)
            return -1;
        for (size_t i = 0; i < p->n; i++) {
            struct member *m = p->members[i];
            uint64_t stamp = 0;
            if (m->backup != k || !m->up || m->gone || m->weight == 0)
                continue;
            if (m->bal_tag >> 32 == c->owner)
                stamp = (uint64_t)m->bal_current;
            m->bal_tag = (uint64_t)c->owner << 32 | c->heap.n;
            m->bal_current = (double)stamp;
            balance_heap_append(&c->heap, m, lc_load(lc, m), stamp);
        }
        balance_heap_order(&c->heap);
    }
    lc->version = p->version;
    return 0;
}

/* Linear scan over the live members: the fallback when the heap is stale.
 * Ties go to the first member at or after a rotating start. */
static struct member *
lc_pick_linear(struct balance_lc *lc, const struct balance_ctx *ctx,
               bool backup)
{
    struct pool *p = lc->base.pool;
    struct member *best = NULL;
    double best_load = 0;
    size_t best_i = 0;

    for (size_t k = 0; k < p->n; k++) {
        size_t i = (lc->next + k) % p->n;
        struct member *m = p->members[i];
        double load;
        if (m->backup != backup || !balance_eligible(m, ctx))
            continue;
        load = (double)m->active /
               balance_effective_weight(m, p->slow_start, ctx->now);
        if (best == NULL || load < best_load) {
            best = m;
            best_load = load;
            best_i = i;
        }
    }
    if (best != NULL)
        lc->next = best_i + 1;
    return best;
}

static struct member *
lc_pick(struct balance *b, const struct balance_ctx *ctx)
{
    struct balance_lc *lc = (struct balance_lc *)b;
    bool backup = !balance_normal_up(b->pool);
    struct lc_class *c = &lc->cls[backup];
    long i;

    lc->now = ctx->now;
    if (lc->version != b->pool->version)
        return lc_pick_linear(lc, ctx, backup);
    i = balance_heap_find(&c->heap, ctx);
    if (i < 0)
        return lc_pick_linear(lc, ctx, backup);
    return c->heap.slots[c->heap.nodes[i].slot];
}

/* The heap node of m, or NULL when m is not in our current heaps. */
static struct balance_node *
lc_node(struct balance_lc *lc, const struct member *m, struct lc_class **cp)
{
    struct lc_class *c = &lc->cls[m->backup];
    uint64_t slot = m->bal_tag & UINT32_MAX;

    if (lc->version != lc->base.pool->version || m->bal_tag >> 32 != c->owner ||
        slot >= c->heap.n || c->heap.slots[slot] != m)
        return NULL;
    *cp = c;
    return &c->heap.nodes[c->heap.pos[slot]];
}

static void
lc_taken(struct balance *b, struct member *m)
{
    struct balance_lc *lc = (struct balance_lc *)b;
    struct lc_class *c;
    struct balance_node *nd = lc_node(lc, m, &c);

    lc->clock++;
    m->bal_current = (double)lc->clock;
    if (nd == NULL)
        return;
    nd->key = lc_load(lc, m);
    nd->seq = lc->clock;
    balance_heap_fix(&c->heap, (size_t)(nd - c->heap.nodes));
}

static void
lc_release(struct balance *b, struct member *m, enum balance_outcome outcome)
{
    struct balance_lc *lc = (struct balance_lc *)b;
    struct lc_class *c;
    struct balance_node *nd = lc_node(lc, m, &c);

    (void)outcome;
    if (nd == NULL)
        return;
    nd->key = lc_load(lc, m);
    balance_heap_fix(&c->heap, (size_t)(nd - c->heap.nodes));
}

static void
lc_deinit(struct balance *b)
{
    struct balance_lc *lc = (struct balance_lc *)b;

    balance_heap_free(&lc->cls[0].heap);
    balance_heap_free(&lc->cls[1].heap);
}

const struct balance_ops balance_leastconn_ops = {
    .name = "leastconn",
    .size = sizeof(struct balance_lc),
    .rebuild = lc_rebuild,
    .pick = lc_pick,
    .release = lc_release,
    .deinit = lc_deinit,
    .taken = lc_taken,
};
