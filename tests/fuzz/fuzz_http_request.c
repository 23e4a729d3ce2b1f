/*
 * libFuzzer driver: the input is a client's byte stream. It is parsed as a
 * request head at once and in pieces (outcomes must match), and the bytes
 * after a chunked head go through the chunked decoder, as the proxy would
 * do. The whole input is also fed to the chunked decoder on its own.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http_msg whole, part;
    const char *buf = (const char *)data;
    size_t step = 1 + size % 13;

    http_request_init(&whole, FUZZ_MAX_HEAD);
    http_request_init(&part, FUZZ_MAX_HEAD);
    int res = fuzz_head(&whole, &part, buf, size, step);
    if (res == HTTP_PARSE_DONE && whole.body == HTTP_BODY_CHUNKED)
        fuzz_chunked(buf + whole.head_len, size - whole.head_len, step);
    fuzz_chunked(buf, size, step);
    return 0;
}
