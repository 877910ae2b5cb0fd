/* stream_peek: parsing a stream in place. peek reads only when the buffer is
 * empty, consume drops exactly what it is told, fill compacts and grows up to
 * its limit; EOF (clean and mid-message), deadlines that lose nothing, bad
 * input that leaves outputs untouched, and a pipelining server that answers
 * every complete request in the buffer and flushes once per batch. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test/test.h"

static void pair(int sv[2])
{
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void put(int fd, const char *text)
{
    size_t n = strlen(text);
    ASSERT_EQ(write(fd, text, n), (ssize_t)n);
}

static void bad_input(void)
{
    int sv[2];
    pair(sv);
    mag_stream_t *s = mag_stream_new_ex(sv[0], 0, MAG_STREAM_BORROW);
    ASSERT_TRUE(s != NULL);
    const char *sentinel = "untouched";
    const char *p = sentinel;
    size_t len = 12345;
    ASSERT_EQ(mag_stream_peek(NULL, &p, &len), -EINVAL);
    ASSERT_EQ(mag_stream_peek(s, NULL, &len), -EINVAL);
    ASSERT_EQ(mag_stream_peek(s, &p, NULL), -EINVAL);
    ASSERT_PTR_EQ(p, sentinel);
    ASSERT_UEQ(len, 12345);
    ASSERT_EQ(mag_stream_consume(NULL, 0), -EINVAL);
    ASSERT_EQ(mag_stream_fill(NULL, 1), -EINVAL);
    ASSERT_EQ(mag_stream_consume(s, 1), -EINVAL); /* nothing buffered */
    ASSERT_EQ(mag_stream_consume(s, 0), 0);

    put(sv[1], "abc");
    ASSERT_EQ(mag_stream_peek(s, &p, &len), 3);
    ASSERT_EQ(mag_stream_consume(s, 4), -EINVAL); /* more than buffered */
    ASSERT_UEQ(mag_stream_buffered(s), 3);        /* nothing dropped */
    ASSERT_EQ(mag_stream_fill(s, MAG_STREAM_FILL_MAX + 1), -EMSGSIZE);
    ASSERT_UEQ(mag_stream_buffered(s), 3);
    const char *q = sentinel;
    size_t qlen = 0;
    ASSERT_EQ(mag_stream_peek(s, &q, &qlen), 3);
    ASSERT_PTR_EQ(q, p);
    ASSERT_TRUE(qlen == 3 && memcmp(q, "abc", 3) == 0);

    /* Unknown flags and bad descriptors make no stream. */
    ASSERT_TRUE(mag_stream_new_ex(sv[0], 0, 2u) == NULL);
    ASSERT_TRUE(mag_stream_new_ex(-1, 0, MAG_STREAM_BORROW) == NULL);
    ASSERT_EQ(mag_stream_close(s), 0);
    /* A borrowed descriptor is still open after the close. */
    ASSERT_EQ(write(sv[0], "x", 1), 1);
    close(sv[0]);
    close(sv[1]);
}

static void peek_and_consume(void)
{
    int sv[2];
    pair(sv);
    mag_stream_t *s = mag_stream_new(sv[0], 0);
    ASSERT_TRUE(s != NULL);
    put(sv[1], "hello world");
    const char *p;
    size_t len;
    ASSERT_EQ(mag_stream_peek(s, &p, &len), 11);
    ASSERT_UEQ(len, 11);
    ASSERT_TRUE(memcmp(p, "hello world", 11) == 0);
    /* With bytes buffered, peek does not read: what arrives later waits. */
    put(sv[1], "!!");
    ASSERT_EQ(mag_stream_peek(s, &p, &len), 11);
    ASSERT_EQ(mag_stream_consume(s, 6), 0);
    ASSERT_EQ(mag_stream_peek(s, &p, &len), 5);
    ASSERT_TRUE(memcmp(p, "world", 5) == 0);
    ASSERT_EQ(mag_stream_consume(s, 5), 0);
    ASSERT_UEQ(mag_stream_buffered(s), 0);
    /* Empty: peek reads once. */
    ASSERT_EQ(mag_stream_peek(s, &p, &len), 2);
    ASSERT_TRUE(memcmp(p, "!!", 2) == 0);
    /* The other reads take from the same buffer. */
    char c;
    ASSERT_EQ(mag_stream_read(s, &c, 1), 1);
    ASSERT_EQ(c, '!');
    ASSERT_EQ(mag_stream_peek(s, &p, &len), 1);
    ASSERT_EQ(mag_stream_close(s), 0);
    close(sv[1]);
}

static void fill_grows_and_compacts(void)
{
    int sv[2];
    pair(sv);
    mag_stream_t *s = mag_stream_new(sv[0], 16);
    ASSERT_TRUE(s != NULL);
    char pattern[300];
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (char)('a' + i % 26);
    ASSERT_EQ(write(sv[1], pattern, 20), 20);

    /* Compaction: 10 consumed at the front, then 10 wanted from a buffer
     * of 16 whose tail holds 6. */
    const char *p;
    size_t len;
    ASSERT_EQ(mag_stream_peek(s, &p, &len), 16);
    ASSERT_EQ(mag_stream_consume(s, 10), 0);
    ASSERT_EQ(mag_stream_fill(s, 10), 10);
    ASSERT_EQ(mag_stream_peek(s, &p, &len), 10);
    ASSERT_TRUE(memcmp(p, pattern + 10, 10) == 0);
    ASSERT_EQ(mag_stream_fill(s, 0), 10); /* already there: no read */
    ASSERT_EQ(mag_stream_fill(s, 7), 10);
    ASSERT_EQ(mag_stream_consume(s, 10), 0);

    /* Growth past bufsize: 200 contiguous bytes from a 16-byte stream. */
    ASSERT_EQ(write(sv[1], pattern + 20, 280), 280);
    ssize_t n = mag_stream_fill(s, 200);
    ASSERT_GE(n, 200);
    ASSERT_EQ(mag_stream_peek(s, &p, &len), n);
    ASSERT_TRUE(memcmp(p, pattern + 20, (size_t)n) == 0);
    ASSERT_EQ(mag_stream_consume(s, (size_t)n), 0);

    /* EOF in the middle of a message: -EPIPE, and the bytes stay. */
    ASSERT_EQ(mag_stream_fill(s, 280 - (size_t)n), 280 - n);
    ASSERT_EQ(mag_stream_consume(s, 280 - (size_t)n - 3), 0);
    ASSERT_EQ(shutdown(sv[1], SHUT_WR), 0);
    ASSERT_EQ(mag_stream_fill(s, 10), -EPIPE);
    ASSERT_EQ(mag_stream_peek(s, &p, &len), 3);
    ASSERT_TRUE(memcmp(p, pattern + 297, 3) == 0);
    ASSERT_EQ(mag_stream_consume(s, 3), 0);
    /* A clean EOF: 0, with an empty but valid view. */
    p = NULL;
    len = 99;
    ASSERT_EQ(mag_stream_peek(s, &p, &len), 0);
    ASSERT_TRUE(p != NULL);
    ASSERT_UEQ(len, 0);
    ASSERT_EQ(mag_stream_fill(s, 1), 0);
    ASSERT_EQ(mag_stream_fill(s, 0), 0);
    ASSERT_EQ(mag_stream_close(s), 0);
    close(sv[1]);
}

/* A deadline in peek or fill loses nothing and leaves the outputs alone. */
static void deadlines(void)
{
    int sv[2];
    pair(sv);
    mag_stream_t *s = mag_stream_new(sv[0], 0);
    ASSERT_TRUE(s != NULL);
    const char *sentinel = "untouched";
    const char *p = sentinel;
    size_t len = 77;
    uint64_t tok = mag_deadline_push(mag_now() + 20 * MAG_MS);
    ASSERT_EQ(mag_stream_peek(s, &p, &len), -ETIMEDOUT);
    mag_deadline_pop(tok);
    ASSERT_PTR_EQ(p, sentinel);
    ASSERT_UEQ(len, 77);

    put(sv[1], "part");
    tok = mag_deadline_push(mag_now() + 20 * MAG_MS);
    ASSERT_EQ(mag_stream_fill(s, 8), -ETIMEDOUT);
    mag_deadline_pop(tok);
    put(sv[1], "ial!");
    ASSERT_EQ(mag_stream_fill(s, 8), 8);
    ASSERT_EQ(mag_stream_peek(s, &p, &len), 8);
    ASSERT_TRUE(memcmp(p, "partial!", 8) == 0);
    ASSERT_EQ(mag_stream_close(s), 0);
    close(sv[1]);
}

/* ---- pipelining ---------------------------------------------------------- */

/* Answers one "PING <n>\n" request at the front of p[0..len): returns the
 * bytes it used, 0 when the request is incomplete. */
static size_t parse_and_answer(mag_stream_t *s, const char *p, size_t len)
{
    const char *nl = memchr(p, '\n', len);
    if (!nl)
        return 0;
    size_t used = (size_t)(nl - p) + 1;
    ASSERT_TRUE(used > 5 && memcmp(p, "PING ", 5) == 0);
    char reply[64];
    int n = snprintf(reply, sizeof reply, "PONG %.*s\n", (int)(used - 6), p + 5);
    ASSERT_EQ(mag_stream_write(s, reply, (size_t)n), n);
    return used;
}

typedef struct pipeline {
    int fd;
    size_t bufsize;
    int batches;
} pipeline_t;

/* The loop of the example in magpie/io.h. */
static int pipeline_server(void *arg)
{
    pipeline_t *pl = arg;
    mag_stream_t *s = mag_stream_new_ex(pl->fd, pl->bufsize, MAG_STREAM_BORROW);
    ASSERT_TRUE(s != NULL);
    for (;;) {
        const char *p;
        size_t len;
        ssize_t n = mag_stream_peek(s, &p, &len);
        if (n <= 0) {
            ASSERT_EQ(n, 0);
            break;
        }
        size_t used;
        while ((used = parse_and_answer(s, p, len)) > 0) {
            ASSERT_EQ(mag_stream_consume(s, used), 0);
            p += used;
            len -= used;
        }
        ASSERT_EQ(mag_stream_flush(s), 0);
        pl->batches++;
        if (len > 0 && mag_stream_fill(s, len + 1) <= 0)
            TEST_FAIL("a request cut short");
    }
    return mag_stream_close(s);
}

static void pipelining(size_t bufsize, int requests)
{
    int sv[2];
    pair(sv);
    char *all = malloc((size_t)requests * 16);
    ASSERT_TRUE(all != NULL);
    size_t total = 0;
    for (int i = 0; i < requests; i++)
        total += (size_t)sprintf(all + total, "PING %d\n", i);
    /* Every request is there before the server's first read. */
    ASSERT_EQ(write(sv[1], all, total), (ssize_t)total);
    ASSERT_EQ(shutdown(sv[1], SHUT_WR), 0);
    pipeline_t pl = {.fd = sv[0], .bufsize = bufsize};
    mag_task_t *t = mag_spawn(pipeline_server, &pl);
    ASSERT_TRUE(t != NULL);
    /* Each answer is as long as its request. */
    char *got = malloc(total + 64);
    ASSERT_TRUE(got != NULL);
    size_t have = 0;
    ssize_t n = 1;
    while (have < total && (n = mag_recv(sv[1], got + have, total + 64 - have, 0)) > 0)
        have += (size_t)n;
    ASSERT_UEQ(have, total);
    int st = -1;
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, 0);
    /* Nothing more came: the server's borrowed descriptor is still open. */
    ASSERT_EQ(shutdown(sv[0], SHUT_WR), 0);
    ASSERT_EQ(mag_recv(sv[1], got, 64, 0), 0);
    for (int i = 0, off = 0; i < requests; i++) {
        char want[32];
        int k = sprintf(want, "PONG %d\n", i);
        ASSERT_TRUE(memcmp(got + off, want, (size_t)k) == 0);
        off += k;
    }
    if (total <= (bufsize ? bufsize : MAG_STREAM_DEFAULT_BUFSIZE))
        ASSERT_EQ(pl.batches, 1); /* one read, one flush for them all */
    else
        ASSERT_GT(pl.batches, 1);
    free(all);
    free(got);
    close(sv[0]);
    close(sv[1]);
}

static int main_task(void *arg)
{
    (void)arg;
    bad_input();
    peek_and_consume();
    fill_grows_and_compacts();
    deadlines();
    pipelining(0, 200);  /* all in one batch */
    pipelining(64, 500); /* requests cut at every buffer boundary */
    return 0;
}

int main(void)
{
    test_run(test_workers(2), main_task, NULL);
    return 0;
}
