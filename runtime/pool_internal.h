/*
 * runtime/pool_internal.h - the blocking pool and the process pool as the
 * runtime sees them: started by mag_runtime_create before any thread exists,
 * stopped by mag_runtime_shutdown once every task has returned.
 */
#ifndef MAGPIE_RUNTIME_POOL_INTERNAL_H
#define MAGPIE_RUNTIME_POOL_INTERNAL_H

#include "magpie/pool.h"
#include "runtime/internal.h"

struct mag__blocking;
struct mag__procpool;

/* Hung off struct mag_runtime (rt->pools). */
typedef struct mag__pools {
    struct mag__blocking *blocking;
    struct mag__procpool *proc; /* NULL when cfg.proc_workers == 0 */
} mag__pools_t;

/* Called by mag_runtime_create before it starts any thread (the zygote must
 * be forked while the process is single-threaded). 0 or a negative errno;
 * on failure nothing is left behind. */
MAG_HIDDEN int mag__pools_start(mag_runtime_t *rt);
/* Called by mag_runtime_shutdown once no task is live (and on a failed
 * create): stops the blocking threads, kills and reaps every process, frees
 * the pools. Idempotent. */
MAG_HIDDEN void mag__pools_stop(mag_runtime_t *rt);

/* blocking.c */
MAG_HIDDEN int mag__blocking_create(mag_runtime_t *rt, struct mag__blocking **out);
MAG_HIDDEN void mag__blocking_destroy(struct mag__blocking *b);
/* Spawns fn(arg) on rt's blocking pool: 0 and *out (NULL: detached), or
 * -EINVAL, -ESHUTDOWN, -ENOMEM, -EAGAIN. */
MAG_HIDDEN int mag__spawn_blocking(mag_runtime_t *rt, mag_task_t **out, mag_fn fn, void *arg);
/* The runtime of the calling task, worker or blocking-pool thread, or NULL. */
MAG_HIDDEN mag_runtime_t *mag__context_runtime(void);

/* procpool.c */
MAG_HIDDEN int mag__procpool_start(mag_runtime_t *rt, unsigned nworkers,
                                   struct mag__procpool **out);
MAG_HIDDEN void mag__procpool_stop(struct mag__procpool *p);
MAG_HIDDEN void mag__procpool_stats(struct mag__procpool *p, mag_pool_stats_t *out);

#endif /* MAGPIE_RUNTIME_POOL_INTERNAL_H */
