/*
 * runtime/internal.h - what the runtime shares with io/, sync/ and the pools.
 *
 * The wake-up protocol in one paragraph. A task that must wait publishes
 * itself in some wait structure (a wait queue, an I/O operation record, a
 * timer), then calls mag__park(), which switches to the worker's scheduler.
 * Only after the switch, on the scheduler's stack, does the worker move the
 * task's state from RUNNING to PARKED. A waker calls mag__wake(task): PARKED
 * becomes RUNNABLE and the task is queued; RUNNING becomes NOTIFIED, which
 * makes the scheduler run the task again instead of parking it. So a wake that
 * races with a suspend is never lost, and a task is never queued twice.
 *
 * Wake-ups may be spurious: every waiter re-checks its own condition in a loop
 * (like a futex). That is what makes it safe for a waker to call mag__wake on a
 * task that has meanwhile moved on: task records are type-stable (recycled as
 * task records only, never returned to malloc; a slab of free records gives
 * its pages back to the kernel but stays mapped, and reads as FREE records
 * afterwards, see task_pool.c), so a late wake at worst wakes a task that
 * finds its condition false and parks again, or finds FREE and does nothing.
 *
 * Waker's rule: read everything you need from the waiter's record (the task
 * pointer), then publish the result with a release store, then call
 * mag__wake. After the release store the waiter may return and its record
 * (often on its stack) is gone.
 */
#ifndef MAGPIE_RUNTIME_INTERNAL_H
#define MAGPIE_RUNTIME_INTERNAL_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "magpie/runtime.h"

#define MAG_HIDDEN __attribute__((visibility("hidden")))
#define MAG_LIKELY(x) __builtin_expect(!!(x), 1)
#define MAG_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MAG_CACHELINE 64
/* A thread-local read on the scheduler's hot paths (several per task
 * switch): the initial-exec model makes it one load at a fixed offset from
 * the thread pointer in the shared library too, where the default model
 * calls __tls_get_addr for each. The price is a few bytes of the static TLS
 * block that glibc keeps for libraries, also when the library is loaded
 * with dlopen. */
#define MAG_TLS_FAST __attribute__((tls_model("initial-exec")))

/* Asks for the cache line at p, for reading; never faults, whatever p is.
 * An instruction of its own, not __builtin_prefetch: GCC 12's dead-code
 * pass drops that builtin from some branches (a prefetch of a value loaded
 * just before it, inlined, vanished without a trace), and a hint that is
 * silently gone measures as a hint that does not help. */
static inline void mag__prefetch(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#elif defined(__aarch64__)
    __asm__ volatile("prfm pldl1keep, %0" : : "Q"(*(const char *)p));
#else
    __builtin_prefetch(p);
#endif
}

/* A spinning thread's pause (x86 PAUSE, aarch64 YIELD). */
static inline void mag__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#endif
}

/* A spinlock for short critical sections that never suspend and call
 * nothing that blocks (test and test-and-set). After a while it yields the
 * CPU: with more workers than cores, the holder may be the thread waiting
 * for it to run. */
typedef struct mag__lock {
    _Atomic uint32_t held;
} mag__lock_t;

static inline bool mag__trylock(mag__lock_t *l)
{
    /* acquire: pairs with the release in mag__unlock. */
    return !atomic_load_explicit(&l->held, memory_order_relaxed) &&
           !atomic_exchange_explicit(&l->held, 1, memory_order_acquire);
}

MAG_HIDDEN void mag__lock_slow(mag__lock_t *l);

static inline void mag__lock(mag__lock_t *l)
{
    if (MAG_UNLIKELY(!mag__trylock(l)))
        mag__lock_slow(l);
}

static inline void mag__unlock(mag__lock_t *l)
{
    atomic_store_explicit(&l->held, 0, memory_order_release);
}

/* Which sanitizer this translation unit is built with (0 or 1 each). */
#if defined(__SANITIZE_ADDRESS__)
#define MAG__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MAG__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define MAG__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MAG__TSAN 1
#endif
#endif
#ifndef MAG__ASAN
#define MAG__ASAN 0
#endif
#ifndef MAG__TSAN
#define MAG__TSAN 0
#endif
#define MAG__SANITIZED (MAG__ASAN || MAG__TSAN)

/* Where a parked task waits, for task dumps (mag_task.wait_kind). */
enum {
    MAG__WAIT_NONE = 0,
    MAG__WAIT_IO,
    MAG__WAIT_TIMER,
    MAG__WAIT_JOIN,
    MAG__WAIT_GROUP,
    MAG__WAIT_MUTEX,
    MAG__WAIT_RWLOCK,
    MAG__WAIT_SEM,
    MAG__WAIT_EVENT,
    MAG__WAIT_NOTIFY,
    MAG__WAIT_COND,
    MAG__WAIT_BARRIER,
    MAG__WAIT_WG,
    MAG__WAIT_CHAN,
    MAG__WAIT_SELECT,
    MAG__WAIT_BLOCKING,
    MAG__WAIT_PROC,
    MAG__WAIT_SIGNAL,
};

struct mag__worker;

/* ---- timers --------------------------------------------------------------
 * A timer (mag__timer_t) lives wherever its holder wants (usually the waiting
 * task's stack or task record). Arming it takes an entry from the wheel of
 * the worker that arms (timer.c): the wheel links and frees only its own
 * entries, never the holder's memory, so that a disarm from any other thread
 * only marks the entry and hands it back, with no lock (the protocol is at
 * the top of timer.c). When it fires, the worker wakes the entry's task. */
typedef struct mag__tentry {
    struct mag__tentry *prev, *next; /* in a slot, or next free (under the wheel's lock) */
    uint64_t pos;                    /* tick, linked, level, slot (timer.c; the wheel's lock) */
    /* The task | ARMED while armed; FIRED; or, handed back to the wheel, the
     * next handed-back entry | FIRED or CANCELLED. */
    _Atomic uintptr_t word;
} mag__tentry_t;

enum {
    MAG__TENTRY_ARMED = 1,
    MAG__TENTRY_FIRED = 2,
    MAG__TENTRY_CANCELLED = 3,
    MAG__TENTRY_STATE = 3,
};

typedef struct mag__timer {
    mag__tentry_t *entry;     /* the wheel's entry, from arming until disarmed */
    struct mag__wheel *wheel; /* the wheel it was armed on; NULL once disarmed */
    uint32_t done;            /* fired while arming, or disarmed: reads as fired */
} mag__timer_t;

/* Arms t, zeroed or armed before (it is disarmed first), on the calling
 * worker's wheel to wake task at when_ns. */
MAG_HIDDEN void mag__timer_arm(mag__timer_t *t, mag_task_t *task, uint64_t when_ns);
/* Disarms t from whatever thread; a no-op if it was never armed or is
 * disarmed already. After it returns no worker touches t again, and t reads
 * as fired. */
MAG_HIDDEN void mag__timer_disarm(mag__timer_t *t);
/* The task holding t (its fields are that task's). */
static inline bool mag__timer_fired(const mag__timer_t *t)
{
    if (!t->entry)
        return t->done != 0;
    /* acquire: pairs with the release of the expiry's compare-and-swap. */
    return (atomic_load_explicit(&t->entry->word, memory_order_acquire) & MAG__TENTRY_STATE) ==
           MAG__TENTRY_FIRED;
}

/* ---- ring operations -----------------------------------------------------
 * Every SQE's user_data is a pointer to a mag__op_t (or 0: ignore the CQE).
 * The worker that reaps the CQE calls op->complete(op, res, flags) on its own
 * thread. Operation families embed mag__op_t as their first member and keep
 * a table of completion functions, one per kind. */
typedef struct mag__op mag__op_t;
struct mag__op {
    void (*complete)(mag__op_t *op, int res, uint32_t cqe_flags);
    struct mag__worker *worker;     /* ring the op was submitted on */
    uint32_t sq_pos;                /* its SQE's place in that ring's SQ (ring.c) */
};

/* From a task: an SQE on the ring of the worker it runs on, for op, whose
 * worker field it sets to that worker (so prepare op's other fields first,
 * and the SQE after). The worker submits all prepared SQEs in one
 * io_uring_enter per loop iteration. With the SQ full it submits; should
 * the kernel refuse, the task yields to the scheduler, which reaps, and
 * tries again (perhaps on another worker: hence op->worker). Never NULL. */
MAG_HIDDEN struct io_uring_sqe *mag__sqe(mag__op_t *op);
/* After the SQE of op is filled in, with no suspension since mag__sqe: it
 * is complete, and whoever submits next may hand it to the kernel (in a
 * multi-worker runtime a rescuer may, while op->worker is stuck in a task:
 * monitor.c). */
MAG_HIDDEN void mag__sqe_commit(mag__op_t *op);
/* A request to cancel an operation, on the ring it was submitted on. The
 * record lives in the waiting task's frame, like the operation itself: the
 * task must not return until both the operation's completion and this
 * record's have arrived (mag__cancel_done), so a forwarded request never
 * outlives its frame and can never hit a later operation at the same
 * address. */
typedef struct mag__cancel {
    mag__op_t op;               /* completion of the ASYNC_CANCEL itself */
    mag__op_t *target;          /* NULL: every request on fd (mag__ring_cancel_fd) */
    int fd;
    int res;                    /* the cancel's own CQE result, once done */
    mag_task_t *task;           /* woken when the request completes */
    _Atomic uint32_t done;      /* release by the completion; acquire below */
    struct mag__cancel *next;   /* link in the owning worker's mailbox */
} mag__cancel_t;

/* From a task: asks target's ring to cancel it (IORING_OP_ASYNC_CANCEL by
 * user_data), forwarded to the owning worker when that is another thread.
 * The target still completes through its own callback (usually with
 * -ECANCELED). */
MAG_HIDDEN void mag__op_cancel(mag__op_t *target, mag__cancel_t *c);
/* From a task: cancels every request on fd on each ring of the caller's
 * runtime (IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL, Linux 5.19),
 * forwarded to each ring's owner, and waits, uninterruptibly, until every one
 * of those cancels has completed: after it, no request submitted before the
 * call still waits on the file fd names. The cancelled requests complete
 * through their own callbacks with -ECANCELED. 0; -EINVAL where the kernel
 * lacks cancel-by-descriptor (nothing was cancelled); -EPERM outside a task. */
MAG_HIDDEN int mag__ring_cancel_fd(int fd);
/* Which rings may hold a request on a descriptor (fd_rings.c): noted by
 * whoever prepares a request on fd for w's ring, before it can be
 * submitted; taken (and cleared) by the close of fd. */
MAG_HIDDEN void mag__fd_rings_note(struct mag__worker *w, int fd);
MAG_HIDDEN uint64_t mag__fd_rings_take(mag_runtime_t *rt, int fd);
MAG_HIDDEN bool mag__fd_rings_has(uint64_t rings, const struct mag__worker *w);
MAG_HIDDEN int mag__fd_rings_init(mag_runtime_t *rt);
MAG_HIDDEN void mag__fd_rings_free(mag_runtime_t *rt);
/* For tests: mag__ring_cancel_fd answers -EINVAL at once, as on a kernel
 * before 5.19. Set before creating a runtime. */
MAG_HIDDEN extern bool mag__ring_no_cancel_fd;
/* Set when the kernel lacks IORING_REGISTER_SYNC_CANCEL (before Linux 6.0:
 * asked at the first multi-worker ring's setup), or by a test before it
 * creates a runtime: cancels then always go through the owning worker's
 * mailbox (ring.c). */
MAG_HIDDEN extern _Atomic bool mag__ring_no_sync_cancel;
static inline bool mag__cancel_done(const mag__cancel_t *c)
{
    return atomic_load_explicit(&c->done, memory_order_acquire) != 0;
}

/* ---- the current context ------------------------------------------------
 * Never cached by the compiler across a suspension: these read thread-local
 * state through a function the optimiser cannot see into. */
MAG_HIDDEN struct mag__worker *mag__worker_current(void);
MAG_HIDDEN mag_task_t *mag__task_current(void);
MAG_HIDDEN mag_runtime_t *mag__worker_runtime(struct mag__worker *w);

/* ---- suspension ----------------------------------------------------------
 * The shape of every suspension point:
 *
 *     int rc = mag__suspend_begin(MAG__WAIT_X, obj);  // -EPERM/-ECANCELED/-ETIMEDOUT
 *     if (rc) return rc;
 *     publish a waiter;
 *     while (!condition) {
 *         if ((rc = mag__suspend_check())) break;     // cancelled or deadline
 *         mag__park();
 *     }
 *     mag__suspend_end();
 *     if (rc) withdraw the waiter (and, if a result raced in, take it or wait
 *             for it, so that nothing is consumed and lost).
 *
 * begin() arms the task's deadline timer when it has one; end() disarms it. */
MAG_HIDDEN int mag__suspend_begin(int wait_kind, const void *wait_obj);
MAG_HIDDEN int mag__suspend_check(void);
MAG_HIDDEN void mag__suspend_end(void);
/* Switches to the scheduler until woken (maybe spuriously). Task only. */
MAG_HIDDEN void mag__park(void);
/* Makes t runnable if it is parked, or notified if it is running. Any thread. */
MAG_HIDDEN void mag__wake(mag_task_t *t);

/* ---- the co-operative budget (Tokio's coop) -----------------------------
 * mag__coop_spend is called on entry by the waiting operations of the
 * primitives (not their try_ forms). A task's run may complete
 * MAG__COOP_BUDGET of them (up to twice that:
 * below) without suspending; then one yields first, so that a loop over
 * operations that are always ready (a select that can always send and
 * receive) cannot keep the other tasks, the timers and the ring of its
 * worker waiting. Does nothing outside a task.
 *
 * The fast path is a thread-local count down, read and written on entry,
 * before the operation can suspend and move the task to another thread.
 * At zero, mag__coop_refill looks: a run that began since the last refill
 * gets a full budget (so a run's budget is between one and two of them),
 * else the task yields. No switch path has to reset it. */
#define MAG__COOP_BUDGET 128
MAG_HIDDEN extern _Thread_local int mag__coop_left MAG_TLS_FAST;
MAG_HIDDEN void mag__coop_refill(void);
static inline void mag__coop_spend(void)
{
    if (MAG_UNLIKELY(--mag__coop_left < 0))
        mag__coop_refill();
}

/* ---- waiters: one parked task or one blocked OS thread ------------------ */
typedef struct mag__waiter {
    mag_task_t *task;        /* NULL: a plain thread, parked on the futex below */
    _Atomic uint32_t state;  /* 0 waiting, 1 signalled */
} mag__waiter_t;

/* Binds w to the calling task, or to the calling thread outside a task. */
MAG_HIDDEN void mag__waiter_init(mag__waiter_t *w);
/* Publishes the signal (release; pairs with the acquire in waiter_wait) and
 * wakes the waiter. Follows the waker's rule above. */
MAG_HIDDEN void mag__waiter_signal(mag__waiter_t *w);
static inline bool mag__waiter_signalled(const mag__waiter_t *w)
{
    return atomic_load_explicit(&w->state, memory_order_acquire) != 0;
}
/* Waits until signalled. interruptible: a task also returns early with
 * -ECANCELED or -ETIMEDOUT (and must then withdraw w itself); plain threads
 * are never interrupted. Call between suspend_begin and suspend_end when
 * interruptible; the uninterruptible form is self-contained. */
MAG_HIDDEN int mag__waiter_wait(mag__waiter_t *w, bool interruptible);

/* futex wrappers on a 32-bit word. */
MAG_HIDDEN void mag__futex_wait(_Atomic uint32_t *addr, uint32_t expected);
MAG_HIDDEN void mag__futex_wake(_Atomic uint32_t *addr, int n);

/* pthread_create with every signal blocked in the new thread, so that none
 * of the application's signals land on the runtime's own helper threads.
 * 0 or -errno. */
MAG_HIDDEN int mag__thread_start(pthread_t *th, void *(*fn)(void *), void *arg);

/* ---- tasks as the other areas see them ---------------------------------- */
/* mag_task_t * here is a task record (mag__task_current, a waiter's task),
 * except where a comment says handle: the value mag_spawn returns, which
 * only the public calls and these take (see sched.h). */
MAG_HIDDEN bool mag__task_cancelled(mag_task_t *t);
/* Cancels the task record t, which the caller knows is alive (it holds its
 * handle, or a lock that keeps it listed): mag_cancel without the handle
 * check. Any thread. */
MAG_HIDDEN void mag__task_cancel(mag_task_t *t);
/* Joins the handle t ignoring the caller's cancellation and deadline (used
 * after a cancel, to wait for the task to unwind). */
MAG_HIDDEN int mag__join_uninterruptible(mag_task_t *t, int *status);
/* Spawns on rt from any thread (the inject queue when not on rt's worker);
 * *out (if not NULL) receives the task's handle. */
MAG_HIDDEN int mag__spawn(mag_runtime_t *rt, mag_task_t **out, mag_fn fn, void *arg,
                          const mag_spawn_opts_t *opts);

/* Diagnostics: message to stderr prefixed "magpie: ". */
MAG_HIDDEN void mag__warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
MAG_HIDDEN _Noreturn void mag__fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* MAGPIE_RUNTIME_INTERNAL_H */
