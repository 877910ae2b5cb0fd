/*
 * sync/bcast.c - the broadcast channel (tokio::sync::broadcast) and the watch
 * channel (tokio::sync::watch).
 *
 * Nothing is consumed in either: each broadcast subscriber has its own
 * cursor, and a watch receiver its own last-seen version. So their wait
 * queues are plain wake lists: a send wakes every waiter, and each re-checks
 * its own condition under the lock. A waiter that leaves early has nothing to
 * give back.
 */
#include <stdlib.h>
#include <string.h>

#include "sync/internal.h"

/* Under the lock: 0 or an error when the call is done, -EAGAIN to wait. */
typedef int (*poll_fn)(void *obj, void *arg);

/* The loop shared by every blocking call here: poll under the lock; if it
 * says -EAGAIN, wait for the next wake-up and poll again. */
static int wait_loop(ck_spinlock_fas_t *lock, mag__wlist_t *list, int kind, void *obj, poll_fn poll,
                     void *arg, bool blocking)
{
    mag__wnode_t n;
    bool prepared = false;
    for (;;) {
        mag__spin_lock(lock);
        int rc = poll(obj, arg);
        if (rc != -EAGAIN || !blocking) {
            mag__spin_unlock(lock);
            if (prepared)
                mag__wnode_end(&n);
            return rc;
        }
        if (!prepared) {
            mag__spin_unlock(lock);
            if ((rc = mag__wnode_begin(&n, kind, obj)))
                return rc;
            prepared = true;
            continue;
        }
        mag__wl_push(list, &n);
        mag__spin_unlock(lock);
        if ((rc = mag__wnode_wait(lock, list, &n, NULL, obj)))
            return rc;
        prepared = false; /* mag__wnode_wait ended the suspension */
    }
}

/* ---- broadcast -------------------------------------------------------------- */

struct mag_bcast {
    ck_spinlock_fas_t lock;
    bool closed;
    size_t elem_size, cap;
    unsigned char *slots; /* cap messages; message i lives in slot i % cap */
    uint64_t tail;        /* messages ever sent */
    uint32_t refs;        /* 1 for the channel itself + 1 per subscriber */
    uint32_t subs;
    mag__wlist_t waiters;
    /* Shared channels (mag_bcast_create_shared): slots hold message pointers,
     * each kept slot owns one reference, each received copy one more. NULL
     * for a channel of plain copies. */
    void (*retain)(void *msg);
    void (*release)(void *msg);
};

struct mag_bcast_sub {
    mag_bcast_t *b;
    uint64_t next; /* the next message this subscriber reads */
};

mag_bcast_t *mag_bcast_create(size_t elem_size, size_t capacity)
{
    if (elem_size == 0 || capacity == 0 || capacity > SIZE_MAX / elem_size)
        return NULL;
    mag_bcast_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    if (!(b->slots = malloc(capacity * elem_size))) {
        free(b);
        return NULL;
    }
    ck_spinlock_fas_init(&b->lock);
    b->elem_size = elem_size;
    b->cap = capacity;
    b->refs = 1;
    return b;
}

mag_bcast_t *mag_bcast_create_shared(size_t capacity, void (*retain)(void *msg),
                                     void (*release)(void *msg))
{
    if (!retain || !release)
        return NULL;
    mag_bcast_t *b = mag_bcast_create(sizeof(void *), capacity);
    if (b) {
        b->retain = retain;
        b->release = release;
    }
    return b;
}

static void *slot_msg(const mag_bcast_t *b, uint64_t i)
{
    void *msg;
    memcpy(&msg, b->slots + (i % b->cap) * b->elem_size, sizeof msg);
    return msg;
}

static void bcast_unref(mag_bcast_t *b)
{
    mag__spin_lock(&b->lock);
    bool last = --b->refs == 0;
    mag__spin_unlock(&b->lock);
    if (!last)
        return;
    if (b->release) /* the references the kept slots own */
        for (uint64_t i = b->tail > b->cap ? b->tail - b->cap : 0; i < b->tail; i++)
            b->release(slot_msg(b, i));
    free(b->slots);
    free(b);
}

mag_bcast_sub_t *mag_bcast_subscribe(mag_bcast_t *b)
{
    if (!b)
        return NULL;
    mag_bcast_sub_t *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    mag__spin_lock(&b->lock);
    if (b->closed) {
        mag__spin_unlock(&b->lock);
        free(s);
        return NULL;
    }
    b->refs++;
    b->subs++;
    s->b = b;
    s->next = b->tail;
    mag__spin_unlock(&b->lock);
    return s;
}

void mag_bcast_unsubscribe(mag_bcast_sub_t *s)
{
    if (!s)
        return;
    mag_bcast_t *b = s->b;
    mag__spin_lock(&b->lock);
    b->subs--;
    mag__spin_unlock(&b->lock);
    free(s);
    bcast_unref(b);
}

int mag_bcast_send(mag_bcast_t *b, const void *elem)
{
    if (!b || !elem)
        return -EINVAL;
    void *msg = NULL, *evicted = NULL;
    if (b->release) {
        memcpy(&msg, elem, sizeof msg);
        if (!msg)
            return -EINVAL;
    }
    mag__wake_t wk = {NULL};
    mag__spin_lock(&b->lock);
    if (b->closed) {
        mag__spin_unlock(&b->lock);
        return -EPIPE;
    }
    if (b->release) {
        b->retain(msg); /* the slot's reference */
        if (b->tail >= b->cap)
            evicted = slot_msg(b, b->tail); /* the oldest, overwritten now */
    }
    memcpy(b->slots + (b->tail % b->cap) * b->elem_size, elem, b->elem_size);
    b->tail++;
    int subs = (int)b->subs;
    mag__wl_drain(&b->waiters, &wk, 0);
    mag__spin_unlock(&b->lock);
    /* Outside the lock: the last reference may free a large message. A
     * receiver that copied the pointer took its own reference under the
     * lock, so this cannot free what a receiver holds. */
    if (evicted)
        b->release(evicted);
    mag__wake_all(&wk);
    return subs;
}

struct bcast_recv_arg {
    void *elem;
    uint64_t *missed;
};

static int bcast_poll(void *obj, void *argp)
{
    mag_bcast_sub_t *s = obj;
    struct bcast_recv_arg *a = argp;
    mag_bcast_t *b = s->b;
    if (s->next < b->tail) {
        uint64_t oldest = b->tail > b->cap ? b->tail - b->cap : 0;
        if (s->next < oldest) {
            /* Lagged: skip to the oldest message still kept. */
            if (a->missed)
                *a->missed = oldest - s->next;
            s->next = oldest;
            return -EOVERFLOW;
        }
        memcpy(a->elem, b->slots + (s->next % b->cap) * b->elem_size, b->elem_size);
        if (b->retain) /* the receiver's own reference, before the slot can be reused */
            b->retain(slot_msg(b, s->next));
        s->next++;
        return 0;
    }
    return b->closed ? -EPIPE : -EAGAIN;
}

static int bcast_recv(mag_bcast_sub_t *s, void *elem, uint64_t *missed, bool blocking)
{
    if (!s || !elem)
        return -EINVAL;
    struct bcast_recv_arg a = {elem, missed};
    return wait_loop(&s->b->lock, &s->b->waiters, MAG__WAIT_CHAN, s, bcast_poll, &a, blocking);
}

int mag_bcast_recv(mag_bcast_sub_t *s, void *elem, uint64_t *missed)
{
    mag__coop_spend();
    return bcast_recv(s, elem, missed, true);
}

int mag_bcast_try_recv(mag_bcast_sub_t *s, void *elem, uint64_t *missed)
{
    return bcast_recv(s, elem, missed, false);
}

int mag_bcast_close(mag_bcast_t *b)
{
    if (!b)
        return -EINVAL;
    mag__wake_t wk = {NULL};
    mag__spin_lock(&b->lock);
    b->closed = true;
    mag__wl_drain(&b->waiters, &wk, 0);
    mag__spin_unlock(&b->lock);
    mag__wake_all(&wk);
    return 0;
}

void mag_bcast_destroy(mag_bcast_t *b)
{
    if (!b)
        return;
    mag_bcast_close(b);
    bcast_unref(b);
}

/* ---- watch ------------------------------------------------------------------ */

struct mag_watch {
    ck_spinlock_fas_t lock;
    bool closed;
    size_t elem_size;
    uint64_t version;
    mag__wlist_t waiters;
    unsigned char value[]; /* elem_size bytes */
};

mag_watch_t *mag_watch_create(size_t elem_size, const void *initial)
{
    if (elem_size == 0 || elem_size > SIZE_MAX - sizeof(mag_watch_t))
        return NULL;
    mag_watch_t *w = calloc(1, sizeof *w + elem_size);
    if (!w)
        return NULL;
    ck_spinlock_fas_init(&w->lock);
    w->elem_size = elem_size;
    if (initial)
        memcpy(w->value, initial, elem_size);
    return w;
}

void mag_watch_destroy(mag_watch_t *w)
{
    free(w);
}

int mag_watch_send(mag_watch_t *w, const void *elem)
{
    if (!w || !elem)
        return -EINVAL;
    mag__wake_t wk = {NULL};
    mag__spin_lock(&w->lock);
    if (w->closed) {
        mag__spin_unlock(&w->lock);
        return -EPIPE;
    }
    memcpy(w->value, elem, w->elem_size);
    w->version++;
    mag__wl_drain(&w->waiters, &wk, 0);
    mag__spin_unlock(&w->lock);
    mag__wake_all(&wk);
    return 0;
}

int mag_watch_get(mag_watch_t *w, void *elem, uint64_t *version)
{
    if (!w)
        return -EINVAL;
    mag__spin_lock(&w->lock);
    if (elem)
        memcpy(elem, w->value, w->elem_size);
    if (version)
        *version = w->version;
    mag__spin_unlock(&w->lock);
    return 0;
}

struct watch_arg {
    uint64_t *seen;
    void *elem;
};

static int watch_poll(void *obj, void *argp)
{
    mag_watch_t *w = obj;
    struct watch_arg *a = argp;
    if (w->version != *a->seen) {
        if (a->elem)
            memcpy(a->elem, w->value, w->elem_size);
        *a->seen = w->version;
        return 0;
    }
    return w->closed ? -EPIPE : -EAGAIN;
}

int mag_watch_wait(mag_watch_t *w, uint64_t *seen, void *elem)
{
    if (!w || !seen)
        return -EINVAL;
    struct watch_arg a = {seen, elem};
    return wait_loop(&w->lock, &w->waiters, MAG__WAIT_CHAN, w, watch_poll, &a, true);
}

int mag_watch_close(mag_watch_t *w)
{
    if (!w)
        return -EINVAL;
    mag__wake_t wk = {NULL};
    mag__spin_lock(&w->lock);
    w->closed = true;
    mag__wl_drain(&w->waiters, &wk, 0);
    mag__spin_unlock(&w->lock);
    mag__wake_all(&wk);
    return 0;
}
