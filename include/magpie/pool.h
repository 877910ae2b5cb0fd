/*
 * magpie/pool.h - the blocking pool (OS threads for calls that block) and the
 * process pool (worker processes for CPU-bound work): asyncio's
 * run_in_executor with a ThreadPoolExecutor or a ProcessPoolExecutor, Tokio's
 * spawn_blocking.
 *
 * A task must never block its worker thread: a blocking library call (a
 * database client, getaddrinfo, compression of a large buffer, a read from a
 * device) goes to the blocking pool; CPU-heavy work that should use other
 * cores without holding a worker goes to the process pool.
 *
 * "Runtime context" below means: called from a task or worker of a runtime,
 * or from a function running on that runtime's blocking pool.
 */
#ifndef MAGPIE_POOL_H
#define MAGPIE_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "magpie/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the blocking pool ---------------------------------------------------
 * Threads start on demand, up to cfg.max_blocking_threads (default 512);
 * jobs beyond the cap wait in a FIFO queue. A thread idle for
 * cfg.blocking_keepalive_ms (default 10 s) exits. Pool threads block every
 * asynchronous signal (SIGINT, SIGTERM, ... go to other threads).
 *
 * A blocking job cannot be interrupted: mag_cancel on its handle is ignored
 * and fn runs to its return. Every job spawned runs, even one still queued
 * when the runtime shuts down, and mag_runtime_shutdown waits for every job to
 * return (as Tokio's runtime does without a shutdown timeout). */

/* Runs fn(arg) on a blocking-pool thread of the calling context's runtime.
 * Returns a handle to pass to exactly one of mag_join (which suspends a task
 * and blocks a plain thread; *status = fn's return value) or mag_detach.
 * NULL when fn is NULL, without a runtime context (a plain thread: use
 * mag_runtime_spawn_blocking), when the runtime is shutting down, out of
 * memory, or when no thread can be started and none exists. Does not
 * suspend. */
MAG_API mag_task_t *mag_spawn_blocking(mag_fn fn, void *arg);

/* mag_spawn_blocking on an explicit runtime, from any thread. */
MAG_API mag_task_t *mag_runtime_spawn_blocking(mag_runtime_t *rt, mag_fn fn, void *arg);

/* spawn_blocking + join: runs fn(arg) on the blocking pool and waits for it;
 * *status (if not NULL) receives fn's return value. Returns 0, -EINVAL (NULL
 * fn), -ESHUTDOWN, -ENOMEM, -EAGAIN (no thread could be started).
 *
 * From a task it suspends the task. Because fn usually works on the caller's
 * stack (arg), the wait is not interruptible: a task cancelled (or past its
 * deadline) while fn runs still waits for fn to return, gets 0 and fn's
 * status, and its next suspension point reports the cancellation. A task
 * already cancelled (or past its deadline) when it calls gets -ECANCELED
 * (-ETIMEDOUT) and fn does not run. For a wait you can abandon, use
 * mag_spawn_blocking + mag_join with an arg that the job owns.
 *
 * Outside a task (a plain thread, a blocking-pool thread) blocking is
 * allowed, so fn runs inline on the calling thread: no runtime is needed. */
MAG_API int mag_run_blocking(mag_fn fn, void *arg, int *status);

/* ---- the process pool ----------------------------------------------------
 * cfg.proc_workers worker processes serve jobs for a runtime. They are forked
 * from a single-threaded helper process (the zygote) that
 * mag_runtime_create forks before it starts any thread, so a worker never
 * inherits a lock held by another thread. The zygote and the workers take no
 * descriptor of the parent but stdin, stdout and stderr, run in a process
 * group of their own (a terminal's ^C reaches the parent only), reset every
 * signal handler, and die with the parent: a worker has PR_SET_PDEATHSIG
 * SIGKILL on the zygote, and the zygote kills its workers and exits when the
 * parent's end of its control socket closes (the parent exited or was
 * killed, even with SIGKILL). mag_runtime_shutdown kills and reaps every
 * worker and reaps the zygote: no zombies and no orphans.
 *
 * A spare zygote, forked by the zygote when the pool starts (so from the
 * same single-threaded image), waits beside it. Should the zygote die (a
 * SIGKILL from outside), its workers die with it, their jobs fail with
 * -ECHILD, and the spare becomes the zygote, forks the next spare, and the
 * pool heals. A promoted zygote is no longer this process's child (its
 * parent died), so the init process reaps it; it still leaves with this
 * process, through its control socket.
 *
 * A job's function runs in a worker with the memory image the parent had
 * when the runtime was created (the registry of functions included), so it
 * sees no later change of the parent's memory: everything it needs comes in
 * through its input bytes. */

/* A process-pool function: reads in_len bytes at in, and may set *out to a
 * malloc'd buffer of *out_len bytes (both start as NULL and 0), which the
 * caller receives and frees. Returns 0 (or any value >= 0) or a negative
 * errno, handed to the caller as mag_proc_call's return value. */
typedef int (*mag_proc_fn)(const void *in, size_t in_len, void **out, size_t *out_len);

#define MAG_PROC_NAME_MAX 63           /* bytes in a registered name */
#define MAG_PROC_MAX_FUNCS 256         /* registered functions per process */
#define MAG_PROC_MAX_PAYLOAD (1u << 30) /* bytes in one input or output */

/* Registers fn under name (copied) for every process pool started later.
 * Returns 0, -EINVAL (NULL or empty name, NULL fn), -ENAMETOOLONG,
 * -EEXIST (name taken), -ENOSPC (MAG_PROC_MAX_FUNCS reached), or -EBUSY once
 * a runtime with a process pool has been created in this process (its
 * workers were forked with the registry as it was: register everything
 * first, e.g. at the top of main). Thread-safe. */
MAG_API int mag_proc_register(const char *name, mag_proc_fn fn);

/* Runs the function registered as name on in[0..in_len) in a worker process
 * of the calling context's runtime and waits for it: suspends only the
 * calling task (the request and the result travel through the worker's ring;
 * no thread blocks), or blocks a plain thread of a blocking-pool job. Jobs
 * from many callers run in parallel on every worker and queue (FIFO) beyond
 * that. On return *out (a malloc'd buffer the caller frees; NULL when empty)
 * and *out_len hold the function's output; out and out_len may be NULL to
 * discard it. Returns the function's return value (>= 0, or its negative
 * errno: then no output is returned), or:
 *   -EINVAL      NULL name, in NULL with in_len > 0, out/out_len not both
 *                NULL or both set
 *   -EMSGSIZE    in_len or the output is over MAG_PROC_MAX_PAYLOAD
 *   -EFAULT      the function set *out_len but left *out NULL
 *   -ENOENT      no function registered as name
 *   -EPERM       no runtime context
 *   -ENXIO       the runtime has no process pool (cfg.proc_workers == 0)
 *   -ECHILD      the worker died while running the job (crash, abort,
 *                SIGKILL): only this job fails, and a new worker replaces it;
 *                also when no worker can be started any more (a zygote that
 *                died is replaced by its spare, see above, unless that died
 *                too); and when something other than the function's return wrote
 *                on the worker's reply channel (a reply that is not this
 *                job's, bytes beyond it, or bytes while the worker was
 *                idle): the worker is then treated as dead, so that no
 *                caller ever receives another's output
 *   -ECANCELED / -ETIMEDOUT
 *                the caller was cancelled or passed its deadline: a job
 *                already sent to a worker has that worker killed (and
 *                replaced) at once, so it stops using a core
 *   -ETIMEDOUT   also: the job ran past its timeout (cfg.proc_timeout_ms,
 *                or mag_proc_call_ex's); its worker was killed and replaced
 *                (a stopped or hung worker is found this way)
 *   -ESHUTDOWN   the runtime's shutdown began: the job's worker was killed
 *                (a call from a plain thread returns rather than hold the
 *                shutdown up), or no job is accepted any more
 *   -EAGAIN      a timeout was asked for, and the pool's watchdog thread
 *                could not be started
 *   -ENOMEM */
MAG_API int mag_proc_call(const char *name, const void *in, size_t in_len, void **out,
                          size_t *out_len);

/* Options of one process-pool call; zero-initialise, then set what you need. */
typedef struct mag_proc_opts {
    /* How long the job may run in its worker, from the moment a worker is
     * taken (the wait for a free worker is not counted: bound that with
     * the task's deadline). Past it the worker is killed and replaced and
     * the call returns -ETIMEDOUT. 0 = the pool's default
     * (cfg.proc_timeout_ms); MAG_PROC_NO_TIMEOUT = none, whatever the
     * default. Enforced for tasks and plain threads alike, within a few
     * milliseconds. */
    uint64_t timeout_ns;
} mag_proc_opts_t;

#define MAG_PROC_NO_TIMEOUT UINT64_MAX

/* mag_proc_call with options (NULL = the defaults). Same contract, results
 * and context rules as mag_proc_call. */
MAG_API int mag_proc_call_ex(const char *name, const void *in, size_t in_len, void **out,
                             size_t *out_len, const mag_proc_opts_t *opts);

/* ---- statistics (tests, tuning) ------------------------------------------ */
typedef struct mag_pool_stats {
    unsigned blocking_threads;    /* threads alive now */
    unsigned blocking_idle;       /* of which waiting for a job */
    unsigned blocking_peak;       /* most threads alive at once */
    size_t blocking_queued;       /* jobs waiting for a thread */
    uint64_t blocking_jobs;       /* jobs run so far */
    unsigned proc_workers;        /* worker processes alive or being replaced */
    unsigned proc_idle;           /* of which waiting for a job */
    uint64_t proc_jobs;           /* jobs completed (any result) */
    uint64_t proc_replaced;       /* workers replaced after a crash or a kill */
    int zygote_pid;               /* the helper process, 0 without a pool */
} mag_pool_stats_t;

/* Fills *out for rt. Any thread; a snapshot (counters read one by one). */
MAG_API void mag_pool_stats(mag_runtime_t *rt, mag_pool_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* MAGPIE_POOL_H */
