/* stream_duplex: one task reads a stream while another writes it (a chat
 * server's reader and writer on one connection), at 2 workers. The peer
 * echoes; the writer sends numbered lines (some through writev, some large),
 * the reader checks each one in order with read_until and with peek/consume,
 * then sees EOF. More bytes go round than the sockets hold, so the two sides
 * really run at the same time; ThreadSanitizer checks they share nothing. */
#include <errno.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "test/test.h"

#define BIG_LINE 12000 /* above half the default buffer: writev sends it uncopied */

typedef struct duplex {
    mag_stream_t *s;
    int peer;
    int lines;
    _Atomic int writer_done; /* seq_cst, read by the reader to see overlap */
    _Atomic int overlapped;
    int read_lines;
} duplex_t;

/* Line i: "<i> " then a filler whose length depends on i, then '\n'. */
static size_t make_line(int i, char *buf, size_t cap)
{
    int head = snprintf(buf, cap, "%d ", i);
    size_t len = i % 97 == 0 ? BIG_LINE : (size_t)(i * 7 % 120);
    ASSERT_TRUE((size_t)head + len + 1 <= cap);
    for (size_t k = 0; k < len; k++)
        buf[(size_t)head + k] = (char)('a' + (i + (int)k) % 26);
    buf[(size_t)head + len] = '\n';
    return (size_t)head + len + 1;
}

static int echo_peer(void *arg)
{
    duplex_t *d = arg;
    char buf[8192];
    ssize_t n;
    while ((n = mag_recv(d->peer, buf, sizeof buf, 0)) > 0)
        ASSERT_EQ(mag_send_all(d->peer, buf, (size_t)n, 0), n);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(shutdown(d->peer, SHUT_WR), 0);
    return 0;
}

static int writer(void *arg)
{
    duplex_t *d = arg;
    static char line[BIG_LINE + 64];
    for (int i = 0; i < d->lines; i++) {
        size_t n = make_line(i, line, sizeof line);
        if (i % 2) {
            ASSERT_EQ(mag_stream_write(d->s, line, n), (ssize_t)n);
        } else { /* the head and the rest as two pieces */
            size_t cut = n / 3;
            struct iovec iov[] = {{.iov_base = line, .iov_len = cut},
                                  {.iov_base = line + cut, .iov_len = n - cut}};
            ASSERT_EQ(mag_stream_writev(d->s, iov, 2), (ssize_t)n);
        }
        if (i % 16 == 0)
            ASSERT_EQ(mag_stream_flush(d->s), 0);
    }
    ASSERT_EQ(mag_stream_flush(d->s), 0);
    atomic_store(&d->writer_done, 1);
    /* The peer's echo ends, and so does what the reader sees. */
    ASSERT_EQ(shutdown(mag_stream_fd(d->s), SHUT_WR), 0);
    return 0;
}

static int reader(void *arg)
{
    duplex_t *d = arg;
    static char want[BIG_LINE + 64], got[BIG_LINE + 64];
    for (int i = 0; i < d->lines; i++) {
        size_t n = make_line(i, want, sizeof want);
        if (i % 3) {
            ASSERT_EQ(mag_stream_read_until(d->s, '\n', got, sizeof got), (ssize_t)n);
            ASSERT_TRUE(memcmp(got, want, n) == 0);
        } else { /* compare in place, in as many pieces as arrive */
            size_t have = 0;
            while (have < n) {
                const char *p;
                size_t len;
                ASSERT_GT(mag_stream_peek(d->s, &p, &len), 0);
                size_t k = len < n - have ? len : n - have;
                ASSERT_TRUE(memcmp(p, want + have, k) == 0);
                ASSERT_EQ(mag_stream_consume(d->s, k), 0);
                have += k;
            }
        }
        if (i == 0 && !atomic_load(&d->writer_done))
            atomic_store(&d->overlapped, 1);
        d->read_lines++;
    }
    char c;
    ASSERT_EQ(mag_stream_read(d->s, &c, 1), 0); /* nothing after the last line */
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    duplex_t d = {.s = mag_stream_new(sv[0], 0), .peer = sv[1], .lines = TEST_SCALE(20000)};
    if (d.lines < 6000)
        d.lines = 6000; /* over a megabyte even in sanitizer builds */
    ASSERT_TRUE(d.s != NULL);
    mag_task_t *p = mag_spawn(echo_peer, &d);
    mag_task_t *r = mag_spawn(reader, &d);
    mag_task_t *w = mag_spawn(writer, &d);
    ASSERT_TRUE(p && r && w);
    int st = -1;
    ASSERT_EQ(mag_join(w, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(mag_join(r, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(mag_join(p, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(d.read_lines, d.lines);
    ASSERT_EQ(atomic_load(&d.overlapped), 1);
    ASSERT_EQ(mag_stream_close(d.s), 0);
    ASSERT_EQ(close(sv[1]), 0);
    return 0;
}

int main(void)
{
    test_run(test_workers(2), main_task, NULL);
    return 0;
}
