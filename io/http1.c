/*
 * io/http1.c - the HTTP/1.x request- and response-head parsers (see
 * magpie/http1.h; the body decoder is io/http1_body.c).
 *
 * One pass over the bytes with a cursor that never passes the end: each step
 * either consumes what it expects, reports "incomplete" (0) when the data
 * runs out first, or rejects the head. Character classes come from a table.
 * Both parsers share the header-line walk; what differs is the start line
 * and how the framing headers decide the body (RFC 9112 section 6.3).
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
    bool in_target; /* inside the request target: running out there means 414 */
} cursor_t;

/* What the header lines of one head say about framing and the connection,
 * gathered while walking them and judged once the head is complete. */
enum {
    CONN_CLOSE = 1,      /* Connection: close */
    CONN_KEEP_ALIVE = 2, /* Connection: keep-alive */
};
enum {
    TE_SEEN = 1,          /* some coding was listed */
    TE_CHUNKED_LAST = 2,  /* the last coding so far is chunked */
    TE_CHUNKED_SEEN = 4,  /* chunked was listed */
    TE_CHUNKED_TWICE = 8, /* chunked was listed more than once */
    TE_OTHER = 16,        /* some coding other than chunked was listed */
    TE_MALFORMED = 32,    /* the list does not parse */
};

typedef struct head {
    mag_http_header_t *headers; /* MAG_HTTP_MAX_HEADERS slots */
    uint32_t nheaders;
    unsigned flags; /* MAG_HTTP_HAS_LENGTH, MAG_HTTP_TRANSFER_ENCODING */
    uint64_t content_length;
    unsigned conn;  /* CONN_* */
    unsigned te;    /* TE_* */
    unsigned hosts; /* how many Host lines */
    const mag_http_header_t *host;
} head_t;

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
    c->in_target = true;
    const unsigned char *t = c->p;
    n = take(c, C_VCHAR);
    if (n == 0)
        return c->p == c->end ? INCOMPLETE : -EBADMSG;
    if ((rc = expect(c, ' ')))
        return rc;
    c->in_target = false;
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

static int content_length(head_t *h, const char *v, size_t n)
{
    if (n == 0 || n > 18)
        return -EBADMSG; /* 18 digits cannot overflow uint64_t */
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -EBADMSG;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if ((h->flags & MAG_HTTP_HAS_LENGTH) && h->content_length != x)
        return -EBADMSG;
    h->content_length = x;
    h->flags |= MAG_HTTP_HAS_LENGTH;
    return 0;
}

/* Walks Connection's comma-separated list: CONN_* bits for what it names. */
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
            bits |= CONN_CLOSE;
        else if (ieq(v + s, i - s, "keep-alive"))
            bits |= CONN_KEEP_ALIVE;
    }
    return bits;
}

/* Adds one Transfer-Encoding line to te: a list of codings, each a token
 * with optional parameters (RFC 9112 section 7; empty list elements are
 * allowed, RFC 9110 section 5.6.1). chunked takes no parameters. */
static unsigned transfer_codings(unsigned te, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ',' || v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i == n)
            break;
        size_t s = i;
        while (i < n && (cls[(unsigned char)v[i]] & C_TCHAR))
            i++;
        if (i == s)
            return te | TE_MALFORMED;
        bool chunked = ieq(v + s, i - s, "chunked");
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i < n && v[i] == ';') {
            if (chunked)
                return te | TE_MALFORMED;
            while (i < n && v[i] != ',')
                i++; /* parameters of a coding we will not decode anyway */
        }
        if (i < n && v[i] != ',')
            return te | TE_MALFORMED; /* "gzip chunked": not a list */
        te |= TE_SEEN;
        if (chunked) {
            if (te & TE_CHUNKED_SEEN)
                te |= TE_CHUNKED_TWICE;
            te |= TE_CHUNKED_SEEN | TE_CHUNKED_LAST;
        } else {
            te = (te | TE_OTHER) & ~(unsigned)TE_CHUNKED_LAST;
        }
    }
    return te;
}

/* Characters of a Host: unreserved, sub-delims and '%' (RFC 3986). */
static bool host_char(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch && strchr("-._~!$&'()*+,;=", ch) != NULL;
}

static bool hex_digit(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
}

/* Host = uri-host [ ":" port ] (RFC 9110 section 7.2, RFC 3986 section
 * 3.2.2): an IP literal in brackets or a reg-name (possibly empty, with
 * percent-encoding), then an optional port of at most 5 digits <= 65535. */
static bool valid_host(const char *v, size_t n)
{
    size_t i = 0;
    if (n > 0 && v[0] == '[') {
        for (i = 1; i < n && v[i] != ']'; i++)
            if (!host_char((unsigned char)v[i]) && v[i] != ':')
                return false;
        if (i == n || i == 1)
            return false;
        i++;
    } else {
        for (; i < n && v[i] != ':'; i++) {
            if (v[i] == '%') {
                if (n - i < 3 || !hex_digit((unsigned char)v[i + 1]) ||
                    !hex_digit((unsigned char)v[i + 2]))
                    return false;
                i += 2;
            } else if (!host_char((unsigned char)v[i])) {
                return false;
            }
        }
    }
    if (i == n)
        return true;
    if (v[i] != ':' || n - i - 1 > 5)
        return false;
    unsigned port = 0;
    for (i++; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        port = port * 10 + (unsigned)(v[i] - '0');
    }
    return port <= 65535;
}

static int header(cursor_t *c, head_t *hd)
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
    if (hd->nheaders == MAG_HTTP_MAX_HEADERS)
        return -EMSGSIZE;
    mag_http_header_t *h = &hd->headers[hd->nheaders++];
    h->name = (const char *)name;
    h->name_len = (uint32_t)nlen;
    h->value = (const char *)val;
    h->value_len = (uint32_t)(vend - val);

    /* The few headers that change how the message is framed or routed. */
    switch (nlen) {
    case 4:
        if (ieq(h->name, nlen, "host")) {
            hd->hosts++;
            hd->host = h;
        }
        break;
    case 10:
        if (ieq(h->name, nlen, "connection"))
            hd->conn |= connection_tokens(h->value, h->value_len);
        break;
    case 14:
        if (ieq(h->name, nlen, "content-length"))
            return content_length(hd, h->value, h->value_len);
        break;
    case 17:
        if (ieq(h->name, nlen, "transfer-encoding")) {
            hd->flags |= MAG_HTTP_TRANSFER_ENCODING;
            hd->te = transfer_codings(hd->te, h->value, h->value_len);
        }
        break;
    }
    return 0;
}

/* Header lines up to and including the blank line that ends the head. */
static int headers(cursor_t *c, head_t *hd)
{
    for (;;) {
        if (c->p == c->end)
            return INCOMPLETE;
        if (*c->p == '\r')
            return crlf(c);
        int rc = header(c, hd);
        if (rc)
            return rc;
    }
}

/* The framing flags a parsed head reports. */
static unsigned te_flags(const head_t *hd)
{
    unsigned f = hd->flags;
    if ((hd->flags & MAG_HTTP_TRANSFER_ENCODING) && (hd->te & TE_CHUNKED_LAST))
        f |= MAG_HTTP_CHUNKED;
    return f;
}

static int parse_request(cursor_t *c, mag_http_request_t *req)
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
    head_t hd = {.headers = req->headers};
    rc = headers(c, &hd);
    req->nheaders = hd.nheaders;
    if (rc)
        return rc;

    /* Host (RFC 9112 section 3.2): required in HTTP/1.1, never twice. */
    if (hd.hosts > 1 || (hd.hosts == 0 && req->minor_version >= 1))
        return -EBADMSG;
    if (hd.host && !valid_host(hd.host->value, hd.host->value_len))
        return -EBADMSG;

    /* Framing (RFC 9112 sections 6.1 and 6.3, for requests). */
    if (hd.flags & MAG_HTTP_TRANSFER_ENCODING) {
        if ((hd.flags & MAG_HTTP_HAS_LENGTH) || req->minor_version == 0)
            return -EBADMSG; /* smuggling, or faulty framing */
        if ((hd.te & (TE_MALFORMED | TE_CHUNKED_TWICE)) || !(hd.te & TE_CHUNKED_LAST))
            return -EBADMSG; /* the length cannot be determined */
        if (hd.te & TE_OTHER)
            return -EOPNOTSUPP;
        req->framing = MAG_HTTP_BODY_CHUNKED;
    } else if (hd.flags & MAG_HTTP_HAS_LENGTH) {
        req->framing = MAG_HTTP_BODY_LENGTH;
        req->content_length = hd.content_length;
    }
    req->flags = te_flags(&hd);
    if (req->minor_version >= 1 ? !(hd.conn & CONN_CLOSE)
                                : (hd.conn & CONN_KEEP_ALIVE) && !(hd.conn & CONN_CLOSE))
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
    req->framing = MAG_HTTP_BODY_NONE;
    req->content_length = 0;
    req->nheaders = 0;
    size_t lim = len < MAG_HTTP_MAX_HEAD ? len : MAG_HTTP_MAX_HEAD;
    cursor_t c = {(const unsigned char *)buf, (const unsigned char *)buf + lim, false};
    int rc = parse_request(&c, req);
    if (rc == INCOMPLETE) {
        if (len < MAG_HTTP_MAX_HEAD)
            return 0;
        return c.in_target ? -ENAMETOOLONG : -EMSGSIZE;
    }
    if (rc < 0)
        return rc;
    return (int)(c.p - (const unsigned char *)buf);
}

static const mag_http_header_t *find(const mag_http_header_t *hs, uint32_t n, const char *name)
{
    size_t len = strlen(name);
    for (uint32_t i = 0; i < n; i++)
        if (ieq(hs[i].name, hs[i].name_len, name) && hs[i].name_len == len)
            return &hs[i];
    return NULL;
}

const mag_http_header_t *mag_http_find_header(const mag_http_request_t *req, const char *name)
{
    if (!req || !name)
        return NULL;
    return find(req->headers, req->nheaders, name);
}

/* status-line = HTTP-version SP status-code [ SP [ reason-phrase ] ] CRLF
 * (the space before an empty reason is optional here: servers omit it). */
static int status_line(cursor_t *c, mag_http_response_t *resp)
{
    int rc = version(c, &resp->minor_version);
    if (rc)
        return rc;
    if ((rc = expect(c, ' ')))
        return rc;
    int status = 0;
    for (int i = 0; i < 3; i++) {
        if (c->p == c->end)
            return INCOMPLETE;
        if (*c->p < '0' || *c->p > '9')
            return -EBADMSG;
        status = status * 10 + (*c->p++ - '0');
    }
    if (status < 100 || status > 599)
        return -EBADMSG; /* RFC 9110 section 15: the valid range */
    resp->status = status;
    if (c->p == c->end)
        return INCOMPLETE;
    bool space = *c->p == ' ';
    if (space)
        c->p++;
    resp->reason = (const char *)c->p;
    if (space)
        resp->reason_len = (uint32_t)take(c, C_VCHAR | C_WS);
    return crlf(c);
}

static int parse_response(cursor_t *c, unsigned flags, mag_http_response_t *resp)
{
    int rc = status_line(c, resp);
    if (rc)
        return rc;
    head_t hd = {.headers = resp->headers};
    rc = headers(c, &hd);
    resp->nheaders = hd.nheaders;
    if (rc)
        return rc;
    if (hd.flags & MAG_HTTP_TRANSFER_ENCODING) {
        /* Both: TE would win, but it smells of response splitting (RFC 9112
         * section 6.3 item 3); HTTP/1.0 with TE: faulty framing (6.1). */
        if ((hd.flags & MAG_HTTP_HAS_LENGTH) || resp->minor_version == 0)
            return -EBADMSG;
        if (hd.te & (TE_MALFORMED | TE_CHUNKED_TWICE))
            return -EBADMSG;
    }
    resp->flags = te_flags(&hd);
    resp->content_length = hd.content_length;
    int s = resp->status;
    if ((flags & MAG_HTTP_RESPONSE_TO_HEAD) || s < 200 || s == 204 || s == 304)
        resp->framing = MAG_HTTP_BODY_NONE;
    else if (hd.flags & MAG_HTTP_TRANSFER_ENCODING)
        resp->framing = (hd.te & TE_CHUNKED_LAST) ? MAG_HTTP_BODY_CHUNKED : MAG_HTTP_BODY_CLOSE;
    else if (hd.flags & MAG_HTTP_HAS_LENGTH)
        resp->framing = MAG_HTTP_BODY_LENGTH;
    else
        resp->framing = MAG_HTTP_BODY_CLOSE;
    bool keep = resp->minor_version >= 1 ? !(hd.conn & CONN_CLOSE)
                                         : (hd.conn & CONN_KEEP_ALIVE) && !(hd.conn & CONN_CLOSE);
    /* After a 101 the connection speaks another protocol: no HTTP response
     * can follow on it, and a client that reused it would send its next
     * request into that protocol. */
    if (keep && resp->framing != MAG_HTTP_BODY_CLOSE && s != 101)
        resp->flags |= MAG_HTTP_KEEP_ALIVE;
    return 0;
}

int mag_http_parse_response(const char *buf, size_t len, unsigned flags, mag_http_response_t *resp)
{
    if (!resp || (!buf && len) || (flags & ~MAG_HTTP_RESPONSE_TO_HEAD))
        return -EINVAL;
    resp->reason = NULL;
    resp->reason_len = 0;
    resp->minor_version = 0;
    resp->status = 0;
    resp->flags = 0;
    resp->framing = MAG_HTTP_BODY_NONE;
    resp->content_length = 0;
    resp->nheaders = 0;
    size_t lim = len < MAG_HTTP_MAX_HEAD ? len : MAG_HTTP_MAX_HEAD;
    cursor_t c = {(const unsigned char *)buf, (const unsigned char *)buf + lim, false};
    int rc = parse_response(&c, flags, resp);
    if (rc == INCOMPLETE)
        return len >= MAG_HTTP_MAX_HEAD ? -EMSGSIZE : 0;
    if (rc < 0)
        return rc;
    return (int)(c.p - (const unsigned char *)buf);
}

const mag_http_header_t *mag_http_response_header(const mag_http_response_t *resp, const char *name)
{
    if (!resp || !name)
        return NULL;
    return find(resp->headers, resp->nheaders, name);
}
