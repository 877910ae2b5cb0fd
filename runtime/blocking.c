/*
 * runtime/blocking.c - the blocking pool (mag_spawn_blocking,
 * mag_run_blocking).
 *
 * A blocking job is an ordinary task record that the scheduler never runs:
 * it is registered and counted live like any task (so shutdown waits for it,
 * and mag_join / mag_detach work on its handle unchanged), but it is queued
 * here instead of on a run queue, and a pool thread calls fn(arg) on its own
 * stack and then mag__task_finish, which signals the joiner. The record's
 * state goes RUNNING -> DONE (published RUNNING, as every fresh task, then
 * RUNNING again at the job's start) and is never PARKED, so a stray
 * mag__wake (mag_cancel, shutdown's cancel sweep) only sets NOTIFY on it and
 * never queues it on a worker.
 *
 * Threads: started on demand while no thread is idle, up to
 * max_blocking_threads; beyond that jobs wait in a FIFO queue. An idle
 * thread waits on a condition variable for blocking_keepalive_ms and exits
 * when nothing came. The notify protocol counts idle threads and pending
 * notifications (as Tokio's pool does), so one job wakes one thread and a
 * thread never exits while a notification is meant for it.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/blocking.h"
#include "runtime/sched.h"

struct mag__blocking {
    mag_runtime_t *rt;
    pthread_mutex_t lock;
    pthread_cond_t work;     /* idle threads wait here (CLOCK_MONOTONIC) */
    pthread_cond_t exited;   /* stop waits here for the last thread */
    mag_task_t *head, *tail; /* queued jobs, linked through ->next */
    size_t queued;
    unsigned threads;        /* alive */
    unsigned idle;           /* waiting on `work` and not yet notified */
    unsigned notified;       /* notifications not yet taken by a thread */
    unsigned finishing;      /* done with fn, about to look at the queue */
    unsigned peak;
    unsigned max;
    uint64_t keepalive_ns;
    uint64_t jobs;
    bool stopping;
};

/* The runtime whose pool the calling thread belongs to (pool threads only:
 * no fiber ever runs on them, so reading it directly is safe). */
static _Thread_local mag_runtime_t *tls_blocking_rt;

/* Blocking jobs take ids from their own sequence, with the top bit set, so
 * that they never collide with task ids (task.c owns that counter). */
static _Atomic uint64_t next_blocking_id = 1;

__attribute__((noinline)) mag_runtime_t *mag__context_runtime(void)
{
    mag_runtime_t *rt = mag_runtime_current();
    return rt ? rt : tls_blocking_rt;
}

/* ---- pool threads ---------------------------------------------------------- */

/* Completes a job's record once fn has returned. */
static void complete_job(mag_runtime_t *rt, mag_task_t *t)
{
    /* Publishes the result (release inside), signals the joiner, releases the
     * body's reference and counts the job out of the census: t may be gone
     * after this. */
    mag__task_finish(t);
    /* Loop mode: a shutdown draining the loop sleeps in worker 0's ring and
     * only a task's wake-up would rouse it; a detached job that was the last
     * live one must wake it so that it sees none left. rt stays valid: stop
     * waits for this thread. seq_cst: the load, and the exchange of the
     * sleeping flag in mag__worker_wake, follow our seq_cst increment of
     * foreign_out (a pool thread counts as a plain thread in the census) in
     * the single total order, against the worker's seq_cst store of that
     * flag before its seq_cst load of foreign_out (mag__tasks_live). */
    if (rt->nworkers == 1 && atomic_load_explicit(&rt->closing, memory_order_seq_cst))
        mag__worker_wake(rt->workers[0]);
}

/* Waits on b->work (lock held) until notified, stopping, or the keep-alive
 * runs out (returns false: the thread should exit). */
static bool wait_for_work(struct mag__blocking *b)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    uint64_t ns = (uint64_t)dl.tv_nsec + b->keepalive_ns;
    dl.tv_sec += (time_t)(ns / 1000000000ull);
    dl.tv_nsec = (long)(ns % 1000000000ull);
    b->idle++;
    for (;;) {
        int rc = pthread_cond_timedwait(&b->work, &b->lock, &dl);
        if (b->notified) { /* the notifier took us off b->idle */
            b->notified--;
            return true;
        }
        if (b->stopping) {
            b->idle--;
            return true;
        }
        if (rc == ETIMEDOUT) {
            b->idle--;
            return false;
        }
    }
}

static void *blocking_thread(void *arg)
{
    struct mag__blocking *b = arg;
    tls_blocking_rt = b->rt;
    (void)pthread_setname_np(pthread_self(), "magpie-blocking");
    pthread_mutex_lock(&b->lock);
    for (;;) {
        mag_task_t *t = b->head;
        if (t) {
            b->head = t->next;
            if (!b->head)
                b->tail = NULL;
            b->queued--;
            pthread_mutex_unlock(&b->lock);
            mag__state_begin_job(&t->state);
            MAG__HOOK(b->rt, job_begin, t);
            t->result = t->fn(t->arg);
            /* Counted as finishing before the joiner can see the result: a
             * joiner that spawns again at once finds us about to take its
             * job and starts no thread of its own. */
            pthread_mutex_lock(&b->lock);
            b->finishing++;
            b->jobs++;
            pthread_mutex_unlock(&b->lock);
            complete_job(b->rt, t);
            pthread_mutex_lock(&b->lock);
            b->finishing--;
            continue;
        }
        if (b->stopping || !wait_for_work(b))
            break;
    }
    /* The last touch of b: stop frees it once threads reaches 0. */
    if (--b->threads == 0)
        pthread_cond_broadcast(&b->exited);
    pthread_mutex_unlock(&b->lock);
    tls_blocking_rt = NULL;
    return NULL;
}

/* Starts one more pool thread (lock held). Every asynchronous signal is
 * blocked in it, so that process-directed signals (SIGINT, SIGTERM, SIGCHLD)
 * go to the application's threads, never to a thread busy in a library
 * call. Faults (SIGSEGV, ...) stay deliverable. */
static int start_thread(struct mag__blocking *b)
{
    sigset_t all, old;
    sigfillset(&all);
    static const int sync_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT};
    for (size_t i = 0; i < sizeof sync_signals / sizeof sync_signals[0]; i++)
        sigdelset(&all, sync_signals[i]);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t tid;
    int e = pthread_create(&tid, &attr, blocking_thread, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (e)
        return -e;
    if (++b->threads > b->peak)
        b->peak = b->threads;
    return 0;
}

/* ---- spawn ------------------------------------------------------------------- */

/* A blocking job is a task record the scheduler never runs: it starts out
 * "started" and waiting in the blocking pool, with an id of its own. */
static void init_record(mag_task_t *t)
{
    /* relaxed: a unique number, nothing is published through it. */
    t->id = (1ull << 63) | atomic_fetch_add_explicit(&next_blocking_id, 1, memory_order_relaxed);
    t->started = true;
    /* relaxed, both: for dumps, as in mag__suspend_begin (wait_obj is read
     * only while wait_kind names a wait). */
    atomic_store_explicit(&t->wait_obj, NULL, memory_order_relaxed);
    atomic_store_explicit(&t->wait_kind, MAG__WAIT_BLOCKING, memory_order_relaxed);
    mag__task_set_name(t, "spawn_blocking");
}

int mag__spawn_blocking(mag_runtime_t *rt, mag_task_t **out, mag_fn fn, void *arg)
{
    if (!rt || !fn)
        return -EINVAL;
    struct mag__blocking *b = rt->blocking;
    if (!b) /* the pools stopped: shutdown is past waiting for jobs */
        return -ESHUTDOWN;
    mag__worker_t *w = mag__worker_current();
    if (w && w->rt != rt)
        w = NULL;
    /* As a spawn does: either shutdown sees this job live (and waits for it:
     * the pools stay up), or we see closing and refuse. */
    mag_task_t *t;
    int rc = mag__task_admit(rt, w, fn, arg, out != NULL, &t);
    if (rc)
        return rc;
    init_record(t);
    mag__task_register(rt, w, t);

    pthread_mutex_lock(&b->lock);
    /* The queue and the mutex publish the record to the thread that runs it. */
    if (b->tail)
        b->tail->next = t;
    else
        b->head = t;
    b->tail = t;
    b->queued++;
    /* Each notified or finishing thread takes one queued job before it runs
     * anything: while they cover the queue, nobody else is needed. A busy
     * thread is never counted on: its job may wait for this one. Otherwise
     * wake an idle thread, or start one. */
    if (b->queued <= b->notified + b->finishing) {
        /* covered */
    } else if (b->idle) {
        b->idle--;
        b->notified++;
        pthread_cond_signal(&b->work);
    } else if (b->threads < b->max) {
        rc = start_thread(b);
        if (rc && b->threads > 0)
            rc = 0; /* a running thread will get to it */
        if (rc) {   /* no thread at all: t is the only job queued */
            b->head = b->tail = NULL;
            b->queued = 0;
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (rc) {
        /* Undo: complete the record as if it had run, nobody holds it. */
        if (out)
            mag__task_handle_drop(t);
        t->result = rc;
        mag__task_finish(t);
        return rc;
    }
    if (out)
        *out = mag__task_handle(t);
    return 0;
}

mag_task_t *mag_runtime_spawn_blocking(mag_runtime_t *rt, mag_fn fn, void *arg)
{
    mag_task_t *t = NULL;
    return mag__spawn_blocking(rt, &t, fn, arg) == 0 ? t : NULL;
}

mag_task_t *mag_spawn_blocking(mag_fn fn, void *arg)
{
    return mag_runtime_spawn_blocking(mag__context_runtime(), fn, arg);
}

int mag_run_blocking(mag_fn fn, void *arg, int *status)
{
    if (!fn)
        return -EINVAL;
    mag_task_t *self = mag__task_current();
    if (!self) { /* a plain thread may block: run it here */
        int r = fn(arg);
        if (status)
            *status = r;
        return 0;
    }
    /* A cancelled (or late) task does not start the job. */
    int rc = mag__suspend_begin(MAG__WAIT_BLOCKING, NULL);
    if (rc)
        return rc;
    mag__suspend_end();
    mag_task_t *t;
    if ((rc = mag__spawn_blocking(self->rt, &t, fn, arg)))
        return rc;
    /* fn may use the caller's stack: wait for it whatever happens. */
    return mag__join_uninterruptible(t, status);
}

/* ---- create, destroy, statistics ------------------------------------------- */

int mag__blocking_create(mag_runtime_t *rt, struct mag__blocking **out)
{
    struct mag__blocking *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->rt = rt;
    b->max = rt->cfg.max_blocking_threads; /* never 0: mag_runtime_create filled it in */
    b->keepalive_ns = (uint64_t)rt->cfg.blocking_keepalive_ms * MAG_MS;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&b->exited, NULL);
    pthread_mutex_init(&b->lock, NULL);
    *out = b;
    return 0;
}

void mag__blocking_destroy(struct mag__blocking *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stopping = true;
    pthread_cond_broadcast(&b->work);
    while (b->threads)
        pthread_cond_wait(&b->exited, &b->lock);
    pthread_mutex_unlock(&b->lock);
    pthread_cond_destroy(&b->work);
    pthread_cond_destroy(&b->exited);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

void mag__blocking_stats(struct mag__blocking *b, mag_pool_stats_t *out)
{
    pthread_mutex_lock(&b->lock);
    out->blocking_threads = b->threads;
    out->blocking_idle = b->idle;
    out->blocking_peak = b->peak;
    out->blocking_queued = b->queued;
    out->blocking_jobs = b->jobs;
    pthread_mutex_unlock(&b->lock);
}
