/*
 * sync/chan.h - the channel record and the operations that select shares.
 *
 * One spinlock guards the whole channel: the circular buffer, the queues of
 * waiting senders and receivers, the close flag and the task_done count.
 * Matching a sender with a receiver, or a buffer slot with a waiter, happens
 * in one critical section, which is what makes "a message reported sent is
 * received exactly once" easy to see.
 *
 * Invariants (under the lock):
 *   - recvq has live waiters only while the buffer is empty;
 *   - sendq has live waiters only while the buffer is full (for a rendezvous
 *     channel: always "full");
 *   - after close, both queues are empty and stay empty.
 */
#ifndef MAGPIE_SYNC_CHAN_H
#define MAGPIE_SYNC_CHAN_H

#include "sync/internal.h"

struct mag_chan {
    _Alignas(16) ck_spinlock_fas_t lock; /* 16: the inline buffer follows the record */
    bool closed;
    size_t elem_size;
    size_t cap;         /* as given: 0 rendezvous, MAG_CHAN_UNBOUNDED, or a bound */
    unsigned char *buf; /* bufcap * elem_size bytes; bounded: right after the record */
    size_t bufcap;      /* slots allocated */
    size_t head;        /* slot of the oldest message */
    size_t count;       /* messages buffered */
    size_t unfinished;  /* sent and not yet task_done */
    mag__wlist_t sendq; /* nodes: elem = the message to send */
    mag__wlist_t recvq; /* nodes: elem = where to copy it */
    mag__wlist_t joinq; /* mag_chan_join waiters */
};

/* With c->lock held: performs a send without waiting. 0 (sent), -EPIPE,
 * -ENOMEM, or -EAGAIN (it would have to wait). A receiver node to signal
 * after unlocking is added to wk. */
MAG_HIDDEN int mag__chan_send_locked(mag_chan_t *c, const void *elem, mag__wake_t *wk);
/* With c->lock held: performs a receive without waiting. 0, -EPIPE or
 * -EAGAIN; a sender node to signal is added to wk. */
MAG_HIDDEN int mag__chan_recv_locked(mag_chan_t *c, void *elem, mag__wake_t *wk);

#endif /* MAGPIE_SYNC_CHAN_H */
