/*
 * runtime/timer.c - a hierarchical timing wheel per worker.
 *
 * Six levels of 64 slots. A level-0 slot spans one tick of 2^16 ns (about
 * 65 us); each level up spans 64 times more, so the wheel reaches 2^36 ticks
 * (about 52 days) and anything later waits in the top level and cascades.
 * Arming, disarming and the next expiry are O(1) (a bit scan per level).
 * Timers are rounded up to the next tick, so they never fire early.
 *
 * Entries. The wheel belongs to one worker, which expires it (or a rescuer
 * does, monitor.c: the wheel's lock orders the two), but a task may leave
 * that worker before its timer fires (woken by something else, then stolen)
 * and must disarm from wherever it is. Unlinking there would take the
 * wheel's lock from another core at every cancel, and the list's neighbours
 * with it. So the wheel links entries of its own memory (mag__tentry_t,
 * taken from its free list when a timer is armed), and the holder's timer
 * only points at one. An entry's word says who has it:
 *
 *   task | ARMED   linked (or in the expiry's hands, under the lock)
 *   FIRED          the expiry took it out and woke the task: the holder's
 *   CANCELLED      a disarm won it: never fires; still linked, maybe
 *
 * The expiry and a disarm each try one compare-and-swap from task | ARMED;
 * exactly one wins, so a timer fires once or not at all. A disarm on the
 * wheel's own worker then unlinks and frees the entry under the lock, as
 * before (uncontended). A disarm anywhere else takes no lock: it hands the
 * entry back, pushing it on the wheel's `returned` stack (linked through the
 * word, whose low bits keep FIRED or CANCELLED), and whoever next holds the
 * lock (an arm, an expiry, a next-expiry look) takes the whole stack with
 * one exchange, unlinks the cancelled entries still linked and frees them.
 * `linked` (in pos, under the lock) tells whether a cancelled entry still
 * sits in a slot: an expiry that meets a cancelled entry drops it from the
 * slot it emptied, and the hand-back frees it later. `count` is the armed
 * entries: whoever wins an entry's compare-and-swap counts it off, so a
 * cancelled entry that waits, linked, for its hand-back is not counted, and
 * a sleeping worker's wheel reads empty once its timers were all cancelled
 * elsewhere (what is left linked goes at the wheel's next locked call).
 *
 * Orders. The expiry's winning compare-and-swap (to FIRED) is a release:
 * its reads of the entry (the next link, the task) come before it, and pairs
 * with the acquire in mag__timer_fired and the disarm's compare-and-swap, so
 * that the holder who sees FIRED may take the entry back (write its word).
 * The push of a handed-back entry is a release compare-and-swap on
 * `returned`, after its plain store of the word's link; the exchange that
 * takes the stack is an acquire, pairing with it, so the taker reads the
 * links and states whole. An arm publishes the entry to a later disarm on
 * another worker through the task's own migration (the queues' release and
 * acquire), as it did the timer itself.
 *
 * Entries come in blocks that the wheel frees when it is destroyed (every
 * task is done by then): 32 bytes a timer, kept for the wheel's life at its
 * peak. A task record's timer is a pointer and a flag, 32 bytes smaller than
 * the entry it used to be, so a parked task costs no more than before.
 */
#include <limits.h>
#include <stdlib.h>
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

/* pos: tick << 10 | linked << 9 | level << 6 | slot. A tick is below 2^49
 * (2^64 ns >> 16, rounded up), so it fits. */
#define POS_LINKED (1u << 9)

static uint64_t pos_tick(uint64_t pos)
{
    return pos >> 10;
}

static unsigned pos_level(uint64_t pos)
{
    return (unsigned)(pos >> 6) & 7u;
}

static unsigned pos_slot(uint64_t pos)
{
    return (unsigned)pos & (MAG__WHEEL_SLOTS - 1);
}

#define ENTRY_BLOCK 1024

typedef struct mag__tentry_block {
    struct mag__tentry_block *next;
    mag__tentry_t entries[ENTRY_BLOCK];
} entry_block_t;

/* Under the lock. NULL: out of memory. */
static mag__tentry_t *entry_alloc(mag__wheel_t *w)
{
    if (!w->free_entries) {
        entry_block_t *b = malloc(sizeof *b);
        if (!b)
            return NULL;
        b->next = w->blocks;
        w->blocks = b;
        /* Chained in address order: timers armed one after another take
         * neighbouring entries, whose lines an unlink then finds warm. */
        for (unsigned i = ENTRY_BLOCK; i-- > 0;) {
            b->entries[i].next = w->free_entries;
            w->free_entries = &b->entries[i];
        }
    }
    mag__tentry_t *e = w->free_entries;
    w->free_entries = e->next;
    return e;
}

/* Under the lock. */
static void entry_free(mag__wheel_t *w, mag__tentry_t *e)
{
    e->next = w->free_entries;
    w->free_entries = e;
}

void mag__wheel_init(mag__wheel_t *w, uint64_t now_ns)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    w->elapsed = now_ns >> MAG__WHEEL_SHIFT;
}

void mag__wheel_destroy(mag__wheel_t *w)
{
    while (w->blocks) {
        entry_block_t *b = w->blocks;
        w->blocks = b->next;
        free(b);
    }
    w->free_entries = NULL;
    pthread_mutex_destroy(&w->lock);
}

static void link_entry(mag__wheel_t *w, mag__tentry_t *e, uint64_t when)
{
    uint64_t masked = (w->elapsed ^ when) | (MAG__WHEEL_SLOTS - 1);
    if (masked > MAX_TICK)
        masked = MAX_TICK;
    unsigned level = (unsigned)(63 - __builtin_clzll(masked)) / LEVEL_BITS;
    unsigned slot = (unsigned)(when >> (level * LEVEL_BITS)) & (MAG__WHEEL_SLOTS - 1);
    e->pos = when << 10 | POS_LINKED | level << 6 | slot;
    e->prev = NULL;
    e->next = w->slots[level][slot];
    if (e->next)
        e->next->prev = e;
    w->slots[level][slot] = e;
    w->occupied[level] |= 1ull << slot;
}

/* Under the lock; e is linked. */
static void unlink_entry(mag__wheel_t *w, mag__tentry_t *e)
{
    unsigned level = pos_level(e->pos), slot = pos_slot(e->pos);
    if (e->prev)
        e->prev->next = e->next;
    else
        w->slots[level][slot] = e->next;
    if (e->next)
        e->next->prev = e->prev;
    if (!w->slots[level][slot])
        w->occupied[level] &= ~(1ull << slot);
    e->pos &= ~(uint64_t)POS_LINKED;
}

/* Under the lock: frees what other threads handed back, unlinking the
 * cancelled entries still linked. */
static void take_returned(mag__wheel_t *w)
{
    /* relaxed first look: most calls find nothing. */
    if (!atomic_load_explicit(&w->returned, memory_order_relaxed))
        return;
    /* acquire: pairs with the release of each push (timer_hand_back). */
    mag__tentry_t *e = atomic_exchange_explicit(&w->returned, NULL, memory_order_acquire);
    while (e) {
        /* relaxed: the exchange above ordered the pusher's store. */
        uintptr_t word = atomic_load_explicit(&e->word, memory_order_relaxed);
        mag__tentry_t *next = (mag__tentry_t *)(word & ~(uintptr_t)MAG__TENTRY_STATE);
        if (e->pos & POS_LINKED)
            unlink_entry(w, e);
        entry_free(w, e);
        e = next;
    }
}

/* A disarm away from the wheel's worker: e (FIRED or CANCELLED, which this
 * thread now owns) goes on the wheel's stack of handed-back entries. */
static void timer_hand_back(mag__wheel_t *w, mag__tentry_t *e, uintptr_t state)
{
    /* relaxed load: the compare-and-swap below checks it. */
    mag__tentry_t *head = atomic_load_explicit(&w->returned, memory_order_relaxed);
    do {
        /* relaxed: published by the release of the compare-and-swap. */
        atomic_store_explicit(&e->word, (uintptr_t)head | state, memory_order_relaxed);
        /* release: pairs with the acquire exchange in take_returned. */
    } while (!atomic_compare_exchange_weak_explicit(&w->returned, &head, e, memory_order_release,
                                                    memory_order_relaxed));
}

void mag__timer_arm(mag__timer_t *t, mag_task_t *task, uint64_t when_ns)
{
    if (t->wheel)
        mag__timer_disarm(t); /* armed before: its entry goes back first */
    mag__worker_t *wk = mag__worker_current();
    mag__wheel_t *w = &wk->wheel;
    uint64_t when = to_tick(when_ns);
    t->wheel = w;
    t->entry = NULL;
    t->done = 0;
    pthread_mutex_lock(&w->lock);
    take_returned(w);
    mag__tentry_t *e = NULL;
    if (when > w->elapsed && !(e = entry_alloc(w)))
        mag__fatal("out of memory for a timer"); /* as for a fiber stack */
    if (e) {
        /* relaxed: the holder reads it on this thread, the expiry under
         * this lock, a disarm elsewhere after the task's migration. */
        atomic_store_explicit(&e->word, (uintptr_t)task | MAG__TENTRY_ARMED,
                              memory_order_relaxed);
        link_entry(w, e, when);
        atomic_fetch_add_explicit(&w->count, 1, memory_order_relaxed);
        t->entry = e;
    } else {
        /* Already due: the arming task sees this before it parks. */
        t->done = 1;
    }
    pthread_mutex_unlock(&w->lock);
}

void mag__timer_disarm(mag__timer_t *t)
{
    mag__wheel_t *w = t->wheel;
    mag__tentry_t *e = t->entry;
    if (!w)
        return; /* never armed, or disarmed already */
    t->wheel = NULL;
    t->entry = NULL;
    t->done = 1;
    if (!e)
        return;
    /* acquire (the load and a failed compare-and-swap): the word is FIRED,
     * and the expiry's accesses to e come before ours (its release). On
     * success nothing came before us to see: the entry never fires. */
    uintptr_t armed = atomic_load_explicit(&e->word, memory_order_acquire);
    uintptr_t state = MAG__TENTRY_CANCELLED;
    if ((armed & MAG__TENTRY_STATE) != MAG__TENTRY_ARMED ||
        !atomic_compare_exchange_strong_explicit(&e->word, &armed, MAG__TENTRY_CANCELLED,
                                                 memory_order_acquire, memory_order_acquire))
        state = MAG__TENTRY_FIRED;
    else /* relaxed: a gauge and the fast path's hint (the winner counts it off) */
        atomic_fetch_sub_explicit(&w->count, 1, memory_order_relaxed);
    mag__worker_t *wk = mag__tls_worker;
    if (!wk || &wk->wheel != w) {
        timer_hand_back(w, e, state);
        return;
    }
    /* On the wheel's own worker: unlink now (the lock orders us against a
     * rescuer's expiry, which may hold e, still linked, in its hands). */
    pthread_mutex_lock(&w->lock);
    if (e->pos & POS_LINKED)
        unlink_entry(w, e);
    entry_free(w, e);
    take_returned(w);
    pthread_mutex_unlock(&w->lock);
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
         * one (link_entry puts a timer in the finest level that still lies
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

/* Under the lock: e, out of its slot, is due. Returns whether it fired (it
 * may have been cancelled meanwhile). */
static bool fire(mag__wheel_t *w, mag__tentry_t *e)
{
    uintptr_t armed = atomic_load_explicit(&e->word, memory_order_relaxed);
    /* release: pairs with mag__timer_fired and the disarm's acquire. The
     * last touch of e: after it the holder may take it back. */
    if ((armed & MAG__TENTRY_STATE) != MAG__TENTRY_ARMED ||
        !atomic_compare_exchange_strong_explicit(&e->word, &armed, MAG__TENTRY_FIRED,
                                                 memory_order_release, memory_order_relaxed))
        return false; /* cancelled: its hand-back frees it */
    atomic_fetch_sub_explicit(&w->count, 1, memory_order_relaxed);
    mag_task_t *task = (mag_task_t *)(armed & ~(uintptr_t)MAG__TENTRY_STATE);
    if (task)
        mag__wake(task);
    return true;
}

/* Whether any slot holds an entry, armed or cancelled (under the lock). */
static bool any_linked(const mag__wheel_t *w)
{
    for (unsigned level = 0; level < MAG__WHEEL_LEVELS; level++)
        if (w->occupied[level])
            return true;
    return false;
}

unsigned mag__wheel_expire(mag__wheel_t *w, uint64_t now_ns)
{
    if (!atomic_load_explicit(&w->count, memory_order_relaxed)) {
        /* Nothing armed: just move time on, once nothing is linked either.
         * count says armed, not linked: a disarm from another worker counts
         * its entry off before it hands it back, and an entry left linked
         * behind time moved on would make next_expiry report its slot a lap
         * ahead, past later timers. Then the full walk below drops it. */
        pthread_mutex_lock(&w->lock);
        take_returned(w);
        bool linked = any_linked(w);
        /* Only forward: the owner and a rescuer (monitor.c) may expire with
         * clocks read a moment apart. */
        if (!linked && !atomic_load_explicit(&w->count, memory_order_relaxed) &&
            (now_ns >> MAG__WHEEL_SHIFT) > w->elapsed)
            w->elapsed = now_ns >> MAG__WHEEL_SHIFT;
        pthread_mutex_unlock(&w->lock);
        if (!linked)
            return 0;
    }
    uint64_t now = now_ns >> MAG__WHEEL_SHIFT;
    unsigned woken = 0, level, slot;
    uint64_t deadline;
    pthread_mutex_lock(&w->lock);
    take_returned(w);
    while (next_expiry(w, &level, &slot, &deadline) && deadline <= now) {
        mag__tentry_t *list = w->slots[level][slot];
        w->slots[level][slot] = NULL;
        w->occupied[level] &= ~(1ull << slot);
        if (deadline > w->elapsed)
            w->elapsed = deadline;
        while (list) {
            mag__tentry_t *e = list;
            list = e->next;
            uint64_t when = pos_tick(e->pos);
            /* relaxed: a hint; fire's compare-and-swap decides. */
            uintptr_t word = atomic_load_explicit(&e->word, memory_order_relaxed);
            if ((word & MAG__TENTRY_STATE) != MAG__TENTRY_ARMED) {
                /* Cancelled (and counted off): out of the wheel now; its
                 * hand-back frees it. */
                e->pos &= ~(uint64_t)POS_LINKED;
            } else if (when <= now) {
                e->pos &= ~(uint64_t)POS_LINKED;
                woken += fire(w, e);
            } else {
                link_entry(w, e, when); /* cascades to a finer level */
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
    take_returned(w);
    if (next_expiry(w, &level, &slot, &deadline))
        ns = deadline << MAG__WHEEL_SHIFT;
    pthread_mutex_unlock(&w->lock);
    return ns;
}
