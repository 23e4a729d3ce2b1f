/*
 * Unit tests for worker and plane: commands reach every worker thread and
 * worker_run_all returns only once all have run them; without a thread the
 * command runs at once; the plane lock nests; and picks made through
 * upstream from two worker threads at once keep exact balancing shares
 * (round-robin, smooth weighted) and global leastconn counts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "backend.h"
#include "balance.h"
#include "plane.h"
#include "pool.h"
#include "upstream.h"
#include "worker.h"

#define NWORKERS 2

/* ---------------------------------------------------------------------- */
/* Fixture: a control loop holding the plane lock, and worker threads      */

struct fx {
    struct ev_loop *loop;
    struct worker w[NWORKERS];
    struct worker *wl[NWORKERS];
};

static void
fx_start(struct fx *f, bool threads)
{
    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    assert_int_equal(plane_init(f->loop, threads), 0);
    for (unsigned i = 0; i < NWORKERS; i++) {
        assert_int_equal(worker_init(&f->w[i], i, threads, f->loop), 0);
        f->wl[i] = &f->w[i];
        assert_int_equal(worker_start(&f->w[i]), 0);
    }
}

static void
fx_stop(struct fx *f)
{
    worker_stop_all(f->wl, NWORKERS);
    for (unsigned i = 0; i < NWORKERS; i++)
        worker_deinit(&f->w[i]);
    plane_deinit();
    ev_loop_destroy(f->loop);
}

/* ---------------------------------------------------------------------- */
/* Commands                                                                */

struct seen {
    unsigned runs[NWORKERS];    /* times each worker ran the command */
    pthread_t thread[NWORKERS]; /* the thread it ran on */
    bool on_control[NWORKERS];  /* plane_on_control() there */
};

static void
record(struct worker *w, void *arg)
{
    struct seen *s = arg;

    s->runs[w->id]++;
    s->thread[w->id] = pthread_self();
    s->on_control[w->id] = plane_on_control();
}

static void
test_run_all_threads(void **state)
{
    struct fx f;
    struct seen s = {0};

    (void)state;
    fx_start(&f, true);
    assert_true(plane_threaded());
    assert_true(plane_on_control());
    for (int round = 0; round < 50; round++)
        worker_run_all(f.wl, NWORKERS, record, &s);
    /* Every worker ran every command, on its own thread, before
     * worker_run_all returned. */
    for (unsigned i = 0; i < NWORKERS; i++) {
        assert_int_equal(s.runs[i], 50);
        assert_false(pthread_equal(s.thread[i], pthread_self()));
        assert_true(pthread_equal(s.thread[i], f.w[i].thread));
        assert_false(s.on_control[i]);
    }
    assert_false(pthread_equal(s.thread[0], s.thread[1]));
    fx_stop(&f);
    assert_false(plane_threaded());
}

static void
test_run_all_inline(void **state)
{
    struct fx f;
    struct seen s = {0};

    (void)state;
    fx_start(&f, false);
    assert_false(plane_threaded());
    worker_run_all(f.wl, NWORKERS, record, &s);
    for (unsigned i = 0; i < NWORKERS; i++) {
        assert_int_equal(s.runs[i], 1);
        assert_true(pthread_equal(s.thread[i], pthread_self()));
        assert_true(f.w[i].loop == f.loop);
    }
    fx_stop(&f);
}

static void
test_lock_nests(void **state)
{
    struct fx f;

    (void)state;
    fx_start(&f, true);
    /* The control thread holds the lock once already. */
    plane_lock();
    plane_lock();
    plane_unlock();
    plane_unlock();
    fx_stop(&f);
}

static void
test_cpus(void **state)
{
    cpu_set_t set;

    (void)state;
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    assert_int_equal(worker_cpus(), (unsigned)CPU_COUNT(&set));
}

/* ---------------------------------------------------------------------- */
/* Balancing from two threads at once                                     */

#define NMEMBERS 3
#define PICKS 60000 /* per worker: a multiple of the weights' sum (6) */

/* Weights 1, 2, 3 for weighted; all 1 otherwise. */
static struct backend *
mkbackend(enum config_balance kind, struct member **mm)
{
    struct backend *be = calloc(1, sizeof(*be));

    assert_non_null(be);
    snprintf(be->name, sizeof(be->name), "b");
    be->cfg.retries = 0;
    be->cfg.timeout_connect = 1.0;
    be->cfg.balance = kind;
    be->refs = 1;
    assert_int_equal(pool_init(&be->pool, "b", 0), 0);
    be->pool.nloops = NWORKERS;
    for (unsigned i = 0; i < NMEMBERS; i++) {
        struct sockaddr_in sa = {0};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(8080);
        sa.sin_addr.s_addr = htonl(0x7f000001u + i);
        mm[i] = pool_add_member(&be->pool, 0, "t:8080", (struct sockaddr *)&sa,
                                sizeof(sa),
                                kind == BALANCE_WEIGHTED ? i + 1 : 1, false);
        assert_non_null(mm[i]);
        mm[i]->up = true;
    }
    be->pool.balance = balance_create(kind, &be->pool);
    assert_non_null(be->pool.balance);
    return be;
}

static void
rmbackend(struct backend *be)
{
    balance_destroy(be->pool.balance);
    pool_deinit(&be->pool);
    free(be);
}

struct picks {
    struct backend *be;
    struct member **mm;
    bool hold;  /* keep every pick (leastconn) */
    unsigned n; /* picks per worker */
    unsigned count[NWORKERS][NMEMBERS];
    struct upstream_req *held[NWORKERS];
    pthread_barrier_t go; /* both threads start picking together */
};

static void
pick_many(struct worker *w, void *arg)
{
    struct picks *p = arg;

    /* Commands run under the plane lock: let go of it, as a worker's own
     * callbacks do, so the two threads really pick at the same time. */
    plane_unlock();
    pthread_barrier_wait(&p->go);
    for (unsigned i = 0; i < p->n; i++) {
        struct upstream_req tmp, *u = p->hold ? &p->held[w->id][i] : &tmp;
        upstream_req_init(u, p->be, NULL, NULL, NULL);
        assert_int_equal(upstream_pick(u, NULL, 1000.0), UPSTREAM_PICKED);
        for (unsigned m = 0; m < NMEMBERS; m++)
            if (u->member == p->mm[m])
                p->count[w->id][m]++;
        if (!p->hold)
            upstream_release(u, BALANCE_OK, 1000.0);
    }
    plane_lock();
}

static void
run_picks(enum config_balance kind, bool hold, unsigned n,
          unsigned total[NMEMBERS], struct picks *p)
{
    struct fx f;
    struct member *mm[NMEMBERS];

    fx_start(&f, true);
    memset(p, 0, sizeof(*p));
    p->be = mkbackend(kind, mm);
    p->mm = mm;
    p->hold = hold;
    p->n = n;
    pthread_barrier_init(&p->go, NULL, NWORKERS);
    for (unsigned k = 0; hold && k < NWORKERS; k++) {
        p->held[k] = calloc(n, sizeof(*p->held[k]));
        assert_non_null(p->held[k]);
    }
    worker_run_all(f.wl, NWORKERS, pick_many, p);
    pthread_barrier_destroy(&p->go);
    for (unsigned m = 0; m < NMEMBERS; m++) {
        total[m] = 0;
        for (unsigned k = 0; k < NWORKERS; k++)
            total[m] += p->count[k][m];
    }
    if (hold) {
        for (unsigned m = 0; m < NMEMBERS; m++)
            assert_int_equal(mm[m]->active, total[m]);
        for (unsigned k = 0; k < NWORKERS; k++) {
            for (unsigned i = 0; i < n; i++)
                upstream_release(&p->held[k][i], BALANCE_OK, 1000.0);
            free(p->held[k]);
        }
    }
    for (unsigned m = 0; m < NMEMBERS; m++)
        assert_int_equal(mm[m]->active, 0);
    rmbackend(p->be);
    fx_stop(&f);
}

static void
test_roundrobin_exact(void **state)
{
    static struct picks p;
    unsigned total[NMEMBERS];

    (void)state;
    run_picks(BALANCE_ROUNDROBIN, false, PICKS, total, &p);
    /* One rotation for both threads: exact thirds. */
    for (unsigned m = 0; m < NMEMBERS; m++)
        assert_int_equal(total[m], NWORKERS * PICKS / NMEMBERS);
    /* Both threads did pick. */
    for (unsigned k = 0; k < NWORKERS; k++)
        assert_int_equal(p.count[k][0] + p.count[k][1] + p.count[k][2], PICKS);
}

static void
test_weighted_exact(void **state)
{
    static struct picks p;
    unsigned total[NMEMBERS];

    (void)state;
    run_picks(BALANCE_WEIGHTED, false, PICKS, total, &p);
    /* Weights 1:2:3 over a multiple of 6 picks: exact shares. */
    for (unsigned m = 0; m < NMEMBERS; m++)
        assert_int_equal(total[m], NWORKERS * PICKS * (m + 1) / 6);
}

static void
test_leastconn_global(void **state)
{
    static struct picks p;
    unsigned total[NMEMBERS];

    (void)state;
    /* Every pick held open: leastconn sees both threads' connections, so
     * the members' counts never differ by more than one. */
    run_picks(BALANCE_LEASTCONN, true, 3000, total, &p);
    for (unsigned m = 0; m < NMEMBERS; m++)
        assert_int_equal(total[m], NWORKERS * 3000 / NMEMBERS);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_all_threads),
        cmocka_unit_test(test_run_all_inline),
        cmocka_unit_test(test_lock_nests),
        cmocka_unit_test(test_cpus),
        cmocka_unit_test(test_roundrobin_exact),
        cmocka_unit_test(test_weighted_exact),
        cmocka_unit_test(test_leastconn_global),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
