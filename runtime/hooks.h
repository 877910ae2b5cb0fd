/*
 * runtime/hooks.h - how optional machinery above the core (observability:
 * the watchdog, task dumps, the timeline trace) follows the scheduler
 * without the core knowing it exists.
 *
 * Whoever is above installs one table of functions and one context pointer
 * on the runtime before any worker starts (mag__hooks_install); the core
 * calls them at the points below. With nothing installed the table pointer
 * is NULL, and each hook costs one well-predicted test of a pointer that the
 * worker's own cache line holds. Any entry may be NULL.
 *
 * Each task record also carries MAG__HOOK_WORDS words that belong to the
 * installed hooks (for example the time a task was spawned or began its
 * current run): they read as zero in a fresh record (the core zeroes the
 * words of a record its runtime's hooks could have written when it frees
 * it), and the core never reads them.
 */
#ifndef MAGPIE_RUNTIME_HOOKS_H
#define MAGPIE_RUNTIME_HOOKS_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/internal.h"

struct mag__worker;

#define MAG__HOOK_WORDS 3

typedef struct mag__hooks {
    /* A record was initialised for a new task or blocking job (any thread,
     * before the record is published). */
    void (*task_init)(void *ctx, mag_task_t *t);
    /* A worker is about to switch into t, and t's run ends (w->switch_reason
     * says why): after t switched back out to the scheduler, or just before
     * t switches straight to another task (worker.c), whose run_begin comes
     * after. On w's thread. */
    void (*run_begin)(void *ctx, struct mag__worker *w, mag_task_t *t);
    void (*run_end)(void *ctx, struct mag__worker *w, mag_task_t *t);
    /* A blocking-pool thread starts running job t. */
    void (*job_begin)(void *ctx, mag_task_t *t);
    /* On worker w, t was spawned (is_new) or woken, before it is queued. */
    void (*wake)(void *ctx, struct mag__worker *w, mag_task_t *t, bool is_new);
    /* Worker w took n tasks from worker victim's queue. */
    void (*steal)(void *ctx, struct mag__worker *w, unsigned victim, unsigned n);
    /* Worker w slept in its ring from t0 to t1 (mag__now() times). */
    void (*park)(void *ctx, struct mag__worker *w, uint64_t t0, uint64_t t1);
} mag__hooks_t;

/* Calls hook `name` of the table on `holder` (a worker or the runtime: both
 * have hooks and hook_ctx) when one is installed. */
#define MAG__HOOK(holder, name, ...)                                                       \
    do {                                                                                   \
        const mag__hooks_t *hooks_ = (holder)->hooks;                                      \
        if (MAG_UNLIKELY(hooks_ != NULL) && hooks_->name)                                  \
            hooks_->name((holder)->hook_ctx, __VA_ARGS__);                                 \
    } while (0)

/* Installs hooks (NULL: none) with their context on rt; before any worker
 * thread exists or after every one has stopped (thread creation and join
 * publish the table). */
MAG_HIDDEN void mag__hooks_install(mag_runtime_t *rt, const mag__hooks_t *hooks, void *ctx);
/* The context installed with the hooks, or NULL. */
MAG_HIDDEN void *mag__hooks_ctx(const mag_runtime_t *rt);
/* Tests only: when set, a runtime created without observability's hooks
 * gets this table (with a NULL context), so that a test can act at the
 * scheduler's own points (test/rt_stranded stalls a worker there). Set and
 * cleared by the thread that creates the runtime, before it does. */
MAG_HIDDEN extern const mag__hooks_t *mag__test_hooks;

#endif /* MAGPIE_RUNTIME_HOOKS_H */
