/*
 * runtime/task_state.h - the task state word (mag_task.state) and every
 * transition it makes. Nothing outside this header writes the word; each
 * transition is a named function that says what happened, as Tokio's
 * task/state.rs does.
 *
 * The word is a status in the low bits plus a NOTIFY bit:
 *
 *   FREE -> RUNNING           spawn (mag__state_publish), every field set:
 *                             queued, as a yielded task is (below)
 *   RUNNABLE -> RUNNING       a worker (or a blocking-pool thread) runs a
 *                             woken task
 *   RUNNING -> PARKED         the scheduler (or the task switched to), after
 *                             the task switched out
 *   RUNNING -> RUNNING        a yield: it stays RUNNING while queued; a
 *                             fresh task's first start
 *   PARKED -> RUNNABLE        a waker; the waker queues it
 *   RUNNABLE|RUNNING + NOTIFY a waker that found it awake: do not park
 *   RUNNING -> DONE           the body returned
 *   DONE -> FREE              the last reference went
 *
 * A waker always performs a read-modify-write on the word (it sets NOTIFY even
 * on a task that is RUNNABLE or RUNNING): the scheduler starts a task with an
 * exchange, so the two read-modify-writes are ordered, and either the
 * scheduler's exchange sees the waker's write (and with it, by
 * acquire/release, the condition the waker published) or the waker sees
 * RUNNING and its NOTIFY stops the park. A waker that only loaded the word
 * could race the scheduler's store of RUNNING (the store-buffer pattern) and
 * lose the wake-up.
 */
#ifndef MAGPIE_RUNTIME_TASK_STATE_H
#define MAGPIE_RUNTIME_TASK_STATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* FREE is 0: a record whose memory was given back to the kernel reads as
 * zeros (task_pool.c), so a late wake-up that reaches it finds FREE and does
 * nothing. */
enum {
    MAG__FREE = 0,     /* the record is in a free pool, or its memory was given back */
    MAG__RUNNABLE = 1, /* woken: in a run queue, or about to be */
    MAG__RUNNING = 2,  /* on a worker (also while switching out), or queued
                        * after a yield, or spawned and not started yet */
    MAG__PARKED = 3,   /* suspended; the next wake queues it */
    MAG__DONE = 4,     /* returned; its stack is released */
    MAG__STATUS_MASK = 7,
    MAG__NOTIFY = 8,   /* woken while runnable or running: do not park */
};

/* The status alone (RUNNABLE ... FREE). acquire: a reader that sees DONE
 * sees the result and everything the body wrote (pairs with
 * mag__state_set_done). */
static inline uint32_t mag__state_status(_Atomic uint32_t *word)
{
    return atomic_load_explicit(word, memory_order_acquire) & MAG__STATUS_MASK;
}

/* A record carved from a slab (task_pool.c). relaxed: the pool's lock hands
 * it on; a late wake that reads it finds FREE either way. */
static inline void mag__state_init_free(_Atomic uint32_t *word)
{
    atomic_store_explicit(word, MAG__FREE, memory_order_relaxed);
}

/* A fresh task, not yet started, every field of its record set. It is
 * published RUNNING, as a task that yielded is while it waits in a queue:
 * a waker that comes before its first run sets NOTIFY with its
 * read-modify-write. Either mag__state_begin_run loads that NOTIFY and
 * clears it with its exchange, which reads the waker's write and so sees
 * what the waker published, or the bit stays in the word and stops the
 * task's first park: starting a fresh task that nobody woke needs no
 * exchange. Published RUNNABLE, every spawn paid a locked
 * exchange at its start, which waited for the spawn's stores to the cold
 * record to drain (chained_spawn: 12% of its time at 1 worker). Dumps tell
 * a fresh task by its stack, NULL until it first runs. release: pairs with
 * the acquire load in mag__task_peek (task.c), so that a walk that finds
 * the task sees its fields; the queue that hands the record on publishes
 * it to whoever runs it. A plain store on x86. */
static inline void mag__state_publish(_Atomic uint32_t *word)
{
    atomic_store_explicit(word, MAG__RUNNING, memory_order_release);
}

/* A worker is about to run the task. A task woken from PARKED is RUNNABLE:
 * the exchange (acq_rel) orders us after the waker's read-modify-write, so
 * the task sees what the waker published, and clears a NOTIFY that came while
 * it was queued. A task that yielded, or a fresh one, is RUNNING: a waker
 * meanwhile set NOTIFY with a read-modify-write, which makes its next park
 * run it again rather than lose the wake, so the plain load suffices and
 * neither a yield nor a spawn costs a locked instruction here. */
static inline void mag__state_begin_run(_Atomic uint32_t *word)
{
    if (atomic_load_explicit(word, memory_order_acquire) != MAG__RUNNING)
        atomic_exchange_explicit(word, MAG__RUNNING, memory_order_acq_rel);
}

/* A blocking-pool thread starts a job. An exchange like the scheduler's, so
 * that a concurrent wake's read-modify-write is ordered with it (on a job a
 * wake only sets NOTIFY: the record is never PARKED, so never queued). */
static inline void mag__state_begin_job(_Atomic uint32_t *word)
{
    atomic_exchange_explicit(word, MAG__RUNNING, memory_order_acq_rel);
}

/* The scheduler (or the task switched to directly), after the task switched
 * out to park. Returns true if it is now PARKED (the next wake queues it),
 * false if it was woken while switching out: it is RUNNING again with NOTIFY
 * cleared, and must be run again (at once, or queued). */
static inline bool mag__state_park(_Atomic uint32_t *word)
{
    uint32_t expected = MAG__RUNNING;
    /* acq_rel: release makes the task's writes visible to whoever wakes and
     * runs it; on failure, acquire sees the waker's data. */
    if (atomic_compare_exchange_strong_explicit(word, &expected, MAG__PARKED,
                                                memory_order_acq_rel, memory_order_acquire))
        return true;
    atomic_exchange_explicit(word, MAG__RUNNING, memory_order_acq_rel);
    return false;
}

/* What a wake did. */
typedef enum {
    MAG__WAKE_NONE,     /* DONE or FREE: nothing to wake */
    MAG__WAKE_NOTIFIED, /* runnable or running: NOTIFY set, it will not park */
    MAG__WAKE_SCHEDULE, /* was PARKED, now RUNNABLE: the caller must queue it */
} mag__wake_result_t;

/* Any thread. The caller published its condition before (the waker's rule in
 * internal.h). */
static inline mag__wake_result_t mag__state_wake(_Atomic uint32_t *word)
{
    /* relaxed first read: the CAS below is what orders. */
    uint32_t s = atomic_load_explicit(word, memory_order_relaxed);
    for (;;) {
        uint32_t status = s & MAG__STATUS_MASK;
        if (status == MAG__DONE || status == MAG__FREE)
            return MAG__WAKE_NONE;
        if (status == MAG__PARKED) {
            /* acq_rel: release publishes the waker's condition to whoever
             * runs the task; pairs with the exchange in begin_run. */
            if (atomic_compare_exchange_weak_explicit(word, &s, MAG__RUNNABLE,
                                                      memory_order_acq_rel, memory_order_relaxed))
                return MAG__WAKE_SCHEDULE;
            continue;
        }
        /* RUNNABLE or RUNNING: a read-modify-write even when NOTIFY is
         * already set, so that it is ordered against the scheduler's
         * exchange (see the top of this file). */
        if (atomic_compare_exchange_weak_explicit(word, &s, s | MAG__NOTIFY, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return MAG__WAKE_NOTIFIED;
    }
}

/* The body returned. release: the result and everything the body wrote, for
 * whoever sees DONE (mag__state_status, joiners). */
static inline void mag__state_set_done(_Atomic uint32_t *word)
{
    atomic_store_explicit(word, MAG__DONE, memory_order_release);
}

/* The last reference went: the record returns to a free pool. release: pairs
 * with the acquire in mag__state_status of a late handle check. */
static inline void mag__state_set_free(_Atomic uint32_t *word)
{
    atomic_store_explicit(word, MAG__FREE, memory_order_release);
}

/* The raw word, for task dumps only (relaxed: a snapshot). */
static inline uint32_t mag__state_peek(_Atomic uint32_t *word)
{
    return atomic_load_explicit(word, memory_order_relaxed);
}

#endif /* MAGPIE_RUNTIME_TASK_STATE_H */
