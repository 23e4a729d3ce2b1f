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

int
pool_init(struct pool *p, const char *backend, double slow_start)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->backend, sizeof(p->backend), "%s", backend);
    p->slow_start = slow_start;
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
    m = calloc(1, sizeof(*m));
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
    list_init(&m->idle);
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
    m->refs++;
}

void
member_unref(struct member *m)
{
    assert(m->refs > 0);
    if (--m->refs == 0)
        member_free(m);
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
    m->gone = true;
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
