/*
 * runtime/ready.h - shared socket readiness for a multi-worker runtime
 * (ready.c). Private to runtime/ and io/.
 *
 * A receive on a worker's ring completes only on the thread that submitted
 * it: the kernel posts it through task work on that thread. When that
 * worker is off the CPU, its connections wait for it while the others idle.
 * A task that finds a socket empty instead waits for readiness on one epoll
 * (the first worker drains it at its scheduler's turns and sleeps in it;
 * the monitor drains it when that worker is held), and receives on
 * whichever worker resumes it: the woken tasks are stolen like any other,
 * so no connection is tied to a thread.
 */
#ifndef MAGPIE_RUNTIME_READY_H
#define MAGPIE_RUNTIME_READY_H

#include "runtime/sched.h"

/* The epoll and the waiter table, when rt has several workers and readiness
 * is on; 0 or -errno. Leaves rt->ready_fd -1 when off. */
MAG_HIDDEN int mag__ready_init(mag_runtime_t *rt);
MAG_HIDDEN void mag__ready_free(mag_runtime_t *rt);
/* Puts the ring of w, if w is the poller (the first worker), in the
 * epoll, so that the poller can sleep in epoll_wait and still be woken by
 * its ring (mag__ready_sleep). 0 or -errno. */
MAG_HIDDEN int mag__ready_attach(mag__worker_t *w);
/* Takes the events there are (a batch) and wakes their waiters, from a
 * worker or from the monitor (whose wakes go through the inject queue).
 * Returns how many events it took. */
MAG_HIDDEN int mag__ready_drain(mag_runtime_t *rt);
/* The scheduler's look at the epoll: if w is the poller, drains it as
 * mag__ready_drain does; otherwise does nothing and returns 0. turn: one
 * of the scheduler's periodic turns, skipped within 20 us of the last
 * look; else (running out of work) always. */
MAG_HIDDEN int mag__ready_poll(mag__worker_t *w, bool turn);
/* The poller's sleep (ring.c, mag__ring_wait): in epoll_wait until an
 * event, a completion on its ring, a signal or task work, or deadline_ns
 * (mag__now() time; UINT64_MAX: none); wakes the waiters of the events it
 * took, whose tasks queue on w. */
MAG_HIDDEN void mag__ready_sleep(mag__worker_t *w, uint64_t deadline_ns);
/* A registration its owner may trust from one wait to the next: held in
 * the record of a descriptor that only magpie closes (a mag_serve
 * connection's), zeroed when the descriptor is new. */
typedef struct mag__ready_kept {
    bool armed;   /* registered by one of the owner's waits ... */
    uint32_t gen; /* ... under this close count of the number */
} mag__ready_kept_t;
/* From a task, fd below rt->ready_nslots: waits until fd may be read.
 * gen: mag__ready_gen at the start of the operation; seen:
 * mag__ready_events read before the receive that found fd empty; kept:
 * the owner's trust when only mag_close ever closes this number while it
 * names this socket (the caller is a mag_serve connection on its own
 * descriptor), else NULL. 0 when it may be read (or spuriously: the caller
 * retries), -ECANCELED or -ETIMEDOUT, -EBADF when mag_close closed fd
 * meanwhile, or -ENOSYS when readiness cannot serve this descriptor (the
 * caller then uses the ring). */
MAG_HIDDEN int mag__ready_wait(int fd, uint32_t gen, uint32_t seen, mag__ready_kept_t *kept);
/* The count of events taken for fd, read before a receive on it, with
 * MAG__READY_GONE set once an event said that the peer shut its side, hung
 * up or failed, or sent TCP urgent data (until mag_close of the number):
 * the socket may then read as empty to a receive (or stop short, at the
 * urgent mark) while the next one returns at once, and no event will say
 * so again. */
MAG_HIDDEN uint32_t mag__ready_events(mag_runtime_t *rt, int fd);
#define MAG__READY_GONE 0x80000000u
/* mag_close of fd, before the descriptor is closed: a task waiting for it
 * returns -EBADF, and one woken for it receives nothing more from that
 * number (it waits for a receive inside recv(2) on it to return). */
MAG_HIDDEN void mag__ready_close(mag_runtime_t *rt, int fd);
/* The same for every runtime with readiness: a mag_close from a plain
 * thread. */
MAG_HIDDEN void mag__ready_close_all(int fd);
/* A receive on fd (below rt->ready_nslots): the number's close count at
 * its start; then each recv(2) between enter and leave, and none when
 * enter says the number was closed since (false). */
MAG_HIDDEN uint32_t mag__ready_gen(mag_runtime_t *rt, int fd);
MAG_HIDDEN bool mag__ready_enter(mag_runtime_t *rt, int fd, uint32_t gen);
MAG_HIDDEN void mag__ready_leave(mag_runtime_t *rt, int fd);
/* Whether rt's sockets go through readiness. */
static inline bool mag__ready_on(const mag_runtime_t *rt)
{
    return rt->ready_fd >= 0;
}

/* Whether w is the readiness poller: the first worker, with readiness on. */
static inline bool mag__ready_poller(const mag__worker_t *w)
{
    return w->index == 0 && mag__ready_on(w->rt);
}

#endif /* MAGPIE_RUNTIME_READY_H */
