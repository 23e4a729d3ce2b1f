/*
 * tls: OpenSSL server contexts and non-blocking I/O (see tls.h).
 */
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* The one protocol ferry speaks to clients, in ALPN wire format. */
static const unsigned char tls_alpn[] = "\x08http/1.1";

/* Writes the last OpenSSL error (or fallback) after prefix into err. */
static void
tls_error(char *err, size_t errlen, const char *prefix, const char *path)
{
    unsigned long e = ERR_peek_last_error();
    char msg[256];

    if (e != 0) {
        const char *reason = ERR_reason_error_string(e);
        snprintf(msg, sizeof(msg), "%s",
                 reason != NULL ? reason : "unknown OpenSSL error");
    } else {
        snprintf(msg, sizeof(msg), "%s", strerror(errno));
    }
    snprintf(err, errlen, "%s %s: %s", prefix, path, msg);
    ERR_clear_error();
}

static int
tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel;

    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&sel, outlen, tls_alpn, sizeof(tls_alpn) - 1,
                              in, inlen) != OPENSSL_NPN_NEGOTIATED)
        /* A client offering only h2 still gets HTTP/1.1 without ALPN. */
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

struct tls_ctx *
tls_ctx_create(const char *cert, const char *key, char *err, size_t errlen)
{
    static const unsigned char sid_ctx[] = "ferry";
    struct tls_ctx *t = calloc(1, sizeof(*t));
    SSL_CTX *ctx = NULL;

    ERR_clear_error();
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tls_error(err, errlen, "cannot create a TLS context for", cert);
        goto err;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /*
     * No renegotiation (a DoS lever), no compression (CRIME); an EOF
     * without close_notify is a normal end for HTTP/1.1 bodies framed by
     * length, as browsers do it.
     */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Partial writes and moving buffers suit a non-blocking pump; idle
     * connections give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Resumption: server-side session cache (TLS 1.2 ids) and tickets. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);

    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        tls_error(err, errlen, "cannot load certificate", cert);
        goto err;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) ==
            X509_R_KEY_VALUES_MISMATCH) {
            snprintf(err, errlen, "key %s does not match certificate %s",
                     key, cert);
            ERR_clear_error();
        } else {
            tls_error(err, errlen, "cannot load key", key);
        }
        goto err;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_error(err, errlen, "key does not match certificate", cert);
        goto err;
    }
    t->ssl_ctx = ctx;
    return t;
err:
    SSL_CTX_free(ctx);
    free(t);
    return NULL;
}

void
tls_ctx_free(struct tls_ctx *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ssl_ctx);
    free(t);
}

int
tls_check_pair(const char *cert, const char *key, char *err, size_t errlen)
{
    struct tls_ctx *t = tls_ctx_create(cert, key, err, errlen);

    if (t == NULL)
        return -1;
    tls_ctx_free(t);
    return 0;
}

int
tls_io_init(struct tls_io *io, struct tls_ctx *t, int fd)
{
    io->fd = fd;
    io->ssl = NULL;
    if (t == NULL)
        return 0;
    io->ssl = SSL_new(t->ssl_ctx);
    if (io->ssl == NULL || SSL_set_fd(io->ssl, fd) != 1) {
        SSL_free(io->ssl);
        io->ssl = NULL;
        ERR_clear_error();
        return -1;
    }
    SSL_set_accept_state(io->ssl);
    return 0;
}

/* Maps the result of an SSL_* call to bytes or a TLS_IO_* code. */
static ssize_t
tls_io_result(struct tls_io *io, int n)
{
    int e = SSL_get_error(io->ssl, n);

    switch (e) {
    case SSL_ERROR_NONE:
        return n;
    case SSL_ERROR_WANT_READ:
        return TLS_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        return TLS_IO_ERROR;
    }
}

int
tls_io_handshake(struct tls_io *io)
{
    int n;

    if (io->ssl == NULL || SSL_is_init_finished(io->ssl))
        return 1;
    ERR_clear_error();
    n = SSL_do_handshake(io->ssl);
    if (n == 1)
        return 1;
    n = (int)tls_io_result(io, n);
    /* A handshake cut short is a failure, not an end of stream. */
    return n == 0 ? TLS_IO_ERROR : n;
}

/* After a failed plain socket call: would it block (versus fail)? */
static bool
tls_would_block(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK;
}

ssize_t
tls_io_read(struct tls_io *io, void *buf, size_t len)
{
    if (len > INT_MAX)
        len = INT_MAX;
    if (io->ssl == NULL) {
        for (;;) {
            ssize_t n = recv(io->fd, buf, len, 0);
            if (n >= 0)
                return n;
            if (errno == EINTR)
                continue;
            return tls_would_block() ? TLS_IO_WANT_READ : TLS_IO_ERROR;
        }
    }
    ERR_clear_error();
    return tls_io_result(io, SSL_read(io->ssl, buf, (int)len));
}

ssize_t
tls_io_write(struct tls_io *io, const void *buf, size_t len)
{
    if (len > INT_MAX)
        len = INT_MAX;
    if (io->ssl == NULL) {
        for (;;) {
            ssize_t n = send(io->fd, buf, len, MSG_NOSIGNAL);
            if (n >= 0)
                return n;
            if (errno == EINTR)
                continue;
            return tls_would_block() ? TLS_IO_WANT_WRITE : TLS_IO_ERROR;
        }
    }
    ERR_clear_error();
    return tls_io_result(io, SSL_write(io->ssl, buf, (int)len));
}

ssize_t
tls_io_write2(struct tls_io *io, const void *a, size_t alen, const void *b,
              size_t blen)
{
    struct iovec iov[2];
    struct msghdr mh;

    if (alen == 0)
        return tls_io_write(io, b, blen);
    if (io->ssl != NULL || blen == 0)
        /* TLS: the next call sends the rest (a record per call anyway). */
        return tls_io_write(io, a, alen);
    iov[0].iov_base = (void *)a;
    iov[0].iov_len = alen;
    iov[1].iov_base = (void *)b;
    iov[1].iov_len = blen;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = iov;
    mh.msg_iovlen = 2;
    for (;;) {
        ssize_t n = sendmsg(io->fd, &mh, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return tls_would_block() ? TLS_IO_WANT_WRITE : TLS_IO_ERROR;
    }
}

void
tls_io_shutdown(struct tls_io *io)
{
    if (io->fd < 0)
        return;
    if (io->ssl != NULL && SSL_is_init_finished(io->ssl)) {
        /* One non-blocking try: close_notify is a courtesy here. */
        ERR_clear_error();
        SSL_shutdown(io->ssl);
        ERR_clear_error();
    }
    shutdown(io->fd, SHUT_WR);
}

void
tls_io_close(struct tls_io *io, bool reset)
{
    if (io->ssl != NULL) {
        SSL_free(io->ssl);
        io->ssl = NULL;
    }
    if (io->fd >= 0) {
        if (reset) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(io->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(io->fd);
        io->fd = -1;
    }
}

const char *
tls_io_version(const struct tls_io *io)
{
    return io->ssl != NULL ? SSL_get_version(io->ssl) : "-";
}
