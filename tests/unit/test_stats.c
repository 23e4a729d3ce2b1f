/*
 * test_stats: the three pages rendered from a hand-built runtime (no
 * sockets, no loop): every documented metric family, label values, counters,
 * JSON shape, HTML escaping.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "balance.h"
#include "pool.h"
#include "runtime.h"
#include "stats.h"
#include "strbuf.h"

struct fixture {
    struct runtime rt;               /* the fake runtime */
    struct frontend fe;              /* one frontend */
    struct frontend *fes[1];         /* rt.frontends */
    struct backend be;               /* one backend */
    struct backend *bes[1];          /* rt.backends */
    struct config_server servers[2]; /* be.cfg.servers */
    struct stats *st;                /* renders from rt */
    struct strbuf sb;                /* output */
};

static struct member *
add(struct fixture *f, size_t server, const char *spec, const char *ip,
    uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct member *m;

    inet_pton(AF_INET, ip, &sa.sin_addr);
    m = pool_add_member(&f->be.pool, server, spec, (struct sockaddr *)&sa,
                        sizeof(sa), 1, false);
    assert_non_null(m);
    return m;
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct member *a, *b;

    assert_non_null(f);
    snprintf(f->fe.name, sizeof(f->fe.name), "web");
    f->fe.cfg.mode = MODE_HTTP;
    f->fe.backend = &f->be;
    f->fe.stats.connections_total = 42;
    f->fe.stats.active = 3;
    snprintf(f->be.name, sizeof(f->be.name), "app");
    f->be.cfg.balance = BALANCE_ROUNDROBIN;
    f->be.cfg.servers = f->servers;
    f->be.cfg.nservers = 2;
    pool_init(&f->be.pool, "app", 0);
    /* A quote and a backslash in a label value must be escaped. */
    a = add(f, 0, "10.0.0.1:80", "10.0.0.1", 80);
    b = add(f, 1, "api\"x\\.internal:8080", "10.0.0.2", 8080);
    a->up = true;
    a->stats.requests = 7;
    a->stats.responses[2] = 6;
    a->stats.responses[5] = 1;
    a->active = 2;
    histogram_observe(&a->resp_hist, 0.003);
    b->up = false;
    f->fes[0] = &f->fe;
    f->bes[0] = &f->be;
    f->rt.frontends = f->fes;
    f->rt.nfrontends = 1;
    f->rt.backends = f->bes;
    f->rt.nbackends = 1;
    f->rt.reloads_ok = 2;
    f->rt.reloads_fail = 1;
    f->st = stats_create_unbound(&f->rt, NULL);
    assert_non_null(f->st);
    strbuf_init(&f->sb);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    stats_destroy(f->st);
    pool_deinit(&f->be.pool);
    strbuf_free(&f->sb);
    free(f);
    return 0;
}

static const char *
render(struct fixture *f, int (*fn)(struct strbuf *, const char **, void *),
       const char **ctype)
{
    strbuf_reset(&f->sb);
    assert_int_equal(fn(&f->sb, ctype, f->st), 0);
    strbuf_putc(&f->sb, '\0');
    assert_false(strbuf_failed(&f->sb));
    return f->sb.data;
}

static void
assert_has(const char *text, const char *needle)
{
    if (strstr(text, needle) == NULL)
        fail_msg("missing: %s", needle);
}

static void
test_metrics_families(void **state)
{
    static const char *const families[] = {
        "ferry_frontend_connections_total counter",
        "ferry_frontend_active_connections gauge",
        "ferry_server_requests_total counter",
        "ferry_server_responses_total counter",
        "ferry_server_active_connections gauge",
        "ferry_server_up gauge",
        "ferry_server_health_checks_total counter",
        "ferry_server_response_seconds histogram",
        "ferry_backend_members gauge",
        "ferry_dns_lookups_total counter",
        "ferry_dns_queries_total counter",
        "ferry_dns_query_seconds histogram",
        "ferry_dns_cache_entries gauge",
        "ferry_config_reloads_total counter",
    };
    struct fixture *f = *state;
    const char *ctype, *t = render(f, stats_render_metrics, &ctype);
    char line[128];

    assert_string_equal(ctype, "text/plain; version=0.0.4; charset=utf-8");
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        snprintf(line, sizeof(line), "# TYPE %s\n", families[i]);
        assert_has(t, line);
    }
}

static void
test_metrics_values_and_labels(void **state)
{
    struct fixture *f = *state;
    const char *ctype, *t = render(f, stats_render_metrics, &ctype);

    assert_has(t, "ferry_frontend_connections_total{frontend=\"web\"} 42\n");
    assert_has(t, "ferry_frontend_active_connections{frontend=\"web\"} 3\n");
    assert_has(t, "ferry_server_requests_total{backend=\"app\",server=\""
                  "10.0.0.1:80\",address=\"10.0.0.1:80\"} 7\n");
    assert_has(t, "ferry_server_responses_total{backend=\"app\",server=\""
                  "10.0.0.1:80\",address=\"10.0.0.1:80\",code=\"5xx\"} 1\n");
    assert_has(t, "ferry_server_active_connections{backend=\"app\",server="
                  "\"10.0.0.1:80\",address=\"10.0.0.1:80\"} 2\n");
    assert_has(t, "ferry_server_up{backend=\"app\",server=\"api\\\"x\\\\"
                  ".internal:8080\",address=\"10.0.0.2:8080\"} 0\n");
    assert_has(t, "ferry_server_response_seconds_count{backend=\"app\","
                  "server=\"10.0.0.1:80\",address=\"10.0.0.1:80\"} 1\n");
    assert_has(t, "ferry_backend_members{backend=\"app\"} 2\n");
    assert_has(t, "ferry_config_reloads_total{result=\"ok\"} 2\n");
    assert_has(t, "ferry_config_reloads_total{result=\"fail\"} 1\n");
    assert_has(t, "ferry_dns_lookups_total{result=\"coalesced\"} 0\n");
    assert_has(t, "ferry_dns_cache_entries 0\n");
}

static void
test_json(void **state)
{
    struct fixture *f = *state;
    const char *ctype, *t = render(f, stats_render_json, &ctype);

    assert_string_equal(ctype, "application/json");
    assert_true(t[0] == '{');
    assert_has(t, "\"frontends\":[{\"name\":\"web\",\"mode\":\"http\"");
    assert_has(t, "\"connections_total\":42");
    assert_has(t, "\"members_total\":2,\"members_up\":1");
    assert_has(t, "\"server\":\"api\\\"x\\\\.internal:8080\"");
    assert_has(t, "\"state\":\"down\"");
    assert_has(t, "\"responses\":{\"1xx\":0,\"2xx\":6,\"3xx\":0,\"4xx\":0,"
                  "\"5xx\":1}");
    /* An empty histogram has no percentile: null, not NaN. */
    assert_has(t, "\"response_p50_seconds\":null");
    assert_has(t, "\"reloads\":{\"ok\":2,\"fail\":1}");
    assert_has(t, "\"dns\":{\"cache_entries\":0");
}

static void
test_html_escapes(void **state)
{
    struct fixture *f = *state;
    const char *ctype, *t = render(f, stats_render_html, &ctype);

    assert_string_equal(ctype, "text/html; charset=utf-8");
    assert_has(t, "<tr class=\"up\"><td>10.0.0.1:80</td>");
    assert_has(t, "<tr class=\"down\"><td>api&quot;x\\.internal:8080</td>");
    assert_has(t, "(roundrobin, 1 of 2 members up)");
    assert_null(strstr(t, "<script"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_families, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_values_and_labels, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html_escapes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
