/*
 * resolver: c-ares 1.18 on libev. See resolver.h for the picture and
 * docs/dns.md for why things are done this way (c-ares 1.18 quirks).
 *
 * Request life:
 *
 *   resolve ─► literal / hosts hit ───────────────────────► queued
 *          └─► ares_getaddrinfo ─► in flight ─► c-ares cb ─► queued
 *                                      │ cancel: flag only     │ cancel:
 *                                      ▼                       ▼ unlink
 *                            c-ares cb frees it          deliver timer:
 *                                                        cb(), free
 *
 * Nothing is ever freed or destroyed from inside a c-ares callback except
 * the finished request itself; channels are replaced and destroyed from the
 * deliver timer, which runs after ares_process_fd has returned.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <ares.h>

#include "list.h"
#include "log.h"
#include "resolver.h"

#define EDNS_PAYLOAD 1232
#define HOSTS_CHECK_INTERVAL 1.0   /* seconds between hosts-file stats */
#define HOSTS_MAX_BYTES (64 << 20) /* refuse absurd hosts files */
#define REBUILD_INTERVAL 1.0       /* seconds between refusal rebuilds */

/* Watcher of one socket c-ares opened. */
struct resolver_sock {
    ev_io io;                   /* readiness of the socket */
    struct resolver_chan *chan; /* channel owning the socket */
    struct resolver_sock *next; /* next socket of the channel */
};

/* One c-ares channel and the watchers that drive it. */
struct resolver_chan {
    struct resolver *r;          /* owner */
    ares_channel ares;           /* the channel */
    ev_timer timer;              /* follows ares_timeout() */
    struct resolver_sock *socks; /* watched sockets */
    unsigned inflight;           /* queries c-ares still owes a callback */
    unsigned timeouts;           /* consecutive timeouts */
    bool retired;                /* replaced: no new queries */
    struct resolver_chan *next;  /* next retired channel */
};

struct resolver_req {
    struct resolver *r;               /* owner */
    struct resolver_chan *chan;       /* channel it went to, NULL if local */
    resolver_cb cb;                   /* completion, NULL once cancelled */
    void *arg;                        /* passed to cb */
    bool cancelled;                   /* cb must not run */
    bool in_submit;                   /* inside ares_getaddrinfo */
    bool queued;                      /* done, waiting on the deliver queue */
    uint64_t seq;                     /* queue order, bounds a deliver pass */
    double start;                     /* monotonic seconds at resolve */
    struct resolver_result res;       /* what cb receives */
    struct resolver_addr *addrs;      /* owned array behind res.addrs */
    struct list qlink;                /* in the deliver queue */
    char name[RESOLVER_NAME_MAX + 2]; /* as requested */
};

/* One address line of the hosts file, per name. */
struct hosts_entry {
    char *name;                /* lower case, no trailing dot */
    size_t line;               /* order in the file */
    struct resolver_addr addr; /* the address */
};

/* The hosts file in memory, sorted by (name, line). */
struct resolver_hosts {
    char *path;                  /* NULL = off */
    struct hosts_entry *entries; /* sorted for bsearch */
    size_t n;                    /* entries in use */
    char *text;                  /* file contents; names point into it */
    struct timespec mtime;       /* of the file last read */
    ino_t ino;                   /* of the file last read */
    off_t size;                  /* of the file last read */
    bool present;                /* the file existed at the last read */
    double checked;              /* ev_now of the last stat */
};

struct resolver {
    struct ev_loop *loop;          /* the loop everything runs on */
    struct sockaddr_storage *ns;   /* nameservers (copy) */
    size_t nns;                    /* entries in ns */
    char *servers_csv;             /* ns as "ip:port,[ip6]:port" or NULL */
    double timeout;                /* seconds per attempt */
    unsigned attempts;             /* tries */
    struct resolver_chan *chan;    /* current channel, NULL if none */
    struct resolver_chan *retired; /* replaced channels still busy */
    ev_timer deliver;              /* zero-delay: completions, upkeep */
    struct list queue;             /* deliver queue, oldest first */
    uint64_t qseq;                 /* last seq given */
    bool rebuild;                  /* replace chan at the next upkeep */
    double rebuilt;                /* ev_now of the last rebuild */
    bool destroying;               /* c-ares callbacks must drop reqs */
    bool delivering;               /* inside a deliver pass */
    bool free_pending;             /* destroyed during a deliver pass */
    struct resolver_hosts hosts;   /* hosts-file table */
    struct resolver_stats stats;   /* counters */
};

static double
mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
resolver_library_init(void)
{
    static bool done;
    int rc;

    if (done)
        return 0;
    rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        log_error("resolver: ares_library_init: %s", ares_strerror(rc));
        return -1;
    }
    done = true;
    return 0;
}

const char *
resolver_status_name(enum resolver_status status)
{
    switch (status) {
    case RESOLVER_OK:
        return "ok";
    case RESOLVER_NXDOMAIN:
        return "nxdomain";
    case RESOLVER_SERVFAIL:
        return "servfail";
    case RESOLVER_TIMEOUT:
        return "timeout";
    case RESOLVER_EMPTY:
        return "empty";
    case RESOLVER_ERROR:
        break;
    }
    return "error";
}

socklen_t
resolver_addr_to_sockaddr(const struct resolver_addr *addr, uint16_t port,
                          struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (addr->family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        sin6->sin6_addr = addr->u.v6;
        return sizeof(*sin6);
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr = addr->u.v4;
    return sizeof(*sin);
}

void
resolver_get_stats(const struct resolver *r, struct resolver_stats *st)
{
    *st = r->stats;
}

/* ---- deliver queue and upkeep ------------------------------------------ */

static void
schedule(struct resolver *r)
{
    if (r->destroying || ev_is_active(&r->deliver) ||
        ev_is_pending(&r->deliver))
        return;
    ev_timer_set(&r->deliver, 0., 0.);
    ev_timer_start(r->loop, &r->deliver);
}

static void
queue_push(struct resolver *r, struct resolver_req *req)
{
    req->queued = true;
    req->seq = ++r->qseq;
    list_add_tail(&r->queue, &req->qlink);
    schedule(r);
}

static void
queue_unlink(struct resolver_req *req)
{
    list_del(&req->qlink);
    req->queued = false;
}

/* The oldest queued request, or NULL. */
static struct resolver_req *
queue_first(struct resolver *r)
{
    struct list *l = list_first(&r->queue);

    return l ? list_entry(l, struct resolver_req, qlink) : NULL;
}

static void
req_free(struct resolver_req *req)
{
    free(req->addrs);
    free(req);
}

/* ---- channels ---------------------------------------------------------- */

static void
chan_update_timer(struct resolver_chan *chan)
{
    struct ev_loop *loop = chan->r->loop;
    struct timeval tv;

    ev_timer_stop(loop, &chan->timer);
    if (!ares_timeout(chan->ares, NULL, &tv))
        return;
    ev_timer_set(&chan->timer, (double)tv.tv_sec + (double)tv.tv_usec / 1e6,
                 0.);
    ev_timer_start(loop, &chan->timer);
}

static void
on_chan_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct resolver_chan *chan = w->data;

    ares_process_fd(chan->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    chan_update_timer(chan);
}

static void
on_chan_io(struct ev_loop *loop, ev_io *w, int revents)
{
    /* w may be freed by sock_state_cb inside ares_process_fd. */
    struct resolver_chan *chan = ((struct resolver_sock *)w->data)->chan;
    ares_socket_t fd = w->fd;

    ares_process_fd(chan->ares, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    chan_update_timer(chan);
}

/* c-ares tells which sockets to watch; runs inside other c-ares calls. */
static void
on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct resolver_chan *chan = data;
    struct resolver_sock **pp, *s;
    int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

    for (pp = &chan->socks; *pp && (*pp)->io.fd != fd; pp = &(*pp)->next)
        ;
    s = *pp;
    if (!events) {
        if (s) {
            ev_io_stop(chan->r->loop, &s->io);
            *pp = s->next;
            free(s);
        }
        return;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) {
            /* The query times out through the channel timer. */
            log_error("resolver: out of memory watching fd %d", (int)fd);
            return;
        }
        s->chan = chan;
        s->next = chan->socks;
        chan->socks = s;
        ev_init(&s->io, on_chan_io);
        s->io.data = s;
    }
    ev_io_stop(chan->r->loop, &s->io);
    ev_io_set(&s->io, fd, events);
    ev_io_start(chan->r->loop, &s->io);
}

static size_t
count_servers(ares_channel ch)
{
    struct ares_addr_node *list = NULL, *n;
    size_t count = 0;

    if (ares_get_servers(ch, &list) != ARES_SUCCESS)
        return 0;
    for (n = list; n; n = n->next)
        count++;
    ares_free_data(list);
    return count;
}

/* Initialises chan->ares with the resolver's options; 0 or a c-ares code. */
static int
chan_init_ares(struct resolver_chan *chan, bool checkresp)
{
    static char lookups[] = "b"; /* DNS only: hosts are ours */
    struct resolver *r = chan->r;
    struct ares_options o;
    int mask, rc;

    memset(&o, 0, sizeof(o));
    /* STAYOPEN: c-ares 1.18 otherwise closes its UDP socket whenever no
     * query is in flight, so every lone refresh pays socket, connect,
     * fcntl, epoll_ctl and close. */
    o.flags = ARES_FLAG_EDNS | ARES_FLAG_NOSEARCH | ARES_FLAG_STAYOPEN;
    if (!checkresp)
        o.flags |= ARES_FLAG_NOCHECKRESP;
    o.timeout = (int)(r->timeout * 1000.0 + 0.5);
    if (o.timeout < 1)
        o.timeout = 1;
    o.tries = (int)r->attempts;
    o.ndomains = 0;
    o.domains = NULL;
    o.lookups = lookups;
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = chan;
    o.ednspsz = EDNS_PAYLOAD;
    mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
           ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB |
           ARES_OPT_EDNSPSZ;
    rc = ares_init_options(&chan->ares, &o, mask);
    if (rc != ARES_SUCCESS) {
        log_error("resolver: ares_init_options: %s", ares_strerror(rc));
        return rc;
    }
    /* Right after init: 1.18 refuses to change servers with queries out. */
    if (r->servers_csv) {
        rc = ares_set_servers_ports_csv(chan->ares, r->servers_csv);
        if (rc != ARES_SUCCESS) {
            log_error("resolver: nameservers %s: %s", r->servers_csv,
                      ares_strerror(rc));
            ares_destroy(chan->ares);
            return rc;
        }
    }
    return ARES_SUCCESS;
}

/*
 * c-ares 1.18 answers SERVFAIL and REFUSED replies by trying the next
 * server and, once every server did so, fails the query with ECONNREFUSED:
 * indistinguishable from a dead server. With one server there is nobody to
 * fail over to, so NOCHECKRESP hands the reply through and the status says
 * servfail (or refused). With several servers failover wins: a SERVFAIL
 * from all of them is reported as error.
 */
static struct resolver_chan *
chan_new(struct resolver *r)
{
    struct resolver_chan *chan;
    bool checkresp = r->nns > 1;

    chan = calloc(1, sizeof(*chan));
    if (!chan)
        goto err;
    chan->r = r;
    ev_init(&chan->timer, on_chan_timer);
    chan->timer.data = chan;
    if (chan_init_ares(chan, checkresp) != ARES_SUCCESS)
        goto err_free;
    if (r->nns == 0 && count_servers(chan->ares) > 1) {
        /* resolv.conf lists several: no sockets yet, start over. */
        ares_destroy(chan->ares);
        if (chan_init_ares(chan, true) != ARES_SUCCESS)
            goto err_free;
    }
    return chan;

err_free:
    free(chan);
err:
    return NULL;
}

/* Only from outside c-ares callbacks. Pending callbacks see destroying. */
static void
chan_destroy(struct resolver_chan *chan)
{
    struct ev_loop *loop = chan->r->loop;
    struct resolver_sock *s;

    ares_destroy(chan->ares);
    ev_timer_stop(loop, &chan->timer);
    while ((s = chan->socks)) {
        chan->socks = s->next;
        ev_io_stop(loop, &s->io);
        free(s);
    }
    free(chan);
}

static void
chan_retire(struct resolver *r, struct resolver_chan *chan)
{
    chan->retired = true;
    chan->next = r->retired;
    r->retired = chan;
    schedule(r);
}

/* Builds a new current channel; keeps the old one on failure. */
static int
chan_replace(struct resolver *r)
{
    struct resolver_chan *chan = chan_new(r);

    if (!chan)
        return -1;
    if (r->chan)
        chan_retire(r, r->chan);
    r->chan = chan;
    return 0;
}

static void
upkeep(struct resolver *r)
{
    struct resolver_chan **pp, *c;

    if (r->rebuild) {
        r->rebuild = false;
        if (chan_replace(r) == 0) {
            r->rebuilt = ev_now(r->loop);
            r->stats.rebuilds++;
            log_info("resolver: channel rebuilt");
        }
    }
    for (pp = &r->retired; (c = *pp);) {
        if (c->inflight == 0) {
            *pp = c->next;
            chan_destroy(c);
        } else {
            pp = &c->next;
        }
    }
}

static void
on_deliver(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct resolver *r = w->data;
    uint64_t last = r->qseq;
    struct resolver_req *req;

    upkeep(r);
    r->delivering = true;
    while (!r->free_pending && (req = queue_first(r)) && req->seq <= last) {
        queue_unlink(req);
        req->cb(req->arg, &req->res);
        req_free(req);
    }
    r->delivering = false;
    if (r->free_pending) {
        free(r);
        return;
    }
    if (!list_empty(&r->queue) || r->rebuild)
        schedule(r);
}

/* ---- completion -------------------------------------------------------- */

static enum resolver_status
map_status(int status)
{
    switch (status) {
    case ARES_SUCCESS:
        return RESOLVER_OK;
    case ARES_ENODATA:
        return RESOLVER_EMPTY;
    case ARES_ENOTFOUND:
    case ARES_ENONAME:
        return RESOLVER_NXDOMAIN;
    case ARES_ESERVFAIL:
        return RESOLVER_SERVFAIL;
    case ARES_ETIMEOUT:
        return RESOLVER_TIMEOUT;
    default:
        return RESOLVER_ERROR;
    }
}

static uint32_t
clamp_ttl(int ttl)
{
    return ttl < 0 ? 0 : (uint32_t)ttl;
}

/* Copies the addresses of req's family and the minimum TTL out of ai. */
static int
take_answer(struct resolver_req *req, const struct ares_addrinfo *ai)
{
    const struct ares_addrinfo_node *n;
    const struct ares_addrinfo_cname *c;
    uint32_t ttl = UINT32_MAX;
    size_t count = 0;

    for (n = ai->nodes; n; n = n->ai_next)
        if (n->ai_family == req->res.family)
            count++;
    if (count == 0)
        return 0;
    req->addrs = calloc(count, sizeof(*req->addrs));
    if (!req->addrs)
        return -1;
    for (n = ai->nodes; n; n = n->ai_next) {
        struct resolver_addr *a = &req->addrs[req->res.naddrs];
        if (n->ai_family != req->res.family)
            continue;
        a->family = n->ai_family;
        if (n->ai_family == AF_INET)
            a->u.v4 = ((const struct sockaddr_in *)n->ai_addr)->sin_addr;
        else
            a->u.v6 = ((const struct sockaddr_in6 *)n->ai_addr)->sin6_addr;
        req->res.naddrs++;
        if (clamp_ttl(n->ai_ttl) < ttl)
            ttl = clamp_ttl(n->ai_ttl);
    }
    /* c-ares does not lower address TTLs to their CNAMEs'. */
    for (c = ai->cnames; c; c = c->next)
        if (clamp_ttl(c->ttl) < ttl)
            ttl = clamp_ttl(c->ttl);
    req->res.addrs = req->addrs;
    req->res.ttl = ttl;
    return 0;
}

/* Decides from an upstream outcome whether the channel needs replacing. */
static void
note_health(struct resolver *r, struct resolver_chan *chan, int status)
{
    double now = ev_now(r->loop);

    if (chan != r->chan)
        return;
    switch (status) {
    case ARES_ECONNREFUSED:
        /* At most one rebuild a second while a server refuses. */
        if (now - r->rebuilt >= REBUILD_INTERVAL || now < r->rebuilt)
            r->rebuild = true;
        break;
    case ARES_ETIMEOUT:
        if (++chan->timeouts >= RESOLVER_REBUILD_TIMEOUTS) {
            chan->timeouts = 0;
            r->rebuild = true;
        }
        break;
    case ARES_SUCCESS:
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
        chan->timeouts = 0; /* the server answered */
        break;
    default:
        break;
    }
    if (r->rebuild)
        schedule(r);
}

static void
on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    struct resolver_req *req = arg;
    struct resolver_chan *chan = req->chan;
    struct resolver *r = chan->r;

    chan->inflight--;
    if (status == ARES_EDESTRUCTION || req->cancelled || r->destroying) {
        if (ai)
            ares_freeaddrinfo(ai);
        req_free(req);
        if (chan->retired && chan->inflight == 0)
            schedule(r);
        return;
    }
    req->res.ares_status = status;
    req->res.duration = mono_now() - req->start;
    req->res.sent = !req->in_submit;
    if (status == ARES_SUCCESS && ai && take_answer(req, ai) < 0) {
        status = ARES_ENOMEM;
        req->res.ares_status = status;
    }
    req->res.status = map_status(status);
    if (req->res.status == RESOLVER_OK && req->res.naddrs == 0)
        req->res.status = RESOLVER_EMPTY;
    if (ai)
        ares_freeaddrinfo(ai);
    if (!req->in_submit)
        note_health(r, chan, status);
    queue_push(r, req);
    if (chan->retired && chan->inflight == 0)
        schedule(r);
}

/* ---- hosts file -------------------------------------------------------- */

static void
hosts_clear(struct resolver_hosts *h)
{
    free(h->entries);
    free(h->text);
    h->entries = NULL;
    h->text = NULL;
    h->n = 0;
}

static int
hosts_cmp(const void *a, const void *b)
{
    const struct hosts_entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c)
        return c;
    return (x->line > y->line) - (x->line < y->line);
}

static int
hosts_add(struct hosts_entry **v, size_t *n, size_t *cap,
          const struct hosts_entry *e)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        struct hosts_entry *nv = realloc(*v, ncap * sizeof(*nv));
        if (!nv)
            return -1;
        *v = nv;
        *cap = ncap;
    }
    (*v)[(*n)++] = *e;
    return 0;
}

/* Parses text in place ("ADDR NAME [ALIAS...]  # comment" lines). */
static int
hosts_parse(char *text, struct hosts_entry **out, size_t *nout)
{
    struct hosts_entry *v = NULL, e;
    size_t n = 0, cap = 0, line = 0;
    char *p = text, *eol, *tok, *save;

    for (; *p; p = eol) {
        eol = strchr(p, '\n');
        if (eol)
            *eol++ = '\0';
        else
            eol = p + strlen(p);
        char *hash = strchr(p, '#');
        if (hash)
            *hash = '\0';
        line++;
        tok = strtok_r(p, " \t\r", &save);
        if (!tok)
            continue;
        memset(&e, 0, sizeof(e));
        if (inet_pton(AF_INET, tok, &e.addr.u.v4) == 1)
            e.addr.family = AF_INET;
        else if (inet_pton(AF_INET6, tok, &e.addr.u.v6) == 1)
            e.addr.family = AF_INET6;
        else
            continue; /* scoped or bad address: ignored */
        e.line = line;
        while ((tok = strtok_r(NULL, " \t\r", &save))) {
            size_t len = strlen(tok);
            for (char *c = tok; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            if (len > 1 && tok[len - 1] == '.')
                tok[len - 1] = '\0';
            e.name = tok;
            if (hosts_add(&v, &n, &cap, &e) < 0) {
                free(v);
                return -1;
            }
        }
    }
    if (n)
        qsort(v, n, sizeof(*v), hosts_cmp);
    *out = v;
    *nout = n;
    return 0;
}

static char *
read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    size_t cap, n = 0;
    ssize_t got;

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) < 0 || st.st_size > HOSTS_MAX_BYTES) {
        errno = EFBIG;
        goto err;
    }
    cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    if (!buf)
        goto err;
    /* The file may grow while read: stop at the size seen. */
    while (n + 1 < cap && (got = read(fd, buf + n, cap - 1 - n)) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            goto err;
        }
        n += (size_t)got;
    }
    buf[n] = '\0';
    close(fd);
    *len = n;
    return buf;
err:
    free(buf);
    close(fd);
    return NULL;
}

/* Reads the file into a new table; on failure keeps the old one. */
static void
hosts_load(struct resolver *r, const struct stat *st)
{
    struct resolver_hosts *h = &r->hosts;
    struct hosts_entry *entries;
    size_t len, n;
    char *text;

    r->stats.hosts_loads++;
    if (!st) {
        hosts_clear(h); /* file gone: no entries */
        h->present = false;
        return;
    }
    text = read_file(h->path, &len);
    if (!text) {
        log_warn("resolver: hosts file %s: %s", h->path, strerror(errno));
        return;
    }
    if (hosts_parse(text, &entries, &n) < 0) {
        log_warn("resolver: hosts file %s: out of memory", h->path);
        free(text);
        return;
    }
    hosts_clear(h);
    h->text = text;
    h->entries = entries;
    h->n = n;
    h->present = true;
    h->mtime = st->st_mtim;
    h->ino = st->st_ino;
    h->size = st->st_size;
}

/* Re-reads the file when it changed, stat-ing it at most once a second. */
static void
hosts_refresh(struct resolver *r, bool force)
{
    struct resolver_hosts *h = &r->hosts;
    double now = ev_now(r->loop);
    struct stat st;
    bool exists;

    if (!h->path)
        return;
    if (!force && now - h->checked < HOSTS_CHECK_INTERVAL && now >= h->checked)
        return;
    h->checked = now;
    exists = stat(h->path, &st) == 0;
    if (!force && exists == h->present &&
        (!exists || (st.st_mtim.tv_sec == h->mtime.tv_sec &&
                     st.st_mtim.tv_nsec == h->mtime.tv_nsec &&
                     st.st_ino == h->ino && st.st_size == h->size)))
        return;
    if (!exists && errno != ENOENT)
        log_warn("resolver: hosts file %s: %s", h->path, strerror(errno));
    hosts_load(r, exists ? &st : NULL);
}

/* Fills req from the hosts table; returns true on a hit for its family. */
static bool
hosts_lookup(struct resolver *r, struct resolver_req *req)
{
    struct resolver_hosts *h = &r->hosts;
    char key[RESOLVER_NAME_MAX + 2];
    size_t lo = 0, hi, first, count = 0, i, len;

    if (!h->path)
        return false;
    hosts_refresh(r, false);
    if (h->n == 0)
        return false;
    len = strlen(req->name);
    for (i = 0; i < len; i++)
        key[i] = (char)tolower((unsigned char)req->name[i]);
    key[len] = '\0';
    if (len > 1 && key[len - 1] == '.')
        key[len - 1] = '\0';
    /* Lower bound of key. */
    hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(h->entries[mid].name, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    first = lo;
    for (i = first; i < h->n && strcmp(h->entries[i].name, key) == 0; i++)
        if (h->entries[i].addr.family == req->res.family)
            count++;
    if (count == 0)
        return false; /* not here for this family: ask DNS */
    req->addrs = calloc(count, sizeof(*req->addrs));
    if (!req->addrs)
        return false;
    for (i = first; i < h->n && strcmp(h->entries[i].name, key) == 0; i++)
        if (h->entries[i].addr.family == req->res.family)
            req->addrs[req->res.naddrs++] = h->entries[i].addr;
    req->res.addrs = req->addrs;
    return true;
}

/* ---- options ----------------------------------------------------------- */

/* "ip:port,[ip6]:port" for ares_set_servers_ports_csv, or NULL if none. */
static char *
servers_csv(const struct sockaddr_storage *ns, size_t n)
{
    size_t cap = n * (INET6_ADDRSTRLEN + 10) + 1, off = 0;
    char *csv, ip[INET6_ADDRSTRLEN];

    if (n == 0)
        return NULL;
    csv = malloc(cap);
    if (!csv)
        return NULL;
    csv[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        unsigned port;
        int w;
        if (ns[i].ss_family == AF_INET6) {
            const struct sockaddr_in6 *s = (const void *)&ns[i];
            inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
            port = ntohs(s->sin6_port);
            w = snprintf(csv + off, cap - off, "%s[%s]:%u", i ? "," : "", ip,
                         port ? port : 53);
        } else {
            const struct sockaddr_in *s = (const void *)&ns[i];
            inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
            port = ntohs(s->sin_port);
            w = snprintf(csv + off, cap - off, "%s%s:%u", i ? "," : "", ip,
                         port ? port : 53);
        }
        off += (size_t)w;
    }
    return csv;
}

/* Copies opts into r's option fields; on failure r is unchanged. */
static int
options_set(struct resolver *r, const struct resolver_options *opts)
{
    struct sockaddr_storage *ns = NULL;
    char *csv = NULL, *path = NULL;

    if (opts->timeout <= 0 || opts->attempts < 1) {
        log_error("resolver: timeout and attempts must be positive");
        return -1;
    }
    for (size_t i = 0; i < opts->nnameservers; i++) {
        int f = opts->nameservers[i].ss_family;
        if (f != AF_INET && f != AF_INET6) {
            log_error("resolver: nameserver %zu is not IPv4/IPv6", i);
            return -1;
        }
    }
    if (opts->nnameservers) {
        ns = calloc(opts->nnameservers, sizeof(*ns));
        csv = servers_csv(opts->nameservers, opts->nnameservers);
        if (!ns || !csv)
            goto err;
        memcpy(ns, opts->nameservers, opts->nnameservers * sizeof(*ns));
    }
    if (opts->hosts_file && !(path = strdup(opts->hosts_file)))
        goto err;
    free(r->ns);
    free(r->servers_csv);
    r->ns = ns;
    r->nns = opts->nnameservers;
    r->servers_csv = csv;
    r->timeout = opts->timeout;
    r->attempts = opts->attempts;
    if (!path || !r->hosts.path || strcmp(path, r->hosts.path) != 0) {
        hosts_clear(&r->hosts);
        r->hosts.present = false;
    }
    free(r->hosts.path);
    r->hosts.path = path;
    return 0;
err:
    log_error("resolver: out of memory");
    free(ns);
    free(csv);
    free(path);
    return -1;
}

/* ---- public ------------------------------------------------------------ */

struct resolver *
resolver_init(struct ev_loop *loop, const struct resolver_options *opts)
{
    struct resolver *r;

    if (resolver_library_init() < 0)
        goto err;
    r = calloc(1, sizeof(*r));
    if (!r)
        goto err;
    r->loop = loop;
    list_init(&r->queue);
    ev_init(&r->deliver, on_deliver);
    r->deliver.data = r;
    if (options_set(r, opts) < 0)
        goto err_free;
    hosts_refresh(r, true);
    r->chan = chan_new(r);
    if (!r->chan)
        goto err_opts;
    return r;

err_opts:
    hosts_clear(&r->hosts);
    free(r->hosts.path);
    free(r->ns);
    free(r->servers_csv);
err_free:
    free(r);
err:
    return NULL;
}

int
resolver_reconfigure(struct resolver *r, const struct resolver_options *opts)
{
    struct resolver saved = *r;
    struct resolver_chan *chan;

    /* Swap the option fields in, build, and roll back on failure. */
    r->ns = NULL;
    r->servers_csv = NULL;
    r->hosts.path = NULL;
    r->hosts.entries = NULL;
    r->hosts.text = NULL;
    r->hosts.n = 0;
    if (options_set(r, opts) < 0)
        goto restore;
    chan = chan_new(r);
    if (!chan) {
        free(r->ns);
        free(r->servers_csv);
        free(r->hosts.path);
        goto restore;
    }
    free(saved.ns);
    free(saved.servers_csv);
    free(saved.hosts.path);
    free(saved.hosts.entries);
    free(saved.hosts.text);
    if (r->chan)
        chan_retire(r, r->chan);
    r->chan = chan;
    r->rebuild = false;
    hosts_refresh(r, true);
    return 0;

restore:
    r->ns = saved.ns;
    r->nns = saved.nns;
    r->servers_csv = saved.servers_csv;
    r->timeout = saved.timeout;
    r->attempts = saved.attempts;
    r->hosts = saved.hosts;
    return -1;
}

void
resolver_destroy(struct resolver *r)
{
    struct resolver_req *req;
    struct resolver_chan *c;

    if (!r || r->destroying)
        return;
    /* c-ares callbacks fired by ares_destroy see this and only free. */
    r->destroying = true;
    ev_timer_stop(r->loop, &r->deliver);
    while ((c = r->retired)) {
        r->retired = c->next;
        chan_destroy(c);
    }
    if (r->chan)
        chan_destroy(r->chan);
    r->chan = NULL;
    while ((req = queue_first(r))) {
        queue_unlink(req);
        req_free(req);
    }
    hosts_clear(&r->hosts);
    free(r->hosts.path);
    free(r->ns);
    free(r->servers_csv);
    if (r->delivering)
        r->free_pending = true; /* on_deliver frees r when cb returns */
    else
        free(r);
}

/* Answers an IP literal without DNS; returns false if name is not one. */
static bool
literal_lookup(struct resolver_req *req)
{
    struct resolver_addr a;
    int fam;

    memset(&a, 0, sizeof(a));
    if (inet_pton(AF_INET, req->name, &a.u.v4) == 1)
        fam = AF_INET;
    else if (inet_pton(AF_INET6, req->name, &a.u.v6) == 1)
        fam = AF_INET6;
    else
        return false;
    if (fam != req->res.family) {
        /* A literal has no address of the other family. */
        req->res.status = RESOLVER_EMPTY;
        return true;
    }
    req->addrs = malloc(sizeof(*req->addrs));
    if (!req->addrs) {
        req->res.status = RESOLVER_ERROR;
        req->res.ares_status = ARES_ENOMEM;
        return true;
    }
    a.family = fam;
    req->addrs[0] = a;
    req->res.addrs = req->addrs;
    req->res.naddrs = 1;
    return true;
}

struct resolver_req *
resolver_resolve(struct resolver *r, const char *name, int family,
                 resolver_cb cb, void *arg)
{
    struct ares_addrinfo_hints hints;
    struct resolver_req *req;
    char qname[RESOLVER_NAME_MAX + 2];
    size_t len;

    if (r->destroying || !cb || (family != AF_INET && family != AF_INET6))
        return NULL;
    len = name ? strlen(name) : 0;
    if (len > 1 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > RESOLVER_NAME_MAX)
        return NULL;
    req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->r = r;
    list_init(&req->qlink);
    req->cb = cb;
    req->arg = arg;
    req->start = mono_now();
    memcpy(req->name, name, strlen(name) + 1);
    req->res.name = req->name;
    req->res.family = family;
    req->res.status = RESOLVER_OK;
    req->res.ares_status = ARES_SUCCESS;

    if (literal_lookup(req)) {
        r->stats.literals++;
        queue_push(r, req);
        return req;
    }
    if (hosts_lookup(r, req)) {
        r->stats.hosts_hits++;
        queue_push(r, req);
        return req;
    }
    if (!r->chan) {
        /* Every rebuild so far failed: fail fast, try again later. */
        req->res.status = RESOLVER_ERROR;
        req->res.ares_status = ARES_ENOTINITIALIZED;
        r->rebuild = true;
        queue_push(r, req);
        return req;
    }

    /* Trailing dot: one name is one query, whatever resolv.conf says. */
    memcpy(qname, name, len);
    qname[len] = '.';
    qname[len + 1] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_flags = ARES_AI_NOSORT;
    req->chan = r->chan;
    req->chan->inflight++;
    /* The callback may run before ares_getaddrinfo returns. */
    req->in_submit = true;
    ares_getaddrinfo(req->chan->ares, qname, NULL, &hints, on_addrinfo, req);
    req->in_submit = false;
    if (!req->queued) {
        req->res.sent = true;
        r->stats.queries++;
    }
    chan_update_timer(req->chan);
    return req;
}

void
resolver_cancel(struct resolver_req *req)
{
    if (!req)
        return;
    if (req->queued) {
        queue_unlink(req);
        req_free(req);
        return;
    }
    /* In flight: c-ares still owns it; its callback frees it. */
    req->cancelled = true;
    req->cb = NULL;
}
