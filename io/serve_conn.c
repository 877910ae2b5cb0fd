/*
 * io/serve_conn.c - the timing of mag_serve's connections: what each one is
 * waiting for and until when (begin/end, called by mag__io_run), the phases
 * a handler declares (mag_conn_phase), the sweep that cuts waits past their
 * deadline, and the choice of connections to cut when descriptors run out.
 * The protocol of the wait word is in serve.h.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include "io/serve.h"
#include "runtime/sched.h" /* mag_task.fn and .arg: the caller's connection */

/* At most this many connections are cut per accept failure (nginx's
 * ngx_drain_connections). */
#define DRAIN_MAX 32
/* Only connections idle for at least this long are cut: taking one that has
 * just arrived to make room for the next would only churn through a flood
 * of new connections. */
#define DRAIN_MIN_IDLE_NS (1 * MAG_SEC)

enum { WAIT_CLASS_IN = 1, WAIT_CLASS_OUT = 2 };

static uint64_t deadline_after(uint64_t from, uint64_t timeout)
{
    if (!timeout)
        return WAIT_FOREVER;
    uint64_t d = timeout > UINT64_MAX - from ? WAIT_FOREVER : from + timeout;
    d &= ~WAIT_FLAGS;
    return d > WAIT_CUT ? d : WAIT_CUT + 4; /* never mistaken for NONE or CUT */
}

/* Which operations are waits for input or output; the others (close,
 * connect, fsync) are not timed. */
static int wait_class(int kind, const mag__io_args_t *a)
{
    switch (kind) {
    case MAG__IO_READ:
    case MAG__IO_READV:
    case MAG__IO_RECV:
    case MAG__IO_RECVMSG:
        return WAIT_CLASS_IN;
    case MAG__IO_WRITE:
    case MAG__IO_WRITEV:
    case MAG__IO_SEND:
    case MAG__IO_SENDMSG:
        return WAIT_CLASS_OUT;
    case MAG__IO_POLL:
        if (a->flags & POLLIN)
            return WAIT_CLASS_IN;
        return (a->flags & POLLOUT) ? WAIT_CLASS_OUT : 0;
    default:
        return 0;
    }
}

uint64_t mag__serve_coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void mag__serve_conn_init(conn_t *c, uint64_t now)
{
    c->phase = MAG_CONN_ACTIVE;
    c->got_input = false;
    c->drained = false;
    c->skip_checked = false;
    c->kept = (mag__ready_kept_t){0};
    c->phase_since_ns = now;
    c->accepted_ns = now;
    /* relaxed: the record reaches the sweep through clock (start_conn links
     * it under that lock) and the task through its spawn. */
    atomic_store_explicit(&c->wait, WAIT_NONE, memory_order_relaxed);
    atomic_store_explicit(&c->idle_since_ns, 0, memory_order_relaxed);
}

int mag__serve_wait_begin(conn_t *c, int kind, const mag__io_args_t *a)
{
    /* The class first: the task's last operation, the close of its
     * descriptor, runs after the record went back to the serve (and may
     * belong to another connection already), so it must not be looked at. */
    int cls = wait_class(kind, a);
    if (!cls || a->fd != c->fd)
        return 0; /* not a wait, or another descriptor: the handler's own business */
    serve_t *s = c->serve;
    /* A send without a send timeout is never cut nor taken for idle: its
     * word would say nothing, so skip the clock and the word (an echo reply
     * costs one of these per request). */
    if (cls == WAIT_CLASS_OUT && !s->send_timeout_ns)
        return 0;
    uint64_t word, idle_since = 0;
    if (cls == WAIT_CLASS_OUT) {
        word = deadline_after(mag__now(), s->send_timeout_ns) | WAIT_SEND;
    } else if (!c->got_input) {
        word = deadline_after(c->accepted_ns, s->header_timeout_ns) | WAIT_IDLE;
        idle_since = c->accepted_ns;
    } else if (c->phase == MAG_CONN_HEADER) {
        word = deadline_after(c->phase_since_ns, s->header_timeout_ns);
    } else {
        /* Idle from now unless the handler said since when: the precise
         * clock for a deadline, the coarse one where the time only ranks
         * idle connections. */
        idle_since = c->phase == MAG_CONN_IDLE ? c->phase_since_ns
                     : s->idle_timeout_ns           ? mag__now()
                                                    : mag__serve_coarse_now();
        word = deadline_after(idle_since, s->idle_timeout_ns) | WAIT_IDLE;
    }
    /* relaxed: read only to rank idle connections; a stale value can only
     * misplace one in that ranking, the wait word decides the cut. */
    atomic_store_explicit(&c->idle_since_ns, idle_since, memory_order_relaxed);
    /* relaxed: the word carries everything it means and publishes no other
     * memory. Between waits it is NONE, or CUT for good; the sweep changes
     * only a wait's word (to CUT), never NONE, so a plain store after
     * seeing NONE races with nothing, and a cut connection stays cut. */
    if (atomic_load_explicit(&c->wait, memory_order_relaxed) == WAIT_NONE)
        atomic_store_explicit(&c->wait, word, memory_order_relaxed);
    return cls;
}

void mag__serve_wait_end(conn_t *c, int begun, int64_t res)
{
    /* relaxed, as in begin. Only this task and the sweep write the word, and
     * the sweep only to WAIT_CUT, which must stay. */
    uint64_t w = atomic_load_explicit(&c->wait, memory_order_relaxed);
    while (w != WAIT_CUT &&
           !atomic_compare_exchange_weak_explicit(&c->wait, &w, WAIT_NONE, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    if (begun == WAIT_CLASS_IN && res > 0)
        c->got_input = true;
}

int mag_conn_phase(mag_conn_phase_t phase)
{
    if (phase != MAG_CONN_ACTIVE && phase != MAG_CONN_IDLE && phase != MAG_CONN_HEADER)
        return -EINVAL;
    mag_task_t *self = mag__task_current();
    if (!self || self->fn != mag__serve_conn_main)
        return -EPERM;
    conn_t *c = self->arg;
    if (c->phase != (int)phase) {
        c->phase = (int)phase;
        /* The start of the header or idle timeout: the precise clock, if
         * either is set. */
        const serve_t *s = c->serve;
        c->phase_since_ns = s->header_timeout_ns || s->idle_timeout_ns ? mag__now()
                                                                        : mag__serve_coarse_now();
    }
    return 0;
}

/* Cuts c, whose wait word was w and is now WAIT_CUT. Under clock: c is
 * linked, so its descriptor is still open (see conn_main). */
static void cut(conn_t *c, uint64_t w)
{
    if (w & WAIT_SEND) {
        struct linger reset = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
    (void)shutdown(c->fd, SHUT_RDWR);
}

/* Cuts c if its wait word is still w. */
static bool try_cut(conn_t *c, uint64_t w)
{
    /* relaxed: see begin. Fails when the wait ended (or another began) since
     * w was read: that wait is judged at the next sweep. */
    if (!atomic_compare_exchange_strong_explicit(&c->wait, &w, WAIT_CUT, memory_order_relaxed,
                                                 memory_order_relaxed))
        return false;
    cut(c, w);
    return true;
}

size_t mag__serve_sweep(serve_t *s, uint64_t now)
{
    size_t n = 0;
    pthread_mutex_lock(&s->clock);
    for (conn_t *c = s->live; c; c = c->next) {
        /* relaxed: see begin. */
        uint64_t w = atomic_load_explicit(&c->wait, memory_order_relaxed);
        if (w > WAIT_CUT && (w & ~WAIT_FLAGS) <= now && try_cut(c, w))
            n++;
    }
    pthread_mutex_unlock(&s->clock);
    return n;
}

size_t mag__serve_drain_idle(serve_t *s)
{
    /* The oldest idle waits, sorted oldest first; at most DRAIN_MAX. */
    struct {
        conn_t *c;
        uint64_t w, since;
    } pick[DRAIN_MAX];
    size_t npick = 0, nidle = 0;
    uint64_t now = mag__now();
    pthread_mutex_lock(&s->clock);
    for (conn_t *c = s->live; c; c = c->next) {
        /* relaxed: see begin. */
        uint64_t w = atomic_load_explicit(&c->wait, memory_order_relaxed);
        if (w == WAIT_CUT || !(w & WAIT_IDLE))
            continue;
        uint64_t since = atomic_load_explicit(&c->idle_since_ns, memory_order_relaxed);
        if (since + DRAIN_MIN_IDLE_NS > now)
            continue;
        nidle++;
        size_t at = npick;
        while (at > 0 && pick[at - 1].since > since)
            at--;
        if (at == DRAIN_MAX)
            continue;
        if (npick < DRAIN_MAX)
            npick++;
        for (size_t j = npick - 1; j > at; j--)
            pick[j] = pick[j - 1];
        pick[at].c = c;
        pick[at].w = w;
        pick[at].since = since;
    }
    size_t want = nidle / 8;
    if (want < 1)
        want = 1;
    if (want > npick)
        want = npick;
    size_t n = 0;
    for (size_t i = 0; i < want; i++)
        n += try_cut(pick[i].c, pick[i].w);
    pthread_mutex_unlock(&s->clock);
    return n;
}
