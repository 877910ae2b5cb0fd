/*
 * test/net_serve_close.c - mag_close of a listener that mag_serve is
 * accepting on ends the serve with -EBADF (its connections drained), on the
 * closer's worker and on another; the port accepts nobody afterwards.
 */
#include <netinet/in.h>
#include <sys/socket.h>

#include "test/test.h"

static int echo(int fd, void *ctx)
{
    (void)ctx;
    char buf[64];
    ssize_t n;
    while ((n = mag_recv(fd, buf, sizeof buf, 0)) > 0)
        if (mag_send_all(fd, buf, (size_t)n, 0) < 0)
            break;
    return 0;
}

static int serve_task(void *arg)
{
    return mag_serve(*(int *)arg, echo, NULL);
}

static void round_trip(uint16_t port)
{
    int fd = mag_tcp_connect("127.0.0.1", port);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(mag_send_all(fd, "x", 1, 0), 1);
    char c = 0;
    ASSERT_EQ(mag_recv(fd, &c, 1, 0), 1);
    ASSERT_EQ(c, 'x');
    mag_close(fd);
}

static int main_task(void *arg)
{
    (void)arg;
    for (int round = 0; round < 20; round++) {
        int lfd = mag_tcp_listen("127.0.0.1", 0, 64);
        ASSERT_GE(lfd, 0);
        uint16_t port = (uint16_t)mag_local_port(lfd);
        mag_task_t *server = mag_spawn(serve_task, &lfd);
        ASSERT_TRUE(server != NULL);
        round_trip(port); /* it serves */
        if (round % 2)
            mag_yield(); /* now and then from the other worker */
        uint64_t t0 = mag_now();
        ASSERT_EQ(mag_close(lfd), 0);
        int st = 0;
        uint64_t token = mag_deadline_push(mag_now() + 10 * MAG_SEC);
        ASSERT_EQ(mag_join(server, &st), 0); /* it ends: no deadline passed */
        mag_deadline_pop(token);
        ASSERT_EQ(st, -EBADF);
        ASSERT_LT(mag_now() - t0, 10 * MAG_SEC);
        /* Nobody listens there now. */
        int fd = mag_tcp_connect("127.0.0.1", port);
        if (fd >= 0)
            TEST_FAIL("round %d: port %u still accepts after mag_close", round, port);
        ASSERT_EQ(fd, -ECONNREFUSED);
    }
    return 0;
}

int main(void)
{
    test_run(test_workers(2), main_task, NULL);
    test_run(1, main_task, NULL);
    puts("ok");
    return 0;
}
