/*
 * Unit tests for strbuf: growth, reuse, escapers, Prometheus lines.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "strbuf.h"

/* Asserts that sb holds exactly the bytes of `want` (length-checked). */
static void
assert_sb(const struct strbuf *sb, const char *want, size_t want_len)
{
    assert_false(strbuf_failed(sb));
    assert_int_equal(sb->len, want_len);
    assert_memory_equal(sb->data, want, want_len);
    assert_int_equal(sb->data[sb->len], '\0');
}

#define ASSERT_SB(sb, lit) assert_sb((sb), (lit), sizeof(lit) - 1)

static void
test_append_grow_and_reset(void **state)
{
    struct strbuf sb;
    char *first;
    size_t cap, i;

    strbuf_init(&sb);
    for (i = 0; i < 10000; i++)
        strbuf_putc(&sb, (char)('a' + i % 26));
    assert_int_equal(sb.len, 10000);
    assert_true(sb.cap > 10000);
    assert_int_equal(sb.data[9999], 'a' + 9999 % 26);
    assert_int_equal(sb.data[10000], '\0');

    /* Reset keeps the allocation: refilling the same amount reuses it. */
    first = sb.data;
    cap = sb.cap;
    strbuf_reset(&sb);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sb.data, "");
    for (i = 0; i < 10000; i++)
        strbuf_putc(&sb, 'x');
    assert_ptr_equal(sb.data, first);
    assert_int_equal(sb.cap, cap);
    strbuf_free(&sb);
    assert_null(sb.data);
}

static void
test_append_binary_and_puts(void **state)
{
    struct strbuf sb;

    strbuf_init(&sb);
    strbuf_append(&sb, "a\0b", 3);
    strbuf_puts(&sb, "cd");
    strbuf_append(&sb, "", 0);
    assert_sb(&sb, "a\0bcd", 5);
    strbuf_free(&sb);
}

static void
test_printf_long_and_short(void **state)
{
    struct strbuf sb;
    char big[3000];

    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    strbuf_init(&sb);
    strbuf_printf(&sb, "%d-%s", 42, "x");
    ASSERT_SB(&sb, "42-x");
    /* Longer than the free room: exercises the grow-and-retry path. */
    strbuf_printf(&sb, "[%s]", big);
    assert_int_equal(sb.len, 4 + 2 + 2999);
    assert_int_equal(sb.data[5], 'z');
    assert_int_equal(sb.data[sb.len - 1], ']');
    assert_int_equal(sb.data[sb.len], '\0');
    strbuf_free(&sb);
}

static void
test_integers(void **state)
{
    struct strbuf sb;

    strbuf_init(&sb);
    strbuf_append_u64(&sb, 0);
    strbuf_putc(&sb, ' ');
    strbuf_append_u64(&sb, UINT64_MAX);
    strbuf_putc(&sb, ' ');
    strbuf_append_i64(&sb, INT64_MIN);
    strbuf_putc(&sb, ' ');
    strbuf_append_i64(&sb, -7);
    ASSERT_SB(&sb, "0 18446744073709551615 -9223372036854775808 -7");
    strbuf_free(&sb);
}

static void
test_doubles(void **state)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.0, "0"},
        {-0.0, "0"},
        {1.0, "1"},
        {-3.0, "-3"},
        {123456789012345.0, "123456789012345"},
        {1e15, "1e+15"},
        {0.5, "0.5"},
        {0.00025, "0.00025"},
        {0.1, "0.1"},
        {2.5, "2.5"},
        {1.0 / 3.0, "0.33333333333333331"},
        {1e-7, "1e-07"},
        {-1.25, "-1.25"},
    };
    struct strbuf sb;
    size_t i;

    strbuf_init(&sb);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        strbuf_reset(&sb);
        strbuf_append_double(&sb, cases[i].v);
        assert_string_equal(sb.data, cases[i].want);
    }
    strbuf_reset(&sb);
    strbuf_append_double(&sb, NAN);
    strbuf_putc(&sb, ' ');
    strbuf_append_double(&sb, INFINITY);
    strbuf_putc(&sb, ' ');
    strbuf_append_double(&sb, -INFINITY);
    ASSERT_SB(&sb, "NaN +Inf -Inf");

    /* JSON has no NaN or infinities. */
    strbuf_reset(&sb);
    strbuf_append_json_double(&sb, NAN);
    strbuf_putc(&sb, ',');
    strbuf_append_json_double(&sb, -INFINITY);
    strbuf_putc(&sb, ',');
    strbuf_append_json_double(&sb, 0.25);
    ASSERT_SB(&sb, "null,null,0.25");
    strbuf_free(&sb);
}

static void
test_prom_label_escape(void **state)
{
    struct strbuf sb;
    const char in[] = "a\\b\"c\nd\te\x01\xc3\xa9";

    strbuf_init(&sb);
    strbuf_append_prom_label_value(&sb, in, sizeof(in) - 1);
    ASSERT_SB(&sb, "a\\\\b\\\"c\\nd\te\x01\xc3\xa9");
    strbuf_reset(&sb);
    strbuf_append_prom_help(&sb, in, sizeof(in) - 1);
    /* HELP escapes only backslash and newline. */
    ASSERT_SB(&sb, "a\\\\b\"c\\nd\te\x01\xc3\xa9");
    strbuf_free(&sb);
}

static void
test_html_escape(void **state)
{
    struct strbuf sb;
    const char in[] = "<a href=\"x\">Tom & 'Jerry'</a>";

    strbuf_init(&sb);
    strbuf_append_html(&sb, in, sizeof(in) - 1);
    ASSERT_SB(&sb, "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;"
                   "&lt;/a&gt;");
    strbuf_free(&sb);
}

static void
test_json_escape_table(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        {"plain", 5, "plain"},
        {"q\"b\\s/", 6, "q\\\"b\\\\s/"},
        {"\n\r\t\b\f", 5, "\\n\\r\\t\\u0008\\u000c"},
        {"\x00\x1f\x7f", 3, "\\u0000\\u001f\\u007f"},
        /* Valid UTF-8 of each length passes through. */
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
         "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
        {"\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf"}, /* U+10FFFF */
        /* Invalid bytes: each one becomes U+FFFD. */
        {"\x80", 1, "\\ufffd"}, /* stray cont. */
        {"\xff", 1, "\\ufffd"},
        {"\xc0\xaf", 2, "\\ufffd\\ufffd"},            /* overlong '/' */
        {"\xe0\x80\xaf", 3, "\\ufffd\\ufffd\\ufffd"}, /* overlong */
        {"\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd"}, /* surrogate */
        {"\xf4\x90\x80\x80", 4,
         "\\ufffd\\ufffd\\ufffd\\ufffd"},    /* > U+10FFFF */
        {"a\xc3", 2, "a\\ufffd"},            /* truncated */
        {"\xe2\x82x", 3, "\\ufffd\\ufffdx"}, /* cut short */
    };
    struct strbuf sb;
    size_t i;

    strbuf_init(&sb);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        strbuf_reset(&sb);
        strbuf_append_json_escaped(&sb, cases[i].in, cases[i].len);
        assert_false(strbuf_failed(&sb));
        assert_int_equal(sb.len, strlen(cases[i].want));
        assert_memory_equal(sb.data, cases[i].want, sb.len);
    }
    strbuf_reset(&sb);
    strbuf_append_json_string(&sb, "a\"b");
    strbuf_putc(&sb, ',');
    strbuf_append_json_string(&sb, NULL);
    ASSERT_SB(&sb, "\"a\\\"b\",null");
    strbuf_free(&sb);
}

/*
 * Any byte string gives output with no raw control characters, no bytes
 * outside valid UTF-8, and only known escapes: checked over every 1- and
 * 2-byte input and a pseudo-random set of longer ones.
 */
static void
check_json_valid(const struct strbuf *sb)
{
    const unsigned char *p = (const unsigned char *)sb->data;
    size_t i = 0, n = sb->len;

    while (i < n) {
        unsigned char c = p[i];

        assert_true(c >= 0x20 && c != 0x7f && c != '"');
        if (c == '\\') {
            assert_true(i + 1 < n);
            if (p[i + 1] == 'u') {
                assert_true(i + 5 < n);
                i += 6;
            } else {
                assert_non_null(strchr("\"\\nrt", p[i + 1]));
                i += 2;
            }
            continue;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        /* Lead byte of a multi-byte sequence followed by continuations. */
        {
            size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2, k;

            assert_true(c >= 0xc2 && c <= 0xf4);
            assert_true(i + len <= n);
            for (k = 1; k < len; k++)
                assert_true((p[i + k] & 0xc0) == 0x80);
            i += len;
        }
    }
}

static void
test_json_any_bytes(void **state)
{
    struct strbuf sb;
    unsigned char in[8];
    uint32_t x = 12345;
    unsigned a, b, k, j;

    strbuf_init(&sb);
    for (a = 0; a < 256; a++) {
        for (b = 0; b < 256; b++) {
            in[0] = (unsigned char)a;
            in[1] = (unsigned char)b;
            strbuf_reset(&sb);
            strbuf_append_json_escaped(&sb, (char *)in, 2);
            check_json_valid(&sb);
        }
    }
    for (k = 0; k < 20000; k++) {
        for (j = 0; j < sizeof(in); j++) {
            x = x * 1103515245u + 12345u;
            in[j] = (unsigned char)(x >> 16);
        }
        strbuf_reset(&sb);
        strbuf_append_json_escaped(&sb, (char *)in, sizeof(in));
        check_json_valid(&sb);
    }
    strbuf_free(&sb);
}

static void
test_prom_lines(void **state)
{
    const struct strbuf_label labels[] = {
        {"backend", "api"},
        {"server", "api.internal:8080"},
        {"address", "10.0.0.1:8080"},
    };
    const struct strbuf_label odd[] = {{"name", "we\"ird\\\nname"}};
    const struct strbuf_label le = {"le", "+Inf"};
    struct strbuf sb;

    strbuf_init(&sb);
    strbuf_prom_header(&sb, "ferry_server_requests_total",
                       "Requests sent to a member.\nback\\slash", "counter");
    strbuf_prom_sample_u64(&sb, "ferry_server_requests_total", labels, 3,
                           18446744073709551615u);
    strbuf_prom_sample_u64(&sb, "ferry_dns_cache_entries", NULL, 0, 7);
    strbuf_prom_sample_double(&sb, "x", odd, 1, 0.25);
    strbuf_prom_sample_double(&sb, "y", NULL, 0, NAN);
    strbuf_prom_sample_double(&sb, "z", NULL, 0, -INFINITY);
    strbuf_prom_series(&sb, "h", "_bucket", NULL, 0, &le);
    strbuf_putc(&sb, '\n');
    strbuf_prom_series(&sb, "h", "_bucket", labels, 1, &le);
    strbuf_putc(&sb, '\n');
    strbuf_prom_header(&sb, "g", NULL, "gauge");
    ASSERT_SB(&sb, "# HELP ferry_server_requests_total Requests sent to a "
                   "member.\\nback\\\\slash\n"
                   "# TYPE ferry_server_requests_total counter\n"
                   "ferry_server_requests_total{backend=\"api\","
                   "server=\"api.internal:8080\",address=\"10.0.0.1:8080\"} "
                   "18446744073709551615\n"
                   "ferry_dns_cache_entries 7\n"
                   "x{name=\"we\\\"ird\\\\\\nname\"} 0.25\n"
                   "y NaN\n"
                   "z -Inf\n"
                   "h_bucket{le=\"+Inf\"} \n"
                   "h_bucket{backend=\"api\",le=\"+Inf\"} \n"
                   "# TYPE g gauge\n");
    strbuf_free(&sb);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_grow_and_reset),
        cmocka_unit_test(test_append_binary_and_puts),
        cmocka_unit_test(test_printf_long_and_short),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_prom_label_escape),
        cmocka_unit_test(test_html_escape),
        cmocka_unit_test(test_json_escape_table),
        cmocka_unit_test(test_json_any_bytes),
        cmocka_unit_test(test_prom_lines),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
