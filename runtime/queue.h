/*
 * runtime/queue.h - the run queues (queue.c): the inject queue and each
 * worker's local queue. Private to runtime/.
 */
#ifndef MAGPIE_RUNTIME_QUEUE_H
#define MAGPIE_RUNTIME_QUEUE_H

#include "runtime/sched.h"

/* Takes up to max tasks from the inject queue; returns the first and links
 * the rest through ->next, *taken says how many. NULL when empty. */
MAG_HIDDEN mag_task_t *mag__inject_take(mag_runtime_t *rt, size_t max, size_t *taken);
/* The local queue is full: half of it and t go to the inject queue in one
 * batch; in loop mode t goes to the worker's spill instead. Out of line, so
 * that the hot push below stays small. */
MAG_HIDDEN void mag__push_overflow(mag__worker_t *w, mag_task_t *t);
/* Loop mode: the oldest spilled task, or NULL. */
MAG_HIDDEN mag_task_t *mag__spill_take(mag__worker_t *w);
/* Tasks spilled (relaxed: a gauge, and the owner's own count). */
static inline size_t mag__spill_len(mag__worker_t *w)
{
    return atomic_load_explicit(&w->spill_len, memory_order_relaxed);
}
/* What the (i+1)th mag__spill_take from now would return, or NULL (the
 * owner's look, for a prefetch). */
static inline mag_task_t *mag__spill_peek(mag__worker_t *w, size_t i)
{
    return mag__spill_len(w) > i ? w->spill[(w->spill_head + i) & (w->spill_cap - 1)] : NULL;
}
/* Any queued work on any worker or in the inject queue (seq_cst loads: the
 * last look of a worker about to park, see mag__notify_parked). */
MAG_HIDDEN bool mag__work_pending_anywhere(mag_runtime_t *rt);

/* Puts t in w's LIFO slot (the owner only); returns the task it displaced.
 * Loop mode has no rescuer, so plain accesses do; otherwise an exchange
 * (acq_rel: release publishes t to a rescuer's exchange, acquire pairs with
 * the release of the exchange that put the previous one in). */
static inline mag_task_t *mag__lifo_put(mag__worker_t *w, mag_task_t *t)
{
    if (w->rt->nworkers == 1) {
        mag_task_t *prev = atomic_load_explicit(&w->lifo, memory_order_relaxed);
        atomic_store_explicit(&w->lifo, t, memory_order_relaxed);
        return prev;
    }
    return atomic_exchange_explicit(&w->lifo, t, memory_order_acq_rel);
}

/* Takes the task in w's LIFO slot, or NULL (the owner, or a rescuer of a
 * stuck worker). */
static inline mag_task_t *mag__lifo_take(mag__worker_t *w)
{
    mag_task_t *t = atomic_load_explicit(&w->lifo, memory_order_relaxed);
    if (!t)
        return NULL;
    if (w->rt->nworkers == 1) {
        atomic_store_explicit(&w->lifo, NULL, memory_order_relaxed);
        return t;
    }
    /* acquire: pairs with the release in mag__lifo_put. */
    return atomic_exchange_explicit(&w->lifo, NULL, memory_order_acquire);
}

/* To the back of w's local queue (the owner only). */
static inline void mag__push_back(mag__worker_t *w, mag_task_t *t)
{
    if (MAG_UNLIKELY(!mag__deque_push(&w->deque, t)))
        mag__push_overflow(w, t);
}

/* A batch the scheduler itself made runnable (completions it reaped, timers
 * it expired) is shared with a parked worker from this many queued tasks
 * on. A smaller one is run here: waking a worker to steal two or three
 * short tasks cost more than running them, a doorbell and a park for each,
 * and moved their connections from ring to ring. A backlog that outlasts a
 * monitor tick is shared anyway (monitor.c). Half a drain of the readiness
 * epoll (ready.c, DRAIN_BATCH): at 16, echo at 2 workers woke the other
 * worker 3,500 times a second for batches it barely halved, and the woken
 * worker, queued on the poller's CPU, preempted it; at 32 the same load
 * makes about half the context switches per request with as many
 * requests/s. At 64, a whole drain, only a backlog the monitor sees would
 * ever be shared. */
#define SCHED_BATCH_SHARE 32

/* mag__schedule on the calling thread's own worker w (one of t's runtime),
 * inline for a spawn, which knows w already. */
static inline void mag__schedule_here(mag__worker_t *w, mag_task_t *t, bool is_new)
{
    MAG__HOOK(w, wake, w, t, is_new);
    /* The task just woken or spawned runs next here (cache-warm); the one it
     * displaces goes to the back, where others may steal it. */
    mag_task_t *prev = mag__lifo_put(w, t);
    if (!prev)
        return;
    mag__push_back(w, prev);
    if (w->rt->nworkers == 1) /* loop mode: no other worker to wake */
        return;
    /* No task is current: the scheduler is reaping, expiring or finishing a
     * task (whose joiner it wakes). A task that wakes or spawns another
     * shares at once, as Tokio does. */
    if (!w->current && mag__deque_len(&w->deque) < SCHED_BATCH_SHARE)
        return;
    mag__notify_parked(w->rt);
}

#endif /* MAGPIE_RUNTIME_QUEUE_H */
