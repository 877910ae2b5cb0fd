/* http_server: runs examples/http_server (built next to this test) with the
 * smallest fiber stacks (MAG_STACK_SIZE=16k) and talks HTTP/1.1 to it:
 * keep-alive, pipelining split at every kind of boundary, HTTP/1.0,
 * HEAD/404/405 with a body, 400 (Host rules, bad chunks), 413, 414, 431 and
 * 501 with the connection closed, POST /echo with Content-Length and chunked
 * bodies (read back through the response parser and body decoder), 100
 * Continue, random bytes on many connections, and clients that leave
 * mid-response. The server must stay up throughout. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <magpie/http1.h>

#include "test/test.h"
#include "test/programs.h"

static uint16_t port;
static const char get_req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
static const char hello[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 13\r\n\r\nHello, World!";
#define LEN(s) (sizeof(s) - 1)

static pid_t start_server(void)
{
    /* Every connection's frames must fit the smallest stack: a frame too big
     * aborts the server, and the test sees it die. */
    static const char *const args[] = {"--port", "0", "--workers", "2", NULL};
    pid_t pid;
    port = test_start_server("examples/http_server", args, "MAG_STACK_SIZE", "16k", &pid);
    return pid;
}

static int conn(void)
{
    int fd = mag_tcp_connect("127.0.0.1", port);
    if (fd < 0)
        TEST_FAIL("connect: %d", fd);
    return fd;
}

/* Reads exactly n bytes (bounded in time), fails otherwise. */
static void read_n(int fd, char *buf, size_t n)
{
    uint64_t tok = mag_deadline_push(mag_now() + 30 * MAG_SEC);
    size_t got = 0;
    while (got < n) {
        ssize_t r = mag_recv(fd, buf + got, n - got, 0);
        if (r <= 0)
            TEST_FAIL("recv after %zu of %zu bytes: %zd", got, n, r);
        got += (size_t)r;
    }
    mag_deadline_pop(tok);
}

/* Reads until EOF (bounded), returns the count. */
static size_t read_all(int fd, char *buf, size_t max)
{
    uint64_t tok = mag_deadline_push(mag_now() + 30 * MAG_SEC);
    size_t got = 0;
    ssize_t r;
    while (got < max && (r = mag_recv(fd, buf + got, max - got, 0)) > 0)
        got += (size_t)r;
    mag_deadline_pop(tok);
    return got;
}

static void keep_alive_and_pipelining(void)
{
    int fd = conn();
    char buf[8192];
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(mag_send_all(fd, get_req, LEN(get_req), 0), (ssize_t)LEN(get_req));
        read_n(fd, buf, LEN(hello));
        ASSERT_TRUE(memcmp(buf, hello, LEN(hello)) == 0);
    }
    /* 100 pipelined requests in one send, then in pieces of every size. */
    enum { N = 100 };
    static char reqs[N * LEN(get_req)], resp[N * LEN(hello)];
    for (int i = 0; i < N; i++)
        memcpy(reqs + i * LEN(get_req), get_req, LEN(get_req));
    for (size_t piece = sizeof reqs; piece >= 1; piece = piece > 7 ? piece / 3 : piece - 1) {
        for (size_t off = 0; off < sizeof reqs; off += piece) {
            size_t k = sizeof reqs - off < piece ? sizeof reqs - off : piece;
            ASSERT_EQ(mag_send_all(fd, reqs + off, k, 0), (ssize_t)k);
        }
        read_n(fd, resp, sizeof resp);
        for (int i = 0; i < N; i++)
            ASSERT_TRUE(memcmp(resp + i * LEN(hello), hello, LEN(hello)) == 0);
    }
    mag_close(fd);
}

static void expect_status_then_close(const char *req, size_t len, const char *status)
{
    int fd = conn();
    ASSERT_EQ(mag_send_all(fd, req, len, 0), (ssize_t)len);
    static char buf[65536];
    size_t n = read_all(fd, buf, sizeof buf - 1);
    buf[n] = 0;
    if (strncmp(buf, status, strlen(status)) != 0)
        TEST_FAIL("want \"%s\", got \"%.60s\"", status, buf);
    ASSERT_TRUE(strstr(buf, "Connection: close\r\n") != NULL);
    mag_close(fd);
}

static void statuses(void)
{
    const char *r10 = "GET / HTTP/1.0\r\n\r\n";
    expect_status_then_close(r10, strlen(r10), "HTTP/1.1 200 OK");
    const char *bad = "GARBAGE\r\n\r\n";
    expect_status_then_close(bad, strlen(bad), "HTTP/1.1 400 ");
    /* 400 after good pipelined requests: those are answered first. */
    char mixed[256];
    int n = snprintf(mixed, sizeof mixed, "%s%sGET / HTTP/1.1\r\nBad Header: x\r\n\r\n", get_req,
                     get_req);
    expect_status_then_close(mixed, (size_t)n, "HTTP/1.1 200 OK");
    static char big[9000 + 64];
    n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'a', sizeof big - (size_t)n);
    expect_status_then_close(big, sizeof big, "HTTP/1.1 431 ");
    const char *h2 = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    expect_status_then_close(h2, strlen(h2), "HTTP/1.1 505 ");
    const char *gzip = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    expect_status_then_close(gzip, strlen(gzip), "HTTP/1.1 501 ");

    /* HEAD, 404, and 405 with a body, then a GET on the same connection. */
    int fd = conn();
    const char *reqs = "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n0\r\n\r\n"
                       "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ASSERT_EQ(mag_send_all(fd, reqs, strlen(reqs), 0), (ssize_t)strlen(reqs));
    static char buf[4096];
    size_t got = read_all(fd, buf, sizeof buf - 1);
    buf[got] = 0;
    char *p = buf;
    ASSERT_TRUE(!strncmp(p, "HTTP/1.1 200 OK", 15)); /* HEAD: no body follows */
    ASSERT_TRUE((p = strstr(p, "\r\n\r\n")) && !strncmp(p + 4, "HTTP/1.1 404", 12));
    ASSERT_TRUE((p = strstr(p + 4, "Not Found\n")) && !strncmp(p + 10, "HTTP/1.1 405", 12));
    ASSERT_TRUE((p = strstr(p + 10, "\r\n\r\n")) && !strncmp(p + 4, "HTTP/1.1 405", 12));
    ASSERT_TRUE((p = strstr(p + 4, "\r\n\r\n")) && !strncmp(p + 4, "HTTP/1.1 200 OK", 15));
    ASSERT_TRUE(strstr(p, "Connection: close\r\n\r\nHello, World!") != NULL);
    mag_close(fd);
}

/* A client's end of a connection: what it received and has not used yet. */
typedef struct client {
    int fd;
    size_t len;
    char buf[65536];
} client_t;

static client_t *client_open(void)
{
    client_t *cl = calloc(1, sizeof *cl);
    ASSERT_TRUE(cl != NULL);
    cl->fd = conn();
    return cl;
}

static void client_close(client_t *cl)
{
    mag_close(cl->fd);
    free(cl);
}

static void client_send(client_t *cl, const void *p, size_t n)
{
    ASSERT_EQ(mag_send_all(cl->fd, p, n, 0), (ssize_t)n);
}

/* Reads one response with the library's response parser and body decoder;
 * returns its status, the body in *body (malloc'd, NUL-ended) and its
 * length in *body_len, and whether the connection stays open in *keep. */
static int client_response(client_t *cl, char **body, size_t *body_len, bool *keep)
{
    uint64_t tok = mag_deadline_push(mag_now() + 30 * MAG_SEC);
    mag_http_response_t resp;
    int h;
    while ((h = mag_http_parse_response(cl->buf, cl->len, 0, &resp)) == 0) {
        ssize_t r = mag_recv(cl->fd, cl->buf + cl->len, sizeof cl->buf - cl->len, 0);
        if (r <= 0)
            TEST_FAIL("recv of a head: %zd", r);
        cl->len += (size_t)r;
    }
    ASSERT_GT(h, 0);
    mag_http_body_t b;
    ASSERT_EQ(mag_http_body_init(&b, resp.framing, resp.content_length, 8u << 20), 0);
    size_t cap = 4096, got = 0, pos = (size_t)h;
    char *out = malloc(cap);
    ASSERT_TRUE(out != NULL);
    for (;;) {
        size_t used, n;
        const char *p;
        int rc = mag_http_body_feed(&b, cl->buf + pos, cl->len - pos, &used, &p, &n);
        ASSERT_GE(rc, 0);
        if (got + n + 1 > cap) {
            while (got + n + 1 > cap)
                cap *= 2;
            ASSERT_TRUE((out = realloc(out, cap)) != NULL);
        }
        if (n) /* p may be NULL when nothing came back */
            memcpy(out + got, p, n);
        got += n;
        pos += used;
        if (rc == 1)
            break;
        if (pos < cl->len)
            continue;
        pos = cl->len = 0;
        ssize_t r = mag_recv(cl->fd, cl->buf, sizeof cl->buf, 0);
        if (r < 0)
            TEST_FAIL("recv of a body: %zd", r);
        if (r == 0) {
            ASSERT_EQ(mag_http_body_finish(&b), 0);
            break;
        }
        cl->len = (size_t)r;
    }
    memmove(cl->buf, cl->buf + pos, cl->len - pos);
    cl->len -= pos;
    mag_deadline_pop(tok);
    out[got] = 0;
    *body = out;
    *body_len = got;
    *keep = (resp.flags & MAG_HTTP_KEEP_ALIVE) != 0;
    return resp.status;
}

/* Sends req, expects status with the connection closed after it. */
static void expect_final(const char *req, size_t len, int status)
{
    client_t *cl = client_open();
    client_send(cl, req, len);
    char *body;
    size_t blen;
    bool keep;
    ASSERT_EQ(client_response(cl, &body, &blen, &keep), status);
    ASSERT_TRUE(!keep);
    free(body);
    ASSERT_EQ(read_all(cl->fd, cl->buf, sizeof cl->buf), 0); /* then EOF */
    client_close(cl);
}

static void framing_errors(void)
{
    static const char *no_host = "GET / HTTP/1.1\r\n\r\n";
    expect_final(no_host, strlen(no_host), 400);
    static const char *two_hosts = "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n";
    expect_final(two_hosts, strlen(two_hosts), 400);
    static const char *bad_host = "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n";
    expect_final(bad_host, strlen(bad_host), 400);
    static const char *both = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n";
    expect_final(both, strlen(both), 400);
    static const char *bad_chunk = "POST /echo HTTP/1.1\r\nHost: a\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n";
    expect_final(bad_chunk, strlen(bad_chunk), 400);
    /* A 100 KiB target: 414, not 431. */
    enum { URI = 100 * 1024 };
    char *uri = malloc(URI + 64);
    ASSERT_TRUE(uri != NULL);
    memcpy(uri, "GET /", 5);
    memset(uri + 5, 'u', URI);
    int n = snprintf(uri + 5 + URI, 59, " HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_final(uri, 5 + URI + (size_t)n, 414);
    free(uri);
    /* A Content-Length over the limit: 413 before the body is sent. */
    static const char *too_long =
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n";
    expect_final(too_long, strlen(too_long), 413);
}

static uint32_t rnd(void);

/* POST /echo: the body comes back whatever its framing. */
static void echo(void)
{
    client_t *cl = client_open();
    char *body;
    size_t blen;
    bool keep;
    const char *cl_req = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello echo";
    client_send(cl, cl_req, strlen(cl_req));
    ASSERT_EQ(client_response(cl, &body, &blen, &keep), 200);
    ASSERT_TRUE(keep && blen == 10 && !memcmp(body, "hello echo", 10));
    free(body);
    /* Chunked, with extensions and trailers, sent a byte at a time. */
    const char *ch_req = "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5;ext=1\r\nhello\r\n1\r\n \r\n7\r\nchunked\r\n0\r\nT: v\r\n\r\n";
    for (size_t i = 0; ch_req[i]; i++)
        client_send(cl, ch_req + i, 1);
    ASSERT_EQ(client_response(cl, &body, &blen, &keep), 200);
    ASSERT_TRUE(keep);
    ASSERT_STR_EQ(body, "hello chunked");
    free(body);
    /* Empty bodies, pipelined with a GET. */
    const char *three =
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    client_send(cl, three, strlen(three));
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(client_response(cl, &body, &blen, &keep), 200);
        ASSERT_EQ(blen, i < 2 ? 0 : 13);
        free(body);
    }
    /* 100-continue: the server invites the body. */
    const char *expect = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                         "Expect: 100-continue\r\n\r\n";
    client_send(cl, expect, strlen(expect));
    ASSERT_EQ(client_response(cl, &body, &blen, &keep), 100);
    free(body);
    client_send(cl, "abc", 3);
    ASSERT_EQ(client_response(cl, &body, &blen, &keep), 200);
    ASSERT_STR_EQ(body, "abc");
    free(body);

    /* Exactly the limit, in random-sized chunks: it all comes back. */
    enum { LIMIT = 1 << 20 };
    char *big = malloc(LIMIT), line[32];
    ASSERT_TRUE(big != NULL);
    for (size_t i = 0; i < LIMIT; i++)
        big[i] = (char)rnd();
    const char *head = "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    client_send(cl, head, strlen(head));
    for (size_t off = 0; off < LIMIT;) {
        size_t k = 1 + rnd() % 70000;
        k = k < LIMIT - off ? k : LIMIT - off;
        int n = snprintf(line, sizeof line, "%zx\r\n", k);
        client_send(cl, line, (size_t)n);
        client_send(cl, big + off, k);
        client_send(cl, "\r\n", 2);
        off += k;
    }
    client_send(cl, "0\r\n\r\n", 5);
    ASSERT_EQ(client_response(cl, &body, &blen, &keep), 200);
    ASSERT_TRUE(keep && blen == LIMIT && !memcmp(body, big, LIMIT));
    free(body);
    /* The same with a Content-Length. */
    const char *cl_head = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: ";
    int n = snprintf(line, sizeof line, "%d", LIMIT);
    client_send(cl, cl_head, strlen(cl_head));
    client_send(cl, line, (size_t)n);
    client_send(cl, "\r\n\r\n", 4);
    client_send(cl, big, LIMIT);
    ASSERT_EQ(client_response(cl, &body, &blen, &keep), 200);
    ASSERT_TRUE(keep && blen == LIMIT && !memcmp(body, big, LIMIT));
    free(body);
    /* One byte more, chunked: 413 once the size line says so. */
    client_send(cl, head, strlen(head));
    n = snprintf(line, sizeof line, "%x\r\n", LIMIT);
    client_send(cl, line, (size_t)n);
    client_send(cl, big, LIMIT);
    client_send(cl, "\r\n1\r\n", 5);
    ASSERT_EQ(client_response(cl, &body, &blen, &keep), 413);
    ASSERT_TRUE(!keep);
    free(body);
    free(big);
    client_close(cl);
}

static uint64_t seed = 0x2545f4914f6cdd1dull;
static uint32_t rnd(void)
{
    /* Tasks on several workers share it: a data race on a PRNG is harmless
     * for the test's purpose, but keep TSan quiet with an atomic. */
    static _Atomic uint64_t s = 0x2545f4914f6cdd1dull;
    uint64_t x = atomic_fetch_add(&s, 0x9e3779b97f4a7c15ull) ^ seed;
    x ^= x >> 31, x *= 0xbf58476d1ce4e5b9ull, x ^= x >> 27;
    return (uint32_t)(x >> 32);
}

static int garbage_client(void *arg)
{
    int mode = (int)(intptr_t)arg;
    int fd = conn();
    char buf[4096];
    size_t n = rnd() % sizeof buf;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)rnd();
    if (mode == 1 && n > 16) /* a plausible start, then garbage */
        memcpy(buf, "GET / HTTP/1.1\r\n", 16);
    (void)mag_send_all(fd, buf, n, 0);
    if (mode == 2) {
        /* Leave mid-response: many requests, then reset the connection. */
        for (int i = 0; i < 200; i++)
            (void)mag_send_all(fd, get_req, LEN(get_req), 0);
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    } else {
        shutdown(fd, SHUT_WR);
        read_all(fd, buf, sizeof buf);
    }
    mag_close(fd);
    return 0;
}

static void abuse(void)
{
    mag_group_t *g = mag_group_create(0);
    int clients = TEST_SANITIZED ? 60 : 300;
    for (int i = 0; i < clients; i++)
        ASSERT_GE(mag_group_spawn(g, garbage_client, (void *)(intptr_t)(i % 3)), 0);
    ASSERT_EQ(mag_group_wait(g), 0);
    mag_group_destroy(g);
}

static int main_task(void *arg)
{
    (void)arg;
    keep_alive_and_pipelining();
    statuses();
    framing_errors();
    echo();
    abuse();
    keep_alive_and_pipelining(); /* still serving */
    return 0;
}

int main(void)
{
    pid_t pid = start_server();
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    int status = -1;
    int rc = mag_run(&cfg, main_task, NULL, &status);
    bool alive = test_stop_server(pid);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(status, 0);
    ASSERT_TRUE(alive); /* the server was alive until we stopped it */
    return 0;
}
