/*
 * libFuzzer driver: the input is a member's byte stream, parsed as the
 * response to a GET, a HEAD and a CONNECT (framing differs, validity must
 * not), at once and in pieces.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http_msg whole, part;
    static const enum http_method methods[] = {HTTP_M_GET, HTTP_M_HEAD,
                                               HTTP_M_CONNECT};
    const char *buf = (const char *)data;
    size_t step = 1 + size % 11;
    int first = -1;

    for (int i = 0; i < 3; i++) {
        http_response_init(&whole, FUZZ_MAX_HEAD, methods[i]);
        http_response_init(&part, FUZZ_MAX_HEAD, methods[i]);
        int res = fuzz_head(&whole, &part, buf, size, step);
        if (first < 0)
            first = res;
        CHECK(res == first);
        if (res == HTTP_PARSE_ERROR)
            CHECK(whole.error == 502);
        if (res != HTTP_PARSE_DONE)
            continue;
        if (methods[i] == HTTP_M_HEAD)
            CHECK(whole.body == HTTP_BODY_NONE ||
                  whole.body == HTTP_BODY_TUNNEL);
        if (whole.body == HTTP_BODY_CHUNKED)
            fuzz_chunked(buf + whole.head_len, size - whole.head_len, step);
        if (whole.body == HTTP_BODY_CLOSE || whole.body == HTTP_BODY_TUNNEL)
            CHECK(!whole.keep_alive);
    }
    return 0;
}
