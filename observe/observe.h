/*
 * observe/observe.h - observability: the slow-task watchdog and the SIGQUIT
 * dump (debug.c), the stats server (debug.c), mag_metrics and
 * mag_dump_tasks (metrics.c), and the timeline trace (trace.c). Private to
 * observe/, and the layer above the scheduler core, io/, sync/ and the
 * process pool: it follows the scheduler through the hooks it installs
 * (runtime/hooks.h), and the core knows nothing of it. The composition root
 * (lifecycle/) starts and stops it.
 */
#ifndef MAGPIE_OBSERVE_H
#define MAGPIE_OBSERVE_H

#include <stdio.h>

#include "runtime/sched.h"

/* What observability keeps in each task record's hook words (hooks.h). */
enum {
    MAG__OBS_SPAWN_NS = 0,     /* when it was spawned (task ages in dumps) */
    MAG__OBS_RUN_START_NS = 1, /* start of its current run; 0 between runs */
    MAG__OBS_FLOW = 2,         /* 1: a traced wake-up awaits its flow end */
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
    mag__trace_ev_t *ring;      /* tracing: cap events, a power of 2 */
    uint64_t head;              /* events ever recorded (owner only) */
    uint64_t mask;
} __attribute__((aligned(MAG_CACHELINE))) mag__obs_worker_t;


/* The hooks' context (mag__hooks_ctx): debug.c's state begins with it. */
typedef struct mag__obs_shared {
    mag__obs_worker_t *ow; /* one per worker */
    bool tracing;          /* the trace's table is installed */
} mag__obs_shared_t;

/* ---- trace.c ------------------------------------------------------------- */
/* Run tracking (the watchdog, the live view, task ages) installs the first
 * table; the timeline trace the second, which tracks runs too. */
MAG_HIDDEN extern const mag__hooks_t mag__obs_track_hooks;
MAG_HIDDEN extern const mag__hooks_t mag__obs_trace_hooks;
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

/* ---- debug.c ------------------------------------------------------------ */
/* Starts what cfg and the environment ask for (the watchdog, the SIGQUIT
 * dump, the stats server, the trace) and installs the hooks they need; before
 * any worker thread exists. Nothing is started when nothing is asked for. */
MAG_HIDDEN void mag__observe_start(mag_runtime_t *rt);
/* Stops what reads the pools (the stats server): before they stop. */
MAG_HIDDEN void mag__observe_quiesce(mag_runtime_t *rt);
/* After every worker has stopped: writes the trace, stops the rest, and
 * removes the hooks. */
MAG_HIDDEN void mag__observe_stop(mag_runtime_t *rt);
/* The per-worker records while tracking is on, else NULL. */
static inline mag__obs_worker_t *mag__obs_workers(const mag_runtime_t *rt)
{
    const mag__obs_shared_t *s = mag__hooks_ctx(rt);
    return s ? s->ow : NULL;
}

#endif /* MAGPIE_OBSERVE_H */
