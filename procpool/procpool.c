/*
 * procpool/procpool.c - the process pool: the registry of functions, the
 * zygote and its workers (child side), and mag_proc_call (parent side).
 *
 * Processes. mag_runtime_create forks the zygote before it starts any
 * thread. The zygote is single-threaded and stays so: it forks every worker,
 * reaps them (SIGCHLD through a signalfd), and sends each new worker's socket
 * and pidfd back to the parent over its control socket (SOCK_SEQPACKET,
 * SCM_RIGHTS). It leaves when the parent says so or when the parent's end of
 * the control socket closes (the parent died, even by SIGKILL): it then
 * kills and reaps its workers and exits. A worker has PR_SET_PDEATHSIG
 * SIGKILL on the zygote; so has the zygote on the parent when the parent
 * forked it from the main thread (the death signal follows the forking
 * *thread*, so from another thread only the control socket's EOF is used).
 *
 * Jobs. A worker serves one job at a time on its own stream socket: a
 * request header and the input, then a reply header and the output. The
 * parent side runs in the calling task, on the ring (io/'s whole transfers):
 * the task suspends, no thread blocks. A job that ends in EOF or a reset on
 * its socket lost its worker (a crash): -ECHILD. A job whose caller is
 * cancelled, or passes its deadline, has its worker killed through the
 * pidfd (no PID reuse race). Either way the worker is replaced by a job on
 * the blocking pool that asks the zygote for a new one, so that the caller
 * returns at once and no worker thread blocks on the zygote.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/internal.h"
#include "procpool/procpool.h"
#include "runtime/blocking.h"
#include "runtime/sched.h"

#define REQ_MAGIC 0x6d61676a /* "magj" */
#define SOCK_BUF (1 << 20)
#define STAGE 8192 /* a small reply arrives with its header in one recv */

typedef struct req_hdr {
    uint32_t magic;
    uint32_t fn;
    uint64_t len;
} req_hdr_t;

typedef struct rep_hdr {
    int32_t rc;
    uint32_t magic;
    uint64_t len;
} rep_hdr_t;

/* The zygote's answer to a spawn request; SCM_RIGHTS carries the parent's
 * end of the worker's socket and the worker's pidfd when err is 0. */
typedef struct spawn_msg {
    int32_t err;
    int32_t pid;
} spawn_msg_t;

/* ---- the registry ------------------------------------------------------------
 * Written under reg_lock until the first pool freezes it; read without the
 * lock afterwards (the freeze's release/acquire publishes it). */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[MAG_PROC_NAME_MAX + 1];
    mag_proc_fn fn;
} reg[MAG_PROC_MAX_FUNCS];
static unsigned nreg;
static _Atomic bool reg_frozen;

int mag_proc_register(const char *name, mag_proc_fn fn)
{
    if (!name || !*name || !fn)
        return -EINVAL;
    size_t len = strlen(name);
    if (len > MAG_PROC_NAME_MAX)
        return -ENAMETOOLONG;
    int rc = 0;
    pthread_mutex_lock(&reg_lock);
    if (atomic_load_explicit(&reg_frozen, memory_order_relaxed)) {
        rc = -EBUSY;
    } else if (nreg == MAG_PROC_MAX_FUNCS) {
        rc = -ENOSPC;
    } else {
        for (unsigned i = 0; i < nreg && !rc; i++)
            if (!strcmp(reg[i].name, name))
                rc = -EEXIST;
        if (!rc) {
            memcpy(reg[nreg].name, name, len + 1);
            reg[nreg].fn = fn;
            nreg++;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

static int lookup(const char *name)
{
    /* acquire: pairs with the release in freeze(); the table is immutable. */
    if (!atomic_load_explicit(&reg_frozen, memory_order_acquire))
        return -ENOENT;
    for (unsigned i = 0; i < nreg; i++)
        if (!strcmp(reg[i].name, name))
            return (int)i;
    return -ENOENT;
}

static void freeze(void)
{
    pthread_mutex_lock(&reg_lock);
    /* release: publishes the table to lock-free readers (lookup). */
    atomic_store_explicit(&reg_frozen, true, memory_order_release);
    pthread_mutex_unlock(&reg_lock);
}

/* ---- blocking I/O for the zygote, its workers and pool threads ----------
 * Always the blocking system calls (the io/ helpers' blocking mode): a
 * forked process inherits the thread-locals of the thread that forked it,
 * which may name a task of the parent's runtime. */

static int read_full(int fd, void *buf, size_t n)
{
    ssize_t r = mag__io_recv_min(fd, buf, n, n, true);
    return r < 0 ? (int)r : 0;
}

static int send_two(int fd, const void *hdr, size_t hlen, const void *body, size_t blen)
{
    struct iovec iov[2] = {{(void *)hdr, hlen}, {(void *)body, blen}};
    return mag__io_send_all(fd, iov, blen ? 2 : 1, 0, true);
}

/* ---- the worker process ------------------------------------------------------ */

/* Reads and drops n bytes (an input the worker has no memory for). */
static int drain(int fd, uint64_t n)
{
    char buf[4096];
    while (n) {
        size_t k = n < sizeof buf ? (size_t)n : sizeof buf;
        int rc = read_full(fd, buf, k);
        if (rc)
            return rc;
        n -= k;
    }
    return 0;
}

static _Noreturn void worker_main(int fd)
{
    for (;;) {
        req_hdr_t h;
        if (read_full(fd, &h, sizeof h) || h.magic != REQ_MAGIC || h.len > MAG_PROC_MAX_PAYLOAD)
            _exit(0); /* the parent closed the socket (or went mad) */
        void *in = h.len ? malloc(h.len) : NULL;
        void *out = NULL;
        size_t out_len = 0;
        int rc;
        if (h.len && !in) {
            if (drain(fd, h.len))
                _exit(0);
            rc = -ENOMEM;
        } else {
            if (h.len && read_full(fd, in, h.len))
                _exit(0);
            rc = h.fn < nreg ? reg[h.fn].fn(in, h.len, &out, &out_len) : -ENOENT;
            free(in);
        }
        if (rc >= 0 && out_len > MAG_PROC_MAX_PAYLOAD)
            rc = -EMSGSIZE;
        if (rc >= 0 && out_len && !out)
            rc = -EFAULT;
        if (rc < 0)
            out_len = 0;
        rep_hdr_t r = {.rc = rc, .magic = REQ_MAGIC, .len = out_len};
        if (send_two(fd, &r, sizeof r, out, out_len))
            _exit(0);
        free(out);
    }
}

/* ---- the zygote ---------------------------------------------------------------- */

typedef struct zygote {
    int ctl;
    pid_t self;
    pid_t *kids;
    size_t nkids, capkids;
} zygote_t;

/* Closes every descriptor but 0, 1, 2 and keep. */
static void close_others(int keep)
{
    if (keep > 3)
        syscall(SYS_close_range, 3u, (unsigned)keep - 1, 0u);
    syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u);
}

static void reset_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)sigaction(sig, &sa, NULL);
}

static void spawn_worker(zygote_t *z)
{
    spawn_msg_t m = {0, 0};
    int sv[2] = {-1, -1}, pidfd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        m.err = -errno;
    } else {
        int sz = SOCK_BUF;
        for (int i = 0; i < 2; i++) {
            (void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
            (void)setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        }
        if (z->nkids == z->capkids) {
            size_t cap = z->capkids ? 2 * z->capkids : 16;
            pid_t *k = realloc(z->kids, cap * sizeof *k);
            if (k) {
                z->kids = k;
                z->capkids = cap;
            }
        }
        pid_t pid = z->nkids < z->capkids ? fork() : (errno = ENOMEM, -1);
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != z->self)
                _exit(0); /* the zygote died before the death signal was set */
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            close_others(sv[1]);
            worker_main(sv[1]);
        }
        if (pid < 0) {
            m.err = -errno;
        } else {
            z->kids[z->nkids++] = pid;
            m.pid = pid;
            pidfd = pidfd_open(pid, 0);
            if (pidfd < 0) {
                m.err = -errno;
                kill(pid, SIGKILL); /* reaped through SIGCHLD */
            }
        }
        close(sv[1]);
    }
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } c;
    struct iovec iov = {.iov_base = &m, .iov_len = sizeof m};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (m.err == 0) {
        memset(&c, 0, sizeof c);
        msg.msg_control = c.buf;
        msg.msg_controllen = sizeof c.buf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
        int fds[2] = {sv[0], pidfd};
        memcpy(CMSG_DATA(cm), fds, sizeof fds);
    }
    while (sendmsg(z->ctl, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
    if (sv[0] >= 0)
        close(sv[0]);
    if (pidfd >= 0)
        close(pidfd);
}

static void reap(zygote_t *z, bool block)
{
    pid_t pid;
    while ((pid = waitpid(-1, NULL, block ? 0 : WNOHANG)) > 0 || (pid < 0 && errno == EINTR)) {
        for (size_t i = 0; i < z->nkids; i++) {
            if (z->kids[i] == pid) {
                z->kids[i] = z->kids[--z->nkids];
                break;
            }
        }
    }
}

static _Noreturn void zygote_main(int ctl, pid_t parent, bool pdeath)
{
    if (pdeath)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0); /* the parent died before the death signal was set */
    setpgid(0, 0);
    reset_signals();
    close_others(ctl);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_SETMASK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    zygote_t z = {.ctl = ctl, .self = getpid()};
    for (;;) {
        struct pollfd pf[2] = {{.fd = ctl, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        if (poll(pf, sfd >= 0 ? 2 : 1, sfd >= 0 ? -1 : 100) < 0 && errno != EINTR)
            break;
        if (sfd >= 0 && pf[1].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0)
                ;
        }
        reap(&z, false);
        if (pf[0].revents) {
            char cmd = 0;
            ssize_t n = recv(ctl, &cmd, 1, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0 || cmd != 'S')
                break; /* 'Q', EOF (the parent is gone) or an error */
            spawn_worker(&z);
        }
    }
    for (size_t i = 0; i < z.nkids; i++)
        kill(z.kids[i], SIGKILL);
    while (z.nkids)
        reap(&z, true);
    _exit(0);
}

/* ---- the parent's side --------------------------------------------------------- */

typedef struct proc_worker {
    struct mag__procpool *pool;
    struct proc_worker *next; /* idle list */
    int fd;                   /* the job socket; -1 while replaced */
    int pidfd;
    pid_t pid;
} proc_worker_t;

/* A caller waiting for a worker; on its stack. */
typedef struct proc_waiter {
    mag__waiter_t w;
    struct proc_waiter *prev, *next;
    proc_worker_t *given; /* handed over by a releaser */
    int err;              /* or this: the pool lost its last worker */
    bool queued;
} proc_waiter_t;

struct mag__procpool {
    mag_runtime_t *rt;
    pthread_mutex_t lock;     /* everything below but the control socket */
    proc_worker_t *slots;
    unsigned nslots;
    proc_worker_t *idle;
    unsigned nidle;
    unsigned alive;           /* workers alive or being replaced */
    proc_waiter_t *qhead, *qtail;
    _Atomic uint64_t jobs;    /* relaxed: a statistic */
    uint64_t replaced;
    pthread_mutex_t ctl_lock; /* one request to the zygote at a time */
    int ctl;
    pid_t zygote;
};

/* Asks the zygote for a worker (blocking; ctl_lock serializes). */
static int zygote_spawn(struct mag__procpool *p, proc_worker_t *wk)
{
    spawn_msg_t m;
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } c;
    struct iovec iov = {.iov_base = &m, .iov_len = sizeof m};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof c.buf};
    char cmd = 'S';
    ssize_t n;
    pthread_mutex_lock(&p->ctl_lock);
    int rc = send_two(p->ctl, &cmd, 1, NULL, 0);
    if (rc == 0) {
        while ((n = recvmsg(p->ctl, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
            ;
        rc = n < 0 ? -errno : n != (ssize_t)sizeof m ? -ECHILD : 0;
    }
    pthread_mutex_unlock(&p->ctl_lock);
    if (rc)
        return rc;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    if (m.err || !cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(2 * sizeof(int)))
        return m.err ? m.err : -ECHILD;
    int fds[2];
    memcpy(fds, CMSG_DATA(cm), sizeof fds);
    wk->fd = fds[0];
    wk->pidfd = fds[1];
    wk->pid = m.pid;
    return 0;
}

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

/* A worker could not be replaced: one fewer; with none left, every waiter
 * fails with -ECHILD rather than wait forever. */
static void worker_lost(struct mag__procpool *p)
{
    pthread_mutex_lock(&p->lock);
    proc_waiter_t *fail = NULL;
    if (--p->alive == 0) {
        fail = p->qhead;
        for (proc_waiter_t *q = fail; q; q = q->next) {
            q->queued = false;
            q->err = -ECHILD;
        }
        p->qhead = p->qtail = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    while (fail) {
        proc_waiter_t *next = fail->next; /* read before the signal frees it */
        mag__waiter_signal(&fail->w);
        fail = next;
    }
}

static int replace_job(void *arg)
{
    proc_worker_t *wk = arg;
    struct mag__procpool *p = wk->pool;
    if (zygote_spawn(p, wk) == 0)
        worker_release(p, wk);
    else
        worker_lost(p);
    return 0;
}

/* Retires a worker that died or must die, and starts its replacement. */
static void worker_retire(struct mag__procpool *p, proc_worker_t *wk)
{
    syscall(SYS_pidfd_send_signal, wk->pidfd, SIGKILL, NULL, 0u);
    close(wk->fd);
    close(wk->pidfd);
    wk->fd = wk->pidfd = -1;
    pthread_mutex_lock(&p->lock);
    p->replaced++;
    pthread_mutex_unlock(&p->lock);
    if (mag__spawn_blocking(p->rt, NULL, replace_job, wk))
        worker_lost(p); /* shutting down (or out of memory) */
}

static bool worker_dead(const proc_worker_t *wk)
{
    struct pollfd pf = {.fd = wk->pidfd, .events = POLLIN};
    return poll(&pf, 1, 0) > 0;
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
    while (p->idle) {
        proc_worker_t *wk = p->idle;
        p->idle = wk->next;
        p->nidle--;
        pthread_mutex_unlock(&p->lock);
        if (!worker_dead(wk)) { /* killed while idle: no job of ours fails */
            if (task)
                mag__suspend_end();
            *out = wk;
            return 0;
        }
        worker_retire(p, wk);
        pthread_mutex_lock(&p->lock);
    }
    if (p->alive == 0) {
        pthread_mutex_unlock(&p->lock);
        if (task)
            mag__suspend_end();
        return -ECHILD;
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

/* One job on wk. Returns the function's result (>= 0 or its errno) in *fn_rc
 * and 0, or a transport error: -ECHILD (the worker died), -ECANCELED,
 * -ETIMEDOUT, -ENOMEM (the worker must then go). */
static int exchange(proc_worker_t *wk, int fn, const void *in, size_t in_len, void **out,
                    size_t *out_len, int *fn_rc)
{
    req_hdr_t h = {.magic = REQ_MAGIC, .fn = (uint32_t)fn, .len = in_len};
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)in, in_len}};
    /* On the ring: the calling task suspends. */
    int rc = mag__io_send_all(wk->fd, iov, in_len ? 2 : 1, 0, false);
    if (rc)
        return rc == -EPIPE || rc == -ECONNRESET ? -ECHILD : rc;
    char stage[STAGE];
    ssize_t got = mag__io_recv_min(wk->fd, stage, sizeof(rep_hdr_t), sizeof stage, false);
    if (got < 0)
        return got == -EPIPE || got == -ECONNRESET ? -ECHILD : (int)got;
    size_t have = (size_t)got;
    rep_hdr_t rep;
    memcpy(&rep, stage, sizeof rep);
    if (rep.magic != REQ_MAGIC || rep.len > MAG_PROC_MAX_PAYLOAD ||
        rep.len < have - sizeof rep)
        return -ECHILD; /* garbage from a worker: treat it as dead */
    char *buf = NULL;
    if (rep.len) {
        if (!(buf = malloc(rep.len)))
            return -ENOMEM;
        memcpy(buf, stage + sizeof rep, have - sizeof rep);
        size_t left = rep.len - (have - sizeof rep);
        got = mag__io_recv_min(wk->fd, buf + (have - sizeof rep), left, left, false);
        if (got < 0) {
            free(buf);
            return got == -EPIPE || got == -ECONNRESET ? -ECHILD : (int)got;
        }
    }
    *fn_rc = rep.rc;
    if (out) {
        *out = buf;
        *out_len = rep.len;
    } else {
        free(buf);
    }
    return 0;
}

int mag_proc_call(const char *name, const void *in, size_t in_len, void **out, size_t *out_len)
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
    int fn = lookup(name);
    if (fn < 0)
        return fn;
    if (out) {
        *out = NULL;
        *out_len = 0;
    }
    proc_worker_t *wk;
    int rc = worker_acquire(p, &wk);
    if (rc)
        return rc;
    int fn_rc = 0;
    rc = exchange(wk, fn, in, in_len, out, out_len, &fn_rc);
    if (rc)
        worker_retire(p, wk);
    else
        worker_release(p, wk);
    atomic_fetch_add_explicit(&p->jobs, 1, memory_order_relaxed);
    return rc ? rc : fn_rc;
}

/* ---- start, stop, statistics --------------------------------------------- */

void mag__procpool_stop(struct mag__procpool *p)
{
    if (!p)
        return;
    /* 'Q', then EOF: the zygote kills and reaps its workers, then exits. */
    char cmd = 'Q';
    (void)send_two(p->ctl, &cmd, 1, NULL, 0);
    close(p->ctl);
    for (unsigned i = 0; i < p->nslots; i++) {
        if (p->slots[i].fd >= 0)
            close(p->slots[i].fd);
        if (p->slots[i].pidfd >= 0)
            close(p->slots[i].pidfd);
    }
    while (waitpid(p->zygote, NULL, 0) < 0 && errno == EINTR)
        ;
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->ctl_lock);
    free(p->slots);
    free(p);
}

int mag__procpool_start(mag_runtime_t *rt, unsigned nworkers, struct mag__procpool **out)
{
    freeze();
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
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->ctl_lock, NULL);
    for (unsigned i = 0; i < nworkers; i++) {
        p->slots[i].pool = p;
        p->slots[i].fd = p->slots[i].pidfd = -1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        int e = -errno;
        pthread_mutex_destroy(&p->lock);
        pthread_mutex_destroy(&p->ctl_lock);
        free(p->slots);
        free(p);
        return e;
    }
    pid_t parent = getpid();
    bool main_thread = (pid_t)syscall(SYS_gettid) == parent;
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        zygote_main(sv[1], parent, main_thread);
    }
    int e = pid < 0 ? -errno : 0;
    close(sv[1]);
    p->ctl = sv[0];
    p->zygote = pid;
    if (e) {
        close(sv[0]);
        pthread_mutex_destroy(&p->lock);
        pthread_mutex_destroy(&p->ctl_lock);
        free(p->slots);
        free(p);
        return e;
    }
    for (unsigned i = 0; i < nworkers && !e; i++) {
        e = zygote_spawn(p, &p->slots[i]);
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
    out->zygote_pid = p->zygote;
    pthread_mutex_unlock(&p->lock);
}
