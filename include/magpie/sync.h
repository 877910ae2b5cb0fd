/*
 * magpie/sync.h - synchronisation primitives and channels shared by tasks and
 * plain OS threads.
 *
 * Common contract of everything below:
 *   - A call that has to wait suspends the calling task (its worker runs other
 *     tasks meanwhile) or, from a plain OS thread, blocks the thread on a
 *     futex. Tasks and threads may wait on the same object.
 *   - Waiters are served in FIFO order, and a lock or permit that is released
 *     while others wait is handed straight to the first of them (no barging),
 *     so nobody starves.
 *   - A waiting task returns -ECANCELED when it is cancelled and -ETIMEDOUT
 *     when its deadline (mag_deadline_push) passes. A waiter that leaves this
 *     way has consumed nothing: no permit, lock or message is taken on its
 *     behalf and lost. If the hand-off to a waiter and its cancellation race,
 *     the hand-off wins: the call returns success with what it was handed (the
 *     task's cancellation stays pending and its next suspension point reports
 *     it).
 *   - A call that does not need to wait succeeds even in a cancelled task or
 *     past its deadline, as in Tokio: only an actual wait is interrupted.
 *     Plain threads have no cancellation or deadlines; their waits end only
 *     when the condition is met.
 *   - try_ variants never wait and return -EAGAIN where the plain call would.
 *   - A NULL object pointer gives -EINVAL (0 / false for the query functions).
 *   - Primitives are caller-allocated: init them (or use the static
 *     initializer) before use; no destroy is needed, but none may be in use
 *     when its memory goes away. Channels, broadcast and watch channels are
 *     handles created and destroyed by the library.
 *
 * The primitives' types reserve storage only: their layout (C11 atomics and a
 * spinlock) is private to the library, so that this header is plain C11 and
 * C++ and the layout can change without touching callers' code. A type's
 * size and alignment are part of the ABI, and the library checks with static
 * asserts that its real layout fits them. Init an object (or use its static
 * initializer) and pass pointers to it; do not look inside the storage, nor
 * copy an object that is in use.
 */
#ifndef MAGPIE_SYNC_H
#define MAGPIE_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "magpie/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- opaque storage ------------------------------------------------------
 * MAG__OPAQUE(n) is n 64-bit words, 8-aligned. The static initializers set
 * the first two 32-bit words (the primitive's state word, or a barrier's
 * party count) and zero the rest; the private layouts are built so that this
 * is the state the _init functions give (sync/internal.h). alignas is a C++11
 * keyword, _Alignas its C11 spelling. */
#ifdef __cplusplus
#define MAG__ALIGNAS(n) alignas(n)
#else
#define MAG__ALIGNAS(n) _Alignas(n)
#endif
#define MAG__OPAQUE(words)                                                                         \
    union {                                                                                        \
        uint32_t u32[2 * (words)]; /* first: what the static initializers set */                   \
        MAG__ALIGNAS(8) uint64_t u64[words];                                                       \
        void *ptr[words];                                                                          \
    } mag__opaque
/* Plain braces, no designators or compound literals: valid in C and C++. */
/* clang-format off */
#define MAG__OPAQUE_INIT(w0, w1) { { { (uint32_t)(w0), (uint32_t)(w1) } } }
/* clang-format on */

/* ---- mutex ----------------------------------------------------------------
 * Uncontended lock and unlock are one atomic compare-and-swap each. Under
 * contention the unlocker hands the lock to the first waiter. There is no
 * owner tracking: any task or thread may unlock a locked mutex (as with
 * asyncio.Lock), and the mutex is not recursive. */
typedef struct mag_mutex {
    MAG__OPAQUE(4);
} mag_mutex_t;
#define MAG_MUTEX_INIT MAG__OPAQUE_INIT(0, 0)

/* 0 or -EINVAL. */
MAG_API int mag_mutex_init(mag_mutex_t *m);
/* Suspends while locked. 0 (locked), -ECANCELED, -ETIMEDOUT, -EINVAL. */
MAG_API int mag_mutex_lock(mag_mutex_t *m);
/* Never suspends. 0 (locked), -EAGAIN (held, or others are queued), -EINVAL. */
MAG_API int mag_mutex_trylock(mag_mutex_t *m);
/* Never suspends. 0, -EPERM when the mutex is not locked, -EINVAL. */
MAG_API int mag_mutex_unlock(mag_mutex_t *m);

/* ---- reader-writer lock ---------------------------------------------------
 * Many readers or one writer. No writer starvation: once a writer waits, new
 * readers queue behind it; when a writer unlocks, the readers at the head of
 * the queue are admitted together. Uncontended rdlock, wrlock and unlock are
 * one compare-and-swap each. */
typedef struct mag_rwlock {
    MAG__OPAQUE(4);
} mag_rwlock_t;
#define MAG_RWLOCK_INIT MAG__OPAQUE_INIT(0, 0)

MAG_API int mag_rwlock_init(mag_rwlock_t *l); /* 0 or -EINVAL */
/* Suspend until admitted. 0, -ECANCELED, -ETIMEDOUT, -EINVAL. */
MAG_API int mag_rwlock_rdlock(mag_rwlock_t *l);
MAG_API int mag_rwlock_wrlock(mag_rwlock_t *l);
/* Never suspend. 0, -EAGAIN, -EINVAL. */
MAG_API int mag_rwlock_tryrdlock(mag_rwlock_t *l);
MAG_API int mag_rwlock_trywrlock(mag_rwlock_t *l);
/* Releases a read lock (when readers hold it) or the write lock. Never
 * suspends. 0, -EPERM when it is not locked, -EINVAL. */
MAG_API int mag_rwlock_unlock(mag_rwlock_t *l);

/* ---- counting semaphore ---------------------------------------------------
 * FIFO: a release while tasks wait hands the permit to the first waiter. */
typedef struct mag_sem {
    MAG__OPAQUE(4);
} mag_sem_t;
#define MAG_SEM_MAX 0x7fffffffu
/* The state word is permits << 1 (the low bit says that tasks wait). */
#define MAG_SEM_INIT(count) MAG__OPAQUE_INIT((uint32_t)(count) << 1, 0)

/* 0, or -EINVAL (NULL, count > MAG_SEM_MAX). */
MAG_API int mag_sem_init(mag_sem_t *s, unsigned count);
/* Suspends until a permit is available. 0, -ECANCELED, -ETIMEDOUT, -EINVAL. */
MAG_API int mag_sem_acquire(mag_sem_t *s);
/* Never suspends. 0, -EAGAIN (no permit, or others are queued), -EINVAL. */
MAG_API int mag_sem_tryacquire(mag_sem_t *s);
/* Returns a permit (to the first waiter if any). Never suspends.
 * 0, -EOVERFLOW (would exceed MAG_SEM_MAX), -EINVAL. */
MAG_API int mag_sem_release(mag_sem_t *s);
/* Permits available now (a snapshot); 0 for NULL. */
MAG_API unsigned mag_sem_value(mag_sem_t *s);

/* ---- event (asyncio.Event) -----------------------------------------------
 * A flag: wait returns once it is set; set wakes every waiter; clear resets it
 * (waiters already woken still return 0). */
typedef struct mag_event {
    MAG__OPAQUE(4);
} mag_event_t;
#define MAG_EVENT_INIT MAG__OPAQUE_INIT(0, 0)

MAG_API int mag_event_init(mag_event_t *e);  /* 0 or -EINVAL */
MAG_API int mag_event_set(mag_event_t *e);   /* 0 or -EINVAL; never suspends */
MAG_API int mag_event_clear(mag_event_t *e); /* 0 or -EINVAL; never suspends */
/* Suspends until set. 0, -ECANCELED, -ETIMEDOUT, -EINVAL. */
MAG_API int mag_event_wait(mag_event_t *e);
MAG_API bool mag_event_is_set(mag_event_t *e);

/* ---- notify (tokio::sync::Notify) ----------------------------------------
 * notify_one wakes the first waiter or, when nobody waits, stores a single
 * permit that the next wait consumes at once (several notify_one calls with
 * nobody waiting still store one permit). notify_all wakes every current
 * waiter and stores nothing. A waiter cancelled after it was picked by
 * notify_one keeps the notification (its wait returns 0). */
typedef struct mag_notify {
    MAG__OPAQUE(4);
} mag_notify_t;
#define MAG_NOTIFY_INIT MAG__OPAQUE_INIT(0, 0)

MAG_API int mag_notify_init(mag_notify_t *n); /* 0 or -EINVAL */
/* Suspends until notified. 0, -ECANCELED, -ETIMEDOUT, -EINVAL. */
MAG_API int mag_notify_wait(mag_notify_t *n);
MAG_API int mag_notify_one(mag_notify_t *n); /* 0 or -EINVAL; never suspends */
MAG_API int mag_notify_all(mag_notify_t *n); /* 0 or -EINVAL; never suspends */

/* ---- condition variable ---------------------------------------------------
 * Used with a mag_mutex_t, as pthread_cond_t with pthread_mutex_t. Waits can
 * wake spuriously (another waiter may take the state first): test the
 * predicate in a loop. */
typedef struct mag_cond {
    MAG__OPAQUE(3);
} mag_cond_t;
#define MAG_COND_INIT MAG__OPAQUE_INIT(0, 0)

MAG_API int mag_cond_init(mag_cond_t *c); /* 0 or -EINVAL */
/* Atomically unlocks m and waits for a signal, then locks m again. m is held
 * again on every return except -EINVAL and -EPERM, -ECANCELED and -ETIMEDOUT
 * included (the relock itself ignores cancellation). Returns 0, -ECANCELED,
 * -ETIMEDOUT, -EPERM (m is not locked), -EINVAL. */
MAG_API int mag_cond_wait(mag_cond_t *c, mag_mutex_t *m);
MAG_API int mag_cond_signal(mag_cond_t *c);    /* wakes the first waiter; 0 or -EINVAL */
MAG_API int mag_cond_broadcast(mag_cond_t *c); /* wakes every waiter; 0 or -EINVAL */

/* ---- barrier --------------------------------------------------------------
 * n parties: each wait suspends until n have arrived, then all go on and the
 * barrier resets for the next round. A waiter that is cancelled before the
 * round completes leaves it (the round then needs one more arrival). */
typedef struct mag_barrier {
    MAG__OPAQUE(4);
} mag_barrier_t;
/* The first two words: n parties, 0 arrived. */
#define MAG_BARRIER_INIT(n) MAG__OPAQUE_INIT(n, 0)
#define MAG_BARRIER_SERIAL 1 /* returned to exactly one party per round */

/* 0, or -EINVAL (NULL, n == 0). */
MAG_API int mag_barrier_init(mag_barrier_t *b, unsigned n);
/* Returns MAG_BARRIER_SERIAL to the party that completed the round and 0 to
 * the others; -ECANCELED, -ETIMEDOUT, -EINVAL (NULL, not initialised). */
MAG_API int mag_barrier_wait(mag_barrier_t *b);

/* ---- wait group (Go's sync.WaitGroup) ------------------------------------ */
typedef struct mag_wg {
    MAG__OPAQUE(4);
} mag_wg_t;
#define MAG_WG_INIT MAG__OPAQUE_INIT(0, 0)

MAG_API int mag_wg_init(mag_wg_t *wg); /* 0 or -EINVAL */
/* Adds delta (may be negative) to the counter; reaching 0 wakes every waiter.
 * 0, or -EINVAL (NULL, or the counter would go negative: it is unchanged).
 * Never suspends. */
MAG_API int mag_wg_add(mag_wg_t *wg, int64_t delta);
MAG_API int mag_wg_done(mag_wg_t *wg); /* mag_wg_add(wg, -1) */
/* Suspends until the counter is 0. 0, -ECANCELED, -ETIMEDOUT, -EINVAL. */
MAG_API int mag_wg_wait(mag_wg_t *wg);

/* ---- channels -------------------------------------------------------------
 * MPMC channels of fixed-size elements, copied in and out by value.
 *   capacity 0                   rendezvous: a send waits for a receiver
 *   capacity 1..                 bounded buffer: send waits while it is full
 *   capacity MAG_CHAN_UNBOUNDED  send never waits (the buffer grows)
 * Messages are received in the order they were sent (per sender), each by
 * exactly one receiver; waiting senders and receivers are served FIFO. */
typedef struct mag_chan mag_chan_t;
#define MAG_CHAN_UNBOUNDED SIZE_MAX

/* NULL for elem_size 0, a buffer too large, or out of memory. A bounded
 * buffer is allocated up front; an unbounded one grows by doubling. */
MAG_API mag_chan_t *mag_chan_create(size_t elem_size, size_t capacity);
/* Copies *elem in. Suspends while the buffer is full (or, rendezvous, until a
 * receiver takes it). 0 when the message is in the channel (it will be
 * received exactly once unless the channel is destroyed), -EPIPE when the
 * channel is closed (before or while waiting: the message was not sent),
 * -ECANCELED, -ETIMEDOUT (not sent), -ENOMEM (unbounded growth failed),
 * -EINVAL. */
MAG_API int mag_chan_send(mag_chan_t *c, const void *elem);
/* Copies the oldest message out into *elem. Suspends while empty. 0, -EPIPE
 * once closed and drained, -ECANCELED, -ETIMEDOUT (nothing taken), -EINVAL. */
MAG_API int mag_chan_recv(mag_chan_t *c, void *elem);
/* Never suspend: -EAGAIN where the plain call would wait. */
MAG_API int mag_chan_try_send(mag_chan_t *c, const void *elem);
MAG_API int mag_chan_try_recv(mag_chan_t *c, void *elem);
/* Closes the channel: later sends fail with -EPIPE, waiting senders return
 * -EPIPE (not sent), receivers drain what is buffered and then get -EPIPE.
 * Closing twice is harmless. 0 or -EINVAL. (API.md had void: an int reports
 * the NULL handle like every other call.) */
MAG_API int mag_chan_close(mag_chan_t *c);
/* asyncio.Queue.task_done / join: every successful send counts one unfinished
 * item; task_done marks one finished; join suspends until none is left.
 * task_done returns 0, or -EINVAL (NULL, or more calls than sends: the count
 * is unchanged). join returns 0, -ECANCELED, -ETIMEDOUT, -EINVAL. Closing the
 * channel does not change the count. (API.md had void task_done: the int
 * reports the extra call that asyncio reports with ValueError.) */
MAG_API int mag_chan_task_done(mag_chan_t *c);
MAG_API int mag_chan_join(mag_chan_t *c);
/* Messages buffered now (a snapshot; always 0 for a rendezvous channel). */
MAG_API size_t mag_chan_len(mag_chan_t *c);
MAG_API size_t mag_chan_cap(mag_chan_t *c); /* the capacity given to create */
MAG_API bool mag_chan_closed(mag_chan_t *c);
/* Frees the channel and any messages still buffered. Nobody may be using it
 * or waiting on it (close it and let the users finish first). NULL is ignored. */
MAG_API void mag_chan_destroy(mag_chan_t *c);

/* ---- select (Go's select, tokio::select!) --------------------------------
 * Waits until one of several channel operations can proceed, performs exactly
 * that one, and returns its index. Ready cases are tried starting from a
 * random one, so that no case starves. A case whose chan is NULL is disabled
 * (Go's nil channel). The calling task's deadline bounds the wait: push one
 * with mag_deadline_push for a timeout. */
enum { MAG_SELECT_SEND = 1, MAG_SELECT_RECV = 2 };
typedef struct mag_select_case {
    mag_chan_t *chan; /* NULL: the case is disabled */
    int op;           /* MAG_SELECT_SEND or MAG_SELECT_RECV */
    void *elem;       /* SEND: the message to copy in; RECV: where to copy out */
    int result;       /* out, for the case taken: 0, or -EPIPE (closed: for
                         RECV, closed and drained; for SEND, not sent) */
} mag_select_case_t;
#define MAG_SELECT_MAX 1024

/* Suspends until a case can proceed. Returns the index of the case taken
 * (its result field says whether it transferred or found the channel
 * closed), -ECANCELED or -ETIMEDOUT (no case taken), -EINVAL (NULL cases, n
 * 0 or above MAG_SELECT_MAX, a bad op, a NULL elem on an enabled case), -ENOMEM
 * (more than 8 cases need a heap array), or
 * -EDEADLK when every case is disabled and the caller is a plain thread (a
 * task waits for cancellation or its deadline, as Go's empty select). */
MAG_API int mag_select(mag_select_case_t *cases, size_t n);
/* Never suspends: the index of a case taken, -EAGAIN if none is ready, or
 * -EINVAL. */
MAG_API int mag_select_try(mag_select_case_t *cases, size_t n);

/* ---- broadcast channel (tokio::sync::broadcast) --------------------------
 * Every subscriber receives every message sent after it subscribed, in order.
 * The channel keeps the last `capacity` messages; send never waits. A
 * subscriber that falls more than `capacity` messages behind has lost the
 * oldest ones: its next recv returns -EOVERFLOW and stores how many it missed,
 * and the recv after that returns the oldest message still kept (Tokio's
 * RecvError::Lagged). */
typedef struct mag_bcast mag_bcast_t;
typedef struct mag_bcast_sub mag_bcast_sub_t;

/* NULL for elem_size 0, capacity 0, too large, or out of memory. */
MAG_API mag_bcast_t *mag_bcast_create(size_t elem_size, size_t capacity);
/* A new subscriber, positioned after the newest message. NULL for NULL b, a
 * closed channel, or out of memory. */
MAG_API mag_bcast_sub_t *mag_bcast_subscribe(mag_bcast_t *b);
/* Copies *elem into every subscriber's view. Never suspends. Returns the
 * number of subscribers it reached (0 is not an error), -EPIPE when closed,
 * -EINVAL. */
MAG_API int mag_bcast_send(mag_bcast_t *b, const void *elem);
/* The subscriber's next message. Suspends while there is none. 0; -EOVERFLOW
 * with *missed (if not NULL) = messages lost; -EPIPE once the channel is
 * closed and this subscriber has seen everything; -ECANCELED, -ETIMEDOUT,
 * -EINVAL. */
MAG_API int mag_bcast_recv(mag_bcast_sub_t *s, void *elem, uint64_t *missed);
MAG_API int mag_bcast_try_recv(mag_bcast_sub_t *s, void *elem, uint64_t *missed);
/* Ends a subscription (nobody may be receiving on it). NULL is ignored. */
MAG_API void mag_bcast_unsubscribe(mag_bcast_sub_t *s);
/* Receivers drain what they have not seen, then get -EPIPE. 0 or -EINVAL. */
MAG_API int mag_bcast_close(mag_bcast_t *b);
/* Closes and releases the channel. Subscriptions stay valid (recv returns
 * -EPIPE after draining) until each is unsubscribed; the memory goes with
 * the last of them. NULL is ignored. */
MAG_API void mag_bcast_destroy(mag_bcast_t *b);

/* Shared messages: a broadcast of pointers to reference-counted messages, so
 * that a large message is not copied once per subscriber (tokio's
 * broadcast::Sender<Arc<T>>). Elements are `void *`: send and recv take the
 * address of one. The channel calls retain(msg) under its lock and
 * release(msg) outside it; keep retain to an atomic increment.
 *   - mag_bcast_send(b, &msg): the channel takes its own reference for the
 *     slot (the caller keeps its own); the message it overwrites (the oldest,
 *     once `capacity` are kept) is released. msg NULL -> -EINVAL.
 *   - mag_bcast_recv(sub, &msg): msg arrives with a reference the receiver
 *     owns: release it when done. Messages a lagging subscriber missed cost
 *     it nothing (-EOVERFLOW as above): it never held them.
 *   - destroying the channel releases what its slots still hold, with the
 *     last subscription.
 * A message with an atomic count:
 *     struct line { _Atomic int refs; size_t len; char text[]; };
 *     static void line_retain(void *p)
 *     {   atomic_fetch_add_explicit(&((struct line *)p)->refs, 1, memory_order_relaxed); }
 *     static void line_release(void *p)   // acq_rel: the last owner sees every write
 *     {   if (atomic_fetch_sub_explicit(&((struct line *)p)->refs, 1, memory_order_acq_rel) == 1)
 *             free(p); }
 * The sender creates the line with refs = 1, sends it, and releases its own
 * reference. NULL for capacity 0, NULL retain or release, or no memory. */
MAG_API mag_bcast_t *mag_bcast_create_shared(size_t capacity, void (*retain)(void *msg),
                                            void (*release)(void *msg));

/* ---- watch channel (tokio::sync::watch) ----------------------------------
 * Holds one value, the latest sent, with a version that starts at 0 (the
 * initial value) and grows by one per send. Receivers see the latest value,
 * never a queue: intermediate values may be skipped. */
typedef struct mag_watch mag_watch_t;

/* initial: the value at version 0 (NULL: zero bytes). NULL for elem_size 0 or
 * out of memory. */
MAG_API mag_watch_t *mag_watch_create(size_t elem_size, const void *initial);
/* Replaces the value, bumps the version, wakes every waiter. Never suspends.
 * 0, -EPIPE when closed, -EINVAL. */
MAG_API int mag_watch_send(mag_watch_t *w, const void *elem);
/* Copies the current value (elem may be NULL) and its version (version may be
 * NULL). Never suspends. 0 or -EINVAL. */
MAG_API int mag_watch_get(mag_watch_t *w, void *elem, uint64_t *version);
/* Suspends until the version differs from *seen, then copies the value (elem
 * may be NULL) and stores its version in *seen. 0; -EPIPE when the channel is
 * closed and holds nothing newer than *seen; -ECANCELED, -ETIMEDOUT, -EINVAL. */
MAG_API int mag_watch_wait(mag_watch_t *w, uint64_t *seen, void *elem);
/* Wakes every waiter with -EPIPE (once they have seen the last value).
 * 0 or -EINVAL. */
MAG_API int mag_watch_close(mag_watch_t *w);
/* Nobody may be using it. NULL is ignored. */
MAG_API void mag_watch_destroy(mag_watch_t *w);

#ifdef __cplusplus
}
#endif
#endif /* MAGPIE_SYNC_H */
