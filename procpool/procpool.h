/*
 * procpool/procpool.h - the process pool as the composition root sees it.
 * Started by mag_runtime_create before any thread exists (its zygote must be
 * forked while the process is single-threaded), stopped by
 * mag_runtime_shutdown: closed when it begins, stopped once every task has
 * returned.
 */
#ifndef MAGPIE_PROCPOOL_H
#define MAGPIE_PROCPOOL_H

#include "magpie/pool.h"
#include "runtime/internal.h"

struct mag__procpool;

/* 0 and *out, or a negative errno; on failure nothing is left behind. */
MAG_HIDDEN int mag__procpool_start(mag_runtime_t *rt, unsigned nworkers,
                                   struct mag__procpool **out);
/* Shutdown began: every job in flight has its worker killed and its caller
 * gets -ESHUTDOWN (a plain thread's call too, which nothing else could
 * interrupt), waiting callers fail with -ESHUTDOWN, and new calls are
 * refused with it. Idempotent; NULL: no-op. */
MAG_HIDDEN void mag__procpool_close(struct mag__procpool *p);
/* Closes the pool (as above), kills and reaps every process and frees the pool. NULL: no-op. */
MAG_HIDDEN void mag__procpool_stop(struct mag__procpool *p);

#endif /* MAGPIE_PROCPOOL_H */
