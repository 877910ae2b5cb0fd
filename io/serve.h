/*
 * io/serve.h - the records mag_serve shares between its two files: serve.c
 * (the accept loop, the connection tasks, the cap on connections) and
 * serve_conn.c (what each connection is waiting for, the timeouts, the
 * phases, and which connections to close when descriptors run out).
 *
 * How a wait is timed. Every operation a connection task runs on its own
 * descriptor passes through mag__serve_wait_begin / _end (called by
 * mag__io_run). Begin stores one word in the connection's record: when the
 * wait must end (its deadline, or none) and two flags, whether it counts as
 * idle (a keep-alive or first-byte wait: the first to go when descriptors
 * run out) and whether it is a send. End clears the word. The serve task
 * sweeps the live connections every sweep_ns; a wait whose deadline has
 * passed is cut: its word becomes WAIT_CUT (a compare-and-swap, so that a
 * wait which ended meanwhile is never cut in its successor's place) and the
 * socket is shut down both ways, which makes the blocked recv return 0 and
 * the blocked send -EPIPE. A cut send also gets SO_LINGER 0, so that close
 * resets the connection and the kernel drops the unsent data at once.
 */
#ifndef MAGPIE_IO_SERVE_H
#define MAGPIE_IO_SERVE_H

#include <pthread.h>
#include <stdatomic.h>

#include "io/internal.h"
#include "runtime/ready.h"

/* The wait word of a connection (conn_t.wait). */
#define WAIT_NONE 0ull             /* no operation on the connection in flight */
#define WAIT_IDLE 1ull             /* flag: the wait counts as idle */
#define WAIT_SEND 2ull             /* flag: the wait is a send */
#define WAIT_FLAGS 3ull            /* the deadline is the word without these bits */
#define WAIT_CUT 4ull              /* the serve cut the connection (sticky) */
#define WAIT_FOREVER (~WAIT_FLAGS) /* a wait without deadline */

typedef struct serve serve_t;

/* A connection's record, owned by the serve: linked in `live` while its task
 * may run, on `free_conns` afterwards. */
struct mag__conn {
    struct mag__conn *prev, *next;
    serve_t *serve;
    mag_task_t *task; /* set by the task itself when it starts; NULL before */
    int fd;

    /* The connection task's own: the phase (mag_conn_phase) and since when,
     * whether any input has arrived yet, when it was accepted. */
    int phase;
    bool got_input;
    uint64_t phase_since_ns;
    uint64_t accepted_ns;

    /* The connection task's receives on fd with several workers (io/ops.c,
     * recv_ready). tcp: fd is a TCP stream, on which a receive that
     * returns less than it asked for leaves the socket empty. drained: the
     * last receive did, and drained_events is the readiness event count read
     * before it; the next receive then waits for an event first instead of
     * trying a socket that is known to be empty. */
    bool tcp;
    bool drained;
    uint32_t drained_events;
    /* Whether the skip may be used at all: kernel TCP as it copies, checked
     * once, at the first short receive (io/ops.c, skip_allowed). */
    bool skip_checked, skip_allowed;
    /* The connection's own readiness registration (runtime/ready.h). */
    mag__ready_kept_t kept;

    /* Written by the connection task (begin/end), read and cut by the serve
     * task's sweep under clock. */
    _Atomic uint64_t wait;
    _Atomic uint64_t idle_since_ns; /* when the current idle wait's idleness began */
};
typedef struct mag__conn conn_t;

struct serve {
    mag__op_t op;     /* first: the multishot accept's user_data */
    mag_task_t *task; /* the serve task, woken by each accept CQE */
    int lfd;
    bool tcp; /* lfd listens for TCP: its connections are TCP streams */
    mag_conn_fn handler;
    void *ctx;

    /* The options (0: none). */
    uint64_t header_timeout_ns, idle_timeout_ns, send_timeout_ns;
    uint64_t sweep_ns; /* how often the serve looks for waits past their deadline */
    size_t max_conns;
    mag_spawn_opts_t conn_opts;

    /* Filled by the completions (ring owner's thread), emptied by the serve
     * task: accepted descriptors and the accept's final result. */
    pthread_mutex_t qlock;
    int *q;
    size_t qlen, qcap;
    int *spare; /* the serve task's second buffer (swapped in) */
    size_t spare_cap;
    int final_res;       /* result of the CQE without F_MORE */
    mag__waiter_t ended; /* signalled by that CQE, after the last touch of qlock */

    /* Accepted descriptors waiting for a free slot under max_conns, oldest
     * at held[held_head]. The serve task's only. */
    int *held;
    size_t held_head, held_len, held_cap;

    /* Connection tasks. */
    pthread_mutex_t clock;
    conn_t *live;
    conn_t *free_conns;
    size_t nlive;
    bool paused;   /* accepting stopped at max_conns: an ending connection wakes the serve */
    bool stopping; /* no handler starts once set */
    mag__waiter_t drained; /* signalled by the last connection once stopping */
};

/* CLOCK_MONOTONIC_COARSE: a few nanoseconds where mag__now() costs tens,
 * for times that only rank idle connections when no timeout is set (a
 * server without timeouts reads it on every receive). Never for a
 * deadline: it lags by a tick or more (up to 18 ms measured in a VM whose
 * ticks were late), which would cut a wait early. */
MAG_HIDDEN uint64_t mag__serve_coarse_now(void);
/* Sets up a new connection's timing record (before its task is spawned). */
MAG_HIDDEN void mag__serve_conn_init(conn_t *c, uint64_t now);
/* The sweep: cuts every wait past its deadline. Takes clock. Returns how
 * many were cut. */
MAG_HIDDEN size_t mag__serve_sweep(serve_t *s, uint64_t now);
/* Out of descriptors: cuts the connections idle the longest (at least one,
 * an eighth of those idle for a second or more, at most 32). Takes clock.
 * Returns how many were cut (0: none is idle). */
MAG_HIDDEN size_t mag__serve_drain_idle(serve_t *s);

#endif /* MAGPIE_IO_SERVE_H */
