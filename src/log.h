/*
 * log: leveled messages on stderr ("LEVEL message", one event a line) and
 * the access log (one line per request or TCP session).
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdio.h>

#include "config.h"

void log_set_level(enum config_log_level level);
enum config_log_level log_get_level(void);
void log_msg(enum config_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                       \
    do {                                                                     \
        if (log_get_level() >= LOG_LEVEL_DEBUG)                              \
            log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);                           \
    } while (0)

/*
 * Access log target: NULL or "off" disables it, "stderr" writes to stderr,
 * anything else is a file opened for appending. Returns 0 or -1 (errno set).
 */
int log_access_open(const char *target);
void log_access_close(void);
int log_access_enabled(void);
void log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
