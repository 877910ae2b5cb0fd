/*
 * runtime/ring.h - the ring driver (ring.c): the only user of io_uring setup,
 * submission, reaping, waiting and cancel forwarding. Operations elsewhere
 * only prepare SQEs they get from mag__sqe (internal.h). Private to runtime/.
 */
#ifndef MAGPIE_RUNTIME_RING_H
#define MAGPIE_RUNTIME_RING_H

#include "runtime/sched.h"

/* Creates w's ring (the newest setup flags the kernel accepts) and its
 * doorbell eventfd. On the thread that will own the ring. 0 or -errno. */
MAG_HIDDEN int mag__ring_setup(mag__worker_t *w);
/* Closes the ring and the doorbell; a no-op when there is none. */
MAG_HIDDEN void mag__ring_teardown(mag__worker_t *w);
/* Submits what is pending (and forwarded cancels) and reaps what completed,
 * without blocking. Returns the completions handled. */
MAG_HIDDEN unsigned mag__ring_poll(mag__worker_t *w);
/* Submits the SQEs prepared so far, if any (one io_uring_enter). */
MAG_HIDDEN void mag__ring_flush(mag__worker_t *w);
/* Going to sleep: arms the doorbell and announces w as sleeping (seq_cst),
 * so that mag__worker_wake either sees it or w sees the waker's work. */
MAG_HIDDEN void mag__ring_sleep_begin(mag__worker_t *w);
/* A cancel was forwarded to w (checked after sleep_begin: then sleep not). */
MAG_HIDDEN bool mag__ring_cancels_pending(mag__worker_t *w);
/* Submits and waits for a completion (the doorbell counts) or until
 * deadline_ns (absolute, UINT64_MAX: none). */
MAG_HIDDEN void mag__ring_wait(mag__worker_t *w, uint64_t deadline_ns);
MAG_HIDDEN void mag__ring_sleep_end(mag__worker_t *w);
/* Whether w's completion queue holds CQEs: a hint, from any thread. */
MAG_HIDDEN bool mag__ring_ready(mag__worker_t *w);
/* The same, and the first of them is not the doorbell's: what a rescuer of
 * an owner outside any task can reap (ring.c, reap). */
MAG_HIDDEN bool mag__ring_ready_past_doorbell(mag__worker_t *w);
/* From another worker, while w is stuck in a task (monitor.c): reaps w's
 * ring here, unless someone else is reaping it. The woken tasks are queued on
 * the calling worker. Returns the CQEs taken. */
MAG_HIDDEN unsigned mag__ring_rescue(mag__worker_t *w);
/* From another worker, while w is stuck in a task: the cancels waiting in
 * w's mailbox are made here where the kernel allows (ring.c, sync_cancel);
 * the rest stay for w. */
MAG_HIDDEN void mag__ring_rescue_cancels(mag__worker_t *w);
/* From another worker, while w is stuck in a task: submits the SQEs w's
 * tasks prepared before w went into it, which would otherwise wait for it
 * to end (ring.c, commit_sqes). */
MAG_HIDDEN void mag__ring_rescue_submit(mag__worker_t *w);
/* Whether w holds prepared SQEs the kernel has not taken: a hint, from any
 * thread. */
MAG_HIDDEN bool mag__ring_sqes_waiting(mag__worker_t *w);
/* Whether w's mailbox holds cancels: a hint, from any thread. */
MAG_HIDDEN bool mag__ring_cancels_waiting(mag__worker_t *w);

/* For tests: feature bits (IORING_FEAT_*) cleared from every ring set up
 * after it changes, to run the paths of older kernels on this one. Set
 * before creating a runtime. */
MAG_HIDDEN extern uint32_t mag__ring_feature_mask;

#endif /* MAGPIE_RUNTIME_RING_H */
