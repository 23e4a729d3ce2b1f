/*
 * Unit tests for member selection: exact sequences, shares, leastconn under
 * a scripted workload, eligibility rules (tried, backup, drain, down), slow
 * start, and the consistent-hash properties (remap, balance, determinism).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "pool.h"

#define MAXM 128

static const enum config_balance all_kinds[] = {
    BALANCE_ROUNDROBIN,
    BALANCE_WEIGHTED,
    BALANCE_LEASTCONN,
    BALANCE_HASH,
};

/* 127.0.x.y:8080 for member number i (0-based): 127.0.0.(i+1) below 250. */
static struct member *
add(struct pool *p, unsigned i, unsigned weight, bool backup)
{
    struct sockaddr_in sa = {0};
    struct member *m;

    sa.sin_family = AF_INET;
    sa.sin_port = htons(8080);
    sa.sin_addr.s_addr = htonl(0x7f000000u | (i / 250) << 8 | (i % 250 + 1));
    m = pool_add_member(p, 0, "test:8080", (struct sockaddr *)&sa, sizeof(sa),
                        weight, backup);
    assert_non_null(m);
    m->up = true;
    return m;
}

/* Builds a pool of n members with the given weights (NULL = all 1). */
static void
mkpool(struct pool *p, struct member **mm, size_t n, const unsigned *w,
       double slow_start)
{
    pool_init(p, "b", slow_start);
    for (size_t i = 0; i < n; i++)
        mm[i] = add(p, (unsigned)i, w ? w[i] : 1, false);
}

static struct member *
pick_release(struct balance *b, const struct balance_ctx *ctx)
{
    struct member *m = balance_pick(b, ctx);

    if (m != NULL)
        balance_release(b, m, BALANCE_OK);
    return m;
}

static const struct balance_ctx noctx = {0};

/* Index of m in mm, or -1. */
static int
which(struct member **mm, size_t n, const struct member *m)
{
    for (size_t i = 0; i < n; i++)
        if (mm[i] == m)
            return (int)i;
    return -1;
}

static void
expect_sequence(struct balance *b, struct member **mm, size_t n,
                const char *seq)
{
    char got[64] = {0};

    for (size_t i = 0; seq[i] != '\0' && i < sizeof(got) - 1; i++) {
        int k = which(mm, n, pick_release(b, &noctx));
        got[i] = k < 0 ? '-' : (char)('a' + k);
    }
    assert_string_equal(got, seq);
}

static void
test_roundrobin_sequence(void **state)
{
    unsigned w[] = {5, 1, 1};
    struct member *mm[3];
    struct pool p;
    struct balance *b;

    (void)state;
    mkpool(&p, mm, 3, w, 0);
    b = balance_create(BALANCE_ROUNDROBIN, &p);
    assert_non_null(b);
    expect_sequence(b, mm, 3, "abcabcabc");
    balance_destroy(b);
    pool_deinit(&p);
}

static void
test_weighted_sequences(void **state)
{
    unsigned w511[] = {5, 1, 1}, w31[] = {3, 1}, w11[] = {2, 2, 2};
    struct member *mm[3];
    struct pool p;
    struct balance *b;

    (void)state;
    mkpool(&p, mm, 3, w511, 0);
    b = balance_create(BALANCE_WEIGHTED, &p);
    assert_non_null(b);
    expect_sequence(b, mm, 3, "aabacaaaabacaa");
    balance_destroy(b);
    pool_deinit(&p);

    mkpool(&p, mm, 2, w31, 0);
    b = balance_create(BALANCE_WEIGHTED, &p);
    expect_sequence(b, mm, 2, "aabaaaba");
    balance_destroy(b);
    pool_deinit(&p);

    mkpool(&p, mm, 3, w11, 0);
    b = balance_create(BALANCE_WEIGHTED, &p);
    expect_sequence(b, mm, 3, "abcabc");
    balance_destroy(b);
    pool_deinit(&p);
}

/* Large pools use the deadline heap: equal weights still rotate in pool
 * order, and 3,1 still gives A A B A. */
static void
test_weighted_large_sequences(void **state)
{
    struct member *mm[MAXM];
    unsigned w[MAXM];
    struct pool p;
    struct balance *b;

    (void)state;
    mkpool(&p, mm, 100, NULL, 0);
    b = balance_create(BALANCE_WEIGHTED, &p);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 100; i++)
            assert_ptr_equal(pick_release(b, &noctx), mm[i]);
    balance_destroy(b);
    pool_deinit(&p);

    /* 50 members of weight 3 then 50 of weight 1: per cycle of 200 picks
     * each gets exactly its weight. */
    for (int i = 0; i < 100; i++)
        w[i] = i < 50 ? 3 : 1;
    mkpool(&p, mm, 100, w, 0);
    b = balance_create(BALANCE_WEIGHTED, &p);
    for (int cycle = 0; cycle < 20; cycle++) {
        unsigned cnt[100] = {0};
        for (int k = 0; k < 200; k++)
            cnt[which(mm, 100, pick_release(b, &noctx))]++;
        for (int i = 0; i < 100; i++)
            assert_int_equal(cnt[i], w[i]);
    }
    balance_destroy(b);
    pool_deinit(&p);
}

/* A rebuild with nothing changed does not disturb the sequence (state is
 * carried over), for the nginx loop and the deadline heap alike. */
static void
test_weighted_rebuild_keeps_sequence(void **state)
{
    struct member *mm[MAXM];
    unsigned w[MAXM];
    struct pool p1, p2;

    (void)state;
    for (size_t n = 3; n <= 60; n += 57) {
        struct balance *b1, *b2;
        for (size_t i = 0; i < n; i++)
            w[i] = 1 + (unsigned)(i * 5 % 7);
        mkpool(&p1, mm, n, w, 0);
        mkpool(&p2, mm, n, w, 0);
        b1 = balance_create(BALANCE_WEIGHTED, &p1);
        b2 = balance_create(BALANCE_WEIGHTED, &p2);
        for (int k = 0; k < 1000; k++) {
            struct member *x = pick_release(b1, &noctx);
            struct member *y = pick_release(b2, &noctx);
            assert_int_equal(x->index, y->index);
            assert_int_equal(balance_rebuild(b2), 0);
        }
        balance_destroy(b1);
        balance_destroy(b2);
        pool_deinit(&p1);
        pool_deinit(&p2);
    }
}

static void
check_shares(enum config_balance kind, size_t n, const unsigned *w)
{
    struct member *mm[MAXM];
    unsigned long cnt[MAXM] = {0};
    unsigned long total = 1000000;
    double wsum = 0;
    struct pool p;
    struct balance *b;

    mkpool(&p, mm, n, w, 0);
    b = balance_create(kind, &p);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        wsum += w[i];
    for (unsigned long k = 0; k < total; k++) {
        int i = which(mm, n, pick_release(b, &noctx));
        assert_true(i >= 0);
        cnt[i]++;
    }
    for (size_t i = 0; i < n; i++) {
        double want = total * w[i] / wsum;
        double got = (double)cnt[i];
        if (got < want * 0.99 || got > want * 1.01)
            fail_msg("member %zu: %.0f picks, want %.0f", i, got, want);
    }
    balance_destroy(b);
    pool_deinit(&p);
}

static void
test_weighted_shares(void **state)
{
    unsigned w3[] = {5, 3, 2};
    unsigned w40[40];

    (void)state;
    check_shares(BALANCE_WEIGHTED, 3, w3);
    for (int i = 0; i < 40; i++)
        w40[i] = 1 + i % 7;
    check_shares(BALANCE_WEIGHTED, 40, w40);
}

/* Opens and closes connections through balance_pick/balance_release and
 * checks where each new one lands. */
static void
test_leastconn_script(void **state)
{
    unsigned w[] = {1, 1, 2};
    struct member *mm[3], *held[16];
    struct pool p;
    struct balance *b;
    int nh = 0;

    (void)state;
    mkpool(&p, mm, 3, w, 0);
    b = balance_create(BALANCE_LEASTCONN, &p);
    assert_non_null(b);

    /* Idle and sequential: ties rotate, so equal members share evenly. */
    expect_sequence(b, mm, 3, "abcabc");

    /* Held: loads a=1/1, b=1/1, c=2/2 after four opens, all equal... */
    for (int i = 0; i < 4; i++)
        held[nh++] = balance_pick(b, &noctx);
    assert_int_equal(mm[0]->active + mm[1]->active + mm[2]->active, 4);
    assert_int_equal(mm[2]->active, 2);
    assert_int_equal(mm[0]->active, 1);
    assert_int_equal(mm[1]->active, 1);
    /* ... so the next four go 1 each to a and b and 2 to c. */
    for (int i = 0; i < 4; i++)
        held[nh++] = balance_pick(b, &noctx);
    assert_int_equal(mm[0]->active, 2);
    assert_int_equal(mm[1]->active, 2);
    assert_int_equal(mm[2]->active, 4);

    /* Close everything held by b: the next two opens both go to b. */
    for (int i = 0; i < nh; i++)
        if (held[i] == mm[1]) {
            balance_release(b, held[i], BALANCE_OK);
            held[i] = NULL;
        }
    assert_int_equal(mm[1]->active, 0);
    struct member *x = balance_pick(b, &noctx);
    struct member *y = balance_pick(b, &noctx);
    assert_ptr_equal(x, mm[1]);
    assert_ptr_equal(y, mm[1]);
    /* Now a=2/1, b=2/1, c=4/2: all tied at 2; least recently picked is a
     * (its last pick was before b's two and c's). */
    struct member *z = balance_pick(b, &noctx);
    assert_ptr_equal(z, mm[0]);

    balance_release(b, x, BALANCE_OK);
    balance_release(b, y, BALANCE_OK);
    balance_release(b, z, BALANCE_CONNECT_ERROR);
    for (int i = 0; i < nh; i++)
        if (held[i] != NULL)
            balance_release(b, held[i], BALANCE_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(mm[i]->active, 0);
    balance_destroy(b);
    pool_deinit(&p);
}

/* Many held connections on a large pool: the load stays level. */
static void
test_leastconn_level(void **state)
{
    struct member *mm[MAXM], *held[1000];
    struct pool p;
    struct balance *b;

    (void)state;
    mkpool(&p, mm, 100, NULL, 0);
    b = balance_create(BALANCE_LEASTCONN, &p);
    for (int i = 0; i < 1000; i++)
        held[i] = balance_pick(b, &noctx);
    for (int i = 0; i < 100; i++)
        assert_int_equal(mm[i]->active, 10);
    /* Close a scattered half, reopen 500: back to 10 each. */
    for (int i = 0; i < 1000; i += 2)
        balance_release(b, held[i], BALANCE_OK);
    for (int i = 0; i < 1000; i += 2)
        held[i] = balance_pick(b, &noctx);
    for (int i = 0; i < 100; i++)
        assert_int_equal(mm[i]->active, 10);
    for (int i = 0; i < 1000; i++)
        balance_release(b, held[i], BALANCE_OK);
    balance_destroy(b);
    pool_deinit(&p);
}

static void
tried_for(enum config_balance kind, size_t n)
{
    struct member *mm[MAXM];
    struct balance_tried t = {0};
    struct balance_ctx ctx = {.tried = &t};
    struct pool p;
    struct balance *b;
    const char *key = "10.1.2.3";

    mkpool(&p, mm, n, NULL, 0);
    add(&p, (unsigned)n, 1, true); /* an up backup must not be used */
    b = balance_create(kind, &p);
    assert_non_null(b);
    /* Retries go elsewhere until every normal member was tried. */
    for (int with_key = 0; with_key < 2; with_key++) {
        ctx.key = with_key ? key : NULL;
        ctx.keylen = with_key ? strlen(key) : 0;
        t.n = 0;
        for (size_t k = 0; k < n; k++) {
            struct member *m = pick_release(b, &ctx);
            assert_non_null(m);
            assert_false(m->backup);
            assert_false(balance_tried_has(&t, m));
            balance_tried_add(&t, m);
        }
        assert_null(pick_release(b, &ctx));
    }
    balance_destroy(b);
    pool_deinit(&p);
}

static void
test_tried_every_algorithm(void **state)
{
    (void)state;
    for (size_t k = 0; k < 4; k++) {
        tried_for(all_kinds[k], 3);
        tried_for(all_kinds[k], BALANCE_TRIED_MAX);
    }
}

/* Weighted and leastconn on a pool large enough for the heap, with a tried
 * set that covers the first members in key order. */
static void
test_tried_large(void **state)
{
    struct member *mm[MAXM];
    struct balance_tried t = {0};
    struct balance_ctx ctx = {.tried = &t};
    enum config_balance kinds[] = {BALANCE_WEIGHTED, BALANCE_LEASTCONN};
    struct pool p;

    (void)state;
    for (int k = 0; k < 2; k++) {
        struct balance *b;
        mkpool(&p, mm, 100, NULL, 0);
        b = balance_create(kinds[k], &p);
        for (int i = 0; i < BALANCE_TRIED_MAX; i++)
            balance_tried_add(&t, mm[i]);
        /* Next in order after the tried ones. */
        assert_ptr_equal(pick_release(b, &ctx), mm[BALANCE_TRIED_MAX]);
        t.n = 0;
        balance_destroy(b);
        pool_deinit(&p);
    }
}

static void
test_backup_and_drain(void **state)
{
    (void)state;
    for (size_t k = 0; k < 4; k++) {
        struct member *mm[4];
        struct pool p;
        struct balance *b;
        const char *key = "client";
        struct balance_ctx kctx = {.key = key, .keylen = 6};

        pool_init(&p, "b", 0);
        mm[0] = add(&p, 0, 1, false);
        mm[1] = add(&p, 1, 0, false); /* drain */
        mm[2] = add(&p, 2, 1, true);  /* backup */
        mm[3] = add(&p, 3, 1, true);  /* backup */
        b = balance_create(all_kinds[k], &p);
        assert_non_null(b);
        for (int i = 0; i < 20; i++) {
            assert_ptr_equal(pick_release(b, &noctx), mm[0]);
            assert_ptr_equal(pick_release(b, &kctx), mm[0]);
        }
        /* The only normal member with traffic goes down: backups share
         * (the draining one is up but still gets nothing). */
        mm[0]->up = false;
        assert_int_equal(balance_rebuild(b), 0);
        int seen[4] = {0};
        for (int i = 0; i < 20; i++) {
            struct member *m = pick_release(b, &noctx);
            assert_non_null(m);
            assert_true(m->backup);
            seen[which(mm, 4, m)]++;
            m = pick_release(b, &kctx);
            assert_non_null(m);
            assert_true(m->backup);
            if (all_kinds[k] != BALANCE_HASH)
                seen[which(mm, 4, m)]++;
        }
        if (all_kinds[k] != BALANCE_HASH) {
            assert_true(seen[2] > 0);
            assert_true(seen[3] > 0);
        }
        /* Everything down: nothing to pick. */
        mm[2]->up = false;
        mm[3]->up = false;
        assert_int_equal(balance_rebuild(b), 0);
        assert_null(pick_release(b, &noctx));
        assert_null(pick_release(b, &kctx));
        /* A normal member back up takes over from backups at once. */
        mm[2]->up = true;
        mm[0]->up = true;
        assert_int_equal(balance_rebuild(b), 0);
        assert_ptr_equal(pick_release(b, &noctx), mm[0]);
        assert_ptr_equal(pick_release(b, &kctx), mm[0]);
        balance_destroy(b);
        pool_deinit(&p);
    }
}

static void
test_all_down(void **state)
{
    (void)state;
    for (size_t k = 0; k < 4; k++)
        for (size_t n = 3; n <= 100; n += 97) {
            struct member *mm[MAXM];
            struct pool p;
            struct balance *b;
            mkpool(&p, mm, n, NULL, 0);
            for (size_t i = 0; i < n; i++)
                mm[i]->up = false;
            b = balance_create(all_kinds[k], &p);
            assert_non_null(b);
            assert_null(pick_release(b, &noctx));
            balance_destroy(b);
            pool_deinit(&p);
        }
}

/* A member removed without a rebuild is never picked again (the balancers
 * notice the pool version moved and fall back to the live members). */
static void
test_removed_without_rebuild(void **state)
{
    (void)state;
    for (size_t k = 0; k < 4; k++) {
        struct member *mm[MAXM];
        struct pool p;
        struct balance *b;
        struct balance_ctx kctx = {.key = "k", .keylen = 1};
        mkpool(&p, mm, 50, NULL, 0);
        b = balance_create(all_kinds[k], &p);
        struct member *gone = mm[7];
        pool_remove_member(&p, gone); /* freed: no connection holds it */
        for (int i = 0; i < 200; i++) {
            struct member *m = pick_release(b, i % 2 ? &kctx : &noctx);
            assert_non_null(m);
            assert_true(which(p.members, p.n, m) >= 0);
        }
        balance_destroy(b);
        pool_deinit(&p);
    }
}

/* Share of member 0 over n picks at time now (the others are old). */
static double
slow_share(enum config_balance kind, size_t nm, double now)
{
    struct member *mm[MAXM];
    struct balance_ctx ctx = {.now = now};
    struct pool p;
    struct balance *b;
    unsigned hits = 0, n = 100000;

    mkpool(&p, mm, nm, NULL, 10.0);
    for (size_t i = 1; i < nm; i++)
        mm[i]->up_since = -1000;
    mm[0]->up_since = 0; /* came up at t = 0, ramps until t = 10 */
    b = balance_create(kind, &p);
    for (unsigned i = 0; i < n; i++)
        hits += pick_release(b, &ctx) == mm[0];
    balance_destroy(b);
    pool_deinit(&p);
    return (double)hits / n;
}

static void
test_slow_start(void **state)
{
    (void)state;
    for (size_t nm = 2; nm <= 100; nm += 98) {
        /* Effective weight 0.1 at t=0, 0.55 at t=5, 1 at t>=10. */
        double s0 = slow_share(BALANCE_WEIGHTED, nm, 0);
        double s5 = slow_share(BALANCE_WEIGHTED, nm, 5);
        double s10 = slow_share(BALANCE_WEIGHTED, nm, 10);
        double o = (double)(nm - 1);
        assert_true(s0 > 0.1 / (0.1 + o) * 0.95);
        assert_true(s0 < 0.1 / (0.1 + o) * 1.05 + 2.0 / 100000);
        assert_true(s5 > 0.55 / (0.55 + o) * 0.95);
        assert_true(s5 < 0.55 / (0.55 + o) * 1.05);
        assert_true(s10 > 1 / (1 + o) * 0.99);
        assert_true(s10 < 1 / (1 + o) * 1.01);
    }
}

/* Leastconn in slow start: with connections held, the ramping member
 * carries a smaller share of them. */
static void
test_slow_start_leastconn(void **state)
{
    struct member *mm[2], *held[110];
    struct balance_ctx ctx = {.now = 0};
    struct pool p;
    struct balance *b;

    (void)state;
    mkpool(&p, mm, 2, NULL, 10.0);
    mm[1]->up_since = -1000;
    mm[0]->up_since = 0;
    b = balance_create(BALANCE_LEASTCONN, &p);
    for (int i = 0; i < 110; i++)
        held[i] = balance_pick(b, &ctx);
    /* Weight 0.1 vs 1: 10 and 100 connections. */
    assert_int_equal(mm[0]->active, 10);
    assert_int_equal(mm[1]->active, 100);
    for (int i = 0; i < 110; i++)
        balance_release(b, held[i], BALANCE_OK);
    balance_destroy(b);
    pool_deinit(&p);
}

/* ---- consistent hashing ---- */

#define NKEYS 100000

/* Maps every test key to a member address (index into the 127.0.0.x
 * numbering: 127.0.0.(i+1)). */
static void
map_keys(struct balance *b, int *out)
{
    for (int k = 0; k < NKEYS; k++) {
        char key[32];
        struct balance_ctx ctx = {0};
        struct member *m;
        ctx.key = key;
        ctx.keylen = (size_t)snprintf(key, sizeof(key), "192.0.%d.%d", k / 256,
                                      k % 256);
        m = pick_release(b, &ctx);
        assert_non_null(m);
        out[k] =
            (int)(ntohl(((struct sockaddr_in *)&m->addr)->sin_addr.s_addr) &
                  0xff) -
            1;
    }
}

static void
test_hash_consistency(void **state)
{
    static int base[NKEYS], after[NKEYS];
    struct member *mm[11];
    struct pool p;
    struct balance *b;
    unsigned cnt[10] = {0}, max = 0, min = NKEYS;

    (void)state;
    mkpool(&p, mm, 10, NULL, 0);
    b = balance_create(BALANCE_HASH, &p);
    assert_non_null(b);
    map_keys(b, base);
    for (int k = 0; k < NKEYS; k++)
        cnt[base[k]]++;
    for (int i = 0; i < 10; i++) {
        max = cnt[i] > max ? cnt[i] : max;
        min = cnt[i] < min ? cnt[i] : min;
    }
    print_message("hash balance: min %u max %u (fair %u)\n", min, max,
                  NKEYS / 10);
    assert_true(max <= NKEYS / 10 * 1.15);
    assert_true(min >= NKEYS / 10 * 0.85);

    /* One member leaves: exactly its keys move. */
    pool_remove_member(&p, mm[3]);
    assert_int_equal(balance_rebuild(b), 0);
    map_keys(b, after);
    for (int k = 0; k < NKEYS; k++) {
        if (base[k] == 3)
            assert_int_not_equal(after[k], 3);
        else
            assert_int_equal(after[k], base[k]);
    }

    /* Going down (without leaving) maps the same as leaving. */
    mm[3] = add(&p, 3, 1, false);
    assert_int_equal(balance_rebuild(b), 0);
    map_keys(b, after);
    assert_memory_equal(after, base, sizeof(base));
    static int down[NKEYS];
    mm[3]->up = false;
    assert_int_equal(balance_rebuild(b), 0);
    map_keys(b, down);
    for (int k = 0; k < NKEYS; k++)
        if (base[k] != 3)
            assert_int_equal(down[k], base[k]);
    mm[3]->up = true;
    assert_int_equal(balance_rebuild(b), 0);

    /* An 11th joins: it takes about 1/11 and only it gains keys. */
    mm[10] = add(&p, 10, 1, false);
    assert_int_equal(balance_rebuild(b), 0);
    map_keys(b, after);
    unsigned moved = 0;
    for (int k = 0; k < NKEYS; k++)
        if (after[k] != base[k]) {
            moved++;
            assert_int_equal(after[k], 10);
        }
    print_message("hash: 11th member takes %.2f%% of keys\n",
                  100.0 * moved / NKEYS);
    assert_true(moved >= NKEYS * 7 / 100);
    assert_true(moved <= NKEYS * 11 / 100);
    balance_destroy(b);
    pool_deinit(&p);
}

static void
test_hash_order_independent(void **state)
{
    static int a[NKEYS], c[NKEYS];
    struct member *mm[10];
    struct pool p1, p2;
    struct balance *b1, *b2;

    (void)state;
    pool_init(&p1, "b", 0);
    pool_init(&p2, "b", 0);
    for (unsigned i = 0; i < 10; i++)
        mm[i] = add(&p1, i, 1 + i % 3, false);
    for (unsigned i = 10; i-- > 0;)
        add(&p2, (i * 7) % 10, 1 + ((i * 7) % 10) % 3, false);
    b1 = balance_create(BALANCE_HASH, &p1);
    b2 = balance_create(BALANCE_HASH, &p2);
    map_keys(b1, a);
    map_keys(b2, c);
    assert_memory_equal(a, c, sizeof(a));
    /* Weights scale the share: weight 3 members own about 3x weight 1. */
    unsigned cnt[10] = {0};
    for (int k = 0; k < NKEYS; k++)
        cnt[a[k]]++;
    double per_weight = NKEYS / 19.0; /* weights sum to 19 */
    for (int i = 0; i < 10; i++) {
        double want = per_weight * (1 + i % 3);
        assert_true(cnt[i] > want * 0.8 && cnt[i] < want * 1.2);
    }
    balance_destroy(b1);
    balance_destroy(b2);
    pool_deinit(&p1);
    pool_deinit(&p2);
    (void)mm;
}

/* The owner tried: the key walks on to the same next member every time. */
static void
test_hash_tried_walks_on(void **state)
{
    struct member *mm[10];
    struct balance_tried t = {0};
    struct balance_ctx ctx = {.key = "abc", .keylen = 3, .tried = &t};
    struct pool p;
    struct balance *b;

    (void)state;
    mkpool(&p, mm, 10, NULL, 0);
    b = balance_create(BALANCE_HASH, &p);
    struct member *owner = pick_release(b, &ctx);
    assert_ptr_equal(pick_release(b, &ctx), owner);
    balance_tried_add(&t, owner);
    struct member *second = pick_release(b, &ctx);
    assert_non_null(second);
    assert_ptr_not_equal(second, owner);
    assert_ptr_equal(pick_release(b, &ctx), second);
    /* Same as the owner being down. */
    t.n = 0;
    owner->up = false;
    assert_int_equal(balance_rebuild(b), 0);
    assert_ptr_equal(pick_release(b, &ctx), second);
    balance_destroy(b);
    pool_deinit(&p);
}

/* No key: weighted rotation. */
static void
test_hash_no_key(void **state)
{
    unsigned w[] = {3, 1};
    struct member *mm[2];
    struct pool p;
    struct balance *b;

    (void)state;
    mkpool(&p, mm, 2, w, 0);
    b = balance_create(BALANCE_HASH, &p);
    expect_sequence(b, mm, 2, "aabaaaba");
    balance_destroy(b);
    pool_deinit(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundrobin_sequence),
        cmocka_unit_test(test_weighted_sequences),
        cmocka_unit_test(test_weighted_large_sequences),
        cmocka_unit_test(test_weighted_shares),
        cmocka_unit_test(test_weighted_rebuild_keeps_sequence),
        cmocka_unit_test(test_leastconn_script),
        cmocka_unit_test(test_leastconn_level),
        cmocka_unit_test(test_tried_every_algorithm),
        cmocka_unit_test(test_tried_large),
        cmocka_unit_test(test_backup_and_drain),
        cmocka_unit_test(test_all_down),
        cmocka_unit_test(test_removed_without_rebuild),
        cmocka_unit_test(test_slow_start),
        cmocka_unit_test(test_slow_start_leastconn),
        cmocka_unit_test(test_hash_consistency),
        cmocka_unit_test(test_hash_order_independent),
        cmocka_unit_test(test_hash_tried_walks_on),
        cmocka_unit_test(test_hash_no_key),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
