/*
 * Unit tests for upstream: pick or wait against a hand-built backend (the
 * balancer's slot and ref, the tried set, retries, backups, the bounded
 * wait on a DNS resolution in flight or on new members' first checks), and
 * the one connect path against real sockets on 127.0.0.1.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "backend.h"
#include "balance.h"
#include "dns.h"
#include "dns_cache.h"
#include "health.h"
#include "pool.h"
#include "upstream.h"

#define T0 1000.0

/* ---------------------------------------------------------------------- */
/* Fixture: a backend with a hand-built pool and no DNS names             */

static struct member *
add(struct backend *be, unsigned i, bool backup)
{
    struct sockaddr_in sa = {0};
    struct member *m;

    sa.sin_family = AF_INET;
    sa.sin_port = htons(8080);
    sa.sin_addr.s_addr = htonl(0x7f000001u + i);
    m = pool_add_member(&be->pool, 0, "test:8080", (struct sockaddr *)&sa,
                        sizeof(sa), 1, backup);
    assert_non_null(m);
    m->up = true;
    return m;
}

/* n members (the last nbackup of them backups), all up, round-robin. */
static struct backend *
mkbackend(struct member **mm, size_t n, size_t nbackup, unsigned retries)
{
    struct backend *be = calloc(1, sizeof(*be));

    assert_non_null(be);
    snprintf(be->name, sizeof(be->name), "b");
    be->cfg.retries = retries;
    be->cfg.timeout_connect = 2.0;
    be->cfg.balance = BALANCE_ROUNDROBIN;
    be->refs = 1;
    assert_int_equal(pool_init(&be->pool, "b", 0), 0);
    for (size_t i = 0; i < n; i++)
        mm[i] = add(be, (unsigned)i, i >= n - nbackup);
    be->pool.balance = balance_create(BALANCE_ROUNDROBIN, &be->pool);
    assert_non_null(be->pool.balance);
    return be;
}

static void
rmbackend(struct backend *be)
{
    balance_destroy(be->pool.balance);
    be->pool.balance = NULL;
    pool_deinit(&be->pool);
    free(be);
}

static void
set_up(struct backend *be, struct member *m, bool up)
{
    m->up = up;
    assert_int_equal(balance_rebuild(be->pool.balance), 0);
}

/* Requests are woken on this loop state (set up by the DNS fixture). */
static struct upstream_loop test_ul;
static unsigned woken_calls;
static void *woken_arg;

static void
woken(void *arg)
{
    woken_calls++;
    woken_arg = arg;
}

/* ---------------------------------------------------------------------- */
/* Pick, release, fail                                                     */

static void
test_pick_release(void **state)
{
    struct member *mm[2];
    struct backend *be = mkbackend(mm, 2, 0, 1);
    struct upstream_req u;
    struct member *m;

    (void)state;
    set_up(be, mm[1], false);
    upstream_req_init(&u, be, &test_ul, woken, &u);
    assert_ptr_equal(u.be, be);
    assert_int_equal(u.attempts, 0);

    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
    m = u.member;
    assert_ptr_equal(m, mm[0]);
    assert_true(m->up);
    assert_int_equal(u.attempts, 1);
    assert_int_equal(m->active, 1);
    assert_int_equal(m->refs, 2); /* pool + the pick */
    assert_false(u.waiting);

    upstream_release(&u, BALANCE_OK, T0 + 1);
    assert_null(u.member);
    assert_int_equal(m->active, 0);
    assert_int_equal(m->refs, 1);
    assert_int_equal(m->stats.connect_errors, 0);
    assert_int_equal(u.tried.n, 0);
    assert_int_equal(u.attempts, 1); /* attempts stay until reset */

    /* Releasing twice is a no-op. */
    upstream_release(&u, BALANCE_OK, T0 + 1);
    assert_int_equal(m->active, 0);
    assert_int_equal(m->refs, 1);

    /* A served request does not keep the member out of the next pick. */
    assert_int_equal(upstream_pick(&u, NULL, T0 + 2), UPSTREAM_PICKED);
    assert_ptr_equal(u.member, mm[0]);
    assert_int_equal(u.attempts, 2);
    upstream_release(&u, BALANCE_OK, T0 + 2);
    assert_int_equal(woken_calls, 0);
    rmbackend(be);
}

static void
test_all_down_none(void **state)
{
    struct member *mm[3];
    struct backend *be = mkbackend(mm, 3, 0, 2);
    struct upstream_req u;

    (void)state;
    for (size_t i = 0; i < 3; i++)
        mm[i]->up = false;
    assert_int_equal(balance_rebuild(be->pool.balance), 0);
    assert_false(backend_first_checks_pending(be));
    upstream_req_init(&u, be, &test_ul, woken, NULL);

    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_NONE);
    assert_null(u.member);
    assert_int_equal(u.attempts, 0);
    assert_false(u.waiting);
    assert_false(dns_cache_waiter_parked(&u.dnswait));
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(mm[i]->active, 0);
        assert_int_equal(mm[i]->refs, 1);
    }
    /* An empty pool is the same. */
    rmbackend(be);
    be = mkbackend(mm, 0, 0, 2);
    upstream_req_init(&u, be, &test_ul, woken, NULL);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_NONE);
    assert_false(u.waiting);
    rmbackend(be);
}

static void
test_failed_goes_to_tried(void **state)
{
    struct member *mm[3];
    struct backend *be = mkbackend(mm, 3, 0, 5);
    struct upstream_req u;
    struct member *bad;

    (void)state;
    upstream_req_init(&u, be, &test_ul, woken, NULL);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
    bad = u.member;
    upstream_failed(&u, BALANCE_CONNECT_ERROR, T0);
    assert_null(u.member);
    assert_int_equal(bad->stats.connect_errors, 1);
    assert_int_equal(bad->active, 0);
    assert_int_equal(bad->refs, 1);
    assert_int_equal(u.tried.n, 1);
    assert_ptr_equal(u.tried.m[0], bad);
    assert_true(balance_tried_has(&u.tried, bad));

    /* Round-robin would come back to bad every third pick: it never does. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(upstream_pick(&u, NULL, T0 + i), UPSTREAM_PICKED);
        assert_ptr_not_equal(u.member, bad);
        upstream_release(&u, BALANCE_OK, T0 + i);
    }
    assert_int_equal(u.attempts, 6);
    /* Failing through release does not count a connect error. */
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(mm[i]->stats.connect_errors, mm[i] == bad ? 1 : 0);

    /* A second failure: only the third member remains. */
    upstream_req_reset(&u);
    assert_int_equal(u.attempts, 0);
    assert_int_equal(u.tried.n, 0);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
    struct member *first = u.member;
    upstream_failed(&u, BALANCE_TIMEOUT, T0);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
    struct member *second = u.member;
    assert_ptr_not_equal(second, first);
    upstream_failed(&u, BALANCE_CONNECT_ERROR, T0);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
    struct member *third = u.member;
    assert_ptr_not_equal(third, first);
    assert_ptr_not_equal(third, second);
    upstream_failed(&u, BALANCE_CONNECT_ERROR, T0);
    /* Everyone tried: NONE (a retry never waits), not EXHAUSTED (5 left). */
    assert_int_equal(u.attempts, 3);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_NONE);
    assert_false(u.waiting);
    rmbackend(be);
}

static void
test_retries_exhausted(void **state)
{
    struct member *mm[5];
    struct backend *be = mkbackend(mm, 5, 0, 2);
    struct upstream_req u;

    (void)state;
    upstream_req_init(&u, be, &test_ul, woken, NULL);
    /* retries = 2: the first attempt and two retries. */
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
        assert_int_equal(u.attempts, i + 1);
        upstream_failed(&u, BALANCE_CONNECT_ERROR, T0);
    }
    assert_int_equal(u.tried.n, 3);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_EXHAUSTED);
    assert_null(u.member);
    assert_int_equal(u.attempts, 3);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(mm[i]->active, 0);
    /* Still exhausted on the next try. */
    assert_int_equal(upstream_pick(&u, NULL, T0 + 1), UPSTREAM_EXHAUSTED);

    /* reset gives a fresh budget, and every member is eligible again. */
    upstream_req_reset(&u);
    assert_int_equal(u.attempts, 0);
    assert_int_equal(u.tried.n, 0);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
        upstream_failed(&u, BALANCE_CONNECT_ERROR, T0);
    }
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_EXHAUSTED);

    /* retries = 0: one attempt only. */
    be->cfg.retries = 0;
    upstream_req_reset(&u);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
    upstream_failed(&u, BALANCE_CONNECT_ERROR, T0);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_EXHAUSTED);
    rmbackend(be);
}

static void
test_reset_clears_tried(void **state)
{
    struct member *mm[1];
    struct backend *be = mkbackend(mm, 1, 0, 3);
    struct upstream_req u;

    (void)state;
    upstream_req_init(&u, be, &test_ul, woken, NULL);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
    upstream_failed(&u, BALANCE_CONNECT_ERROR, T0);
    /* The only member failed this request. */
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_NONE);
    upstream_req_reset(&u);
    assert_int_equal(u.tried.n, 0);
    assert_int_equal(u.attempts, 0);
    assert_false(u.waiting);
    /* The next request may use it again. */
    assert_int_equal(upstream_pick(&u, NULL, T0 + 1), UPSTREAM_PICKED);
    assert_ptr_equal(u.member, mm[0]);
    assert_int_equal(u.attempts, 1);
    upstream_release(&u, BALANCE_OK, T0 + 1);
    assert_int_equal(mm[0]->stats.connect_errors, 1);
    rmbackend(be);
}

static void
test_backup_only_when_no_normal_up(void **state)
{
    struct member *mm[3]; /* a, b normal; c backup */
    struct backend *be = mkbackend(mm, 3, 1, 3);
    struct upstream_req u;

    (void)state;
    assert_true(mm[2]->backup);
    upstream_req_init(&u, be, &test_ul, woken, NULL);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
        assert_ptr_not_equal(u.member, mm[2]);
        assert_false(u.member->backup);
        upstream_release(&u, BALANCE_OK, T0);
        upstream_req_reset(&u);
    }
    /* One normal member left. */
    set_up(be, mm[0], false);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
        assert_ptr_equal(u.member, mm[1]);
        upstream_release(&u, BALANCE_OK, T0);
        upstream_req_reset(&u);
    }
    /* A normal member that is up but tried still keeps backups out. */
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
    assert_ptr_equal(u.member, mm[1]);
    upstream_failed(&u, BALANCE_CONNECT_ERROR, T0);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_NONE);
    assert_int_equal(mm[2]->active, 0);
    upstream_req_reset(&u);

    /* No normal member up: the backup. */
    set_up(be, mm[1], false);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
        assert_ptr_equal(u.member, mm[2]);
        assert_int_equal(mm[2]->active, 1);
        upstream_release(&u, BALANCE_OK, T0);
        upstream_req_reset(&u);
    }
    /* A normal member comes back: backups out again. */
    set_up(be, mm[0], true);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_PICKED);
    assert_ptr_equal(u.member, mm[0]);
    upstream_release(&u, BALANCE_OK, T0);
    rmbackend(be);
}

/* ---------------------------------------------------------------------- */
/* Waiting on new members' first checks                                    */

static void
test_wait_first_checks(void **state)
{
    struct member *mm[1];
    struct backend *be = mkbackend(mm, 1, 0, 1);
    struct health_params hp = {0};
    struct health_hooks hh = {0};
    struct health_checker *hc;
    struct upstream_req u;

    (void)state;
    hp.kind = HEALTH_TCP;
    hp.interval = 1;
    hp.timeout = 1;
    hp.rise = 1;
    hp.fall = 1;
    hc = health_create(NULL, &hp, &hh);
    assert_non_null(hc);
    mm[0]->up = false;
    assert_int_equal(health_member_attach(hc, mm[0], NULL, T0), 0);
    assert_false(mm[0]->up);
    assert_int_equal(balance_rebuild(be->pool.balance), 0);
    assert_true(backend_first_checks_pending(be));

    upstream_req_init(&u, be, &test_ul, woken, &u);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_WAIT);
    assert_true(u.waiting);
    assert_null(u.member);
    assert_int_equal(u.attempts, 0);
    assert_true(u.wait_started == T0);
    /* A short poll, well before the deadline. */
    assert_true(u.retry_at > T0 && u.retry_at < T0 + 0.5);
    double poll = u.retry_at - T0;

    /* Later picks keep the first start: the poll never passes it. */
    assert_int_equal(upstream_pick(&u, NULL, T0 + 1), UPSTREAM_WAIT);
    assert_true(u.wait_started == T0);
    assert_true(fabs(u.retry_at - (T0 + 1 + poll)) < 1e-9);
    assert_int_equal(upstream_pick(&u, NULL, T0 + 2 - poll / 2), UPSTREAM_WAIT);
    assert_true(u.retry_at == T0 + 2);
    /* Deadline: started + timeout_connect. */
    assert_int_equal(upstream_pick(&u, NULL, T0 + 2), UPSTREAM_NONE);
    assert_false(u.waiting);

    /* The first check comes in and fails: nothing to wait for. */
    upstream_req_reset(&u);
    assert_int_equal(upstream_pick(&u, NULL, T0 + 3), UPSTREAM_WAIT);
    health_member_check_done(mm[0], false, "refused", 0.001, T0 + 3);
    assert_false(backend_first_checks_pending(be));
    assert_int_equal(upstream_pick(&u, NULL, T0 + 3.01), UPSTREAM_NONE);
    assert_false(u.waiting);

    /* It passes later: picked. */
    upstream_req_reset(&u);
    health_member_check_done(mm[0], true, "ok", 0.001, T0 + 4);
    assert_true(mm[0]->up);
    assert_int_equal(balance_rebuild(be->pool.balance), 0);
    assert_int_equal(upstream_pick(&u, NULL, T0 + 4), UPSTREAM_PICKED);
    assert_ptr_equal(u.member, mm[0]);
    upstream_release(&u, BALANCE_OK, T0 + 4);
    assert_int_equal(woken_calls, 0);

    health_destroy(hc);
    rmbackend(be);
}

/* ---------------------------------------------------------------------- */
/* Waiting on a DNS resolution in flight                                   */

/*
 * The DNS plane for real (dns_create: c-ares on a libev loop) pointed at a
 * UDP socket of ours that never answers, so a query stays in flight until
 * the resolver's timeout, which only passes when the loop runs.
 */
struct dnsfx {
    struct ev_loop *loop;
    int sink; /* the silent nameserver */
    struct config_nameserver ns;
    struct config cfg;
    struct dns *dns;
    struct dns_cache_entry *e;
    struct backend_name name;
};

static void
dnsfx_init(struct dnsfx *f, struct backend *be, double resolver_timeout)
{
    struct sockaddr_in sa = {0};
    socklen_t len = sizeof(sa);
    char err[256] = "";

    memset(f, 0, sizeof(*f));
    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    f->sink = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(f->sink >= 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->sink, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(f->sink, (struct sockaddr *)&sa, &len), 0);
    memcpy(&f->ns.addr.ss, &sa, sizeof(sa));
    f->ns.addr.len = sizeof(sa);
    snprintf(f->ns.addr.text, sizeof(f->ns.addr.text), "127.0.0.1:%u",
             ntohs(sa.sin_port));
    f->cfg.nameservers = &f->ns;
    f->cfg.nnameservers = 1;
    f->cfg.family = FAMILY_IPV4;
    f->cfg.resolver_timeout = resolver_timeout;
    f->cfg.resolver_attempts = 1;
    f->cfg.min_ttl = 1;
    f->cfg.max_ttl = 3600;
    f->cfg.negative_ttl = 5;
    f->cfg.stale_ttl = 0;
    f->cfg.jitter = 0;
    f->cfg.prefetch = 0;
    upstream_loop_init(&test_ul, f->loop, 0);
    f->dns = dns_create(f->loop, &f->cfg, err, sizeof(err));
    if (f->dns == NULL)
        fail_msg("dns_create: %s", err);

    /* The name's entry, with its query in flight. */
    f->e = dns_cache_get(dns_cache_of(f->dns), "svc.ferry-test.invalid", 4);
    assert_non_null(f->e);
    assert_int_equal(f->e->state, DNS_CACHE_IDLE);
    assert_int_equal(dns_cache_lookup_entry(dns_cache_of(f->dns), f->e,
                                            dns_now(), NULL),
                     DNS_CACHE_MISS);
    assert_int_equal(f->e->state, DNS_CACHE_IN_PROGRESS);
    assert_true(f->e->inflight);

    f->name.be = be;
    f->name.server = 0;
    f->name.entry = f->e;
    be->dns = f->dns;
    be->names = &f->name;
    be->nnames = 1;
}

static void
dnsfx_deinit(struct dnsfx *f, struct backend *be)
{
    be->names = NULL;
    be->nnames = 0;
    be->dns = NULL;
    dns_destroy(f->dns);
    upstream_loop_deinit(&test_ul);
    ev_loop_destroy(f->loop);
    close(f->sink);
}

static void
stop_loop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Runs the loop until woken() ran or 3 s passed. */
static void
run_until_woken(struct ev_loop *loop)
{
    ev_timer guard;
    ev_timer poll;
    double until = ev_time() + 3.0;

    ev_timer_init(&guard, stop_loop_cb, 3.0, 0);
    ev_timer_start(loop, &guard);
    ev_timer_init(&poll, stop_loop_cb, 0.01, 0.01);
    while (woken_calls == 0 && ev_time() < until) {
        ev_timer_start(loop, &poll);
        ev_run(loop, 0);
        ev_timer_stop(loop, &poll);
    }
    ev_timer_stop(loop, &guard);
}

static void
test_wait_dns(void **state)
{
    struct member *mm[1];
    struct backend *be = mkbackend(mm, 0, 0, 2);
    struct dnsfx f;
    struct upstream_req u, r;

    (void)state;
    dnsfx_init(&f, be, 0.3);
    woken_calls = 0;
    woken_arg = NULL;
    upstream_req_init(&u, be, &test_ul, woken, &u);

    /* First pick, empty pool, a query in flight: WAIT until the deadline. */
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_WAIT);
    assert_true(u.waiting);
    assert_null(u.member);
    assert_int_equal(u.attempts, 0);
    assert_true(u.wait_started == T0);
    assert_true(u.retry_at == T0 + be->cfg.timeout_connect);
    assert_true(dns_cache_waiter_parked(&u.dnswait));
    assert_int_equal(f.e->lookups[DNS_CACHE_COALESCED], 1);

    /* Woken again (or polled) before the deadline: still from T0. */
    assert_int_equal(upstream_pick(&u, NULL, T0 + 1), UPSTREAM_WAIT);
    assert_true(u.wait_started == T0);
    assert_true(u.retry_at == T0 + 2.0);
    assert_true(dns_cache_waiter_parked(&u.dnswait));

    /* At the deadline: NONE, and the waiter is unparked. */
    assert_int_equal(upstream_pick(&u, NULL, T0 + 2.0), UPSTREAM_NONE);
    assert_false(u.waiting);
    assert_false(dns_cache_waiter_parked(&u.dnswait));
    assert_true(f.e->inflight); /* the query itself goes on */

    /* The next request starts a new wait. */
    upstream_req_reset(&u);
    assert_int_equal(upstream_pick(&u, NULL, T0 + 10), UPSTREAM_WAIT);
    assert_true(u.wait_started == T0 + 10);
    assert_true(u.retry_at == T0 + 12);
    assert_true(dns_cache_waiter_parked(&u.dnswait));

    /* A retry (attempts > 0) never waits, even with the query in flight. */
    struct member *m = add(be, 0, false);
    assert_int_equal(balance_rebuild(be->pool.balance), 0);
    upstream_req_init(&r, be, &test_ul, woken, &r);
    assert_int_equal(upstream_pick(&r, NULL, T0 + 10), UPSTREAM_PICKED);
    assert_ptr_equal(r.member, m);
    upstream_failed(&r, BALANCE_CONNECT_ERROR, T0 + 10);
    assert_int_equal(upstream_pick(&r, NULL, T0 + 10), UPSTREAM_NONE);
    assert_false(r.waiting);
    assert_false(dns_cache_waiter_parked(&r.dnswait));
    upstream_req_cancel(&r);
    pool_remove_member(&be->pool, m);
    assert_int_equal(balance_rebuild(be->pool.balance), 0);
    assert_true(dns_cache_waiter_parked(&u.dnswait));

    /* The query times out on the loop: the waiting request is woken. */
    run_until_woken(f.loop);
    assert_int_equal(woken_calls, 1);
    assert_ptr_equal(woken_arg, &u);
    assert_false(dns_cache_waiter_parked(&u.dnswait));
    assert_false(f.e->inflight);
    assert_int_equal(f.e->state, DNS_CACHE_FAILED);
    /* Picking again: the name failed, nothing left to wait for. */
    assert_int_equal(upstream_pick(&u, NULL, T0 + 10.5), UPSTREAM_NONE);
    assert_false(u.waiting);

    dnsfx_deinit(&f, be);
    rmbackend(be);
}

/*
 * Shutting down while a query is in flight frees it and the entry it holds
 * (no completion will ever come). LeakSanitizer, in the ASan build CI runs,
 * is what fails this test if either is kept.
 */
static void
test_destroy_with_query_in_flight(void **state)
{
    struct member *mm[1];
    struct backend *be = mkbackend(mm, 0, 0, 2);
    struct dnsfx f;

    (void)state;
    dnsfx_init(&f, be, 5.0);
    assert_true(f.e->inflight);
    dnsfx_deinit(&f, be);
    rmbackend(be);
}

/* A cancelled request is not woken. */
static void
test_wait_dns_cancel(void **state)
{
    struct member *mm[1];
    struct backend *be = mkbackend(mm, 0, 0, 2);
    struct dnsfx f;
    struct upstream_req u;

    (void)state;
    dnsfx_init(&f, be, 0.1);
    woken_calls = 0;
    upstream_req_init(&u, be, &test_ul, woken, &u);
    assert_int_equal(upstream_pick(&u, NULL, T0), UPSTREAM_WAIT);
    assert_true(dns_cache_waiter_parked(&u.dnswait));
    upstream_req_cancel(&u);
    assert_false(u.waiting);
    assert_false(dns_cache_waiter_parked(&u.dnswait));
    /* Let the query end; woken must stay silent. */
    double until = ev_time() + 3.0;
    while (f.e->inflight && ev_time() < until) {
        ev_timer poll;
        ev_timer_init(&poll, stop_loop_cb, 0.02, 0);
        ev_timer_start(f.loop, &poll);
        ev_run(f.loop, 0);
        ev_timer_stop(f.loop, &poll);
    }
    assert_false(f.e->inflight);
    /* Let run_pending deliver whatever it queued. */
    for (int i = 0; i < 5; i++) {
        ev_timer poll;
        ev_timer_init(&poll, stop_loop_cb, 0.01, 0);
        ev_timer_start(f.loop, &poll);
        ev_run(f.loop, 0);
        ev_timer_stop(f.loop, &poll);
    }
    assert_int_equal(woken_calls, 0);
    dnsfx_deinit(&f, be);
    rmbackend(be);
}

/* ---------------------------------------------------------------------- */
/* Connect                                                                 */

static struct member *
loopback_member(struct pool *p, int *keep)
{
    struct sockaddr_in sa = {0};
    socklen_t len = sizeof(sa);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(s >= 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
    *keep = s;
    return pool_add_member(p, 0, "127.0.0.1:0", (struct sockaddr *)&sa,
                           sizeof(sa), 1, false);
}

static int
wait_writable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};

    return poll(&pfd, 1, 2000);
}

static void
test_connect_listening(void **state)
{
    struct pool p;
    int ls, fd = -2, acc;
    struct member *m;
    enum upstream_connect rc;

    (void)state;
    pool_init(&p, "b", 0);
    m = loopback_member(&p, &ls);
    assert_non_null(m);
    assert_int_equal(listen(ls, 4), 0);

    rc = upstream_connect(m, &fd);
    assert_true(rc == UPSTREAM_CONNECTED || rc == UPSTREAM_CONNECTING);
    assert_true(fd >= 0);
    if (rc == UPSTREAM_CONNECTING)
        assert_int_equal(wait_writable(fd), 1);
    assert_int_equal(upstream_connect_error(fd), 0);
    /* Non-blocking, as promised. */
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    acc = accept(ls, NULL, NULL);
    assert_true(acc >= 0);
    close(acc);
    close(fd);

    /* The probe flavour: 1 connected or 0 in progress. */
    int pr = upstream_probe_connect(m, &fd);
    assert_true(pr == 0 || pr == 1);
    assert_true(fd >= 0);
    close(fd);

    close(ls);
    pool_deinit(&p);
}

static void
test_connect_refused(void **state)
{
    struct pool p;
    int ls, fd = -2;
    struct member *m;
    enum upstream_connect rc;

    (void)state;
    pool_init(&p, "b", 0);
    /* Bound but not listening: the port stays ours and answers RST. */
    m = loopback_member(&p, &ls);
    assert_non_null(m);

    errno = 0;
    rc = upstream_connect(m, &fd);
    if (rc == UPSTREAM_REFUSED) {
        assert_int_equal(errno, ECONNREFUSED);
        assert_int_equal(fd, -1);
    } else {
        assert_int_equal(rc, UPSTREAM_CONNECTING);
        assert_true(fd >= 0);
        assert_int_equal(wait_writable(fd), 1);
        assert_int_equal(upstream_connect_error(fd), ECONNREFUSED);
        close(fd);
    }
    assert_int_equal(upstream_probe_connect(m, &fd) < 1, true);
    if (fd >= 0)
        close(fd);
    close(ls);
    pool_deinit(&p);
}

static void
test_connect_no_socket(void **state)
{
    struct member m;
    int fd = -2;

    (void)state;
    memset(&m, 0, sizeof(m));
    m.addr.ss_family = 12345; /* no such family */
    m.addrlen = sizeof(struct sockaddr_in);
    assert_int_equal(upstream_connect(&m, &fd), UPSTREAM_NO_SOCKET);
    assert_int_equal(fd, -1);
    assert_int_equal(upstream_probe_connect(&m, &fd), -1);
}

static int
reset_woken(void **state)
{
    (void)state;
    woken_calls = 0;
    woken_arg = NULL;
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_pick_release, reset_woken),
        cmocka_unit_test_setup(test_all_down_none, reset_woken),
        cmocka_unit_test_setup(test_failed_goes_to_tried, reset_woken),
        cmocka_unit_test_setup(test_retries_exhausted, reset_woken),
        cmocka_unit_test_setup(test_reset_clears_tried, reset_woken),
        cmocka_unit_test_setup(test_backup_only_when_no_normal_up, reset_woken),
        cmocka_unit_test_setup(test_wait_first_checks, reset_woken),
        cmocka_unit_test_setup(test_wait_dns, reset_woken),
        cmocka_unit_test_setup(test_wait_dns_cancel, reset_woken),
        cmocka_unit_test(test_destroy_with_query_in_flight),
        cmocka_unit_test(test_connect_listening),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connect_no_socket),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
