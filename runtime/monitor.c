/*
 * runtime/monitor.c - the monitor: ready work must not wait behind a busy
 * worker while another worker is idle (Go's sysmon plays this part).
 *
 * A task that computes without suspending keeps its worker from the
 * scheduler: the task in its LIFO slot, the I/O prepared for its ring and
 * not yet submitted, the completions in its ring and the timers on its wheel
 * would wait for the task to end. They wait as well behind a worker kept
 * in its scheduler: preempted there on a machine whose cores are all taken
 * (the kernel can leave it off the CPU for milliseconds), or blocked.
 *
 * One thread per multi-worker runtime looks at the workers every tick
 * (MONITOR_TICK_NS). A worker that is not parked and has not started a
 * task since the last look has been running one task for at least a tick,
 * or, if it was out of any task at the last look too and has neither
 * parked nor woken since, its scheduler. If it holds ready work it is
 * marked stuck and an idle worker is woken to search. Searchers rescue what
 * a stuck worker holds (worker.c): they take its LIFO slot, reap its ring
 * (ring.c) and expire its timers, and, if it is in a task, submit the I/O
 * its tasks prepared and make the cancels in its mailbox (in its scheduler
 * it does those itself); the woken tasks run on the rescuer. Of the ring of
 * a worker in its scheduler, a rescuer finds what was posted before it lost
 * the CPU, or while it was blocked: the kernel posts the completions of the
 * requests it submitted through task work on its own thread, which a
 * worker off the CPU does not run. The owner clears the mark when its task
 * returns to the scheduler or switches straight to another, and when it
 * parks (worker.c).
 *
 * A worker that runs flat out (no park between two looks) with tasks
 * queued at both has a backlog it is not working off: an idle worker is
 * woken to steal from it. That is how a small batch of completions, which
 * the scheduler runs where it reaped them instead of waking anyone
 * (queue.c), still spreads once it turns into a lasting load.
 *
 * The monitor costs nothing while every worker is parked: once none has
 * woken for a tick, it sleeps until a worker unparks (mag__monitor_kick).
 * While workers are awake and its looks find nothing to do, it backs off
 * (as sysmon does): each empty look doubles its sleep up to
 * MONITOR_TICK_MAX_NS, and a look that finds work brings it back to
 * MONITOR_TICK_NS. Under a steady load on every core, the wakes a fixed
 * short tick costs (and the preemptions of the workers they cause) were
 * the largest share of the runtime's context switches.
 */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "runtime/monitor.h"
#include "runtime/ready.h"
#include "runtime/ring.h"

/* The detection delay is between one and two ticks: at most twice the
 * longest, 2 ms, once the monitor has backed off. */
#define MONITOR_TICK_NS (500 * 1000ull)
#define MONITOR_TICK_MAX_NS (1000 * 1000ull)

struct mag__monitor {
    mag_runtime_t *rt;
    pthread_t thread;
    uint64_t *last_polls;      /* per worker: its task count at the last look */
    uint64_t *last_parks;      /* per worker: its park count at the last look */
    uint64_t *last_unparks;    /* per worker: its unpark count at the last look */
    bool *had_backlog;         /* per worker: tasks were queued at the last look */
    bool *was_in_sched;        /* per worker: awake and out of any task then */
    uint32_t last_ready_turns; /* the poller's ready_turns at the last look */
};

/* Waits on the monitor word while it still holds seen, at most ns (0:
 * without a timeout). */
static void monitor_sleep(mag_runtime_t *rt, uint32_t seen, uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    syscall(SYS_futex, &rt->monitor_word, FUTEX_WAIT_PRIVATE, seen, ns ? &ts : NULL, NULL, 0);
}

/* Work on w that only w's scheduler would run, and that a rescuer can
 * take while w is in its scheduler: its LIFO slot, its local queue
 * (stealable, but only by a searcher), completions in its ring ahead of the
 * doorbell's (ring.c, reap; any completion when in_task), and timers that
 * are due. */
static bool holds_rescuable_work(mag__worker_t *w, uint64_t now, bool in_task)
{
    /* relaxed: a hint; whoever acts on it takes the work with the
     * operations that own it (exchange, deque CAS, ring lock, wheel lock). */
    return atomic_load_explicit(&w->lifo, memory_order_relaxed) != NULL ||
           mag__deque_len(&w->deque) != 0 ||
           (in_task ? mag__ring_ready(w) : mag__ring_ready_past_doorbell(w)) ||
           mag__wheel_next(&w->wheel) <= now;
}

/* What a rescuer can take while w is inside a task: all of the above, I/O
 * prepared but not submitted, and cancels in its mailbox (in its
 * scheduler, w submits its own). */
static bool holds_ready_work(mag__worker_t *w, uint64_t now)
{
    return holds_rescuable_work(w, now, true) || mag__ring_sqes_waiting(w) ||
           mag__ring_cancels_waiting(w);
}

/* One look at every worker. Returns false when every worker is parked;
 * *parked_since says whether none of them parked again since the last look
 * either (none woke in between), *found whether the look found work to
 * hand on (a stuck worker, a backlog, readiness events). */
static bool look(struct mag__monitor *m, bool *parked_since, bool *found)
{
    *parked_since = true;
    *found = false;
    mag_runtime_t *rt = m->rt;
    uint64_t now = mag__now();
    bool any_awake = false, stuck = false, backlog = false;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        mag__worker_t *w = rt->workers[i];
        /* relaxed: counters the owner bumps; a stale value only delays. */
        uint64_t polls = atomic_load_explicit(&w->stats.polls, memory_order_relaxed);
        uint64_t parks = atomic_load_explicit(&w->stats.parks, memory_order_relaxed);
        uint64_t unparks = atomic_load_explicit(&w->stats.unparks, memory_order_relaxed);
        bool parked = atomic_load_explicit(&w->stats.park_start_ns, memory_order_relaxed) != 0;
        /* relaxed: a hint (see in_task in sched.h). */
        bool in_task = !parked && atomic_load_explicit(&w->in_task, memory_order_relaxed);
        /* No task started since the last look (polls counts starts). */
        bool started_none = polls == m->last_polls[i];
        /* ... and none parked or woke either (parks counts a park's start,
         * unparks its end), out of a task at both looks: in its scheduler
         * all along. There it is preempted, or blocked. (A worker made
         * runnable by its wake-up but still off the CPU is inside its park,
         * and what it holds only posts once it runs: task work.) */
        bool in_sched_all_along = started_none && !in_task && m->was_in_sched[i] &&
                                  parks == m->last_parks[i] && unparks == m->last_unparks[i];
        /* The readiness poller (ready.h) started no task since the last
         * look, or has not looked at the epoll since then: it may be in a
         * long task, held in its scheduler, or woken from its sleep in the
         * epoll and still off the CPU, and the events wait for it. Then the
         * monitor takes them itself: the waiters go through the inject
         * queue to whichever worker runs. A poller that looked since the
         * last look, under load, is running what it took, and takes the
         * rest at its next turn: draining there sent its wakes the long
         * way. relaxed: ready_turns is a hint. */
        if (i == 0 && mag__ready_on(rt)) {
            uint32_t turns = atomic_load_explicit(&w->ready_turns, memory_order_relaxed);
            bool looked_none = turns == m->last_ready_turns;
            m->last_ready_turns = turns;
            if (started_none || looked_none)
                *found |= mag__ready_drain(rt) > 0;
        }
        if (!parked) {
            any_awake = true;
            if ((in_task && started_none && holds_ready_work(w, now)) ||
                (in_sched_all_along && holds_rescuable_work(w, now, false))) {
                /* relaxed: the mark publishes nothing; rescuers take the
                 * work with the operations that own it. */
                atomic_store_explicit(&w->stuck, 1, memory_order_relaxed);
                stuck = true;
            }
        } else if (atomic_load_explicit(&w->stuck, memory_order_relaxed)) {
            /* A mark that landed after its park cleared it: searchers would
             * go on rescuing a sleeping worker for nothing. */
            atomic_store_explicit(&w->stuck, 0, memory_order_relaxed);
        }
        /* Queued at two looks in a row, without a park between them: a
         * backlog its worker has not worked off in a tick of running
         * flat out, which a searcher may steal. (The scheduler shares only
         * large batches at once, queue.c; a worker that parks keeps up.) */
        *parked_since &= parks == m->last_parks[i];
        bool queued = !parked && mag__deque_len(&w->deque) != 0;
        backlog |= queued && m->had_backlog[i] && parks == m->last_parks[i];
        m->had_backlog[i] = queued;
        m->was_in_sched[i] = !parked && !in_task;
        m->last_parks[i] = parks;
        m->last_unparks[i] = unparks;
        m->last_polls[i] = polls;
    }
    if (stuck || backlog) {
        mag__notify_parked(rt);
        *found = true;
    }
    return any_awake;
}

/* The kernel's struct sched_attr (its first version, 48 bytes): the C
 * library's headers do not all declare it, and the kernel's clash with
 * them. */
struct monitor_sched_attr {
    uint32_t size;
    uint32_t policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime; /* for SCHED_OTHER: the slice asked for (6.12+) */
    uint64_t deadline;
    uint64_t period;
};

#define MONITOR_SLICE_NS (100 * 1000ull) /* the shortest the kernel grants */

/* A kick wakes the monitor from the worker that unparks, which often goes
 * on at once into the task that the monitor is to find stuck. The kernel
 * may queue the monitor on that CPU, and its scheduler (EEVDF) lets the
 * running task finish its slice before a waking one of the same slice
 * runs: the monitor waited there for the next scheduler tick, 4 ms, while
 * the other CPU was idle (stranded_lifo_ms: about 4.9 ms in one run of
 * two). A task with a shorter slice than the running one's preempts it at
 * its wake-up. Asked for with sched_setattr, its nice value kept; a kernel
 * before 6.12 ignores the slice, and any failure leaves the default. */
static void monitor_short_slice(void)
{
    struct monitor_sched_attr a = {0};
    if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) != 0 || a.policy != SCHED_OTHER)
        return;
    a.size = sizeof a;
    a.flags = 0;
    a.runtime = MONITOR_SLICE_NS;
    (void)syscall(SYS_sched_setattr, 0, &a, 0);
}

static void *monitor_main(void *arg)
{
    struct mag__monitor *m = arg;
    mag_runtime_t *rt = m->rt;
    monitor_short_slice();
    uint64_t tick = MONITOR_TICK_NS;
    for (;;) {
        /* acquire: pairs with the release in mag__monitor_stop. */
        uint32_t seen = atomic_load_explicit(&rt->monitor_word, memory_order_acquire);
        if (seen & MAG__MONITOR_STOP)
            break;
        bool parked_since, found;
        /* Every worker parked at one look is, under load, a gap of a few
         * microseconds between two requests: sleeping deep there made the
         * next worker to wake pay a futex wake for the monitor, about a
         * thousand a second on HTTP at 2 workers. Deep only once every
         * worker stayed parked for a whole tick: an idle runtime pays one
         * look more. */
        bool any_awake = look(m, &parked_since, &found);
        if (found)
            tick = MONITOR_TICK_NS;
        if (any_awake || !parked_since) {
            monitor_sleep(rt, seen, tick);
            /* The next look, if this one found nothing, comes later. */
            if (!found && tick < MONITOR_TICK_MAX_NS)
                tick *= 2;
            continue;
        }
        /* Every worker looked parked: sleep until one unparks. seq_cst: the
         * store of deep, then the load of idle, against an unparking
         * worker's seq_cst update of idle, then its load of deep (see
         * mag__monitor_kick): either we see it awake or it sees us deep. */
        atomic_store_explicit(&rt->monitor_deep, 1, memory_order_seq_cst);
        uint32_t idle = atomic_load_explicit(&rt->idle, memory_order_seq_cst);
        if ((idle & 0xffffu) == 0)
            monitor_sleep(rt, seen, 0);
        else /* a worker is on its way out of its park: look again later */
            monitor_sleep(rt, seen, MONITOR_TICK_NS);
        atomic_store_explicit(&rt->monitor_deep, 0, memory_order_relaxed);
        /* A runtime waking from idle gets short ticks until it settles. */
        tick = MONITOR_TICK_NS;
    }
    return NULL;
}

static void monitor_free(struct mag__monitor *m)
{
    free(m->last_polls);
    free(m->last_parks);
    free(m->had_backlog);
    free(m->last_unparks);
    free(m->was_in_sched);
    free(m);
}

int mag__monitor_start(mag_runtime_t *rt)
{
    struct mag__monitor *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->rt = rt;
    m->last_polls = calloc(rt->nworkers, sizeof *m->last_polls);
    m->last_parks = calloc(rt->nworkers, sizeof *m->last_parks);
    m->had_backlog = calloc(rt->nworkers, sizeof *m->had_backlog);
    m->last_unparks = calloc(rt->nworkers, sizeof *m->last_unparks);
    m->was_in_sched = calloc(rt->nworkers, sizeof *m->was_in_sched);
    if (!m->last_polls || !m->last_parks || !m->had_backlog || !m->last_unparks ||
        !m->was_in_sched) {
        monitor_free(m);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < rt->nworkers; i++)
        m->last_polls[i] = UINT64_MAX; /* nothing is stuck at the first look */
    int e = mag__thread_start(&m->thread, monitor_main, m);
    if (e) {
        monitor_free(m);
        return e;
    }
    /* Named here, not by the thread itself: by the time the runtime has
     * started, the name is there even if the thread has not run yet. */
    (void)pthread_setname_np(m->thread, "magpie-monitor");
    rt->monitor = m;
    return 0;
}

void mag__monitor_kick(mag_runtime_t *rt)
{
    /* relaxed: the caller's seq_cst load found deep set; the exchange makes
     * one waker per sleep. */
    if (atomic_exchange_explicit(&rt->monitor_deep, 0, memory_order_relaxed)) {
        /* Bit 0 is the stop bit: a kick adds 2, so it never reaches it. */
        atomic_fetch_add_explicit(&rt->monitor_word, 2, memory_order_release);
        mag__futex_wake(&rt->monitor_word, 1);
    }
}

void mag__monitor_stop(mag_runtime_t *rt)
{
    struct mag__monitor *m = rt->monitor;
    if (!m)
        return;
    /* release: pairs with the acquire load in monitor_main. */
    atomic_fetch_or_explicit(&rt->monitor_word, MAG__MONITOR_STOP, memory_order_release);
    mag__futex_wake(&rt->monitor_word, 1);
    pthread_join(m->thread, NULL);
    rt->monitor = NULL;
    monitor_free(m);
}
