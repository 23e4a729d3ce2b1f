/*
 * stats_server: the small HTTP/1.1 server behind the [stats] listener.
 *
 * One request per connection (every answer carries Connection: close).
 * The request head goes through http_parser, the proxy's parser, as it
 * arrives, so the stats listener refuses every head an HTTP frontend
 * refuses, with the same status; of the fields only Authorization is used.
 * The bodies come from route callbacks registered by the caller:
 *
 *   accept ─► READ head (<= 8 KiB, deadline) ─► http_parse ─► 400/431/401/
 *                                                │   405/404 or route render
 *                                                ▼
 *            close ◄─ LINGER (drain, bounded) ◄─ WRITE (non-blocking,
 *                                                       deadline)
 *
 * Checks, in order: a head http_parser refuses -> its status, 400 when
 * malformed (see http_parser.h: CRLF line ends, no fragment in the target,
 * HTTP/1.0 or 1.1 only, Host required in HTTP/1.1, ...), 431 when over the
 * limit or with more than HTTP_MAX_HEADERS fields; more than one
 * Authorization field -> 400; token configured and `Authorization: Bearer
 * TOKEN` missing or wrong -> 401 (before anything else, so an
 * unauthenticated client learns nothing about paths), method not GET/HEAD
 * -> 405, unknown path (query string ignored; an absolute-form target
 * counts by its path) -> 404, render failure -> 500, else 200. HEAD gets
 * the headers of the GET answer without the body. Status lines and error
 * bodies use http_status_text().
 *
 * Resource bounds: each phase (reading the head, writing the answer) has an
 * absolute deadline (default 10 s) that progress does not extend, so a slow
 * or dead client is dropped; at most max_conns (default 64) connections are
 * open, past that accepting pauses (the kernel backlog holds the rest).
 *
 * Everything runs on the loop given to stats_server_create; nothing blocks.
 * Do not call stats_server_destroy from a render callback.
 */
#ifndef FERRY_STATS_SERVER_H
#define FERRY_STATS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "strbuf.h"

struct ev_loop;
struct stats_server;

/* Largest request head accepted, the blank line included; more is 431. */
#define STATS_SERVER_HEAD_MAX 8192
/* Routes a server can hold. */
#define STATS_SERVER_MAX_ROUTES 8

#define STATS_CONTENT_TYPE_PROM "text/plain; version=0.0.4; charset=utf-8"
#define STATS_CONTENT_TYPE_JSON "application/json"
#define STATS_CONTENT_TYPE_HTML "text/html; charset=utf-8"
#define STATS_CONTENT_TYPE_TEXT "text/plain; charset=utf-8"

/*
 * Appends the answer's body to `body` (empty on entry) and may set
 * *content_type to a string that outlives the call (default text/plain).
 * Returns 0, or -1 for a 500. An out-of-memory body is a 500 too.
 */
typedef int (*stats_server_render_fn)(struct strbuf *body,
                                      const char **content_type, void *user);

/*
 * Binds addr (IPv4 or IPv6; IPv6 sockets are v6-only, as `*:PORT` means
 * IPv4) with SO_REUSEADDR, non-blocking, and starts accepting on loop.
 * token NULL or "" means no authorization. On failure returns NULL with a
 * message in err.
 */
struct stats_server *stats_server_create(struct ev_loop *loop,
                                         const struct sockaddr *addr,
                                         socklen_t len, const char *token,
                                         char *err, size_t errlen);
/*
 * Same, on an already bound and listening socket (kept across a reload or
 * handed over by stats_server_detach_fd). The server owns fd from then on,
 * also on failure (it is closed).
 */
struct stats_server *stats_server_create_from_fd(struct ev_loop *loop, int fd,
                                                 const char *token, char *err,
                                                 size_t errlen);
/* Closes open connections and the listening socket (unless detached). */
void stats_server_destroy(struct stats_server *srv);

/* The listening socket (e.g. to learn the port with getsockname). */
int stats_server_fd(const struct stats_server *srv);
/*
 * Stops accepting and gives up ownership of the listening socket: it stays
 * open after stats_server_destroy, for stats_server_create_from_fd.
 * Returns the fd.
 */
int stats_server_detach_fd(struct stats_server *srv);

/* Adds or replaces the route for path (exact match). 0, or -1 if full. */
int stats_server_route(struct stats_server *srv, const char *path,
                       stats_server_render_fn fn, void *user);
/* Changes the token (reload); NULL or "" turns authorization off. 0 or -1. */
int stats_server_set_token(struct stats_server *srv, const char *token);
/* Per-phase deadline in seconds (default 10). Applies to new phases. */
void stats_server_set_timeout(struct stats_server *srv, double seconds);
/* Most connections open at once (default 64, at least 1). */
void stats_server_set_max_conns(struct stats_server *srv, unsigned max);
/* Connections open now. */
unsigned stats_server_conns(const struct stats_server *srv);

/* ---- pure part, exposed for the unit tests ---- */

struct http_msg;

enum stats_method {
    STATS_METHOD_OTHER, /* anything else: 405 */
    STATS_METHOD_GET,   /* GET */
    STATS_METHOD_HEAD,  /* HEAD */
};

struct stats_request {
    enum stats_method method; /* parsed method */
    const char *path;         /* into the head buffer, not NUL-
                                           terminated; query excluded; "/"
                                           for "http://host"; "" for
                                           authority- or asterisk-form */
    size_t path_len;          /* bytes of path */
    const char *auth;         /* Authorization value, trimmed, or
                                           NULL when absent */
    size_t auth_len;          /* bytes of auth */
};

/*
 * What the server uses of a request head that http_parse() accepted
 * (HTTP_PARSE_DONE) from buf; req points into buf. Returns 0, or -1 (a
 * 400) if the head carries more than one Authorization field.
 */
int stats_server_request(const struct http_msg *m, const char *buf,
                         struct stats_request *req);

#endif
