/*
 * libFuzzer driver for config_load(): the input is the text of a
 * configuration file. config_load() takes a path, so the input is written
 * to one temporary file per process (made once, rewritten per input) and
 * loaded from there. Beyond "no crash, no leak", the outcome is checked:
 * a loaded config satisfies what the data plane relies on, and a refused
 * one comes with "PATH:LINE: message" errors on lines that exist.
 *
 * TLS paths: the input is loaded as ferry loads it, with a TLS check that
 * loads tls_cert and tls_key, and OpenSSL opens them with a blocking
 * fopen() and reads to the end. A FIFO or /dev/stdin as a path blocks for
 * ever, a character device or a big file stalls the fuzzer. So the check
 * handed to config_load_checked() is the guard below, which only passes
 * small regular files to the real tls_check_pair() and refuses anything
 * else as tls.c itself should. It also remembers the real answers: the
 * files do not change during a run, and a real check (an OpenSSL context,
 * a key) takes milliseconds where a parse takes a fraction of one. The
 * guard's names come from the link with -Wl,--wrap=tls_check_pair (see
 * run.sh), which calls the real function __real_tls_check_pair here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define CHECK(x)                                                             \
    do {                                                                     \
        if (!(x))                                                            \
            abort();                                                         \
    } while (0)

/* Certificates and keys are a few KiB; anything above this is not one. */
#define FUZZ_TLS_MAX_FILE (64 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int __real_tls_check_pair(const char *cert, const char *key, char *err,
                          size_t errlen);
int __wrap_tls_check_pair(const char *cert, const char *key, char *err,
                          size_t errlen);

/* One answer of the real tls_check_pair(). */
struct fuzz_tls_memo {
    char *cert;                         /* path as given */
    char *key;                          /* path as given */
    int rc;                             /* what it returned */
    char err[512];                      /* the reason it wrote */
};

static struct fuzz_tls_memo fuzz_memo[16]; /* distinct pairs seen */
static size_t fuzz_nmemo;               /* entries of fuzz_memo in use */
static int fuzz_fd = -1;                /* the temporary file */
static char fuzz_path[4200];            /* path config_load() reads */
static char fuzz_unlink[4200];          /* name to remove at exit, or "" */

/* Whether path names a regular file small enough to be a PEM file. */
static int
fuzz_tls_file_ok(const char *path, const char *what, char *err,
                 size_t errlen)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "cannot load %s %s: %s", what, path,
                 strerror(errno));
        return 0;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size > FUZZ_TLS_MAX_FILE) {
        snprintf(err, errlen, "cannot load %s %s: not a small regular file",
                 what, path);
        return 0;
    }
    return 1;
}

int
__wrap_tls_check_pair(const char *cert, const char *key, char *err,
                      size_t errlen)
{
    if (!fuzz_tls_file_ok(cert, "certificate", err, errlen) ||
        !fuzz_tls_file_ok(key, "key", err, errlen))
        return -1;
    for (size_t i = 0; i < fuzz_nmemo; i++) {
        struct fuzz_tls_memo *m = &fuzz_memo[i];
        if (strcmp(m->cert, cert) == 0 && strcmp(m->key, key) == 0) {
            snprintf(err, errlen, "%s", m->err);
            return m->rc;
        }
    }
    int rc = __real_tls_check_pair(cert, key, err, errlen);
    if (fuzz_nmemo < sizeof(fuzz_memo) / sizeof(fuzz_memo[0])) {
        struct fuzz_tls_memo *m = &fuzz_memo[fuzz_nmemo];
        m->cert = strdup(cert);
        m->key = strdup(key);
        CHECK(m->cert != NULL && m->key != NULL);
        m->rc = rc;
        snprintf(m->err, sizeof(m->err), "%s", rc != 0 ? err : "");
        fuzz_nmemo++;
    }
    return rc;
}

static void
fuzz_cleanup(void)
{
    if (fuzz_unlink[0] != '\0')
        unlink(fuzz_unlink);
    if (fuzz_fd >= 0)
        close(fuzz_fd);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("TMPDIR");
    char name[4096];

    (void)argc;
    (void)argv;
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    CHECK(snprintf(name, sizeof(name), "%s/ferry-fuzz-config.XXXXXX", dir) <
          (int)sizeof(name));
    fuzz_fd = mkstemp(name);
    if (fuzz_fd < 0) {
        fprintf(stderr, "fuzz_config: mkstemp %s: %s\n", name,
                strerror(errno));
        exit(1);
    }
    /*
     * Linux: load through /proc/self/fd/N and remove the name at once, so
     * not even a crash or a kill leaves a file behind. Elsewhere keep the
     * name and remove it at exit.
     */
    snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_fd);
    if (access(fuzz_path, R_OK) == 0) {
        unlink(name);
    } else {
        snprintf(fuzz_path, sizeof(fuzz_path), "%s", name);
        snprintf(fuzz_unlink, sizeof(fuzz_unlink), "%s", name);
    }
    atexit(fuzz_cleanup);
    return 0;
}

/*
 * Overwrites, then cuts to the new size. Not ftruncate(0) first: on ext4
 * a file cut to zero is flushed to disk when a descriptor of it closes
 * (auto_da_alloc), and config_load() closes its own one every run, which
 * made each run wait for the disk (900 runs/s instead of thousands).
 */
static void
fuzz_write_input(const uint8_t *data, size_t size)
{
    size_t off = 0;

    while (off < size) {
        ssize_t n = pwrite(fuzz_fd, data + off, size - off, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n > 0);
        off += (size_t)n;
    }
    CHECK(ftruncate(fuzz_fd, (off_t)size) == 0);
}

/* Lines as getline() sees them: each '\n' ends one, plus a last partial. */
static int
fuzz_count_lines(const uint8_t *data, size_t size)
{
    int n = 0;

    for (size_t i = 0; i < size; i++)
        n += data[i] == '\n';
    return n + (size > 0 && data[size - 1] != '\n');
}

static void
check_line(int line, int nlines)
{
    CHECK(line >= 1 && line <= nlines);
}

static uint16_t
sockaddr_port(const struct sockaddr_storage *ss, socklen_t len)
{
    if (ss->ss_family == AF_INET) {
        CHECK(len == sizeof(struct sockaddr_in));
        return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
    }
    CHECK(ss->ss_family == AF_INET6);
    CHECK(len == sizeof(struct sockaddr_in6));
    return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
}

static void
check_name(const char *name, size_t cap)
{
    size_t n = strnlen(name, cap);

    CHECK(n > 0 && n < cap);
}

static void
check_backend(const struct config_backend *be, int nlines)
{
    check_name(be->name, sizeof(be->name));
    check_line(be->line, nlines);
    CHECK(be->nservers >= 1 && be->servers != NULL);
    for (size_t s = 0; s < be->nservers; s++) {
        const struct config_server *sv = &be->servers[s];
        CHECK(sv->port != 0);
        CHECK(sv->weight <= 10000);
        CHECK(strnlen(sv->host, sizeof(sv->host)) > 0);
        check_line(sv->line, nlines);
        if (sv->is_literal)
            CHECK(sockaddr_port(&sv->addr, sv->addrlen) == sv->port);
        for (size_t o = 0; o < s; o++)
            CHECK(strcmp(be->servers[o].spec, sv->spec) != 0);
    }
    CHECK(be->health_expect_lo >= 100 && be->health_expect_lo <=
          be->health_expect_hi && be->health_expect_hi <= 599);
    CHECK(be->health_path[0] == '/');
    CHECK(be->rise >= 1 && be->fall >= 1 && be->retries <= 15);
    CHECK(be->passive_error_rate >= 0 && be->passive_error_rate <= 1);
    CHECK(be->timeout_connect > 0 && be->timeout_server > 0);
    CHECK(be->health_interval > 0 && be->health_timeout > 0);
}

static void
check_frontend(const struct config *cfg, size_t i, int nlines)
{
    const struct config_frontend *fe = &cfg->frontends[i];

    check_name(fe->name, sizeof(fe->name));
    check_line(fe->line, nlines);
    CHECK(fe->backend < cfg->nbackends);
    CHECK(strcmp(cfg->backends[fe->backend].name, fe->backend_name) == 0);
    check_line(fe->backend_line, nlines);
    CHECK(fe->nlisten >= 1 && fe->listen != NULL);
    CHECK((fe->tls_cert == NULL) == (fe->tls_key == NULL));
    CHECK(fe->tls_cert == NULL || fe->mode == MODE_HTTP);
    CHECK(fe->proxy_protocol == PROXY_PROTOCOL_OFF || fe->mode == MODE_TCP);
    CHECK(fe->max_header_size >= 1024 && fe->max_header_size <= 1024 * 1024);
    CHECK(fe->timeout_client > 0 && fe->timeout_request > 0);
    for (size_t l = 0; l < fe->nlisten; l++) {
        const struct config_addr *a = &fe->listen[l];
        CHECK(sockaddr_port(&a->ss, a->len) != 0);
        CHECK(strnlen(a->text, sizeof(a->text)) > 0);
        check_line(a->line, nlines);
        /* No address twice, in this frontend or an earlier one. */
        for (size_t j = 0; j <= i; j++) {
            const struct config_frontend *o = &cfg->frontends[j];
            for (size_t m = 0; m < (j == i ? l : o->nlisten); m++)
                CHECK(o->listen[m].len != a->len ||
                      memcmp(&o->listen[m].ss, &a->ss, a->len) != 0);
        }
        if (cfg->stats_enabled)
            CHECK(cfg->stats_listen.len != a->len ||
                  memcmp(&cfg->stats_listen.ss, &a->ss, a->len) != 0);
    }
}

static void
check_loaded(const struct config *cfg, int nlines)
{
    CHECK(cfg->path != NULL && strcmp(cfg->path, fuzz_path) == 0);
    CHECK(cfg->workers <= 256); /* 0 = auto */
    CHECK(cfg->nfrontends >= 1 && cfg->frontends != NULL);
    CHECK(cfg->max_connections >= 1 && cfg->max_connections <= 1000000);
    CHECK(cfg->min_ttl <= cfg->max_ttl);
    CHECK(cfg->jitter >= 0 && cfg->jitter < 1);
    CHECK(cfg->prefetch >= 0 && cfg->prefetch < 1);
    CHECK(cfg->resolver_attempts >= 1 && cfg->resolver_attempts <= 10);
    CHECK(cfg->resolver_timeout > 0 && cfg->negative_ttl > 0);
    CHECK((cfg->nnameservers == 0) == (cfg->nameservers == NULL));
    for (size_t i = 0; i < cfg->nnameservers; i++) {
        const struct config_addr *a = &cfg->nameservers[i].addr;
        CHECK(sockaddr_port(&a->ss, a->len) != 0);
        check_line(a->line, nlines);
    }
    if (cfg->stats_enabled)
        CHECK(sockaddr_port(&cfg->stats_listen.ss, cfg->stats_listen.len) !=
              0);
    for (size_t b = 0; b < cfg->nbackends; b++)
        check_backend(&cfg->backends[b], nlines);
    for (size_t i = 0; i < cfg->nfrontends; i++)
        check_frontend(cfg, i, nlines);
}

/* Each error is one line "PATH:LINE: message", LINE 0 or a line of the file. */
static void
check_errors(const struct config_errors *errs, int nlines)
{
    size_t plen = strlen(fuzz_path);

    CHECK(errs->n > 0 && errs->msgs != NULL);
    for (size_t i = 0; i < errs->n; i++) {
        const char *m = errs->msgs[i], *p;
        long line = 0;

        CHECK(m != NULL);
        CHECK(strncmp(m, fuzz_path, plen) == 0 && m[plen] == ':');
        p = m + plen + 1;
        CHECK(*p >= '0' && *p <= '9');
        for (; *p >= '0' && *p <= '9'; p++) {
            line = line * 10 + (*p - '0');
            CHECK(line <= nlines);
        }
        CHECK(p[0] == ':' && p[1] == ' ' && p[2] != '\0');
        CHECK(strchr(p, '\n') == NULL);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config_errors errs = {(char **)1, 12345}; /* must be reset */
    struct config *cfg;
    int nlines = fuzz_count_lines(data, size);

    fuzz_write_input(data, size);
    cfg = config_load_checked(fuzz_path, __wrap_tls_check_pair, &errs);
    if (cfg != NULL) {
        CHECK(errs.n == 0 && errs.msgs == NULL);
        check_loaded(cfg, nlines);
    } else {
        check_errors(&errs, nlines);
    }
    config_free(cfg);
    config_errors_free(&errs);
    CHECK(errs.n == 0 && errs.msgs == NULL);
    return 0;
}
