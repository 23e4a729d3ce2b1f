/*
 * http_parser: strict, incremental HTTP/1.1 message head parser (RFC 9110,
 * RFC 9112) and chunked-body framing decoder. No allocation, no copy.
 *
 * The caller keeps the head contiguous in one buffer (at most max_head
 * bytes) and calls http_parse() each time bytes are appended. The parser
 * remembers how far it got (whole lines are parsed once, the search for the
 * next LF resumes where it stopped), so feeding a head byte by byte costs
 * the same as feeding it at once. Results are (offset, length) spans into
 * the caller's buffer, so the buffer may be moved between calls.
 *
 *   http_request_init / http_response_init
 *        │
 *        ▼
 *   http_parse(buf, len) ──► HTTP_PARSE_AGAIN: append bytes, call again
 *        │              ──► HTTP_PARSE_ERROR: send m->error, close
 *        ▼
 *   HTTP_PARSE_DONE: head is buf[0, m->head_len); m->body says how the
 *   body is framed; bytes past head_len are body (or the next message).
 *        │ body == HTTP_BODY_CHUNKED
 *        ▼
 *   http_chunked_feed() over the body bytes until HTTP_CHUNKED_DONE
 *
 * Strictness (every rejection means: answer m->error, close the connection):
 *  - lines end in CRLF; a bare LF or a CR not followed by LF is an error;
 *    empty lines (CRLF) before a request line are skipped (RFC 9112 2.2);
 *  - obs-fold (a header line starting with SP or HTAB) is an error;
 *  - field names are tokens, with no whitespace before the colon; field
 *    values hold no CTL other than HTAB (obs-text 0x80-0xFF is allowed);
 *  - the request target is visible ASCII (0x21-0x7E) without '#';
 *  - only HTTP/1.0 and HTTP/1.1;
 *  - Content-Length is 1*DIGIT (at most 18 digits); it may appear only once
 *    (a repeated Content-Length is rejected even with the same value; a
 *    list such as "5, 5" is rejected too);
 *  - Transfer-Encoding (all its fields taken as one list) must end with
 *    "chunked" and name it once; Transfer-Encoding in an HTTP/1.0 message,
 *    or together with Content-Length, is an error;
 *  - HTTP/1.1 requests need exactly one Host field with a valid value;
 *  - Connection is a list of tokens, at most 64 options in all;
 *  - more than HTTP_MAX_HEADERS fields, or no end of head within max_head
 *    bytes, is 431 for a request.
 * Every error of a response means 502 for the proxy (m->error is 502).
 * Chunk extensions are not interpreted: only their octets are checked
 * (HTAB, SP, VCHAR, obs-text after a ';'), which is what framing needs.
 *
 * Hop-by-hop fields (RFC 9110 7.6.1) are flagged HTTP_HF_HOP: Connection,
 * Keep-Alive, Proxy-Connection, TE, Upgrade, and every field the
 * Connection options name. Transfer-Encoding is not flagged because the
 * proxy forwards chunked bodies unchanged. Connection options naming Host,
 * Content-Length or Transfer-Encoding are ignored: stripping a framing field
 * would desynchronise the next hop.
 */
#ifndef FERRY_HTTP_PARSER_H
#define FERRY_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most header fields one head may carry; one more gives 431. */
#define HTTP_MAX_HEADERS 100

/* A piece of the caller's buffer. */
struct http_span {
    uint32_t off; /* offset from the buffer start */
    uint32_t len; /* length in bytes */
};

enum http_kind {
    HTTP_REQUEST,  /* parse a request from a client */
    HTTP_RESPONSE, /* parse a response from a member */
};

enum http_parse_result {
    HTTP_PARSE_AGAIN, /* head incomplete: feed more bytes */
    HTTP_PARSE_DONE,  /* head complete: see head_len */
    HTTP_PARSE_ERROR, /* see error and error_reason */
};

enum http_method {
    HTTP_M_OTHER, /* a valid token we do not know */
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_CONNECT,
    HTTP_M_OPTIONS,
    HTTP_M_TRACE,
    HTTP_M_PATCH,
};

enum http_target_form {
    HTTP_TARGET_ORIGIN,    /* "/path?query" */
    HTTP_TARGET_ABSOLUTE,  /* "http://host/path" */
    HTTP_TARGET_AUTHORITY, /* "host:port" (CONNECT only) */
    HTTP_TARGET_ASTERISK,  /* "*" (OPTIONS only) */
};

/* How the message body is delimited (RFC 9112 6.3). */
enum http_body {
    HTTP_BODY_NONE,    /* no body follows the head */
    HTTP_BODY_LENGTH,  /* content_length bytes follow */
    HTTP_BODY_CHUNKED, /* chunked: use http_chunked_feed */
    HTTP_BODY_CLOSE,   /* response until the member closes */
    HTTP_BODY_TUNNEL,  /* 101 or 2xx to CONNECT: raw bytes */
};

/* Header fields the parser recognises (known names get an id). */
enum http_hid {
    HTTP_H_OTHER,
    HTTP_H_HOST,
    HTTP_H_CONTENT_LENGTH,
    HTTP_H_TRANSFER_ENCODING,
    HTTP_H_CONNECTION,
    HTTP_H_KEEP_ALIVE,
    HTTP_H_PROXY_CONNECTION,
    HTTP_H_TE,
    HTTP_H_UPGRADE,
    HTTP_H_EXPECT,
    HTTP_H_TRAILER,
    HTTP_H_X_FORWARDED_FOR,
    HTTP_H_X_FORWARDED_PROTO,
};

/* Per-field flags. */
#define HTTP_HF_HOP 0x01 /* hop-by-hop: do not forward */

struct http_header {
    struct http_span name;  /* field name as received */
    struct http_span value; /* value without surrounding OWS */
    uint8_t id;             /* enum http_hid */
    uint8_t flags;          /* HTTP_HF_* */
};

/* Message flags (http_msg.flags). */
#define HTTP_F_CONTENT_LENGTH 0x0001    /* a Content-Length field was seen */
#define HTTP_F_CHUNKED 0x0002           /* Transfer-Encoding ends in chunked */
#define HTTP_F_CONN_CLOSE 0x0004        /* Connection: close */
#define HTTP_F_CONN_KEEP_ALIVE 0x0008   /* Connection: keep-alive */
#define HTTP_F_CONN_UPGRADE 0x0010      /* Connection: upgrade */
#define HTTP_F_CONN_OTHER 0x0020        /* Connection names other fields */
#define HTTP_F_UPGRADE 0x0040           /* Upgrade field present */
#define HTTP_F_EXPECT_CONTINUE 0x0080   /* Expect: 100-continue (1.1 only) */
#define HTTP_F_TRANSFER_ENCODING 0x0100 /* a Transfer-Encoding field seen */

struct http_msg {
    /* set by init, kept by http_msg_reset */
    uint8_t kind;       /* enum http_kind */
    uint8_t req_method; /* response: method of its request */
    uint32_t max_head;  /* largest head accepted, bytes */

    /* parse progress */
    uint8_t state;         /* internal state machine */
    uint32_t pos;          /* start of the first unparsed line */
    uint32_t scan;         /* LF search resumes here */
    uint32_t te_chunked;   /* times "chunked" was named */
    bool te_last_chunked;  /* last coding seen is chunked */
    uint32_t conn_options; /* Connection options so far */

    /* outcome */
    uint16_t error;           /* status to send: 400, 431, 502 */
    const char *error_reason; /* static text, for the log */
    uint32_t start;           /* offset of the start line */
    uint32_t head_len;        /* bytes of head incl. final CRLF */

    /* start line */
    uint8_t minor;              /* HTTP/1.minor: 0 or 1 */
    uint8_t method;             /* request: enum http_method */
    uint8_t form;               /* request: enum http_target_form */
    struct http_span method_s;  /* request: method token */
    struct http_span target;    /* request: target as received */
    struct http_span authority; /* absolute/authority form: host */
    struct http_span path;      /* origin/absolute: path and query */
    uint16_t status;            /* response: status code */
    struct http_span reason;    /* response: reason phrase */

    /* framing and connection management */
    uint32_t flags;          /* HTTP_F_* */
    uint8_t body;            /* enum http_body */
    bool keep_alive;         /* connection may carry another */
    uint64_t content_length; /* Content-Length value (0 if none) */
    int16_t host;            /* index of Host, -1 if none */
    int16_t upgrade;         /* index of Upgrade, -1 if none */

    /* fields */
    uint16_t n_headers; /* entries used in headers[] */
    struct http_header headers[HTTP_MAX_HEADERS]; /* in arrival order */
};

/* Prepares m for a request head of at most max_head bytes. */
void http_request_init(struct http_msg *m, size_t max_head);
/*
 * Prepares m for the response to a request made with req_method (HEAD and
 * CONNECT change the framing of the response).
 */
void http_response_init(struct http_msg *m, size_t max_head,
                        enum http_method req_method);
/* Forgets the previous message; kind, max_head, req_method stay. */
void http_msg_reset(struct http_msg *m);

/*
 * Parses the head in buf[0, len). Call again with the same buffer grown
 * (same leading bytes) after HTTP_PARSE_AGAIN. After DONE or ERROR it
 * returns the same result until reset.
 */
enum http_parse_result http_parse(struct http_msg *m, const char *buf,
                                  size_t len);

/*
 * Index of the first field at or after index from whose name equals name
 * (case-insensitive), or -1.
 */
int http_msg_find(const struct http_msg *m, const char *buf, const char *name,
                  size_t name_len, int from);

/* Iterates over the options of every Connection field. */
struct http_conn_iter {
    int header;   /* Connection field being read */
    uint32_t pos; /* offset within its value */
};

void http_conn_iter_init(struct http_conn_iter *it);
/* Stores the next option in tok; false once there are no more. */
bool http_conn_iter_next(struct http_conn_iter *it, const struct http_msg *m,
                         const char *buf, struct http_span *tok);

/* True if the span names a (case-insensitively) equal string. */
bool http_span_equals(const char *buf, struct http_span s, const char *str,
                      size_t len);

static inline const char *
http_span_ptr(const char *buf, struct http_span s)
{
    return buf + s.off;
}

/*
 * Reason phrase for a status code, for status lines and error bodies: the
 * RFC 9110 phrase (RFC 6585 for 428, 429, 431, 511) of every registered
 * code up to 511. An unknown code in 100-599 gets the name of its class
 * (RFC 9110 15: "Informational", "Successful", "Redirection", "Client
 * Error", "Server Error"), since a client treats it as that class; any
 * other number gets "Unknown". Never NULL or empty, no CR/LF: always safe
 * to print after "HTTP/1.1 %u ".
 */
const char *http_status_text(unsigned status);

/*
 * Chunked body framing (RFC 9112 7.1), read-only: it tells where the body
 * ends and how many bytes are data, never rewrites anything. chunk-size is
 * 1 to 16 hex digits (no sign, no "0x", no leading whitespace; whitespace
 * after it only before a ';'), every line ends in CRLF, chunk data must be
 * followed by CRLF, trailer fields are "token:value" lines (no obs-fold).
 *
 *   SIZE ─hex─► SIZE ─;─► EXT ─CR─► SIZE_LF ─LF─► DATA ─► DATA_CR ─► DATA_LF
 *     ▲                                      │ size 0                   │
 *     └──────────────────────────────────────┼──────────────────────────┘
 *                                            ▼
 *                   TRAILER (field lines) ─CRLF─► empty line ─► DONE
 */
enum http_chunked_result {
    HTTP_CHUNKED_AGAIN, /* all bytes used, body continues */
    HTTP_CHUNKED_DONE,  /* body ends within the bytes fed */
    HTTP_CHUNKED_ERROR, /* malformed: close (400 / 502) */
};

struct http_chunked {
    uint8_t state;            /* internal state machine */
    uint8_t digits;           /* hex digits of the size so far */
    uint32_t max_line;        /* longest size or trailer line */
    uint32_t line;            /* bytes of the current line */
    uint32_t trailer_bytes;   /* bytes of trailer section so far */
    uint64_t remaining;       /* data bytes left in this chunk */
    uint64_t data;            /* data bytes seen so far */
    uint64_t framing;         /* framing bytes seen so far */
    const char *error_reason; /* static text, for the log */
};

/*
 * Prepares c for one chunked body; max_line bounds each chunk-size line
 * (extensions included) and the whole trailer section (0 = 16 KiB).
 */
void http_chunked_init(struct http_chunked *c, size_t max_line);

/*
 * Feeds body bytes. *used is set to the bytes consumed: on DONE the body
 * ends at buf + *used (what follows is the next message); on AGAIN it is
 * len. c->data and c->framing count data and framing bytes so far.
 */
enum http_chunked_result http_chunked_feed(struct http_chunked *c,
                                           const char *buf, size_t len,
                                           size_t *used);

#endif
