/*
 * io/fs.c - file-system calls relative to a directory descriptor: openat,
 * statx, unlinkat, renameat, mkdirat. One optional kind each (probe.c): the
 * ring where the kernel has the opcode, the blocking pool where it does not.
 *
 * How the arguments travel in mag__io_args_t: fd is the directory, buf the
 * path, flags the call's flags, len the mode (openat, mkdirat) or the statx
 * mask; renameat puts the new directory in off and the new path in aux;
 * statx puts its output buffer in aux.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/internal.h"

static inline int64_t sys_result(long r)
{
    return r < 0 ? -(int64_t)errno : (int64_t)r;
}

static void prep_openat(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_openat(sqe, a->fd, a->buf, a->flags, (mode_t)a->len);
}
static int64_t sys_openat(const mag__io_args_t *a)
{
    int r;
    do
        r = openat(a->fd, a->buf, a->flags, (mode_t)a->len);
    while (r < 0 && errno == EINTR);
    return sys_result(r);
}

static void prep_statx(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_statx(sqe, a->fd, a->buf, a->flags, (unsigned)a->len, a->aux);
}
static int64_t sys_statx(const mag__io_args_t *a)
{
    return sys_result(statx(a->fd, a->buf, a->flags, (unsigned)a->len, a->aux));
}

static void prep_unlinkat(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_unlinkat(sqe, a->fd, a->buf, a->flags);
}
static int64_t sys_unlinkat(const mag__io_args_t *a)
{
    return sys_result(unlinkat(a->fd, a->buf, a->flags));
}

static void prep_renameat(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_renameat(sqe, a->fd, a->buf, (int)a->off, a->aux, (unsigned)a->flags);
}
static int64_t sys_renameat(const mag__io_args_t *a)
{
    return sys_result(renameat2(a->fd, a->buf, (int)a->off, a->aux, (unsigned)a->flags));
}

static void prep_mkdirat(struct io_uring_sqe *sqe, const mag__io_args_t *a)
{
    io_uring_prep_mkdirat(sqe, a->fd, a->buf, (mode_t)a->len);
}
static int64_t sys_mkdirat(const mag__io_args_t *a)
{
    return sys_result(mkdirat(a->fd, a->buf, (mode_t)a->len));
}

/* Every one of them may wait for a disk or a network file system. */
static const mag__io_optional_kind_t kind_openat = {
    {"openat", prep_openat, sys_openat}, IORING_OP_OPENAT, true};
static const mag__io_optional_kind_t kind_statx = {
    {"statx", prep_statx, sys_statx}, IORING_OP_STATX, true};
static const mag__io_optional_kind_t kind_unlinkat = {
    {"unlinkat", prep_unlinkat, sys_unlinkat}, IORING_OP_UNLINKAT, true};
static const mag__io_optional_kind_t kind_renameat = {
    {"renameat", prep_renameat, sys_renameat}, IORING_OP_RENAMEAT, true};
static const mag__io_optional_kind_t kind_mkdirat = {
    {"mkdirat", prep_mkdirat, sys_mkdirat}, IORING_OP_MKDIRAT, true};

/* ---- the public calls ---------------------------------------------------- */

int mag_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    if (!path) /* the kernel's answer, without handing libc a NULL */
        return -EFAULT;
    mag__io_args_t a = {.fd = dirfd, .flags = flags, .buf = (void *)path, .len = mode};
    return (int)mag__io_run_optional(&kind_openat, &a);
}

int mag_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out)
{
    if (!path || !out)
        return -EFAULT;
    /* The kernel writes into a buffer of this frame, copied out on success
     * only: *out is untouched by a failure, whatever the path taken. */
    struct statx got;
    mag__io_args_t a = {.fd = dirfd, .flags = flags, .buf = (void *)path, .len = mask, .aux = &got};
    int rc = (int)mag__io_run_optional(&kind_statx, &a);
    if (rc == 0)
        memcpy(out, &got, sizeof got);
    return rc;
}

int mag_unlinkat(int dirfd, const char *path, int flags)
{
    if (!path)
        return -EFAULT;
    mag__io_args_t a = {.fd = dirfd, .flags = flags, .buf = (void *)path};
    return (int)mag__io_run_optional(&kind_unlinkat, &a);
}

int mag_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                 unsigned flags)
{
    if (!oldpath || !newpath)
        return -EFAULT;
    mag__io_args_t a = {.fd = olddirfd,
                        .flags = (int)flags,
                        .buf = (void *)oldpath,
                        .off = newdirfd,
                        .aux = (void *)newpath};
    return (int)mag__io_run_optional(&kind_renameat, &a);
}

int mag_mkdirat(int dirfd, const char *path, mode_t mode)
{
    if (!path)
        return -EFAULT;
    mag__io_args_t a = {.fd = dirfd, .buf = (void *)path, .len = mode};
    return (int)mag__io_run_optional(&kind_mkdirat, &a);
}
