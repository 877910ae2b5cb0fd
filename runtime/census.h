/*
 * runtime/census.h - the task census: how shutdown knows that no task is
 * left without a shared counter on the spawn and finish paths. The readers
 * are in census.c. Private to runtime/.
 *
 * Shutdown must know when no task is left, and spawns and finishes are the
 * hottest paths there are: one shared counter would put a locked instruction
 * on each, on a line every worker pulls. So each worker counts the tasks
 * admitted by tasks running on it (tasks_in) and the tasks that finish on it
 * (tasks_out): plain release stores by their one writer. Plain threads (a
 * mag_runtime_spawn, a blocking job finishing on a pool thread), rare, share
 * two atomic counters. mag__tasks_live reads every out first, then every in,
 * all with acquire, and returns ins less outs:
 *   - No task counts as out without its in: a task's admission is counted
 *     before it is queued, so before it runs and finishes, and the release
 *     store of the finisher's out, read with acquire, makes every store that
 *     came before it visible, that in included.
 *   - A task alive when the outs have been read counts one or more: its in
 *     may not be visible yet, but then the task that admitted it is not
 *     counted out either (its out would have carried the in along), and so
 *     on down to the first task, admitted by a plain thread's seq_cst
 *     read-modify-write. Each task counts 0 or 1, never -1.
 * So 0 means that, once the outs were read, nothing was alive. Nothing can
 * then be admitted but by a plain thread, and those check closing (Dekker's
 * pattern, mag__task_admit in task.c). A worker thread outside any task
 * counts as a plain thread: nothing alive vouches for what it admits.
 *
 * Inline: they are on every spawn and every finish.
 */
#ifndef MAGPIE_RUNTIME_CENSUS_H
#define MAGPIE_RUNTIME_CENSUS_H

#include "runtime/sched.h"

/* The census counters of the calling thread, or NULL: a plain thread's. */
static inline mag__worker_t *mag__census_worker(mag_runtime_t *rt, bool admitting)
{
    mag__worker_t *w = mag__tls_worker;
    if (!w || w->rt != rt || (admitting && !w->current))
        return NULL;
    return w;
}

/* One more on the owner's counter: a release store, no locked instruction.
 * release: pairs with the acquire loads in mag__tasks_live. */
static inline void mag__census_add(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_release);
}

/* An admission that did not happen counts out on the counter it counted in
 * on (cw, from mag__census_worker), so that both stay monotonic. */
static inline void mag__census_undo(mag_runtime_t *rt, mag__worker_t *cw)
{
    if (cw)
        mag__census_add(&cw->tasks_out);
    else /* seq_cst: as foreign_in's increments */
        atomic_fetch_add_explicit(&rt->foreign_out, 1, memory_order_seq_cst);
}

/* One task fewer: it finished, on this thread. Shutdown polls the census
 * (lifecycle/runtime.c): nobody is woken. */
static inline void mag__census_finish(mag_runtime_t *rt)
{
    mag__census_undo(rt, mag__census_worker(rt, false));
}

#endif /* MAGPIE_RUNTIME_CENSUS_H */
