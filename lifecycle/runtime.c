/*
 * lifecycle/runtime.c - creating and running a runtime, and shutting it
 * down (the configuration is config.c's).
 */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lifecycle/config.h"
#include "magpie/metrics.h"
#include "runtime/fiber.h"
#include "observe/observe.h"
#include "procpool/procpool.h"
#include "runtime/blocking.h"
#include "runtime/hooks.h"
#include "runtime/monitor.h"
#include "runtime/ready.h"
#include "runtime/sched.h"

/* Before any thread exists: the process pool forks its zygote here. 0 or a
 * negative errno; on failure nothing is left behind. */
static int pools_start(mag_runtime_t *rt)
{
    int rc = mag__blocking_create(rt, &rt->blocking);
    if (rc == 0 && rt->cfg.proc_workers) {
        rc = mag__procpool_start(rt, rt->cfg.proc_workers, &rt->procpool);
        if (rc)
            mag__warn("the process pool could not start its %u workers: %s",
                      rt->cfg.proc_workers, strerror(-rc));
    }
    if (rc) {
        mag__blocking_destroy(rt->blocking);
        rt->blocking = NULL;
    }
    return rc;
}

/* Once no task is live (and on a failed create). Processes first: nothing
 * live uses them now, and their stop needs no pool thread. Then the threads,
 * which may still be on their way out of their last job. Idempotent. */
static void pools_stop(mag_runtime_t *rt)
{
    mag__procpool_stop(rt->procpool);
    rt->procpool = NULL;
    mag__blocking_destroy(rt->blocking);
    rt->blocking = NULL;
}

static void record_thread_stack(mag__worker_t *w)
{
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
            w->asan_stack_bottom = addr;
            w->asan_stack_size = size;
        }
        pthread_attr_destroy(&attr);
    }
}

/* Start-up handshake: each worker thread reports its ring setup. */
struct start_report {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned reported;
    int first_error;
};

struct thread_start {
    mag__worker_t *w;
    struct start_report *report;
};

void *mag__worker_thread(void *arg)
{
    struct thread_start *ts = arg;
    mag__worker_t *w = ts->w;
    struct start_report *rep = ts->report;
    free(ts);
    /* Named for top -H, perf and debuggers (15 characters at most). */
    char name[16];
    snprintf(name, sizeof name, "magpie-w%u", w->index);
    (void)pthread_setname_np(pthread_self(), name);
    mag__fiber_thread_init();
    record_thread_stack(w);
    int rc = mag__worker_setup(w);
    pthread_mutex_lock(&rep->lock);
    rep->reported++;
    if (rc && !rep->first_error)
        rep->first_error = rc;
    pthread_cond_broadcast(&rep->cond);
    pthread_mutex_unlock(&rep->lock);
    if (rc == 0) {
        /* Wait for the go-ahead: every ring must exist before any worker
         * may wake another through it. */
        while (!atomic_load_explicit(&w->rt->started, memory_order_acquire) &&
               !atomic_load_explicit(&w->rt->stopping, memory_order_acquire))
            mag__futex_wait(&w->rt->started, 0);
        if (!atomic_load_explicit(&w->rt->stopping, memory_order_acquire))
            mag__worker_loop(w, NULL);
    }
    /* The ring and eventfd are closed by whoever frees the runtime, after
     * joining this thread: other threads may still write our eventfd now. */
    mag__fiber_thread_exit();
    return NULL;
}

static void free_runtime(mag_runtime_t *rt)
{
    if (rt->workers) {
        for (unsigned i = 0; i < rt->nworkers; i++) {
            mag__worker_t *w = rt->workers[i];
            if (!w)
                continue;
            mag__worker_teardown(w);
            mag__task_cache_drain(w);
            free(w);
        }
        free(rt->workers);
    }
    free(rt->sleepers);
    mag__fd_rings_free(rt);
    mag__ready_free(rt);
    pthread_mutex_destroy(&rt->inject_lock);
    pthread_mutex_destroy(&rt->idle_lock);
    mag__config_free(&rt->cfg);
    free(rt);
}

int mag_runtime_create(const mag_config_t *cfg_in, mag_runtime_t **out)
{
    if (!out) {
        mag__warn("mag_runtime_create: out is NULL");
        return -EINVAL; /* *out is written only on success */
    }
    mag_config_t defaults, cfg;
    if (!cfg_in) {
        mag_config_init(&defaults);
        cfg_in = &defaults;
    }
    int rc = mag__config_resolve(cfg_in, &cfg);
    if (rc)
        return rc;
    /* Aligned to a cache line: see struct mag_runtime. */
    mag_runtime_t *rt = aligned_alloc(MAG_CACHELINE, sizeof *rt);
    if (!rt) {
        mag__config_free(&cfg);
        return -ENOMEM;
    }
    memset(rt, 0, sizeof *rt);
    rt->cfg = cfg; /* with the path strings it owns, freed in free_runtime */
    rt->start_ns = mag__now();
    rt->nworkers = cfg.workers;
    pthread_mutex_init(&rt->inject_lock, NULL);
    pthread_mutex_init(&rt->idle_lock, NULL);
    if (mag__fd_rings_init(rt)) {
        free_runtime(rt);
        return -ENOMEM;
    }
    if ((rc = mag__ready_init(rt))) {
        free_runtime(rt);
        return rc;
    }
    rt->workers = calloc(rt->nworkers, sizeof *rt->workers);
    rt->sleepers = calloc(rt->nworkers, sizeof *rt->sleepers);
    if (!rt->workers || !rt->sleepers) {
        free_runtime(rt);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        size_t wsize = (sizeof(mag__worker_t) + MAG_CACHELINE - 1) & ~(size_t)(MAG_CACHELINE - 1);
        mag__worker_t *w = aligned_alloc(MAG_CACHELINE, wsize);
        if (!w) {
            free_runtime(rt);
            return -ENOMEM;
        }
        memset(w, 0, sizeof *w);
        w->rt = rt;
        w->index = i;
        w->rng = 0x9e3779b9u * (i + 1);
        w->wake_fd = -1;
        rt->workers[i] = w;
    }
    atomic_store_explicit(&rt->idle, rt->nworkers, memory_order_relaxed); /* all unparked */
    mag__fiber_install_overflow_handler();
    /* Process-wide, as the handler: the first runtime's budget holds. */
    mag__fiber_set_guard_budget(cfg.stack_guards);
    /* Before any thread: the process pool forks its zygote here. */
    if ((rc = pools_start(rt))) {
        free_runtime(rt);
        return rc;
    }
    if (cfg.debug)
        mag__debug_any = true;
    mag__observe_start(rt);
    if (mag__test_hooks && !rt->hooks) /* before any worker thread exists */
        mag__hooks_install(rt, mag__test_hooks, NULL);

    if (rt->nworkers > 1) {
        struct start_report rep = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
        unsigned started = 0;
        for (unsigned i = 0; i < rt->nworkers; i++) {
            struct thread_start *ts = malloc(sizeof *ts);
            if (!ts) {
                rc = -ENOMEM;
                break;
            }
            ts->w = rt->workers[i];
            ts->report = &rep;
            rt->workers[i]->is_thread = true;
            int e = pthread_create(&rt->workers[i]->thread, NULL, mag__worker_thread, ts);
            if (e) {
                free(ts);
                rt->workers[i]->is_thread = false;
                rc = -e;
                break;
            }
            started++;
        }
        pthread_mutex_lock(&rep.lock);
        while (rep.reported < started)
            pthread_cond_wait(&rep.cond, &rep.lock);
        if (!rc)
            rc = rep.first_error;
        pthread_mutex_unlock(&rep.lock);
        /* Once every ring exists (each worker reported under the lock):
         * the monitor looks at them. */
        if (!rc)
            rc = mag__monitor_start(rt);
        /* release: pairs with the workers' acquire loads of started/stopping. */
        if (rc)
            atomic_store_explicit(&rt->stopping, 1, memory_order_release);
        else
            atomic_store_explicit(&rt->started, 1, memory_order_release);
        mag__futex_wake(&rt->started, INT32_MAX);
        if (rc) {
            for (unsigned i = 0; i < started; i++)
                pthread_join(rt->workers[i]->thread, NULL);
            mag__observe_stop(rt);
            pools_stop(rt);
            free_runtime(rt);
            return rc;
        }
    }
    *out = rt;
    return 0;
}

/* Loop mode: the ring is made by, and belongs to, the first block_on thread. */
static int claim_loop(mag_runtime_t *rt)
{
    mag__worker_t *w = rt->workers[0];
    /* One claimer at a time: two threads whose first block_on calls meet
     * must not both set the loop up. acquire, both: pairs with the release
     * stores below (loop_owner is set once OWNED is seen). */
    for (;;) {
        uint32_t st = MAG__LOOP_FREE;
        if (atomic_compare_exchange_strong_explicit(&rt->loop_owned, &st, MAG__LOOP_CLAIMING,
                                                    memory_order_acquire, memory_order_acquire))
            break;
        if (st == MAG__LOOP_OWNED)
            return pthread_equal(rt->loop_owner, pthread_self()) ? 0 : -EPERM;
        sched_yield(); /* another thread is setting the loop up */
    }
    mag__fiber_thread_init();
    record_thread_stack(w);
    int rc = mag__worker_setup(w);
    if (rc) {
        /* release: nothing published; the next claimer starts afresh. */
        atomic_store_explicit(&rt->loop_owned, MAG__LOOP_FREE, memory_order_release);
        return rc;
    }
    rt->loop_owner = pthread_self();
    /* release: publishes loop_owner to the acquire loads of loop_owned. */
    atomic_store_explicit(&rt->loop_owned, MAG__LOOP_OWNED, memory_order_release);
    return 0;
}

int mag_runtime_block_on(mag_runtime_t *rt, mag_fn fn, void *arg, int *status)
{
    if (!rt || !fn)
        return -EINVAL;
    if (mag__worker_current())
        return -EBUSY;
    mag_task_t *t;
    int rc;
    if (rt->nworkers == 1) {
        if ((rc = claim_loop(rt)))
            return rc;
        if ((rc = mag__spawn(rt, &t, fn, arg, NULL)))
            return rc;
        mag__worker_loop(rt->workers[0], t);
    } else if ((rc = mag__spawn(rt, &t, fn, arg, NULL))) {
        return rc;
    }
    return mag_join(t, status);
}

/* There is no list of live tasks (spawn and finish take no lock): shutdown
 * walks every task record (runtime/task_pool.c) and looks at each through
 * mag__task_peek, which tells a task of this runtime from a free record or
 * another runtime's, while they change under it. */

static void cancel_visit(mag_task_t *t, void *arg)
{
    mag__task_view_t v;
    if (!mag__task_peek(t, arg, &v, false))
        return;
    /* In the generation the look saw: a record freed and spawned anew since
     * is left alone. Already cancelled: nothing to do. */
    if ((v.state & MAG__STATUS_MASK) != MAG__DONE && !(v.life & MAG__LIFE_CANCELLED))
        mag__task_cancel_gen(t, mag__life_gen(v.life));
}

/* Cancels every live task. One spawned while the walk runs may be missed:
 * drain_tasks walks again while any is live. */
static void cancel_all(mag_runtime_t *rt)
{
    mag__task_pool_each(cancel_visit, rt);
}

typedef struct leftovers {
    mag_runtime_t *rt;
    unsigned busy; /* done tasks whose handle someone is releasing right now */
} leftovers_t;

static void release_visit(mag_task_t *t, void *arg)
{
    leftovers_t *l = arg;
    mag__task_view_t v;
    if (!mag__task_peek(t, l->rt, &v, true) || (v.state & MAG__STATUS_MASK) != MAG__DONE)
        return;
    /* A join or detach may be finishing on another thread: only the one
     * that moves the handle off JOINABLE releases it. The record is freed
     * here, or by its body's end if that is still letting go (sched.h's
     * life word); v is our copy. */
    if (!mag__task_handle_drop_gen(t, mag__life_gen(v.life), v.hooked)) {
        l->busy++;
        return;
    }
    if (l->rt->cfg.debug && !v.hooked) /* a hook's owner holds its handle */
        mag__warn("task '%s' (id %llu) was never joined nor detached",
                  v.name[0] ? v.name : "(unnamed)", (unsigned long long)v.id);
}

/* Handles nobody joined or detached: report them in debug mode, free them.
 * Every task is done and every worker stopped; returns once no record holds
 * a task of rt, so that none outlives it. */
static void release_leftovers(mag_runtime_t *rt)
{
    leftovers_t l = {.rt = rt};
    for (;;) {
        l.busy = 0;
        mag__task_pool_each(release_visit, &l);
        if (!l.busy)
            break;
        sched_yield(); /* let its owner finish */
    }
}

#define STUCK_FIRST_NS (1 * MAG_SEC)  /* the first report, after the cancel */
#define STUCK_EVERY_NS (5 * MAG_SEC)  /* and the next ones */
#define RESWEEP_NS (50 * MAG_MS)
#define CENSUS_POLL_NS MAG_MS

/* Names on stderr the tasks still live this long after shutdown cancelled
 * them, always (not only in debug mode): a task that ignores its
 * cancellation would otherwise hold the shutdown up without a word. */
static void report_stuck(mag_runtime_t *rt, uint64_t now)
{
    mag__warn("shutdown: %llu task(s) still running %.1f s after they were cancelled:",
              (unsigned long long)mag__tasks_live(rt),
              (double)(now - rt->shutdown_ns) / (double)MAG_SEC);
    (void)mag_dump_tasks(rt, stderr);
}

/* Cancels every task and waits until none is live or until the mag__now()
 * time until: 0 or -ETIMEDOUT. May be called again after -ETIMEDOUT. */
static int drain_tasks(mag_runtime_t *rt, uint64_t until)
{
    /* seq_cst: pairs with a plain thread's admission, its increment of
     * foreign_in and load of closing (mag__task_admit). */
    atomic_store_explicit(&rt->closing, 1, memory_order_seq_cst);
    if (!rt->shutdown_ns) {
        rt->shutdown_ns = mag__now();
        rt->shutdown_report_ns = rt->shutdown_ns + STUCK_FIRST_NS;
    }
    /* Before waiting for anything: a process-pool job of a plain thread
     * (a blocking-pool job) could hold every wait below up forever. */
    mag__procpool_close(rt->procpool);
    while (mag__tasks_live(rt)) {
        cancel_all(rt);
        uint64_t now = mag__now();
        if (now >= rt->shutdown_report_ns) {
            report_stuck(rt, now);
            rt->shutdown_report_ns = now + STUCK_EVERY_NS;
        }
        if (now >= until)
            return -ETIMEDOUT;
        uint64_t wake = until < rt->shutdown_report_ns ? until : rt->shutdown_report_ns;
        if (rt->nworkers == 1) {
            /* Only the loop's thread may run it. The caller's check saw no
             * task then; one admitted by a plain thread since (before
             * closing) needs the loop run here. */
            int claimed = claim_loop(rt);
            if (claimed)
                return claimed;
            rt->draining = true;
            rt->drain_until_ns = wake;
            mag__worker_loop(rt->workers[0], NULL);
            rt->draining = false;
            rt->drain_until_ns = 0;
            continue;
        }
        /* Nobody wakes us when the last task finishes (finishing must stay
         * cheap: see the census in runtime/task.c), so look every
         * millisecond; re-sweep now and then for tasks spawned meanwhile. */
        uint64_t resweep = wake - now < RESWEEP_NS ? wake : now + RESWEEP_NS;
        while (mag__tasks_live(rt) && (now = mag__now()) < resweep) {
            uint64_t nap = resweep - now < CENSUS_POLL_NS ? resweep - now : CENSUS_POLL_NS;
            struct timespec ts = {(time_t)(nap / MAG_SEC), (long)(nap % MAG_SEC)};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

static int shutdown_until(mag_runtime_t *rt, uint64_t until)
{
    if (!rt)
        return -EINVAL;
    /* From one of its own workers or blocking-pool threads it would wait
     * for itself. */
    if (mag__context_runtime() == rt)
        return -EBUSY;
    if (rt->nworkers == 1 && mag__tasks_live(rt) &&
        claim_loop(rt))
        return -EPERM;
    int rc = drain_tasks(rt, until);
    if (rc)
        return rc; /* still allocated, still closing: the caller comes back */
    /* No task is live: stop the blocking threads, reap every process. */
    mag__observe_quiesce(rt);
    pools_stop(rt);
    mag__monitor_stop(rt);
    /* seq_cst: pairs with the sleeping flag in park() (see mag__worker_wake). */
    atomic_store_explicit(&rt->stopping, 1, memory_order_seq_cst);
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (rt->workers[i]->is_thread)
            mag__worker_wake(rt->workers[i]);
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (rt->workers[i]->is_thread)
            pthread_join(rt->workers[i]->thread, NULL);
    mag__observe_stop(rt);
    release_leftovers(rt);
    free_runtime(rt);
    return 0;
}

int mag_runtime_shutdown(mag_runtime_t *rt)
{
    return shutdown_until(rt, UINT64_MAX);
}

int mag_runtime_shutdown_timeout(mag_runtime_t *rt, uint64_t ns)
{
    uint64_t now = mag__now();
    return shutdown_until(rt, ns > UINT64_MAX - now ? UINT64_MAX : now + ns);
}

int mag_run(const mag_config_t *cfg, mag_fn main_fn, void *arg, int *status)
{
    if (!main_fn)
        return -EINVAL;
    if (mag__worker_current())
        return -EBUSY;
    mag_runtime_t *rt;
    int rc = mag_runtime_create(cfg, &rt);
    if (rc)
        return rc;
    rc = mag_runtime_block_on(rt, main_fn, arg, status);
    int rc2 = mag_runtime_shutdown(rt);
    return rc ? rc : rc2;
}
