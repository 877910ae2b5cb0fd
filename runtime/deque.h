/*
 * runtime/deque.h - a worker's bounded run queue (Chase–Lev array, 256 slots).
 *
 * Only the owning worker pushes, at the bottom. Everyone takes from the top:
 * thieves steal half, and the owner also takes from the top so that its queue
 * is FIFO (yields go to the back, nothing starves). Cache locality for the
 * task just woken comes from the worker's LIFO slot instead of a LIFO pop,
 * which is also why the owner never needs the seq_cst fence of the classic
 * LIFO take: every take is the same compare-and-swap on top.
 *
 * top and bottom are 64-bit counters that never wrap in practice, so a
 * compare-and-swap on top cannot succeed on a stale value (no ABA).
 * Slots are atomics because a thief may read a slot that the owner is
 * overwriting after the window moved on; that thief's CAS then fails and it
 * drops what it read.
 */
#ifndef MAGPIE_RUNTIME_DEQUE_H
#define MAGPIE_RUNTIME_DEQUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/internal.h"

#define MAG__DEQUE_CAP 256u
#define MAG__DEQUE_MASK (MAG__DEQUE_CAP - 1)

typedef struct mag__deque {
    _Atomic uint64_t top; /* next slot to take; CAS by owner and thieves */
    char pad0[MAG_CACHELINE - sizeof(uint64_t)];
    _Atomic uint64_t bottom; /* next slot to fill; written by the owner only */
    char pad1[MAG_CACHELINE - sizeof(uint64_t)];
    _Atomic(mag_task_t *) slots[MAG__DEQUE_CAP];
} mag__deque_t;

static inline uint64_t mag__deque_len(mag__deque_t *q)
{
    /* Relaxed: a hint for metrics, idle checks and overflow decisions. */
    uint64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    uint64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    return b > t ? b - t : 0;
}

/* Owner only. false when full: the caller moves half to the inject queue. */
static inline bool mag__deque_push(mag__deque_t *q, mag_task_t *t)
{
    uint64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    /* acquire: pairs with a taker's CAS on top, so the slot it vacated is
     * free before we overwrite it. */
    uint64_t top = atomic_load_explicit(&q->top, memory_order_acquire);
    if (b - top >= MAG__DEQUE_CAP)
        return false;
    atomic_store_explicit(&q->slots[b & MAG__DEQUE_MASK], t, memory_order_relaxed);
    /* release: publishes the slot (and the task's contents) to takers, who
     * load bottom with acquire. */
    atomic_store_explicit(&q->bottom, b + 1, memory_order_release);
    return true;
}

/* Takes up to max tasks from the top into out[]; returns how many. Used by
 * the owner (max 1), by thieves (half) and for overflow (half). */
static inline unsigned mag__deque_take(mag__deque_t *q, mag_task_t **out, unsigned max, bool half)
{
    for (;;) {
        /* acquire on both: pairs with push's release store of bottom and
         * with other takers' CAS of top. */
        uint64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
        uint64_t b = atomic_load_explicit(&q->bottom, memory_order_acquire);
        if (b <= t)
            return 0;
        uint64_t n = b - t;
        if (n > MAG__DEQUE_CAP) /* torn view while racing: retry */
            continue;
        if (half)
            n = n - n / 2; /* round up: a single task is stolen too */
        if (n > max)
            n = max;
        for (uint64_t i = 0; i < n; i++)
            out[i] = atomic_load_explicit(&q->slots[(t + i) & MAG__DEQUE_MASK],
                                          memory_order_relaxed);
        /* acq_rel: acquire orders our slot reads before a later owner
         * overwrite is seen as free; release lets the owner's acquire load of
         * top observe that the slots are vacated. */
        if (atomic_compare_exchange_strong_explicit(&q->top, &t, t + n, memory_order_acq_rel,
                                                    memory_order_relaxed))
            return (unsigned)n;
    }
}

/* The owner's take where no one else ever takes (loop mode: no thieves, no
 * rescuers): the same FIFO order without the compare-and-swap; *left: how
 * many stay queued. Others may still read top and bottom for lengths,
 * which the atomics keep defined. */
static inline mag_task_t *mag__deque_take_alone(mag__deque_t *q, uint64_t *left)
{
    uint64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    uint64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    if (b <= t)
        return NULL;
    mag_task_t *task = atomic_load_explicit(&q->slots[t & MAG__DEQUE_MASK], memory_order_relaxed);
    atomic_store_explicit(&q->top, t + 1, memory_order_relaxed);
    *left = b - t - 1;
    return task;
}

/* The task i places from the top (0: the one the owner's next take
 * returns); the caller knows the queue holds more than i (loop mode: nobody
 * else takes). */
static inline mag_task_t *mag__deque_peek(mag__deque_t *q, uint64_t i)
{
    uint64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    return atomic_load_explicit(&q->slots[(t + i) & MAG__DEQUE_MASK], memory_order_relaxed);
}

#endif /* MAGPIE_RUNTIME_DEQUE_H */
