/*
 * pool: members of a backend; see pool.h for the lifetime diagram.
 */
#include "pool.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "plane.h"

int
pool_init(struct pool *p, const char *backend, double slow_start)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->backend, sizeof(p->backend), "%s", backend);
    p->slow_start = slow_start;
    p->nloops = 1;
    return 0;
}

void
pool_deinit(struct pool *p)
{
    while (p->n > 0)
        pool_remove_member(p, p->members[p->n - 1]);
    free(p->members);
    p->members = NULL;
    p->cap = 0;
}

struct member *
pool_add_member(struct pool *p, size_t server, const char *server_spec,
                const struct sockaddr *addr, socklen_t len, unsigned weight,
                bool backup)
{
    struct member *m;

    if (len > sizeof(m->addr))
        return NULL;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        struct member **mm = realloc(p->members, cap * sizeof(*mm));
        if (mm == NULL)
            return NULL;
        p->members = mm;
        p->cap = cap;
    }
    m = calloc(1, sizeof(*m) + p->nloops * sizeof(m->idle[0]));
    if (m == NULL)
        return NULL;
    m->pool = p;
    m->server = server;
    snprintf(m->server_spec, sizeof(m->server_spec), "%s", server_spec);
    memcpy(&m->addr, addr, len);
    m->addrlen = len;
    net_addr_format(addr, m->addr_text, sizeof(m->addr_text));
    m->weight = weight;
    m->backup = backup;
    m->refs = 1;
    for (unsigned i = 0; i < p->nloops; i++)
        list_init(&m->idle[i].conns);
    histogram_init(&m->resp_hist, &histogram_latency);
    m->index = p->n;
    p->members[p->n++] = m;
    p->version++;
    return m;
}

static void
member_free(struct member *m)
{
    free(m);
}

void
member_ref(struct member *m)
{
    PLANE_ADD(m->refs, 1);
}

void
member_unref(struct member *m)
{
    /* The pool's reference goes last of all but connections': at zero the
     * member is gone and nobody else can find it. */
    unsigned was = __atomic_fetch_sub(&m->refs, 1, __ATOMIC_ACQ_REL);

    assert(was > 0);
    if (was == 1)
        member_free(m);
}

void
member_take_counters(struct member *m, const struct member *o)
{
    m->stats.requests = PLANE_GET(o->stats.requests);
    for (size_t i = 0;
         i < sizeof(m->stats.responses) / sizeof(m->stats.responses[0]); i++)
        m->stats.responses[i] = PLANE_GET(o->stats.responses[i]);
    m->stats.connect_errors = PLANE_GET(o->stats.connect_errors);
    m->stats.bytes_in = PLANE_GET(o->stats.bytes_in);
    m->stats.bytes_out = PLANE_GET(o->stats.bytes_out);
    histogram_copy(&m->resp_hist, &o->resp_hist);
}

void
pool_remove_member(struct pool *p, struct member *m)
{
    size_t i = m->index;

    /* Health state belongs to a layer above: its owner lets go of it. */
    if (p->on_remove != NULL)
        p->on_remove(p->hook_arg, m);
    /* Swap-remove keeps the array dense; the balancer is rebuilt after. */
    p->members[i] = p->members[p->n - 1];
    p->members[i]->index = i;
    p->n--;
    p->version++;
    PLANE_SET(m->gone, true);
    m->up = false;
    m->pool = NULL;
    member_unref(m);
}

struct member *
pool_find(const struct pool *p, size_t server, const struct sockaddr *addr,
          socklen_t len)
{
    (void)len;
    for (size_t i = 0; i < p->n; i++) {
        struct member *m = p->members[i];
        if (m->server == server &&
            net_addr_equal((const struct sockaddr *)&m->addr, addr))
            return m;
    }
    return NULL;
}

int
pool_apply_answer(struct pool *p, size_t server, const char *server_spec,
                  const struct sockaddr_storage *addrs, size_t naddrs,
                  uint16_t port, unsigned weight, bool backup)
{
    struct sockaddr_storage *want;
    int changes = 0;

    want = calloc(naddrs ? naddrs : 1, sizeof(*want));
    if (want == NULL)
        return -1;
    for (size_t i = 0; i < naddrs; i++) {
        want[i] = addrs[i];
        net_addr_set_port(&want[i], port);
    }

    /* Members of this line whose address is no longer wanted leave. */
    for (size_t i = p->n; i-- > 0;) {
        struct member *m = p->members[i];
        bool keep = false;
        if (m->server != server)
            continue;
        for (size_t j = 0; j < naddrs && !keep; j++)
            keep = net_addr_equal((struct sockaddr *)&m->addr,
                                  (struct sockaddr *)&want[j]);
        if (!keep) {
            pool_remove_member(p, m);
            changes++;
        }
    }
    /* Wanted addresses without a member join (duplicates collapse). */
    for (size_t j = 0; j < naddrs; j++) {
        if (pool_find(p, server, (struct sockaddr *)&want[j],
                      net_addr_len(&want[j])) != NULL)
            continue;
        if (pool_add_member(p, server, server_spec, (struct sockaddr *)&want[j],
                            net_addr_len(&want[j]), weight, backup) == NULL) {
            free(want);
            return -1;
        }
        changes++;
    }
    free(want);
    return changes;
}
