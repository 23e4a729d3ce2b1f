/*
 * balance_hash: consistent hashing on a ring with virtual nodes.
 *
 * Every member owns HASH_VNODES * weight points on a 32-bit ring; point j
 * of a member is the top half of XXH3_64(addr_text, seed j). The points
 * depend on nothing but the member's own "IP:port" and weight, so two ferry
 * instances with the same members agree on every key whatever order the
 * members were added in (equal points, which are rare, are ordered by
 * address text). A key is hashed once with XXH3_64 and mixed into
 * HASH_PROBES probe positions (multi-probe consistent hashing, Appleton and
 * O'Reilly 2015); it goes to the owner of the eligible point that follows
 * a probe most closely, walking on past members that are not eligible.
 *
 *   full ring:   every member of the class with weight > 0, sorted once per
 *                membership or weight change (radix sort, O(points));
 *   active ring: the full ring filtered to members up at rebuild (a linear
 *                pass, so an up/down change costs no sort), plus a bucket
 *                index on the top bits so a lookup is O(1) on average.
 *
 * Skipping a member's points gives exactly the mapping of a ring built
 * without it, so a member leaving (or going down) moves only its own keys,
 * and a member joining takes only keys from others' arcs: about
 * w / (W + w) of them. Requests without a key use weighted rotation.
 */
#include "balance.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Points per unit of weight, and probes per key. A plain ring's spread of
 * shares shrinks only as 1 / sqrt(points); probing 3 times and taking the
 * closest point evens arcs out much faster (docs/balancing.md: 128 x 3
 * keeps the most loaded of 10 members within ~7% of its fair share on
 * average, where 160 x 1 is at ~14%). */
#define HASH_VNODES 128
#define HASH_PROBES 3
/* Weights above this count as this much, bounding a member's points. */
#define HASH_WEIGHT_MAX 256
/* Total points per class beyond which rebuild refuses (~256 MB of ring). */
#define HASH_POINTS_MAX ((size_t)1 << 24)

/* One class of members: normal ([0]) or backup ([1]). */
struct hash_ring {
    uint64_t *all;         /* point << 32 | slot, sorted */
    size_t nall;           /* entries in all */
    uint64_t *act;         /* all, filtered to up members */
    size_t nact;           /* entries in act */
    struct member **slots; /* slot -> member, by address */
    size_t nslots;         /* members in the ring */
    uint32_t *index;       /* bucket -> first act entry in it */
    unsigned shift;        /* point >> shift = bucket */
};

struct balance_hash {
    struct balance base;      /* must be first */
    struct hash_ring ring[2]; /* [backup] */
    struct balance *rotation; /* weighted, for key-less picks */
    uint64_t version;         /* pool->version built for */
    uint64_t shape;           /* fingerprint of the full rings */
    bool built;               /* full rings exist */
};

static bool
hash_in_ring(const struct member *m, bool backup)
{
    return m->backup == backup && !m->gone && m->weight > 0;
}

static unsigned
hash_vnodes(const struct member *m)
{
    unsigned w = m->weight < HASH_WEIGHT_MAX ? m->weight : HASH_WEIGHT_MAX;
    return HASH_VNODES * w;
}

static int
hash_slot_cmp(const void *a, const void *b)
{
    const struct member *x = *(const struct member *const *)a;
    const struct member *y = *(const struct member *const *)b;
    int c = strcmp(x->addr_text, y->addr_text);

    if (c != 0)
        return c;
    return (x->server > y->server) - (x->server < y->server);
}

/* LSD radix sort of n 64-bit values, 16 bits a pass; tmp holds n. */
static int
hash_radix_sort(uint64_t *v, uint64_t *tmp, size_t n)
{
    size_t *count = malloc(65536 * sizeof(*count));
    uint64_t *src = v, *dst = tmp;

    if (count == NULL)
        return -1;
    for (unsigned s = 0; s < 64; s += 16) {
        size_t sum = 0;
        memset(count, 0, 65536 * sizeof(*count));
        for (size_t i = 0; i < n; i++)
            count[(src[i] >> s) & 0xffff]++;
        for (size_t d = 0; d < 65536; d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[count[(src[i] >> s) & 0xffff]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    /* An even number of passes: the sorted data is back in v. */
    free(count);
    return 0;
}

static void
hash_ring_free(struct hash_ring *r)
{
    free(r->all);
    free(r->act);
    free(r->slots);
    free(r->index);
    memset(r, 0, sizeof(*r));
}

/* Builds the full ring of one class; on ENOMEM r is left unchanged. */
static int
hash_ring_build(struct hash_ring *r, const struct pool *p, bool backup)
{
    struct hash_ring nr = {0};
    uint64_t *tmp = NULL;
    size_t npoints = 0;

    for (size_t i = 0; i < p->n; i++)
        if (hash_in_ring(p->members[i], backup)) {
            nr.nslots++;
            npoints += hash_vnodes(p->members[i]);
        }
    if (npoints > HASH_POINTS_MAX)
        return -1;
    nr.slots = malloc((nr.nslots ? nr.nslots : 1) * sizeof(*nr.slots));
    nr.all = malloc((npoints ? npoints : 1) * sizeof(*nr.all));
    nr.act = malloc((npoints ? npoints : 1) * sizeof(*nr.act));
    tmp = malloc((npoints ? npoints : 1) * sizeof(*tmp));
    if (nr.slots == NULL || nr.all == NULL || nr.act == NULL || tmp == NULL)
        goto err;

    nr.nslots = 0;
    for (size_t i = 0; i < p->n; i++)
        if (hash_in_ring(p->members[i], backup))
            nr.slots[nr.nslots++] = p->members[i];
    /* Slots in address order, so ties between equal points resolve the
     * same way in every instance. */
    qsort(nr.slots, nr.nslots, sizeof(*nr.slots), hash_slot_cmp);
    for (size_t s = 0; s < nr.nslots; s++) {
        const struct member *m = nr.slots[s];
        size_t len = strlen(m->addr_text);
        unsigned v = hash_vnodes(m);
        for (unsigned j = 0; j < v; j++) {
            uint64_t h = XXH3_64bits_withSeed(m->addr_text, len, j);
            nr.all[nr.nall++] = (h >> 32) << 32 | s;
        }
    }
    if (hash_radix_sort(nr.all, tmp, nr.nall) != 0)
        goto err;
    free(tmp);
    hash_ring_free(r);
    *r = nr;
    return 0;

err:
    free(tmp);
    hash_ring_free(&nr);
    return -1;
}

/* Filters the full ring to members up now and indexes it. */
static int
hash_ring_activate(struct hash_ring *r)
{
    unsigned bits = 0;
    uint32_t *index;
    size_t pos = 0;

    r->nact = 0;
    for (size_t i = 0; i < r->nall; i++) {
        const struct member *m = r->slots[r->all[i] & UINT32_MAX];
        if (m->up)
            r->act[r->nact++] = r->all[i];
    }
    /* About one entry per bucket: the scan after the index is then
     * mostly zero or one step, which the CPU predicts well. */
    while (bits < 26 && ((size_t)1 << bits) < r->nact)
        bits++;
    index = malloc(((size_t)1 << bits) * sizeof(*index));
    if (index == NULL)
        return -1;
    free(r->index);
    r->index = index;
    r->shift = 32 - bits;
    for (size_t bkt = 0; bkt < ((size_t)1 << bits); bkt++) {
        uint64_t start = (uint64_t)bkt << r->shift << 32;
        while (pos < r->nact && r->act[pos] < start)
            pos++;
        index[bkt] = (uint32_t)pos;
    }
    return 0;
}

/* Fingerprint of what the full rings depend on. */
static uint64_t
hash_shape(const struct pool *p)
{
    XXH64_hash_t h = XXH3_64bits(&p->version, sizeof(p->version));

    for (size_t i = 0; i < p->n; i++) {
        const struct member *m = p->members[i];
        uint64_t v = (uint64_t)m->weight << 2 | (uint64_t)m->backup << 1 |
                     (uint64_t)m->gone;
        h = XXH3_64bits_withSeed(&v, sizeof(v), h);
    }
    return h;
}

static int
hash_rebuild(struct balance *b)
{
    struct balance_hash *hb = (struct balance_hash *)b;
    struct pool *p = b->pool;
    uint64_t shape = hash_shape(p);

    if (hb->rotation == NULL) {
        hb->rotation = balance_create(BALANCE_WEIGHTED, p);
        if (hb->rotation == NULL)
            return -1;
    } else if (balance_rebuild(hb->rotation) != 0) {
        return -1;
    }
    if (!hb->built || shape != hb->shape) {
        /* Until both rings are rebuilt, picks use the rotation. */
        hb->built = false;
        for (int k = 0; k < 2; k++)
            if (hash_ring_build(&hb->ring[k], p, k) != 0)
                return -1;
        hb->shape = shape;
        hb->built = true;
    }
    for (int k = 0; k < 2; k++)
        if (hash_ring_activate(&hb->ring[k]) != 0) {
            hb->built = false;
            return -1;
        }
    hb->version = p->version;
    return 0;
}

/* splitmix64's finalizer: turns the key hash into independent probes. */
static inline uint32_t
hash_probe(uint64_t h, unsigned q)
{
    uint64_t z = h + (uint64_t)(q + 1) * 0x9e3779b97f4a7c15u;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/* Position of the first active entry at or after point (wrapping), with
 * the search starting from pos = index[bucket of point]. */
static inline size_t
hash_successor_from(const struct hash_ring *r, uint32_t point, size_t pos)
{
    uint64_t target = (uint64_t)point << 32;

    while (pos < r->nact && r->act[pos] < target)
        pos++;
    return pos == r->nact ? 0 : pos;
}

static inline size_t
hash_successor(const struct hash_ring *r, uint32_t point)
{
    return hash_successor_from(r, point, r->index[(uint64_t)point >> r->shift]);
}

/* From pos, the first entry whose member is eligible; -1 if none. */
static long
hash_walk(const struct hash_ring *r, size_t pos, const struct balance_ctx *ctx)
{
    const struct member *last = NULL;

    for (size_t step = 0; step < r->nact; step++, pos++) {
        const struct member *m;
        if (pos == r->nact)
            pos = 0;
        m = r->slots[r->act[pos] & UINT32_MAX];
        if (m == last)
            continue;
        if (balance_eligible(m, ctx))
            return (long)pos;
        last = m;
    }
    return -1;
}

/*
 * Multi-probe lookup: the key is hashed HASH_PROBES times and goes to the
 * eligible point closest after any probe (ties to the earlier probe). The
 * raw closest point is checked first; only when its member is not eligible
 * does every probe walk on, which gives the same answer as a ring without
 * the ineligible members.
 */
static struct member *
hash_lookup(const struct hash_ring *r, uint64_t h,
            const struct balance_ctx *ctx)
{
    uint32_t probe[HASH_PROBES], best_dist = UINT32_MAX;
    size_t start[HASH_PROBES];
    long best = -1;

    if (r->nact == 0)
        return NULL;
    /* Separate passes so the probes' cache misses on big rings overlap
     * instead of following one another. */
    for (unsigned q = 0; q < HASH_PROBES; q++)
        probe[q] = hash_probe(h, q);
    for (unsigned q = 0; q < HASH_PROBES; q++) {
        start[q] = r->index[(uint64_t)probe[q] >> r->shift];
        __builtin_prefetch(&r->act[start[q]]);
    }
    for (unsigned q = 0; q < HASH_PROBES; q++) {
        size_t pos = hash_successor_from(r, probe[q], start[q]);
        uint32_t dist;
        dist = (uint32_t)(r->act[pos] >> 32) - probe[q];
        if (best < 0 || dist < best_dist) {
            best = (long)pos;
            best_dist = dist;
        }
    }
    if (balance_eligible(r->slots[r->act[best] & UINT32_MAX], ctx))
        return r->slots[r->act[best] & UINT32_MAX];

    best = -1;
    for (unsigned q = 0; q < HASH_PROBES; q++) {
        long pos = hash_walk(r, hash_successor(r, probe[q]), ctx);
        uint32_t dist;
        if (pos < 0)
            return NULL; /* nobody eligible in this ring */
        dist = (uint32_t)(r->act[pos] >> 32) - probe[q];
        if (best < 0 || dist < best_dist) {
            best = pos;
            best_dist = dist;
        }
    }
    return r->slots[r->act[best] & UINT32_MAX];
}

static struct member *
hash_pick(struct balance *b, const struct balance_ctx *ctx)
{
    struct balance_hash *hb = (struct balance_hash *)b;
    bool backup;

    if (ctx->key == NULL || !hb->built || hb->version != b->pool->version)
        return hb->rotation->ops->pick(hb->rotation, ctx);
    backup = !balance_normal_up(b->pool);
    return hash_lookup(&hb->ring[backup], XXH3_64bits(ctx->key, ctx->keylen),
                       ctx);
}

static void
hash_deinit(struct balance *b)
{
    struct balance_hash *hb = (struct balance_hash *)b;

    hash_ring_free(&hb->ring[0]);
    hash_ring_free(&hb->ring[1]);
    balance_destroy(hb->rotation);
}

const struct balance_ops balance_hash_ops = {
    .name = "hash",
    .size = sizeof(struct balance_hash),
    .rebuild = hash_rebuild,
    .pick = hash_pick,
    .release = NULL,
    .deinit = hash_deinit,
    .taken = NULL,
};
