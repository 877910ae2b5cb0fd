/*
 * sync/select.c - mag_select: wait on several channel operations at once.
 *
 * Go's algorithm, on magpie's wait-queue core:
 *   1. Lock every channel involved, in address order (so two selects over the
 *      same channels cannot deadlock), and try the cases one after another
 *      starting from a random one. The first that can proceed is performed.
 *   2. Otherwise queue one node per case, all pointing to one mag__select_t,
 *      unlock, and wait. A waker that wants to complete a case must first
 *      claim the select with a compare-and-swap on its state; the loser of
 *      that race drops the node (mag__wl_pop_live). Since the selector holds
 *      every lock while it queues, nobody can complete a case before all
 *      nodes are in place, and no case can match one of our own.
 *   3. Woken (or cancelled: then the selector tries to claim its own state,
 *      and if a waker won, it takes the hand-off instead), it locks each
 *      channel once more to unlink the nodes still queued. Wakers touch a
 *      node only under its channel's lock, so after this pass none holds a
 *      pointer into our stack.
 */
#include <stdlib.h>

#include "sync/chan.h"

#define SELECT_STACK_CASES 8

static int cmp_chan(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (mag_chan_t *const *)a, y = (uintptr_t) * (mag_chan_t *const *)b;
    return x < y ? -1 : x > y;
}

/* Distinct enabled channels of cases, sorted by address. Returns how many. */
static size_t lock_order(const mag_select_case_t *cases, size_t n, mag_chan_t **chans)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (cases[i].chan)
            chans[k++] = cases[i].chan;
    qsort(chans, k, sizeof *chans, cmp_chan);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || chans[u - 1] != chans[i])
            chans[u++] = chans[i];
    return u;
}

static void lock_all(mag_chan_t **chans, size_t u)
{
    for (size_t i = 0; i < u; i++)
        mag__spin_lock(&chans[i]->lock);
}

static void unlock_all(mag_chan_t **chans, size_t u)
{
    for (size_t i = u; i-- > 0;)
        mag__spin_unlock(&chans[i]->lock);
}

static int validate(const mag_select_case_t *cases, size_t n, size_t *enabled)
{
    if (!cases || n == 0 || n > MAG_SELECT_MAX)
        return -EINVAL;
    *enabled = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cases[i].chan)
            continue;
        if ((cases[i].op != MAG_SELECT_SEND && cases[i].op != MAG_SELECT_RECV) || !cases[i].elem)
            return -EINVAL;
        ++*enabled;
    }
    return 0;
}

/* Step 1: with every lock held, performs the first ready case from start.
 * Returns its index, or -1 when none is ready. */
static int try_cases(mag_select_case_t *cases, size_t n, size_t start, mag__wake_t *wk)
{
    for (size_t k = 0; k < n; k++) {
        size_t i = start + k < n ? start + k : start + k - n;
        mag_select_case_t *sc = &cases[i];
        if (!sc->chan)
            continue;
        int rc = sc->op == MAG_SELECT_SEND ? mag__chan_send_locked(sc->chan, sc->elem, wk)
                                           : mag__chan_recv_locked(sc->chan, sc->elem, wk);
        if (rc != -EAGAIN) {
            sc->result = rc;
            return (int)i;
        }
    }
    return -1;
}

/* Step 3: unlinks the nodes still queued. */
static void dequeue_all(mag_select_case_t *cases, size_t n, mag__wnode_t *nodes, mag_chan_t **chans,
                        size_t u)
{
    for (size_t j = 0; j < u; j++) {
        mag__spin_lock(&chans[j]->lock);
        for (size_t i = 0; i < n; i++) {
            if (cases[i].chan != chans[j] || !nodes[i].linked)
                continue;
            mag__wl_remove(cases[i].op == MAG_SELECT_SEND ? &chans[j]->sendq : &chans[j]->recvq,
                           &nodes[i]);
        }
        mag__spin_unlock(&chans[j]->lock);
    }
}

static int select_wait(mag_select_case_t *cases, size_t n, mag__wnode_t *nodes, mag_chan_t **chans,
                       size_t u, bool blocking)
{
    mag__wake_t wk = {NULL};
    mag__select_t sel;
    bool prepared = false, in_task = false;
    size_t start = n > 1 ? mag__sync_rand() % n : 0;
    int idx, rc;

    for (;;) {
        lock_all(chans, u);
        idx = try_cases(cases, n, start, &wk);
        if (idx >= 0 || !blocking) {
            unlock_all(chans, u);
            mag__wake_all(&wk);
            if (prepared && in_task)
                mag__suspend_end();
            return idx >= 0 ? idx : -EAGAIN;
        }
        if (prepared)
            break;
        unlock_all(chans, u);
        /* Enter the suspension outside the locks, then look again. */
        atomic_init(&sel.state, MAG__SEL_WAITING);
        mag__waiter_init(&sel.w);
        in_task = sel.w.task != NULL;
        if (in_task) {
            rc = mag__suspend_begin(MAG__WAIT_SELECT, cases);
            if (rc == -EPERM) {
                in_task = false;
                sel.w.task = NULL;
            } else if (rc) {
                return rc;
            }
        }
        if (u == 0 && !in_task)
            return -EDEADLK; /* a thread would wait forever */
        prepared = true;
    }

    /* Step 2: queue a node per enabled case, every lock still held. */
    for (size_t i = 0; i < n; i++) {
        if (!cases[i].chan)
            continue;
        mag__wnode_t *nd = &nodes[i];
        nd->sel = &sel;
        nd->elem = cases[i].elem;
        nd->result = 0;
        nd->index = (uint32_t)i;
        nd->linked = false;
        mag__wl_push(cases[i].op == MAG_SELECT_SEND ? &cases[i].chan->sendq : &cases[i].chan->recvq,
                     nd);
    }
    unlock_all(chans, u);

    if (in_task) {
        rc = mag__waiter_wait(&sel.w, true);
        mag__suspend_end();
    } else {
        rc = mag__waiter_wait(&sel.w, false);
    }
    if (rc) {
        uint32_t expect = MAG__SEL_WAITING;
        /* acq_rel: pairs with a waker's claim (mag__wl_pop_live). */
        if (!atomic_compare_exchange_strong_explicit(&sel.state, &expect, MAG__SEL_GONE,
                                                     memory_order_acq_rel, memory_order_acquire)) {
            /* A waker claimed a case first: its hand-off is on the way. */
            mag__waiter_wait(&sel.w, false);
            rc = 0;
        }
    }
    dequeue_all(cases, n, nodes, chans, u);
    if (rc)
        return rc;
    /* acquire: the claim; the signal's release/acquire already ordered it. */
    idx = (int)(atomic_load_explicit(&sel.state, memory_order_acquire) - 1);
    cases[idx].result = nodes[idx].result;
    return idx;
}

static int select_impl(mag_select_case_t *cases, size_t n, bool blocking)
{
    size_t enabled;
    int rc = validate(cases, n, &enabled);
    if (rc)
        return rc;
    if (enabled == 0 && !blocking)
        return -EAGAIN;
    mag__wnode_t stack_nodes[SELECT_STACK_CASES];
    mag_chan_t *stack_chans[SELECT_STACK_CASES];
    mag__wnode_t *nodes = stack_nodes;
    mag_chan_t **chans = stack_chans;
    if (n > SELECT_STACK_CASES) {
        nodes = malloc(n * sizeof *nodes);
        chans = malloc(n * sizeof *chans);
        if (!nodes || !chans) {
            free(nodes);
            free(chans);
            return -ENOMEM;
        }
    }
    size_t u = lock_order(cases, n, chans);
    rc = select_wait(cases, n, nodes, chans, u, blocking);
    if (nodes != stack_nodes) {
        free(nodes);
        free(chans);
    }
    return rc;
}

int mag_select(mag_select_case_t *cases, size_t n)
{
    mag__coop_spend();
    return select_impl(cases, n, true);
}

int mag_select_try(mag_select_case_t *cases, size_t n)
{
    return select_impl(cases, n, false);
}
