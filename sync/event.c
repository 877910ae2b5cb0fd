/*
 * sync/event.c - mag_event_t (asyncio.Event) and mag_notify_t
 * (tokio::sync::Notify).
 */
#include "sync/internal.h"

/* ---- event -----------------------------------------------------------------
 * State word: SET | WAITERS. A waiter sets WAITERS (under the queue lock)
 * with an RMW that also reads SET; a setter sets SET with an RMW that also
 * reads WAITERS. The two RMWs on one word are totally ordered, so either the
 * waiter sees SET and does not queue, or the setter sees WAITERS and drains
 * the queue (under the lock, after the waiter has queued). */
enum { E_SET = 1u, E_WAITERS = 2u };

int mag_event_init(mag_event_t *e)
{
    if (!e)
        return -EINVAL;
    *e = (mag_event_t)MAG_EVENT_INIT;
    return 0;
}

bool mag_event_is_set(mag_event_t *pub)
{
    mag__event_t *e = mag__event_of(pub);
    /* acquire: pairs with the release in mag_event_set, so a caller that sees
     * the flag also sees what the setter wrote before setting it. */
    return e && (atomic_load_explicit(&e->state, memory_order_acquire) & E_SET);
}

int mag_event_set(mag_event_t *pub)
{
    mag__event_t *e = mag__event_of(pub);
    if (!e)
        return -EINVAL;
    /* release: publishes the setter's writes to is_set / waiters. */
    uint32_t prev = atomic_fetch_or_explicit(&e->state, E_SET, memory_order_release);
    if (!(prev & E_WAITERS))
        return 0;
    mag__wake_t wk = {NULL};
    mag__spin_lock(&e->q.lock);
    mag__wl_drain(&e->q.list, &wk, 0);
    /* relaxed: under the queue lock, where waiters set it. */
    atomic_fetch_and_explicit(&e->state, ~E_WAITERS, memory_order_relaxed);
    mag__spin_unlock(&e->q.lock);
    mag__wake_all(&wk);
    return 0;
}

int mag_event_clear(mag_event_t *pub)
{
    mag__event_t *e = mag__event_of(pub);
    if (!e)
        return -EINVAL;
    /* relaxed: clearing publishes nothing. */
    atomic_fetch_and_explicit(&e->state, ~E_SET, memory_order_relaxed);
    return 0;
}

int mag_event_wait(mag_event_t *pub)
{
    mag__event_t *e = mag__event_of(pub);
    if (!e)
        return -EINVAL;
    if (atomic_load_explicit(&e->state, memory_order_acquire) & E_SET)
        return 0; /* acquire: pairs with mag_event_set's release */
    mag__wnode_t n;
    int rc = mag__wnode_begin(&n, MAG__WAIT_EVENT, e);
    if (rc)
        return rc;
    mag__spin_lock(&e->q.lock);
    /* acq_rel: acquire pairs with the setter's release when SET is seen;
     * the RMW orders this against the setter's (see above). */
    uint32_t prev = atomic_fetch_or_explicit(&e->state, E_WAITERS, memory_order_acq_rel);
    if (prev & E_SET) {
        mag__spin_unlock(&e->q.lock);
        mag__wnode_end(&n);
        return 0;
    }
    mag__wl_push(&e->q.list, &n);
    mag__spin_unlock(&e->q.lock);
    /* No repair on leave: a stale WAITERS bit only costs a setter one trip
     * through the lock. */
    return mag__wnode_wait(&e->q.lock, &e->q.list, &n, NULL, e);
}

/* ---- notify ----------------------------------------------------------------
 * The permit is touched under the queue lock, except the waiter's fast path,
 * which takes a stored permit with one exchange. */

int mag_notify_init(mag_notify_t *n)
{
    if (!n)
        return -EINVAL;
    *n = (mag_notify_t)MAG_NOTIFY_INIT;
    return 0;
}

int mag_notify_wait(mag_notify_t *pub)
{
    mag__notify_t *nt = mag__notify_of(pub);
    if (!nt)
        return -EINVAL;
    /* acquire: pairs with the release store of the permit in notify_one. */
    if (atomic_load_explicit(&nt->permit, memory_order_relaxed) &&
        atomic_exchange_explicit(&nt->permit, 0, memory_order_acquire))
        return 0;
    mag__wnode_t n;
    int rc = mag__wnode_begin(&n, MAG__WAIT_NOTIFY, nt);
    if (rc)
        return rc;
    mag__spin_lock(&nt->q.lock);
    /* The load first: most waits find no permit, and then skip the RMW. */
    if (atomic_load_explicit(&nt->permit, memory_order_relaxed) &&
        atomic_exchange_explicit(&nt->permit, 0, memory_order_acquire)) {
        mag__spin_unlock(&nt->q.lock);
        mag__wnode_end(&n);
        return 0;
    }
    mag__wl_push(&nt->q.list, &n);
    mag__spin_unlock(&nt->q.lock);
    return mag__wnode_wait(&nt->q.lock, &nt->q.list, &n, NULL, nt);
}

int mag_notify_one(mag_notify_t *pub)
{
    mag__notify_t *nt = mag__notify_of(pub);
    if (!nt)
        return -EINVAL;
    mag__spin_lock(&nt->q.lock);
    mag__wnode_t *n = mag__wl_pop_live(&nt->q.list);
    if (!n)
        /* release: pairs with the waiter's acquire exchange. */
        atomic_store_explicit(&nt->permit, 1, memory_order_release);
    mag__spin_unlock(&nt->q.lock);
    if (n)
        mag__wnode_signal(n);
    return 0;
}

int mag_notify_all(mag_notify_t *pub)
{
    mag__notify_t *nt = mag__notify_of(pub);
    if (!nt)
        return -EINVAL;
    mag__wake_t wk = {NULL};
    mag__spin_lock(&nt->q.lock);
    mag__wl_drain(&nt->q.list, &wk, 0);
    mag__spin_unlock(&nt->q.lock);
    mag__wake_all(&wk);
    return 0;
}
