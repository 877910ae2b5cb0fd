/*
 * io/serve.c - mag_serve: one multishot accept on the ring feeds a task per
 * connection.
 *
 * The accept request lives in the serve task's frame (serve_t). Its
 * completions run on the worker that owns the ring: each one queues the new
 * descriptor under a lock and wakes the serve task, which spawns a task per
 * descriptor. The request ends (a CQE without IORING_CQE_F_MORE) on an error
 * such as EMFILE, or when cancelled; the serve task then backs off or
 * re-arms, or, when cancelled itself, waits for that last CQE before it goes
 * on. Before returning, mag_serve cancels the connection tasks still running
 * and waits for them: nothing refers to its frame (or to ctx) afterwards.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/internal.h"

#define BACKOFF_MIN_NS (1 * MAG_MS)
#define BACKOFF_MAX_NS (128 * MAG_MS)

typedef struct serve serve_t;

/* A connection's record, owned by the serve: linked in `live` while its task
 * may run, on `free_conns` afterwards. */
typedef struct conn {
    struct conn *prev, *next;
    serve_t *serve;
    mag_task_t *task; /* set by the task itself when it starts; NULL before */
    int fd;
} conn_t;

struct serve {
    mag__op_t op;     /* first: the multishot accept's user_data */
    mag_task_t *task; /* the serve task, woken by each accept CQE */
    int lfd;
    mag_conn_fn handler;
    void *ctx;

    /* Filled by the completions (ring owner's thread), emptied by the serve
     * task: accepted descriptors and the accept's final result. */
    pthread_mutex_t qlock;
    int *q;
    size_t qlen, qcap;
    int *spare; /* the serve task's second buffer (swapped in) */
    size_t spare_cap;
    int final_res;       /* result of the CQE without F_MORE */
    mag__waiter_t ended; /* signalled by that CQE, after the last touch of qlock */

    /* Connection tasks. */
    pthread_mutex_t clock;
    conn_t *live;
    conn_t *free_conns;
    size_t nlive;
    bool stopping;         /* no handler starts once set */
    mag__waiter_t drained; /* signalled by the last connection once stopping */
};

static const mag__io_kind_t accept_multishot_kind = {"accept_multishot", NULL, NULL};

/* ---- the accept's completions ------------------------------------------- */

static void queue_fd(serve_t *s, int fd)
{
    if (s->qlen == s->qcap) {
        size_t cap = s->qcap ? 2 * s->qcap : 64;
        int *q = realloc(s->q, cap * sizeof *q);
        if (!q) {
            close(fd); /* no memory to remember it: refuse the connection */
            return;
        }
        s->q = q;
        s->qcap = cap;
    }
    s->q[s->qlen++] = fd;
}

static void accept_complete(mag__op_t *op, int res, uint32_t cqe_flags)
{
    serve_t *s = (serve_t *)op;
    bool more = (cqe_flags & IORING_CQE_F_MORE) != 0;
    mag_task_t *task = s->task;
    pthread_mutex_lock(&s->qlock);
    if (res >= 0)
        queue_fd(s, res);
    if (!more)
        s->final_res = res;
    pthread_mutex_unlock(&s->qlock);
    if (more)
        mag__wake(task); /* the serve task waits for `ended`: s stays alive */
    else
        mag__waiter_signal(&s->ended); /* the last touch of s */
}

static void arm_accept(serve_t *s)
{
    mag__waiter_init(&s->ended);
    s->op.complete = accept_complete;
    struct io_uring_sqe *sqe = mag__sqe(&s->op);
    io_uring_prep_multishot_accept(sqe, s->lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, &s->op);
}

/* Takes the queued descriptors (swapping buffers under the lock). */
static size_t take_fds(serve_t *s, int **out)
{
    pthread_mutex_lock(&s->qlock);
    size_t n = s->qlen;
    int *q = s->q;
    size_t cap = s->qcap;
    s->q = s->spare;
    s->qcap = s->spare_cap;
    s->qlen = 0;
    pthread_mutex_unlock(&s->qlock);
    s->spare = q;
    s->spare_cap = cap;
    *out = q;
    return n;
}

static bool fds_pending(serve_t *s)
{
    pthread_mutex_lock(&s->qlock);
    bool any = s->qlen > 0;
    pthread_mutex_unlock(&s->qlock);
    return any;
}

/* ---- connection tasks ---------------------------------------------------- */

/* Takes c off the live list and back to the free list. Returns true when it
 * was the last connection of a serve that is stopping (signal drained). */
static bool release_conn(serve_t *s, conn_t *c)
{
    pthread_mutex_lock(&s->clock);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = s->free_conns;
    s->free_conns = c;
    bool last = --s->nlive == 0 && s->stopping;
    pthread_mutex_unlock(&s->clock);
    return last;
}

static int conn_main(void *arg)
{
    conn_t *c = arg;
    serve_t *s = c->serve;
    pthread_mutex_lock(&s->clock);
    c->task = mag_self();
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->clock);
    if (!stop)
        (void)s->handler(c->fd, s->ctx);
    /* Unlinked before its descriptor is closed: stop_conns shuts down the
     * descriptors of linked records, never one already closed and reused. */
    int fd = c->fd;
    bool last = release_conn(s, c);
    (void)mag_close(fd);
    if (last)
        mag__waiter_signal(&s->drained); /* the last touch of s */
    return 0;
}

static void start_conn(serve_t *s, int fd)
{
    pthread_mutex_lock(&s->clock);
    conn_t *c = s->free_conns;
    if (c)
        s->free_conns = c->next;
    pthread_mutex_unlock(&s->clock);
    if (!c && !(c = malloc(sizeof *c))) {
        close(fd);
        return;
    }
    c->serve = s;
    c->task = NULL;
    c->fd = fd;
    c->prev = NULL;
    pthread_mutex_lock(&s->clock);
    c->next = s->live;
    if (s->live)
        s->live->prev = c;
    s->live = c;
    s->nlive++;
    pthread_mutex_unlock(&s->clock);

    static const mag_spawn_opts_t opts = {.name = "conn"};
    mag_task_t *t;
    if (mag_spawn_ex(&t, conn_main, c, &opts) == 0) {
        mag_detach(t);
        return;
    }
    (void)release_conn(s, c); /* not stopping: nobody waits to be told */
    close(fd);
}

/* Waits up to grace_ns for the drained signal, ignoring the serve task's own
 * cancellation (which is why it is stopping). true when drained. */
static bool wait_drained(serve_t *s, uint64_t grace_ns)
{
    mag__timer_t tm = {0};
    mag__timer_arm(&tm, s->task, mag_now() + grace_ns);
    while (!mag__waiter_signalled(&s->drained) && !mag__timer_fired(&tm))
        mag__park();
    mag__timer_disarm(&tm);
    return mag__waiter_signalled(&s->drained);
}

/* Stops the connection tasks (gracefully first when grace_ns > 0) and waits
 * until every one has returned. */
static void stop_conns(serve_t *s, uint64_t grace_ns)
{
    mag__waiter_init(&s->drained);
    pthread_mutex_lock(&s->clock);
    s->stopping = true;
    bool wait = s->nlive > 0;
    if (grace_ns)
        for (conn_t *c = s->live; c; c = c->next)
            shutdown(c->fd, SHUT_RD); /* linked, so its fd is still open */
    pthread_mutex_unlock(&s->clock);
    if (wait && grace_ns && wait_drained(s, grace_ns))
        wait = false;
    if (wait) {
        pthread_mutex_lock(&s->clock);
        for (conn_t *c = s->live; c; c = c->next)
            if (c->task)
                mag_cancel(c->task); /* alive: it unlinks itself under this lock */
        wait = s->nlive > 0;
        pthread_mutex_unlock(&s->clock);
    }
    if (wait)
        (void)mag__waiter_wait(&s->drained, false);
    while (s->free_conns) {
        conn_t *c = s->free_conns;
        s->free_conns = c->next;
        free(c);
    }
}

/* ---- the loop ------------------------------------------------------------ */

static bool resource_error(int e)
{
    return e == -EMFILE || e == -ENFILE || e == -ENOBUFS || e == -ENOMEM;
}

/* Errors accept(2) passes on from a connection that died in the backlog, or
 * a signal: try again (see accept(2), "Error handling"). */
static bool transient_error(int e)
{
    switch (-e) {
    case ECONNABORTED:
    case EINTR:
    case EPROTO:
    case EPERM:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ETIMEDOUT:
    case EAGAIN:
        return true;
    default:
        return false;
    }
}

static size_t spawn_pending(serve_t *s, bool closing)
{
    int *fds;
    size_t n = take_fds(s, &fds);
    for (size_t i = 0; i < n; i++) {
        if (closing)
            close(fds[i]);
        else
            start_conn(s, fds[i]);
    }
    return n;
}

int mag_serve(int listen_fd, mag_conn_fn handler, void *ctx)
{
    return mag_serve_ex(listen_fd, handler, ctx, NULL);
}

int mag_serve_ex(int listen_fd, mag_conn_fn handler, void *ctx, const mag_serve_opts_t *opts)
{
    if (!handler)
        return -EINVAL;
    if (listen_fd < 0)
        return -EBADF;
    if (!mag__task_current())
        return -EPERM;
    serve_t s;
    memset(&s, 0, sizeof s);
    s.task = mag__task_current(); /* the record: the accept's completions wake it */
    s.lfd = listen_fd;
    s.handler = handler;
    s.ctx = ctx;
    pthread_mutex_init(&s.qlock, NULL);
    pthread_mutex_init(&s.clock, NULL);

    uint64_t backoff = 0;
    bool armed = false;
    int rc = 0;
    for (;;) {
        if ((rc = mag__suspend_begin(MAG__WAIT_IO, &accept_multishot_kind)) != 0)
            break;
        if (!armed) {
            arm_accept(&s);
            armed = true;
        }
        while (!fds_pending(&s) && !mag__waiter_signalled(&s.ended)) {
            if ((rc = mag__suspend_check()) != 0)
                break;
            mag__park();
        }
        mag__suspend_end();
        bool ended = mag__waiter_signalled(&s.ended);
        if (spawn_pending(&s, false) > 0)
            backoff = 0;
        if (rc)
            break;
        if (!ended)
            continue;
        armed = false;
        int res = s.final_res;
        if (res >= 0 || res == -ECANCELED || transient_error(res)) {
            /* The kernel ended the multishot (CQ overflow: its last CQE
             * carries a descriptor), or a dead connection: re-arm. */
            backoff = 0;
            continue;
        }
        if (resource_error(res)) {
            /* Out of descriptors or memory: the connections stay in the
             * backlog while we sleep; no busy loop. */
            backoff = backoff ? backoff * 2 : BACKOFF_MIN_NS;
            if (backoff > BACKOFF_MAX_NS)
                backoff = BACKOFF_MAX_NS;
            if ((rc = mag_sleep(backoff)) != 0)
                break;
            continue;
        }
        rc = res; /* the listener itself is unusable */
        break;
    }

    if (armed) {
        /* Cancelled with the accept in flight: cancel it on its ring and
         * wait, uninterruptibly, for its final CQE. */
        mag__cancel_t cancel;
        mag__op_cancel(&s.op, &cancel);
        (void)mag__waiter_wait(&s.ended, false);
        while (!mag__cancel_done(&cancel)) /* its record is in this frame */
            mag__park();
    }
    spawn_pending(&s, true);
    stop_conns(&s, opts ? opts->grace_ns : 0);
    free(s.q);
    free(s.spare);
    pthread_mutex_destroy(&s.qlock);
    pthread_mutex_destroy(&s.clock);
    return rc;
}
