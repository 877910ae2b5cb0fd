/* net_serve: mag_serve and the TCP helpers. Half-close, clients that vanish
 * mid-response (the handler sees -EPIPE/-ECONNRESET, nobody else notices),
 * failing handlers, cancelling the server (it cancels and waits for its
 * connections), IPv4/IPv6/dual-stack/named hosts, and connection errors. */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test/test.h"

#define BIG (8u * 1024u * 1024u)

typedef struct stats {
    _Atomic int big_started, big_broken, big_other;
    _Atomic int sleepers, sleepers_cancelled;
} stats_t;

/* The first byte picks the behaviour. */
static int handler(int fd, void *ctx)
{
    stats_t *st = ctx;
    char cmd;
    if (mag_recv(fd, &cmd, 1, 0) != 1)
        return -EIO;
    switch (cmd) {
    case 'E': { /* echo until the client's EOF, then say bye */
        char buf[4096];
        ssize_t n;
        while ((n = mag_recv(fd, buf, sizeof buf, 0)) > 0)
            if (mag_send_all(fd, buf, (size_t)n, 0) < 0)
                return -EPIPE;
        if (n < 0)
            return (int)n;
        return mag_send_all(fd, "bye", 3, 0) == 3 ? 0 : -EPIPE;
    }
    case 'B': { /* a big response the client will not read to the end */
        static char chunk[65536];
        atomic_fetch_add(&st->big_started, 1);
        ssize_t r = 0;
        for (size_t sent = 0; sent < BIG && r >= 0; sent += sizeof chunk)
            r = mag_send_all(fd, chunk, sizeof chunk, 0);
        if (r == -EPIPE || r == -ECONNRESET)
            atomic_fetch_add(&st->big_broken, 1);
        else
            atomic_fetch_add(&st->big_other, 1);
        return (int)r;
    }
    case 'X': /* a failing handler: its error changes nothing for others */
        return -EIO;
    case 'S': { /* blocks until the server is cancelled */
        atomic_fetch_add(&st->sleepers, 1);
        char buf[8];
        ssize_t r = mag_recv(fd, buf, sizeof buf, 0);
        if (r == -ECANCELED)
            atomic_fetch_add(&st->sleepers_cancelled, 1);
        return (int)r;
    }
    default:
        return -EINVAL;
    }
}

typedef struct server {
    int lfd;
    stats_t *st;
} server_t;

static int server_task(void *arg)
{
    server_t *s = arg;
    return mag_serve(s->lfd, handler, s->st);
}

static void half_close(const char *host, uint16_t port)
{
    int fd = mag_tcp_connect(host, port);
    if (fd < 0)
        TEST_FAIL("connect %s: %d", host, fd);
    ASSERT_EQ(mag_send_all(fd, "Ehello", 6, 0), 6);
    ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
    char buf[64];
    size_t got = 0;
    ssize_t n;
    while ((n = mag_recv(fd, buf + got, sizeof buf - got, 0)) > 0)
        got += (size_t)n;
    ASSERT_EQ(n, 0);
    ASSERT_EQ(got, 8);
    ASSERT_TRUE(memcmp(buf, "hellobye", 8) == 0);
    ASSERT_EQ(mag_close(fd), 0);
}

static int vanishing_client(void *arg)
{
    uint16_t port = (uint16_t)(uintptr_t)arg;
    int fd = mag_tcp_connect("127.0.0.1", port);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(mag_send(fd, "B", 1, 0), 1);
    char buf[4096];
    ASSERT_GT(mag_recv(fd, buf, sizeof buf, 0), 0); /* the response has begun */
    /* Close with unread data: the server gets a reset. */
    ASSERT_EQ(mag_close(fd), 0);
    return 0;
}

static int failing_client(void *arg)
{
    uint16_t port = (uint16_t)(uintptr_t)arg;
    int fd = mag_tcp_connect("127.0.0.1", port);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(mag_send(fd, "X", 1, 0), 1);
    char buf[8];
    ssize_t n = mag_recv(fd, buf, sizeof buf, 0); /* closed by the server */
    ASSERT_TRUE(n == 0 || n == -ECONNRESET);
    ASSERT_EQ(mag_close(fd), 0);
    return 0;
}

static void run_server_checks(stats_t *st, uint16_t port)
{
    half_close("127.0.0.1", port);

    enum { N = 20 };
    mag_group_t *g = mag_group_create(0);
    ASSERT_TRUE(g != NULL);
    for (int i = 0; i < N; i++) {
        ASSERT_GE(mag_group_spawn(g, vanishing_client, (void *)(uintptr_t)port), 0);
        ASSERT_GE(mag_group_spawn(g, failing_client, (void *)(uintptr_t)port), 0);
    }
    ASSERT_EQ(mag_group_wait(g), 0);
    mag_group_destroy(g);
    /* Every big handler ends with -EPIPE or -ECONNRESET, within bounds. */
    uint64_t t0 = mag_now();
    while (atomic_load(&st->big_broken) + atomic_load(&st->big_other) < N) {
        ASSERT_LT(mag_now() - t0, 30 * MAG_SEC);
        ASSERT_EQ(mag_sleep(5 * MAG_MS), 0);
    }
    ASSERT_EQ(atomic_load(&st->big_broken), N);
    half_close("127.0.0.1", port); /* and the server still serves */
}

static int main_task(void *arg)
{
    (void)arg;
    stats_t st;
    memset(&st, 0, sizeof st);

    /* Dual-stack listener: IPv4, IPv6 and a name all reach it. */
    server_t s = {.lfd = mag_tcp_listen(NULL, 0, 0), .st = &st};
    ASSERT_GE(s.lfd, 0);
    uint16_t port = (uint16_t)mag_local_port(s.lfd);
    mag_task_t *srv = mag_spawn(server_task, &s);
    ASSERT_TRUE(srv != NULL);
    run_server_checks(&st, port);
    half_close("::1", port);
    half_close("localhost", port); /* resolved on a helper thread */

    /* Connections still open when the server is cancelled are cancelled
     * and waited for: afterwards nothing touches st. */
    enum { SLEEPERS = 10 };
    int fds[SLEEPERS];
    for (int i = 0; i < SLEEPERS; i++) {
        fds[i] = mag_tcp_connect("127.0.0.1", port);
        ASSERT_GE(fds[i], 0);
        ASSERT_EQ(mag_send(fds[i], "S", 1, 0), 1);
    }
    uint64_t t0 = mag_now();
    while (atomic_load(&st.sleepers) < SLEEPERS) {
        ASSERT_LT(mag_now() - t0, 30 * MAG_SEC);
        ASSERT_EQ(mag_sleep(2 * MAG_MS), 0);
    }
    mag_cancel(srv);
    int rc = 0;
    ASSERT_EQ(mag_join(srv, &rc), 0);
    ASSERT_EQ(rc, -ECANCELED);
    ASSERT_EQ(atomic_load(&st.sleepers_cancelled), SLEEPERS);
    for (int i = 0; i < SLEEPERS; i++) {
        char c;
        ASSERT_EQ(mag_recv(fds[i], &c, 1, 0), 0); /* the server closed it */
        mag_close(fds[i]);
    }

    /* The listener is not closed by mag_serve: serve it again, with a
     * deadline this time. */
    uint64_t tok = mag_deadline_push(mag_now() + 50 * MAG_MS);
    ASSERT_EQ(mag_serve(s.lfd, handler, &st), -ETIMEDOUT);
    mag_deadline_pop(tok);
    ASSERT_EQ(mag_close(s.lfd), 0);
    /* Nobody listens on the port now. */
    ASSERT_EQ(mag_tcp_connect("127.0.0.1", port), -ECONNREFUSED);

    /* IPv6 only. */
    s.lfd = mag_tcp_listen("::1", 0, 16);
    ASSERT_GE(s.lfd, 0);
    port = (uint16_t)mag_local_port(s.lfd);
    ASSERT_EQ(mag_tcp_connect("127.0.0.1", port), -ECONNREFUSED);
    srv = mag_spawn(server_task, &s);
    half_close("::1", port);
    mag_cancel(srv);
    ASSERT_EQ(mag_join(srv, &rc), 0);
    ASSERT_EQ(rc, -ECANCELED);

    /* The port is taken (no SO_REUSEPORT). */
    ASSERT_EQ(mag_tcp_listen("::1", port, 0), -EADDRINUSE);
    ASSERT_EQ(mag_close(s.lfd), 0);

    /* A name that does not resolve: -ENOENT (or -EAGAIN when the resolver
     * cannot be reached at all). */
    rc = mag_tcp_connect("no-such-host.invalid", 80);
    ASSERT_TRUE(rc == -ENOENT || rc == -EAGAIN);
    rc = mag_tcp_listen("no-such-host.invalid", 0, 0);
    ASSERT_TRUE(rc == -ENOENT || rc == -EAGAIN);
    /* A handler that is not a listener: fatal for mag_serve. */
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_EQ(mag_serve(sv[0], handler, &st), -EINVAL);
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
