/*
 * magpie/metrics.h - runtime metrics and task dumps.
 *
 * Besides these calls, four switches make a runtime observable from outside
 * (read once, when the runtime is created):
 *
 *   MAG_DEBUG=1 (or cfg.debug)  a watchdog thread warns on stderr about a task
 *                               that runs longer than slow_task_ms without
 *                               suspending (once per such run, while it is
 *                               still running); SIGQUIT prints mag_dump_tasks
 *                               to stderr and the process keeps running;
 *                               shutdown lists tasks never joined nor
 *                               detached; joining a stale handle is reported.
 *   MAG_STATS=/path/to.sock     a thread serves metrics on a Unix socket (see
 *                               below); build/tools/magtop shows them live.
 *   MAG_TRACE=trace.json        at shutdown, writes a Chrome / Perfetto trace
 *                               of what ran on each worker (tid = worker).
 *   MAG_TRACE_EVENTS=N          events kept per worker (default 65536; the
 *                               oldest are dropped when a worker's ring is
 *                               full, so the trace shows the last N).
 *
 * The stats socket speaks lines: send "metrics\n" and receive one line of
 * JSON (the fields of mag_metrics_t, names as below); send "dump\n" and
 * receive mag_dump_tasks's text followed by a line holding a single ".".
 * The server is a plain thread, not a task: it answers while every worker is
 * stuck in a task that never suspends.
 */
#ifndef MAGPIE_METRICS_H
#define MAGPIE_METRICS_H

#include "magpie/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mag_worker_metrics {
    /* Counters since the runtime started. */
    uint64_t polls;          /* task runs: each resume of a task counts one */
    uint64_t steal_attempts; /* victims probed while searching for work */
    uint64_t steals;         /* probes that took at least one task */
    uint64_t stolen_tasks;   /* tasks moved by those steals */
    uint64_t parks;          /* times the worker went to sleep in its ring */
    uint64_t unparks;        /* times it woke up */
    uint64_t lifo_hits;      /* runs taken from the LIFO slot */
    uint64_t overflows;      /* local queue full: half of it went to the inject queue */
    uint64_t remote_wakes;   /* tasks of another runtime woken from here */
    uint64_t io_submitted;   /* SQEs prepared on its ring */
    uint64_t io_completed;   /* CQEs reaped from its ring */
    uint64_t busy_ns;        /* time not parked (running, searching, polling) */
    uint64_t parked_ns;      /* time asleep in its ring, the current sleep included */
    /* Gauges, read now. */
    uint64_t queue_depth; /* tasks in its local run queue */
    uint64_t timers;      /* timers armed on its wheel */
    bool parked;          /* asleep in its ring now */
    /* The task running on it now, when the runtime tracks runs (debug mode,
     * MAG_STATS or MAG_TRACE); else zero and "". */
    uint64_t task_id;
    uint64_t task_run_ns; /* how long it has run since it last suspended */
    char task_name[32];
} mag_worker_metrics_t;

typedef struct mag_metrics {
    uint64_t now_ns;    /* mag_now() when the snapshot was taken */
    uint64_t uptime_ns; /* since mag_runtime_create */
    unsigned nworkers;
    mag_worker_metrics_t *workers; /* nworkers entries (allocated: mag_metrics_free) */
    mag_worker_metrics_t total;    /* sums over the workers (task_* left empty) */
    uint64_t inject_depth;         /* tasks in the shared inject queue */
    uint64_t live_tasks;           /* spawned and not yet returned */
    uint64_t spawned;              /* tasks spawned since the runtime started */
    uint64_t completed;            /* tasks that returned */
    struct {
        uint64_t threads; /* blocking-pool threads alive */
        uint64_t busy;    /* of which running a job */
        uint64_t queued;  /* jobs waiting for a thread */
        uint64_t jobs;    /* jobs run so far */
    } blocking;
    struct {
        uint64_t workers; /* process-pool workers alive */
        uint64_t busy;    /* of which running a job */
        uint64_t jobs;    /* jobs completed */
        uint64_t crashes; /* workers replaced after a crash or a kill */
    } proc;
} mag_metrics_t;

/* Takes a snapshot of rt's metrics (rt NULL: the calling task's runtime) from
 * any thread, without stopping anything: each counter is read on its own, so
 * figures taken in the same call may be a few events apart. Allocates
 * out->workers; release it with mag_metrics_free. Returns 0, -EINVAL (no
 * runtime, NULL out) or -ENOMEM. Never suspends. */
MAG_API int mag_metrics(mag_runtime_t *rt, mag_metrics_t *out);

/* Frees what mag_metrics allocated in *m (a zeroed struct is fine). */
MAG_API void mag_metrics_free(mag_metrics_t *m);

/* Writes one line per live task of rt (NULL: the calling task's runtime) to
 * out (NULL: stderr): id, name, state (running, runnable, or waiting on
 * io / timer / join / mutex / chan / ... and the object waited on), the
 * worker it runs or last ran on, its age, and its stack high-water mark.
 * Age is known when the runtime tracks tasks (debug mode, MAG_STATS or
 * MAG_TRACE), else "-". The high-water mark is the deepest the task's stack
 * has been written since the stack was mapped: stacks are reused from a
 * per-worker cache, so it can include an earlier task's use of the same
 * stack. Any thread; never suspends; takes no lock that spawns or finishes
 * wait on, so a task spawned or ending while the dump runs may be missing.
 * Returns the number of tasks listed, or -EINVAL / -ENOMEM. */
MAG_API int mag_dump_tasks(mag_runtime_t *rt, FILE *out);

#ifdef __cplusplus
}
#endif
#endif /* MAGPIE_METRICS_H */
