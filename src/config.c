/*
 * config: INI file -> validated struct config.
 *
 * inih does the tokenising; Debian's build gives its handler no line
 * numbers and silently cuts lines at INI_MAX_LINE, so every line goes
 * through config_reader() first. The reader counts lines, rejects over-long
 * and malformed lines (replacing them with a blank line so inih skips them),
 * and handles section headers itself, so empty sections, duplicate sections
 * and section lines are known with their numbers.
 *
 * Keys are dispatched through one table {section, key, parser, offset}. Each
 * parser is strict and writes a typed value; validation that spans keys runs
 * after the whole file was read, and every error found is reported.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* inih's line buffer is INI_MAX_LINE (200) bytes, including "\r\n\0". */
#define CONFIG_MAX_LINE 197
#define CONFIG_MAX_WEIGHT 10000

enum config_section_kind {
    SECT_NONE,
    SECT_GLOBAL,
    SECT_STATS,
    SECT_RESOLVER,
    SECT_FRONTEND,
    SECT_BACKEND,
};

static const char *const config_section_names[] = {
    [SECT_NONE] = "",
    [SECT_GLOBAL] = "global",
    [SECT_STATS] = "stats",
    [SECT_RESOLVER] = "resolver",
    [SECT_FRONTEND] = "frontend",
    [SECT_BACKEND] = "backend",
};

struct config_ctx;

/* Parses value into dst; on error writes what was expected into err. */
typedef int (*config_parser)(struct config_ctx *ctx, void *dst,
                             const char *value, char *err, size_t errlen);

#define KEY_REPEAT 0x1   /* may appear several times */
#define KEY_REQUIRED 0x2 /* must appear once per section */

struct config_key {
    enum config_section_kind section; /* where the key may appear */
    const char *name;                 /* key as written */
    config_parser parse;              /* typed parser */
    size_t offset;                    /* destination in the section struct */
    unsigned flags;                   /* KEY_* */
};

/* One section instance seen in the file, with the lines its keys were on. */
struct config_sect {
    enum config_section_kind kind; /* which section */
    size_t index;                  /* frontend/backend index */
    int line;                      /* line of the header */
    int *seen;                     /* per key of the table: line or 0 */
};

struct config_ctx {
    struct config *cfg;         /* being built */
    struct config_errors *errs; /* collected errors */
    config_tls_check tls_check; /* opens TLS pairs; NULL = skip */
    const char *path;           /* for messages */
    FILE *fp;                   /* file being read */
    char *linebuf;              /* getline buffer */
    size_t linecap;             /* its capacity */
    int line;                   /* current line number */
    struct config_sect *sects;  /* sections seen so far */
    size_t nsects;              /* entries in sects */
    struct config_sect *cur;    /* section keys go to; NULL = none */
    bool cur_invalid;           /* bad header: ignore its keys */
    bool oom;                   /* an allocation failed */
};

static void config_error_at(struct config_ctx *ctx, int line, const char *fmt,
                            ...) __attribute__((format(printf, 3, 4)));

static void
config_error_at(struct config_ctx *ctx, int line, const char *fmt, ...)
{
    char msg[512], *full, **msgs;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (asprintf(&full, "%s:%d: %s", ctx->path, line, msg) < 0) {
        ctx->oom = true;
        return;
    }
    msgs = realloc(ctx->errs->msgs, (ctx->errs->n + 1) * sizeof(*msgs));
    if (msgs == NULL) {
        free(full);
        ctx->oom = true;
        return;
    }
    msgs[ctx->errs->n++] = full;
    ctx->errs->msgs = msgs;
}

/* ---------------------------------------------------------------------- */
/* Value parsers (public ones are also used by the unit tests).           */

/* Parses a non-negative decimal integer that fills the whole of [s, end). */
static int
parse_digits(const char *s, const char *end, unsigned long long *out)
{
    unsigned long long v = 0;

    if (s == end)
        return -1;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (ULLONG_MAX - 9) / 10)
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    *out = v;
    return 0;
}

int
config_parse_duration(const char *s, double *out)
{
    size_t len = strlen(s);
    const char *end = s + len;
    double scale = 1.0;
    unsigned long long v;

    if (len >= 2 && strcmp(end - 2, "ms") == 0) {
        scale = 0.001;
        end -= 2;
    } else if (len >= 1 && end[-1] == 's') {
        end -= 1;
    } else if (len >= 1 && end[-1] == 'm') {
        scale = 60;
        end -= 1;
    } else if (len >= 1 && end[-1] == 'h') {
        scale = 3600;
        end -= 1;
    }
    if (parse_digits(s, end, &v) != 0 || v > 100000000ULL)
        return -1;
    *out = (double)v * scale;
    return 0;
}

int
config_parse_size(const char *s, size_t *out)
{
    size_t len = strlen(s);
    const char *end = s + len;
    unsigned long long v, scale = 1;

    if (len >= 1 && (end[-1] == 'k' || end[-1] == 'K')) {
        scale = 1024;
        end--;
    } else if (len >= 1 && (end[-1] == 'm' || end[-1] == 'M')) {
        scale = 1024 * 1024;
        end--;
    }
    if (parse_digits(s, end, &v) != 0 || v > (1ULL << 40) / scale)
        return -1;
    *out = (size_t)(v * scale);
    return 0;
}

int
config_parse_percentage(const char *s, double *out)
{
    size_t len = strlen(s);
    char *end;
    double v;

    if (len == 0 || !(isdigit((unsigned char)s[0]) || s[0] == '.') ||
        strspn(s, "0123456789.") != len - (s[len - 1] == '%') ||
        strchr(s, '.') != strrchr(s, '.'))
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || !isfinite(v))
        return -1;
    if (*end == '%' && end[1] == '\0') {
        v /= 100.0;
    } else if (*end != '\0') {
        return -1;
    } else if (strchr(s, '.') == NULL && v != 0 && v != 1) {
        /* "20" is ambiguous (20% or 20x?): ask for "20%" or "0.2". */
        return -1;
    }
    if (v < 0 || v > 1)
        return -1;
    *out = v;
    return 0;
}

int
config_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
    unsigned long long v;

    if (parse_digits(s, s + strlen(s), &v) != 0 || v < min || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int
parse_port(const char *s, uint16_t *out)
{
    unsigned v;

    /* "080" would make h:80 and h:080 two different servers. */
    if (s[0] == '0' || config_parse_uint(s, 1, 65535, &v) != 0)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/* Fills out with an IP literal (IPv4, or IPv6 without brackets) and port. */
static int
make_sockaddr(const char *ip, uint16_t port, struct sockaddr_storage *ss,
              socklen_t *len)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        *len = sizeof(*s4);
        return 0;
    }
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        *len = sizeof(*s6);
        return 0;
    }
    return -1;
}

/*
 * Splits "HOST:PORT" or "[V6]:PORT" into host (brackets removed) and port
 * text. With default_port non-NULL the port may be omitted.
 */
static int
split_host_port(const char *s, char *host, size_t hostlen, const char **port,
                bool *bracketed)
{
    const char *colon;
    size_t n;

    *bracketed = false;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return -1;
        n = (size_t)(close - s - 1);
        if (n == 0 || n >= hostlen)
            return -1;
        memcpy(host, s + 1, n);
        host[n] = '\0';
        *bracketed = true;
        if (close[1] == '\0') {
            *port = NULL;
            return 0;
        }
        if (close[1] != ':')
            return -1;
        *port = close + 2;
        return 0;
    }
    colon = strrchr(s, ':');
    if (colon == NULL) {
        n = strlen(s);
        *port = NULL;
    } else {
        if (strchr(s, ':') != colon)
            return -1; /* IPv6 without brackets: ambiguous */
        n = (size_t)(colon - s);
        *port = colon + 1;
    }
    if (n == 0 || n >= hostlen)
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    return 0;
}

int
config_parse_listen_addr(const char *s, struct config_addr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *portstr;
    bool bracketed;
    uint16_t port;

    if (split_host_port(s, host, sizeof(host), &portstr, &bracketed) != 0 ||
        portstr == NULL || parse_port(portstr, &port) != 0)
        return -1;
    if (!bracketed && strcmp(host, "*") == 0)
        snprintf(host, sizeof(host), "0.0.0.0");
    else if (!bracketed && strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (make_sockaddr(host, port, &out->ss, &out->len) != 0)
        return -1;
    if (bracketed != (out->ss.ss_family == AF_INET6))
        return -1;
    snprintf(out->text, sizeof(out->text), "%s", s);
    return 0;
}

int
config_parse_nameserver(const char *s, struct config_addr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *portstr;
    bool bracketed;
    uint16_t port = 53;

    /* A bare IPv6 address has several colons: accept it without brackets. */
    if (!strchr(s, '[') && strchr(s, ':') != strrchr(s, ':')) {
        if (make_sockaddr(s, port, &out->ss, &out->len) != 0 ||
            out->ss.ss_family != AF_INET6)
            return -1;
        snprintf(out->text, sizeof(out->text), "[%s]:53", s);
        return 0;
    }
    if (split_host_port(s, host, sizeof(host), &portstr, &bracketed) != 0)
        return -1;
    if (portstr != NULL && parse_port(portstr, &port) != 0)
        return -1;
    if (make_sockaddr(host, port, &out->ss, &out->len) != 0)
        return -1;
    if (bracketed != (out->ss.ss_family == AF_INET6))
        return -1;
    if (bracketed)
        snprintf(out->text, sizeof(out->text), "[%s]:%u", host, port);
    else
        snprintf(out->text, sizeof(out->text), "%s:%u", host, port);
    return 0;
}

/* A DNS host name: labels of letters, digits, '-' and '_', dot-separated. */
static bool
valid_hostname(const char *h)
{
    size_t len = strlen(h), label = 0;

    if (len == 0 || len > 253)
        return false;
    for (const char *p = h; *p; p++) {
        if (*p == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 || h[len - 1] == '.';
}

static bool
valid_name(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > CONFIG_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return false;
    return true;
}

/* ---------------------------------------------------------------------- */
/* Key parsers: (ctx, dst, value, err).                                    */

#define EXPECT(...)                                                            \
    do {                                                                       \
        snprintf(err, errlen, __VA_ARGS__);                                    \
        return -1;                                                             \
    } while (0)

static int
p_duration(struct config_ctx *ctx, void *dst, const char *v, char *err,
           size_t errlen)
{
    if (config_parse_duration(v, dst) != 0)
        EXPECT("a duration such as 500ms, 5s, 2m or 1h");
    return 0;
}

static int
p_duration_pos(struct config_ctx *ctx, void *dst, const char *v, char *err,
               size_t errlen)
{
    if (config_parse_duration(v, dst) != 0 || *(double *)dst <= 0)
        EXPECT("a duration above zero such as 500ms, 5s, 2m or 1h");
    return 0;
}

static int
p_size(struct config_ctx *ctx, void *dst, const char *v, char *err,
       size_t errlen)
{
    size_t n;

    if (config_parse_size(v, &n) != 0 || n < 1024 || n > 1024 * 1024)
        EXPECT("a size from 1k to 1m such as 16k or 32768");
    *(size_t *)dst = n;
    return 0;
}

static int
p_percentage(struct config_ctx *ctx, void *dst, const char *v, char *err,
             size_t errlen)
{
    if (config_parse_percentage(v, dst) != 0)
        EXPECT("a percentage such as 20%% or a fraction such as 0.2");
    return 0;
}

static int
p_percentage_below_one(struct config_ctx *ctx, void *dst, const char *v,
                       char *err, size_t errlen)
{
    if (config_parse_percentage(v, dst) != 0 || *(double *)dst >= 1)
        EXPECT("a percentage below 100%% such as 20%% or a fraction such "
               "as 0.2");
    return 0;
}

#define UINT_PARSER(fn, lo, hi)                                                \
    static int fn(struct config_ctx *ctx, void *dst, const char *v, char *err, \
                  size_t errlen)                                               \
    {                                                                          \
        if (config_parse_uint(v, lo, hi, dst) != 0)                            \
            EXPECT("a whole number from %u to %u", (unsigned)(lo),             \
                   (unsigned)(hi));                                            \
        return 0;                                                              \
    }

UINT_PARSER(p_max_connections, 1, 1000000)
UINT_PARSER(p_retries, 0, 15)
UINT_PARSER(p_rise_fall, 1, 100)
UINT_PARSER(p_attempts, 1, 10)
UINT_PARSER(p_passive_window, 0, 1000)

static int
p_workers(struct config_ctx *ctx, void *dst, const char *v, char *err,
          size_t errlen)
{
    unsigned n;

    if (strcmp(v, "auto") == 0) {
        *(unsigned *)dst = 0;
        return 0;
    }
    if (config_parse_uint(v, 1, 256, &n) != 0)
        EXPECT("a whole number from 1 to 256, or auto");
    *(unsigned *)dst = n;
    return 0;
}

/* Matches v against a NULL-terminated word list; stores the index. */
static int
match_word(const char *v, const char *const *words, int *out)
{
    for (int i = 0; words[i] != NULL; i++) {
        if (strcmp(v, words[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

#define ENUM_PARSER(fn, type, expect, ...)                                     \
    static int fn(struct config_ctx *ctx, void *dst, const char *v, char *err, \
                  size_t errlen)                                               \
    {                                                                          \
        static const char *const words[] = {__VA_ARGS__, NULL};                \
        int i;                                                                 \
        if (match_word(v, words, &i) != 0)                                     \
            EXPECT("one of %s", expect);                                       \
        *(type *)dst = (type)i;                                                \
        return 0;                                                              \
    }

/* Word order follows the enums in config.h. */
ENUM_PARSER(p_log_level, enum config_log_level, "error, warn, info, debug",
            "error", "warn", "info", "debug")
ENUM_PARSER(p_mode, enum config_mode, "http, tcp", "http", "tcp")
ENUM_PARSER(p_balance, enum config_balance,
            "roundrobin, weighted, leastconn, hash", "roundrobin", "weighted",
            "leastconn", "hash")
ENUM_PARSER(p_health, enum config_health, "none, tcp, http", "none", "tcp",
            "http")
ENUM_PARSER(p_proxy_protocol, enum config_proxy_protocol, "off, v1, v2", "off",
            "v1", "v2")
ENUM_PARSER(p_family, enum config_family, "ipv4, ipv6, any", "ipv4", "ipv6",
            "any")

static int
p_string(char **dst, const char *v)
{
    char *s = strdup(v);

    if (s == NULL)
        return -1;
    free(*dst);
    *dst = s;
    return 0;
}

/* off, stderr or a file path. */
static int
p_access_log(struct config_ctx *ctx, void *dst, const char *v, char *err,
             size_t errlen)
{
    if (strcmp(v, "off") == 0) {
        free(*(char **)dst);
        *(char **)dst = NULL;
        return 0;
    }
    if (v[0] == '\0')
        EXPECT("off, stderr, or a file path");
    if (p_string(dst, v) != 0)
        EXPECT("(out of memory)");
    return 0;
}

static int
p_path_or_off(struct config_ctx *ctx, void *dst, const char *v, char *err,
              size_t errlen)
{
    if (strcmp(v, "off") == 0) {
        free(*(char **)dst);
        *(char **)dst = NULL;
        return 0;
    }
    if (v[0] == '\0')
        EXPECT("a file path or off");
    if (p_string(dst, v) != 0)
        EXPECT("(out of memory)");
    return 0;
}

static int
p_path(struct config_ctx *ctx, void *dst, const char *v, char *err,
       size_t errlen)
{
    if (v[0] == '\0')
        EXPECT("a file path");
    if (p_string(dst, v) != 0)
        EXPECT("(out of memory)");
    return 0;
}

static int
p_token(struct config_ctx *ctx, void *dst, const char *v, char *err,
        size_t errlen)
{
    if (v[0] == '\0')
        EXPECT("a non-empty token without spaces");
    for (const char *p = v; *p; p++)
        if (!isgraph((unsigned char)*p))
            EXPECT("a non-empty token without spaces");
    if (p_string(dst, v) != 0)
        EXPECT("(out of memory)");
    return 0;
}

static int
p_stats_listen(struct config_ctx *ctx, void *dst, const char *v, char *err,
               size_t errlen)
{
    struct config *cfg = ctx->cfg;

    if (strcmp(v, "off") == 0) {
        cfg->stats_enabled = false;
        return 0;
    }
    if (config_parse_listen_addr(v, dst) != 0)
        EXPECT("an address HOST:PORT, [IPv6]:PORT or *:PORT, or off");
    ((struct config_addr *)dst)->line = ctx->line;
    cfg->stats_enabled = true;
    return 0;
}

static int
p_listen(struct config_ctx *ctx, void *dst, const char *v, char *err,
         size_t errlen)
{
    struct config_frontend *fe = dst;
    struct config_addr a = {0}, *arr;

    if (config_parse_listen_addr(v, &a) != 0)
        EXPECT("an address IP:PORT, [IPv6]:PORT or *:PORT");
    a.line = ctx->line;
    arr = realloc(fe->listen, (fe->nlisten + 1) * sizeof(*arr));
    if (arr == NULL)
        EXPECT("(out of memory)");
    arr[fe->nlisten++] = a;
    fe->listen = arr;
    return 0;
}

static int
p_backend_ref(struct config_ctx *ctx, void *dst, const char *v, char *err,
              size_t errlen)
{
    struct config_frontend *fe = dst;

    if (!valid_name(v))
        EXPECT("a backend name (letters, digits, '_', '-', '.')");
    snprintf(fe->backend_name, sizeof(fe->backend_name), "%s", v);
    fe->backend_line = ctx->line;
    return 0;
}

static int
p_nameservers(struct config_ctx *ctx, void *dst, const char *v, char *err,
              size_t errlen)
{
    struct config *cfg = ctx->cfg;
    char *copy = strdup(v), *save = NULL, *tok;
    struct config_nameserver *arr = NULL;
    size_t n = 0;

    if (copy == NULL)
        EXPECT("(out of memory)");
    for (tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        struct config_nameserver *grown;
        while (isspace((unsigned char)*tok))
            tok++;
        for (char *e = tok + strlen(tok);
             e > tok && isspace((unsigned char)e[-1]);)
            *--e = '\0';
        grown = realloc(arr, (n + 1) * sizeof(*arr));
        if (grown == NULL)
            goto fail;
        arr = grown;
        memset(&arr[n], 0, sizeof(arr[n]));
        if (config_parse_nameserver(tok, &arr[n].addr) != 0)
            goto fail;
        arr[n++].addr.line = ctx->line;
    }
    if (n == 0)
        goto fail;
    free(copy);
    free(cfg->nameservers);
    cfg->nameservers = arr;
    cfg->nnameservers = n;
    return 0;
fail:
    free(copy);
    free(arr);
    EXPECT("comma-separated IP, IP:PORT or [IPv6]:PORT");
}

static int
p_hash_key(struct config_ctx *ctx, void *dst, const char *v, char *err,
           size_t errlen)
{
    struct config_backend *be = dst;

    if (strcmp(v, "client_ip") == 0) {
        be->hash_key = HASH_KEY_CLIENT_IP;
    } else if (strcmp(v, "uri") == 0) {
        be->hash_key = HASH_KEY_URI;
    } else if (strncmp(v, "header:", 7) == 0 && valid_name(v + 7)) {
        be->hash_key = HASH_KEY_HEADER;
        snprintf(be->hash_header, sizeof(be->hash_header), "%s", v + 7);
    } else {
        EXPECT("client_ip, uri, or header:NAME");
    }
    return 0;
}

static int
p_health_path(struct config_ctx *ctx, void *dst, const char *v, char *err,
              size_t errlen)
{
    if (v[0] != '/' || strlen(v) > CONFIG_HOST_MAX)
        EXPECT("a path starting with '/'");
    for (const char *p = v; *p; p++)
        if (!isgraph((unsigned char)*p))
            EXPECT("a path starting with '/' without spaces");
    snprintf(dst, CONFIG_HOST_MAX + 1, "%s", v);
    return 0;
}

static int
p_health_expect(struct config_ctx *ctx, void *dst, const char *v, char *err,
                size_t errlen)
{
    struct config_backend *be = dst;
    const char *dash = strchr(v, '-');
    unsigned long long lo, hi;

    if (dash == NULL) {
        if (parse_digits(v, v + strlen(v), &lo) != 0)
            goto bad;
        hi = lo;
    } else if (parse_digits(v, dash, &lo) != 0 ||
               parse_digits(dash + 1, v + strlen(v), &hi) != 0) {
        goto bad;
    }
    if (lo < 100 || hi > 599 || lo > hi)
        goto bad;
    be->health_expect_lo = (unsigned)lo;
    be->health_expect_hi = (unsigned)hi;
    return 0;
bad:
    EXPECT("a status code or range from 100 to 599 such as 200 or 200-399");
}

/* "HOST:PORT [weight=N] [backup]" */
static int
p_server(struct config_ctx *ctx, void *dst, const char *v, char *err,
         size_t errlen)
{
    struct config_backend *be = dst;
    struct config_server s, *arr;
    char *copy, *save = NULL, *tok;
    const char *portstr;
    bool bracketed;

    memset(&s, 0, sizeof(s));
    s.weight = 1;
    s.line = ctx->line;
    copy = strdup(v);
    if (copy == NULL)
        EXPECT("(out of memory)");
    tok = strtok_r(copy, " \t", &save);
    if (tok == NULL || strlen(tok) >= sizeof(s.spec) ||
        split_host_port(tok, s.host, sizeof(s.host), &portstr, &bracketed) !=
            0 ||
        portstr == NULL || parse_port(portstr, &s.port) != 0) {
        free(copy);
        EXPECT("HOST:PORT [weight=N] [backup], HOST an IP or a DNS name");
    }
    snprintf(s.spec, sizeof(s.spec), "%s", tok);
    if (make_sockaddr(s.host, s.port, &s.addr, &s.addrlen) == 0) {
        s.is_literal = true;
        if (bracketed != (s.addr.ss_family == AF_INET6)) {
            free(copy);
            EXPECT("an IPv6 address in brackets, as [::1]:8080");
        }
    } else if (bracketed || !valid_hostname(s.host)) {
        free(copy);
        EXPECT("HOST:PORT with HOST an IP address or a valid DNS name");
    }
    while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
        if (strncmp(tok, "weight=", 7) == 0) {
            if (config_parse_uint(tok + 7, 0, CONFIG_MAX_WEIGHT, &s.weight) !=
                0) {
                free(copy);
                EXPECT("weight=N with N from 0 to %u", CONFIG_MAX_WEIGHT);
            }
        } else if (strcmp(tok, "backup") == 0) {
            s.backup = true;
        } else {
            snprintf(err, errlen,
                     "HOST:PORT [weight=N] [backup] (unknown option '%s')",
                     tok);
            free(copy);
            return -1;
        }
    }
    free(copy);
    arr = realloc(be->servers, (be->nservers + 1) * sizeof(*arr));
    if (arr == NULL)
        EXPECT("(out of memory)");
    arr[be->nservers++] = s;
    be->servers = arr;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* The key table.                                                          */

#define G(field) offsetof(struct config, field)
#define F(field) offsetof(struct config_frontend, field)
#define B(field) offsetof(struct config_backend, field)
#define WHOLE 0

static const struct config_key config_keys[] = {
    {SECT_GLOBAL, "workers", p_workers, G(workers), 0},
    {SECT_GLOBAL, "max_connections", p_max_connections, G(max_connections), 0},
    {SECT_GLOBAL, "shutdown_timeout", p_duration, G(shutdown_timeout), 0},
    {SECT_GLOBAL, "log_level", p_log_level, G(log_level), 0},
    {SECT_GLOBAL, "access_log", p_access_log, G(access_log), 0},

    {SECT_STATS, "listen", p_stats_listen, G(stats_listen), 0},
    {SECT_STATS, "token", p_token, G(stats_token), 0},

    {SECT_RESOLVER, "nameservers", p_nameservers, WHOLE, 0},
    {SECT_RESOLVER, "hosts_file", p_path_or_off, G(hosts_file), 0},
    {SECT_RESOLVER, "family", p_family, G(family), 0},
    {SECT_RESOLVER, "timeout", p_duration_pos, G(resolver_timeout), 0},
    {SECT_RESOLVER, "attempts", p_attempts, G(resolver_attempts), 0},
    {SECT_RESOLVER, "min_ttl", p_duration, G(min_ttl), 0},
    {SECT_RESOLVER, "max_ttl", p_duration_pos, G(max_ttl), 0},
    {SECT_RESOLVER, "negative_ttl", p_duration_pos, G(negative_ttl), 0},
    {SECT_RESOLVER, "stale_ttl", p_duration, G(stale_ttl), 0},
    {SECT_RESOLVER, "jitter", p_percentage_below_one, G(jitter), 0},
    {SECT_RESOLVER, "prefetch", p_percentage_below_one, G(prefetch), 0},
    {SECT_RESOLVER, "startup_timeout", p_duration_pos, G(startup_timeout), 0},

    {SECT_FRONTEND, "listen", p_listen, WHOLE, KEY_REPEAT | KEY_REQUIRED},
    {SECT_FRONTEND, "mode", p_mode, F(mode), 0},
    {SECT_FRONTEND, "backend", p_backend_ref, WHOLE, KEY_REQUIRED},
    {SECT_FRONTEND, "tls_cert", p_path, F(tls_cert), 0},
    {SECT_FRONTEND, "tls_key", p_path, F(tls_key), 0},
    {SECT_FRONTEND, "timeout_client", p_duration_pos, F(timeout_client), 0},
    {SECT_FRONTEND, "timeout_request", p_duration_pos, F(timeout_request), 0},
    {SECT_FRONTEND, "max_header_size", p_size, F(max_header_size), 0},
    {SECT_FRONTEND, "proxy_protocol", p_proxy_protocol, F(proxy_protocol), 0},

    {SECT_BACKEND, "server", p_server, WHOLE, KEY_REPEAT | KEY_REQUIRED},
    {SECT_BACKEND, "balance", p_balance, B(balance), 0},
    {SECT_BACKEND, "hash_key", p_hash_key, WHOLE, 0},
    {SECT_BACKEND, "timeout_connect", p_duration_pos, B(timeout_connect), 0},
    {SECT_BACKEND, "timeout_server", p_duration_pos, B(timeout_server), 0},
    {SECT_BACKEND, "retries", p_retries, B(retries), 0},
    {SECT_BACKEND, "health_check", p_health, B(health_check), 0},
    {SECT_BACKEND, "health_path", p_health_path, B(health_path), 0},
    {SECT_BACKEND, "health_expect", p_health_expect, WHOLE, 0},
    {SECT_BACKEND, "health_interval", p_duration_pos, B(health_interval), 0},
    {SECT_BACKEND, "health_timeout", p_duration_pos, B(health_timeout), 0},
    {SECT_BACKEND, "rise", p_rise_fall, B(rise), 0},
    {SECT_BACKEND, "fall", p_rise_fall, B(fall), 0},
    {SECT_BACKEND, "passive_window", p_passive_window, B(passive_window), 0},
    {SECT_BACKEND, "passive_error_rate", p_percentage, B(passive_error_rate),
     0},
    {SECT_BACKEND, "slow_start", p_duration, B(slow_start), 0},
};

#define CONFIG_NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

/* ---------------------------------------------------------------------- */
/* Defaults (docs/configuration.md).                                       */

static void
config_defaults(struct config *cfg)
{
    cfg->workers = 1;
    cfg->max_connections = 10000;
    cfg->shutdown_timeout = 10;
    cfg->log_level = LOG_LEVEL_INFO;
    cfg->access_log = NULL;

    cfg->stats_enabled = true;
    config_parse_listen_addr("127.0.0.1:8404", &cfg->stats_listen);

    cfg->hosts_file = strdup("/etc/hosts");
    cfg->family = FAMILY_IPV4;
    cfg->resolver_timeout = 1;
    cfg->resolver_attempts = 3;
    cfg->min_ttl = CONFIG_DEFAULT_MIN_TTL;
    cfg->max_ttl = CONFIG_DEFAULT_MAX_TTL;
    cfg->negative_ttl = CONFIG_DEFAULT_NEGATIVE_TTL;
    cfg->stale_ttl = CONFIG_DEFAULT_STALE_TTL;
    cfg->jitter = CONFIG_DEFAULT_JITTER;
    cfg->prefetch = CONFIG_DEFAULT_PREFETCH;
    cfg->startup_timeout = 5;
}

static void
frontend_defaults(struct config_frontend *fe)
{
    fe->mode = MODE_HTTP;
    fe->timeout_client = 30;
    fe->timeout_request = 10;
    fe->max_header_size = 16 * 1024;
    fe->proxy_protocol = PROXY_PROTOCOL_OFF;
}

static void
backend_defaults(struct config_backend *be)
{
    be->balance = BALANCE_ROUNDROBIN;
    be->hash_key = HASH_KEY_CLIENT_IP;
    be->timeout_connect = 2;
    be->timeout_server = 30;
    be->retries = 2;
    be->health_check = HEALTH_TCP;
    snprintf(be->health_path, sizeof(be->health_path), "/health/ready");
    be->health_expect_lo = 200;
    be->health_expect_hi = 399;
    be->health_interval = 5;
    be->health_timeout = 2;
    be->rise = 3;
    be->fall = 3;
    be->passive_window = 10;
    be->passive_error_rate = 0.5;
    be->slow_start = 0;
}

/* ---------------------------------------------------------------------- */
/* Sections.                                                               */

static struct config_sect *
config_find_sect(struct config_ctx *ctx, enum config_section_kind kind,
                 const char *name)
{
    for (size_t i = 0; i < ctx->nsects; i++) {
        struct config_sect *s = &ctx->sects[i];
        if (s->kind != kind)
            continue;
        if (kind == SECT_FRONTEND &&
            strcmp(ctx->cfg->frontends[s->index].name, name) != 0)
            continue;
        if (kind == SECT_BACKEND &&
            strcmp(ctx->cfg->backends[s->index].name, name) != 0)
            continue;
        return s;
    }
    return NULL;
}

/* Handles a "[...]" line: content is what is between the brackets. */
static void
config_open_section(struct config_ctx *ctx, const char *content)
{
    char kindword[16], name[CONFIG_NAME_MAX + 2], extra[2];
    enum config_section_kind kind = SECT_NONE;
    struct config_sect *s, *prev;
    struct config *cfg = ctx->cfg;
    int n;

    ctx->cur = NULL;
    ctx->cur_invalid = true;
    name[0] = '\0';
    n = sscanf(content, "%15s %65s %1s", kindword, name, extra);
    if (n < 1) {
        config_error_at(ctx, ctx->line, "empty section name");
        return;
    }
    for (int k = SECT_GLOBAL; k <= SECT_BACKEND; k++)
        if (strcmp(kindword, config_section_names[k]) == 0)
            kind = (enum config_section_kind)k;
    if (kind == SECT_NONE) {
        config_error_at(ctx, ctx->line,
                        "unknown section [%s] (expected [global], [stats], "
                        "[resolver], [frontend NAME] or [backend NAME])",
                        content);
        return;
    }
    if (kind == SECT_FRONTEND || kind == SECT_BACKEND) {
        if (n != 2 || !valid_name(name)) {
            config_error_at(ctx, ctx->line,
                            "[%s] needs one NAME of letters, digits, '_', "
                            "'-' or '.' (at most %d characters)",
                            kindword, CONFIG_NAME_MAX);
            return;
        }
    } else if (n != 1) {
        config_error_at(ctx, ctx->line, "[%s] takes no name", kindword);
        return;
    }
    prev = config_find_sect(ctx, kind, name);
    if (prev != NULL) {
        config_error_at(ctx, ctx->line,
                        "duplicate section [%s] (first defined on line %d)",
                        content, prev->line);
        return;
    }

    s = realloc(ctx->sects, (ctx->nsects + 1) * sizeof(*s));
    if (s == NULL) {
        ctx->oom = true;
        return;
    }
    ctx->sects = s;
    s = &ctx->sects[ctx->nsects];
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->line = ctx->line;
    s->seen = calloc(CONFIG_NKEYS, sizeof(int));
    if (s->seen == NULL) {
        ctx->oom = true;
        return;
    }
    if (kind == SECT_FRONTEND) {
        struct config_frontend *fe =
            realloc(cfg->frontends, (cfg->nfrontends + 1) * sizeof(*fe));
        if (fe == NULL) {
            free(s->seen);
            ctx->oom = true;
            return;
        }
        cfg->frontends = fe;
        fe = &cfg->frontends[cfg->nfrontends];
        memset(fe, 0, sizeof(*fe));
        frontend_defaults(fe);
        snprintf(fe->name, sizeof(fe->name), "%s", name);
        fe->line = ctx->line;
        s->index = cfg->nfrontends++;
    } else if (kind == SECT_BACKEND) {
        struct config_backend *be = realloc(cfg->backends,
                                            (cfg->nbackends + 1) * sizeof(*be));
        if (be == NULL) {
            free(s->seen);
            ctx->oom = true;
            return;
        }
        cfg->backends = be;
        be = &cfg->backends[cfg->nbackends];
        memset(be, 0, sizeof(*be));
        backend_defaults(be);
        snprintf(be->name, sizeof(be->name), "%s", name);
        be->line = ctx->line;
        s->index = cfg->nbackends++;
    }
    ctx->nsects++;
    ctx->cur = s;
    ctx->cur_invalid = false;
}

static void *
config_sect_base(struct config_ctx *ctx, struct config_sect *s)
{
    switch (s->kind) {
    case SECT_FRONTEND:
        return &ctx->cfg->frontends[s->index];
    case SECT_BACKEND:
        return &ctx->cfg->backends[s->index];
    default:
        return ctx->cfg;
    }
}

static const char *
config_sect_label(struct config_ctx *ctx, struct config_sect *s, char *buf,
                  size_t len)
{
    if (s->kind == SECT_FRONTEND)
        snprintf(buf, len, "[frontend %s]", ctx->cfg->frontends[s->index].name);
    else if (s->kind == SECT_BACKEND)
        snprintf(buf, len, "[backend %s]", ctx->cfg->backends[s->index].name);
    else
        snprintf(buf, len, "[%s]", config_section_names[s->kind]);
    return buf;
}

/* ---------------------------------------------------------------------- */
/* inih glue.                                                              */

static int
config_handler(void *user, const char *section, const char *name,
               const char *value)
{
    struct config_ctx *ctx = user;
    struct config_sect *s = ctx->cur;
    char label[CONFIG_NAME_MAX + 16], err[160];
    const struct config_key *key = NULL;
    size_t ki;

    (void)section;
    if (ctx->cur_invalid)
        return 1; /* the header error was reported already */
    if (s == NULL) {
        config_error_at(ctx, ctx->line,
                        "'%s' is outside of any section (start with a "
                        "[section] line)",
                        name);
        return 1;
    }
    for (ki = 0; ki < CONFIG_NKEYS; ki++) {
        if (config_keys[ki].section == s->kind &&
            strcmp(config_keys[ki].name, name) == 0) {
            key = &config_keys[ki];
            break;
        }
    }
    config_sect_label(ctx, s, label, sizeof(label));
    if (key == NULL) {
        config_error_at(ctx, ctx->line, "unknown key '%s' in %s", name, label);
        return 1;
    }
    if (s->seen[ki] != 0 && !(key->flags & KEY_REPEAT)) {
        config_error_at(ctx, ctx->line,
                        "'%s' is set twice in %s (first on line %d)", name,
                        label, s->seen[ki]);
        return 1;
    }
    s->seen[ki] = ctx->line;
    if (key->parse(ctx, (char *)config_sect_base(ctx, s) + key->offset, value,
                   err, sizeof(err)) != 0)
        config_error_at(ctx, ctx->line, "bad value '%s' for %s: expected %s",
                        value, name, err);
    return 1;
}

static bool
blank_or_comment(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return *p == '\0' || *p == ';' || *p == '#';
}

/*
 * fgets-style reader for ini_parse_stream: hands inih one line at a time,
 * after checking it ourselves (see the top of the file).
 */
static char *
config_reader(char *str, int num, void *stream)
{
    struct config_ctx *ctx = stream;
    ssize_t n;
    char *p;

    n = getline(&ctx->linebuf, &ctx->linecap, ctx->fp);
    if (n < 0)
        return NULL;
    ctx->line++;
    p = ctx->linebuf;
    if (ctx->line == 1 && n >= 3 && (unsigned char)p[0] == 0xef &&
        (unsigned char)p[1] == 0xbb && (unsigned char)p[2] == 0xbf) {
        p += 3;
        n -= 3;
    }
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
        p[--n] = '\0';
    if (n > 0 && strlen(p) != (size_t)n) {
        config_error_at(ctx, ctx->line, "line contains a NUL byte");
        goto skip;
    }
    if (n > CONFIG_MAX_LINE || n + 3 > num) {
        config_error_at(ctx, ctx->line,
                        "line is %zd characters long; the limit is %d "
                        "(split long values over repeated keys)",
                        n, CONFIG_MAX_LINE);
        goto skip;
    }
    if (blank_or_comment(p))
        goto skip;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '[') {
        char *close = strchr(p, ']');
        char content[CONFIG_MAX_LINE + 1];
        if (close == NULL || !blank_or_comment(close + 1)) {
            config_error_at(ctx, ctx->line,
                            "malformed section header (expected [NAME])");
            ctx->cur = NULL;
            ctx->cur_invalid = true;
            goto skip;
        }
        snprintf(content, sizeof(content), "%.*s", (int)(close - p - 1), p + 1);
        config_open_section(ctx, content);
        /* inih still sees the header, so its section argument is right. */
        snprintf(str, (size_t)num, "[%s]\n", content);
        return str;
    }
    if (strchr(p, '=') == NULL && strchr(p, ':') == NULL) {
        config_error_at(ctx, ctx->line,
                        "expected 'key = value' or a [section] line");
        goto skip;
    }
    if (p[0] == '=' || p[0] == ':') {
        config_error_at(ctx, ctx->line, "missing key name before '%c'", p[0]);
        goto skip;
    }
    snprintf(str, (size_t)num, "%s\n", p);
    return str;
skip:
    snprintf(str, (size_t)num, "\n");
    return str;
}

/* ---------------------------------------------------------------------- */
/* Validation across keys.                                                 */

static void
config_check_required(struct config_ctx *ctx)
{
    char label[CONFIG_NAME_MAX + 16];

    for (size_t i = 0; i < ctx->nsects; i++) {
        struct config_sect *s = &ctx->sects[i];
        for (size_t k = 0; k < CONFIG_NKEYS; k++) {
            if (config_keys[k].section != s->kind ||
                !(config_keys[k].flags & KEY_REQUIRED) || s->seen[k] != 0)
                continue;
            config_error_at(ctx, s->line, "%s is missing required key '%s'",
                            config_sect_label(ctx, s, label, sizeof(label)),
                            config_keys[k].name);
        }
    }
}

static int
config_key_line(struct config_ctx *ctx, enum config_section_kind kind,
                size_t index, const char *name)
{
    for (size_t i = 0; i < ctx->nsects; i++) {
        struct config_sect *s = &ctx->sects[i];
        if (s->kind != kind || s->index != index)
            continue;
        for (size_t k = 0; k < CONFIG_NKEYS; k++)
            if (config_keys[k].section == kind &&
                strcmp(config_keys[k].name, name) == 0)
                return s->seen[k] ? s->seen[k] : s->line;
    }
    return 0;
}

/* Whether binding both would clash: same port, and same or wildcard IP. */
static bool
addr_overlaps(const struct sockaddr_storage *a,
              const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port &&
               (x->sin_addr.s_addr == y->sin_addr.s_addr ||
                x->sin_addr.s_addr == htonl(INADDR_ANY) ||
                y->sin_addr.s_addr == htonl(INADDR_ANY));
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               (IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr) ||
                IN6_IS_ADDR_UNSPECIFIED(&x->sin6_addr) ||
                IN6_IS_ADDR_UNSPECIFIED(&y->sin6_addr));
    }
    return false;
}

/* http and TLS keys of one frontend (the pair must load and match, which
 * ctx->tls_check tells). */
static void
config_validate_http(struct config_ctx *ctx, struct config_frontend *fe,
                     size_t i)
{
    int cl = config_key_line(ctx, SECT_FRONTEND, i, "tls_cert");
    int kl = config_key_line(ctx, SECT_FRONTEND, i, "tls_key");
    char err[512];

    if ((fe->tls_cert == NULL) != (fe->tls_key == NULL)) {
        config_error_at(ctx, fe->tls_cert != NULL ? cl : kl,
                        "[frontend %s]: tls_cert and tls_key go together",
                        fe->name);
        return;
    }
    if (fe->tls_cert == NULL)
        return;
    if (fe->mode != MODE_HTTP) {
        config_error_at(ctx, cl,
                        "[frontend %s]: TLS termination needs "
                        "mode = http",
                        fe->name);
        return;
    }
    if (ctx->tls_check != NULL &&
        ctx->tls_check(fe->tls_cert, fe->tls_key, err, sizeof(err)) != 0)
        config_error_at(ctx, cl, "[frontend %s]: %s", fe->name, err);
}

static void
config_validate(struct config_ctx *ctx)
{
    struct config *cfg = ctx->cfg;

    if (cfg->nfrontends == 0)
        config_error_at(ctx, 0,
                        "no [frontend NAME] section: nothing would accept "
                        "connections");
    if (cfg->min_ttl > cfg->max_ttl)
        config_error_at(ctx, config_key_line(ctx, SECT_RESOLVER, 0, "min_ttl"),
                        "min_ttl is above max_ttl");

    for (size_t i = 0; i < cfg->nfrontends; i++) {
        struct config_frontend *fe = &cfg->frontends[i];
        bool found = false;

        config_validate_http(ctx, fe, i);
        if (fe->backend_name[0] != '\0') {
            for (size_t b = 0; b < cfg->nbackends; b++) {
                if (strcmp(cfg->backends[b].name, fe->backend_name) == 0) {
                    fe->backend = b;
                    found = true;
                }
            }
            if (!found)
                config_error_at(ctx, fe->backend_line,
                                "[frontend %s] uses backend '%s', which is "
                                "not defined",
                                fe->name, fe->backend_name);
        }
        if (fe->proxy_protocol != PROXY_PROTOCOL_OFF && fe->mode != MODE_TCP)
            config_error_at(
                ctx, config_key_line(ctx, SECT_FRONTEND, i, "proxy_protocol"),
                "proxy_protocol needs mode = tcp");
        if (found && fe->mode == MODE_TCP &&
            cfg->backends[fe->backend].balance == BALANCE_HASH &&
            cfg->backends[fe->backend].hash_key != HASH_KEY_CLIENT_IP)
            config_error_at(ctx, fe->backend_line,
                            "[frontend %s] is mode tcp but backend '%s' "
                            "hashes on an HTTP field; use hash_key = "
                            "client_ip",
                            fe->name, fe->backend_name);
        /* The same address twice would fail at bind time: say it now. */
        for (size_t l = 0; l < fe->nlisten; l++) {
            struct config_addr *a = &fe->listen[l];
            if (cfg->stats_enabled &&
                addr_overlaps(&a->ss, &cfg->stats_listen.ss))
                config_error_at(ctx, a->line,
                                "listen %s is also the stats address", a->text);
            for (size_t j = 0; j <= i; j++) {
                struct config_frontend *o = &cfg->frontends[j];
                for (size_t m = 0; m < (j == i ? l : o->nlisten); m++) {
                    if (addr_overlaps(&o->listen[m].ss, &a->ss))
                        config_error_at(ctx, a->line,
                                        "listen %s is already used on line "
                                        "%d",
                                        a->text, o->listen[m].line);
                }
            }
        }
    }

    for (size_t i = 0; i < cfg->nbackends; i++) {
        struct config_backend *be = &cfg->backends[i];
        for (size_t s = 0; s < be->nservers; s++) {
            struct config_server *sv = &be->servers[s];
            for (size_t o = 0; o < s; o++)
                if (strcmp(be->servers[o].spec, sv->spec) == 0 ||
                    (sv->is_literal && be->servers[o].is_literal &&
                     sv->addrlen == be->servers[o].addrlen &&
                     memcmp(&sv->addr, &be->servers[o].addr, sv->addrlen) == 0))
                    config_error_at(ctx, sv->line,
                                    "server %s is listed twice (first on "
                                    "line %d)",
                                    sv->spec, be->servers[o].line);
        }
    }
}

/* ---------------------------------------------------------------------- */

struct config *
config_load_checked(const char *path, config_tls_check tls_check,
                    struct config_errors *errs)
{
    struct config_ctx ctx;
    struct config *cfg;

    errs->msgs = NULL;
    errs->n = 0;
    memset(&ctx, 0, sizeof(ctx));
    ctx.errs = errs;
    ctx.path = path;
    ctx.tls_check = tls_check;

    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        goto oom;
    ctx.cfg = cfg;
    config_defaults(cfg);
    cfg->path = strdup(path);
    if (cfg->path == NULL || cfg->hosts_file == NULL)
        goto oom;

    ctx.fp = fopen(path, "r");
    if (ctx.fp == NULL) {
        config_error_at(&ctx, 0, "cannot read the file: %s", strerror(errno));
        goto fail;
    }
    /* Continuation lines would silently join a key to the one above. */
    ini_allow_multiline = false;
    ini_stop_on_first_error = false;
    ini_parse_stream(config_reader, &ctx, config_handler, &ctx);
    if (ferror(ctx.fp))
        config_error_at(&ctx, ctx.line, "read error: %s", strerror(errno));
    fclose(ctx.fp);
    ctx.fp = NULL;
    if (ctx.oom)
        goto oom;

    config_check_required(&ctx);
    config_validate(&ctx);
    if (ctx.oom)
        goto oom;
    if (errs->n > 0)
        goto fail;

    free(ctx.linebuf);
    for (size_t i = 0; i < ctx.nsects; i++)
        free(ctx.sects[i].seen);
    free(ctx.sects);
    return cfg;

oom:
    config_error_at(&ctx, ctx.line, "out of memory");
fail:
    free(ctx.linebuf);
    for (size_t i = 0; i < ctx.nsects; i++)
        free(ctx.sects[i].seen);
    free(ctx.sects);
    config_free(cfg);
    return NULL;
}

struct config *
config_load(const char *path, struct config_errors *errs)
{
    return config_load_checked(path, NULL, errs);
}

void
config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        free(cfg->frontends[i].listen);
        free(cfg->frontends[i].tls_cert);
        free(cfg->frontends[i].tls_key);
    }
    free(cfg->frontends);
    for (size_t i = 0; i < cfg->nbackends; i++)
        free(cfg->backends[i].servers);
    free(cfg->backends);
    free(cfg->nameservers);
    free(cfg->hosts_file);
    free(cfg->access_log);
    free(cfg->stats_token);
    free(cfg->path);
    free(cfg);
}

void
config_errors_free(struct config_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    errs->msgs = NULL;
    errs->n = 0;
}

const char *
config_mode_name(enum config_mode m)
{
    return m == MODE_TCP ? "tcp" : "http";
}

const char *
config_balance_name(enum config_balance b)
{
    static const char *const names[] = {"roundrobin", "weighted", "leastconn",
                                        "hash"};
    return names[b];
}
