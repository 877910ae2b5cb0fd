/* io_sockops: mag_sendv_all sends 300 pieces (one of 2 MiB, some empty) to
 * a slow reader over TCP byte-exact, in order, without touching the caller's
 * iovec array; mag_shutdown(SHUT_WR) then gives the reader end of input while
 * the other direction still works. With the peer gone, mag_sendv_all and
 * mag_sendmsg return -EPIPE and the process gets no SIGPIPE (left at its
 * default action, which would kill it). mag_sendmsg / mag_recvmsg pass a
 * pipe's descriptor in SCM_RIGHTS over a Unix socket (received
 * close-on-exec). A deadline interrupts a send to a peer that never reads.
 * Bad arguments give their errors. Tasks at 2 workers, with
 * shutdown also through its fallback, and a plain thread. */
#include "test/test.h"

#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "io/internal.h"

#define PIECES 300
#define BIG_PIECE 150
#define BIG_SIZE (2u << 20)

static inline uint8_t byte_at(uint64_t off)
{
    uint64_t x = off / 8 * 0x9e3779b97f4a7c15ull;
    return (uint8_t)((x >> 29) ^ (off & 7) ^ (x >> 47));
}

static size_t piece_size(int i)
{
    if (i == BIG_PIECE)
        return BIG_SIZE;
    if (i % 50 == 7)
        return 0;
    return (size_t)(i * 37 % 1500) + 1;
}

typedef struct transfer {
    int fd;
    uint64_t expect; /* bytes the reader must see before end of input */
} transfer_t;

/* Reads slowly: small receives, a pause every 128 KiB, so that the sender
 * meets a full socket buffer and short sends. Checks every byte, then end of
 * input, then answers on the same socket. */
static int slow_reader(void *arg)
{
    transfer_t *t = arg;
    char buf[4096];
    uint64_t got = 0, next_pause = 128u << 10;
    for (;;) {
        ssize_t n = mag_recv(t->fd, buf, 1000 + got % 3000, 0);
        ASSERT_GE(n, 0);
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if ((uint8_t)buf[i] != byte_at(got + (uint64_t)i))
                TEST_FAIL("byte %llu differs", (unsigned long long)(got + (uint64_t)i));
        got += (uint64_t)n;
        if (got >= next_pause) {
            ASSERT_EQ(mag_sleep(MAG_MS), 0);
            next_pause += 128u << 10;
        }
    }
    ASSERT_UEQ(got, t->expect);
    ASSERT_EQ(mag_send_all(t->fd, "ok", 2, 0), 2);
    return 0;
}

static int sendv_to_slow_reader(void *arg)
{
    (void)arg;
    int lfd = mag_tcp_listen("127.0.0.1", 0, 0);
    ASSERT_GE(lfd, 0);
    /* Small buffers, so that sends come back short. The receive buffer is
     * set on the listener: the accepted socket inherits it before the
     * handshake advertises a window. */
    int small = 8192;
    ASSERT_EQ(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    int port = mag_local_port(lfd);
    ASSERT_GT(port, 0);
    int out = mag_tcp_connect("127.0.0.1", (uint16_t)port);
    ASSERT_GE(out, 0);
    int in = mag_accept(lfd, NULL, NULL);
    ASSERT_GE(in, 0);
    ASSERT_EQ(setsockopt(out, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);

    struct iovec iov[PIECES], copy[PIECES];
    uint64_t total = 0;
    for (int i = 0; i < PIECES; i++) {
        size_t n = piece_size(i);
        uint8_t *p = malloc(n ? n : 1);
        ASSERT_TRUE(p != NULL);
        for (size_t j = 0; j < n; j++)
            p[j] = byte_at(total + j);
        iov[i] = (struct iovec){.iov_base = p, .iov_len = n};
        total += n;
    }
    memcpy(copy, iov, sizeof iov);

    transfer_t t = {.fd = in, .expect = total};
    mag_task_t *r = mag_spawn(slow_reader, &t);
    ASSERT_TRUE(r != NULL);
    ASSERT_EQ(mag_sendv_all(out, iov, PIECES, 0), (ssize_t)total);
    ASSERT_EQ(memcmp(copy, iov, sizeof iov), 0); /* the caller's array as it was */
    ASSERT_EQ(mag_shutdown(out, SHUT_WR), 0);
    char answer[4] = {0};
    ASSERT_EQ(mag_recv(out, answer, 2, MSG_WAITALL), 2);
    ASSERT_STR_EQ(answer, "ok");
    int st = -1;
    ASSERT_EQ(mag_join(r, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(mag_close(in), 0);
    ASSERT_EQ(mag_recv(out, answer, sizeof answer, 0), 0);

    for (int i = 0; i < PIECES; i++)
        free(iov[i].iov_base);
    ASSERT_EQ(mag_close(out), 0);
    ASSERT_EQ(mag_close(lfd), 0);
    return 0;
}

/* The peer's end is closed: -EPIPE, and no SIGPIPE (it would kill us). */
static int peer_gone(void *arg)
{
    (void)arg;
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_EQ(close(sv[1]), 0);
    static char big[256 << 10];
    struct iovec iov[3] = {{"head", 4}, {big, sizeof big}, {"tail", 4}};
    ASSERT_EQ(mag_sendv_all(sv[0], iov, 3, 0), -EPIPE);
    ASSERT_EQ(mag_sendv_all(sv[0], iov, 1, 0), -EPIPE);
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 1};
    ASSERT_EQ(mag_sendmsg(sv[0], &msg, 0), -EPIPE);
    ASSERT_EQ(mag_close(sv[0]), 0);
    return 0;
}

/* A peer that never reads: the deadline interrupts the send in flight. */
static int send_past_deadline(void *arg)
{
    (void)arg;
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    size_t n = 8u << 20; /* more than any socket buffer holds */
    char *big = calloc(1, n);
    ASSERT_TRUE(big != NULL);
    struct iovec iov[2] = {{"head", 4}, {big, n}};
    uint64_t token = mag_deadline_push(mag_now() + 50 * MAG_MS);
    ASSERT_NE(token, 0);
    ASSERT_EQ(mag_sendv_all(sv[0], iov, 2, 0), -ETIMEDOUT);
    mag_deadline_pop(token);
    free(big);
    ASSERT_EQ(mag_close(sv[0]), 0);
    ASSERT_EQ(mag_close(sv[1]), 0);
    return 0;
}

/* Passes a pipe's read end over a Unix socket. */
static int pass_descriptor(void *arg)
{
    (void)arg;
    int sv[2], pipefd[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_EQ(pipe2(pipefd, O_CLOEXEC), 0);

    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = "F", .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pipefd[0], sizeof(int));
    ASSERT_EQ(mag_sendmsg(sv[0], &msg, 0), 1);
    ASSERT_EQ(close(pipefd[0]), 0); /* the passed one is the only read end now */

    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } got_control;
    memset(&got_control, 0, sizeof got_control);
    char byte = 0;
    struct iovec riov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr rmsg = {.msg_iov = &riov,
                          .msg_iovlen = 1,
                          .msg_control = got_control.buf,
                          .msg_controllen = sizeof got_control.buf};
    ASSERT_EQ(mag_recvmsg(sv[1], &rmsg, 0), 1);
    ASSERT_EQ(byte, 'F');
    ASSERT_EQ(rmsg.msg_flags & MSG_CTRUNC, 0);
    struct cmsghdr *rc = CMSG_FIRSTHDR(&rmsg);
    ASSERT_TRUE(rc != NULL);
    ASSERT_EQ(rc->cmsg_level, SOL_SOCKET);
    ASSERT_EQ(rc->cmsg_type, SCM_RIGHTS);
    ASSERT_UEQ(rc->cmsg_len, CMSG_LEN(sizeof(int)));
    int passed = -1;
    memcpy(&passed, CMSG_DATA(rc), sizeof passed);
    ASSERT_GE(passed, 0);
    ASSERT_TRUE(fcntl(passed, F_GETFD) & FD_CLOEXEC);
    ASSERT_EQ(mag_write(pipefd[1], "ping", 4, -1), 4);
    char buf[8] = {0};
    ASSERT_EQ(mag_read(passed, buf, sizeof buf, -1), 4);
    ASSERT_STR_EQ(buf, "ping");

    ASSERT_EQ(mag_close(passed), 0);
    ASSERT_EQ(mag_close(pipefd[1]), 0);
    ASSERT_EQ(mag_close(sv[0]), 0);
    ASSERT_EQ(mag_close(sv[1]), 0);
    return 0;
}

/* shutdown's results, and the argument checks of the others. */
static int shutdown_and_errors(void *arg)
{
    (void)arg;
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_EQ(mag_send_all(sv[0], "last", 4, 0), 4);
    ASSERT_EQ(mag_shutdown(sv[0], SHUT_WR), 0);
    char buf[8] = {0};
    ASSERT_EQ(mag_recv(sv[1], buf, sizeof buf, MSG_WAITALL), 4); /* data first, then EOF */
    ASSERT_STR_EQ(buf, "last");
    ASSERT_EQ(mag_recv(sv[1], buf, sizeof buf, 0), 0);
    ASSERT_EQ(mag_send_all(sv[0], "x", 1, 0), -EPIPE); /* our side may no longer send */
    ASSERT_EQ(mag_send_all(sv[1], "back", 4, 0), 4);   /* the other direction still works */
    ASSERT_EQ(mag_recv(sv[0], buf, 4, MSG_WAITALL), 4);
    ASSERT_EQ(mag_shutdown(sv[1], SHUT_RDWR), 0);
    ASSERT_EQ(mag_recv(sv[0], buf, sizeof buf, 0), 0);

    ASSERT_EQ(mag_shutdown(-1, SHUT_WR), -EBADF);
    ASSERT_EQ(mag_shutdown(sv[0], 7), -EINVAL);
    ASSERT_EQ(mag_shutdown(sv[0], -1), -EINVAL);
    int pipefd[2];
    ASSERT_EQ(pipe2(pipefd, O_CLOEXEC), 0);
    ASSERT_EQ(mag_shutdown(pipefd[0], SHUT_RD), -ENOTSOCK);
    int lonely = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(lonely, 0);
    ASSERT_EQ(mag_shutdown(lonely, SHUT_WR), -ENOTCONN);

    struct iovec iov = {"a", 1};
    ASSERT_EQ(mag_sendv_all(sv[1], NULL, 1, 0), -EFAULT);
    ASSERT_EQ(mag_sendv_all(sv[1], &iov, -1, 0), -EINVAL);
    ASSERT_EQ(mag_sendv_all(sv[1], &iov, IOV_MAX + 1, 0), -EINVAL);
    ASSERT_EQ(mag_sendv_all(sv[1], NULL, 0, 0), 0);
    struct iovec huge[2] = {{"a", SSIZE_MAX}, {"b", 2}};
    ASSERT_EQ(mag_sendv_all(sv[1], huge, 2, 0), -EINVAL);
    ASSERT_EQ(mag_sendv_all(pipefd[1], &iov, 1, 0), -ENOTSOCK);
    ASSERT_EQ(mag_sendmsg(sv[1], NULL, 0), -EFAULT);
    ASSERT_EQ(mag_recvmsg(sv[1], NULL, 0), -EFAULT);

    close(lonely);
    close(pipefd[0]);
    close(pipefd[1]);
    ASSERT_EQ(mag_close(sv[0]), 0);
    ASSERT_EQ(mag_close(sv[1]), 0);
    return 0;
}

static int run_in_tasks(void *arg)
{
    (void)arg;
    mag_fn steps[] = {sendv_to_slow_reader, send_past_deadline, peer_gone, pass_descriptor,
                      shutdown_and_errors};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        mag_task_t *t = mag_spawn(steps[i], NULL);
        ASSERT_TRUE(t != NULL);
        int st = -1;
        ASSERT_EQ(mag_join(t, &st), 0);
        ASSERT_EQ(st, 0);
    }
    return 0;
}

static int fallback_shutdown(void *arg)
{
    (void)arg;
    return shutdown_and_errors(NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would end the test */

    /* A plain thread: the blocking system calls. */
    ASSERT_EQ(peer_gone(NULL), 0);
    ASSERT_EQ(pass_descriptor(NULL), 0);
    ASSERT_EQ(shutdown_and_errors(NULL), 0);

    test_run(2, run_in_tasks, NULL);

    mag__io_optional_off = true; /* shutdown without its opcode */
    test_run(2, fallback_shutdown, NULL);
    mag__io_optional_off = false;

    printf("io_sockops: ok\n");
    return 0;
}
