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
 * batch. Out of line, so that the hot push below stays small. */
MAG_HIDDEN void mag__push_overflow(mag__worker_t *w, mag_task_t *t);
/* Any queued work on any worker or in the inject queue (seq_cst loads: the
 * last look of a worker about to park, see mag__notify_parked). */
MAG_HIDDEN bool mag__work_pending_anywhere(mag_runtime_t *rt);

/* To the back of w's local queue (the owner only). */
static inline void mag__push_back(mag__worker_t *w, mag_task_t *t)
{
    if (MAG_UNLIKELY(!mag__deque_push(&w->deque, t)))
        mag__push_overflow(w, t);
}

#endif /* MAGPIE_RUNTIME_QUEUE_H */
