/*
 * Unit tests for pool: membership, member lifetime, the DNS answer diff,
 * and the address helpers. Leaks and use-after-free of members are caught
 * when the tests run under --enable-asan.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "net.h"
#include "pool.h"

/* An IPv4 or IPv6 literal with a port, as a sockaddr_storage. */
static struct sockaddr_storage
sa(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
    }
    return ss;
}

static socklen_t
sa_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                     : sizeof(struct sockaddr_in);
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static struct member *
add(struct pool *p, size_t server, const char *ip, uint16_t port)
{
    struct sockaddr_storage ss = sa(ip, port);
    struct member *m;

    m = pool_add_member(p, server, "spec", SA(ss), sa_len(&ss), 1, false);
    assert_non_null(m);
    return m;
}

static struct member *
find(const struct pool *p, size_t server, const char *ip, uint16_t port)
{
    struct sockaddr_storage ss = sa(ip, port);

    return pool_find(p, server, SA(ss), sa_len(&ss));
}

/* members[i]->index == i and every member points back at the pool. */
static void
assert_pool_consistent(const struct pool *p)
{
    assert_true(p->n <= p->cap);
    for (size_t i = 0; i < p->n; i++) {
        assert_int_equal(p->members[i]->index, i);
        assert_ptr_equal(p->members[i]->pool, p);
        assert_false(p->members[i]->gone);
    }
}

static int
count_server(const struct pool *p, size_t server)
{
    int n = 0;

    for (size_t i = 0; i < p->n; i++)
        n += p->members[i]->server == server;
    return n;
}

/* ---------------------------------------------------------------------- */

static void
test_add_member_fields(void **state)
{
    struct pool p;
    struct sockaddr_storage ss = sa("10.0.0.1", 8080);
    struct member *m;

    (void)state;
    assert_int_equal(pool_init(&p, "api", 7.5), 0);
    assert_string_equal(p.backend, "api");
    assert_true(p.slow_start == 7.5);
    assert_int_equal(p.n, 0);

    m = pool_add_member(&p, 3, "api.internal:8080", SA(ss), sa_len(&ss), 5,
                        true);
    assert_non_null(m);
    assert_int_equal(p.n, 1);
    assert_ptr_equal(p.members[0], m);
    assert_ptr_equal(m->pool, &p);
    assert_int_equal(m->index, 0);
    assert_int_equal(m->server, 3);
    assert_string_equal(m->server_spec, "api.internal:8080");
    assert_string_equal(m->addr_text, "10.0.0.1:8080");
    assert_int_equal(m->addrlen, sizeof(struct sockaddr_in));
    assert_true(net_addr_equal(SA(m->addr), SA(ss)));
    assert_int_equal(m->weight, 5);
    assert_true(m->backup);
    assert_false(m->up); /* members start down */
    assert_false(m->gone);
    assert_int_equal(m->refs, 1);
    assert_int_equal(m->active, 0);
    assert_int_equal(m->stats.requests, 0);
    assert_true(p.version >= 1);
    pool_deinit(&p);
}

static void
test_add_member_v6(void **state)
{
    struct pool p;
    struct sockaddr_storage ss = sa("2001:db8::7", 443);
    struct member *m;

    (void)state;
    pool_init(&p, "b", 0);
    m = pool_add_member(&p, 0, "[2001:db8::7]:443", SA(ss), sa_len(&ss), 1,
                        false);
    assert_non_null(m);
    assert_string_equal(m->addr_text, "[2001:db8::7]:443");
    assert_int_equal(m->addrlen, sizeof(struct sockaddr_in6));
    assert_false(m->backup);
    pool_deinit(&p);
}

static void
test_add_member_rejects_oversized_len(void **state)
{
    struct pool p;
    unsigned char big[sizeof(struct sockaddr_storage) + 8];

    (void)state;
    memset(big, 0, sizeof(big));
    ((struct sockaddr *)big)->sa_family = AF_INET;
    pool_init(&p, "b", 0);
    assert_null(pool_add_member(&p, 0, "x", (const struct sockaddr *)big,
                                sizeof(big), 1, false));
    assert_int_equal(p.n, 0);
    pool_deinit(&p);
}

static void
test_find(void **state)
{
    struct pool p;
    struct member *a, *b, *c;

    (void)state;
    pool_init(&p, "b", 0);
    a = add(&p, 0, "10.0.0.1", 80);
    b = add(&p, 0, "10.0.0.2", 80);
    c = add(&p, 1, "10.0.0.1", 80); /* same address, other server line */
    assert_ptr_equal(find(&p, 0, "10.0.0.1", 80), a);
    assert_ptr_equal(find(&p, 0, "10.0.0.2", 80), b);
    assert_ptr_equal(find(&p, 1, "10.0.0.1", 80), c);
    assert_null(find(&p, 1, "10.0.0.2", 80));
    assert_null(find(&p, 0, "10.0.0.1", 81)); /* port matters */
    assert_null(find(&p, 0, "10.0.0.3", 80));
    assert_null(find(&p, 2, "10.0.0.1", 80));
    assert_null(find(&p, 0, "::ffff:10.0.0.1", 80)); /* family matters */
    pool_deinit(&p);
}

static void
test_remove_member(void **state)
{
    struct pool p;
    struct member *a, *b, *c, *d;
    uint64_t v;

    (void)state;
    pool_init(&p, "b", 0);
    a = add(&p, 0, "10.0.0.1", 80);
    b = add(&p, 0, "10.0.0.2", 80);
    c = add(&p, 0, "10.0.0.3", 80);
    d = add(&p, 0, "10.0.0.4", 80);
    assert_int_equal(p.n, 4);

    v = p.version;
    member_ref(b); /* keep it readable after removal */
    pool_remove_member(&p, b);
    assert_true(p.version > v);
    assert_int_equal(p.n, 3);
    assert_pool_consistent(&p);
    assert_null(find(&p, 0, "10.0.0.2", 80));
    assert_ptr_equal(find(&p, 0, "10.0.0.1", 80), a);
    assert_ptr_equal(find(&p, 0, "10.0.0.3", 80), c);
    assert_ptr_equal(find(&p, 0, "10.0.0.4", 80), d);
    assert_true(b->gone);
    assert_false(b->up);
    assert_null(b->pool);
    assert_int_equal(b->refs, 1);
    member_unref(b);

    /* Last and first positions, then the only one left. */
    pool_remove_member(&p, p.members[p.n - 1]);
    assert_pool_consistent(&p);
    pool_remove_member(&p, p.members[0]);
    assert_pool_consistent(&p);
    assert_int_equal(p.n, 1);
    pool_remove_member(&p, p.members[0]);
    assert_int_equal(p.n, 0);
    pool_deinit(&p);
}

static void
test_many_members_grow(void **state)
{
    struct pool p;
    char ip[32];

    (void)state;
    pool_init(&p, "b", 0);
    for (int i = 0; i < 300; i++) {
        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 250, i % 250 + 1);
        add(&p, (size_t)(i % 3), ip, 80);
    }
    assert_int_equal(p.n, 300);
    assert_pool_consistent(&p);
    for (int i = 0; i < 300; i++) {
        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 250, i % 250 + 1);
        assert_non_null(find(&p, (size_t)(i % 3), ip, 80));
        assert_null(find(&p, (size_t)((i + 1) % 3), ip, 80));
    }
    /* Remove every other member: the array stays dense and consistent. */
    for (size_t i = 0; i < p.n; i++)
        pool_remove_member(&p, p.members[i]);
    assert_int_equal(p.n, 150);
    assert_pool_consistent(&p);
    pool_deinit(&p);
    assert_int_equal(p.n, 0);
}

/* A removed member held by a connection stays valid until member_unref. */
static void
test_member_outlives_removal(void **state)
{
    struct pool p;
    struct member *m;

    (void)state;
    pool_init(&p, "b", 0);
    m = add(&p, 0, "10.0.0.1", 80);
    member_ref(m); /* a connection */
    member_ref(m); /* another one */
    m->active = 2;
    assert_int_equal(m->refs, 3);
    pool_remove_member(&p, m);
    assert_int_equal(p.n, 0);
    /* Still readable and writable (ASan reports a use-after-free here if
     * the removal freed it). */
    assert_true(m->gone);
    assert_int_equal(m->refs, 2);
    m->stats.requests++;
    m->active--;
    member_unref(m);
    assert_int_equal(m->refs, 1);
    assert_string_equal(m->addr_text, "10.0.0.1:80");
    m->active--;
    member_unref(m); /* freed now; LeakSanitizer reports it otherwise */
    pool_deinit(&p);
}

/* pool_deinit detaches members; a connection's reference keeps one alive. */
static void
test_member_outlives_pool_deinit(void **state)
{
    struct pool p;
    struct member *m;

    (void)state;
    pool_init(&p, "b", 0);
    add(&p, 0, "10.0.0.1", 80);
    m = add(&p, 0, "10.0.0.2", 80);
    add(&p, 1, "10.0.0.3", 80);
    member_ref(m);
    pool_deinit(&p);
    assert_int_equal(p.n, 0);
    assert_null(p.members);
    assert_true(m->gone);
    assert_null(m->pool);
    assert_int_equal(m->refs, 1);
    assert_string_equal(m->addr_text, "10.0.0.2:80");
    member_unref(m);
}

/* ---------------------------------------------------------------------- */
/* pool_apply_answer                                                       */

/* Addresses as a resolver returns them: port 0, the line's port applies. */
static size_t
answer(struct sockaddr_storage *out, const char *const *ips)
{
    size_t n = 0;

    for (; ips[n] != NULL; n++)
        out[n] = sa(ips[n], 0);
    return n;
}

static int
apply(struct pool *p, size_t server, const char *const *ips)
{
    struct sockaddr_storage addrs[16];
    size_t n = answer(addrs, ips);

    return pool_apply_answer(p, server, "api.internal:8080", addrs, n, 8080, 4,
                             false);
}

#define IPS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NO_IPS ((const char *const[]){NULL})

static void
test_apply_initial(void **state)
{
    struct pool p;
    struct member *m;

    (void)state;
    pool_init(&p, "b", 0);
    assert_int_equal(apply(&p, 2, IPS("10.0.0.1", "10.0.0.2", "::1")), 3);
    assert_int_equal(p.n, 3);
    assert_pool_consistent(&p);
    m = find(&p, 2, "10.0.0.1", 8080);
    assert_non_null(m);
    assert_string_equal(m->server_spec, "api.internal:8080");
    assert_string_equal(m->addr_text, "10.0.0.1:8080");
    assert_int_equal(m->weight, 4);
    assert_false(m->backup);
    assert_int_equal(m->server, 2);
    m = find(&p, 2, "::1", 8080);
    assert_non_null(m);
    assert_string_equal(m->addr_text, "[::1]:8080");
    assert_null(find(&p, 2, "10.0.0.1", 0)); /* the port was applied */
    pool_deinit(&p);
}

static void
test_apply_backup_flag(void **state)
{
    struct pool p;
    struct sockaddr_storage a[1] = {sa("10.0.0.9", 0)};

    (void)state;
    pool_init(&p, "b", 0);
    assert_int_equal(pool_apply_answer(&p, 0, "x:1", a, 1, 1, 0, true), 1);
    assert_true(p.members[0]->backup);
    assert_int_equal(p.members[0]->weight, 0);
    pool_deinit(&p);
}

/* The answer's own port is ignored: the server line's port is used. */
static void
test_apply_overrides_answer_port(void **state)
{
    struct pool p;
    struct sockaddr_storage a[2] = {sa("10.0.0.1", 53), sa("10.0.0.2", 9)};

    (void)state;
    pool_init(&p, "b", 0);
    assert_int_equal(pool_apply_answer(&p, 0, "x:80", a, 2, 80, 1, false), 2);
    assert_non_null(find(&p, 0, "10.0.0.1", 80));
    assert_non_null(find(&p, 0, "10.0.0.2", 80));
    assert_null(find(&p, 0, "10.0.0.1", 53));
    pool_deinit(&p);
}

static void
test_apply_unchanged_keeps_members(void **state)
{
    struct pool p;
    struct member *a, *b;
    uint64_t v;

    (void)state;
    pool_init(&p, "b", 0);
    assert_int_equal(apply(&p, 0, IPS("10.0.0.1", "10.0.0.2")), 2);
    a = find(&p, 0, "10.0.0.1", 8080);
    b = find(&p, 0, "10.0.0.2", 8080);
    a->stats.requests = 42;
    a->up = true;
    a->active = 3;
    b->stats.connect_errors = 7;
    v = p.version;

    assert_int_equal(apply(&p, 0, IPS("10.0.0.1", "10.0.0.2")), 0);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.version, v);
    assert_ptr_equal(find(&p, 0, "10.0.0.1", 8080), a);
    assert_ptr_equal(find(&p, 0, "10.0.0.2", 8080), b);
    assert_int_equal(a->stats.requests, 42);
    assert_true(a->up);
    assert_int_equal(a->active, 3);
    assert_int_equal(b->stats.connect_errors, 7);
    assert_int_equal(a->refs, 1);
    pool_deinit(&p);
}

static void
test_apply_reordered_keeps_members(void **state)
{
    struct pool p;
    struct member *a, *b, *c;

    (void)state;
    pool_init(&p, "b", 0);
    assert_int_equal(apply(&p, 0, IPS("10.0.0.1", "10.0.0.2", "10.0.0.3")), 3);
    a = find(&p, 0, "10.0.0.1", 8080);
    b = find(&p, 0, "10.0.0.2", 8080);
    c = find(&p, 0, "10.0.0.3", 8080);
    a->stats.requests = 1;
    b->stats.requests = 2;
    c->stats.requests = 3;
    assert_int_equal(apply(&p, 0, IPS("10.0.0.3", "10.0.0.1", "10.0.0.2")), 0);
    assert_int_equal(apply(&p, 0, IPS("10.0.0.2", "10.0.0.3", "10.0.0.1")), 0);
    assert_int_equal(p.n, 3);
    assert_ptr_equal(find(&p, 0, "10.0.0.1", 8080), a);
    assert_ptr_equal(find(&p, 0, "10.0.0.2", 8080), b);
    assert_ptr_equal(find(&p, 0, "10.0.0.3", 8080), c);
    assert_int_equal(a->stats.requests, 1);
    assert_int_equal(b->stats.requests, 2);
    assert_int_equal(c->stats.requests, 3);
    pool_deinit(&p);
}

static void
test_apply_adds_new(void **state)
{
    struct pool p;
    struct member *a, *b;

    (void)state;
    pool_init(&p, "b", 0);
    apply(&p, 0, IPS("10.0.0.1", "10.0.0.2"));
    a = find(&p, 0, "10.0.0.1", 8080);
    b = find(&p, 0, "10.0.0.2", 8080);
    assert_int_equal(
        apply(&p, 0, IPS("10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.4")), 2);
    assert_int_equal(p.n, 4);
    assert_pool_consistent(&p);
    assert_ptr_equal(find(&p, 0, "10.0.0.1", 8080), a);
    assert_ptr_equal(find(&p, 0, "10.0.0.2", 8080), b);
    assert_non_null(find(&p, 0, "10.0.0.3", 8080));
    assert_non_null(find(&p, 0, "10.0.0.4", 8080));
    pool_deinit(&p);
}

static void
test_apply_removes_missing(void **state)
{
    struct pool p;
    struct member *a, *b, *c;

    (void)state;
    pool_init(&p, "b", 0);
    apply(&p, 0, IPS("10.0.0.1", "10.0.0.2", "10.0.0.3"));
    a = find(&p, 0, "10.0.0.1", 8080);
    b = find(&p, 0, "10.0.0.2", 8080);
    c = find(&p, 0, "10.0.0.3", 8080);
    member_ref(b); /* an open connection to b */
    assert_int_equal(apply(&p, 0, IPS("10.0.0.3", "10.0.0.1")), 1);
    assert_int_equal(p.n, 2);
    assert_pool_consistent(&p);
    assert_ptr_equal(find(&p, 0, "10.0.0.1", 8080), a);
    assert_ptr_equal(find(&p, 0, "10.0.0.3", 8080), c);
    assert_null(find(&p, 0, "10.0.0.2", 8080));
    assert_true(b->gone);
    assert_int_equal(b->refs, 1);
    member_unref(b);
    pool_deinit(&p);
}

static void
test_apply_replaces(void **state)
{
    struct pool p;
    struct member *b;

    (void)state;
    pool_init(&p, "b", 0);
    apply(&p, 0, IPS("10.0.0.1", "10.0.0.2"));
    b = find(&p, 0, "10.0.0.2", 8080);
    assert_int_equal(apply(&p, 0, IPS("10.0.0.2", "10.0.0.3")), 2);
    assert_int_equal(p.n, 2);
    assert_ptr_equal(find(&p, 0, "10.0.0.2", 8080), b);
    assert_null(find(&p, 0, "10.0.0.1", 8080));
    assert_non_null(find(&p, 0, "10.0.0.3", 8080));
    /* A completely new set: everything out, everything in. */
    assert_int_equal(apply(&p, 0, IPS("10.1.0.1", "10.1.0.2", "10.1.0.3")), 5);
    assert_int_equal(p.n, 3);
    assert_null(find(&p, 0, "10.0.0.2", 8080));
    pool_deinit(&p);
}

static void
test_apply_collapses_duplicates(void **state)
{
    struct pool p;
    struct member *a;

    (void)state;
    pool_init(&p, "b", 0);
    assert_int_equal(
        apply(&p, 0, IPS("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1")), 2);
    assert_int_equal(p.n, 2);
    a = find(&p, 0, "10.0.0.1", 8080);
    assert_int_equal(
        apply(&p, 0, IPS("10.0.0.2", "10.0.0.2", "10.0.0.1", "10.0.0.1")), 0);
    assert_int_equal(p.n, 2);
    assert_ptr_equal(find(&p, 0, "10.0.0.1", 8080), a);
    /* Same address, different ports in the answer: the port is the line's,
     * so they are one member too. */
    {
        struct sockaddr_storage d[2] = {sa("10.0.0.5", 1), sa("10.0.0.5", 2)};
        pool_deinit(&p);
        pool_init(&p, "b", 0);
        assert_int_equal(pool_apply_answer(&p, 0, "x:80", d, 2, 80, 1, false),
                         1);
        assert_int_equal(p.n, 1);
    }
    pool_deinit(&p);
}

static void
test_apply_empty_answer_removes_all_of_line(void **state)
{
    struct pool p;

    (void)state;
    pool_init(&p, "b", 0);
    apply(&p, 0, IPS("10.0.0.1", "10.0.0.2"));
    apply(&p, 1, IPS("10.0.0.3"));
    assert_int_equal(apply(&p, 0, NO_IPS), 2);
    assert_int_equal(count_server(&p, 0), 0);
    assert_int_equal(count_server(&p, 1), 1);
    assert_int_equal(apply(&p, 0, NO_IPS), 0);
    pool_deinit(&p);
}

/* Only the given server line's members are touched, even when another line
 * has the same addresses. */
static void
test_apply_only_touches_its_server(void **state)
{
    struct pool p;
    struct member *s0a, *s0b, *s1a, *lit;
    uint64_t v;

    (void)state;
    pool_init(&p, "b", 0);
    lit = add(&p, 5, "192.0.2.1", 8080); /* an IP-literal line */
    assert_int_equal(apply(&p, 0, IPS("10.0.0.1", "10.0.0.2")), 2);
    assert_int_equal(apply(&p, 1, IPS("10.0.0.1", "10.0.0.3")), 2);
    assert_int_equal(p.n, 5);
    s0a = find(&p, 0, "10.0.0.1", 8080);
    s0b = find(&p, 0, "10.0.0.2", 8080);
    s1a = find(&p, 1, "10.0.0.1", 8080);
    assert_ptr_not_equal(s0a, s1a);

    /* Server 1 loses 10.0.0.1 and gains 10.0.0.2 (which line 0 has). */
    assert_int_equal(apply(&p, 1, IPS("10.0.0.3", "10.0.0.2")), 2);
    assert_int_equal(count_server(&p, 0), 2);
    assert_int_equal(count_server(&p, 1), 2);
    assert_ptr_equal(find(&p, 0, "10.0.0.1", 8080), s0a);
    assert_ptr_equal(find(&p, 0, "10.0.0.2", 8080), s0b);
    assert_null(find(&p, 1, "10.0.0.1", 8080));
    assert_non_null(find(&p, 1, "10.0.0.2", 8080));
    assert_ptr_not_equal(find(&p, 1, "10.0.0.2", 8080), s0b);
    assert_ptr_equal(find(&p, 5, "192.0.2.1", 8080), lit);

    /* Emptying line 1 leaves lines 0 and 5 alone. */
    v = p.version;
    assert_int_equal(apply(&p, 1, NO_IPS), 2);
    assert_true(p.version > v);
    assert_int_equal(p.n, 3);
    assert_ptr_equal(find(&p, 0, "10.0.0.1", 8080), s0a);
    assert_ptr_equal(find(&p, 0, "10.0.0.2", 8080), s0b);
    assert_ptr_equal(find(&p, 5, "192.0.2.1", 8080), lit);
    assert_pool_consistent(&p);
    pool_deinit(&p);
}

static void
test_apply_mixed_families(void **state)
{
    struct pool p;
    struct member *v6;

    (void)state;
    pool_init(&p, "b", 0);
    assert_int_equal(apply(&p, 0, IPS("10.0.0.1", "2001:db8::1")), 2);
    v6 = find(&p, 0, "2001:db8::1", 8080);
    assert_non_null(v6);
    assert_int_equal(v6->addrlen, sizeof(struct sockaddr_in6));
    assert_int_equal(apply(&p, 0, IPS("2001:db8::1", "2001:db8::2")), 2);
    assert_ptr_equal(find(&p, 0, "2001:db8::1", 8080), v6);
    assert_null(find(&p, 0, "10.0.0.1", 8080));
    pool_deinit(&p);
}

/* ---------------------------------------------------------------------- */
/* net_addr_format / net_addr_equal                                        */

static void
test_addr_format(void **state)
{
    struct sockaddr_storage ss;
    struct sockaddr_un un;
    char buf[CONFIG_ADDR_TEXT_MAX], small[6];

    (void)state;
    ss = sa("127.0.0.1", 8080);
    net_addr_format(SA(ss), buf, sizeof(buf));
    assert_string_equal(buf, "127.0.0.1:8080");
    ss = sa("255.255.255.255", 65535);
    net_addr_format(SA(ss), buf, sizeof(buf));
    assert_string_equal(buf, "255.255.255.255:65535");
    ss = sa("0.0.0.0", 0);
    net_addr_format(SA(ss), buf, sizeof(buf));
    assert_string_equal(buf, "0.0.0.0:0");
    ss = sa("::1", 53);
    net_addr_format(SA(ss), buf, sizeof(buf));
    assert_string_equal(buf, "[::1]:53");
    ss = sa("2001:DB8:0:0:0:0:0:A", 443);
    net_addr_format(SA(ss), buf, sizeof(buf));
    assert_string_equal(buf, "[2001:db8::a]:443"); /* canonical form */
    ss = sa("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    net_addr_format(SA(ss), buf, sizeof(buf));
    assert_string_equal(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
    ss = sa("::ffff:10.1.2.3", 80);
    net_addr_format(SA(ss), buf, sizeof(buf));
    assert_string_equal(buf, "[::ffff:10.1.2.3]:80");

    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    net_addr_format((const struct sockaddr *)&un, buf, sizeof(buf));
    assert_string_equal(buf, "unknown");

    /* A short buffer is cut and terminated, never overrun. */
    ss = sa("10.20.30.40", 8080);
    net_addr_format(SA(ss), small, sizeof(small));
    assert_string_equal(small, "10.20");
}

static void
test_addr_equal(void **state)
{
    struct sockaddr_storage a, b;
    struct sockaddr_un un1, un2;

    (void)state;
    a = sa("10.0.0.1", 80);
    b = sa("10.0.0.1", 80);
    assert_true(net_addr_equal(SA(a), SA(b)));
    b = sa("10.0.0.1", 81);
    assert_false(net_addr_equal(SA(a), SA(b)));
    b = sa("10.0.0.2", 80);
    assert_false(net_addr_equal(SA(a), SA(b)));
    b = sa("::ffff:10.0.0.1", 80);
    assert_false(net_addr_equal(SA(a), SA(b)));
    assert_false(net_addr_equal(SA(b), SA(a)));

    a = sa("2001:db8::1", 443);
    b = sa("2001:db8:0::1", 443);
    assert_true(net_addr_equal(SA(a), SA(b)));
    b = sa("2001:db8::1", 444);
    assert_false(net_addr_equal(SA(a), SA(b)));
    b = sa("2001:db8::2", 443);
    assert_false(net_addr_equal(SA(a), SA(b)));
    /* Fields other than family, address and port do not matter. */
    b = sa("2001:db8::1", 443);
    ((struct sockaddr_in6 *)&b)->sin6_flowinfo = htonl(7);
    assert_true(net_addr_equal(SA(a), SA(b)));

    memset(&un1, 0, sizeof(un1));
    memset(&un2, 0, sizeof(un2));
    un1.sun_family = un2.sun_family = AF_UNIX;
    assert_false(net_addr_equal((const struct sockaddr *)&un1,
                                (const struct sockaddr *)&un2));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_member_fields),
        cmocka_unit_test(test_add_member_v6),
        cmocka_unit_test(test_add_member_rejects_oversized_len),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_remove_member),
        cmocka_unit_test(test_many_members_grow),
        cmocka_unit_test(test_member_outlives_removal),
        cmocka_unit_test(test_member_outlives_pool_deinit),
        cmocka_unit_test(test_apply_initial),
        cmocka_unit_test(test_apply_backup_flag),
        cmocka_unit_test(test_apply_overrides_answer_port),
        cmocka_unit_test(test_apply_unchanged_keeps_members),
        cmocka_unit_test(test_apply_reordered_keeps_members),
        cmocka_unit_test(test_apply_adds_new),
        cmocka_unit_test(test_apply_removes_missing),
        cmocka_unit_test(test_apply_replaces),
        cmocka_unit_test(test_apply_collapses_duplicates),
        cmocka_unit_test(test_apply_empty_answer_removes_all_of_line),
        cmocka_unit_test(test_apply_only_touches_its_server),
        cmocka_unit_test(test_apply_mixed_families),
        cmocka_unit_test(test_addr_format),
        cmocka_unit_test(test_addr_equal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
