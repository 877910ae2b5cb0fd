/*
 * runtime/group.c - structured concurrency: asyncio.TaskGroup, gather,
 * as_completed, Tokio's JoinSet.
 *
 * The group holds every member's handle, through a member record that
 * follows the task with a task hook (sched.h), so task records carry nothing
 * of groups. Members that finish move, in finishing order, from the running
 * list to the done list, where mag_group_next collects them. One waiter at a
 * time (the group's owner).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "runtime/sched.h"

typedef struct member {
    mag__task_hook_t hook; /* first: the task's hook points here */
    struct mag_group *group;
    mag_task_t *task;
    struct member *next, *prev; /* running list (doubly), done list (next) */
    int id;
} member_t;

struct mag_group {
    mag_runtime_t *rt;
    unsigned flags;
    pthread_mutex_t lock; /* never held across a suspension */
    member_t *running;
    member_t *done_head, *done_tail;
    unsigned nrunning;
    int next_id;
    bool cancelled;       /* mag_group_cancel, or the first error */
    int first_error;      /* the error that cancelled the group */
    mag__waiter_t *waiter;
};

mag_group_t *mag_group_create(unsigned flags)
{
    mag_runtime_t *rt = mag_runtime_current();
    if (!rt || (flags & ~MAG_GROUP_CANCEL_ON_ERROR))
        return NULL;
    mag_group_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->rt = rt;
    g->flags = flags;
    pthread_mutex_init(&g->lock, NULL);
    return g;
}

/* Under g->lock. */
static void cancel_running(mag_group_t *g)
{
    g->cancelled = true;
    for (member_t *m = g->running; m; m = m->next)
        mag__task_cancel(m->task); /* alive: the group holds its handle */
}

/* The task hook's spawned(): links a new member into the running list before
 * it is queued. */
static void member_spawned(mag__task_hook_t *h, mag_task_t *t)
{
    member_t *m = (member_t *)h;
    mag_group_t *g = m->group;
    pthread_mutex_lock(&g->lock);
    m->task = t;
    m->prev = NULL;
    m->next = g->running;
    if (g->running)
        g->running->prev = m;
    g->running = m;
    g->nrunning++;
    if (g->cancelled) /* raced with a cancel: start cancelled (not queued yet) */
        mag__task_cancel(t);
    pthread_mutex_unlock(&g->lock);
}

/* The task hook's done(): on the worker where a member's body returned. */
static void member_done(mag__task_hook_t *h, mag_task_t *t)
{
    member_t *m = (member_t *)h;
    mag_group_t *g = m->group;
    pthread_mutex_lock(&g->lock);
    if (m->prev)
        m->prev->next = m->next;
    else
        g->running = m->next;
    if (m->next)
        m->next->prev = m->prev;
    g->nrunning--;
    m->next = NULL;
    if (g->done_tail)
        g->done_tail->next = m;
    else
        g->done_head = m;
    g->done_tail = m;
    if ((g->flags & MAG_GROUP_CANCEL_ON_ERROR) && t->result < 0 && !g->cancelled) {
        g->first_error = t->result;
        cancel_running(g);
    }
    mag__waiter_t *w = g->waiter;
    g->waiter = NULL;
    pthread_mutex_unlock(&g->lock);
    if (w)
        mag__waiter_signal(w);
}

int mag_group_spawn(mag_group_t *g, mag_fn fn, void *arg)
{
    if (!g || !fn)
        return -EINVAL;
    pthread_mutex_lock(&g->lock);
    if (g->cancelled) {
        pthread_mutex_unlock(&g->lock);
        return -ECANCELED;
    }
    if (g->next_id == INT_MAX) { /* ids must stay non-negative */
        pthread_mutex_unlock(&g->lock);
        return -EOVERFLOW;
    }
    int id = g->next_id++;
    pthread_mutex_unlock(&g->lock);
    member_t *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->hook.spawned = member_spawned;
    m->hook.done = member_done;
    m->group = g;
    m->id = id;
    mag_task_t *t;
    int rc = mag__spawn_hooked(g->rt, &t, fn, arg, NULL, &m->hook);
    if (rc) /* never spawned: the hook was not called */
        free(m);
    return rc ? rc : id;
}

static int next_common(mag_group_t *g, int *status, bool interruptible)
{
    pthread_mutex_lock(&g->lock);
    for (;;) {
        member_t *m = g->done_head;
        if (m) {
            g->done_head = m->next;
            if (!g->done_head)
                g->done_tail = NULL;
            pthread_mutex_unlock(&g->lock);
            int id = m->id;
            mag_task_t *t = m->task;
            free(m);
            if (status)
                *status = t->result;
            mag__task_owner_release(t); /* the group owns the handle */
            return id;
        }
        if (!g->nrunning) {
            pthread_mutex_unlock(&g->lock);
            return -ENOENT;
        }
        mag__waiter_t w;
        mag__waiter_init(&w);
        g->waiter = &w;
        pthread_mutex_unlock(&g->lock);
        int rc = 0;
        if (w.task && interruptible) {
            rc = mag__suspend_begin(MAG__WAIT_GROUP, g);
            if (!rc) {
                rc = mag__waiter_wait(&w, true);
                mag__suspend_end();
            }
        } else {
            mag__waiter_wait(&w, false);
        }
        pthread_mutex_lock(&g->lock);
        if (rc) {
            if (g->waiter == &w) {
                g->waiter = NULL;
            } else {
                /* A member is signalling us: w is on this stack, wait. */
                pthread_mutex_unlock(&g->lock);
                mag__waiter_wait(&w, false);
                pthread_mutex_lock(&g->lock);
            }
            pthread_mutex_unlock(&g->lock);
            return rc;
        }
    }
}

int mag_group_next(mag_group_t *g, int *status)
{
    if (!g)
        return -EINVAL;
    return next_common(g, status, true);
}

static void drain(mag_group_t *g)
{
    while (next_common(g, NULL, false) != -ENOENT)
        ;
}

int mag_group_wait(mag_group_t *g)
{
    if (!g)
        return -EINVAL;
    int first = 0, st;
    for (;;) {
        int rc = next_common(g, &st, true);
        if (rc == -ENOENT)
            break;
        if (rc < 0) {
            mag_group_cancel(g);
            drain(g);
            return rc;
        }
        if (st < 0 && !first)
            first = st;
    }
    pthread_mutex_lock(&g->lock);
    if (g->first_error)
        first = g->first_error;
    pthread_mutex_unlock(&g->lock);
    return first;
}

void mag_group_cancel(mag_group_t *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    cancel_running(g);
    pthread_mutex_unlock(&g->lock);
}

void mag_group_destroy(mag_group_t *g)
{
    if (!g)
        return;
    mag_group_cancel(g);
    drain(g);
    pthread_mutex_destroy(&g->lock);
    free(g);
}
