/*
 * procpool/procpool.c - the process pool, the parent's side: the zygotes as
 * the parent drives them, the workers' slots, mag_proc_call, the watchdog
 * that enforces timeouts, and the pool's start, close and stop. The child
 * side (the registry, the zygote loop, the worker loop) is zygote.c's.
 *
 * Jobs. A worker serves one job at a time on its own stream socket. The
 * parent side runs in the calling task, on the ring (io/'s whole transfers):
 * the task suspends, no thread blocks; a plain thread blocks in the system
 * calls. Every job carries a sequence number that its reply must echo; a
 * reply with another number, bytes beyond the reply, or bytes on the socket
 * of an idle worker mean that something else writes there (a job that wrote
 * to the wrong descriptor, a child it forked): the worker is treated as
 * dead, so that no caller ever receives output meant for another. A job
 * that ends in EOF or a reset on its socket lost its worker (a crash):
 * -ECHILD. A job whose caller is cancelled, or passes its deadline, has its
 * worker killed through the pidfd (no PID reuse race). Either way the worker
 * is replaced by a job on the blocking pool that asks the zygote for a new
 * one, so that the caller returns at once and no worker thread blocks on the
 * zygote.
 *
 * Timeouts and shutdown. A job with a timeout (its call's, or the pool's
 * default) is watched by one thread of the pool, started with the first such
 * job: past the deadline it kills the worker and shuts the parent's end of
 * its socket down, which ends the caller's transfer whether it waits on the
 * ring or in a system call (and whatever the worker's state: stopped, or
 * with a child that keeps the socket open); the caller then returns
 * -ETIMEDOUT. mag__procpool_close does the same to every busy worker with
 * -ESHUTDOWN when shutdown begins, before it waits for anything.
 *
 * Zygote restarts. When the zygote's control socket breaks (it died), the
 * request that saw it promotes the spare (zygote.c) and asks it for the
 * next spare, then retries; without a spare, the pool fails as before: every
 * replacement fails and calls return -ECHILD once no worker is left.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io/internal.h"
#include "procpool/internal.h"
#include "procpool/procpool.h"
#include "runtime/blocking.h"
#include "runtime/sched.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define STAGE 8192 /* a small reply arrives with its header in one recv */

typedef struct proc_worker {
    struct mag__procpool *pool;
    struct proc_worker *next; /* idle list */
    int fd;                   /* the job socket; -1 while replaced */
    int pidfd;
    pid_t pid;
    /* Under the pool's lock: the job in flight, as the watchdog sees it. */
    bool busy;
    uint64_t deadline_ns; /* 0: none */
    int verdict;          /* why the pool killed it mid-job: -ETIMEDOUT, -ESHUTDOWN; or 0 */
} proc_worker_t;

/* A caller waiting for a worker; on its stack. */
typedef struct proc_waiter {
    mag__waiter_t w;
    struct proc_waiter *prev, *next;
    proc_worker_t *given; /* handed over by a releaser */
    int err;              /* or this: the pool lost its last worker, or closed */
    bool queued;
} proc_waiter_t;

/* A zygote or the spare, as the parent holds it; ctl -1: none. */
typedef struct zygote_ref {
    int ctl;
    int pidfd;
    pid_t pid;
    bool ours; /* forked by this process, which must reap it */
} zygote_ref_t;

struct mag__procpool {
    mag_runtime_t *rt;
    pthread_mutex_t lock; /* everything below up to ctl_lock */
    proc_worker_t *slots;
    unsigned nslots;
    proc_worker_t *idle;
    unsigned nidle;
    unsigned alive; /* workers alive or being replaced */
    proc_waiter_t *qhead, *qtail;
    bool closing;              /* shutdown began: no new job, busy ones killed */
    bool watching;             /* the watchdog thread runs */
    pthread_cond_t watch_cond; /* wakes the watchdog: a new deadline, or closing */
    pthread_t watchdog;
    uint64_t replaced;
    pid_t zygote_pid;            /* for statistics */
    uint64_t default_timeout_ns; /* cfg.proc_timeout_ms; 0: none */
    _Atomic uint64_t jobs;       /* relaxed: a statistic */
    _Atomic uint64_t next_seq;   /* relaxed: only uniqueness matters */
    pthread_mutex_t ctl_lock;    /* one request to a zygote at a time; the refs below */
    zygote_ref_t zygote, spare;
};

/* ---- the zygotes ---------------------------------------------------------------- */

static const zygote_ref_t no_zygote = {-1, -1, 0, false};

/* Sends cmd to z and receives the new process's two descriptors and pid.
 * 0, the zygote's negative errno, or -EPIPE when its control socket is
 * broken (the zygote died). Under ctl_lock. */
static int zygote_request(zygote_ref_t *z, char cmd, int fds[2], pid_t *pid)
{
    if (z->ctl < 0)
        return -EPIPE;
    mag__zy_msg_t m;
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } c;
    struct iovec iov = {.iov_base = &m, .iov_len = sizeof m};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof c.buf};
    int rc = mag__proc_send_two(z->ctl, &cmd, 1, NULL, 0);
    if (rc)
        return -EPIPE;
    ssize_t n;
    while ((n = recvmsg(z->ctl, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t)sizeof m)
        return -EPIPE; /* EOF, a reset, or a message no zygote sends */
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    /* Descriptors cut off on their way in: this process has no room for
     * them (the kernel closes them), which -ECHILD would misname. */
    if (!m.err && (msg.msg_flags & MSG_CTRUNC))
        return -EMFILE;
    if (m.err || !cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(2 * sizeof(int)))
        return m.err ? m.err : -ECHILD;
    memcpy(fds, CMSG_DATA(cm), 2 * sizeof(int));
    *pid = m.pid;
    return 0;
}

/* Asks z for a spare zygote; none on failure (the pool then runs without). */
static void spare_fork(zygote_ref_t *z, zygote_ref_t *spare)
{
    int fds[2];
    pid_t pid;
    *spare = no_zygote;
    if (zygote_request(z, MAG__ZY_SPARE, fds, &pid) == 0)
        *spare = (zygote_ref_t){fds[0], fds[1], pid, false};
}

/* Kills z (if it lives) and reaps it if it is this process's child. */
static void zygote_drop(zygote_ref_t *z)
{
    if (z->ctl >= 0)
        close(z->ctl);
    if (z->pidfd >= 0) {
        syscall(SYS_pidfd_send_signal, z->pidfd, SIGKILL, NULL, 0u);
        siginfo_t si;
        while (z->ours && waitid((idtype_t)P_PIDFD, (id_t)z->pidfd, &si, WEXITED) < 0 &&
               errno == EINTR)
            ;
        close(z->pidfd);
    }
    *z = no_zygote;
}

/* Waits for an orderly exit of z after MAG__ZY_QUIT and EOF. */
static void zygote_quit(zygote_ref_t *z)
{
    if (z->ctl >= 0) {
        char cmd = MAG__ZY_QUIT;
        (void)mag__proc_send_two(z->ctl, &cmd, 1, NULL, 0);
        close(z->ctl);
    }
    if (z->pidfd >= 0) {
        siginfo_t si;
        struct pollfd pf = {.fd = z->pidfd, .events = POLLIN};
        if (z->ours)
            while (waitid((idtype_t)P_PIDFD, (id_t)z->pidfd, &si, WEXITED) < 0 && errno == EINTR)
                ;
        else /* another's child now: wait for its exit, its parent reaps it */
            while (poll(&pf, 1, -1) < 0 && errno == EINTR)
                ;
        close(z->pidfd);
    }
    *z = no_zygote;
}

/* The zygote died: the spare takes its place and forks the next spare.
 * Under ctl_lock. 0, or -ECHILD without a spare. */
static int zygote_restart(struct mag__procpool *p)
{
    zygote_drop(&p->zygote);
    if (p->spare.ctl < 0)
        return -ECHILD;
    p->zygote = p->spare;
    spare_fork(&p->zygote, &p->spare);
    pthread_mutex_lock(&p->lock);
    p->zygote_pid = p->zygote.pid;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* Asks the zygote for a worker for slot wk (blocking), restarting a dead
 * zygote once. 0, or a negative errno. */
static int worker_spawn(struct mag__procpool *p, proc_worker_t *wk)
{
    int fds[2];
    pid_t pid;
    pthread_mutex_lock(&p->ctl_lock);
    int rc = zygote_request(&p->zygote, MAG__ZY_WORKER, fds, &pid);
    if (rc == -EPIPE && zygote_restart(p) == 0)
        rc = zygote_request(&p->zygote, MAG__ZY_WORKER, fds, &pid);
    pthread_mutex_unlock(&p->ctl_lock);
    if (rc)
        return rc == -EPIPE ? -ECHILD : rc;
    wk->fd = fds[0];
    wk->pidfd = fds[1];
    wk->pid = pid;
    return 0;
}

/* ---- the workers ---------------------------------------------------------------- */

/* Gives a healthy worker to the first waiter, or makes it idle. */
static void worker_release(struct mag__procpool *p, proc_worker_t *wk)
{
    pthread_mutex_lock(&p->lock);
    proc_waiter_t *q = p->qhead;
    if (q) {
        p->qhead = q->next;
        if (p->qhead)
            p->qhead->prev = NULL;
        else
            p->qtail = NULL;
        q->queued = false;
        q->given = wk;
        pthread_mutex_unlock(&p->lock);
        mag__waiter_signal(&q->w); /* the last touch of q */
        return;
    }
    wk->next = p->idle;
    p->idle = wk;
    p->nidle++;
    pthread_mutex_unlock(&p->lock);
}

/* Under the lock: detaches every waiter, each to fail with err. */
static proc_waiter_t *fail_waiters(struct mag__procpool *p, int err)
{
    proc_waiter_t *fail = p->qhead;
    for (proc_waiter_t *q = fail; q; q = q->next) {
        q->queued = false;
        q->err = err;
    }
    p->qhead = p->qtail = NULL;
    return fail;
}

/* Without the lock: wakes what fail_waiters detached. */
static void signal_failed(proc_waiter_t *fail)
{
    while (fail) {
        proc_waiter_t *next = fail->next; /* read before the signal frees it */
        mag__waiter_signal(&fail->w);
        fail = next;
    }
}

/* A worker could not be replaced: one fewer; with none left, every waiter
 * fails with -ECHILD rather than wait forever. */
static void worker_lost(struct mag__procpool *p)
{
    pthread_mutex_lock(&p->lock);
    proc_waiter_t *fail = NULL;
    if (--p->alive == 0)
        fail = fail_waiters(p, p->closing ? -ESHUTDOWN : -ECHILD);
    pthread_mutex_unlock(&p->lock);
    signal_failed(fail);
}

static int replace_job(void *arg)
{
    proc_worker_t *wk = arg;
    struct mag__procpool *p = wk->pool;
    pthread_mutex_lock(&p->lock);
    bool closing = p->closing;
    pthread_mutex_unlock(&p->lock);
    if (!closing && worker_spawn(p, wk) == 0)
        worker_release(p, wk);
    else
        worker_lost(p);
    return 0;
}

/* Retires a worker that died or must die, and starts its replacement. */
static void worker_retire(struct mag__procpool *p, proc_worker_t *wk)
{
    syscall(SYS_pidfd_send_signal, wk->pidfd, SIGKILL, NULL, 0u);
    pthread_mutex_lock(&p->lock); /* the watchdog reads fd under it */
    close(wk->fd);
    close(wk->pidfd);
    wk->fd = wk->pidfd = -1;
    p->replaced++;
    pthread_mutex_unlock(&p->lock);
    if (mag__spawn_blocking(p->rt, NULL, replace_job, wk))
        worker_lost(p); /* shutting down (or out of memory) */
}

/* An idle worker that died, or whose socket holds bytes (or an EOF) when no
 * job is in flight: something other than its loop wrote there. */
static bool worker_unfit(const proc_worker_t *wk)
{
    struct pollfd pf[2] = {{.fd = wk->pidfd, .events = POLLIN}, {.fd = wk->fd, .events = POLLIN}};
    return poll(pf, 2, 0) != 0;
}

/* Under the lock: kills a busy worker for the pool's own reason, and ends
 * its caller's transfer (shutdown wakes a receive on the ring or in the
 * kernel even when another process still holds the worker's end). */
static void worker_abort(proc_worker_t *wk, int verdict)
{
    if (!wk->busy || wk->verdict)
        return;
    wk->verdict = verdict;
    syscall(SYS_pidfd_send_signal, wk->pidfd, SIGKILL, NULL, 0u);
    shutdown(wk->fd, SHUT_RDWR);
}

static void *watchdog_main(void *arg)
{
    struct mag__procpool *p = arg;
    (void)pthread_setname_np(pthread_self(), "magpie-procwd");
    pthread_mutex_lock(&p->lock);
    while (!p->closing) {
        uint64_t now = mag__now(), next = UINT64_MAX;
        for (unsigned i = 0; i < p->nslots; i++) {
            proc_worker_t *wk = &p->slots[i];
            if (!wk->busy || !wk->deadline_ns || wk->verdict)
                continue;
            if (now >= wk->deadline_ns)
                worker_abort(wk, -ETIMEDOUT);
            else if (wk->deadline_ns < next)
                next = wk->deadline_ns;
        }
        if (next == UINT64_MAX) {
            pthread_cond_wait(&p->watch_cond, &p->lock);
        } else {
            struct timespec ts = {(time_t)(next / MAG_SEC), (long)(next % MAG_SEC)};
            pthread_cond_timedwait(&p->watch_cond, &p->lock, &ts);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Takes an idle worker, or waits for one in FIFO order. */
static int worker_acquire(struct mag__procpool *p, proc_worker_t **out)
{
    bool task = mag__task_current() != NULL;
    int rc = task ? mag__suspend_begin(MAG__WAIT_PROC, p) : 0;
    if (rc)
        return rc;
    proc_waiter_t q = {.given = NULL, .err = 0};
    pthread_mutex_lock(&p->lock);
    while (p->idle && !p->closing) {
        proc_worker_t *wk = p->idle;
        p->idle = wk->next;
        p->nidle--;
        pthread_mutex_unlock(&p->lock);
        if (!worker_unfit(wk)) { /* killed while idle: no job of ours fails */
            if (task)
                mag__suspend_end();
            *out = wk;
            return 0;
        }
        worker_retire(p, wk);
        pthread_mutex_lock(&p->lock);
    }
    if (p->alive == 0 || p->closing) {
        rc = p->closing ? -ESHUTDOWN : -ECHILD;
        pthread_mutex_unlock(&p->lock);
        if (task)
            mag__suspend_end();
        return rc;
    }
    mag__waiter_init(&q.w);
    q.queued = true;
    q.prev = p->qtail;
    q.next = NULL;
    if (p->qtail)
        p->qtail->next = &q;
    else
        p->qhead = &q;
    p->qtail = &q;
    pthread_mutex_unlock(&p->lock);
    rc = mag__waiter_wait(&q.w, task);
    if (rc) {
        pthread_mutex_lock(&p->lock);
        bool still = q.queued;
        if (still) {
            if (q.prev)
                q.prev->next = q.next;
            else
                p->qhead = q.next;
            if (q.next)
                q.next->prev = q.prev;
            else
                p->qtail = q.prev;
        }
        pthread_mutex_unlock(&p->lock);
        if (!still) {
            /* A releaser took q and is signalling it: q is on this stack, so
             * wait for that, then pass on whatever it brought. */
            mag__waiter_wait(&q.w, false);
            if (q.given)
                worker_release(p, q.given);
        }
    }
    if (task)
        mag__suspend_end();
    if (rc)
        return rc;
    if (q.err)
        return q.err;
    *out = q.given;
    return 0;
}

/* Marks wk busy with a job due by now + timeout_ns (0: none), for the
 * watchdog, which starts with the first job that has a deadline. 0,
 * -ESHUTDOWN, or -EAGAIN (no watchdog thread could start). */
static int job_begin(struct mag__procpool *p, proc_worker_t *wk, uint64_t timeout_ns)
{
    int rc = 0;
    pthread_mutex_lock(&p->lock);
    if (p->closing) {
        rc = -ESHUTDOWN;
    } else if (timeout_ns && !p->watching) {
        rc = mag__thread_start(&p->watchdog, watchdog_main, p) ? -EAGAIN : 0;
        p->watching = rc == 0;
    }
    if (rc == 0) {
        wk->busy = true;
        wk->verdict = 0;
        uint64_t now = mag__now();
        wk->deadline_ns = !timeout_ns                     ? 0
                          : timeout_ns > UINT64_MAX - now ? UINT64_MAX - 1
                                                          : now + timeout_ns;
        if (timeout_ns)
            pthread_cond_signal(&p->watch_cond);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* The job on wk is over: the pool's verdict on it, or 0. */
static int job_end(struct mag__procpool *p, proc_worker_t *wk)
{
    pthread_mutex_lock(&p->lock);
    int verdict = wk->verdict;
    wk->busy = false;
    wk->deadline_ns = 0;
    wk->verdict = 0;
    pthread_mutex_unlock(&p->lock);
    return verdict;
}

static int transport_error(ssize_t rc)
{
    return rc == -EPIPE || rc == -ECONNRESET ? -ECHILD : (int)rc;
}

/* One job on wk. Returns the function's result (>= 0 or its errno) in *fn_rc
 * and 0, or a transport error: -ECHILD (the worker died, or something else
 * wrote on its socket), -ECANCELED, -ETIMEDOUT, -ENOMEM (the worker must
 * then go). */
static int exchange(struct mag__procpool *p, proc_worker_t *wk, int fn, const void *in,
                    size_t in_len, void **out, size_t *out_len, int *fn_rc)
{
    uint64_t seq = atomic_fetch_add_explicit(&p->next_seq, 1, memory_order_relaxed);
    mag__proc_req_t h = {.magic = MAG__PROC_MAGIC, .fn = (uint32_t)fn, .len = in_len, .seq = seq};
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)in, in_len}};
    /* On the ring: the calling task suspends. */
    int rc = mag__io_send_all(wk->fd, iov, in_len ? 2 : 1, 0, false);
    if (rc)
        return transport_error(rc);
    char stage[STAGE];
    ssize_t got = mag__io_recv_min(wk->fd, stage, sizeof(mag__proc_rep_t), sizeof stage, false);
    if (got < 0)
        return transport_error(got);
    size_t have = (size_t)got;
    mag__proc_rep_t rep;
    memcpy(&rep, stage, sizeof rep);
    if (rep.magic != MAG__PROC_MAGIC || rep.seq != seq || rep.len > MAG_PROC_MAX_PAYLOAD ||
        rep.len < have - sizeof rep)
        return -ECHILD; /* not this job's reply, or more than it: the worker is dead to us */
    char *buf = NULL;
    if (rep.len) {
        if (!(buf = malloc(rep.len)))
            return -ENOMEM;
        memcpy(buf, stage + sizeof rep, have - sizeof rep);
        size_t left = rep.len - (have - sizeof rep);
        got = mag__io_recv_min(wk->fd, buf + (have - sizeof rep), left, left, false);
        if (got < 0) {
            free(buf);
            return transport_error(got);
        }
    }
    *fn_rc = rep.rc;
    if (out && rep.rc >= 0) { /* a failed function returns no output */
        *out = buf;
        *out_len = rep.len;
    } else {
        free(buf);
    }
    return 0;
}

int mag_proc_call_ex(const char *name, const void *in, size_t in_len, void **out, size_t *out_len,
                     const mag_proc_opts_t *opts)
{
    if (!name || (!in && in_len) || (!out != !out_len))
        return -EINVAL;
    if (in_len > MAG_PROC_MAX_PAYLOAD)
        return -EMSGSIZE;
    mag_runtime_t *rt = mag__context_runtime();
    if (!rt)
        return -EPERM;
    struct mag__procpool *p = rt->procpool;
    if (!p)
        return -ENXIO;
    int fn = mag__proc_lookup(name);
    if (fn < 0)
        return fn;
    uint64_t timeout_ns = opts && opts->timeout_ns ? opts->timeout_ns : p->default_timeout_ns;
    if (timeout_ns == MAG_PROC_NO_TIMEOUT)
        timeout_ns = 0;
    /* *out and *out_len are written by a successful exchange only: a call
     * that fails leaves them as they were, as every call does. */
    proc_worker_t *wk;
    int rc = worker_acquire(p, &wk);
    if (rc)
        return rc;
    if ((rc = job_begin(p, wk, timeout_ns))) {
        worker_release(p, wk);
        return rc;
    }
    int fn_rc = 0;
    rc = exchange(p, wk, fn, in, in_len, out, out_len, &fn_rc);
    int verdict = job_end(p, wk);
    if (verdict && rc)
        rc = verdict; /* the transfer failed because the pool killed the worker */
    if (rc || verdict)
        worker_retire(p, wk);
    else
        worker_release(p, wk);
    atomic_fetch_add_explicit(&p->jobs, 1, memory_order_relaxed);
    return rc ? rc : fn_rc;
}

int mag_proc_call(const char *name, const void *in, size_t in_len, void **out, size_t *out_len)
{
    return mag_proc_call_ex(name, in, in_len, out, out_len, NULL);
}

/* ---- start, close, stop, statistics ---------------------------------------- */

void mag__procpool_close(struct mag__procpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->closing = true;
    for (unsigned i = 0; i < p->nslots; i++)
        worker_abort(&p->slots[i], -ESHUTDOWN);
    proc_waiter_t *fail = fail_waiters(p, -ESHUTDOWN);
    pthread_cond_signal(&p->watch_cond);
    pthread_mutex_unlock(&p->lock);
    signal_failed(fail);
}

static void pool_free(struct mag__procpool *p)
{
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->ctl_lock);
    pthread_cond_destroy(&p->watch_cond);
    free(p->slots);
    free(p);
}

void mag__procpool_stop(struct mag__procpool *p)
{
    if (!p)
        return;
    mag__procpool_close(p);
    if (p->watching)
        pthread_join(p->watchdog, NULL);
    /* The spare first, while its parent (the zygote) is there to reap it;
     * then the zygote: it kills and reaps its workers, then exits. */
    zygote_quit(&p->spare);
    zygote_quit(&p->zygote);
    for (unsigned i = 0; i < p->nslots; i++) {
        if (p->slots[i].fd >= 0)
            close(p->slots[i].fd);
        if (p->slots[i].pidfd >= 0)
            close(p->slots[i].pidfd);
    }
    pool_free(p);
}

int mag__procpool_start(mag_runtime_t *rt, unsigned nworkers, struct mag__procpool **out)
{
    mag__proc_freeze();
    struct mag__procpool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->slots = calloc(nworkers, sizeof *p->slots);
    if (!p->slots) {
        free(p);
        return -ENOMEM;
    }
    p->rt = rt;
    p->nslots = nworkers;
    p->default_timeout_ns = (uint64_t)rt->cfg.proc_timeout_ms * MAG_MS;
    p->zygote = p->spare = no_zygote;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->ctl_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines are mag__now() times */
    pthread_cond_init(&p->watch_cond, &ca);
    pthread_condattr_destroy(&ca);
    for (unsigned i = 0; i < nworkers; i++) {
        p->slots[i].pool = p;
        p->slots[i].fd = p->slots[i].pidfd = -1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        int e = -errno;
        pool_free(p);
        return e;
    }
    pid_t parent = getpid();
    bool main_thread = (pid_t)syscall(SYS_gettid) == parent;
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        mag__zygote_main(sv[1], parent, main_thread);
    }
    int e = pid < 0 ? -errno : 0;
    close(sv[1]);
    if (e) {
        close(sv[0]);
        pool_free(p);
        return e;
    }
    /* Our unreaped child: its pid cannot be reused before we wait for it. */
    int pidfd = pidfd_open(pid, 0);
    p->zygote = (zygote_ref_t){sv[0], pidfd, pid, true};
    p->zygote_pid = pid;
    if (pidfd < 0) {
        e = -errno;
        kill(pid, SIGKILL);
        close(sv[0]);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        pool_free(p);
        return e;
    }
    /* Sequence numbers start at a value no worker saw in its memory. */
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = mag__now();
    atomic_store_explicit(&p->next_seq, seed, memory_order_relaxed); /* before any caller */
    spare_fork(&p->zygote, &p->spare);
    for (unsigned i = 0; i < nworkers && !e; i++) {
        e = worker_spawn(p, &p->slots[i]);
        if (!e) {
            p->slots[i].next = p->idle;
            p->idle = &p->slots[i];
            p->nidle++;
            p->alive++;
        }
    }
    if (e) {
        mag__procpool_stop(p);
        return e;
    }
    *out = p;
    return 0;
}

void mag_pool_stats(mag_runtime_t *rt, mag_pool_stats_t *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!rt || !rt->blocking)
        return;
    mag__blocking_stats(rt->blocking, out);
    struct mag__procpool *p = rt->procpool;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    out->proc_workers = p->alive;
    out->proc_idle = p->nidle;
    out->proc_jobs = atomic_load_explicit(&p->jobs, memory_order_relaxed);
    out->proc_replaced = p->replaced;
    out->zygote_pid = p->zygote_pid;
    pthread_mutex_unlock(&p->lock);
}
