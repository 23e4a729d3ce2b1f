/*
 * test_resolver: resolver.c on a real libev loop against dnsfault.py
 * (tests/lib/dnsfault.py, started by the test on 127.0.0.1 with
 * random ports). Every wait runs the loop against a deadline.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ev.h>

#include "resolver.h"

#define PYTHON "/usr/bin/python3"
#define MAX_GOT 64

/* One running dnsfault.py. */
struct fault {
    pid_t pid;        /* the python process */
    int port;         /* DNS port (UDP and TCP) */
    int control_port; /* control port */
    bool ipv6;        /* also on [::1]:port */
    int ctl;          /* control connection */
    char ready[256];  /* ready file path */
};

/* What one request's callback saw. */
struct got {
    int calls;                             /* times the callback ran */
    enum resolver_status status;           /* last status */
    size_t naddrs;                         /* addresses */
    char addrs[MAX_GOT][INET6_ADDRSTRLEN]; /* as text, in order */
    uint32_t ttl;                          /* result ttl */
    bool sent;                             /* went upstream */
    double duration;                       /* seconds */
};

static char tmpdir[64];
static struct fault main_fault;

static double
mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- dnsfault process and control ------------------------------------- */

static int
json_int(const char *text, const char *key)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    p = strstr(text, pat);
    return p ? atoi(p + strlen(pat)) : -1;
}

static int
fault_start(struct fault *f, int port)
{
    char portbuf[16], text[512];
    double end;
    int fd;
    ssize_t n;

    memset(f, 0, sizeof(*f));
    f->ctl = -1;
    if (access(PYTHON, X_OK) != 0 || access(DNSFAULT_PY, R_OK) != 0)
        return -1;
    static int seq;
    snprintf(f->ready, sizeof(f->ready), "%s/ready-%d.json", tmpdir, ++seq);
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    f->pid = fork();
    if (f->pid < 0)
        return -1;
    if (f->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(PYTHON, PYTHON, DNSFAULT_PY, "--port", portbuf, "--control-port",
              "0", "--ready-file", f->ready, "--ipv6", (char *)NULL);
        _exit(127);
    }
    end = mono() + 10.0;
    while ((fd = open(f->ready, O_RDONLY)) < 0) {
        if (mono() > end || waitpid(f->pid, NULL, WNOHANG) != 0)
            return -1;
        pause_ms(10);
    }
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    f->port = json_int(text, "port");
    f->control_port = json_int(text, "control_port");
    f->ipv6 = strstr(text, "\"ipv6\": true") != NULL;

    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)f->control_port)};
    struct timeval tv = {5, 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->ctl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (f->ctl < 0)
        return -1;
    setsockopt(f->ctl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(f->ctl, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(f->ctl, (struct sockaddr *)&sin, sizeof(sin)) < 0)
        return -1;
    return 0;
}

static void
fault_stop(struct fault *f)
{
    if (f->ctl >= 0)
        close(f->ctl);
    f->ctl = -1;
    if (f->pid > 0) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
    }
    f->pid = 0;
    unlink(f->ready);
}

/* Sends one JSON command line; returns the reply line in reply. */
static void
ctl(struct fault *f, char *reply, size_t cap, const char *fmt, ...)
{
    char line[8192];
    va_list ap;
    size_t n = 0;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    assert_true(len > 0 && (size_t)len < sizeof(line) - 1);
    line[len++] = '\n';
    assert_int_equal(write(f->ctl, line, (size_t)len), len);
    while (n + 1 < cap) {
        ssize_t got = read(f->ctl, reply + n, 1);
        assert_true(got == 1); /* SO_RCVTIMEO bounds this */
        if (reply[n] == '\n')
            break;
        n++;
    }
    reply[n] = '\0';
    assert_non_null(strstr(reply, "\"ok\": true"));
}

#define CTL(f, ...)                                                            \
    do {                                                                       \
        char reply_[4096];                                                     \
        ctl((f), reply_, sizeof(reply_), __VA_ARGS__);                         \
    } while (0)

static int
ctl_count(struct fault *f, const char *name, const char *type)
{
    char reply[512];

    ctl(f, reply, sizeof(reply),
        "{\"cmd\": \"count\", \"name\": \"%s\", \"type\": \"%s\"}", name, type);
    return json_int(reply, "count");
}

/* ---- loop helpers ----------------------------------------------------- */

static void
on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
}

/* Runs loop until *counter >= target or secs pass; returns success. */
static bool
wait_for(struct ev_loop *loop, const int *counter, int target, double secs)
{
    ev_timer guard;
    double end = mono() + secs;

    ev_timer_init(&guard, on_guard, 0.02, 0.02);
    ev_timer_start(loop, &guard);
    while (*counter < target && mono() < end)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &guard);
    return *counter >= target;
}

static void
on_got(void *arg, const struct resolver_result *res)
{
    struct got *g = arg;

    g->calls++;
    g->status = res->status;
    g->naddrs = res->naddrs;
    g->ttl = res->ttl;
    g->sent = res->sent;
    g->duration = res->duration;
    for (size_t i = 0; i < res->naddrs && i < MAX_GOT; i++)
        inet_ntop(res->addrs[i].family, &res->addrs[i].u, g->addrs[i],
                  sizeof(g->addrs[i]));
}

static void
ns_v4(struct sockaddr_storage *ss, int port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;

    memset(ss, 0, sizeof(*ss));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* A resolver at 127.0.0.1:port with no hosts file. */
static struct resolver *
make_resolver(struct ev_loop *loop, struct sockaddr_storage *ns, int port,
              double timeout, unsigned attempts)
{
    struct resolver_options o = {
        .nameservers = ns,
        .nnameservers = 1,
        .hosts_file = NULL,
        .timeout = timeout,
        .attempts = attempts,
    };
    ns_v4(ns, port);
    return resolver_init(loop, &o);
}

/* Resolves name and waits (bounded) for the one completion. */
static void
resolve_wait(struct ev_loop *loop, struct resolver *r, const char *name,
             int family, struct got *g, double secs)
{
    memset(g, 0, sizeof(*g));
    assert_non_null(resolver_resolve(r, name, family, on_got, g));
    assert_int_equal(g->calls, 0); /* never before resolve returns */
    assert_true(wait_for(loop, &g->calls, 1, secs));
    assert_int_equal(g->calls, 1);
}

/* Per-test state. */
struct ctx {
    struct ev_loop *loop;       /* fresh loop per test */
    struct resolver *r;         /* at main_fault, 1 s x 2 */
    struct sockaddr_storage ns; /* its nameserver */
};

static int
setup(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));

    assert_non_null(c);
    c->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(c->loop);
    c->r = make_resolver(c->loop, &c->ns, main_fault.port, 1.0, 2);
    assert_non_null(c->r);
    *state = c;
    return 0;
}

static int
teardown(void **state)
{
    struct ctx *c = *state;

    resolver_destroy(c->r);
    ev_loop_destroy(c->loop);
    free(c);
    return 0;
}

static int
group_setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ferry-resolver-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    if (fault_start(&main_fault, 0) < 0) {
        fprintf(stderr, "cannot start %s\n", DNSFAULT_PY);
        fault_stop(&main_fault);
        return -1;
    }
    return 0;
}

static int
group_teardown(void **state)
{
    fault_stop(&main_fault);
    rmdir(tmpdir);
    return 0;
}

/* ---- tests ------------------------------------------------------------ */

static void
test_a_and_aaaa_custom_port(void **state)
{
    struct ctx *c = *state;
    struct got g;

    assert_int_not_equal(main_fault.port, 53);
    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"api.test\", \"ttl\": 30,"
                     " \"a\": [\"10.0.0.1\", \"10.0.0.2\"],"
                     " \"aaaa\": [\"fd00::1\", \"fd00::2\"]}");
    resolve_wait(c->loop, c->r, "api.test", AF_INET, &g, 5);
    assert_int_equal(g.status, RESOLVER_OK);
    assert_int_equal(g.naddrs, 2);
    assert_string_equal(g.addrs[0], "10.0.0.1");
    assert_string_equal(g.addrs[1], "10.0.0.2");
    assert_int_equal(g.ttl, 30);
    assert_true(g.sent);
    assert_true(g.duration >= 0 && g.duration < 5);

    resolve_wait(c->loop, c->r, "api.test", AF_INET6, &g, 5);
    assert_int_equal(g.status, RESOLVER_OK);
    assert_int_equal(g.naddrs, 2);
    assert_string_equal(g.addrs[0], "fd00::1");
    assert_string_equal(g.addrs[1], "fd00::2");
    /* One query per request and family: no search list, no AF_UNSPEC. */
    assert_int_equal(ctl_count(&main_fault, "api.test", "A"), 1);
    assert_int_equal(ctl_count(&main_fault, "api.test", "AAAA"), 1);

    struct resolver_stats st;
    resolver_get_stats(c->r, &st);
    assert_int_equal(st.queries, 2);
}

static void
test_ipv6_nameserver(void **state)
{
    struct ctx *c = *state;
    struct sockaddr_storage ns;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ns;
    struct resolver_options o = {
        .nameservers = &ns, .nnameservers = 1, .timeout = 1, .attempts = 2};
    struct resolver *r6;
    struct got g;

    if (!main_fault.ipv6)
        skip();
    memset(&ns, 0, sizeof(ns));
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)main_fault.port);
    sin6->sin6_addr = in6addr_loopback;
    r6 = resolver_init(c->loop, &o);
    assert_non_null(r6);
    CTL(&main_fault,
        "{\"cmd\": \"set\", \"name\": \"six.test\", \"a\": [\"10.6.0.1\"]}");
    resolve_wait(c->loop, r6, "six.test", AF_INET, &g, 5);
    assert_int_equal(g.status, RESOLVER_OK);
    assert_int_equal(g.naddrs, 1);
    assert_string_equal(g.addrs[0], "10.6.0.1");
    resolver_destroy(r6);
}

static void
test_45_a_records_udp_edns(void **state)
{
    struct ctx *c = *state;
    char cmd[4096];
    size_t off;
    struct got g;

    off = (size_t)snprintf(cmd, sizeof(cmd),
                           "{\"cmd\": \"set\", \"name\": \"big.test\", "
                           "\"a\": [");
    for (int i = 0; i < 45; i++)
        off += (size_t)snprintf(cmd + off, sizeof(cmd) - off,
                                "%s\"10.45.0.%d\"", i ? ", " : "", i + 1);
    snprintf(cmd + off, sizeof(cmd) - off, "]}");
    CTL(&main_fault, "%s", cmd);
    resolve_wait(c->loop, c->r, "big.test", AF_INET, &g, 5);
    assert_int_equal(g.status, RESOLVER_OK);
    assert_int_equal(g.naddrs, 45);
    for (int i = 0; i < 45; i++) {
        char want[32];
        snprintf(want, sizeof(want), "10.45.0.%d", i + 1);
        assert_string_equal(g.addrs[i], want);
    }
    /* One UDP query: a truncated answer would have added a TCP retry. */
    assert_int_equal(ctl_count(&main_fault, "big.test", "A"), 1);
}

static void
test_ip_literal_not_sent(void **state)
{
    struct ctx *c = *state;
    struct got g;
    struct resolver_stats st;

    resolve_wait(c->loop, c->r, "10.1.2.3", AF_INET, &g, 2);
    assert_int_equal(g.status, RESOLVER_OK);
    assert_int_equal(g.naddrs, 1);
    assert_string_equal(g.addrs[0], "10.1.2.3");
    assert_false(g.sent);
    assert_int_equal(g.ttl, 0);

    resolve_wait(c->loop, c->r, "fd00::42", AF_INET6, &g, 2);
    assert_int_equal(g.status, RESOLVER_OK);
    assert_string_equal(g.addrs[0], "fd00::42");
    assert_false(g.sent);

    /* A literal of the other family has no address: empty, not sent. */
    resolve_wait(c->loop, c->r, "10.1.2.3", AF_INET6, &g, 2);
    assert_int_equal(g.status, RESOLVER_EMPTY);
    assert_false(g.sent);

    assert_int_equal(ctl_count(&main_fault, "10.1.2.3", "A"), 0);
    assert_int_equal(ctl_count(&main_fault, "10.1.2.3", "AAAA"), 0);
    assert_int_equal(ctl_count(&main_fault, "fd00::42", "AAAA"), 0);
    resolver_get_stats(c->r, &st);
    assert_int_equal(st.queries, 0);
    assert_int_equal(st.literals, 3);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void
test_hosts_file(void **state)
{
    struct ctx *c = *state;
    char path[128];
    struct resolver_options o = {
        .nameservers = &c->ns, .nnameservers = 1, .timeout = 1, .attempts = 2};
    struct resolver *r;
    struct got g;

    snprintf(path, sizeof(path), "%s/hosts", tmpdir);
    write_file(path, "# test hosts\n"
                     "10.7.7.7   hosted.test alias.test  # comment\n"
                     "fe80::1%lo ignored.test\n"
                     "10.7.7.8\tHosted.Test\n"
                     "fd00::7 hosted.test\n");
    o.hosts_file = path;
    r = resolver_init(c->loop, &o);
    assert_non_null(r);

    resolve_wait(c->loop, r, "HOSTED.test.", AF_INET, &g, 2);
    assert_int_equal(g.status, RESOLVER_OK);
    assert_int_equal(g.naddrs, 2);
    assert_string_equal(g.addrs[0], "10.7.7.7");
    assert_string_equal(g.addrs[1], "10.7.7.8");
    assert_false(g.sent);
    assert_int_equal(g.ttl, 0);
    resolve_wait(c->loop, r, "alias.test", AF_INET, &g, 2);
    assert_int_equal(g.naddrs, 1);
    resolve_wait(c->loop, r, "hosted.test", AF_INET6, &g, 2);
    assert_int_equal(g.status, RESOLVER_OK);
    assert_string_equal(g.addrs[0], "fd00::7");
    assert_int_equal(ctl_count(&main_fault, "hosted.test", "A"), 0);
    assert_int_equal(ctl_count(&main_fault, "hosted.test", "AAAA"), 0);

    /* Not in the file for this family: asks DNS. */
    resolve_wait(c->loop, r, "alias.test", AF_INET6, &g, 5);
    assert_true(g.sent);
    assert_int_equal(g.status, RESOLVER_NXDOMAIN);
    assert_int_equal(ctl_count(&main_fault, "alias.test", "AAAA"), 1);

    /* A change to the file is picked up (stat at most once a second). */
    write_file(path, "10.7.7.9 hosted.test\n");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    times[1].tv_sec += 5;
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
    double end = mono() + 4;
    bool changed = false;
    while (!changed && mono() < end) {
        int ticks = 0;
        ev_timer t;
        resolve_wait(c->loop, r, "hosted.test", AF_INET, &g, 2);
        changed = g.naddrs == 1 && strcmp(g.addrs[0], "10.7.7.9") == 0;
        ev_timer_init(&t, on_guard, 0.05, 0.);
        ev_timer_start(c->loop, &t);
        while (ev_is_active(&t) && ticks++ < 1000)
            ev_run(c->loop, EVRUN_ONCE);
        ev_timer_stop(c->loop, &t);
    }
    assert_true(changed);
    resolver_destroy(r);
}

static void
test_nxdomain_servfail_empty(void **state)
{
    struct ctx *c = *state;
    struct got g;

    resolve_wait(c->loop, c->r, "missing.test", AF_INET, &g, 5);
    assert_int_equal(g.status, RESOLVER_NXDOMAIN);
    assert_true(g.sent);
    assert_int_equal(g.naddrs, 0);

    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"sf.test\","
                     " \"a\": [\"10.0.0.1\"], \"fault\": \"servfail\"}");
    resolve_wait(c->loop, c->r, "sf.test", AF_INET, &g, 5);
    assert_int_equal(g.status, RESOLVER_SERVFAIL);
    assert_true(g.sent);

    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"em.test\","
                     " \"a\": [\"10.0.0.1\"], \"fault\": \"empty\"}");
    resolve_wait(c->loop, c->r, "em.test", AF_INET, &g, 5);
    assert_int_equal(g.status, RESOLVER_EMPTY);
    assert_int_equal(g.naddrs, 0);

    /* Name exists with A only: AAAA is empty (NODATA), not nxdomain. */
    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"v4only.test\","
                     " \"a\": [\"10.0.0.1\"]}");
    resolve_wait(c->loop, c->r, "v4only.test", AF_INET6, &g, 5);
    assert_int_equal(g.status, RESOLVER_EMPTY);

    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"rf.test\","
                     " \"a\": [\"10.0.0.1\"], \"fault\": \"refused\"}");
    resolve_wait(c->loop, c->r, "rf.test", AF_INET, &g, 5);
    assert_int_equal(g.status, RESOLVER_ERROR);
}

/* Several servers: SERVFAIL fails over to the next one. */
static void
test_servfail_failover(void **state)
{
    struct ctx *c = *state;
    struct sockaddr_storage ns[2];
    struct resolver_options o = {
        .nameservers = ns, .nnameservers = 2, .timeout = 1, .attempts = 2};
    struct resolver *r;
    struct got g;

    ns_v4(&ns[0], main_fault.port);
    ns_v4(&ns[1], main_fault.port);
    r = resolver_init(c->loop, &o);
    assert_non_null(r);
    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"flaky.test\","
                     " \"a\": [\"10.0.0.8\"], \"fault\": \"servfail\","
                     " \"fault_count\": 1}");
    resolve_wait(c->loop, r, "flaky.test", AF_INET, &g, 5);
    assert_int_equal(g.status, RESOLVER_OK);
    assert_string_equal(g.addrs[0], "10.0.0.8");
    assert_int_equal(ctl_count(&main_fault, "flaky.test", "A"), 2);
    resolver_destroy(r);
}

static void
test_timeout_one_attempt(void **state)
{
    struct ctx *c = *state;
    struct sockaddr_storage ns;
    struct resolver *r = make_resolver(c->loop, &ns, main_fault.port, 0.2, 1);
    struct got g;

    assert_non_null(r);
    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"drop.test\","
                     " \"a\": [\"10.0.0.1\"], \"fault\": \"drop\"}");
    resolve_wait(c->loop, r, "drop.test", AF_INET, &g, 3);
    assert_int_equal(g.status, RESOLVER_TIMEOUT);
    assert_true(g.sent);
    assert_true(g.duration >= 0.15 && g.duration < 1.5);
    assert_int_equal(ctl_count(&main_fault, "drop.test", "A"), 1);
    resolver_destroy(r);
}

static void
test_cancel(void **state)
{
    struct ctx *c = *state;
    struct resolver_req *req;
    struct got cancelled, other;

    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"slow1.test\","
                     " \"a\": [\"10.0.0.1\"], \"delay_ms\": 100}");
    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"slow2.test\","
                     " \"a\": [\"10.0.0.2\"], \"delay_ms\": 400}");
    memset(&cancelled, 0, sizeof(cancelled));
    req = resolver_resolve(c->r, "slow1.test", AF_INET, on_got, &cancelled);
    assert_non_null(req);
    resolver_cancel(req); /* sent, not answered yet */
    /* A literal is queued at once: cancel it before delivery too. */
    struct resolver_req *lit = resolver_resolve(c->r, "10.9.9.9", AF_INET,
                                                on_got, &cancelled);
    assert_non_null(lit);
    resolver_cancel(lit);
    /* slow2 answers after slow1 would have: wait for it. */
    resolve_wait(c->loop, c->r, "slow2.test", AF_INET, &other, 5);
    assert_int_equal(other.status, RESOLVER_OK);
    assert_int_equal(ctl_count(&main_fault, "slow1.test", "A"), 1);
    assert_int_equal(cancelled.calls, 0);
}

static void
test_cancel_in_flight(void **state)
{
    struct ctx *c = *state;
    struct resolver_req *req;
    struct got cancelled, other;

    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"slow3.test\","
                     " \"a\": [\"10.0.0.1\"], \"delay_ms\": 100}");
    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"slow4.test\","
                     " \"a\": [\"10.0.0.2\"], \"delay_ms\": 400}");
    memset(&cancelled, 0, sizeof(cancelled));
    memset(&other, 0, sizeof(other));
    req = resolver_resolve(c->r, "slow3.test", AF_INET, on_got, &cancelled);
    assert_non_null(req);
    assert_non_null(
        resolver_resolve(c->r, "slow4.test", AF_INET, on_got, &other));
    /* Let the queries go out, then cancel while slow3 is in flight. */
    int sent = 0;
    double end = mono() + 3;
    while (mono() < end &&
           (sent = ctl_count(&main_fault, "slow3.test", "A")) < 1)
        pause_ms(5);
    assert_int_equal(sent, 1);
    resolver_cancel(req);
    assert_true(wait_for(c->loop, &other.calls, 1, 5));
    assert_int_equal(other.status, RESOLVER_OK);
    assert_int_equal(cancelled.calls, 0);
}

static void
test_cname_ttl_minimum(void **state)
{
    struct ctx *c = *state;
    struct got g;

    CTL(&main_fault,
        "{\"cmd\": \"set\", \"name\": \"www.test\", \"a\": [\"10.1.1.1\"],"
        " \"ttl\": 300, \"cname\": [{\"name\": \"edge.test\", \"ttl\": 30},"
        " {\"name\": \"node.test\", \"ttl\": 7}]}");
    resolve_wait(c->loop, c->r, "www.test", AF_INET, &g, 5);
    assert_int_equal(g.status, RESOLVER_OK);
    assert_int_equal(g.naddrs, 1);
    assert_string_equal(g.addrs[0], "10.1.1.1");
    assert_int_equal(g.ttl, 7);

    CTL(&main_fault,
        "{\"cmd\": \"set\", \"name\": \"www2.test\", \"a\": [\"10.1.1.2\"],"
        " \"ttl\": 5, \"cname\": [{\"name\": \"edge2.test\", \"ttl\": 600}]}");
    resolve_wait(c->loop, c->r, "www2.test", AF_INET, &g, 5);
    assert_int_equal(g.ttl, 5);
}

/* Starts a second request from inside a completion. */
struct chain {
    struct resolver *r; /* resolver */
    struct got first;   /* first result */
    struct got second;  /* result of the nested request */
};

static void
on_chain(void *arg, const struct resolver_result *res)
{
    struct chain *ch = arg;

    on_got(&ch->first, res);
    assert_non_null(
        resolver_resolve(ch->r, "api.test", AF_INET6, on_got, &ch->second));
}

static void
test_resolve_from_callback(void **state)
{
    struct ctx *c = *state;
    struct chain ch;

    memset(&ch, 0, sizeof(ch));
    ch.r = c->r;
    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"api.test\","
                     " \"a\": [\"10.0.0.1\"], \"aaaa\": [\"fd00::1\"]}");
    assert_non_null(resolver_resolve(c->r, "api.test", AF_INET, on_chain, &ch));
    assert_true(wait_for(c->loop, &ch.second.calls, 1, 5));
    assert_int_equal(ch.first.calls, 1);
    assert_int_equal(ch.second.status, RESOLVER_OK);
    assert_string_equal(ch.second.addrs[0], "fd00::1");
}

static void
on_destroy_cb(void *arg, const struct resolver_result *res)
{
    struct resolver **rp = arg;

    resolver_destroy(*rp);
    *rp = NULL;
}

static void
test_destroy_with_requests(void **state)
{
    struct ctx *c = *state;
    struct sockaddr_storage ns;
    struct resolver *r = make_resolver(c->loop, &ns, main_fault.port, 1, 1);
    struct got g;

    /* In flight and queued requests: destroy drops them silently. */
    memset(&g, 0, sizeof(g));
    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"slow5.test\","
                     " \"a\": [\"10.0.0.1\"], \"delay_ms\": 50}");
    assert_non_null(resolver_resolve(r, "slow5.test", AF_INET, on_got, &g));
    assert_non_null(resolver_resolve(r, "10.0.0.1", AF_INET, on_got, &g));
    resolver_destroy(r);
    int ticks = 0;
    ev_timer t;
    ev_timer_init(&t, on_guard, 0.2, 0.);
    ev_timer_start(c->loop, &t);
    while (ev_is_active(&t) && ticks++ < 1000)
        ev_run(c->loop, EVRUN_ONCE);
    assert_int_equal(g.calls, 0);

    /* Destroy from inside a callback; the next queued one is dropped. */
    r = make_resolver(c->loop, &ns, main_fault.port, 1, 1);
    struct resolver *rp = r;
    memset(&g, 0, sizeof(g));
    assert_non_null(
        resolver_resolve(r, "10.0.0.1", AF_INET, on_destroy_cb, &rp));
    assert_non_null(resolver_resolve(r, "10.0.0.2", AF_INET, on_got, &g));
    double end = mono() + 2;
    while (rp && mono() < end)
        ev_run(c->loop, EVRUN_NOWAIT);
    assert_null(rp);
    assert_int_equal(g.calls, 0);
}

static void
test_rebuild_after_timeouts(void **state)
{
    struct ctx *c = *state;
    struct sockaddr_storage ns;
    struct resolver *r = make_resolver(c->loop, &ns, main_fault.port, 0.1, 1);
    struct resolver_stats st;
    struct got g;

    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"drop2.test\","
                     " \"a\": [\"10.0.0.1\"], \"fault\": \"drop\"}");
    for (int i = 0; i < RESOLVER_REBUILD_TIMEOUTS; i++) {
        resolve_wait(c->loop, r, "drop2.test", AF_INET, &g, 3);
        assert_int_equal(g.status, RESOLVER_TIMEOUT);
        resolver_get_stats(r, &st);
        assert_int_equal(st.rebuilds,
                         i + 1 < RESOLVER_REBUILD_TIMEOUTS ? 0 : 1);
    }
    /* The new channel works. */
    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"drop2.test\","
                     " \"a\": [\"10.0.0.1\"]}");
    resolve_wait(c->loop, r, "drop2.test", AF_INET, &g, 3);
    assert_int_equal(g.status, RESOLVER_OK);
    resolver_destroy(r);
}

static void
test_rebuild_after_refused(void **state)
{
    struct ctx *c = *state;
    struct fault f;
    struct sockaddr_storage ns;
    struct resolver *r;
    struct resolver_stats st;
    struct got g;
    int port;

    assert_int_equal(fault_start(&f, 0), 0);
    port = f.port;
    r = make_resolver(c->loop, &ns, port, 0.3, 2);
    assert_non_null(r);
    CTL(&f, "{\"cmd\": \"set\", \"name\": \"back.test\","
            " \"a\": [\"10.3.3.3\"]}");
    resolve_wait(c->loop, r, "back.test", AF_INET, &g, 5);
    assert_int_equal(g.status, RESOLVER_OK);

    fault_stop(&f); /* ICMP port unreachable from now on */
    resolve_wait(c->loop, r, "back.test", AF_INET, &g, 5);
    assert_true(g.status == RESOLVER_ERROR || g.status == RESOLVER_TIMEOUT);
    assert_true(g.sent);
    resolver_get_stats(r, &st);
    assert_true(st.rebuilds >= 1);

    assert_int_equal(fault_start(&f, port), 0);
    assert_int_equal(f.port, port);
    CTL(&f, "{\"cmd\": \"set\", \"name\": \"back.test\","
            " \"a\": [\"10.3.3.4\"]}");
    resolve_wait(c->loop, r, "back.test", AF_INET, &g, 5);
    assert_int_equal(g.status, RESOLVER_OK);
    assert_string_equal(g.addrs[0], "10.3.3.4");
    resolver_destroy(r);
    fault_stop(&f);
}

static void
test_reconfigure_in_flight(void **state)
{
    struct ctx *c = *state;
    struct sockaddr_storage ns;
    struct resolver_options o = {
        .nameservers = &ns, .nnameservers = 1, .timeout = 1, .attempts = 1};
    struct got g, slow;

    CTL(&main_fault, "{\"cmd\": \"set\", \"name\": \"slow6.test\","
                     " \"a\": [\"10.0.0.6\"], \"delay_ms\": 150}");
    memset(&slow, 0, sizeof(slow));
    assert_non_null(
        resolver_resolve(c->r, "slow6.test", AF_INET, on_got, &slow));
    /* Same server, new channel: the old one finishes slow6 once. */
    ns_v4(&ns, main_fault.port);
    assert_int_equal(resolver_reconfigure(c->r, &o), 0);
    resolve_wait(c->loop, c->r, "api.test", AF_INET, &g, 5);
    assert_true(wait_for(c->loop, &slow.calls, 1, 5));
    assert_int_equal(slow.status, RESOLVER_OK);
    assert_string_equal(slow.addrs[0], "10.0.0.6");
    /* Nothing else arrives for it. */
    resolve_wait(c->loop, c->r, "10.0.0.1", AF_INET, &g, 2);
    assert_int_equal(slow.calls, 1);

    /* A bad option set is refused and the old one stays. */
    o.attempts = 0;
    assert_int_equal(resolver_reconfigure(c->r, &o), -1);
    resolve_wait(c->loop, c->r, "api.test", AF_INET, &g, 5);
    assert_int_equal(g.status, RESOLVER_OK);
}

static void
test_bad_requests(void **state)
{
    struct ctx *c = *state;
    struct got g;
    char longname[300];

    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_null(resolver_resolve(c->r, "x.test", AF_UNSPEC, on_got, &g));
    assert_null(resolver_resolve(c->r, "", AF_INET, on_got, &g));
    assert_null(resolver_resolve(c->r, longname, AF_INET, on_got, &g));
    assert_string_equal(resolver_status_name(RESOLVER_NXDOMAIN), "nxdomain");
    assert_string_equal(resolver_status_name(RESOLVER_EMPTY), "empty");

    struct resolver_addr a = {.family = AF_INET6};
    struct sockaddr_storage ss;
    a.u.v6 = in6addr_loopback;
    assert_int_equal(resolver_addr_to_sockaddr(&a, 8080, &ss),
                     sizeof(struct sockaddr_in6));
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 8080);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_and_aaaa_custom_port, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_nameserver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_45_a_records_udp_edns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ip_literal_not_sent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hosts_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nxdomain_servfail_empty, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_servfail_failover, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_timeout_one_attempt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cname_ttl_minimum, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resolve_from_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_destroy_with_requests, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_after_timeouts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_after_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure_in_flight, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
