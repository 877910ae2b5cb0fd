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
 *
 * At max_conns the serve cancels the accept and holds what it still brought;
 * a connection that ends wakes it to start a held descriptor or arm the
 * accept again. Between accepts it wakes for the sweep of the timeouts
 * (serve_conn.c, protocol in serve.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/serve.h"

#define BACKOFF_MIN_NS (1 * MAG_MS)
#define BACKOFF_MAX_NS (128 * MAG_MS)
#define SWEEP_MIN_NS (5 * MAG_MS)
#define SWEEP_MAX_NS (100 * MAG_MS)

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
    /* Before the commit, after which a rescuer may submit it. */
    mag__fd_rings_note(s->op.worker, s->lfd); /* a mag_close of it cancels this */
    mag__sqe_commit(&s->op);
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
    /* A slot is free: a serve paused at max_conns accepts again. Woken under
     * clock, so the serve task cannot have returned (it takes clock, and
     * waits for the last connection, after this). */
    if (s->paused)
        mag__wake(s->task);
    pthread_mutex_unlock(&s->clock);
    return last;
}

/* The body of every connection task; mag__io_run knows them by it. */
int mag__serve_conn_main(void *arg)
{
    conn_t *c = arg;
    serve_t *s = c->serve;
    pthread_mutex_lock(&s->clock);
    c->task = mag_self();
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->clock);
    if (!stop)
        (void)s->handler(c->fd, s->ctx);
    /* Unlinked before its descriptor is closed: stop_conns and the sweep
     * shut down the descriptors of linked records only, never one already
     * closed and reused. */
    int fd = c->fd;
    bool last = release_conn(s, c);
    /* c is the serve's again, perhaps another connection's already: the
     * task touches it no more (a close is not timed, and
     * mag__serve_wait_begin does not look at c for it). */
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
    c->tcp = s->tcp;
    c->prev = NULL;
    mag__serve_conn_init(c, mag_now());
    pthread_mutex_lock(&s->clock);
    c->next = s->live;
    if (s->live)
        s->live->prev = c;
    s->live = c;
    s->nlive++;
    pthread_mutex_unlock(&s->clock);

    mag_task_t *t;
    if (mag_spawn_ex(&t, mag__serve_conn_main, c, &s->conn_opts) == 0) {
        mag_detach(t);
        return;
    }
    (void)release_conn(s, c); /* not stopping: nobody waits to be told */
    close(fd);
}

/* Whether lfd's connections are TCP streams (a getsockopt never waits). */
static bool listens_for_tcp(int lfd)
{
    int proto = 0;
    socklen_t len = sizeof proto;
    return getsockopt(lfd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 && proto == IPPROTO_TCP;
}

/* Waits up to grace_ns for the drained signal, ignoring the serve task's own
 * cancellation (which is why it is stopping). true when drained. */
static bool wait_drained(serve_t *s, uint64_t grace_ns)
{
    mag__timer_t tm = {0};
    uint64_t now = mag_now();
    /* Saturated: a grace of "for ever" (UINT64_MAX) must not wrap into the
     * past and end the grace at once. */
    mag__timer_arm(&tm, s->task, grace_ns > UINT64_MAX - now ? UINT64_MAX : now + grace_ns);
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
    s->paused = false;
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

/* ---- the cap on connections ---------------------------------------------- */

static size_t live_count(serve_t *s)
{
    pthread_mutex_lock(&s->clock);
    size_t n = s->nlive;
    pthread_mutex_unlock(&s->clock);
    return n;
}

/* Is there room for one more connection, counting those held? */
static bool below_cap(serve_t *s)
{
    return !s->max_conns || live_count(s) + s->held_len < s->max_conns;
}

static void set_paused(serve_t *s, bool paused)
{
    pthread_mutex_lock(&s->clock);
    s->paused = paused;
    pthread_mutex_unlock(&s->clock);
}

/* Paused, and a connection has ended since: time to start a held
 * descriptor, or to accept again. */
static bool slot_freed(serve_t *s)
{
    pthread_mutex_lock(&s->clock);
    bool freed = s->paused && s->nlive < s->max_conns;
    pthread_mutex_unlock(&s->clock);
    return freed;
}

static void hold_fd(serve_t *s, int fd)
{
    if (s->held_len == 0)
        s->held_head = 0; /* all taken: start over at the front */
    if (s->held_head + s->held_len == s->held_cap) {
        if (s->held_head > 0) { /* slide the live part to the front */
            memmove(s->held, s->held + s->held_head, s->held_len * sizeof *s->held);
            s->held_head = 0;
        } else {
            size_t cap = s->held_cap ? 2 * s->held_cap : 64;
            int *h = realloc(s->held, cap * sizeof *h);
            if (!h) {
                close(fd); /* no memory to remember it: refuse the connection */
                return;
            }
            s->held = h;
            s->held_cap = cap;
        }
    }
    s->held[s->held_head + s->held_len++] = fd;
}

/* Takes the accepted descriptors, then starts held ones, oldest first, while
 * the cap allows (closing is true: closes them all instead). Returns how
 * many were accepted. */
static size_t spawn_pending(serve_t *s, bool closing)
{
    int *fds;
    size_t n = take_fds(s, &fds);
    for (size_t i = 0; i < n; i++)
        hold_fd(s, fds[i]);
    while (s->held_len > 0 && (closing || !s->max_conns || live_count(s) < s->max_conns)) {
        int fd = s->held[s->held_head++];
        s->held_len--;
        if (closing)
            close(fd);
        else
            start_conn(s, fd);
    }
    return n;
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

/* Cancels the accept in flight and waits, uninterruptibly, for its final
 * CQE and for the cancel request's own (its record is in this frame). */
static void stop_accept(serve_t *s)
{
    mag__cancel_t cancel;
    mag__op_cancel(&s->op, &cancel);
    (void)mag__waiter_wait(&s->ended, false);
    while (!mag__cancel_done(&cancel))
        mag__park();
}

/* How often to sweep: a quarter of the shortest timeout, within bounds;
 * 0 without timeouts. */
static uint64_t sweep_interval(const serve_t *s)
{
    uint64_t t[] = {s->header_timeout_ns, s->idle_timeout_ns, s->send_timeout_ns};
    uint64_t shortest = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i] && (!shortest || t[i] < shortest))
            shortest = t[i];
    if (!shortest)
        return 0;
    uint64_t every = shortest / 4;
    return every < SWEEP_MIN_NS ? SWEEP_MIN_NS : every > SWEEP_MAX_NS ? SWEEP_MAX_NS : every;
}

/* Parks the serve task until something needs it: a connection accepted or
 * the accept ended (when armed), a slot freed (when paused), the next sweep
 * due, or the task cancelled (the result). */
static int wait_for_work(serve_t *s, bool armed, uint64_t next_sweep)
{
    mag__timer_t tm = {0};
    if (next_sweep)
        mag__timer_arm(&tm, s->task, next_sweep);
    int rc = 0;
    while (!(armed && (fds_pending(s) || mag__waiter_signalled(&s->ended))) &&
           !(!armed && slot_freed(s)) && !mag__timer_fired(&tm)) {
        if ((rc = mag__suspend_check()) != 0)
            break;
        mag__park();
    }
    mag__timer_disarm(&tm);
    return rc;
}

int mag_serve(int listen_fd, mag_conn_fn handler, void *ctx)
{
    return mag_serve_ex(listen_fd, handler, ctx, NULL);
}

int mag_serve_ex(int listen_fd, mag_conn_fn handler, void *ctx, const mag_serve_opts_t *opts)
{
    static const mag_serve_opts_t no_opts;
    if (!opts)
        opts = &no_opts;
    if (!handler)
        return -EINVAL;
    if (opts->conn_stack_size &&
        (opts->conn_stack_size < MAG_STACK_MIN || opts->conn_stack_size > MAG_STACK_MAX))
        return -EINVAL;
    if (listen_fd < 0)
        return -EBADF;
    if (!mag__task_current())
        return -EPERM;
    serve_t s;
    memset(&s, 0, sizeof s);
    s.task = mag__task_current(); /* the record: the accept's completions wake it */
    s.lfd = listen_fd;
    s.tcp = listens_for_tcp(listen_fd);
    s.handler = handler;
    s.ctx = ctx;
    s.header_timeout_ns = opts->header_timeout_ns;
    s.idle_timeout_ns = opts->idle_timeout_ns;
    s.send_timeout_ns = opts->send_timeout_ns;
    s.sweep_ns = sweep_interval(&s);
    s.max_conns = opts->max_conns;
    s.conn_opts.name = opts->conn_name ? opts->conn_name : "conn";
    s.conn_opts.stack_size = opts->conn_stack_size;
    pthread_mutex_init(&s.qlock, NULL);
    pthread_mutex_init(&s.clock, NULL);

    uint64_t backoff = 0;
    uint64_t next_sweep = s.sweep_ns ? mag_now() + s.sweep_ns : 0;
    bool armed = false;
    int rc = 0;
    for (;;) {
        if ((rc = mag__suspend_begin(MAG__WAIT_IO, &accept_multishot_kind)) != 0)
            break;
        if (!armed && below_cap(&s)) {
            arm_accept(&s);
            armed = true;
        }
        set_paused(&s, !armed);
        rc = wait_for_work(&s, armed, next_sweep);
        mag__suspend_end();
        bool ended = armed && mag__waiter_signalled(&s.ended);
        if (spawn_pending(&s, false) > 0)
            backoff = 0;
        if (next_sweep && mag_now() >= next_sweep) {
            (void)mag__serve_sweep(&s, mag_now());
            next_sweep = mag_now() + s.sweep_ns;
        }
        if (rc)
            break;
        if (armed && !ended && !below_cap(&s)) {
            /* At the cap: stop accepting until a connection ends. What the
             * accept still brings is held (its final result does not matter:
             * it is armed again when a slot frees). */
            stop_accept(&s);
            armed = false;
            spawn_pending(&s, false);
            continue;
        }
        if (!ended)
            continue;
        armed = false;
        int res = s.final_res;
        if (res >= 0 || transient_error(res)) {
            /* The kernel ended the multishot (CQ overflow: its last CQE
             * carries a descriptor), or a dead connection: re-arm. */
            backoff = 0;
            continue;
        }
        if (res == -ECANCELED) {
            /* Not our cancel (stop_accept waits for its own final CQE): a
             * mag_close of the listener cancelled it. Re-arming would go on
             * accepting on a closed listener, or on whatever its number
             * names next. */
            rc = -EBADF;
            break;
        }
        if ((res == -EMFILE || res == -ENFILE) && mag__serve_drain_idle(&s) > 0) {
            /* Idle connections are being closed to make room (nginx's
             * reuse of connections): try again soon, without doubling. */
            backoff = BACKOFF_MIN_NS;
            if ((rc = mag_sleep(backoff)) != 0)
                break;
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

    if (armed)
        stop_accept(&s); /* cancelled with the accept in flight */
    spawn_pending(&s, true);
    stop_conns(&s, opts->grace_ns);
    free(s.q);
    free(s.spare);
    free(s.held);
    pthread_mutex_destroy(&s.qlock);
    pthread_mutex_destroy(&s.clock);
    return rc;
}
