/*
 * balance_rr: plain round-robin over eligible members, ignoring weights.
 */
#include "balance.h"

struct balance_rr {
    struct balance base; /* must be first */
    size_t next;         /* index to try first */
};

static int
rr_rebuild(struct balance *b)
{
    (void)b;
    return 0;
}

static struct member *
rr_pick(struct balance *b, const struct balance_ctx *ctx)
{
    struct balance_rr *rr = (struct balance_rr *)b;
    struct pool *p = b->pool;
    bool want_backup = !balance_normal_up(p);

    for (size_t k = 0; k < p->n; k++) {
        size_t i = (rr->next + k) % p->n;
        struct member *m = p->members[i];
        if (m->backup != want_backup || !balance_eligible(m, ctx))
            continue;
        rr->next = i + 1;
        return m;
    }
    return NULL;
}

const struct balance_ops balance_roundrobin_ops = {
    .name = "roundrobin",
    .size = sizeof(struct balance_rr),
    .rebuild = rr_rebuild,
    .pick = rr_pick,
    .release = NULL,
    .deinit = NULL,
};
