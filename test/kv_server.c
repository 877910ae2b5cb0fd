/* kv_server: runs examples/kv_server (built next to this test) and speaks
 * RESP2 to it with a client of its own: every command, inline commands,
 * pipelined batches split at every byte, binary values with CR, LF and NUL
 * inside, INCR on a non-integer and past the largest integer, concurrent
 * INCRs from many connections, malformed and truncated frames (an error
 * reply, then the connection closes), declared lengths far beyond what is
 * sent (the server's memory must not grow), an MGET that names one large
 * value a hundred times, a request of a million arguments (the server's
 * memory must not keep either), a client that never reads (cut after the
 * send timeout), QUIT; and, where redis-cli is
 * installed, a few commands through it. The server must stay up throughout. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test/test.h"
#include "test/programs.h"

static uint16_t port;
static pid_t server;
#define LEN(s) (sizeof(s) - 1)

static void start_server(void)
{
    static const char *const args[] = {"--port", "0", "--workers", "2", NULL};
    port = test_start_server("examples/kv_server", args, NULL, NULL, &server);
}

static int conn(void)
{
    int fd = mag_tcp_connect("127.0.0.1", port);
    if (fd < 0)
        TEST_FAIL("connect: %d", fd);
    return fd;
}

static void send_bytes(int fd, const void *buf, size_t n)
{
    ASSERT_EQ(mag_send_all(fd, buf, n, 0), (ssize_t)n);
}

static void send_str(int fd, const char *s)
{
    send_bytes(fd, s, strlen(s));
}

/* Reads exactly n bytes (bounded in time) and compares them with want. */
static void expect_bytes(int fd, const char *want, size_t n)
{
    static char buf[4 << 20];
    ASSERT_LE(n, sizeof buf);
    uint64_t tok = mag_deadline_push(mag_now() + 30 * MAG_SEC);
    size_t got = 0;
    while (got < n) {
        ssize_t r = mag_recv(fd, buf + got, n - got, 0);
        if (r <= 0)
            TEST_FAIL("recv after %zu of %zu bytes: %zd (want \"%.60s\")", got, n, r, want);
        got += (size_t)r;
    }
    mag_deadline_pop(tok);
    if (memcmp(buf, want, n) != 0)
        TEST_FAIL("want \"%.*s\", got \"%.*s\"", (int)(n < 80 ? n : 80), want,
                  (int)(n < 80 ? n : 80), buf);
}

static void expect(int fd, const char *want)
{
    expect_bytes(fd, want, strlen(want));
}

/* The server closes: end of input (or a reset) within the deadline, and no
 * further byte. */
static void expect_close(int fd)
{
    char c;
    uint64_t tok = mag_deadline_push(mag_now() + 30 * MAG_SEC);
    ssize_t r = mag_recv(fd, &c, 1, 0);
    mag_deadline_pop(tok);
    if (r != 0 && r != -ECONNRESET)
        TEST_FAIL("want the connection closed, got %zd (byte '%c')", r, r > 0 ? c : ' ');
}

/* Appends a RESP array of the n arguments to buf at *len. */
static void put_cmd(char *buf, size_t *len, int n, const char *const *argv, const size_t *lens)
{
    *len += (size_t)sprintf(buf + *len, "*%d\r\n", n);
    for (int i = 0; i < n; i++) {
        size_t l = lens ? lens[i] : strlen(argv[i]);
        *len += (size_t)sprintf(buf + *len, "$%zu\r\n", l);
        memcpy(buf + *len, argv[i], l);
        *len += l;
        memcpy(buf + *len, "\r\n", 2);
        *len += 2;
    }
}

/* Sends one command of text arguments and checks the reply. */
#define CMD(fd, want, ...)                                                                         \
    do {                                                                                           \
        const char *argv_[] = {__VA_ARGS__};                                                       \
        char b_[1024];                                                                             \
        size_t l_ = 0;                                                                             \
        put_cmd(b_, &l_, (int)(sizeof argv_ / sizeof argv_[0]), argv_, NULL);                      \
        send_bytes(fd, b_, l_);                                                                    \
        expect(fd, want);                                                                          \
    } while (0)

static void commands(void)
{
    int fd = conn();
    CMD(fd, "+PONG\r\n", "PING");
    CMD(fd, "$5\r\nhello\r\n", "ping", "hello");
    CMD(fd, "$3\r\nabc\r\n", "ECHO", "abc");
    CMD(fd, "$0\r\n\r\n", "echo", "");
    CMD(fd, "$-1\r\n", "GET", "t:missing");
    CMD(fd, "+OK\r\n", "SET", "t:k", "v1");
    CMD(fd, "$2\r\nv1\r\n", "GET", "t:k");
    CMD(fd, "+OK\r\n", "SeT", "t:k", "a longer value than before");
    CMD(fd, "$26\r\na longer value than before\r\n", "gEt", "t:k");
    CMD(fd, ":2\r\n", "EXISTS", "t:k", "t:missing", "t:k");
    CMD(fd,
        "*3\r\n$26\r\na longer value than before\r\n$-1\r\n$26\r\na longer value than "
        "before\r\n",
        "MGET", "t:k", "t:missing", "t:k");
    CMD(fd, ":1\r\n", "INCR", "t:n");
    CMD(fd, ":2\r\n", "incr", "t:n");
    CMD(fd, "$1\r\n2\r\n", "GET", "t:n");
    CMD(fd, "+OK\r\n", "SET", "t:n", "-10");
    CMD(fd, ":-9\r\n", "INCR", "t:n");
    CMD(fd, "+OK\r\n", "SET", "t:n", "99");
    CMD(fd, ":100\r\n", "INCR", "t:n"); /* longer than the value SET stored */
    const char *not_int = "-ERR value is not an integer or out of range\r\n";
    CMD(fd, not_int, "INCR", "t:k");
    CMD(fd, "+OK\r\n", "SET", "t:s", " 1");
    CMD(fd, not_int, "INCR", "t:s");
    CMD(fd, "+OK\r\n", "SET", "t:s", "007");
    CMD(fd, not_int, "INCR", "t:s");
    CMD(fd, "+OK\r\n", "SET", "t:s", "99999999999999999999");
    CMD(fd, not_int, "INCR", "t:s");
    CMD(fd, "+OK\r\n", "SET", "t:max", "9223372036854775807");
    CMD(fd, "-ERR increment or decrement would overflow\r\n", "INCR", "t:max");
    CMD(fd, "$19\r\n9223372036854775807\r\n", "GET", "t:max");
    CMD(fd, "+OK\r\n", "SET", "t:min", "-9223372036854775808");
    CMD(fd, ":-9223372036854775807\r\n", "INCR", "t:min");
    CMD(fd, ":3\r\n", "DEL", "t:k", "t:n", "t:missing", "t:max", "t:k");
    CMD(fd, ":0\r\n", "EXISTS", "t:k");
    CMD(fd, "$-1\r\n", "GET", "t:k");
    /* Errors that keep the connection. */
    CMD(fd, "-ERR wrong number of arguments for 'get' command\r\n", "GET");
    CMD(fd, "-ERR wrong number of arguments for 'get' command\r\n", "GET", "a", "b");
    CMD(fd, "-ERR wrong number of arguments for 'ping' command\r\n", "PING", "a", "b");
    CMD(fd, "-ERR wrong number of arguments for 'mget' command\r\n", "MGET");
    CMD(fd, "-ERR syntax error\r\n", "SET", "t:k", "v", "EX", "10");
    CMD(fd, "-ERR unknown command 'FLUSHALL'\r\n", "FLUSHALL");
    CMD(fd, "-ERR unknown command 'a?b?'\r\n", "a'b\n");
    CMD(fd, "$-1\r\n", "GET", "t:k"); /* the bad SET stored nothing */
    /* Empty arrays are ignored, as Redis does. */
    send_str(fd, "*0\r\n*-1\r\nPING\r\n");
    expect(fd, "+PONG\r\n");
    mag_close(fd);
}

static void inline_commands(void)
{
    int fd = conn();
    send_str(fd, "PING\r\n");
    expect(fd, "+PONG\r\n");
    send_str(fd, "set t:inline  \t value\nget t:inline\r\n\r\n  \r\nEXISTS t:inline t:inline\n");
    expect(fd, "+OK\r\n$5\r\nvalue\r\n:2\r\n");
    send_str(fd, "INCR t:inline\r\n");
    expect(fd, "-ERR value is not an integer or out of range\r\n");
    send_str(fd, "ECHO\r\n");
    expect(fd, "-ERR wrong number of arguments for 'echo' command\r\n");
    mag_close(fd);
}

static void pipelining(void)
{
    enum { N = 1000 };
    static char req[N * 128], want[N * 64];
    size_t rl = 0, wl = 0;
    for (int i = 0; i < N; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "t:p%d", i);
        snprintf(val, sizeof val, "value-%d", i);
        const char *set[] = {"SET", key, val};
        put_cmd(req, &rl, 3, set, NULL);
        wl += (size_t)sprintf(want + wl, "+OK\r\n");
    }
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "t:p%d", i);
        const char *get[] = {"GET", key};
        put_cmd(req, &rl, 2, get, NULL);
        char val[32];
        int vl = snprintf(val, sizeof val, "value-%d", i);
        wl += (size_t)sprintf(want + wl, "$%d\r\n%s\r\n", vl, val);
    }
    rl += (size_t)sprintf(req + rl, "PING\r\n"); /* an inline one among them */
    wl += (size_t)sprintf(want + wl, "+PONG\r\n");
    int fd = conn();
    send_bytes(fd, req, rl);
    expect_bytes(fd, want, wl);
    mag_close(fd);

    /* A smaller batch (whole frames, inline ones among them) in pieces of
     * every size down to single bytes: a piece may end anywhere in a frame. */
    rl = wl = 0;
    for (int i = 0; i < 20; i++) {
        char key[32];
        snprintf(key, sizeof key, "t:p%d", i);
        const char *get[] = {"GET", key};
        put_cmd(req, &rl, 2, get, NULL);
        int vl = snprintf(key, sizeof key, "value-%d", i);
        wl += (size_t)sprintf(want + wl, "$%d\r\n%s\r\n", vl, key);
        if (i % 5 == 0) {
            rl += (size_t)sprintf(req + rl, "EXISTS t:p%d t:nope\r\n", i);
            wl += (size_t)sprintf(want + wl, ":1\r\n");
        }
    }
    fd = conn();
    for (size_t piece = rl; piece >= 1; piece = piece > 7 ? piece / 3 : piece - 1) {
        for (size_t off = 0; off < rl; off += piece)
            send_bytes(fd, req + off, rl - off < piece ? rl - off : piece);
        expect_bytes(fd, want, wl);
    }
    mag_close(fd);
}

static void binary_values(void)
{
    int fd = conn();
    char val[256 + 8];
    for (int i = 0; i < 256; i++)
        val[i] = (char)i;
    memcpy(val + 256, "\r\n$3\r\n\0\r", 8);
    const char *key = "t:bin\r\n\0key";
    size_t klen = 11;
    const char *set[] = {"SET", key, val};
    size_t set_lens[] = {3, klen, sizeof val};
    char req[1024], want[1024];
    size_t rl = 0;
    put_cmd(req, &rl, 3, set, set_lens);
    const char *get[] = {"GET", key};
    size_t get_lens[] = {3, klen};
    put_cmd(req, &rl, 2, get, get_lens);
    send_bytes(fd, req, rl);
    size_t wl = (size_t)sprintf(want, "+OK\r\n$%zu\r\n", sizeof val);
    memcpy(want + wl, val, sizeof val);
    wl += sizeof val;
    memcpy(want + wl, "\r\n", 2);
    wl += 2;
    expect_bytes(fd, want, wl);
    /* A key that differs only after a NUL is another key. */
    const char *other[] = {"EXISTS", key, "t:bin\r\n"};
    size_t other_lens[] = {6, klen, 7};
    rl = 0;
    put_cmd(req, &rl, 3, other, other_lens);
    send_bytes(fd, req, rl);
    expect(fd, ":1\r\n");

    /* A value of 3 MiB: larger than the first buffers on both sides. */
    size_t big = 3 << 20;
    char *bv = malloc(big), *breq = malloc(big + 256), *bwant = malloc(big + 64);
    ASSERT_TRUE(bv && breq && bwant);
    for (size_t i = 0; i < big; i++)
        bv[i] = (char)(i * 131 + (i >> 12));
    const char *bset[] = {"SET", "t:big", bv};
    size_t bset_lens[] = {3, 5, big};
    rl = 0;
    put_cmd(breq, &rl, 3, bset, bset_lens);
    send_bytes(fd, breq, rl);
    expect(fd, "+OK\r\n");
    CMD(fd, ":1\r\n", "EXISTS", "t:big");
    send_str(fd, "GET t:big\r\n");
    wl = (size_t)sprintf(bwant, "$%zu\r\n", big);
    memcpy(bwant + wl, bv, big);
    memcpy(bwant + wl + big, "\r\n", 2);
    expect_bytes(fd, bwant, wl + big + 2);
    CMD(fd, ":1\r\n", "DEL", "t:big");
    free(bv);
    free(breq);
    free(bwant);
    mag_close(fd);
}

/* Sends good requests and then a bad frame in one send: the good ones are
 * answered, then the error, then the connection closes. */
static void expect_protocol_error(const char *frame, size_t len, const char *why)
{
    int fd = conn();
    send_str(fd, "PING\r\n*1\r\n$4\r\nPING\r\n");
    send_bytes(fd, frame, len);
    char want[256];
    snprintf(want, sizeof want, "+PONG\r\n+PONG\r\n-ERR Protocol error: %s\r\n", why);
    expect(fd, want);
    expect_close(fd);
    mag_close(fd);
}
#define BAD_FRAME(s, why) expect_protocol_error(s, LEN(s), why)

static void malformed(void)
{
    BAD_FRAME("*abc\r\n", "invalid multibulk length");
    BAD_FRAME("*1x\r\n", "invalid multibulk length");
    BAD_FRAME("*\r\n", "invalid multibulk length");
    BAD_FRAME("*1\r\r\n", "invalid multibulk length");
    BAD_FRAME("*99999999999999999999999\r\n", "invalid multibulk length");
    BAD_FRAME("*1048577\r\n", "invalid multibulk length");
    BAD_FRAME("*9223372036854775807\r\n", "invalid multibulk length");
    BAD_FRAME("*1\r\n$-1\r\n", "invalid bulk length");
    BAD_FRAME("*1\r\n$-5\r\nabc\r\n", "invalid bulk length");
    BAD_FRAME("*1\r\n$x\r\n", "invalid bulk length");
    BAD_FRAME("*1\r\n$1 \r\na\r\n", "invalid bulk length");
    BAD_FRAME("*1\r\n$536870913\r\n", "invalid bulk length"); /* 512 MiB + 1 */
    BAD_FRAME("*1\r\n$99999999999999\r\n", "invalid bulk length");
    BAD_FRAME("*2\r\n$3\r\nGET\r\n+k\r\n", "expected '$'");
    BAD_FRAME("*1\r\n$4\r\nPINGxx", "expected CRLF after a bulk string");
    /* A line with no CRLF in sight is cut off at 64 KiB. */
    static char line[70000];
    memset(line, 'a', sizeof line);
    expect_protocol_error(line, sizeof line, "too big inline request");
}

/* Each frame cut short, then the client's end of input. */
static void truncated(void)
{
    static const char *const cuts[] = {
        "*",
        "*2",
        "*2\r",
        "*2\r\n",
        "*2\r\n$3\r\nGE",
        "*2\r\n$3\r\nGET\r",
        "*2\r\n$3\r\nGET\r\n$1",
        "*2\r\n$3\r\nGET\r\n$1\r\nk",
        "*2\r\n$3\r\nGET\r\n$1\r\nk\r",
        "GET k",
        "PI",
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        int fd = conn();
        send_str(fd, "PING\r\n");
        send_str(fd, cuts[i]);
        shutdown(fd, SHUT_WR);
        expect(fd, "+PONG\r\n-ERR Protocol error: unexpected end of input\r\n");
        expect_close(fd);
        mag_close(fd);
    }
    /* A clean end of input after whole requests: no error. */
    int fd = conn();
    send_str(fd, "PING\r\n");
    shutdown(fd, SHUT_WR);
    expect(fd, "+PONG\r\n");
    expect_close(fd);
    mag_close(fd);
}

/* A VmXXX figure of the server's /proc status, in KiB. */
static long server_kib(const char *field)
{
    char path[64], line[256], fmt[32];
    snprintf(path, sizeof path, "/proc/%d/status", (int)server);
    snprintf(fmt, sizeof fmt, "%s: %%ld kB", field);
    FILE *f = fopen(path, "r");
    ASSERT_TRUE(f != NULL);
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, fmt, &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Declared lengths up to the limits, with little data behind them: the
 * server must not allocate what was only announced. */
static void huge_lengths(void)
{
    enum { CONNS = 16 };
    long rss = server_kib("VmRSS"), size = server_kib("VmSize");
    int fds[CONNS];
    static char some[4096];
    memset(some, 'x', sizeof some);
    for (int i = 0; i < CONNS; i++) {
        fds[i] = conn();
        /* Half announce a 512 MiB bulk, half a million arguments. */
        send_str(fds[i], i % 2 ? "*1\r\n$536870912\r\n" : "*1048576\r\n$1\r\na\r\n");
        send_bytes(fds[i], some, i % 2 ? sizeof some : 0);
    }
    /* A round trip on every connection's worker: the server has read it all. */
    for (int i = 0; i < 4; i++) {
        int fd = conn();
        CMD(fd, "+PONG\r\n", "PING");
        mag_close(fd);
    }
    mag_sleep(100 * MAG_MS);
    /* Address space too: memory allocated but not yet touched is not
     * resident. One 512 MiB buffer would show; 16 of them surely. */
    long rss_after = server_kib("VmRSS"), size_after = server_kib("VmSize");
    printf("server memory: resident %ld -> %ld KiB, address space %ld -> %ld KiB\n", rss, rss_after,
           size, size_after);
    ASSERT_LT(rss_after - rss, 64 * 1024);
    ASSERT_LT(size_after - size, 512 * 1024);
    for (int i = 0; i < CONNS; i++) {
        shutdown(fds[i], SHUT_WR);
        expect(fds[i], "-ERR Protocol error: unexpected end of input\r\n");
        expect_close(fds[i]);
        mag_close(fds[i]);
    }
}

/* SET key to n bytes of 'v', in one request, on fd. */
static void set_big(int fd, const char *key, size_t n)
{
    char head[128];
    int h = snprintf(head, sizeof head, "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%zu\r\n", strlen(key),
                     key, n);
    send_bytes(fd, head, (size_t)h);
    char *v = malloc(n);
    ASSERT_TRUE(v != NULL);
    memset(v, 'v', n);
    send_bytes(fd, v, n);
    free(v);
    send_str(fd, "\r\n");
    expect(fd, "+OK\r\n");
}

/* Sends MGET key, times times over (a few bytes a key). */
static void send_mget(int fd, const char *key, int times)
{
    size_t klen = strlen(key), cap = 64 + (size_t)times * (klen + 16), len = 0;
    char *req = malloc(cap);
    ASSERT_TRUE(req != NULL);
    len += (size_t)snprintf(req + len, cap - len, "*%d\r\n$4\r\nMGET\r\n", times + 1);
    for (int i = 0; i < times; i++)
        len += (size_t)snprintf(req + len, cap - len, "$%zu\r\n%s\r\n", klen, key);
    send_bytes(fd, req, len);
    free(req);
}

/* Reads until the peer closes or resets (or the deadline, a failure);
 * returns the bytes read and checks that each is in allowed. */
static size_t drain(int fd, const char *allowed)
{
    static char buf[1 << 16];
    size_t got = 0;
    uint64_t tok = mag_deadline_push(mag_now() + 60 * MAG_SEC);
    for (;;) {
        ssize_t r = mag_recv(fd, buf, sizeof buf, 0);
        if (r == 0 || r == -ECONNRESET)
            break;
        if (r < 0)
            TEST_FAIL("recv after %zu bytes: %zd", got, r);
        for (ssize_t i = 0; i < r; i++)
            if (!strchr(allowed, buf[i]))
                TEST_FAIL("byte %zu: 0x%02x, not part of the reply", got + (size_t)i,
                          (unsigned char)buf[i]);
        got += (size_t)r;
    }
    mag_deadline_pop(tok);
    return got;
}

/* One MGET of a few bytes a key that names one large value many times:
 * the server sends the reply as it builds it, so that its memory holds a
 * value or two, not the whole 128 MiB, while the client reads nothing. */
static void amplified_reply(void)
{
    enum { VALUE = 1 << 20, TIMES = 128 };
    int fd = conn();
    set_big(fd, "t:big", VALUE);
    long rss = server_kib("VmRSS"), peak = rss;
    send_mget(fd, "t:big", TIMES);
    for (int i = 0; i < 10; i++) { /* half a second, the client reading nothing */
        mag_sleep(50 * MAG_MS);
        long now = server_kib("VmRSS");
        peak = now > peak ? now : peak;
    }
    printf("server memory during a %d MiB MGET reply: %ld -> %ld KiB\n", TIMES * (VALUE >> 20), rss,
           peak);
    ASSERT_LT(peak - rss, 64 * 1024);
    /* All of it arrives, in order. */
    char head[32];
    snprintf(head, sizeof head, "*%d\r\n", TIMES);
    expect(fd, head);
    snprintf(head, sizeof head, "$%d\r\n", VALUE);
    static char value[VALUE];
    memset(value, 'v', VALUE);
    for (int i = 0; i < TIMES; i++) {
        expect(fd, head);
        expect_bytes(fd, value, VALUE);
        expect(fd, "\r\n");
    }
    CMD(fd, ":1\r\n", "DEL", "t:big");
    mag_close(fd);
}

/* A request of a million arguments needs an array of 16 MiB to parse: the
 * connection gives it back once answered, not when it closes. */
static void large_request_memory(void)
{
    enum { CONNS = 4, ARGS = 1000000 };
    size_t cap = 64 + (size_t)ARGS * 6, len = 0;
    char *req = malloc(cap);
    ASSERT_TRUE(req != NULL);
    len += (size_t)snprintf(req, cap, "*%d\r\n$6\r\nEXISTS\r\n", ARGS + 1);
    for (int i = 0; i < ARGS; i++, len += 6)
        memcpy(req + len, "$0\r\n\r\n", 6);
    long rss = server_kib("VmRSS");
    int fds[CONNS];
    for (int i = 0; i < CONNS; i++) {
        fds[i] = conn();
        send_bytes(fds[i], req, len);
        expect(fds[i], ":0\r\n");
    }
    free(req);
    mag_sleep(100 * MAG_MS);
    long after = server_kib("VmRSS");
    printf("server memory after %d idle connections' million-argument requests: %ld -> %ld KiB\n",
           CONNS, rss, after);
    /* A sanitizer's allocator keeps what is freed for a while (ASan's
     * quarantine): there only the answers are checked. */
    if (!TEST_SANITIZED)
        ASSERT_LT(after - rss, 32 * 1024); /* 16 MiB each were kept */
    for (int i = 0; i < CONNS; i++) {
        CMD(fds[i], "+PONG\r\n", "PING");
        mag_close(fds[i]);
    }
}

/* A client that asks for much and reads nothing is cut after the send
 * timeout (a server of its own, with a short one): it cannot hold its
 * descriptor for ever, and the server goes on serving. */
static void send_timeout(void)
{
    enum { VALUE = 1 << 20, TIMES = 32 };
    static const char *const args[] = {"--port", "0", "--workers", "2", "--send-timeout-ms", "300",
                                       NULL};
    pid_t pid;
    uint16_t p = test_start_server("examples/kv_server", args, NULL, NULL, &pid);
    int fd = mag_tcp_connect("127.0.0.1", p);
    ASSERT_GE(fd, 0);
    set_big(fd, "t:big", VALUE);
    send_mget(fd, "t:big", TIMES);
    mag_sleep(2 * MAG_SEC); /* reading nothing */
    size_t got = drain(fd, "*$0123456789\r\nv");
    printf("a client that read nothing for 2 s: cut after %zu of %d bytes\n", got,
           TIMES * (VALUE + 11) + 5);
    ASSERT_LT(got, (size_t)TIMES * VALUE);
    mag_close(fd);
    fd = mag_tcp_connect("127.0.0.1", p);
    ASSERT_GE(fd, 0);
    CMD(fd, "+PONG\r\n", "PING");
    mag_close(fd);
    ASSERT_TRUE(test_stop_server(pid));
}

static void quit(void)
{
    int fd = conn();
    send_str(fd, "SET t:q 1\r\n*1\r\n$4\r\nquit\r\nGET t:q\r\n");
    expect(fd, "+OK\r\n+OK\r\n"); /* the GET after QUIT gets no answer */
    expect_close(fd);
    mag_close(fd);
    fd = conn();
    send_str(fd, "QUIT\r\n");
    expect(fd, "+OK\r\n");
    expect_close(fd);
    mag_close(fd);
}

/* Many connections INCR one key at once: no increment is lost. */
enum { INCR_CONNS = 8, INCR_EACH = 500 };

static int incr_client(void *arg)
{
    (void)arg;
    int fd = conn();
    static const char one[] = "*2\r\n$4\r\nINCR\r\n$8\r\nt:shared\r\n";
    char *req = malloc(INCR_EACH * LEN(one));
    ASSERT_TRUE(req != NULL);
    for (int i = 0; i < INCR_EACH; i++)
        memcpy(req + i * LEN(one), one, LEN(one));
    send_bytes(fd, req, INCR_EACH * LEN(one));
    free(req);
    /* INCR_EACH integer replies. */
    char buf[4096];
    int replies = 0;
    uint64_t tok = mag_deadline_push(mag_now() + 30 * MAG_SEC);
    while (replies < INCR_EACH) {
        ssize_t r = mag_recv(fd, buf, sizeof buf, 0);
        if (r <= 0)
            TEST_FAIL("recv after %d replies: %zd", replies, r);
        for (ssize_t i = 0; i < r; i++)
            replies += buf[i] == '\n';
    }
    mag_deadline_pop(tok);
    ASSERT_EQ(replies, INCR_EACH);
    mag_close(fd);
    return 0;
}

static void concurrent_incr(void)
{
    mag_group_t *g = mag_group_create(0);
    for (int i = 0; i < INCR_CONNS; i++)
        ASSERT_GE(mag_group_spawn(g, incr_client, NULL), 0);
    ASSERT_EQ(mag_group_wait(g), 0);
    mag_group_destroy(g);
    int fd = conn();
    char want[32];
    snprintf(want, sizeof want, "$4\r\n%d\r\n", INCR_CONNS * INCR_EACH);
    CMD(fd, want, "GET", "t:shared");
    mag_close(fd);
}

static int main_task(void *arg)
{
    (void)arg;
    commands();
    inline_commands();
    pipelining();
    binary_values();
    malformed();
    truncated();
    huge_lengths();
    amplified_reply();
    large_request_memory();
    send_timeout();
    quit();
    concurrent_incr();
    commands(); /* still serving */
    return 0;
}

/* redis-cli's output for one command, or NULL if it is not installed. */
static char *redis_cli(const char *args, char *out, size_t n)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "redis-cli -p %u %s 2>&1", port, args);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    size_t got = fread(out, 1, n - 1, p);
    out[got] = 0;
    pclose(p);
    return out;
}

static void through_redis_cli(void)
{
    if (system("command -v redis-cli >/dev/null 2>&1") != 0) {
        printf("redis-cli not installed: its part skipped\n");
        return;
    }
    char out[256];
    ASSERT_STR_EQ(redis_cli("PING", out, sizeof out), "PONG\n");
    ASSERT_STR_EQ(redis_cli("SET t:cli 'hello world'", out, sizeof out), "OK\n");
    ASSERT_STR_EQ(redis_cli("GET t:cli", out, sizeof out), "hello world\n");
    /* Not a terminal: redis-cli prints bare values (nil: an empty line). */
    ASSERT_STR_EQ(redis_cli("INCR t:cli_n", out, sizeof out), "1\n");
    ASSERT_STR_EQ(redis_cli("MGET t:cli t:nothing", out, sizeof out), "hello world\n\n");
    ASSERT_STR_EQ(redis_cli("DEL t:cli t:cli_n", out, sizeof out), "2\n");
}

int main(void)
{
    start_server();
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    int status = -1;
    int rc = mag_run(&cfg, main_task, NULL, &status);
    if (rc == 0 && status == 0)
        through_redis_cli();
    bool alive = test_stop_server(server);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(status, 0);
    ASSERT_TRUE(alive); /* the server was alive until we stopped it */
    return 0;
}
