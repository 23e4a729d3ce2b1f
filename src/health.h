/*
 * health: active probes and passive outcome tracking for pool members.
 *
 * One checker per backend holds the parameters; each member being watched
 * gets a struct health_member (member->health). The module has two layers:
 *
 *   pure logic (time and randomness passed in, no I/O):
 *     health_member_check_done  one active check result -> hysteresis
 *     health_passive_outcome    one request outcome -> passive window
 *     health_member_tick        cool-down expiry (health_check = none)
 *   probes on libev (only when the checker has a loop):
 *     an ev_timer and an ev_io per member; every member probes on its own
 *     schedule, so a slow member never delays another one's check.
 *
 * Member states (member->up is true only in UP):
 *
 *             first check passes
 *   UNKNOWN ───────────────────────────────────► UP
 *      │                                        │  ▲
 *      │ first check     `fall` failed checks   │  │ `rise` passed checks
 *      │ fails           in a row, or passive:  │  │ in a row, or (kind none)
 *      │                 window error share >   │  │ the cool-down elapsed
 *      ▼                 rate (at most n/2 out) ▼  │
 *      └──────────────────────────────────────► DOWN
 *
 * With health_check = none a member is UP as soon as it is attached, and a
 * passive ejection lasts a cool-down of 10 s, doubling on each ejection that
 * follows within 5 min of coming back, capped at 5 min.
 *
 * Every change of member->up sets member->up_since (when it comes up), logs
 * one line, and calls the change hook so the owner rebuilds the balancer.
 * Hooks may detach the member they are told about; this module never frees
 * a member.
 */
#ifndef FERRY_HEALTH_H
#define FERRY_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balance.h"
#include "config.h"
#include "pool.h"

struct ev_loop;
struct health_checker;
struct health_member;

/* Cool-down for passive ejections when there are no active checks. */
#define HEALTH_COOLDOWN_BASE 10.0    /* seconds, first ejection */
#define HEALTH_COOLDOWN_MAX 300.0    /* seconds, growth stops here */
#define HEALTH_COOLDOWN_STABLE 300.0 /* up this long resets the growth */
/* Next check at interval * [1 - JITTER/2, 1 + JITTER/2). */
#define HEALTH_JITTER 0.1
#define HEALTH_REASON_MAX 64 /* reason strings, with the NUL */

/* What a checker needs from a [backend] section. */
struct health_params {
    enum config_health kind;        /* none, tcp or http */
    char path[CONFIG_HOST_MAX + 1]; /* http: path of the GET */
    unsigned expect_lo;             /* http: lowest passing status */
    unsigned expect_hi;             /* http: highest passing status */
    double interval;                /* seconds between checks */
    double timeout;                 /* seconds allowed per check */
    unsigned rise;                  /* passes to come back, >= 1 */
    unsigned fall;                  /* failures to go down, >= 1 */
    unsigned window;                /* passive outcomes kept, 0 = off */
    double error_rate;              /* eject above this share, 0..1 */
    double cooldown;                /* kind none: first cool-down, s
                                           (HEALTH_COOLDOWN_BASE; tests
                                           shorten it) */
};

/*
 * Callbacks, all optional. change runs from the loop's callbacks and from
 * health_member_check_done, health_passive_outcome, health_member_tick and
 * health_update_params (never from attach, detach or move).
 */
struct health_hooks {
    /* member->up changed (already set); reason says why. */
    void (*change)(void *arg, struct member *m, bool up, const char *reason);
    /* Every attached member has a first check result (from the loop). */
    void (*first_round)(void *arg);
    /*
     * Opens a non-blocking connection to m for a probe: 1 connected, 0 in
     * progress, -1 failed (errno set); the socket in *fd. Required when the
     * checker has a loop: probes take the same path to a member as traffic
     * (upstream), so nothing here calls connect(2).
     */
    int (*probe_connect)(const struct member *m, int *fd);
    /* Uniform in [0, 1); NULL uses an internal generator. */
    double (*rnd)(void *arg);
    void *arg; /* passed to every hook */
};

/* Per-member counters for stats (ferry_server_health_checks_total etc.). */
struct health_counters {
    uint64_t checks_passed;             /* active checks that passed */
    uint64_t checks_failed;             /* active checks that failed */
    uint64_t transitions;               /* changes of member->up */
    uint64_t passive_ejections;         /* taken out by the passive window */
    uint64_t passive_capped;            /* ejections refused by the n/2 cap */
    double last_duration;               /* seconds the last check took */
    bool last_pass;                     /* result of the last check */
    bool has_checked;                   /* at least one check completed */
    char last_check[HEALTH_REASON_MAX]; /* "ok", "timeout", "status 503" */
    char reason[HEALTH_REASON_MAX];     /* why the last transition happened */
    double last_change;                 /* when member->up last changed */
};

void health_params_from_config(struct health_params *p,
                               const struct config_backend *b);

/*
 * loop may be NULL: then no probe ever runs and results come only from
 * health_member_check_done (unit tests drive the pure logic that way).
 */
struct health_checker *health_create(struct ev_loop *loop,
                                     const struct health_params *params,
                                     const struct health_hooks *hooks);
/* Detaches every member still attached, then frees the checker. */
void health_destroy(struct health_checker *c);
/*
 * Reload: new parameters, members keep their state. A changed window size
 * clears the windows; a changed kind restarts the probes at once.
 */
int health_update_params(struct health_checker *c,
                         const struct health_params *params, double now);

/*
 * Starts watching m (m->health is set). host_header is the Host of http
 * checks; NULL takes the host part of m->server_spec. The first check runs
 * on the next loop iteration; with kind none the member comes up now.
 * Returns 0, or -1 on ENOMEM.
 */
int health_member_attach(struct health_checker *c, struct member *m,
                         const char *host_header, double now);
/*
 * Stops watching m: timers stop, a probe in flight is closed, m->health is
 * NULL again. Call before pool_remove_member (which may free m). Safe from
 * inside a hook.
 */
void health_member_detach(struct member *m);
/*
 * Moves the health state of `from` to `to` (reload building new members for
 * unchanged addresses), under checker c which may differ from the old one.
 * to->up and to->up_since take from's values; from is left detached.
 */
int health_member_move(struct health_checker *c, struct member *from,
                       struct member *to);

/* Pure logic entry points (the probes call the first one). */
void health_member_check_done(struct member *m, bool pass, const char *reason,
                              double duration, double now);
/* Called from balance_release; ABORTED and detached members are ignored. */
void health_passive_outcome(struct member *m, enum balance_outcome o,
                            double now);
/* Ends an elapsed cool-down (the loop does this with a timer). */
void health_member_tick(struct member *m, double now);

/* Members attached that have no first check result yet. */
size_t health_first_round_pending(const struct health_checker *c);
const struct health_counters *health_member_counters(const struct member *m);
/* When a cool-down ends (none mode), or 0 when not cooling down. */
double health_member_cooldown_until(const struct member *m);

/* Helpers, exposed for tests. */
double health_jitter(double interval, double u);
/* Cool-down after `streak` earlier ejections: base * 2^streak, capped. */
double health_cooldown(double base, unsigned streak);
/* Errors a full window may hold without ejection. */
unsigned health_passive_allowed(unsigned window, double rate);
/*
 * Parses an HTTP status line at the start of buf: 1 and *code set when
 * complete, 0 when more bytes are needed, -1 when it is not HTTP.
 */
int health_parse_status(const char *buf, size_t len, unsigned *code);

#endif
