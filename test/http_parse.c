/* http_parse: the HTTP/1.x request-head parser on valid heads, on every
 * truncation of them (always "incomplete", never an error), on malformed
 * heads, on the Host and Transfer-Encoding rules, on the size limits (414
 * apart from 431), and on random and mutated bytes (never reads past the
 * end: run it under AddressSanitizer); then the body decoder (in
 * test/http_body.h) and the response parser. */
#include <errno.h>
#include <stdlib.h>

#include <magpie/http1.h>

#include "test/test.h"

static mag_http_request_t req;
static char *last; /* the buffer req points into, kept until the next parse */

/* Parses a copy in a buffer of exactly len bytes, so that ASan catches any
 * read past the end. */
static int parse(const char *s, size_t len)
{
    free(last);
    char *copy = last = malloc(len ? len : 1);
    ASSERT_TRUE(copy != NULL);
    memcpy(copy, s, len);
    int r = mag_http_parse_request(copy, len, &req);
    if (r > 0)
        ASSERT_LE(r, (int64_t)len);
    /* Pointers stay inside the buffer. */
    if (r > 0) {
        ASSERT_TRUE(req.method >= copy && req.method + req.method_len <= copy + len);
        ASSERT_TRUE(req.target >= copy && req.target + req.target_len <= copy + len);
        for (uint32_t i = 0; i < req.nheaders; i++) {
            ASSERT_TRUE(req.headers[i].name >= copy &&
                        req.headers[i].name + req.headers[i].name_len <= copy + len);
            ASSERT_TRUE(req.headers[i].value >= copy &&
                        req.headers[i].value + req.headers[i].value_len <= copy + len);
        }
    }
    return r;
}

static int parse_str(const char *s)
{
    return parse(s, strlen(s));
}

static const char *valid[] = {
    "GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
    "GET / HTTP/1.1\r\nHost:\r\n\r\n",
    "GET /a/b?c=d&e HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "\r\nPOST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nX-Empty:\r\nX-Sp:   v  \r\n\r\nhello",
    "OPTIONS * HTTP/1.1\r\nhOsT: [::1]:80\r\nA: b\r\nC:d\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, close\r\nObs: caf\xc3\xa9\r\n\r\n",
};

static void check_valid(void)
{
    int r = parse_str(valid[0]);
    ASSERT_EQ(r, (int)strlen(valid[0]));
    ASSERT_EQ(req.method_len, 3);
    ASSERT_TRUE(!memcmp(req.method, "GET", 3));
    ASSERT_EQ(req.target_len, 1);
    ASSERT_EQ(req.minor_version, 1);
    ASSERT_EQ(req.nheaders, 1);
    ASSERT_TRUE(req.flags & MAG_HTTP_KEEP_ALIVE);
    const mag_http_header_t *h = mag_http_find_header(&req, "HOST");
    ASSERT_TRUE(h != NULL);
    ASSERT_EQ(h->value_len, 14);
    ASSERT_TRUE(!memcmp(h->value, "localhost:8080", 14));
    ASSERT_TRUE(mag_http_find_header(&req, "Hos") == NULL);

    ASSERT_EQ(parse_str(valid[2]), (int)strlen(valid[2]));
    ASSERT_EQ(req.minor_version, 0);
    ASSERT_TRUE(req.flags & MAG_HTTP_KEEP_ALIVE);
    ASSERT_EQ(parse_str("GET / HTTP/1.0\r\n\r\n"), 18);
    ASSERT_TRUE(!(req.flags & MAG_HTTP_KEEP_ALIVE));

    r = parse_str(valid[3]);
    ASSERT_EQ(r, (int)strlen(valid[3]) - 5); /* the body is not part of the head */
    ASSERT_UEQ(req.content_length, 5);
    ASSERT_TRUE(req.flags & MAG_HTTP_HAS_LENGTH);
    ASSERT_EQ(req.framing, MAG_HTTP_BODY_LENGTH);
    ASSERT_EQ(req.nheaders, 4);
    ASSERT_EQ(req.headers[2].value_len, 0);
    ASSERT_EQ(req.headers[3].value_len, 1); /* whitespace trimmed */

    ASSERT_GT(parse_str(valid[5]), 0);
    ASSERT_TRUE(req.flags & MAG_HTTP_CHUNKED);
    ASSERT_EQ(req.framing, MAG_HTTP_BODY_CHUNKED);
    ASSERT_GT(parse_str(valid[6]), 0);
    ASSERT_TRUE(!(req.flags & MAG_HTTP_KEEP_ALIVE));

    /* Every valid head, cut anywhere: incomplete, never an error. */
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        size_t full = (size_t)parse_str(valid[i]);
        ASSERT_GT(full, 0);
        for (size_t cut = 0; cut < full; cut++)
            if (parse(valid[i], cut) != 0)
                TEST_FAIL("valid[%zu] cut at %zu: %d", i, cut, parse(valid[i], cut));
    }
    /* Pipelined: two heads back to back parse one at a time. */
    const char *two = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    r = parse_str(two);
    ASSERT_EQ(r, 28);
    ASSERT_EQ(parse_str(two + r), 28);
    ASSERT_EQ(req.target[1], '2');
}

#define S(x) {x, sizeof(x) - 1}
static const struct {
    const char *s;
    size_t len;
} malformed[] = {
    S("GET  / HTTP/1.1\r\n\r\n"),
    S(" GET / HTTP/1.1\r\n\r\n"),
    S("GET / HTTP/1.1\n\r\n"),
    S("GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"),
    S("GET / HTTP/1.1\r\n: novalue\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nA: b\rc\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nA: b\x01\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nA: b\0\r\n\r\n"),
    S("GET / HTTX/1.1\r\n\r\n"),
    S("GET / HTTP/1.x\r\n\r\n"),
    S("GET / HTTP/11\r\n\r\n"),
    S("GET /\x7f HTTP/1.1\r\n\r\n"),
    S("G(T / HTTP/1.1\r\n\r\n"),
    S("GET / HTTP/1.1 \r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
    S("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), /* a TLS hello: rejected at once */
    S("PRI * HTTP/2.0\r\n\r\n"),
};

static void check_malformed(void)
{
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        int r = parse(malformed[i].s, malformed[i].len);
        int want = i == 21 ? -EPROTONOSUPPORT : -EBADMSG;
        if (r != want)
            TEST_FAIL("malformed[%zu]: %d, want %d", i, r, want);
    }
    const char *same = "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n";
    ASSERT_EQ(parse_str(same), (int)strlen(same)); /* repeated, equal: fine */
    ASSERT_EQ(mag_http_parse_request(NULL, 0, &req), 0);
    ASSERT_EQ(mag_http_parse_request(NULL, 5, &req), -EINVAL);
    ASSERT_EQ(mag_http_parse_request("x", 1, NULL), -EINVAL);
}

static void check_limits(void)
{
    /* A head over 8 KiB: -EMSGSIZE once 8 KiB have arrived without its end. */
    static char big[MAG_HTTP_MAX_HEAD + 100];
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
    memset(big + n, 'a', sizeof big - (size_t)n);
    ASSERT_EQ(parse(big, MAG_HTTP_MAX_HEAD - 1), 0);
    ASSERT_EQ(parse(big, MAG_HTTP_MAX_HEAD), -EMSGSIZE);
    ASSERT_EQ(parse(big, sizeof big), -EMSGSIZE);
    /* Just under the limit is fine. */
    size_t fit = MAG_HTTP_MAX_HEAD - 4;
    memcpy(big + fit, "\r\n\r\n", 4);
    ASSERT_EQ(parse(big, MAG_HTTP_MAX_HEAD), MAG_HTTP_MAX_HEAD);
    /* Too many headers. */
    char many[4096];
    size_t len = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
    for (unsigned i = 0; i <= MAG_HTTP_MAX_HEADERS; i++)
        len += (size_t)snprintf(many + len, sizeof many - len, "H%u: v\r\n", i);
    len += (size_t)snprintf(many + len, sizeof many - len, "\r\n");
    ASSERT_EQ(parse(many, len), -EMSGSIZE);
}

/* RFC 9112 section 3.2: HTTP/1.1 needs exactly one valid Host; HTTP/1.0 may
 * omit it, but not repeat it or send a bad one. */
static void check_host(void)
{
    char buf[256];
    static const char *good[] = {
        "",         "localhost",   "localhost:8080", "[::1]",          "[::1]:80",
        "h:",       "%41bc.de",    "a-b.c_d~e",      "127.0.0.1:65535", "[v1.x]",
        "sub!$&'()*+,;=",
    };
    static const char *bad[] = {
        "a b", "x/y", "a@b", "[::1", "[]", "[::1]x", "h:99999", "h:123456",
        "h:8x", "%zz", "%4", "h\x80", "h:80:80", "[a b]", "h?", "h#", "\"h\"",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", good[i]);
        if (parse(buf, (size_t)n) != n)
            TEST_FAIL("Host \"%s\": %d", good[i], parse(buf, (size_t)n));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int minor = 0; minor <= 1; minor++) {
            int n = snprintf(buf, sizeof buf, "GET / HTTP/1.%d\r\nHost: %s\r\n\r\n", minor, bad[i]);
            if (parse(buf, (size_t)n) != -EBADMSG)
                TEST_FAIL("Host \"%s\" (1.%d): %d", bad[i], minor, parse(buf, (size_t)n));
        }
    }
    ASSERT_EQ(parse_str("GET / HTTP/1.1\r\n\r\n"), -EBADMSG);
    ASSERT_EQ(parse_str("GET / HTTP/1.1\r\nA: b\r\n\r\n"), -EBADMSG);
    ASSERT_EQ(parse_str("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), -EBADMSG);
    ASSERT_EQ(parse_str("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), -EBADMSG);
    ASSERT_EQ(parse_str("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), -EBADMSG);
    ASSERT_EQ(parse_str("GET / HTTP/1.0\r\n\r\n"), 18);
    ASSERT_EQ(parse_str("GET / HTTP/1.1\r\nX-Host: a\r\nHosts: b\r\n\r\n"), -EBADMSG);
}

/* An over-long target is 414 (-ENAMETOOLONG), an over-long head 431. */
static void check_long_target(void)
{
    static char big[100 * 1024];
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', sizeof big - 5);
    ASSERT_EQ(parse(big, sizeof big), -ENAMETOOLONG);
    ASSERT_EQ(parse(big, MAG_HTTP_MAX_HEAD), -ENAMETOOLONG);
    ASSERT_EQ(parse(big, MAG_HTTP_MAX_HEAD - 1), 0);
    /* A long target that ends, then headers that overflow: 431. */
    static const char rest[] = " HTTP/1.1\r\nHost: h\r\nX: ";
    memcpy(big + 3000, rest, sizeof rest - 1);
    ASSERT_EQ(parse(big, sizeof big), -EMSGSIZE);
    /* A long target that fits is fine. */
    memcpy(big + 3000 + sizeof rest - 4, "\r\n", 2);
    int n = 3000 + (int)sizeof rest - 2;
    ASSERT_EQ(parse(big, sizeof big), n);
    ASSERT_EQ(req.target_len, 2996); /* "/" and the a's up to offset 3000 */
}

/* Transfer-Encoding on requests (RFC 9112 sections 6.1 and 6.3). */
static void check_transfer_encoding(void)
{
    static const struct {
        const char *te;
        int want; /* 0: accepted as chunked */
    } cases[] = {
        {"chunked", 0},          {"CHUNKED", 0},         {", chunked ,", 0},
        {"gzip, chunked", -EOPNOTSUPP},                  {"gzip;level=1 , chunked", -EOPNOTSUPP},
        {"chunked, gzip", -EBADMSG}, {"gzip", -EBADMSG}, {"chunked, chunked", -EBADMSG},
        {"chunked;x=1", -EBADMSG},   {"", -EBADMSG},     {"gzip chunked", -EBADMSG},
        {"chunked\"", -EBADMSG},     {"identity", -EBADMSG},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: %s\r\n\r\n",
                         cases[i].te);
        int r = parse(buf, (size_t)n);
        if (r != (cases[i].want ? cases[i].want : n))
            TEST_FAIL("Transfer-Encoding \"%s\": %d", cases[i].te, r);
        if (r > 0)
            ASSERT_EQ(req.framing, MAG_HTTP_BODY_CHUNKED);
    }
    /* Codings listed over several lines form one list. */
    ASSERT_EQ(parse_str("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n"),
              -EOPNOTSUPP);
    ASSERT_EQ(parse_str("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                        "Transfer-Encoding: gzip\r\n\r\n"),
              -EBADMSG);
    ASSERT_EQ(parse_str("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n"),
              -EBADMSG);
    /* With Content-Length, in either order, even when it is 0; on HTTP/1.0. */
    ASSERT_EQ(parse_str("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                        "Content-Length: 0\r\n\r\n"),
              -EBADMSG);
    ASSERT_EQ(parse_str("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n"),
              -EBADMSG);
    ASSERT_EQ(parse_str("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), -EBADMSG);
    const char *none = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    ASSERT_EQ(parse_str(none), (int)strlen(none));
    ASSERT_EQ(req.framing, MAG_HTTP_BODY_NONE);
}

/* The body decoder, fed in pieces cut at the given offsets, each piece in a
 * buffer of exactly its size (ASan catches a read past it). */
typedef struct decoded {
    int rc;     /* 1: the body ended; 0: it wants more; < 0: the error */
    size_t end; /* where in the input it ended (rc 1) */
    size_t out_len;
    char out[8192];
} decoded_t;

static void decode_cut(decoded_t *d, unsigned framing, uint64_t length, uint64_t max,
                       const char *in, size_t len, const size_t *cuts, size_t ncuts)
{
    mag_http_body_t b;
    ASSERT_EQ(mag_http_body_init(&b, framing, length, max), 0);
    d->rc = 0;
    d->end = 0;
    d->out_len = 0;
    size_t start = 0;
    for (size_t k = 0; k <= ncuts && d->rc == 0; k++) {
        size_t stop = k < ncuts ? cuts[k] : len;
        size_t plen = stop - start;
        char *piece = malloc(plen ? plen : 1);
        ASSERT_TRUE(piece != NULL);
        memcpy(piece, in + start, plen);
        size_t pos = 0;
        while (pos < plen || (plen == 0 && pos == 0 && k == ncuts)) {
            size_t used = 99;
            const char *o = NULL;
            size_t on = 99;
            int rc = mag_http_body_feed(&b, piece + pos, plen - pos, &used, &o, &on);
            ASSERT_LE(used, plen - pos);
            if (on) {
                ASSERT_TRUE(o >= piece + pos && o + on <= piece + pos + used);
                ASSERT_LE(d->out_len + on, sizeof d->out);
                memcpy(d->out + d->out_len, o, on);
                d->out_len += on;
            }
            pos += used;
            if (rc != 0) {
                if (rc < 0)
                    ASSERT_TRUE(used == 0 && on == 0);
                d->rc = rc;
                d->end = start + pos;
                ASSERT_EQ(mag_http_body_done(&b), rc == 1);
                break;
            }
            if (plen == 0)
                break;
            ASSERT_GT(used, 0); /* progress on every call with input */
        }
        free(piece);
        start = stop;
    }
    if (d->rc < 0) { /* sticky */
        size_t used;
        const char *o;
        size_t on;
        ASSERT_EQ(mag_http_body_feed(&b, "0\r\n\r\n", 5, &used, &o, &on), d->rc);
        ASSERT_EQ(mag_http_body_finish(&b), d->rc);
    }
}

/* Decodes in whole, byte by byte, and in every two-piece split; all must
 * agree. Returns the whole-input result in *d. */
static void decode_all_ways(decoded_t *d, unsigned framing, uint64_t length, uint64_t max,
                            const char *in, size_t len)
{
    static decoded_t other;
    static size_t cuts[8192];
    ASSERT_LE(len, sizeof cuts / sizeof cuts[0]);
    decode_cut(d, framing, length, max, in, len, NULL, 0);
    for (size_t i = 1; i < len; i++)
        cuts[i - 1] = i;
    for (size_t way = 0; way <= len + 1; way++) {
        if (way == len + 1) {
            decode_cut(&other, framing, length, max, in, len, cuts, len ? len - 1 : 0);
        } else {
            size_t cut = way;
            decode_cut(&other, framing, length, max, in, len, &cut, 1);
        }
        if (other.rc != d->rc || (d->rc == 1 && other.end != d->end) ||
            (d->rc >= 0 && (other.out_len != d->out_len || memcmp(other.out, d->out, d->out_len))))
            TEST_FAIL("\"%.40s\" split %zu: rc %d end %zu out %zu, whole: rc %d end %zu out %zu", in,
                      way, other.rc, other.end, other.out_len, d->rc, d->end, d->out_len);
    }
}

static void check_body_valid(void)
{
    static const struct {
        const char *in, *body;
    } ok[] = {
        {"5\r\nhello\r\n0\r\n\r\n", "hello"},
        {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"},
        {"0\r\n\r\n", ""},
        {"000\r\n\r\n", ""},
        {"A\r\n0123456789\r\na\r\n9876543210\r\n0\r\n\r\n", "01234567899876543210"},
        {"3;name=val;flag\r\nabc\r\n0;last\r\n\r\n", "abc"},
        {"3 ; q=\"quo;ted\\\"x\" ;\tz\r\nabc\r\n0\r\n\r\n", "abc"},
        {"2\r\n\r\n\r\n0\r\n\r\n", "\r\n"},
        {"1\r\nx\r\n0\r\nTrailer: yes\r\nX-Other:\t v \r\nX-Empty:\r\n\r\n", "x"},
        {"0000000000000010\r\n0123456789abcdef\r\n0\r\n\r\n", "0123456789abcdef"},
        {"4\r\n\0\xff\x01\n\r\n0\r\n\r\n", NULL}, /* binary data: checked by length */
    };
    char in[256];
    decoded_t d;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t n = i == 10 ? 14 : strlen(ok[i].in);
        memcpy(in, ok[i].in, n);
        memcpy(in + n, "GET / HTTP/1.1\r\n", 16); /* the next message */
        decode_all_ways(&d, MAG_HTTP_BODY_CHUNKED, 0, UINT64_MAX, in, n + 16);
        if (d.rc != 1 || d.end != n)
            TEST_FAIL("chunked[%zu]: rc %d end %zu, want 1 and %zu", i, d.rc, d.end, n);
        if (ok[i].body) {
            ASSERT_EQ(d.out_len, strlen(ok[i].body));
            ASSERT_TRUE(!memcmp(d.out, ok[i].body, d.out_len));
        } else {
            ASSERT_EQ(d.out_len, 4);
            ASSERT_TRUE(!memcmp(d.out, "\0\xff\x01\n", 4));
        }
        /* Cut short anywhere: never ends, never fails; finish says truncated. */
        decode_cut(&d, MAG_HTTP_BODY_CHUNKED, 0, UINT64_MAX, in, n - 1, NULL, 0);
        ASSERT_EQ(d.rc, 0);
    }
    /* A long extension within the limit. */
    size_t n = (size_t)snprintf(in, sizeof in, "1;");
    static char ext[MAG_HTTP_MAX_CHUNK_EXT + 64];
    memcpy(ext, in, n);
    memset(ext + n, 'e', MAG_HTTP_MAX_CHUNK_EXT - 1);
    n += MAG_HTTP_MAX_CHUNK_EXT - 1;
    memcpy(ext + n, "\r\nz\r\n0\r\n\r\n", 10);
    decode_cut(&d, MAG_HTTP_BODY_CHUNKED, 0, UINT64_MAX, ext, n + 10, NULL, 0);
    ASSERT_EQ(d.rc, 1);
    ASSERT_EQ(d.out_len, 1);

    /* Content-Length: exactly that many bytes, the rest is the next message. */
    const char *cl = "hello worldGET";
    decode_all_ways(&d, MAG_HTTP_BODY_LENGTH, 11, 11, cl, strlen(cl));
    ASSERT_EQ(d.rc, 1);
    ASSERT_EQ(d.end, 11);
    ASSERT_EQ(d.out_len, 11);
    ASSERT_TRUE(!memcmp(d.out, "hello world", 11));
    decode_all_ways(&d, MAG_HTTP_BODY_LENGTH, 0, 0, cl, strlen(cl));
    ASSERT_EQ(d.rc, 1);
    ASSERT_EQ(d.end, 0);
    decode_cut(&d, MAG_HTTP_BODY_LENGTH, 20, 20, cl, strlen(cl), NULL, 0);
    ASSERT_EQ(d.rc, 0);
    ASSERT_EQ(d.out_len, strlen(cl));
    /* Close-delimited: everything, never ends by itself. */
    decode_all_ways(&d, MAG_HTTP_BODY_CLOSE, 0, 100, cl, strlen(cl));
    ASSERT_EQ(d.rc, 0);
    ASSERT_EQ(d.out_len, strlen(cl));
    /* No body: ends at once, uses nothing. */
    decode_all_ways(&d, MAG_HTTP_BODY_NONE, 5, 0, cl, strlen(cl));
    ASSERT_EQ(d.rc, 1);
    ASSERT_EQ(d.end, 0);
}

static void check_body_invalid(void)
{
    static const char *bad[] = {
        "g\r\n",
        "\r\n",
        "1x\r\nx\r\n0\r\n\r\n",
        "-1\r\n",
        "+1\r\n",
        "0x1\r\n",
        " 1\r\n",
        ";x\r\n",
        "11111111111111111\r\n",  /* 17 digits */
        "00000000000000001\r\n",  /* 17 digits, even if small */
        "1\r\nab\r\n",            /* more data than the size says */
        "1\r\na\n0\r\n\r\n",      /* bare LF after data */
        "1\r\nar\n0\r\n\r\n",     /* no CR after data */
        "1\na\r\n0\r\n\r\n",      /* bare LF after the size */
        "1\ra\r\n",               /* bare CR after the size */
        "1 \r\na\r\n0\r\n\r\n",   /* BWS not followed by ';' */
        "1 x\r\na\r\n0\r\n\r\n",
        "1;a\x01\r\na\r\n0\r\n\r\n",
        "1;a\nb\r\n",
        "1;a\x7f\r\n",
        "1;a\r\r\n",
        "0\r\n\n",
        "0\r\n\r\r",
        "0\r\nX\r\n\r\n",         /* trailer without a colon */
        "0\r\n folded: x\r\n\r\n",
        "0\r\nX: a\x7f\r\n\r\n",
        "0\r\nX: a\n\r\n",
        "0\r\nX: a\r\r\n\r\n",
        "0\r\n: v\r\n\r\n",
        "0\r\nX : v\r\n\r\n",
        "0\r\nX\x01: v\r\n\r\n",
    };
    decoded_t d;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        decode_all_ways(&d, MAG_HTTP_BODY_CHUNKED, 0, UINT64_MAX, bad[i], strlen(bad[i]));
        if (d.rc != -EBADMSG)
            TEST_FAIL("bad chunked[%zu] \"%s\": %d", i, bad[i], d.rc);
    }
    /* The largest size is accepted (then wants its data) unless over the
     * limit; the total over chunks is checked too, without overflow. */
    const char *huge = "ffffffffffffffff\r\n";
    decode_cut(&d, MAG_HTTP_BODY_CHUNKED, 0, UINT64_MAX, huge, strlen(huge), NULL, 0);
    ASSERT_EQ(d.rc, 0);
    decode_all_ways(&d, MAG_HTTP_BODY_CHUNKED, 0, 1u << 20, huge, strlen(huge));
    ASSERT_EQ(d.rc, -EFBIG);
    const char *twice = "1\r\nx\r\nffffffffffffffff\r\n";
    decode_all_ways(&d, MAG_HTTP_BODY_CHUNKED, 0, UINT64_MAX, twice, strlen(twice));
    ASSERT_EQ(d.rc, -EFBIG);
    ASSERT_EQ(d.out_len, 1);

    /* Extensions and trailers over their limits. */
    static char big[MAG_HTTP_MAX_HEAD + 64];
    memcpy(big, "1;", 2);
    memset(big + 2, 'e', MAG_HTTP_MAX_CHUNK_EXT + 1);
    decode_cut(&d, MAG_HTTP_BODY_CHUNKED, 0, UINT64_MAX, big, MAG_HTTP_MAX_CHUNK_EXT + 3, NULL, 0);
    ASSERT_EQ(d.rc, -EBADMSG);
    memcpy(big, "0\r\nX: ", 6);
    memset(big + 6, 'v', MAG_HTTP_MAX_HEAD + 8);
    decode_cut(&d, MAG_HTTP_BODY_CHUNKED, 0, UINT64_MAX, big, MAG_HTTP_MAX_HEAD + 14, NULL, 0);
    ASSERT_EQ(d.rc, -EBADMSG);

    /* The body limit: data before the chunk that crosses it is given back. */
    const char *two = "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
    decode_all_ways(&d, MAG_HTTP_BODY_CHUNKED, 0, 9, two, strlen(two));
    ASSERT_EQ(d.rc, -EFBIG);
    ASSERT_EQ(d.out_len, 5);
    decode_all_ways(&d, MAG_HTTP_BODY_CHUNKED, 0, 10, two, strlen(two));
    ASSERT_EQ(d.rc, 1);
    ASSERT_EQ(d.out_len, 10);
    decode_cut(&d, MAG_HTTP_BODY_CLOSE, 0, 3, "abcd", 4, NULL, 0);
    ASSERT_EQ(d.rc, -EFBIG);

    /* Bad arguments leave outputs untouched. */
    mag_http_body_t b, copy;
    memset(&b, 0xab, sizeof b);
    memcpy(&copy, &b, sizeof b);
    ASSERT_EQ(mag_http_body_init(&b, MAG_HTTP_BODY_LENGTH, 11, 10), -EFBIG);
    ASSERT_EQ(mag_http_body_init(&b, 7, 0, 10), -EINVAL);
    ASSERT_TRUE(!memcmp(&b, &copy, sizeof b));
    ASSERT_EQ(mag_http_body_init(NULL, MAG_HTTP_BODY_NONE, 0, 0), -EINVAL);
    ASSERT_EQ(mag_http_body_init(&b, MAG_HTTP_BODY_LENGTH, 3, 10), 0);
    size_t used = 77;
    const char *o = "x";
    size_t on = 77;
    ASSERT_EQ(mag_http_body_feed(&b, NULL, 1, &used, &o, &on), -EINVAL);
    ASSERT_EQ(mag_http_body_feed(&b, "ab", 2, NULL, &o, &on), -EINVAL);
    ASSERT_EQ(mag_http_body_feed(NULL, "ab", 2, &used, &o, &on), -EINVAL);
    ASSERT_TRUE(used == 77 && on == 77 && *o == 'x');
    ASSERT_EQ(mag_http_body_feed(&b, NULL, 0, &used, &o, &on), 0);
    ASSERT_EQ(mag_http_body_feed(&b, "ab", 2, &used, &o, &on), 0);
    ASSERT_TRUE(used == 2 && on == 2);
    /* The connection closes: a cut body is -EBADMSG, for good. */
    ASSERT_EQ(mag_http_body_finish(&b), -EBADMSG);
    ASSERT_EQ(mag_http_body_feed(&b, "c", 1, &used, &o, &on), -EBADMSG);
    ASSERT_EQ(mag_http_body_finish(NULL), -EINVAL);
    ASSERT_EQ(mag_http_body_init(&b, MAG_HTTP_BODY_CLOSE, 0, UINT64_MAX), 0);
    ASSERT_EQ(mag_http_body_feed(&b, "ab", 2, &used, &o, &on), 0);
    ASSERT_EQ(mag_http_body_done(&b), 0);
    ASSERT_EQ(mag_http_body_finish(&b), 0);
    ASSERT_EQ(mag_http_body_done(&b), 1);
    ASSERT_EQ(mag_http_body_init(&b, MAG_HTTP_BODY_NONE, 0, 0), 0);
    ASSERT_EQ(mag_http_body_finish(&b), 0);
}

static mag_http_response_t resp;

static int parse_resp(const char *s, unsigned flags)
{
    size_t len = strlen(s);
    free(last);
    char *copy = last = malloc(len ? len : 1);
    ASSERT_TRUE(copy != NULL);
    memcpy(copy, s, len);
    int r = mag_http_parse_response(copy, len, flags, &resp);
    if (r > 0) {
        ASSERT_LE(r, (int64_t)len);
        ASSERT_TRUE(resp.reason >= copy && resp.reason + resp.reason_len <= copy + r);
        for (uint32_t i = 0; i < resp.nheaders; i++)
            ASSERT_TRUE(resp.headers[i].value >= copy &&
                        resp.headers[i].value + resp.headers[i].value_len <= copy + r);
        /* Every cut of it is incomplete. */
        for (int cut = 0; cut < r; cut++)
            if (mag_http_parse_response(copy, (size_t)cut, flags, &resp) != 0)
                TEST_FAIL("\"%.30s\" cut at %d: not incomplete", s, cut);
        ASSERT_EQ(mag_http_parse_response(copy, len, flags, &resp), r);
    }
    return r;
}

static void check_response(void)
{
    static const struct {
        const char *head;
        unsigned flags;
        int status;
        unsigned framing;
        uint64_t length;
        bool keep;
    } ok[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 0, 200, MAG_HTTP_BODY_LENGTH, 5, true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 200, MAG_HTTP_BODY_CHUNKED, 0,
         true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, 200,
         MAG_HTTP_BODY_CHUNKED, 0, true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, 200, MAG_HTTP_BODY_CLOSE, 0,
         false},
        {"HTTP/1.1 200 OK\r\n\r\n", 0, 200, MAG_HTTP_BODY_CLOSE, 0, false},
        {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 0, 404,
         MAG_HTTP_BODY_LENGTH, 0, false},
        {"HTTP/1.1 204 No Content\r\n\r\n", 0, 204, MAG_HTTP_BODY_NONE, 0, true},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", 0, 304, MAG_HTTP_BODY_NONE, 99,
         true},
        {"HTTP/1.1 100 Continue\r\n\r\n", 0, 100, MAG_HTTP_BODY_NONE, 0, true},
        /* After a 101 the connection is another protocol's: not reusable. */
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", 0, 101, MAG_HTTP_BODY_NONE, 0,
         false},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", MAG_HTTP_RESPONSE_TO_HEAD, 200,
         MAG_HTTP_BODY_NONE, 5, true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", MAG_HTTP_RESPONSE_TO_HEAD, 200,
         MAG_HTTP_BODY_NONE, 0, true},
        {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", 0, 200, MAG_HTTP_BODY_LENGTH, 2, false},
        {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n", 0, 200,
         MAG_HTTP_BODY_LENGTH, 2, true},
        {"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", 0, 200, MAG_HTTP_BODY_LENGTH, 1, true},
        {"HTTP/1.1 599 \r\nContent-Length: 1\r\n\r\n", 0, 599, MAG_HTTP_BODY_LENGTH, 1, true},
        {"HTTP/1.1 200 O K\t\x80\r\nX:y\r\nContent-Length: 1\r\n\r\n", 0, 200,
         MAG_HTTP_BODY_LENGTH, 1, true},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int r = parse_resp(ok[i].head, ok[i].flags);
        if (r != (int)strlen(ok[i].head))
            TEST_FAIL("response[%zu]: %d", i, r);
        ASSERT_EQ(resp.status, ok[i].status);
        ASSERT_EQ(resp.framing, ok[i].framing);
        ASSERT_UEQ(resp.content_length, ok[i].length);
        ASSERT_EQ((resp.flags & MAG_HTTP_KEEP_ALIVE) != 0, ok[i].keep);
    }
    ASSERT_GT(parse_resp("HTTP/1.1 404 Not Found\r\nServer: m\r\n\r\n", 0), 0);
    ASSERT_EQ(resp.minor_version, 1);
    ASSERT_EQ(resp.reason_len, 9);
    ASSERT_TRUE(!memcmp(resp.reason, "Not Found", 9));
    const mag_http_header_t *h = mag_http_response_header(&resp, "SERVER");
    ASSERT_TRUE(h && h->value_len == 1 && h->value[0] == 'm');
    ASSERT_TRUE(mag_http_response_header(&resp, "Serve") == NULL);
    ASSERT_TRUE(mag_http_response_header(NULL, "x") == NULL);

    static const struct {
        const char *head;
        int want;
    } bad[] = {
        {"HTTP/1.1 20 OK\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 2000 OK\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 099 x\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 600 x\r\n\r\n", -EBADMSG},
        {"HTTP/1.1  200 OK\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\nA: b\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 O\x01K\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\n folded\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip chunked\r\n\r\n", -EBADMSG},
        {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", -EBADMSG},
        {"ICY 200 OK\r\n\r\n", -EBADMSG},
        {"HTTP/2.0 200 OK\r\n\r\n", -EPROTONOSUPPORT},
        {"HTTP/1.1 200 OK\r\n\r\n", -EINVAL}, /* with an unknown flag */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = parse_resp(bad[i].head, i == 17 ? 2u : 0u);
        if (r != bad[i].want)
            TEST_FAIL("bad response[%zu]: %d, want %d", i, r, bad[i].want);
    }
    memset(&resp, 0x5a, sizeof resp);
    mag_http_response_t copy;
    memcpy(&copy, &resp, sizeof resp);
    ASSERT_EQ(mag_http_parse_response("x", 1, 0x80, &resp), -EINVAL);
    ASSERT_EQ(mag_http_parse_response(NULL, 1, 0, &resp), -EINVAL);
    ASSERT_TRUE(!memcmp(&resp, &copy, sizeof resp));
    ASSERT_EQ(mag_http_parse_response("x", 1, 0, NULL), -EINVAL);
    /* Too large a head. */
    static char big[MAG_HTTP_MAX_HEAD + 64];
    int n = snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nX: ");
    memset(big + n, 'a', sizeof big - (size_t)n);
    ASSERT_EQ(mag_http_parse_response(big, sizeof big, 0, &resp), -EMSGSIZE);
}

/* A client reading responses off one connection, the stream arriving in
 * pieces of the given size: heads parsed, bodies decoded, until EOF. */
static void client_stream(const char *stream, size_t len, size_t piece, const unsigned *flags,
                          const int *statuses, const char *const *bodies, int nresp)
{
    char buf[1024], got[8][64];
    size_t have = 0, fed = 0, got_len[8] = {0};
    int seen = 0;
    bool in_body = false;
    mag_http_response_t r;
    mag_http_body_t body;
    for (;;) {
        size_t pos = 0;
        for (;;) {
            if (!in_body) {
                int h = mag_http_parse_response(buf + pos, have - pos, flags[seen], &r);
                ASSERT_GE(h, 0);
                if (h == 0)
                    break;
                pos += (size_t)h;
                ASSERT_LT(seen, nresp);
                ASSERT_EQ(r.status, statuses[seen]);
                ASSERT_EQ(mag_http_body_init(&body, r.framing, r.content_length, 64), 0);
                seen++;
                in_body = true;
            }
            size_t used;
            const char *o;
            size_t on;
            int rc = mag_http_body_feed(&body, buf + pos, have - pos, &used, &o, &on);
            ASSERT_GE(rc, 0);
            if (on) /* o may be NULL when nothing came back */
                memcpy(got[seen - 1] + got_len[seen - 1], o, on);
            got_len[seen - 1] += on;
            pos += used;
            if (rc == 1)
                in_body = false;
            else if (pos == have)
                break;
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
        if (fed == len)
            break;
        size_t k = len - fed < piece ? len - fed : piece;
        memcpy(buf + have, stream + fed, k);
        have += k;
        fed += k;
    }
    ASSERT_EQ(have, 0);
    ASSERT_EQ(seen, nresp);
    if (in_body)
        ASSERT_EQ(mag_http_body_finish(&body), 0);
    for (int i = 0; i < nresp; i++) {
        if (got_len[i] != strlen(bodies[i]) || memcmp(got[i], bodies[i], got_len[i]))
            TEST_FAIL("piece %zu, response %d: body \"%.*s\"", piece, i, (int)got_len[i], got[i]);
    }
}

static void check_client(void)
{
    const char *stream = "HTTP/1.1 100 Continue\r\n\r\n"
                         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" /* answers a HEAD */
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "3;x\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
                         "HTTP/1.1 204 No Content\r\n\r\n"
                         "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
                         "HTTP/1.1 200 OK\r\n\r\nto the end\r\n\r\n";
    static const unsigned flags[8] = {0, 0, MAG_HTTP_RESPONSE_TO_HEAD, 0, 0, 0, 0, 0};
    static const int statuses[] = {100, 200, 200, 200, 204, 304, 200};
    static const char *const bodies[] = {"", "hello", "", "abcde", "", "", "to the end\r\n\r\n"};
    size_t len = strlen(stream);
    for (size_t piece = 1; piece <= len; piece++)
        client_stream(stream, len, piece, flags, statuses, bodies, 7);
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static void check_random(void)
{
    static const char alphabet[] = "GET /HTP1.0\r\n: \t,ck-lose";
    char buf[600];
    int rounds = TEST_SANITIZED ? 20000 : 200000;
    for (int i = 0; i < rounds; i++) {
        size_t len = rnd() % sizeof buf;
        int mode = i % 3;
        for (size_t j = 0; j < len; j++)
            buf[j] = mode == 0 ? (char)rnd() : alphabet[rnd() % (sizeof alphabet - 1)];
        if (mode == 2 && len > 0) { /* mutate a valid head */
            const char *v = valid[rnd() % (sizeof valid / sizeof valid[0])];
            size_t vl = strlen(v);
            len = vl < len ? vl : len;
            memcpy(buf, v, len);
            for (int k = rnd() % 4; k >= 0; k--)
                buf[rnd() % len] = (char)rnd();
        }
        int r = parse(buf, len);
        ASSERT_TRUE(r >= 0 || r == -EBADMSG || r == -EMSGSIZE || r == -EPROTONOSUPPORT ||
                    r == -ENAMETOOLONG || r == -EOPNOTSUPP);
    }
}

int main(void)
{
    check_valid();
    check_malformed();
    check_limits();
    check_host();
    check_long_target();
    check_transfer_encoding();
    check_random();
    check_body_valid();
    check_body_invalid();
    check_response();
    check_client();
    return 0;
}
