/*
 * runtime/idle.h - the idle protocol (idle.c): parked and searching workers.
 * Private to runtime/.
 */
#ifndef MAGPIE_RUNTIME_IDLE_H
#define MAGPIE_RUNTIME_IDLE_H

#include "runtime/sched.h"

/* w wants to search other queues for work: false when half of the workers
 * search already (then it does not steal). True at once if it searches. */
MAG_HIDDEN bool mag__idle_to_searching(mag__worker_t *w);
/* w found work (or stops): no longer searching. The last searcher to find
 * work wakes another worker. A no-op when w is not searching. */
MAG_HIDDEN void mag__idle_from_searching(mag__worker_t *w);
/* w found nothing to steal and is about to look at its own ring before it
 * parks: no longer searching, waking nobody for what it finds there (the
 * last searcher wakes one if work is queued elsewhere). */
MAG_HIDDEN void mag__idle_stop_searching(mag__worker_t *w);
/* No worker is parked or searching: none would take a task queued now. */
MAG_HIDDEN bool mag__idle_all_busy(mag_runtime_t *rt);
/* w is about to sleep: listed as parked. Returns true if it was the last
 * searcher. */
MAG_HIDDEN bool mag__idle_to_parked(mag__worker_t *w);
/* After waking: if still listed as a sleeper (woken by I/O, a timer or a
 * spurious wake-up rather than by mag__notify_parked), takes w off the list.
 * Returns true if it was notified (and is now counted searching). */
MAG_HIDDEN bool mag__idle_from_parked(mag__worker_t *w);
/* Whether w is still on the sleepers list (a notify takes it off). */
MAG_HIDDEN bool mag__idle_listed(mag__worker_t *w);

#endif /* MAGPIE_RUNTIME_IDLE_H */
