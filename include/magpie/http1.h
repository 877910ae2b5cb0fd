/*
 * magpie/http1.h - a small, strict, allocation-free HTTP/1.x request-head
 * parser, enough for servers such as examples/http_server.c.
 *
 * The parser keeps pointers into the caller's buffer (no copies). It never
 * reads past len, whatever the bytes, and rejects what RFC 9112 lets a
 * server reject: bare CR, whitespace before a header's colon, obsolete line
 * folding, control characters, conflicting or malformed Content-Length, and
 * Content-Length together with Transfer-Encoding (request smuggling).
 */
#ifndef MAGPIE_HTTP1_H
#define MAGPIE_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#include "magpie/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MAG_HTTP_MAX_HEAD 8192u /* request line + headers + blank line */
#define MAG_HTTP_MAX_HEADERS 64u

typedef struct mag_http_header {
    const char *name, *value; /* value without surrounding whitespace */
    uint32_t name_len, value_len;
} mag_http_header_t;

/* mag_http_request.flags */
#define MAG_HTTP_KEEP_ALIVE 1u        /* the connection may serve another request */
#define MAG_HTTP_CHUNKED 2u           /* Transfer-Encoding ends in chunked */
#define MAG_HTTP_HAS_LENGTH 4u        /* a Content-Length was given */
#define MAG_HTTP_TRANSFER_ENCODING 8u /* some Transfer-Encoding was given */

typedef struct mag_http_request {
    const char *method, *target;
    uint32_t method_len, target_len;
    int minor_version;       /* HTTP/1.<minor> */
    unsigned flags;          /* MAG_HTTP_* */
    uint64_t content_length; /* 0 without a Content-Length */
    uint32_t nheaders;
    mag_http_header_t headers[MAG_HTTP_MAX_HEADERS];
} mag_http_request_t;

/* Parses one request head at the start of buf[0, len). Empty lines before
 * the request line are skipped (RFC 9112 section 2.2).
 * Returns the head's length in bytes (> 0: the body, if any, starts there),
 * 0 when the head is incomplete and may still be valid (read more, then
 * call again with the whole head so far), -EBADMSG for a malformed head
 * (answer 400), -EMSGSIZE when the head would exceed MAG_HTTP_MAX_HEAD bytes
 * or has more than MAG_HTTP_MAX_HEADERS headers (431), -EPROTONOSUPPORT for
 * an HTTP major version other than 1 (505). */
MAG_API int mag_http_parse_request(const char *buf, size_t len, mag_http_request_t *req);

/* The value of the first header called name (case-insensitive), or NULL. */
MAG_API const mag_http_header_t *mag_http_find_header(const mag_http_request_t *req,
                                                      const char *name);

#ifdef __cplusplus
}
#endif
#endif /* MAGPIE_HTTP1_H */
