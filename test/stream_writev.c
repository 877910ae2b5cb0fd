/* stream_writev: gathered writes. Small and large pieces arrive in order and
 * byte-exact; a call with a large piece has written everything out when it
 * returns, one with only small pieces leaves them buffered; more pieces than
 * one request carries; pipes; bad input that changes nothing; a gone peer
 * gives -EPIPE (never SIGPIPE) and breaks the write side, as a deadline does. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "test/test.h"

static void pair(int sv[2])
{
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void fill_pattern(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 131u + seed) % 251u);
}

typedef struct sink {
    int fd;
    size_t want; /* bytes to read */
    char *got;
    ssize_t result; /* the count read, or an error */
} sink_t;

/* Reads exactly want bytes, with a generous deadline so that bytes left
 * buffered by mistake fail the test instead of hanging it. */
static int sink_task(void *arg)
{
    sink_t *k = arg;
    uint64_t tok = mag_deadline_push(mag_now() + 10 * MAG_SEC);
    size_t have = 0;
    ssize_t r = 1;
    while (have < k->want && (r = mag_read(k->fd, k->got + have, k->want - have, -1)) > 0)
        have += (size_t)r;
    mag_deadline_pop(tok);
    k->result = r < 0 ? r : (ssize_t)have;
    return 0;
}

/* Writes iov through s (whose peer reads fd) and checks that the peer gets
 * exactly their concatenation without a flush. */
static void writev_and_check(mag_stream_t *s, int peer, const struct iovec *iov, int cnt)
{
    size_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    char *want = malloc(total + 1), *got = malloc(total + 1);
    ASSERT_TRUE(want && got);
    for (size_t i = 0, off = 0; i < (size_t)cnt; off += iov[i].iov_len, i++)
        memcpy(want + off, iov[i].iov_base, iov[i].iov_len);
    sink_t k = {.fd = peer, .want = total, .got = got};
    mag_task_t *t = mag_spawn(sink_task, &k);
    ASSERT_TRUE(t != NULL);
    ASSERT_EQ(mag_stream_writev(s, iov, cnt), (ssize_t)total);
    ASSERT_EQ(mag_join(t, NULL), 0);
    ASSERT_EQ(k.result, (ssize_t)total);
    ASSERT_TRUE(memcmp(want, got, total) == 0);
    free(want);
    free(got);
}

static void large_and_small(void)
{
    int sv[2];
    pair(sv);
    mag_stream_t *s = mag_stream_new(sv[0], 64); /* pieces of 32 and more go uncopied */
    ASSERT_TRUE(s != NULL);
    static char big1[100000], big2[50000];
    fill_pattern(big1, sizeof big1, 1);
    fill_pattern(big2, sizeof big2, 2);
    ASSERT_EQ(mag_stream_write(s, "before:", 7), 7); /* buffered, goes first */
    struct iovec iov[] = {
        {.iov_base = "hdr:", .iov_len = 4},  {.iov_base = big1, .iov_len = sizeof big1},
        {.iov_base = "mid", .iov_len = 3},   {.iov_base = "", .iov_len = 0},
        {.iov_base = big2, .iov_len = 32},   {.iov_base = big2, .iov_len = sizeof big2},
        {.iov_base = "end\n", .iov_len = 4},
    };
    /* The sink sees "before:" first, then the pieces. */
    sink_t k = {.fd = sv[1], .want = 7, .got = malloc(8)};
    ASSERT_TRUE(k.got != NULL);
    mag_task_t *t = mag_spawn(sink_task, &k);
    ASSERT_TRUE(t != NULL);
    ASSERT_EQ(mag_stream_flush(s), 0);
    ASSERT_EQ(mag_join(t, NULL), 0);
    ASSERT_EQ(k.result, 7);
    ASSERT_TRUE(memcmp(k.got, "before:", 7) == 0);
    free(k.got);
    writev_and_check(s, sv[1], iov, (int)(sizeof iov / sizeof iov[0]));

    /* Buffered bytes ahead of the call go out ahead of its pieces. */
    ASSERT_EQ(mag_stream_write(s, "lead", 4), 4);
    struct iovec one[] = {{.iov_base = big1, .iov_len = 1000}};
    char *expect = malloc(1004), *got = malloc(1004);
    ASSERT_TRUE(expect && got);
    memcpy(expect, "lead", 4);
    memcpy(expect + 4, big1, 1000);
    ASSERT_EQ(mag_stream_writev(s, one, 1), 1000);
    size_t have = 0;
    while (have < 1004) {
        ssize_t r = mag_recv(sv[1], got + have, 1004 - have, MSG_DONTWAIT);
        ASSERT_GT(r, 0); /* already out: no flush was needed */
        have += (size_t)r;
    }
    ASSERT_TRUE(memcmp(expect, got, 1004) == 0);
    free(expect);
    free(got);

    /* Only small pieces: buffered until the flush. */
    struct iovec small[] = {{.iov_base = "a", .iov_len = 1},
                            {.iov_base = "bc", .iov_len = 2},
                            {.iov_base = "def", .iov_len = 3}};
    ASSERT_EQ(mag_stream_writev(s, small, 3), 6);
    char buf[16];
    ASSERT_EQ(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), -1);
    ASSERT_EQ(mag_errno(), EAGAIN);
    ASSERT_EQ(mag_stream_flush(s), 0);
    ASSERT_EQ(mag_recv(sv[1], buf, 6, MSG_WAITALL), 6);
    ASSERT_TRUE(memcmp(buf, "abcdef", 6) == 0);
    ASSERT_EQ(mag_stream_close(s), 0);
    close(sv[1]);
}

/* More pieces than one request carries, small and large in turn, and small
 * ones that overflow the buffer between large ones. */
static void many_pieces(void)
{
    int sv[2];
    pair(sv);
    mag_stream_t *s = mag_stream_new(sv[0], 64);
    ASSERT_TRUE(s != NULL);
    enum { PIECES = 300 };
    static char data[PIECES * 40];
    fill_pattern(data, sizeof data, 3);
    struct iovec iov[PIECES];
    size_t off = 0;
    for (int i = 0; i < PIECES; i++) {
        size_t n = (size_t)(i % 3 == 0 ? 40 : 1 + i % 29); /* 40: large; else small */
        iov[i] = (struct iovec){.iov_base = data + off, .iov_len = n};
        off += n;
    }
    writev_and_check(s, sv[1], iov, PIECES);
    ASSERT_EQ(mag_stream_close(s), 0);
    close(sv[1]);
}

/* Not a socket: writev(2). */
static void pipes(void)
{
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    mag_stream_t *s = mag_stream_new(p[1], 128);
    ASSERT_TRUE(s != NULL);
    static char big[200000];
    fill_pattern(big, sizeof big, 4);
    struct iovec iov[] = {{.iov_base = "pipe:", .iov_len = 5},
                          {.iov_base = big, .iov_len = sizeof big},
                          {.iov_base = "!", .iov_len = 1}};
    writev_and_check(s, p[0], iov, 3);
    ASSERT_EQ(mag_stream_close(s), 0);
    close(p[0]);
}

static void bad_input(void)
{
    int sv[2];
    pair(sv);
    mag_stream_t *s = mag_stream_new_ex(sv[0], 64, MAG_STREAM_BORROW);
    ASSERT_TRUE(s != NULL);
    struct iovec ok = {.iov_base = "ok", .iov_len = 2};
    struct iovec bad[] = {{.iov_base = "x", .iov_len = 1}, {.iov_base = NULL, .iov_len = 5}};
    struct iovec huge[] = {{.iov_base = "x", .iov_len = (size_t)SSIZE_MAX},
                           {.iov_base = "y", .iov_len = 1}};
    ASSERT_EQ(mag_stream_writev(NULL, &ok, 1), -EINVAL);
    ASSERT_EQ(mag_stream_writev(s, &ok, -1), -EINVAL);
    ASSERT_EQ(mag_stream_writev(s, &ok, IOV_MAX + 1), -EINVAL);
    ASSERT_EQ(mag_stream_writev(s, NULL, 1), -EINVAL);
    ASSERT_EQ(mag_stream_writev(s, bad, 2), -EINVAL); /* the first piece is not kept */
    ASSERT_EQ(mag_stream_writev(s, huge, 2), -EINVAL);
    ASSERT_EQ(mag_stream_writev(s, NULL, 0), 0);
    ASSERT_EQ(mag_stream_flush(s), 0);
    char buf[8];
    ASSERT_EQ(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), -1); /* nothing went */
    ASSERT_EQ(mag_errno(), EAGAIN);
    /* The stream is not broken by rejected calls. */
    ASSERT_EQ(mag_stream_writev(s, &ok, 1), 2);
    ASSERT_EQ(mag_stream_flush(s), 0);
    ASSERT_EQ(mag_recv(sv[1], buf, 2, MSG_WAITALL), 2);
    ASSERT_TRUE(memcmp(buf, "ok", 2) == 0);
    ASSERT_EQ(mag_stream_close(s), 0);
    close(sv[0]);
    close(sv[1]);
}

/* With SIGPIPE at its default action, a SIGPIPE would end the test. Run in
 * a task (through the ring) and on the main thread before the runtime. */
static void peer_gone(void)
{
    int sv[2];
    pair(sv);
    mag_stream_t *s = mag_stream_new(sv[0], 64);
    ASSERT_TRUE(s != NULL);
    close(sv[1]);
    static char big[4096];
    struct iovec iov[] = {{.iov_base = "h", .iov_len = 1},
                          {.iov_base = big, .iov_len = sizeof big}};
    ASSERT_EQ(mag_stream_writev(s, iov, 2), -EPIPE);
    ASSERT_EQ(mag_stream_writev(s, iov, 1), -EPIPE); /* broken for good */
    ASSERT_EQ(mag_stream_write(s, "x", 1), -EPIPE);
    ASSERT_EQ(mag_stream_flush(s), -EPIPE);
    ASSERT_EQ(mag_stream_close(s), 0);
}

/* A deadline in the middle of a large piece: part of it may have gone, so
 * the write side is broken, and says why. */
static void deadline_breaks(void)
{
    int sv[2];
    pair(sv);
    mag_stream_t *s = mag_stream_new(sv[0], 64);
    ASSERT_TRUE(s != NULL);
    size_t n = 8u << 20; /* far more than the socket holds: the peer never reads */
    char *big = calloc(1, n);
    ASSERT_TRUE(big != NULL);
    struct iovec iov = {.iov_base = big, .iov_len = n};
    uint64_t tok = mag_deadline_push(mag_now() + 30 * MAG_MS);
    ASSERT_EQ(mag_stream_writev(s, &iov, 1), -ETIMEDOUT);
    mag_deadline_pop(tok);
    ASSERT_EQ(mag_stream_write(s, "x", 1), -ETIMEDOUT);
    ASSERT_EQ(mag_stream_flush(s), -ETIMEDOUT);
    ASSERT_EQ(mag_stream_close(s), 0);
    close(sv[1]);
    free(big);
}

static int main_task(void *arg)
{
    (void)arg;
    large_and_small();
    many_pieces();
    pipes();
    bad_input();
    peer_gone();
    deadline_breaks();
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    /* Outside a task the calls are the system calls themselves, where a
     * missing MSG_NOSIGNAL would raise SIGPIPE in this very thread. */
    peer_gone();
    test_run(test_workers(2), main_task, NULL);
    return 0;
}
