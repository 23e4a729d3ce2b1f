/*
 * tls: OpenSSL 3 server side (TLS 1.2 and 1.3, ALPN http/1.1, session
 * resumption) behind the same non-blocking read/write/shutdown calls as a
 * plain socket, so proxy_http treats both alike.
 *
 * Every I/O call returns bytes (> 0), 0 for end of stream, or one of the
 * TLS_IO_* codes below. WANT_READ / WANT_WRITE say which readiness the
 * call waits for: with TLS a read may need the socket writable (and a
 * write readable), so the caller arms whichever watcher the code names and
 * repeats the same call once it fires.
 *
 *   accept ──► tls_io_init(ctx) ──► tls_io_handshake ─1─► read / write ...
 *                                        │ WANT_*: wait, call again
 *                                        └ ERROR (e.g. plain HTTP): close
 */
#ifndef FERRY_TLS_H
#define FERRY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ssl_st;
struct ssl_ctx_st;

#define TLS_IO_ERROR (-1)      /* failed: close the connection */
#define TLS_IO_WANT_READ (-2)  /* wait until readable, repeat */
#define TLS_IO_WANT_WRITE (-3) /* wait until writable, repeat */

/* A server context built from one certificate chain and key. */
struct tls_ctx {
    struct ssl_ctx_st *ssl_ctx; /* OpenSSL context (owned) */
};

/* One connection's transport: a plain socket when ssl is NULL. */
struct tls_io {
    int fd;             /* the socket, -1 when closed */
    struct ssl_st *ssl; /* TLS state, NULL for plain */
};

/*
 * Loads cert (PEM chain) and key (PEM) and checks that they match. On
 * failure returns NULL with a one-line reason in err.
 */
struct tls_ctx *tls_ctx_create(const char *cert, const char *key, char *err,
                               size_t errlen);
void tls_ctx_free(struct tls_ctx *t);
/* Validation only (every config load, through config_load_checked): 0
 * when the pair loads and matches. */
int tls_check_pair(const char *cert, const char *key, char *err, size_t errlen);

/* Wraps fd: with t == NULL a plain socket. Returns 0 or -1 (no memory). */
int tls_io_init(struct tls_io *io, struct tls_ctx *t, int fd);
/* 1 when the handshake is done (always for plain), else a TLS_IO_* code. */
int tls_io_handshake(struct tls_io *io);
ssize_t tls_io_read(struct tls_io *io, void *buf, size_t len);
ssize_t tls_io_write(struct tls_io *io, const void *buf, size_t len);
/* Two pieces in one call where the transport allows it (plain: writev). */
ssize_t tls_io_write2(struct tls_io *io, const void *a, size_t alen,
                      const void *b, size_t blen);
/* Ends our direction: close_notify (best effort) and FIN. */
/* Bytes already decrypted or buffered inside the TLS layer, which the
 * socket's readiness will not announce (always false for plain sockets). */
bool tls_io_pending(const struct tls_io *io);
void tls_io_shutdown(struct tls_io *io);
/* Frees the TLS state and closes the socket; reset sends an RST. */
void tls_io_close(struct tls_io *io, bool reset);
/* Negotiated protocol version ("TLSv1.3") or "-" for plain. */
const char *tls_io_version(const struct tls_io *io);

#endif
