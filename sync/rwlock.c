/*
 * sync/rwlock.c - mag_rwlock_t: many readers or one writer, FIFO, no writer
 * starvation.
 *
 * State word: WRITER | WAITERS | reader count. WAITERS is set (under the queue
 * lock) while the queue may be non-empty, and it closes both fast paths: new
 * readers queue behind a waiting writer instead of overtaking it. Grants
 * happen under the queue lock, from the head of the queue: a writer when no
 * one holds the lock, or every reader up to the next writer when no writer
 * holds it.
 */
#include "sync/internal.h"

enum {
    RW_WRITER = 1u << 31,
    RW_WAITERS = 1u << 30,
    RW_READERS = (1u << 30) - 1, /* mask of the reader count */
};
enum { RW_READ = 0, RW_WRITE = 1 };

int mag_rwlock_init(mag_rwlock_t *l)
{
    if (!l)
        return -EINVAL;
    *l = (mag_rwlock_t)MAG_RWLOCK_INIT;
    return 0;
}

/* Under the queue lock: admits what the head of the queue allows, moving the
 * admitted nodes onto wk, and clears WAITERS once the queue is empty. */
static void rw_grant(mag__rwlock_t *l, mag__wake_t *wk)
{
    mag__wnode_t *n;
    /* Only plain nodes are ever queued here (select is for channels), so the
     * head is removed directly rather than through mag__wl_pop_live. */
    while ((n = l->q.list.head)) {
        /* relaxed: other threads can only decrement the reader count
         * meanwhile (WAITERS closes the fast paths), and the RMWs re-read. */
        uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
        if (n->arg == RW_WRITE) {
            if (s & (RW_WRITER | RW_READERS))
                break;
            mag__wl_remove(&l->q.list, n);
            /* acquire: synchronises with the last holder's release (its
             * unlock); the signal then passes it on to the new owner. */
            atomic_fetch_or_explicit(&l->state, RW_WRITER, memory_order_acquire);
            mag__wake_add(wk, n);
            break;
        }
        if ((s & RW_WRITER) || (s & RW_READERS) == RW_READERS)
            break;
        mag__wl_remove(&l->q.list, n);
        atomic_fetch_add_explicit(&l->state, 1, memory_order_acquire); /* as above */
        mag__wake_add(wk, n);
    }
    if (mag__wl_empty(&l->q.list))
        /* relaxed: under the queue lock; see the header comment. */
        atomic_fetch_and_explicit(&l->state, ~(uint32_t)RW_WAITERS, memory_order_relaxed);
}

static void rw_repair(void *obj, mag__wake_t *wk)
{
    /* A writer that left from the head may have been holding readers back. */
    rw_grant(obj, wk);
}

static bool rw_can_take(uint32_t s, uintptr_t mode)
{
    if (mode == RW_WRITE)
        return (s & (RW_WRITER | RW_READERS)) == 0;
    return !(s & RW_WRITER) && (s & RW_READERS) != RW_READERS;
}

static int rw_lock_slow(mag__rwlock_t *l, uintptr_t mode)
{
    mag__wnode_t n;
    int rc = mag__wnode_begin(&n, MAG__WAIT_RWLOCK, l);
    if (rc)
        return rc;
    n.arg = mode;
    mag__spin_lock(&l->q.lock);
    bool queue_empty = mag__wl_empty(&l->q.list);
    /* relaxed: only a first guess for the CAS loop below. */
    uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    for (;;) {
        if (queue_empty && rw_can_take(s, mode)) {
            uint32_t next = mode == RW_WRITE ? (s | RW_WRITER) : s + 1;
            /* acquire: pairs with the release of the last unlock. */
            if (atomic_compare_exchange_weak_explicit(&l->state, &s, next, memory_order_acquire,
                                                      memory_order_relaxed)) {
                mag__spin_unlock(&l->q.lock);
                mag__wnode_end(&n);
                return 0;
            }
        } else if (s & RW_WAITERS) {
            break;
        } else if (atomic_compare_exchange_weak_explicit(
                       &l->state, &s, s | RW_WAITERS, memory_order_relaxed, memory_order_relaxed)) {
            /* The CAS (rather than an OR) fails if an unlock slipped in
             * since we read s, so we never queue behind a free lock that
             * nobody will grant. */
            break;
        }
    }
    mag__wl_push(&l->q.list, &n);
    mag__spin_unlock(&l->q.lock);
    return mag__wnode_wait(&l->q.lock, &l->q.list, &n, rw_repair, l);
}

int mag_rwlock_rdlock(mag_rwlock_t *pub)
{
    mag__rwlock_t *l = mag__rwlock_of(pub);
    if (!l)
        return -EINVAL;
    mag__coop_spend();
    /* relaxed load: a guess for the CAS, which is the acquire. */
    uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    if (MAG_LIKELY(!(s & (RW_WRITER | RW_WAITERS)) && (s & RW_READERS) != RW_READERS &&
                   atomic_compare_exchange_strong_explicit(
                       &l->state, &s, s + 1, memory_order_acquire, memory_order_relaxed)))
        return 0; /* acquire: pairs with the writer's release in unlock */
    return rw_lock_slow(l, RW_READ);
}

int mag_rwlock_wrlock(mag_rwlock_t *pub)
{
    mag__rwlock_t *l = mag__rwlock_of(pub);
    if (!l)
        return -EINVAL;
    mag__coop_spend();
    uint32_t s = 0;
    /* acquire: pairs with the release of the last unlock. */
    if (MAG_LIKELY(atomic_compare_exchange_strong_explicit(
            &l->state, &s, RW_WRITER, memory_order_acquire, memory_order_relaxed)))
        return 0;
    return rw_lock_slow(l, RW_WRITE);
}

int mag_rwlock_tryrdlock(mag_rwlock_t *pub)
{
    mag__rwlock_t *l = mag__rwlock_of(pub);
    if (!l)
        return -EINVAL;
    /* relaxed load, acquire CAS: as in rdlock. */
    uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    while (!(s & (RW_WRITER | RW_WAITERS)) && (s & RW_READERS) != RW_READERS) {
        if (atomic_compare_exchange_weak_explicit(&l->state, &s, s + 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return 0;
    }
    return -EAGAIN;
}

int mag_rwlock_trywrlock(mag_rwlock_t *pub)
{
    mag__rwlock_t *l = mag__rwlock_of(pub);
    if (!l)
        return -EINVAL;
    uint32_t s = 0;
    /* acquire: pairs with the release of the last unlock. */
    if (atomic_compare_exchange_strong_explicit(&l->state, &s, RW_WRITER, memory_order_acquire,
                                                memory_order_relaxed))
        return 0;
    return -EAGAIN;
}

static void rw_unlock_slow(mag__rwlock_t *l)
{
    mag__wake_t wk = {NULL};
    mag__spin_lock(&l->q.lock);
    rw_grant(l, &wk);
    mag__spin_unlock(&l->q.lock);
    mag__wake_all(&wk);
}

int mag_rwlock_unlock(mag_rwlock_t *pub)
{
    mag__rwlock_t *l = mag__rwlock_of(pub);
    if (!l)
        return -EINVAL;
    /* relaxed: a guess; the RMWs below carry the release. */
    uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    for (;;) {
        if (s & RW_WRITER) {
            /* release: publishes the writer's critical section. The writer
             * alone can clear WRITER, so an RMW is safe against readers'
             * concurrent failed CASes. */
            uint32_t prev =
                atomic_fetch_and_explicit(&l->state, ~(uint32_t)RW_WRITER, memory_order_release);
            if (prev & RW_WAITERS)
                rw_unlock_slow(l);
            return 0;
        }
        if ((s & RW_READERS) == 0)
            return -EPERM;
        /* release: publishes the reader's reads before a writer's writes. */
        if (atomic_compare_exchange_weak_explicit(&l->state, &s, s - 1, memory_order_release,
                                                  memory_order_relaxed)) {
            if ((s & RW_READERS) == 1 && (s & RW_WAITERS))
                rw_unlock_slow(l);
            return 0;
        }
    }
}
