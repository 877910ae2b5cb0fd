/*
 * runtime/blocking.h - the blocking pool as the rest of the library sees it.
 * The composition root (lifecycle/) creates it before any worker thread and
 * destroys it once every task has returned; io/ and procpool/ hand it jobs.
 */
#ifndef MAGPIE_RUNTIME_BLOCKING_H
#define MAGPIE_RUNTIME_BLOCKING_H

#include "magpie/pool.h"
#include "runtime/internal.h"

struct mag__blocking;

/* 0 and *out, or -ENOMEM. Starts no thread: threads come on demand. */
MAG_HIDDEN int mag__blocking_create(mag_runtime_t *rt, struct mag__blocking **out);
/* Waits for every pool thread to leave, then frees the pool. NULL: no-op. */
MAG_HIDDEN void mag__blocking_destroy(struct mag__blocking *b);
/* Spawns fn(arg) on rt's blocking pool: 0 and *out (NULL: detached), or
 * -EINVAL, -ESHUTDOWN, -ENOMEM, -EAGAIN. */
MAG_HIDDEN int mag__spawn_blocking(mag_runtime_t *rt, mag_task_t **out, mag_fn fn, void *arg);
/* Fills the blocking_* fields of *out (the others are left alone). */
MAG_HIDDEN void mag__blocking_stats(struct mag__blocking *b, mag_pool_stats_t *out);
/* The runtime of the calling task, worker or blocking-pool thread, or NULL. */
MAG_HIDDEN mag_runtime_t *mag__context_runtime(void);

#endif /* MAGPIE_RUNTIME_BLOCKING_H */
