/*
 * Shared checks of the libFuzzer drivers: parse a head at once and in
 * pieces, demand identical outcomes, and check every span stays inside
 * the head. A violated invariant aborts, which libFuzzer reports.
 */
#ifndef FERRY_FUZZ_COMMON_H
#define FERRY_FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parser.h"

#define FUZZ_MAX_HEAD 2048

#define CHECK(x)                                                             \
    do {                                                                     \
        if (!(x))                                                            \
            abort();                                                         \
    } while (0)

static void
check_span(struct http_span s, uint32_t end)
{
    CHECK(s.off <= end && s.len <= end - s.off);
}

static void
check_done(const struct http_msg *m, const char *buf, size_t len)
{
    CHECK(m->head_len >= 4 && m->head_len <= len);
    CHECK(m->head_len <= m->max_head);
    CHECK(memcmp(buf + m->head_len - 4, "\r\n\r\n", 4) == 0);
    CHECK(m->start < m->head_len);
    CHECK(m->n_headers <= HTTP_MAX_HEADERS);
    CHECK(m->minor <= 1);
    for (unsigned i = 0; i < m->n_headers; i++) {
        const struct http_header *h = &m->headers[i];
        check_span(h->name, m->head_len);
        check_span(h->value, m->head_len);
        CHECK(h->name.len > 0);
        /* the lookup helper finds this name at or before i */
        int k = http_msg_find(m, buf, buf + h->name.off, h->name.len, 0);
        CHECK(k >= 0 && k <= (int)i);
        for (uint32_t j = 0; j < h->value.len; j++) {
            unsigned char c = (unsigned char)buf[h->value.off + j];
            CHECK(c == '\t' || c >= 0x20);
            CHECK(c != 0x7f && c != '\r' && c != '\n');
        }
    }
    CHECK(!((m->flags & HTTP_F_CHUNKED) &&
            (m->flags & HTTP_F_CONTENT_LENGTH)));
    CHECK(m->body != HTTP_BODY_CHUNKED || (m->flags & HTTP_F_CHUNKED));
    if (m->kind == HTTP_REQUEST) {
        check_span(m->method_s, m->head_len);
        check_span(m->target, m->head_len);
        check_span(m->authority, m->head_len);
        check_span(m->path, m->head_len);
        CHECK(m->minor == 0 || m->host >= 0);
        CHECK(m->body != HTTP_BODY_CLOSE && m->body != HTTP_BODY_TUNNEL);
    } else {
        check_span(m->reason, m->head_len);
        CHECK(m->status >= 100 && m->status <= 599);
    }

    struct http_conn_iter it;
    struct http_span tok;
    unsigned n = 0;
    http_conn_iter_init(&it);
    while (http_conn_iter_next(&it, m, buf, &tok)) {
        check_span(tok, m->head_len);
        CHECK(tok.len > 0);
        CHECK(++n <= 64);
    }
}

static void
same_msg(const struct http_msg *a, const struct http_msg *b,
         enum http_parse_result res)
{
    CHECK(a->error == b->error);
    CHECK(a->error_reason == b->error_reason);
    if (res != HTTP_PARSE_DONE)
        return;
    CHECK(memcmp(a, b, offsetof(struct http_msg, headers)) == 0);
    CHECK(memcmp(a->headers, b->headers,
                 a->n_headers * sizeof(a->headers[0])) == 0);
}

/* Parses buf at once and again in pieces of step bytes; returns result. */
static int
fuzz_head(struct http_msg *whole, struct http_msg *part, const char *buf,
          size_t len, size_t step)
{
    enum http_parse_result res = http_parse(whole, buf, len);
    CHECK(http_parse(whole, buf, len) == res);
    if (res == HTTP_PARSE_ERROR)
        CHECK(whole->error == 400 || whole->error == 431 ||
              whole->error == 502);
    if (res == HTTP_PARSE_DONE)
        check_done(whole, buf, len);
    if (res == HTTP_PARSE_AGAIN)
        CHECK(len < whole->max_head);

    enum http_parse_result r = HTTP_PARSE_AGAIN;
    for (size_t k = step; r == HTTP_PARSE_AGAIN; k += step) {
        if (k > len)
            k = len;
        r = http_parse(part, buf, k);
        if (k == len)
            break;
    }
    CHECK(r == res);
    same_msg(whole, part, res);
    return res;
}

/* Feeds a chunked body at once and in pieces; both must agree. */
static void
fuzz_chunked(const char *buf, size_t len, size_t step)
{
    struct http_chunked a, b;
    size_t used_a, used_b = 0, u;

    http_chunked_init(&a, 256);
    http_chunked_init(&b, 256);
    enum http_chunked_result ra = http_chunked_feed(&a, buf, len, &used_a);
    enum http_chunked_result rb = HTTP_CHUNKED_AGAIN;
    for (size_t off = 0; off < len && rb == HTTP_CHUNKED_AGAIN; off += step) {
        size_t k = len - off < step ? len - off : step;
        rb = http_chunked_feed(&b, buf + off, k, &u);
        CHECK(u <= k);
        used_b += u;
    }
    CHECK(ra == rb);
    if (ra == HTTP_CHUNKED_DONE) {
        CHECK(used_a == used_b && used_a <= len);
        CHECK(a.data == b.data && a.framing == b.framing);
        CHECK(a.data + a.framing == used_a);
        CHECK(used_a >= 5 && memcmp(buf + used_a - 2, "\r\n", 2) == 0);
    } else if (ra == HTTP_CHUNKED_AGAIN) {
        CHECK(used_a == len && used_b == len);
        CHECK(a.data + a.framing == len);
    } else {
        CHECK(a.error_reason == b.error_reason);
    }
}

#endif
