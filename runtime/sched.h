/*
 * runtime/sched.h - the records of the runtime itself: runtime, worker, task,
 * stacks, the timer wheel. Private to runtime/.
 */
#ifndef MAGPIE_RUNTIME_SCHED_H
#define MAGPIE_RUNTIME_SCHED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/deque.h"
#include "runtime/hooks.h"
#include "runtime/internal.h"
#include "runtime/task_state.h"

/* ---- fibers and stacks (fiber.c) ---------------------------------------- */
typedef struct mag__stack {
    struct mag__stack *next; /* in a worker's cache, or a free list (fiber.c) */
    char *base;              /* start of the stack's memory (the guard page, if any) */
    size_t map_size;         /* ... and its length */
    size_t usable;           /* bytes the fiber may use */
    char *lo;                /* lowest usable byte: an unguarded stack's canary */
    char *top;               /* one past the highest: the first frame goes below */
    bool guarded;            /* a page below lo faults on any write */
    bool write_protected;    /* ... by userfaultfd, not a VMA (stack_wp.c) */
    bool carved;             /* one of many stacks in one mapping (fiber.c) */
    unsigned valgrind_id;    /* VALGRIND_STACK_REGISTER's id */
} mag__stack_t;

MAG_HIDDEN mag__stack_t *mag__stack_alloc(size_t size);
MAG_HIDDEN void mag__stack_free(mag__stack_t *s);
/* An unguarded stack's canary is whole and saved_sp (its fiber's, switched
 * out) lies above it. */
MAG_HIDDEN bool mag__stack_intact(const mag__stack_t *s, const void *saved_sp);
/* The guard-page budget (mag_config_t.stack_guards): the default, a quarter
 * of vm.max_map_count, and the setter, which only the first call obeys. */
MAG_HIDDEN unsigned mag__fiber_default_guard_budget(void);
MAG_HIDDEN void mag__fiber_set_guard_budget(unsigned budget);
MAG_HIDDEN void mag__ctx_switch(void **save_sp, void *load_sp);
MAG_HIDDEN void mag__fiber_trampoline(void);
/* Prepares a fiber stack so the first switch to it calls entry(arg). */
MAG_HIDDEN void *mag__ctx_init(void *top, void (*entry)(void *), void *arg);
/* Installs the SIGSEGV handler that names the task whose stack overflowed. */
MAG_HIDDEN void mag__fiber_install_overflow_handler(void);
/* Names t's overflowed stack on stderr and aborts. Async-signal-safe. */
MAG_HIDDEN _Noreturn void mag__fiber_overflow_abort(const mag_task_t *t);
MAG_HIDDEN void mag__fiber_thread_init(void);
MAG_HIDDEN void mag__fiber_thread_exit(void);

/* ---- the timer wheel (timer.c) ------------------------------------------ */
#define MAG__WHEEL_LEVELS 6
#define MAG__WHEEL_SLOTS 64
#define MAG__WHEEL_SHIFT 16 /* level-0 slot: 2^16 ns, about 65 us */

typedef struct mag__wheel {
    /* The owner arms, disarms its own and expires; a rescuer (monitor.c)
     * may expire too, and the monitor reads the next expiry. A disarm from
     * another thread takes no lock (see timer.c). */
    pthread_mutex_t lock;
    uint64_t elapsed; /* ticks (2^16 ns) processed so far */
    uint64_t occupied[MAG__WHEEL_LEVELS];
    mag__tentry_t *slots[MAG__WHEEL_LEVELS][MAG__WHEEL_SLOTS];
    mag__tentry_t *free_entries;      /* under lock */
    struct mag__tentry_block *blocks; /* every entry's memory, freed with the wheel */
    /* Entries handed back by other threads (a stack linked through their
     * words): pushed with no lock, taken all at once under lock. */
    _Atomic(mag__tentry_t *) returned;
    /* Armed entries (relaxed: metrics and the fast path; see timer.c). */
    _Atomic uint64_t count;
} mag__wheel_t;

MAG_HIDDEN void mag__wheel_init(mag__wheel_t *w, uint64_t now_ns);
MAG_HIDDEN void mag__wheel_destroy(mag__wheel_t *w);
/* Fires every timer due at now_ns; returns how many tasks it woke. */
MAG_HIDDEN unsigned mag__wheel_expire(mag__wheel_t *w, uint64_t now_ns);
/* Absolute ns of the next expiry, or UINT64_MAX when empty. */
MAG_HIDDEN uint64_t mag__wheel_next(mag__wheel_t *w);

/* ---- tasks (task.c) ----------------------------------------------------- */
#define MAG__JOIN_DONE ((mag__waiter_t *)(uintptr_t)1)

/* The life word (mag_task.life): which use of the record this is, what became
 * of its handle, and the cancellation flag, in one atomic word, so that a
 * call on a handle checks the generation and changes the word in one
 * compare-and-swap: a call on a stale handle can never touch the task that
 * reused the record.
 *
 *   bits 0-1  the handle: MAG__HANDLE_*
 *   bit  2    cancelled (sticky)
 *   bit  3    the body has ended and let go of the record (MAG__LIFE_BODY_GONE)
 *   bits 4-40 the generation, 1 .. MAG__GEN_MAX: bumped when the record is
 *             freed, so that every handle of the task it held is stale from
 *             then on; 0 only in memory given back (task_pool.c), which no
 *             handle names.
 *
 * Who frees the record: the record is held by its body and by its handle,
 * and it is freed once both have let go, by whichever lets go second. The
 * body lets go when it has ended (bit 3); the handle when it is detached or
 * released (DETACHED, RELEASED). Each side lets go with a read-modify-write
 * of this word and frees the record if the other side's mark was there
 * already; a side that reads the other's mark before it lets go may free at
 * once, since nobody else would (task.c). Both in one word: a detach is
 * one compare-and-swap, where a separate count cost a second locked
 * instruction on every detached spawn.
 *
 * A handle (what mag_spawn returns) is not the record's address: it is
 * 1 | index << 1 | generation << 27 (task_pool.c), and a call checks the
 * generation against the record's before it does anything. */
enum {
    MAG__HANDLE_JOINABLE = 0, /* nobody joined or detached it yet */
    MAG__HANDLE_JOINING = 1,  /* a join claimed it and waits */
    MAG__HANDLE_DETACHED = 2, /* detached: the task frees itself */
    MAG__HANDLE_RELEASED = 3, /* joined (or released at shutdown) */
};
#define MAG__LIFE_HANDLE_MASK 3ull
#define MAG__LIFE_CANCELLED 4ull
#define MAG__LIFE_BODY_GONE 8ull
#define MAG__LIFE_GEN_SHIFT 4
#define MAG__GEN_BITS 37
#define MAG__GEN_MAX ((1ull << MAG__GEN_BITS) - 1)

static inline uint64_t mag__life_gen(uint64_t life)
{
    return (life >> MAG__LIFE_GEN_SHIFT) & MAG__GEN_MAX;
}

static inline uint32_t mag__life_handle(uint64_t life)
{
    return (uint32_t)(life & MAG__LIFE_HANDLE_MASK);
}

static inline uint64_t mag__life_make(uint64_t gen, uint32_t handle)
{
    return gen << MAG__LIFE_GEN_SHIFT | handle;
}

/* The generation after gen: wraps from MAG__GEN_MAX to 1, never 0. */
static inline uint64_t mag__gen_next(uint64_t gen)
{
    return gen >= MAG__GEN_MAX ? 1 : gen + 1;
}

/* A record's layout follows what touches it. A burst of spawns goes
 * through records that are cold, and each line a spawn writes or a run
 * reads is a miss: a plain spawn, run and finish touch the first two lines
 * only. The rest is written only when used (a name, hooks, deadlines, a
 * suspension) and is as a free record needs it whenever the record is
 * free, so that no spawn has to write it: wait_obj is read only while
 * wait_kind says the task waits, a disarmed timer is ready to arm, a free
 * record's name[0] is 0 (task_free clears what `named` says was written),
 * its hook words are 0 (cleared when `hooked_words` says they were set)
 * and its tsan_fiber NULL (the fiber dies with the stack). */
struct mag_task {
    /* Line 0: the body and how to run it. */
    _Atomic uint32_t state; /* only through task_state.h */
    int result;
    void *sp;            /* saved stack pointer while switched out */
    mag__stack_t *stack; /* NULL until the task first runs */
    mag_fn fn;
    void *arg;
    mag_runtime_t *rt;
    struct mag__worker *_Atomic worker; /* where it runs or last ran (dumps) */
    mag_task_t *next;                   /* the inject queue */
    /* Line 1: the handle, the join, and what every suspension looks at. */
    _Atomic uint64_t life;           /* generation, handle, cancelled (above) */
    _Atomic(mag__waiter_t *) joiner; /* NULL, a waiter, or MAG__JOIN_DONE */
    uint64_t id;
    struct mag__task_hook *hook; /* NULL, or who follows its life (below) */
    uint64_t deadline;           /* earliest of deadlines[], or UINT64_MAX */
    _Atomic int wait_kind;       /* MAG__WAIT_* (dumps) */
    uint32_t stack_size;         /* at most MAG_STACK_MAX */
    uint32_t index;              /* where the record lives, for its handle (task_pool.c) */
    uint8_t ndeadlines;          /* at most MAG_DEADLINE_DEPTH */
    bool deadline_armed;
    bool started;
    bool named;        /* name was written */
    bool hooked_words; /* hook_words may have been written */
    /* Cold: written only when used (above). */
    const void *_Atomic wait_obj;
    mag__timer_t deadline_timer;
    void *tsan_fiber;
    _Atomic uint64_t hook_words[MAG__HOOK_WORDS]; /* the installed hooks' (hooks.h) */
    char name[32];
    uint64_t deadlines[MAG_DEADLINE_DEPTH];
};
_Static_assert(offsetof(struct mag_task, wait_obj) <= 2 * MAG_CACHELINE,
               "a plain spawn, run and finish touch two lines of a record");
_Static_assert(MAG_STACK_MAX <= UINT32_MAX && MAG_DEADLINE_DEPTH <= UINT8_MAX,
               "stack_size and ndeadlines fit their fields");

/* Asks for the first lines of a record, which a spawn writes and starting
 * and finishing it read, before they are needed: records a burst goes
 * through are cold (a hundred thousand of them are tens of megabytes), and
 * a miss on each of their lines, waited for at the next locked instruction,
 * was most of what a spawn cost. Two lines more than the two a plain task
 * uses measured better (spawn_many at 1 worker, ten alternated runs:
 * medians 190 against 222 ns), and cover a named or hooked one. A hint:
 * never a fault, whatever t holds. */
static inline void mag__task_prefetch_write(const mag_task_t *t)
{
    const char *p = (const char *)t;
    mag__prefetch(p);
    mag__prefetch(p + MAG_CACHELINE);
    mag__prefetch(p + 2 * MAG_CACHELINE);
    mag__prefetch(p + 3 * MAG_CACHELINE);
}

static inline void mag__task_prefetch_read(const mag_task_t *t)
{
    const char *p = (const char *)t;
    mag__prefetch(p);
    mag__prefetch(p + MAG_CACHELINE);
    mag__prefetch(p + 2 * MAG_CACHELINE);
}

/* mag__task_cancelled inline, for the suspension checks. acquire: pairs
 * with the release in mag_cancel and mag__task_cancel. */
static inline bool mag__task_cancel_seen(mag_task_t *t)
{
    return (atomic_load_explicit(&t->life, memory_order_acquire) & MAG__LIFE_CANCELLED) != 0;
}

/* Lets code above the task record follow one task's life without fields of
 * its own in every record: a group keeps a member record that embeds this.
 * The handle then belongs to the hook's owner, which releases it. */
typedef struct mag__task_hook {
    /* Once, when the record is set up and before it is queued (the spawning
     * thread). */
    void (*spawned)(struct mag__task_hook *h, mag_task_t *t);
    /* Once, on the thread where the body returned: t is DONE and its result
     * set; joiners have not been signalled yet. */
    void (*done)(struct mag__task_hook *h, mag_task_t *t);
} mag__task_hook_t;

/* mag__spawn with a hook that follows the task (NULL: a plain spawn). */
MAG_HIDDEN int mag__spawn_hooked(mag_runtime_t *rt, mag_task_t **out, mag_fn fn, void *arg,
                                 const mag_spawn_opts_t *opts, mag__task_hook_t *hook);
/* The admission protocol every new record goes through (tasks and blocking
 * jobs): counted live against shutdown, then a record from w's cache (w
 * NULL: the global pool) initialised for fn and arg. 0 and *out, or
 * -ESHUTDOWN (shutdown started) or -ENOMEM, with nothing left counted. The
 * caller sets what its kind needs, then calls mag__task_register. */
MAG_HIDDEN int mag__task_admit(mag_runtime_t *rt, struct mag__worker *w, mag_fn fn, void *arg,
                               bool joinable, mag_task_t **out);
/* Names t (the first 31 bytes of name), before it is registered. */
MAG_HIDDEN void mag__task_set_name(mag_task_t *t, const char *name);
/* Publishes t, every field of it set, to the walks that find live tasks
 * (shutdown, dumps: mag__task_peek): its state becomes RUNNING, as a queued
 * task that yielded is (task_state.h). Before it is queued. No lock, no
 * locked instruction. */
MAG_HIDDEN void mag__task_register(mag_runtime_t *rt, struct mag__worker *w, mag_task_t *t);

/* What mag__task_peek copies out of a record. */
typedef struct mag__task_view {
    uint64_t life;  /* generation, handle, cancelled: as first read */
    uint32_t state; /* the raw state word (task_state.h), never FREE */
    /* With details only: */
    uint64_t id;
    char name[32]; /* NUL-terminated */
    bool hooked;   /* a hook follows it (its owner holds the handle) */
    int wait_kind; /* MAG__WAIT_* */
    const void *wait_obj;
    int worker;                /* where it runs or last ran; -1: nowhere yet */
    const mag__stack_t *stack; /* read only through process_vm_readv (dumps) */
    uint64_t hook_words[MAG__HOOK_WORDS];
} mag__task_view_t;

/* Copies t into *v if it holds a task of rt, registered and not yet freed;
 * false otherwise (a free record, another runtime's, or one that moved on
 * while we read it: the copy would mix two uses). Any thread, no lock: t
 * may be recycled under us at any moment; the copy is of one use of the
 * record, whose generation is v->life's. details: the fields after state
 * too (dumps), else only life and state (cancel sweeps). */
MAG_HIDDEN bool mag__task_peek(mag_task_t *t, mag_runtime_t *rt, mag__task_view_t *v, bool details);
/* Cancels t (and wakes it) if its record is still in generation gen and t
 * is live; false if it moved on, or was cancelled already. */
MAG_HIDDEN bool mag__task_cancel_gen(mag_task_t *t, uint64_t gen);
/* Moves t's handle from JOINABLE (with hooked, also a hook owner's JOINING:
 * shutdown, once no task is left to own it) to RELEASED if t is still in
 * generation gen, letting go of the record (freed here if its body has
 * ended, else when it ends): true if this call did. */
MAG_HIDDEN bool mag__task_handle_drop_gen(mag_task_t *t, uint64_t gen, bool hooked);
/* Free records a worker keeps at hand (task_pool.c). */
#define MAG__TASK_CACHE_MAX 256

/* ---- task records and handles (task_pool.c) ----
 * Records live in chunks mapped for them and never unmapped; a slab of
 * records whose records are all free has its pages given back to the kernel
 * (they read as zeros after that: state FREE, generation 0), so a late wake
 * or a stale handle may always read a record, never a mapping that is gone. */
/* A free record: from w's cache (w NULL: the global pool). NULL: no memory.
 * mag__task_alloc, inline below the worker's record: the cache's hit is on
 * every spawn; this is the rest, which refills the cache. */
MAG_HIDDEN mag_task_t *mag__task_alloc_refill(struct mag__worker *w);
/* Returns a free record to w's cache, or to the global pool when the cache
 * is full or w is NULL. */
MAG_HIDDEN void mag__task_recycle(struct mag__worker *w, mag_task_t *t);
/* Returns a free record to the global pool. */
MAG_HIDDEN void mag__task_pool_put(mag_task_t *t);
/* Calls visit on every record that may hold a task, of any runtime, in
 * address order: a record out of the pool when the walk reached its chunk.
 * No lock is held while visit runs, and the record may change under it:
 * read it only through mag__task_peek. A task spawned after the walk began
 * may be missed. */
MAG_HIDDEN void mag__task_pool_each(void (*visit)(mag_task_t *t, void *ctx), void *ctx);
/* A worker about to sleep keeps a few free records and returns the rest, so
 * that their slabs can be given back. */
MAG_HIDDEN void mag__task_cache_trim(struct mag__worker *w);
/* Returns every record of w's cache to the global pool (w is going away). */
MAG_HIDDEN void mag__task_cache_drain(struct mag__worker *w);
/* Gives back the empty slabs that are due; returns when the next one will
 * be (absolute ns, UINT64_MAX: none), for a sleeping worker's timeout. */
MAG_HIDDEN uint64_t mag__task_pool_trim(void);
/* The handle of t as it is now (the one mag_spawn returned while t lives). */
MAG_HIDDEN mag_task_t *mag__task_handle(mag_task_t *t);
/* The record a handle names and, in *gen, the generation it carries; NULL
 * for a value that was never a handle. The record may have moved on: check
 * *gen against its life word. */
MAG_HIDDEN mag_task_t *mag__task_from_handle(const mag_task_t *handle, uint64_t *gen);
/* Moves t's handle from JOINABLE (or, for a hook's record, its owner's
 * JOINING) to RELEASED, letting go of the record as mag__task_handle_drop_gen
 * does: the undo of a blocking job that never ran; true if this call did,
 * false if someone else joined or detached it first. */
MAG_HIDDEN bool mag__task_handle_drop(mag_task_t *t);
/* The handle let go of t with a read-modify-write of its life word that
 * returned old: frees t if its body had let go already (sched.h's life
 * word). */
MAG_HIDDEN void mag__task_handle_dropped(mag_task_t *t, uint64_t old);
/* The hook owner's release of a done task whose handle it owns (a task
 * spawned with a hook is born with its handle claimed: mag_join and
 * mag_detach refuse it). */
MAG_HIDDEN void mag__task_owner_release(mag_task_t *t);
/* Tasks admitted and not finished: 0 only when, at some moment during the
 * call, none was. For shutdown and metrics; reads every worker's census. */
MAG_HIDDEN uint64_t mag__tasks_live(mag_runtime_t *rt);
/* The census totals: tasks admitted and finished so far (metrics). */
MAG_HIDDEN void mag__tasks_counted(mag_runtime_t *rt, uint64_t *admitted, uint64_t *finished);
/* Set once any runtime is created in debug mode (misuse reports). */
MAG_HIDDEN extern bool mag__debug_any;
MAG_HIDDEN void mag__task_entry(void *arg);
/* Called by the scheduler after a task's body returned and its stack is free. */
MAG_HIDDEN void mag__task_finish(mag_task_t *t);

/* ---- workers (worker.c) ------------------------------------------------- */
enum { MAG__SWITCH_PARK = 1, MAG__SWITCH_YIELD, MAG__SWITCH_EXIT };

typedef struct mag__worker_stats {
    /* Written by the owner only; read relaxed by mag_metrics. */
    _Atomic uint64_t polls, steal_attempts, steals, stolen_tasks, parks, unparks, lifo_hits;
    _Atomic uint64_t io_submitted, io_completed, overflows, remote_wakes;
    _Atomic uint64_t busy_ns, parked_ns;
    _Atomic uint64_t park_start_ns; /* when the current park began; 0 while not parked */
} mag__worker_stats_t;

/* Owner-only counters: a relaxed load and store, no locked instruction. */
static inline void mag__stat_inc(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

typedef struct mag__worker {
    mag__deque_t deque; /* first: its own cache lines */
    mag_runtime_t *rt;
    unsigned index;
    /* The task to run next. Stealable, by a rescuer, once the monitor marks
     * the worker stuck: so an exchange takes it (acquire) and puts one in
     * (acq_rel), pairing with the rescuer's exchange. */
    mag_task_t *_Atomic lifo;
    unsigned lifo_streak;
    mag_task_t *current;
    /* A direct switch's previous task (worker.c), for the task switched to
     * to settle (requeue or park) once the previous one's context is saved;
     * NULL otherwise. The worker's thread only. */
    mag_task_t *handoff;
    mag_task_t *until; /* the task the running loop waits for (NULL: none) */
    void *sched_sp;
    int switch_reason;
    uint64_t tick;
    /* tick % FAIRNESS_INTERVAL, kept beside it: the scheduler's turn comes
     * when it wraps to 0, and a direct switch tests it on every switch
     * without a division (worker.c). */
    unsigned fair_pos;
    uint64_t coop_tick; /* the run (tick) last given a budget (mag__coop_refill) */
    uint32_t rng;
    bool searching;
    bool ring_ready;
    bool is_thread; /* its own OS thread (not loop mode) */
    /* The task census (task.c): tasks admitted and finished by tasks running
     * on this worker. Written by this worker only, with release stores;
     * summed by mag__tasks_live. Monotonic. */
    _Atomic uint64_t tasks_in, tasks_out;
    const mag__hooks_t *hooks; /* rt->hooks, on the worker's own line */
    void *hook_ctx;
    struct io_uring ring;
    unsigned ring_flags;
    int wake_fd; /* eventfd; a read on the ring is always armed */
    uint64_t wake_buf;
    mag__op_t wake_op;
    _Atomic bool wake_armed; /* cleared by the completion, maybe a rescuer's */
    /* The readiness poller's looks at the epoll (ready.c), counted by the
     * poller, so that the monitor can tell one that has not looked since
     * its last look. */
    _Atomic uint32_t ready_turns;
    uint64_t ready_looked_ns;         /* mag__now() at the poller's last look (owner only) */
    _Atomic uint32_t sleeping;        /* 1 while parked in the ring */
    _Atomic(mag__cancel_t *) cancels; /* MPSC stack of forwarded cancels */
    unsigned submitted;               /* ring ops prepared (owner only) */
    _Atomic unsigned sqe_epoch;       /* submitted, published (release) for rescuers */
    _Atomic unsigned reaped;          /* ... and completed: written under cq_lock */
    mag__lock_t cq_lock;              /* whoever reaps the ring: the owner, or a rescuer */
    pthread_mutex_t submit_lock;      /* a rescuer's submit, and the doorbell's commit */
    _Atomic uint32_t stuck;           /* set by the monitor, cleared by the owner */
    _Atomic uint32_t in_task;         /* 1 while the owner runs a task (relaxed hint) */
    bool sq_starved;                  /* a task found the SQ full and yielded */
    mag__wheel_t wheel;
    mag__stack_t *stack_cache;
    unsigned stacks_cached;
    /* Loop mode only: where the full local queue spills (queue.c), a ring
     * buffer that grows, instead of the inject queue's list through the
     * records. The owner's only; the length is atomic for mag_metrics.
     * spill_cap is 0 or a power of two. */
    mag_task_t **spill;
    size_t spill_head, spill_cap;
    _Atomic size_t spill_len;
    /* Free records, most recently freed last (task_pool.c): an array, not a
     * list through the records, so that filling and emptying it in bulk
     * reads no record. */
    mag_task_t *free_tasks[MAG__TASK_CACHE_MAX];
    unsigned free_count;
    uint64_t id_next, id_end; /* a block of task ids (task.c) */
    mag__worker_stats_t stats;
    pthread_t thread;
    void *tsan_sched;
    const void *asan_stack_bottom; /* this thread's own stack, for ASan */
    size_t asan_stack_size;
} mag__worker_t;

/* How many spawns ahead mag__task_alloc prefetches a record: 8 against 1,
 * four alternated runs at 1 worker: spawn_many 79-89 against 89-107 ns. */
#define MAG__TASK_PREFETCH_AHEAD 8

/* A free record: the most recently freed one in w's cache (w NULL: the
 * global pool), or mag__task_alloc_refill's. NULL: no memory. */
static inline mag_task_t *mag__task_alloc(mag__worker_t *w)
{
    if (MAG_LIKELY(w && w->free_count)) {
        mag_task_t *t = w->free_tasks[--w->free_count];
        /* The record of the spawn MAG__TASK_PREFETCH_AHEAD from now, while
         * this one is filled: a burst's records are cold, and one spawn
         * ahead left most of a miss to wait for (the first store to the
         * record: 70% of mag_spawn's time in spawn_join_1m). A cache
         * holding fewer is recycling records still warm. */
        if (w->free_count >= MAG__TASK_PREFETCH_AHEAD)
            mag__task_prefetch_write(w->free_tasks[w->free_count - MAG__TASK_PREFETCH_AHEAD]);
        return t;
    }
    return mag__task_alloc_refill(w);
}

/* ---- the runtime (runtime.c) -------------------------------------------- */
/* The fields are grouped by who writes them and how often, each group on
 * cache lines of its own: a spawn or a finish on one worker must not pull
 * the line another worker is reading in its loop (the runtime record is
 * allocated aligned to a line, lifecycle/runtime.c). */
/* Loop mode's claim on the loop (claim_loop): free, being claimed by the
 * first block_on thread (its ring being set up), or owned by it. */
enum { MAG__LOOP_FREE, MAG__LOOP_CLAIMING, MAG__LOOP_OWNED };

struct mag_runtime {
    /* Read-mostly: set at create (or at shutdown). */
    mag_config_t cfg;
    unsigned nworkers;
    mag__worker_t **workers;
    struct mag__blocking *blocking; /* the blocking pool (blocking.h) */
    struct mag__procpool *procpool; /* the process pool, owned above (procpool/); NULL: none */
    struct mag__monitor *monitor;   /* monitor.c; NULL in loop mode */
    const mag__hooks_t *hooks;      /* NULL: none installed (hooks.h) */
    void *hook_ctx;
    struct mag__fd_rings *fd_rings; /* fd_rings.c */
    /* Shared socket readiness (ready.c): an epoll the first worker drains
     * (the monitor too, when that worker is held), and
     * the task waiting on each descriptor. ready_fd -1: none (loop mode). */
    int ready_fd;
    struct mag__ready_slot *ready_slots;
    unsigned ready_nslots;
    struct mag_runtime *ready_next; /* the runtimes with readiness (ready.c) */
    uint64_t start_ns;              /* mag__now() at create (metrics) */
    pthread_t loop_owner;           /* loop mode: the block_on thread */
    _Atomic uint32_t loop_owned;    /* MAG__LOOP_*: OWNED once loop_owner is set */
    bool draining;                  /* loop mode shutdown: run until live == 0 ... */
    uint64_t drain_until_ns;        /* ... or until this mag__now() time, if not 0 */
    uint64_t shutdown_ns;           /* lifecycle/: when shutdown first cancelled every task */
    uint64_t shutdown_report_ns;    /* lifecycle/: when to name the tasks left next */
    _Atomic uint32_t started;       /* futex word: every worker ring exists */
    _Atomic uint32_t stopping;      /* workers exit their loop */
    _Atomic uint32_t closing;       /* shutdown started: spawns are refused */

    /* The inject queue. */
    _Alignas(MAG_CACHELINE) pthread_mutex_t inject_lock;
    mag_task_t *inject_head, *inject_tail;
    _Atomic size_t inject_len; /* relaxed hint; exact under inject_lock */

    /* The idle protocol (idle.c). */
    _Alignas(MAG_CACHELINE) pthread_mutex_t idle_lock;
    unsigned *sleepers; /* parked worker indexes (under idle_lock) */
    unsigned nsleepers;
    _Atomic uint32_t idle; /* searching << 16 | unparked */

    /* The task census of plain threads (mag_runtime_spawn, blocking jobs
     * finishing on pool threads); the workers' own are in their records.
     * Read-modify-writes, seq_cst: see mag__task_admit. */
    _Alignas(MAG_CACHELINE) _Atomic uint64_t foreign_in, foreign_out;

    /* The monitor (monitor.c). */
    _Alignas(MAG_CACHELINE) _Atomic uint32_t monitor_word; /* futex: stop bit and kicks */
    _Atomic uint32_t monitor_deep; /* 1 while it sleeps because all workers park */
};

MAG_HIDDEN extern _Thread_local mag__worker_t *mag__tls_worker MAG_TLS_FAST;

/* The calling thread's worker, for the switch paths: as
 * mag__worker_current (worker.c), read afresh at each call, without the
 * call. On x86-64 the thread pointer is read in an asm statement the
 * compiler may neither merge with another nor move across a switch
 * ("memory"); the same initial-exec sequence the compiler emits for the
 * variable. Elsewhere, the out-of-line function. */
static inline mag__worker_t *mag__worker_here(void)
{
#if defined(__x86_64__)
    mag__worker_t *w;
    __asm__ volatile("movq mag__tls_worker@gottpoff(%%rip), %0\n\t"
                     "movq %%fs:(%0), %0"
                     : "=r"(w)
                     :
                     : "memory");
    return w;
#else
    return mag__worker_current();
#endif
}

/* Loop mode, before a plain thread waits for a task of rt (what names the
 * call, for the message): -EDEADLK when the thread is the loop's own,
 * outside mag_runtime_block_on, where the wait could never end; else 0,
 * saying once per process when no thread has run the loop yet. */
MAG_HIDDEN int mag__loop_wait_check(mag_runtime_t *rt, const char *what);

MAG_HIDDEN void mag__schedule(mag_runtime_t *rt, mag_task_t *t, bool is_new);
MAG_HIDDEN void mag__inject_push(mag_runtime_t *rt, mag_task_t *first, mag_task_t *last, size_t n);
MAG_HIDDEN void mag__notify_parked(mag_runtime_t *rt);
MAG_HIDDEN int mag__worker_setup(mag__worker_t *w);
MAG_HIDDEN void mag__worker_teardown(mag__worker_t *w);
/* Runs w until the task of the handle until is done (NULL: until stopped). */
MAG_HIDDEN void mag__worker_loop(mag__worker_t *w, mag_task_t *until);
MAG_HIDDEN void *mag__worker_thread(void *arg);
MAG_HIDDEN void mag__worker_wake(mag__worker_t *w);
MAG_HIDDEN uint64_t mag__now(void);

#endif /* MAGPIE_RUNTIME_SCHED_H */
