/*
 * runtime/task.c - spawn, join, detach, cancel, and reading a record that
 * may change under the reader (shutdown, dumps).
 *
 * Task records come from task_pool.c: type-stable (a late mag__wake on a
 * record that has moved on touches a task record, or zeros that read as a
 * FREE one, never an unmapped page; see the wake-up protocol in internal.h
 * and task_state.h). A handle carries the record's generation, and every
 * call on a handle checks it against the record's life word (sched.h), so a
 * stale handle names no task: join returns -ESRCH, detach and cancel do
 * nothing.
 *
 * A record is held by the running body and by the handle, and freed by
 * whichever lets go second (the life word, sched.h). The body lets go when
 * the task returns, the handle at join or detach (or at shutdown for
 * handles nobody joined).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/census.h"
#include "runtime/fiber.h"
#include "runtime/sched.h"

static _Atomic uint64_t next_task_id = 1;
bool mag__debug_any;

/* One line on stderr: formatted first, so that lines from several threads
 * do not interleave. */
static void vwarn(const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    fprintf(stderr, "magpie: %s\n", buf);
}

void mag__warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
}

_Noreturn void mag__fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
    abort();
}

static void task_free(mag_task_t *t)
{
    /* FREE first, then the new generation, so that a reader who sees the
     * new generation sees FREE (or a later use's state): see "reading a
     * record that may change under us" below. */
    mag__state_set_free(&t->state);
    /* A new generation: every handle of this task is stale from here on. A
     * call on a stale handle compares and swaps this word, and its
     * modification order alone decides (a cancel ordered before this store
     * changed a word this store replaces). release: pairs with the acquire
     * load of life in mag__task_peek, which then sees FREE. */
    uint64_t life = atomic_load_explicit(&t->life, memory_order_relaxed);
    atomic_store_explicit(&t->life,
                          mag__life_make(mag__gen_next(mag__life_gen(life)), MAG__HANDLE_RELEASED),
                          memory_order_release);
    /* release fence: the next use's writes to the record come after it;
     * pairs with the acquire fence in mag__task_peek, so that a reader who
     * copied one of those writes sees the generation above. A compiler
     * barrier on x86. ThreadSanitizer does not model fences (GCC refuses
     * this one there), and the copies it pairs with are outside its view. */
#if !MAG__TSAN
    atomic_thread_fence(memory_order_release);
#endif
    /* What this use wrote beyond the first two lines, back to what a free
     * record holds there (see struct mag_task). After the fence: these are
     * writes of the next use, as far as a reader is concerned. */
    if (t->named) {
        t->name[0] = 0;
        t->named = false;
    }
    if (t->hooked_words) {
        for (unsigned i = 0; i < MAG__HOOK_WORDS; i++)
            atomic_store_explicit(&t->hook_words[i], 0, memory_order_relaxed);
        t->hooked_words = false;
    }
    mag__task_recycle(mag__tls_worker, t);
}

/* Whether the handle has let go: detached, or released (joined, or taken
 * at shutdown or by an undo). */
static bool handle_gone(uint64_t life)
{
    return mag__life_handle(life) == MAG__HANDLE_DETACHED ||
           mag__life_handle(life) == MAG__HANDLE_RELEASED;
}

/* The body has ended: it lets go of the record (the life word, sched.h). */
static void body_let_go(mag_task_t *t)
{
    /* A handle that let go first left the record to us, and nobody else
     * frees it: no locked instruction (a detached task's usual end).
     * acquire: pairs with the acq_rel of the handle's letting go, so that
     * we see what its holder wrote before. */
    uint64_t life = atomic_load_explicit(&t->life, memory_order_acquire);
    if (handle_gone(life)) {
        task_free(t);
        return;
    }
    /* Else the mark, and the record is the handle's to free, unless it let
     * go meanwhile. acq_rel: release publishes the body's writes (the
     * result) to the handle's side; acquire sees that side's. */
    uint64_t old = atomic_fetch_or_explicit(&t->life, MAG__LIFE_BODY_GONE, memory_order_acq_rel);
    if (handle_gone(old))
        task_free(t);
}

void mag__task_handle_dropped(mag_task_t *t, uint64_t old)
{
    if (old & MAG__LIFE_BODY_GONE)
        task_free(t);
}

/* A join (or the hook owner) is done with a task whose handle it claimed
 * (JOINING): the handle lets go, JOINING -> RELEASED (1 -> 3: an or). */
static void joined_let_go(mag_task_t *t)
{
    /* If the body let go already, only a cancel can change the word now
     * (and the task being done, losing its bit loses nothing): a plain
     * store, and the record is ours to free. acquire: pairs with the
     * body's acq_rel or-ing of its mark. */
    uint64_t life = atomic_load_explicit(&t->life, memory_order_acquire);
    if (life & MAG__LIFE_BODY_GONE) {
        atomic_store_explicit(&t->life, life | MAG__HANDLE_RELEASED, memory_order_relaxed);
        task_free(t);
        return;
    }
    /* acq_rel: as the body's letting go, the other way. */
    mag__task_handle_dropped(
        t, atomic_fetch_or_explicit(&t->life, MAG__HANDLE_RELEASED, memory_order_acq_rel));
}

const mag__hooks_t *mag__test_hooks;

void mag__hooks_install(mag_runtime_t *rt, const mag__hooks_t *hooks, void *ctx)
{
    rt->hooks = hooks;
    rt->hook_ctx = ctx;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        rt->workers[i]->hooks = hooks;
        rt->workers[i]->hook_ctx = ctx;
    }
}

void *mag__hooks_ctx(const mag_runtime_t *rt)
{
    return rt->hook_ctx;
}

/* ---- reading a record that may change under us ------------------------------
 * There is no registry of live tasks: shutdown and the dumps walk every
 * record (mag__task_pool_each) and look at each with mag__task_peek, from
 * any thread, with no lock, while the record may be freed and spawned anew
 * under them. The record says which use of it this is (the generation in
 * its life word), and the reader checks the generation before and after it
 * copies, as a seqlock reader checks the sequence:
 *
 *   a use of the record, generation g:   task_free (of the use before):
 *     task_init writes the fields           state = FREE
 *     spawn writes id, name                 life = g+1 (release)
 *     register: state = RUNNING (release)   release fence
 *     ... runs, DONE ...
 *
 *   the reader: L1 = life (acquire); s = state (acquire), FREE: no task;
 *     copy the fields; acquire fence; L2 = life; gen(L1) != gen(L2): moved on.
 *
 * s is of the use of generation gen(L1), and past its registration: had the
 * reader seen a later use's state, that use's registration (a release)
 * comes after the bump to g+1, so L2 would be g+1 or later; had it seen
 * the FREE of the use before, it skips; a generation read in L1 came with
 * the FREE before it. The fields are at least those the registration
 * published (acquire on s); had a copy caught a write of the next use,
 * that write comes after task_free's release fence, which then pairs with
 * the reader's acquire fence, and L2 sees the next generation. Within one
 * generation the fields a reader copies do not change after registration.
 * The copies are volatile reads outside ThreadSanitizer's view (the race
 * is the point, and it cannot see fences): what they read is dropped when
 * it could be torn. */

/* A plain field of a record another thread may be rewriting, read once. */
#define PEEK(field) (*(const volatile __typeof__(field) *)&(field))

__attribute__((no_sanitize("thread"))) static void peek_fields(mag_task_t *t,
                                                                mag_runtime_t **rt,
                                                                mag__task_view_t *v,
                                                                bool details)
{
    *rt = PEEK(t->rt);
    if (!details)
        return;
    v->id = PEEK(t->id);
    for (size_t i = 0; i < sizeof v->name; i++)
        v->name[i] = PEEK(t->name[i]);
    v->name[sizeof v->name - 1] = 0;
    v->hooked = PEEK(t->hook) != NULL;
    v->stack = PEEK(t->stack);
}

bool mag__task_peek(mag_task_t *t, mag_runtime_t *rt, mag__task_view_t *v, bool details)
{
    /* acquire: pairs with the release of the generation in task_free. */
    uint64_t life = atomic_load_explicit(&t->life, memory_order_acquire);
    /* acquire: pairs with the release in mag__task_register (and every
     * later state change, each a release or in its release sequence). */
    uint32_t state = atomic_load_explicit(&t->state, memory_order_acquire);
    if ((state & MAG__STATUS_MASK) == MAG__FREE)
        return false;
    mag_runtime_t *owner;
    mag__task_view_t copy;
    mag__worker_t *w = NULL;
    peek_fields(t, &owner, &copy, details);
    if (details) {
        /* relaxed: a picture for people, each field on its own; the
         * generation check below drops a picture of another use. */
        copy.wait_kind = atomic_load_explicit(&t->wait_kind, memory_order_relaxed);
        copy.wait_obj = atomic_load_explicit(&t->wait_obj, memory_order_relaxed);
        w = atomic_load_explicit(&t->worker, memory_order_relaxed);
        for (unsigned i = 0; i < MAG__HOOK_WORDS; i++)
            copy.hook_words[i] = atomic_load_explicit(&t->hook_words[i], memory_order_relaxed);
    }
    /* acquire fence: the copies above come before the second look at the
     * generation; pairs with the release fence in task_free. */
    atomic_thread_fence(memory_order_acquire);
    uint64_t again = atomic_load_explicit(&t->life, memory_order_relaxed);
    if (owner != rt || mag__life_gen(again) != mag__life_gen(life))
        return false;
    if (details) {
        /* Only now: w is one of rt's workers (or NULL), alive as rt is. */
        copy.worker = w ? (int)w->index : -1;
        *v = copy;
    }
    v->life = life;
    v->state = state;
    return true;
}

/* ---- spawn ---------------------------------------------------------------- */

/* Task ids: workers take them in blocks, so spawning does not bounce one
 * global counter between cores. */
#define ID_BLOCK 1024

static inline __attribute__((always_inline)) uint64_t next_id(mag__worker_t *w)
{
    /* relaxed: unique numbers, nothing is published through them. */
    if (!w)
        return atomic_fetch_add_explicit(&next_task_id, 1, memory_order_relaxed);
    if (w->id_next == w->id_end) {
        w->id_next = atomic_fetch_add_explicit(&next_task_id, ID_BLOCK, memory_order_relaxed);
        w->id_end = w->id_next + ID_BLOCK;
    }
    return w->id_next++;
}

int mag__spawn(mag_runtime_t *rt, mag_task_t **out, mag_fn fn, void *arg,
               const mag_spawn_opts_t *opts)
{
    return mag__spawn_hooked(rt, out, fn, arg, opts, NULL);
}

/* A fresh record as a runnable task not yet started: its first two lines;
 * the rest a free record already holds (struct mag_task). The caller then
 * sets its id, stack size, name and membership. Inline, as the admission
 * and the spawn below: one function for a spawn's whole path. */
static inline void task_init(mag_task_t *t, mag_runtime_t *rt, mag_fn fn, void *arg, bool joinable)
{
    /* The first two lines only: the rest is as a free record has it (see
     * struct mag_task). */
    t->sp = NULL;
    t->stack = NULL;
    t->stack_size = 0;
    t->fn = fn;
    t->arg = arg;
    t->result = 0;
    t->rt = rt;
    atomic_store_explicit(&t->worker, NULL, memory_order_relaxed);
    t->next = NULL;
    /* The generation the record got when it was freed (or carved), not
     * cancelled. relaxed: published with the record by the queue; a stale
     * handle's compare-and-swap is ordered by the word itself. */
    uint64_t life = atomic_load_explicit(&t->life, memory_order_relaxed);
    atomic_store_explicit(&t->life,
                          mag__life_make(mag__life_gen(life), joinable ? MAG__HANDLE_JOINABLE
                                                                       : MAG__HANDLE_DETACHED),
                          memory_order_relaxed);
    atomic_store_explicit(&t->joiner, NULL, memory_order_relaxed);
    t->id = 0;
    t->ndeadlines = 0;
    t->deadline = UINT64_MAX;
    t->deadline_armed = false;
    t->started = false;
    atomic_store_explicit(&t->wait_kind, MAG__WAIT_NONE, memory_order_relaxed);
    t->hook = NULL;
    t->named = false;
    /* Hooks are installed before any task exists and removed after the
     * last (observe/debug.c): only a record of a runtime with hooks can
     * have its words written. */
    t->hooked_words = rt->hooks != NULL;
    MAG__HOOK(rt, task_init, t);
    /* The state stays FREE until mag__task_register: the walks (shutdown,
     * dumps) take the record for no task until every field is set. */
}

void mag__task_set_name(mag_task_t *t, const char *name)
{
    snprintf(t->name, sizeof t->name, "%s", name);
    t->named = true;
}

static inline __attribute__((always_inline)) int task_admit(mag_runtime_t *rt, mag__worker_t *w,
                                                            mag_fn fn, void *arg, bool joinable,
                                                            mag_task_t **out)
{
    mag__worker_t *cw = mag__census_worker(rt, true);
    if (cw) {
        /* From a task: it is alive, and vouches for this one (see the
         * census); closing is only looked at to refuse early. relaxed: no
         * ordering is needed for that. */
        if (atomic_load_explicit(&rt->closing, memory_order_relaxed))
            return -ESHUTDOWN;
        mag__census_add(&cw->tasks_in);
    } else {
        /* seq_cst both: against shutdown's seq_cst store of closing and its
         * seq_cst load of foreign_in, either shutdown counts this task (and
         * waits for it, cancelling it), or we see closing and refuse. */
        atomic_fetch_add_explicit(&rt->foreign_in, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&rt->closing, memory_order_seq_cst)) {
            mag__census_undo(rt, cw);
            return -ESHUTDOWN;
        }
    }
    mag_task_t *t = mag__task_alloc(w);
    if (!t) {
        mag__census_undo(rt, cw);
        return -ENOMEM;
    }
    task_init(t, rt, fn, arg, joinable);
    *out = t;
    return 0;
}

int mag__task_admit(mag_runtime_t *rt, mag__worker_t *w, mag_fn fn, void *arg, bool joinable,
                    mag_task_t **out)
{
    return task_admit(rt, w, fn, arg, joinable, out);
}

void mag__task_register(mag_runtime_t *rt, mag__worker_t *w, mag_task_t *t)
{
    /* From here on a walk finds t (see "reading a record" above). */
    mag__state_publish(&t->state);
}

/* w: the calling thread's worker when it is one of rt's, else NULL. */
static inline __attribute__((always_inline)) int spawn_task(mag_runtime_t *rt, mag__worker_t *w,
                                                            mag_task_t **out, mag_fn fn, void *arg,
                                                            const mag_spawn_opts_t *opts,
                                                            mag__task_hook_t *hook)
{
    size_t stack = rt->cfg.stack_size;
    if (opts && opts->stack_size) {
        if (opts->stack_size < MAG_STACK_MIN || opts->stack_size > MAG_STACK_MAX)
            return -EINVAL;
        stack = opts->stack_size;
    }
    mag_task_t *t;
    int rc = task_admit(rt, w, fn, arg, out != NULL || hook != NULL, &t);
    if (rc)
        return rc;
    t->stack_size = stack;
    t->id = next_id(w);
    t->hook = hook;
    if (hook) {
        /* The handle belongs to whoever installed the hook (a group): it is
         * born claimed, so that mag_join and mag_detach on it (through
         * mag_self, say) refuse it instead of releasing what the owner will
         * release (mag__task_owner_release). relaxed: published with the
         * record by the queue, as task_init's store. */
        uint64_t life = atomic_load_explicit(&t->life, memory_order_relaxed);
        atomic_store_explicit(&t->life, life | MAG__HANDLE_JOINING, memory_order_relaxed);
    }
    if (opts && opts->name)
        mag__task_set_name(t, opts->name);
    mag__task_register(rt, w, t);
    if (hook)
        hook->spawned(hook, t);
    if (out)
        *out = mag__task_handle(t);
    /* The queues publish the record (release/acquire) to whoever runs it. */
    if (w)
        mag__schedule_here(w, t, true);
    else
        mag__schedule(rt, t, true);
    return 0;
}

int mag__spawn_hooked(mag_runtime_t *rt, mag_task_t **out, mag_fn fn, void *arg,
                      const mag_spawn_opts_t *opts, mag__task_hook_t *hook)
{
    if (!fn || !rt)
        return -EINVAL;
    mag__worker_t *w = mag__tls_worker;
    return spawn_task(rt, w && w->rt == rt ? w : NULL, out, fn, arg, opts, hook);
}

int mag_spawn_ex(mag_task_t **out, mag_fn fn, void *arg, const mag_spawn_opts_t *opts)
{
    if (!out || !fn)
        return -EINVAL;
    mag__worker_t *w = mag__worker_here();
    if (!w)
        return -EPERM;
    return spawn_task(w->rt, w, out, fn, arg, opts, NULL);
}

mag_task_t *mag_spawn(mag_fn fn, void *arg)
{
    mag__worker_t *w = mag__worker_here();
    mag_task_t *t = NULL;
    if (!fn || !w)
        return NULL;
    return spawn_task(w->rt, w, &t, fn, arg, NULL, NULL) == 0 ? t : NULL;
}

mag_task_t *mag_runtime_spawn(mag_runtime_t *rt, mag_fn fn, void *arg)
{
    mag_task_t *t = NULL;
    return mag__spawn(rt, &t, fn, arg, NULL) == 0 ? t : NULL;
}

/* ---- the body's life ------------------------------------------------------ */

void mag__task_entry(void *arg)
{
    mag__fiber_started();
    mag_task_t *t = arg;
    t->result = t->fn(t->arg);
    mag__worker_t *w = mag__worker_here(); /* afresh: the body may have moved */
    w->switch_reason = MAG__SWITCH_EXIT;
    if (!mag__worker_switch_direct(w, t))
        mag__switch_out_of_task(w, t, true);
    __builtin_unreachable();
}

void mag__task_finish(mag_task_t *t)
{
    /* Counted out first, before anyone can see the task done: once every
     * task is joined the census reads admitted == finished (metrics). What
     * follows still touches the runtime (the hook, the registry), but it
     * runs on a worker or a pool thread, which shutdown joins before it
     * frees anything, however soon it then reads no task live. */
    mag__census_finish(t->rt);
    mag__state_set_done(&t->state);
    if (t->hook)
        t->hook->done(t->hook, t);
    /* A detached handle is final until the record is freed: nobody joins
     * it, so there is nobody to tell. relaxed: only this use's handle bits
     * are looked at; body_let_go below orders the record's end. */
    uint64_t life = atomic_load_explicit(&t->life, memory_order_relaxed);
    if (mag__life_handle(life) != MAG__HANDLE_DETACHED) {
        /* acq_rel: release publishes the result to the joiner, which reads
         * it after seeing MAG__JOIN_DONE or being signalled; acquire gets
         * the joiner's waiter record. */
        mag__waiter_t *jw =
            atomic_exchange_explicit(&t->joiner, MAG__JOIN_DONE, memory_order_acq_rel);
        if (jw && jw != MAG__JOIN_DONE)
            mag__waiter_signal(jw);
    }
    body_let_go(t);
}

/* ---- join, detach, cancel ------------------------------------------------- */

/* The record a handle names, or NULL (with a message) for a value that was
 * never a handle. NULL itself is refused quietly by the callers. */
static mag_task_t *handle_record(const mag_task_t *h, const char *what, uint64_t *gen)
{
    mag_task_t *t = mag__task_from_handle(h, gen);
    if (!t)
        mag__warn("%s: %p is not a task handle", what, (const void *)h);
    return t;
}

/* A stale handle, in debug mode. Not t->rt->cfg.debug: the task that held
 * the record may be gone, and its runtime with it. */
static void report_stale(const char *what, const mag_task_t *h, uint64_t life, uint64_t gen)
{
    if (!mag__debug_any)
        return;
    const char *why = mag__life_gen(life) != gen ? "is stale: its task was joined or detached and has ended"
                      : mag__life_handle(life) == MAG__HANDLE_DETACHED ? "was detached"
                                                                       : "was already joined";
    mag__warn("%s: handle %p %s: ignored", what, (const void *)h, why);
}

static int join_wait(mag_task_t *t, bool interruptible)
{
    if (atomic_load_explicit(&t->joiner, memory_order_acquire) == MAG__JOIN_DONE)
        return 0;
    mag__waiter_t w;
    mag__waiter_init(&w);
    int rc = 0;
    /* A blocking job (its id's top bit set, blocking.c) ends on a pool
     * thread, without the loop: it may be joined from anywhere. */
    bool on_loop = t->rt->nworkers == 1 && !(t->id >> 63);
    if (!w.task && on_loop && (rc = mag__loop_wait_check(t->rt, "mag_join")))
        return rc;
    if (w.task && interruptible && (rc = mag__suspend_begin(MAG__WAIT_JOIN, t)))
        return rc;
    if (w.task && !interruptible) {
        /* relaxed, both: for dumps, as in mag__suspend_begin. */
        atomic_store_explicit(&w.task->wait_obj, t, memory_order_relaxed);
        atomic_store_explicit(&w.task->wait_kind, MAG__WAIT_JOIN, memory_order_relaxed);
    }
    mag__waiter_t *expected = NULL;
    /* acq_rel: release publishes w to the finisher; acquire on failure sees
     * MAG__JOIN_DONE with the result. */
    if (atomic_compare_exchange_strong_explicit(&t->joiner, &expected, &w, memory_order_acq_rel,
                                                memory_order_acquire)) {
        rc = mag__waiter_wait(&w, interruptible && w.task);
        if (rc) {
            expected = &w;
            if (!atomic_compare_exchange_strong_explicit(&t->joiner, &expected, NULL,
                                                         memory_order_acq_rel,
                                                         memory_order_acquire)) {
                /* The finisher took w and is signalling it: wait for that,
                 * w lives on this stack. The task is done: join succeeds. */
                mag__waiter_wait(&w, false);
                rc = 0;
            }
        }
    } else if (expected != MAG__JOIN_DONE) {
        rc = -EINVAL; /* cannot happen: the claim makes one joiner at a time */
    }
    if (w.task && interruptible)
        mag__suspend_end();
    else if (w.task)
        atomic_store_explicit(&w.task->wait_kind, MAG__WAIT_NONE, memory_order_relaxed);
    return rc;
}

static int join_common(mag_task_t *h, int *status, bool interruptible)
{
    if (!h)
        return -EINVAL;
    uint64_t gen;
    mag_task_t *t = handle_record(h, "mag_join", &gen);
    if (!t)
        return -EINVAL;
    /* Claim the handle: JOINABLE -> JOINING in the generation the handle
     * names. From then on nobody else joins or detaches it, and the handle's
     * reference keeps the record ours. relaxed: the claim publishes nothing;
     * the result comes through joiner (acquire, join_wait). */
    uint64_t life = atomic_load_explicit(&t->life, memory_order_relaxed);
    for (;;) {
        if (mag__life_gen(life) == gen && t == mag__task_current())
            return -EDEADLK; /* whoever holds its handle */
        if (mag__life_gen(life) != gen || mag__life_handle(life) != MAG__HANDLE_JOINABLE) {
            if (mag__life_gen(life) == gen && mag__life_handle(life) == MAG__HANDLE_JOINING)
                return -EINVAL; /* another caller is joining it right now */
            report_stale("mag_join", h, life, gen);
            return -ESRCH;
        }
        if (atomic_compare_exchange_weak_explicit(&t->life, &life, life | MAG__HANDLE_JOINING,
                                                  memory_order_relaxed, memory_order_relaxed))
            break;
    }
    int rc = join_wait(t, interruptible);
    if (rc) {
        /* Interrupted: the handle is JOINABLE again, to join or detach
         * later. release: joiner's reset (join_wait) comes before it, for
         * the next claimer. A cancel may set its bit meanwhile: an and. */
        atomic_fetch_and_explicit(&t->life, ~MAG__LIFE_HANDLE_MASK, memory_order_release);
        return rc;
    }
    if (status)
        *status = t->result;
    joined_let_go(t);
    return 0;
}

int mag_join(mag_task_t *t, int *status)
{
    return join_common(t, status, true);
}

int mag__join_uninterruptible(mag_task_t *t, int *status)
{
    return join_common(t, status, false);
}

void mag__task_owner_release(mag_task_t *t)
{
    /* As a join ends: only the owner's call can change the handle now, the
     * task being done. */
    joined_let_go(t);
}

void mag_detach(mag_task_t *h)
{
    if (!h)
        return;
    uint64_t gen;
    mag_task_t *t = handle_record(h, "mag_detach", &gen);
    if (!t)
        return;
    /* JOINABLE -> DETACHED in the handle's generation, or nothing: one
     * compare-and-swap that also lets go of the record, freeing it if the
     * body let go already. acq_rel on success: as every letting go
     * (body_let_go). */
    uint64_t life = atomic_load_explicit(&t->life, memory_order_relaxed);
    for (;;) {
        if (mag__life_gen(life) != gen || mag__life_handle(life) != MAG__HANDLE_JOINABLE) {
            report_stale("mag_detach", h, life, gen);
            return;
        }
        if (atomic_compare_exchange_weak_explicit(&t->life, &life, life | MAG__HANDLE_DETACHED,
                                                  memory_order_acq_rel, memory_order_relaxed))
            break;
    }
    mag__task_handle_dropped(t, life);
}

/* Sets the cancel bit only in generation gen, in one compare-and-swap: a
 * record reused meanwhile has another generation, so the new task is never
 * cancelled by an old handle (or a walk that looked at the old task). A
 * detached task is cancelled while it lives (its record's generation is
 * the handle's); a joined one is not. True if this call set the bit (and
 * woke the task); else *seen is the word that stopped it. */
static bool cancel_in_generation(mag_task_t *t, uint64_t gen, uint64_t *seen)
{
    /* release: pairs with the acquire loads in the suspension checks; the
     * wake's read-modify-write orders it before the task's next check. */
    uint64_t life = atomic_load_explicit(&t->life, memory_order_relaxed);
    for (;;) {
        if (mag__life_gen(life) != gen || mag__life_handle(life) == MAG__HANDLE_RELEASED ||
            (life & MAG__LIFE_CANCELLED)) { /* sticky: already cancelled and woken */
            *seen = life;
            return false;
        }
        if (atomic_compare_exchange_weak_explicit(&t->life, &life, life | MAG__LIFE_CANCELLED,
                                                  memory_order_release, memory_order_relaxed))
            break;
    }
    /* The task may have ended and its record moved on since: a spurious
     * wake, which the protocol allows (internal.h). */
    mag__wake(t);
    return true;
}

void mag_cancel(mag_task_t *h)
{
    if (!h)
        return;
    uint64_t gen;
    mag_task_t *t = handle_record(h, "mag_cancel", &gen);
    if (!t)
        return;
    uint64_t life;
    if (!cancel_in_generation(t, gen, &life) && !(life & MAG__LIFE_CANCELLED))
        report_stale("mag_cancel", h, life, gen);
}

bool mag__task_cancel_gen(mag_task_t *t, uint64_t gen)
{
    uint64_t life;
    return cancel_in_generation(t, gen, &life);
}

void mag__task_cancel(mag_task_t *t)
{
    /* release: as in mag_cancel. */
    atomic_fetch_or_explicit(&t->life, MAG__LIFE_CANCELLED, memory_order_release);
    mag__wake(t);
}

bool mag__task_cancelled(mag_task_t *t)
{
    return mag__task_cancel_seen(t);
}

bool mag_cancelled(void)
{
    mag_task_t *t = mag__task_current();
    return t && mag__task_cancelled(t);
}

mag_task_t *mag_self(void)
{
    mag_task_t *t = mag__task_current();
    return t ? mag__task_handle(t) : NULL;
}

/* Is the record still the task the handle names? acquire: the reads of the
 * record that follow come after this look. */
static bool handle_current(const mag_task_t *t, uint64_t gen)
{
    return mag__life_gen(atomic_load_explicit(&t->life, memory_order_acquire)) == gen;
}

/* The id field of a record that may be being reused, read once as the walks
 * read (peek_fields): outside ThreadSanitizer's view, which cannot see the
 * fence that makes the generation check below drop a torn read. */
__attribute__((no_sanitize("thread"))) static uint64_t peek_id(const mag_task_t *t)
{
    return PEEK(t->id);
}

uint64_t mag_task_id(const mag_task_t *h)
{
    uint64_t gen;
    mag_task_t *t = h ? mag__task_from_handle(h, &gen) : NULL;
    if (!t || !handle_current(t, gen))
        return 0;
    uint64_t id = peek_id(t);
    /* acquire fence: the read of id comes before the second look at the
     * generation, so an id read from a record that moved on is dropped. */
    atomic_thread_fence(memory_order_acquire);
    return handle_current(t, gen) ? id : 0;
}

const char *mag_task_name(const mag_task_t *h)
{
    uint64_t gen;
    mag_task_t *t = h ? mag__task_from_handle(h, &gen) : NULL;
    return t && handle_current(t, gen) ? t->name : "";
}

int mag_wait_for(mag_fn fn, void *arg, uint64_t timeout_ns, int *status)
{
    if (!fn)
        return -EINVAL;
    mag_runtime_t *rt = mag_runtime_current();
    if (!rt || !mag__task_current())
        return -EPERM;
    uint64_t now = mag__now();
    uint64_t token =
        mag_deadline_push(timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns);
    if (!token)
        return -ENOSPC; /* MAG_DEADLINE_DEPTH deadlines are nested already */
    mag_task_t *child;
    int rc = mag__spawn(rt, &child, fn, arg, NULL);
    if (rc) {
        mag_deadline_pop(token);
        return rc;
    }
    rc = mag_join(child, status);
    mag_deadline_pop(token);
    if (rc == -ETIMEDOUT || rc == -ECANCELED) {
        /* As asyncio.wait_for: cancel the inner task and wait until it has
         * really finished, so nothing it owns outlives the call. */
        mag_cancel(child);
        mag__join_uninterruptible(child, NULL);
    }
    return rc;
}
