/*
 * log: stderr logging and the access log.
 */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

static enum config_log_level log_level = LOG_LEVEL_INFO;
static FILE *log_access_fp;  /* NULL when the access log is off */
static int log_access_owned; /* we opened it, we close it */

static const char *const log_level_names[] = {
    [LOG_LEVEL_ERROR] = "ERROR",
    [LOG_LEVEL_WARN] = "WARN",
    [LOG_LEVEL_INFO] = "INFO",
    [LOG_LEVEL_DEBUG] = "DEBUG",
};

void
log_set_level(enum config_log_level level)
{
    log_level = level;
}

enum config_log_level
log_get_level(void)
{
    return log_level;
}

static void
log_vmsg(enum config_log_level level, unsigned held, const char *fmt,
         va_list ap)
{
    char line[1024];
    size_t cap = sizeof(line) - 1; /* room for the newline */
    size_t n;

    /* One write per event so lines from a crash or a pipe never interleave. */
    n = (size_t)snprintf(line, cap, "%s ", log_level_names[level]);
    n += (size_t)vsnprintf(line + n, cap - n, fmt, ap);
    if (held > 0 && n < cap)
        n += (size_t)snprintf(line + n, cap - n,
                              " (%u similar message%s held back)", held,
                              held == 1 ? "" : "s");
    if (n > cap - 1)
        n = cap - 1;
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
}

void
log_msg(enum config_log_level level, const char *fmt, ...)
{
    va_list ap;

    if (level > log_level)
        return;
    va_start(ap, fmt);
    log_vmsg(level, 0, fmt, ap);
    va_end(ap);
}

bool
log_limit_pass(struct log_limit *l, double now, unsigned *held)
{
    if (l->started && now < l->next) {
        l->held++;
        return false;
    }
    *held = l->held;
    l->held = 0;
    l->started = true;
    l->next = now + LOG_LIMIT_INTERVAL;
    return true;
}

void
log_limited(struct log_limit *l, double now, enum config_log_level level,
            const char *fmt, ...)
{
    unsigned held;
    va_list ap;

    if (level > log_level || !log_limit_pass(l, now, &held))
        return;
    va_start(ap, fmt);
    log_vmsg(level, held, fmt, ap);
    va_end(ap);
}

int
log_access_open(const char *target)
{
    FILE *fp;

    log_access_close();
    if (target == NULL || strcmp(target, "off") == 0)
        return 0;
    if (strcmp(target, "stderr") == 0) {
        log_access_fp = stderr;
        log_access_owned = 0;
        return 0;
    }
    fp = fopen(target, "a");
    if (fp == NULL)
        return -1;
    setvbuf(fp, NULL, _IOLBF, 0);
    log_access_fp = fp;
    log_access_owned = 1;
    return 0;
}

void
log_access_close(void)
{
    if (log_access_fp != NULL && log_access_owned)
        fclose(log_access_fp);
    log_access_fp = NULL;
    log_access_owned = 0;
}

int
log_access_enabled(void)
{
    return log_access_fp != NULL;
}

void
log_access(const char *fmt, ...)
{
    char ts[40];
    struct timespec now;
    struct tm tm;
    va_list ap;

    if (log_access_fp == NULL)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(log_access_fp, "%s.%03ldZ ", ts, now.tv_nsec / 1000000);
    va_start(ap, fmt);
    vfprintf(log_access_fp, fmt, ap);
    va_end(ap);
    fputc('\n', log_access_fp);
}
