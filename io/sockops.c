/*
 * io/sockops.c - the socket calls servers need beyond send and recv:
 * sendmsg and recvmsg with their control data, a scatter-gather send of
 * everything that never raises SIGPIPE, and shutdown.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "io/internal.h"

/* How many of the caller's iovecs mag_sendv_all copies at a time: its
 * scratch array is on the task's stack (1 KiB), and the caller's array is
 * never written. */
#define SENDV_WINDOW 64

ssize_t mag_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (!msg)
        return -EFAULT;
    mag__io_args_t a = {.fd = fd, .flags = flags | MSG_NOSIGNAL, .buf = (void *)msg};
    return (ssize_t)mag__io_run(MAG__IO_SENDMSG, &a);
}

ssize_t mag_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (!msg)
        return -EFAULT;
    /* Descriptors received in SCM_RIGHTS are close-on-exec, like every
     * descriptor magpie makes. */
    mag__io_args_t a = {.fd = fd, .flags = flags | MSG_CMSG_CLOEXEC, .buf = msg};
    return (ssize_t)mag__io_run(MAG__IO_RECVMSG, &a);
}

ssize_t mag_sendv_all(int fd, const struct iovec *iov, int cnt, int flags)
{
    if (cnt < 0 || cnt > IOV_MAX)
        return -EINVAL;
    if (cnt > 0 && !iov)
        return -EFAULT;
    size_t total = 0;
    for (int i = 0; i < cnt; i++) {
        if (iov[i].iov_len > (size_t)SSIZE_MAX - total)
            return -EINVAL; /* as writev(2): the sum must fit a ssize_t */
        total += iov[i].iov_len;
    }
    /* A window at a time: mag__io_send_all advances through its array, so
     * it gets a copy. Each window goes out whole before the next. */
    struct iovec window[SENDV_WINDOW];
    for (int first = 0; first < cnt; first += SENDV_WINDOW) {
        int n = cnt - first < SENDV_WINDOW ? cnt - first : SENDV_WINDOW;
        memcpy(window, iov + first, (size_t)n * sizeof *window);
        int rc = mag__io_send_all(fd, window, n, flags, false);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)total;
}

static void prep_shutdown(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_shutdown(sqe, a->fd, a->flags);
}
static int64_t sys_shutdown(const mag__io_args_t *a)
{
    return shutdown(a->fd, a->flags) < 0 ? -(int64_t)errno : 0;
}

/* shutdown(2) never blocks: without the opcode it runs on the worker. */
static const mag__io_optional_kind_t kind_shutdown = {
    {"shutdown", prep_shutdown, sys_shutdown}, IORING_OP_SHUTDOWN, false};

int mag_shutdown(int fd, int how)
{
    if (fd < 0)
        return -EBADF;
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
        return -EINVAL;
    mag__io_args_t a = {.fd = fd, .flags = how};
    return (int)mag__io_run_optional(&kind_shutdown, &a);
}
