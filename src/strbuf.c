/*
 * strbuf: growable output buffer, escapers, Prometheus text-format helpers.
 */
#include "strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First allocation; small enough for error pages, grows by doubling. */
#define STRBUF_MIN_CAP 256

void
strbuf_init(struct strbuf *sb)
{
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
    sb->oom = false;
}

void
strbuf_free(struct strbuf *sb)
{
    free(sb->data);
    strbuf_init(sb);
}

void
strbuf_reset(struct strbuf *sb)
{
    sb->len = 0;
    sb->oom = false;
    if (sb->data != NULL)
        sb->data[0] = '\0';
}

bool
strbuf_failed(const struct strbuf *sb)
{
    return sb->oom;
}

int
strbuf_reserve(struct strbuf *sb, size_t extra)
{
    size_t need, cap;
    char *p;

    if (sb->oom)
        return -1;
    if (extra > SIZE_MAX - sb->len - 1)
        goto fail;
    need = sb->len + extra + 1;
    if (need <= sb->cap)
        return 0;
    cap = sb->cap ? sb->cap : STRBUF_MIN_CAP;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    p = realloc(sb->data, cap);
    if (p == NULL)
        goto fail;
    sb->data = p;
    sb->cap = cap;
    return 0;
fail:
    sb->oom = true;
    return -1;
}

void
strbuf_append(struct strbuf *sb, const void *p, size_t n)
{
    if (strbuf_reserve(sb, n) != 0)
        return;
    if (n > 0)
        memcpy(sb->data + sb->len, p, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void
strbuf_puts(struct strbuf *sb, const char *s)
{
    strbuf_append(sb, s, strlen(s));
}

void
strbuf_putc(struct strbuf *sb, char c)
{
    if (strbuf_reserve(sb, 1) != 0)
        return;
    sb->data[sb->len++] = c;
    sb->data[sb->len] = '\0';
}

void
strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
    va_list ap2;
    size_t room;
    int n;

    /* Try in the room we have; on a short buffer grow once and retry. */
    if (strbuf_reserve(sb, 64) != 0)
        return;
    room = sb->cap - sb->len;
    va_copy(ap2, ap);
    n = vsnprintf(sb->data + sb->len, room, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        sb->data[sb->len] = '\0';
        sb->oom = true;
        return;
    }
    if ((size_t)n >= room) {
        if (strbuf_reserve(sb, (size_t)n) != 0) {
            sb->data[sb->len] = '\0';
            return;
        }
        vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    }
    sb->len += (size_t)n;
}

void
strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    strbuf_vprintf(sb, fmt, ap);
    va_end(ap);
}

void
strbuf_append_u64(struct strbuf *sb, uint64_t v)
{
    char tmp[20]; /* 2^64-1 has 20 digits */
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    strbuf_append(sb, tmp + i, sizeof(tmp) - i);
}

void
strbuf_append_i64(struct strbuf *sb, int64_t v)
{
    if (v < 0) {
        strbuf_putc(sb, '-');
        /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
        strbuf_append_u64(sb, (uint64_t)0 - (uint64_t)v);
        return;
    }
    strbuf_append_u64(sb, (uint64_t)v);
}

void
strbuf_append_double(struct strbuf *sb, double v)
{
    char tmp[32];
    int n;

    if (isnan(v)) {
        strbuf_puts(sb, "NaN");
        return;
    }
    if (isinf(v)) {
        strbuf_puts(sb, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Counts kept as doubles (sums of integers) print as integers. */
    if (v > -1e15 && v < 1e15 && (double)(int64_t)v == v) {
        strbuf_append_i64(sb, (int64_t)v);
        return;
    }
    n = snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (n > 0 && strtod(tmp, NULL) != v)
        n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    if (n > 0)
        strbuf_append(sb, tmp, (size_t)n);
}

/*
 * Copies s[0..n) escaping the bytes for which `table` has a replacement.
 * Runs of plain bytes are copied in one append.
 */
static void
append_escaped(struct strbuf *sb, const char *s, size_t n,
               const char *const table[256])
{
    size_t i, run = 0;

    for (i = 0; i < n; i++) {
        const char *rep = table[(unsigned char)s[i]];

        if (rep == NULL)
            continue;
        strbuf_append(sb, s + run, i - run);
        strbuf_puts(sb, rep);
        run = i + 1;
    }
    strbuf_append(sb, s + run, n - run);
}

static const char *const prom_label_table[256] = {
    ['\\'] = "\\\\",
    ['"'] = "\\\"",
    ['\n'] = "\\n",
};

static const char *const prom_help_table[256] = {
    ['\\'] = "\\\\",
    ['\n'] = "\\n",
};

static const char *const html_table[256] = {
    ['&'] = "&amp;",  ['<'] = "&lt;",   ['>'] = "&gt;",
    ['"'] = "&quot;", ['\''] = "&#39;",
};

void
strbuf_append_prom_label_value(struct strbuf *sb, const char *s, size_t n)
{
    append_escaped(sb, s, n, prom_label_table);
}

void
strbuf_append_prom_help(struct strbuf *sb, const char *s, size_t n)
{
    append_escaped(sb, s, n, prom_help_table);
}

void
strbuf_append_html(struct strbuf *sb, const char *s, size_t n)
{
    append_escaped(sb, s, n, html_table);
}

/*
 * Length of the valid UTF-8 sequence starting at s[0] (1..4), or 0 if the
 * byte there does not start one (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF). Only called for bytes >= 0x80.
 */
static size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char b = s[0], lo = 0x80, hi = 0xbf;
    size_t len, i;

    if (b >= 0xc2 && b <= 0xdf)
        len = 2;
    else if (b >= 0xe0 && b <= 0xef)
        len = 3;
    else if (b >= 0xf0 && b <= 0xf4)
        len = 4;
    else
        return 0;
    /* The second byte's range rules out overlongs and surrogates. */
    if (b == 0xe0)
        lo = 0xa0;
    else if (b == 0xed)
        hi = 0x9f;
    else if (b == 0xf0)
        lo = 0x90;
    else if (b == 0xf4)
        hi = 0x8f;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

void
strbuf_append_json_escaped(struct strbuf *sb, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;

    while (i < n) {
        unsigned char c = u[i];
        char esc[7];
        size_t len;

        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x7f) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            len = utf8_seq_len(u + i, n - i);
            if (len > 0) {
                i += len;
                continue;
            }
        }
        strbuf_append(sb, s + run, i - run);
        switch (c) {
        case '"':
            strbuf_append(sb, "\\\"", 2);
            break;
        case '\\':
            strbuf_append(sb, "\\\\", 2);
            break;
        case '\n':
            strbuf_append(sb, "\\n", 2);
            break;
        case '\r':
            strbuf_append(sb, "\\r", 2);
            break;
        case '\t':
            strbuf_append(sb, "\\t", 2);
            break;
        default:
            if (c >= 0x80) {
                strbuf_append(sb, "\\ufffd", 6);
            } else {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 0xf];
                strbuf_append(sb, esc, 6);
            }
            break;
        }
        i++;
        run = i;
    }
    strbuf_append(sb, s + run, n - run);
}

void
strbuf_append_json_string(struct strbuf *sb, const char *s)
{
    if (s == NULL) {
        strbuf_append(sb, "null", 4);
        return;
    }
    strbuf_putc(sb, '"');
    strbuf_append_json_escaped(sb, s, strlen(s));
    strbuf_putc(sb, '"');
}

void
strbuf_append_json_double(struct strbuf *sb, double v)
{
    if (isnan(v) || isinf(v)) {
        strbuf_append(sb, "null", 4);
        return;
    }
    strbuf_append_double(sb, v);
}

void
strbuf_prom_header(struct strbuf *sb, const char *name, const char *help,
                   const char *type)
{
    if (help != NULL) {
        strbuf_append(sb, "# HELP ", 7);
        strbuf_puts(sb, name);
        strbuf_putc(sb, ' ');
        strbuf_append_prom_help(sb, help, strlen(help));
        strbuf_putc(sb, '\n');
    }
    strbuf_append(sb, "# TYPE ", 7);
    strbuf_puts(sb, name);
    strbuf_putc(sb, ' ');
    strbuf_puts(sb, type);
    strbuf_putc(sb, '\n');
}

static void
append_label(struct strbuf *sb, const struct strbuf_label *l, bool first)
{
    if (!first)
        strbuf_putc(sb, ',');
    strbuf_puts(sb, l->key);
    strbuf_append(sb, "=\"", 2);
    if (l->value != NULL)
        strbuf_append_prom_label_value(sb, l->value, strlen(l->value));
    strbuf_putc(sb, '"');
}

void
strbuf_prom_labels(struct strbuf *sb, const struct strbuf_label *labels,
                   size_t nlabels, const struct strbuf_label *extra)
{
    size_t i;

    if (nlabels == 0 && extra == NULL)
        return;
    strbuf_putc(sb, '{');
    for (i = 0; i < nlabels; i++)
        append_label(sb, &labels[i], i == 0);
    if (extra != NULL)
        append_label(sb, extra, nlabels == 0);
    strbuf_putc(sb, '}');
}

void
strbuf_prom_series(struct strbuf *sb, const char *name, const char *suffix,
                   const struct strbuf_label *labels, size_t nlabels,
                   const struct strbuf_label *extra)
{
    strbuf_puts(sb, name);
    if (suffix != NULL)
        strbuf_puts(sb, suffix);
    strbuf_prom_labels(sb, labels, nlabels, extra);
    strbuf_putc(sb, ' ');
}

void
strbuf_prom_sample_u64(struct strbuf *sb, const char *name,
                       const struct strbuf_label *labels, size_t nlabels,
                       uint64_t value)
{
    strbuf_prom_series(sb, name, NULL, labels, nlabels, NULL);
    strbuf_append_u64(sb, value);
    strbuf_putc(sb, '\n');
}

void
strbuf_prom_sample_double(struct strbuf *sb, const char *name,
                          const struct strbuf_label *labels, size_t nlabels,
                          double value)
{
    strbuf_prom_series(sb, name, NULL, labels, nlabels, NULL);
    strbuf_append_double(sb, value);
    strbuf_putc(sb, '\n');
}
