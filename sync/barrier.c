/*
 * sync/barrier.c - mag_barrier_t and mag_wg_t (Go's sync.WaitGroup): the two
 * "wait until a count is reached" primitives. Both keep their count under the
 * queue lock; the wait group also mirrors it in an atomic so that a wait on a
 * finished group costs one load.
 */
#include "sync/internal.h"

/* ---- barrier ---------------------------------------------------------------- */

int mag_barrier_init(mag_barrier_t *b, unsigned n)
{
    if (!b || n == 0)
        return -EINVAL;
    *b = (mag_barrier_t)MAG_BARRIER_INIT(n);
    return 0;
}

/* A party that leaves before the round completes no longer counts. */
static void barrier_repair(void *obj, mag__wake_t *wk)
{
    mag__barrier_t *b = obj;
    (void)wk;
    b->arrived--;
}

int mag_barrier_wait(mag_barrier_t *pub)
{
    mag__barrier_t *b = mag__barrier_of(pub);
    if (!b || b->parties == 0)
        return -EINVAL;
    mag__wnode_t n;
    int rc = mag__wnode_begin(&n, MAG__WAIT_BARRIER, b);
    if (rc)
        return rc; /* a cancelled party never arrives */
    mag__spin_lock(&b->q.lock);
    if (++b->arrived == b->parties) {
        /* The last party: release the round and reset for the next. */
        mag__wake_t wk = {NULL};
        b->arrived = 0;
        mag__wl_drain(&b->q.list, &wk, 0);
        mag__spin_unlock(&b->q.lock);
        mag__wake_all(&wk);
        mag__wnode_end(&n);
        return MAG_BARRIER_SERIAL;
    }
    mag__wl_push(&b->q.list, &n);
    mag__spin_unlock(&b->q.lock);
    return mag__wnode_wait(&b->q.lock, &b->q.list, &n, barrier_repair, b);
}

/* ---- wait group ------------------------------------------------------------- */

int mag_wg_init(mag_wg_t *wg)
{
    if (!wg)
        return -EINVAL;
    *wg = (mag_wg_t)MAG_WG_INIT;
    return 0;
}

int mag_wg_add(mag_wg_t *pub, int64_t delta)
{
    mag__wg_t *wg = mag__wg_of(pub);
    if (!wg)
        return -EINVAL;
    mag__wake_t wk = {NULL};
    mag__spin_lock(&wg->q.lock);
    /* relaxed load: writes happen only under this lock. */
    int64_t c = atomic_load_explicit(&wg->count, memory_order_relaxed);
    /* c >= 0, so c + delta cannot overflow for a negative delta (whose
     * negation could: INT64_MIN). */
    if ((delta < 0 && c + delta < 0) || (delta > 0 && c > INT64_MAX - delta)) {
        mag__spin_unlock(&wg->q.lock);
        return -EINVAL;
    }
    c += delta;
    /* release: a waiter's lock-free acquire load that sees 0 then sees what
     * every done() caller wrote before its done(). */
    atomic_store_explicit(&wg->count, c, memory_order_release);
    if (c == 0)
        mag__wl_drain(&wg->q.list, &wk, 0);
    mag__spin_unlock(&wg->q.lock);
    mag__wake_all(&wk);
    return 0;
}

int mag_wg_done(mag_wg_t *wg)
{
    return mag_wg_add(wg, -1);
}

int mag_wg_wait(mag_wg_t *pub)
{
    mag__wg_t *wg = mag__wg_of(pub);
    if (!wg)
        return -EINVAL;
    /* acquire: pairs with the release store in mag_wg_add. */
    if (atomic_load_explicit(&wg->count, memory_order_acquire) == 0)
        return 0;
    mag__wnode_t n;
    int rc = mag__wnode_begin(&n, MAG__WAIT_WG, wg);
    if (rc)
        return rc;
    mag__spin_lock(&wg->q.lock);
    /* relaxed: under the lock, which orders it against mag_wg_add. */
    if (atomic_load_explicit(&wg->count, memory_order_relaxed) == 0) {
        mag__spin_unlock(&wg->q.lock);
        mag__wnode_end(&n);
        return 0;
    }
    mag__wl_push(&wg->q.list, &n);
    mag__spin_unlock(&wg->q.lock);
    return mag__wnode_wait(&wg->q.lock, &wg->q.list, &n, NULL, wg);
}
