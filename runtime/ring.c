/*
 * runtime/ring.c - the ring driver: the only code that sets up, submits to,
 * reaps and waits on a worker's io_uring, forwards cancel requests to the
 * ring that owns an operation, and rings a parked worker's doorbell (an
 * eventfd whose read is always armed on the ring).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/ready.h"
#include "runtime/ring.h"

void mag__worker_wake(mag__worker_t *w)
{
    /* seq_cst: pairs with the seq_cst store of sleeping and load of notified
     * in park(): either the sleeper sees our notified flag, or we see it
     * sleeping and write its eventfd. */
    if (atomic_exchange_explicit(&w->sleeping, 0, memory_order_seq_cst)) {
        uint64_t one = 1;
        ssize_t r = write(w->wake_fd, &one, sizeof one);
        (void)r; /* EAGAIN means a wake is pending already */
    }
}

static void wake_complete(mag__op_t *op, int res, uint32_t flags)
{
    (void)res;
    (void)flags;
    mag__worker_t *w = (mag__worker_t *)((char *)op - offsetof(mag__worker_t, wake_op));
    /* relaxed: only the owner reads it, to re-arm; a rescuer may be the one
     * that reaped this. */
    atomic_store_explicit(&w->wake_armed, false, memory_order_relaxed);
}

uint32_t mag__ring_feature_mask = UINT32_MAX;

/* From the scheduler (never a task): an SQE on w's ring, submitting and
 * reaping until one is free. The reap is what frees space when the kernel
 * refuses submissions (-EBUSY: a completion backlog only a reap drains). */
static struct io_uring_sqe *sched_sqe(mag__worker_t *w);
static void commit_sqes(mag__worker_t *w);
static unsigned sqes_waiting(mag__worker_t *w);
static unsigned reap(mag__worker_t *w, bool rescue);

/* Commits an SQE that must stay this thread's own (the doorbell) under
 * submit_lock, which a rescuer's submit holds
 * (mag__ring_rescue_submit): a rescuer that submitted it would own its
 * completion (task work on the rescuer's thread), so that it would wait
 * whenever the rescuer is off the CPU. (Loop mode: commit_sqes does
 * nothing.) */
static void commit_own_sqes(mag__worker_t *w)
{
    bool multi = w->rt->nworkers > 1;
    if (multi)
        pthread_mutex_lock(&w->submit_lock);
    commit_sqes(w);
    if (multi)
        pthread_mutex_unlock(&w->submit_lock);
}

static void arm_wake_read(mag__worker_t *w)
{
    if (atomic_load_explicit(&w->wake_armed, memory_order_relaxed))
        return;
    struct io_uring_sqe *sqe = sched_sqe(w);
    io_uring_prep_read(sqe, w->wake_fd, &w->wake_buf, sizeof w->wake_buf, 0);
    io_uring_sqe_set_data(sqe, &w->wake_op);
    commit_own_sqes(w);
    atomic_store_explicit(&w->wake_armed, true, memory_order_relaxed);
}

static struct io_uring_sqe *take_sqe(mag__worker_t *w)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    if (sqe) {
        /* acquire: liburing read the kernel's SQ head relaxed; the kernel
         * may have read this slot on another thread (a rescuer's submit)
         * before its release of the head, and our writes to the slot must
         * come after that read. A compiler barrier on x86. */
        atomic_thread_fence(memory_order_acquire);
        w->submitted++;
        mag__stat_inc(&w->stats.io_submitted, 1);
    }
    return sqe;
}

/* The kernel orders an operation's record, written before its SQE is
 * submitted, before the CQE a rescuer reads on another thread; a release
 * here and an acquire in reap() say so in the language's terms (and to
 * ThreadSanitizer, which cannot see the kernel). */
static void publish_sqe(mag__worker_t *w)
{
    atomic_store_explicit(&w->sqe_epoch, w->submitted, memory_order_release);
}

/* The SQEs w's owner has filled in, up to the last, go where the kernel
 * takes them from: the SQ tail it reads. liburing would write it only when
 * the owner next submits; written here, a rescuer can submit them while the
 * owner is stuck in a task (mag__ring_rescue_submit), and the owner's next
 * submit finds nothing left to write. Not in loop mode, where nobody else
 * submits. */
static void commit_sqes(mag__worker_t *w)
{
    if (w->rt->nworkers == 1)
        return;
    struct io_uring_sq *sq = &w->ring.sq;
    sq->sqe_head = sq->sqe_tail;
    /* release: the SQEs' fields before the tail that covers them; pairs
     * with the acquire in mag__ring_rescue_submit (the kernel reads the
     * tail with acquire as well). */
    __atomic_store_n(sq->ktail, sq->sqe_tail, __ATOMIC_RELEASE);
}

void mag__sqe_commit(mag__op_t *op)
{
    commit_sqes(op->worker);
}

struct io_uring_sqe *mag__sqe(mag__op_t *op)
{
    for (;;) {
        mag__worker_t *w = mag__worker_current();
        struct io_uring_sqe *sqe = take_sqe(w);
        if (!sqe) {
            /* The SQ is full: submit it from here (this is the ring's
             * thread). Should the kernel refuse (-EBUSY) or take nothing,
             * give the scheduler a turn to reap, and try again on whatever
             * worker the task then runs on: spinning here would never
             * drain what blocks the ring. */
            if (io_uring_submit(&w->ring) <= 0) {
                w->sq_starved = true;
                mag_yield();
            }
            continue;
        }
        op->worker = w;
        /* The SQ's free-running tail, less the SQE just taken: the kernel
         * has taken it in once its head is past (see sync_cancel). */
        op->sq_pos = w->ring.sq.sqe_tail - 1;
        publish_sqe(w);
        return sqe;
    }
}

static struct io_uring_sqe *sched_sqe(mag__worker_t *w)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = take_sqe(w)))
        if (io_uring_submit(&w->ring) <= 0)
            reap(w, false);
    publish_sqe(w);
    return sqe;
}

/* A CQE that carries none of magpie's records: user_data 0 (nothing to
 * tell), or liburing's own timeout (LIBURING_UDATA_TIMEOUT; liburing only
 * makes one without IORING_FEAT_EXT_ARG, which setup refuses, but a stray
 * one must not be taken for a record). Neither was counted in flight. */
static bool foreign_cqe(const struct io_uring_cqe *cqe)
{
    return cqe->user_data == 0 || cqe->user_data == LIBURING_UDATA_TIMEOUT;
}

/* ---- reaping ----------------------------------------------------------------
 * The owner reaps its ring, and so may a rescuer while the owner is inside a
 * task (monitor.c), so reaping holds cq_lock, completions included: they run
 * one at a time and in CQ order whoever reaps (a multishot accept's last CQE
 * never overtakes an earlier one), and none of them submits or reaps. The
 * owner almost never finds the lock taken. */

/* Reaps w's ring on the calling thread: the owner, or a rescuer (try_only:
 * give up if someone else is reaping). The completions run here, so the
 * tasks they wake are queued on the calling worker. Returns the CQEs taken. */
static unsigned reap(mag__worker_t *w, bool rescue)
{
    if (!rescue)
        mag__lock(&w->cq_lock);
    else if (!mag__trylock(&w->cq_lock))
        return 0;
    /* A rescuer of an owner in its scheduler (preempted or blocked there)
     * leaves the doorbell's CQE, and every CQE after it, to the owner: the
     * owner re-arms the doorbell (arm_wake_read) when its own reap has
     * cleared wake_armed, and reads that flag outside this lock, so a
     * rescuer must not clear it under an owner that may be about to sleep.
     * An owner inside a task reads it only after its next reap, which waits
     * for this one. relaxed is enough for in_task: the owner stores 0 before
     * a reap of its own under this lock, and passes through such a reap on
     * every path from a task to arm_wake_read (park); so once that reap has
     * let the lock go, our acquire of it makes the 0 (or a later task's 1,
     * itself followed by such a reap) the value we read. */
    bool keep_doorbell = rescue && !atomic_load_explicit(&w->in_task, memory_order_relaxed);
    struct io_uring_cqe *cqe;
    unsigned head, n = 0, finished = 0;
    io_uring_for_each_cqe(&w->ring, head, cqe)
    {
        if (keep_doorbell && io_uring_cqe_get_data(cqe) == &w->wake_op)
            break;
        n++;
        if (foreign_cqe(cqe))
            continue;
        if (!(cqe->flags & IORING_CQE_F_MORE))
            finished++;
        /* acquire: pairs with publish_sqe. A rescuer's CQEs come from SQEs
         * the owner published, and CQEs keep arriving while this loop runs:
         * one load per CQE, after it arrived, reads a publish at least as
         * late as its SQE's. (A plain load on x86.) */
        (void)atomic_load_explicit(&w->sqe_epoch, memory_order_acquire);
        mag__op_t *op = io_uring_cqe_get_data(cqe);
        op->complete(op, cqe->res, cqe->flags);
    }
    if (n) {
        io_uring_cq_advance(&w->ring, n);
        /* relaxed: written under cq_lock; the owner reads it for a count of
         * what is in flight, a heuristic. */
        atomic_store_explicit(&w->reaped,
                              atomic_load_explicit(&w->reaped, memory_order_relaxed) + finished,
                              memory_order_relaxed);
    }
    mag__unlock(&w->cq_lock);
    if (n) {
        mag__worker_t *me = mag__worker_current();
        if (me)
            mag__stat_inc(&me->stats.io_completed, n);
    }
    return n;
}

bool mag__ring_ready_past_doorbell(mag__worker_t *w)
{
    /* As mag__ring_ready, and the CQE at the head is not the doorbell's: a
     * rescuer of an owner in its scheduler stops there (reap). A peek at a
     * slot the kernel may be writing: a hint, as the rest. */
    unsigned head = __atomic_load_n(w->ring.cq.khead, __ATOMIC_RELAXED);
    unsigned tail = __atomic_load_n(w->ring.cq.ktail, __ATOMIC_ACQUIRE);
    if (head == tail)
        return false;
    const struct io_uring_cqe *cqe = &w->ring.cq.cqes[head & w->ring.cq.ring_mask];
    return __atomic_load_n(&cqe->user_data, __ATOMIC_RELAXED) != (uintptr_t)&w->wake_op;
}

bool mag__ring_ready(mag__worker_t *w)
{
    /* Read from other threads (the monitor): the head is the reapers', the
     * tail the kernel's; __atomic builtins, as liburing's own accessors. An
     * acquire of the tail is not needed for a yes/no hint. */
    unsigned head = __atomic_load_n(w->ring.cq.khead, __ATOMIC_RELAXED);
    unsigned tail = __atomic_load_n(w->ring.cq.ktail, __ATOMIC_RELAXED);
    return head != tail;
}

unsigned mag__ring_rescue(mag__worker_t *w)
{
    return reap(w, true);
}

/* SQEs committed to the kernel's tail that it has not taken yet. acquire,
 * both: the owner's release of the tail (commit_sqes), the kernel's of the
 * head. */
static unsigned sqes_waiting(mag__worker_t *w)
{
    unsigned tail = __atomic_load_n(w->ring.sq.ktail, __ATOMIC_ACQUIRE);
    unsigned head = __atomic_load_n(w->ring.sq.khead, __ATOMIC_ACQUIRE);
    return tail - head;
}

bool mag__ring_sqes_waiting(mag__worker_t *w)
{
    return sqes_waiting(w) != 0;
}

void mag__ring_rescue_submit(mag__worker_t *w)
{
    /* Any thread may submit to a ring that is not SINGLE_ISSUER (setup);
     * the kernel takes its lock to, so this and an owner's submit never
     * take the same SQE, and it takes no more than the tail covers. The
     * requests are then this thread's as far as the kernel is concerned:
     * their completions still come to w's ring, but the kernel finishes
     * them on this thread (task work), for as long as they live (a
     * multishot accept: until it ends). Only while the owner is in a task:
     * an owner back in its scheduler submits its own, doorbell included.
     * The doorbell's SQE is committed under submit_lock (arm_wake_read),
     * after the owner left its task; held here across the call (the kernel
     * reads the tail itself), the lock keeps it out of both the count and
     * the submit: either the owner committed it before we took the lock,
     * and then we read in_task 0 (relaxed is enough: the owner's store of 0
     * comes before its lock), or it commits it after we let go. A mutex,
     * not a spinlock: the call may run requests inline or sleep on the
     * ring's own lock, and only the owner's park ever waits for it. (Should
     * the owner's own submits in its park fall short, -EBUSY, its doorbell
     * stays committed into its next task, where a rescuer may submit it: a
     * slower wake-up, never a lost one.) The relaxed look before the lock
     * only spares a rescuer the lock. */
    if (!atomic_load_explicit(&w->in_task, memory_order_relaxed))
        return;
    pthread_mutex_lock(&w->submit_lock);
    unsigned n = atomic_load_explicit(&w->in_task, memory_order_relaxed) ? sqes_waiting(w) : 0;
    if (n)
        syscall(__NR_io_uring_enter, w->ring.ring_fd, n, 0, 0, NULL, 0);
    pthread_mutex_unlock(&w->submit_lock);
}

static void cancel_complete(mag__op_t *op, int res, uint32_t flags)
{
    (void)res;
    (void)flags;
    mag__cancel_t *c = (mag__cancel_t *)op;
    mag_task_t *task = c->task; /* waker's rule: read before the release */
    c->res = res;
    /* release: pairs with the acquire in mag__cancel_done (and publishes
     * res with it). */
    atomic_store_explicit(&c->done, 1, memory_order_release);
    if (task)
        mag__wake(task);
}

/* The ASYNC_CANCEL for c: one request by its record, or all on a file. */
static void prep_cancel(struct io_uring_sqe *sqe, mag__cancel_t *c)
{
    if (c->target)
        io_uring_prep_cancel(sqe, c->target, 0);
    else
        io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data(sqe, &c->op);
}

/* From the scheduler of the ring that owns c->target. The record was read
 * into the SQE after sched_sqe's publish; published again, so that a
 * rescuer that reaps the cancel's completion and lets its task return (the
 * record is in that task's frame) has that read ordered before (the
 * kernel orders it, publish_sqe says so to the language). */
static void submit_cancel(mag__worker_t *w, mag__cancel_t *c)
{
    prep_cancel(sched_sqe(w), c);
    publish_sqe(w);
    commit_sqes(w);
}

/* Cancel requests forwarded by other threads: a Treiber stack. Each record
 * stays alive until its own completion (see mag__cancel_t). */
static void drain_cancels(mag__worker_t *w)
{
    if (!atomic_load_explicit(&w->cancels, memory_order_relaxed))
        return;
    /* acquire: pairs with the release in mag__op_cancel's CAS. */
    mag__cancel_t *c = atomic_exchange_explicit(&w->cancels, NULL, memory_order_acquire);
    while (c) {
        mag__cancel_t *next = c->next;
        submit_cancel(w, c);
        c = next;
    }
}

_Atomic bool mag__ring_no_sync_cancel;

/* Whether the kernel has taken target's SQE in. acquire: the kernel's
 * release of the SQ head once it took SQEs in (as liburing reads it).
 * sq_pos was written by the task that prepared the request: the caller's,
 * or one that handed its cancel over through the mailbox. */
static bool sqe_taken(mag__worker_t *owner, const mag__op_t *target)
{
    unsigned head = __atomic_load_n(owner->ring.sq.khead, __ATOMIC_ACQUIRE);
    return (int32_t)(head - target->sq_pos) > 0;
}

/* IORING_REGISTER_SYNC_CANCEL on ring_fd for the request whose user_data is
 * addr, or (flags IORING_ASYNC_CANCEL_FD | _ALL) every request on fd. It
 * waits for no running request (a zero timeout; -1 would be for ever).
 * The raw call on the ring's own descriptor: liburing may use a registered
 * ring index, which belongs to the owner's thread. 0 or a negative errno. */
static int register_sync_cancel(int ring_fd, uint64_t addr, int fd, uint32_t flags)
{
    struct io_uring_sync_cancel_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.addr = addr;
    reg.fd = fd;
    reg.flags = flags;
    reg.timeout.tv_sec = 0;
    reg.timeout.tv_nsec = 0;
    long rc = syscall(__NR_io_uring_register, ring_fd, IORING_REGISTER_SYNC_CANCEL, &reg, 1);
    return rc < 0 ? -errno : 0;
}

/* Cancels c on owner's ring with IORING_REGISTER_SYNC_CANCEL (Linux 6.0),
 * from a thread that is not the owner's, while the owner is inside a task:
 * it drains its mailbox only once that task suspends, and a task that
 * computes for seconds would hold the cancel, and with it a deadline or a
 * close, as long. Any thread may make the call on a ring that is not
 * SINGLE_ISSUER (setup below). The SQEs the owner's tasks prepared are
 * submitted first (mag__ring_rescue_submit): the kernel finds only what it
 * has taken, and a request it took later would run uncancelled. True if the
 * cancel is done (c completed here); false if it must go through the
 * mailbox: the owner is back in its scheduler, the kernel cannot (checked
 * once, at setup), or SQEs are still waiting.
 *
 * The call waits for no running request (a zero timeout): one that runs in
 * the kernel's worker threads is signalled, as an asynchronous cancel
 * would, and completes by itself. The target's CQE (usually -ECANCELED) is
 * posted by the kernel on the thread that submitted it (the owner's, which
 * it interrupts to do so, or a rescuer's), and reaped by a rescuer
 * (monitor.c) or the caller. */
static bool sync_cancel(mag__worker_t *owner, mag__cancel_t *c)
{
    /* relaxed, both: hints. Whether the owner is in a task only chooses the
     * path; both paths cancel. The flag only ever turns on. */
    if (!atomic_load_explicit(&owner->in_task, memory_order_relaxed) ||
        atomic_load_explicit(&mag__ring_no_sync_cancel, memory_order_relaxed))
        return false;
    int err;
    if (c->target) {
        if (!sqe_taken(owner, c->target)) {
            mag__ring_rescue_submit(owner);
            if (!sqe_taken(owner, c->target))
                return false;
        }
        err = register_sync_cancel(owner->ring.ring_fd, (uint64_t)(uintptr_t)c->target, -1, 0);
    } else {
        /* Every request on the descriptor prepared before the call was
         * committed (commit_sqes): once the SQ is empty, the kernel has
         * them all. */
        mag__ring_rescue_submit(owner);
        if (sqes_waiting(owner))
            return false;
        err = register_sync_cancel(owner->ring.ring_fd, 0, c->fd,
                                   IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL);
    }
    /* 0 (or a count, for every request on a descriptor): cancelled.
     * -ENOENT: nothing to cancel: the request completed, and its CQE is
     * posted or on its way. -ETIME: it was running and has been signalled:
     * reported as an asynchronous cancel reports it (-EALREADY; the kernel
     * never returns that from this call). Anything else (-EINTR) leaves it
     * to the owner. */
    if (err == -ETIME)
        err = -EALREADY;
    if (err != 0 && err != -ENOENT && err != -EALREADY)
        return false;
    cancel_complete(&c->op, err, 0);
    return true;
}

/* At setup, on a ring with nothing in flight: whether this kernel has
 * IORING_REGISTER_SYNC_CANCEL. It must be asked on an idle ring: before
 * Linux 5.18, io_uring_register first waited for every request on the ring
 * to finish before it looked at an opcode it did not know (to answer
 * -EINVAL), which on a busy ring could be for ever. 6.0 and later answer
 * -ENOENT for a request that is not there. Once per process. */
static void probe_sync_cancel(mag__worker_t *w)
{
    static _Atomic bool probed;
    /* relaxed: one-way flags; two rings probing at once answer alike. */
    if (atomic_exchange_explicit(&probed, true, memory_order_relaxed))
        return;
    /* user_data 1: no request carries it. */
    if (register_sync_cancel(w->ring.ring_fd, 1, -1, 0) != -ENOENT)
        atomic_store_explicit(&mag__ring_no_sync_cancel, true, memory_order_relaxed);
}

/* c onto owner's mailbox, which the owner drains before it next submits. */
static void push_cancel(mag__worker_t *owner, mag__cancel_t *c)
{
    mag__cancel_t *head = atomic_load_explicit(&owner->cancels, memory_order_relaxed);
    do
        c->next = head;
    /* seq_cst: release publishes c to the draining owner; seq_cst pairs
     * with park's seq_cst load of cancels after it announces sleeping. */
    while (!atomic_compare_exchange_weak_explicit(&owner->cancels, &head, c, memory_order_seq_cst,
                                                  memory_order_relaxed));
}

/* From a task: c's cancel on owner's ring, here and now if that is the
 * caller's and its SQ has room, at once from here if the owner is inside a
 * task (sync_cancel), otherwise through owner's mailbox. */
static void post_cancel(mag__worker_t *owner, mag__cancel_t *c)
{
    c->op.complete = cancel_complete;
    c->op.worker = owner;
    c->task = mag__task_current();
    c->res = 0;
    atomic_store_explicit(&c->done, 0, memory_order_relaxed);
    mag__worker_t *self = mag__worker_current();
    if (owner == self) {
        /* Here and now if the SQ has room. Otherwise through the mailbox,
         * as from another thread: the scheduler drains it before it next
         * submits, and a task must not wait for SQ space here, since it
         * could resume on another worker, whose ring cannot cancel this
         * one's requests. */
        struct io_uring_sqe *sqe = take_sqe(self);
        if (sqe) {
            prep_cancel(sqe, c);
            publish_sqe(self);
            commit_sqes(self);
            return;
        }
    } else if (sync_cancel(owner, c)) {
        mag__ring_rescue(owner); /* the target's CQE, if it is there yet */
        return;
    }
    push_cancel(owner, c);
    if (owner != self)
        mag__worker_wake(owner);
}

void mag__ring_rescue_cancels(mag__worker_t *w)
{
    /* relaxed first look; acquire on the exchange: pairs with the release
     * of push_cancel's CAS, as the owner's drain. */
    if (!atomic_load_explicit(&w->cancels, memory_order_relaxed))
        return;
    mag__cancel_t *c = atomic_exchange_explicit(&w->cancels, NULL, memory_order_acquire);
    bool requeued = false;
    while (c) {
        mag__cancel_t *next = c->next;
        if (!sync_cancel(w, c)) {
            push_cancel(w, c); /* the owner's, after all */
            requeued = true;
        }
        c = next;
    }
    /* The owner may have drained its mailbox and gone to sleep while these
     * were out of it: its park's seq_cst look at the mailbox after it
     * announced sleeping pairs with push_cancel's CAS, and this wake with
     * that announcement. */
    if (requeued)
        mag__worker_wake(w);
}

void mag__op_cancel(mag__op_t *target, mag__cancel_t *c)
{
    c->target = target;
    c->fd = -1;
    post_cancel(target->worker, c);
}

bool mag__ring_no_cancel_fd;

/* Cancels in flight at once: their records live in the caller's frame. */
#define CANCEL_FD_BATCH 16

int mag__ring_cancel_fd(int fd)
{
    mag__worker_t *self = mag__worker_current();
    if (!self || !mag__task_current())
        return -EPERM;
    if (mag__ring_no_cancel_fd)
        return -EINVAL;
    mag_runtime_t *rt = self->rt;
    /* Only the rings that may hold a request on fd (fd_rings.c): usually
     * one, and often none. */
    uint64_t rings = mag__fd_rings_take(rt, fd);
    mag__cancel_t recs[CANCEL_FD_BATCH];
    int rc = 0;
    for (unsigned next = 0; next < rt->nworkers;) {
        /* Every ring exists before any task runs (the runtime's start), and
         * outlives them all. No suspension between the posts: post_cancel's
         * notion of "this worker" holds for the whole batch. */
        unsigned n = 0;
        for (; next < rt->nworkers && n < CANCEL_FD_BATCH; next++) {
            if (!mag__fd_rings_has(rings, rt->workers[next]))
                continue;
            recs[n].target = NULL;
            recs[n].fd = fd;
            post_cancel(rt->workers[next], &recs[n]);
            n++;
        }
        /* Uninterruptibly: the records are in this frame until their own
         * completions have arrived (see mag__cancel_t). */
        for (unsigned i = 0; i < n; i++)
            while (!mag__cancel_done(&recs[i]))
                mag__park();
        for (unsigned i = 0; i < n; i++)
            if (recs[i].res == -EINVAL)
                rc = -EINVAL; /* no IORING_ASYNC_CANCEL_FD: before Linux 5.19 */
    }
    return rc;
}

void mag__ring_flush(mag__worker_t *w)
{
    if (io_uring_sq_ready(&w->ring))
        io_uring_submit(&w->ring);
}

/* Submits what is pending and reaps what completed, without blocking. */
unsigned mag__ring_poll(mag__worker_t *w)
{
    drain_cancels(w);
    unsigned inflight = w->submitted - atomic_load_explicit(&w->reaped, memory_order_relaxed);
    bool doorbell = atomic_load_explicit(&w->wake_armed, memory_order_relaxed);
    unsigned busy = inflight > (doorbell ? 1u : 0u) ? inflight - (doorbell ? 1u : 0u) : 0;
    if (io_uring_sq_ready(&w->ring) || busy) {
        if (w->ring_flags & IORING_SETUP_DEFER_TASKRUN)
            io_uring_submit_and_get_events(&w->ring);
        else
            io_uring_submit(&w->ring);
    }
    return reap(w, false);
}

void mag__ring_sleep_begin(mag__worker_t *w)
{
    arm_wake_read(w);
    /* seq_cst: pairs with mag__worker_wake's exchange (see there). */
    atomic_store_explicit(&w->sleeping, 1, memory_order_seq_cst);
}

bool mag__ring_cancels_waiting(mag__worker_t *w)
{
    /* relaxed, both: hints; the exchange that takes them orders. Where the
     * kernel cannot cancel from another thread, a rescuer could do nothing
     * with them. */
    return atomic_load_explicit(&w->cancels, memory_order_relaxed) != NULL &&
           !atomic_load_explicit(&mag__ring_no_sync_cancel, memory_order_relaxed);
}

bool mag__ring_cancels_pending(mag__worker_t *w)
{
    /* seq_cst: after the seq_cst store of sleeping; pairs with the seq_cst
     * CAS in mag__op_cancel. */
    return atomic_load_explicit(&w->cancels, memory_order_seq_cst) != NULL;
}

void mag__ring_wait(mag__worker_t *w, uint64_t deadline_ns)
{
    struct io_uring_cqe *cqe;
    drain_cancels(w);
    /* Submitting the cancels may have had to reap for SQ room, which can
     * queue tasks here: run them rather than sleep (relaxed: the owner's
     * own slot and queue). */
    if (atomic_load_explicit(&w->lifo, memory_order_relaxed) || mag__deque_len(&w->deque))
        return;
    /* The readiness poller sleeps in the epoll, where its ring is one of
     * the descriptors (ready.c): its wait for socket events then costs no
     * poll request on the ring, whose completion the kernel posted through
     * task work, and so with an interrupt of the poller whenever it came
     * while the poller ran (about 4,600 a second on HTTP at 2 workers). */
    if (mag__ready_poller(w)) {
        /* Completions the kernel holds back in its overflow list while
         * the CQ is full make the ring read as ready to the epoll, CQ empty
         * or not, until someone enters the ring to flush them: that must
         * be us, or the epoll would wake us for them at once, forever. */
        if (io_uring_sq_ready(&w->ring) || io_uring_cq_has_overflow(&w->ring))
            io_uring_submit_and_get_events(&w->ring);
        if (!io_uring_cq_ready(&w->ring))
            mag__ready_sleep(w, deadline_ns);
    } else if (deadline_ns == UINT64_MAX) {
        io_uring_submit_and_wait(&w->ring, 1);
    } else {
        uint64_t now = mag__now();
        uint64_t d = deadline_ns > now ? deadline_ns - now : 0;
        struct __kernel_timespec ts = {.tv_sec = (long long)(d / 1000000000ull),
                                       .tv_nsec = (long long)(d % 1000000000ull)};
        io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
    }
}

void mag__ring_sleep_end(mag__worker_t *w)
{
    atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
}

/* What magpie relies on, and since when Linux has it (both are in 5.11, the
 * oldest kernel magpie supports):
 *   NODROP   a full completion queue keeps completions instead of dropping
 *            them (5.5): without it a task could wait forever;
 *   EXT_ARG  io_uring_enter takes a timeout (5.11): without it liburing
 *            times a wait with a counted timeout request that can end the
 *            timeout early and leave the wait untimed, so a parked worker
 *            would miss its next timer.
 * -ENOSYS with one message per process when either is missing. */
static int check_features(uint32_t features)
{
    static _Atomic bool told;
    const char *missing = !(features & IORING_FEAT_NODROP)    ? "IORING_FEAT_NODROP"
                          : !(features & IORING_FEAT_EXT_ARG) ? "IORING_FEAT_EXT_ARG"
                                                              : NULL;
    if (!missing)
        return 0;
    /* relaxed: only the message is at stake. */
    if (!atomic_exchange_explicit(&told, true, memory_order_relaxed))
        mag__warn("io_uring lacks %s: magpie needs Linux 5.11 or later; not starting", missing);
    return -ENOSYS;
}

int mag__ring_setup(mag__worker_t *w)
{
    struct io_uring_params p;
    unsigned entries = w->rt->cfg.ring_entries;
    /* Newest flags first, falling back on kernels that refuse them. With
     * DEFER_TASKRUN completions are posted only when the owner enters the
     * kernel to wait for them: the cheapest for one worker, but a busy
     * owner then holds them where no rescuer can reap (monitor.c), so
     * rings of a multi-worker runtime let the kernel post completions as
     * they happen. Those are not SINGLE_ISSUER either: other workers cancel
     * on them while their owner is inside a task (sync_cancel), and the
     * kernel refuses any thread but the issuer there. */
    static const unsigned loop_flags[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    static const unsigned multi_flags[] = {IORING_SETUP_SUBMIT_ALL, 0};
    bool multi = w->rt->nworkers > 1;
    const unsigned *flag_sets = multi ? multi_flags : loop_flags;
    unsigned nsets =
        multi ? sizeof multi_flags / sizeof *multi_flags : sizeof loop_flags / sizeof *loop_flags;
    int rc = -EINVAL;
    for (unsigned i = 0; i < nsets; i++) {
        memset(&p, 0, sizeof p);
        p.flags = flag_sets[i];
        rc = io_uring_queue_init_params(entries, &w->ring, &p);
        if (rc == 0) {
            w->ring_flags = p.flags;
            break;
        }
        if (rc != -EINVAL)
            break;
    }
    if (rc)
        return rc;
    w->ring.features &= mag__ring_feature_mask;
    if ((rc = check_features(w->ring.features))) {
        io_uring_queue_exit(&w->ring);
        return rc;
    }
    if ((rc = mag__ready_attach(w))) {
        io_uring_queue_exit(&w->ring);
        return rc;
    }
    w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->wake_fd < 0) {
        rc = -errno;
        io_uring_queue_exit(&w->ring);
        return rc;
    }
    w->wake_op.complete = wake_complete;
    w->wake_op.worker = w;
    pthread_mutex_init(&w->submit_lock, NULL);
    if (multi)
        probe_sync_cancel(w);
    w->ring_ready = true;
    return 0;
}

void mag__ring_teardown(mag__worker_t *w)
{
    if (!w->ring_ready)
        return;
    io_uring_queue_exit(&w->ring);
    close(w->wake_fd);
    pthread_mutex_destroy(&w->submit_lock);
    w->ring_ready = false;
}
