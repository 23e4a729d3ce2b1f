/*
 * stats: what /metrics, /stats and / show, rendered from the live runtime
 * and the DNS plane at request time (nothing is copied on the data path:
 * counters are plain fields the data plane increments).
 *
 * The endpoint itself (socket, auth, routing) is stats_server.c.
 */
#ifndef FERRY_STATS_H
#define FERRY_STATS_H

#include <ev.h>

#include "config.h"

struct runtime;
struct dns;
struct stats;
struct strbuf;

/*
 * Binds [stats] listen and serves the three pages from rt and dns.
 * Returns NULL with a message in err (the listener could not be bound).
 */
struct stats *stats_create(struct ev_loop *loop, const struct config *cfg,
                           struct runtime *rt, struct dns *dns, char *err,
                           size_t errlen);
void stats_destroy(struct stats *st);

/*
 * Reload, in two steps like the runtime's: prepare binds a changed address
 * (nothing else changes; -1 with err on failure), then commit switches to
 * it and takes the new token, or abort drops what prepare made.
 */
int stats_reload_prepare(struct stats *st, const struct config *cfg, char *err,
                         size_t errlen);
void stats_reload_commit(struct stats *st, const struct config *cfg);
void stats_reload_abort(struct stats *st);

/* Renderers, also used by the unit test (no socket needed). */
int stats_render_metrics(struct strbuf *sb, const char **ctype, void *st);
int stats_render_json(struct strbuf *sb, const char **ctype, void *st);
int stats_render_html(struct strbuf *sb, const char **ctype, void *st);

/* For tests: a stats object that renders without listening. */
struct stats *stats_create_unbound(struct runtime *rt, struct dns *dns);

#endif
