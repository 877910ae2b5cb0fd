/*
 * sync/mutex.c - mag_mutex_t and mag_cond_t.
 *
 * The mutex state word holds LOCKED and WAITERS. WAITERS is set only under the
 * queue lock and means "the queue may be non-empty": it makes the unlock fast
 * path (a CAS from exactly LOCKED to 0) fail, so that an unlocker with
 * waiters takes the slow path and hands the lock to the first of them without
 * ever clearing LOCKED. WAITERS implies LOCKED.
 */
#include "sync/internal.h"

enum { M_LOCKED = 1u, M_WAITERS = 2u };

int mag_mutex_init(mag_mutex_t *m)
{
    if (!m)
        return -EINVAL;
    *m = (mag_mutex_t)MAG_MUTEX_INIT;
    return 0;
}

int mag_mutex_trylock(mag_mutex_t *pub)
{
    mag__mutex_t *m = mag__mutex_of(pub);
    if (!m)
        return -EINVAL;
    uint32_t expect = 0;
    /* acquire: pairs with the release in unlock (fast path or hand-off). */
    if (atomic_compare_exchange_strong_explicit(&m->state, &expect, M_LOCKED, memory_order_acquire,
                                                memory_order_relaxed))
        return 0;
    return -EAGAIN;
}

/* Repair after a waiter left: with the queue empty, clear WAITERS so that the
 * next unlock takes the fast path. */
static void mutex_repair(void *obj, mag__wake_t *wk)
{
    mag__mutex_t *m = obj;
    (void)wk;
    if (mag__wl_empty(&m->q.list))
        /* relaxed: under the queue lock, which orders it for other slow
         * paths; a fast-path unlock only needs to see the bit eventually. */
        atomic_fetch_and_explicit(&m->state, ~M_WAITERS, memory_order_relaxed);
}

/* Under the queue lock: takes the mutex if it is free (0), or marks WAITERS
 * (then the caller queues and will be handed the lock). Returns true when
 * taken. */
static bool mutex_take_or_mark(mag__mutex_t *m)
{
    uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
    for (;;) {
        if (!(s & M_LOCKED)) {
            /* acquire: pairs with the unlocker's release. */
            if (atomic_compare_exchange_weak_explicit(&m->state, &s, s | M_LOCKED,
                                                      memory_order_acquire, memory_order_relaxed))
                return true;
        } else if (s & M_WAITERS) {
            return false;
        } else if (atomic_compare_exchange_weak_explicit(
                       &m->state, &s, s | M_WAITERS, memory_order_relaxed, memory_order_relaxed)) {
            /* relaxed: the CAS only has to make the unlocker's fast-path CAS
             * fail; the hand-off itself is ordered by the queue lock. */
            return false;
        }
    }
}

static int mutex_lock_slow(mag__mutex_t *m, bool interruptible)
{
    mag__wnode_t n;
    int rc;
    if (interruptible) {
        if ((rc = mag__wnode_begin(&n, MAG__WAIT_MUTEX, m)))
            return rc;
    } else {
        mag__waiter_init(&n.w);
        n.sel = NULL;
        n.result = 0;
        n.in_task = false;
    }
    /* A short optimistic spin: critical sections are often tiny and the
     * holder may be running on another core right now. */
    for (int i = 0; i < 16; i++) {
        uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
        if (s & M_WAITERS)
            break; /* others queued first: do not barge */
        if (s == 0 && atomic_compare_exchange_weak_explicit(
                          &m->state, &s, M_LOCKED, memory_order_acquire, memory_order_relaxed)) {
            mag__wnode_end(&n);
            return 0;
        }
        ck_pr_stall();
    }
    mag__spin_lock(&m->q.lock);
    if (mutex_take_or_mark(m)) {
        mag__spin_unlock(&m->q.lock);
        mag__wnode_end(&n);
        return 0;
    }
    mag__wl_push(&m->q.list, &n);
    mag__spin_unlock(&m->q.lock);
    if (!interruptible) {
        mag__wnode_wait_uninterruptible(&n);
        return 0;
    }
    return mag__wnode_wait(&m->q.lock, &m->q.list, &n, mutex_repair, m);
}

int mag_mutex_lock(mag_mutex_t *pub)
{
    mag__mutex_t *m = mag__mutex_of(pub);
    if (!m)
        return -EINVAL;
    mag__coop_spend();
    uint32_t expect = 0;
    /* acquire: pairs with the release in unlock. */
    if (MAG_LIKELY(atomic_compare_exchange_strong_explicit(
            &m->state, &expect, M_LOCKED, memory_order_acquire, memory_order_relaxed)))
        return 0;
    return mutex_lock_slow(m, true);
}

void mag__mutex_lock_uninterruptible(mag__mutex_t *m)
{
    uint32_t expect = 0;
    /* acquire: pairs with the release in unlock. */
    if (atomic_compare_exchange_strong_explicit(&m->state, &expect, M_LOCKED, memory_order_acquire,
                                                memory_order_relaxed))
        return;
    mutex_lock_slow(m, false);
}

int mag_mutex_unlock(mag_mutex_t *pub)
{
    mag__mutex_t *m = mag__mutex_of(pub);
    if (!m)
        return -EINVAL;
    uint32_t s = M_LOCKED;
    /* release: publishes the critical section to the next locker's acquire. */
    if (MAG_LIKELY(atomic_compare_exchange_strong_explicit(&m->state, &s, 0, memory_order_release,
                                                           memory_order_relaxed)))
        return 0;
    if (!(s & M_LOCKED))
        return -EPERM;

    /* WAITERS: hand the lock to the first waiter; LOCKED stays set. */
    mag__spin_lock(&m->q.lock);
    mag__wnode_t *n = mag__wl_pop_live(&m->q.list);
    if (n) {
        if (mag__wl_empty(&m->q.list))
            /* relaxed: ordered by the queue lock (see mutex_repair). */
            atomic_fetch_and_explicit(&m->state, ~M_WAITERS, memory_order_relaxed);
    } else {
        /* Every waiter left meanwhile. release: as the fast path. */
        atomic_store_explicit(&m->state, 0, memory_order_release);
    }
    mag__spin_unlock(&m->q.lock);
    if (n)
        mag__wnode_signal(n); /* release/acquire through the waiter's state */
    return 0;
}

/* ---- condition variable ----------------------------------------------------
 * A waiter queues on the condition's own queue before it unlocks the mutex,
 * so a signal sent after the unlock (or even before it) finds the node. */

int mag_cond_init(mag_cond_t *c)
{
    if (!c)
        return -EINVAL;
    *c = (mag_cond_t)MAG_COND_INIT;
    return 0;
}

int mag_cond_wait(mag_cond_t *cpub, mag_mutex_t *mpub)
{
    mag__cond_t *c = mag__cond_of(cpub);
    mag__mutex_t *m = mag__mutex_of(mpub);
    if (!c || !m)
        return -EINVAL;
    /* relaxed: the caller holds m, so its own earlier lock ordered this. */
    if (!(atomic_load_explicit(&m->state, memory_order_relaxed) & M_LOCKED))
        return -EPERM;
    mag__wnode_t n;
    int rc = mag__wnode_begin(&n, MAG__WAIT_COND, c);
    if (rc)
        return rc; /* m is still held */
    mag__spin_lock(&c->q.lock);
    mag__wl_push(&c->q.list, &n);
    mag__spin_unlock(&c->q.lock);
    mag_mutex_unlock(mpub);
    rc = mag__wnode_wait(&c->q.lock, &c->q.list, &n, NULL, c);
    mag__mutex_lock_uninterruptible(m);
    return rc;
}

int mag_cond_signal(mag_cond_t *pub)
{
    mag__cond_t *c = mag__cond_of(pub);
    if (!c)
        return -EINVAL;
    mag__spin_lock(&c->q.lock);
    mag__wnode_t *n = mag__wl_pop_live(&c->q.list);
    if (n)
        n->result = 0;
    mag__spin_unlock(&c->q.lock);
    if (n)
        mag__wnode_signal(n);
    return 0;
}

int mag_cond_broadcast(mag_cond_t *pub)
{
    mag__cond_t *c = mag__cond_of(pub);
    if (!c)
        return -EINVAL;
    mag__wake_t wk = {NULL};
    mag__spin_lock(&c->q.lock);
    mag__wl_drain(&c->q.list, &wk, 0);
    mag__spin_unlock(&c->q.lock);
    mag__wake_all(&wk);
    return 0;
}
