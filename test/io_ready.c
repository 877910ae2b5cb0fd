/* io_ready: sockets at several workers wait for input on the shared
 * readiness (runtime/ready.h) and send at once while there is room. Checked
 * here, with the ring's way (ring_sockets) run beside it:
 *   - many connections' round trips at once, each byte where it belongs;
 *   - two tasks receiving on one socket (the second waits on the ring);
 *   - a byte written by a plain thread while the runtime parks, over and
 *     over: no wake-up is lost;
 *   - a receive cancelled, or past its deadline, leaves the socket to the
 *     next receive;
 *   - a large send into a slow reader: short sends, waits for room, every
 *     byte in order;
 *   - mag_recv on a pipe: -ENOTSOCK, as on one worker;
 *   - MSG_WAITALL: the whole length, not what is there;
 *   - mag_close from a plain thread wakes a waiting receive (-EBADF);
 *   - a receive woken for a socket that mag_close closes before it runs,
 *     the number then reused by a new socket: never the new socket's bytes;
 *   - datagrams through mag_recvfrom and mag_recvmsg, each whole and in
 *     order, the reader waiting now and then. */
#include "test/test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAIRS 32
#define TRIPS TEST_SCALE(300)
#define PARK_ROUNDS TEST_SCALE(400)
#define BIG (4u << 20)

static void socket_pair(int sv[2])
{
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* ---- round trips on many connections --------------------------------------- */

static ssize_t recv_exact(int fd, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = mag_recv(fd, buf + got, len - got, 0);
        if (n <= 0)
            return n;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int echo_end(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[512];
    ssize_t n;
    while ((n = mag_recv(fd, buf, sizeof buf, 0)) > 0)
        ASSERT_EQ(mag_send_all(fd, buf, (size_t)n, 0), n);
    ASSERT_EQ(n, 0);
    return 0;
}

/* Messages whose bytes name the pair and the trip: any byte delivered to
 * another connection, or out of order, shows. */
static int client_end(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char out[300], in[300];
    for (int trip = 0; trip < TRIPS; trip++) {
        size_t len = 1 + (size_t)((fd * 7 + trip * 13) % (int)sizeof out);
        for (size_t i = 0; i < len; i++)
            out[i] = (char)(fd * 31 + trip + (int)i);
        ASSERT_EQ(mag_send_all(fd, out, len, 0), (ssize_t)len);
        ASSERT_EQ(recv_exact(fd, in, len), (ssize_t)len);
        ASSERT_EQ(memcmp(in, out, len), 0);
    }
    return 0;
}

static int many_trips(void *arg)
{
    int sv[PAIRS][2];
    mag_task_t *t[2 * PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        socket_pair(sv[i]);
        t[2 * i] = mag_spawn(echo_end, (void *)(intptr_t)sv[i][0]);
        t[2 * i + 1] = mag_spawn(client_end, (void *)(intptr_t)sv[i][1]);
        ASSERT_TRUE(t[2 * i] && t[2 * i + 1]);
    }
    for (int i = 0; i < PAIRS; i++) {
        ASSERT_EQ(mag_join(t[2 * i + 1], NULL), 0);
        ASSERT_EQ(mag_shutdown(sv[i][1], SHUT_WR), 0);
        ASSERT_EQ(mag_join(t[2 * i], NULL), 0);
        mag_close(sv[i][0]);
        mag_close(sv[i][1]);
    }
    return 0;
}

/* ---- two receivers on one socket ------------------------------------------- */

static _Atomic size_t shared_got;

static int shared_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[64];
    ssize_t n;
    while ((n = mag_recv(fd, buf, sizeof buf, 0)) > 0)
        atomic_fetch_add(&shared_got, (size_t)n);
    ASSERT_EQ(n, 0);
    return 0;
}

static int two_readers(void *arg)
{
    int sv[2];
    socket_pair(sv);
    atomic_store(&shared_got, 0);
    mag_task_t *a = mag_spawn(shared_reader, (void *)(intptr_t)sv[0]);
    mag_task_t *b = mag_spawn(shared_reader, (void *)(intptr_t)sv[0]);
    ASSERT_TRUE(a && b);
    ASSERT_EQ(mag_sleep(5 * MAG_MS), 0); /* both waiting */
    char chunk[100];
    memset(chunk, 'q', sizeof chunk);
    for (int i = 0; i < 200; i++) {
        ASSERT_EQ(mag_send_all(sv[1], chunk, sizeof chunk, 0), (ssize_t)sizeof chunk);
        if (i % 16 == 0)
            ASSERT_EQ(mag_sleep(MAG_MS / 4), 0);
    }
    ASSERT_EQ(mag_shutdown(sv[1], SHUT_WR), 0); /* both see the end */
    ASSERT_EQ(mag_join(a, NULL), 0);
    ASSERT_EQ(mag_join(b, NULL), 0);
    ASSERT_UEQ(atomic_load(&shared_got), 200 * sizeof chunk);
    mag_close(sv[0]);
    mag_close(sv[1]);
    return 0;
}

/* ---- a plain thread's byte while the runtime parks ------------------------- */

static int park_fds[2];

static void *byte_writer(void *arg)
{
    (void)arg;
    unsigned seed = 7;
    for (int i = 0; i < PARK_ROUNDS; i++) {
        /* 0-200 µs: sometimes before the reader waits, mostly after every
         * worker parked. */
        struct timespec ts = {0, (long)(rand_r(&seed) % 200) * 1000};
        nanosleep(&ts, NULL);
        char c = (char)i;
        if (write(park_fds[1], &c, 1) != 1)
            abort();
        /* The reader's answer, before the next byte. */
        if (read(park_fds[1], &c, 1) != 1 || c != (char)i)
            abort();
    }
    return NULL;
}

static int parked_wakes(void *arg)
{
    socket_pair(park_fds);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, byte_writer, NULL), 0);
    for (int i = 0; i < PARK_ROUNDS; i++) {
        char c;
        /* A lost wake-up would hang: the deadline turns it into a failure. */
        uint64_t tok = mag_deadline_push(mag_now() + 20 * MAG_SEC);
        ASSERT_EQ(mag_recv(park_fds[0], &c, 1, 0), 1);
        mag_deadline_pop(tok);
        ASSERT_EQ(c, (char)i);
        ASSERT_EQ(mag_send(park_fds[0], &c, 1, 0), 1);
    }
    ASSERT_EQ(pthread_join(th, NULL), 0);
    mag_close(park_fds[0]);
    mag_close(park_fds[1]);
    return 0;
}

/* ---- cancel and deadline leave the socket usable ----------------------------- */

static int blocked_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    return (int)mag_recv(fd, &c, 1, 0);
}

static int give_up_then_read(void *arg)
{
    int sv[2];
    socket_pair(sv);
    mag_task_t *t = mag_spawn(blocked_reader, (void *)(intptr_t)sv[0]);
    ASSERT_TRUE(t != NULL);
    ASSERT_EQ(mag_sleep(5 * MAG_MS), 0);
    mag_cancel(t);
    int st = 0;
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    char c = 0;
    uint64_t tok = mag_deadline_push(mag_now() + 5 * MAG_MS);
    ASSERT_EQ(mag_recv(sv[0], &c, 1, 0), -ETIMEDOUT);
    mag_deadline_pop(tok);
    /* The socket is free for the next receive, on any worker. */
    t = mag_spawn(blocked_reader, (void *)(intptr_t)sv[0]);
    ASSERT_TRUE(t != NULL);
    ASSERT_EQ(mag_sleep(2 * MAG_MS), 0);
    ASSERT_EQ(mag_send(sv[1], "k", 1, 0), 1);
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, 1);
    mag_close(sv[0]);
    mag_close(sv[1]);
    return 0;
}

/* ---- a large send into a slow reader ----------------------------------------- */

static int slow_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static char buf[8192];
    size_t got = 0;
    while (got < BIG) {
        ssize_t n = mag_recv(fd, buf, sizeof buf, 0);
        ASSERT_GT(n, 0);
        for (ssize_t i = 0; i < n; i++)
            ASSERT_EQ((unsigned char)buf[i], (unsigned char)((got + (size_t)i) * 131 >> 8));
        got += (size_t)n;
        if ((got / sizeof buf) % 64 == 0)
            ASSERT_EQ(mag_sleep(MAG_MS / 2), 0);
    }
    return 0;
}

static int big_send(void *arg)
{
    int sv[2];
    socket_pair(sv);
    char *data = malloc(BIG);
    ASSERT_TRUE(data != NULL);
    for (size_t i = 0; i < BIG; i++)
        data[i] = (char)(i * 131 >> 8);
    mag_task_t *r = mag_spawn(slow_reader, (void *)(intptr_t)sv[0]);
    ASSERT_TRUE(r != NULL);
    ASSERT_EQ(mag_send_all(sv[1], data, BIG, 0), (ssize_t)BIG);
    ASSERT_EQ(mag_join(r, NULL), 0);
    free(data);
    mag_close(sv[0]);
    mag_close(sv[1]);
    return 0;
}

/* ---- not a socket ------------------------------------------------------------ */

static int pipe_recv(void *arg)
{
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    char c;
    ASSERT_EQ(mag_recv(p[0], &c, 1, 0), -ENOTSOCK);
    close(p[0]);
    close(p[1]);
    return 0;
}

static int waitall_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    ASSERT_EQ(mag_send(fd, "0123456789", 10, 0), 10);
    ASSERT_EQ(mag_sleep(5 * MAG_MS), 0);
    char rest[90];
    memset(rest, 'w', sizeof rest);
    ASSERT_EQ(mag_send_all(fd, rest, sizeof rest, 0), (ssize_t)sizeof rest);
    return 0;
}

static int wait_all(void *arg)
{
    int sv[2];
    socket_pair(sv);
    mag_task_t *w = mag_spawn(waitall_writer, (void *)(intptr_t)sv[1]);
    ASSERT_TRUE(w != NULL);
    char buf[100];
    ASSERT_EQ(mag_recv(sv[0], buf, sizeof buf, MSG_WAITALL), (ssize_t)sizeof buf);
    ASSERT_EQ(memcmp(buf, "0123456789", 10), 0);
    ASSERT_EQ(buf[99], 'w');
    ASSERT_EQ(mag_join(w, NULL), 0);
    mag_close(sv[0]);
    mag_close(sv[1]);
    return 0;
}

/* ---- mag_close against waiting and woken receives ---------------------------- */

static int close_fds[2];
static bool readiness; /* this run's sockets wait on the shared readiness */

static void *plain_closer(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    mag_close(close_fds[0]); /* a plain thread: belongs to no runtime */
    return NULL;
}

static int closed_by_thread(void *arg)
{
    socket_pair(close_fds);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, plain_closer, NULL), 0);
    char c;
    /* The ring's way: the request keeps the file, and a plain close wakes
     * nothing; the deadline ends it. */
    uint64_t tok = mag_deadline_push(mag_now() + (readiness ? 20 * MAG_SEC : 100 * MAG_MS));
    int64_t n = mag_recv(close_fds[0], &c, 1, 0);
    mag_deadline_pop(tok);
    ASSERT_EQ(pthread_join(th, NULL), 0);
    ASSERT_EQ(n, readiness ? -EBADF : -ETIMEDOUT);
    close(close_fds[1]);
    return 0;
}

static _Atomic int reuse_go;
static char reuse_got[16];
static _Atomic int64_t reuse_n;

static int reuse_reader(void *arg)
{
    (void)arg;
    atomic_store(&reuse_n, mag_recv(close_fds[0], reuse_got, sizeof reuse_got, 0));
    return 0;
}

static void spin_ns(uint64_t ns)
{
    uint64_t until = mag_now() + ns;
    while (mag_now() < until)
        ;
}

/* Keeps the other workers busy, so that the woken reader waits in a queue. */
static int reuse_hog(void *arg)
{
    (void)arg;
    while (!atomic_load(&reuse_go))
        ;
    spin_ns(40 * MAG_MS);
    return 0;
}

static int reuse_closer(void *arg)
{
    (void)arg;
    atomic_store(&reuse_go, 1);
    ASSERT_EQ(write(close_fds[1], "OLD-CONN", 8), 8); /* wakes the reader */
    spin_ns(10 * MAG_MS);
    int old = close_fds[0];
    ASSERT_EQ(mag_close(old), 0);
    close(close_fds[1]);
    int nv[2];
    socket_pair(nv); /* most likely the old number again */
    ASSERT_EQ(write(nv[1], "NEW-CONN", 8), 8);
    ASSERT_EQ(mag_sleep(60 * MAG_MS), 0);
    mag_close(nv[0]);
    mag_close(nv[1]);
    return 0;
}

static int woken_then_closed(void *arg)
{
    (void)arg;
    socket_pair(close_fds);
    atomic_store(&reuse_go, 0);
    atomic_store(&reuse_n, -1000);
    mag_task_t *r = mag_spawn(reuse_reader, NULL);
    ASSERT_TRUE(r != NULL);
    ASSERT_EQ(mag_sleep(10 * MAG_MS), 0); /* waiting */
    mag_task_t *h = mag_spawn(reuse_hog, NULL);
    mag_task_t *c = mag_spawn(reuse_closer, NULL);
    ASSERT_TRUE(h && c);
    ASSERT_EQ(mag_join(c, NULL), 0);
    ASSERT_EQ(mag_join(h, NULL), 0);
    ASSERT_EQ(mag_join(r, NULL), 0);
    int64_t n = atomic_load(&reuse_n);
    /* Its own socket's bytes if it ran before the close, else -EBADF. */
    if (n != -EBADF) {
        ASSERT_EQ(n, 8);
        ASSERT_EQ(memcmp(reuse_got, "OLD-CONN", 8), 0);
    }
    return 0;
}

/* ---- datagrams: mag_recvfrom and mag_recvmsg wait too ------------------------ */

#define DATAGRAMS TEST_SCALE(200)
static int dgram_fds[2];

static void *dgram_writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < DATAGRAMS; i++) {
        if (i % 8 == 0) { /* now and then the reader waits first */
            struct timespec ts = {0, 200 * 1000};
            nanosleep(&ts, NULL);
        }
        char msg[64];
        int len = snprintf(msg, sizeof msg, "datagram %d", i);
        ASSERT_EQ(send(dgram_fds[1], msg, (size_t)len, 0), len);
    }
    return NULL;
}

/* Every datagram whole, in order, through both calls in turn. */
static int datagrams(void *arg)
{
    (void)arg;
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dgram_fds), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, dgram_writer, NULL), 0);
    for (int i = 0; i < DATAGRAMS; i++) {
        char buf[64], want[64];
        int len = snprintf(want, sizeof want, "datagram %d", i);
        ssize_t n;
        if (i % 2) {
            n = mag_recvfrom(dgram_fds[0], buf, sizeof buf, 0, NULL, NULL);
        } else {
            struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
            struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
            n = mag_recvmsg(dgram_fds[0], &msg, 0);
            ASSERT_EQ(msg.msg_flags & MSG_TRUNC, 0);
        }
        ASSERT_EQ(n, len);
        ASSERT_EQ(memcmp(buf, want, (size_t)len), 0);
    }
    pthread_join(th, NULL);
    mag_close(dgram_fds[0]);
    mag_close(dgram_fds[1]);
    return 0;
}

static void run_all(unsigned workers, bool ring_sockets)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    cfg.ring_sockets = ring_sockets;
    readiness = workers > 1 && !ring_sockets;
    printf("%u workers, %s\n", workers, readiness ? "readiness" : "the ring's sockets");
    test_run_cfg(&cfg, many_trips, NULL);
    test_run_cfg(&cfg, two_readers, NULL);
    test_run_cfg(&cfg, parked_wakes, NULL);
    test_run_cfg(&cfg, give_up_then_read, NULL);
    test_run_cfg(&cfg, big_send, NULL);
    test_run_cfg(&cfg, pipe_recv, NULL);
    test_run_cfg(&cfg, wait_all, NULL);
    test_run_cfg(&cfg, closed_by_thread, NULL);
    test_run_cfg(&cfg, woken_then_closed, NULL);
    test_run_cfg(&cfg, datagrams, NULL);
}

int main(void)
{
    unsigned n = test_workers(8);
    run_all(n, false);
    if (n != 2)
        run_all(2, false);
    run_all(n, true);
    run_all(1, false);
    return 0;
}
