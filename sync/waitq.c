/*
 * sync/waitq.c - the wait-queue core: the spinlock's slow path, waiting with
 * early leave on cancellation or deadline, and per-thread random numbers.
 * The contract is in sync/internal.h.
 */
#include <sched.h>

#include "sync/internal.h"

void mag__spin_lock_slow(ck_spinlock_fas_t *l)
{
    /* Spin on a plain load (no cache-line ping-pong), backing off
     * exponentially; after a while yield the CPU: with more workers than
     * cores the holder may be preempted, and spinning would only delay it. */
    ck_backoff_t backoff = CK_BACKOFF_INITIALIZER >> 4;
    unsigned spins = 0;
    for (;;) {
        while (ck_spinlock_fas_locked(l)) {
            if (++spins < 16) {
                ck_backoff_eb(&backoff);
                ck_pr_stall();
            } else {
                sched_yield();
            }
        }
        if (ck_spinlock_fas_trylock(l))
            return;
    }
}

void mag__wl_drain(mag__wlist_t *l, mag__wake_t *wk, int result)
{
    mag__wnode_t *n;
    while ((n = mag__wl_pop_live(l))) {
        n->result = result;
        mag__wake_add(wk, n);
    }
}

int mag__wnode_begin(mag__wnode_t *n, int wait_kind, const void *obj)
{
    mag__waiter_init(&n->w);
    n->next = n->prev = NULL;
    n->sel = NULL;
    n->elem = NULL;
    n->arg = 0;
    n->result = 0;
    n->index = 0;
    n->linked = false;
    n->in_task = n->w.task != NULL;
    if (n->in_task) {
        int rc = mag__suspend_begin(wait_kind, obj);
        if (rc == -EPERM) {
            /* Not a suspendable task after all: wait as a thread would. */
            n->in_task = false;
            n->w.task = NULL;
        } else if (rc) {
            return rc;
        }
    }
    return 0;
}

void mag__wnode_wait_uninterruptible(mag__wnode_t *n)
{
    mag__waiter_wait(&n->w, false);
}

int mag__wnode_wait(ck_spinlock_fas_t *lock, mag__wlist_t *list, mag__wnode_t *n,
                    mag__repair_fn repair, void *obj)
{
    int rc;
    if (n->in_task) {
        rc = mag__waiter_wait(&n->w, true);
        mag__suspend_end();
    } else {
        rc = mag__waiter_wait(&n->w, false);
    }
    if (MAG_LIKELY(rc == 0))
        return n->result; /* ordered by the signal's release/acquire */

    /* Cancelled or past the deadline: leave, unless a waker got here first. */
    mag__wake_t wk = {NULL};
    mag__spin_lock(lock);
    if (n->linked) {
        mag__wl_remove(list, n);
        if (repair)
            repair(obj, &wk);
        mag__spin_unlock(lock);
        mag__wake_all(&wk);
        return rc;
    }
    mag__spin_unlock(lock);
    /* A waker unlinked n, so it has completed our operation and its signal
     * is on the way: take the hand-off rather than lose it. */
    mag__wnode_wait_uninterruptible(n);
    return n->result;
}

/* xorshift32 per thread, seeded from the thread's stack address and a global
 * counter. Only select's starting case depends on it. */
static _Atomic uint32_t rand_seed_counter;
static _Thread_local uint32_t rand_state;

uint32_t mag__sync_rand(void)
{
    uint32_t x = rand_state;
    if (MAG_UNLIKELY(x == 0)) {
        /* relaxed: any distinct value will do. */
        uint32_t c =
            atomic_fetch_add_explicit(&rand_seed_counter, 0x9e3779b9u, memory_order_relaxed);
        x = (uint32_t)(uintptr_t)&x ^ c ^ 0x6d2b79f5u;
        if (x == 0)
            x = 1;
    }
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rand_state = x;
    return x;
}
