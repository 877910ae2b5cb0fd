/*
 * sync/internal.h - the wait-queue core that every primitive and channel in
 * sync/ is built on.
 *
 * A wait queue is a FIFO list of waiter nodes protected by a spinlock. A node
 * lives on the waiting caller's stack and binds one mag__waiter_t: a task
 * (which parks) or a plain OS thread (which sleeps on a futex), so the same
 * queue serves both.
 *
 * Hand-off, not re-check. A waker takes the first node off the queue under
 * the lock and completes the waiter's operation on its behalf (grants the
 * lock, gives the permit, copies the message, writes node->result) before it
 * unlocks; after unlocking it signals the node. The woken waiter does not
 * compete again: it returns node->result. This is what gives FIFO order and
 * no starvation. (Broadcast and watch channels, where nothing is consumed,
 * use the queue as a plain wake list and their waiters re-check.)
 *
 * Leaving early. A task that is cancelled, or whose deadline passes, locks the
 * queue again. If its node is still linked, nobody has picked it: it unlinks
 * itself and returns -ECANCELED / -ETIMEDOUT, having consumed nothing. If the
 * node is no longer linked, a waker has already completed its operation and
 * is about to signal it: the waiter waits for that signal (which is imminent
 * and cannot be lost) and returns success with what it was handed. So a
 * permit or message is never consumed on behalf of a waiter that left, and
 * the hand-off wins a race with cancellation. Primitives whose invariants
 * depend on the queue (a WAITERS bit, the reader batch of a rwlock) get a
 * callback to repair them, under the lock, after a node leaves.
 *
 * Select. A select enqueues one node per case, all pointing to one
 * mag__select_t whose state word is claimed with a compare-and-swap by the
 * waker that completes a case (or by the selector itself when it withdraws).
 * A waker that loses the claim simply drops that node and moves on.
 *
 * Memory ordering. Node fields (links, elem, result) are written under the
 * queue's lock. The waker's mag__waiter_signal is a release store that pairs
 * with the acquire in mag__waiter_signalled, so a woken waiter sees
 * node->result and the copied message. Every atomic outside the lock names its
 * order where it is used.
 *
 * Concurrency Kit. The lock is ck_spinlock_fas (test-and-set, CK's own
 * recommendation for low latency), with a slow path that yields the CPU after
 * a short spin because workers may outnumber cores. ck_pr's inline assembly is
 * invisible to ThreadSanitizer, so the lock is annotated with __tsan_acquire /
 * __tsan_release; state words that publish data outside the lock use C11
 * atomics, which TSan understands. Not used, and why:
 *   - ck_ring: it stores pointer-sized entries in a power-of-two ring, while
 *     channel elements have a run-time size; and the buffer must be updated
 *     in the same critical section that matches senders with receivers, so a
 *     lock-free ring would buy nothing. The channel buffer is a plain circular
 *     array under the channel lock.
 *   - ck_ec: an event count parks OS threads on a futex, but a waiting task
 *     must park its fiber instead; mag__waiter_t covers both.
 *   - ck_stack / ck_fifo: the queue must unlink an arbitrary node when its
 *     waiter leaves, which a lock-free stack or FIFO cannot do; an intrusive
 *     doubly linked list under the lock can, in O(1).
 */
#ifndef MAGPIE_SYNC_INTERNAL_H
#define MAGPIE_SYNC_INTERNAL_H

#include <ck_backoff.h>
#include <ck_pr.h>
#include <ck_spinlock.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "magpie/sync.h"
#include "runtime/internal.h"

/* ---- ThreadSanitizer annotations for the CK spinlock ---------------------
 * MAG__TSAN comes from runtime/internal.h. */
#if MAG__TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define MAG__TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define MAG__TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define MAG__TSAN_ACQUIRE(p) ((void)0)
#define MAG__TSAN_RELEASE(p) ((void)0)
#endif

/* ---- the lock -------------------------------------------------------------
 * ck_spinlock_fas: trylock is an exchange followed by ck_pr_fence_lock
 * (acquire); unlock is ck_pr_fence_unlock then a store (release). They pair
 * with each other. Never held across a suspension or a wake-up (which may
 * make a system call): wakers collect nodes and signal them after unlocking. */
MAG_HIDDEN void mag__spin_lock_slow(ck_spinlock_fas_t *l);

static inline void mag__spin_lock(ck_spinlock_fas_t *l)
{
    if (MAG_UNLIKELY(!ck_spinlock_fas_trylock(l)))
        mag__spin_lock_slow(l);
    MAG__TSAN_ACQUIRE(l);
}

static inline void mag__spin_unlock(ck_spinlock_fas_t *l)
{
    MAG__TSAN_RELEASE(l);
    ck_spinlock_fas_unlock(l);
}

/* ---- waiter nodes ---------------------------------------------------------- */
typedef struct mag__select {
    /* MAG__SEL_WAITING, then 1 + the index of the case taken (CAS by the waker
     * that completes it) or MAG__SEL_GONE (CAS by the selector that leaves).
     * acq_rel on the CAS: the winner's writes to the node follow it. */
    _Atomic uint32_t state;
    mag__waiter_t w;
} mag__select_t;
#define MAG__SEL_WAITING 0u
#define MAG__SEL_GONE UINT32_MAX

typedef struct mag__wnode {
    struct mag__wnode *next, *prev; /* queue links; after removal, the waker's wake list */
    mag__select_t *sel;             /* non-NULL: one case of a select */
    void *elem;                     /* channel: where to copy to (recv) or from (send) */
    uintptr_t arg;                  /* the primitive's own (rwlock: reader or writer) */
    int result;                     /* written by the waker before the signal */
    uint32_t index;                 /* select: the case index */
    bool linked;                    /* in a queue; read and written under its lock */
    bool in_task;                   /* a task inside mag__suspend_begin/end */
    mag__waiter_t w;                /* unused for select nodes: sel->w is signalled */
} mag__wnode_t;

/* ---- list operations (lock held) ----------------------------------------- */
static inline void mag__wl_push(mag__wlist_t *l, mag__wnode_t *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
    n->linked = true;
}

static inline void mag__wl_remove(mag__wlist_t *l, mag__wnode_t *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->next = n->prev = NULL;
    n->linked = false;
}

static inline bool mag__wl_empty(const mag__wlist_t *l)
{
    return l->head == NULL;
}

/* Pops the first node that can still be served: a plain node, or a select
 * node whose select this call claims for it. Select nodes already claimed
 * elsewhere are dropped. NULL when none. */
static inline mag__wnode_t *mag__wl_pop_live(mag__wlist_t *l)
{
    mag__wnode_t *n;
    while ((n = l->head)) {
        mag__wl_remove(l, n);
        if (!n->sel)
            return n;
        uint32_t expect = MAG__SEL_WAITING;
        /* acq_rel: pairs with the selector's own CAS when it leaves, and
         * orders our copy into its buffer after the claim. */
        if (atomic_compare_exchange_strong_explicit(&n->sel->state, &expect, n->index + 1,
                                                    memory_order_acq_rel, memory_order_acquire))
            return n;
    }
    return NULL;
}

/* ---- wake lists: nodes taken off a queue, signalled after unlocking ------ */
typedef struct mag__wake {
    mag__wnode_t *first;
} mag__wake_t;

static inline void mag__wake_add(mag__wake_t *wk, mag__wnode_t *n)
{
    n->next = wk->first;
    wk->first = n;
}

static inline void mag__wnode_signal(mag__wnode_t *n)
{
    mag__waiter_signal(n->sel ? &n->sel->w : &n->w);
}

/* Signals every node on the list. Each node's next is read before its signal:
 * after the signal the node (on the waiter's stack) may be gone. */
static inline void mag__wake_all(mag__wake_t *wk)
{
    mag__wnode_t *n = wk->first, *next;
    for (; n; n = next) {
        next = n->next;
        mag__wnode_signal(n);
    }
    wk->first = NULL;
}

/* Moves every live node from l to the wake list with the given result. */
MAG_HIDDEN void mag__wl_drain(mag__wlist_t *l, mag__wake_t *wk, int result);

/* ---- waiting ---------------------------------------------------------------
 * The slow path of every primitive:
 *
 *     rc = mag__wnode_begin(&n, MAG__WAIT_X, obj);   // not under the lock
 *     if (rc) return rc;
 *     mag__spin_lock(lock);
 *     if (can proceed now) { ...; unlock; mag__wnode_end(&n); return 0; }
 *     mag__wl_push(list, &n);
 *     mag__spin_unlock(lock);
 *     return mag__wnode_wait(lock, list, &n, repair, obj);
 */

/* Binds n to the caller (task or thread) and, in a task, enters a suspension
 * (arming its deadline). 0, -ECANCELED or -ETIMEDOUT (nothing to undo). */
MAG_HIDDEN int mag__wnode_begin(mag__wnode_t *n, int wait_kind, const void *obj);
/* Leaves the suspension entered by begin when no wait was needed. */
static inline void mag__wnode_end(mag__wnode_t *n)
{
    if (n->in_task)
        mag__suspend_end();
}

/* Called under the lock after a node left the queue early; may move nodes
 * onto wk to be signalled after the lock is dropped. */
typedef void (*mag__repair_fn)(void *obj, mag__wake_t *wk);

/* Waits for n (linked in list, lock not held) to be signalled. Returns
 * n->result, or -ECANCELED / -ETIMEDOUT when the task left before any waker
 * picked it (then n is unlinked and repair(obj) has run). */
MAG_HIDDEN int mag__wnode_wait(ck_spinlock_fas_t *lock, mag__wlist_t *list, mag__wnode_t *n,
                               mag__repair_fn repair, void *obj);

/* Waits for n's signal ignoring cancellation and deadlines (a hand-off that
 * is known to be in flight, or a relock that must happen). No begin needed. */
MAG_HIDDEN void mag__wnode_wait_uninterruptible(mag__wnode_t *n);

/* ---- shared between files ------------------------------------------------- */
/* mag_mutex_lock that ignores cancellation and deadlines (mag_cond_wait's
 * relock). */
MAG_HIDDEN void mag__mutex_lock_uninterruptible(mag_mutex_t *m);

/* Per-thread pseudo-random numbers (select's starting case). */
MAG_HIDDEN uint32_t mag__sync_rand(void);

#endif /* MAGPIE_SYNC_INTERNAL_H */
