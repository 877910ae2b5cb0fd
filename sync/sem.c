/*
 * sync/sem.c - mag_sem_t, a FIFO counting semaphore.
 *
 * State word: permits << 1 | WAITERS. WAITERS is set under the queue lock
 * while the queue may be non-empty; it closes the acquire fast path (no
 * barging past waiters) and sends release to the slow path, which hands the
 * permit to the first waiter instead of counting it. So permits > 0 and a
 * non-empty queue never last beyond one critical section.
 */
#include "sync/internal.h"

enum { S_WAITERS = 1u, S_ONE = 2u };

int mag_sem_init(mag_sem_t *s, unsigned count)
{
    if (!s || count > MAG_SEM_MAX)
        return -EINVAL;
    *s = (mag_sem_t)MAG_SEM_INIT(count);
    return 0;
}

unsigned mag_sem_value(mag_sem_t *pub)
{
    mag__sem_t *s = mag__sem_of(pub);
    if (!s)
        return 0;
    /* relaxed: a snapshot that orders nothing. */
    return atomic_load_explicit(&s->state, memory_order_relaxed) >> 1;
}

int mag_sem_tryacquire(mag_sem_t *pub)
{
    mag__sem_t *s = mag__sem_of(pub);
    if (!s)
        return -EINVAL;
    /* relaxed: a guess for the CAS, which is the acquire. */
    uint32_t v = atomic_load_explicit(&s->state, memory_order_relaxed);
    while (!(v & S_WAITERS) && v >= S_ONE) {
        /* acquire: pairs with the release in mag_sem_release. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &v, v - S_ONE, memory_order_acquire,
                                                  memory_order_relaxed))
            return 0;
    }
    return -EAGAIN;
}

static void sem_repair(void *obj, mag__wake_t *wk)
{
    mag__sem_t *s = obj;
    (void)wk;
    if (mag__wl_empty(&s->q.list))
        /* relaxed: under the queue lock, which orders it for slow paths. */
        atomic_fetch_and_explicit(&s->state, ~S_WAITERS, memory_order_relaxed);
}

int mag_sem_acquire(mag_sem_t *pub)
{
    mag__sem_t *s = mag__sem_of(pub);
    if (!s)
        return -EINVAL;
    mag__coop_spend();
    if (MAG_LIKELY(mag_sem_tryacquire(pub) == 0))
        return 0;

    mag__wnode_t n;
    int rc = mag__wnode_begin(&n, MAG__WAIT_SEM, s);
    if (rc)
        return rc;
    mag__spin_lock(&s->q.lock);
    /* relaxed guess; acquire CAS: pairs with mag_sem_release's release. */
    uint32_t v = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (!(v & S_WAITERS) && v >= S_ONE) {
            if (atomic_compare_exchange_weak_explicit(&s->state, &v, v - S_ONE,
                                                      memory_order_acquire, memory_order_relaxed)) {
                mag__spin_unlock(&s->q.lock);
                mag__wnode_end(&n);
                return 0;
            }
        } else if (v & S_WAITERS) {
            break;
        } else if (atomic_compare_exchange_weak_explicit(
                       &s->state, &v, v | S_WAITERS, memory_order_relaxed, memory_order_relaxed)) {
            /* A CAS, so a release that slipped in since the load is seen. */
            break;
        }
    }
    mag__wl_push(&s->q.list, &n);
    mag__spin_unlock(&s->q.lock);
    return mag__wnode_wait(&s->q.lock, &s->q.list, &n, sem_repair, s);
}

int mag_sem_release(mag_sem_t *pub)
{
    mag__sem_t *s = mag__sem_of(pub);
    if (!s)
        return -EINVAL;
    /* relaxed: a guess for the CAS, which is the release. */
    uint32_t v = atomic_load_explicit(&s->state, memory_order_relaxed);
    while (!(v & S_WAITERS)) {
        if ((v >> 1) >= MAG_SEM_MAX)
            return -EOVERFLOW;
        /* release: pairs with the acquirer's acquire CAS. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &v, v + S_ONE, memory_order_release,
                                                  memory_order_relaxed))
            return 0;
    }

    mag__spin_lock(&s->q.lock);
    mag__wnode_t *n = mag__wl_pop_live(&s->q.list);
    if (n) {
        if (mag__wl_empty(&s->q.list)) /* relaxed: under the queue lock */
            atomic_fetch_and_explicit(&s->state, ~S_WAITERS, memory_order_relaxed);
    } else {
        /* Everybody left meanwhile: count the permit and clear WAITERS.
         * release: as the fast path. */
        v = atomic_load_explicit(&s->state, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(&s->state, &v, (v & ~S_WAITERS) + S_ONE,
                                                      memory_order_release, memory_order_relaxed))
            ;
    }
    mag__spin_unlock(&s->q.lock);
    if (n)
        mag__wnode_signal(n); /* the permit goes straight to the waiter */
    return 0;
}
