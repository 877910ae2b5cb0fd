/*
 * runtime/timer.c - a hierarchical timing wheel per worker.
 *
 * Six levels of 64 slots. A level-0 slot spans one tick of 2^16 ns (about
 * 65 us); each level up spans 64 times more, so the wheel reaches 2^36 ticks
 * (about 52 days) and anything later waits in the top level and cascades.
 * Arming, disarming and the next expiry are O(1) (a bit scan per level).
 * Timers are rounded up to the next tick, so they never fire early.
 *
 * The wheel belongs to one worker, which expires it, but a task may leave
 * that worker before its timer fires (woken by something else, then stolen),
 * and must disarm from wherever it is. So each wheel has a mutex: uncontended
 * almost always, and never held across anything that can block.
 */
#include <limits.h>
#include <string.h>

#include "runtime/sched.h"

#define LEVEL_BITS 6
#define MAX_TICK ((1ull << (LEVEL_BITS * MAG__WHEEL_LEVELS)) - 1)

static uint64_t to_tick(uint64_t ns)
{
    /* Round up: a timer never fires before its time. */
    uint64_t t = ns >> MAG__WHEEL_SHIFT;
    return (t << MAG__WHEEL_SHIFT) == ns ? t : t + 1;
}

void mag__wheel_init(mag__wheel_t *w, uint64_t now_ns)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    w->elapsed = now_ns >> MAG__WHEEL_SHIFT;
}

void mag__wheel_destroy(mag__wheel_t *w)
{
    pthread_mutex_destroy(&w->lock);
}

static void link_timer(mag__wheel_t *w, mag__timer_t *t, uint64_t when)
{
    uint64_t masked = (w->elapsed ^ when) | (MAG__WHEEL_SLOTS - 1);
    if (masked > MAX_TICK)
        masked = MAX_TICK;
    unsigned level = (unsigned)(63 - __builtin_clzll(masked)) / LEVEL_BITS;
    unsigned slot = (unsigned)(when >> (level * LEVEL_BITS)) & (MAG__WHEEL_SLOTS - 1);
    t->level = level;
    t->slot = slot;
    t->prev = NULL;
    t->next = w->slots[level][slot];
    if (t->next)
        t->next->prev = t;
    w->slots[level][slot] = t;
    w->occupied[level] |= 1ull << slot;
}

static void unlink_timer(mag__wheel_t *w, mag__timer_t *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        w->slots[t->level][t->slot] = t->next;
    if (t->next)
        t->next->prev = t->prev;
    if (!w->slots[t->level][t->slot])
        w->occupied[t->level] &= ~(1ull << t->slot);
}

void mag__timer_arm(mag__timer_t *t, mag_task_t *task, uint64_t when_ns)
{
    mag__worker_t *wk = mag__worker_current();
    mag__wheel_t *w = &wk->wheel;
    t->task = task;
    t->when_ns = when_ns;
    atomic_store_explicit(&t->fired, 0, memory_order_relaxed);
    t->wheel = w;
    uint64_t when = to_tick(when_ns);
    pthread_mutex_lock(&w->lock);
    if (when <= w->elapsed) {
        /* Already due: the arming task sees this before it parks. */
        atomic_store_explicit(&t->fired, 1, memory_order_release);
    } else {
        link_timer(w, t, when);
        atomic_fetch_add_explicit(&w->count, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&w->lock);
}

void mag__timer_disarm(mag__timer_t *t)
{
    mag__wheel_t *w = t->wheel;
    if (!w)
        return;
    /* Fired is the expirer's last access to t (see fire()), so once we see
     * it with acquire the entry is ours again without taking the lock. */
    if (!mag__timer_fired(t)) {
        pthread_mutex_lock(&w->lock);
        if (!atomic_load_explicit(&t->fired, memory_order_relaxed)) {
            unlink_timer(w, t);
            atomic_fetch_sub_explicit(&w->count, 1, memory_order_relaxed);
            atomic_store_explicit(&t->fired, 1, memory_order_relaxed);
        }
        pthread_mutex_unlock(&w->lock);
    }
    t->wheel = NULL;
}

/* Under the lock. */
static void fire(mag__wheel_t *w, mag__timer_t *t)
{
    mag_task_t *task = t->task;
    atomic_fetch_sub_explicit(&w->count, 1, memory_order_relaxed);
    /* release: pairs with mag__timer_fired. The last touch of t: after this
     * the owner may disarm without the lock and reuse the memory. */
    atomic_store_explicit(&t->fired, 1, memory_order_release);
    if (task)
        mag__wake(task);
}

/* The earliest slot deadline (in ticks) at or after elapsed; false if empty. */
static bool next_expiry(mag__wheel_t *w, unsigned *level_out, unsigned *slot_out,
                        uint64_t *deadline_out)
{
    for (unsigned level = 0; level < MAG__WHEEL_LEVELS; level++) {
        uint64_t occ = w->occupied[level];
        if (!occ)
            continue;
        unsigned shift = level * LEVEL_BITS;
        unsigned pos = (unsigned)(w->elapsed >> shift) & (MAG__WHEEL_SLOTS - 1);
        /* The top level's current slot holds only timers a lap or more
         * ahead (a nearer one shares the top bits with the clock and sits
         * at a finer level), so it is scanned last: from it, a nearer
         * timer in a later slot would be hidden until the lap came round. */
        unsigned start = level == MAG__WHEEL_LEVELS - 1 ? (pos + 1) & (MAG__WHEEL_SLOTS - 1) : pos;
        uint64_t rotated = start ? (occ >> start) | (occ << (64 - start)) : occ;
        unsigned slot = (start + (unsigned)__builtin_ctzll(rotated)) & (MAG__WHEEL_SLOTS - 1);
        uint64_t slot_range = 1ull << shift;
        uint64_t level_range = slot_range << LEVEL_BITS;
        uint64_t deadline = (w->elapsed & ~(level_range - 1)) + slot * slot_range;
        /* Below the top level an armed slot is never behind the current
         * one (link_timer puts a timer in the finest level that still lies
         * ahead). At the top level, slots behind are a lap ahead: timers
         * further than the wheel reaches wait there and cascade. */
        if (deadline <= w->elapsed)
            deadline += level_range;
        *level_out = level;
        *slot_out = slot;
        *deadline_out = deadline;
        return true;
    }
    return false;
}

unsigned mag__wheel_expire(mag__wheel_t *w, uint64_t now_ns)
{
    if (!atomic_load_explicit(&w->count, memory_order_relaxed)) {
        /* Nothing armed: just move time on (no lock needed to read count;
         * a concurrent arm only comes from this worker's own tasks). */
        pthread_mutex_lock(&w->lock);
        /* Only forward: the owner and a rescuer (monitor.c) may expire with
         * clocks read a moment apart. */
        if (!w->count && (now_ns >> MAG__WHEEL_SHIFT) > w->elapsed)
            w->elapsed = now_ns >> MAG__WHEEL_SHIFT;
        pthread_mutex_unlock(&w->lock);
        return 0;
    }
    uint64_t now = now_ns >> MAG__WHEEL_SHIFT;
    unsigned woken = 0, level, slot;
    uint64_t deadline;
    pthread_mutex_lock(&w->lock);
    while (next_expiry(w, &level, &slot, &deadline) && deadline <= now) {
        mag__timer_t *list = w->slots[level][slot];
        w->slots[level][slot] = NULL;
        w->occupied[level] &= ~(1ull << slot);
        if (deadline > w->elapsed)
            w->elapsed = deadline;
        while (list) {
            mag__timer_t *t = list;
            list = t->next;
            uint64_t when = to_tick(t->when_ns);
            if (when <= now) {
                fire(w, t);
                woken++;
            } else {
                link_timer(w, t, when); /* cascades to a finer level */
            }
        }
    }
    if (now > w->elapsed)
        w->elapsed = now;
    pthread_mutex_unlock(&w->lock);
    return woken;
}

uint64_t mag__wheel_next(mag__wheel_t *w)
{
    if (!atomic_load_explicit(&w->count, memory_order_relaxed))
        return UINT64_MAX;
    unsigned level, slot;
    uint64_t deadline;
    uint64_t ns = UINT64_MAX;
    pthread_mutex_lock(&w->lock);
    if (next_expiry(w, &level, &slot, &deadline))
        ns = deadline << MAG__WHEEL_SHIFT;
    pthread_mutex_unlock(&w->lock);
    return ns;
}
