/*
 * io/stream.c - buffered streams (asyncio's StreamReader and StreamWriter
 * in one object).
 *
 * A stream is two independent halves, a read side and a write side, that
 * share only what never changes after creation (the descriptor and whether
 * the stream owns it). Each half keeps its own buffer, its own error and its
 * own idea of what kind of file the descriptor is, so that one task may read
 * while another writes with no lock and no atomic: the halves never touch
 * each other's fields. Each half sits on its own cache line so that the two
 * tasks do not pull one line back and forth.
 *
 * The read buffer holds r.buf[r.pos, r.pos + r.len); it is compacted (moved
 * to the front) only when a read needs room at the tail, and grows only when
 * asked to (read_until's max, fill's min). Operations that can fail half way
 * (read_exact within the buffer size, read_until, fill) gather into the
 * buffer first and copy out only on success, so a failure consumes nothing.
 * Sockets are told from other files lazily: the first recv/send that says
 * ENOTSOCK switches that side to read(2)/write(2), with no fstat.
 */
#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/internal.h"

enum { KIND_UNKNOWN, KIND_SOCKET, KIND_FILE };

/* How many iovecs one gathered send of mag_stream_writev carries at most
 * (the buffered bytes count as one or more of them). */
enum { GATHER_MAX = 64 };

#define CACHE_LINE 64

typedef struct read_side {
    int kind; /* KIND_*: learnt from the first read */
    char *buf;
    size_t cap, pos, len;
} read_side_t;

typedef struct write_side {
    int kind;    /* KIND_*: learnt from the first write */
    ssize_t err; /* sticky error, 0 while healthy */
    char *buf;
    size_t cap, len;
} write_side_t;

struct mag_stream {
    /* Set at creation, read-only afterwards: both sides may read them. */
    int fd;
    bool owns_fd;
    /* Touched only by the task using the read side. */
    alignas(CACHE_LINE) read_side_t r;
    /* Touched only by the task using the write side. */
    alignas(CACHE_LINE) write_side_t w;
};

mag_stream_t *mag_stream_new_ex(int fd, size_t bufsize, unsigned flags)
{
    /* A buffer past what a fill may gather is a mistake (SIZE_MAX: a
     * negative length converted), not a request to try malloc with. */
    if (fd < 0 || (flags & ~MAG_STREAM_BORROW) || bufsize > MAG_STREAM_FILL_MAX)
        return NULL;
    if (bufsize == 0)
        bufsize = MAG_STREAM_DEFAULT_BUFSIZE;
    /* sizeof is a multiple of the alignment, as aligned_alloc asks. */
    mag_stream_t *s = aligned_alloc(alignof(mag_stream_t), sizeof *s);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->r.buf = malloc(bufsize);
    s->w.buf = malloc(bufsize);
    if (!s->r.buf || !s->w.buf) {
        free(s->r.buf);
        free(s->w.buf);
        free(s);
        return NULL;
    }
    s->fd = fd;
    s->owns_fd = !(flags & MAG_STREAM_BORROW);
    s->r.cap = s->w.cap = bufsize;
    return s;
}

mag_stream_t *mag_stream_new(int fd, size_t bufsize)
{
    return mag_stream_new_ex(fd, bufsize, 0);
}

int mag_stream_fd(const mag_stream_t *s)
{
    return s ? s->fd : -EINVAL;
}

size_t mag_stream_buffered(const mag_stream_t *s)
{
    return s ? s->r.len : 0;
}

/* ---- raw I/O -------------------------------------------------------------- */

static ssize_t raw_read(mag_stream_t *s, void *buf, size_t n)
{
    if (s->r.kind != KIND_FILE) {
        ssize_t r = mag_recv(s->fd, buf, n, 0);
        if (r != -ENOTSOCK) {
            if (r >= 0)
                s->r.kind = KIND_SOCKET;
            return r;
        }
        s->r.kind = KIND_FILE;
    }
    return mag_read(s->fd, buf, n, -1);
}

/* One gathered write: sendmsg with MSG_NOSIGNAL on a socket, writev(2) on
 * anything else. Returns the count written or an error. */
static ssize_t raw_writev(mag_stream_t *s, struct iovec *iov, int cnt)
{
    if (s->w.kind != KIND_FILE) {
        ssize_t r;
        if (cnt == 1) { /* a plain send is the cheaper request */
            r = mag_send(s->fd, iov->iov_base, iov->iov_len, 0);
        } else {
            struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
            mag__io_args_t a = {.fd = s->fd, .flags = MSG_NOSIGNAL, .buf = &msg};
            r = (ssize_t)mag__io_run(MAG__IO_SENDMSG, &a);
        }
        if (r != -ENOTSOCK) {
            if (r >= 0)
                s->w.kind = KIND_SOCKET;
            return r;
        }
        s->w.kind = KIND_FILE;
    }
    if (cnt == 1)
        return mag_write(s->fd, iov->iov_base, iov->iov_len, -1);
    return mag_writev(s->fd, iov, cnt, -1);
}

/* Writes all of iov[0..cnt), moving the iovecs past what went (the array is
 * the caller's scratch). Adds the count written before an error to *done. */
static ssize_t raw_writev_all(mag_stream_t *s, struct iovec *iov, int cnt, size_t *done)
{
    for (;;) {
        while (cnt > 0 && iov->iov_len == 0) {
            iov++;
            cnt--;
        }
        if (cnt == 0)
            return 0;
        ssize_t r = raw_writev(s, iov, cnt);
        if (r < 0)
            return r;
        if (r == 0)
            return -EIO; /* write(2) of a nonzero count never returns 0 */
        *done += (size_t)r;
        for (size_t left = (size_t)r; left > 0;) {
            size_t k = left < iov->iov_len ? left : iov->iov_len;
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= k;
            left -= k;
            if (iov->iov_len == 0) {
                iov++;
                cnt--;
            }
        }
    }
}

static ssize_t raw_write_all(mag_stream_t *s, const char *p, size_t n, size_t *done)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    *done = 0;
    return raw_writev_all(s, &iov, 1, done);
}

static bool interrupted(ssize_t r)
{
    return r == -ECANCELED || r == -ETIMEDOUT;
}

/* ---- reading ------------------------------------------------------------- */

static void take(read_side_t *r, size_t n)
{
    r->pos += n;
    r->len -= n;
    if (r->len == 0)
        r->pos = 0;
}

static void copy_out(read_side_t *r, void *buf, size_t n)
{
    memcpy(buf, r->buf + r->pos, n);
    take(r, n);
}

/* Makes room for `need` bytes from pos (need <= cap), then reads once.
 * Returns the count read, 0 at EOF, or an error. */
static ssize_t fill_once(mag_stream_t *s, size_t need)
{
    read_side_t *r = &s->r;
    if (r->pos + need > r->cap || r->pos + r->len == r->cap) {
        memmove(r->buf, r->buf + r->pos, r->len);
        r->pos = 0;
    }
    size_t tail = r->pos + r->len;
    ssize_t got = raw_read(s, r->buf + tail, r->cap - tail);
    if (got > 0)
        r->len += (size_t)got;
    return got;
}

/* Grows the read buffer to hold exactly `want` bytes when it holds fewer. */
static int grow_rbuf(read_side_t *r, size_t want)
{
    if (want <= r->cap)
        return 0;
    char *nb = malloc(want);
    if (!nb)
        return -ENOMEM;
    memcpy(nb, r->buf + r->pos, r->len);
    free(r->buf);
    r->buf = nb;
    r->pos = 0;
    r->cap = want;
    return 0;
}

ssize_t mag_stream_read(mag_stream_t *s, void *buf, size_t n)
{
    if (!s || (!buf && n))
        return -EINVAL;
    if (n == 0)
        return 0;
    if (s->r.len == 0) {
        if (n >= s->r.cap)
            return raw_read(s, buf, n); /* large reads bypass the buffer */
        ssize_t r = fill_once(s, 1);
        if (r <= 0)
            return r;
    }
    size_t k = n < s->r.len ? n : s->r.len;
    copy_out(&s->r, buf, k);
    return (ssize_t)k;
}

ssize_t mag_stream_read_exact(mag_stream_t *s, void *buf, size_t n)
{
    if (!s || (!buf && n))
        return -EINVAL;
    if (n <= s->r.cap) {
        while (s->r.len < n) {
            ssize_t r = fill_once(s, n);
            if (r == 0)
                return -EPIPE;
            if (r < 0)
                return r;
        }
        copy_out(&s->r, buf, n);
        return (ssize_t)n;
    }
    size_t got = s->r.len;
    copy_out(&s->r, buf, got);
    while (got < n) {
        ssize_t r = raw_read(s, (char *)buf + got, n - got);
        if (r == 0)
            return -EPIPE;
        if (r < 0)
            return r;
        got += (size_t)r;
    }
    return (ssize_t)n;
}

ssize_t mag_stream_read_until(mag_stream_t *s, int delim, void *buf, size_t max)
{
    if (!s || (!buf && max))
        return -EINVAL;
    if (max == 0)
        return -EMSGSIZE;
    int rc = grow_rbuf(&s->r, max);
    if (rc)
        return rc;
    read_side_t *r = &s->r;
    size_t scanned = 0;
    for (;;) {
        size_t limit = r->len < max ? r->len : max;
        const char *p = memchr(r->buf + r->pos + scanned, delim, limit - scanned);
        if (p) {
            size_t k = (size_t)(p - (r->buf + r->pos)) + 1;
            copy_out(r, buf, k);
            return (ssize_t)k;
        }
        scanned = limit;
        if (r->len >= max)
            return -EMSGSIZE;
        ssize_t got = fill_once(s, r->len + 1);
        if (got == 0)
            return r->len ? -EPIPE : 0;
        if (got < 0)
            return got;
    }
}

ssize_t mag_stream_peek(mag_stream_t *s, const char **data, size_t *len)
{
    if (!s || !data || !len)
        return -EINVAL;
    if (s->r.len == 0) {
        ssize_t r = fill_once(s, 1);
        if (r < 0)
            return r;
    }
    *data = s->r.buf + s->r.pos;
    *len = s->r.len;
    return (ssize_t)s->r.len;
}

int mag_stream_consume(mag_stream_t *s, size_t n)
{
    if (!s || n > s->r.len)
        return -EINVAL;
    take(&s->r, n);
    return 0;
}

ssize_t mag_stream_fill(mag_stream_t *s, size_t min)
{
    if (!s)
        return -EINVAL;
    if (min > MAG_STREAM_FILL_MAX)
        return -EMSGSIZE;
    read_side_t *r = &s->r;
    if (min > r->cap) {
        /* Doubling keeps a parser that asks for one byte more each time
         * from copying the buffer once per byte. */
        size_t want = r->cap <= MAG_STREAM_FILL_MAX / 2 ? r->cap * 2 : MAG_STREAM_FILL_MAX;
        int rc = grow_rbuf(r, want > min ? want : min);
        if (rc)
            return rc;
    }
    while (r->len < min) {
        ssize_t got = fill_once(s, min);
        if (got == 0)
            return r->len ? -EPIPE : 0;
        if (got < 0)
            return got;
    }
    return (ssize_t)r->len;
}

/* ---- writing ------------------------------------------------------------- */

int mag_stream_flush(mag_stream_t *s)
{
    if (!s)
        return -EINVAL;
    write_side_t *w = &s->w;
    if (w->err)
        return (int)w->err;
    if (w->len == 0)
        return 0;
    size_t done;
    ssize_t r = raw_write_all(s, w->buf, w->len, &done);
    /* Keep what did not go out: after a cancellation or a deadline the
     * caller may flush again; other errors break the stream for good. */
    memmove(w->buf, w->buf + done, w->len - done);
    w->len -= done;
    if (r < 0 && !interrupted(r))
        w->err = r;
    return (int)r;
}

ssize_t mag_stream_write(mag_stream_t *s, const void *buf, size_t n)
{
    if (!s || (!buf && n))
        return -EINVAL;
    write_side_t *w = &s->w;
    if (w->err)
        return w->err;
    if (n <= w->cap - w->len) {
        memcpy(w->buf + w->len, buf, n);
        w->len += n;
        return (ssize_t)n;
    }
    int rc = mag_stream_flush(s);
    if (rc < 0)
        return rc;
    if (n < w->cap) {
        memcpy(w->buf, buf, n);
        w->len = n;
        return (ssize_t)n;
    }
    size_t done;
    ssize_t r = raw_write_all(s, buf, n, &done);
    if (r < 0) {
        if (!interrupted(r))
            w->err = r;
        return r;
    }
    return (ssize_t)n;
}

/* The pieces of one mag_stream_writev waiting to go out together: out[]
 * refers to the caller's large pieces and to stretches of the write buffer;
 * w->buf[0, in_out) is already referred to, w->buf[in_out, w->len) not yet. */
typedef struct gather {
    struct iovec out[GATHER_MAX];
    int cnt;
    size_t in_out;
} gather_t;

/* Refers to the buffered bytes not yet in g->out. */
static void gather_buffered(write_side_t *w, gather_t *g)
{
    if (w->len > g->in_out) {
        g->out[g->cnt++] =
            (struct iovec){.iov_base = w->buf + g->in_out, .iov_len = w->len - g->in_out};
        g->in_out = w->len;
    }
}

/* Sends g->out and everything buffered; empties both. Any error breaks the
 * write side: part of a caller's piece may have gone out, and the bytes that
 * follow it on the wire would no longer mean what the caller meant. */
static int gather_send(mag_stream_t *s, gather_t *g)
{
    write_side_t *w = &s->w;
    gather_buffered(w, g);
    size_t done = 0;
    ssize_t r = raw_writev_all(s, g->out, g->cnt, &done);
    g->cnt = 0;
    g->in_out = 0;
    if (r < 0) {
        w->err = r;
        return (int)r;
    }
    w->len = 0;
    return 0;
}

ssize_t mag_stream_writev(mag_stream_t *s, const struct iovec *iov, int cnt)
{
    if (!s || cnt < 0 || cnt > IOV_MAX || (!iov && cnt))
        return -EINVAL;
    size_t total = 0;
    for (int i = 0; i < cnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EINVAL;
        if (iov[i].iov_len > (size_t)SSIZE_MAX - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    write_side_t *w = &s->w;
    if (w->err)
        return w->err;
    gather_t g = {.cnt = 0};
    for (int i = 0; i < cnt; i++) {
        const char *p = iov[i].iov_base;
        size_t n = iov[i].iov_len;
        if (n == 0)
            continue;
        if (n < w->cap / 2) { /* small: copied, as mag_stream_write does */
            if (n > w->cap - w->len) {
                int rc = gather_send(s, &g);
                if (rc)
                    return rc;
            }
            memcpy(w->buf + w->len, p, n);
            w->len += n;
            continue;
        }
        /* Large: sent from where it lies, after what is buffered before it.
         * Room for two more entries: the buffered stretch and the piece. */
        if (g.cnt > GATHER_MAX - 2) {
            int rc = gather_send(s, &g);
            if (rc)
                return rc;
        }
        gather_buffered(w, &g);
        g.out[g.cnt++] = (struct iovec){.iov_base = (void *)p, .iov_len = n};
    }
    /* The caller's large pieces must be out before it may reuse them; the
     * small pieces after them go in the same request. */
    if (g.cnt > 0) {
        int rc = gather_send(s, &g);
        if (rc)
            return rc;
    }
    return (ssize_t)total;
}

int mag_stream_close(mag_stream_t *s)
{
    if (!s)
        return 0;
    int rc = s->w.err ? 0 : mag_stream_flush(s);
    int rc2 = s->owns_fd ? mag_close(s->fd) : 0;
    free(s->r.buf);
    free(s->w.buf);
    free(s);
    return rc < 0 ? rc : rc2;
}
