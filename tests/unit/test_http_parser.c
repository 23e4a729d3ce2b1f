/*
 * Unit tests for http_parser: a table of valid and invalid heads (every
 * smuggling vector the parser must refuse), every split point of the table
 * entries, response framing, connection options, the chunked decoder fed
 * at every split point, and the status texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http_parser.h"

#define MAX_HEAD 16384

enum { REQ = HTTP_REQUEST, RESP = HTTP_RESPONSE };
enum {
    AGAIN = HTTP_PARSE_AGAIN,
    DONE = HTTP_PARSE_DONE,
    ERR = HTTP_PARSE_ERROR
};

struct head_case {
    const char *name; /* what the case checks */
    int kind;         /* REQ or RESP */
    int req_method;   /* RESP: method of the request */
    const char *text; /* the head (and maybe more) */
    int result;       /* expected http_parse result */
    int error;        /* expected error status */
    int body;         /* expected body kind on DONE */
    uint64_t cl;      /* expected content_length */
    int keep_alive;   /* expected keep_alive on DONE */
};

#define OK_REQ(n, t, b, cl, ka)                                                \
    {                                                                          \
        n, REQ, 0, t, DONE, 0, b, cl, ka                                       \
    }
#define BAD_REQ(n, t, e)                                                       \
    {                                                                          \
        n, REQ, 0, t, ERR, e, 0, 0, 0                                          \
    }
#define OK_RESP(n, m, t, b, cl, ka)                                            \
    {                                                                          \
        n, RESP, m, t, DONE, 0, b, cl, ka                                      \
    }
#define BAD_RESP(n, m, t)                                                      \
    {                                                                          \
        n, RESP, m, t, ERR, 502, 0, 0, 0                                       \
    }

#define NONE HTTP_BODY_NONE
#define LEN HTTP_BODY_LENGTH
#define CHUNK HTTP_BODY_CHUNKED
#define CLOSE HTTP_BODY_CLOSE
#define TUNNEL HTTP_BODY_TUNNEL

#define H11 " HTTP/1.1\r\nHost: a\r\n"

static const struct head_case cases[] = {
    /* valid requests */
    OK_REQ("simple GET", "GET /" H11 "\r\n", NONE, 0, 1),
    OK_REQ("HTTP/1.0 no Host, close", "GET / HTTP/1.0\r\n\r\n", NONE, 0, 0),
    OK_REQ("HTTP/1.0 keep-alive",
           "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", NONE, 0, 1),
    OK_REQ("HTTP/1.1 close", "GET /" H11 "Connection: close\r\n\r\n", NONE, 0,
           0),
    OK_REQ("close wins over keep-alive",
           "GET /" H11 "Connection: keep-alive, close\r\n\r\n", NONE, 0, 0),
    OK_REQ("Content-Length", "POST /x" H11 "Content-Length: 5\r\n\r\nhello",
           LEN, 5, 1),
    OK_REQ("Content-Length 0", "POST /x" H11 "Content-Length: 0\r\n\r\n", LEN,
           0, 1),
    OK_REQ("Content-Length with OWS",
           "POST /x" H11 "Content-Length: \t 12 \t\r\n\r\n", LEN, 12, 1),
    OK_REQ("Content-Length 18 digits",
           "POST /x" H11 "Content-Length: 999999999999999999\r\n\r\n", LEN,
           999999999999999999ULL, 1),
    OK_REQ("chunked", "POST /x" H11 "Transfer-Encoding: chunked\r\n\r\n", CHUNK,
           0, 1),
    OK_REQ("Chunked any case",
           "POST /x" H11 "transfer-encoding: ChUnKeD\r\n\r\n", CHUNK, 0, 1),
    OK_REQ("gzip, chunked",
           "POST /x" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n", CHUNK, 0,
           1),
    OK_REQ("TE list over two fields",
           "POST /x" H11 "Transfer-Encoding: gzip\r\n"
           "Transfer-Encoding: chunked\r\n\r\n",
           CHUNK, 0, 1),
    OK_REQ("leading CRLFs skipped", "\r\n\r\nGET /" H11 "\r\n", NONE, 0, 1),
    OK_REQ("absolute-form", "GET http://a.example:8080/p?q" H11 "\r\n", NONE, 0,
           1),
    OK_REQ("absolute-form https no path", "GET https://a.example" H11 "\r\n",
           NONE, 0, 1),
    OK_REQ("CONNECT authority-form",
           "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
           NONE, 0, 1),
    OK_REQ("CONNECT IPv6", "CONNECT [::1]:443" H11 "\r\n", NONE, 0, 1),
    OK_REQ("OPTIONS *", "OPTIONS *" H11 "\r\n", NONE, 0, 1),
    OK_REQ("unknown method token", "PURGE /x" H11 "\r\n", NONE, 0, 1),
    OK_REQ("empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", NONE, 0, 1),
    OK_REQ("Host IPv6 and port", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
           NONE, 0, 1),
    OK_REQ("obs-text in value", "GET /" H11 "X: caf\xc3\xa9\r\n\r\n", NONE, 0,
           1),
    OK_REQ("HTAB in value", "GET /" H11 "X: a\tb\r\n\r\n", NONE, 0, 1),
    OK_REQ("empty value", "GET /" H11 "X:\r\n\r\n", NONE, 0, 1),
    OK_REQ("query with odd chars", "GET /a?b=|{}^`\\\"<>" H11 "\r\n", NONE, 0,
           1),
    OK_REQ("pipelined: head stops at first", "GET /" H11 "\r\nGET /" H11 "\r\n",
           NONE, 0, 1),

    /* request smuggling vectors and malformed requests */
    BAD_REQ("CL + TE",
            "POST /x" H11 "Content-Length: 5\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
            400),
    BAD_REQ("TE + CL",
            "POST /x" H11 "Transfer-Encoding: chunked\r\n"
            "Content-Length: 5\r\n\r\n",
            400),
    BAD_REQ("two different CL",
            "POST /x" H11 "Content-Length: 5\r\n"
            "Content-Length: 6\r\n\r\n",
            400),
    BAD_REQ("two identical CL (documented: rejected)",
            "POST /x" H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
            400),
    BAD_REQ("CL list", "POST /x" H11 "Content-Length: 5, 5\r\n\r\n", 400),
    BAD_REQ("CL sign", "POST /x" H11 "Content-Length: +5\r\n\r\n", 400),
    BAD_REQ("CL negative", "POST /x" H11 "Content-Length: -1\r\n\r\n", 400),
    BAD_REQ("CL hex", "POST /x" H11 "Content-Length: 0x10\r\n\r\n", 400),
    BAD_REQ("CL inner space", "POST /x" H11 "Content-Length: 1 2\r\n\r\n", 400),
    BAD_REQ("CL empty", "POST /x" H11 "Content-Length:\r\n\r\n", 400),
    BAD_REQ("CL 19 digits",
            "POST /x" H11 "Content-Length: 1000000000000000000\r\n\r\n", 400),
    BAD_REQ("CL overflow",
            "POST /x" H11 "Content-Length: 99999999999999999999999\r\n\r\n",
            400),
    BAD_REQ("TE gzip alone", "POST /x" H11 "Transfer-Encoding: gzip\r\n\r\n",
            400),
    BAD_REQ("TE chunked, gzip",
            "POST /x" H11 "Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    BAD_REQ("TE chunked twice",
            "POST /x" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
    BAD_REQ("TE chunked in two fields",
            "POST /x" H11 "Transfer-Encoding: chunked\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
            400),
    BAD_REQ("TE chunked then gzip field",
            "POST /x" H11 "Transfer-Encoding: chunked\r\n"
            "Transfer-Encoding: gzip\r\n\r\n",
            400),
    BAD_REQ("TE xchunked", "POST /x" H11 "Transfer-Encoding: xchunked\r\n\r\n",
            400),
    BAD_REQ("TE with parameter",
            "POST /x" H11 "Transfer-Encoding: chunked;q=1\r\n\r\n", 400),
    BAD_REQ("TE empty", "POST /x" H11 "Transfer-Encoding:\r\n\r\n", 400),
    BAD_REQ("TE quoted", "POST /x" H11 "Transfer-Encoding: \"chunked\"\r\n\r\n",
            400),
    BAD_REQ("TE in HTTP/1.0",
            "POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    BAD_REQ("SP before colon (TE)",
            "POST /x" H11 "Transfer-Encoding : chunked\r\n\r\n", 400),
    BAD_REQ("HTAB before colon (CL)",
            "POST /x" H11 "Content-Length\t: 5\r\n\r\n", 400),
    BAD_REQ("obs-fold", "GET /" H11 "X: a\r\n b\r\n\r\n", 400),
    BAD_REQ("obs-fold with HTAB", "GET /" H11 "X: a\r\n\tb\r\n\r\n", 400),
    BAD_REQ("SP before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    BAD_REQ("bare CR in value", "GET /" H11 "X: a\rb\r\n\r\n", 400),
    BAD_REQ("bare CR before CRLF", "GET /" H11 "X: a\r\r\n\r\n", 400),
    BAD_REQ("bare CR in request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n",
            400),
    BAD_REQ("bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    BAD_REQ("bare LF field line", "GET /" H11 "X: a\n\r\n", 400),
    BAD_REQ("bare LF end of head", "GET /" H11 "\n", 400),
    BAD_REQ("bare LF leading", "\nGET /" H11 "\r\n", 400),
    BAD_REQ("bad name char", "GET /" H11 "X(y): 1\r\n\r\n", 400),
    BAD_REQ("SP in name", "GET /" H11 "X y: 1\r\n\r\n", 400),
    BAD_REQ("empty name", "GET /" H11 ": 1\r\n\r\n", 400),
    BAD_REQ("no colon", "GET /" H11 "Xy\r\n\r\n", 400),
    BAD_REQ("DEL in name", "GET /" H11 "X\x7f: 1\r\n\r\n", 400),
    BAD_REQ("non-ASCII name", "GET /" H11 "X\xc3\xa9: 1\r\n\r\n", 400),
    BAD_REQ("CTL in value",
            "GET /" H11 "X: a\x01"
            "b\r\n\r\n",
            400),
    BAD_REQ("DEL in value",
            "GET /" H11 "X: a\x7f"
            "b\r\n\r\n",
            400),
    BAD_REQ("CTL in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD_REQ("DEL in target", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD_REQ("non-ASCII target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
            400),
    BAD_REQ("fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD_REQ("HTAB in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD_REQ("SP in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD_REQ("empty target", "GET  HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD_REQ("two SP after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD_REQ("trailing SP after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
            400),
    BAD_REQ("bad method char", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD_REQ("HTTP/0.9", "GET /\r\n\r\n", 400),
    BAD_REQ("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400),
    BAD_REQ("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400),
    BAD_REQ("lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    BAD_REQ("missing Host in 1.1", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400),
    BAD_REQ("two Hosts", "GET /" H11 "Host: b\r\n\r\n", 400),
    BAD_REQ("Host with SP", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    BAD_REQ("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    BAD_REQ("Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    BAD_REQ("Host with bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
    BAD_REQ("CONNECT origin-form", "CONNECT /x" H11 "\r\n", 400),
    BAD_REQ("CONNECT without port", "CONNECT a.example" H11 "\r\n", 400),
    BAD_REQ("asterisk without OPTIONS", "GET *" H11 "\r\n", 400),
    BAD_REQ("absolute-form other scheme", "GET ftp://a/x" H11 "\r\n", 400),
    BAD_REQ("absolute-form userinfo", "GET http://u@a/x" H11 "\r\n", 400),
    BAD_REQ("absolute-form empty host", "GET http:///x" H11 "\r\n", 400),
    BAD_REQ("relative target", "GET a/b" H11 "\r\n", 400),
    BAD_REQ("bad Connection token", "GET /" H11 "Connection: a;b\r\n\r\n", 400),

    /* responses */
    OK_RESP("200 CL", HTTP_M_GET,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", LEN, 5, 1),
    OK_RESP("200 chunked", HTTP_M_GET,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", CHUNK, 0,
            1),
    OK_RESP("200 close-delimited", HTTP_M_GET, "HTTP/1.1 200 OK\r\n\r\n", CLOSE,
            0, 0),
    OK_RESP("no reason, no SP", HTTP_M_GET,
            "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", LEN, 0, 1),
    OK_RESP("empty reason", HTTP_M_GET,
            "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", LEN, 0, 1),
    OK_RESP("204", HTTP_M_GET, "HTTP/1.1 204 No Content\r\n\r\n", NONE, 0, 1),
    OK_RESP("304 with CL", HTTP_M_GET,
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", NONE, 99,
            1),
    OK_RESP("HEAD with CL", HTTP_M_HEAD,
            "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", NONE, 99, 1),
    OK_RESP("HEAD with chunked", HTTP_M_HEAD,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", NONE, 0,
            1),
    OK_RESP("100 Continue", HTTP_M_POST, "HTTP/1.1 100 Continue\r\n\r\n", NONE,
            0, 1),
    OK_RESP("101 Switching", HTTP_M_GET,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: upgrade\r\n\r\n",
            TUNNEL, 0, 0),
    OK_RESP("CONNECT 200", HTTP_M_CONNECT, "HTTP/1.1 200 OK\r\n\r\n", TUNNEL, 0,
            0),
    OK_RESP("CONNECT 407", HTTP_M_CONNECT,
            "HTTP/1.1 407 Auth\r\nContent-Length: 3\r\n\r\n", LEN, 3, 1),
    OK_RESP("1.0 response CL", HTTP_M_GET,
            "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", LEN, 3, 0),
    OK_RESP("1.0 response keep-alive", HTTP_M_GET,
            "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n"
            "Connection: keep-alive\r\n\r\n",
            LEN, 3, 1),
    OK_RESP("Connection: close", HTTP_M_GET,
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
            LEN, 3, 0),
    OK_RESP("599", HTTP_M_GET, "HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n",
            LEN, 0, 1),
    BAD_RESP("CL + TE", HTTP_M_GET,
             "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
             "Transfer-Encoding: chunked\r\n\r\n"),
    BAD_RESP("two CL", HTTP_M_GET,
             "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
             "Content-Length: 6\r\n\r\n"),
    BAD_RESP("bad CL", HTTP_M_GET,
             "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n"),
    BAD_RESP("TE gzip", HTTP_M_GET,
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
    BAD_RESP("TE in 1.0", HTTP_M_GET,
             "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    BAD_RESP("two-digit status", HTTP_M_GET, "HTTP/1.1 20 OK\r\n\r\n"),
    BAD_RESP("status 600", HTTP_M_GET, "HTTP/1.1 600 X\r\n\r\n"),
    BAD_RESP("status 099", HTTP_M_GET, "HTTP/1.1 099 X\r\n\r\n"),
    BAD_RESP("four-digit status", HTTP_M_GET, "HTTP/1.1 2000 X\r\n\r\n"),
    BAD_RESP("HTTP/2 status", HTTP_M_GET, "HTTP/2.0 200 OK\r\n\r\n"),
    BAD_RESP("CTL in reason", HTTP_M_GET, "HTTP/1.1 200 O\x01K\r\n\r\n"),
    BAD_RESP("bare LF response", HTTP_M_GET,
             "HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
    BAD_RESP("obs-fold response", HTTP_M_GET,
             "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
    BAD_RESP("empty line first", HTTP_M_GET, "\r\nHTTP/1.1 200 OK\r\n\r\n"),
    BAD_RESP("SP before colon", HTTP_M_GET,
             "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"),
};

static void
init_msg(struct http_msg *m, const struct head_case *c, size_t max)
{
    memset(m, 0, sizeof(*m));
    if (c->kind == REQ)
        http_request_init(m, max);
    else
        http_response_init(m, max, (enum http_method)c->req_method);
}

static struct http_msg *
new_msg(void)
{
    struct http_msg *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    return m;
}

/* The parts of two messages that must match whatever the split. */
static void
assert_same_msg(const struct http_msg *a, const struct http_msg *b, int res)
{
    assert_int_equal(a->error, b->error);
    assert_ptr_equal(a->error_reason, b->error_reason);
    if (res != DONE)
        return;
    assert_memory_equal(a, b, offsetof(struct http_msg, headers));
    assert_int_equal(a->n_headers, b->n_headers);
    assert_memory_equal(a->headers, b->headers,
                        a->n_headers * sizeof(a->headers[0]));
}

static void
check_case(const struct head_case *c)
{
    size_t n = strlen(c->text);
    struct http_msg *whole = new_msg(), *m = new_msg();

    init_msg(whole, c, MAX_HEAD);
    int res = http_parse(whole, c->text, n);
    if (res != c->result || (res == ERR && whole->error != c->error)) {
        print_error("case \"%s\": result %d error %d (%s), want %d/%d\n",
                    c->name, res, whole->error,
                    whole->error_reason ? whole->error_reason : "-", c->result,
                    c->error);
        fail();
    }
    if (res == DONE) {
        if (whole->body != c->body || whole->content_length != c->cl ||
            whole->keep_alive != (c->keep_alive != 0)) {
            print_error("case \"%s\": body %d cl %llu ka %d\n", c->name,
                        whole->body, (unsigned long long)whole->content_length,
                        whole->keep_alive);
            fail();
        }
        /* The head ends at the first empty line, not at the data's end. */
        assert_true(whole->head_len <= n);
        assert_memory_equal(c->text + whole->head_len - 4, "\r\n\r\n", 4);
    }
    /* Again: same result until reset. */
    assert_int_equal(http_parse(whole, c->text, n), res);

    /* Progressive feeding: 1, 2, ..., n bytes. */
    init_msg(m, c, MAX_HEAD);
    int r = AGAIN;
    size_t k;
    for (k = 1; k <= n && r == AGAIN; k++)
        r = http_parse(m, c->text, k);
    assert_int_equal(r, res);
    assert_same_msg(m, whole, res);

    /* Two pieces split at every point. */
    for (k = 1; k < n; k++) {
        init_msg(m, c, MAX_HEAD);
        r = http_parse(m, c->text, k);
        if (r == AGAIN)
            r = http_parse(m, c->text, n);
        assert_int_equal(r, res);
        assert_same_msg(m, whole, res);
    }
    free(whole);
    free(m);
}

static void
test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i]);
}

/* Spans of a typical request point at the right bytes. */
static void
test_request_spans(void **state)
{
    static const char req[] = "POST /api/v1?x=1 HTTP/1.1\r\n"
                              "Host: api.example:8080\r\n"
                              "X-Hash:  \t user-42 \t\r\n"
                              "Content-Length: 4\r\n"
                              "Expect: 100-continue\r\n"
                              "\r\n"
                              "body";
    struct http_msg *m = new_msg();
    (void)state;

    http_request_init(m, MAX_HEAD);
    assert_int_equal(http_parse(m, req, sizeof(req) - 1), DONE);
    assert_int_equal(m->head_len, sizeof(req) - 1 - 4);
    assert_int_equal(m->start, 0);
    assert_int_equal(m->method, HTTP_M_POST);
    assert_true(http_span_equals(req, m->method_s, "POST", 4));
    assert_int_equal(m->form, HTTP_TARGET_ORIGIN);
    assert_true(http_span_equals(req, m->target, "/api/v1?x=1", 11));
    assert_true(http_span_equals(req, m->path, "/api/v1?x=1", 11));
    assert_int_equal(m->minor, 1);
    assert_int_equal(m->n_headers, 4);
    assert_int_equal(m->host, 0);
    assert_true(
        http_span_equals(req, m->headers[0].value, "api.example:8080", 16));
    assert_int_equal(m->headers[1].id, HTTP_H_OTHER);
    assert_true(http_span_equals(req, m->headers[1].value, "user-42", 7));
    assert_int_equal(m->headers[2].id, HTTP_H_CONTENT_LENGTH);
    assert_true(m->flags & HTTP_F_EXPECT_CONTINUE);
    assert_int_equal(m->body, HTTP_BODY_LENGTH);
    assert_int_equal(m->content_length, 4);
    assert_true(m->keep_alive);

    assert_int_equal(http_msg_find(m, req, "x-hash", 6, 0), 1);
    assert_int_equal(http_msg_find(m, req, "X-HASH", 6, 2), -1);
    assert_int_equal(http_msg_find(m, req, "x-has", 5, 0), -1);
    assert_int_equal(http_msg_find(m, req, "HOST", 4, 0), 0);

    /* Expect is ignored in HTTP/1.0 (RFC 9110 10.1.1). */
    static const char r10[] = "PUT /x HTTP/1.0\r\nExpect: 100-continue\r\n"
                              "Content-Length: 1\r\n\r\n";
    http_request_init(m, MAX_HEAD);
    assert_int_equal(http_parse(m, r10, sizeof(r10) - 1), DONE);
    assert_false(m->flags & HTTP_F_EXPECT_CONTINUE);
    free(m);
}

static void
test_target_forms(void **state)
{
    struct http_msg *m = new_msg();
    (void)state;

    static const char abs[] = "GET http://a.example:81/p?q HTTP/1.1\r\n"
                              "Host: b\r\n\r\n";
    http_request_init(m, MAX_HEAD);
    assert_int_equal(http_parse(m, abs, sizeof(abs) - 1), DONE);
    assert_int_equal(m->form, HTTP_TARGET_ABSOLUTE);
    assert_true(http_span_equals(abs, m->authority, "a.example:81", 12));
    assert_true(http_span_equals(abs, m->path, "/p?q", 4));

    static const char abs2[] = "GET HTTPS://a?q HTTP/1.1\r\nHost: a\r\n\r\n";
    http_request_init(m, MAX_HEAD);
    assert_int_equal(http_parse(m, abs2, sizeof(abs2) - 1), DONE);
    assert_true(http_span_equals(abs2, m->authority, "a", 1));
    assert_true(http_span_equals(abs2, m->path, "?q", 2));

    static const char con[] = "CONNECT db:5432 HTTP/1.1\r\nHost: db\r\n\r\n";
    http_request_init(m, MAX_HEAD);
    assert_int_equal(http_parse(m, con, sizeof(con) - 1), DONE);
    assert_int_equal(m->method, HTTP_M_CONNECT);
    assert_int_equal(m->form, HTTP_TARGET_AUTHORITY);
    assert_true(http_span_equals(con, m->authority, "db:5432", 7));
    assert_int_equal(m->path.len, 0);

    static const char ast[] = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
    http_request_init(m, MAX_HEAD);
    assert_int_equal(http_parse(m, ast, sizeof(ast) - 1), DONE);
    assert_int_equal(m->form, HTTP_TARGET_ASTERISK);

    static const char lead[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    http_request_init(m, MAX_HEAD);
    assert_int_equal(http_parse(m, lead, sizeof(lead) - 1), DONE);
    assert_int_equal(m->start, 4);
    assert_int_equal(m->method_s.off, 4);
    free(m);
}

static void
test_connection_options(void **state)
{
    static const char req[] =
        "GET /chat HTTP/1.1\r\n"
        "Host: a\r\n"
        "Connection: Upgrade, X-Secret\r\n"
        "Upgrade: websocket\r\n"
        "x-secret: 1\r\n"
        "Keep-Alive: timeout=5\r\n"
        "TE: trailers\r\n"
        "Proxy-Connection: keep-alive\r\n"
        "X-Kept: 2\r\n"
        "Connection: content-length, host, transfer-encoding\r\n"
        "Content-Length: 0\r\n"
        "X-SECRET: 3\r\n"
        "\r\n";
    struct http_msg *m = new_msg();
    (void)state;

    http_request_init(m, MAX_HEAD);
    assert_int_equal(http_parse(m, req, sizeof(req) - 1), DONE);
    assert_true(m->flags & HTTP_F_CONN_UPGRADE);
    assert_true(m->flags & HTTP_F_CONN_OTHER);
    assert_true(m->flags & HTTP_F_UPGRADE);
    assert_false(m->flags & HTTP_F_CONN_CLOSE);
    assert_int_equal(m->upgrade, 2);
    assert_int_equal(m->n_headers, 11);

    /* hop-by-hop: everything but Host, X-Kept and Content-Length */
    static const int hop[] = {0, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1};
    for (int i = 0; i < 11; i++)
        assert_int_equal(!!(m->headers[i].flags & HTTP_HF_HOP), hop[i]);

    struct http_conn_iter it;
    struct http_span tok;
    static const char *const want[] = {"Upgrade", "X-Secret", "content-length",
                                       "host", "transfer-encoding"};
    http_conn_iter_init(&it);
    for (int i = 0; i < 5; i++) {
        assert_true(http_conn_iter_next(&it, m, req, &tok));
        assert_true(http_span_equals(req, tok, want[i], strlen(want[i])));
    }
    assert_false(http_conn_iter_next(&it, m, req, &tok));
    assert_false(http_conn_iter_next(&it, m, req, &tok));

    /* 64 options are fine, 65 are refused. */
    char buf[1024];
    int n = snprintf(buf, sizeof(buf),
                     "GET / HTTP/1.1\r\nHost: a\r\n"
                     "Connection: ");
    for (int i = 0; i < 64; i++)
        n += snprintf(buf + n, sizeof(buf) - n, "o%d,", i);
    n += snprintf(buf + n, sizeof(buf) - n, "\r\n\r\n");
    http_request_init(m, MAX_HEAD);
    assert_int_equal(http_parse(m, buf, (size_t)n), DONE);
    n = snprintf(buf, sizeof(buf),
                 "GET / HTTP/1.1\r\nHost: a\r\n"
                 "Connection: ");
    for (int i = 0; i < 32; i++)
        n += snprintf(buf + n, sizeof(buf) - n, "o%d,", i);
    n += snprintf(buf + n, sizeof(buf) - n, "\r\nConnection: ");
    for (int i = 0; i < 33; i++)
        n += snprintf(buf + n, sizeof(buf) - n, "p%d,", i);
    n += snprintf(buf + n, sizeof(buf) - n, "\r\n\r\n");
    http_request_init(m, MAX_HEAD);
    assert_int_equal(http_parse(m, buf, (size_t)n), ERR);
    assert_int_equal(m->error, 400);
    free(m);
}

static void
test_limits(void **state)
{
    struct http_msg *m = new_msg();
    char *buf = malloc(MAX_HEAD * 2);
    size_t n;
    (void)state;
    assert_non_null(buf);

    /* Exactly HTTP_MAX_HEADERS fields: accepted; one more: 431. */
    n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < HTTP_MAX_HEADERS; i++)
        n += (size_t)sprintf(buf + n, "X-%d: v\r\n", i);
    memcpy(buf + n, "\r\n", 2);
    http_request_init(m, MAX_HEAD);
    assert_int_equal(http_parse(m, buf, n + 2), DONE);
    assert_int_equal(m->n_headers, HTTP_MAX_HEADERS);
    n += (size_t)sprintf(buf + n, "X-last: v\r\n\r\n");
    http_request_init(m, MAX_HEAD);
    assert_int_equal(http_parse(m, buf, n), ERR);
    assert_int_equal(m->error, 431);

    /* A head of exactly max bytes is fine; one byte more is 431. */
    static const char pre[] = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    size_t max = 200;
    memset(buf, 'v', MAX_HEAD * 2);
    memcpy(buf, pre, sizeof(pre) - 1);
    memcpy(buf + max - 4, "\r\n\r\n", 4);
    http_request_init(m, max);
    assert_int_equal(http_parse(m, buf, max), DONE);
    assert_int_equal(m->head_len, max);
    memset(buf, 'v', MAX_HEAD * 2);
    memcpy(buf, pre, sizeof(pre) - 1);
    memcpy(buf + max - 3, "\r\n\r\n", 4);
    http_request_init(m, max);
    assert_int_equal(http_parse(m, buf, max - 1), AGAIN);
    assert_int_equal(http_parse(m, buf, max), ERR);
    assert_int_equal(m->error, 431);
    /* Same when everything arrives at once, beyond the limit. */
    http_request_init(m, max);
    assert_int_equal(http_parse(m, buf, max + 1), ERR);
    assert_int_equal(m->error, 431);

    /* A response head too large means 502 to the proxy. */
    memcpy(buf, "HTTP/1.1 200 OK\r\nX: ", 20);
    http_response_init(m, max, HTTP_M_GET);
    assert_int_equal(http_parse(m, buf, max * 2), ERR);
    assert_int_equal(m->error, 502);

    /*
     * A 16 KiB head fed one byte at a time: the LF search resumes, so the
     * work stays linear (this would time out if it rescanned).
     */
    n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    memset(buf + n, 'v', MAX_HEAD - n - 4);
    memcpy(buf + MAX_HEAD - 4, "\r\n\r\n", 4);
    http_request_init(m, MAX_HEAD);
    int r = AGAIN;
    for (size_t k = 1; k <= MAX_HEAD && r == AGAIN; k++)
        r = http_parse(m, buf, k);
    assert_int_equal(r, DONE);
    assert_int_equal(m->head_len, MAX_HEAD);
    free(buf);
    free(m);
}

/* Keep-alive connection: reset and parse the next pipelined head. */
static void
test_reset_pipeline(void **state)
{
    static const char two[] = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                              "GET /b HTTP/1.1\r\nHost: b\r\n"
                              "Connection: close\r\n\r\n";
    struct http_msg *m = new_msg();
    (void)state;

    http_request_init(m, 64);
    assert_int_equal(http_parse(m, two, sizeof(two) - 1), DONE);
    assert_true(m->keep_alive);
    size_t off = m->head_len;
    http_msg_reset(m);
    assert_int_equal(m->max_head, 64);
    assert_int_equal(m->kind, HTTP_REQUEST);
    assert_int_equal(http_parse(m, two + off, sizeof(two) - 1 - off), DONE);
    assert_true(http_span_equals(two + off, m->target, "/b", 2));
    assert_false(m->keep_alive);

    /* interim response then the final one */
    static const char resp[] = "HTTP/1.1 100 Continue\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    http_response_init(m, 128, HTTP_M_POST);
    assert_int_equal(http_parse(m, resp, sizeof(resp) - 1), DONE);
    assert_int_equal(m->status, 100);
    assert_int_equal(m->body, HTTP_BODY_NONE);
    off = m->head_len;
    http_msg_reset(m);
    assert_int_equal(m->req_method, HTTP_M_POST);
    assert_int_equal(http_parse(m, resp + off, sizeof(resp) - 1 - off), DONE);
    assert_int_equal(m->status, 200);
    assert_true(http_span_equals(resp + off, m->reason, "ok", 2));
    assert_int_equal(m->body, HTTP_BODY_LENGTH);
    free(m);
}

/* ---- chunked ---------------------------------------------------------- */

struct chunk_case {
    const char *name; /* what the case checks */
    const char *text; /* body bytes (may run past end) */
    int result;       /* expected final result */
    size_t used;      /* DONE: bytes of the body */
    uint64_t data;    /* DONE: data bytes */
};

#define CH_OK(n, t, used, data)                                                \
    {                                                                          \
        n, t, HTTP_CHUNKED_DONE, used, data                                    \
    }
#define CH_BAD(n, t)                                                           \
    {                                                                          \
        n, t, HTTP_CHUNKED_ERROR, 0, 0                                         \
    }
#define CH_MORE(n, t)                                                          \
    {                                                                          \
        n, t, HTTP_CHUNKED_AGAIN, 0, 0                                         \
    }

static const struct chunk_case chunk_cases[] = {
    CH_OK("one chunk", "5\r\nhello\r\n0\r\n\r\n", 15, 5),
    CH_OK("stops at message end", "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1", 15,
          5),
    CH_OK("empty body", "0\r\n\r\n", 5, 0),
    CH_OK("two chunks, hex", "A\r\n0123456789\r\n1\r\nx\r\n0\r\n\r\n", 26, 11),
    CH_OK("lower hex, leading zeros", "00a\r\n0123456789\r\n0\r\n\r\n", 22, 10),
    CH_OK("extensions", "5;a=b;c=\"d e\"\r\nhello\r\n0;z\r\n\r\n", 29, 5),
    CH_OK("BWS before ext", "5 \t;a\r\nhello\r\n0\r\n\r\n", 19, 5),
    CH_OK("trailers", "1\r\nx\r\n0\r\nX-Sum: 12\r\nY:\r\n\r\n", 26, 1),
    CH_OK("data holds CRLF", "4\r\n\r\n\r\n\r\n0\r\n\r\n", 14, 4),
    CH_OK("16 hex digits", "0000000000000001\r\nx\r\n0\r\n\r\n", 26, 1),
    CH_MORE("huge chunk pending", "ffffffffffffffff\r\nabc"),
    CH_MORE("trailer pending", "0\r\nX: y\r\n"),
    CH_BAD("17 hex digits", "00000000000000001\r\nx\r\n0\r\n\r\n"),
    CH_BAD("empty size", "\r\nx\r\n0\r\n\r\n"),
    CH_BAD("non-hex size", "g\r\n"),
    CH_BAD("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"),
    CH_BAD("negative", "-5\r\nhello\r\n0\r\n\r\n"),
    CH_BAD("plus sign", "+5\r\nhello\r\n0\r\n\r\n"),
    CH_BAD("leading SP", " 5\r\nhello\r\n0\r\n\r\n"),
    CH_BAD("trailing SP, no ext", "5 \r\nhello\r\n0\r\n\r\n"),
    CH_BAD("bare LF after size", "5\nhello\r\n0\r\n\r\n"),
    CH_BAD("bare CR after size", "5\rhello\r\n0\r\n\r\n"),
    CH_BAD("data too long", "5\r\nhelloX\r\n0\r\n\r\n"),
    CH_BAD("data too short", "5\r\nhell\r\n0\r\n\r\n"),
    CH_BAD("bare LF after data", "5\r\nhello\n0\r\n\r\n"),
    CH_BAD("CTL in extension", "5;a\x01\r\nhello\r\n0\r\n\r\n"),
    CH_BAD("LF in extension", "5;a\nb\r\nhello\r\n0\r\n\r\n"),
    CH_BAD("bare CR in extension", "5;a\rb\r\nhello\r\n0\r\n\r\n"),
    CH_BAD("bare LF ends body", "0\r\n\n"),
    CH_BAD("bare LF after trailer", "0\r\nX: y\n\r\n"),
    CH_BAD("trailer obs-fold", "0\r\nX: y\r\n z\r\n\r\n"),
    CH_BAD("trailer no colon", "0\r\nX y\r\n\r\n"),
    CH_BAD("trailer CTL", "0\r\nX: \x01\r\n\r\n"),
    CH_BAD("CR then junk at end", "0\r\n\rX"),
};

static enum http_chunked_result
feed_steps(struct http_chunked *c, const char *t, size_t n, size_t step,
           size_t *total)
{
    enum http_chunked_result r = HTTP_CHUNKED_AGAIN;
    size_t used;

    *total = 0;
    for (size_t off = 0; off < n && r == HTTP_CHUNKED_AGAIN; off += step) {
        size_t k = n - off < step ? n - off : step;
        r = http_chunked_feed(c, t + off, k, &used);
        *total += used;
        if (r == HTTP_CHUNKED_AGAIN)
            assert_int_equal(used, k);
    }
    return r;
}

static void
test_chunked_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
        const struct chunk_case *cc = &chunk_cases[i];
        size_t n = strlen(cc->text), total;
        struct http_chunked c;

        for (size_t step = 1; step <= n; step++) {
            http_chunked_init(&c, 0);
            int r = feed_steps(&c, cc->text, n, step, &total);
            if (r != cc->result) {
                print_error("chunk case \"%s\" step %zu: %d (%s), want %d\n",
                            cc->name, step, r,
                            c.error_reason ? c.error_reason : "-", cc->result);
                fail();
            }
            if (r == HTTP_CHUNKED_DONE) {
                assert_int_equal(total, cc->used);
                assert_int_equal(c.data, cc->data);
                assert_int_equal(c.framing, cc->used - cc->data);
                size_t used = 99;
                assert_int_equal(http_chunked_feed(&c, "x", 1, &used),
                                 HTTP_CHUNKED_DONE);
                assert_int_equal(used, 0);
            }
        }
        /* two pieces at every split point */
        for (size_t k = 1; k < n; k++) {
            size_t u1, u2 = 0;
            http_chunked_init(&c, 0);
            int r = http_chunked_feed(&c, cc->text, k, &u1);
            if (r == HTTP_CHUNKED_AGAIN)
                r = http_chunked_feed(&c, cc->text + k, n - k, &u2);
            assert_int_equal(r, cc->result);
            if (r == HTTP_CHUNKED_DONE)
                assert_int_equal(u1 + u2, cc->used);
        }
    }
}

static void
test_chunked_limits(void **state)
{
    struct http_chunked c;
    char buf[256];
    size_t used;
    (void)state;

    /* size line of exactly max_line bytes (CRLF included) passes */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "0;", 2);
    memcpy(buf + 30, "\r\n\r\n", 4);
    http_chunked_init(&c, 32);
    assert_int_equal(http_chunked_feed(&c, buf, 34, &used), HTTP_CHUNKED_DONE);
    assert_int_equal(used, 34);
    http_chunked_init(&c, 31);
    assert_int_equal(http_chunked_feed(&c, buf, 34, &used), HTTP_CHUNKED_ERROR);

    /* trailer section bounded too */
    memcpy(buf, "0\r\nX:", 5);
    memset(buf + 5, 'v', 100);
    memcpy(buf + 105, "\r\n\r\n", 4);
    http_chunked_init(&c, 64);
    assert_int_equal(http_chunked_feed(&c, buf, 109, &used),
                     HTTP_CHUNKED_ERROR);
    http_chunked_init(&c, 106);
    assert_int_equal(http_chunked_feed(&c, buf, 109, &used), HTTP_CHUNKED_DONE);

    /* a large chunk is skipped without looking at its bytes */
    http_chunked_init(&c, 0);
    assert_int_equal(http_chunked_feed(&c, "100000\r\n", 8, &used),
                     HTTP_CHUNKED_AGAIN);
    assert_int_equal(c.remaining, 0x100000);
    char *big = calloc(1, 0x100000);
    assert_non_null(big);
    assert_int_equal(http_chunked_feed(&c, big, 0x100000, &used),
                     HTTP_CHUNKED_AGAIN);
    free(big);
    assert_int_equal(http_chunked_feed(&c, "\r\n0\r\n\r\n", 7, &used),
                     HTTP_CHUNKED_DONE);
    assert_int_equal(c.data, 0x100000);
    assert_int_equal(c.framing, 8 + 7);
}

/* Every registered code has its RFC phrase; the rest a class or Unknown. */
static void
test_status_text(void **state)
{
    static const struct {
        unsigned status;
        const char *text;
    } want[] = {
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
        /* unassigned or unregistered: the class (RFC 9110 15) */
        {102, "Informational"},
        {199, "Informational"},
        {207, "Successful"},
        {299, "Successful"},
        {306, "Redirection"},
        {418, "Client Error"},
        {451, "Client Error"},
        {499, "Client Error"},
        {506, "Server Error"},
        {599, "Server Error"},
        /* not a status code at all */
        {0, "Unknown"},
        {1, "Unknown"},
        {99, "Unknown"},
        {600, "Unknown"},
        {1000, "Unknown"},
        {65536 + 200, "Unknown"},
        {~0u, "Unknown"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const char *got = http_status_text(want[i].status);
        if (got == NULL || strcmp(got, want[i].text) != 0) {
            print_error("status %u: \"%s\", want \"%s\"\n", want[i].status,
                        got ? got : "(null)", want[i].text);
            fail();
        }
    }
    /* Whatever the code, the text fits a status line (RFC 9112 4). */
    for (unsigned st = 0; st < 1100; st++) {
        const char *t = http_status_text(st);
        assert_non_null(t);
        assert_true(t[0] != '\0');
        for (size_t k = 0; t[k] != '\0'; k++)
            assert_true(t[k] == ' ' || t[k] == '\t' ||
                        (t[k] > 0x20 && t[k] < 0x7f));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_request_spans),
        cmocka_unit_test(test_target_forms),
        cmocka_unit_test(test_connection_options),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_reset_pipeline),
        cmocka_unit_test(test_chunked_table),
        cmocka_unit_test(test_chunked_limits),
        cmocka_unit_test(test_status_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
