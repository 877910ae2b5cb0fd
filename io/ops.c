/*
 * io/ops.c - the operations: one io_uring request each, described by a table
 * of kinds, and the wait that honours cancellation without ever returning
 * while the kernel may still touch the caller's memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "io/internal.h"
#include "io/serve.h" /* a connection task's receives (recv_ready) */
#include "runtime/ready.h"
#include "runtime/sched.h" /* mag_task.fn: is the caller a connection task? */

/* The kernel clamps read/write counts to this (MAX_RW_COUNT); so do we, so
 * that a size_t never truncates silently into the SQE's 32-bit length. */
#define IO_MAX_COUNT 0x7ffff000u

static inline unsigned clamp_len(size_t n)
{
    return n > IO_MAX_COUNT ? IO_MAX_COUNT : (unsigned)n;
}

static inline int64_t sys_result(ssize_t r)
{
    return r < 0 ? -(int64_t)errno : (int64_t)r;
}

/* ---- one prep and one blocking form per kind ---------------------------- */

static void prep_read(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_read(sqe, a->fd, a->buf, (unsigned)a->len, (uint64_t)a->off);
}
static int64_t sys_read(const mag__io_args_t *a)
{
    ssize_t r;
    do
        r = a->off < 0 ? read(a->fd, a->buf, a->len) : pread(a->fd, a->buf, a->len, a->off);
    while (r < 0 && errno == EINTR);
    return sys_result(r);
}

static void prep_write(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_write(sqe, a->fd, a->buf, (unsigned)a->len, (uint64_t)a->off);
}
static int64_t sys_write(const mag__io_args_t *a)
{
    ssize_t r;
    do
        r = a->off < 0 ? write(a->fd, a->buf, a->len) : pwrite(a->fd, a->buf, a->len, a->off);
    while (r < 0 && errno == EINTR);
    return sys_result(r);
}

static void prep_readv(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_readv(sqe, a->fd, a->buf, (unsigned)a->len, (uint64_t)a->off);
}
static int64_t sys_readv(const mag__io_args_t *a)
{
    ssize_t r;
    do
        r = a->off < 0 ? readv(a->fd, a->buf, (int)a->len)
                       : preadv(a->fd, a->buf, (int)a->len, a->off);
    while (r < 0 && errno == EINTR);
    return sys_result(r);
}

static void prep_writev(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_writev(sqe, a->fd, a->buf, (unsigned)a->len, (uint64_t)a->off);
}
static int64_t sys_writev(const mag__io_args_t *a)
{
    ssize_t r;
    do
        r = a->off < 0 ? writev(a->fd, a->buf, (int)a->len)
                       : pwritev(a->fd, a->buf, (int)a->len, a->off);
    while (r < 0 && errno == EINTR);
    return sys_result(r);
}

static void prep_recv(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_recv(sqe, a->fd, a->buf, (size_t)a->len, a->flags);
}
static int64_t sys_recv(const mag__io_args_t *a)
{
    ssize_t r;
    do
        r = recv(a->fd, a->buf, a->len, a->flags);
    while (r < 0 && errno == EINTR);
    return sys_result(r);
}

static void prep_send(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_send(sqe, a->fd, a->buf, (size_t)a->len, a->flags);
}
static int64_t sys_send(const mag__io_args_t *a)
{
    ssize_t r;
    do
        r = send(a->fd, a->buf, a->len, a->flags);
    while (r < 0 && errno == EINTR);
    return sys_result(r);
}

static void prep_recvmsg(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_recvmsg(sqe, a->fd, a->buf, (unsigned)a->flags);
}
static int64_t sys_recvmsg(const mag__io_args_t *a)
{
    ssize_t r;
    do
        r = recvmsg(a->fd, a->buf, a->flags);
    while (r < 0 && errno == EINTR);
    return sys_result(r);
}

static void prep_sendmsg(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_sendmsg(sqe, a->fd, a->buf, (unsigned)a->flags);
}
static int64_t sys_sendmsg(const mag__io_args_t *a)
{
    ssize_t r;
    do
        r = sendmsg(a->fd, a->buf, a->flags);
    while (r < 0 && errno == EINTR);
    return sys_result(r);
}

static void prep_accept(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_accept(sqe, a->fd, a->buf, a->aux, a->flags);
}
static int64_t sys_accept(const mag__io_args_t *a)
{
    int r;
    do
        r = accept4(a->fd, a->buf, a->aux, a->flags);
    while (r < 0 && errno == EINTR);
    return sys_result(r);
}

static void prep_connect(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_connect(sqe, a->fd, a->buf, (socklen_t)a->len);
}
static int64_t sys_connect(const mag__io_args_t *a)
{
    /* connect(2) interrupted by a signal carries on in the background;
     * finish it the way the man page says: poll, then SO_ERROR. */
    if (connect(a->fd, a->buf, (socklen_t)a->len) == 0)
        return 0;
    if (errno != EINTR)
        return -errno;
    struct pollfd p = {.fd = a->fd, .events = POLLOUT};
    while (poll(&p, 1, -1) < 0)
        if (errno != EINTR)
            return -errno;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

static void prep_open(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_openat(sqe, AT_FDCWD, a->buf, a->flags, (mode_t)a->len);
}
static int64_t sys_open(const mag__io_args_t *a)
{
    int r;
    do
        r = openat(AT_FDCWD, a->buf, a->flags, (mode_t)a->len);
    while (r < 0 && errno == EINTR);
    return sys_result(r);
}

static void prep_close(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_close(sqe, a->fd);
}
static int64_t sys_close(const mag__io_args_t *a)
{
    /* On Linux the descriptor is gone even when close(2) says EINTR. */
    if (close(a->fd) < 0 && errno != EINTR)
        return -errno;
    return 0;
}

static void prep_fsync(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_fsync(sqe, a->fd, 0);
}
static int64_t sys_fsync(const mag__io_args_t *a)
{
    int r;
    do
        r = fsync(a->fd);
    while (r < 0 && errno == EINTR);
    return sys_result(r);
}

static void prep_poll(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_poll_add(sqe, a->fd, (unsigned)(unsigned short)a->flags);
}
static int64_t sys_poll(const mag__io_args_t *a)
{
    struct pollfd p = {.fd = a->fd, .events = (short)a->flags};
    int r;
    do
        r = poll(&p, 1, -1);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    return (p.revents & POLLNVAL) ? -EBADF : p.revents;
}

const mag__io_kind_t mag__io_kinds[MAG__IO_NKINDS] = {
    [MAG__IO_READ] = {"read", prep_read, sys_read},
    [MAG__IO_WRITE] = {"write", prep_write, sys_write},
    [MAG__IO_READV] = {"readv", prep_readv, sys_readv},
    [MAG__IO_WRITEV] = {"writev", prep_writev, sys_writev},
    [MAG__IO_RECV] = {"recv", prep_recv, sys_recv},
    [MAG__IO_SEND] = {"send", prep_send, sys_send},
    [MAG__IO_RECVMSG] = {"recvmsg", prep_recvmsg, sys_recvmsg},
    [MAG__IO_SENDMSG] = {"sendmsg", prep_sendmsg, sys_sendmsg},
    [MAG__IO_ACCEPT] = {"accept", prep_accept, sys_accept},
    [MAG__IO_CONNECT] = {"connect", prep_connect, sys_connect},
    [MAG__IO_OPEN] = {"open", prep_open, sys_open},
    [MAG__IO_CLOSE] = {"close", prep_close, sys_close},
    [MAG__IO_FSYNC] = {"fsync", prep_fsync, sys_fsync},
    [MAG__IO_POLL] = {"poll", prep_poll, sys_poll},
};

/* ---- the wait ------------------------------------------------------------ */

void mag__io_complete(mag__op_t *op, int res, uint32_t cqe_flags)
{
    mag__io_t *io = (mag__io_t *)op;
    /* Waker's rule: take the task first; after the release store below the
     * waiter may return and its stack frame (io) is gone. */
    mag_task_t *task = io->task;
    io->res = res;
    io->cqe_flags = cqe_flags;
    atomic_store_explicit(&io->done, 1, memory_order_release); /* pairs with mag__io_wait */
    mag__wake(task);
}

int64_t mag__io_wait(mag__io_t *io)
{
    int interrupted = 0;
    mag__cancel_t cancel;
    /* acquire: pairs with the release store in mag__io_complete. Once a
     * cancel is sent, its own completion is awaited too: its record lives
     * in this frame. */
    while (!atomic_load_explicit(&io->done, memory_order_acquire) ||
           (interrupted && !mag__cancel_done(&cancel))) {
        if (!interrupted && (interrupted = mag__suspend_check()) != 0) {
            /* Cancelled or past the deadline: ask the ring to cancel, then
             * keep waiting, uninterruptibly, for the request's own CQE. */
            mag__op_cancel(&io->op, &cancel);
            continue;
        }
        mag__park();
    }
    mag__suspend_end();
    /* A request that completed before the cancel reached it keeps its real
     * result (bytes received, a descriptor accepted): returning
     * -ECANCELED then would lose them. */
    if (interrupted && (io->res == -ECANCELED || io->res == -EINTR))
        return interrupted;
    /* Cancelled, yet not by this task: mag_close cancelled every request on
     * the descriptor (see io.h). */
    if (!interrupted && io->res == -ECANCELED)
        return -EBADF;
    return io->res;
}

int64_t mag__io_run(int kind, const mag__io_args_t *a)
{
    return mag__io_run_kind(&mag__io_kinds[kind], kind, a);
}

/* Whether a short receive on conn's socket means that its queue is empty:
 * kernel TCP as it is, without an upper layer that stops at its own
 * boundaries and keeps the rest (kernel TLS stops at a record of another
 * type), and with a low-water mark of one byte (a larger one would make the
 * wait hold out for it, where a receive would return what is there).
 * Asked of the socket once, at the connection's first short receive
 * (getsockopt never waits); an upper layer or a mark set on the socket
 * later than that is not seen. */
static bool skip_allowed(mag__conn_t *conn)
{
    if (!conn->skip_checked) {
        conn->skip_checked = true;
        char ulp[16] = "";
        socklen_t ulen = sizeof ulp;
        int lowat = 0;
        socklen_t llen = sizeof lowat;
        bool no_ulp = getsockopt(conn->fd, IPPROTO_TCP, TCP_ULP, ulp, &ulen) == 0
                          ? ulp[0] == '\0'
                          : errno == ENOPROTOOPT; /* a kernel without upper layers */
        conn->skip_allowed =
            no_ulp && getsockopt(conn->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, &llen) == 0 &&
            lowat <= 1;
    }
    return conn->skip_allowed;
}

/* A receive by readiness (runtime/ready.h), recv(2) or recvmsg(2) (which
 * mag_recvfrom uses too): the socket first, without waiting; when it is
 * empty, a wait for readiness and again. Each call is guarded against a
 * mag_close of the number since the receive began, which would otherwise
 * let a receive woken for the old socket read the next one given that
 * number. -ENOSYS: not served this way (not a socket, a number past the
 * table, or another task waits on it), the ring's.
 *
 * A mag_serve connection's task on its own descriptor (own) says so to the
 * wait, whose registration then stands from one wait to the next. On a TCP
 * connection it also skips the try that would find the socket empty: a
 * plain receive that returned less than it asked for took everything
 * there was (TCP copies until its queue is empty), so the next one waits
 * for an event first, compared with the count read before that receive:
 * data that came after it raised one. Not once an event said the peer
 * ended or reset the stream, or sent urgent data (MAG__READY_GONE): the
 * receive that took the last bytes may have taken the end too, which no
 * event will repeat, and one stops short at the urgent mark with the rest
 * queued. Nor on a socket with an upper layer or a low-water mark
 * (skip_allowed). This saves a recv(2) per request in a request-reply
 * protocol. */
static int64_t recv_ready(mag_runtime_t *rt, const mag__io_args_t *a, mag__conn_t *conn, int kind)
{
    /* MSG_WAITALL waits for the whole length, which MSG_DONTWAIT would cut
     * short: the ring's. */
    if (a->fd < 0 || (unsigned)a->fd >= rt->ready_nslots || (a->flags & MSG_WAITALL))
        return -ENOSYS;
    bool own = conn && conn->fd == a->fd;
    /* Only plain receives: a peek leaves the data, MSG_DONTWAIT must not
     * wait; any other receive forgets the state (below). */
    bool skips = own && conn->tcp && a->flags == 0 && kind == MAG__IO_RECV;
    if (own && !skips)
        conn->drained = false;
    bool drained = skips && conn->drained;
    uint32_t gen = mag__ready_gen(rt, a->fd);
    uint32_t seen = drained ? conn->drained_events : 0;
    int timed = 0; /* a connection's wait word, from the first wait to the end */
    int64_t res;
    for (;;) {
        if (!drained) {
            seen = mag__ready_events(rt, a->fd);
            if (!mag__ready_enter(rt, a->fd, gen)) {
                res = -EBADF; /* closed by mag_close meanwhile */
                break;
            }
            ssize_t r = kind == MAG__IO_RECV
                            ? recv(a->fd, a->buf, a->len, a->flags | MSG_DONTWAIT)
                            : recvmsg(a->fd, a->buf, a->flags | MSG_DONTWAIT);
            int e = errno;
            mag__ready_leave(rt, a->fd);
            if (r >= 0) {
                res = r;
                break;
            }
            if (e == EINTR)
                continue;
            if (e == ENOTSOCK) {
                res = -ENOSYS; /* a pipe, say: the ring's */
                break;
            }
            if (e != EAGAIN || (a->flags & MSG_DONTWAIT)) {
                res = -e;
                break;
            }
        }
        drained = false;
        if (!timed && conn)
            timed = mag__serve_wait_begin(conn, kind, a);
        /* -ENOSYS: the ring's after all, which times its own wait. */
        int rc = mag__ready_wait(a->fd, gen, seen, own ? &conn->kept : NULL);
        if (rc) {
            res = rc;
            break;
        }
    }
    if (skips) {
        conn->drained = res > 0 && (uint64_t)res < a->len && !(seen & MAG__READY_GONE) &&
                        skip_allowed(conn);
        conn->drained_events = seen;
    }
    if (timed) /* a result of no bytes (-ENOSYS too) marks no input */
        mag__serve_wait_end(conn, timed, res);
    return res;
}

int64_t mag__io_run_kind(const mag__io_kind_t *k, int kind, const mag__io_args_t *a)
{
    mag_task_t *self = mag__task_current();
    if (!self)
        return k->sys(a);
    if (mag__ready_on(self->rt)) {
        if (kind == MAG__IO_RECV || kind == MAG__IO_RECVMSG) {
            mag__conn_t *c = MAG_UNLIKELY(self->fn == mag__serve_conn_main) ? self->arg : NULL;
            int64_t r = recv_ready(self->rt, a, c, kind);
            if (r != -ENOSYS)
                return r;
        } else if (kind == MAG__IO_SEND || kind == MAG__IO_SENDMSG) {
            /* At once while the socket has room (a short send is a send's
             * right); the ring only to wait for room. */
            mag__io_args_t now = *a;
            now.flags |= MSG_DONTWAIT;
            int64_t r = k->sys(&now);
            if (r != -ENOTSOCK && (r != -EAGAIN || (a->flags & MSG_DONTWAIT)))
                return r;
        }
    }
    int rc = mag__suspend_begin(MAG__WAIT_IO, k);
    if (rc)
        return rc;
    /* A connection task of mag_serve has its waits on its connection timed
     * (serve_conn.c); for every other task this is one test. */
    mag__conn_t *conn = MAG_UNLIKELY(self->fn == mag__serve_conn_main) ? self->arg : NULL;
    int timed = conn && kind >= 0 ? mag__serve_wait_begin(conn, kind, a) : 0;
    mag__io_t io = {.op = {.complete = mag__io_complete}, .task = self};
    struct io_uring_sqe *sqe = mag__sqe(&io.op);
    k->prep(sqe, a);
    io_uring_sqe_set_data(sqe, &io.op);
    /* Noted before the commit: once committed, a rescuer may submit it, and
     * a mag_close must then know this ring holds a request on fd. */
    if (a->fd >= 0) /* for a mag_close of it (the descriptor of most kinds) */
        mag__fd_rings_note(io.op.worker, a->fd);
    mag__sqe_commit(&io.op);
    /* No stale cancel can reach this record: mag__io_wait waits for the
     * completion of every cancel it sends (see mag__cancel_t). */
    int64_t res = mag__io_wait(&io);
    if (timed)
        mag__serve_wait_end(conn, timed, res);
    return res;
}

/* ---- the public operations ---------------------------------------------- */

/* -1 (the current position) and offsets from 0 are all there are: a more
 * negative one is a mistake in the caller's arithmetic, as pread says. */
static inline bool bad_off(off_t off)
{
    return off < -1;
}

ssize_t mag_read(int fd, void *buf, size_t n, off_t off)
{
    if (bad_off(off))
        return -EINVAL;
    mag__io_args_t a = {.fd = fd, .buf = buf, .len = clamp_len(n), .off = (int64_t)off};
    return (ssize_t)mag__io_run(MAG__IO_READ, &a);
}

ssize_t mag_write(int fd, const void *buf, size_t n, off_t off)
{
    if (bad_off(off))
        return -EINVAL;
    mag__io_args_t a = {.fd = fd, .buf = (void *)buf, .len = clamp_len(n), .off = (int64_t)off};
    return (ssize_t)mag__io_run(MAG__IO_WRITE, &a);
}

ssize_t mag_readv(int fd, const struct iovec *iov, int cnt, off_t off)
{
    if (cnt < 0 || cnt > IOV_MAX || bad_off(off))
        return -EINVAL;
    mag__io_args_t a = {.fd = fd, .buf = (void *)iov, .len = (uint64_t)cnt, .off = (int64_t)off};
    return (ssize_t)mag__io_run(MAG__IO_READV, &a);
}

ssize_t mag_writev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    if (cnt < 0 || cnt > IOV_MAX || bad_off(off))
        return -EINVAL;
    mag__io_args_t a = {.fd = fd, .buf = (void *)iov, .len = (uint64_t)cnt, .off = (int64_t)off};
    return (ssize_t)mag__io_run(MAG__IO_WRITEV, &a);
}

ssize_t mag_recv(int fd, void *buf, size_t n, int flags)
{
    mag__io_args_t a = {.fd = fd, .flags = flags, .buf = buf, .len = clamp_len(n)};
    return (ssize_t)mag__io_run(MAG__IO_RECV, &a);
}

ssize_t mag_send(int fd, const void *buf, size_t n, int flags)
{
    mag__io_args_t a = {
        .fd = fd, .flags = flags | MSG_NOSIGNAL, .buf = (void *)buf, .len = clamp_len(n)};
    return (ssize_t)mag__io_run(MAG__IO_SEND, &a);
}

ssize_t mag_send_all(int fd, const void *buf, size_t n, int flags)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
    int rc = mag__io_send_all(fd, &iov, 1, flags, false);
    return rc ? rc : (ssize_t)n;
}

/* ---- whole transfers, for the layers above ------------------------------ */

int mag__io_send_all(int fd, struct iovec *iov, int cnt, int flags, bool blocking)
{
    size_t sent = 0; /* of iov[0], by the last call */
    for (;;) {
        while (cnt > 0 && sent >= iov->iov_len) {
            sent -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt == 0)
            return 0;
        iov->iov_base = (char *)iov->iov_base + sent;
        iov->iov_len -= sent;
        /* One buffer goes as a plain send, the cheaper request. */
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        mag__io_args_t a = {.fd = fd, .flags = flags | MSG_NOSIGNAL, .buf = &msg};
        int kind = MAG__IO_SENDMSG;
        if (cnt == 1) {
            kind = MAG__IO_SEND;
            a.buf = iov->iov_base;
            a.len = clamp_len(iov->iov_len);
        }
        int64_t r = blocking ? mag__io_kinds[kind].sys(&a) : mag__io_run(kind, &a);
        if (r < 0)
            return (int)r;
        sent = (size_t)r;
    }
}

ssize_t mag__io_recv_min(int fd, void *buf, size_t min, size_t cap, bool blocking)
{
    size_t have = 0;
    while (have < min) {
        mag__io_args_t a = {.fd = fd, .buf = (char *)buf + have, .len = clamp_len(cap - have)};
        int64_t r = blocking ? mag__io_kinds[MAG__IO_RECV].sys(&a) : mag__io_run(MAG__IO_RECV, &a);
        if (r < 0)
            return (ssize_t)r;
        if (r == 0)
            return -EPIPE; /* the peer closed its end first */
        have += (size_t)r;
    }
    return (ssize_t)have;
}

ssize_t mag_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *alen)
{
    struct iovec iov = {.iov_base = buf, .iov_len = clamp_len(n)};
    struct msghdr msg = {
        .msg_name = alen ? addr : NULL,
        .msg_namelen = alen ? *alen : 0,
        .msg_iov = &iov,
        .msg_iovlen = 1,
    };
    mag__io_args_t a = {.fd = fd, .flags = flags, .buf = &msg};
    ssize_t r = (ssize_t)mag__io_run(MAG__IO_RECVMSG, &a);
    if (r >= 0 && alen)
        *alen = msg.msg_namelen;
    return r;
}

ssize_t mag_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
                   socklen_t alen)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = clamp_len(n)};
    struct msghdr msg = {
        .msg_name = (void *)addr,
        .msg_namelen = addr ? alen : 0,
        .msg_iov = &iov,
        .msg_iovlen = 1,
    };
    mag__io_args_t a = {.fd = fd, .flags = flags | MSG_NOSIGNAL, .buf = &msg};
    return (ssize_t)mag__io_run(MAG__IO_SENDMSG, &a);
}

int mag_accept(int lfd, struct sockaddr *addr, socklen_t *alen)
{
    mag__io_args_t a = {
        .fd = lfd, .flags = SOCK_CLOEXEC, .buf = alen ? addr : NULL, .aux = addr ? alen : NULL};
    return (int)mag__io_run(MAG__IO_ACCEPT, &a);
}

int mag_connect(int fd, const struct sockaddr *addr, socklen_t alen)
{
    mag__io_args_t a = {.fd = fd, .buf = (void *)addr, .len = alen};
    return (int)mag__io_run(MAG__IO_CONNECT, &a);
}

int mag_open(const char *path, int flags, mode_t mode)
{
    if (!path) /* the kernel's answer, without handing libc a NULL */
        return -EFAULT;
    mag__io_args_t a = {.flags = flags, .buf = (void *)path, .len = mode};
    return (int)mag__io_run(MAG__IO_OPEN, &a);
}

/* IORING_OP_CLOSE, waited for uninterruptibly: once submitted, the
 * descriptor is released whatever the result, so the task's cancellation
 * must neither cut the wait short nor lead to a second close. */
static int close_through_ring(int fd)
{
    mag__io_args_t a = {.fd = fd};
    mag__io_t io = {.op = {.complete = mag__io_complete}, .task = mag__task_current()};
    struct io_uring_sqe *sqe = mag__sqe(&io.op);
    prep_close(sqe, &a);
    io_uring_sqe_set_data(sqe, &io.op);
    mag__sqe_commit(&io.op);
    /* acquire: pairs with the release store in mag__io_complete. */
    while (!atomic_load_explicit(&io.done, memory_order_acquire))
        mag__park();
    /* Linux releases the descriptor even when close reports EINTR (from a
     * file's flush): it is closed, and must never be closed again. */
    return io.res == -EINTR ? 0 : io.res;
}

/* Where the kernel cannot cancel by descriptor (before 5.19): a socket shut
 * down wakes every recv, accept and poll waiting on it (they complete with
 * 0, -EINVAL or POLLHUP); other files have no such lever. */
static void wake_socket_waiters(int fd)
{
    int type;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
        (void)shutdown(fd, SHUT_RDWR); /* ENOTCONN for a listener is fine */
}

int mag_close(int fd)
{
    mag__io_args_t a = {.fd = fd};
    if (fd < 0)
        return -EBADF;
    if (!mag__task_current()) {
        mag__ready_close_all(fd); /* a task of some runtime may wait on it */
        return (int)sys_close(&a);
    }
    /* First nothing of magpie's may wait on the file any more, on any
     * worker; only then may the number be released for reuse. */
    mag__ready_close(mag__task_current()->rt, fd);
    if (mag__ring_cancel_fd(fd) == -EINVAL)
        wake_socket_waiters(fd);
    return close_through_ring(fd);
}

int mag_fsync(int fd)
{
    mag__io_args_t a = {.fd = fd};
    return (int)mag__io_run(MAG__IO_FSYNC, &a);
}

int mag_poll(int fd, short events)
{
    if (fd < 0)
        return -EBADF;
    mag__io_args_t a = {.fd = fd, .flags = (unsigned short)events};
    return (int)mag__io_run(MAG__IO_POLL, &a);
}
