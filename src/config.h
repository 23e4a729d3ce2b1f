/*
 * config: the typed, validated, immutable configuration.
 *
 * config_load() parses an INI file through one table of
 * {section, key, parser, destination} entries and returns a struct config
 * or a list of "FILE:LINE: message" errors (all it can find, not just the
 * first). Nothing here touches sockets or the event loop, so the whole
 * module is unit tested without I/O.
 */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONFIG_DEFAULT_PATH "/etc/ferry/lb.conf"
#define CONFIG_NAME_MAX 64      /* section names (frontend, backend) */
#define CONFIG_HOST_MAX 254     /* a DNS name, without trailing dot */
#define CONFIG_ADDR_TEXT_MAX 64 /* "[v6]:port" as text */

/*
 * Documented defaults (docs/configuration.md) of the [resolver] keys that
 * tune the DNS cache. They are here, not in config.c, because
 * dns_cache_config_default() gives the same ones to callers without a
 * config (dns_cache may include config.h; config may not include
 * dns_cache.h).
 */
#define CONFIG_DEFAULT_MIN_TTL 1.0      /* seconds */
#define CONFIG_DEFAULT_MAX_TTL 3600.0   /* seconds */
#define CONFIG_DEFAULT_NEGATIVE_TTL 5.0 /* seconds */
#define CONFIG_DEFAULT_STALE_TTL 3600.0 /* seconds */
#define CONFIG_DEFAULT_JITTER 0.2       /* fraction */
#define CONFIG_DEFAULT_PREFETCH 0.1     /* fraction of the TTL */

enum config_log_level {
    LOG_LEVEL_ERROR,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
};

enum config_mode {
    MODE_HTTP,
    MODE_TCP,
};

enum config_balance {
    BALANCE_ROUNDROBIN,
    BALANCE_WEIGHTED,
    BALANCE_LEASTCONN,
    BALANCE_HASH,
};

enum config_hash_key {
    HASH_KEY_CLIENT_IP,
    HASH_KEY_URI,
    HASH_KEY_HEADER,
};

enum config_health {
    HEALTH_NONE,
    HEALTH_TCP,
    HEALTH_HTTP,
};

enum config_proxy_protocol {
    PROXY_PROTOCOL_OFF,
    PROXY_PROTOCOL_V1,
    PROXY_PROTOCOL_V2,
};

enum config_family {
    FAMILY_IPV4,
    FAMILY_IPV6,
    FAMILY_ANY,
};

/* A socket address to listen on or to reach a nameserver at. */
struct config_addr {
    struct sockaddr_storage ss;      /* resolved literal address */
    socklen_t len;                   /* length of ss in use */
    char text[CONFIG_ADDR_TEXT_MAX]; /* as written, for logs and labels */
    int line;                        /* line it was read from */
};

/* One `server =` line of a backend. */
struct config_server {
    char spec[CONFIG_HOST_MAX + 8]; /* "HOST:PORT" as written: metric label */
    char host[CONFIG_HOST_MAX + 1]; /* IP literal or DNS name */
    uint16_t port;                  /* port from the line */
    bool is_literal;                /* host is an IP literal */
    struct sockaddr_storage addr;   /* the literal, when is_literal */
    socklen_t addrlen;              /* length of addr in use */
    unsigned weight;                /* weight=N, 0 means drain; default 1 */
    bool backup;                    /* only used when no normal member up */
    int line;                       /* line it was read from */
};

struct config_backend {
    char name[CONFIG_NAME_MAX + 1];        /* section name */
    int line;                              /* line of the section header */
    struct config_server *servers;         /* server lines, in file order */
    size_t nservers;                       /* number of server lines */
    enum config_balance balance;           /* balancing algorithm */
    enum config_hash_key hash_key;         /* what `hash` hashes */
    char hash_header[CONFIG_NAME_MAX + 1]; /* header name for header:NAME */
    double timeout_connect;                /* seconds */
    double timeout_server;                 /* seconds, idle on member side */
    unsigned retries;                /* other members tried on connect fail */
    enum config_health health_check; /* active check kind */
    char health_path[CONFIG_HOST_MAX + 1]; /* http check path */
    unsigned health_expect_lo;             /* lowest passing status */
    unsigned health_expect_hi;             /* highest passing status */
    double health_interval;                /* seconds between checks */
    double health_timeout;                 /* seconds per check */
    unsigned rise;                         /* passes to come back up */
    unsigned fall;                         /* failures to go down */
    unsigned passive_window;               /* outcomes remembered per member */
    double passive_error_rate;             /* fraction 0..1 */
    double slow_start;                     /* seconds of weight ramp, 0 = off */
};

struct config_frontend {
    char name[CONFIG_NAME_MAX + 1];         /* section name */
    int line;                               /* line of the section header */
    struct config_addr *listen;             /* listen lines */
    size_t nlisten;                         /* number of listen lines */
    enum config_mode mode;                  /* http or tcp */
    char backend_name[CONFIG_NAME_MAX + 1]; /* as written */
    int backend_line;                       /* line of the backend key */
    size_t backend;                         /* index into config.backends */
    char *tls_cert;                         /* PEM path or NULL */
    char *tls_key;                          /* PEM path or NULL */
    double timeout_client;                  /* seconds, idle on client side */
    double timeout_request; /* seconds to receive a request head */
    size_t max_header_size; /* bytes */
    enum config_proxy_protocol proxy_protocol; /* tcp: header to members */
};

struct config_nameserver {
    struct config_addr addr; /* IP and port (53 by default) */
};

struct config {
    char *path; /* file it was read from */

    /* [global] */
    unsigned workers;                /* event-loop threads; 0 = auto */
    unsigned max_connections;        /* client connections at once */
    double shutdown_timeout;         /* seconds a graceful stop waits */
    enum config_log_level log_level; /* least severe level logged */
    char *access_log;                /* NULL = off, "stderr", or a path */

    /* [stats] */
    bool stats_enabled;              /* listen != off */
    struct config_addr stats_listen; /* where the endpoint listens */
    char *stats_token;               /* bearer token or NULL */

    /* [resolver] */
    struct config_nameserver *nameservers; /* empty = from resolv.conf */
    size_t nnameservers;                   /* number of nameservers */
    char *hosts_file;                      /* NULL = off */
    enum config_family family;             /* which record types to ask */
    double resolver_timeout;               /* seconds per attempt */
    unsigned resolver_attempts;            /* attempts per resolution */
    double min_ttl;                        /* seconds */
    double max_ttl;                        /* seconds */
    double negative_ttl;                   /* seconds */
    double stale_ttl;                      /* seconds, 0 = never serve stale */
    double jitter;                         /* fraction 0..1 */
    double prefetch;                       /* fraction 0..1, 0 = off */
    double startup_timeout;                /* seconds */

    struct config_frontend *frontends; /* in file order */
    size_t nfrontends;                 /* number of frontends */
    struct config_backend *backends;   /* in file order */
    size_t nbackends;                  /* number of backends */
};

/* Errors collected while loading: each one "FILE:LINE: message". */
struct config_errors {
    char **msgs; /* formatted messages */
    size_t n;    /* number of messages */
};

/*
 * Checks that a frontend's tls_cert and tls_key load and match: 0 if so,
 * else -1 with a one-line reason in err. Opening them needs OpenSSL, a
 * layer above config, so the caller hands the check in (ferry passes
 * tls_check_pair) and config only says where and when it failed.
 */
typedef int (*config_tls_check)(const char *cert, const char *key, char *err,
                                size_t errlen);

/*
 * Load and validate path. On success returns a config and leaves errs empty;
 * on failure returns NULL and fills errs (the caller frees them with
 * config_errors_free). NULL with no error stored means out of memory.
 * tls_check runs for each frontend with a tls_cert/tls_key pair, among the
 * other checks across keys, and its errors join theirs in errs.
 */
struct config *config_load_checked(const char *path, config_tls_check tls_check,
                                   struct config_errors *errs);
/* Same without opening the TLS files (tests and tools that do not serve). */
struct config *config_load(const char *path, struct config_errors *errs);
void config_free(struct config *cfg);
void config_errors_free(struct config_errors *errs);

/* Value parsers, exposed for unit tests and for other modules' options. */
int config_parse_duration(const char *s, double *out);
int config_parse_size(const char *s, size_t *out);
int config_parse_percentage(const char *s, double *out);
int config_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);
/* Listen form: HOST:PORT with HOST an IP literal, [IPv6]:PORT or *:PORT. */
int config_parse_listen_addr(const char *s, struct config_addr *out);
/* Nameserver form: IP, IP:PORT or [IPv6]:PORT (port 53 by default). */
int config_parse_nameserver(const char *s, struct config_addr *out);

const char *config_mode_name(enum config_mode m);
const char *config_balance_name(enum config_balance b);

#endif
