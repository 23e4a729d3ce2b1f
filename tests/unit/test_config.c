/*
 * Unit tests for config: the value parsers, the documented defaults, every key,
 * and every error with its line number.
 *
 * Each test writes its configuration to a file of its own in a mkdtemp
 * directory and loads it as `ferry -t` does: config_load_checked() with
 * tls_check_pair(), so tls_cert and tls_key name files that must load.
 *
 * Values of features this build does not have yet are rejected with "not
 * supported yet". Their tests are driven by the HAVE_* switches below:
 * while a switch is 0 the test asserts the row's rejection and its line;
 * when the feature lands, set its switch to 1 and the same rows check that
 * the good value is stored and the bad one is refused with the parser's
 * message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "tls.h"

/* Flip to 1 when the feature lands (see the top of the file). */
#define HAVE_STATS 1       /* [stats] listen, token */
#define HAVE_RESOLVER 1    /* every [resolver] key */
#define HAVE_TLS 1         /* tls_cert, tls_key */
#define HAVE_HTTP 1        /* mode http, timeout_request, max_header_size */
#define HAVE_HEALTH 1      /* health_*, rise, fall */
#define HAVE_PASSIVE 1     /* passive_window, passive_error_rate */
#define HAVE_SLOW_START 1  /* slow_start */
#define HAVE_BALANCE 1     /* balance weighted, leastconn, hash */
#define HAVE_WORKERS 1     /* workers other than 1 */
#define HAVE_DNS_SERVERS 1 /* server lines with a DNS name */

/* ---------------------------------------------------------------------- */
/* Files and assertions.                                                   */

static char g_dir[] = "/tmp/ferry-test-config-XXXXXX";
static char g_path[sizeof(g_dir) + 32]; /* the file of the current test */
static unsigned g_seq;

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int
group_setup(void **state)
{
    (void)state;
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    return nftw(g_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Writes len bytes to a new file; its path is g_path. */
static const char *
write_bytes(const char *text, size_t len)
{
    FILE *fp;

    snprintf(g_path, sizeof(g_path), "%s/%u.conf", g_dir, ++g_seq);
    fp = fopen(g_path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    return g_path;
}

static const char *
write_conf(const char *text)
{
    return write_bytes(text, strlen(text));
}

/* config_load() as ferry calls it: TLS files are opened and checked. */
static struct config *
load(const char *path, struct config_errors *e)
{
    return config_load_checked(path, tls_check_pair, e);
}

static void
print_errors(const struct config_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        print_error("  %s\n", e->msgs[i]);
}

/* Loads text; it must be accepted. The caller frees the config. */
static struct config *
load_ok(const char *text)
{
    struct config_errors e;
    struct config *cfg = load(write_conf(text), &e);

    if (cfg == NULL || e.n != 0) {
        print_error("config rejected:\n%s\nerrors:\n", text);
        print_errors(&e);
        fail_msg("expected the configuration to load");
    }
    assert_string_equal(cfg->path, g_path);
    return cfg;
}

/* Loads text; it must be rejected. The caller frees e. */
static void
load_bad(const char *text, struct config_errors *e)
{
    struct config *cfg = load(write_conf(text), e);

    if (cfg != NULL) {
        print_error("config accepted:\n%s\n", text);
        config_free(cfg);
        fail_msg("expected the configuration to be rejected");
    }
    assert_true(e->n > 0);
}

/* Whether e holds "PATH:LINE: ...NEEDLE..." for the current file. */
static bool
has_error(const struct config_errors *e, int line, const char *needle)
{
    char prefix[sizeof(g_path) + 32];
    size_t plen;

    plen = (size_t)snprintf(prefix, sizeof(prefix), "%s:%d: ", g_path, line);
    for (size_t i = 0; i < e->n; i++)
        if (strncmp(e->msgs[i], prefix, plen) == 0 &&
            strstr(e->msgs[i] + plen, needle) != NULL)
            return true;
    return false;
}

#define assert_error(e, line, needle)                                          \
    assert_error_at((e), (line), (needle), __FILE__, __LINE__)

static void
assert_error_at(const struct config_errors *e, int line, const char *needle,
                const char *file, int at)
{
    if (has_error(e, line, needle))
        return;
    print_error("%s:%d: no error on line %d containing \"%s\"; got:\n", file,
                at, line, needle);
    print_errors(e);
    fail();
}

/* text must fail with exactly one error, on line, containing needle. */
#define assert_only_error(text, line, needle)                                  \
    assert_only_error_at((text), (line), (needle), __FILE__, __LINE__)

static void
assert_only_error_at(const char *text, int line, const char *needle,
                     const char *file, int at)
{
    struct config_errors e;

    load_bad(text, &e);
    assert_error_at(&e, line, needle, file, at);
    if (e.n != 1) {
        print_error("%s:%d: expected one error, got %zu:\n", file, at, e.n);
        print_errors(&e);
        fail();
    }
    config_errors_free(&e);
}

/* A valid frontend (lines 1-4) and backend (lines 5-6). */
#define FE                                                                     \
    "[frontend web]\n"                                                         \
    "listen = 127.0.0.1:8080\n"                                                \
    "mode = tcp\n"                                                             \
    "backend = app\n"
#define BE                                                                     \
    "[backend app]\n"                                                          \
    "server = 127.0.0.1:9000\n"
#define MIN FE BE

static uint16_t
addr_port(const struct config_addr *a)
{
    if (a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

/* The address as text, without the port ("" for other families). */
static const char *
addr_ip(const struct config_addr *a, char *buf, size_t len)
{
    if (a->ss.ss_family == AF_INET6)
        return inet_ntop(AF_INET6,
                         &((const struct sockaddr_in6 *)&a->ss)->sin6_addr, buf,
                         (socklen_t)len);
    if (a->ss.ss_family == AF_INET)
        return inet_ntop(AF_INET,
                         &((const struct sockaddr_in *)&a->ss)->sin_addr, buf,
                         (socklen_t)len);
    return "";
}

#define assert_addr(a, family, ip, port)                                       \
    do {                                                                       \
        char ipbuf_[INET6_ADDRSTRLEN];                                         \
        assert_int_equal((a)->ss.ss_family, (family));                         \
        assert_string_equal(addr_ip((a), ipbuf_, sizeof(ipbuf_)), (ip));       \
        assert_int_equal(addr_port(a), (port));                                \
        assert_int_equal((a)->len, (family) == AF_INET6                        \
                                       ? sizeof(struct sockaddr_in6)           \
                                       : sizeof(struct sockaddr_in));          \
    } while (0)

#define assert_double(a, b) assert_true(fabs_((a) - (b)) < 1e-9)

static double
fabs_(double x)
{
    return x < 0 ? -x : x;
}

/* ---------------------------------------------------------------------- */
/* Value parsers.                                                          */

static void
test_parse_duration(void **state)
{
    static const struct {
        const char *in;
        double out;
    } ok[] = {
        {"500ms", 0.5},  {"1ms", 0.001},     {"0ms", 0},
        {"5s", 5},       {"0s", 0},          {"2m", 120},
        {"1h", 3600},    {"3h", 10800},      {"7", 7},
        {"0", 0},        {"90", 90},         {"007s", 7},
        {"1500ms", 1.5}, {"100000000", 1e8}, {"100000000ms", 1e5},
    };
    static const char *const bad[] = {
        "",
        "s",
        "ms",
        "m",
        "h",
        "-1",
        "-1s",
        "+1s",
        "1.5s",
        "1.5",
        ".5s",
        "5 s",
        " 5s",
        "5s ",
        "5x",
        "5sec",
        "5S",
        "5H",
        "5d",
        "5us",
        "5mss",
        "1h30m",
        "abc",
        "0x10",
        "1e3",
        "100000001",
        "99999999999999999999999s",
        "18446744073709551616",
    };
    double d;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        d = -1;
        if (config_parse_duration(ok[i].in, &d) != 0)
            fail_msg("duration '%s' rejected", ok[i].in);
        if (fabs_(d - ok[i].out) > 1e-9)
            fail_msg("duration '%s' = %g, want %g", ok[i].in, d, ok[i].out);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d = -1;
        if (config_parse_duration(bad[i], &d) == 0)
            fail_msg("duration '%s' accepted as %g", bad[i], d);
        assert_true(d == -1); /* untouched on error */
    }
}

static void
test_parse_size(void **state)
{
    static const struct {
        const char *in;
        size_t out;
    } ok[] = {
        {"0", 0},
        {"1", 1},
        {"512", 512},
        {"16k", 16384},
        {"16K", 16384},
        {"1k", 1024},
        {"1m", 1048576},
        {"1M", 1048576},
        {"0k", 0},
        {"32768", 32768},
        {"1024m", 1073741824},
    };
    static const char *const bad[] = {
        "",
        "k",
        "m",
        "-1",
        "-1k",
        "1.5k",
        "1kb",
        "1KB",
        "1g",
        "1G",
        "1 k",
        " 1k",
        "1k ",
        "abc",
        "0x10",
        "+1",
        "1e3",
        "16kk",
        "99999999999999999999999",
        "1048577m", /* more than 1 TiB */
    };
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        n = 7;
        if (config_parse_size(ok[i].in, &n) != 0)
            fail_msg("size '%s' rejected", ok[i].in);
        if (n != ok[i].out)
            fail_msg("size '%s' = %zu, want %zu", ok[i].in, n, ok[i].out);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = 7;
        if (config_parse_size(bad[i], &n) == 0)
            fail_msg("size '%s' accepted as %zu", bad[i], n);
        assert_int_equal(n, 7);
    }
}

static void
test_parse_percentage(void **state)
{
    static const struct {
        const char *in;
        double out;
    } ok[] = {
        {"20%", 0.2},     {"0.2", 0.2}, {"12.5%", 0.125}, {"0", 0},
        {"1", 1},         {"100%", 1},  {"0%", 0},        {"0.0", 0},
        {"1.0", 1},       {".5", 0.5},  {"0.125", 0.125}, {"50%", 0.5},
        {"99.9%", 0.999},
    };
    static const char *const bad[] = {
        "",     "%",    "20",  "2",    "150%", "100.1%", "1.5",
        "-1%",  "-0.2", "abc", "0.2x", "20%%", "20 %",   " 20%",
        "20% ", "+20%", "inf", "nan",  "1e-1", "20%x",   "0.2%x",
    };
    double d;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        d = -1;
        if (config_parse_percentage(ok[i].in, &d) != 0)
            fail_msg("percentage '%s' rejected", ok[i].in);
        if (fabs_(d - ok[i].out) > 1e-9)
            fail_msg("percentage '%s' = %g, want %g", ok[i].in, d, ok[i].out);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d = -1;
        if (config_parse_percentage(bad[i], &d) == 0)
            fail_msg("percentage '%s' accepted as %g", bad[i], d);
        assert_true(d == -1);
    }
}

/*
 * BUG (config.c, config_parse_percentage): the value goes through strtod(),
 * so hexadecimal floats and exponents pass: "0x0.8" is read as 50% and
 * "5e-1%" as 0.5%. The documented forms are `20%` and `0.2` only. Fails
 * until the text is checked to be digits with at most one '.' (and an optional
 * trailing '%') before it is converted.
 */
static void
test_BUG_percentage_accepts_strtod_forms(void **state)
{
    static const char *const bad[] = {"0x0.8", "5e-1%", "1e0", "0.2e1%",
                                      ".5e0"};
    double d;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d = -1;
        if (config_parse_percentage(bad[i], &d) == 0)
            fail_msg("percentage '%s' accepted as %g", bad[i], d);
    }
}

static void
test_parse_uint(void **state)
{
    unsigned v;

    (void)state;
    assert_int_equal(config_parse_uint("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(config_parse_uint("10", 0, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(config_parse_uint("5", 5, 5, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(config_parse_uint("007", 0, 10, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(config_parse_uint("4294967295", 0, 4294967295u, &v), 0);
    assert_int_equal(v, 4294967295u);

    v = 99;
    assert_int_equal(config_parse_uint("11", 0, 10, &v), -1);
    assert_int_equal(config_parse_uint("4", 5, 10, &v), -1);
    assert_int_equal(config_parse_uint("0", 1, 10, &v), -1);
    assert_int_equal(config_parse_uint("4294967296", 0, 4294967295u, &v), -1);
    assert_int_equal(config_parse_uint("99999999999999999999999999", 0,
                                       4294967295u, &v),
                     -1);
    assert_int_equal(config_parse_uint("", 0, 10, &v), -1);
    assert_int_equal(config_parse_uint("-1", 0, 10, &v), -1);
    assert_int_equal(config_parse_uint("-0", 0, 10, &v), -1);
    assert_int_equal(config_parse_uint("+1", 0, 10, &v), -1);
    assert_int_equal(config_parse_uint(" 1", 0, 10, &v), -1);
    assert_int_equal(config_parse_uint("1 ", 0, 10, &v), -1);
    assert_int_equal(config_parse_uint("1.0", 0, 10, &v), -1);
    assert_int_equal(config_parse_uint("0x1", 0, 10, &v), -1);
    assert_int_equal(config_parse_uint("one", 0, 10, &v), -1);
    assert_int_equal(v, 99);
}

static void
test_parse_listen_addr(void **state)
{
    struct config_addr a;

    (void)state;
    memset(&a, 0, sizeof(a));
    assert_int_equal(config_parse_listen_addr("127.0.0.1:8080", &a), 0);
    assert_addr(&a, AF_INET, "127.0.0.1", 8080);
    assert_string_equal(a.text, "127.0.0.1:8080");

    assert_int_equal(config_parse_listen_addr("10.1.2.3:1", &a), 0);
    assert_addr(&a, AF_INET, "10.1.2.3", 1);
    assert_int_equal(config_parse_listen_addr("0.0.0.0:65535", &a), 0);
    assert_addr(&a, AF_INET, "0.0.0.0", 65535);

    assert_int_equal(config_parse_listen_addr("[::1]:443", &a), 0);
    assert_addr(&a, AF_INET6, "::1", 443);
    assert_string_equal(a.text, "[::1]:443");
    assert_int_equal(config_parse_listen_addr("[::]:80", &a), 0);
    assert_addr(&a, AF_INET6, "::", 80);
    assert_int_equal(config_parse_listen_addr("[2001:db8::5]:8443", &a), 0);
    assert_addr(&a, AF_INET6, "2001:db8::5", 8443);

    /* *:PORT is every IPv4 address; the text stays as written. */
    assert_int_equal(config_parse_listen_addr("*:8080", &a), 0);
    assert_addr(&a, AF_INET, "0.0.0.0", 8080);
    assert_string_equal(a.text, "*:8080");

    assert_int_equal(config_parse_listen_addr("localhost:8080", &a), 0);
    assert_addr(&a, AF_INET, "127.0.0.1", 8080);
    assert_string_equal(a.text, "localhost:8080");

    static const char *const bad[] = {
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:99999",
        "127.0.0.1:080",
        "127.0.0.1",
        "127.0.0.1:",
        ":8080",
        "8080",
        "",
        "::1:8080",
        "::1",
        "2001:db8::5:80",
        "[::1]",
        "[::1]:",
        "[::1]8080",
        "[::1]:0",
        "[::1]:65536",
        "[]:80",
        "[127.0.0.1]:80",
        "[*]:80",
        "[localhost]:80",
        "*",
        "*:",
        "*:0",
        "host.example:80",
        "256.0.0.1:80",
        "127.0.0.1:http",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1: 80",
        " 127.0.0.1:80",
        "127.0.0.1:80 ",
        "[fe80::1%lo]:80",
        "[::1:80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (config_parse_listen_addr(bad[i], &a) == 0)
            fail_msg("listen address '%s' accepted", bad[i]);
}

static void
test_parse_nameserver(void **state)
{
    struct config_addr a;

    (void)state;
    memset(&a, 0, sizeof(a));
    assert_int_equal(config_parse_nameserver("192.0.2.53", &a), 0);
    assert_addr(&a, AF_INET, "192.0.2.53", 53);
    assert_string_equal(a.text, "192.0.2.53:53");

    assert_int_equal(config_parse_nameserver("127.0.0.1:5353", &a), 0);
    assert_addr(&a, AF_INET, "127.0.0.1", 5353);
    assert_string_equal(a.text, "127.0.0.1:5353");

    assert_int_equal(config_parse_nameserver("[::1]:5353", &a), 0);
    assert_addr(&a, AF_INET6, "::1", 5353);
    assert_string_equal(a.text, "[::1]:5353");

    assert_int_equal(config_parse_nameserver("[2001:db8::53]", &a), 0);
    assert_addr(&a, AF_INET6, "2001:db8::53", 53);
    assert_string_equal(a.text, "[2001:db8::53]:53");

    /* A bare IPv6 address is unambiguous: port 53. */
    assert_int_equal(config_parse_nameserver("::1", &a), 0);
    assert_addr(&a, AF_INET6, "::1", 53);
    assert_string_equal(a.text, "[::1]:53");
    assert_int_equal(config_parse_nameserver("2001:db8::53", &a), 0);
    assert_addr(&a, AF_INET6, "2001:db8::53", 53);

    static const char *const bad[] = {
        "",
        ":53",
        "192.0.2.53:",
        "192.0.2.53:0",
        "192.0.2.53:65536",
        "[::1]:",
        "[::1]:0",
        "[]:53",
        "[192.0.2.53]:53",
        "dns.google",
        "dns.google:53",
        "*:53",
        "localhost",
        "256.1.1.1",
        "[::1]53",
        "192.0.2.53:dns",
        "2001:db8::zz",
        "[::1",
        " 192.0.2.53",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (config_parse_nameserver(bad[i], &a) == 0)
            fail_msg("nameserver '%s' accepted", bad[i]);
}

static void
test_names(void **state)
{
    (void)state;
    assert_string_equal(config_mode_name(MODE_HTTP), "http");
    assert_string_equal(config_mode_name(MODE_TCP), "tcp");
    assert_string_equal(config_balance_name(BALANCE_ROUNDROBIN), "roundrobin");
    assert_string_equal(config_balance_name(BALANCE_WEIGHTED), "weighted");
    assert_string_equal(config_balance_name(BALANCE_LEASTCONN), "leastconn");
    assert_string_equal(config_balance_name(BALANCE_HASH), "hash");
}

/* ---------------------------------------------------------------------- */
/* Documented defaults when nothing is set.                               */

static void
test_defaults(void **state)
{
    struct config *c;
    struct config_frontend *fe;
    struct config_backend *be;
    struct config_server *sv;

    (void)state;
    c = load_ok(MIN);

    /* [global] */
    assert_int_equal(c->workers, 1);
    assert_int_equal(c->max_connections, 10000);
    assert_double(c->shutdown_timeout, 10);
    assert_int_equal(c->log_level, LOG_LEVEL_INFO);
    assert_null(c->access_log);

    /* [stats] */
    assert_true(c->stats_enabled);
    assert_addr(&c->stats_listen, AF_INET, "127.0.0.1", 8404);
    assert_string_equal(c->stats_listen.text, "127.0.0.1:8404");
    assert_null(c->stats_token);

    /* [resolver] */
    assert_int_equal(c->nnameservers, 0); /* from /etc/resolv.conf */
    assert_null(c->nameservers);
    assert_non_null(c->hosts_file);
    assert_string_equal(c->hosts_file, "/etc/hosts");
    assert_int_equal(c->family, FAMILY_IPV4);
    assert_double(c->resolver_timeout, 1);
    assert_int_equal(c->resolver_attempts, 3);
    assert_double(c->min_ttl, 1);
    assert_double(c->max_ttl, 3600);
    assert_double(c->negative_ttl, 5);
    assert_double(c->stale_ttl, 3600);
    assert_double(c->jitter, 0.2);
    assert_double(c->prefetch, 0.1);
    assert_double(c->startup_timeout, 5);

    /* [frontend web] (mode is set: see test_default_mode) */
    assert_int_equal(c->nfrontends, 1);
    fe = &c->frontends[0];
    assert_string_equal(fe->name, "web");
    assert_int_equal(fe->line, 1);
    assert_int_equal(fe->nlisten, 1);
    assert_addr(&fe->listen[0], AF_INET, "127.0.0.1", 8080);
    assert_string_equal(fe->listen[0].text, "127.0.0.1:8080");
    assert_int_equal(fe->listen[0].line, 2);
    assert_string_equal(fe->backend_name, "app");
    assert_int_equal(fe->backend_line, 4);
    assert_int_equal(fe->backend, 0);
    assert_null(fe->tls_cert);
    assert_null(fe->tls_key);
    assert_double(fe->timeout_client, 30);
    assert_double(fe->timeout_request, 10);
    assert_int_equal(fe->max_header_size, 16 * 1024);
    assert_int_equal(fe->proxy_protocol, PROXY_PROTOCOL_OFF);

    /* [backend app] */
    assert_int_equal(c->nbackends, 1);
    be = &c->backends[0];
    assert_string_equal(be->name, "app");
    assert_int_equal(be->line, 5);
    assert_int_equal(be->balance, BALANCE_ROUNDROBIN);
    assert_int_equal(be->hash_key, HASH_KEY_CLIENT_IP);
    assert_double(be->timeout_connect, 2);
    assert_double(be->timeout_server, 30);
    assert_int_equal(be->retries, 2);
    assert_int_equal(be->health_check, HEALTH_TCP);
    assert_string_equal(be->health_path, "/health/ready");
    assert_int_equal(be->health_expect_lo, 200);
    assert_int_equal(be->health_expect_hi, 399);
    assert_double(be->health_interval, 5);
    assert_double(be->health_timeout, 2);
    assert_int_equal(be->rise, 3);
    assert_int_equal(be->fall, 3);
    assert_int_equal(be->passive_window, 10);
    assert_double(be->passive_error_rate, 0.5);
    assert_double(be->slow_start, 0);

    /* server defaults: weight 1, not backup */
    assert_int_equal(be->nservers, 1);
    sv = &be->servers[0];
    assert_string_equal(sv->spec, "127.0.0.1:9000");
    assert_string_equal(sv->host, "127.0.0.1");
    assert_int_equal(sv->port, 9000);
    assert_true(sv->is_literal);
    assert_int_equal(sv->addr.ss_family, AF_INET);
    assert_int_equal(sv->addrlen, sizeof(struct sockaddr_in));
    assert_int_equal(sv->weight, 1);
    assert_false(sv->backup);
    assert_int_equal(sv->line, 6);
    config_free(c);
}

/* mode defaults to http (docs/configuration.md). */
static void
test_default_mode(void **state)
{
    static const char text[] = "[frontend web]\n"
                               "listen = 127.0.0.1:8080\n"
                               "backend = app\n" BE;

    (void)state;
#if HAVE_HTTP
    {
        struct config *c = load_ok(text);
        assert_int_equal(c->frontends[0].mode, MODE_HTTP);
        config_free(c);
    }
#else
    /* Rejected at the section header, as no mode line exists. */
    assert_only_error(text, 1, "mode http is not supported yet");
#endif
}

/* ---------------------------------------------------------------------- */
/* Every key: a good value is stored, a bad one is refused.                */

enum feature {
    F_NONE,
    F_STATS,
    F_RESOLVER,
    F_TLS,
    F_HTTP,
    F_HEALTH,
    F_PASSIVE,
    F_SLOW_START,
    F_BALANCE,
    F_WORKERS,
    F_DNS_SERVERS,
};

static const bool feature_on[] = {
    [F_NONE] = true,
    [F_STATS] = HAVE_STATS,
    [F_RESOLVER] = HAVE_RESOLVER,
    [F_TLS] = HAVE_TLS,
    [F_HTTP] = HAVE_HTTP,
    [F_HEALTH] = HAVE_HEALTH,
    [F_PASSIVE] = HAVE_PASSIVE,
    [F_SLOW_START] = HAVE_SLOW_START,
    [F_BALANCE] = HAVE_BALANCE,
    [F_WORKERS] = HAVE_WORKERS,
    [F_DNS_SERVERS] = HAVE_DNS_SERVERS,
};

struct key_case {
    enum feature feat;   /* feature the good value needs */
    const char *section; /* global, stats, resolver, frontend, backend */
    const char *good;    /* "key = value" to accept */
    void (*check)(const struct config *c); /* asserts what was stored */
    const char *bad;      /* "key = value" to refuse, or NULL */
    const char *expect;   /* part of the bad value's message */
    const char *rejected; /* while feat is off: the good value's
                                   error */
};

#define C(name) static void name(const struct config *c)
#define FE0 (&c->frontends[0])
#define BE0 (&c->backends[0])

C(ck_workers_1) { assert_int_equal(c->workers, 1); }
C(ck_workers_4) { assert_int_equal(c->workers, 4); }
C(ck_workers_auto) { assert_int_equal(c->workers, 0); }
C(ck_max_conn) { assert_int_equal(c->max_connections, 500); }
C(ck_max_conn_hi) { assert_int_equal(c->max_connections, 1000000); }
C(ck_shutdown) { assert_double(c->shutdown_timeout, 0.25); }
C(ck_shutdown_0) { assert_double(c->shutdown_timeout, 0); }
C(ck_log_error) { assert_int_equal(c->log_level, LOG_LEVEL_ERROR); }
C(ck_log_warn) { assert_int_equal(c->log_level, LOG_LEVEL_WARN); }
C(ck_log_info) { assert_int_equal(c->log_level, LOG_LEVEL_INFO); }
C(ck_log_debug) { assert_int_equal(c->log_level, LOG_LEVEL_DEBUG); }
C(ck_access_stderr) { assert_string_equal(c->access_log, "stderr"); }
C(ck_access_path)
{
    assert_string_equal(c->access_log, "/var/log/ferry/access.log");
}
C(ck_access_off) { assert_null(c->access_log); }
C(ck_stats_listen)
{
    assert_true(c->stats_enabled);
    assert_addr(&c->stats_listen, AF_INET, "127.0.0.1", 9100);
    assert_int_equal(c->stats_listen.line, 2);
}
C(ck_stats_off) { assert_false(c->stats_enabled); }
C(ck_stats_token) { assert_string_equal(c->stats_token, "s3cr3t-T0ken"); }
C(ck_nameservers)
{
    assert_int_equal(c->nnameservers, 3);
    assert_addr(&c->nameservers[0].addr, AF_INET, "127.0.0.1", 5353);
    assert_addr(&c->nameservers[1].addr, AF_INET6, "::1", 53);
    assert_addr(&c->nameservers[2].addr, AF_INET, "192.0.2.1", 53);
}
C(ck_hosts_file) { assert_string_equal(c->hosts_file, "/tmp/hosts"); }
C(ck_hosts_off) { assert_null(c->hosts_file); }
C(ck_family_v6) { assert_int_equal(c->family, FAMILY_IPV6); }
C(ck_family_any) { assert_int_equal(c->family, FAMILY_ANY); }
C(ck_family_v4) { assert_int_equal(c->family, FAMILY_IPV4); }
C(ck_res_timeout) { assert_double(c->resolver_timeout, 0.5); }
C(ck_attempts) { assert_int_equal(c->resolver_attempts, 5); }
C(ck_min_ttl) { assert_double(c->min_ttl, 0); }
C(ck_max_ttl) { assert_double(c->max_ttl, 600); }
C(ck_neg_ttl) { assert_double(c->negative_ttl, 30); }
C(ck_stale_ttl) { assert_double(c->stale_ttl, 0); }
C(ck_jitter) { assert_double(c->jitter, 0.1); }
C(ck_prefetch) { assert_double(c->prefetch, 0); }
C(ck_prefetch_frac) { assert_double(c->prefetch, 0.25); }
C(ck_startup) { assert_double(c->startup_timeout, 120); }
C(ck_listen_v6)
{
    assert_int_equal(FE0->nlisten, 2);
    assert_addr(&FE0->listen[0], AF_INET6, "::1", 8081);
    assert_string_equal(FE0->listen[0].text, "[::1]:8081");
    assert_int_equal(FE0->listen[0].line, 2);
    assert_int_equal(FE0->listen[1].line, 3);
}
C(ck_mode_tcp) { assert_int_equal(FE0->mode, MODE_TCP); }
C(ck_mode_http) { assert_int_equal(FE0->mode, MODE_HTTP); }
C(ck_tls_cert) { assert_string_equal(FE0->tls_cert, "/etc/ferry/c.pem"); }
C(ck_tls_key) { assert_string_equal(FE0->tls_key, "/etc/ferry/k.pem"); }
C(ck_timeout_client) { assert_double(FE0->timeout_client, 45); }
C(ck_timeout_request) { assert_double(FE0->timeout_request, 3); }
C(ck_max_header) { assert_int_equal(FE0->max_header_size, 32768); }
C(ck_max_header_1m) { assert_int_equal(FE0->max_header_size, 1048576); }
C(ck_pp_v1) { assert_int_equal(FE0->proxy_protocol, PROXY_PROTOCOL_V1); }
C(ck_pp_v2) { assert_int_equal(FE0->proxy_protocol, PROXY_PROTOCOL_V2); }
C(ck_pp_off) { assert_int_equal(FE0->proxy_protocol, PROXY_PROTOCOL_OFF); }
C(ck_bal_rr) { assert_int_equal(BE0->balance, BALANCE_ROUNDROBIN); }
C(ck_bal_w) { assert_int_equal(BE0->balance, BALANCE_WEIGHTED); }
C(ck_bal_lc) { assert_int_equal(BE0->balance, BALANCE_LEASTCONN); }
C(ck_bal_hash) { assert_int_equal(BE0->balance, BALANCE_HASH); }
C(ck_hk_ip) { assert_int_equal(BE0->hash_key, HASH_KEY_CLIENT_IP); }
C(ck_hk_uri) { assert_int_equal(BE0->hash_key, HASH_KEY_URI); }
C(ck_hk_header)
{
    assert_int_equal(BE0->hash_key, HASH_KEY_HEADER);
    assert_string_equal(BE0->hash_header, "X-User-Id");
}
C(ck_t_connect) { assert_double(BE0->timeout_connect, 0.5); }
C(ck_t_server) { assert_double(BE0->timeout_server, 60); }
C(ck_retries_0) { assert_int_equal(BE0->retries, 0); }
C(ck_retries_15) { assert_int_equal(BE0->retries, 15); }
C(ck_hc_http) { assert_int_equal(BE0->health_check, HEALTH_HTTP); }
C(ck_hc_none) { assert_int_equal(BE0->health_check, HEALTH_NONE); }
C(ck_hc_tcp) { assert_int_equal(BE0->health_check, HEALTH_TCP); }
C(ck_hpath) { assert_string_equal(BE0->health_path, "/ping?full=1"); }
C(ck_hexpect_one)
{
    assert_int_equal(BE0->health_expect_lo, 204);
    assert_int_equal(BE0->health_expect_hi, 204);
}
C(ck_hexpect_range)
{
    assert_int_equal(BE0->health_expect_lo, 200);
    assert_int_equal(BE0->health_expect_hi, 299);
}
C(ck_hinterval) { assert_double(BE0->health_interval, 1); }
C(ck_htimeout) { assert_double(BE0->health_timeout, 0.5); }
C(ck_rise) { assert_int_equal(BE0->rise, 1); }
C(ck_fall) { assert_int_equal(BE0->fall, 100); }
C(ck_pwin_0) { assert_int_equal(BE0->passive_window, 0); }
C(ck_pwin) { assert_int_equal(BE0->passive_window, 20); }
C(ck_prate) { assert_double(BE0->passive_error_rate, 0.25); }
C(ck_prate_1) { assert_double(BE0->passive_error_rate, 1); }
C(ck_slow) { assert_double(BE0->slow_start, 30); }
C(ck_srv_dns)
{
    assert_int_equal(BE0->nservers, 2);
    assert_false(BE0->servers[0].is_literal);
    assert_string_equal(BE0->servers[0].host, "api.internal");
    assert_string_equal(BE0->servers[0].spec, "api.internal:8080");
    assert_int_equal(BE0->servers[0].port, 8080);
    assert_int_equal(BE0->servers[0].line, 6);
}

static const struct key_case key_cases[] = {
    /* [global] */
    {F_NONE, "global", "workers = 1", ck_workers_1, "workers = 0",
     "a whole number from 1 to 256, or auto", NULL},
    {F_WORKERS, "global", "workers = 4", ck_workers_4, "workers = 257",
     "a whole number from 1 to 256, or auto",
     "workers other than 1 is not supported yet"},
    {F_WORKERS, "global", "workers = auto", ck_workers_auto, "workers = many",
     "a whole number from 1 to 256, or auto",
     "workers other than 1 is not supported yet"},
    {F_NONE, "global", "max_connections = 500", ck_max_conn,
     "max_connections = 0", "a whole number from 1 to 1000000", NULL},
    {F_NONE, "global", "max_connections = 1000000", ck_max_conn_hi,
     "max_connections = 1000001", "a whole number from 1 to 1000000", NULL},
    {F_NONE, "global", "shutdown_timeout = 250ms", ck_shutdown,
     "shutdown_timeout = 10x", "a duration such as 500ms, 5s, 2m or 1h", NULL},
    {F_NONE, "global", "shutdown_timeout = 0", ck_shutdown_0,
     "shutdown_timeout = -1s", "a duration such as", NULL},
    {F_NONE, "global", "log_level = error", ck_log_error, "log_level = verbose",
     "one of error, warn, info, debug", NULL},
    {F_NONE, "global", "log_level = warn", ck_log_warn, "log_level = WARN",
     "one of error, warn, info, debug", NULL},
    {F_NONE, "global", "log_level = info", ck_log_info,
     "log_level =", "one of error, warn, info, debug", NULL},
    {F_NONE, "global", "log_level = debug", ck_log_debug, "log_level = trace",
     "one of error, warn, info, debug", NULL},
    {F_NONE, "global", "access_log = stderr", ck_access_stderr,
     "access_log =", "off, stderr, or a file path", NULL},
    {F_NONE, "global", "access_log = /var/log/ferry/access.log", ck_access_path,
     NULL, NULL, NULL},
    {F_NONE, "global", "access_log = off", ck_access_off, NULL, NULL, NULL},

    /* [stats] */
    {F_STATS, "stats", "listen = 127.0.0.1:9100", ck_stats_listen,
     "listen = 9100", "an address HOST:PORT, [IPv6]:PORT or *:PORT, or off",
     NULL},
    {F_STATS, "stats", "listen = off", ck_stats_off, "listen = on",
     "an address HOST:PORT, [IPv6]:PORT or *:PORT, or off", NULL},
    {F_STATS, "stats", "token = s3cr3t-T0ken", ck_stats_token,
     "token = two words", "a non-empty token without spaces", NULL},

    /* [resolver] */
    {F_RESOLVER, "resolver", "nameservers = 127.0.0.1:5353, ::1 ,192.0.2.1",
     ck_nameservers, "nameservers = dns.google",
     "comma-separated IP, IP:PORT or [IPv6]:PORT", NULL},
    {F_RESOLVER, "resolver", "hosts_file = /tmp/hosts", ck_hosts_file,
     "hosts_file =", "a file path or off", NULL},
    {F_RESOLVER, "resolver", "hosts_file = off", ck_hosts_off, NULL, NULL,
     NULL},
    {F_RESOLVER, "resolver", "family = ipv6", ck_family_v6, "family = ipv5",
     "one of ipv4, ipv6, any", NULL},
    {F_RESOLVER, "resolver", "family = any", ck_family_any, "family = both",
     "one of ipv4, ipv6, any", NULL},
    {F_RESOLVER, "resolver", "family = ipv4", ck_family_v4, NULL, NULL, NULL},
    {F_RESOLVER, "resolver", "timeout = 500ms", ck_res_timeout, "timeout = 0",
     "a duration above zero", NULL},
    {F_RESOLVER, "resolver", "attempts = 5", ck_attempts, "attempts = 11",
     "a whole number from 1 to 10", NULL},
    {F_RESOLVER, "resolver", "min_ttl = 0", ck_min_ttl, "min_ttl = -1s",
     "a duration such as", NULL},
    {F_RESOLVER, "resolver", "max_ttl = 10m", ck_max_ttl, "max_ttl = 0",
     "a duration above zero", NULL},
    {F_RESOLVER, "resolver", "negative_ttl = 30s", ck_neg_ttl,
     "negative_ttl = 0s", "a duration above zero", NULL},
    {F_RESOLVER, "resolver", "stale_ttl = 0", ck_stale_ttl, "stale_ttl = 1d",
     "a duration such as", NULL},
    {F_RESOLVER, "resolver", "jitter = 10%", ck_jitter, "jitter = 100%",
     "a percentage below 100%", NULL},
    {F_RESOLVER, "resolver", "prefetch = 0", ck_prefetch, "prefetch = 0.2x",
     "a percentage below 100%", NULL},
    {F_RESOLVER, "resolver", "prefetch = 0.25", ck_prefetch_frac,
     "prefetch = 1", "a percentage below 100%", NULL},
    {F_RESOLVER, "resolver", "startup_timeout = 2m", ck_startup,
     "startup_timeout = 0", "a duration above zero", NULL},

    /* [frontend web] (listen and backend: see their own tests) */
    {F_NONE, "frontend", "listen = [::1]:8081", ck_listen_v6, "listen = 8081",
     "an address IP:PORT, [IPv6]:PORT or *:PORT", NULL},
    {F_NONE, "frontend", "mode = tcp", ck_mode_tcp, "mode = udp",
     "one of http, tcp", NULL},
    {F_HTTP, "frontend", "mode = http", ck_mode_http, "mode = HTTP",
     "one of http, tcp", "mode http is not supported yet; set mode = tcp"},
    {F_TLS, "frontend", "tls_cert = /etc/ferry/c.pem", ck_tls_cert,
     "tls_cert =", "a file path", NULL},
    {F_TLS, "frontend", "tls_key = /etc/ferry/k.pem", ck_tls_key,
     "tls_key =", "a file path", NULL},
    {F_NONE, "frontend", "timeout_client = 45s", ck_timeout_client,
     "timeout_client = 0", "a duration above zero", NULL},
    {F_HTTP, "frontend", "timeout_request = 3", ck_timeout_request,
     "timeout_request = 3 s", "a duration above zero", NULL},
    {F_HTTP, "frontend", "max_header_size = 32k", ck_max_header,
     "max_header_size = 512", "a size from 1k to 1m", NULL},
    {F_HTTP, "frontend", "max_header_size = 1m", ck_max_header_1m,
     "max_header_size = 2m", "a size from 1k to 1m", NULL},
    {F_NONE, "frontend", "proxy_protocol = v1", ck_pp_v1, "proxy_protocol = v3",
     "one of off, v1, v2", NULL},
    {F_NONE, "frontend", "proxy_protocol = v2", ck_pp_v2, "proxy_protocol = on",
     "one of off, v1, v2", NULL},
    {F_NONE, "frontend", "proxy_protocol = off", ck_pp_off, NULL, NULL, NULL},

    /* [backend app] (server: see its own tests) */
    {F_NONE, "backend", "balance = roundrobin", ck_bal_rr, "balance = random",
     "one of roundrobin, weighted, leastconn, hash", NULL},
    {F_BALANCE, "backend", "balance = weighted", ck_bal_w, "balance = Weighted",
     "one of roundrobin, weighted, leastconn, hash",
     "balance weighted is not supported yet; use roundrobin"},
    {F_BALANCE, "backend", "balance = leastconn", ck_bal_lc,
     "balance = least_conn", "one of roundrobin, weighted, leastconn, hash",
     "balance leastconn is not supported yet; use roundrobin"},
    {F_BALANCE, "backend", "balance = hash", ck_bal_hash,
     "balance = consistent", "one of roundrobin, weighted, leastconn, hash",
     "balance hash is not supported yet; use roundrobin"},
    {F_NONE, "backend", "hash_key = client_ip", ck_hk_ip, "hash_key = cookie",
     "client_ip, uri, or header:NAME", NULL},
    {F_NONE, "backend", "hash_key = uri", ck_hk_uri,
     "hash_key = header:", "client_ip, uri, or header:NAME", NULL},
    {F_NONE, "backend", "hash_key = header:X-User-Id", ck_hk_header,
     "hash_key = header:X User", "client_ip, uri, or header:NAME", NULL},
    {F_NONE, "backend", "timeout_connect = 500ms", ck_t_connect,
     "timeout_connect = 0ms", "a duration above zero", NULL},
    {F_NONE, "backend", "timeout_server = 1m", ck_t_server,
     "timeout_server = 1.5m", "a duration above zero", NULL},
    {F_NONE, "backend", "retries = 0", ck_retries_0, "retries = -1",
     "a whole number from 0 to 15", NULL},
    {F_NONE, "backend", "retries = 15", ck_retries_15, "retries = 16",
     "a whole number from 0 to 15", NULL},
    {F_HEALTH, "backend", "health_check = http", ck_hc_http,
     "health_check = icmp", "one of none, tcp, http", NULL},
    {F_HEALTH, "backend", "health_check = none", ck_hc_none, NULL, NULL, NULL},
    {F_HEALTH, "backend", "health_check = tcp", ck_hc_tcp, NULL, NULL, NULL},
    {F_HEALTH, "backend", "health_path = /ping?full=1", ck_hpath,
     "health_path = ping", "a path starting with '/'", NULL},
    {F_HEALTH, "backend", "health_expect = 204", ck_hexpect_one,
     "health_expect = 99", "a status code or range from 100 to 599", NULL},
    {F_HEALTH, "backend", "health_expect = 200-299", ck_hexpect_range,
     "health_expect = 300-200", "a status code or range from 100 to 599", NULL},
    {F_HEALTH, "backend", "health_interval = 1s", ck_hinterval,
     "health_interval = 0", "a duration above zero", NULL},
    {F_HEALTH, "backend", "health_timeout = 500ms", ck_htimeout,
     "health_timeout = 0s", "a duration above zero", NULL},
    {F_HEALTH, "backend", "rise = 1", ck_rise, "rise = 0",
     "a whole number from 1 to 100", NULL},
    {F_HEALTH, "backend", "fall = 100", ck_fall, "fall = 101",
     "a whole number from 1 to 100", NULL},
    {F_PASSIVE, "backend", "passive_window = 0", ck_pwin_0,
     "passive_window = 1001", "a whole number from 0 to 1000", NULL},
    {F_PASSIVE, "backend", "passive_window = 20", ck_pwin, NULL, NULL, NULL},
    {F_PASSIVE, "backend", "passive_error_rate = 25%", ck_prate,
     "passive_error_rate = 150%",
     "a percentage such as 20% or a fraction such as 0.2", NULL},
    {F_PASSIVE, "backend", "passive_error_rate = 100%", ck_prate_1,
     "passive_error_rate = 50", "a percentage such as 20%", NULL},
    {F_SLOW_START, "backend", "slow_start = 30s", ck_slow, "slow_start = 1.5s",
     "a duration such as", NULL},
    {F_DNS_SERVERS, "backend", "server = api.internal:8080", ck_srv_dns,
     "server = api..internal:8080", "a valid DNS name",
     "server api.internal:8080: DNS names are not supported yet"},
};

#define NKEY_CASES (sizeof(key_cases) / sizeof(key_cases[0]))

/*
 * Builds a file with `line` on line 2 of its section, inside an otherwise
 * valid configuration; returns the line number the key ends up on.
 */
static int
key_case_text(const struct key_case *k, const char *line, char *buf, size_t len)
{
    if (strcmp(k->section, "frontend") == 0) {
        bool has_mode = strncmp(line, "mode", 4) == 0;
        snprintf(buf, len,
                 "[frontend web]\n%s\nlisten = 127.0.0.1:8080\n"
                 "backend = app\n%s" BE,
                 line, has_mode ? "" : "mode = tcp\n");
        return 2;
    }
    if (strcmp(k->section, "backend") == 0) {
        snprintf(buf, len, FE "[backend app]\n%s\nserver = 127.0.0.1:9000\n",
                 line);
        return 6;
    }
    snprintf(buf, len, "[%s]\n%s\n" MIN, k->section, line);
    return 2;
}

/* "key = value" -> key, value. */
static void
split_line(const char *line, char *key, size_t klen, const char **value)
{
    const char *eq = strchr(line, '=');
    size_t n;

    assert_non_null(eq);
    n = (size_t)(eq - line);
    while (n > 0 && line[n - 1] == ' ')
        n--;
    assert_true(n < klen);
    memcpy(key, line, n);
    key[n] = '\0';
    *value = eq + 1;
    while (**value == ' ')
        (*value)++;
}

static void
run_key_case(void **state)
{
    const struct key_case *k = *state;
    char text[1024], key[64], msg[256];
    const char *value;
    struct config_errors e;
    int line;

    line = key_case_text(k, k->good, text, sizeof(text));
    if (feature_on[k->feat] && k->feat == F_TLS) {
        /* Alone, either TLS key is an error now that the pair is loaded
         * and checked; test_tls_pair covers the keys with real files. */
        assert_only_error(text, line, "tls_cert and tls_key go together");
    } else if (feature_on[k->feat]) {
        struct config *c = load_ok(text);
        k->check(c);
        config_free(c);
    } else {
        assert_non_null(k->rejected);
        assert_only_error(text, line, k->rejected);
    }

    if (k->bad == NULL)
        return;
    line = key_case_text(k, k->bad, text, sizeof(text));
    load_bad(text, &e);
    split_line(k->bad, key, sizeof(key), &value);
    snprintf(msg, sizeof(msg), "bad value '%s' for %s: expected ", value, key);
    assert_error(&e, line, msg);
    assert_error(&e, line, k->expect);
    config_errors_free(&e);
}

/* Writes a self-signed P-256 certificate and its key as PEM files. */
static void
write_cert_pair(const char *cert_path, const char *key_path)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *f;

    assert_non_null(pkey);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, pkey);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
    f = fopen(cert_path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

static void
test_tls_pair(void **state)
{
    char c1[512], k1[512], c2[512], k2[512], text[2048];
    struct config_errors e;
    struct config *c;

    (void)state;
    snprintf(c1, sizeof(c1), "%s/c1.pem", g_dir);
    snprintf(k1, sizeof(k1), "%s/k1.pem", g_dir);
    snprintf(c2, sizeof(c2), "%s/c2.pem", g_dir);
    snprintf(k2, sizeof(k2), "%s/k2.pem", g_dir);
    write_cert_pair(c1, k1);
    write_cert_pair(c2, k2);

    snprintf(text, sizeof(text),
             "[frontend web]\ntls_cert = %s\ntls_key = %s\n"
             "listen = 127.0.0.1:8443\nbackend = app\n" BE,
             c1, k1);
    c = load_ok(text);
    assert_string_equal(c->frontends[0].tls_cert, c1);
    assert_string_equal(c->frontends[0].tls_key, k1);
    config_free(c);

    /* A key of another certificate, on the tls_cert line. */
    snprintf(text, sizeof(text),
             "[frontend web]\ntls_cert = %s\ntls_key = %s\n"
             "listen = 127.0.0.1:8443\nbackend = app\n" BE,
             c1, k2);
    assert_only_error(text, 2, "[frontend web]");
    /* A file that does not exist. */
    snprintf(text, sizeof(text),
             "[frontend web]\ntls_cert = %s/none.pem\ntls_key = %s\n"
             "listen = 127.0.0.1:8443\nbackend = app\n" BE,
             g_dir, k1);
    assert_only_error(text, 2, "[frontend web]");
    /* TLS needs mode http. */
    snprintf(text, sizeof(text),
             "[frontend web]\ntls_cert = %s\ntls_key = %s\nmode = tcp\n"
             "listen = 127.0.0.1:8443\nbackend = app\n" BE,
             c1, k1);
    assert_only_error(text, 2, "TLS termination needs mode = http");

    /* Without a check, config_load() leaves the files alone. */
    snprintf(text, sizeof(text),
             "[frontend web]\ntls_cert = %s/none.pem\ntls_key = %s\n"
             "listen = 127.0.0.1:8443\nbackend = app\n" BE,
             g_dir, k2);
    c = config_load(write_conf(text), &e);
    assert_non_null(c);
    assert_int_equal(e.n, 0);
    config_free(c);
}

/* ---------------------------------------------------------------------- */
/* Structure errors, each with its line.                                   */

static void
test_unknown_section(void **state)
{
    (void)state;
    assert_only_error(MIN "[frontends x]\nlisten = 127.0.0.1:1\n", 7,
                      "unknown section [frontends x] (expected [global], "
                      "[stats], [resolver], [frontend NAME] or "
                      "[backend NAME])");
    assert_only_error("[Global]\n" MIN, 1, "unknown section [Global]");
    assert_only_error("[server]\n" MIN, 1, "unknown section [server]");
    assert_only_error(MIN "[globalx]\nlog_level = debug\n", 7,
                      "unknown section [globalx]");
}

static void
test_unknown_key_names_section(void **state)
{
    (void)state;
    assert_only_error("[global]\ncolour = blue\n" MIN, 2,
                      "unknown key 'colour' in [global]");
    assert_only_error("[stats]\nport = 1\n" MIN, 2,
                      "unknown key 'port' in [stats]");
    assert_only_error("[resolver]\nserver = 1.1.1.1\n" MIN, 2,
                      "unknown key 'server' in [resolver]");
    assert_only_error(FE "timeout = 1s\n" BE, 5,
                      "unknown key 'timeout' in [frontend web]");
    assert_only_error(MIN "listen = 127.0.0.1:1\n", 7,
                      "unknown key 'listen' in [backend app]");
    /* Key names are case-sensitive. */
    assert_only_error(MIN "[global]\nLog_Level = warn\n", 8,
                      "unknown key 'Log_Level' in [global]");
}

static void
test_bad_value_names_key_and_expectation(void **state)
{
    (void)state;
    assert_only_error(FE "timeout_client = soon\n" BE, 5,
                      "bad value 'soon' for timeout_client: expected a "
                      "duration above zero such as 500ms, 5s, 2m or 1h");
    assert_only_error(MIN "retries = lots\n", 7,
                      "bad value 'lots' for retries: expected a whole "
                      "number from 0 to 15");
}

static void
test_missing_required(void **state)
{
    (void)state;
    assert_only_error("[frontend web]\nmode = tcp\nbackend = app\n" BE, 1,
                      "[frontend web] is missing required key 'listen'");
    assert_only_error("[frontend web]\nlisten = 127.0.0.1:8080\n"
                      "mode = tcp\n" BE,
                      1, "[frontend web] is missing required key 'backend'");
    assert_only_error(FE "[backend app]\nretries = 1\n", 5,
                      "[backend app] is missing required key 'server'");
    /* An empty section: both missing keys, on the header's line. */
    {
        struct config_errors e;
        load_bad(MIN "\n[frontend other]\n\n", &e);
        assert_error(&e, 8,
                     "[frontend other] is missing required key "
                     "'listen'");
        assert_error(&e, 8,
                     "[frontend other] is missing required key "
                     "'backend'");
        config_errors_free(&e);
    }
}

static void
test_duplicate_sections(void **state)
{
    (void)state;
    /* The duplicate's keys are ignored: no further errors from them. */
    assert_only_error(MIN "[frontend web]\nlisten = 127.0.0.1:9999\n", 7,
                      "duplicate section [frontend web] (first defined on "
                      "line 1)");
    assert_only_error(MIN "\n[backend app]\nserver = 127.0.0.1:9001\n", 8,
                      "duplicate section [backend app] (first defined on "
                      "line 5)");
    assert_only_error("[global]\nlog_level = warn\n" MIN
                      "[global]\nlog_level = warn\n",
                      9,
                      "duplicate section [global] (first defined on "
                      "line 1)");
    assert_only_error("[resolver]\n[resolver]\n" MIN, 2,
                      "duplicate section [resolver] (first defined on "
                      "line 1)");
    assert_only_error("[stats]\n" MIN "[stats]\n", 8,
                      "duplicate section [stats] (first defined on line 1)");
}

/* A frontend and a backend may share a name; two frontends may not. */
static void
test_frontend_and_backend_same_name(void **state)
{
    struct config *c;

    (void)state;
    c = load_ok("[frontend app]\nlisten = 127.0.0.1:8080\nmode = tcp\n"
                "backend = app\n" BE);
    assert_string_equal(c->frontends[0].name, "app");
    assert_string_equal(c->backends[0].name, "app");
    config_free(c);
}

static void
test_key_set_twice(void **state)
{
    (void)state;
    assert_only_error("[global]\nlog_level = warn\n\nlog_level = debug\n" MIN,
                      4,
                      "'log_level' is set twice in [global] (first on "
                      "line 2)");
    assert_only_error(FE "mode = tcp\n" BE, 5,
                      "'mode' is set twice in [frontend web] (first on line "
                      "3)");
    assert_only_error(FE "backend = app\n" BE, 5,
                      "'backend' is set twice in [frontend web] (first on "
                      "line 4)");
    assert_only_error(MIN "retries = 1\nretries = 1\n", 8,
                      "'retries' is set twice in [backend app] (first on "
                      "line 7)");
}

/* listen and server may repeat; one key in two sections is no repeat. */
static void
test_repeatable_keys(void **state)
{
    struct config *c;

    (void)state;
    c = load_ok(FE "listen = 127.0.0.1:8081\nlisten = [::1]:8080\n" BE
                   "server = 127.0.0.1:9001\nserver = [::1]:9000\n"
                   "[frontend two]\nlisten = 127.0.0.1:8090\nmode = tcp\n"
                   "backend = app\n");
    assert_int_equal(c->nfrontends, 2);
    assert_int_equal(c->frontends[0].nlisten, 3);
    assert_string_equal(c->frontends[0].listen[0].text, "127.0.0.1:8080");
    assert_string_equal(c->frontends[0].listen[1].text, "127.0.0.1:8081");
    assert_string_equal(c->frontends[0].listen[2].text, "[::1]:8080");
    assert_int_equal(c->frontends[0].listen[2].line, 6);
    assert_int_equal(c->backends[0].nservers, 3);
    assert_string_equal(c->backends[0].servers[0].spec, "127.0.0.1:9000");
    assert_string_equal(c->backends[0].servers[1].spec, "127.0.0.1:9001");
    assert_string_equal(c->backends[0].servers[2].spec, "[::1]:9000");
    assert_int_equal(c->backends[0].servers[2].line, 10);
    assert_int_equal(c->frontends[1].nlisten, 1);
    assert_int_equal(c->frontends[1].backend, 0);
    config_free(c);
}

static void
test_frontend_backend_reference(void **state)
{
    struct config *c;

    (void)state;
    assert_only_error("[frontend web]\nlisten = 127.0.0.1:8080\nmode = tcp\n"
                      "\nbackend = nope\n" BE,
                      5,
                      "[frontend web] uses backend 'nope', which is not "
                      "defined");
    /* A backend may be defined after the frontend that names it; the index
     * points at the right one. */
    c = load_ok("[frontend web]\nlisten = 127.0.0.1:8080\nmode = tcp\n"
                "backend = second\n" BE
                "[backend second]\nserver = 127.0.0.1:9100\n");
    assert_int_equal(c->nbackends, 2);
    assert_int_equal(c->frontends[0].backend, 1);
    assert_string_equal(c->backends[1].name, "second");
    config_free(c);
    assert_only_error("[frontend web]\nlisten = 127.0.0.1:8080\nmode = tcp\n"
                      "backend = a b\n" BE,
                      4,
                      "bad value 'a b' for backend: expected a backend "
                      "name");
}

/* A line of access_log = PATH exactly n characters long. */
static void
long_line(char *buf, size_t n)
{
    static const char prefix[] = "access_log = /tmp/";

    assert_true(n > sizeof(prefix) && n < 8000);
    memcpy(buf, prefix, sizeof(prefix) - 1);
    memset(buf + sizeof(prefix) - 1, 'x', n - (sizeof(prefix) - 1));
    buf[n] = '\0';
}

static void
test_line_length_limit(void **state)
{
    static char line[8192], text[8192 + 512];
    struct config *c;
    struct config_errors e;

    (void)state;
    /* 197 characters: accepted and stored whole. */
    long_line(line, 197);
    snprintf(text, sizeof(text), "[global]\n%s\n" MIN, line);
    c = load_ok(text);
    assert_int_equal(strlen(c->access_log), 197 - strlen("access_log = "));
    assert_string_equal(c->access_log, line + strlen("access_log = "));
    config_free(c);

    /* The limit counts characters, not the line ending. */
    snprintf(text, sizeof(text), "[global]\r\n%s\r\n" MIN, line);
    c = load_ok(text);
    assert_int_equal(strlen(c->access_log), 197 - strlen("access_log = "));
    config_free(c);

    /* 198 and more: an error on that line, never a silently cut value; the
     * lines after it keep their numbers. */
    long_line(line, 198);
    snprintf(text, sizeof(text), "[global]\n%s\nlog_level = loud\n" MIN, line);
    load_bad(text, &e);
    assert_error(&e, 2, "line is 198 characters long; the limit is 197");
    assert_error(&e, 3, "bad value 'loud' for log_level");
    assert_int_equal(e.n, 2);
    config_errors_free(&e);

    long_line(line, 5000);
    snprintf(text, sizeof(text), MIN "[global]\n%s\n", line);
    assert_only_error(text, 8,
                      "line is 5000 characters long; the limit is "
                      "197");

    /* A long server line (more servers per line would be the temptation). */
    snprintf(text, sizeof(text), MIN "server = 127.0.0.1:9001 %*s\n", 200,
             "backup");
    assert_only_error(text, 7, "the limit is 197");
}

static void
test_unreadable_file(void **state)
{
    char path[sizeof(g_dir) + 32], want[sizeof(path) + 64];
    struct config_errors e;

    (void)state;
    snprintf(path, sizeof(path), "%s/does-not-exist.conf", g_dir);
    assert_null(load(path, &e));
    assert_int_equal(e.n, 1);
    snprintf(want, sizeof(want),
             "%s:0: cannot read the file: No such file or directory", path);
    assert_string_equal(e.msgs[0], want);
    config_errors_free(&e);

    /* A directory opens but cannot be read: still line 0. */
    snprintf(g_path, sizeof(g_path), "%s", g_dir);
    assert_null(load(g_dir, &e));
    assert_error(&e, 0, "read error: Is a directory");
    config_errors_free(&e);
}

static void
test_no_frontend(void **state)
{
    (void)state;
    assert_only_error(BE, 0,
                      "no [frontend NAME] section: nothing would "
                      "accept connections");
    assert_only_error("", 0, "no [frontend NAME] section");
    assert_only_error("; only a comment\n\n[global]\nlog_level = debug\n", 0,
                      "no [frontend NAME] section");
}

static void
test_key_outside_section(void **state)
{
    (void)state;
    assert_only_error("\n; header comes later\nlog_level = debug\n" MIN, 3,
                      "'log_level' is outside of any section (start with a "
                      "[section] line)");
}

static void
test_malformed_section_header(void **state)
{
    static char name64[80], name65[80], text[512];
    struct config *c;

    (void)state;
    /* Keys under a bad header are skipped, not reported again. */
    assert_only_error(MIN "[global\nlog_level = debug\n", 7,
                      "malformed section header (expected [NAME])");
    assert_only_error(MIN "[global] log_level = debug\n", 7,
                      "malformed section header");
    assert_only_error(MIN "global]\n", 7,
                      "expected 'key = value' or a [section] line");
    assert_only_error(MIN "[]\nfoo = 1\n", 7, "empty section name");
    assert_only_error(MIN "[frontend]\nlisten = 127.0.0.1:1\n", 7,
                      "[frontend] needs one NAME of letters, digits, '_', "
                      "'-' or '.' (at most 64 characters)");
    assert_only_error(MIN "[backend a b]\n", 7, "[backend] needs one NAME");
    assert_only_error(MIN "[frontend a/b]\n", 7, "[frontend] needs one NAME");
    assert_only_error(MIN "[global x]\n", 7, "[global] takes no name");
    assert_only_error(MIN "[stats 1]\n", 7, "[stats] takes no name");

    /* Names: up to 64 characters of letters, digits, '_', '-', '.'. */
    memset(name64, 'n', 64);
    name64[0] = 'A';
    name64[63] = '9';
    memcpy(name64 + 10, "_-.", 3);
    snprintf(text, sizeof(text),
             "[frontend %s]\nlisten = 127.0.0.1:8080\nmode = tcp\n"
             "backend = %s\n[backend %s]\nserver = 127.0.0.1:9000\n",
             name64, name64, name64);
    c = load_ok(text);
    assert_string_equal(c->frontends[0].name, name64);
    assert_string_equal(c->backends[0].name, name64);
    config_free(c);
    memset(name65, 'n', 65);
    snprintf(text, sizeof(text), MIN "[backend %s]\n", name65);
    assert_only_error(text, 7, "(at most 64 characters)");

    /* Spaces inside the brackets and a trailing comment are fine. */
    c = load_ok(MIN "  [ global ]  ; the globals\nlog_level = warn\n"
                    "[frontend   tabbed\t]\nlisten = 127.0.0.1:8081\n"
                    "mode = tcp\nbackend = app\n");
    assert_int_equal(c->log_level, LOG_LEVEL_WARN);
    assert_string_equal(c->frontends[1].name, "tabbed");
    config_free(c);
}

static void
test_line_without_equals(void **state)
{
    struct config_errors e;

    (void)state;
    assert_only_error(FE "listen\n" BE, 5,
                      "expected 'key = value' or a [section] line");
    assert_only_error(MIN "backup\n", 7, "expected 'key = value'");
    assert_only_error(MIN "= 127.0.0.1:9001\n", 7,
                      "missing key name before '='");
    /* A forgotten '=' before an address: still an error on that line
     * (inih also splits at ':', so the message names "server 127.0.0.1"). */
    load_bad(MIN "server 127.0.0.1:9001\n", &e);
    assert_int_equal(e.n, 1);
    assert_error(&e, 7, "server 127.0.0.1");
    config_errors_free(&e);

    /* An indented line is never a continuation of the key above. */
    load_bad(MIN "server = 127.0.0.1:9001\n    weight=2\n", &e);
    assert_int_equal(e.n, 1);
    assert_error(&e, 8, "unknown key 'weight' in [backend app]");
    config_errors_free(&e);
}

/* ---------------------------------------------------------------------- */
/* server lines                                                            */

static struct config *
load_servers(const char *lines)
{
    char text[2048];

    snprintf(text, sizeof(text), FE "[backend app]\n%s", lines);
    return load_ok(text);
}

static void
server_error(const char *line, const char *needle)
{
    char text[2048];

    snprintf(text, sizeof(text), FE "[backend app]\n%s\n", line);
    assert_only_error(text, 6, needle);
}

static void
test_server_forms(void **state)
{
    struct config *c;
    struct config_server *s;

    (void)state;
    c = load_servers("server = 10.0.0.1:80\n"
                     "server = [2001:db8::1]:8443 weight=7\n"
                     "server = 10.0.0.2:65535 backup\n"
                     "server = 10.0.0.3:1\tweight=0\t backup\n"
                     "server = 10.0.0.4:80 backup weight=10000\n");
    assert_int_equal(c->backends[0].nservers, 5);
    s = c->backends[0].servers;
    assert_string_equal(s[0].spec, "10.0.0.1:80");
    assert_string_equal(s[0].host, "10.0.0.1");
    assert_int_equal(s[0].port, 80);
    assert_true(s[0].is_literal);
    assert_int_equal(s[0].weight, 1);
    assert_false(s[0].backup);
    assert_int_equal(s[0].line, 6);

    assert_string_equal(s[1].spec, "[2001:db8::1]:8443");
    assert_string_equal(s[1].host, "2001:db8::1");
    assert_int_equal(s[1].port, 8443);
    assert_true(s[1].is_literal);
    assert_int_equal(s[1].addr.ss_family, AF_INET6);
    assert_int_equal(s[1].addrlen, sizeof(struct sockaddr_in6));
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&s[1].addr)->sin6_port),
                     8443);
    assert_int_equal(s[1].weight, 7);
    assert_false(s[1].backup);

    assert_int_equal(s[2].port, 65535);
    assert_true(s[2].backup);
    assert_int_equal(s[2].weight, 1);
    assert_int_equal(ntohs(((struct sockaddr_in *)&s[2].addr)->sin_port),
                     65535);

    assert_int_equal(s[3].weight, 0); /* drain */
    assert_true(s[3].backup);
    assert_int_equal(s[4].weight, 10000);
    assert_true(s[4].backup);
    assert_int_equal(s[4].line, 10);
    config_free(c);
}

/* server = NAME:PORT (a DNS name; see the F_DNS_SERVERS key row too). */
static void
test_server_dns_name(void **state)
{
    (void)state;
#if HAVE_DNS_SERVERS
    {
        struct config *c = load_servers("server = db-1.example.com:5432 "
                                        "weight=2\nserver = localhost:80\n");
        struct config_server *s = c->backends[0].servers;
        assert_false(s[0].is_literal);
        assert_string_equal(s[0].host, "db-1.example.com");
        assert_int_equal(s[0].port, 5432);
        assert_int_equal(s[0].weight, 2);
        assert_string_equal(s[0].spec, "db-1.example.com:5432");
        assert_false(s[1].is_literal);
        config_free(c);
    }
#else
    server_error("server = db-1.example.com:5432 weight=2",
                 "server db-1.example.com:5432: DNS names are not supported "
                 "yet; use an IP address");
#endif
}

static void
test_server_errors(void **state)
{
    (void)state;
    server_error("server = 10.0.0.1:80 weight=10001",
                 "bad value '10.0.0.1:80 weight=10001' for server: expected "
                 "weight=N with N from 0 to 10000");
    server_error("server = 10.0.0.1:80 weight=", "weight=N with N from 0");
    server_error("server = 10.0.0.1:80 weight=-1", "weight=N with N from 0");
    server_error("server = 10.0.0.1:80 weight=1.5", "weight=N with N from 0");
    server_error("server = 10.0.0.1:80 fast",
                 "HOST:PORT [weight=N] [backup] (unknown option 'fast')");
    server_error("server = 10.0.0.1:80 Backup", "unknown option 'Backup'");
    server_error("server = 10.0.0.1:80 backups", "unknown option 'backups'");
    server_error("server = 10.0.0.1:80 weight=2 weight", "unknown option "
                                                         "'weight'");
    server_error("server = 10.0.0.1:80,10.0.0.2:80",
                 "bad value '10.0.0.1:80,10.0.0.2:80' for server");
    server_error("server = 10.0.0.1", "HOST:PORT [weight=N] [backup], HOST "
                                      "an IP or a DNS name");
    server_error("server = 10.0.0.1:", "HOST:PORT [weight=N] [backup]");
    server_error("server = 10.0.0.1:0", "HOST:PORT [weight=N] [backup]");
    server_error("server = 10.0.0.1:65536", "HOST:PORT [weight=N]");
    server_error("server = 10.0.0.1:080", "HOST:PORT [weight=N]");
    server_error("server = :80", "HOST:PORT [weight=N]");
    server_error("server =", "HOST:PORT [weight=N]");
    server_error("server = weight=2", "HOST:PORT [weight=N]");
    server_error("server = ::1:80", "HOST:PORT [weight=N]");
    server_error("server = [::1]", "HOST:PORT [weight=N]");
    server_error("server = [10.0.0.1]:80",
                 "an IPv6 address in brackets, as [::1]:8080");
    server_error("server = [db.internal]:80",
                 "HOST:PORT with HOST an IP address or a valid DNS name");
    server_error("server = bad_host!:80", "a valid DNS name");
    server_error("server = a..b:80", "a valid DNS name");
}

static void
test_server_listed_twice(void **state)
{
    (void)state;
    /* Options do not make it another server. */
    assert_only_error(MIN "server = 10.0.0.1:80\n"
                          "server = 127.0.0.1:9000 weight=3\n",
                      8,
                      "server 127.0.0.1:9000 is listed twice (first on "
                      "line 6)");
    assert_only_error(MIN "server = [::1]:80\nserver = [::1]:80 backup\n", 8,
                      "server [::1]:80 is listed twice (first on line 7)");
}

/*
 * BUG (config.c, config_validate): duplicate server lines are found by
 * comparing the text, so one IP literal written two ways gives two members
 * at the same address (twice the share of traffic). Expected: an error on
 * the later line. Fails until literals are also compared by address
 * (is_literal on both, same family, address and port).
 */
static void
test_BUG_server_same_address_twice(void **state)
{
    (void)state;
    assert_only_error(MIN "server = [::1]:80\nserver = [0::1]:80\n", 8,
                      "is listed twice (first on line 7)");
    assert_only_error(MIN "server = [2001:db8::1]:80\n"
                          "server = [2001:DB8:0:0::1]:80\n",
                      8, "is listed twice (first on line 7)");
}

/* ---------------------------------------------------------------------- */
/* Rules across keys.                                                      */

static void
test_tcp_frontend_hash_on_http_field(void **state)
{
    struct config_errors e;

    (void)state;
    load_bad(FE BE "balance = hash\nhash_key = uri\n", &e);
    assert_error(&e, 4,
                 "[frontend web] is mode tcp but backend 'app' "
                 "hashes on an HTTP field; use hash_key = client_ip");
#if !HAVE_BALANCE
    assert_error(&e, 7, "balance hash is not supported yet");
    assert_int_equal(e.n, 2);
#else
    assert_int_equal(e.n, 1);
#endif
    config_errors_free(&e);

    load_bad(FE BE "hash_key = header:X-Id\nbalance = hash\n", &e);
    assert_error(&e, 4, "hashes on an HTTP field");
    config_errors_free(&e);

    /* hash_key only matters with balance hash. */
    {
        struct config *c = load_ok(FE BE "hash_key = uri\n");
        config_free(c);
    }
#if HAVE_BALANCE
    {
        struct config *c = load_ok(FE BE "balance = hash\n"
                                         "hash_key = client_ip\n");
        config_free(c);
    }
#endif
}

static void
test_proxy_protocol_needs_tcp(void **state)
{
    struct config_errors e;
    struct config *c;

    (void)state;
    load_bad("[frontend web]\nlisten = 127.0.0.1:8080\nmode = http\n"
             "backend = app\nproxy_protocol = v1\n" BE,
             &e);
    assert_error(&e, 5, "proxy_protocol needs mode = tcp");
#if !HAVE_HTTP
    assert_error(&e, 3, "mode http is not supported yet");
    assert_int_equal(e.n, 2);
#else
    assert_int_equal(e.n, 1);
#endif
    config_errors_free(&e);

    /* Without a mode line the default is http: the same rule applies. */
    load_bad("[frontend web]\nlisten = 127.0.0.1:8080\nbackend = app\n"
             "proxy_protocol = v2\n" BE,
             &e);
    assert_error(&e, 4, "proxy_protocol needs mode = tcp");
    config_errors_free(&e);

    c = load_ok(FE "proxy_protocol = v2\n" BE);
    assert_int_equal(c->frontends[0].proxy_protocol, PROXY_PROTOCOL_V2);
    config_free(c);
}

static void
test_listen_used_twice(void **state)
{
    (void)state;
    assert_only_error(FE "listen = 127.0.0.1:8080\n" BE, 5,
                      "listen 127.0.0.1:8080 is already used on line 2");
    /* The same address written another way. */
    assert_only_error(FE "listen = localhost:8080\n" BE, 5,
                      "listen localhost:8080 is already used on line 2");
    assert_only_error(MIN "[frontend b]\nlisten = [::1]:8081\nmode = tcp\n"
                          "backend = app\nlisten = [0:0::1]:8081\n",
                      11, "listen [0:0::1]:8081 is already used on line 8");
    assert_only_error(MIN "[frontend b]\nlisten = *:8081\nmode = tcp\n"
                          "backend = app\n[frontend c]\nmode = tcp\n"
                          "backend = app\nlisten = 0.0.0.0:8081\n",
                      14, "listen 0.0.0.0:8081 is already used on line 8");
    /* Across frontends, reported on the later line. */
    assert_only_error(MIN "[frontend b]\nmode = tcp\nbackend = app\n"
                          "listen = 127.0.0.1:8080\n",
                      10, "listen 127.0.0.1:8080 is already used on line 2");
    /* Other port, other address, other family: all fine. */
    {
        struct config *c = load_ok(FE "listen = 127.0.0.1:8081\n"
                                      "listen = 127.0.0.2:8080\n"
                                      "listen = [::1]:8080\n"
                                      "listen = [::]:8082\n" BE);
        assert_int_equal(c->frontends[0].nlisten, 5);
        config_free(c);
    }
}

/*
 * BUG (config.c, config_validate): a wildcard listen address overlaps every
 * address of its family on that port, and Linux refuses the second bind()
 * (EADDRINUSE, SO_REUSEADDR notwithstanding), so `ferry -t` says OK and the
 * start fails with exit 2. Expected: a configuration error on the later
 * line. Fails until the overlap check treats 0.0.0.0 / :: as matching any
 * address of the same family and port.
 */
static void
test_BUG_listen_wildcard_overlaps(void **state)
{
    (void)state;
    assert_only_error(FE "listen = *:8080\n" BE, 5,
                      "listen *:8080 is already used on line 2");
    assert_only_error("[frontend web]\nlisten = 0.0.0.0:8080\nmode = tcp\n"
                      "backend = app\nlisten = 127.0.0.1:8080\n" BE,
                      5, "listen 127.0.0.1:8080 is already used on line 2");
    assert_only_error(FE "listen = [::]:8080\nlisten = [::1]:8080\n" BE, 6,
                      "listen [::1]:8080 is already used on line 5");
    assert_only_error(FE "listen = *:8404\n" BE, 5,
                      "listen *:8404 is also the stats address");
}

static void
test_listen_is_stats_address(void **state)
{
    (void)state;
    /* The default stats address is 127.0.0.1:8404. */
    assert_only_error(FE "listen = 127.0.0.1:8404\n" BE, 5,
                      "listen 127.0.0.1:8404 is also the stats address");
#if HAVE_STATS
    {
        struct config *c;
        assert_only_error("[stats]\nlisten = 127.0.0.1:9100\n" FE
                          "listen = 127.0.0.1:9100\n" BE,
                          7,
                          "listen 127.0.0.1:9100 is also the stats "
                          "address");
        c = load_ok("[stats]\nlisten = 127.0.0.1:9100\n" FE
                    "listen = 127.0.0.1:8404\n" BE);
        config_free(c);
        c = load_ok("[stats]\nlisten = off\n" FE
                    "listen = 127.0.0.1:8404\n" BE);
        config_free(c);
    }
#endif
}

static void
test_min_ttl_above_max_ttl(void **state)
{
    struct config_errors e;

    (void)state;
#if HAVE_RESOLVER
    assert_only_error("[resolver]\nmin_ttl = 10m\nmax_ttl = 1m\n" MIN, 2,
                      "min_ttl is above max_ttl");
    /* Against the default max_ttl of 1h. */
    assert_only_error("[resolver]\nmin_ttl = 2h\n" MIN, 2,
                      "min_ttl is above max_ttl");
    {
        struct config *c = load_ok("[resolver]\nmin_ttl = 5m\n"
                                   "max_ttl = 5m\n" MIN);
        config_free(c);
    }
    (void)e;
#else
    load_bad("[resolver]\nmin_ttl = 10m\nmax_ttl = 1m\n" MIN, &e);
    assert_error(&e, 2, "'min_ttl' is not supported yet");
    assert_error(&e, 3, "'max_ttl' is not supported yet");
    assert_int_equal(e.n, 2);
    config_errors_free(&e);
#endif
}

/* Every error of a file is reported, not just the first. */
static void
test_all_errors_reported(void **state)
{
    static const char text[] =
        "log_level = debug\n"       /* 1: outside a section */
        "[global]\n"                /* 2 */
        "max_connections = 0\n"     /* 3: bad value */
        "max_connections = 5\n"     /* 4: set twice */
        "colour = red\n"            /* 5: unknown key */
        "[frontend web]\n"          /* 6 */
        "listen = 127.0.0.1:8080\n" /* 7 */
        "mode = tcp\n"              /* 8 */
        "backend = missing\n"       /* 9: undefined backend */
        "listen = 127.0.0.1:8080\n" /* 10: listen used twice */
        "timeout_client = 5 s\n"    /* 11: bad value */
        "[backend app]\n"           /* 12: no server */
        "retries = 99\n"            /* 13: bad value */
        "[mystery]\n"               /* 14: unknown section */
        "what = ever\n"             /* 15: (skipped) */
        "[backend app]\n"           /* 16: duplicate */
        "no equals sign here\n";    /* 17: no '=' */
    static const struct {
        int line;
        const char *needle;
    } want[] = {
        {1, "outside of any section"},
        {3, "bad value '0' for max_connections"},
        {4, "'max_connections' is set twice in [global] (first on line 3)"},
        {5, "unknown key 'colour' in [global]"},
        {9, "uses backend 'missing', which is not defined"},
        {10, "listen 127.0.0.1:8080 is already used on line 7"},
        {11, "bad value '5 s' for timeout_client"},
        {12, "[backend app] is missing required key 'server'"},
        {13, "bad value '99' for retries"},
        {14, "unknown section [mystery]"},
        {16, "duplicate section [backend app] (first defined on line 12)"},
        {17, "expected 'key = value' or a [section] line"},
    };
    struct config_errors e;

    (void)state;
    load_bad(text, &e);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_error(&e, want[i].line, want[i].needle);
    if (e.n != sizeof(want) / sizeof(want[0])) {
        print_errors(&e);
        fail_msg("%zu errors, want %zu", e.n, sizeof(want) / sizeof(want[0]));
    }
    config_errors_free(&e);
}

/* ---------------------------------------------------------------------- */
/* Lexical matters: comments, whitespace, BOM, CRLF, NUL.                   */

static void
test_comments(void **state)
{
    struct config *c;
    struct config_errors e;

    (void)state;
    c = load_ok("; leading comment\n"
                "# hash comment\n"
                "   ; indented comment\n"
                "\t# tab-indented comment\n"
                "\n"
                "[global] ; after a header\n"
                "log_level = warn ; inline\n"
                "access_log = /tmp/a;b\n"
                "max_connections = 77\t; after a tab\n"
                ";log_level = debug\n"
                "#max_connections = 1\n" MIN);
    assert_int_equal(c->log_level, LOG_LEVEL_WARN);
    /* ';' starts a comment only after whitespace: part of a path here. */
    assert_string_equal(c->access_log, "/tmp/a;b");
    assert_int_equal(c->max_connections, 77);
    config_free(c);

    c = load_ok(FE BE "server = 127.0.0.1:9001 weight=3 ; the big one\n");
    assert_int_equal(c->backends[0].servers[1].weight, 3);
    config_free(c);

    /* '#' only starts a comment at the start of a line: inline it is part of
     * the value, which is then refused, never silently mis-read. */
    load_bad("[global]\nlog_level = warn # inline\n" MIN, &e);
    assert_error(&e, 2, "bad value 'warn # inline' for log_level");
    config_errors_free(&e);
}

static void
test_whitespace_trimmed(void **state)
{
    struct config *c;

    (void)state;
    c = load_ok("[frontend web]\n"
                "   listen   =   127.0.0.1:8080   \n"
                "\tmode=tcp\n"
                "backend\t=\tapp\t\n" BE "  retries=4  \n");
    assert_string_equal(c->frontends[0].listen[0].text, "127.0.0.1:8080");
    assert_int_equal(c->frontends[0].mode, MODE_TCP);
    assert_string_equal(c->frontends[0].backend_name, "app");
    assert_int_equal(c->backends[0].retries, 4);
    config_free(c);
}

static void
test_utf8_bom(void **state)
{
    struct config *c;
    struct config_errors e;

    (void)state;
    c = load_ok("\xef\xbb\xbf" MIN);
    assert_string_equal(c->frontends[0].name, "web");
    assert_int_equal(c->frontends[0].line, 1);
    config_free(c);

    c = load_ok("\xef\xbb\xbf; comment first\n" MIN);
    config_free(c);

    /* Line numbers are unaffected by the BOM. */
    load_bad("\xef\xbb\xbf" FE "retries = 1\n" BE, &e);
    assert_int_equal(e.n, 1);
    assert_error(&e, 5, "unknown key 'retries' in [frontend web]");
    config_errors_free(&e);
}

static void
test_crlf(void **state)
{
    struct config *c;
    struct config_errors e;

    (void)state;
    c = load_ok("[global]\r\naccess_log = /tmp/x.log\r\n"
                "[frontend web]\r\nlisten = 127.0.0.1:8080\r\nmode = tcp\r\n"
                "backend = app\r\n\r\n[backend app]\r\n"
                "server = 127.0.0.1:9000 backup\r\n");
    /* No '\r' left in any value. */
    assert_string_equal(c->access_log, "/tmp/x.log");
    assert_string_equal(c->frontends[0].backend_name, "app");
    assert_true(c->backends[0].servers[0].backup);
    assert_int_equal(c->backends[0].servers[0].line, 9);
    config_free(c);

    load_bad("[global]\r\n\r\nlog_level = loud\r\n" MIN, &e);
    assert_int_equal(e.n, 1);
    assert_error(&e, 3, "bad value 'loud' for log_level");
    config_errors_free(&e);

    /* A last line without any line ending. */
    c = load_ok(MIN "retries = 4");
    assert_int_equal(c->backends[0].retries, 4);
    config_free(c);
}

static void
test_nul_byte(void **state)
{
    static const char text[] = MIN "retries = 1\0 junk\n";
    struct config_errors e;

    (void)state;
    assert_null(load(write_bytes(text, sizeof(text) - 1), &e));
    assert_int_equal(e.n, 1);
    assert_error(&e, 7, "line contains a NUL byte");
    config_errors_free(&e);
}

static void
test_free_helpers(void **state)
{
    struct config_errors e = {NULL, 0};

    (void)state;
    config_free(NULL);
    config_errors_free(&e);
    assert_null(e.msgs);
    assert_int_equal(e.n, 0);
    load_bad("", &e);
    config_errors_free(&e);
    assert_null(e.msgs);
    assert_int_equal(e.n, 0);
}

/* ---------------------------------------------------------------------- */

int
main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_percentage),
        cmocka_unit_test(test_BUG_percentage_accepts_strtod_forms),
        cmocka_unit_test(test_parse_uint),
        cmocka_unit_test(test_parse_listen_addr),
        cmocka_unit_test(test_parse_nameserver),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_default_mode),
        cmocka_unit_test(test_tls_pair),
        cmocka_unit_test(test_unknown_section),
        cmocka_unit_test(test_unknown_key_names_section),
        cmocka_unit_test(test_bad_value_names_key_and_expectation),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_duplicate_sections),
        cmocka_unit_test(test_frontend_and_backend_same_name),
        cmocka_unit_test(test_key_set_twice),
        cmocka_unit_test(test_repeatable_keys),
        cmocka_unit_test(test_frontend_backend_reference),
        cmocka_unit_test(test_line_length_limit),
        cmocka_unit_test(test_unreadable_file),
        cmocka_unit_test(test_no_frontend),
        cmocka_unit_test(test_key_outside_section),
        cmocka_unit_test(test_malformed_section_header),
        cmocka_unit_test(test_line_without_equals),
        cmocka_unit_test(test_server_forms),
        cmocka_unit_test(test_server_dns_name),
        cmocka_unit_test(test_server_errors),
        cmocka_unit_test(test_server_listed_twice),
        cmocka_unit_test(test_BUG_server_same_address_twice),
        cmocka_unit_test(test_tcp_frontend_hash_on_http_field),
        cmocka_unit_test(test_proxy_protocol_needs_tcp),
        cmocka_unit_test(test_listen_used_twice),
        cmocka_unit_test(test_BUG_listen_wildcard_overlaps),
        cmocka_unit_test(test_listen_is_stats_address),
        cmocka_unit_test(test_min_ttl_above_max_ttl),
        cmocka_unit_test(test_all_errors_reported),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_whitespace_trimmed),
        cmocka_unit_test(test_utf8_bom),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_free_helpers),
    };
    enum { NFIXED = sizeof(fixed) / sizeof(fixed[0]) };
    static struct CMUnitTest tests[NFIXED + NKEY_CASES];
    static char names[NKEY_CASES][96];

    memcpy(tests, fixed, sizeof(fixed));
    /* One named test per key row: "key [backend] balance = hash". */
    for (size_t i = 0; i < NKEY_CASES; i++) {
        snprintf(names[i], sizeof(names[i]), "key [%s] %s%s",
                 key_cases[i].section, key_cases[i].good,
                 feature_on[key_cases[i].feat] ? "" : " (not supported yet)");
        tests[NFIXED + i] = (struct CMUnitTest){
            .name = names[i],
            .test_func = run_key_case,
            .initial_state = (void *)&key_cases[i],
        };
    }
    return _cmocka_run_group_tests("config", tests, NFIXED + NKEY_CASES,
                                   group_setup, group_teardown);
}
