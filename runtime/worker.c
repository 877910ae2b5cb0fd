/*
 * runtime/worker.c - the per-worker scheduler loop.
 *
 * Each turn: take the next task (the LIFO slot at most three times in a row,
 * then the local queue, then a batch from the inject queue; the inject queue
 * first every 61st turn so that it cannot starve), else steal half of a random
 * victim's queue, else park in the ring until a completion, a timer or a
 * wake-up. At most half of the workers search for work at once; the last
 * searcher to find some wakes another, so that work spreads without a
 * thundering herd (the protocol Tokio and Go's scheduler use).
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runtime/fiber.h"
#include "runtime/sched.h"
#include "observe/observe.h"

#define FAIRNESS_INTERVAL 61
#define LIFO_MAX_STREAK 3
#define STACK_CACHE_MAX 64
#define STEAL_MAX (MAG__DEQUE_CAP / 2)

_Thread_local mag__worker_t *mag__tls_worker;

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

mag_runtime_t *mag__worker_runtime(mag__worker_t *w)
{
    return w ? w->rt : NULL;
}

mag_runtime_t *mag_runtime_current(void)
{
    return mag__worker_runtime(mag__worker_current());
}

static inline void stat_inc(_Atomic uint64_t *c, uint64_t n)
{
    /* Owner-only counters: a relaxed load and store, no locked instruction. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

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
static mag_task_t *inject_take(mag_runtime_t *rt, size_t max, size_t *taken)
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

/* The local queue is full: half of it and t go to the inject queue in one
 * batch. Out of line, so the hot push below stays small. */
__attribute__((noinline)) static void push_overflow(mag__worker_t *w, mag_task_t *t)
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
    stat_inc(&w->stats.overflows, 1);
}

static inline void push_back(mag__worker_t *w, mag_task_t *t)
{
    if (MAG_UNLIKELY(!mag__deque_push(&w->deque, t)))
        push_overflow(w, t);
}

void mag__schedule(mag_runtime_t *rt, mag_task_t *t, bool is_new)
{
    mag__worker_t *w = mag__tls_worker;
    if (w && w->rt == rt) {
        mag__obs_wake(w, t, is_new);
        /* The task just woken or spawned runs next here (cache-warm); the one
         * it displaces goes to the back, where others may steal it. */
        mag_task_t *prev = w->lifo;
        w->lifo = t;
        if (!prev)
            return;
        push_back(w, prev);
        if (rt->nworkers == 1) /* loop mode: no other worker to wake */
            return;
    } else {
        mag__inject_push(rt, t, t, 1);
        if (w)
            stat_inc(&w->stats.remote_wakes, 1);
    }
    mag__notify_parked(rt);
}

/* ---- idle workers ------------------------------------------------------------ */

#define IDLE_SEARCH_ONE (1u << 16)
#define IDLE_UNPARK_ONE 1u
#define IDLE_SEARCHING(s) ((s) >> 16)
#define IDLE_UNPARKED(s) ((s)&0xffffu)

void mag__worker_wake(mag__worker_t *w)
{
    /* seq_cst: pairs with the seq_cst store of sleeping and load of notified
     * in park(): either the sleeper sees our notified flag, or we see it
     * sleeping and write its eventfd. */
    if (atomic_exchange_explicit(&w->sleeping, 0, memory_order_seq_cst)) {
        uint64_t one = 1;
        ssize_t r = write(w->wake_fd, &one, sizeof one);
        (void)r; /* EAGAIN means a wake is pending already */
    }
}

void mag__notify_parked(mag_runtime_t *rt)
{
    /* The fence orders our queue push (made before the call) before this
     * load of idle; it pairs with the seq_cst read-modify-write in
     * transition_to_parked and the seq_cst loads in work_pending_anywhere: a
     * worker about to park either sees the work we queued or is seen here.
     * (A plain load could pass the buffered store of the push on x86.) A
     * fence rather than Tokio's fetch_add(0): it does not take the idle
     * word's cache line exclusively on every spawn and wake. */
    atomic_thread_fence(memory_order_seq_cst);
    uint32_t s = atomic_load_explicit(&rt->idle, memory_order_relaxed);
    if (IDLE_SEARCHING(s) != 0 || IDLE_UNPARKED(s) >= rt->nworkers)
        return;
    pthread_mutex_lock(&rt->idle_lock);
    s = atomic_load_explicit(&rt->idle, memory_order_seq_cst);
    if (IDLE_SEARCHING(s) != 0 || IDLE_UNPARKED(s) >= rt->nworkers || !rt->nsleepers) {
        pthread_mutex_unlock(&rt->idle_lock);
        return;
    }
    unsigned idx = rt->sleepers[--rt->nsleepers];
    /* The woken worker starts out searching. */
    atomic_fetch_add_explicit(&rt->idle, IDLE_SEARCH_ONE | IDLE_UNPARK_ONE, memory_order_seq_cst);
    mag__worker_t *w = rt->workers[idx];
    pthread_mutex_unlock(&rt->idle_lock);
    mag__worker_wake(w);
}

static bool in_sleepers(mag_runtime_t *rt, unsigned idx)
{
    for (unsigned i = 0; i < rt->nsleepers; i++)
        if (rt->sleepers[i] == idx)
            return true;
    return false;
}

static bool transition_to_searching(mag__worker_t *w)
{
    if (w->searching)
        return true;
    mag_runtime_t *rt = w->rt;
    uint32_t s = atomic_load_explicit(&rt->idle, memory_order_seq_cst);
    if (2 * IDLE_SEARCHING(s) >= rt->nworkers)
        return false;
    atomic_fetch_add_explicit(&rt->idle, IDLE_SEARCH_ONE, memory_order_seq_cst);
    w->searching = true;
    return true;
}

static void transition_from_searching(mag__worker_t *w)
{
    if (!w->searching)
        return;
    w->searching = false;
    uint32_t prev = atomic_fetch_sub_explicit(&w->rt->idle, IDLE_SEARCH_ONE, memory_order_seq_cst);
    if (IDLE_SEARCHING(prev) == 1) /* the last searcher found work: wake one more */
        mag__notify_parked(w->rt);
}

/* Returns true if this was the last searcher. */
static bool transition_to_parked(mag__worker_t *w)
{
    mag_runtime_t *rt = w->rt;
    pthread_mutex_lock(&rt->idle_lock);
    uint32_t dec = IDLE_UNPARK_ONE | (w->searching ? IDLE_SEARCH_ONE : 0);
    uint32_t prev = atomic_fetch_sub_explicit(&rt->idle, dec, memory_order_seq_cst);
    rt->sleepers[rt->nsleepers++] = w->index;
    pthread_mutex_unlock(&rt->idle_lock);
    bool last = w->searching && IDLE_SEARCHING(prev) == 1;
    w->searching = false;
    return last;
}

/* After waking: if still listed as a sleeper (woken by I/O, a timer or a
 * spurious wake-up rather than by notify_parked), take ourselves off the
 * list. Returns true if we were notified (and are now counted searching). */
static bool transition_from_parked(mag__worker_t *w)
{
    mag_runtime_t *rt = w->rt;
    pthread_mutex_lock(&rt->idle_lock);
    bool listed = false;
    for (unsigned i = 0; i < rt->nsleepers; i++) {
        if (rt->sleepers[i] == w->index) {
            rt->sleepers[i] = rt->sleepers[--rt->nsleepers];
            listed = true;
            break;
        }
    }
    if (listed)
        atomic_fetch_add_explicit(&rt->idle, IDLE_UNPARK_ONE, memory_order_seq_cst);
    pthread_mutex_unlock(&rt->idle_lock);
    w->searching = !listed;
    return !listed;
}

static bool work_pending_anywhere(mag_runtime_t *rt)
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

/* ---- the ring ---------------------------------------------------------------- */

static void wake_complete(mag__op_t *op, int res, uint32_t flags)
{
    (void)res;
    (void)flags;
    mag__worker_t *w = (mag__worker_t *)((char *)op - offsetof(mag__worker_t, wake_op));
    w->wake_armed = false;
}

static void arm_wake_read(mag__worker_t *w)
{
    if (w->wake_armed)
        return;
    struct io_uring_sqe *sqe = mag__sqe();
    io_uring_prep_read(sqe, w->wake_fd, &w->wake_buf, sizeof w->wake_buf, 0);
    io_uring_sqe_set_data(sqe, &w->wake_op);
    w->wake_armed = true;
}

struct io_uring_sqe *mag__sqe(void)
{
    mag__worker_t *w = mag__worker_current();
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&w->ring)))
        io_uring_submit(&w->ring);
    w->inflight++;
    stat_inc(&w->stats.io_submitted, 1);
    return sqe;
}

static unsigned reap(mag__worker_t *w)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&w->ring, head, cqe)
    {
        mag__op_t *op = io_uring_cqe_get_data(cqe);
        if (!(cqe->flags & IORING_CQE_F_MORE))
            w->inflight--;
        if (op)
            op->complete(op, cqe->res, cqe->flags);
        n++;
    }
    if (n) {
        io_uring_cq_advance(&w->ring, n);
        stat_inc(&w->stats.io_completed, n);
    }
    return n;
}

static void cancel_complete(mag__op_t *op, int res, uint32_t flags)
{
    (void)res;
    (void)flags;
    mag__cancel_t *c = (mag__cancel_t *)op;
    mag_task_t *task = c->task; /* waker's rule: read before the release */
    /* release: pairs with the acquire in mag__cancel_done. */
    atomic_store_explicit(&c->done, 1, memory_order_release);
    if (task)
        mag__wake(task);
}

static void submit_cancel(mag__cancel_t *c)
{
    struct io_uring_sqe *sqe = mag__sqe();
    io_uring_prep_cancel(sqe, c->target, 0);
    io_uring_sqe_set_data(sqe, &c->op);
}

/* Cancel requests forwarded by other threads: a Treiber stack. Each record
 * stays alive until its own completion (see mag__cancel_t). */
static void drain_cancels(mag__worker_t *w)
{
    if (!atomic_load_explicit(&w->cancels, memory_order_relaxed))
        return;
    /* acquire: pairs with the release in mag__op_cancel's CAS. */
    mag__cancel_t *c = atomic_exchange_explicit(&w->cancels, NULL, memory_order_acquire);
    while (c) {
        mag__cancel_t *next = c->next;
        submit_cancel(c);
        c = next;
    }
}

void mag__op_cancel(mag__op_t *target, mag__cancel_t *c)
{
    mag__worker_t *owner = target->worker;
    c->op.complete = cancel_complete;
    c->op.worker = owner;
    c->target = target;
    c->task = mag__task_current();
    atomic_store_explicit(&c->done, 0, memory_order_relaxed);
    if (owner == mag__worker_current()) {
        submit_cancel(c);
        return;
    }
    mag__cancel_t *head = atomic_load_explicit(&owner->cancels, memory_order_relaxed);
    do
        c->next = head;
    /* seq_cst: release publishes c to the draining owner; seq_cst pairs
     * with park's seq_cst load of cancels after it announces sleeping. */
    while (!atomic_compare_exchange_weak_explicit(&owner->cancels, &head, c, memory_order_seq_cst,
                                                  memory_order_relaxed));
    mag__worker_wake(owner);
}

/* Submits what is pending and reaps what completed, without blocking. */
static unsigned poll_ring(mag__worker_t *w)
{
    drain_cancels(w);
    unsigned busy = w->inflight - (w->wake_armed ? 1 : 0);
    if (io_uring_sq_ready(&w->ring) || busy) {
        if (w->ring_flags & IORING_SETUP_DEFER_TASKRUN)
            io_uring_submit_and_get_events(&w->ring);
        else
            io_uring_submit(&w->ring);
    }
    return reap(w);
}

static unsigned poll_timers(mag__worker_t *w)
{
    if (!atomic_load_explicit(&w->wheel.count, memory_order_relaxed))
        return 0;
    return mag__wheel_expire(&w->wheel, mag__now());
}

int mag__worker_setup(mag__worker_t *w)
{
    struct io_uring_params p;
    unsigned entries = w->rt->cfg.ring_entries;
    /* Newest flags first, falling back on kernels that refuse them. */
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int rc = -EINVAL;
    for (unsigned i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        memset(&p, 0, sizeof p);
        p.flags = flag_sets[i];
        rc = io_uring_queue_init_params(entries, &w->ring, &p);
        if (rc == 0) {
            w->ring_flags = p.flags;
            break;
        }
        if (rc != -EINVAL)
            break;
    }
    if (rc)
        return rc;
    w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->wake_fd < 0) {
        rc = -errno;
        io_uring_queue_exit(&w->ring);
        return rc;
    }
    w->wake_op.complete = wake_complete;
    w->wake_op.worker = w;
    w->ring_ready = true;
    mag__wheel_init(&w->wheel, mag__now());
    return 0;
}

void mag__worker_teardown(mag__worker_t *w)
{
    if (w->ring_ready) {
        io_uring_queue_exit(&w->ring);
        close(w->wake_fd);
        mag__wheel_destroy(&w->wheel);
        w->ring_ready = false;
    }
    while (w->stack_cache) {
        mag__stack_t *s = w->stack_cache;
        w->stack_cache = s->next;
        mag__stack_free(s);
    }
    w->stacks_cached = 0;
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

static void run_task(mag__worker_t *w, mag_task_t *t)
{
    /* A task woken from PARKED is RUNNABLE: the exchange (acq_rel) orders
     * us after the waker's read-modify-write, so the task sees what the
     * waker published, and clears a NOTIFY that came while it was queued.
     * A task that yielded stayed RUNNING: a waker meanwhile set NOTIFY with
     * a read-modify-write, which makes its next park run it again rather
     * than lose the wake, so the plain load suffices and the common yield
     * costs no locked instruction. */
    if (atomic_load_explicit(&t->state, memory_order_acquire) != MAG__RUNNING)
        atomic_exchange_explicit(&t->state, MAG__RUNNING, memory_order_acq_rel);
    if (MAG_UNLIKELY(!t->stack)) {
        t->stack = stack_get(w, t->stack_size);
        if (!t->stack)
            mag__fatal("out of memory for a %zu-byte fiber stack", t->stack_size);
        t->sp = mag__ctx_init(t->stack, mag__task_entry, t);
    }
    for (;;) {
        w->current = t;
        atomic_store_explicit(&t->worker, w, memory_order_relaxed);
        mag__obs_run_begin(w, t);
        stat_inc(&w->stats.polls, 1);
        mag__switch_into_task(w, t);
        w->current = NULL;
        mag__obs_run_end(w, t);
        /* Guarded stacks fault on overflow; the canary covers the rest. */
        if (MAG_UNLIKELY(!t->stack->guarded && !mag__stack_canary_ok(t->stack)))
            mag__fatal("stack overflow in task '%s' (id %llu): its %zu-byte stack was "
                       "overrun; raise its stack_size (mag_spawn_ex) or MAG_STACK_SIZE",
                       t->name[0] ? t->name : "(unnamed)", (unsigned long long)t->id,
                       t->stack_size);
        switch (w->switch_reason) {
        case MAG__SWITCH_PARK: {
            uint32_t expected = MAG__RUNNING;
            /* acq_rel: release makes the task's writes visible to whoever
             * wakes and runs it; on failure, acquire sees the waker's data. */
            if (atomic_compare_exchange_strong_explicit(&t->state, &expected, MAG__PARKED,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire))
                return;
            /* Woken while switching out: run it again at once. */
            atomic_exchange_explicit(&t->state, MAG__RUNNING, memory_order_acq_rel);
            continue;
        }
        case MAG__SWITCH_YIELD:
            /* The state stays RUNNING while queued: see the top of run_task. */
            push_back(w, t);
            if (w->rt->nworkers > 1)
                mag__notify_parked(w->rt);
            return;
        case MAG__SWITCH_EXIT:
        default:
#if MAG__TSAN
            __tsan_destroy_fiber(t->tsan_fiber);
            t->tsan_fiber = NULL;
#endif
            stack_put(w, t->stack, t->stack_size);
            t->stack = NULL;
            mag__task_finish(t);
            return;
        }
    }
}

static mag_task_t *next_local(mag__worker_t *w)
{
    mag_task_t *t;
    size_t n;
    if (w->tick % FAIRNESS_INTERVAL == 0) {
        if ((t = inject_take(w->rt, 1, &n)))
            return t;
    }
    if (w->lifo) {
        t = w->lifo;
        w->lifo = NULL;
        if (w->lifo_streak < LIFO_MAX_STREAK) {
            w->lifo_streak++;
            stat_inc(&w->stats.lifo_hits, 1);
            return t;
        }
        push_back(w, t); /* its turn is over: to the back */
    }
    w->lifo_streak = 0;
    if (mag__deque_take(&w->deque, &t, 1, false))
        return t;
    /* A fair share of the inject queue, the rest stays for other workers. */
    size_t share = atomic_load_explicit(&w->rt->inject_len, memory_order_relaxed) /
                       w->rt->nworkers + 1;
    if (share > STEAL_MAX)
        share = STEAL_MAX;
    if ((t = inject_take(w->rt, share, &n))) {
        for (mag_task_t *x = t->next; x;) {
            mag_task_t *next = x->next;
            push_back(w, x);
            x = next;
        }
        return t;
    }
    return NULL;
}

static mag_task_t *steal(mag__worker_t *w)
{
    mag_runtime_t *rt = w->rt;
    if (rt->nworkers == 1 || !transition_to_searching(w))
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
        stat_inc(&w->stats.steal_attempts, 1);
        unsigned n = mag__deque_take(&v->deque, batch, STEAL_MAX, true);
        if (n) {
            stat_inc(&w->stats.steals, 1);
            stat_inc(&w->stats.stolen_tasks, n);
            mag__obs_steal(w, v->index, n);
            for (unsigned k = 1; k < n; k++)
                push_back(w, batch[k]);
            return batch[0];
        }
    }
    size_t n;
    mag_task_t *t = inject_take(rt, 1, &n);
    return t;
}

static bool has_local_work(mag__worker_t *w)
{
    return w->lifo || mag__deque_len(&w->deque);
}

static void park(mag__worker_t *w)
{
    mag_runtime_t *rt = w->rt;
    /* Last look before sleeping: completions and timers may make work. */
    poll_ring(w);
    poll_timers(w);
    if (has_local_work(w))
        return;
    /* Every worker looks once more after declaring itself parked, not only
     * the last searcher (Tokio's rule): a waker that saw us still counted as
     * awake did not wake anyone, and a single worker, or one refused
     * searching, never was a searcher. The seq_cst loads pair with the fence
     * in mag__notify_parked; the notify may wake this very worker. */
    transition_to_parked(w);
    if (work_pending_anywhere(rt))
        mag__notify_parked(rt);
    stat_inc(&w->stats.parks, 1);
    uint64_t t0 = mag__now();
    mag__obs_park_begin(w, t0);
    for (;;) {
        arm_wake_read(w);
        /* seq_cst: pairs with mag__worker_wake's exchange (see there). */
        atomic_store_explicit(&w->sleeping, 1, memory_order_seq_cst);
        bool listed;
        pthread_mutex_lock(&rt->idle_lock);
        listed = in_sleepers(rt, w->index);
        pthread_mutex_unlock(&rt->idle_lock);
        /* seq_cst: after the seq_cst store of sleeping, paired with the
         * stopper's and the last finisher's seq_cst operations. */
        bool stop = atomic_load_explicit(&rt->stopping, memory_order_seq_cst) ||
                    (rt->draining && !atomic_load_explicit(&rt->live, memory_order_seq_cst));
        if (listed && !stop && !atomic_load_explicit(&w->cancels, memory_order_seq_cst)) {
            uint64_t next = mag__wheel_next(&w->wheel);
            struct io_uring_cqe *cqe;
            drain_cancels(w);
            if (next == UINT64_MAX) {
                io_uring_submit_and_wait(&w->ring, 1);
            } else {
                uint64_t now = mag__now();
                uint64_t d = next > now ? next - now : 0;
                struct __kernel_timespec ts = {.tv_sec = (long long)(d / 1000000000ull),
                                               .tv_nsec = (long long)(d % 1000000000ull)};
                io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
            }
        }
        atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
        poll_ring(w);
        poll_timers(w);
        if (stop || atomic_load_explicit(&rt->stopping, memory_order_acquire) ||
            has_local_work(w) || !listed) {
            transition_from_parked(w);
            break;
        }
        pthread_mutex_lock(&rt->idle_lock);
        listed = in_sleepers(rt, w->index);
        pthread_mutex_unlock(&rt->idle_lock);
        if (!listed) { /* notified: we are searching now */
            w->searching = true;
            break;
        }
    }
    uint64_t t1 = mag__now();
    mag__obs_park_end(w, t0, t1);
    stat_inc(&w->stats.unparks, 1);
    stat_inc(&w->stats.parked_ns, t1 - t0);
}

static bool task_done(mag_task_t *t)
{
    return (atomic_load_explicit(&t->state, memory_order_acquire) & MAG__STATUS_MASK) ==
           MAG__DONE;
}

void mag__worker_loop(mag__worker_t *w, mag_task_t *until)
{
    mag__tls_worker = w;
#if MAG__TSAN
    w->tsan_sched = __tsan_get_current_fiber();
#endif
    for (;;) {
        if (until ? task_done(until)
                  : atomic_load_explicit(&w->rt->stopping, memory_order_acquire) ||
                        (w->rt->draining &&
                         !atomic_load_explicit(&w->rt->live, memory_order_acquire)))
            break;
        w->tick++;
        if (w->tick % FAIRNESS_INTERVAL == 0) {
            poll_ring(w);
            poll_timers(w);
        }
        mag_task_t *t = next_local(w);
        if (!t)
            t = steal(w);
        if (t) {
            transition_from_searching(w);
            run_task(w, t);
            continue;
        }
        park(w);
    }
    transition_from_searching(w);
    poll_ring(w);
    mag__tls_worker = NULL;
}
