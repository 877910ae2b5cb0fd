/*
 * io/stream.c - buffered streams (asyncio's StreamReader and StreamWriter
 * in one object).
 *
 * The read buffer holds rbuf[rpos, rpos + rlen); it is compacted (moved to
 * the front) only when a read needs room at the tail. Operations that can
 * fail half way (read_exact within the buffer size, read_until) gather into
 * the buffer first and copy out only on success, so a failure consumes
 * nothing. Sockets are told from other files lazily: the first recv/send that
 * says ENOTSOCK switches the stream to read(2)/write(2), with no fstat.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "io/internal.h"

enum { KIND_UNKNOWN, KIND_SOCKET, KIND_FILE };

struct mag_stream {
    int fd;
    int kind;     /* KIND_*: learnt from the first operation */
    ssize_t werr; /* sticky write error (not cancellation), 0 when healthy */
    size_t cap;   /* bufsize */
    char *rbuf;
    size_t rcap, rpos, rlen;
    char *wbuf;
    size_t wlen;
};

mag_stream_t *mag_stream_new(int fd, size_t bufsize)
{
    if (fd < 0)
        return NULL;
    if (bufsize == 0)
        bufsize = MAG_STREAM_DEFAULT_BUFSIZE;
    mag_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->rbuf = malloc(bufsize);
    s->wbuf = malloc(bufsize);
    if (!s->rbuf || !s->wbuf) {
        free(s->rbuf);
        free(s->wbuf);
        free(s);
        return NULL;
    }
    s->fd = fd;
    s->cap = s->rcap = bufsize;
    return s;
}

int mag_stream_fd(const mag_stream_t *s)
{
    return s ? s->fd : -EINVAL;
}

size_t mag_stream_buffered(const mag_stream_t *s)
{
    return s ? s->rlen : 0;
}

/* ---- raw I/O -------------------------------------------------------------- */

static ssize_t raw_read(mag_stream_t *s, void *buf, size_t n)
{
    if (s->kind != KIND_FILE) {
        ssize_t r = mag_recv(s->fd, buf, n, 0);
        if (r != -ENOTSOCK) {
            if (r >= 0)
                s->kind = KIND_SOCKET;
            return r;
        }
        s->kind = KIND_FILE;
    }
    return mag_read(s->fd, buf, n, -1);
}

static ssize_t raw_write(mag_stream_t *s, const void *buf, size_t n)
{
    if (s->kind != KIND_FILE) {
        ssize_t r = mag_send(s->fd, buf, n, 0);
        if (r != -ENOTSOCK) {
            if (r >= 0)
                s->kind = KIND_SOCKET;
            return r;
        }
        s->kind = KIND_FILE;
    }
    return mag_write(s->fd, buf, n, -1);
}

/* Writes all n bytes; returns how many went out before an error in *done. */
static ssize_t raw_write_all(mag_stream_t *s, const char *p, size_t n, size_t *done)
{
    *done = 0;
    while (*done < n) {
        ssize_t r = raw_write(s, p + *done, n - *done);
        if (r < 0)
            return r;
        if (r == 0)
            return -EIO; /* write(2) of a nonzero count never returns 0 */
        *done += (size_t)r;
    }
    return 0;
}

static bool interrupted(ssize_t r)
{
    return r == -ECANCELED || r == -ETIMEDOUT;
}

/* ---- reading ------------------------------------------------------------- */

static void consume(mag_stream_t *s, void *buf, size_t n)
{
    memcpy(buf, s->rbuf + s->rpos, n);
    s->rpos += n;
    s->rlen -= n;
    if (s->rlen == 0)
        s->rpos = 0;
}

/* Makes room for `need` bytes from rpos (need <= rcap), then reads once.
 * Returns the count read, 0 at EOF, or an error. */
static ssize_t fill(mag_stream_t *s, size_t need)
{
    if (s->rpos + need > s->rcap || s->rpos + s->rlen == s->rcap) {
        memmove(s->rbuf, s->rbuf + s->rpos, s->rlen);
        s->rpos = 0;
    }
    size_t tail = s->rpos + s->rlen;
    ssize_t r = raw_read(s, s->rbuf + tail, s->rcap - tail);
    if (r > 0)
        s->rlen += (size_t)r;
    return r;
}

ssize_t mag_stream_read(mag_stream_t *s, void *buf, size_t n)
{
    if (!s || (!buf && n))
        return -EINVAL;
    if (n == 0)
        return 0;
    if (s->rlen == 0) {
        if (n >= s->rcap)
            return raw_read(s, buf, n); /* large reads bypass the buffer */
        ssize_t r = fill(s, 1);
        if (r <= 0)
            return r;
    }
    size_t k = n < s->rlen ? n : s->rlen;
    consume(s, buf, k);
    return (ssize_t)k;
}

ssize_t mag_stream_read_exact(mag_stream_t *s, void *buf, size_t n)
{
    if (!s || (!buf && n))
        return -EINVAL;
    if (n <= s->rcap) {
        while (s->rlen < n) {
            ssize_t r = fill(s, n);
            if (r == 0)
                return -EPIPE;
            if (r < 0)
                return r;
        }
        consume(s, buf, n);
        return (ssize_t)n;
    }
    size_t got = s->rlen;
    consume(s, buf, got);
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

/* Grows the read buffer to hold at least `want` bytes. */
static int grow_rbuf(mag_stream_t *s, size_t want)
{
    if (want <= s->rcap)
        return 0;
    char *nb = malloc(want);
    if (!nb)
        return -ENOMEM;
    memcpy(nb, s->rbuf + s->rpos, s->rlen);
    free(s->rbuf);
    s->rbuf = nb;
    s->rpos = 0;
    s->rcap = want;
    return 0;
}

ssize_t mag_stream_read_until(mag_stream_t *s, int delim, void *buf, size_t max)
{
    if (!s || (!buf && max))
        return -EINVAL;
    if (max == 0)
        return -EMSGSIZE;
    int rc = grow_rbuf(s, max);
    if (rc)
        return rc;
    size_t scanned = 0;
    for (;;) {
        size_t limit = s->rlen < max ? s->rlen : max;
        const char *p = memchr(s->rbuf + s->rpos + scanned, delim, limit - scanned);
        if (p) {
            size_t k = (size_t)(p - (s->rbuf + s->rpos)) + 1;
            consume(s, buf, k);
            return (ssize_t)k;
        }
        scanned = limit;
        if (s->rlen >= max)
            return -EMSGSIZE;
        ssize_t r = fill(s, s->rlen + 1);
        if (r == 0)
            return s->rlen ? -EPIPE : 0;
        if (r < 0)
            return r;
    }
}

/* ---- writing ------------------------------------------------------------- */

int mag_stream_flush(mag_stream_t *s)
{
    if (!s)
        return -EINVAL;
    if (s->werr)
        return (int)s->werr;
    if (s->wlen == 0)
        return 0;
    size_t done;
    ssize_t r = raw_write_all(s, s->wbuf, s->wlen, &done);
    /* Keep what did not go out: after a cancellation or a deadline the
     * caller may flush again; other errors break the stream for good. */
    memmove(s->wbuf, s->wbuf + done, s->wlen - done);
    s->wlen -= done;
    if (r < 0 && !interrupted(r))
        s->werr = r;
    return (int)r;
}

ssize_t mag_stream_write(mag_stream_t *s, const void *buf, size_t n)
{
    if (!s || (!buf && n))
        return -EINVAL;
    if (s->werr)
        return s->werr;
    if (n <= s->cap - s->wlen) {
        memcpy(s->wbuf + s->wlen, buf, n);
        s->wlen += n;
        return (ssize_t)n;
    }
    int rc = mag_stream_flush(s);
    if (rc < 0)
        return rc;
    if (n < s->cap) {
        memcpy(s->wbuf, buf, n);
        s->wlen = n;
        return (ssize_t)n;
    }
    size_t done;
    ssize_t r = raw_write_all(s, buf, n, &done);
    if (r < 0) {
        if (!interrupted(r))
            s->werr = r;
        return r;
    }
    return (ssize_t)n;
}

int mag_stream_close(mag_stream_t *s)
{
    if (!s)
        return 0;
    int rc = s->werr ? 0 : mag_stream_flush(s);
    int rc2 = mag_close(s->fd);
    free(s->rbuf);
    free(s->wbuf);
    free(s);
    return rc < 0 ? rc : rc2;
}
