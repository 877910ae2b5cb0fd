/* io_close_final: a task waiting in mag_recv (a socket), mag_accept (a
 * listener) or mag_poll on another worker returns promptly with -EBADF when
 * another task mag_closes the descriptor, and a new socket that reuses the
 * number never has its data taken by the old waiter; the same on one worker,
 * and with the shutdown fallback of kernels without cancel-by-descriptor. */
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/internal.h"
#include "test/test.h"

enum { RECV, ACCEPT, POLL, NKINDS };
static const char *const kind_names[NKINDS] = {"recv", "accept", "poll"};

typedef struct waiter {
    int fd;
    int kind;
    _Atomic(void *) worker; /* the worker it waits on */
    _Atomic int started;
    char buf[64];
} waiter_t;

static bool fallback; /* phase: the kernel-without-cancel-by-fd path */
static bool cross;    /* phase: the closer must be on another worker */

static int wait_task(void *arg)
{
    waiter_t *b = arg;
    atomic_store(&b->worker, (void *)mag__worker_current());
    atomic_store(&b->started, 1);
    switch (b->kind) {
    case RECV:
        return (int)mag_recv(b->fd, b->buf, sizeof b->buf, 0);
    case ACCEPT:
        return mag_accept(b->fd, NULL, NULL);
    default:
        return mag_poll(b->fd, POLLIN);
    }
}

/* What the waiter returns once its descriptor is closed under it. */
static void check_result(int kind, int st)
{
    if (!fallback) {
        ASSERT_EQ(st, -EBADF);
        return;
    }
    /* shutdown(2) wakes them with the socket's own answers; a receive
     * waiting for readiness (several workers) is woken by mag_close itself. */
    if (kind == RECV)
        ASSERT_TRUE(st == 0 || st == -EBADF);
    else if (kind == ACCEPT)
        ASSERT_TRUE(st == -EINVAL || st == -EBADF || st == -ECONNABORTED);
    else
        ASSERT_TRUE(st > 0 && (st & (POLLHUP | POLLIN)));
}

static void close_under_waiter(int kind)
{
    int fd, keep = -1; /* keep: the far end, open throughout */
    if (kind == ACCEPT) {
        fd = mag_tcp_listen("127.0.0.1", 0, 0);
        ASSERT_GE(fd, 0);
    } else {
        int sv[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        fd = sv[0];
        keep = sv[1];
    }
    waiter_t b = {.fd = fd, .kind = kind};
    mag_task_t *t = mag_spawn(wait_task, &b);
    ASSERT_TRUE(t != NULL);
    while (!atomic_load(&b.started))
        ASSERT_EQ(mag_sleep(MAG_MS), 0);
    ASSERT_EQ(mag_sleep(20 * MAG_MS), 0); /* let its request reach the ring */
    if (cross) {
        /* Yielding lets the idle worker steal us; give it many chances,
         * for up to 5 s (a worker awake elsewhere lets the yield go on
         * here, without a turn of the queue to steal from). */
        uint64_t from = mag_now(), until = from + 5 * MAG_SEC;
        while ((void *)mag__worker_current() == atomic_load(&b.worker) && mag_now() < until)
            ASSERT_EQ(mag_yield(), 0);
        if (mag_now() - from > 50 * MAG_MS)
            printf("moved off the waiter's worker after %.1f ms\n", (mag_now() - from) / 1e6);
        ASSERT_PTR_NE(mag__worker_current(), atomic_load(&b.worker));
    }

    uint64_t t0 = mag_now();
    ASSERT_EQ(mag_close(fd), 0);
    /* The lowest free number is the one just closed: a new pair gets it,
     * with data waiting, before the old waiter has even been joined. (In
     * the fallback, the kernel's accept woken by the shutdown holds a number
     * for a moment while it fails: try again then.) */
    int nv[2], spare[8][2], nspare = 0;
    for (;;) {
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, nv), 0);
        if (nv[0] == fd || nspare == 8)
            break;
        memcpy(spare[nspare++], nv, sizeof nv);
        ASSERT_EQ(mag_sleep(MAG_MS), 0);
    }
    for (int i = 0; i < nspare; i++) {
        close(spare[i][0]);
        close(spare[i][1]);
    }
    ASSERT_EQ(nv[0], fd);
    ASSERT_EQ(write(nv[1], "fresh", 5), 5);

    uint64_t token = mag_deadline_push(mag_now() + 5 * MAG_SEC);
    int st = 1;
    int rc = mag_join(t, &st);
    mag_deadline_pop(token);
    ASSERT_EQ(rc, 0); /* -ETIMEDOUT here: the waiter never woke */
    uint64_t took = mag_now() - t0;
    printf("%s%s%s: waiter returned %d after %.2f ms\n", kind_names[kind],
           cross ? " (other worker)" : "", fallback ? " (fallback)" : "", st, took / 1e6);
    check_result(kind, st);
    ASSERT_LT(took, 2 * MAG_SEC);

    /* The new socket's data is intact: nobody else read it. */
    char buf[16];
    ASSERT_EQ(recv(nv[0], buf, sizeof buf, MSG_DONTWAIT), 5);
    ASSERT_TRUE(memcmp(buf, "fresh", 5) == 0);
    ASSERT_EQ(mag_close(nv[0]), 0);
    ASSERT_EQ(mag_close(nv[1]), 0);
    if (keep >= 0)
        ASSERT_EQ(mag_close(keep), 0);
}

static _Atomic int spinning, stop_spinning;

/* Computes without suspending until told to stop (5 s at most). */
static int spinner(void *arg)
{
    (void)arg;
    atomic_store(&spinning, 1);
    uint64_t t0 = mag_now();
    while (!atomic_load(&stop_spinning) && mag_now() - t0 < 5 * MAG_SEC) {
    }
    return 0;
}

/* A close of a descriptor with no request on the busy worker's ring does
 * not wait for that worker's task to end. */
static void close_beside_busy_worker(void)
{
    atomic_store(&spinning, 0);
    atomic_store(&stop_spinning, 0);
    mag_task_t *busy = mag_spawn(spinner, NULL);
    ASSERT_TRUE(busy != NULL);
    while (!atomic_load(&spinning))
        mag_yield(); /* the spinner never yields: we are on the other worker */
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    char c = 'x';
    ASSERT_EQ(mag_write(p[1], &c, 1, -1), 1); /* a request, on this ring */
    ASSERT_EQ(mag_read(p[0], &c, 1, -1), 1);
    uint64_t t0 = mag_now();
    ASSERT_EQ(mag_close(p[0]), 0);
    ASSERT_EQ(mag_close(p[1]), 0);
    uint64_t took = mag_now() - t0;
    int still = atomic_load(&spinning) && !atomic_load(&stop_spinning);
    atomic_store(&stop_spinning, 1);
    ASSERT_EQ(mag_join(busy, NULL), 0);
    ASSERT_TRUE(still);
    if (took > 2 * MAG_SEC)
        TEST_FAIL("mag_close waited %.0f ms for a busy worker", (double)took / 1e6);
    printf("close beside a busy worker: %.3f ms\n", (double)took / 1e6);
}

static int main_task(void *arg)
{
    if (cross && !fallback)
        close_beside_busy_worker();
    if (!fallback) {
        /* A kernel before 5.19 takes the fallback path on its own. */
        int sv[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        /* As if a request had been made on it here: the cancel is tried. */
        mag__fd_rings_note(mag__worker_current(), sv[0]);
        if (mag__ring_cancel_fd(sv[0]) == -EINVAL) {
            printf("no IORING_ASYNC_CANCEL_FD in this kernel: the fallback is expected\n");
            fallback = true;
        }
        close(sv[0]);
        close(sv[1]);
    }
    for (int kind = 0; kind < NKINDS; kind++)
        close_under_waiter(kind);
    return 0;
}

static void run_phase(unsigned workers, bool no_cancel_fd)
{
    mag__ring_no_cancel_fd = no_cancel_fd;
    fallback = no_cancel_fd;
    cross = workers > 1;
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    int st = -1;
    ASSERT_EQ(mag_run(&cfg, main_task, NULL, &st), 0);
    ASSERT_EQ(st, 0);
}

int main(void)
{
    run_phase(2, false); /* the waiter on another worker */
    run_phase(1, false); /* the waiter on the closer's own ring */
    run_phase(2, true);  /* shutdown(2) where the kernel cannot cancel by fd */
    /* Outside a task: a plain close. */
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    ASSERT_EQ(mag_close(p[0]), 0);
    ASSERT_EQ(mag_close(p[0]), -EBADF);
    ASSERT_EQ(mag_close(p[1]), 0);
    ASSERT_EQ(mag_close(-1), -EBADF);
    return 0;
}
