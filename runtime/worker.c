/*
 * runtime/worker.c - the per-worker scheduler loop: what runs next, stealing,
 * running a task, parking.
 *
 * Each turn: take the next task (the LIFO slot at most three times in a row,
 * then the local queue, then a batch from the inject queue; the inject queue
 * first every 61st turn so that it cannot starve), else steal half of a random
 * victim's queue, else park in the ring until a completion, a timer or a
 * wake-up. A task that yields, parks or exits with another task at hand
 * switches straight to it (direct switches, below). The queues are
 * queue.c, the idle protocol idle.c, the ring driver ring.c.
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime/fiber.h"
#include "runtime/idle.h"
#include "runtime/monitor.h"
#include "runtime/queue.h"
#include "runtime/ready.h"
#include "runtime/ring.h"

#define FAIRNESS_INTERVAL 61
#define LIFO_MAX_STREAK 3
#define STACK_CACHE_MAX 64
#define STEAL_MAX (MAG__DEQUE_CAP / 2)

_Thread_local mag__worker_t *mag__tls_worker MAG_TLS_FAST;

/* Not inlinable, with a compiler barrier: a fiber may resume on another
 * thread, so the address of a thread-local must be computed afresh each time,
 * never kept in a register across a suspension. */
__attribute__((noinline)) mag__worker_t *mag__worker_current(void)
{
    __asm__ volatile("" ::: "memory");
    return mag__tls_worker;
}

__attribute__((noinline)) mag_task_t *mag__task_current(void)
{
    __asm__ volatile("" ::: "memory");
    mag__worker_t *w = mag__tls_worker;
    return w ? w->current : NULL;
}

/* The same for errno (runtime.h): glibc declares __errno_location const, so
 * a caller may reuse the address it computed before a suspension. Here it
 * is computed on the thread that runs the call. */
__attribute__((noinline)) int mag_errno(void)
{
    __asm__ volatile("" ::: "memory");
    return errno;
}

mag_runtime_t *mag__worker_runtime(mag__worker_t *w)
{
    return w ? w->rt : NULL;
}

mag_runtime_t *mag_runtime_current(void)
{
    return mag__worker_runtime(mag__worker_current());
}

static unsigned poll_timers(mag__worker_t *w)
{
    if (!atomic_load_explicit(&w->wheel.count, memory_order_relaxed))
        return 0;
    return mag__wheel_expire(&w->wheel, mag__now());
}

int mag__worker_setup(mag__worker_t *w)
{
    int rc = mag__ring_setup(w);
    if (rc == 0)
        mag__wheel_init(&w->wheel, mag__now());
    return rc;
}

void mag__worker_teardown(mag__worker_t *w)
{
    if (w->ring_ready) {
        mag__ring_teardown(w);
        mag__wheel_destroy(&w->wheel);
    }
    while (w->stack_cache) {
        mag__stack_t *s = w->stack_cache;
        w->stack_cache = s->next;
        mag__stack_free(s);
    }
    w->stacks_cached = 0;
    free(w->spill); /* empty unless a timed shutdown left tasks, as in the queue */
    w->spill = NULL;
    w->spill_cap = w->spill_head = 0;
}

/* ---- running tasks ------------------------------------------------------------- */

static mag__stack_t *stack_get(mag__worker_t *w, size_t size)
{
    if (size == w->rt->cfg.stack_size && w->stack_cache) {
        mag__stack_t *s = w->stack_cache;
        w->stack_cache = s->next;
        w->stacks_cached--;
        return s;
    }
    return mag__stack_alloc(size);
}

static void stack_put(mag__worker_t *w, mag__stack_t *s, size_t size)
{
    if (size == w->rt->cfg.stack_size && w->stacks_cached < STACK_CACHE_MAX) {
        s->next = w->stack_cache;
        w->stack_cache = s;
        w->stacks_cached++;
        return;
    }
    mag__stack_free(s);
}

#if MAG__ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

/* A task about to start gets a stack and its first frame. */
static void give_stack(mag__worker_t *w, mag_task_t *t)
{
    t->stack = stack_get(w, t->stack_size);
    if (!t->stack)
        mag__fatal("out of memory for a %zu-byte fiber stack", (size_t)t->stack_size);
#if MAG__ASAN
    /* A reused stack may hold the redzones of its last task's frames: one
     * that ended by switching straight to another task left them there. */
    __asan_unpoison_memory_region(t->stack->lo, t->stack->usable);
#endif
    t->sp = mag__ctx_init(t->stack->top, mag__task_entry, t);
}

/* t's body returned and t switched away for good: its stack goes back and
 * the task is finished (joiners woken, the record released). */
static void finish_run(mag__worker_t *w, mag_task_t *t)
{
#if MAG__TSAN
    __tsan_destroy_fiber(t->tsan_fiber);
    t->tsan_fiber = NULL;
#endif
    stack_put(w, t->stack, t->stack_size);
    t->stack = NULL;
    mag__task_finish(t);
}

static void run_task(mag__worker_t *w, mag_task_t *t)
{
    mag__state_begin_run(&t->state);
    if (MAG_UNLIKELY(!t->stack))
        give_stack(w, t);
    for (;;) {
        w->current = t;
        atomic_store_explicit(&t->worker, w, memory_order_relaxed);
        MAG__HOOK(w, run_begin, w, t);
        mag__stat_inc(&w->stats.polls, 1);
        /* relaxed: a hint for the monitor and rescuers; the CQ lock orders
         * what matters (ring.c). */
        atomic_store_explicit(&w->in_task, 1, memory_order_relaxed);
        mag__switch_into_task(w, t);
        /* The task that switched back: t, or the last of the tasks that
         * handed this worker on directly (mag__worker_switch_direct). */
        t = w->current;
        atomic_store_explicit(&w->in_task, 0, memory_order_relaxed);
        w->current = NULL;
        MAG__HOOK(w, run_end, w, t);
        /* Guarded stacks fault on overflow; the canary covers the rest. */
        if (MAG_UNLIKELY(!t->stack->guarded && !mag__stack_intact(t->stack, t->sp)))
            mag__fiber_overflow_abort(t);
        switch (w->switch_reason) {
        case MAG__SWITCH_PARK:
            if (mag__state_park(&t->state))
                return;
            continue; /* woken while switching out: run it again at once */
        case MAG__SWITCH_YIELD:
            if (MAG_UNLIKELY(w->sq_starved)) { /* reap, so that it finds room */
                w->sq_starved = false;
                mag__ring_poll(w);
            }
            /* The state stays RUNNING while queued (task_state.h). */
            mag__push_back(w, t);
            if (w->rt->nworkers > 1)
                mag__notify_parked(w->rt);
            return;
        case MAG__SWITCH_EXIT:
        default:
            finish_run(w, t);
            return;
        }
    }
}

static inline __attribute__((always_inline)) mag_task_t *next_local(mag__worker_t *w);

/* ---- direct switches -----------------------------------------------------
 * A task that yields, parks or exits while its worker has another task at hand
 * (the LIFO slot, the local queue, the inject queue's share: next_local's
 * choice, with its fairness rules) switches straight to that task: one
 * switch instead of two, and none of the scheduler loop's checks. The
 * scheduler keeps its turn for the rest: every FAIRNESS_INTERVAL-th run
 * (the inject queue first, the ring and the timers polled), stealing and
 * parking when nothing is local, the exit of the task a loop waits for,
 * shutdown and a starved SQ.
 *
 * The task switched away from cannot be requeued or parked before its
 * context is saved (another worker could steal and resume it while it
 * still runs here), nor its stack reused before it has left it. So it is
 * left in w->handoff, and the task switched to settles it first thing
 * after its own switch returns (mag__worker_settle_handoff), as the
 * scheduler would have after its switch back. */

void mag__worker_settle_handoff(mag__worker_t *w)
{
    mag_task_t *prev = w->handoff;
    w->handoff = NULL;
    if (MAG_UNLIKELY(!prev->stack->guarded && !mag__stack_intact(prev->stack, prev->sp)))
        mag__fiber_overflow_abort(prev);
    if (w->switch_reason == MAG__SWITCH_EXIT) {
        finish_run(w, prev);
        return;
    }
    if (w->switch_reason == MAG__SWITCH_PARK && mag__state_park(&prev->state))
        return; /* parked: its waker queues it */
    /* A yield, or woken while it switched out: to the back. (The
     * scheduler runs a task woken while it switched out again at once; here
     * the next task has started already, so it queues.) The state stays
     * RUNNING while queued. */
    mag__handoff_requeue(w, prev);
}

bool mag__worker_switch_direct(mag__worker_t *w, mag_task_t *t)
{
    mag_runtime_t *rt = w->rt;
    /* The scheduler's turns, and what only it handles. relaxed: stopping is
     * seen by the scheduler at its next turn, within FAIRNESS_INTERVAL runs. */
    if (w->fair_pos == FAIRNESS_INTERVAL - 1 || w->sq_starved || rt->draining ||
        atomic_load_explicit(&rt->stopping, memory_order_relaxed))
        return false;
    /* The task a loop waits for ends through the scheduler, which returns. */
    if (w->switch_reason == MAG__SWITCH_EXIT && t == w->until)
        return false;
    /* The run about to start is counted (as the scheduler loop does) only
     * if it starts here. */
    w->tick++;
    w->fair_pos++; /* below FAIRNESS_INTERVAL - 1 before: no wrap */
    mag_task_t *n = next_local(w);
    if (!n) {
        w->tick--;
        w->fair_pos--;
        /* A yield with nothing else to run here: the scheduler would
         * requeue t and take it straight back, so t goes on, as a new run
         * (for the hooks' watchdog and traces). Unless another worker is
         * parked or searching: then it goes through the scheduler, whose
         * queue that worker may take it from. A park always does: it
         * steals or sleeps. */
        if (w->switch_reason != MAG__SWITCH_YIELD || (rt->nworkers > 1 && !mag__idle_all_busy(rt)))
            return false;
        w->tick++;
        w->fair_pos++; /* at most FAIRNESS_INTERVAL - 1: the turn comes next */
        void *sp_now = __builtin_frame_address(0);
        if (MAG_UNLIKELY(!t->stack->guarded && !mag__stack_intact(t->stack, sp_now)))
            mag__fiber_overflow_abort(t);
        MAG__HOOK(w, run_end, w, t);
        MAG__HOOK(w, run_begin, w, t);
        mag__stat_inc(&w->stats.polls, 1);
        return true;
    }
    /* relaxed: the monitor's mark, as the scheduler loop clears it once its
     * task returns: this worker is taking its turns again. */
    if (MAG_UNLIKELY(atomic_load_explicit(&w->stuck, memory_order_relaxed)))
        atomic_store_explicit(&w->stuck, 0, memory_order_relaxed);
    mag__state_begin_run(&n->state);
    if (MAG_UNLIKELY(!n->stack))
        give_stack(w, n);
    /* t's run ends here rather than after the switch: the hooks track one
     * run per worker, so it must end before n's begins. */
    MAG__HOOK(w, run_end, w, t);
    w->handoff = t;
    w->current = n;
    atomic_store_explicit(&n->worker, w, memory_order_relaxed);
    MAG__HOOK(w, run_begin, w, n);
    mag__stat_inc(&w->stats.polls, 1);
    mag__switch_task_to_task(t, n, w->switch_reason == MAG__SWITCH_EXIT);
    return true;
}

/* A queue this long is a burst, whose records are cold: lines are asked
 * for ahead while the task taken runs. A few tasks taking turns are in
 * cache, and a look would only slow their switches. */
#define PREFETCH_MIN_QUEUE 64

/* Loop mode, in a burst: the record of the task three places on (a miss
 * takes longer than one short run hides), and the frame that the next
 * task's switch will pop, from the saved stack pointer in its record
 * (asked for three takes ago). A million parked tasks are a million
 * stacks, a page each: the switch into each one missed in the TLB and the
 * cache. Hints: a task that has not started has no frame yet (sp NULL), and
 * a prefetch never faults. */
static inline void prefetch_burst(mag_task_t *next, mag_task_t *later)
{
    if (later)
        mag__task_prefetch_read(later);
    const char *sp = next->sp;
    if (sp) {
        mag__prefetch(sp);
        mag__prefetch(sp + MAG_CACHELINE);
    }
}

static inline __attribute__((always_inline)) mag_task_t *next_local(mag__worker_t *w)
{
    mag_task_t *t;
    size_t n;
    if (w->fair_pos == 0) {
        if ((t = mag__inject_take(w->rt, 1, &n)))
            return t;
    }
    if ((t = mag__lifo_take(w))) {
        if (w->lifo_streak < LIFO_MAX_STREAK) {
            w->lifo_streak++;
            mag__stat_inc(&w->stats.lifo_hits, 1);
            /* The task that woke or spawned t may just have prepared I/O
             * and parked; should t compute for long, only this worker could
             * submit that I/O. Submitting it now lets it complete, and a
             * rescuer reap it (monitor.c). Not in loop mode: there nobody
             * else could reap it anyway. */
            if (w->rt->nworkers > 1)
                mag__ring_flush(w);
            return t;
        }
        mag__push_back(w, t); /* its turn is over: to the back */
    }
    w->lifo_streak = 0;
    if (w->rt->nworkers == 1) {
        /* The queue first, then what spilled (older, but a spill means a
         * burst: its order among itself is kept). */
        uint64_t left;
        if ((t = mag__deque_take_alone(&w->deque, &left))) {
            if (left >= PREFETCH_MIN_QUEUE)
                prefetch_burst(mag__deque_peek(&w->deque, 0), mag__deque_peek(&w->deque, 3));
            return t;
        }
        if ((t = mag__spill_take(w))) {
            mag_task_t *next = mag__spill_peek(w, 0);
            if (next)
                prefetch_burst(next, mag__spill_peek(w, 3));
            return t;
        }
    } else if (mag__deque_take(&w->deque, &t, 1, false)) {
        return t;
    }
    /* A fair share of the inject queue, the rest stays for other workers. */
    size_t share =
        atomic_load_explicit(&w->rt->inject_len, memory_order_relaxed) / w->rt->nworkers + 1;
    if (share > STEAL_MAX)
        share = STEAL_MAX;
    if ((t = mag__inject_take(w->rt, share, &n))) {
        for (mag_task_t *x = t->next; x;) {
            mag_task_t *next = x->next;
            mag__push_back(w, x);
            x = next;
        }
        return t;
    }
    return NULL;
}

/* v is stuck in a task or in its scheduler (monitor.c): take over what
 * only its scheduler would run. Its LIFO task comes here; the completions
 * in its ring and its due timers wake their tasks onto this worker; if it
 * is in a task, the I/O its tasks prepared is submitted and the cancels in
 * its mailbox are made from here (each checks). Returns a task to run. */
static mag_task_t *rescue(mag__worker_t *w, mag__worker_t *v)
{
    mag_task_t *t = mag__lifo_take(v);
    /* relaxed: a hint; both calls check again. */
    if (atomic_load_explicit(&v->in_task, memory_order_relaxed)) {
        mag__ring_rescue_submit(v);
        mag__ring_rescue_cancels(v);
    }
    mag__ring_rescue(v);
    if (atomic_load_explicit(&v->wheel.count, memory_order_relaxed))
        mag__wheel_expire(&v->wheel, mag__now());
    if (t)
        return t;
    if ((t = mag__lifo_take(w)))
        return t;
    return mag__deque_take(&w->deque, &t, 1, false) ? t : NULL;
}

static mag_task_t *steal(mag__worker_t *w)
{
    mag_runtime_t *rt = w->rt;
    if (rt->nworkers == 1 || !mag__idle_to_searching(w))
        return NULL;
    /* xorshift32: cheap per-worker randomness for the victim order. */
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 17;
    w->rng ^= w->rng << 5;
    unsigned start = w->rng % rt->nworkers;
    mag_task_t *batch[STEAL_MAX];
    for (unsigned i = 0; i < rt->nworkers; i++) {
        mag__worker_t *v = rt->workers[(start + i) % rt->nworkers];
        if (v == w)
            continue;
        /* relaxed: the mark is a hint; what a rescue takes, it takes with
         * the operations that own it (rescue). */
        if (MAG_UNLIKELY(atomic_load_explicit(&v->stuck, memory_order_relaxed))) {
            mag_task_t *t = rescue(w, v);
            if (t)
                return t;
        }
        mag__stat_inc(&w->stats.steal_attempts, 1);
        unsigned n = mag__deque_take(&v->deque, batch, STEAL_MAX, true);
        if (n) {
            mag__stat_inc(&w->stats.steals, 1);
            mag__stat_inc(&w->stats.stolen_tasks, n);
            MAG__HOOK(w, steal, w, v->index, n);
            for (unsigned k = 1; k < n; k++)
                mag__push_back(w, batch[k]);
            return batch[0];
        }
    }
    size_t n;
    mag_task_t *t = mag__inject_take(rt, 1, &n);
    return t;
}

static bool has_local_work(mag__worker_t *w)
{
    return atomic_load_explicit(&w->lifo, memory_order_relaxed) || mag__deque_len(&w->deque) ||
           mag__spill_len(w);
}

/* Loop mode: a shutdown with a time limit (mag_runtime_shutdown_timeout)
 * drains the loop until then at most; the clock is read only while one
 * drains. */
static bool drain_over(const mag_runtime_t *rt)
{
    return rt->draining && rt->drain_until_ns && mag__now() >= rt->drain_until_ns;
}

static void park(mag__worker_t *w)
{
    mag_runtime_t *rt = w->rt;
    mag__idle_stop_searching(w);
    /* Last look before sleeping: completions, timers and socket events may
     * make work. */
    mag__ring_poll(w);
    poll_timers(w);
    mag__ready_poll(w, false);
    if (has_local_work(w))
        return;
    /* Going to sleep: spare free records go back, so that the slabs of a
     * finished burst can be given back (task_pool.c). */
    mag__task_cache_trim(w);
    /* Every worker looks once more after declaring itself parked, not only
     * the last searcher (Tokio's rule): a waker that saw us still counted as
     * awake did not wake anyone, and a single worker, or one refused
     * searching, never was a searcher. The seq_cst loads pair with the fence
     * in mag__notify_parked; the notify may wake this very worker. */
    /* relaxed: a stale mark would only send rescuers here for nothing. */
    atomic_store_explicit(&w->stuck, 0, memory_order_relaxed);
    mag__idle_to_parked(w);
    if (mag__work_pending_anywhere(rt))
        mag__notify_parked(rt);
    mag__stat_inc(&w->stats.parks, 1);
    uint64_t t0 = mag__now();
    /* relaxed: a gauge for mag_metrics, nothing is published through it. */
    atomic_store_explicit(&w->stats.park_start_ns, t0, memory_order_relaxed);
    for (;;) {
        mag__ring_sleep_begin(w);
        bool listed = mag__idle_listed(w);
        /* seq_cst: after the seq_cst store of sleeping, paired with the
         * stopper's and the last finisher's seq_cst operations. */
        bool stop = atomic_load_explicit(&rt->stopping, memory_order_seq_cst) ||
                    (rt->draining && !mag__tasks_live(rt)) || drain_over(rt);
        /* Local work too: arming the doorbell may have had to reap to find
         * SQ room, and completions reaped by the scheduler queue their tasks
         * here without waking anyone (queue.c). */
        if (listed && !stop && !mag__ring_cancels_pending(w) && !has_local_work(w)) {
            /* Wakes no later than the next timer, the next free slab due to
             * go back, or a timed shutdown's end (it regains its thread). */
            uint64_t wake = mag__wheel_next(&w->wheel), trim_due = mag__task_pool_trim();
            if (trim_due < wake)
                wake = trim_due;
            if (rt->draining && rt->drain_until_ns && rt->drain_until_ns < wake)
                wake = rt->drain_until_ns;
            mag__ring_wait(w, wake);
        }
        mag__ring_sleep_end(w);
        mag__ring_poll(w);
        poll_timers(w);
        if (stop || atomic_load_explicit(&rt->stopping, memory_order_acquire) ||
            has_local_work(w) || !listed) {
            mag__idle_from_parked(w);
            break;
        }
        if (!mag__idle_listed(w)) { /* notified: we are searching now */
            w->searching = true;
            break;
        }
    }
    /* seq_cst: after this worker's (or its notifier's) seq_cst update of
     * idle; pairs with the monitor's store of deep (monitor.c). */
    if (atomic_load_explicit(&rt->monitor_deep, memory_order_seq_cst))
        mag__monitor_kick(rt);
    uint64_t t1 = mag__now();
    atomic_store_explicit(&w->stats.park_start_ns, 0, memory_order_relaxed);
    MAG__HOOK(w, park, w, t0, t1);
    mag__stat_inc(&w->stats.unparks, 1);
    mag__stat_inc(&w->stats.parked_ns, t1 - t0);
}

static bool task_done(mag_task_t *t)
{
    return mag__state_status(&t->state) == MAG__DONE;
}

void mag__worker_loop(mag__worker_t *w, mag_task_t *until_handle)
{
    /* The caller holds the handle: the record stays this task's. */
    uint64_t gen;
    mag_task_t *until = until_handle ? mag__task_from_handle(until_handle, &gen) : NULL;
    mag_task_t *outer_until = w->until; /* a nested loop (block_on in loop mode) */
    w->until = until;
    mag__tls_worker = w;
#if MAG__TSAN
    w->tsan_sched = __tsan_get_current_fiber();
#endif
    for (;;) {
        if (until ? task_done(until)
                  : atomic_load_explicit(&w->rt->stopping, memory_order_acquire) ||
                        (w->rt->draining && !mag__tasks_live(w->rt)) || drain_over(w->rt))
            break;
        w->tick++;
        if (++w->fair_pos == FAIRNESS_INTERVAL)
            w->fair_pos = 0;
        if (w->fair_pos == 0) {
            mag__ring_poll(w);
            poll_timers(w);
            mag__ready_poll(w, true);
        }
        mag_task_t *t = next_local(w);
        if (!t)
            t = steal(w);
        if (t) {
            if (w->searching)
                mag__idle_from_searching(w);
            run_task(w, t);
            /* relaxed: the monitor's mark is a hint for rescuers; back in
             * the scheduler, this worker runs its own work again. */
            if (MAG_UNLIKELY(atomic_load_explicit(&w->stuck, memory_order_relaxed)))
                atomic_store_explicit(&w->stuck, 0, memory_order_relaxed);
            continue;
        }
        park(w);
    }
    mag__idle_from_searching(w);
    mag__ring_poll(w);
    w->until = outer_until;
    mag__tls_worker = NULL;
}
