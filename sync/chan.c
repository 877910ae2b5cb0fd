/*
 * sync/chan.c - mag_chan_t: bounded, unbounded and rendezvous MPMC channels
 * with asyncio.Queue's task_done / join. The record and its invariants are in
 * sync/chan.h; select is in sync/select.c.
 */
#include <stdlib.h>
#include <string.h>

#include "sync/chan.h"

#define CHAN_UNBOUNDED_FIRST 16 /* slots of an unbounded channel's first buffer */

mag_chan_t *mag_chan_create(size_t elem_size, size_t capacity)
{
    if (elem_size == 0)
        return NULL;
    /* A bounded buffer lives in the same allocation as the record: one malloc
     * per channel, as for a Tokio oneshot. An unbounded one grows apart. */
    size_t bytes = 0;
    if (capacity != MAG_CHAN_UNBOUNDED) {
        if (capacity > (SIZE_MAX - sizeof(mag_chan_t)) / elem_size)
            return NULL;
        bytes = capacity * elem_size;
    }
    mag_chan_t *c = malloc(sizeof *c + bytes);
    if (!c)
        return NULL;
    memset(c, 0, sizeof *c);
    ck_spinlock_fas_init(&c->lock);
    c->elem_size = elem_size;
    c->cap = capacity;
    if (bytes) {
        c->buf = (unsigned char *)(c + 1);
        c->bufcap = capacity;
    }
    return c;
}

void mag_chan_destroy(mag_chan_t *c)
{
    if (!c)
        return;
    if (c->cap == MAG_CHAN_UNBOUNDED)
        free(c->buf);
    free(c);
}

/* Copies one element. The common sizes get a fixed-size memcpy, which the
 * compiler turns into a move or two instead of a call. */
static inline void copy_elem(void *dst, const void *src, size_t n)
{
    switch (n) {
    case 1:
        memcpy(dst, src, 1);
        break;
    case 2:
        memcpy(dst, src, 2);
        break;
    case 4:
        memcpy(dst, src, 4);
        break;
    case 8:
        memcpy(dst, src, 8);
        break;
    case 16:
        memcpy(dst, src, 16);
        break;
    default:
        memcpy(dst, src, n);
    }
}

static inline unsigned char *slot(mag_chan_t *c, size_t i)
{
    return c->buf + i * c->elem_size;
}

/* Doubles an unbounded channel's buffer, lock held. This mallocs under the
 * spinlock; it happens O(log n) times over a channel's life, and dropping the
 * lock around it would let the buffer change under us. */
static int chan_grow(mag_chan_t *c)
{
    size_t ncap = c->bufcap ? c->bufcap * 2 : CHAN_UNBOUNDED_FIRST;
    if (ncap < c->bufcap || ncap > SIZE_MAX / c->elem_size)
        return -ENOMEM;
    unsigned char *nb = malloc(ncap * c->elem_size);
    if (!nb)
        return -ENOMEM;
    /* Unwrap the ring into the new buffer, oldest first. */
    size_t first = c->bufcap - c->head;
    if (first > c->count)
        first = c->count;
    if (c->count) {
        memcpy(nb, slot(c, c->head), first * c->elem_size);
        memcpy(nb + first * c->elem_size, c->buf, (c->count - first) * c->elem_size);
    }
    free(c->buf);
    c->buf = nb;
    c->bufcap = ncap;
    c->head = 0;
    return 0;
}

static inline void push_slot(mag_chan_t *c, const void *elem)
{
    size_t tail = c->head + c->count;
    if (tail >= c->bufcap)
        tail -= c->bufcap;
    copy_elem(slot(c, tail), elem, c->elem_size);
    c->count++;
}

int mag__chan_send_locked(mag_chan_t *c, const void *elem, mag__wake_t *wk)
{
    if (c->closed)
        return -EPIPE;
    mag__wnode_t *r = mag__wl_pop_live(&c->recvq);
    if (r) {
        /* A receiver waits, so the buffer is empty: hand it over directly. */
        copy_elem(r->elem, elem, c->elem_size);
        r->result = 0;
        mag__wake_add(wk, r);
    } else if (c->count < c->bufcap) {
        push_slot(c, elem);
    } else if (c->cap == MAG_CHAN_UNBOUNDED) {
        int rc = chan_grow(c);
        if (rc)
            return rc;
        push_slot(c, elem);
    } else {
        return -EAGAIN;
    }
    c->unfinished++;
    return 0;
}

int mag__chan_recv_locked(mag_chan_t *c, void *elem, mag__wake_t *wk)
{
    mag__wnode_t *s;
    if (c->count > 0) {
        copy_elem(elem, slot(c, c->head), c->elem_size);
        if (++c->head == c->bufcap)
            c->head = 0;
        c->count--;
        /* A slot is free: the first waiting sender's message moves in. */
        if ((s = mag__wl_pop_live(&c->sendq))) {
            push_slot(c, s->elem);
            s->result = 0;
            c->unfinished++;
            mag__wake_add(wk, s);
        }
        return 0;
    }
    if ((s = mag__wl_pop_live(&c->sendq))) {
        /* Rendezvous: take the message straight from the sender. */
        copy_elem(elem, s->elem, c->elem_size);
        s->result = 0;
        c->unfinished++;
        mag__wake_add(wk, s);
        return 0;
    }
    return c->closed ? -EPIPE : -EAGAIN;
}

/* The common shape of send and recv: try under the lock; if it would wait,
 * enter the suspension outside the lock, then try again and queue. */
static int chan_op(mag_chan_t *c, void *elem, bool send, bool blocking)
{
    if (!c || !elem)
        return -EINVAL;
    if (blocking)
        mag__coop_spend();
    mag__wake_t wk = {NULL};
    mag__wnode_t n;
    bool prepared = false;
    int rc;
    for (;;) {
        mag__spin_lock(&c->lock);
        rc = send ? mag__chan_send_locked(c, elem, &wk) : mag__chan_recv_locked(c, elem, &wk);
        if (rc != -EAGAIN || !blocking) {
            mag__spin_unlock(&c->lock);
            mag__wake_all(&wk);
            if (prepared)
                mag__wnode_end(&n);
            return rc;
        }
        if (prepared)
            break;
        mag__spin_unlock(&c->lock);
        if ((rc = mag__wnode_begin(&n, MAG__WAIT_CHAN, c)))
            return rc;
        prepared = true;
    }
    n.elem = elem;
    mag__wl_push(send ? &c->sendq : &c->recvq, &n);
    mag__spin_unlock(&c->lock);
    /* No repair when a waiter leaves: the invariants in chan.h hold
     * without it. */
    return mag__wnode_wait(&c->lock, send ? &c->sendq : &c->recvq, &n, NULL, c);
}

int mag_chan_send(mag_chan_t *c, const void *elem)
{
    /* The cast: a sender's elem is only ever read (see chan_op). */
    return chan_op(c, (void *)elem, true, true);
}

int mag_chan_try_send(mag_chan_t *c, const void *elem)
{
    return chan_op(c, (void *)elem, true, false);
}

int mag_chan_recv(mag_chan_t *c, void *elem)
{
    return chan_op(c, elem, false, true);
}

int mag_chan_try_recv(mag_chan_t *c, void *elem)
{
    return chan_op(c, elem, false, false);
}

int mag_chan_close(mag_chan_t *c)
{
    if (!c)
        return -EINVAL;
    mag__wake_t wk = {NULL};
    mag__spin_lock(&c->lock);
    if (!c->closed) {
        c->closed = true;
        /* Receivers wait only on an empty buffer, so they are done; senders'
         * messages were not sent. */
        mag__wl_drain(&c->recvq, &wk, -EPIPE);
        mag__wl_drain(&c->sendq, &wk, -EPIPE);
    }
    mag__spin_unlock(&c->lock);
    mag__wake_all(&wk);
    return 0;
}

int mag_chan_task_done(mag_chan_t *c)
{
    if (!c)
        return -EINVAL;
    mag__wake_t wk = {NULL};
    mag__spin_lock(&c->lock);
    if (c->unfinished == 0) {
        mag__spin_unlock(&c->lock);
        return -EINVAL;
    }
    if (--c->unfinished == 0)
        mag__wl_drain(&c->joinq, &wk, 0);
    mag__spin_unlock(&c->lock);
    mag__wake_all(&wk);
    return 0;
}

int mag_chan_join(mag_chan_t *c)
{
    if (!c)
        return -EINVAL;
    mag__wnode_t n;
    bool prepared = false;
    for (;;) {
        mag__spin_lock(&c->lock);
        if (c->unfinished == 0) {
            mag__spin_unlock(&c->lock);
            if (prepared)
                mag__wnode_end(&n);
            return 0;
        }
        if (prepared)
            break;
        mag__spin_unlock(&c->lock);
        int rc = mag__wnode_begin(&n, MAG__WAIT_CHAN, c);
        if (rc)
            return rc;
        prepared = true;
    }
    mag__wl_push(&c->joinq, &n);
    mag__spin_unlock(&c->lock);
    return mag__wnode_wait(&c->lock, &c->joinq, &n, NULL, c);
}

size_t mag_chan_len(mag_chan_t *c)
{
    if (!c)
        return 0;
    mag__spin_lock(&c->lock);
    size_t n = c->count;
    mag__spin_unlock(&c->lock);
    return n;
}

size_t mag_chan_cap(mag_chan_t *c)
{
    return c ? c->cap : 0;
}

bool mag_chan_closed(mag_chan_t *c)
{
    if (!c)
        return false;
    mag__spin_lock(&c->lock);
    bool closed = c->closed;
    mag__spin_unlock(&c->lock);
    return closed;
}
