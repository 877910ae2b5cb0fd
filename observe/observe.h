/*
 * runtime/trace.h - observability hooks in the scheduler: run tracking (the
 * watchdog, the live view, task ages) and the timeline trace. Private to
 * runtime/.
 *
 * Every hook the scheduler calls is an inline test of the worker's obs byte,
 * fixed before the worker starts, around an out-of-line call: with
 * everything off, a hook costs one well-predicted branch on a byte the
 * worker's own cache line already holds.
 */
#ifndef MAGPIE_RUNTIME_TRACE_H
#define MAGPIE_RUNTIME_TRACE_H

#include <stdio.h>

#include "runtime/sched.h"

/* mag_runtime.obs and mag__worker.obs bits. */
enum {
    MAG__OBS_TRACK = 1, /* record run starts and spawn times */
    MAG__OBS_TRACE = 2, /* record trace events */
};

/* One trace event: 64 bytes, a cache line. */
typedef struct mag__trace_ev {
    uint64_t ts;   /* mag__now() */
    uint64_t dur;  /* RUN and PARK: duration in ns */
    uint64_t id;   /* task id */
    uint32_t arg;  /* RUN: switch reason; WAIT_*: wait kind; STEAL: victim */
    uint16_t kind; /* MAG__EV_* */
    uint16_t n;    /* RUN: wait kind at the end; STEAL: tasks moved; FLOW: spawn */
    char name[32]; /* RUN: the task's name */
} mag__trace_ev_t;

enum {
    MAG__EV_RUN = 1, /* a task ran: ts..ts+dur */
    MAG__EV_PARK,    /* the worker slept in its ring */
    MAG__EV_WAIT_B,  /* a task began waiting (async span per task) */
    MAG__EV_WAIT_E,  /* ... and runs again */
    MAG__EV_FLOW_S,  /* a wake-up or spawn: arrow from here ... */
    MAG__EV_FLOW_F,  /* ... to the run it caused */
    MAG__EV_STEAL,   /* tasks taken from another worker */
};

/* What the observability code keeps per worker. start_ns and task are read
 * by other threads; the trace ring is the owner's until the worker exits. */
typedef struct mag__obs_worker {
    _Atomic uint64_t start_ns;  /* start of the current run; 0 between runs */
    _Atomic(mag_task_t *) task; /* the task of that run */
    mag__trace_ev_t *ring;      /* MAG__OBS_TRACE: cap events, a power of 2 */
    uint64_t head;              /* events ever recorded (owner only) */
    uint64_t mask;
} __attribute__((aligned(MAG_CACHELINE))) mag__obs_worker_t;

/* A runtime's observability state: mag_runtime.debug. */
typedef struct mag__obs mag__obs_t;

/* ---- trace.c ------------------------------------------------------------- */
MAG_HIDDEN void mag__obs_run_begin_slow(mag__worker_t *w, mag_task_t *t);
MAG_HIDDEN void mag__obs_run_end_slow(mag__worker_t *w, mag_task_t *t);
MAG_HIDDEN void mag__trace_wake(mag__worker_t *w, mag_task_t *t, bool is_new);
MAG_HIDDEN void mag__trace_steal(mag__worker_t *w, unsigned victim, unsigned n);
MAG_HIDDEN void mag__trace_park(mag__worker_t *w, uint64_t t0, uint64_t t1);
/* The most events a worker's ring holds (mag_config_t.trace_events). */
#define MAG__TRACE_EVENTS_MAX (1u << 26)
/* Allocates every worker's ring; 0 or -ENOMEM. */
MAG_HIDDEN int mag__trace_alloc(mag__obs_worker_t *ow, unsigned nworkers, size_t events);
MAG_HIDDEN void mag__trace_free(mag__obs_worker_t *ow, unsigned nworkers);
/* Writes the rings as Chrome trace JSON; after every worker has stopped. */
MAG_HIDDEN int mag__trace_write(mag__obs_worker_t *ow, unsigned nworkers, uint64_t epoch_ns,
                                const char *path);

/* ---- metrics.c ----------------------------------------------------------- */
/* Copies the id and name of t if it is still in the run that began at
 * start_ns (the watchdog's and the live view's way to name a running task
 * without racing its reuse). */
MAG_HIDDEN bool mag__obs_running_task(mag_runtime_t *rt, mag_task_t *t, uint64_t start_ns,
                                      uint64_t *id, char name[32]);
/* "io", "timer", "mutex", ... for MAG__WAIT_* */
MAG_HIDDEN const char *mag__wait_name(int kind);
struct mag_metrics;
MAG_HIDDEN void mag__metrics_json(const struct mag_metrics *m, FILE *out);

/* ---- json.c -------------------------------------------------------------- */
/* Writes s, up to its NUL or max bytes, as a quoted JSON string; bytes
 * outside printable ASCII as \u00XX escapes. */
MAG_HIDDEN void mag__json_string(FILE *f, const char *s, size_t max);

/* ---- the hooks ----------------------------------------------------------- */
static inline void mag__obs_run_begin(mag__worker_t *w, mag_task_t *t)
{
    if (MAG_UNLIKELY(w->obs))
        mag__obs_run_begin_slow(w, t);
}

static inline void mag__obs_run_end(mag__worker_t *w, mag_task_t *t)
{
    if (MAG_UNLIKELY(w->obs))
        mag__obs_run_end_slow(w, t);
}

static inline void mag__obs_wake(mag__worker_t *w, mag_task_t *t, bool is_new)
{
    if (MAG_UNLIKELY(w->obs & MAG__OBS_TRACE))
        mag__trace_wake(w, t, is_new);
}

static inline void mag__obs_steal(mag__worker_t *w, unsigned victim, unsigned n)
{
    if (MAG_UNLIKELY(w->obs & MAG__OBS_TRACE))
        mag__trace_steal(w, victim, n);
}

static inline void mag__obs_park_begin(mag__worker_t *w, uint64_t t0)
{
    /* relaxed: a gauge for mag_metrics, nothing is published through it. */
    atomic_store_explicit(&w->stats.park_start_ns, t0, memory_order_relaxed);
}

static inline void mag__obs_park_end(mag__worker_t *w, uint64_t t0, uint64_t t1)
{
    atomic_store_explicit(&w->stats.park_start_ns, 0, memory_order_relaxed);
    if (MAG_UNLIKELY(w->obs & MAG__OBS_TRACE))
        mag__trace_park(w, t0, t1);
}

#endif /* MAGPIE_RUNTIME_TRACE_H */
