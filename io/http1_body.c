/*
 * io/http1_body.c - the incremental HTTP/1.1 body decoder (see
 * magpie/http1.h): Content-Length, chunked, and close-delimited bodies.
 *
 * The chunked grammar (RFC 9112 section 7.1) as a byte-at-a-time state
 * machine, so that input may be split anywhere:
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *   chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *
 * Only chunk data leaves a call, as one run pointing into the input; every
 * other byte is checked and dropped. Extensions are skipped without being
 * interpreted: no byte in them can end the line except CR, and a CR must be
 * followed by LF, so skipping cannot misplace the next chunk. Trailer lines
 * are parsed like header lines (name, colon, visible value) and dropped.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "magpie/http1.h"

enum chunk_state {
    S_SIZE_FIRST,    /* the first hex digit of a chunk size */
    S_SIZE,          /* more hex digits, BWS, ';' or CR */
    S_SIZE_BWS,      /* whitespace after the size: only ';' may follow */
    S_EXT,           /* inside chunk extensions, up to CR */
    S_SIZE_LF,       /* LF after the chunk-size line */
    S_DATA,          /* chunk data: left bytes to go */
    S_DATA_CR,       /* CR after the chunk data */
    S_DATA_LF,       /* LF after the chunk data */
    S_TRAILER_START, /* the start of a trailer line, or CR of the final CRLF */
    S_TRAILER_NAME,  /* a trailer field's name, up to ':' */
    S_TRAILER_VALUE, /* its value, up to CR */
    S_TRAILER_LF,    /* LF after a trailer line */
    S_END_LF,        /* LF of the final CRLF */
    S_DONE,
};

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* tchar (RFC 9110 section 5.6.2). */
static bool token_char(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* A field value's or an extension's byte: visible, obs-text, SP or HTAB. */
static bool text_char(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

int mag_http_body_init(mag_http_body_t *body, unsigned framing, uint64_t length, uint64_t max_body)
{
    if (!body || framing > MAG_HTTP_BODY_CLOSE)
        return -EINVAL;
    if (framing == MAG_HTTP_BODY_LENGTH && length > max_body)
        return -EFBIG;
    memset(body, 0, sizeof *body);
    body->framing = (uint8_t)framing;
    body->max_body = max_body;
    body->left = framing == MAG_HTTP_BODY_LENGTH ? length : 0;
    if (framing == MAG_HTTP_BODY_NONE || (framing == MAG_HTTP_BODY_LENGTH && length == 0))
        body->state = S_DONE;
    else
        body->state = framing == MAG_HTTP_BODY_CHUNKED ? S_SIZE_FIRST : S_DATA;
    return 0;
}

/* Fails the body for good: every later feed returns the same error. */
static int fail(mag_http_body_t *b, int err)
{
    b->error = err;
    return err;
}

/* Counts a byte of framing overhead on the current line (chunk extensions)
 * or in the trailer section, against its cap. */
static bool overhead_fits(mag_http_body_t *b, uint32_t cap)
{
    return ++b->line <= cap;
}

/* One framing byte of a chunked body. Returns 0 (consumed), 1 (the body
 * ended with it) or -EBADMSG / -EFBIG. */
static int chunk_byte(mag_http_body_t *b, unsigned char ch)
{
    int v;
    switch (b->state) {
    case S_SIZE_FIRST:
        if ((v = hex_value(ch)) < 0)
            return -EBADMSG;
        b->left = (uint64_t)v;
        b->digits = 1;
        b->line = 0;
        b->state = S_SIZE;
        return 0;
    case S_SIZE:
        if ((v = hex_value(ch)) >= 0) {
            /* 16 hex digits fill 64 bits: a 17th could overflow. */
            if (++b->digits > 16)
                return -EBADMSG;
            b->left = b->left << 4 | (uint64_t)v;
            return 0;
        }
        if (ch == '\r') {
            b->state = S_SIZE_LF;
            return 0;
        }
        if (ch == ';') {
            b->state = S_EXT;
            return 0;
        }
        if (ch == ' ' || ch == '\t') {
            b->state = S_SIZE_BWS;
            return 0;
        }
        return -EBADMSG;
    case S_SIZE_BWS:
        if (!overhead_fits(b, MAG_HTTP_MAX_CHUNK_EXT))
            return -EBADMSG;
        if (ch == ';')
            b->state = S_EXT;
        else if (ch != ' ' && ch != '\t')
            return -EBADMSG;
        return 0;
    case S_EXT:
        if (!overhead_fits(b, MAG_HTTP_MAX_CHUNK_EXT))
            return -EBADMSG;
        if (ch == '\r')
            b->state = S_SIZE_LF;
        else if (!text_char(ch))
            return -EBADMSG; /* bare LF, NUL, other controls */
        return 0;
    case S_SIZE_LF:
        if (ch != '\n')
            return -EBADMSG;
        if (b->left == 0) {
            b->line = 0; /* from here it counts the trailer section */
            b->state = S_TRAILER_START;
            return 0;
        }
        if (b->left > b->max_body - b->received)
            return -EFBIG; /* refused before any of the chunk is taken */
        b->state = S_DATA;
        return 0;
    case S_DATA_CR:
        if (ch != '\r')
            return -EBADMSG;
        b->state = S_DATA_LF;
        return 0;
    case S_DATA_LF:
        if (ch != '\n')
            return -EBADMSG;
        b->state = S_SIZE_FIRST;
        return 0;
    default:
        break;
    }
    /* The trailer section: at most MAG_HTTP_MAX_HEAD bytes in all. */
    if (!overhead_fits(b, MAG_HTTP_MAX_HEAD))
        return -EBADMSG;
    switch (b->state) {
    case S_TRAILER_START:
        if (ch == '\r') {
            b->state = S_END_LF;
            return 0;
        }
        if (!token_char(ch))
            return -EBADMSG; /* also obs-fold and a bare LF */
        b->state = S_TRAILER_NAME;
        return 0;
    case S_TRAILER_NAME:
        if (ch == ':')
            b->state = S_TRAILER_VALUE;
        else if (!token_char(ch))
            return -EBADMSG;
        return 0;
    case S_TRAILER_VALUE:
        if (ch == '\r')
            b->state = S_TRAILER_LF;
        else if (!text_char(ch))
            return -EBADMSG;
        return 0;
    case S_TRAILER_LF:
        if (ch != '\n')
            return -EBADMSG;
        b->state = S_TRAILER_START;
        return 0;
    case S_END_LF:
        if (ch != '\n')
            return -EBADMSG;
        b->state = S_DONE;
        return 1;
    default:
        return -EBADMSG; /* unreachable: every state is handled above */
    }
}

int mag_http_body_feed(mag_http_body_t *body, const char *in, size_t len, size_t *consumed,
                       const char **out, size_t *out_len)
{
    if (!body || !consumed || !out || !out_len || (!in && len))
        return -EINVAL;
    *consumed = 0;
    *out = NULL;
    *out_len = 0;
    if (body->error)
        return body->error;
    if (body->state == S_DONE)
        return 1;
    const unsigned char *p = (const unsigned char *)in;
    size_t pos = 0;
    if (body->framing == MAG_HTTP_BODY_CLOSE) {
        if (len > body->max_body - body->received)
            return fail(body, -EFBIG);
        body->received += len;
        *consumed = len;
        *out = len ? in : NULL;
        *out_len = len;
        return 0;
    }
    while (pos < len && body->state != S_DATA) {
        int rc = chunk_byte(body, p[pos]);
        if (rc < 0)
            return fail(body, rc);
        pos++;
        if (rc == 1) {
            *consumed = pos;
            return 1;
        }
    }
    *consumed = pos;
    if (pos == len)
        return 0;
    /* Chunk data (or a Content-Length body): one run, in place. */
    size_t run = len - pos < body->left ? len - pos : (size_t)body->left;
    body->left -= run;
    body->received += run;
    *out = in + pos;
    *out_len = run;
    *consumed = pos + run;
    if (body->left == 0) {
        if (body->framing == MAG_HTTP_BODY_LENGTH) {
            body->state = S_DONE;
            return 1;
        }
        body->state = S_DATA_CR;
    }
    return 0;
}

int mag_http_body_done(const mag_http_body_t *body)
{
    return body && !body->error && body->state == S_DONE;
}

int mag_http_body_finish(mag_http_body_t *body)
{
    if (!body)
        return -EINVAL;
    if (body->error)
        return body->error;
    if (body->state == S_DONE)
        return 0;
    if (body->framing == MAG_HTTP_BODY_CLOSE) {
        body->state = S_DONE;
        return 0;
    }
    return fail(body, -EBADMSG);
}
