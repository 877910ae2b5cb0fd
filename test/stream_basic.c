/* stream_basic: buffered streams. read_until with its limit, read_exact and
 * early EOF, buffered writes and flush, bufsize 0 and tiny buffers, pipes
 * (not sockets), and cancellation that consumes nothing. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test/test.h"

static void pair(int sv[2])
{
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void lines_and_limits(void)
{
    int sv[2];
    pair(sv);
    /* A buffer size past the fill limit (SIZE_MAX: a negative length
     * converted) is refused, not handed to malloc. */
    ASSERT_TRUE(mag_stream_new(sv[0], SIZE_MAX) == NULL);
    ASSERT_TRUE(mag_stream_new_ex(sv[0], MAG_STREAM_FILL_MAX + 1, MAG_STREAM_BORROW) == NULL);
    mag_stream_t *s = mag_stream_new(sv[0], 0); /* 0: the default size */
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(mag_stream_fd(s), sv[0]);
    const char *msg = "line1\nline2\r\npartial";
    ASSERT_EQ(write(sv[1], msg, strlen(msg)), (ssize_t)strlen(msg));
    char buf[64] = {0};
    ASSERT_EQ(mag_stream_read_until(s, '\n', buf, sizeof buf), 6);
    ASSERT_TRUE(memcmp(buf, "line1\n", 6) == 0);
    ASSERT_EQ(mag_stream_read_until(s, '\n', buf, sizeof buf), 7);
    ASSERT_TRUE(memcmp(buf, "line2\r\n", 7) == 0);
    ASSERT_EQ(mag_stream_buffered(s), 7);
    /* No delimiter within 5 bytes: -EMSGSIZE, nothing consumed. */
    ASSERT_EQ(mag_stream_read_until(s, '\n', buf, 5), -EMSGSIZE);
    ASSERT_EQ(mag_stream_buffered(s), 7);
    close(sv[1]); /* EOF after a partial line: -EPIPE, still nothing consumed */
    ASSERT_EQ(mag_stream_read_until(s, '\n', buf, sizeof buf), -EPIPE);
    ASSERT_EQ(mag_stream_read(s, buf, sizeof buf), 7);
    ASSERT_TRUE(memcmp(buf, "partial", 7) == 0);
    ASSERT_EQ(mag_stream_read_until(s, '\n', buf, sizeof buf), 0); /* clean EOF */
    ASSERT_EQ(mag_stream_read(s, buf, sizeof buf), 0);
    ASSERT_EQ(mag_stream_read_until(s, '\n', buf, 0), -EMSGSIZE);
    ASSERT_EQ(mag_stream_read(s, NULL, 4), -EINVAL);
    ASSERT_EQ(mag_stream_close(s), 0);
}

static void exact_and_tiny_buffers(void)
{
    int sv[2];
    pair(sv);
    mag_stream_t *s = mag_stream_new(sv[0], 16);
    ASSERT_TRUE(s != NULL);
    char big[1000], got[1000];
    for (int i = 0; i < 1000; i++)
        big[i] = (char)(i * 7);
    ASSERT_EQ(write(sv[1], big, sizeof big), (ssize_t)sizeof big);
    ASSERT_EQ(mag_stream_read_exact(s, got, 10), 10); /* within the buffer */
    ASSERT_EQ(mag_stream_read_exact(s, got + 10, 990), 990); /* past it */
    ASSERT_TRUE(memcmp(big, got, sizeof big) == 0);
    /* read_until beyond bufsize grows the buffer to max. */
    char line[100];
    memset(line, 'x', sizeof line);
    line[99] = '\n';
    ASSERT_EQ(write(sv[1], line, sizeof line), (ssize_t)sizeof line);
    ASSERT_EQ(mag_stream_read_until(s, '\n', got, 200), 100);
    ASSERT_TRUE(memcmp(got, line, 100) == 0);
    /* Early EOF within the buffer size: -EPIPE and the bytes stay. */
    ASSERT_EQ(write(sv[1], "abcde", 5), 5);
    close(sv[1]);
    ASSERT_EQ(mag_stream_read_exact(s, got, 8), -EPIPE);
    ASSERT_EQ(mag_stream_read_exact(s, got, 5), 5);
    ASSERT_EQ(mag_stream_read_exact(s, got, 100), -EPIPE);
    ASSERT_EQ(mag_stream_read_exact(s, got, 0), 0);
    ASSERT_EQ(mag_stream_close(s), 0);
}

static void writes(void)
{
    int sv[2];
    pair(sv);
    mag_stream_t *s = mag_stream_new(sv[0], 64);
    ASSERT_TRUE(s != NULL);
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(mag_stream_write(s, "0123456789", 10), 10); /* 100 > 64: one flush */
    char big[5000];
    memset(big, 'b', sizeof big);
    ASSERT_EQ(mag_stream_write(s, big, sizeof big), (ssize_t)sizeof big); /* direct */
    ASSERT_EQ(mag_stream_write(s, "end", 3), 3);
    ASSERT_EQ(mag_stream_flush(s), 0);
    char got[5200];
    ASSERT_EQ(mag_recv(sv[1], got, 5103, MSG_WAITALL), 5103);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(got[i], '0' + i % 10);
    ASSERT_TRUE(memcmp(got + 100, big, sizeof big) == 0 && memcmp(got + 5100, "end", 3) == 0);
    /* close flushes */
    ASSERT_EQ(mag_stream_write(s, "tail", 4), 4);
    ASSERT_EQ(mag_stream_close(s), 0);
    ASSERT_EQ(mag_recv(sv[1], got, sizeof got, MSG_WAITALL), 4);
    ASSERT_TRUE(memcmp(got, "tail", 4) == 0);
    /* Writing to a peer that is gone: -EPIPE, sticky; no SIGPIPE. */
    close(sv[1]);
    pair(sv);
    s = mag_stream_new(sv[0], 64);
    close(sv[1]);
    ASSERT_EQ(mag_stream_write(s, big, sizeof big), -EPIPE);
    ASSERT_EQ(mag_stream_write(s, "x", 1), -EPIPE);
    ASSERT_EQ(mag_stream_flush(s), -EPIPE);
    ASSERT_EQ(mag_stream_close(s), 0);
}

static void pipes(void)
{
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    mag_stream_t *w = mag_stream_new(p[1], 0);
    mag_stream_t *r = mag_stream_new(p[0], 0);
    ASSERT_TRUE(w && r);
    ASSERT_EQ(mag_stream_write(w, "over a pipe\n", 12), 12);
    ASSERT_EQ(mag_stream_flush(w), 0);
    char buf[32];
    ASSERT_EQ(mag_stream_read_until(r, '\n', buf, sizeof buf), 12);
    ASSERT_EQ(mag_stream_close(w), 0);
    ASSERT_EQ(mag_stream_read(r, buf, sizeof buf), 0);
    ASSERT_EQ(mag_stream_close(r), 0);
}

typedef struct reader {
    mag_stream_t *s;
    _Atomic int started;
    char buf[64];
} reader_t;

static int read_line(void *arg)
{
    reader_t *r = arg;
    atomic_store(&r->started, 1);
    return (int)mag_stream_read_until(r->s, '\n', r->buf, sizeof r->buf);
}

/* A cancelled read_until consumes nothing: the partial line is still there
 * for the next reader. */
static void cancelled_read(void)
{
    int sv[2];
    pair(sv);
    reader_t r = {.s = mag_stream_new(sv[0], 0)};
    ASSERT_EQ(write(sv[1], "half ", 5), 5);
    mag_task_t *t = mag_spawn(read_line, &r);
    ASSERT_TRUE(t != NULL);
    while (!atomic_load(&r.started))
        ASSERT_EQ(mag_sleep(MAG_MS), 0);
    ASSERT_EQ(mag_sleep(10 * MAG_MS), 0);
    mag_cancel(t);
    int st = 0;
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    ASSERT_EQ(write(sv[1], "line\n", 5), 5);
    char buf[64];
    ASSERT_EQ(mag_stream_read_until(r.s, '\n', buf, sizeof buf), 10);
    ASSERT_TRUE(memcmp(buf, "half line\n", 10) == 0);
    /* A deadline works the same way. */
    uint64_t tok = mag_deadline_push(mag_now() + 20 * MAG_MS);
    ASSERT_EQ(mag_stream_read_exact(r.s, buf, 4), -ETIMEDOUT);
    mag_deadline_pop(tok);
    ASSERT_EQ(mag_stream_close(r.s), 0);
    close(sv[1]);
}

static int main_task(void *arg)
{
    (void)arg;
    lines_and_limits();
    exact_and_tiny_buffers();
    writes();
    pipes();
    if (mag_self())
        cancelled_read();
    return 0;
}

int main(void)
{
    main_task(NULL); /* plain thread: blocking calls underneath */
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    test_run_cfg(&cfg, main_task, NULL);
    return 0;
}
