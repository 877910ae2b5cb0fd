/* io_ready_kept: a mag_serve connection at several workers keeps its
 * readiness registration from one wait to the next, and after a receive that
 * returned less than it asked for, its next receive waits for an event
 * before it tries the socket (runtime/ready.c, io/ops.c recv_ready).
 * Checked, with the ring's way (1 worker) run beside it:
 *   - round trips on many served connections, small reads (each short),
 *     every byte where it belongs;
 *   - the last bytes and the end of the stream in one go (the receive that
 *     takes the bytes takes the end too, and no event follows): the next
 *     receive returns 0 at once;
 *   - the end of the stream, or a reset, while the handler is busy between
 *     two receives;
 *   - a served descriptor read by a second task, then by the handler again;
 *   - TCP urgent data among the bytes (a receive stops short at its mark,
 *     the rest queued): the next receive still gets the rest;
 *   - a handler that closes its own descriptor with close(2) (a misuse),
 *     the number then reused by another task's socket: that socket's
 *     receive is woken, not left on the connection's registration;
 *   - a socket that is not served, closed with close(2) between two
 *     receives and its number reused by a new socket: the new socket is
 *     waited on, not taken for the old one's registration.
 * Every client's receive has a deadline: a lost event fails, never hangs. */
#include "test/test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CLIENTS 32
#define TRIPS TEST_SCALE(200)
#define ENDS TEST_SCALE(200)
#define DEADLINE_NS (30ull * 1000000000ull)

static uint16_t port;

/* ---- the server ------------------------------------------------------------ */

enum mode { ECHO, COUNT_THEN_REPLY, BUSY_THEN_REPLY, HAND_OVER, URGENT, MISUSE };
static enum mode mode;

/* Echo in small pieces: a 512-byte read of a message that is rarely 512
 * bytes returns short, so the next receive waits before it tries. */
static int echo(int fd)
{
    char buf[512];
    ssize_t n;
    while ((n = mag_recv(fd, buf, sizeof buf, 0)) > 0)
        if (mag_send_all(fd, buf, (size_t)n, 0) != n)
            return -EPIPE;
    return (int)n;
}

/* Reads to the end of the stream and replies with the count it got, then
 * the result of the receive that ended it. busy: a pause after each
 * receive, so that the end comes while the handler is between two. */
static int count_then_reply(int fd, bool busy)
{
    char buf[4096];
    int64_t got = 0, last;
    while ((last = mag_recv(fd, buf, sizeof buf, 0)) > 0) {
        got += last;
        if (busy)
            mag_sleep(1000000);
    }
    int64_t reply[2] = {got, last};
    (void)mag_send_all(fd, reply, sizeof reply, 0);
    return 0;
}

static int first_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8];
    ssize_t n = mag_recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
        return (int)n;
    return mag_send_all(fd, buf, (size_t)n, 0) == n ? 0 : -EPIPE;
}

/* A first exchange, so that the connection's registration is made and
 * trusted, then urgent data among the bytes: a receive stops short at its
 * mark with the rest already queued, which no event repeats. The handler
 * reads until it has "ping2" and replies. */
static int urgent(int fd)
{
    char buf[512], all[1024];
    ssize_t n = mag_recv(fd, buf, sizeof buf, 0);
    if (n <= 0 || mag_send_all(fd, buf, (size_t)n, 0) != n)
        return -EPIPE;
    mag_sleep(20 * 1000000ull); /* everything arrives before the next receive */
    size_t have = 0;
    while (have < sizeof all - sizeof buf && (n = mag_recv(fd, buf, sizeof buf, 0)) > 0) {
        memcpy(all + have, buf, (size_t)n);
        have += (size_t)n;
        if (memmem(all, have, "ping2", 5))
            return mag_send_all(fd, "ok", 2, 0) == 2 ? 0 : -EPIPE;
    }
    return -EPROTO;
}

/* ---- a misused number: the handler closes its own descriptor -------------- */

static int misuse_fd; /* the other end of the socketpair that took the number */

static void *misuse_writer(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ASSERT_EQ(write(misuse_fd, "new", 3), 3);
    return NULL;
}

static int innocent_reader(void *arg)
{
    char buf[8];
    ASSERT_EQ(mag_recv((int)(intptr_t)arg, buf, sizeof buf, 0), 3);
    return 0;
}

/* The handler closes its descriptor with close(2), which mag_serve's rule
 * forbids and magpie cannot see; another task then receives on a new
 * socket given that number. That socket is in no epoll: its wait must arm
 * it, not take the connection's trust for its own. */
static int misuse(int fd)
{
    char buf[64];
    ssize_t n = mag_recv(fd, buf, sizeof buf, 0); /* trusted from here */
    if (n <= 0 || mag_send_all(fd, buf, (size_t)n, 0) != n)
        return -EPIPE;
    close(fd);
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    if (sv[0] != fd && sv[1] != fd)
        TEST_FAIL("the number %d was not reused (%d, %d)", fd, sv[0], sv[1]);
    int reader = fd;
    misuse_fd = sv[0] == fd ? sv[1] : sv[0];
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, misuse_writer, NULL), 0);
    mag_task_t *t = mag_spawn(innocent_reader, (void *)(intptr_t)reader);
    ASSERT_TRUE(t != NULL);
    uint64_t token = mag_deadline_push(mag_now() + DEADLINE_NS);
    int st = -1;
    ASSERT_EQ(mag_join(t, &st), 0);
    mag_deadline_pop(token);
    ASSERT_EQ(st, 0);
    pthread_join(th, NULL);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static int handle(int fd)
{
    switch (mode) {
    case ECHO:
        return echo(fd);
    case COUNT_THEN_REPLY:
        return count_then_reply(fd, false);
    case BUSY_THEN_REPLY:
        return count_then_reply(fd, true);
    case URGENT:
        return urgent(fd);
    case MISUSE:
        return misuse(fd);
    case HAND_OVER: {
        /* The first message is read by another task: its receive is not the
         * connection's own; then the handler echoes the rest itself. */
        mag_task_t *t = mag_spawn(first_reader, (void *)(intptr_t)fd);
        if (!t)
            return -ENOMEM;
        int st = -1;
        mag_join(t, &st);
        return st ? st : echo(fd);
    }
    }
    return 0;
}

static _Atomic int handlers_done;

static int handler(int fd, void *ctx)
{
    (void)ctx;
    int rc = handle(fd);
    atomic_fetch_add(&handlers_done, 1);
    return rc;
}

static int server(void *arg)
{
    return mag_serve(*(int *)arg, handler, NULL);
}

/* ---- the clients ----------------------------------------------------------- */

static int connect_client(void)
{
    int fd = mag_tcp_connect("127.0.0.1", port);
    ASSERT_GE(fd, 0);
    return fd;
}

static ssize_t recv_exact(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = mag_recv(fd, (char *)buf + got, len - got, 0);
        if (n <= 0)
            return n;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Messages whose bytes name the client and the trip. */
static int trips_client(void *arg)
{
    intptr_t id = (intptr_t)arg;
    int fd = connect_client();
    char out[1500], in[1500];
    for (int trip = 0; trip < TRIPS; trip++) {
        size_t len = 1 + (size_t)((id * 7 + trip * 131) % (int)sizeof out);
        for (size_t i = 0; i < len; i++)
            out[i] = (char)(id * 31 + trip + (int)i);
        ASSERT_EQ(mag_send_all(fd, out, len, 0), (ssize_t)len);
        ASSERT_EQ(recv_exact(fd, in, len), (ssize_t)len);
        ASSERT_EQ(memcmp(in, out, len), 0);
    }
    ASSERT_EQ(mag_shutdown(fd, SHUT_WR), 0);
    ASSERT_EQ(mag_recv(fd, in, sizeof in, 0), 0); /* the handler saw the end */
    mag_close(fd);
    return 0;
}

/* Sends len bytes and its end at once (or resets), then reads the reply. */
static int end_client(void *arg)
{
    intptr_t id = (intptr_t)arg;
    bool reset = id % 4 == 3 && mode == BUSY_THEN_REPLY;
    int fd = connect_client();
    char out[700];
    size_t len = 1 + (size_t)(id * 37 % (int)sizeof out);
    memset(out, (int)id, len);
    ASSERT_EQ(mag_send_all(fd, out, len, 0), (ssize_t)len);
    if (reset) {
        /* Closed with SO_LINGER 0: a reset instead of an end. The handler's
         * next receive must end (an error or 0), not wait. Its reply cannot
         * come back; the end of the connection shows in the server draining
         * at the end of the case. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        mag_close(fd);
        return 0;
    }
    ASSERT_EQ(mag_shutdown(fd, SHUT_WR), 0);
    int64_t reply[2];
    ASSERT_EQ(recv_exact(fd, reply, sizeof reply), (ssize_t)sizeof reply);
    ASSERT_EQ(reply[0], (int64_t)len);
    ASSERT_EQ(reply[1], 0);
    mag_close(fd);
    return 0;
}

static int hand_over_client(void *arg)
{
    intptr_t id = (intptr_t)arg;
    int fd = connect_client();
    char first[8], back[8];
    memset(first, (int)id, sizeof first);
    ASSERT_EQ(mag_send_all(fd, first, sizeof first, 0), (ssize_t)sizeof first);
    ASSERT_EQ(recv_exact(fd, back, sizeof back), (ssize_t)sizeof back);
    ASSERT_EQ(memcmp(back, first, sizeof first), 0);
    mag_close(fd);
    return 0;
}

/* A connection whose first exchange ("hello", echoed) has made the
 * handler's registration and its trust. */
static int connect_after_hello(void)
{
    int fd = connect_client();
    char back[5];
    ASSERT_EQ(mag_send_all(fd, "hello", 5, 0), 5);
    ASSERT_EQ(recv_exact(fd, back, 5), 5);
    ASSERT_EQ(memcmp(back, "hello", 5), 0);
    return fd;
}

static int urgent_client(void *arg)
{
    (void)arg;
    int fd = connect_after_hello();
    char back[2];
    /* Plain send(2) never waits here: a few bytes into an empty socket. */
    ASSERT_EQ(send(fd, "ping1", 5, 0), 5);
    ASSERT_EQ(send(fd, "X", 1, MSG_OOB), 1);
    ASSERT_EQ(send(fd, "ping2", 5, 0), 5);
    ASSERT_EQ(recv_exact(fd, back, 2), 2);
    ASSERT_EQ(memcmp(back, "ok", 2), 0);
    mag_close(fd);
    return 0;
}

static int misuse_client(void *arg)
{
    (void)arg;
    int fd = connect_after_hello();
    mag_close(fd);
    return 0;
}

/* Runs fn in count clients (at most CLIENTS at once) against a fresh
 * serve in mode m; every handler must then return on its own (having seen
 * its connection end) before the serve is stopped, whose stop would end a
 * handler's wait by shutting its socket down. */
static void against_server(enum mode m, mag_fn fn, int count)
{
    mode = m;
    atomic_store(&handlers_done, 0);
    int lfd = mag_tcp_listen("127.0.0.1", 0, 1024);
    ASSERT_GE(lfd, 0);
    port = (uint16_t)mag_local_port(lfd);
    mag_task_t *srv = mag_spawn(server, &lfd);
    ASSERT_TRUE(srv != NULL);
    uint64_t token = mag_deadline_push(mag_now() + DEADLINE_NS);
    for (int base = 0; base < count; base += CLIENTS) {
        mag_group_t *g = mag_group_create(MAG_GROUP_CANCEL_ON_ERROR);
        ASSERT_TRUE(g != NULL);
        for (int i = base; i < count && i < base + CLIENTS; i++)
            ASSERT_GE(mag_group_spawn(g, fn, (void *)(intptr_t)i), 0);
        ASSERT_EQ(mag_group_wait(g), 0);
        mag_group_destroy(g);
    }
    while (atomic_load(&handlers_done) < count)
        if (mag_sleep(1000000) == -ETIMEDOUT)
            TEST_FAIL("mode %d: %d of %d handlers returned", m, atomic_load(&handlers_done),
                      count);
    mag_deadline_pop(token);
    mag_cancel(srv);
    ASSERT_EQ(mag_join(srv, NULL), 0);
    ASSERT_EQ(mag_close(lfd), 0);
}

static int served_cases(void *arg)
{
    (void)arg;
    against_server(ECHO, trips_client, CLIENTS);
    against_server(COUNT_THEN_REPLY, end_client, ENDS);
    against_server(BUSY_THEN_REPLY, end_client, ENDS / 4);
    against_server(HAND_OVER, hand_over_client, CLIENTS);
    against_server(URGENT, urgent_client, 4);
    against_server(MISUSE, misuse_client, 1);
    return 0;
}

/* ---- a plain socket closed with close(2), its number reused ---------------- */

static int late_fd;

static void *late_writer(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ASSERT_EQ(write(late_fd, "new", 3), 3);
    return NULL;
}

static int reused_number(void *arg)
{
    (void)arg;
    for (int round = 0; round < 20; round++) {
        int a[2], b[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
        /* A wait on a[0], so that it is registered: the byte comes later. */
        late_fd = a[1];
        pthread_t th;
        ASSERT_EQ(pthread_create(&th, NULL, late_writer, NULL), 0);
        char buf[8];
        ASSERT_EQ(mag_recv(a[0], buf, sizeof buf, 0), 3);
        pthread_join(th, NULL);
        /* No operation waits on a[0]: close(2) is allowed. */
        int number = a[0];
        close(a[0]);
        close(a[1]);
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
        if (b[0] != number && b[1] != number)
            TEST_FAIL("the number %d was not reused (%d, %d)", number, b[0], b[1]);
        int reader = b[0] == number ? b[0] : b[1];
        late_fd = reader == b[0] ? b[1] : b[0];
        ASSERT_EQ(pthread_create(&th, NULL, late_writer, NULL), 0);
        uint64_t token = mag_deadline_push(mag_now() + DEADLINE_NS);
        ASSERT_EQ(mag_recv(reader, buf, sizeof buf, 0), 3);
        mag_deadline_pop(token);
        ASSERT_EQ(memcmp(buf, "new", 3), 0);
        pthread_join(th, NULL);
        mag_close(b[0]);
        mag_close(b[1]);
    }
    return 0;
}

static void run_all(unsigned workers)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    printf("%u workers\n", workers);
    test_run_cfg(&cfg, served_cases, NULL);
    test_run_cfg(&cfg, reused_number, NULL);
}

int main(void)
{
    unsigned n = test_workers(8);
    run_all(n);
    if (n != 2)
        run_all(2);
    run_all(1);
    return 0;
}
