/*
 * runtime/stack_pages.c - page advice on many carved stacks at once.
 *
 * A million parked tasks are a million stacks, carved 64 to a mapping
 * (fiber.c). Advising their pages one stack at a time cost a system call per
 * stack to install its guard region, and, when the tasks ended, a system call
 * and a TLB flush per stack to give its pages back: with two workers, that
 * flush is an interrupt to the other core each time, and it was most of the
 * time a million cancelled tasks took to end. Here the guard regions of a
 * new mapping go in with one process_madvise, and freed stacks gather in a
 * batch whose pages go back together, on a thread of their own: adjacent
 * stacks (freed in the order they were carved, as a burst's are) as one
 * range, guard regions included, which survive MADV_DONTNEED.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/stack_pages.h"

#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
/* The calling process, to the pidfd calls (Linux 6.14; older kernels refuse
 * it with EBADF, and the fallback below takes over). */
#define PIDFD_SELF_ (-10000)

/* 1 while process_madvise on ourselves may work: cleared for good once it
 * has been refused where madvise took the same advice. relaxed: a one-way
 * switch; a thread that still tries once more only pays the fallback. */
static _Atomic int self_advise = 1;

static int advise_each(const struct iovec *ranges, unsigned n, int advice)
{
    for (unsigned i = 0; i < n; i++)
        if (madvise(ranges[i].iov_base, ranges[i].iov_len, advice) != 0)
            return -errno;
    return 0;
}

int mag__advise_ranges(const struct iovec *ranges, unsigned n, int advice)
{
    if (n == 0)
        return 0;
    if (n > 1 && atomic_load_explicit(&self_advise, memory_order_relaxed)) {
        size_t total = 0;
        for (unsigned i = 0; i < n; i++)
            total += ranges[i].iov_len;
        long done = syscall(SYS_process_madvise, PIDFD_SELF_, ranges, (size_t)n, advice, 0u);
        if (done >= 0 && (size_t)done == total)
            return 0;
        /* Refused or cut short: every range again, one at a time (the
         * advice here can be repeated). Should those all succeed, the
         * refusal was process_madvise's own (an older kernel's): do not
         * ask it again. */
        int rc = advise_each(ranges, n, advice);
        if (rc == 0 && done < 0)
            atomic_store_explicit(&self_advise, 0, memory_order_relaxed);
        return rc;
    }
    return advise_each(ranges, n, advice);
}

#define MADV_GUARD_INSTALL_ 102 /* <sys/mman.h> of older C libraries lacks it */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int mag__stacks_carve_pages(char *base, unsigned n, size_t map, size_t page)
{
    struct iovec ranges[MAG__CARVE_STACKS_MAX] = { { 0 } };
    if (n > MAG__CARVE_STACKS_MAX)
        return -EINVAL;
    for (unsigned i = 0; i < n; i++)
        ranges[i] = (struct iovec){ .iov_base = base + i * map, .iov_len = page };
    return mag__advise_ranges(ranges, n, MADV_GUARD_INSTALL_);
}

void mag__stacks_populate_tops(char *base, unsigned n, size_t map, size_t page)
{
    struct iovec ranges[MAG__CARVE_STACKS_MAX] = { { 0 } };
    if (n > MAG__CARVE_STACKS_MAX)
        n = MAG__CARVE_STACKS_MAX;
    for (unsigned i = 0; i < n; i++)
        ranges[i] = (struct iovec){ .iov_base = base + (i + 1) * map - page, .iov_len = page };
    /* A refusal (no MADV_POPULATE_WRITE) only leaves them to fault one by
     * one. */
    (void)mag__advise_ranges(ranges, n, MADV_POPULATE_WRITE);
}

/* ---- freed stacks, given back in batches -----------------------------------
 * A full batch goes to a thread of its own, the returner, which gives its
 * pages back and only then hands the stacks to the free lists: the system
 * call and its TLB flush (about 30% of the time a million cancelled tasks
 * took to end at one worker) leave the worker that freed the last stack, as
 * Go's scavenger leaves its goroutines. Where the thread cannot start, the
 * freeing thread does it. */

static pthread_mutex_t batch_lock = PTHREAD_MUTEX_INITIALIZER;
static mag__stack_t *batch[MAG__STACK_RETURN_BATCH]; /* under batch_lock */
static unsigned batch_len;                           /* under batch_lock */

/* Full batches for the returner, linked by next, MAG__STACK_RETURN_BATCH
 * stacks after another; and whether the returner runs, and who takes the
 * stacks once their pages are back. All under queue_lock. */
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
static mag__stack_t *queued;
static bool returner_runs;
static mag__stacks_back_fn *queued_back;

static int by_address(const void *a, const void *b)
{
    const mag__stack_t *x = *(mag__stack_t *const *)a, *y = *(mag__stack_t *const *)b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Gives the pages of a full batch back and links its stacks by next (the
 * first returned). */
static mag__stack_t *give_back(mag__stack_t **full)
{
    /* By address, so that neighbours in one mapping make one range: from
     * the lowest usable byte of the first to the top of the last, the
     * guard regions between included (they survive MADV_DONTNEED). No
     * stack here is on a free list yet, so none runs a task whose frames
     * the advice would zero. */
    qsort(full, MAG__STACK_RETURN_BATCH, sizeof full[0], by_address);
    struct iovec ranges[MAG__STACK_RETURN_BATCH];
    unsigned n = 0;
    for (unsigned i = 0; i < MAG__STACK_RETURN_BATCH; i++) {
        mag__stack_t *x = full[i];
        if (n && (char *)ranges[n - 1].iov_base + ranges[n - 1].iov_len == x->base) {
            ranges[n - 1].iov_len = (size_t)(x->top - (char *)ranges[n - 1].iov_base);
            continue;
        }
        ranges[n].iov_base = x->lo;
        ranges[n].iov_len = (size_t)(x->top - x->lo);
        n++;
    }
    /* Should the kernel refuse, the pages stay as they are: the stacks are
     * as good, only resident. */
    (void)mag__advise_ranges(ranges, n, MADV_DONTNEED);
    for (unsigned i = 0; i + 1 < MAG__STACK_RETURN_BATCH; i++)
        full[i]->next = full[i + 1];
    full[MAG__STACK_RETURN_BATCH - 1]->next = NULL;
    return full[0];
}

static void *returner(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&queue_lock);
    for (;;) {
        while (!queued)
            pthread_cond_wait(&queue_cond, &queue_lock);
        mag__stack_t *list = queued;
        mag__stacks_back_fn *back = queued_back;
        queued = NULL;
        pthread_mutex_unlock(&queue_lock);
        while (list) {
            mag__stack_t *full[MAG__STACK_RETURN_BATCH];
            for (unsigned i = 0; i < MAG__STACK_RETURN_BATCH; i++) {
                full[i] = list;
                list = list->next;
            }
            back(give_back(full));
        }
        pthread_mutex_lock(&queue_lock);
    }
    return NULL;
}

/* A child of fork has no returner (only the forking thread goes on), and
 * must not find a lock held by one: batch_lock and queue_lock are taken
 * across the fork (they never nest, so in any order), and fiber.c takes
 * carve_lock, which the returner takes to hand stacks back. The child
 * starts its own returner if it ever needs one; the batches queued at the
 * fork stay resident in it, never reused. Its condition variable is made
 * anew: the parent's still counts the parent's returner as a waiter, and a
 * signal in the child would wait for ever for it to wake (glibc). */
static void fork_prepare(void)
{
    pthread_mutex_lock(&batch_lock);
    pthread_mutex_lock(&queue_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&queue_lock);
    pthread_mutex_unlock(&batch_lock);
}

static void fork_child(void)
{
    queued = NULL;
    returner_runs = false;
    pthread_cond_init(&queue_cond, NULL);
    pthread_mutex_unlock(&queue_lock);
    pthread_mutex_unlock(&batch_lock);
}

static void register_atfork(void)
{
    (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Queues the batch (linked by next, first to last) for the returner,
 * starting it the first time. False if it cannot start. */
static bool queue_batch(mag__stack_t *first, mag__stack_t *last, mag__stacks_back_fn *back)
{
    static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
    /* Before the thread exists, and outside the lock its handlers take. */
    (void)pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&queue_lock);
    if (!returner_runs) {
        pthread_t th;
        if (mag__thread_start(&th, returner, NULL) != 0) {
            pthread_mutex_unlock(&queue_lock);
            return false;
        }
        pthread_detach(th);
        pthread_setname_np(th, "magpie-stackret");
        returner_runs = true;
    }
    last->next = queued;
    queued = first;
    queued_back = back;
    pthread_cond_signal(&queue_cond);
    pthread_mutex_unlock(&queue_lock);
    return true;
}

void mag__stack_return(mag__stack_t *s, mag__stacks_back_fn *back)
{
    mag__stack_t *full[MAG__STACK_RETURN_BATCH];
    pthread_mutex_lock(&batch_lock);
    batch[batch_len++] = s;
    if (batch_len < MAG__STACK_RETURN_BATCH) {
        pthread_mutex_unlock(&batch_lock);
        return;
    }
    for (unsigned i = 0; i < MAG__STACK_RETURN_BATCH; i++)
        full[i] = batch[i];
    batch_len = 0;
    pthread_mutex_unlock(&batch_lock);

    for (unsigned i = 0; i + 1 < MAG__STACK_RETURN_BATCH; i++)
        full[i]->next = full[i + 1];
    if (!queue_batch(full[0], full[MAG__STACK_RETURN_BATCH - 1], back))
        back(give_back(full));
}
