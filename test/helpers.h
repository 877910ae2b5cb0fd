/*
 * test/helpers.h - white-box helpers for tests of sync/: they peek at the
 * wait queues of primitives and channels through the internal headers, to
 * order waiters deterministically. Include after test/test.h.
 */
#ifndef MAGPIE_TEST_HELPERS_H
#define MAGPIE_TEST_HELPERS_H

#include "test/test.h"

#include "sync/chan.h" /* and sync/internal.h */

/* How many waiters wait in list, counted under the lock that guards it. */
static inline int test_wlist_len(ck_spinlock_fas_t *lock, mag__wlist_t *list)
{
    int n = 0;
    mag__spin_lock(lock);
    for (mag__wnode_t *x = list->head; x; x = x->next)
        n++;
    mag__spin_unlock(lock);
    return n;
}

/* Yields (the task, or the thread) until at least n waiters wait in list. */
static inline void test_wait_wlist(ck_spinlock_fas_t *lock, mag__wlist_t *list, int n)
{
    while (test_wlist_len(lock, list) < n)
        test_yield();
}

/* The same for the wait queue of a primitive (mutex, semaphore, ...). */
static inline int test_waitq_len(mag__waitq_t *q)
{
    return test_wlist_len(&q->lock, &q->list);
}

static inline void test_wait_waitq(mag__waitq_t *q, int n)
{
    test_wait_wlist(&q->lock, &q->list, n);
}

/* The same for a channel's queue of senders or receivers (&c->sendq or
 * &c->recvq). */
static inline int test_chan_len(mag_chan_t *c, mag__wlist_t *list)
{
    return test_wlist_len(&c->lock, list);
}

static inline void test_wait_chan(mag_chan_t *c, mag__wlist_t *list, int n)
{
    test_wait_wlist(&c->lock, list, n);
}

#endif
