/*
 * magpie/http1.h - small, strict, allocation-free HTTP/1.x framing (RFC 9112):
 * a request-head parser for servers such as examples/http_server.c, a
 * response-head parser for clients, and one incremental body decoder
 * (Content-Length, chunked, or close-delimited) that both share.
 *
 * The parsers keep pointers into the caller's buffer (no copies). They never
 * read past len, whatever the bytes, and reject what RFC 9112 lets a
 * recipient reject: bare CR or LF, whitespace before a header's colon,
 * obsolete line folding, control characters, conflicting or malformed
 * Content-Length, and Content-Length together with Transfer-Encoding
 * (request smuggling).
 *
 * None of these calls suspends or needs the runtime: they may be called from
 * any thread, inside a task or not. Each works on its caller's records only.
 */
#ifndef MAGPIE_HTTP1_H
#define MAGPIE_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#include "magpie/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MAG_HTTP_MAX_HEAD 8192u /* start line + headers + blank line */
#define MAG_HTTP_MAX_HEADERS 64u
#define MAG_HTTP_MAX_CHUNK_EXT 4096u /* chunk extensions on one chunk-size line */

typedef struct mag_http_header {
    const char *name, *value; /* value without surrounding whitespace */
    uint32_t name_len, value_len;
} mag_http_header_t;

/* mag_http_request.flags and mag_http_response.flags */
#define MAG_HTTP_KEEP_ALIVE 1u        /* the connection may carry another message */
#define MAG_HTTP_CHUNKED 2u           /* Transfer-Encoding ends in chunked */
#define MAG_HTTP_HAS_LENGTH 4u        /* a Content-Length was given */
#define MAG_HTTP_TRANSFER_ENCODING 8u /* some Transfer-Encoding was given */

/* How a message's body is delimited (RFC 9112 section 6.3): the .framing of
 * a parsed head, and what mag_http_body_init takes. */
#define MAG_HTTP_BODY_NONE 0u    /* no body at all */
#define MAG_HTTP_BODY_LENGTH 1u  /* exactly content_length bytes */
#define MAG_HTTP_BODY_CHUNKED 2u /* the chunked transfer coding */
#define MAG_HTTP_BODY_CLOSE 3u   /* until the connection closes (responses only) */

typedef struct mag_http_request {
    const char *method, *target;
    uint32_t method_len, target_len;
    int minor_version;       /* HTTP/1.<minor> */
    unsigned flags;          /* MAG_HTTP_* */
    unsigned framing;        /* MAG_HTTP_BODY_NONE, _LENGTH or _CHUNKED */
    uint64_t content_length; /* 0 without a Content-Length */
    uint32_t nheaders;
    mag_http_header_t headers[MAG_HTTP_MAX_HEADERS];
} mag_http_request_t;

/* Parses one request head at the start of buf[0, len). Empty lines before
 * the request line are skipped (RFC 9112 section 2.2).
 * Returns the head's length in bytes (> 0: the body, if any, starts there;
 * decode it with mag_http_body_init(&b, req->framing, req->content_length,
 * ...)), or 0 when the head is incomplete and may still be valid (read more,
 * then call again with the whole head so far). Errors, with the status code
 * a server answers before it closes the connection:
 *   -EBADMSG          400: a malformed head; an HTTP/1.1 request without a
 *                     Host header; any request with more than one Host, or
 *                     a Host that is not uri-host [":" port] (RFC 9112
 *                     section 3.2); Content-Length with Transfer-Encoding; a
 *                     Transfer-Encoding whose final coding is not chunked,
 *                     that applies chunked twice, or on an HTTP/1.0 request
 *                     (RFC 9112 sections 6.1 and 6.3)
 *   -ENAMETOOLONG     414: the request target does not end within the first
 *                     MAG_HTTP_MAX_HEAD bytes
 *   -EMSGSIZE         431: the head would exceed MAG_HTTP_MAX_HEAD bytes (the
 *                     target fitted) or has more than MAG_HTTP_MAX_HEADERS
 *                     headers
 *   -EOPNOTSUPP       501: a transfer coding other than chunked is applied
 *                     (for example "gzip, chunked")
 *   -EPROTONOSUPPORT  505: an HTTP major version other than 1
 *   -EINVAL           req is NULL, or buf is NULL with len > 0
 * After an error, *req holds nothing useful. */
MAG_API int mag_http_parse_request(const char *buf, size_t len, mag_http_request_t *req);

/* The value of the first header called name (case-insensitive), or NULL. */
MAG_API const mag_http_header_t *mag_http_find_header(const mag_http_request_t *req,
                                                      const char *name);

typedef struct mag_http_response {
    const char *reason; /* the reason phrase, inside buf; may be empty */
    uint32_t reason_len;
    int minor_version;       /* HTTP/1.<minor> */
    int status;              /* 100..999 */
    unsigned flags;          /* MAG_HTTP_* */
    unsigned framing;        /* MAG_HTTP_BODY_* */
    uint64_t content_length; /* 0 without a Content-Length */
    uint32_t nheaders;
    mag_http_header_t headers[MAG_HTTP_MAX_HEADERS];
} mag_http_response_t;

/* mag_http_parse_response's flags */
#define MAG_HTTP_RESPONSE_TO_HEAD 1u /* the request was HEAD: no body follows */

/* Parses one response head (status line and headers) at the start of
 * buf[0, len), for a client. flags: MAG_HTTP_RESPONSE_TO_HEAD when the
 * request this answers was a HEAD. The framing follows RFC 9112 section
 * 6.3: a response to HEAD, a 1xx, 204 or 304 has no body whatever its
 * headers say; else a Transfer-Encoding ending in chunked means chunked
 * (other codings before it are left to the caller: the decoder yields the
 * coded bytes), a Transfer-Encoding not ending in chunked means
 * close-delimited; else a Content-Length gives the length; else the body
 * runs until the server closes. MAG_HTTP_KEEP_ALIVE is clear when the
 * connection cannot carry another response (Connection: close, HTTP/1.0
 * without keep-alive, a close-delimited body, or a 101, after which the
 * connection speaks another protocol). A 1xx other than 101 is interim: the
 * final response follows on the same connection. A 2xx to CONNECT switches
 * to a tunnel too, which only the caller can know: the parser does not see
 * the request.
 * The reason phrase is accepted without the space before it ("HTTP/1.1 200").
 * Returns the head's length (> 0), 0 when incomplete, or:
 *   -EBADMSG          a malformed status line or header, a malformed or
 *                     conflicting Content-Length, Content-Length together
 *                     with Transfer-Encoding, or Transfer-Encoding on an
 *                     HTTP/1.0 response (faulty framing: close the connection
 *                     and discard the response)
 *   -EMSGSIZE         the head exceeds MAG_HTTP_MAX_HEAD bytes or has more
 *                     than MAG_HTTP_MAX_HEADERS headers
 *   -EPROTONOSUPPORT  an HTTP major version other than 1
 *   -EINVAL           resp is NULL, buf is NULL with len > 0, or flags has
 *                     an unknown bit (*resp untouched)
 * After an error other than -EINVAL, *resp holds nothing useful. */
MAG_API int mag_http_parse_response(const char *buf, size_t len, unsigned flags,
                                    mag_http_response_t *resp);

/* The value of the first header of resp called name (case-insensitive), or
 * NULL. */
MAG_API const mag_http_header_t *mag_http_response_header(const mag_http_response_t *resp,
                                                          const char *name);

/* An incremental body decoder: feed it the bytes after a head, in pieces of
 * any size, and it gives back the body's bytes in place (pointers into what
 * was fed; nothing is copied or allocated) and says where the body ends, so
 * the next message on the connection starts there. Chunk extensions are
 * skipped (at most MAG_HTTP_MAX_CHUNK_EXT bytes a chunk), trailer fields are
 * parsed and dropped (at most MAG_HTTP_MAX_HEAD bytes in all), chunk sizes
 * are strict hexadecimal (at most 16 digits), and bare CR or LF is an error
 * as in the heads. The fields are the decoder's own: read them only through
 * the calls below. */
typedef struct mag_http_body {
    uint64_t left;     /* bytes left in the body (LENGTH) or the chunk (CHUNKED) */
    uint64_t received; /* body bytes given back so far */
    uint64_t max_body; /* the most body bytes allowed */
    uint32_t line;     /* bytes in the current chunk-size line or trailer section */
    uint8_t framing;   /* MAG_HTTP_BODY_* */
    uint8_t state;     /* where in the chunked grammar the decoder is */
    uint8_t digits;    /* hex digits of the current chunk size */
    uint8_t pad_;
    int error; /* sticky: once a feed fails, every later feed fails so */
} mag_http_body_t;

/* Readies *body for a body framed as framing (MAG_HTTP_BODY_*), of length
 * bytes when framing is MAG_HTTP_BODY_LENGTH (else ignored), allowing at
 * most max_body body bytes (UINT64_MAX: no limit). Returns 0, -EFBIG when a
 * Content-Length already exceeds max_body (answer 413 without reading the
 * body), or -EINVAL for a NULL body or an unknown framing. On error *body
 * is untouched. */
MAG_API int mag_http_body_init(mag_http_body_t *body, unsigned framing, uint64_t length,
                               uint64_t max_body);

/* Decodes from in[0, len). Sets *consumed to the bytes it used (the caller
 * feeds the rest, in + *consumed, next) and *out / *out_len to a run of
 * body bytes inside in (*out_len 0: none this time). Each call that has
 * input either uses some of it or ends or fails, so a caller loops until the
 * input is used up, then reads more.
 * Returns 1 when the body has ended (the run in *out, if any, is its last;
 * in + *consumed starts the next message; later calls return 1 and use
 * nothing), 0 when more of the body may follow, or, with nothing given back:
 *   -EBADMSG  malformed chunked framing (a bad or over-long chunk size, a
 *             missing CRLF, bare CR or LF, a control character, extensions
 *             or trailers over their limits): answer 400 and close
 *   -EFBIG    the body would exceed max_body: answer 413 and close
 *   -EINVAL   a NULL argument, or in NULL with len > 0 (outputs untouched)
 * A close-delimited body never ends here: see mag_http_body_finish. */
MAG_API int mag_http_body_feed(mag_http_body_t *body, const char *in, size_t len, size_t *consumed,
                               const char **out, size_t *out_len);

/* Whether the body has ended: 1 when it has (mag_http_body_feed returned 1),
 * else 0. */
MAG_API int mag_http_body_done(const mag_http_body_t *body);

/* Tells the decoder that the connection has closed (no more input). Returns
 * 0 when the body is complete (it had ended, or it is close-delimited and
 * now ends), -EBADMSG when it was cut short (the message is incomplete), or
 * the error an earlier feed returned; -EINVAL for NULL. */
MAG_API int mag_http_body_finish(mag_http_body_t *body);

#ifdef __cplusplus
}
#endif
#endif /* MAGPIE_HTTP1_H */
