/*
 * io/http1.c - the HTTP/1.x request-head parser (see magpie/http1.h).
 *
 * One pass over the bytes with a cursor that never passes the end: each step
 * either consumes what it expects, reports "incomplete" (0) when the data
 * runs out first, or rejects the head. Character classes come from a table.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "magpie/http1.h"

/* Character classes (RFC 9110 section 5.6.2 and 5.5). */
enum {
    C_TCHAR = 1, /* token */
    C_VCHAR = 2, /* visible, or obs-text (0x80-0xff) */
    C_WS = 4,    /* SP / HTAB */
};

// clang-format off
#define T C_TCHAR | C_VCHAR
#define V C_VCHAR
static const unsigned char cls[256] = {
    ['\t'] = C_WS, [' '] = C_WS,
    ['!'] = T, ['"'] = V, ['#'] = T, ['$'] = T, ['%'] = T, ['&'] = T, ['\''] = T,
    ['('] = V, [')'] = V, ['*'] = T, ['+'] = T, [','] = V, ['-'] = T, ['.'] = T, ['/'] = V,
    ['0'] = T, ['1'] = T, ['2'] = T, ['3'] = T, ['4'] = T, ['5'] = T, ['6'] = T, ['7'] = T,
    ['8'] = T, ['9'] = T, [':'] = V, [';'] = V, ['<'] = V, ['='] = V, ['>'] = V, ['?'] = V,
    ['@'] = V, ['A'] = T, ['B'] = T, ['C'] = T, ['D'] = T, ['E'] = T, ['F'] = T, ['G'] = T,
    ['H'] = T, ['I'] = T, ['J'] = T, ['K'] = T, ['L'] = T, ['M'] = T, ['N'] = T, ['O'] = T,
    ['P'] = T, ['Q'] = T, ['R'] = T, ['S'] = T, ['T'] = T, ['U'] = T, ['V'] = T, ['W'] = T,
    ['X'] = T, ['Y'] = T, ['Z'] = T, ['['] = V, ['\\'] = V, [']'] = V, ['^'] = T, ['_'] = T,
    ['`'] = T, ['a'] = T, ['b'] = T, ['c'] = T, ['d'] = T, ['e'] = T, ['f'] = T, ['g'] = T,
    ['h'] = T, ['i'] = T, ['j'] = T, ['k'] = T, ['l'] = T, ['m'] = T, ['n'] = T, ['o'] = T,
    ['p'] = T, ['q'] = T, ['r'] = T, ['s'] = T, ['t'] = T, ['u'] = T, ['v'] = T, ['w'] = T,
    ['x'] = T, ['y'] = T, ['z'] = T, ['{'] = V, ['|'] = T, ['}'] = V, ['~'] = T,
    [0x80 ... 0xff] = V,
};
#undef T
#undef V
// clang-format on

#define INCOMPLETE 1 /* internal: ran out of bytes */

typedef struct cursor {
    const unsigned char *p, *end;
} cursor_t;

/* Consumes a run of class c; returns its length (possibly 0). */
static size_t take(cursor_t *c, unsigned char klass)
{
    const unsigned char *s = c->p;
    while (c->p < c->end && (cls[*c->p] & klass))
        c->p++;
    return (size_t)(c->p - s);
}

/* Expects CRLF: 0, INCOMPLETE, or -EBADMSG. */
static int crlf(cursor_t *c)
{
    if (c->p == c->end)
        return INCOMPLETE;
    if (*c->p != '\r')
        return -EBADMSG;
    if (c->p + 1 == c->end)
        return INCOMPLETE;
    if (c->p[1] != '\n')
        return -EBADMSG;
    c->p += 2;
    return 0;
}

static int expect(cursor_t *c, unsigned char ch)
{
    if (c->p == c->end)
        return INCOMPLETE;
    if (*c->p != ch)
        return -EBADMSG;
    c->p++;
    return 0;
}

/* "HTTP/d.d" */
static int version(cursor_t *c, int *minor)
{
    static const char proto[] = "HTTP/";
    for (int i = 0; i < 5; i++) {
        int rc = expect(c, (unsigned char)proto[i]);
        if (rc)
            return rc;
    }
    if (c->end - c->p < 3) {
        /* Check what is there so that garbage is rejected early. */
        for (const unsigned char *q = c->p; q < c->end; q++)
            if (q - c->p == 1 ? *q != '.' : (*q < '0' || *q > '9'))
                return -EBADMSG;
        return INCOMPLETE;
    }
    unsigned char maj = c->p[0], dot = c->p[1], min = c->p[2];
    if (maj < '0' || maj > '9' || dot != '.' || min < '0' || min > '9')
        return -EBADMSG;
    c->p += 3;
    if (maj != '1')
        return -EPROTONOSUPPORT;
    *minor = min - '0';
    return 0;
}

static int request_line(cursor_t *c, mag_http_request_t *req)
{
    const unsigned char *m = c->p;
    size_t n = take(c, C_TCHAR);
    if (n == 0)
        return c->p == c->end ? INCOMPLETE : -EBADMSG;
    int rc = expect(c, ' ');
    if (rc)
        return rc;
    req->method = (const char *)m;
    req->method_len = (uint32_t)n;
    const unsigned char *t = c->p;
    n = take(c, C_VCHAR);
    if (n == 0)
        return c->p == c->end ? INCOMPLETE : -EBADMSG;
    if ((rc = expect(c, ' ')))
        return rc;
    req->target = (const char *)t;
    req->target_len = (uint32_t)n;
    if ((rc = version(c, &req->minor_version)))
        return rc;
    return crlf(c);
}

static bool ieq(const char *a, size_t an, const char *lit)
{
    size_t ln = strlen(lit);
    return an == ln && strncasecmp(a, lit, ln) == 0;
}

static int content_length(mag_http_request_t *req, const char *v, size_t n)
{
    if (n == 0 || n > 18)
        return -EBADMSG; /* 18 digits cannot overflow uint64_t */
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -EBADMSG;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if ((req->flags & MAG_HTTP_HAS_LENGTH) && req->content_length != x)
        return -EBADMSG;
    req->content_length = x;
    req->flags |= MAG_HTTP_HAS_LENGTH;
    return 0;
}

/* Walks a comma-separated list: calls each element with its bounds. Returns
 * the bits set by the elements. */
static unsigned connection_tokens(const char *v, size_t n)
{
    unsigned bits = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ',' || v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (ieq(v + s, i - s, "close"))
            bits |= 1;
        else if (ieq(v + s, i - s, "keep-alive"))
            bits |= 2;
    }
    return bits;
}

/* Does the Transfer-Encoding list end in "chunked"? */
static bool ends_chunked(const char *v, size_t n)
{
    size_t e = n;
    while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t'))
        e--;
    size_t s = e;
    while (s > 0 && v[s - 1] != ',' && v[s - 1] != ' ' && v[s - 1] != '\t')
        s--;
    return ieq(v + s, e - s, "chunked");
}

static int header(cursor_t *c, mag_http_request_t *req, unsigned *conn)
{
    const unsigned char *name = c->p;
    size_t nlen = take(c, C_TCHAR);
    if (nlen == 0)
        return c->p == c->end ? INCOMPLETE : -EBADMSG; /* also obs-fold */
    int rc = expect(c, ':');
    if (rc)
        return rc;
    take(c, C_WS);
    const unsigned char *val = c->p;
    const unsigned char *vend = val;
    while (c->p < c->end && (cls[*c->p] & (C_VCHAR | C_WS))) {
        if (cls[*c->p] & C_VCHAR)
            vend = c->p + 1;
        c->p++;
    }
    if ((rc = crlf(c)))
        return rc;
    if (req->nheaders == MAG_HTTP_MAX_HEADERS)
        return -EMSGSIZE;
    mag_http_header_t *h = &req->headers[req->nheaders++];
    h->name = (const char *)name;
    h->name_len = (uint32_t)nlen;
    h->value = (const char *)val;
    h->value_len = (uint32_t)(vend - val);

    /* The few headers that change how the connection is framed. */
    switch (nlen) {
    case 10:
        if (ieq(h->name, nlen, "connection"))
            *conn |= connection_tokens(h->value, h->value_len);
        break;
    case 14:
        if (ieq(h->name, nlen, "content-length"))
            return content_length(req, h->value, h->value_len);
        break;
    case 17:
        if (ieq(h->name, nlen, "transfer-encoding")) {
            req->flags |= MAG_HTTP_TRANSFER_ENCODING;
            if (ends_chunked(h->value, h->value_len))
                req->flags |= MAG_HTTP_CHUNKED;
            else
                req->flags &= ~MAG_HTTP_CHUNKED;
        }
        break;
    }
    return 0;
}

static int parse(cursor_t *c, mag_http_request_t *req)
{
    /* Empty lines before the request line are allowed. */
    while (c->p < c->end && (*c->p == '\r' || *c->p == '\n')) {
        if (*c->p == '\n') {
            c->p++;
            continue;
        }
        int rc = crlf(c);
        if (rc)
            return rc;
    }
    int rc = request_line(c, req);
    if (rc)
        return rc;
    unsigned conn = 0;
    for (;;) {
        if (c->p == c->end)
            return INCOMPLETE;
        if (*c->p == '\r') {
            if ((rc = crlf(c)))
                return rc;
            break;
        }
        if ((rc = header(c, req, &conn)))
            return rc;
    }
    if ((req->flags & MAG_HTTP_TRANSFER_ENCODING) && (req->flags & MAG_HTTP_HAS_LENGTH))
        return -EBADMSG;
    if (req->minor_version >= 1 ? !(conn & 1) : (conn & 2) && !(conn & 1))
        req->flags |= MAG_HTTP_KEEP_ALIVE;
    return 0;
}

int mag_http_parse_request(const char *buf, size_t len, mag_http_request_t *req)
{
    if (!req || (!buf && len))
        return -EINVAL;
    req->method = req->target = NULL;
    req->method_len = req->target_len = 0;
    req->minor_version = 0;
    req->flags = 0;
    req->content_length = 0;
    req->nheaders = 0;
    size_t lim = len < MAG_HTTP_MAX_HEAD ? len : MAG_HTTP_MAX_HEAD;
    cursor_t c = {(const unsigned char *)buf, (const unsigned char *)buf + lim};
    int rc = parse(&c, req);
    if (rc == INCOMPLETE)
        return len >= MAG_HTTP_MAX_HEAD ? -EMSGSIZE : 0;
    if (rc < 0)
        return rc;
    return (int)(c.p - (const unsigned char *)buf);
}

const mag_http_header_t *mag_http_find_header(const mag_http_request_t *req, const char *name)
{
    if (!req || !name)
        return NULL;
    size_t n = strlen(name);
    for (uint32_t i = 0; i < req->nheaders; i++)
        if (ieq(req->headers[i].name, req->headers[i].name_len, name) &&
            req->headers[i].name_len == n)
            return &req->headers[i];
    return NULL;
}
