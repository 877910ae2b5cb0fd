/*
 * runtime/monitor.h - the monitor thread of a multi-worker runtime
 * (monitor.c): it finds ready work held by a worker that is busy running one
 * task, and wakes an idle worker to take it over. Private to runtime/.
 */
#ifndef MAGPIE_RUNTIME_MONITOR_H
#define MAGPIE_RUNTIME_MONITOR_H

#include "runtime/sched.h"

/* rt->monitor_word: bit 0 asks the monitor to stop; kicks add 2. */
#define MAG__MONITOR_STOP 1u

/* Starts the monitor (rt->nworkers > 1); 0 or -errno. */
MAG_HIDDEN int mag__monitor_start(mag_runtime_t *rt);
/* Stops and joins it; a no-op when there is none. */
MAG_HIDDEN void mag__monitor_stop(mag_runtime_t *rt);
/* A worker left its park: wakes the monitor if it sleeps because every
 * worker was parked. Call after a seq_cst update of rt->idle, with a seq_cst
 * load of rt->monitor_deep finding it set. */
MAG_HIDDEN void mag__monitor_kick(mag_runtime_t *rt);

#endif /* MAGPIE_RUNTIME_MONITOR_H */
