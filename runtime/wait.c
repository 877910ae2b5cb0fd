/*
 * runtime/wait.c - suspension: park and wake, waiters (a task or a thread),
 * the futex, sleep, yield and deadlines; the spinlock's slow path and the
 * start of the runtime's helper threads.
 */
#include <errno.h>
#include <signal.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "runtime/fiber.h"
#include "runtime/sched.h"

uint64_t mag__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mag_now(void)
{
    return mag__now();
}

/* ---- locks ---------------------------------------------------------------- */

void mag__lock_slow(mag__lock_t *l)
{
    for (unsigned spins = 0; !mag__trylock(l); spins++) {
        if (spins < 64)
            mag__cpu_relax();
        else
            sched_yield();
    }
}

/* ---- helper threads --------------------------------------------------------- */

int mag__thread_start(pthread_t *th, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(th, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -e;
}

/* ---- futex ---------------------------------------------------------------- */

void mag__futex_wait(_Atomic uint32_t *addr, uint32_t expected)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

void mag__futex_wake(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* ---- park and wake -------------------------------------------------------- */

void mag__park(void)
{
    mag__worker_t *w = mag__worker_current();
    mag_task_t *t = w->current;
    w->switch_reason = MAG__SWITCH_PARK;
    if (!mag__worker_switch_direct(w, t))
        mag__switch_out_of_task(w, t, false);
    /* Resumed, perhaps on another worker: w is stale from here on. */
}

void mag__wake(mag_task_t *t)
{
    if (mag__state_wake(&t->state) == MAG__WAKE_SCHEDULE)
        mag__schedule(t->rt, t, false);
}

/* ---- loop mode: waits that could never end --------------------------------- */

int mag__loop_wait_check(mag_runtime_t *rt, const char *what)
{
    /* Loop mode runs tasks only inside mag_runtime_block_on, on the thread
     * that first called it. acquire: pairs with claim_loop's release of
     * loop_owned, after loop_owner. */
    uint32_t state = atomic_load_explicit(&rt->loop_owned, memory_order_acquire);
    bool owned = state == MAG__LOOP_OWNED;
    if (owned && pthread_equal(rt->loop_owner, pthread_self()) && !mag__worker_current())
        return -EDEADLK;
    /* Before any thread has run the loop, the wait ends only once one does:
     * most likely the same mistake, so said once. relaxed: only the message
     * is at stake. */
    static _Atomic bool told;
    if (state == MAG__LOOP_FREE && !atomic_exchange_explicit(&told, true, memory_order_relaxed))
        mag__warn("%s: a loop-mode runtime runs its tasks only inside mag_runtime_block_on, "
                  "which no thread has called yet: this thread waits until one does",
                  what);
    return 0;
}

/* ---- suspension points ---------------------------------------------------- */

int mag__suspend_begin(int wait_kind, const void *wait_obj)
{
    mag_task_t *t = mag__task_current();
    if (!t)
        return -EPERM;
    /* acquire: pairs with mag_cancel's release store. */
    if (mag__task_cancel_seen(t))
        return -ECANCELED;
    if (t->deadline != UINT64_MAX) {
        if (mag__now() >= t->deadline)
            return -ETIMEDOUT;
        mag__timer_arm(&t->deadline_timer, t, t->deadline);
        t->deadline_armed = true;
    }
    atomic_store_explicit(&t->wait_obj, wait_obj, memory_order_relaxed);
    atomic_store_explicit(&t->wait_kind, wait_kind, memory_order_relaxed);
    return 0;
}

int mag__suspend_check(void)
{
    mag_task_t *t = mag__task_current();
    if (mag__task_cancel_seen(t))
        return -ECANCELED;
    if (t->deadline_armed && mag__timer_fired(&t->deadline_timer))
        return -ETIMEDOUT;
    return 0;
}

void mag__suspend_end(void)
{
    mag_task_t *t = mag__task_current();
    if (t->deadline_armed) {
        mag__timer_disarm(&t->deadline_timer);
        t->deadline_armed = false;
    }
    atomic_store_explicit(&t->wait_kind, MAG__WAIT_NONE, memory_order_relaxed);
}

/* ---- waiters -------------------------------------------------------------- */

void mag__waiter_init(mag__waiter_t *w)
{
    w->task = mag__task_current();
    atomic_store_explicit(&w->state, 0, memory_order_relaxed);
}

void mag__waiter_signal(mag__waiter_t *w)
{
    mag_task_t *t = w->task; /* read before the release: then w may be gone */
    /* release: pairs with the acquire in mag__waiter_signalled. */
    atomic_store_explicit(&w->state, 1, memory_order_release);
    if (t)
        mag__wake(t);
    else
        mag__futex_wake(&w->state, 1); /* a stale address is harmless */
}

int mag__waiter_wait(mag__waiter_t *w, bool interruptible)
{
    if (!w->task) {
        while (!mag__waiter_signalled(w))
            mag__futex_wait(&w->state, 0);
        return 0;
    }
    for (;;) {
        if (mag__waiter_signalled(w))
            return 0;
        if (interruptible) {
            int rc = mag__suspend_check();
            if (rc)
                return rc;
        }
        mag__park();
    }
}

/* ---- sleep, yield, deadlines ---------------------------------------------- */

int mag_sleep_until(uint64_t abs_ns)
{
    mag_task_t *t = mag__task_current();
    int rc = mag__suspend_begin(MAG__WAIT_TIMER, NULL);
    if (rc)
        return rc;
    mag__timer_t tm = {0};
    mag__timer_arm(&tm, t, abs_ns);
    while (!mag__timer_fired(&tm)) {
        if ((rc = mag__suspend_check()))
            break;
        mag__park();
    }
    mag__timer_disarm(&tm);
    mag__suspend_end();
    return rc;
}

int mag_sleep(uint64_t ns)
{
    uint64_t now = mag__now();
    return mag_sleep_until(ns > UINT64_MAX - now ? UINT64_MAX : now + ns);
}

_Thread_local int mag__coop_left MAG_TLS_FAST;

void mag__coop_refill(void)
{
    mag__worker_t *w = mag__worker_current();
    mag__coop_left = MAG__COOP_BUDGET;
    if (!w || !w->current)
        return; /* a plain thread, or the scheduler: nothing to hand over */
    /* Every run starts with a new tick: one that began since the last
     * refill has its budget now. */
    if (w->coop_tick != w->tick) {
        w->coop_tick = w->tick;
        return;
    }
    /* Spent within one run: a turn for the others. Its result is ignored:
     * the operation itself looks at cancellation and deadlines, and one
     * that need not wait succeeds whatever they say. The run after the
     * yield has a new tick, even when nothing else was runnable (the direct
     * switch counts that as a new run too), so the next look refills.
     * mag__coop_left is this thread's, and the task may come back on
     * another: that one's count goes on, which only moves its next look. */
    (void)mag_yield();
}

int mag_yield(void)
{
    mag__worker_t *w = mag__worker_here();
    mag_task_t *t = w ? w->current : NULL;
    if (!t)
        return -EPERM;
    /* Yield even when cancelled or past the deadline: a loop that polls with
     * mag_yield must not become a busy loop that starves everyone else. */
    w->switch_reason = MAG__SWITCH_YIELD;
    if (!mag__worker_switch_direct(w, t))
        mag__switch_out_of_task(w, t, false);
    /* Resumed, perhaps on another worker; t is still this task. */
    if (mag__task_cancel_seen(t))
        return -ECANCELED;
    if (t->deadline != UINT64_MAX && mag__now() >= t->deadline)
        return -ETIMEDOUT;
    return 0;
}

static void recompute_deadline(mag_task_t *t)
{
    uint64_t d = UINT64_MAX;
    for (unsigned i = 0; i < t->ndeadlines; i++)
        if (t->deadlines[i] < d)
            d = t->deadlines[i];
    t->deadline = d;
}

uint64_t mag_deadline_push(uint64_t abs_ns)
{
    mag_task_t *t = mag__task_current();
    if (!t || t->ndeadlines >= MAG_DEADLINE_DEPTH)
        return 0;
    t->deadlines[t->ndeadlines++] = abs_ns;
    if (abs_ns < t->deadline)
        t->deadline = abs_ns;
    /* The token encodes the depth and the task, so a stray pop is caught. */
    return ((t->id & 0xffffffffffull) << 8) | t->ndeadlines;
}

void mag_deadline_pop(uint64_t token)
{
    mag_task_t *t = mag__task_current();
    if (!t || !token)
        return;
    unsigned depth = (unsigned)(token & 0xff);
    if ((token >> 8) != (t->id & 0xffffffffffull) || depth == 0 || depth > t->ndeadlines) {
        mag__warn("mag_deadline_pop: token %llu does not belong to this task's deadlines",
                  (unsigned long long)token);
        return;
    }
    /* Popping an outer deadline pops the ones nested inside it too. */
    t->ndeadlines = depth - 1;
    recompute_deadline(t);
}
