/* http_parse: the HTTP/1.x request-head parser on valid heads, on every
 * truncation of them (always "incomplete", never an error), on malformed
 * heads, on the size limits, and on random and mutated bytes (never reads
 * past the end: run it under AddressSanitizer). */
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
    "GET / HTTP/1.1\r\n\r\n",
    "GET /a/b?c=d&e HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "\r\nPOST /x HTTP/1.1\r\nContent-Length: 5\r\nX-Empty:\r\nX-Sp:   v  \r\n\r\nhello",
    "OPTIONS * HTTP/1.1\r\nA: b\r\nC:d\r\n\r\n",
    "GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    "GET / HTTP/1.1\r\nConnection: Upgrade, close\r\nObs: caf\xc3\xa9\r\n\r\n",
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
    ASSERT_EQ(req.nheaders, 3);
    ASSERT_EQ(req.headers[1].value_len, 0);
    ASSERT_EQ(req.headers[2].value_len, 1); /* whitespace trimmed */

    ASSERT_GT(parse_str(valid[5]), 0);
    ASSERT_TRUE(req.flags & MAG_HTTP_CHUNKED);
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
    const char *two = "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
    r = parse_str(two);
    ASSERT_EQ(r, 19);
    ASSERT_EQ(parse_str(two + r), 19);
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
    S("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"),
    S("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n"),
    S("GET / HTTP/1.1\r\nA: b\0\r\n\r\n"),
    S("GET / HTTX/1.1\r\n\r\n"),
    S("GET / HTTP/1.x\r\n\r\n"),
    S("GET / HTTP/11\r\n\r\n"),
    S("GET /\x7f HTTP/1.1\r\n\r\n"),
    S("G(T / HTTP/1.1\r\n\r\n"),
    S("GET / HTTP/1.1 \r\n\r\n"),
    S("GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"),
    S("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
    S("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
    S("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"),
    S("GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
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
    const char *same = "GET / HTTP/1.1\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n";
    ASSERT_EQ(parse_str(same), (int)strlen(same)); /* repeated, equal: fine */
    ASSERT_EQ(mag_http_parse_request(NULL, 0, &req), 0);
    ASSERT_EQ(mag_http_parse_request(NULL, 5, &req), -EINVAL);
    ASSERT_EQ(mag_http_parse_request("x", 1, NULL), -EINVAL);
}

static void check_limits(void)
{
    /* A head over 8 KiB: -EMSGSIZE once 8 KiB have arrived without its end. */
    static char big[MAG_HTTP_MAX_HEAD + 100];
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX-Big: ");
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
        ASSERT_TRUE(r >= 0 || r == -EBADMSG || r == -EMSGSIZE || r == -EPROTONOSUPPORT);
    }
}

int main(void)
{
    check_valid();
    check_malformed();
    check_limits();
    check_random();
    return 0;
}
