/*
 * test_health: hysteresis, passive windows, cap and cool-down with a fake
 * clock (checker without a loop), then real tcp/http probes on a libev loop
 * against listeners on 127.0.0.1, every wait bounded by a deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "health.h"
#include "log.h"
#include "upstream.h"

#define T0 1000.0

/* What the change hook saw. */
struct seen {
    unsigned changes;      /* hook calls */
    unsigned downs;        /* hook calls with up = false */
    bool last_up;          /* up of the last call */
    char last_reason[128]; /* reason of the last call */
    struct member *last_m; /* member of the last call */
    unsigned first_rounds; /* first_round hook calls */
    double rnd;            /* value the rnd hook returns */
    bool detach_on_change; /* hook detaches the member */
};

static void
on_change(void *arg, struct member *m, bool up, const char *reason)
{
    struct seen *s = arg;

    s->changes++;
    if (!up)
        s->downs++;
    s->last_up = up;
    s->last_m = m;
    snprintf(s->last_reason, sizeof(s->last_reason), "%s", reason);
    if (s->detach_on_change)
        health_member_detach(m);
}

static void
on_first_round(void *arg)
{
    struct seen *s = arg;

    s->first_rounds++;
}

static double
fixed_rnd(void *arg)
{
    struct seen *s = arg;

    return s->rnd;
}

static struct health_params
params(enum config_health kind, unsigned rise, unsigned fall)
{
    struct health_params p;

    memset(&p, 0, sizeof(p));
    p.kind = kind;
    snprintf(p.path, sizeof(p.path), "/health/ready");
    p.expect_lo = 200;
    p.expect_hi = 399;
    p.interval = 5;
    p.timeout = 2;
    p.rise = rise;
    p.fall = fall;
    p.window = 10;
    p.error_rate = 0.5;
    p.cooldown = HEALTH_COOLDOWN_BASE;
    return p;
}

static struct health_hooks
hooks(struct seen *s)
{
    struct health_hooks h = {
        .change = on_change,
        .first_round = on_first_round,
        .probe_connect = upstream_probe_connect, /* as in ferry */
        .rnd = fixed_rnd,
        .arg = s,
    };
    return h;
}

static struct member *
add(struct pool *p, uint16_t port)
{
    struct sockaddr_in sa;
    char spec[32];

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    snprintf(spec, sizeof(spec), "api.internal:%u", port);
    return pool_add_member(p, 0, spec, (struct sockaddr *)&sa, sizeof(sa), 1,
                           false);
}

/* Fake-clock fixture: one pool of n members, all attached and checked. */
struct fx {
    struct pool pool;         /* the members */
    struct health_checker *c; /* checker without a loop */
    struct seen seen;         /* hook record */
};

static void
fx_init(struct fx *f, struct health_params p, size_t n, bool first_pass)
{
    struct health_hooks h;

    memset(f, 0, sizeof(*f));
    h = hooks(&f->seen);
    pool_init(&f->pool, "b", 0);
    f->c = health_create(NULL, &p, &h);
    assert_non_null(f->c);
    for (size_t i = 0; i < n; i++) {
        struct member *m = add(&f->pool, (uint16_t)(8000 + i));
        assert_non_null(m);
        assert_int_equal(health_member_attach(f->c, m, NULL, T0), 0);
        if (p.kind != HEALTH_NONE)
            health_member_check_done(m, first_pass,
                                     first_pass ? "ok" : "timeout", 0.001, T0);
    }
    f->seen.changes = 0;
    f->seen.downs = 0;
}

static void
fx_deinit(struct fx *f)
{
    health_destroy(f->c);
    pool_deinit(&f->pool);
}

/* ------------------------------------------------------------------ */
/* First check and hysteresis                                          */

static void
test_first_check_pass(void **state)
{
    struct pool pool;
    struct seen s = {0};
    struct health_params p = params(HEALTH_TCP, 3, 3);
    struct health_hooks h = hooks(&s);
    struct health_checker *c = health_create(NULL, &p, &h);
    struct member *m;

    (void)state;
    pool_init(&pool, "b", 0);
    m = add(&pool, 8080);
    assert_int_equal(health_member_attach(c, m, NULL, T0), 0);
    assert_ptr_not_equal(m->health, NULL);
    assert_false(m->up);
    assert_int_equal(health_first_round_pending(c), 1);

    health_member_check_done(m, true, "ok", 0.002, T0 + 1);
    assert_true(m->up);
    assert_true(m->up_since == T0 + 1);
    assert_int_equal(health_first_round_pending(c), 0);
    assert_int_equal(s.changes, 1);
    assert_true(s.last_up);
    assert_ptr_equal(s.last_m, m);
    assert_string_equal(s.last_reason, "first check passed");
    assert_int_equal(health_member_counters(m)->transitions, 1);
    assert_int_equal(health_member_counters(m)->checks_passed, 1);
    assert_true(health_member_counters(m)->last_duration == 0.002);

    health_destroy(c);
    assert_null(m->health);
    pool_deinit(&pool);
}

static void
test_first_check_fail(void **state)
{
    struct pool pool;
    struct seen s = {0};
    struct health_params p = params(HEALTH_HTTP, 1, 1);
    struct health_hooks h = hooks(&s);
    struct health_checker *c = health_create(NULL, &p, &h);
    struct member *m;
    const struct health_counters *k;

    (void)state;
    pool_init(&pool, "b", 0);
    m = add(&pool, 8080);
    assert_int_equal(health_member_attach(c, m, NULL, T0), 0);
    health_member_check_done(m, false, "connection refused", 0.001, T0);
    assert_false(m->up);
    /* Never up, so no change to report, but the round is complete. */
    assert_int_equal(s.changes, 0);
    assert_int_equal(health_first_round_pending(c), 0);
    k = health_member_counters(m);
    assert_string_equal(k->reason, "first check failed: connection refused");
    assert_string_equal(k->last_check, "connection refused");
    assert_int_equal(k->checks_failed, 1);
    assert_int_equal(k->transitions, 0);
    assert_false(k->last_pass);

    /* rise = 1: the next pass brings it up. */
    health_member_check_done(m, true, "status 200", 0.001, T0 + 5);
    assert_true(m->up);
    assert_string_equal(s.last_reason, "1 check passed");

    health_destroy(c);
    pool_deinit(&pool);
}

static void
test_none_is_up_at_once(void **state)
{
    struct fx f;
    struct member *m;

    (void)state;
    fx_init(&f, params(HEALTH_NONE, 3, 3), 2, true);
    m = f.pool.members[0];
    assert_true(m->up);
    assert_true(m->up_since == T0);
    assert_int_equal(health_first_round_pending(f.c), 0);
    assert_string_equal(health_member_counters(m)->reason, "health check none");
    fx_deinit(&f);
}

/* Written-out sequences: 'P' pass, 'F' fail; want is member->up after each
 * check as '1'/'0'. */
struct seq_case {
    unsigned rise;      /* params.rise */
    unsigned fall;      /* params.fall */
    const char *checks; /* results, first one included */
    const char *want;   /* up after each result */
};

static const struct seq_case seq_cases[] = {
    {1, 1, "PFPFFPP", "1010011"},     {3, 3, "PFFPFFFPPFPPP", "1111110000001"},
    {2, 3, "FPPFFFPFP", "001110000"}, {3, 2, "PFFPPPPFP", "110001111"},
    {2, 2, "FPFPPFPFF", "000011110"}, {3, 1, "PPFPPFPPP", "110000001"},
    {1, 3, "FPFFPFFF", "01111110"},
};

static void
test_hysteresis_sequences(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(seq_cases) / sizeof(seq_cases[0]); k++) {
        const struct seq_case *sc = &seq_cases[k];
        struct fx f;
        struct member *m;

        fx_init(&f, params(HEALTH_TCP, sc->rise, sc->fall), 0, true);
        m = add(&f.pool, 9000);
        assert_int_equal(health_member_attach(f.c, m, NULL, T0), 0);
        for (size_t i = 0; sc->checks[i] != '\0'; i++) {
            bool pass = sc->checks[i] == 'P';
            health_member_check_done(m, pass, pass ? "ok" : "timeout", 0,
                                     T0 + (double)i);
            if (m->up != (sc->want[i] == '1'))
                fail_msg("case %zu (rise %u fall %u %s) step %zu: up=%d", k,
                         sc->rise, sc->fall, sc->checks, i, m->up);
        }
        fx_deinit(&f);
    }
}

/*
 * Every pattern of 10 results for rise, fall in 1..3 against a model that
 * counts runs: after the first result, the state flips exactly when the
 * run of opposite results reaches the threshold.
 */
static void
test_hysteresis_exhaustive(void **state)
{
    (void)state;
    for (unsigned rise = 1; rise <= 3; rise++) {
        for (unsigned fall = 1; fall <= 3; fall++) {
            for (unsigned bits = 0; bits < 1024; bits++) {
                struct fx f;
                struct member *m;
                bool model = false;
                unsigned run = 0, changes = 0;

                fx_init(&f, params(HEALTH_TCP, rise, fall), 0, true);
                m = add(&f.pool, 9000);
                health_member_attach(f.c, m, NULL, T0);
                for (unsigned i = 0; i < 10; i++) {
                    bool pass = (bits >> i) & 1;
                    if (i == 0) {
                        model = pass;
                        changes += pass;
                    } else if (pass != model) {
                        if (++run == (model ? fall : rise)) {
                            model = pass;
                            run = 0;
                            changes++;
                        }
                    } else {
                        run = 0;
                    }
                    health_member_check_done(m, pass, NULL, 0, T0 + i);
                    assert_int_equal(m->up, model);
                }
                assert_int_equal(f.seen.changes, changes);
                assert_int_equal(health_member_counters(m)->transitions,
                                 changes);
                fx_deinit(&f);
            }
        }
    }
}

static void
test_reasons_and_up_since(void **state)
{
    struct fx f;
    struct member *m;

    (void)state;
    fx_init(&f, params(HEALTH_TCP, 2, 3), 1, true);
    m = f.pool.members[0];
    assert_true(m->up_since == T0);
    health_member_check_done(m, false, "timeout", 0, T0 + 5);
    health_member_check_done(m, false, "timeout", 0, T0 + 10);
    assert_true(m->up);
    health_member_check_done(m, false, "connection refused", 0, T0 + 15);
    assert_false(m->up);
    assert_string_equal(f.seen.last_reason,
                        "3 checks failed: connection refused");
    assert_string_equal(health_member_counters(m)->reason,
                        "3 checks failed: connection refused");
    assert_true(health_member_counters(m)->last_change == T0 + 15);
    health_member_check_done(m, true, NULL, 0, T0 + 20);
    health_member_check_done(m, true, NULL, 0, T0 + 25);
    assert_true(m->up);
    assert_true(m->up_since == T0 + 25);
    assert_string_equal(f.seen.last_reason, "2 checks passed");
    assert_int_equal(health_member_counters(m)->checks_passed, 3);
    assert_int_equal(health_member_counters(m)->checks_failed, 3);
    assert_int_equal(health_member_counters(m)->transitions, 3);

    /* fall = 1 says "1 check", singular. */
    fx_deinit(&f);
    fx_init(&f, params(HEALTH_TCP, 1, 1), 1, true);
    health_member_check_done(f.pool.members[0], false, "timeout", 0, T0 + 1);
    assert_string_equal(f.seen.last_reason, "1 check failed: timeout");
    fx_deinit(&f);
}

/* ------------------------------------------------------------------ */
/* Passive window                                                      */

static void
feed(struct member *m, const char *outcomes, double now)
{
    for (size_t i = 0; outcomes[i] != '\0'; i++) {
        enum balance_outcome o = BALANCE_OK;
        switch (outcomes[i]) {
        case 'c':
            o = BALANCE_CONNECT_ERROR;
            break;
        case 't':
            o = BALANCE_TIMEOUT;
            break;
        case '5':
            o = BALANCE_SERVER_ERROR;
            break;
        case 'a':
            o = BALANCE_ABORTED;
            break;
        default:
            break;
        }
        health_passive_outcome(m, o, now);
    }
}

static void
test_passive_allowed(void **state)
{
    (void)state;
    assert_int_equal(health_passive_allowed(10, 0.5), 5);
    assert_int_equal(health_passive_allowed(10, 0.7), 7);
    assert_int_equal(health_passive_allowed(10, 0.3), 3);
    assert_int_equal(health_passive_allowed(10, 0.35), 3);
    assert_int_equal(health_passive_allowed(10, 0.0), 0);
    assert_int_equal(health_passive_allowed(10, 1.0), 10);
    assert_int_equal(health_passive_allowed(3, 0.5), 1);
    assert_int_equal(health_passive_allowed(100, 0.29), 29);
    assert_int_equal(health_passive_allowed(1000, 0.001), 1);
}

static void
test_passive_not_full(void **state)
{
    struct fx f;
    struct member *m;

    (void)state;
    fx_init(&f, params(HEALTH_TCP, 3, 3), 4, true);
    m = f.pool.members[0];
    /* Nine errors in a window of ten: not full, no verdict. Aborted
     * requests are no outcome and do not fill it. */
    feed(m, "ccccctttt", T0);
    feed(m, "aaaaaaaaaa", T0);
    assert_true(m->up);
    assert_int_equal(f.seen.changes, 0);
    feed(m, "5", T0 + 1);
    assert_false(m->up);
    assert_string_equal(f.seen.last_reason, "passive: 10/10 errors");
    fx_deinit(&f);
}

static void
test_passive_at_rate_and_above(void **state)
{
    struct fx f;
    struct member *m;

    (void)state;
    fx_init(&f, params(HEALTH_HTTP, 3, 3), 4, true);
    m = f.pool.members[0];
    /* Exactly 5/10 at 50%: never out, however long it goes on. */
    for (int i = 0; i < 20; i++)
        feed(m, "5.5.5.5.5.", T0);
    assert_true(m->up);
    assert_int_equal(health_member_counters(m)->passive_ejections, 0);
    /* The window slides: this error replaces the oldest, also an error
     * (5/10); the next one replaces an OK (6/10). */
    feed(m, "5", T0 + 2);
    assert_true(m->up);
    feed(m, "5", T0 + 2);
    assert_false(m->up);
    assert_string_equal(f.seen.last_reason, "passive: 6/10 errors");
    assert_int_equal(health_member_counters(m)->passive_ejections, 1);
    assert_int_equal(f.seen.downs, 1);
    fx_deinit(&f);

    /* 70%: 7/10 stays, 8/10 goes. */
    {
        struct health_params p = params(HEALTH_HTTP, 3, 3);
        p.error_rate = 0.7;
        fx_init(&f, p, 4, true);
        m = f.pool.members[1];
        feed(m, "..........", T0);
        /* Each error pushes out an OK: k errors make k/10. */
        for (int k = 1; k <= 7; k++) {
            feed(m, "t", T0);
            assert_true(m->up);
        }
        feed(m, "5", T0);
        assert_false(m->up);
        assert_string_equal(f.seen.last_reason, "passive: 8/10 errors");
        fx_deinit(&f);
    }
}

static void
test_passive_ok_and_down_ignored(void **state)
{
    struct fx f;
    struct member *m;

    (void)state;
    fx_init(&f, params(HEALTH_TCP, 1, 1), 4, true);
    m = f.pool.members[0];
    feed(m, "..........", T0);
    feed(m, "ccccc", T0);
    assert_true(m->up);
    /* Down through an active check: the window is cleared, and outcomes
     * of connections still open are ignored while it is out. */
    health_member_check_done(m, false, "timeout", 0, T0 + 1);
    assert_false(m->up);
    feed(m, "cccccccccccccccccccc", T0 + 1);
    assert_int_equal(health_member_counters(m)->passive_ejections, 0);
    health_member_check_done(m, true, "ok", 0, T0 + 2);
    assert_true(m->up);
    /* Fresh window: five more errors alone do not fill it. */
    feed(m, "ccccc", T0 + 2);
    assert_true(m->up);
    feed(m, ".....", T0 + 2);
    assert_true(m->up);
    fx_deinit(&f);
}

static void
test_passive_window_off(void **state)
{
    struct health_params p = params(HEALTH_TCP, 1, 1);
    struct fx f;

    (void)state;
    p.window = 0;
    fx_init(&f, p, 2, true);
    feed(f.pool.members[0], "cccccccccccccccccccc", T0);
    assert_true(f.pool.members[0]->up);
    fx_deinit(&f);
}

static void
test_passive_cap(void **state)
{
    struct fx f;
    size_t sizes[] = {1, 2, 3, 4, 5, 8};

    (void)state;
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k], out = 0;
        uint64_t capped = 0;

        fx_init(&f, params(HEALTH_TCP, 2, 2), n, true);
        for (size_t i = 0; i < n; i++)
            feed(f.pool.members[i], "cccccccccc", T0);
        for (size_t i = 0; i < n; i++) {
            out += !f.pool.members[i]->up;
            capped += health_member_counters(f.pool.members[i])->passive_capped;
        }
        assert_int_equal(out, n / 2);
        assert_true(capped >= n - n / 2);
        fx_deinit(&f);
    }

    /* When one comes back (active passes), the next bad one goes. */
    fx_init(&f, params(HEALTH_TCP, 2, 2), 2, true);
    feed(f.pool.members[0], "cccccccccc", T0);
    feed(f.pool.members[1], "cccccccccc", T0);
    assert_false(f.pool.members[0]->up);
    assert_true(f.pool.members[1]->up);
    health_member_check_done(f.pool.members[0], true, "ok", 0, T0 + 5);
    assert_false(f.pool.members[0]->up);
    health_member_check_done(f.pool.members[0], true, "ok", 0, T0 + 10);
    assert_true(f.pool.members[0]->up);
    assert_string_equal(f.seen.last_reason, "2 checks passed");
    /* Member 1 kept its full bad window while capped: one more error. */
    feed(f.pool.members[1], "c", T0 + 11);
    assert_false(f.pool.members[1]->up);
    fx_deinit(&f);

    /* Active checks have no cap: every member can go down. */
    fx_init(&f, params(HEALTH_TCP, 2, 1), 4, true);
    for (size_t i = 0; i < 4; i++)
        health_member_check_done(f.pool.members[i], false, "timeout", 0,
                                 T0 + 1);
    for (size_t i = 0; i < 4; i++)
        assert_false(f.pool.members[i]->up);
    fx_deinit(&f);
}

static void
test_passive_back_through_rise(void **state)
{
    struct fx f;
    struct member *m;

    (void)state;
    fx_init(&f, params(HEALTH_TCP, 3, 3), 2, true);
    m = f.pool.members[0];
    feed(m, "tttttttttt", T0);
    assert_false(m->up);
    /* No cool-down with active checks: only `rise` passes count. */
    assert_true(health_member_cooldown_until(m) == 0);
    health_member_tick(m, T0 + 3600);
    assert_false(m->up);
    health_member_check_done(m, true, "ok", 0, T0 + 5);
    health_member_check_done(m, false, "timeout", 0, T0 + 10);
    health_member_check_done(m, true, "ok", 0, T0 + 15);
    health_member_check_done(m, true, "ok", 0, T0 + 20);
    assert_false(m->up);
    health_member_check_done(m, true, "ok", 0, T0 + 25);
    assert_true(m->up);
    assert_true(m->up_since == T0 + 25);
    assert_string_equal(f.seen.last_reason, "3 checks passed");
    fx_deinit(&f);
}

/* ------------------------------------------------------------------ */
/* Cool-down (health_check = none)                                     */

static void
test_cooldown_numbers(void **state)
{
    (void)state;
    assert_true(HEALTH_COOLDOWN_BASE == 10);
    assert_true(health_cooldown(10, 0) == 10);
    assert_true(health_cooldown(10, 1) == 20);
    assert_true(health_cooldown(10, 2) == 40);
    assert_true(health_cooldown(10, 3) == 80);
    assert_true(health_cooldown(10, 4) == 160);
    assert_true(health_cooldown(10, 5) == 300);
    assert_true(health_cooldown(10, 6) == 300);
    assert_true(health_cooldown(10, 1000) == 300);
    assert_true(health_cooldown(0.05, 2) == 0.2);
}

static void
test_cooldown_growth_and_reset(void **state)
{
    struct fx f;
    struct member *m;
    double now = T0;
    const double want[] = {10, 20, 40, 80, 160, 300, 300};

    (void)state;
    fx_init(&f, params(HEALTH_NONE, 3, 3), 2, true);
    m = f.pool.members[0];
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        feed(m, "cccccccccc", now);
        assert_false(m->up);
        assert_true(health_member_cooldown_until(m) == now + want[i]);
        health_member_tick(m, now + want[i] - 0.001);
        assert_false(m->up);
        now += want[i];
        health_member_tick(m, now);
        assert_true(m->up);
        assert_true(m->up_since == now);
        assert_string_equal(f.seen.last_reason, "cool-down elapsed");
        now += 60; /* back, but not for a stable period */
    }
    /* Up for five minutes: the next ejection starts over at 10 s. */
    now += HEALTH_COOLDOWN_STABLE;
    feed(m, "cccccccccc", now);
    assert_true(health_member_cooldown_until(m) == now + 10);
    assert_int_equal(health_member_counters(m)->passive_ejections, 8);
    fx_deinit(&f);
}

static void
test_jitter(void **state)
{
    (void)state;
    assert_true(health_jitter(5, 0) == 4.75);
    assert_true(health_jitter(5, 0.5) == 5);
    assert_true(health_jitter(5, 0.999999) < 5.25);
    assert_true(health_jitter(5, 0.999999) > 5.24);
    assert_true(health_jitter(10, -1) == 9.5);
    for (int i = 0; i <= 100; i++) {
        double d = health_jitter(2, i / 100.0);
        assert_true(d >= 1.9 && d <= 2.1);
    }
}

static void
test_parse_status(void **state)
{
    unsigned code = 0;

    (void)state;
    assert_int_equal(health_parse_status("HTTP/1.1 200 OK\r\n", 17, &code), 1);
    assert_int_equal(code, 200);
    assert_int_equal(health_parse_status("HTTP/1.0 503\r\n", 14, &code), 1);
    assert_int_equal(code, 503);
    assert_int_equal(health_parse_status("HTTP/1.1 204 ", 13, &code), 1);
    assert_int_equal(code, 204);
    /* Incomplete prefixes want more. */
    assert_int_equal(health_parse_status("", 0, &code), 0);
    assert_int_equal(health_parse_status("HTT", 3, &code), 0);
    assert_int_equal(health_parse_status("HTTP/1.1 20", 11, &code), 0);
    assert_int_equal(health_parse_status("HTTP/1.1 200", 12, &code), 0);
    /* Not HTTP. */
    assert_int_equal(health_parse_status("SSH-2.0-x\r\n", 11, &code), -1);
    assert_int_equal(health_parse_status("HTTP/2 200 ", 11, &code), -1);
    assert_int_equal(health_parse_status("HTTP/1.1 2x0 ", 13, &code), -1);
    assert_int_equal(health_parse_status("HTTP/1.1 2000", 13, &code), -1);
    assert_int_equal(health_parse_status("http/1.1 200 ", 13, &code), -1);
}

/* ------------------------------------------------------------------ */
/* Reload, move, detach                                                */

static void
test_update_params(void **state)
{
    struct fx f;
    struct health_params p = params(HEALTH_TCP, 2, 2);
    struct member *m0, *m1, *m2;

    (void)state;
    fx_init(&f, p, 4, true);
    m0 = f.pool.members[0];
    m1 = f.pool.members[1];
    m2 = f.pool.members[2];
    health_member_check_done(m1, false, "timeout", 0, T0 + 1);
    health_member_check_done(m1, false, "timeout", 0, T0 + 2);
    assert_false(m1->up);
    feed(m2, "cccccccccc", T0 + 2);
    assert_false(m2->up);
    feed(m0, "ccccc", T0 + 2);

    /* Same kind, new window size: state kept, windows cleared. */
    p.window = 6;
    assert_int_equal(health_update_params(f.c, &p, T0 + 3), 0);
    assert_true(m0->up);
    assert_false(m1->up);
    feed(m0, "ccccc", T0 + 3);
    assert_true(m0->up); /* 5 of a 6 window: not full yet */
    feed(m0, "c", T0 + 3);
    assert_false(m0->up);
    assert_string_equal(f.seen.last_reason, "passive: 6/6 errors");

    /* To none: members down by checks come up; passive ones cool down. */
    p.kind = HEALTH_NONE;
    f.seen.changes = 0;
    assert_int_equal(health_update_params(f.c, &p, T0 + 4), 0);
    assert_true(m1->up);
    assert_string_equal(health_member_counters(m1)->reason,
                        "health check none");
    assert_false(m0->up);
    assert_false(m2->up);
    assert_true(health_member_cooldown_until(m2) == T0 + 4 + 10);
    health_member_tick(m2, T0 + 14);
    assert_true(m2->up);
    fx_deinit(&f);
}

static void
test_move_keeps_state(void **state)
{
    struct fx f;
    struct pool pool2;
    struct seen s2 = {0};
    struct health_params p = params(HEALTH_TCP, 3, 3);
    struct health_hooks h = hooks(&s2);
    struct health_checker *c2;
    struct member *old, *nw;

    (void)state;
    fx_init(&f, p, 2, true);
    old = f.pool.members[0];
    health_member_check_done(old, false, "timeout", 0, T0 + 1);
    health_member_check_done(old, false, "timeout", 0, T0 + 2);

    pool_init(&pool2, "b", 0);
    c2 = health_create(NULL, &p, &h);
    nw = add(&pool2, 8000);
    assert_int_equal(health_member_move(c2, old, nw), 0);
    assert_null(old->health);
    assert_non_null(nw->health);
    assert_true(nw->up);
    assert_true(nw->up_since == T0);
    /* Two failures carried over: the third takes it out. */
    health_member_check_done(nw, false, "timeout", 0, T0 + 3);
    assert_false(nw->up);
    assert_int_equal(s2.changes, 1);
    assert_int_equal(health_member_counters(nw)->checks_failed, 3);

    health_destroy(c2);
    pool_deinit(&pool2);
    fx_deinit(&f);
}

static void
test_detach_pending(void **state)
{
    struct pool pool;
    struct seen s = {0};
    struct health_params p = params(HEALTH_TCP, 3, 3);
    struct health_hooks h = hooks(&s);
    struct health_checker *c = health_create(NULL, &p, &h);
    struct member *a, *b;

    (void)state;
    pool_init(&pool, "b", 0);
    a = add(&pool, 1);
    b = add(&pool, 2);
    health_member_attach(c, a, NULL, T0);
    health_member_attach(c, b, NULL, T0);
    assert_int_equal(health_first_round_pending(c), 2);
    health_member_detach(a);
    assert_null(a->health);
    assert_int_equal(health_first_round_pending(c), 1);
    health_member_detach(a); /* twice is harmless */
    /* A hook that detaches the member it is told about. */
    s.detach_on_change = true;
    health_member_check_done(b, true, "ok", 0, T0);
    assert_true(b->up);
    assert_null(b->health);
    assert_int_equal(health_first_round_pending(c), 0);
    health_destroy(c);
    pool_deinit(&pool);
}

/* ------------------------------------------------------------------ */
/* Real probes on a libev loop                                         */

enum srv_mode {
    SRV_200,     /* answers 200 */
    SRV_503,     /* answers 503 */
    SRV_NEVER,   /* reads, never answers */
    SRV_GARBAGE, /* answers something not HTTP */
};

#define SRV_CLIENTS 16

/* A tiny HTTP responder on 127.0.0.1 driven by the same loop. */
struct srv {
    struct ev_loop *loop;        /* loop it runs on */
    int lfd;                     /* listening socket */
    uint16_t port;               /* its port */
    enum srv_mode mode;          /* how to answer */
    ev_io accept_io;             /* listening socket readiness */
    ev_io cio[SRV_CLIENTS];      /* client sockets */
    int cfd[SRV_CLIENTS];        /* client fds, -1 when free */
    char creq[SRV_CLIENTS][512]; /* request bytes so far */
    size_t clen[SRV_CLIENTS];    /* their length */
    char last_req[512];          /* last complete request */
    char all_req[2048];          /* every request, concatenated */
    unsigned accepted;           /* connections accepted */
    unsigned eofs;               /* clients that closed on us */
};

static int
listen_socket(uint16_t *port, int backlog)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void
srv_client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct srv *s = w->data;
    int i = (int)(w - s->cio);
    ssize_t n;

    (void)revents;
    n = read(s->cfd[i], s->creq[i] + s->clen[i],
             sizeof(s->creq[i]) - 1 - s->clen[i]);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        s->eofs++;
        ev_io_stop(loop, w);
        close(s->cfd[i]);
        s->cfd[i] = -1;
        return;
    }
    s->clen[i] += (size_t)n;
    s->creq[i][s->clen[i]] = '\0';
    if (strstr(s->creq[i], "\r\n\r\n") == NULL)
        return;
    snprintf(s->last_req, sizeof(s->last_req), "%s", s->creq[i]);
    {
        size_t have = strlen(s->all_req);
        snprintf(s->all_req + have, sizeof(s->all_req) - have, "%s",
                 s->last_req);
    }
    s->clen[i] = 0;
    {
        const char *resp = NULL;
        switch (s->mode) {
        case SRV_200:
            resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            break;
        case SRV_503:
            resp = "HTTP/1.1 503 Service Unavailable\r\n"
                   "Content-Length: 0\r\n\r\n";
            break;
        case SRV_GARBAGE:
            resp = "SSH-2.0-OpenSSH_9.2\r\n";
            break;
        case SRV_NEVER:
            return;
        }
        assert_true(write(s->cfd[i], resp, strlen(resp)) > 0);
    }
    ev_io_stop(loop, w);
    close(s->cfd[i]);
    s->cfd[i] = -1;
}

static void
srv_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct srv *s = w->data;
    int fd, i;

    (void)revents;
    while ((fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
           0) {
        for (i = 0; i < SRV_CLIENTS && s->cfd[i] >= 0; i++)
            ;
        assert_true(i < SRV_CLIENTS);
        s->accepted++;
        s->cfd[i] = fd;
        s->clen[i] = 0;
        ev_io_init(&s->cio[i], srv_client_cb, fd, EV_READ);
        s->cio[i].data = s;
        ev_io_start(loop, &s->cio[i]);
    }
}

static void
srv_start(struct srv *s, struct ev_loop *loop, enum srv_mode mode)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->mode = mode;
    s->lfd = listen_socket(&s->port, 64);
    for (int i = 0; i < SRV_CLIENTS; i++)
        s->cfd[i] = -1;
    ev_io_init(&s->accept_io, srv_accept_cb, s->lfd, EV_READ);
    s->accept_io.data = s;
    ev_io_start(loop, &s->accept_io);
}

static void
srv_stop(struct srv *s)
{
    ev_io_stop(s->loop, &s->accept_io);
    close(s->lfd);
    for (int i = 0; i < SRV_CLIENTS; i++) {
        if (s->cfd[i] >= 0) {
            ev_io_stop(s->loop, &s->cio[i]);
            close(s->cfd[i]);
        }
    }
}

/* A port on 127.0.0.1 that nothing listens on. */
static uint16_t
closed_port(void)
{
    uint16_t port;
    int fd = listen_socket(&port, 1);

    close(fd);
    return port;
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Runs the loop until *flag or the deadline; returns whether *flag held. */
static bool
run_until(struct ev_loop *loop, bool (*pred)(void *), void *arg, double seconds)
{
    ev_timer tick;
    double end = ev_time() + seconds;
    bool ok;

    ev_timer_init(&tick, tick_cb, 0.01, 0.01);
    ev_timer_start(loop, &tick);
    while (!(ok = pred(arg)) && ev_time() < end)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &tick);
    return ok;
}

static bool
first_round_seen(void *arg)
{
    return ((struct seen *)arg)->first_rounds > 0;
}

/* Loop fixture: pool, checker on a fresh loop. */
struct lfx {
    struct ev_loop *loop;     /* private loop */
    struct pool pool;         /* members probed */
    struct health_checker *c; /* the checker */
    struct seen seen;         /* hook record */
};

static void
lfx_init(struct lfx *f, struct health_params p)
{
    struct health_hooks h;

    memset(f, 0, sizeof(*f));
    f->seen.rnd = 0.5;
    h = hooks(&f->seen);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    pool_init(&f->pool, "b", 0);
    f->c = health_create(f->loop, &p, &h);
    assert_non_null(f->c);
}

static void
lfx_deinit(struct lfx *f)
{
    health_destroy(f->c);
    pool_deinit(&f->pool);
    ev_loop_destroy(f->loop);
}

static struct member *
lfx_attach(struct lfx *f, uint16_t port)
{
    struct member *m = add(&f->pool, port);

    assert_non_null(m);
    assert_int_equal(health_member_attach(f->c, m, NULL, ev_now(f->loop)), 0);
    return m;
}

static void
test_io_tcp_pass_and_refused(void **state)
{
    struct lfx f;
    struct health_params p = params(HEALTH_TCP, 3, 3);
    uint16_t port;
    int lfd;
    struct member *good, *bad;

    (void)state;
    p.interval = 60;
    p.timeout = 1;
    lfx_init(&f, p);
    lfd = listen_socket(&port, 16); /* the kernel completes handshakes */
    good = lfx_attach(&f, port);
    bad = lfx_attach(&f, closed_port());
    /* Nothing runs inside attach: the first check needs the loop. */
    assert_false(good->up);
    assert_int_equal(health_first_round_pending(f.c), 2);

    assert_true(run_until(f.loop, first_round_seen, &f.seen, 5));
    assert_int_equal(f.seen.first_rounds, 1);
    assert_int_equal(health_first_round_pending(f.c), 0);
    assert_true(good->up);
    assert_string_equal(health_member_counters(good)->last_check, "ok");
    assert_int_equal(health_member_counters(good)->checks_passed, 1);
    assert_false(bad->up);
    assert_string_equal(health_member_counters(bad)->last_check,
                        "connection refused");
    assert_string_equal(health_member_counters(bad)->reason,
                        "first check failed: connection refused");
    assert_true(health_member_counters(bad)->last_duration < 1);
    close(lfd);
    lfx_deinit(&f);
}

static void
test_io_tcp_timeout(void **state)
{
    struct lfx f;
    struct health_params p = params(HEALTH_TCP, 3, 3);
    uint16_t port;
    int lfd, filler;
    struct sockaddr_in sa;
    struct member *m;
    double t;

    (void)state;
    p.interval = 60;
    p.timeout = 0.2;
    lfx_init(&f, p);
    /* backlog 0 holds one finished handshake; with it taken, Linux drops
     * further SYNs, so the probe's connect hangs until its timeout. */
    lfd = listen_socket(&port, 0);
    filler = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(filler, (struct sockaddr *)&sa, sizeof(sa)), 0);
    {
        /* A second one fills the queue for good (backlog + 1). */
        int f2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(f2, (struct sockaddr *)&sa, sizeof(sa));
        t = ev_time();
        m = lfx_attach(&f, port);
        assert_true(run_until(f.loop, first_round_seen, &f.seen, 5));
        close(f2);
    }
    t = ev_time() - t;
    assert_false(m->up);
    assert_string_equal(health_member_counters(m)->last_check, "timeout");
    assert_true(t >= 0.19 && t < 1.5);
    close(filler);
    close(lfd);
    lfx_deinit(&f);
}

static void
test_io_http_200(void **state)
{
    struct lfx f;
    struct srv s;
    struct health_params p = params(HEALTH_HTTP, 3, 3);
    struct member *m;

    (void)state;
    p.interval = 60;
    p.timeout = 1;
    lfx_init(&f, p);
    srv_start(&s, f.loop, SRV_200);
    m = lfx_attach(&f, s.port);
    assert_true(run_until(f.loop, first_round_seen, &f.seen, 5));
    assert_true(m->up);
    assert_string_equal(health_member_counters(m)->last_check, "status 200");
    assert_non_null(strstr(s.last_req, "GET /health/ready HTTP/1.1\r\n"));
    assert_ptr_equal(strstr(s.last_req, "GET "), s.last_req);
    assert_non_null(strstr(s.last_req, "\r\nHost: api.internal\r\n"));
    assert_non_null(strstr(s.last_req, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(s.last_req, "\r\nUser-Agent: ferry-health\r\n"));
    srv_stop(&s);
    lfx_deinit(&f);

    /* Host from an IPv6 server line keeps its brackets; an explicit
     * host_header wins. */
    lfx_init(&f, p);
    srv_start(&s, f.loop, SRV_200);
    {
        struct sockaddr_in sa;
        struct member *v6, *ov;
        char spec[32];

        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons(s.port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        snprintf(spec, sizeof(spec), "[::1]:%u", s.port);
        v6 = pool_add_member(&f.pool, 0, spec, (struct sockaddr *)&sa,
                             sizeof(sa), 1, false);
        ov = pool_add_member(&f.pool, 1, "x:1", (struct sockaddr *)&sa,
                             sizeof(sa), 1, false);
        assert_int_equal(health_member_attach(f.c, v6, NULL, 0), 0);
        assert_int_equal(health_member_attach(f.c, ov, "override.test", 0), 0);
        assert_true(run_until(f.loop, first_round_seen, &f.seen, 5));
        assert_true(v6->up && ov->up);
    }
    assert_non_null(strstr(s.all_req, "\r\nHost: [::1]\r\n"));
    assert_non_null(strstr(s.all_req, "\r\nHost: override.test\r\n"));
    srv_stop(&s);
    lfx_deinit(&f);
}

static void
test_io_http_503_and_garbage(void **state)
{
    struct lfx f;
    struct srv s503, sbad;
    struct health_params p = params(HEALTH_HTTP, 3, 3);
    struct member *a, *b;

    (void)state;
    p.interval = 60;
    p.timeout = 1;
    lfx_init(&f, p);
    srv_start(&s503, f.loop, SRV_503);
    srv_start(&sbad, f.loop, SRV_GARBAGE);
    a = lfx_attach(&f, s503.port);
    b = lfx_attach(&f, sbad.port);
    assert_true(run_until(f.loop, first_round_seen, &f.seen, 5));
    assert_false(a->up);
    assert_string_equal(health_member_counters(a)->last_check, "status 503");
    assert_false(b->up);
    assert_string_equal(health_member_counters(b)->last_check, "bad response");
    srv_stop(&s503);
    srv_stop(&sbad);
    lfx_deinit(&f);

    /* health_expect 500-503 turns the same 503 into a pass. */
    p.expect_lo = 500;
    p.expect_hi = 503;
    lfx_init(&f, p);
    srv_start(&s503, f.loop, SRV_503);
    a = lfx_attach(&f, s503.port);
    assert_true(run_until(f.loop, first_round_seen, &f.seen, 5));
    assert_true(a->up);
    srv_stop(&s503);
    lfx_deinit(&f);
}

static void
test_io_concurrent_timeouts(void **state)
{
    struct lfx f;
    struct srv s;
    struct health_params p = params(HEALTH_HTTP, 3, 3);
    struct member *m[6];
    double t;

    (void)state;
    p.interval = 60;
    p.timeout = 0.3;
    lfx_init(&f, p);
    srv_start(&s, f.loop, SRV_NEVER);
    t = ev_time();
    for (int i = 0; i < 6; i++)
        m[i] = lfx_attach(&f, s.port);
    assert_true(run_until(f.loop, first_round_seen, &f.seen, 5));
    t = ev_time() - t;
    /* Six 0.3 s timeouts side by side, not one after another (1.8 s). */
    assert_true(t >= 0.29);
    assert_true(t < 0.9);
    assert_int_equal(s.accepted, 6);
    for (int i = 0; i < 6; i++) {
        const struct health_counters *k = health_member_counters(m[i]);
        assert_false(m[i]->up);
        assert_string_equal(k->last_check, "timeout");
        assert_true(k->last_duration >= 0.29 && k->last_duration < 0.9);
    }
    srv_stop(&s);
    lfx_deinit(&f);
}

struct flip {
    struct seen *seen; /* hook record */
    unsigned want;     /* changes to wait for */
};

static bool
changes_reached(void *arg)
{
    struct flip *fl = arg;

    return fl->seen->changes >= fl->want;
}

static void
test_io_hysteresis_live(void **state)
{
    struct lfx f;
    struct srv s;
    struct health_params p = params(HEALTH_HTTP, 2, 2);
    struct member *m;
    struct flip fl;
    const struct health_counters *k;

    (void)state;
    p.interval = 0.03;
    p.timeout = 0.5;
    lfx_init(&f, p);
    srv_start(&s, f.loop, SRV_200);
    m = lfx_attach(&f, s.port);
    fl.seen = &f.seen;
    fl.want = 1;
    assert_true(run_until(f.loop, changes_reached, &fl, 5));
    assert_true(m->up);

    s.mode = SRV_503;
    fl.want = 2;
    assert_true(run_until(f.loop, changes_reached, &fl, 5));
    assert_false(m->up);
    assert_string_equal(f.seen.last_reason, "2 checks failed: status 503");

    s.mode = SRV_200;
    fl.want = 3;
    assert_true(run_until(f.loop, changes_reached, &fl, 5));
    assert_true(m->up);
    assert_string_equal(f.seen.last_reason, "2 checks passed");
    k = health_member_counters(m);
    assert_int_equal(k->checks_failed, 2);
    assert_true(k->checks_passed >= 3);
    srv_stop(&s);
    lfx_deinit(&f);
}

static bool
srv_accepted(void *arg)
{
    return ((struct srv *)arg)->accepted > 0;
}

static bool
srv_eof(void *arg)
{
    return ((struct srv *)arg)->eofs > 0;
}

static bool
never(void *arg)
{
    (void)arg;
    return false;
}

static void
test_io_detach_in_flight(void **state)
{
    struct lfx f;
    struct srv s;
    struct health_params p = params(HEALTH_HTTP, 3, 3);
    struct member *m;

    (void)state;
    p.interval = 60;
    p.timeout = 0.5;
    lfx_init(&f, p);
    srv_start(&s, f.loop, SRV_NEVER);
    m = lfx_attach(&f, s.port);
    assert_true(run_until(f.loop, srv_accepted, &s, 5));
    /* Let the request arrive so the probe is waiting on the response. */
    run_until(f.loop, srv_eof, &s, 0.05);
    health_member_detach(m);
    assert_null(m->health);
    assert_true(run_until(f.loop, srv_eof, &s, 5));
    /* The timeout would have fired by now had its timer survived. */
    assert_false(run_until(f.loop, never, NULL, 0.6));
    assert_int_equal(f.seen.changes, 0);
    assert_false(m->up);
    srv_stop(&s);
    lfx_deinit(&f);
}

static bool
member_up(void *arg)
{
    return ((struct member *)arg)->up;
}

static void
test_io_none_cooldown_timer(void **state)
{
    struct lfx f;
    struct health_params p = params(HEALTH_NONE, 3, 3);
    struct member *a, *b;
    double t;

    (void)state;
    p.cooldown = 0.1;
    lfx_init(&f, p);
    a = lfx_attach(&f, 1);
    b = lfx_attach(&f, 2);
    assert_true(a->up && b->up);
    assert_int_equal(health_first_round_pending(f.c), 0);
    ev_now_update(f.loop);
    t = ev_now(f.loop);
    feed(a, "cccccccccc", t);
    assert_false(a->up);
    assert_int_equal(f.seen.changes, 1);
    assert_true(health_member_cooldown_until(a) == t + 0.1);
    /* The loop's timer ends the cool-down. */
    assert_true(run_until(f.loop, member_up, a, 5));
    assert_true(ev_time() - t >= 0.09);
    assert_string_equal(f.seen.last_reason, "cool-down elapsed");
    assert_int_equal(f.seen.changes, 2);
    /* Ejected again soon after: twice as long. */
    ev_now_update(f.loop);
    t = ev_now(f.loop);
    feed(a, "cccccccccc", t);
    assert_false(a->up);
    assert_true(health_member_cooldown_until(a) == t + 0.2);
    assert_true(run_until(f.loop, member_up, a, 5));
    assert_true(ev_time() - t >= 0.19);
    assert_true(b->up);
    lfx_deinit(&f);
}

static bool
member_down(void *arg)
{
    return !((struct member *)arg)->up;
}

static bool
member_checked(void *arg)
{
    return health_member_counters(arg)->has_checked;
}

static void
test_io_reload_none_to_tcp(void **state)
{
    struct lfx f;
    struct health_params p = params(HEALTH_NONE, 1, 1);
    struct member *good, *bad;
    uint16_t port;
    int lfd;

    (void)state;
    p.interval = 60;
    p.timeout = 1;
    lfx_init(&f, p);
    lfd = listen_socket(&port, 16);
    good = lfx_attach(&f, port);
    bad = lfx_attach(&f, closed_port());
    assert_true(good->up && bad->up);
    /* Checks start at once; state is kept until they say otherwise. */
    p.kind = HEALTH_TCP;
    assert_int_equal(health_update_params(f.c, &p, ev_now(f.loop)), 0);
    assert_true(good->up && bad->up);
    assert_true(run_until(f.loop, member_down, bad, 5));
    assert_string_equal(f.seen.last_reason,
                        "1 check failed: connection refused");
    assert_true(run_until(f.loop, member_checked, good, 5));
    assert_true(good->up);
    assert_int_equal(health_member_counters(good)->checks_passed, 1);
    close(lfd);
    lfx_deinit(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_check_pass),
        cmocka_unit_test(test_first_check_fail),
        cmocka_unit_test(test_none_is_up_at_once),
        cmocka_unit_test(test_hysteresis_sequences),
        cmocka_unit_test(test_hysteresis_exhaustive),
        cmocka_unit_test(test_reasons_and_up_since),
        cmocka_unit_test(test_passive_allowed),
        cmocka_unit_test(test_passive_not_full),
        cmocka_unit_test(test_passive_at_rate_and_above),
        cmocka_unit_test(test_passive_ok_and_down_ignored),
        cmocka_unit_test(test_passive_window_off),
        cmocka_unit_test(test_passive_cap),
        cmocka_unit_test(test_passive_back_through_rise),
        cmocka_unit_test(test_cooldown_numbers),
        cmocka_unit_test(test_cooldown_growth_and_reset),
        cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_parse_status),
        cmocka_unit_test(test_update_params),
        cmocka_unit_test(test_move_keeps_state),
        cmocka_unit_test(test_detach_pending),
        cmocka_unit_test(test_io_tcp_pass_and_refused),
        cmocka_unit_test(test_io_tcp_timeout),
        cmocka_unit_test(test_io_http_200),
        cmocka_unit_test(test_io_http_503_and_garbage),
        cmocka_unit_test(test_io_concurrent_timeouts),
        cmocka_unit_test(test_io_hysteresis_live),
        cmocka_unit_test(test_io_detach_in_flight),
        cmocka_unit_test(test_io_none_cooldown_timer),
        cmocka_unit_test(test_io_reload_none_to_tcp),
    };

    log_set_level(LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
