/* io_cancel: a task blocked in an operation is cancelled (-ECANCELED) or
 * passes its deadline (-ETIMEDOUT); the operation is withdrawn from the ring
 * and the descriptor stays usable; a result that races the cancel is never
 * lost. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test/test.h"

typedef struct blocked {
    int fd;
    int kind; /* 0 recv, 1 read, 2 poll, 3 accept */
    _Atomic int started;
    char buf[64];
} blocked_t;

static int block_task(void *arg)
{
    blocked_t *b = arg;
    atomic_store(&b->started, 1);
    switch (b->kind) {
    case 0:
        return (int)mag_recv(b->fd, b->buf, sizeof b->buf, 0);
    case 1:
        return (int)mag_read(b->fd, b->buf, sizeof b->buf, -1);
    case 2:
        return mag_poll(b->fd, POLLIN);
    default:
        return mag_accept(b->fd, NULL, NULL);
    }
}

static void wait_started(blocked_t *b)
{
    while (!atomic_load(&b->started))
        ASSERT_EQ(mag_sleep(MAG_MS), 0);
    ASSERT_EQ(mag_sleep(5 * MAG_MS), 0); /* let it reach the ring */
}

/* Cancels a task blocked in each kind of operation. */
static void cancel_each_kind(void)
{
    int sv[2], p[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    int lfd = mag_tcp_listen("127.0.0.1", 0, 0);
    ASSERT_GE(lfd, 0);
    int fds[4] = {sv[0], p[0], sv[0], lfd};
    for (int kind = 0; kind < 4; kind++) {
        blocked_t b = {.fd = fds[kind], .kind = kind};
        mag_task_t *t = mag_spawn(block_task, &b);
        ASSERT_TRUE(t != NULL);
        wait_started(&b);
        mag_cancel(t);
        int st = 0;
        ASSERT_EQ(mag_join(t, &st), 0);
        ASSERT_EQ(st, -ECANCELED);
    }
    /* The socket still works for others after the cancelled recv. */
    ASSERT_EQ(send(sv[1], "still", 5, 0), 5);
    char buf[8];
    ASSERT_EQ(mag_recv(sv[0], buf, sizeof buf, 0), 5);
    ASSERT_TRUE(memcmp(buf, "still", 5) == 0);
    ASSERT_EQ(mag_write(p[1], "x", 1, -1), 1);
    ASSERT_EQ(mag_read(p[0], buf, 1, -1), 1);
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
    close(lfd);
}

/* Deadlines on accept and recv. */
static void deadlines(void)
{
    int lfd = mag_tcp_listen("127.0.0.1", 0, 0);
    ASSERT_GE(lfd, 0);
    uint64_t t0 = mag_now();
    uint64_t tok = mag_deadline_push(t0 + 50 * MAG_MS);
    ASSERT_NE(tok, 0);
    ASSERT_EQ(mag_accept(lfd, NULL, NULL), -ETIMEDOUT);
    /* Sticky: the next operation fails at once, nothing submitted. */
    ASSERT_EQ(mag_accept(lfd, NULL, NULL), -ETIMEDOUT);
    mag_deadline_pop(tok);
    uint64_t took = mag_now() - t0;
    ASSERT_GE(took, 45 * MAG_MS);
    ASSERT_LT(took, 20 * MAG_SEC); /* generous: a loaded sanitizer machine */

    /* The listener still accepts afterwards. */
    int port = mag_local_port(lfd);
    int c = mag_tcp_connect("127.0.0.1", (uint16_t)port);
    ASSERT_GE(c, 0);
    int s = mag_accept(lfd, NULL, NULL);
    ASSERT_GE(s, 0);

    tok = mag_deadline_push(mag_now() + 30 * MAG_MS);
    char buf[16];
    ASSERT_EQ(mag_recv(s, buf, sizeof buf, 0), -ETIMEDOUT);
    mag_deadline_pop(tok);
    ASSERT_EQ(mag_send(c, "after", 5, 0), 5);
    ASSERT_EQ(mag_recv(s, buf, sizeof buf, 0), 5);
    close(c);
    close(s);
    close(lfd);
}

/* Data and a cancel arrive together, many times: either the task got the
 * byte, or it got -ECANCELED and the byte is still in the socket. */
typedef struct race {
    int fd;
    char got;
    _Atomic int started;
} race_t;

static int race_task(void *arg)
{
    race_t *r = arg;
    atomic_store(&r->started, 1);
    return (int)mag_recv(r->fd, &r->got, 1, 0);
}

static void cancel_races(void)
{
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int rounds = TEST_SCALE(400), got = 0, cancelled = 0;
    for (int i = 0; i < rounds; i++) {
        race_t r = {.fd = sv[0]};
        mag_task_t *t = mag_spawn(race_task, &r);
        ASSERT_TRUE(t != NULL);
        while (!atomic_load(&r.started))
            ASSERT_EQ(mag_yield(), 0);
        if (i & 1)
            ASSERT_EQ(mag_yield(), 0);
        char ch = (char)('a' + i % 26);
        ASSERT_EQ(send(sv[1], &ch, 1, 0), 1);
        mag_cancel(t);
        int st = 0;
        ASSERT_EQ(mag_join(t, &st), 0);
        if (st == 1) {
            ASSERT_EQ(r.got, ch);
            got++;
        } else {
            ASSERT_EQ(st, -ECANCELED);
            char back;
            ASSERT_EQ(mag_recv(sv[0], &back, 1, 0), 1);
            ASSERT_EQ(back, ch);
            cancelled++;
        }
    }
    ASSERT_EQ(got + cancelled, rounds);
    close(sv[0]);
    close(sv[1]);
}

/* Many tasks blocked on many sockets, cancelled at once from a group. */
static int recv_member(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[32];
    return (int)mag_recv(fd, buf, sizeof buf, 0);
}

static void cancel_many(void)
{
    enum { N = 200 };
    int sv[N][2];
    mag_group_t *g = mag_group_create(0);
    ASSERT_TRUE(g != NULL);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]), 0);
        ASSERT_GE(mag_group_spawn(g, recv_member, (void *)(intptr_t)sv[i][0]), 0);
    }
    ASSERT_EQ(mag_sleep(20 * MAG_MS), 0);
    mag_group_cancel(g);
    int st, n = 0;
    while (mag_group_next(g, &st) >= 0) {
        ASSERT_EQ(st, -ECANCELED);
        n++;
    }
    ASSERT_EQ(n, N);
    mag_group_destroy(g);
    for (int i = 0; i < N; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
}

/* A task cancelled before its operation submits nothing and fails at once. */
static int precancelled(void *arg)
{
    int fd = *(int *)arg;
    while (!mag_cancelled())
        if (mag_yield() == -ECANCELED)
            break;
    char buf[4];
    int r = (int)mag_recv(fd, buf, sizeof buf, 0);
    /* mag_close still closes. */
    int fd2 = dup(fd);
    ASSERT_EQ(mag_close(fd2), 0);
    ASSERT_EQ(fcntl(fd2, F_GETFD), -1);
    return r;
}

static int main_task(void *arg)
{
    (void)arg;
    cancel_each_kind();
    deadlines();
    cancel_races();
    cancel_many();

    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    mag_task_t *t = mag_spawn(precancelled, &sv[0]);
    mag_cancel(t);
    int st = 0;
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

int main(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    unsigned modes[2] = {test_workers(4), 1};
    for (int m = 0; m < 2; m++) {
        cfg.workers = modes[m];
        test_run_cfg(&cfg, main_task, NULL);
    }
    return 0;
}
