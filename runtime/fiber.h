/*
 * runtime/fiber.h - switching between a worker's scheduler and a task, told
 * to AddressSanitizer, ThreadSanitizer and Valgrind so that they follow.
 *
 * A task may leave one worker and come back on another, so a switch always
 * names the stack it is going to: the task's own, or the scheduler stack of
 * the worker it is on now (recorded per worker at thread start).
 */
#ifndef MAGPIE_RUNTIME_FIBER_H
#define MAGPIE_RUNTIME_FIBER_H

#include "runtime/queue.h"
#include "runtime/sched.h"

#if MAG__ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
#endif
#if MAG__TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
void __tsan_set_fiber_name(void *fiber, const char *name);
#endif

/* Scheduler -> task. Returns when the task switches back. */
static inline void mag__switch_into_task(mag__worker_t *w, mag_task_t *t)
{
#if MAG__TSAN
    if (!t->tsan_fiber)
        t->tsan_fiber = __tsan_create_fiber(0);
    /* Flag 0: the switch synchronises. TSan models each fiber as a thread
     * of its own, and the scheduler and the task hand each other data
     * (switch_reason, current) through the switch itself. */
    __tsan_switch_to_fiber(t->tsan_fiber, 0);
#endif
#if MAG__ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, t->stack->lo, t->stack->usable);
#endif
    mag__ctx_switch(&w->sched_sp, t->sp);
#if MAG__ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* From task t, which yields, parks or exits on w (w->switch_reason set):
 * if w has another task at hand, switches straight to it and returns true
 * once t has resumed (never, for an exit); false if the scheduler must
 * choose (the caller then switches out to it). worker.c. */
MAG_HIDDEN bool mag__worker_switch_direct(mag__worker_t *w, mag_task_t *t);

/* After a task's context is resumed (its switch returned, or it starts):
 * if it was switched to directly, the task before it is settled now that
 * its context is saved (worker.c). */
MAG_HIDDEN void mag__worker_settle_handoff(mag__worker_t *w);
/* A task that yielded with another at hand, switched away from directly:
 * to the back of its worker's queue, where another worker may take it. */
static inline void mag__handoff_requeue(mag__worker_t *w, mag_task_t *prev)
{
    mag__push_back(w, prev);
    if (w->rt->nworkers > 1)
        mag__notify_parked(w->rt);
}

static inline void mag__task_resumed(void)
{
    mag__worker_t *w = mag__worker_here();
    mag_task_t *prev = w->handoff;
    if (!prev)
        return;
    /* The most frequent settlement, a yield from a guarded stack, here;
     * the rest (a stack to check, an exit, a park) out of line. */
    if (w->switch_reason == MAG__SWITCH_YIELD && prev->stack->guarded) {
        w->handoff = NULL;
        mag__handoff_requeue(w, prev);
        return;
    }
    mag__worker_settle_handoff(w);
}

/* Task t -> task n on the same worker, without the scheduler's stack. The
 * caller did the scheduler's bookkeeping for n. Returns when t resumes;
 * exiting: never. */
static inline void mag__switch_task_to_task(mag_task_t *t, mag_task_t *n, bool exiting)
{
#if MAG__TSAN
    if (!n->tsan_fiber)
        n->tsan_fiber = __tsan_create_fiber(0);
    __tsan_switch_to_fiber(n->tsan_fiber, 0);
#endif
#if MAG__ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(exiting ? NULL : &fake, n->stack->lo, n->stack->usable);
#endif
    (void)exiting;
    mag__ctx_switch(&t->sp, n->sp);
#if MAG__ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    mag__task_resumed();
}

/* Task -> the scheduler of the worker it is on. exiting: never comes back. */
static inline void mag__switch_out_of_task(mag__worker_t *w, mag_task_t *t, bool exiting)
{
#if MAG__TSAN
    __tsan_switch_to_fiber(w->tsan_sched, 0);
#endif
#if MAG__ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(exiting ? NULL : &fake, w->asan_stack_bottom,
                                   w->asan_stack_size);
#endif
    (void)exiting;
    mag__ctx_switch(&t->sp, w->sched_sp);
#if MAG__ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    mag__task_resumed();
}

/* First thing a new fiber does. */
static inline void mag__fiber_started(void)
{
#if MAG__ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    mag__task_resumed();
}

#endif /* MAGPIE_RUNTIME_FIBER_H */
