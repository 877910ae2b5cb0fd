/*
 * runtime/queue.c - the run queues: the runtime's inject queue (spawns and
 * wake-ups from outside its workers, and overflow) and each worker's local
 * queue (a Chase-Lev deque, deque.h, plus the LIFO slot), and where a task
 * made runnable goes.
 */
#include <stdlib.h>

#include "runtime/idle.h"
#include "runtime/queue.h"

/* ---- the inject queue ----------------------------------------------------- */

void mag__inject_push(mag_runtime_t *rt, mag_task_t *first, mag_task_t *last, size_t n)
{
    last->next = NULL;
    pthread_mutex_lock(&rt->inject_lock);
    if (rt->inject_tail)
        rt->inject_tail->next = first;
    else
        rt->inject_head = first;
    rt->inject_tail = last;
    /* relaxed: a hint read without the lock; the mutex orders the list. */
    atomic_store_explicit(&rt->inject_len,
                          atomic_load_explicit(&rt->inject_len, memory_order_relaxed) + n,
                          memory_order_relaxed);
    pthread_mutex_unlock(&rt->inject_lock);
}

/* Takes up to max tasks; returns the first, links the rest via ->next. */
mag_task_t *mag__inject_take(mag_runtime_t *rt, size_t max, size_t *taken)
{
    *taken = 0;
    if (!atomic_load_explicit(&rt->inject_len, memory_order_relaxed))
        return NULL;
    pthread_mutex_lock(&rt->inject_lock);
    size_t len = atomic_load_explicit(&rt->inject_len, memory_order_relaxed);
    size_t n = len < max ? len : max;
    mag_task_t *first = rt->inject_head, *last = NULL, *t = first;
    for (size_t i = 0; i < n; i++) {
        last = t;
        t = t->next;
    }
    rt->inject_head = t;
    if (!t)
        rt->inject_tail = NULL;
    if (last)
        last->next = NULL;
    atomic_store_explicit(&rt->inject_len, len - n, memory_order_relaxed);
    pthread_mutex_unlock(&rt->inject_lock);
    *taken = n;
    return n ? first : NULL;
}

/* ---- local queue ------------------------------------------------------------ */

/* ---- loop mode's spill ---------------------------------------------------
 * With one worker nobody else takes from the local queue, so a burst of
 * spawns beyond its 256 slots need not go through the inject queue's lock
 * and its list linked through the (cold) records, walked one cache miss a
 * task when taken back: an array of pointers that doubles does, read in
 * order. Its capacity is a power of two, so an index wraps with a mask, not
 * a division (tens of cycles, twice a task in a burst). */

/* The spill is full: twice the room (the first: 1024). Out of line, as
 * overflow_to_inject below, so that a push into room saves no registers. */
static __attribute__((noinline)) bool spill_grow(mag__worker_t *w, size_t len)
{
    size_t cap = w->spill_cap ? 2 * w->spill_cap : 1024;
    mag_task_t **a = malloc(cap * sizeof *a);
    if (!a)
        return false;
    for (size_t i = 0; i < len; i++) /* unwrapped, oldest first */
        a[i] = w->spill[(w->spill_head + i) & (w->spill_cap - 1)];
    free(w->spill);
    w->spill = a;
    w->spill_cap = cap;
    w->spill_head = 0;
    return true;
}

static bool spill_push(mag__worker_t *w, mag_task_t *t)
{
    size_t len = mag__spill_len(w);
    if (len == w->spill_cap && !spill_grow(w, len))
        return false;
    w->spill[(w->spill_head + len) & (w->spill_cap - 1)] = t;
    atomic_store_explicit(&w->spill_len, len + 1, memory_order_relaxed);
    return true;
}

mag_task_t *mag__spill_take(mag__worker_t *w)
{
    size_t len = mag__spill_len(w);
    if (!len)
        return NULL;
    mag_task_t *t = w->spill[w->spill_head];
    w->spill_head = (w->spill_head + 1) & (w->spill_cap - 1);
    atomic_store_explicit(&w->spill_len, len - 1, memory_order_relaxed);
    return t;
}

/* Half of the full local queue and t to the inject queue in one batch. A
 * function of its own: its kilobyte of batch on the stack, and the six
 * registers its loop saves, are not set up for the spill's few stores. */
static __attribute__((noinline)) void overflow_to_inject(mag__worker_t *w, mag_task_t *t)
{
    mag_task_t *batch[MAG__DEQUE_CAP / 2];
    unsigned n = mag__deque_take(&w->deque, batch, MAG__DEQUE_CAP / 2, false);
    for (unsigned i = 0; i + 1 < n; i++)
        batch[i]->next = batch[i + 1];
    if (n) {
        batch[n - 1]->next = t;
        mag__inject_push(w->rt, batch[0], t, n + 1);
    } else {
        mag__inject_push(w->rt, t, t, 1);
    }
}

/* The local queue is full: half of it and t go to the inject queue in one
 * batch (loop mode: t to the spill). Out of line, so the hot push below
 * stays small. */
void mag__push_overflow(mag__worker_t *w, mag_task_t *t)
{
    if (w->rt->nworkers != 1 || !spill_push(w, t))
        overflow_to_inject(w, t);
    mag__stat_inc(&w->stats.overflows, 1);
}

void mag__schedule(mag_runtime_t *rt, mag_task_t *t, bool is_new)
{
    mag__worker_t *w = mag__tls_worker;
    if (w && w->rt == rt) {
        mag__schedule_here(w, t, is_new);
        return;
    }
    mag__inject_push(rt, t, t, 1);
    if (w)
        mag__stat_inc(&w->stats.remote_wakes, 1);
    mag__notify_parked(rt);
}

bool mag__work_pending_anywhere(mag_runtime_t *rt)
{
    /* seq_cst loads: see mag__notify_parked. */
    if (atomic_load_explicit(&rt->inject_len, memory_order_seq_cst))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        mag__deque_t *q = &rt->workers[i]->deque;
        uint64_t t = atomic_load_explicit(&q->top, memory_order_seq_cst);
        if (atomic_load_explicit(&q->bottom, memory_order_seq_cst) > t)
            return true;
    }
    return false;
}
