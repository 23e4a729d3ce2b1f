/*
 * strbuf: a growable output buffer for the stats endpoint, with the escapers
 * and Prometheus text-format (0.0.4) helpers the renderers need.
 *
 * Appends never fail visibly: an allocation failure sets a sticky `oom`
 * flag and later appends do nothing, so a renderer appends freely and checks
 * strbuf_failed() once at the end. strbuf_reset() keeps the memory, so one
 * buffer reused across scrapes stops allocating after the first.
 *
 * The data is always NUL-terminated once anything was appended, so
 * sb->data can be used as a C string (it may also contain NUL bytes).
 */
#ifndef FERRY_STRBUF_H
#define FERRY_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strbuf {
    char *data; /* bytes; NULL until first append */
    size_t len; /* bytes in use, excluding the NUL */
    size_t cap; /* bytes allocated */
    bool oom;   /* an allocation failed: truncated */
};

/* One Prometheus label pair; value is escaped when written. */
struct strbuf_label {
    const char *key;   /* label name, written as is */
    const char *value; /* label value, escaped */
};

void strbuf_init(struct strbuf *sb);
void strbuf_free(struct strbuf *sb);
/* Empties the buffer and clears oom, keeping the allocation. */
void strbuf_reset(struct strbuf *sb);
/* Makes room for `extra` more bytes (plus the NUL). 0 or -1 (sets oom). */
int strbuf_reserve(struct strbuf *sb, size_t extra);
bool strbuf_failed(const struct strbuf *sb);

void strbuf_append(struct strbuf *sb, const void *p, size_t n);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_putc(struct strbuf *sb, char c);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Decimal digits, no printf (the hot part of rendering). */
void strbuf_append_u64(struct strbuf *sb, uint64_t v);
void strbuf_append_i64(struct strbuf *sb, int64_t v);

/*
 * A double in the Prometheus text format: NaN, +Inf, -Inf; integral values
 * below 1e15 in magnitude as plain integers ("3", "-0" becomes "0");
 * anything else as the shortest of %.15g/%.17g that reads back exactly
 * (so 0.00025 prints "0.00025"; very small or large values may carry an
 * exponent, which the format allows).
 */
void strbuf_append_double(struct strbuf *sb, double v);

/*
 * Escapers. Each writes only the escaped text (no surrounding quotes,
 * except strbuf_append_json_string which writes a complete JSON string).
 *
 * Prometheus label value: \ -> \\, " -> \", newline -> \n; other bytes as is.
 * Prometheus HELP text: \ -> \\, newline -> \n.
 * HTML text or attribute value: & < > " ' -> &amp; &lt; &gt; &quot; &#39;.
 * JSON: quotes and backslash escaped; \n \r \t as such, other bytes below
 * 0x20 and 0x7f as \u00XX. Valid UTF-8 is copied through; every byte that
 * is not part of a valid UTF-8 sequence (stray continuation bytes, overlong
 * forms, surrogates, code points above U+10FFFF, truncated sequences) is
 * replaced by \ufffd, so the output is valid JSON for any input bytes.
 */
void strbuf_append_prom_label_value(struct strbuf *sb, const char *s, size_t n);
void strbuf_append_prom_help(struct strbuf *sb, const char *s, size_t n);
void strbuf_append_html(struct strbuf *sb, const char *s, size_t n);
void strbuf_append_json_escaped(struct strbuf *sb, const char *s, size_t n);
/* "..." with the content JSON-escaped; NULL writes null. */
void strbuf_append_json_string(struct strbuf *sb, const char *s);
/* A JSON number; NaN and infinities (not JSON) are written as null. */
void strbuf_append_json_double(struct strbuf *sb, double v);

/*
 * Prometheus helpers.
 *   # HELP name help\n
 *   # TYPE name type\n         (type: counter, gauge, histogram, ...)
 *   name{k1="v1",k2="v2"} value\n   (no braces when nlabels == 0)
 * `extra` in strbuf_prom_labels is one more pair appended after the array
 * (histograms use it for le); NULL for none.
 */
void strbuf_prom_header(struct strbuf *sb, const char *name, const char *help,
                        const char *type);
void strbuf_prom_labels(struct strbuf *sb, const struct strbuf_label *labels,
                        size_t nlabels, const struct strbuf_label *extra);
/* "name" "suffix" then the labels then one space; the caller appends the
 * value and the newline. suffix may be NULL (histograms pass "_bucket"). */
void strbuf_prom_series(struct strbuf *sb, const char *name, const char *suffix,
                        const struct strbuf_label *labels, size_t nlabels,
                        const struct strbuf_label *extra);
void strbuf_prom_sample_u64(struct strbuf *sb, const char *name,
                            const struct strbuf_label *labels, size_t nlabels,
                            uint64_t value);
void strbuf_prom_sample_double(struct strbuf *sb, const char *name,
                               const struct strbuf_label *labels,
                               size_t nlabels, double value);

#endif
