/*
 * runtime/ready.c - shared socket readiness (ready.h): one epoll per
 * runtime, edge-triggered registrations, and the waiter of each descriptor
 * in a table indexed by it.
 *
 * The protocol, per descriptor slot:
 *   waiter:  CAS slot NULL -> me (seq_cst: see struct mag__ready_slot),
 *            then arm, then park until done;
 *   drainer: counts the event in the slot (seq_cst), then exchanges slot ->
 *            NULL (seq_cst); if it took a waiter, sets its done (release)
 *            and wakes its task.
 * Whoever takes the slot owns the waiter's wake: a waiter that gives up
 * (cancel, deadline) takes it back with the same exchange, and if a drainer
 * got there first it waits for that drainer's done, so that no drainer
 * touches a frame that is gone. An event nobody waits for any more finds
 * the slot empty, or finds a later waiter, who is woken early and retries:
 * the callers loop on EAGAIN, so an early wake costs a receive, never data.
 *
 * Arming. Every registration is edge-triggered and stays (EPOLLET, no
 * EPOLLONESHOT): each arrival of data after the last event taken raises
 * one more. A waiter arms with epoll_ctl MOD (ADD the first time) after it
 * is in the slot: epoll_ctl looks at the socket then, so data that came
 * before still raises an event. A waiter on a registration it may trust
 * (trust, below) does not call epoll_ctl at all: it compares the slot's
 * event count with the count its caller read before the receive that found
 * the socket empty. A difference means an event came since, and it returns
 * at once to receive again; otherwise any data that comes later raises an
 * event that finds it in the slot (Dekker's pattern: its CAS then its load
 * of the count, against the drainer's count then its exchange).
 *
 * Trust. The kernel drops a registration when the open file goes, and the
 * number may then name a new socket that is in no epoll. Only a close
 * magpie makes is seen (mag_close bumps gen); a plain close(2) or a dup2
 * onto the number is not. So trust is held by the owner of a descriptor
 * whose close is magpie's alone, in its own record (mag__ready_kept_t: a
 * mag_serve connection, which mag_serve closes), and only its own waits use
 * it. Every other wait re-arms, so a number closed with close(2) and reused
 * is armed again by its next wait, and a new owner starts untrusted.
 *
 * Registrations belong to the open file: one closed while another
 * reference to it lives (a dup, a forked child's copy) stays in the epoll
 * under the old number until the last reference goes, and costs the
 * number's next waiters early wakes. A fork's child inherits the epoll
 * with the rest of the runtime it cannot use (io.h: fork); it must not
 * touch it.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ready.h"

struct mag__ready_waiter {
    mag_task_t *task;
    int res; /* 0: an event; -EBADF: mag_close (set before done) */
    _Atomic uint32_t done;
};

/* One per descriptor number. gen and busy guard the number's reuse: a
 * receive woken for a socket that mag_close then closes must not receive
 * from the next socket given that number. The receiver counts itself busy
 * around each recv(2) and checks gen, mag_close bumps gen and waits for busy
 * to drain (Dekker's pattern, both sides seq_cst): either the receiver sees
 * the new gen and receives nothing, or the closer sees it busy and waits
 * until its recv on the old socket has returned. */
struct mag__ready_slot {
    struct mag__ready_waiter *_Atomic waiter;
    _Atomic uint32_t gen;    /* mag_close calls on this number */
    _Atomic uint32_t busy;   /* receivers inside recv(2) on it */
    _Atomic uint32_t events; /* events taken for this number (wraps), and GONE */
};

/* Runtimes with readiness, for a mag_close from a plain thread, which
 * belongs to none of them. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static mag_runtime_t *registry;

/* Takes the waiter out of fd's slot, if one is there, and wakes it with res. */
static void wake_slot(mag_runtime_t *rt, unsigned fd, int res)
{
    /* acquire: pairs with the waiter's CAS; its record is written before.
     * seq_cst for mag__ready_close: after its seq_cst bump of gen, against
     * the waiter's seq_cst CAS and load of gen (mag__ready_wait); for the
     * drainer: after its seq_cst count of the event, against the waiter's
     * CAS and load of the count. */
    struct mag__ready_waiter *wt =
        atomic_exchange_explicit(&rt->ready_slots[fd].waiter, NULL, memory_order_seq_cst);
    if (!wt)
        return;
    mag_task_t *task = wt->task;
    wt->res = res;
    /* release: pairs with the waiter's acquire; after it the frame may be
     * gone. */
    atomic_store_explicit(&wt->done, 1, memory_order_release);
    mag__wake(task);
}

/* Descriptors past this go through the ring (their waits are rare). */
#define READY_SLOTS 65536u
#define DRAIN_BATCH 64

int mag__ready_init(mag_runtime_t *rt)
{
    rt->ready_fd = -1;
    if (rt->nworkers < 2 || rt->cfg.ring_sockets)
        return 0;
    rt->ready_slots = calloc(READY_SLOTS, sizeof *rt->ready_slots);
    if (!rt->ready_slots)
        return -ENOMEM;
    rt->ready_fd = epoll_create1(EPOLL_CLOEXEC);
    if (rt->ready_fd < 0) {
        int e = -errno;
        free(rt->ready_slots);
        rt->ready_slots = NULL;
        return e;
    }
    rt->ready_nslots = READY_SLOTS;
    pthread_mutex_lock(&registry_lock);
    rt->ready_next = registry;
    registry = rt;
    pthread_mutex_unlock(&registry_lock);
    return 0;
}

void mag__ready_free(mag_runtime_t *rt)
{
    if (!rt->ready_slots) /* never made (rt->ready_fd may read 0 then) */
        return;
    pthread_mutex_lock(&registry_lock);
    for (mag_runtime_t **p = &registry; *p; p = &(*p)->ready_next)
        if (*p == rt) {
            *p = rt->ready_next;
            break;
        }
    pthread_mutex_unlock(&registry_lock);
    close(rt->ready_fd);
    rt->ready_fd = -1;
    free(rt->ready_slots);
    rt->ready_slots = NULL;
}

/* The poller's ring in the epoll: no descriptor slot has this number. */
#define RING_TAG UINT64_MAX

int mag__ready_attach(mag__worker_t *w)
{
    if (!mag__ready_poller(w))
        return 0;
    /* Level-triggered: the epoll reports the ring for as long as its CQ
     * holds completions (or the kernel's overflow list does: see
     * mag__ring_wait, which flushes it before a sleep). A drainer on
     * another thread (the monitor) that takes that report puts it back,
     * and epoll wakes the poller for it again, so the poller never sleeps
     * over a completion (edge-triggered, the report the monitor took would
     * have been the only one). */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = RING_TAG};
    return epoll_ctl(w->rt->ready_fd, EPOLL_CTL_ADD, w->ring.ring_fd, &ev) == 0 ? 0 : -errno;
}

/* Counts each event in its descriptor's slot and wakes the slot's waiter;
 * the poller's ring is left to its owner. Returns the sockets' events. */
static int take_events(mag_runtime_t *rt, const struct epoll_event *ev, int n)
{
    int taken = 0;
    for (int i = 0; i < n; i++) {
        if (ev[i].data.u64 == RING_TAG)
            continue;
        unsigned fd = (unsigned)ev[i].data.fd;
        _Atomic uint32_t *events = &rt->ready_slots[fd].events;
        uint32_t gone =
            ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI) ? MAG__READY_GONE : 0;
        /* relaxed: the CAS below rereads it. */
        uint32_t old = atomic_load_explicit(events, memory_order_relaxed);
        /* seq_cst: before the exchange in wake_slot (see mag__ready_wait);
         * release for a receiver's acquire of the count. */
        while (!atomic_compare_exchange_weak_explicit(
            events, &old, ((old + 1) & ~MAG__READY_GONE) | (old & MAG__READY_GONE) | gone,
            memory_order_seq_cst, memory_order_relaxed))
            ;
        wake_slot(rt, fd, 0);
        taken++;
    }
    return taken;
}

int mag__ready_drain(mag_runtime_t *rt)
{
    struct epoll_event ev[DRAIN_BATCH];
    int n = epoll_wait(rt->ready_fd, ev, DRAIN_BATCH, 0);
    return n > 0 ? take_events(rt, ev, n) : 0;
}

/* The poller has looked at the epoll: the monitor leaves it alone for a
 * look (monitor.c). relaxed: a hint; only the poller writes it. */
static void poller_looked(mag__worker_t *w, uint64_t now)
{
    w->ready_looked_ns = now;
    atomic_store_explicit(&w->ready_turns,
                          atomic_load_explicit(&w->ready_turns, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* The scheduler's turns come every FAIRNESS_INTERVAL runs (worker.c),
 * some 0.4 us apart when tasks only yield: an epoll_wait at each made a
 * yield at 2 workers half as dear again (6 -> 9 ns). At most one look per
 * this long, then; events wait no longer, as the poller also looks each
 * time it runs out of work. */
#define READY_TURN_GAP_NS (20 * 1000ull)

int mag__ready_poll(mag__worker_t *w, bool turn)
{
    if (!mag__ready_poller(w))
        return 0;
    uint64_t now = mag__now();
    if (turn && now - w->ready_looked_ns < READY_TURN_GAP_NS)
        return 0;
    poller_looked(w, now);
    return mag__ready_drain(w->rt);
}

static _Atomic bool no_pwait2; /* refused: an old kernel, or a seccomp filter */

/* epoll_wait until deadline_ns (mag__now() time; UINT64_MAX: none), to the
 * nanosecond with epoll_pwait2 (Linux 5.11), else rounded up to the
 * millisecond. */
static int epoll_wait_until(int epfd, struct epoll_event *ev, int max, uint64_t deadline_ns)
{
    if (deadline_ns == UINT64_MAX)
        return epoll_wait(epfd, ev, max, -1);
    uint64_t now = mag__now();
    uint64_t d = deadline_ns > now ? deadline_ns - now : 0;
#ifdef SYS_epoll_pwait2
    /* relaxed: a cache of the kernel's answer. */
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = {(time_t)(d / 1000000000ull), (long)(d % 1000000000ull)};
        long n = syscall(SYS_epoll_pwait2, epfd, ev, max, &ts, NULL, 0);
        /* Any refusal but an interruption means the call itself is
         * refused: a kernel before 5.11 says ENOSYS, a seccomp filter
         * often EPERM. Retried each time, it would return at once on
         * every sleep with a deadline, and the poller would spin. */
        if (n >= 0 || errno == EINTR)
            return (int)n;
        atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
    }
#endif
    uint64_t ms = (d + 999999) / 1000000;
    return epoll_wait(epfd, ev, max, ms > INT32_MAX ? INT32_MAX : (int)ms);
}

void mag__ready_sleep(mag__worker_t *w, uint64_t deadline_ns)
{
    struct epoll_event ev[DRAIN_BATCH];
    int n = epoll_wait_until(w->rt->ready_fd, ev, DRAIN_BATCH, deadline_ns);
    poller_looked(w, mag__now());
    if (n > 0)
        take_events(w->rt, ev, n);
}

void mag__ready_close(mag_runtime_t *rt, int fd)
{
    if (!mag__ready_on(rt) || fd < 0 || (unsigned)fd >= rt->ready_nslots)
        return;
    struct mag__ready_slot *s = &rt->ready_slots[fd];
    /* seq_cst, both: against mag__ready_enter's (see struct mag__ready_slot). */
    atomic_fetch_add_explicit(&s->gen, 1, memory_order_seq_cst);
    /* The next socket with this number has not gone yet. relaxed: a stale
     * GONE only costs that socket's receives a try each. */
    atomic_fetch_and_explicit(&s->events, ~MAG__READY_GONE, memory_order_relaxed);
    wake_slot(rt, (unsigned)fd, -EBADF);
    /* A receiver inside recv(2) on the old socket: a non-blocking call,
     * soon over. */
    while (atomic_load_explicit(&s->busy, memory_order_seq_cst)) {
        if (mag__task_current())
            mag_yield();
        else
            sched_yield();
    }
}

void mag__ready_close_all(int fd)
{
    pthread_mutex_lock(&registry_lock);
    for (mag_runtime_t *rt = registry; rt; rt = rt->ready_next)
        mag__ready_close(rt, fd);
    pthread_mutex_unlock(&registry_lock);
}

uint32_t mag__ready_events(mag_runtime_t *rt, int fd)
{
    /* acquire: keeps the receive that follows after it, so that a count read
     * here is never one taken for data that receive did not see. */
    return atomic_load_explicit(&rt->ready_slots[fd].events, memory_order_acquire);
}

uint32_t mag__ready_gen(mag_runtime_t *rt, int fd)
{
    /* relaxed: mag__ready_enter's seq_cst load compares it. */
    return atomic_load_explicit(&rt->ready_slots[fd].gen, memory_order_relaxed);
}

bool mag__ready_enter(mag_runtime_t *rt, int fd, uint32_t gen)
{
    struct mag__ready_slot *s = &rt->ready_slots[fd];
    /* seq_cst, both: against mag__ready_close's (see struct mag__ready_slot). */
    atomic_fetch_add_explicit(&s->busy, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&s->gen, memory_order_seq_cst) == gen)
        return true;
    atomic_fetch_sub_explicit(&s->busy, 1, memory_order_release);
    return false;
}

void mag__ready_leave(mag_runtime_t *rt, int fd)
{
    /* release: the recv(2) before it, for the closer's seq_cst load. */
    atomic_fetch_sub_explicit(&rt->ready_slots[fd].busy, 1, memory_order_release);
}

/* Takes the waiter's own record out of fd's slot: false if a drainer or
 * the closer has it (and will set its done). acquire: more than the
 * waiter needs, who reads nothing published through it. */
static bool take_back(mag_runtime_t *rt, int fd, struct mag__ready_waiter *wt)
{
    return atomic_exchange_explicit(&rt->ready_slots[fd].waiter, NULL, memory_order_acquire) == wt;
}

/* Registers fd edge-triggered for good (MOD, or ADD when it is in no
 * epoll yet; a new one is usually not). false when epoll cannot watch it. */
static bool arm(mag_runtime_t *rt, int fd, bool fresh)
{
    /* EPOLLPRI: TCP urgent data, at whose mark a receive stops short
     * (recv_ready in io/ops.c must know). */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLET, .data.fd = fd};
    int first = fresh ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(rt->ready_fd, first, fd, &ev) == 0)
        return true;
    if (errno != (fresh ? EEXIST : ENOENT))
        return false;
    return epoll_ctl(rt->ready_fd, fresh ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) == 0;
}

int mag__ready_wait(int fd, uint32_t gen, uint32_t seen, mag__ready_kept_t *kept)
{
    mag_task_t *self = mag__task_current();
    mag_runtime_t *rt = self->rt;
    struct mag__ready_slot *s = &rt->ready_slots[fd];
    struct mag__ready_waiter wt = {.task = self};
    int rc = mag__suspend_begin(MAG__WAIT_IO, &wt);
    if (rc)
        return rc;
    struct mag__ready_waiter *expect = NULL;
    /* release: the record before it is seen by a drainer (acquire); seq_cst,
     * with the loads of gen and of the count below, against
     * mag__ready_close's bump of gen and against the drainer's count, each
     * followed by an exchange of the slot: either it finds us there and
     * wakes us, or we see the close or the event. */
    if (!atomic_compare_exchange_strong_explicit(&s->waiter, &expect, &wt, memory_order_seq_cst,
                                                 memory_order_relaxed)) {
        mag__suspend_end();
        return -ENOSYS; /* another task waits on it: that one keeps the slot */
    }
    bool early = false; /* an event came since the caller's count */
    if (atomic_load_explicit(&s->gen, memory_order_seq_cst) != gen)
        rc = -EBADF; /* mag_close came first: wait for nothing on the number */
    else if (kept && kept->armed && kept->gen == gen)
        early = atomic_load_explicit(&s->events, memory_order_seq_cst) != seen;
    else if (!arm(rt, fd, kept != NULL))
        rc = -ENOSYS; /* not pollable this way (a regular file, say): the ring's */
    else if (kept)
        *kept = (mag__ready_kept_t){.armed = true, .gen = gen};
    if ((rc || early) && take_back(rt, fd, &wt)) {
        mag__suspend_end();
        return rc;
    }
    /* Otherwise the closer or a drainer (a stale event) took the record:
     * its done is coming. */
    int interrupted = 0;
    /* acquire: pairs with the drainer's release of done. */
    while (!atomic_load_explicit(&wt.done, memory_order_acquire)) {
        if (!interrupted && !rc && (interrupted = mag__suspend_check()) != 0) {
            if (take_back(rt, fd, &wt))
                break; /* nobody will wake us: ours again */
            continue;  /* a drainer has us: its wake is coming */
        }
        mag__park();
    }
    mag__suspend_end();
    if (interrupted)
        return interrupted;
    return rc ? rc : wt.res;
}
