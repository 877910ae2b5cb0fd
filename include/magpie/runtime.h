/*
 * magpie/runtime.h - the runtime, tasks, time, cancellation and groups.
 *
 * Conventions for every magpie header:
 *   - Fallible calls return 0 (or a count) on success and a negative errno on
 *     failure. errno is never the error channel: a task may resume on another
 *     thread, and a thread-local errno read after a suspension is not the one
 *     the call set.
 *   - A call that fails writes none of its outputs (*out, *status, ...): what
 *     the caller put there is still there, unless the call's comment names a
 *     partial result (a count of bytes already moved, for example).
 *   - "Suspends" means: called from a task, the task is parked and its worker
 *     runs other tasks; called from a plain OS thread, the thread blocks.
 *   - Every suspension point of a cancelled task returns -ECANCELED, and every
 *     suspension point after the task's deadline returns -ETIMEDOUT.
 */
#ifndef MAGPIE_RUNTIME_H
#define MAGPIE_RUNTIME_H

#include <errno.h> /* results are negative errno values: -ECANCELED ... */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MAG_API __attribute__((visibility("default")))
#else
#define MAG_API
#endif

/* A task body. Its return value, any int, is handed to whoever joins it
 * (mag_join's *status, mag_group_next, mag_run's *status). The library gives
 * one meaning to it only in groups: a negative value counts as an error there
 * (MAG_GROUP_CANCEL_ON_ERROR, mag_group_wait). So return 0 or a negative errno
 * for success or failure, or a result of your own (the README's first
 * program returns 40). */
typedef int (*mag_fn)(void *arg);

typedef struct mag_runtime mag_runtime_t;
typedef struct mag_task mag_task_t;
typedef struct mag_group mag_group_t;

/* Limits enforced by mag_runtime_create (outside them it returns -EINVAL). */
#define MAG_MAX_WORKERS 1024u
#define MAG_STACK_MIN (16u * 1024u)
#define MAG_STACK_MAX (1024u * 1024u * 1024u)
#define MAG_STACK_DEFAULT (256u * 1024u)

typedef struct mag_config {
    unsigned workers;               /* 0 = online CPUs; 1 = single-threaded loop mode */
    size_t stack_size;              /* default fiber stack size (bytes) */
    unsigned ring_entries;          /* SQ entries per worker ring (rounded up to a power of 2) */
    unsigned max_blocking_threads;  /* blocking pool cap, default 512 */
    unsigned blocking_keepalive_ms; /* idle blocking thread exits after this, default 10000 */
    unsigned proc_workers;          /* process pool size (at most 1024); 0 = no pool */
    bool debug;                     /* slow-task warnings, leak reports */
    unsigned slow_task_ms;          /* debug: warn when a task runs this long without suspending */
    /* Serve metrics and task dumps on this Unix socket; NULL = no stats
     * server. A path over 107 bytes (or one that cannot be bound) leaves the
     * runtime without a server, with a message. mag_runtime_create copies
     * the string. */
    const char *stats_path;
    /* Write a Chrome / Perfetto trace to this file at shutdown; NULL = no
     * trace. mag_runtime_create copies the string. */
    const char *trace_path;
    /* With trace_path: the trace keeps the last this many events of each
     * worker (rounded up to a power of 2, at least 64); 0 = the default,
     * 65536; at most 67108864. */
    unsigned trace_events;
    /* How many fiber stacks may have a guard page at once, process-wide
     * (each costs a memory mapping, counted against vm.max_map_count); the
     * others rely on a canary checked at every switch. 0 = no guard pages;
     * mag_config_init sets a quarter of vm.max_map_count; at most INT_MAX.
     * The first runtime created sets the budget for the life of the process;
     * the value of runtimes created after it is ignored. */
    unsigned stack_guards;
    /* The process pool's default timeout for one job, in milliseconds: a
     * worker still running a job this long after it began is killed and
     * replaced, and the call returns -ETIMEDOUT (mag_proc_call_ex can set
     * another per call). 0 = no timeout (the default). */
    unsigned proc_timeout_ms;
    /* A runtime of several workers waits for its sockets' input on one
     * epoll that every worker polls, so that whichever worker runs first
     * takes any connection's data (a worker's own ring completes only on
     * that worker's thread: one kept off the CPU would hold its
     * connections), and tries each send at once before it waits. true:
     * sockets use each worker's ring for these too, as loop mode always
     * does. Default false. */
    bool ring_sockets;
} mag_config_t;

/* Fills *cfg with defaults, then applies MAG_WORKERS, MAG_STACK_SIZE,
 * MAG_RING_ENTRIES, MAG_MAX_BLOCKING_THREADS, MAG_BLOCKING_KEEPALIVE_MS,
 * MAG_PROC_WORKERS, MAG_DEBUG, MAG_SLOW_TASK_MS, MAG_STATS (stats_path),
 * MAG_TRACE (trace_path), MAG_TRACE_EVENTS, MAG_STACK_GUARDS,
 * MAG_PROC_TIMEOUT_MS and MAG_RING_SOCKETS (0 or 1) from the
 * environment, each to the field of the same name. Numbers are decimal (010
 * is ten) or hex after 0x, and may end in k or m (times 1024, 1024 * 1024). A malformed or out-of-range variable is ignored
 * with a one-line message on stderr naming the allowed range. stats_path and
 * trace_path point into the environment: they stay valid until the variable
 * is changed or removed (mag_runtime_create takes its own copy).
 * mag_runtime_create returns -EINVAL for a field out of its range, with a
 * one-line message on stderr naming the field, its value and the range. */
MAG_API void mag_config_init(mag_config_t *cfg);

/* asyncio.run / #[tokio::main]: creates a runtime (cfg NULL = defaults from
 * mag_config_init), runs main as its first task and waits for it. Then every
 * task still alive is cancelled and the runtime waits for each to return,
 * and shuts down. *status (if not NULL) receives main's return value.
 * Returns 0, -EINVAL for a NULL main or a bad config, -ENOMEM, or -EBUSY when
 * called from inside a task. */
MAG_API int mag_run(const mag_config_t *cfg, mag_fn main, void *arg, int *status);

/* A runtime that outlives one call. With workers > 1 the worker threads start
 * here and run spawned tasks at once. With workers == 1 (the single-threaded
 * loop mode) the loop runs only inside mag_runtime_block_on, on the calling
 * thread, as Tokio's current_thread runtime does; always call block_on from
 * the same thread. */
MAG_API int mag_runtime_create(const mag_config_t *cfg, mag_runtime_t **out);

/* Runs fn as a task and blocks the calling OS thread until it returns.
 * -EBUSY when called from inside a task, -EPERM in loop mode from a thread
 * other than the first to call it. */
MAG_API int mag_runtime_block_on(mag_runtime_t *rt, mag_fn fn, void *arg, int *status);

/* Spawns a task from any thread, a task of another runtime included. NULL on
 * bad arguments, after shutdown started, or out of memory. rt must still
 * exist: a call racing the end of mag_runtime_shutdown (which frees rt) is
 * a use after free, as for any object. */
MAG_API mag_task_t *mag_runtime_spawn(mag_runtime_t *rt, mag_fn fn, void *arg);

/* Cancels every task, waits for each to return, stops the workers and frees
 * the runtime. Handles never joined are freed too (debug mode lists them).
 * When it begins, the process pool kills the workers of jobs in flight
 * (their callers, plain threads included, get -ESHUTDOWN) and refuses new
 * jobs. A task still running 1 s after it was cancelled is named on stderr
 * (a task dump of what is left), and again every 5 s while any remains.
 * -EBUSY when called from one of this runtime's own tasks, workers or
 * blocking-pool threads (it would wait for itself). */
MAG_API int mag_runtime_shutdown(mag_runtime_t *rt);

/* mag_runtime_shutdown that waits at most ns nanoseconds for the tasks to
 * return. Returns 0 when it finished the shutdown (rt is freed), -ETIMEDOUT
 * when tasks remain after ns, -EINVAL, -EBUSY and -EPERM as
 * mag_runtime_shutdown. After -ETIMEDOUT the runtime is still allocated
 * and shutting down: every task has been cancelled, new spawns are refused,
 * the process pool is closed, and the remaining tasks keep running (a task
 * that ignores its cancellation keeps its worker). The caller may then call
 * mag_runtime_shutdown_timeout again, or mag_runtime_shutdown to wait for
 * good; it must call one of them until one returns 0, or the runtime
 * leaks. In loop mode (workers == 1) the remaining tasks run only inside
 * these calls. Not from a task of rt (-EBUSY). */
MAG_API int mag_runtime_shutdown_timeout(mag_runtime_t *rt, uint64_t ns);

/* The runtime of the calling task or worker thread, or NULL. */
MAG_API mag_runtime_t *mag_runtime_current(void);

typedef struct mag_spawn_opts {
    const char *name;  /* shown in task dumps and warnings; copied (first 31 bytes) */
    size_t stack_size; /* 0 = the runtime's default; else MAG_STACK_MIN..MAG_STACK_MAX */
} mag_spawn_opts_t;

/* Handles. A mag_task_t * is a handle, not the task's memory: never
 * dereference it. It names one task for its life: once it was joined, or
 * detached and its task ended, it is stale, and every call below checks it
 * (mag_join returns -ESRCH, mag_detach and mag_cancel do nothing, reported
 * in debug mode), even when a newer task reuses the task's memory. Two
 * handles of one task compare equal (mag_self is the handle mag_spawn
 * returned). A stale handle kept while one task slot is reused some 2^37
 * times (hours of spawning and joining without a pause) could name a newer
 * task again.
 *
 * Spawns fn(arg) as a task of the calling task's (or worker's) runtime.
 * Returns a handle to pass to exactly one of mag_join or mag_detach, or NULL:
 * fn is NULL, no runtime context (a plain thread: use mag_runtime_spawn), the
 * runtime is shutting down, or out of memory. */
MAG_API mag_task_t *mag_spawn(mag_fn fn, void *arg);

/* mag_spawn with options. Returns 0 and *out, or -EINVAL (NULL fn or out, bad
 * stack size), -EPERM (no runtime context), -ESHUTDOWN, -ENOMEM. */
MAG_API int mag_spawn_ex(mag_task_t **out, mag_fn fn, void *arg, const mag_spawn_opts_t *opts);

/* Waits for t to return, stores its return value in *status (if not NULL) and
 * frees the handle. Suspends a task; blocks a plain thread. Any thread.
 * Returns 0; -ECANCELED / -ETIMEDOUT if the *calling* task is cancelled or
 * passes its deadline first (the handle stays valid: join or detach it
 * later); -ESRCH for a stale handle: already joined, or detached (whether or
 * not a newer task reuses its memory; *status is left alone); -EINVAL for
 * NULL, for a value that is not a handle (with a message), and while another
 * caller is joining the same handle; -EDEADLK when a task joins itself, and
 * in loop mode when the loop's own thread joins an unfinished task outside
 * mag_runtime_block_on (only that thread runs the loop, and only inside
 * it). */
MAG_API int mag_join(mag_task_t *t, int *status);

/* Nobody will join t: it is freed when it returns. Any thread. Detaching
 * NULL is ignored; detaching a stale handle (joined or detached already) is
 * ignored and reported in debug mode; it never reaches a newer task. */
MAG_API void mag_detach(mag_task_t *t);

/* Requests cancellation: from now on each of t's suspension points returns
 * -ECANCELED at once (it is sticky), and a suspension under way is woken.
 * The task's body still runs to its return; a task cancelled before it first
 * ran still starts, so that it can release what arg owns. Any thread may call
 * it. A detached task is cancelled through its handle while it lives (the
 * handle mag_self returns, say); a task that has ended is left alone; a
 * stale handle (joined, or its task ended and was freed) is ignored and
 * reported in debug mode, and never cancels a newer task. */
MAG_API void mag_cancel(mag_task_t *t);

/* Has the calling task been cancelled? false outside a task. */
MAG_API bool mag_cancelled(void);

/* The calling task, or NULL outside a task. */
MAG_API mag_task_t *mag_self(void);

/* errno of the thread running the caller now: read it this way in a task
 * after a plain libc call. A task may resume on another thread after any
 * suspension point, and the compiler may compute errno's address (glibc's
 * __errno_location is declared const) once, before an earlier suspension,
 * and read the old thread's copy through it even right after the libc call.
 * Any thread. */
MAG_API int mag_errno(void);

/* A task's numeric id (unique for the process's life) and name ("" if none).
 * Any thread. A stale handle gives 0 and "". The name lives with the task:
 * valid until its handle is joined (or the detached task ends). */
MAG_API uint64_t mag_task_id(const mag_task_t *t);
MAG_API const char *mag_task_name(const mag_task_t *t);

/* Moves the calling task to the back of its worker's run queue. It yields
 * even when cancelled or past its deadline (so a polling loop never spins),
 * then returns 0, -ECANCELED or -ETIMEDOUT; -EPERM outside a task. */
MAG_API int mag_yield(void);

/* Suspends the calling task for ns nanoseconds (timer granularity about
 * 65 us). 0 when the time is up; -ECANCELED; -ETIMEDOUT when the task's
 * deadline comes first; -EPERM outside a task. */
MAG_API int mag_sleep(uint64_t ns);

/* Suspends until the absolute CLOCK_MONOTONIC time abs_ns (for periodic work
 * without drift). Returns as mag_sleep. */
MAG_API int mag_sleep_until(uint64_t abs_ns);

/* CLOCK_MONOTONIC in nanoseconds. */
MAG_API uint64_t mag_now(void);

#define MAG_US 1000ull
#define MAG_MS 1000000ull
#define MAG_SEC 1000000000ull

/* Deadlines are scoped to the calling task and nest: the earliest one pushed
 * and not yet popped applies, and every suspension point fails with
 * -ETIMEDOUT once it has passed. Push returns a token for the matching pop
 * (pops must be in reverse order of pushes); 0 means failure: outside a task,
 * or more than MAG_DEADLINE_DEPTH nested. Popping 0 is a no-op. */
#define MAG_DEADLINE_DEPTH 16
MAG_API uint64_t mag_deadline_push(uint64_t abs_ns);
MAG_API void mag_deadline_pop(uint64_t token);

/* asyncio.wait_for: runs fn(arg) as a new task and waits at most timeout_ns.
 * On time: 0 and *status = fn's return value. On timeout: the inner task is
 * cancelled, waited for, and -ETIMEDOUT is returned. If the caller is
 * cancelled, the inner task is cancelled and waited for too (-ECANCELED).
 * -EINVAL for NULL fn, -EPERM outside a task, -ENOSPC when the caller already
 * has MAG_DEADLINE_DEPTH deadlines pushed. */
MAG_API int mag_wait_for(mag_fn fn, void *arg, uint64_t timeout_ns, int *status);

/* Groups: structured concurrency (asyncio.TaskGroup, gather, as_completed,
 * tokio JoinSet). A group belongs to the task that created it: spawn, next,
 * wait, cancel and destroy are called by one task (or thread) at a time.
 * With MAG_GROUP_CANCEL_ON_ERROR, the first member that returns a negative
 * value cancels every other member. A member's handle (mag_self inside it)
 * belongs to the group: mag_join on it returns -EINVAL and mag_detach
 * ignores it; mag_cancel works. */
#define MAG_GROUP_CANCEL_ON_ERROR 1u

/* NULL outside a runtime context, for unknown flags, or out of memory. */
MAG_API mag_group_t *mag_group_create(unsigned flags);

/* Spawns a member. Returns its id (>= 0, in spawn order, unique in the group)
 * so that mag_group_next can say which one finished, or -EINVAL (NULL
 * arguments), -ECANCELED (the group was cancelled), -ENOMEM, -ESHUTDOWN,
 * -EOVERFLOW after INT_MAX members. */
MAG_API int mag_group_spawn(mag_group_t *g, mag_fn fn, void *arg);

/* Waits for the next member to finish, in finishing order (as_completed).
 * Returns its id and stores its return value in *status; -ENOENT when no
 * member is left; -ECANCELED / -ETIMEDOUT when the caller is cancelled or its
 * deadline passes (members keep running). */
MAG_API int mag_group_next(mag_group_t *g, int *status);

/* Waits for every member (gather). Returns the first negative value a member
 * returned (in finishing order), or 0. If the caller is cancelled or passes
 * its deadline while waiting, every member is cancelled and waited for, and
 * -ECANCELED / -ETIMEDOUT is returned. */
MAG_API int mag_group_wait(mag_group_t *g);

/* Cancels every member still running, and any spawned later. */
MAG_API void mag_group_cancel(mag_group_t *g);

/* Cancels and waits for the members still running, then frees the group. */
MAG_API void mag_group_destroy(mag_group_t *g);

#ifdef __cplusplus
}
#endif
#endif /* MAGPIE_RUNTIME_H */
