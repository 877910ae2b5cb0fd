/*
 * procpool/zygote.c - the child side of the process pool: the registry of
 * functions, the zygotes and their workers.
 *
 * A zygote is single-threaded and stays so: it forks every worker, reaps
 * them (SIGCHLD through a signalfd), and sends each new worker's socket and
 * pidfd back to the parent over its control socket (SOCK_SEQPACKET,
 * SCM_RIGHTS). It leaves when the parent says so or when the parent's end of
 * the control socket closes (the parent died, even by SIGKILL): it then
 * kills and reaps its workers and exits. A worker has PR_SET_PDEATHSIG
 * SIGKILL on its zygote.
 *
 * Spares. The first zygote is forked by the parent before any thread
 * exists; the parent then asks it for a spare zygote, forked the same way as
 * a worker (from a single-threaded process whose memory is the parent's as
 * it was at that moment) but running this zygote loop. Should the zygote
 * die, the parent promotes the spare and asks it for the next spare. A spare
 * has no death signal (it must outlive the zygote that forked it, after
 * which it is the init process's child); it leaves, as every zygote does,
 * when its control socket closes. Re-executing /proc/self/exe into a minimal
 * zygote mode was the alternative; it would lose what a worker must
 * inherit: the registry and the memory image the parent had at create.
 *
 * A worker serves one job at a time on its own stream socket: a request
 * header and the input, then a reply header (echoing the request's
 * sequence number) and the output.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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
#include "procpool/internal.h"

#define SOCK_BUF (1 << 20)

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

int mag__proc_lookup(const char *name)
{
    /* acquire: pairs with the release in mag__proc_freeze; the table is
     * immutable from then on. */
    if (!atomic_load_explicit(&reg_frozen, memory_order_acquire))
        return -ENOENT;
    for (unsigned i = 0; i < nreg; i++)
        if (!strcmp(reg[i].name, name))
            return (int)i;
    return -ENOENT;
}

void mag__proc_freeze(void)
{
    pthread_mutex_lock(&reg_lock);
    /* release: publishes the table to lock-free readers (mag__proc_lookup). */
    atomic_store_explicit(&reg_frozen, true, memory_order_release);
    pthread_mutex_unlock(&reg_lock);
}

/* ---- blocking I/O for the zygotes, their workers and pool threads -----------
 * Always the blocking system calls (the io/ helpers' blocking mode): a
 * forked process inherits the thread-locals of the thread that forked it,
 * which may name a task of the parent's runtime. */

static int read_full(int fd, void *buf, size_t n)
{
    ssize_t r = mag__io_recv_min(fd, buf, n, n, true);
    return r < 0 ? (int)r : 0;
}

int mag__proc_send_two(int fd, const void *hdr, size_t hlen, const void *body, size_t blen)
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
    pid_t self = getpid();
    for (;;) {
        mag__proc_req_t h;
        if (read_full(fd, &h, sizeof h) || h.magic != MAG__PROC_MAGIC ||
            h.len > MAG_PROC_MAX_PAYLOAD)
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
        /* A child the function forked returns here too: it must not answer
         * (the worker does) nor read the next request. */
        if (getpid() != self)
            _exit(0);
        if (rc >= 0 && out_len > MAG_PROC_MAX_PAYLOAD)
            rc = -EMSGSIZE;
        if (rc >= 0 && out_len && !out)
            rc = -EFAULT;
        if (rc < 0)
            out_len = 0;
        mag__proc_rep_t r = {.rc = rc, .magic = MAG__PROC_MAGIC, .len = out_len, .seq = h.seq};
        if (mag__proc_send_two(fd, &r, sizeof r, out, out_len))
            _exit(0);
        free(out);
    }
}

/* ---- the zygote ---------------------------------------------------------------- */

typedef struct zygote {
    int ctl;
    pid_t self;
    pid_t *kids; /* its workers (a spare is not one: it outlives this zygote) */
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

/* The new process's side, after fork: never returns. */
static _Noreturn void child_main(zygote_t *z, int cmd, int sock)
{
    if (cmd == MAG__ZY_SPARE)
        mag__zygote_main(sock, z->self, false);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != z->self)
        _exit(0); /* the zygote died before the death signal was set */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    close_others(sock);
    worker_main(sock);
}

/* Forks a worker or a spare zygote (cmd) and sends the parent its socket and
 * pidfd, or the error. */
static void spawn_child(zygote_t *z, int cmd)
{
    mag__zy_msg_t m = {0, 0};
    int sv[2] = {-1, -1}, pidfd = -1;
    int type = cmd == MAG__ZY_SPARE ? SOCK_SEQPACKET : SOCK_STREAM;
    if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0) {
        m.err = -errno;
    } else {
        int sz = SOCK_BUF;
        for (int i = 0; i < 2 && cmd == MAG__ZY_WORKER; i++) {
            (void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
            (void)setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        }
        if (cmd == MAG__ZY_WORKER && z->nkids == z->capkids) {
            size_t cap = z->capkids ? 2 * z->capkids : 16;
            pid_t *k = realloc(z->kids, cap * sizeof *k);
            if (k) {
                z->kids = k;
                z->capkids = cap;
            }
        }
        bool room = cmd != MAG__ZY_WORKER || z->nkids < z->capkids;
        pid_t pid = room ? fork() : (errno = ENOMEM, -1);
        if (pid == 0) {
            close(sv[0]);
            child_main(z, cmd, sv[1]);
        }
        if (pid < 0) {
            m.err = -errno;
        } else {
            if (cmd == MAG__ZY_WORKER)
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
        if (block && pid > 0)
            return; /* one at a time: the caller counts its workers */
    }
}

_Noreturn void mag__zygote_main(int ctl, pid_t parent, bool pdeath)
{
    if (pdeath) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0); /* the parent died before the death signal was set */
    }
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
            if (n <= 0 || (cmd != MAG__ZY_WORKER && cmd != MAG__ZY_SPARE))
                break; /* MAG__ZY_QUIT, EOF (the parent is gone) or an error */
            spawn_child(&z, cmd);
        }
    }
    for (size_t i = 0; i < z.nkids; i++)
        kill(z.kids[i], SIGKILL);
    while (z.nkids)
        reap(&z, true);
    reap(&z, false); /* a spare that has exited already */
    _exit(0);
}
