/*
 * log: leveled messages on stderr ("LEVEL message", one event a line) and
 * the access log (one line per request or TCP session).
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

void log_set_level(enum config_log_level level);
enum config_log_level log_get_level(void);
void log_msg(enum config_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                         \
    do {                                                                       \
        if (log_get_level() >= LOG_LEVEL_DEBUG)                                \
            log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);                             \
    } while (0)

/*
 * A message that can repeat once per event (accept failing for want of
 * fds, max_connections reached under sustained load): the first one goes
 * out, then at most one per LOG_LIMIT_INTERVAL, which says how many were
 * held back meanwhile. Zero-initialised is ready to use. Time comes from
 * the caller (ev_now), so tests need no clock.
 */
#define LOG_LIMIT_INTERVAL 10.0
struct log_limit {
    double next;   /* no message before this time */
    unsigned held; /* held back since the last one */
    bool started;  /* a message went out already */
};

/* Whether a message may go out now; if so *held is how many were held
 * back since the last one (and the count starts over). */
bool log_limit_pass(struct log_limit *l, double now, unsigned *held);
/* log_msg through a limiter; a message that goes out after others were
 * held back ends with "(N similar messages held back)". */
void log_limited(struct log_limit *l, double now, enum config_log_level level,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Access log target: NULL or "off" disables it, "stderr" writes to stderr,
 * anything else is a file opened for appending. Returns 0 or -1 (errno set).
 */
int log_access_open(const char *target);
void log_access_close(void);
int log_access_enabled(void);
void log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
