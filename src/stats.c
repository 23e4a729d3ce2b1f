/*
 * stats: /metrics (Prometheus text 0.0.4), /stats (JSON), / (HTML).
 *
 * Every page walks the same objects in the same order: frontends, then
 * backends and their members, then DNS names. Metric names, types and help
 * texts live in one table, so adding a metric is one line there plus the
 * loop that emits its samples.
 */
#include "stats.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autoconfig.h"
#include "balance.h"
#include "dns.h"
#include "health.h"
#include "histogram.h"
#include "listener.h"
#include "log.h"
#include "net.h"
#include "plane.h"
#include "runtime.h"
#include "stats_server.h"
#include "strbuf.h"

struct stats {
    struct ev_loop *loop;         /* the loop (for uptime) */
    struct runtime *rt;           /* what to show */
    struct dns *dns;              /* DNS names to show */
    struct stats_server *srv;     /* the endpoint, NULL if off */
    struct config_addr addr;      /* where srv listens */
    struct stats_server *next;    /* reload: prepared new endpoint */
    struct config_addr next_addr; /* its address */
    bool next_off;                /* reload turns the endpoint off */
    double started;               /* start time (wall clock) */
};

#define X_METRICS(X)                                                           \
    X(FRONTEND_CONN, "ferry_frontend_connections_total", "counter",            \
      "Client connections accepted.")                                          \
    X(FRONTEND_ACTIVE, "ferry_frontend_active_connections", "gauge",           \
      "Client connections open now.")                                          \
    X(SERVER_REQ, "ferry_server_requests_total", "counter",                    \
      "Requests (http) or sessions (tcp) sent to the member.")                 \
    X(SERVER_RESP, "ferry_server_responses_total", "counter",                  \
      "Responses from the member by status class.")                            \
    X(SERVER_ACTIVE, "ferry_server_active_connections", "gauge",               \
      "Connections to the member open now.")                                   \
    X(SERVER_UP, "ferry_server_up", "gauge",                                   \
      "1 when the member may receive traffic, 0 when it is down.")             \
    X(SERVER_CHECKS, "ferry_server_health_checks_total", "counter",            \
      "Active health checks by result.")                                       \
    X(SERVER_CONNERR, "ferry_server_connect_errors_total", "counter",          \
      "Failed connects to the member.")                                        \
    X(SERVER_EJECT, "ferry_server_passive_ejections_total", "counter",         \
      "Times passive checks took the member out.")                             \
    X(SERVER_RESP_SEC, "ferry_server_response_seconds", "histogram",           \
      "Time from request sent to response head received.")                     \
    X(BACKEND_MEMBERS, "ferry_backend_members", "gauge",                       \
      "Members of the backend's pool after DNS expansion.")                    \
    X(DNS_LOOKUPS, "ferry_dns_lookups_total", "counter",                       \
      "DNS cache lookups by result.")                                          \
    X(DNS_QUERIES, "ferry_dns_queries_total", "counter",                       \
      "DNS queries sent upstream by result.")                                  \
    X(DNS_QUERY_SEC, "ferry_dns_query_seconds", "histogram",                   \
      "Time DNS queries sent upstream took.")                                  \
    X(DNS_ENTRIES, "ferry_dns_cache_entries", "gauge",                         \
      "Entries in the DNS cache (one per name and family).")                   \
    X(RELOADS, "ferry_config_reloads_total", "counter",                        \
      "Configuration reloads by result.")                                      \
    X(WORKER_CONN, "ferry_worker_connections", "gauge",                        \
      "Client connections open on each worker thread.")                        \
    X(BUILD_INFO, "ferry_build_info", "gauge",                                 \
      "Always 1; the version is a label.")

enum stats_metric {
#define X_ENUM(id, name, type, help) M_##id,
    X_METRICS(X_ENUM)
#undef X_ENUM
        M_COUNT
};

static const struct {
    const char *name;
    const char *type;
    const char *help;
} stats_metrics[] = {
#define X_ROW(id, name, type, help) {name, type, help},
    X_METRICS(X_ROW)
#undef X_ROW
};

static const char *const stats_classes[] = {NULL,  "1xx", "2xx",
                                            "3xx", "4xx", "5xx"};

static double
stats_wall_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void
header(struct strbuf *sb, enum stats_metric m)
{
    strbuf_prom_header(sb, stats_metrics[m].name, stats_metrics[m].help,
                       stats_metrics[m].type);
}

static uint64_t
member_checks(const struct member *m, bool pass)
{
    const struct health_counters *hc = health_member_counters(m);

    if (hc == NULL)
        return 0;
    return pass ? hc->checks_passed : hc->checks_failed;
}

/* Calls fn for every member of every backend with its three labels. */
typedef void (*member_fn)(struct strbuf *sb, const struct member *m,
                          struct strbuf_label *lbl, size_t nlbl, void *arg);

static void
for_each_member(struct stats *st, struct strbuf *sb, member_fn fn, void *arg)
{
    for (size_t i = 0; i < st->rt->nbackends; i++) {
        struct backend *be = st->rt->backends[i];
        for (size_t j = 0; j < be->pool.n; j++) {
            const struct member *m = be->pool.members[j];
            struct strbuf_label lbl[4] = {
                {"backend", be->name},
                {"server", m->server_spec},
                {"address", m->addr_text},
            };
            fn(sb, m, lbl, 3, arg);
        }
    }
}

static void
emit_requests(struct strbuf *sb, const struct member *m, struct strbuf_label *l,
              size_t n, void *arg)
{
    (void)arg;
    strbuf_prom_sample_u64(sb, stats_metrics[M_SERVER_REQ].name, l, n,
                           PLANE_GET(m->stats.requests));
}

static void
emit_responses(struct strbuf *sb, const struct member *m,
               struct strbuf_label *l, size_t n, void *arg)
{
    (void)arg;
    for (int c = 1; c <= 5; c++) {
        l[n] = (struct strbuf_label){"code", stats_classes[c]};
        strbuf_prom_sample_u64(sb, stats_metrics[M_SERVER_RESP].name, l, n + 1,
                               PLANE_GET(m->stats.responses[c]));
    }
}

static void
emit_active(struct strbuf *sb, const struct member *m, struct strbuf_label *l,
            size_t n, void *arg)
{
    (void)arg;
    strbuf_prom_sample_u64(sb, stats_metrics[M_SERVER_ACTIVE].name, l, n,
                           m->active);
}

static void
emit_up(struct strbuf *sb, const struct member *m, struct strbuf_label *l,
        size_t n, void *arg)
{
    (void)arg;
    strbuf_prom_sample_u64(sb, stats_metrics[M_SERVER_UP].name, l, n,
                           m->up ? 1 : 0);
}

static void
emit_checks(struct strbuf *sb, const struct member *m, struct strbuf_label *l,
            size_t n, void *arg)
{
    (void)arg;
    l[n] = (struct strbuf_label){"result", "pass"};
    strbuf_prom_sample_u64(sb, stats_metrics[M_SERVER_CHECKS].name, l, n + 1,
                           member_checks(m, true));
    l[n] = (struct strbuf_label){"result", "fail"};
    strbuf_prom_sample_u64(sb, stats_metrics[M_SERVER_CHECKS].name, l, n + 1,
                           member_checks(m, false));
}

static void
emit_connerr(struct strbuf *sb, const struct member *m, struct strbuf_label *l,
             size_t n, void *arg)
{
    (void)arg;
    strbuf_prom_sample_u64(sb, stats_metrics[M_SERVER_CONNERR].name, l, n,
                           PLANE_GET(m->stats.connect_errors));
}

static void
emit_eject(struct strbuf *sb, const struct member *m, struct strbuf_label *l,
           size_t n, void *arg)
{
    const struct health_counters *hc = health_member_counters(m);

    (void)arg;
    strbuf_prom_sample_u64(sb, stats_metrics[M_SERVER_EJECT].name, l, n,
                           hc ? hc->passive_ejections : 0);
}

static void
emit_resp_hist(struct strbuf *sb, const struct member *m,
               struct strbuf_label *l, size_t n, void *arg)
{
    struct histogram h;

    (void)arg;
    histogram_copy(&h, &m->resp_hist);
    histogram_render_prom(&h, sb, stats_metrics[M_SERVER_RESP_SEC].name, l, n);
}

static const struct {
    enum stats_metric metric;
    member_fn fn;
} stats_member_metrics[] = {
    {M_SERVER_REQ, emit_requests},  {M_SERVER_RESP, emit_responses},
    {M_SERVER_ACTIVE, emit_active}, {M_SERVER_UP, emit_up},
    {M_SERVER_CHECKS, emit_checks}, {M_SERVER_CONNERR, emit_connerr},
    {M_SERVER_EJECT, emit_eject},   {M_SERVER_RESP_SEC, emit_resp_hist},
};

int
stats_render_metrics(struct strbuf *sb, const char **ctype, void *arg)
{
    struct stats *st = arg;
    struct runtime *rt = st->rt;
    struct dns_cache *cache = st->dns ? dns_cache_of(st->dns) : NULL;
    static const enum dns_cache_status qs[] = {
        DNS_CACHE_Q_OK, DNS_CACHE_Q_NXDOMAIN, DNS_CACHE_Q_SERVFAIL,
        DNS_CACHE_Q_TIMEOUT, DNS_CACHE_Q_ERROR};

    *ctype = STATS_CONTENT_TYPE_PROM;

    header(sb, M_FRONTEND_CONN);
    for (size_t i = 0; i < rt->nfrontends; i++) {
        struct strbuf_label l = {"frontend", rt->frontends[i]->name};
        strbuf_prom_sample_u64(sb, stats_metrics[M_FRONTEND_CONN].name, &l, 1,
                               PLANE_GET(
                                   rt->frontends[i]->stats.connections_total));
    }
    header(sb, M_FRONTEND_ACTIVE);
    for (size_t i = 0; i < rt->nfrontends; i++) {
        struct strbuf_label l = {"frontend", rt->frontends[i]->name};
        strbuf_prom_sample_u64(sb, stats_metrics[M_FRONTEND_ACTIVE].name, &l, 1,
                               PLANE_GET(rt->frontends[i]->stats.active));
    }
    for (size_t k = 0;
         k < sizeof(stats_member_metrics) / sizeof(stats_member_metrics[0]);
         k++) {
        header(sb, stats_member_metrics[k].metric);
        for_each_member(st, sb, stats_member_metrics[k].fn, NULL);
    }
    header(sb, M_BACKEND_MEMBERS);
    for (size_t i = 0; i < rt->nbackends; i++) {
        struct strbuf_label l = {"backend", rt->backends[i]->name};
        strbuf_prom_sample_u64(sb, stats_metrics[M_BACKEND_MEMBERS].name, &l, 1,
                               rt->backends[i]->pool.n);
    }

    header(sb, M_DNS_LOOKUPS);
    for (int r = DNS_CACHE_HIT; r < DNS_CACHE_NRESULTS; r++) {
        struct strbuf_label l = {"result", dns_cache_result_name(r)};
        strbuf_prom_sample_u64(sb, stats_metrics[M_DNS_LOOKUPS].name, &l, 1,
                               cache ? dns_cache_lookups(cache, r) : 0);
    }
    header(sb, M_DNS_QUERIES);
    if (st->dns != NULL) {
        size_t n;
        struct dns_name_stats *const *ns = dns_name_stats_all(st->dns, &n);
        for (size_t i = 0; i < n; i++)
            for (size_t q = 0; q < sizeof(qs) / sizeof(qs[0]); q++) {
                struct strbuf_label l[2] = {
                    {"name", ns[i]->name},
                    {"result", dns_cache_status_name(qs[q])},
                };
                strbuf_prom_sample_u64(sb, stats_metrics[M_DNS_QUERIES].name, l,
                                       2, ns[i]->upstream[qs[q]]);
            }
        header(sb, M_DNS_QUERY_SEC);
        for (size_t i = 0; i < n; i++) {
            struct strbuf_label l = {"name", ns[i]->name};
            histogram_render_prom(&ns[i]->hist, sb,
                                  stats_metrics[M_DNS_QUERY_SEC].name, &l, 1);
        }
    } else {
        header(sb, M_DNS_QUERY_SEC);
    }
    header(sb, M_DNS_ENTRIES);
    strbuf_prom_sample_u64(sb, stats_metrics[M_DNS_ENTRIES].name, NULL, 0,
                           cache ? dns_cache_count(cache) : 0);

    header(sb, M_RELOADS);
    {
        struct strbuf_label ok = {"result", "ok"}, fail = {"result", "fail"};
        strbuf_prom_sample_u64(sb, stats_metrics[M_RELOADS].name, &ok, 1,
                               rt->reloads_ok);
        strbuf_prom_sample_u64(sb, stats_metrics[M_RELOADS].name, &fail, 1,
                               rt->reloads_fail);
    }
    header(sb, M_WORKER_CONN);
    for (unsigned k = 0; k < rt->nworkers; k++) {
        char id[16];
        struct strbuf_label l = {"worker", id};
        snprintf(id, sizeof(id), "%u", k);
        strbuf_prom_sample_u64(sb, stats_metrics[M_WORKER_CONN].name, &l, 1,
                               PLANE_GET(rt->workers[k].conns));
    }
    header(sb, M_BUILD_INFO);
    {
        struct strbuf_label l = {"version", PACKAGE_VERSION};
        strbuf_prom_sample_u64(sb, stats_metrics[M_BUILD_INFO].name, &l, 1, 1);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* JSON                                                                    */

static void
json_key(struct strbuf *sb, const char *k)
{
    strbuf_append_json_string(sb, k);
    strbuf_putc(sb, ':');
}

static void
json_kv_str(struct strbuf *sb, const char *k, const char *v, bool comma)
{
    json_key(sb, k);
    if (v == NULL)
        strbuf_puts(sb, "null");
    else
        strbuf_append_json_string(sb, v);
    if (comma)
        strbuf_putc(sb, ',');
}

static void
json_kv_u64(struct strbuf *sb, const char *k, uint64_t v, bool comma)
{
    json_key(sb, k);
    strbuf_append_u64(sb, v);
    if (comma)
        strbuf_putc(sb, ',');
}

static void
json_kv_double(struct strbuf *sb, const char *k, double v, bool comma)
{
    json_key(sb, k);
    strbuf_append_json_double(sb, v);
    if (comma)
        strbuf_putc(sb, ',');
}

static void
json_member(struct strbuf *sb, const struct member *m)
{
    const struct health_counters *hc = health_member_counters(m);
    struct histogram h;

    strbuf_putc(sb, '{');
    json_kv_str(sb, "server", m->server_spec, true);
    json_kv_str(sb, "address", m->addr_text, true);
    json_kv_str(sb, "state", m->up ? "up" : "down", true);
    json_kv_str(sb, "reason", hc && hc->reason[0] ? hc->reason : NULL, true);
    json_kv_u64(sb, "weight", m->weight, true);
    json_key(sb, "backup");
    strbuf_puts(sb, m->backup ? "true," : "false,");
    json_kv_u64(sb, "active_connections", m->active, true);
    json_kv_u64(sb, "requests", PLANE_GET(m->stats.requests), true);
    json_key(sb, "responses");
    strbuf_putc(sb, '{');
    for (int c = 1; c <= 5; c++)
        json_kv_u64(sb, stats_classes[c], PLANE_GET(m->stats.responses[c]),
                    c < 5);
    strbuf_puts(sb, "},");
    json_kv_u64(sb, "connect_errors", PLANE_GET(m->stats.connect_errors), true);
    histogram_copy(&h, &m->resp_hist);
    json_kv_double(sb, "response_p50_seconds", histogram_quantile(&h, 0.5),
                   true);
    json_kv_double(sb, "response_p99_seconds", histogram_quantile(&h, 0.99),
                   true);
    json_key(sb, "health");
    strbuf_putc(sb, '{');
    json_kv_u64(sb, "checks_passed", hc ? hc->checks_passed : 0, true);
    json_kv_u64(sb, "checks_failed", hc ? hc->checks_failed : 0, true);
    json_kv_u64(sb, "passive_ejections", hc ? hc->passive_ejections : 0, true);
    json_kv_u64(sb, "transitions", hc ? hc->transitions : 0, true);
    json_kv_str(sb, "last_check", hc && hc->has_checked ? hc->last_check : NULL,
                true);
    json_kv_double(sb, "last_check_seconds",
                   hc && hc->has_checked ? hc->last_duration : NAN, false);
    strbuf_puts(sb, "}}");
}

struct json_dns_ctx {
    struct strbuf *sb; /* output */
    double now;        /* monotonic now */
    bool first;        /* no comma before the first */
};

static void
json_dns_entry(const struct dns_cache_entry *e, void *arg)
{
    struct json_dns_ctx *jc = arg;
    struct strbuf *sb = jc->sb;
    char text[INET6_ADDRSTRLEN + 8];
    bool usable = e->state == DNS_CACHE_RESOLVED;

    if (!jc->first)
        strbuf_putc(sb, ',');
    jc->first = false;
    strbuf_putc(sb, '{');
    json_kv_str(sb, "name", e->name, true);
    json_kv_str(sb, "family", e->family == 6 ? "ipv6" : "ipv4", true);
    json_kv_str(sb, "state", dns_cache_state_name(e->state), true);
    json_kv_double(sb, "ttl_seconds", usable ? e->ttl : NAN, true);
    json_kv_double(sb, "ttl_left_seconds", usable ? e->expires - jc->now : NAN,
                   true);
    json_key(sb, "addresses");
    strbuf_putc(sb, '[');
    for (size_t i = 0; usable && i < e->naddrs; i++) {
        net_addr_format((const struct sockaddr *)&e->addrs[i], text,
                        sizeof(text));
        /* Cache addresses carry port 0: show the IP only. */
        char *colon = strrchr(text, ':');
        if (colon != NULL)
            *colon = '\0';
        if (text[0] == '[') {
            memmove(text, text + 1, strlen(text));
            text[strlen(text) - 1] = '\0';
        }
        if (i > 0)
            strbuf_putc(sb, ',');
        strbuf_append_json_string(sb, text);
    }
    strbuf_puts(sb, "],");
    json_kv_u64(sb, "hits", e->lookups[DNS_CACHE_HIT], true);
    json_kv_u64(sb, "queries", e->query_count, true);
    json_kv_u64(sb, "failures", e->failures, true);
    json_kv_str(sb, "last_error", e->last_error, false);
    strbuf_putc(sb, '}');
}

int
stats_render_json(struct strbuf *sb, const char **ctype, void *arg)
{
    struct stats *st = arg;
    struct runtime *rt = st->rt;
    struct dns_cache *cache = st->dns ? dns_cache_of(st->dns) : NULL;

    *ctype = STATS_CONTENT_TYPE_JSON;
    strbuf_putc(sb, '{');
    json_kv_str(sb, "version", PACKAGE_VERSION, true);
    json_kv_double(sb, "uptime_seconds", stats_wall_now() - st->started, true);
    json_key(sb, "reloads");
    strbuf_putc(sb, '{');
    json_kv_u64(sb, "ok", rt->reloads_ok, true);
    json_kv_u64(sb, "fail", rt->reloads_fail, false);
    strbuf_puts(sb, "},");

    json_key(sb, "frontends");
    strbuf_putc(sb, '[');
    for (size_t i = 0; i < rt->nfrontends; i++) {
        struct frontend *fe = rt->frontends[i];
        if (i > 0)
            strbuf_putc(sb, ',');
        strbuf_putc(sb, '{');
        json_kv_str(sb, "name", fe->name, true);
        json_kv_str(sb, "mode", config_mode_name(fe->cfg.mode), true);
        json_kv_str(sb, "backend", fe->backend->name, true);
        json_key(sb, "listen");
        strbuf_putc(sb, '[');
        for (size_t j = 0; runtime_listener(rt, fe, j) != NULL; j++) {
            if (j > 0)
                strbuf_putc(sb, ',');
            strbuf_append_json_string(sb,
                                      runtime_listener(rt, fe, j)->addr.text);
        }
        strbuf_puts(sb, "],");
        json_kv_u64(sb, "connections_total",
                    PLANE_GET(fe->stats.connections_total), true);
        json_kv_u64(sb, "active_connections", PLANE_GET(fe->stats.active),
                    false);
        strbuf_putc(sb, '}');
    }
    strbuf_puts(sb, "],");

    json_key(sb, "backends");
    strbuf_putc(sb, '[');
    for (size_t i = 0; i < rt->nbackends; i++) {
        struct backend *be = rt->backends[i];
        size_t up = 0;
        if (i > 0)
            strbuf_putc(sb, ',');
        for (size_t j = 0; j < be->pool.n; j++)
            up += be->pool.members[j]->up;
        strbuf_putc(sb, '{');
        json_kv_str(sb, "name", be->name, true);
        json_kv_str(sb, "balance", config_balance_name(be->cfg.balance), true);
        json_kv_u64(sb, "members_total", be->pool.n, true);
        json_kv_u64(sb, "members_up", up, true);
        json_key(sb, "members");
        strbuf_putc(sb, '[');
        for (size_t j = 0; j < be->pool.n; j++) {
            if (j > 0)
                strbuf_putc(sb, ',');
            json_member(sb, be->pool.members[j]);
        }
        strbuf_puts(sb, "]}");
    }
    strbuf_puts(sb, "],");

    json_key(sb, "dns");
    strbuf_putc(sb, '{');
    json_kv_u64(sb, "cache_entries", cache ? dns_cache_count(cache) : 0, true);
    json_key(sb, "lookups");
    strbuf_putc(sb, '{');
    for (int r = DNS_CACHE_HIT; r < DNS_CACHE_NRESULTS; r++)
        json_kv_u64(sb, dns_cache_result_name(r),
                    cache ? dns_cache_lookups(cache, r) : 0,
                    r + 1 < DNS_CACHE_NRESULTS);
    strbuf_puts(sb, "},");
    json_key(sb, "names");
    strbuf_putc(sb, '[');
    if (cache != NULL) {
        struct json_dns_ctx jc = {sb, dns_now(), true};
        dns_cache_foreach(cache, json_dns_entry, &jc);
    }
    strbuf_puts(sb, "]}}\n");
    return 0;
}

/* ---------------------------------------------------------------------- */
/* HTML                                                                    */

static void
html_text(struct strbuf *sb, const char *s)
{
    strbuf_append_html(sb, s, strlen(s));
}

static const char stats_html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta http-equiv=\"refresh\" content=\"5\">\n"
    "<meta name=\"viewport\" content=\"width=device-width\">\n"
    "<title>ferry</title>\n<style>\n"
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\n"
    "h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 "
    ".4em}\n"
    "table{border-collapse:collapse;width:100%;margin-bottom:.6em}\n"
    "th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left;"
    "white-space:nowrap}\n"
    "th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:"
    "tabular-nums}\n"
    ".up{background:#d9f2d9}.down{background:#f8d7d7}"
    ".state{font-weight:bold}\n"
    ".muted{color:#777}\n</style></head><body>\n";

static void
html_member_row(struct strbuf *sb, const struct member *m)
{
    const struct health_counters *hc = health_member_counters(m);
    struct histogram h;
    double p50, p99;

    histogram_copy(&h, &m->resp_hist);
    p50 = histogram_quantile(&h, 0.5);
    p99 = histogram_quantile(&h, 0.99);

    strbuf_printf(sb, "<tr class=\"%s\"><td>", m->up ? "up" : "down");
    html_text(sb, m->server_spec);
    strbuf_puts(sb, "</td><td>");
    html_text(sb, m->addr_text);
    strbuf_printf(sb, "</td><td class=\"state\">%s%s</td><td>",
                  m->up ? "UP" : "DOWN", m->backup ? " (backup)" : "");
    html_text(sb, hc && hc->reason[0] ? hc->reason : "");
    strbuf_printf(sb,
                  "</td><td class=\"n\">%u</td><td class=\"n\">%u</td>"
                  "<td class=\"n\">%llu</td><td class=\"n\">%llu</td>"
                  "<td class=\"n\">%llu</td>",
                  m->weight, m->active,
                  (unsigned long long)PLANE_GET(m->stats.requests),
                  (unsigned long long)PLANE_GET(m->stats.responses[5]),
                  (unsigned long long)PLANE_GET(m->stats.connect_errors));
    if (isnan(p50))
        strbuf_puts(sb, "<td class=\"n muted\">-</td><td class=\"n "
                        "muted\">-</td>");
    else
        strbuf_printf(sb,
                      "<td class=\"n\">%.1f ms</td><td class=\"n\">%.1f "
                      "ms</td>",
                      p50 * 1000, p99 * 1000);
    strbuf_puts(sb, "<td>");
    html_text(sb, hc && hc->has_checked ? hc->last_check : "-");
    strbuf_puts(sb, "</td></tr>\n");
}

struct html_dns_ctx {
    struct strbuf *sb; /* output */
    double now;        /* monotonic now */
};

static void
html_dns_row(const struct dns_cache_entry *e, void *arg)
{
    struct html_dns_ctx *hc = arg;
    struct strbuf *sb = hc->sb;
    bool usable = e->state == DNS_CACHE_RESOLVED;

    strbuf_printf(sb, "<tr class=\"%s\"><td>", usable ? "up" : "down");
    html_text(sb, e->name);
    strbuf_printf(sb, "</td><td>%s</td><td class=\"state\">%s</td>",
                  e->family == 6 ? "AAAA" : "A",
                  dns_cache_state_name(e->state));
    if (usable)
        strbuf_printf(sb, "<td class=\"n\">%.0f s</td>", e->expires - hc->now);
    else
        strbuf_puts(sb, "<td class=\"n muted\">-</td>");
    strbuf_printf(sb,
                  "<td class=\"n\">%zu</td><td class=\"n\">%llu</td>"
                  "<td class=\"n\">%llu</td><td class=\"n\">%llu</td><td>",
                  usable ? e->naddrs : 0,
                  (unsigned long long)e->lookups[DNS_CACHE_HIT],
                  (unsigned long long)e->query_count,
                  (unsigned long long)e->failures);
    html_text(sb, e->last_error ? e->last_error : "");
    strbuf_puts(sb, "</td></tr>\n");
}

int
stats_render_html(struct strbuf *sb, const char **ctype, void *arg)
{
    struct stats *st = arg;
    struct runtime *rt = st->rt;
    struct dns_cache *cache = st->dns ? dns_cache_of(st->dns) : NULL;

    *ctype = STATS_CONTENT_TYPE_HTML;
    strbuf_puts(sb, stats_html_head);
    strbuf_printf(sb,
                  "<h1>ferry %s</h1><div class=\"muted\">up %.0f s; "
                  "reloads %llu ok, %llu failed; this page refreshes every "
                  "5 s</div>\n",
                  PACKAGE_VERSION, stats_wall_now() - st->started,
                  (unsigned long long)rt->reloads_ok,
                  (unsigned long long)rt->reloads_fail);

    strbuf_puts(sb, "<h2>Frontends</h2><table><tr><th>name</th><th>mode"
                    "</th><th>listen</th><th>backend</th><th>active</th>"
                    "<th>connections</th></tr>\n");
    for (size_t i = 0; i < rt->nfrontends; i++) {
        struct frontend *fe = rt->frontends[i];
        strbuf_puts(sb, "<tr><td>");
        html_text(sb, fe->name);
        strbuf_printf(sb, "</td><td>%s</td><td>",
                      config_mode_name(fe->cfg.mode));
        for (size_t j = 0; runtime_listener(rt, fe, j) != NULL; j++) {
            if (j > 0)
                strbuf_puts(sb, ", ");
            html_text(sb, runtime_listener(rt, fe, j)->addr.text);
        }
        strbuf_puts(sb, "</td><td>");
        html_text(sb, fe->backend->name);
        strbuf_printf(sb,
                      "</td><td class=\"n\">%u</td><td class=\"n\">%llu"
                      "</td></tr>\n",
                      PLANE_GET(fe->stats.active),
                      (unsigned long long)PLANE_GET(
                          fe->stats.connections_total));
    }
    strbuf_puts(sb, "</table>\n");

    for (size_t i = 0; i < rt->nbackends; i++) {
        struct backend *be = rt->backends[i];
        size_t up = 0;
        for (size_t j = 0; j < be->pool.n; j++)
            up += be->pool.members[j]->up;
        strbuf_puts(sb, "<h2>Backend ");
        html_text(sb, be->name);
        strbuf_printf(sb,
                      " <span class=\"muted\">(%s, %zu of %zu members "
                      "up)</span></h2>\n",
                      config_balance_name(be->cfg.balance), up, be->pool.n);
        strbuf_puts(sb, "<table><tr><th>server</th><th>address</th>"
                        "<th>state</th><th>reason</th><th>weight</th>"
                        "<th>active</th><th>requests</th><th>5xx</th>"
                        "<th>connect errors</th><th>p50</th><th>p99</th>"
                        "<th>last check</th></tr>\n");
        for (size_t j = 0; j < be->pool.n; j++)
            html_member_row(sb, be->pool.members[j]);
        strbuf_puts(sb, "</table>\n");
    }

    strbuf_puts(sb, "<h2>DNS</h2><table><tr><th>name</th><th>type</th>"
                    "<th>state</th><th>TTL left</th><th>addresses</th>"
                    "<th>hits</th><th>queries</th><th>failures</th>"
                    "<th>last error</th></tr>\n");
    if (cache != NULL) {
        struct html_dns_ctx hc = {sb, dns_now()};
        dns_cache_foreach(cache, html_dns_row, &hc);
    }
    strbuf_puts(sb, "</table>\n</body></html>\n");
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Lifecycle                                                               */

static int
stats_routes(struct stats *st, struct stats_server *srv)
{
    if (stats_server_route(srv, "/metrics", stats_render_metrics, st) != 0 ||
        stats_server_route(srv, "/stats", stats_render_json, st) != 0 ||
        stats_server_route(srv, "/", stats_render_html, st) != 0)
        return -1;
    return 0;
}

static struct stats_server *
stats_listen(struct stats *st, const struct config *cfg, char *err,
             size_t errlen)
{
    char serr[256];
    struct stats_server *srv = stats_server_create(
        st->loop, (const struct sockaddr *)&cfg->stats_listen.ss,
        cfg->stats_listen.len, cfg->stats_token, serr, sizeof(serr));

    if (srv == NULL) {
        snprintf(err, errlen, "stats listen %s: %s", cfg->stats_listen.text,
                 serr);
        return NULL;
    }
    if (stats_routes(st, srv) != 0) {
        stats_server_destroy(srv);
        snprintf(err, errlen, "stats: cannot register routes");
        return NULL;
    }
    return srv;
}

struct stats *
stats_create_unbound(struct runtime *rt, struct dns *dns)
{
    struct stats *st = calloc(1, sizeof(*st));

    if (st == NULL)
        return NULL;
    st->rt = rt;
    st->dns = dns;
    st->started = stats_wall_now();
    return st;
}

struct stats *
stats_create(struct ev_loop *loop, const struct config *cfg, struct runtime *rt,
             struct dns *dns, char *err, size_t errlen)
{
    struct stats *st = stats_create_unbound(rt, dns);

    if (st == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    st->loop = loop;
    if (cfg->stats_enabled) {
        st->srv = stats_listen(st, cfg, err, errlen);
        if (st->srv == NULL) {
            free(st);
            return NULL;
        }
        st->addr = cfg->stats_listen;
        log_info("stats listening on %s (/metrics, /stats, /)%s",
                 cfg->stats_listen.text,
                 cfg->stats_token ? " with a bearer token" : "");
    }
    return st;
}

static bool
stats_same_addr(const struct config_addr *a, const struct config_addr *b)
{
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

int
stats_reload_prepare(struct stats *st, const struct config *cfg, char *err,
                     size_t errlen)
{
    st->next = NULL;
    st->next_off = !cfg->stats_enabled;
    if (!cfg->stats_enabled ||
        (st->srv != NULL && stats_same_addr(&st->addr, &cfg->stats_listen)))
        return 0;
    st->next = stats_listen(st, cfg, err, errlen);
    if (st->next == NULL)
        return -1;
    st->next_addr = cfg->stats_listen;
    return 0;
}

void
stats_reload_commit(struct stats *st, const struct config *cfg)
{
    if (st->next != NULL) {
        stats_server_destroy(st->srv);
        st->srv = st->next;
        st->addr = st->next_addr;
        st->next = NULL;
        log_info("reload: stats now listen on %s", st->addr.text);
    } else if (st->next_off && st->srv != NULL) {
        stats_server_destroy(st->srv);
        st->srv = NULL;
        log_info("reload: stats endpoint turned off");
    }
    if (st->srv != NULL)
        stats_server_set_token(st->srv, cfg->stats_token);
}

void
stats_reload_abort(struct stats *st)
{
    stats_server_destroy(st->next);
    st->next = NULL;
}

void
stats_destroy(struct stats *st)
{
    if (st == NULL)
        return;
    stats_server_destroy(st->srv);
    stats_server_destroy(st->next);
    free(st);
}
