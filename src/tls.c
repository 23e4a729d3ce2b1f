/*
 * tls: OpenSSL server contexts and non-blocking I/O (see tls.h).
 */
#include "tls.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net.h"

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
    if (SSL_select_next_proto(&sel, outlen, tls_alpn, sizeof(tls_alpn) - 1, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        /* A client offering only h2 still gets HTTP/1.1 without ALPN. */
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* Largest certificate chain or key file accepted. */
#define TLS_FILE_MAX (1024 * 1024)

/*
 * Reads a PEM file into a memory BIO. Loading runs on the event loop (also
 * on reload), so it must not block: the open is non-blocking and only a
 * regular file of bounded size is read (a FIFO, /dev/stdin or a device
 * would stall every connection).
 */
static BIO *
tls_read_file(const char *path, const char *what, char *err, size_t errlen)
{
    struct stat st;
    BIO *bio = NULL;
    char *data = NULL;
    size_t got = 0;
    int fd;

    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read %s %s: %s", what, path,
                 strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s %s is not a regular file", what, path);
        goto out;
    }
    if (st.st_size > TLS_FILE_MAX) {
        snprintf(err, errlen, "%s %s is larger than %d bytes", what, path,
                 TLS_FILE_MAX);
        goto out;
    }
    data = malloc((size_t)st.st_size + 1);
    if (data == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "cannot read %s %s: %s", what, path,
                     n < 0 ? strerror(errno) : "file shrank while read");
            goto out;
        }
        got += (size_t)n;
    }
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || BIO_write(bio, data, (int)got) != (int)got) {
        BIO_free(bio);
        bio = NULL;
        snprintf(err, errlen, "out of memory");
    }
out:
    if (data != NULL)
        OPENSSL_cleanse(data, got);
    free(data);
    close(fd);
    return bio;
}

/* The leaf certificate, then any intermediates in the same file. */
static int
tls_load_chain(SSL_CTX *ctx, const char *cert, char *err, size_t errlen)
{
    BIO *bio = tls_read_file(cert, "certificate", err, errlen);
    X509 *x;
    int rc = -1;

    if (bio == NULL)
        return -1;
    x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
    if (x == NULL || SSL_CTX_use_certificate(ctx, x) != 1) {
        tls_error(err, errlen, "cannot load certificate", cert);
        goto out;
    }
    for (;;) {
        X509 *ca = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (ca == NULL)
            break;
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            tls_error(err, errlen, "cannot load the chain of", cert);
            goto out;
        }
    }
    /* The loop ends on "no more PEM blocks", which is not an error. */
    ERR_clear_error();
    rc = 0;
out:
    X509_free(x);
    BIO_free(bio);
    return rc;
}

static int
tls_load_key(SSL_CTX *ctx, const char *key, const char *cert, char *err,
             size_t errlen)
{
    BIO *bio = tls_read_file(key, "key", err, errlen);
    EVP_PKEY *pk;
    int rc = -1;

    if (bio == NULL)
        return -1;
    pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (pk == NULL) {
        tls_error(err, errlen, "cannot load key", key);
    } else if (SSL_CTX_use_PrivateKey(ctx, pk) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) ==
            X509_R_KEY_VALUES_MISMATCH) {
            snprintf(err, errlen, "key %s does not match certificate %s", key,
                     cert);
            ERR_clear_error();
        } else {
            tls_error(err, errlen, "cannot load key", key);
        }
    } else {
        rc = 0;
    }
    EVP_PKEY_free(pk);
    BIO_free(bio);
    return rc;
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
    /* Read whole records (header and body) in one read(2); what this
     * buffers ahead is seen by tls_io_pending. */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Partial writes and moving buffers suit a non-blocking pump; idle
     * connections give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Resumption: server-side session cache (TLS 1.2 ids) and tickets. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);

    if (tls_load_chain(ctx, cert, err, errlen) != 0)
        goto err;
    if (tls_load_key(ctx, key, cert, err, errlen) != 0)
        goto err;
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
    if (blen == 0)
        return tls_io_write(io, a, alen);
    if (io->ssl != NULL) {
        /*
         * TLS: a response head and a small body go out as one record (one
         * encryption, one write, one record for the client to decrypt).
         * The loop is single-threaded and the copy is made again on a
         * retry (ACCEPT_MOVING_WRITE_BUFFER), so one scratch buffer does.
         */
        static char one_record[16384];
        if (alen + blen > sizeof(one_record))
            return tls_io_write(io, a, alen);
        memcpy(one_record, a, alen);
        memcpy(one_record + alen, b, blen);
        return tls_io_write(io, one_record, alen + blen);
    }
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

bool
tls_io_pending(const struct tls_io *io)
{
    return io->ssl != NULL && SSL_has_pending(io->ssl);
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
    net_close(io->fd, reset);
    io->fd = -1;
}

const char *
tls_io_version(const struct tls_io *io)
{
    return io->ssl != NULL ? SSL_get_version(io->ssl) : "-";
}
