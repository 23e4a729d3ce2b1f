/*
 * main: command line, start order, signals, exit codes.
 *
 * Exit status (docs/operations.md): 0 clean stop, 1 configuration error or
 * bad option, 2 runtime error at start (cannot bind, out of fds, ...).
 */
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "dns.h"
#include "log.h"
#include "plane.h"
#include "resolver.h"
#include "runtime.h"
#include "stats.h"
#include "tls.h"

#include "autoconfig.h"

#define EXIT_CONFIG 1
#define EXIT_RUNTIME 2

static const char usage_text[] =
    "Usage: ferry [-c FILE] [-t] [-V] [-h]\n"
    "\n"
    "A TCP and HTTP load balancer whose backends are DNS names.\n"
    "\n"
    "  -c, --config FILE   configuration file (default: " CONFIG_DEFAULT_PATH
    ")\n"
    "  -t, --test          check the configuration: print \"configuration "
    "OK\"\n"
    "                      and exit 0, or print FILE:LINE: message errors "
    "and\n"
    "                      exit 1\n"
    "  -V, --version       print the version and exit\n"
    "  -h, --help          print this help and exit\n"
    "\n"
    "Runs in the foreground and logs to stderr; global.workers event-loop\n"
    "threads serve connections (auto: one per CPU). Signals: SIGTERM/SIGINT\n"
    "stop gracefully (open connections get global.shutdown_timeout to\n"
    "finish); SIGHUP reloads the configuration (a bad file keeps the running\n"
    "one).\n"
    "Exit status: 0 clean stop, 1 configuration error, 2 runtime error at "
    "start.\n"
    "Docs: docs/configuration.md, docs/operations.md; example: "
    "lb.conf.example\n";

struct main_state {
    struct ev_loop *loop; /* the event loop */
    struct runtime *rt;   /* what is running */
    struct dns *dns;      /* resolver and cache */
    struct stats *stats;  /* the stats endpoint */
    ev_signal sigterm;    /* graceful stop */
    ev_signal sigint;     /* graceful stop */
    ev_signal sighup;     /* reload request */
    ev_timer drain;       /* checks open conns while stopping */
    const char *path;     /* configuration file */
    double stop_deadline; /* end of the graceful stop */
    unsigned nworkers;    /* worker threads (global.workers resolved) */
    int exit_code;        /* what main returns after the loop */
};

static void
print_errors(const char *path, struct config_errors *errs)
{
    if (errs->n == 0)
        fprintf(stderr, "%s:0: out of memory\n", path);
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s\n", errs->msgs[i]);
}

/*
 * Every load (start, -t, SIGHUP) goes through here, so each one checks the
 * TLS files as well: config cannot open them itself (OpenSSL is a layer
 * above it) and reports what tls_check_pair finds with the line.
 */
static struct config *
load_config(const char *path, struct config_errors *errs)
{
    return config_load_checked(path, tls_check_pair, errs);
}

static void
drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct main_state *st = w->data;

    (void)revents;
    if (runtime_active_conns(st->rt) == 0) {
        log_info("all connections closed; exiting");
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    if (ev_now(loop) >= st->stop_deadline) {
        log_warn("shutdown_timeout reached; closing %u connections",
                 runtime_active_conns(st->rt));
        runtime_close_all(st->rt);
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    ev_timer_again(loop, w);
}

static void
stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct main_state *st = w->data;

    (void)revents;
    if (st->rt->stopping) {
        log_info("second stop signal; exiting now");
        runtime_close_all(st->rt);
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    log_info("signal %d: stopping (waiting up to %.0fs for %u connections)",
             w->signum, st->rt->cfg->shutdown_timeout,
             runtime_active_conns(st->rt));
    runtime_stop_listening(st->rt);
    st->stop_deadline = ev_now(loop) + st->rt->cfg->shutdown_timeout;
    /* Polling at 50 ms keeps the stop prompt without per-conn hooks. */
    ev_timer_init(&st->drain, drain_cb, 0, 0.05);
    st->drain.data = st;
    ev_timer_again(loop, &st->drain);
    ev_feed_event(loop, &st->drain, EV_TIMER);
}

static struct main_state *main_st; /* ready_cb's view of main's state */

static void
ready_cb(struct runtime *rt)
{
    char err[256];

    if (runtime_start(rt, err, sizeof(err)) != 0) {
        log_error("%s", err);
        main_st->exit_code = EXIT_RUNTIME;
        ev_break(main_st->loop, EVBREAK_ALL);
        return;
    }
    log_info("ferry %s started (config %s, %u worker%s)", PACKAGE_VERSION,
             rt->cfg->path, rt->nworkers, rt->nworkers == 1 ? "" : "s");
}

/* Opens (and closes) an access log path, so a reload can refuse a bad one
 * before anything changes. */
static bool
access_log_writable(const char *target, char *err, size_t errlen)
{
    FILE *fp;

    if (target == NULL || strcmp(target, "stderr") == 0)
        return true;
    fp = fopen(target, "a");
    if (fp == NULL) {
        snprintf(err, errlen, "cannot open access_log %s: %s", target,
                 strerror(errno));
        return false;
    }
    fclose(fp);
    return true;
}

/*
 * SIGHUP. The whole file is read and validated, and every new address
 * bound, before anything changes; a bad file keeps the running
 * configuration. Signals that arrive while this runs are folded into one
 * by libev, so a burst of SIGHUPs costs one more reload of the newest file.
 */
static void
hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct main_state *st = w->data;
    struct runtime *rt = st->rt;
    struct config_errors errs;
    struct config *cfg;
    char err[512];

    (void)loop;
    (void)revents;
    if (rt->stopping)
        return;
    log_info("SIGHUP: reloading %s", st->path);
    cfg = load_config(st->path, &errs);
    if (cfg == NULL) {
        if (errs.n == 0)
            log_error("reload failed: %s:0: out of memory", st->path);
        for (size_t i = 0; i < errs.n; i++)
            log_error("reload failed: %s", errs.msgs[i]);
        config_errors_free(&errs);
        rt->reloads_fail++;
        log_warn("reload failed; still running the previous configuration");
        return;
    }
    if (cfg->workers != rt->cfg->workers)
        log_warn("reload: global.workers changed; it takes effect only "
                 "after a restart (still %u worker%s)",
                 rt->nworkers, rt->nworkers == 1 ? "" : "s");
    if (!access_log_writable(cfg->access_log, err, sizeof(err)) ||
        stats_reload_prepare(st->stats, cfg, err, sizeof(err)) != 0 ||
        runtime_reload(rt, cfg, err, sizeof(err)) != 0) {
        stats_reload_abort(st->stats);
        log_error("reload failed: %s", err);
        config_free(cfg);
        rt->reloads_fail++;
        log_warn("reload failed; still running the previous configuration");
        return;
    }
    /* The runtime owns cfg now; the rest cannot undo the swap. */
    stats_reload_commit(st->stats, cfg);
    log_set_level(cfg->log_level);
    if (log_access_open(cfg->access_log) != 0)
        log_error("cannot open access_log %s: %m", cfg->access_log);
    if (dns_reconfigure(st->dns, cfg, err, sizeof(err)) != 0)
        log_error("reload: %s; the previous [resolver] settings stay", err);
    rt->reloads_ok++;
    log_info("reload done");
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = CONFIG_DEFAULT_PATH;
    struct config_errors errs;
    struct main_state st;
    struct config *cfg;
    char err[512];
    bool test_only = false;
    int opt;

    while ((opt = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test_only = true;
            break;
        case 'V':
            printf("ferry %s\n", PACKAGE_VERSION);
            return 0;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            fputs(usage_text, stderr);
            return EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ferry: unexpected argument '%s'\n", argv[optind]);
        fputs(usage_text, stderr);
        return EXIT_CONFIG;
    }

    cfg = load_config(path, &errs);
    if (cfg == NULL) {
        print_errors(path, &errs);
        config_errors_free(&errs);
        return EXIT_CONFIG;
    }
    if (test_only) {
        printf("configuration OK\n");
        config_free(cfg);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    log_set_level(cfg->log_level);
    if (log_access_open(cfg->access_log) != 0) {
        log_error("cannot open access_log %s: %m", cfg->access_log);
        config_free(cfg);
        return EXIT_RUNTIME;
    }

    memset(&st, 0, sizeof(st));
    st.loop = ev_default_loop(EVFLAG_AUTO);
    if (st.loop == NULL) {
        log_error("cannot create the event loop");
        config_free(cfg);
        return EXIT_RUNTIME;
    }
    /* auto: as many workers as CPUs this process may run on. */
    st.nworkers = cfg->workers ? cfg->workers : worker_cpus();
    plane_init(st.loop, st.nworkers > 1);
    main_st = &st;
    resolver_library_init();
    st.dns = dns_create(st.loop, cfg, err, sizeof(err));
    if (st.dns == NULL) {
        log_error("%s", err);
        config_free(cfg);
        log_access_close();
        return EXIT_RUNTIME;
    }
    st.rt = runtime_create(st.loop, cfg, st.dns, st.nworkers, err, sizeof(err));
    if (st.rt == NULL) {
        log_error("%s", err);
        dns_destroy(st.dns);
        config_free(cfg);
        log_access_close();
        return EXIT_RUNTIME;
    }
    st.stats = stats_create(st.loop, cfg, st.rt, st.dns, err, sizeof(err));
    if (st.stats == NULL) {
        log_error("%s", err);
        runtime_destroy(st.rt);
        dns_destroy(st.dns);
        config_free(cfg);
        log_access_close();
        return EXIT_RUNTIME;
    }

    ev_signal_init(&st.sigterm, stop_cb, SIGTERM);
    ev_signal_init(&st.sigint, stop_cb, SIGINT);
    ev_signal_init(&st.sighup, hup_cb, SIGHUP);
    st.sigterm.data = st.sigint.data = st.sighup.data = &st;
    st.path = path;
    ev_signal_start(st.loop, &st.sigterm);
    ev_signal_start(st.loop, &st.sigint);
    ev_signal_start(st.loop, &st.sighup);

    /* Listeners accept once the first health checks have answered. */
    runtime_prepare(st.rt, ready_cb);
    ev_run(st.loop, 0);

    ev_timer_stop(st.loop, &st.drain);
    ev_signal_stop(st.loop, &st.sigterm);
    ev_signal_stop(st.loop, &st.sigint);
    ev_signal_stop(st.loop, &st.sighup);
    cfg = st.rt->cfg; /* a reload may have replaced it */
    stats_destroy(st.stats);
    runtime_destroy(st.rt);
    dns_destroy(st.dns);
    config_free(cfg);
    plane_deinit();
    buf_drain_free_list();
    log_access_close();
    ev_loop_destroy(st.loop);
    log_info("stopped");
    return st.exit_code;
}
