/*
 * health: rise/fall hysteresis, passive windows and cool-downs (pure, time
 * passed in), then tcp/http probes on libev that feed them. See health.h
 * for the state diagram and docs/health.md for the numbers.
 *
 * Probe of one member (one ev_timer, one ev_io):
 *
 *   IDLE ──timer──► PROBE: CONNECTING ──writable, SO_ERROR 0──► tcp: pass
 *    ▲                │                                         http: SENDING
 *    │                │ timer (health_timeout): "timeout"          │
 *    │                ▼                                            ▼
 *    └── next check at jittered interval ◄── close ◄── READING status line
 */
#include "health.h"

#include <assert.h>
#include <errno.h>
#include <ev.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "list.h"
#include "log.h"

enum health_state {
    HS_UNKNOWN, /* attached, no check result yet */
    HS_UP,      /* taking traffic */
    HS_DOWN,    /* out, by checks or passively */
};

enum health_phase {
    PH_OFF,      /* no timer (kind none, no loop) */
    PH_IDLE,     /* timer counts to the next check */
    PH_PROBE,    /* probe in flight, timer = timeout */
    PH_COOLDOWN, /* kind none: timer ends cool-down */
};

enum health_step {
    STEP_CONNECTING, /* waiting for writable */
    STEP_SENDING,    /* http: request partly written */
    STEP_READING,    /* http: waiting for status line */
};

/* Enough for "HTTP/1.1 200 " and then some; the rest is never read. */
#define HEALTH_RESP_MAX 64
#define HEALTH_REQ_MAX (CONFIG_HOST_MAX * 2 + 128)

struct health_member {
    struct health_checker *checker; /* owner, holds the parameters */
    struct member *m;               /* the member watched */
    struct list link;               /* in checker's members */
    enum health_state state;        /* hysteresis state */
    unsigned passes;                /* consecutive passes while down */
    unsigned fails;                 /* consecutive failures while up */
    bool first_done;                /* counted out of first round */

    uint64_t *win;         /* passive window, 1 bit = error */
    unsigned win_size;     /* outcomes the window holds */
    unsigned win_len;      /* outcomes recorded, <= win_size */
    unsigned win_pos;      /* slot the next outcome goes to */
    unsigned win_errors;   /* set bits among recorded */
    bool passive_out;      /* down because of the window */
    bool capped_logged;    /* cap refusal already logged */
    unsigned streak;       /* ejections in a row (cool-down) */
    double cooldown_until; /* kind none: end of ejection */

    struct health_counters counters; /* exported to stats */

    enum health_phase phase;        /* what the timer means now */
    enum health_step step;          /* where the probe is */
    int fd;                         /* probe socket, -1 when none */
    ev_timer timer;                 /* next check, timeout, cool-down */
    ev_io io;                       /* probe socket readiness */
    double probe_start;             /* ev_time() at probe start */
    size_t req_len;                 /* http: request bytes */
    size_t sent;                    /* http: request bytes written */
    size_t resp_len;                /* http: status bytes read */
    char host[CONFIG_HOST_MAX + 1]; /* Host header of http checks */
    char req[HEALTH_REQ_MAX];       /* http: the GET request */
    char resp[HEALTH_RESP_MAX];     /* http: start of the response */
};

struct health_checker {
    struct ev_loop *loop;        /* NULL: no probes (tests) */
    struct health_params params; /* current parameters */
    struct health_hooks hooks;   /* owner's callbacks */
    struct list members;         /* attached, newest first */
    size_t pending;              /* members without a first result */
    ev_timer notify;             /* defers the first_round hook */
    uint64_t rng;                /* internal xorshift state */
};

static void probe_abort(struct health_member *hm);
static void schedule(struct health_member *hm, enum health_phase phase,
                     double delay);
static void pending_done(struct health_member *hm);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

double
health_jitter(double interval, double u)
{
    if (u < 0)
        u = 0;
    if (u >= 1)
        u = 1;
    return interval * (1.0 - HEALTH_JITTER / 2 + HEALTH_JITTER * u);
}

double
health_cooldown(double base, unsigned streak)
{
    double d = base;

    for (unsigned i = 0; i < streak && d < HEALTH_COOLDOWN_MAX; i++)
        d *= 2;
    return d < HEALTH_COOLDOWN_MAX ? d : HEALTH_COOLDOWN_MAX;
}

unsigned
health_passive_allowed(unsigned window, double rate)
{
    /* The epsilon keeps 0.7 * 10 at 7, not 6.999...: "exactly at the rate"
     * must never eject. */
    double a = floor(rate * (double)window + 1e-9);

    if (a < 0)
        return 0;
    if (a > (double)window)
        return window;
    return (unsigned)a;
}

int
health_parse_status(const char *buf, size_t len, unsigned *code)
{
    static const char tmpl[] = "HTTP/1.d ddd";
    const size_t tl = sizeof(tmpl) - 1;
    unsigned c = 0;

    for (size_t i = 0; i < len && i < tl; i++) {
        char t = tmpl[i], b = buf[i];
        if (t == 'd') {
            if (b < '0' || b > '9')
                return -1;
            if (i > 8)
                c = c * 10 + (unsigned)(b - '0');
        } else if (t != b) {
            return -1;
        }
    }
    if (len <= tl)
        return 0;
    if (buf[tl] != ' ' && buf[tl] != '\r')
        return -1;
    *code = c;
    return 1;
}

static double
checker_rnd(struct health_checker *c)
{
    if (c->hooks.rnd != NULL)
        return c->hooks.rnd(c->hooks.arg);
    /* xorshift64*: jitter needs spread, not quality. */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    /* Top 53 bits over 2^53: uniform in [0, 1). */
    return (double)((c->rng * 2685821657736338717ULL) >> 11) /
           9007199254740992.0;
}

static const char *
errno_reason(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return "connection refused";
    case ETIMEDOUT:
        return "timeout";
    case ECONNRESET:
    case EPIPE:
        return "connection reset";
    case EHOSTUNREACH:
        return "host unreachable";
    case ENETUNREACH:
        return "network unreachable";
    default:
        return strerror(err);
    }
}

void
health_params_from_config(struct health_params *p,
                          const struct config_backend *b)
{
    memset(p, 0, sizeof(*p));
    p->kind = b->health_check;
    snprintf(p->path, sizeof(p->path), "%s", b->health_path);
    p->expect_lo = b->health_expect_lo;
    p->expect_hi = b->health_expect_hi;
    p->interval = b->health_interval;
    p->timeout = b->health_timeout;
    p->rise = b->rise;
    p->fall = b->fall;
    p->window = b->passive_window;
    p->error_rate = b->passive_error_rate;
    p->cooldown = HEALTH_COOLDOWN_BASE;
}

/* ------------------------------------------------------------------ */
/* Pure logic                                                          */

static void
window_clear(struct health_member *hm)
{
    if (hm->win != NULL)
        memset(hm->win, 0, ((hm->win_size + 63) / 64) * sizeof(uint64_t));
    hm->win_len = 0;
    hm->win_pos = 0;
    hm->win_errors = 0;
    hm->capped_logged = false;
}

/* Replaces the window with an empty one of `size` outcomes. */
static int
window_resize(struct health_member *hm, unsigned size)
{
    uint64_t *w = NULL;

    if (size > 0) {
        w = calloc((size + 63) / 64, sizeof(*w));
        if (w == NULL)
            return -1;
    }
    free(hm->win);
    hm->win = w;
    hm->win_size = size;
    window_clear(hm);
    return 0;
}

/*
 * Records the new state and, when member->up changes, logs and tells the
 * owner. The hook may detach hm, so callers touch nothing after this.
 */
static void
set_state(struct health_member *hm, enum health_state st, const char *reason,
          double now, bool warn)
{
    struct member *m = hm->m;
    struct health_checker *c = hm->checker;
    bool up = st == HS_UP;
    const char *backend = m->pool != NULL ? m->pool->backend : "-";

    hm->state = st;
    hm->passes = 0;
    hm->fails = 0;
    snprintf(hm->counters.reason, sizeof(hm->counters.reason), "%s", reason);
    /* A fresh verdict starts a fresh window either way. */
    window_clear(hm);
    if (m->up == up) {
        /* A new member whose first check failed: it was never up. */
        log_info("backend %s member %s %s: %s", backend, m->addr_text,
                 up ? "up" : "down", reason);
        return;
    }
    m->up = up;
    if (up)
        m->up_since = now;
    hm->counters.transitions++;
    hm->counters.last_change = now;
    if (warn)
        log_warn("backend %s member %s %s: %s", backend, m->addr_text,
                 up ? "up" : "down", reason);
    else
        log_info("backend %s member %s %s: %s", backend, m->addr_text,
                 up ? "up" : "down", reason);
    if (c->hooks.change != NULL)
        c->hooks.change(c->hooks.arg, m, up, reason);
}

static const char *
plural(unsigned n)
{
    return n == 1 ? "" : "s";
}

void
health_member_check_done(struct member *m, bool pass, const char *reason,
                         double duration, double now)
{
    struct health_member *hm = m->health;
    const struct health_params *p;
    char why[HEALTH_REASON_MAX + 32];

    if (hm == NULL)
        return;
    p = &hm->checker->params;
    if (pass)
        hm->counters.checks_passed++;
    else
        hm->counters.checks_failed++;
    hm->counters.last_duration = duration;
    hm->counters.last_pass = pass;
    hm->counters.has_checked = true;
    snprintf(hm->counters.last_check, sizeof(hm->counters.last_check), "%s",
             reason != NULL ? reason : (pass ? "ok" : "failed"));
    reason = hm->counters.last_check;
    if (!hm->first_done)
        pending_done(hm);

    switch (hm->state) {
    case HS_UNKNOWN:
        if (pass) {
            set_state(hm, HS_UP, "first check passed", now, false);
        } else {
            snprintf(why, sizeof(why), "first check failed: %s", reason);
            set_state(hm, HS_DOWN, why, now, false);
        }
        return;
    case HS_UP:
        if (pass) {
            hm->fails = 0;
            return;
        }
        if (++hm->fails < p->fall)
            return;
        snprintf(why, sizeof(why), "%u check%s failed: %s", hm->fails,
                 plural(hm->fails), reason);
        set_state(hm, HS_DOWN, why, now, false);
        return;
    case HS_DOWN:
        if (!pass) {
            hm->passes = 0;
            return;
        }
        if (++hm->passes < p->rise)
            return;
        snprintf(why, sizeof(why), "%u check%s passed", hm->passes,
                 plural(hm->passes));
        hm->passive_out = false;
        hm->cooldown_until = 0;
        set_state(hm, HS_UP, why, now, false);
        return;
    }
}

/* Members of m's pool currently out because of their passive window. */
static size_t
pool_passive_out(const struct pool *pool)
{
    size_t n = 0;

    for (size_t i = 0; i < pool->n; i++) {
        const struct health_member *o = pool->members[i]->health;
        if (o != NULL && o->passive_out)
            n++;
    }
    return n;
}

static void
passive_eject(struct health_member *hm, double now)
{
    struct health_checker *c = hm->checker;
    struct member *m = hm->m;
    char why[HEALTH_REASON_MAX];
    size_t cap = m->pool != NULL ? m->pool->n / 2 : 0;

    if (m->pool == NULL || pool_passive_out(m->pool) >= cap) {
        /* Keep the window: the member goes as soon as room frees up. */
        hm->counters.passive_capped++;
        if (!hm->capped_logged)
            log_warn("backend %s member %s: passive: %u/%u errors, not "
                     "taken out (at most %zu of %zu members may be)",
                     m->pool != NULL ? m->pool->backend : "-", m->addr_text,
                     hm->win_errors, hm->win_size, cap,
                     m->pool != NULL ? m->pool->n : 0);
        hm->capped_logged = true;
        return;
    }
    snprintf(why, sizeof(why), "passive: %u/%u errors", hm->win_errors,
             hm->win_size);
    hm->counters.passive_ejections++;
    hm->passive_out = true;
    if (c->params.kind == HEALTH_NONE) {
        /* Up for a stable period since the last time: start over. */
        if (now - m->up_since >= HEALTH_COOLDOWN_STABLE)
            hm->streak = 0;
        hm->cooldown_until = now +
                             health_cooldown(c->params.cooldown, hm->streak);
        hm->streak++;
        if (c->loop != NULL)
            schedule(hm, PH_COOLDOWN, hm->cooldown_until - now);
    }
    set_state(hm, HS_DOWN, why, now, true);
}

void
health_passive_outcome(struct member *m, enum balance_outcome o, double now)
{
    struct health_member *hm = m->health;
    unsigned word, bit;
    bool err;

    if (hm == NULL || hm->win_size == 0 || o == BALANCE_ABORTED)
        return;
    /* Outcomes of connections opened before the member went down carry no
     * news: it is out already. */
    if (!m->up || m->gone || hm->state != HS_UP)
        return;
    err = o == BALANCE_CONNECT_ERROR || o == BALANCE_TIMEOUT ||
          o == BALANCE_SERVER_ERROR;
    word = hm->win_pos / 64;
    bit = hm->win_pos % 64;
    if (hm->win_len == hm->win_size) {
        if (hm->win[word] & (UINT64_C(1) << bit))
            hm->win_errors--;
    } else {
        hm->win_len++;
    }
    if (err) {
        hm->win[word] |= UINT64_C(1) << bit;
        hm->win_errors++;
    } else {
        hm->win[word] &= ~(UINT64_C(1) << bit);
    }
    hm->win_pos = (hm->win_pos + 1) % hm->win_size;
    if (hm->win_len == hm->win_size &&
        hm->win_errors > health_passive_allowed(hm->win_size,
                                                hm->checker->params.error_rate))
        passive_eject(hm, now);
}

void
health_member_tick(struct member *m, double now)
{
    struct health_member *hm = m->health;

    if (hm == NULL || !hm->passive_out || hm->cooldown_until <= 0 ||
        now < hm->cooldown_until)
        return;
    hm->passive_out = false;
    hm->cooldown_until = 0;
    if (hm->phase == PH_COOLDOWN && hm->checker->loop != NULL)
        ev_timer_stop(hm->checker->loop, &hm->timer);
    if (hm->phase == PH_COOLDOWN)
        hm->phase = PH_OFF;
    set_state(hm, HS_UP, "cool-down elapsed", now, false);
}

size_t
health_first_round_pending(const struct health_checker *c)
{
    return c->pending;
}

const struct health_counters *
health_member_counters(const struct member *m)
{
    return m->health != NULL ? &m->health->counters : NULL;
}

double
health_member_cooldown_until(const struct member *m)
{
    return m->health != NULL ? m->health->cooldown_until : 0;
}

/* ------------------------------------------------------------------ */
/* Probes on libev                                                     */

static void
notify_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct health_checker *c = container_of(w, struct health_checker, notify);

    (void)loop;
    (void)revents;
    if (c->pending == 0 && c->hooks.first_round != NULL)
        c->hooks.first_round(c->hooks.arg);
}

static void
pending_done(struct health_member *hm)
{
    struct health_checker *c = hm->checker;

    hm->first_done = true;
    c->pending--;
    /* Deferred to the loop so the hook never runs inside our callers. */
    if (c->pending == 0 && c->loop != NULL && !ev_is_active(&c->notify)) {
        ev_timer_set(&c->notify, 0, 0);
        ev_timer_start(c->loop, &c->notify);
    }
}

static void
schedule(struct health_member *hm, enum health_phase phase, double delay)
{
    struct ev_loop *loop = hm->checker->loop;

    hm->phase = phase;
    if (loop == NULL)
        return;
    ev_timer_stop(loop, &hm->timer);
    ev_timer_set(&hm->timer, delay > 0 ? delay : 0, 0);
    ev_timer_start(loop, &hm->timer);
}

static void
probe_close(struct health_member *hm)
{
    struct ev_loop *loop = hm->checker->loop;

    if (loop != NULL)
        ev_io_stop(loop, &hm->io);
    if (hm->fd >= 0) {
        close(hm->fd);
        hm->fd = -1;
    }
}

/* Stops a probe in flight without a verdict, and the timer. */
static void
probe_abort(struct health_member *hm)
{
    probe_close(hm);
    if (hm->checker->loop != NULL)
        ev_timer_stop(hm->checker->loop, &hm->timer);
    hm->phase = PH_OFF;
}

static void
probe_finish(struct health_member *hm, bool pass, const char *reason)
{
    struct health_checker *c = hm->checker;
    double duration = ev_time() - hm->probe_start;
    char why[HEALTH_REASON_MAX];

    /* reason may point into hm->resp; copy before anything moves. */
    snprintf(why, sizeof(why), "%s", reason);
    probe_close(hm);
    schedule(hm, PH_IDLE, health_jitter(c->params.interval, checker_rnd(c)));
    /* Last: the change hook may detach hm. */
    health_member_check_done(hm->m, pass, why, duration, ev_now(c->loop));
}

static void
io_watch(struct health_member *hm, int events)
{
    struct ev_loop *loop = hm->checker->loop;

    ev_io_stop(loop, &hm->io);
    ev_io_set(&hm->io, hm->fd, events);
    ev_io_start(loop, &hm->io);
}

static void
probe_read(struct health_member *hm)
{
    const struct health_params *p = &hm->checker->params;
    char why[HEALTH_REASON_MAX];
    unsigned code;
    ssize_t n;
    int r;

    for (;;) {
        n = recv(hm->fd, hm->resp + hm->resp_len,
                 sizeof(hm->resp) - hm->resp_len, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            probe_finish(hm, false, errno_reason(errno));
            return;
        }
        if (n == 0) {
            probe_finish(hm, false, "bad response");
            return;
        }
        hm->resp_len += (size_t)n;
        r = health_parse_status(hm->resp, hm->resp_len, &code);
        if (r < 0 || (r == 0 && hm->resp_len == sizeof(hm->resp))) {
            probe_finish(hm, false, "bad response");
            return;
        }
        if (r == 1) {
            snprintf(why, sizeof(why), "status %u", code);
            probe_finish(hm, code >= p->expect_lo && code <= p->expect_hi, why);
            return;
        }
    }
}

static void
probe_send(struct health_member *hm)
{
    while (hm->sent < hm->req_len) {
        ssize_t n = send(hm->fd, hm->req + hm->sent, hm->req_len - hm->sent,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                io_watch(hm, EV_WRITE);
                return;
            }
            probe_finish(hm, false, errno_reason(errno));
            return;
        }
        hm->sent += (size_t)n;
    }
    hm->step = STEP_READING;
    io_watch(hm, EV_READ);
}

static void
probe_connected(struct health_member *hm)
{
    const struct health_params *p = &hm->checker->params;
    int n;

    if (p->kind != HEALTH_HTTP) {
        probe_finish(hm, true, "ok");
        return;
    }
    n = snprintf(hm->req, sizeof(hm->req),
                 "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                 "User-Agent: ferry-health\r\nAccept: */*\r\n\r\n",
                 p->path, hm->host);
    hm->req_len = n < (int)sizeof(hm->req) ? (size_t)n : sizeof(hm->req) - 1;
    hm->sent = 0;
    hm->resp_len = 0;
    hm->step = STEP_SENDING;
    probe_send(hm);
}

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct health_member *hm = container_of(w, struct health_member, io);
    int err = 0;
    socklen_t len = sizeof(err);

    (void)loop;
    (void)revents;
    switch (hm->step) {
    case STEP_CONNECTING:
        if (getsockopt(hm->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err != 0) {
            probe_finish(hm, false, errno_reason(err));
            return;
        }
        probe_connected(hm);
        return;
    case STEP_SENDING:
        probe_send(hm);
        return;
    case STEP_READING:
        probe_read(hm);
        return;
    }
}

static void
probe_start(struct health_member *hm)
{
    struct health_checker *c = hm->checker;
    struct member *m = hm->m;

    hm->probe_start = ev_time();
    hm->step = STEP_CONNECTING;
    /* The timeout covers connect, request and status line together. */
    schedule(hm, PH_PROBE, c->params.timeout);
    switch (c->hooks.probe_connect(m, &hm->fd)) {
    case 1:
        probe_connected(hm);
        return;
    case 0:
        io_watch(hm, EV_WRITE);
        return;
    default:
        probe_finish(hm, false, errno_reason(errno));
        return;
    }
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct health_member *hm = container_of(w, struct health_member, timer);

    (void)revents;
    switch (hm->phase) {
    case PH_IDLE:
        probe_start(hm);
        return;
    case PH_PROBE:
        probe_finish(hm, false, "timeout");
        return;
    case PH_COOLDOWN:
        health_member_tick(hm->m, ev_now(loop));
        return;
    case PH_OFF:
        return;
    }
}

/* ------------------------------------------------------------------ */
/* Lifetime                                                            */

struct health_checker *
health_create(struct ev_loop *loop, const struct health_params *params,
              const struct health_hooks *hooks)
{
    struct health_checker *c = calloc(1, sizeof(*c));

    /* Probes need a way to connect; pure-logic use (no loop) does not. */
    assert(loop == NULL || (hooks != NULL && hooks->probe_connect != NULL));
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->params = *params;
    list_init(&c->members);
    if (hooks != NULL)
        c->hooks = *hooks;
    c->rng = (uint64_t)(uintptr_t)c ^ ((uint64_t)time(NULL) << 20) ^
             UINT64_C(0x9e3779b97f4a7c15);
    if (c->rng == 0)
        c->rng = 1;
    ev_timer_init(&c->notify, notify_cb, 0, 0);
    return c;
}

static void
member_unlink(struct health_member *hm)
{
    struct health_checker *c = hm->checker;

    list_del(&hm->link);
    if (!hm->first_done && c->pending > 0) {
        /* Leaving counts as done: the first round must not wait on it. */
        pending_done(hm);
        hm->first_done = false;
    }
}

static void
member_link(struct health_checker *c, struct health_member *hm)
{
    hm->checker = c;
    list_add(&c->members, &hm->link);
}

/* host part of "HOST:PORT" or "[v6]:PORT". */
static void
host_from_spec(char *out, size_t len, const char *spec)
{
    const char *colon = strrchr(spec, ':');
    size_t n = colon != NULL ? (size_t)(colon - spec) : strlen(spec);

    if (spec[0] == '[') {
        const char *rb = strchr(spec, ']');
        if (rb != NULL)
            n = (size_t)(rb - spec) + 1;
    }
    if (n >= len)
        n = len - 1;
    memcpy(out, spec, n);
    out[n] = '\0';
}

/*
 * Brings hm in line with its checker's parameters after a reload or move:
 * `old` is what hm ran under before.
 */
static int
member_apply(struct health_member *hm, const struct health_params *old,
             double now)
{
    const struct health_params *p = &hm->checker->params;

    if (old->window != p->window && window_resize(hm, p->window) != 0)
        return -1;
    if (old->kind == p->kind) {
        /* A shorter interval should not wait out the old one. */
        if (hm->phase == PH_IDLE && old->interval != p->interval)
            schedule(hm, PH_IDLE,
                     health_jitter(p->interval, checker_rnd(hm->checker)));
        return 0;
    }
    probe_abort(hm);
    hm->cooldown_until = 0;
    if (p->kind != HEALTH_NONE) {
        /* Checks from now on; a passively ejected member needs `rise`. */
        schedule(hm, PH_IDLE, 0);
        return 0;
    }
    if (!hm->first_done && hm->checker->pending > 0)
        pending_done(hm);
    if (hm->passive_out) {
        hm->cooldown_until = now + health_cooldown(p->cooldown, hm->streak);
        hm->streak++;
        schedule(hm, PH_COOLDOWN, hm->cooldown_until - now);
        return 0;
    }
    if (hm->state != HS_UP)
        set_state(hm, HS_UP, "health check none", now, false);
    return 0;
}

int
health_update_params(struct health_checker *c,
                     const struct health_params *params, double now)
{
    struct health_params old = c->params;
    struct list *pos, *tmp;
    int rc = 0;

    c->params = *params;
    /* _safe: the change hook may detach hm. */
    list_for_each_safe (pos, tmp, &c->members) {
        struct health_member *hm = list_entry(pos, struct health_member, link);

        if (member_apply(hm, &old, now) != 0)
            rc = -1;
    }
    return rc;
}

int
health_member_attach(struct health_checker *c, struct member *m,
                     const char *host_header, double now)
{
    struct health_member *hm = calloc(1, sizeof(*hm));

    if (hm == NULL)
        return -1;
    if (c->params.window > 0) {
        hm->win = calloc((c->params.window + 63) / 64, sizeof(*hm->win));
        if (hm->win == NULL)
            goto err;
        hm->win_size = c->params.window;
    }
    if (host_header != NULL)
        snprintf(hm->host, sizeof(hm->host), "%s", host_header);
    else
        host_from_spec(hm->host, sizeof(hm->host), m->server_spec);
    hm->m = m;
    hm->fd = -1;
    ev_timer_init(&hm->timer, timer_cb, 0, 0);
    ev_io_init(&hm->io, io_cb, -1, 0);
    member_link(c, hm);
    m->health = hm;

    if (c->params.kind == HEALTH_NONE) {
        /* No hook: the caller is changing the pool and rebuilds after. */
        hm->state = HS_UP;
        hm->first_done = true;
        if (!m->up) {
            m->up = true;
            m->up_since = now;
            hm->counters.transitions++;
            hm->counters.last_change = now;
        }
        snprintf(hm->counters.reason, sizeof(hm->counters.reason),
                 "health check none");
        return 0;
    }
    /* A new member is out until its first check says otherwise. */
    hm->state = HS_UNKNOWN;
    m->up = false;
    c->pending++;
    schedule(hm, PH_IDLE, 0);
    return 0;

err:
    free(hm);
    return -1;
}

void
health_member_detach(struct member *m)
{
    struct health_member *hm = m->health;

    if (hm == NULL)
        return;
    probe_abort(hm);
    member_unlink(hm);
    free(hm->win);
    free(hm);
    m->health = NULL;
}

int
health_member_move(struct health_checker *c, struct member *from,
                   struct member *to)
{
    struct health_member *hm = from->health;
    struct health_params old;

    if (hm == NULL || to->health != NULL)
        return -1;
    old = hm->checker->params;
    if (hm->checker->loop != c->loop)
        probe_abort(hm);
    member_unlink(hm);
    if (!hm->first_done)
        c->pending++;
    member_link(c, hm);
    hm->m = to;
    to->health = hm;
    from->health = NULL;
    to->up = from->up;
    to->up_since = from->up_since;
    if (hm->phase == PH_OFF && c->params.kind != HEALTH_NONE &&
        old.kind == c->params.kind)
        schedule(hm, PH_IDLE, 0);
    return member_apply(hm, &old, c->loop != NULL ? ev_now(c->loop) : 0);
}

void
health_destroy(struct health_checker *c)
{
    struct list *pos;

    if (c == NULL)
        return;
    while ((pos = list_first(&c->members)) != NULL)
        health_member_detach(list_entry(pos, struct health_member, link)->m);
    if (c->loop != NULL)
        ev_timer_stop(c->loop, &c->notify);
    free(c);
}
