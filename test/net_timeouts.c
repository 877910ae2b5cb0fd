/* net_timeouts: mag_serve_ex's header, idle and send timeouts against the
 * clients that tie a server up. Slowloris clients (500 that dribble a byte
 * of a never-ending head every 100 ms, 100 that stay silent) are closed within
 * the header timeout plus a second, while a normal client is answered
 * throughout; an idle keep-alive connection is closed after the idle
 * timeout but an active one is not; a client that pipelines requests and
 * never reads is cut after the send timeout. Also mag_conn_phase's errors. */
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "test/test.h"

#define DRIBBLERS 500
#define SILENT 100
#define NSLOW (DRIBBLERS + SILENT)
/* Slack for a loaded 2-core machine; sanitizer builds get more. */
#define SLACK_NS ((TEST_SANITIZED ? 3 : 1) * MAG_SEC)

static _Atomic int sends_cut;        /* handlers whose send failed */
static _Atomic uint64_t send_cut_ns; /* when the last one did */

/* A request is text up to an empty line ("\n\n"); the answer is "ok\n", or
 * with big set 256 KiB. The handler says its phases as an HTTP server does. */
static int head_handler(int fd, void *ctx)
{
    bool big = ctx != NULL;
    static char chunk[256 * 1024];
    char buf[512];
    size_t len = 0;
    for (;;) {
        mag_conn_phase(len == 0 ? MAG_CONN_IDLE : MAG_CONN_HEADER);
        if (len == sizeof buf)
            return -EMSGSIZE;
        ssize_t n = mag_recv(fd, buf + len, sizeof buf - len, 0);
        if (n <= 0)
            return (int)n;
        len += (size_t)n;
        char *end;
        while (len >= 2 && (end = memmem(buf, len, "\n\n", 2)) != NULL) {
            mag_conn_phase(MAG_CONN_ACTIVE); /* a whole request: the next head starts afresh */
            size_t used = (size_t)(end + 2 - buf);
            memmove(buf, buf + used, len - used);
            len -= used;
            ssize_t r =
                big ? mag_send_all(fd, chunk, sizeof chunk, 0) : mag_send_all(fd, "ok\n", 3, 0);
            if (r < 0) {
                atomic_store(&send_cut_ns, mag_now());
                atomic_fetch_add(&sends_cut, 1);
                return (int)r;
            }
        }
    }
}

typedef struct server {
    int lfd;
    uint16_t port;
    mag_serve_opts_t opts;
    void *ctx;
    mag_task_t *task;
} server_t;

static int serve_task(void *arg)
{
    server_t *s = arg;
    return mag_serve_ex(s->lfd, head_handler, s->ctx, &s->opts);
}

static void start(server_t *s, uint64_t header_ms, uint64_t idle_ms, uint64_t send_ms, void *ctx)
{
    memset(s, 0, sizeof *s);
    s->opts.header_timeout_ns = header_ms * MAG_MS;
    s->opts.idle_timeout_ns = idle_ms * MAG_MS;
    s->opts.send_timeout_ns = send_ms * MAG_MS;
    s->opts.conn_name = "timed-conn";
    s->ctx = ctx;
    s->lfd = mag_tcp_listen("127.0.0.1", 0, 1024);
    ASSERT_GE(s->lfd, 0);
    s->port = (uint16_t)mag_local_port(s->lfd);
    s->task = mag_spawn(serve_task, s);
    ASSERT_TRUE(s->task != NULL);
}

static void stop(server_t *s)
{
    mag_cancel(s->task);
    int st = 0;
    ASSERT_EQ(mag_join(s->task, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    mag_close(s->lfd);
}

static int connect_to(const server_t *s)
{
    int fd = mag_tcp_connect("127.0.0.1", s->port);
    if (fd < 0)
        TEST_FAIL("connect: %d", fd);
    return fd;
}

/* Waits (bounded) until the server closes fd; returns when, or 0 if it did
 * not within limit_ns. Answers sent before the close are skipped. */
static uint64_t closed_at(int fd, uint64_t limit_ns)
{
    char buf[4096];
    uint64_t tok = mag_deadline_push(mag_now() + limit_ns);
    ssize_t n;
    while ((n = mag_recv(fd, buf, sizeof buf, 0)) > 0)
        ;
    mag_deadline_pop(tok);
    if (n == -ETIMEDOUT)
        return 0;
    ASSERT_TRUE(n == 0 || n == -ECONNRESET);
    return mag_now();
}

/* One request and its answer, within a generous bound. */
static void request(int fd)
{
    ASSERT_EQ(mag_send_all(fd, "GET\n\n", 5, 0), 5);
    char buf[3];
    uint64_t tok = mag_deadline_push(mag_now() + 10 * MAG_SEC);
    size_t got = 0;
    while (got < 3) {
        ssize_t n = mag_recv(fd, buf + got, 3 - got, 0);
        if (n <= 0)
            TEST_FAIL("request: recv %zd after %zu bytes", n, got);
        got += (size_t)n;
    }
    mag_deadline_pop(tok);
    ASSERT_TRUE(memcmp(buf, "ok\n", 3) == 0);
}

/* ---- slowloris ------------------------------------------------------------ */

static int slow_fds[NSLOW];
static _Atomic uint64_t slow_closed_ns[NSLOW];
static _Atomic int slow_open;

static int slow_reader(void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_store(&slow_closed_ns[i], closed_at(slow_fds[i], 30 * MAG_SEC));
    atomic_fetch_sub(&slow_open, 1);
    return 0;
}

static int dribbler(void *arg)
{
    (void)arg;
    while (atomic_load(&slow_open) > 0) {
        for (int i = 0; i < DRIBBLERS; i++)
            if (!atomic_load(&slow_closed_ns[i]))
                (void)mag_send(slow_fds[i], "a", 1, 0); /* a head that never ends */
        if (mag_sleep(100 * MAG_MS))
            return 0;
    }
    return 0;
}

static void slowloris(void)
{
    server_t s;
    start(&s, 300, 10000, 0, NULL);
    uint64_t t0 = mag_now();
    atomic_store(&slow_open, NSLOW);
    mag_task_t *readers[NSLOW];
    for (int i = 0; i < NSLOW; i++) {
        slow_fds[i] = connect_to(&s);
        atomic_store(&slow_closed_ns[i], 0);
        readers[i] = mag_spawn(slow_reader, (void *)(intptr_t)i);
        ASSERT_TRUE(readers[i] != NULL);
    }
    uint64_t connected = mag_now();
    mag_task_t *drib = mag_spawn(dribbler, NULL);
    /* A normal client is answered all along, on one keep-alive connection. */
    int normal = connect_to(&s);
    int served = 0;
    while (atomic_load(&slow_open) > 0 && mag_now() - t0 < 30 * MAG_SEC) {
        request(normal);
        served++;
        mag_sleep(20 * MAG_MS);
    }
    ASSERT_GT(served, 0);
    for (int i = 0; i < NSLOW; i++) {
        ASSERT_EQ(mag_join(readers[i], NULL), 0);
        uint64_t at = atomic_load(&slow_closed_ns[i]);
        if (!at)
            TEST_FAIL("slow client %d was not closed", i);
        /* Connected at most by `connected`: cut within the header timeout
         * and the slack after that, never before the header timeout. */
        ASSERT_LT(at, connected + 300 * MAG_MS + SLACK_NS);
        ASSERT_GE(at, t0 + 250 * MAG_MS);
    }
    ASSERT_EQ(mag_join(drib, NULL), 0);
    request(normal); /* still served afterwards */
    printf("slowloris: %d slow clients closed, %d normal requests answered meanwhile\n", NSLOW,
           served);
    mag_close(normal);
    for (int i = 0; i < NSLOW; i++)
        mag_close(slow_fds[i]);
    stop(&s);
}

/* ---- idle keep-alive ------------------------------------------------------ */

static void idle_keepalive(void)
{
    server_t s;
    start(&s, 10000, 300, 0, NULL);
    /* Active: a request every 100 ms for a second, well inside the idle
     * timeout each time, is never cut. */
    int active = connect_to(&s);
    for (int i = 0; i < 10; i++) {
        request(active);
        mag_sleep(100 * MAG_MS);
    }
    request(active);
    /* Then idle: closed after the idle timeout (not before it). */
    uint64_t t0 = mag_now();
    uint64_t at = closed_at(active, 30 * MAG_SEC);
    ASSERT_GT(at, 0);
    /* Not before the timeout (less the time this task took to see the
     * answer, which the server's clock does not wait for). */
    ASSERT_GE(at - t0, 150 * MAG_MS);
    ASSERT_LT(at - t0, 300 * MAG_MS + SLACK_NS);
    /* A connection that never sends is held to the first-byte (header)
     * timeout, here longer than the idle one: still open after 600 ms. */
    int silent = connect_to(&s);
    ASSERT_EQ(closed_at(silent, 600 * MAG_MS), 0);
    mag_close(silent);
    mag_close(active);
    stop(&s);
}

/* ---- a client that does not read ----------------------------------------- */

static void never_reads(void)
{
    server_t s;
    atomic_store(&sends_cut, 0);
    start(&s, 10000, 10000, 300, (void *)1);
    int fd = connect_to(&s);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    /* 200 pipelined requests for 256 KiB each, never read. */
    static char reqs[200 * 2];
    memset(reqs, '\n', sizeof reqs);
    ASSERT_EQ(mag_send_all(fd, reqs, sizeof reqs, 0), (ssize_t)sizeof reqs);
    uint64_t t0 = mag_now();
    while (atomic_load(&sends_cut) == 0 && mag_now() - t0 < 30 * MAG_SEC)
        mag_sleep(10 * MAG_MS);
    ASSERT_EQ(atomic_load(&sends_cut), 1);
    uint64_t took = atomic_load(&send_cut_ns) - t0;
    ASSERT_GE(took, 150 * MAG_MS); /* as above: the blocked send began about at t0 */
    ASSERT_LT(took, 300 * MAG_MS + SLACK_NS);
    /* The connection is gone (reset): reading finds its end, not 50 MB. */
    ASSERT_GT(closed_at(fd, 10 * MAG_SEC), 0);
    mag_close(fd);
    /* A client that reads is not cut: its sends each make progress. */
    fd = connect_to(&s);
    ASSERT_EQ(mag_send_all(fd, "\n\n", 2, 0), 2);
    static char answer[256 * 1024];
    size_t got = 0;
    while (got < sizeof answer) {
        ssize_t n = mag_recv(fd, answer + got, sizeof answer - got, 0);
        ASSERT_GT(n, 0);
        got += (size_t)n;
        if (got < 64 * 1024)
            mag_sleep(50 * MAG_MS); /* slowly at first, yet inside the bound */
    }
    ASSERT_EQ(atomic_load(&sends_cut), 1);
    mag_close(fd);
    stop(&s);
}

/* ---- mag_conn_phase outside a connection task ------------------------------ */

static void phase_errors(void)
{
    ASSERT_EQ(mag_conn_phase(MAG_CONN_IDLE), -EPERM);         /* an ordinary task */
    ASSERT_EQ(mag_conn_phase((mag_conn_phase_t)42), -EINVAL); /* unknown */
    server_t s;
    memset(&s, 0, sizeof s);
    s.lfd = mag_tcp_listen("127.0.0.1", 0, 16);
    mag_serve_opts_t bad = {.conn_stack_size = 1};
    ASSERT_EQ(mag_serve_ex(s.lfd, head_handler, NULL, &bad), -EINVAL);
    mag_close(s.lfd);
}

static void *thread_phase(void *arg)
{
    (void)arg;
    ASSERT_EQ(mag_conn_phase(MAG_CONN_ACTIVE), -EPERM); /* a plain thread */
    return NULL;
}

static int main_task(void *arg)
{
    (void)arg;
    phase_errors();
    idle_keepalive();
    never_reads();
    slowloris();
    return 0;
}

int main(void)
{
    /* Both ends of every slow connection live in this process. */
    struct rlimit rl;
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2 * NSLOW + 128) {
        rl.rlim_cur = rl.rlim_max < 2 * NSLOW + 128 ? rl.rlim_max : 2 * NSLOW + 128;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < 2 * NSLOW + 128)
            TEST_SKIP("RLIMIT_NOFILE %ld is too low", (long)rl.rlim_cur);
    }
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, thread_phase, NULL), 0);
    pthread_join(th, NULL);
    test_run(test_workers(2), main_task, NULL);
    return 0;
}
