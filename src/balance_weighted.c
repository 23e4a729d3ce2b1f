/*
 * balance_weighted: smooth weighted round-robin.
 *
 * Two ways to the same shares, chosen per class (normal, backup) at rebuild
 * by how many members are up in it:
 *
 *   <= WRR_SMALL_MAX members: nginx's smooth WRR, O(n) per pick. Every
 *     eligible member adds its effective weight to its current value, the
 *     largest current wins (first in pool order on ties) and gives back the
 *     total. Weights 5,1,1 give a a b a c a a; 3,1 give A A B A. The loop
 *     runs over a compact array made at rebuild (member, weight, current,
 *     end of slow start), so it reads no member struct but the winner's.
 *
 *   larger pools: a virtual-deadline scheduler on a binary heap, O(log n).
 *     Member i's k-th pick of a cycle has deadline (k - 1/2) / w_i, so over
 *     every W = sum(w) picks each member is picked exactly w_i times and its
 *     picks are evenly spread; the earliest deadline wins (pool order on
 *     ties). Equal weights give plain rotation, exactly what smooth WRR
 *     gives. Mixed weights give the same per-cycle counts as nginx with a
 *     possibly different order inside the cycle (5,1,1: a a a b c a a).
 *
 * Both read the effective weight (slow start) at pick time. Member scratch
 * (large pools and the fallback scan): bal_current holds the next deadline
 * or the nginx current weight; bal_tag holds (owner << 32 | generation) so
 * a value written by another balancer, another mode, or before the member
 * went down is not trusted. The compact array carries its currents over a
 * rebuild by member pointer.
 */
#include "balance.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Up members of a class up to which the exact nginx sequence is kept: the
 * loop costs a few ns per member, so 16 keeps a pick well under 100 ns. */
#define WRR_SMALL_MAX 16
/* Deadlines are shifted back by a whole number once they pass this, so
 * doubles keep enough fraction bits for exact tie-breaking. */
#define WRR_RENORM_AT 1048576.0

/* A member of a small class, as the nginx loop needs it. */
struct wrr_entry {
    struct member *m; /* the member (deref'd if it wins) */
    double weight;    /* configured weight */
    double current;   /* nginx current weight */
    double ramp_end;  /* end of its slow start */
};

/* One class of members: normal ([0]) or backup ([1]). */
struct wrr_class {
    struct balance_heap heap; /* large: members by next deadline */
    struct wrr_entry *small;  /* small: members in pool order */
    size_t nsmall;            /* entries in small */
    bool large;               /* heap in use (else small) */
    double vtime;             /* deadline of the last pick */
    uint32_t own_small;       /* owner id for nginx currents */
    uint32_t own_large;       /* owner id for deadlines */
};

struct balance_wrr {
    struct balance base;     /* must be first */
    struct wrr_class cls[2]; /* [backup] */
    uint32_t gen;            /* rebuild generation */
    uint64_t version;        /* pool->version built for */
    double now;              /* loop time of the last pick */
};

static bool
wrr_candidate(const struct member *m, bool backup)
{
    return m->backup == backup && m->up && !m->gone && m->weight > 0;
}

static int
wrr_build_small(struct wrr_class *c, const struct pool *p, bool backup)
{
    struct wrr_entry old[WRR_SMALL_MAX];
    size_t nold = c->nsmall;

    if (c->small == NULL) {
        c->small = calloc(WRR_SMALL_MAX, sizeof(*c->small));
        if (c->small == NULL)
            return -1;
    }
    /* Currents follow their member (matched by pointer, never deref'd:
     * an old entry may name a member freed since). */
    memcpy(old, c->small, nold * sizeof(old[0]));
    c->nsmall = 0;
    for (size_t i = 0; i < p->n; i++) {
        struct member *m = p->members[i];
        struct wrr_entry *e;
        if (!wrr_candidate(m, backup))
            continue;
        e = &c->small[c->nsmall++];
        e->m = m;
        e->weight = (double)m->weight;
        e->current = 0;
        e->ramp_end = p->slow_start > 0 ? m->up_since + p->slow_start : 0;
        for (size_t j = 0; j < nold; j++)
            if (old[j].m == m)
                e->current = old[j].current;
    }
    return 0;
}

static int
wrr_rebuild(struct balance *b)
{
    struct balance_wrr *w = (struct balance_wrr *)b;
    struct pool *p = b->pool;
    uint32_t gen = w->gen + 1;

    for (int k = 0; k < 2; k++) {
        struct wrr_class *c = &w->cls[k];
        size_t count = 0;
        bool was_large = c->large;
        uint64_t prev, next;

        if (c->own_small == 0) {
            c->own_small = balance_new_owner();
            c->own_large = balance_new_owner();
        }
        for (size_t i = 0; i < p->n; i++)
            count += wrr_candidate(p->members[i], k);
        if (count <= WRR_SMALL_MAX) {
            if (wrr_build_small(c, p, k) != 0)
                return -1;
            c->large = false;
            c->heap.n = 0;
            continue;
        }
        c->nsmall = 0;
        if (balance_heap_reset(&c->heap, count) != 0)
            return -1;
        if (!was_large)
            c->own_large = balance_new_owner();
        c->large = true;
        prev = (uint64_t)c->own_large << 32 | w->gen;
        next = (uint64_t)c->own_large << 32 | gen;
        for (size_t i = 0; i < p->n; i++) {
            struct member *m = p->members[i];
            double key;
            if (!wrr_candidate(m, k))
                continue;
            /* A member that stayed up keeps its deadline; one that is new
             * or just came back starts half a stride after now. */
            if (m->bal_tag == prev)
                key = m->bal_current;
            else
                key = c->vtime +
                      0.5 / balance_effective_weight(m, p->slow_start, w->now);
            m->bal_current = key;
            m->bal_tag = next;
            balance_heap_append(&c->heap, m, key, i);
        }
        balance_heap_order(&c->heap);
    }
    w->gen = gen;
    w->version = p->version;
    return 0;
}

/* nginx smooth WRR over the live members; also the fallback when the
 * prepared heap is stale. */
static struct member *
wrr_pick_linear(struct balance_wrr *w, struct wrr_class *c,
                const struct balance_ctx *ctx, bool backup)
{
    struct pool *p = w->base.pool;
    uint64_t tag = (uint64_t)c->own_small << 32;
    struct member *best = NULL;
    double total = 0;

    for (size_t i = 0; i < p->n; i++) {
        struct member *m = p->members[i];
        double ew;
        if (m->backup != backup || !balance_eligible(m, ctx))
            continue;
        ew = balance_effective_weight(m, p->slow_start, ctx->now);
        if (m->bal_tag != tag) {
            m->bal_tag = tag;
            m->bal_current = 0;
        }
        m->bal_current += ew;
        total += ew;
        if (best == NULL || m->bal_current > best->bal_current)
            best = m;
    }
    if (best != NULL)
        best->bal_current -= total;
    return best;
}

/* nginx smooth WRR over the compact array; NULL when nothing is eligible
 * or the winner is not eligible any more (went down without a rebuild). */
static struct member *
wrr_pick_small(struct wrr_class *c, const struct balance_ctx *ctx,
               double slow_start)
{
    const struct balance_tried *t = ctx->tried;
    struct wrr_entry *best = NULL;
    double total = 0;

    for (size_t i = 0; i < c->nsmall; i++) {
        struct wrr_entry *e = &c->small[i];
        double ew = e->weight;
        if (t != NULL && t->n > 0 && balance_tried_has(t, e->m))
            continue;
        if (ctx->now < e->ramp_end)
            ew = balance_effective_weight(e->m, slow_start, ctx->now);
        e->current += ew;
        total += ew;
        if (best == NULL || e->current > best->current)
            best = e;
    }
    if (best == NULL)
        return NULL;
    best->current -= total;
    return balance_eligible(best->m, ctx) ? best->m : NULL;
}

static void
wrr_renormalize(struct wrr_class *c)
{
    double shift = floor(c->vtime);

    c->vtime -= shift;
    for (size_t i = 0; i < c->heap.n; i++) {
        struct balance_node *nd = &c->heap.nodes[i];
        nd->key -= shift;
        c->heap.slots[nd->slot]->bal_current = nd->key;
    }
}

static struct member *
wrr_pick_heap(struct balance_wrr *w, struct wrr_class *c,
              const struct balance_ctx *ctx)
{
    long i = balance_heap_find(&c->heap, ctx);
    struct balance_node *nd;
    struct member *m;

    if (i < 0)
        return NULL;
    nd = &c->heap.nodes[i];
    m = c->heap.slots[nd->slot];
    if (nd->key > c->vtime)
        c->vtime = nd->key;
    nd->key += 1.0 /
               balance_effective_weight(m, w->base.pool->slow_start, ctx->now);
    m->bal_current = nd->key;
    balance_heap_fix(&c->heap, (size_t)i);
    if (c->vtime > WRR_RENORM_AT)
        wrr_renormalize(c);
    return m;
}

static struct member *
wrr_pick(struct balance *b, const struct balance_ctx *ctx)
{
    struct balance_wrr *w = (struct balance_wrr *)b;
    bool backup = !balance_normal_up(b->pool);
    struct wrr_class *c = &w->cls[backup];
    struct member *m;

    w->now = ctx->now;
    if (w->version != b->pool->version)
        return wrr_pick_linear(w, c, ctx, backup);
    if (c->large)
        m = wrr_pick_heap(w, c, ctx);
    else
        m = wrr_pick_small(c, ctx, b->pool->slow_start);
    /* Nothing prepared is eligible: members may have changed state
     * without a rebuild, so let the live scan decide. */
    if (m == NULL)
        m = wrr_pick_linear(w, c, ctx, backup);
    return m;
}

static void
wrr_deinit(struct balance *b)
{
    struct balance_wrr *w = (struct balance_wrr *)b;

    for (int k = 0; k < 2; k++) {
        balance_heap_free(&w->cls[k].heap);
        free(w->cls[k].small);
    }
}

const struct balance_ops balance_weighted_ops = {
    .name = "weighted",
    .size = sizeof(struct balance_wrr),
    .rebuild = wrr_rebuild,
    .pick = wrr_pick,
    .release = NULL,
    .deinit = wrr_deinit,
    .taken = NULL,
};
