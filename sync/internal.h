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

/* ---- the wait queue -------------------------------------------------------- */
struct mag__wnode;
typedef struct mag__wlist {
    struct mag__wnode *head, *tail;
} mag__wlist_t;
typedef struct mag__waitq {
    ck_spinlock_fas_t lock; /* never held across a suspension */
    mag__wlist_t list;      /* FIFO of waiters */
} mag__waitq_t;

/* ---- private layouts of the public primitives -----------------------------
 * magpie/sync.h gives each caller-allocated primitive opaque storage of a
 * fixed size and alignment, so that the public header needs neither C11
 * atomics nor Concurrency Kit; these are the real layouts. The public static
 * initializers set the first two 32-bit words and zero the rest, and the
 * _init functions store exactly those initializers. So every layout begins
 * with the word that the initializer sets (state, permit or parties, 32
 * bits at offset 0) and takes all-zero bytes for an idle wait queue: an
 * unlocked ck_spinlock_fas (CK_SPINLOCK_FAS_INITIALIZER is {false}) and empty
 * lists. */
typedef struct mag__mutex {
    _Atomic uint32_t state; /* LOCKED | WAITERS */
    mag__waitq_t q;
} mag__mutex_t;
typedef struct mag__rwlock {
    _Atomic uint32_t state; /* WRITER | WAITERS | reader count */
    mag__waitq_t q;
} mag__rwlock_t;
typedef struct mag__sem {
    _Atomic uint32_t state; /* permits << 1 | WAITERS, as MAG_SEM_INIT writes it */
    mag__waitq_t q;
} mag__sem_t;
typedef struct mag__event {
    _Atomic uint32_t state; /* SET | WAITERS */
    mag__waitq_t q;
} mag__event_t;
typedef struct mag__notify {
    _Atomic uint32_t permit; /* 0 or 1 */
    mag__waitq_t q;
} mag__notify_t;
typedef struct mag__cond {
    mag__waitq_t q;
} mag__cond_t;
typedef struct mag__barrier {
    uint32_t parties, arrived; /* under q.lock */
    mag__waitq_t q;
} mag__barrier_t;
typedef struct mag__wg {
    _Atomic int64_t count;
    mag__waitq_t q;
} mag__wg_t;

/* The state words must be plain integers in memory for the public
 * initializers to set them. */
_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t), "atomic state word of 32 bits");
_Static_assert(sizeof(_Atomic int64_t) == sizeof(int64_t), "atomic counter of 64 bits");
_Static_assert(sizeof(ck_spinlock_fas_t) == sizeof(uint32_t), "spinlock of 32 bits");

/* Checks that priv fits the storage of pub and begins with the word its
 * initializer sets, and defines fn, the conversion from the public pointer
 * (NULL stays NULL, so callers convert before their NULL check). */
#define MAG__LAYOUT(pub, priv, first, fn)                                                          \
    _Static_assert(sizeof(priv) <= sizeof(pub), #priv " outgrew the storage of " #pub);            \
    _Static_assert(_Alignof(priv) <= _Alignof(pub), #priv " needs more alignment than " #pub);     \
    _Static_assert(offsetof(priv, first) == 0,                                                     \
                   #priv "." #first " is where the initializer writes");                           \
    static inline priv *fn(pub *p)                                                                 \
    {                                                                                              \
        return (priv *)(void *)p;                                                                  \
    }
MAG__LAYOUT(mag_mutex_t, mag__mutex_t, state, mag__mutex_of)
MAG__LAYOUT(mag_rwlock_t, mag__rwlock_t, state, mag__rwlock_of)
MAG__LAYOUT(mag_sem_t, mag__sem_t, state, mag__sem_of)
MAG__LAYOUT(mag_event_t, mag__event_t, state, mag__event_of)
MAG__LAYOUT(mag_notify_t, mag__notify_t, permit, mag__notify_of)
MAG__LAYOUT(mag_cond_t, mag__cond_t, q, mag__cond_of)
MAG__LAYOUT(mag_barrier_t, mag__barrier_t, parties, mag__barrier_of)
MAG__LAYOUT(mag_wg_t, mag__wg_t, count, mag__wg_of)
#undef MAG__LAYOUT

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
MAG_HIDDEN void mag__mutex_lock_uninterruptible(mag__mutex_t *m);

/* Per-thread pseudo-random numbers (select's starting case). */
MAG_HIDDEN uint32_t mag__sync_rand(void);

#endif /* MAGPIE_SYNC_INTERNAL_H */
