/*
 * log: stderr logging and the access log.
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Every worker thread logs. The level is read with relaxed atomics (a
 * reload sets it); the access log's FILE is swapped by a reload while
 * workers write lines, so both happen under log_access_mutex, and each
 * line is one fwrite so lines of different workers never interleave.
 */
static enum config_log_level log_level = LOG_LEVEL_INFO;
static pthread_mutex_t log_access_mutex = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_access_fp;  /* NULL when the access log is off */
static int log_access_owned; /* we opened it, we close it */
static int log_access_on;    /* log_access_fp != NULL, read unlocked */

static const char *const log_level_names[] = {
    [LOG_LEVEL_ERROR] = "ERROR",
    [LOG_LEVEL_WARN] = "WARN",
    [LOG_LEVEL_INFO] = "INFO",
    [LOG_LEVEL_DEBUG] = "DEBUG",
};

void
log_set_level(enum config_log_level level)
{
    __atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

enum config_log_level
log_get_level(void)
{
    return __atomic_load_n(&log_level, __ATOMIC_RELAXED);
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

    if (level > log_get_level())
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

    if (level > log_get_level() || !log_limit_pass(l, now, &held))
        return;
    va_start(ap, fmt);
    log_vmsg(level, held, fmt, ap);
    va_end(ap);
}

/* Installs fp (NULL: off) and closes the previous one, under the lock. */
static void
log_access_swap(FILE *fp, int owned)
{
    FILE *old;
    int old_owned;

    pthread_mutex_lock(&log_access_mutex);
    old = log_access_fp;
    old_owned = log_access_owned;
    log_access_fp = fp;
    log_access_owned = owned;
    __atomic_store_n(&log_access_on, fp != NULL, __ATOMIC_RELAXED);
    if (old != NULL && old_owned)
        fclose(old);
    pthread_mutex_unlock(&log_access_mutex);
}

int
log_access_open(const char *target)
{
    FILE *fp;

    if (target == NULL || strcmp(target, "off") == 0) {
        log_access_swap(NULL, 0);
        return 0;
    }
    if (strcmp(target, "stderr") == 0) {
        log_access_swap(stderr, 0);
        return 0;
    }
    fp = fopen(target, "a");
    if (fp == NULL) {
        log_access_swap(NULL, 0);
        return -1;
    }
    setvbuf(fp, NULL, _IOLBF, 0);
    log_access_swap(fp, 1);
    return 0;
}

void
log_access_close(void)
{
    log_access_swap(NULL, 0);
}

int
log_access_enabled(void)
{
    return __atomic_load_n(&log_access_on, __ATOMIC_RELAXED);
}

void
log_access(const char *fmt, ...)
{
    char buf[4096], *line = buf;
    struct timespec now;
    struct tm tm;
    size_t n, cap = sizeof(buf);
    va_list ap;
    int len;

    if (!log_access_enabled())
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, cap - n, ".%03ldZ ", now.tv_nsec / 1000000);
    va_start(ap, fmt);
    len = vsnprintf(buf + n, cap - n - 1, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    if ((size_t)len >= cap - n - 1) {
        /* A long line (a long URL): format it again at its size. */
        line = malloc(n + (size_t)len + 2);
        if (line == NULL)
            return;
        memcpy(line, buf, n);
        va_start(ap, fmt);
        vsnprintf(line + n, (size_t)len + 1, fmt, ap);
        va_end(ap);
    }
    n += (size_t)len;
    line[n++] = '\n';
    pthread_mutex_lock(&log_access_mutex);
    if (log_access_fp != NULL)
        fwrite(line, 1, n, log_access_fp);
    pthread_mutex_unlock(&log_access_mutex);
    if (line != buf)
        free(line);
}
