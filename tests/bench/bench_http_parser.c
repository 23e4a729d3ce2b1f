/*
 * bench_http_parser: nanoseconds per head for a typical ~300-byte browser
 * request, the same request fed in two pieces, a small response, and a
 * chunked body. Single thread, no allocation in the loop.
 *
 *   tests/bench/bench_http_parser [iterations]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_parser.h"

static const char request[] =
    "GET /api/v1/users/12345/profile?fields=name,email HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Firefox/115.0\r\n"
    "Accept: application/json, text/plain, */*\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=4f2a9c1e7b\r\n"
    "\r\n";

static const char response[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 64\r\n"
    "Date: Sun, 22 Nov 2026 01:22:40 GMT\r\n"
    "Server: nginx/1.22.1\r\n"
    "\r\n";

static const char chunked[] =
    "40\r\n0123456789012345678901234567890123456789012345678901234567890123"
    "\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\n\r\n";

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keeps the compiler from dropping the work. */
static volatile unsigned sink;

static double
bench_request(long iters, int split)
{
    static struct http_msg m;
    size_t n = sizeof(request) - 1;
    double t0 = now();

    for (long i = 0; i < iters; i++) {
        http_request_init(&m, 16384);
        if (split && http_parse(&m, request, n / 2) != HTTP_PARSE_AGAIN)
            abort();
        if (http_parse(&m, request, n) != HTTP_PARSE_DONE)
            abort();
        sink += m.head_len;
    }
    return (now() - t0) / (double)iters * 1e9;
}

static double
bench_response(long iters)
{
    static struct http_msg m;
    double t0 = now();

    for (long i = 0; i < iters; i++) {
        http_response_init(&m, 16384, HTTP_M_GET);
        if (http_parse(&m, response, sizeof(response) - 1) != HTTP_PARSE_DONE)
            abort();
        sink += m.head_len;
    }
    return (now() - t0) / (double)iters * 1e9;
}

static double
bench_chunked(long iters)
{
    struct http_chunked c;
    size_t used;
    double t0 = now();

    for (long i = 0; i < iters; i++) {
        http_chunked_init(&c, 0);
        if (http_chunked_feed(&c, chunked, sizeof(chunked) - 1, &used) !=
            HTTP_CHUNKED_DONE)
            abort();
        sink += (unsigned)used;
    }
    return (now() - t0) / (double)iters * 1e9;
}

int
main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 2000000;

    if (iters <= 0)
        iters = 1;
    bench_request(iters / 10 + 1, 0); /* warm up */
    printf("request head (%zu bytes):       %.1f ns\n", sizeof(request) - 1,
           bench_request(iters, 0));
    printf("request head in two pieces:     %.1f ns\n",
           bench_request(iters, 1));
    printf("response head (%zu bytes):      %.1f ns\n", sizeof(response) - 1,
           bench_response(iters));
    printf("chunked body (%zu bytes):        %.1f ns\n", sizeof(chunked) - 1,
           bench_chunked(iters));
    return 0;
}
