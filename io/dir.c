/*
 * io/dir.c - reading a directory without blocking a worker.
 *
 * io_uring has no getdents, so the directory is read in batches: one
 * getdents64(2) fills the reader's buffer on the blocking pool (a task) or on
 * the calling thread (outside a task), and mag_readdir then hands out the
 * buffered entries one by one without a system call.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "io/internal.h"
#include "magpie/pool.h"

/* One getdents64 batch: about 1,000 entries with short names. */
#define DIR_BUFSIZE (32u * 1024u)

/* The kernel's record (linux_dirent64, getdents64(2)). */
struct kernel_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

struct mag_dir {
    int fd;
    size_t pos, len; /* the unread entries are buf[pos..len) */
    bool at_end;     /* getdents64 returned 0 */
    long refill_rc;  /* the last getdents64: bytes or -errno */
    _Alignas(8) char buf[DIR_BUFSIZE];
};

int mag_opendir(mag_dir_t **out, int dirfd, const char *path)
{
    if (!out)
        return -EINVAL;
    if (!path)
        return -EFAULT;
    mag_dir_t *d = malloc(sizeof *d);
    if (!d)
        return -ENOMEM;
    int fd = mag_openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0) {
        free(d);
        return fd;
    }
    d->fd = fd;
    d->pos = d->len = 0;
    d->at_end = false;
    d->refill_rc = 0;
    *out = d;
    return 0;
}

int mag_dir_fd(const mag_dir_t *d)
{
    return d ? d->fd : -EINVAL;
}

/* The blocking-pool job: one batch into d's buffer. */
static int refill_job(void *arg)
{
    mag_dir_t *d = arg;
    long r;
    do
        r = syscall(SYS_getdents64, d->fd, d->buf, sizeof d->buf);
    while (r < 0 && errno == EINTR);
    d->refill_rc = r < 0 ? -errno : r;
    return 0;
}

/* Reads the next batch: 0 (maybe at the end) or a negative errno. */
static int refill(mag_dir_t *d)
{
    /* From a task the job runs on the blocking pool and the task waits for
     * it, uninterruptibly once started (it writes into d); a task already
     * cancelled gets -ECANCELED and d is unchanged. A plain thread runs the
     * job itself. */
    int rc = mag_run_blocking(refill_job, d, NULL);
    if (rc)
        return rc;
    if (d->refill_rc < 0)
        return (int)d->refill_rc;
    d->pos = 0;
    d->len = (size_t)d->refill_rc;
    d->at_end = d->len == 0;
    return 0;
}

static bool is_dot_or_dotdot(const char *name)
{
    return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

int mag_readdir(mag_dir_t *d, mag_dirent_t *out)
{
    if (!d || !out)
        return -EINVAL;
    for (;;) {
        if (d->pos >= d->len) {
            if (d->at_end)
                return 0;
            int rc = refill(d);
            if (rc)
                return rc;
            continue;
        }
        const struct kernel_dirent64 *e = (const void *)(d->buf + d->pos);
        d->pos += e->d_reclen;
        if (is_dot_or_dotdot(e->d_name))
            continue;
        out->name = e->d_name;
        out->type = e->d_type;
        out->ino = e->d_ino;
        return 1;
    }
}

int mag_closedir(mag_dir_t *d)
{
    if (!d)
        return 0;
    int rc = mag_close(d->fd);
    free(d);
    return rc;
}
