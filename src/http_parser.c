/*
 * http_parser: see http_parser.h for the contract and the strictness rules.
 *
 * Head parsing works line by line. http_parse() looks for the next LF from
 * where the previous search stopped (m->scan), parses the complete line
 * [m->pos, LF) once, and moves m->pos past it, so a head fed in any number
 * of pieces is scanned once in total:
 *
 *   ST_START ──start line──► ST_HEADERS ──field line──► ST_HEADERS
 *      │ CRLF (request: skipped)     │ CRLF
 *      ▼                             ▼
 *   ST_START                  finish_head() ──► ST_DONE  (or ST_ERROR)
 */
#include "http_parser.h"

#include <string.h>

enum {
    ST_START,   /* expecting the start line */
    ST_HEADERS, /* expecting a field or CRLF */
    ST_DONE,    /* head complete */
    ST_ERROR,   /* head rejected */
};

/* Character classes; one table lookup per byte. */
#define C_TCHAR 0x01  /* token character (RFC 9110 5.6.2) */
#define C_VALUE 0x02  /* field-value octet: HTAB VCHAR obs */
#define C_TARGET 0x04 /* request-target octet */
#define C_HOST 0x08   /* authority octet (host[:port]) */
#define C_HEX 0x10    /* hex digit */

/* 16 bytes a row, so row r is 0xr0..0xrf. */
// clang-format off
static const uint8_t cls[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     2, 15,  6,  3, 15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15,  6,
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 14, 14,  6, 14,  6,  6,
     6, 31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14,  6, 14,  7, 15,
     7, 31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  6,  7,  6, 15,  0,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
};
// clang-format on

/* Connection options beyond this are a 400 (bounds the hop marking). */
#define MAX_CONN_OPTIONS 64

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

static inline unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Case-insensitive equality of a and the lowercase string b. */
static bool
ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != (unsigned char)b[i])
            return false;
    return true;
}

/* Case-insensitive equality of two arbitrary strings of length n. */
static bool
ieq2(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

static inline bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline struct http_span
span(size_t off, size_t len)
{
    struct http_span s = {(uint32_t)off, (uint32_t)len};
    return s;
}

/* Records the error; a response error always means 502 for the proxy. */
static int
fail(struct http_msg *m, uint16_t status, const char *reason)
{
    m->state = ST_ERROR;
    m->error = m->kind == HTTP_RESPONSE ? 502 : status;
    m->error_reason = reason;
    m->keep_alive = false;
    return -1;
}

static void
msg_clear(struct http_msg *m)
{
    uint8_t kind = m->kind;
    uint8_t req_method = m->req_method;
    uint32_t max_head = m->max_head;

    /* The header array is not cleared: n_headers says what is valid. */
    memset(m, 0, offsetof(struct http_msg, headers));
    m->kind = kind;
    m->req_method = req_method;
    m->max_head = max_head;
    m->host = -1;
    m->upgrade = -1;
}

static uint32_t
clamp_max(size_t max_head)
{
    return max_head > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)max_head;
}

void
http_request_init(struct http_msg *m, size_t max_head)
{
    m->kind = HTTP_REQUEST;
    m->req_method = HTTP_M_OTHER;
    m->max_head = clamp_max(max_head);
    msg_clear(m);
}

void
http_response_init(struct http_msg *m, size_t max_head,
                   enum http_method req_method)
{
    m->kind = HTTP_RESPONSE;
    m->req_method = (uint8_t)req_method;
    m->max_head = clamp_max(max_head);
    msg_clear(m);
}

void
http_msg_reset(struct http_msg *m)
{
    msg_clear(m);
}

static enum http_method
method_id(const char *p, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(p, "GET", 3) == 0)
            return HTTP_M_GET;
        if (memcmp(p, "PUT", 3) == 0)
            return HTTP_M_PUT;
        break;
    case 4:
        if (memcmp(p, "POST", 4) == 0)
            return HTTP_M_POST;
        if (memcmp(p, "HEAD", 4) == 0)
            return HTTP_M_HEAD;
        break;
    case 5:
        if (memcmp(p, "PATCH", 5) == 0)
            return HTTP_M_PATCH;
        if (memcmp(p, "TRACE", 5) == 0)
            return HTTP_M_TRACE;
        break;
    case 6:
        if (memcmp(p, "DELETE", 6) == 0)
            return HTTP_M_DELETE;
        break;
    case 7:
        if (memcmp(p, "OPTIONS", 7) == 0)
            return HTTP_M_OPTIONS;
        if (memcmp(p, "CONNECT", 7) == 0)
            return HTTP_M_CONNECT;
        break;
    }
    return HTTP_M_OTHER;
}

/* Parses "HTTP/1.0" or "HTTP/1.1" at p (8 bytes available). */
static int
parse_version(const char *p)
{
    if (memcmp(p, "HTTP/1.", 7) != 0)
        return -1;
    if (p[7] == '0')
        return 0;
    if (p[7] == '1')
        return 1;
    return -1;
}

/* host[:port] with authority characters only; needs_port for CONNECT. */
static bool
valid_authority(const char *p, size_t n, bool needs_port)
{
    size_t colon = n;

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!IS(p[i], C_HOST))
            return false;
        if (p[i] == ':')
            colon = i;
        else if (p[i] == ']')
            colon = n; /* colons inside [v6] are not ports */
    }
    if (colon == n)
        return !needs_port;
    if (colon == 0)
        return false;
    for (size_t i = colon + 1; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return !needs_port || colon + 1 < n;
}

static int
parse_target(struct http_msg *m, const char *buf, size_t s, size_t n)
{
    const char *t = buf + s;

    if (m->method == HTTP_M_CONNECT) {
        if (!valid_authority(t, n, true))
            return fail(m, 400, "CONNECT target is not host:port");
        m->form = HTTP_TARGET_AUTHORITY;
        m->authority = span(s, n);
        return 0;
    }
    if (n == 1 && t[0] == '*') {
        if (m->method != HTTP_M_OPTIONS)
            return fail(m, 400, "asterisk-form target without OPTIONS");
        m->form = HTTP_TARGET_ASTERISK;
        return 0;
    }
    if (t[0] == '/') {
        m->form = HTTP_TARGET_ORIGIN;
        m->path = span(s, n);
        return 0;
    }

    /* absolute-form: only the http and https schemes make sense here */
    size_t skip;
    if (n >= 7 && ieq(t, "http://", 7))
        skip = 7;
    else if (n >= 8 && ieq(t, "https://", 8))
        skip = 8;
    else
        return fail(m, 400, "invalid request target");
    size_t a = skip;
    while (a < n && t[a] != '/' && t[a] != '?')
        a++;
    if (!valid_authority(t + skip, a - skip, false))
        return fail(m, 400, "invalid authority in request target");
    m->form = HTTP_TARGET_ABSOLUTE;
    m->authority = span(s + skip, a - skip);
    m->path = span(s + a, n - a);
    return 0;
}

/* method SP request-target SP HTTP-version, in buf[s, e). */
static int
parse_request_line(struct http_msg *m, const char *buf, size_t s, size_t e)
{
    size_t p = s;

    while (p < e && IS(buf[p], C_TCHAR))
        p++;
    if (p == s || p == e || buf[p] != ' ')
        return fail(m, 400, "invalid method");
    m->method_s = span(s, p - s);
    m->method = (uint8_t)method_id(buf + s, p - s);

    size_t t = ++p;
    while (p < e && IS(buf[p], C_TARGET))
        p++;
    if (p == t || p == e || buf[p] != ' ')
        return fail(m, 400, "invalid request target");
    m->target = span(t, p - t);

    p++;
    int minor = e - p == 8 ? parse_version(buf + p) : -1;
    if (minor < 0)
        return fail(m, 400, "unsupported HTTP version");
    m->minor = (uint8_t)minor;
    return parse_target(m, buf, t, m->target.len);
}

/* HTTP-version SP 3DIGIT [SP reason-phrase], in buf[s, e). */
static int
parse_status_line(struct http_msg *m, const char *buf, size_t s, size_t e)
{
    const char *p = buf + s;
    size_t n = e - s;

    if (n < 12)
        return fail(m, 502, "status line too short");
    int minor = parse_version(p);
    if (minor < 0)
        return fail(m, 502, "unsupported HTTP version");
    m->minor = (uint8_t)minor;
    if (p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
        p[11] < '0' || p[11] > '9')
        return fail(m, 502, "invalid status code");
    m->status = (uint16_t)((p[9] - '0') * 100 + (p[10] - '0') * 10 +
                           (p[11] - '0'));
    /* The SP before an empty reason is often left out; accept that. */
    if (n == 12) {
        m->reason = span(e, 0);
        return 0;
    }
    if (p[12] != ' ')
        return fail(m, 502, "invalid status line");
    for (size_t i = 13; i < n; i++)
        if (!IS(p[i], C_VALUE))
            return fail(m, 502, "invalid character in reason phrase");
    m->reason = span(s + 13, n - 13);
    return 0;
}

static enum http_hid
header_id(const char *p, size_t n)
{
    switch (n) {
    case 2:
        return ieq(p, "te", 2) ? HTTP_H_TE : HTTP_H_OTHER;
    case 4:
        return ieq(p, "host", 4) ? HTTP_H_HOST : HTTP_H_OTHER;
    case 6:
        return ieq(p, "expect", 6) ? HTTP_H_EXPECT : HTTP_H_OTHER;
    case 7:
        if (ieq(p, "upgrade", 7))
            return HTTP_H_UPGRADE;
        if (ieq(p, "trailer", 7))
            return HTTP_H_TRAILER;
        break;
    case 10:
        if (ieq(p, "connection", 10))
            return HTTP_H_CONNECTION;
        if (ieq(p, "keep-alive", 10))
            return HTTP_H_KEEP_ALIVE;
        break;
    case 14:
        return ieq(p, "content-length", 14) ? HTTP_H_CONTENT_LENGTH
                                            : HTTP_H_OTHER;
    case 15:
        return ieq(p, "x-forwarded-for", 15) ? HTTP_H_X_FORWARDED_FOR
                                             : HTTP_H_OTHER;
    case 16:
        return ieq(p, "proxy-connection", 16) ? HTTP_H_PROXY_CONNECTION
                                              : HTTP_H_OTHER;
    case 17:
        if (ieq(p, "transfer-encoding", 17))
            return HTTP_H_TRANSFER_ENCODING;
        if (ieq(p, "x-forwarded-proto", 17))
            return HTTP_H_X_FORWARDED_PROTO;
        break;
    }
    return HTTP_H_OTHER;
}

/*
 * Walks a comma-separated list of tokens (RFC 9110 5.6.1) in v[0, n):
 * stores the next element in *tok and returns true, or false at the end.
 * *i is the cursor. Empty elements are skipped; a non-token element makes
 * *bad true.
 */
static bool
next_token(const char *v, size_t n, size_t *i, struct http_span *tok, bool *bad)
{
    size_t p = *i;

    for (;;) {
        while (p < n && (is_ows(v[p]) || v[p] == ','))
            p++;
        if (p >= n) {
            *i = p;
            return false;
        }
        size_t t = p;
        while (p < n && IS(v[p], C_TCHAR))
            p++;
        size_t te = p;
        while (p < n && is_ows(v[p]))
            p++;
        if (te == t || (p < n && v[p] != ',')) {
            *bad = true;
            *i = n;
            return false;
        }
        tok->off = (uint32_t)t;
        tok->len = (uint32_t)(te - t);
        *i = p;
        return true;
    }
}

static int
on_content_length(struct http_msg *m, const char *v, size_t n)
{
    uint64_t cl = 0;

    if (m->flags & HTTP_F_CONTENT_LENGTH)
        return fail(m, 400, "repeated Content-Length");
    /* 18 digits cannot overflow and exceed any real body. */
    if (n == 0 || n > 18)
        return fail(m, 400, "invalid Content-Length");
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return fail(m, 400, "invalid Content-Length");
        cl = cl * 10 + (uint64_t)(v[i] - '0');
    }
    m->flags |= HTTP_F_CONTENT_LENGTH;
    m->content_length = cl;
    return 0;
}

static int
on_transfer_encoding(struct http_msg *m, const char *v, size_t n)
{
    size_t i = 0;
    struct http_span tok;
    bool bad = false, any = false;

    m->flags |= HTTP_F_TRANSFER_ENCODING;
    while (next_token(v, n, &i, &tok, &bad)) {
        any = true;
        if (tok.len == 7 && ieq(v + tok.off, "chunked", 7)) {
            m->te_chunked++;
            m->te_last_chunked = true;
        } else {
            m->te_last_chunked = false;
        }
    }
    if (bad || !any)
        return fail(m, 400, "invalid Transfer-Encoding");
    return 0;
}

static int
on_connection(struct http_msg *m, const char *v, size_t n)
{
    size_t i = 0;
    struct http_span tok;
    bool bad = false;

    while (next_token(v, n, &i, &tok, &bad)) {
        const char *t = v + tok.off;
        if (tok.len == 5 && ieq(t, "close", 5))
            m->flags |= HTTP_F_CONN_CLOSE;
        else if (tok.len == 10 && ieq(t, "keep-alive", 10))
            m->flags |= HTTP_F_CONN_KEEP_ALIVE;
        else if (tok.len == 7 && ieq(t, "upgrade", 7))
            m->flags |= HTTP_F_CONN_UPGRADE;
        else
            m->flags |= HTTP_F_CONN_OTHER;
        if (++m->conn_options > MAX_CONN_OPTIONS)
            return fail(m, 400, "too many Connection options");
    }
    if (bad)
        return fail(m, 400, "invalid Connection");
    return 0;
}

/* field-name ":" OWS field-value OWS, in buf[s, e). */
static int
parse_header_line(struct http_msg *m, const char *buf, size_t s, size_t e)
{
    size_t p = s;

    if (is_ows(buf[s]))
        return fail(m, 400, "obs-fold or whitespace before field name");
    while (p < e && IS(buf[p], C_TCHAR))
        p++;
    if (p == e || buf[p] != ':') {
        if (p < e && is_ows(buf[p]))
            return fail(m, 400, "whitespace before colon");
        return fail(m, 400, "invalid field name");
    }
    if (p == s)
        return fail(m, 400, "empty field name");
    size_t name_end = p++;

    while (p < e && is_ows(buf[p]))
        p++;
    size_t vs = p;
    while (p < e && IS(buf[p], C_VALUE))
        p++;
    if (p != e)
        return fail(m, 400, "invalid character in field value");
    while (p > vs && is_ows(buf[p - 1]))
        p--;

    if (m->n_headers >= HTTP_MAX_HEADERS)
        return fail(m, 431, "too many header fields");
    int idx = m->n_headers++;
    struct http_header *h = &m->headers[idx];
    h->name = span(s, name_end - s);
    h->value = span(vs, p - vs);
    h->id = (uint8_t)header_id(buf + s, name_end - s);
    h->flags = 0;

    const char *v = buf + vs;
    size_t n = p - vs;
    switch (h->id) {
    case HTTP_H_HOST:
        if (m->host >= 0)
            return fail(m, 400, "repeated Host");
        if (n > 0 && !valid_authority(v, n, false))
            return fail(m, 400, "invalid Host");
        m->host = (int16_t)idx;
        break;
    case HTTP_H_CONTENT_LENGTH:
        return on_content_length(m, v, n);
    case HTTP_H_TRANSFER_ENCODING:
        return on_transfer_encoding(m, v, n);
    case HTTP_H_CONNECTION:
        h->flags |= HTTP_HF_HOP;
        return on_connection(m, v, n);
    case HTTP_H_UPGRADE:
        h->flags |= HTTP_HF_HOP;
        m->flags |= HTTP_F_UPGRADE;
        if (m->upgrade < 0)
            m->upgrade = (int16_t)idx;
        break;
    case HTTP_H_KEEP_ALIVE:
    case HTTP_H_PROXY_CONNECTION:
    case HTTP_H_TE:
        h->flags |= HTTP_HF_HOP;
        break;
    case HTTP_H_EXPECT:
        if (n == 12 && ieq(v, "100-continue", 12) && m->minor == 1)
            m->flags |= HTTP_F_EXPECT_CONTINUE;
        break;
    }
    return 0;
}

/* Flags as hop-by-hop every field the Connection options name. */
static void
mark_connection_options(struct http_msg *m, const char *buf)
{
    struct http_conn_iter it;
    struct http_span tok;

    http_conn_iter_init(&it);
    while (http_conn_iter_next(&it, m, buf, &tok)) {
        for (unsigned i = 0; i < m->n_headers; i++) {
            struct http_header *h = &m->headers[i];
            if (h->name.len != tok.len || (h->flags & HTTP_HF_HOP) ||
                h->id == HTTP_H_HOST || h->id == HTTP_H_CONTENT_LENGTH ||
                h->id == HTTP_H_TRANSFER_ENCODING)
                continue;
            if (ieq2(buf + h->name.off, buf + tok.off, tok.len))
                h->flags |= HTTP_HF_HOP;
        }
    }
}

/* Framing checks shared by requests and responses. */
static int
check_framing(struct http_msg *m)
{
    if (!(m->flags & HTTP_F_TRANSFER_ENCODING))
        return 0;
    if (m->minor == 0)
        return fail(m, 400, "Transfer-Encoding in HTTP/1.0");
    if (m->flags & HTTP_F_CONTENT_LENGTH)
        return fail(m, 400, "Content-Length with Transfer-Encoding");
    if (!m->te_last_chunked || m->te_chunked != 1)
        return fail(m, 400, "Transfer-Encoding is not a final chunked");
    m->flags |= HTTP_F_CHUNKED;
    return 0;
}

static bool
persistent(const struct http_msg *m)
{
    if (m->flags & HTTP_F_CONN_CLOSE)
        return false;
    return m->minor == 1 || (m->flags & HTTP_F_CONN_KEEP_ALIVE);
}

static void
response_body(struct http_msg *m)
{
    unsigned st = m->status;

    if (st == 101)
        m->body = HTTP_BODY_TUNNEL;
    else if (st < 200 || st == 204 || st == 304 || m->req_method == HTTP_M_HEAD)
        m->body = HTTP_BODY_NONE;
    else if (m->req_method == HTTP_M_CONNECT && st < 300)
        m->body = HTTP_BODY_TUNNEL;
    else if (m->flags & HTTP_F_CHUNKED)
        m->body = HTTP_BODY_CHUNKED;
    else if (m->flags & HTTP_F_CONTENT_LENGTH)
        m->body = HTTP_BODY_LENGTH;
    else
        m->body = HTTP_BODY_CLOSE;
}

static int
finish_head(struct http_msg *m, const char *buf)
{
    if (check_framing(m) < 0)
        return -1;
    if (m->kind == HTTP_REQUEST) {
        if (m->minor == 1 && m->host < 0)
            return fail(m, 400, "missing Host");
        if (m->flags & HTTP_F_CHUNKED)
            m->body = HTTP_BODY_CHUNKED;
        else if (m->flags & HTTP_F_CONTENT_LENGTH)
            m->body = HTTP_BODY_LENGTH;
        else
            m->body = HTTP_BODY_NONE;
        m->keep_alive = persistent(m);
    } else {
        response_body(m);
        m->keep_alive = persistent(m) && m->body != HTTP_BODY_CLOSE &&
                        m->body != HTTP_BODY_TUNNEL;
    }
    if (m->flags & HTTP_F_CONN_OTHER)
        mark_connection_options(m, buf);
    m->state = ST_DONE;
    m->head_len = m->pos;
    return 0;
}

/* One complete line buf[s, e) (e is the CR of its CRLF). */
static int
parse_line(struct http_msg *m, const char *buf, size_t s, size_t e)
{
    if (m->state == ST_START) {
        if (s == e) {
            if (m->kind == HTTP_RESPONSE)
                return fail(m, 502, "empty line before status line");
            m->start = (uint32_t)(e + 2); /* RFC 9112 2.2: skip it */
            return 0;
        }
        m->state = ST_HEADERS;
        if (m->kind == HTTP_REQUEST)
            return parse_request_line(m, buf, s, e);
        return parse_status_line(m, buf, s, e);
    }
    if (s == e)
        return 1;
    return parse_header_line(m, buf, s, e);
}

enum http_parse_result
http_parse(struct http_msg *m, const char *buf, size_t len)
{
    if (m->state == ST_DONE)
        return HTTP_PARSE_DONE;
    if (m->state == ST_ERROR)
        return HTTP_PARSE_ERROR;

    size_t lim = len < m->max_head ? len : m->max_head;
    while (m->scan < lim) {
        const char *nl = memchr(buf + m->scan, '\n', lim - m->scan);
        if (nl == NULL) {
            m->scan = (uint32_t)lim;
            break;
        }
        size_t lf = (size_t)(nl - buf);
        if (lf == m->pos || buf[lf - 1] != '\r') {
            fail(m, 400, "bare LF");
            return HTTP_PARSE_ERROR;
        }
        size_t s = m->pos;
        m->pos = m->scan = (uint32_t)(lf + 1);
        int rc = parse_line(m, buf, s, lf - 1);
        if (rc < 0)
            return HTTP_PARSE_ERROR;
        if (rc > 0)
            return finish_head(m, buf) < 0 ? HTTP_PARSE_ERROR : HTTP_PARSE_DONE;
    }
    if (len >= m->max_head) {
        fail(m, 431, "head too large");
        return HTTP_PARSE_ERROR;
    }
    return HTTP_PARSE_AGAIN;
}

int
http_msg_find(const struct http_msg *m, const char *buf, const char *name,
              size_t name_len, int from)
{
    for (int i = from < 0 ? 0 : from; i < m->n_headers; i++) {
        const struct http_header *h = &m->headers[i];
        if (h->name.len == name_len && ieq2(buf + h->name.off, name, name_len))
            return i;
    }
    return -1;
}

bool
http_span_equals(const char *buf, struct http_span s, const char *str,
                 size_t len)
{
    return s.len == len && ieq2(buf + s.off, str, len);
}

void
http_conn_iter_init(struct http_conn_iter *it)
{
    it->header = -1;
    it->pos = 0;
}

bool
http_conn_iter_next(struct http_conn_iter *it, const struct http_msg *m,
                    const char *buf, struct http_span *tok)
{
    for (;;) {
        if (it->header >= 0 && it->header < m->n_headers) {
            const struct http_header *h = &m->headers[it->header];
            size_t i = it->pos;
            bool bad = false;
            if (next_token(buf + h->value.off, h->value.len, &i, tok, &bad)) {
                it->pos = (uint32_t)i;
                tok->off += h->value.off;
                return true;
            }
        }
        /* move on to the next Connection field */
        int k = it->header + 1;
        while (k < m->n_headers && m->headers[k].id != HTTP_H_CONNECTION)
            k++;
        if (k >= m->n_headers) {
            it->header = m->n_headers;
            return false;
        }
        it->header = k;
        it->pos = 0;
    }
}

/* ---- status texts ---------------------------------------------------- */

struct status_text {
    uint16_t status;  /* code */
    const char *text; /* its reason phrase */
};

/* Sorted by code for the binary search. */
static const struct status_text status_texts[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {305, "Use Proxy"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {511, "Network Authentication Required"},
};

/* RFC 9110 15: a client treats an unknown code like its class. */
static const char *const status_classes[] = {
    "Informational", "Successful",   "Redirection",
    "Client Error",  "Server Error",
};

const char *
http_status_text(unsigned status)
{
    size_t lo = 0, hi = sizeof(status_texts) / sizeof(status_texts[0]);

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (status_texts[mid].status == status)
            return status_texts[mid].text;
        if (status_texts[mid].status < status)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (status >= 100 && status <= 599)
        return status_classes[status / 100 - 1];
    return "Unknown";
}

/* ---- chunked body ---------------------------------------------------- */

enum {
    CH_SIZE_FIRST,    /* first hex digit of chunk-size */
    CH_SIZE,          /* more hex digits, ';', BWS or CR */
    CH_SIZE_BWS,      /* BWS after the size: only ';' */
    CH_EXT,           /* chunk-ext up to CR */
    CH_SIZE_LF,       /* LF ending the size line */
    CH_DATA,          /* chunk-data */
    CH_DATA_CR,       /* CR after chunk-data */
    CH_DATA_LF,       /* LF after chunk-data */
    CH_TRAILER_START, /* start of a trailer line or CRLF */
    CH_TRAILER_NAME,  /* trailer field name up to ':' */
    CH_TRAILER_VALUE, /* trailer field value up to CR */
    CH_TRAILER_LF,    /* LF ending a trailer line */
    CH_LAST_LF,       /* LF of the final empty line */
    CH_DONE,          /* body complete */
    CH_ERROR,         /* body rejected */
};

void
http_chunked_init(struct http_chunked *c, size_t max_line)
{
    memset(c, 0, sizeof(*c));
    if (max_line == 0)
        max_line = 16384;
    c->max_line = max_line > UINT32_MAX ? UINT32_MAX : (uint32_t)max_line;
    c->state = CH_SIZE_FIRST;
}

static int
hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = lower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

static enum http_chunked_result
ch_fail(struct http_chunked *c, const char *reason)
{
    c->state = CH_ERROR;
    c->error_reason = reason;
    return HTTP_CHUNKED_ERROR;
}

enum http_chunked_result
http_chunked_feed(struct http_chunked *c, const char *buf, size_t len,
                  size_t *used)
{
    size_t i = 0;
    uint64_t data = 0;

    *used = 0;
    if (c->state == CH_DONE)
        return HTTP_CHUNKED_DONE;
    if (c->state == CH_ERROR)
        return HTTP_CHUNKED_ERROR;

    while (i < len) {
        unsigned char ch = (unsigned char)buf[i];

        if (c->state == CH_DATA) {
            /* Data is skipped in one step: the proxy forwards it as is. */
            size_t n = len - i;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            i += n;
            data += n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = CH_DATA_CR;
            continue;
        }
        i++;
        if (c->state <= CH_SIZE_LF) {
            if (++c->line > c->max_line)
                return ch_fail(c, "chunk size line too long");
        } else if (c->state >= CH_TRAILER_START) {
            if (++c->trailer_bytes > c->max_line)
                return ch_fail(c, "trailer section too large");
        }

        switch (c->state) {
        case CH_SIZE_FIRST:
            if (hexval(ch) < 0)
                return ch_fail(c, "invalid chunk size");
            c->remaining = (uint64_t)hexval(ch);
            c->digits = 1;
            c->state = CH_SIZE;
            break;
        case CH_SIZE:
            if (hexval(ch) >= 0) {
                if (++c->digits > 16)
                    return ch_fail(c, "chunk size too long");
                c->remaining = c->remaining << 4 | (uint64_t)hexval(ch);
            } else if (ch == ';') {
                c->state = CH_EXT;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if (is_ows((char)ch)) {
                c->state = CH_SIZE_BWS;
            } else {
                return ch_fail(c, "invalid chunk size");
            }
            break;
        case CH_SIZE_BWS:
            if (ch == ';')
                c->state = CH_EXT;
            else if (!is_ows((char)ch))
                return ch_fail(c, "whitespace after chunk size");
            break;
        case CH_EXT:
            /*
             * Extensions are not interpreted; what matters for framing is
             * that no CR or LF hides in them, so only their octets are
             * checked (field-value octets: HTAB, VCHAR, obs-text).
             */
            if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (!IS(ch, C_VALUE))
                return ch_fail(c, "invalid chunk extension");
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                return ch_fail(c, "bare CR in chunk size line");
            c->line = 0;
            c->state = c->remaining == 0 ? CH_TRAILER_START : CH_DATA;
            break;
        case CH_DATA_CR:
            if (ch != '\r')
                return ch_fail(c, "missing CRLF after chunk data");
            c->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                return ch_fail(c, "missing CRLF after chunk data");
            c->state = CH_SIZE_FIRST;
            break;
        case CH_TRAILER_START:
            if (ch == '\r')
                c->state = CH_LAST_LF;
            else if (IS(ch, C_TCHAR))
                c->state = CH_TRAILER_NAME;
            else
                return ch_fail(c, "invalid trailer field");
            break;
        case CH_TRAILER_NAME:
            if (ch == ':')
                c->state = CH_TRAILER_VALUE;
            else if (!IS(ch, C_TCHAR))
                return ch_fail(c, "invalid trailer field name");
            break;
        case CH_TRAILER_VALUE:
            if (ch == '\r')
                c->state = CH_TRAILER_LF;
            else if (!IS(ch, C_VALUE))
                return ch_fail(c, "invalid trailer field value");
            break;
        case CH_TRAILER_LF:
            if (ch != '\n')
                return ch_fail(c, "bare CR in trailer");
            c->state = CH_TRAILER_START;
            break;
        case CH_LAST_LF:
            if (ch != '\n')
                return ch_fail(c, "bare CR after last chunk");
            c->state = CH_DONE;
            c->data += data;
            c->framing += i - data;
            *used = i;
            return HTTP_CHUNKED_DONE;
        }
    }
    c->data += data;
    c->framing += i - data;
    *used = i;
    return HTTP_CHUNKED_AGAIN;
}
