/* mag_serve_ex's graceful stop: on cancellation a request in flight finishes
 * and its answer arrives whole, an idle keep-alive connection sees end of
 * input, and a handler slower than the grace period is cancelled; a grace
 * of UINT64_MAX is for ever, not an end time that wrapped. */
#include "test/test.h"

#include <stdatomic.h>
#include <sys/socket.h>

static _Atomic int handler_saw; /* the slow handler's sleep result */
static _Atomic int got_request; /* the handler has the request in hand */

static int slow_handler(int fd, void *ctx)
{
    uint64_t work_ns = *(uint64_t *)ctx;
    char buf[64];
    for (;;) {
        ssize_t n = mag_recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return (int)n; /* end of input: the graceful stop reached us */
        atomic_store(&got_request, 1);
        int rc = mag_sleep(work_ns); /* the request takes a while */
        atomic_store(&handler_saw, rc);
        if (rc)
            return rc;
        if (mag_send(fd, "done\n", 5, 0) != 5)
            return -EIO;
    }
}

struct server {
    int lfd;
    uint64_t work_ns;
    mag_serve_opts_t opts;
};

static int serve_task(void *arg)
{
    struct server *s = arg;
    return mag_serve_ex(s->lfd, slow_handler, &s->work_ns, &s->opts);
}

/* Reads until end of input; returns what arrived. */
static ssize_t read_all(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;
    while (got < cap && (n = mag_recv(fd, buf + got, cap - got, 0)) > 0)
        got += (size_t)n;
    return (ssize_t)got;
}

static void run_case(uint64_t work_ns, uint64_t grace_ns, bool expect_answer)
{
    struct server s = {.work_ns = work_ns, .opts = {.grace_ns = grace_ns}};
    s.lfd = mag_tcp_listen("127.0.0.1", 0, 16);
    ASSERT_GE(s.lfd, 0);
    int port = mag_local_port(s.lfd);
    mag_task_t *srv = mag_spawn(serve_task, &s);
    int busy = mag_tcp_connect("127.0.0.1", (uint16_t)port);
    int idle = mag_tcp_connect("127.0.0.1", (uint16_t)port);
    ASSERT_GE(busy, 0);
    ASSERT_GE(idle, 0);
    atomic_store(&handler_saw, 1);
    atomic_store(&got_request, 0);
    ASSERT_EQ(mag_send(busy, "x", 1, 0), 1);
    while (!atomic_load(&got_request)) /* the request is in flight */
        mag_sleep(MAG_MS);
    uint64_t t0 = mag_now();
    mag_cancel(srv); /* as SIGTERM does in examples/http_server */
    char buf[64];
    ssize_t n = read_all(busy, buf, sizeof buf);
    if (expect_answer) {
        ASSERT_EQ(n, 5);
        ASSERT_TRUE(memcmp(buf, "done\n", 5) == 0);
    } else {
        ASSERT_EQ(n, 0); /* cut off: no answer, then end of input */
    }
    ASSERT_EQ(read_all(idle, buf, sizeof buf), 0); /* closed, not left hanging */
    int st;
    ASSERT_EQ(mag_join(srv, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    uint64_t took = mag_now() - t0;
    /* Never longer than the grace period (plus slack for a loaded machine),
     * and no shorter than the request when it was let finish. */
    uint64_t slack = 5 * MAG_SEC;
    uint64_t bound = grace_ns > UINT64_MAX - slack ? UINT64_MAX : grace_ns + slack;
    ASSERT_TRUE(took < bound); /* unsigned: ASSERT_LT compares as signed */
    if (expect_answer)
        ASSERT_EQ(atomic_load(&handler_saw), 0);
    else
        ASSERT_EQ(atomic_load(&handler_saw), -ECANCELED);
    mag_close(busy);
    mag_close(idle);
    mag_close(s.lfd);
}

static int main_task(void *arg)
{
    run_case(200 * MAG_MS, 10 * MAG_SEC, true);  /* finishes within the grace */
    run_case(30 * MAG_SEC, 100 * MAG_MS, false); /* outlasts it: cancelled */
    /* "For ever": the grace's end must not wrap into the past and cut the
     * request at once. */
    run_case(200 * MAG_MS, UINT64_MAX, true);
    return 0;
}

int main(void)
{
    test_run(test_workers(2), main_task, NULL);
    test_run(1, main_task, NULL);
    return 0;
}
