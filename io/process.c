/*
 * io/process.c - child processes: posix_spawn with pipes, a pidfd for each
 * child, and a wait that polls the pidfd on the ring before reaping.
 *
 * posix_spawnp (glibc: clone with CLONE_VM | CLONE_VFORK, then exec) is safe
 * in a threaded process, reports exec failures (ENOENT, EACCES) to the
 * caller, and sets up the child's stdio, directory, signal mask and signal
 * dispositions without running any code of ours in the child. The pidfd is
 * opened right after the spawn: the child cannot have been reaped meanwhile,
 * because only mag_process_wait reaps it (the header asks programs not to
 * reap children they did not start themselves).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/internal.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

struct mag_process {
    pid_t pid;
    int pidfd;
    int fd[3];   /* the parent's ends: stdin (write), stdout, stderr (read) */
    bool reaped;
    int status;  /* waitpid-style, once reaped */
};

/* SIGPIPE to SIG_IGN once, if it is still the default (see io.h). */
static void ignore_sigpipe_once(void)
{
    static _Atomic bool done;
    /* relaxed: at worst two threads both check and set the same thing. */
    if (atomic_load_explicit(&done, memory_order_relaxed))
        return;
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO)) {
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &ign, NULL);
    }
    atomic_store_explicit(&done, true, memory_order_relaxed);
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

int mag_process_spawn(mag_process_t **out, const char *const argv[], const mag_process_opts_t *opts)
{
    if (!out)
        return -EINVAL;
    if (!argv || !argv[0])
        return -EINVAL;
    mag_process_opts_t o;
    if (opts)
        o = *opts;
    else
        memset(&o, 0, sizeof o);
    const mag_stdio_t mode[3] = {o.in, o.out, o.err};
    for (int i = 0; i < 3; i++)
        if (mode[i] != MAG_STDIO_INHERIT && mode[i] != MAG_STDIO_PIPE && mode[i] != MAG_STDIO_NULL)
            return -EINVAL;
    mag_process_t *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    int child[3] = {-1, -1, -1}, devnull = -1, rc = 0;
    p->fd[0] = p->fd[1] = p->fd[2] = -1;
    p->pidfd = -1;
    for (int i = 0; i < 3 && !rc; i++) {
        if (mode[i] == MAG_STDIO_PIPE) {
            int pf[2];
            if (pipe2(pf, O_CLOEXEC) < 0) {
                rc = -errno;
                break;
            }
            child[i] = i == 0 ? pf[0] : pf[1];
            p->fd[i] = i == 0 ? pf[1] : pf[0];
        } else if (mode[i] == MAG_STDIO_NULL) {
            if (devnull < 0 && (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
                rc = -errno;
            child[i] = devnull;
        }
    }
    if (!rc && mode[0] == MAG_STDIO_PIPE)
        ignore_sigpipe_once();

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    bool fa_ok = false, attr_ok = false;
    if (!rc) {
        rc = -posix_spawn_file_actions_init(&fa);
        fa_ok = rc == 0;
    }
    for (int i = 0; i < 3 && !rc; i++)
        if (child[i] >= 0)
            rc = -posix_spawn_file_actions_adddup2(&fa, child[i], i);
    if (!rc && o.cwd)
        rc = -posix_spawn_file_actions_addchdir_np(&fa, o.cwd);
    if (!rc) {
        rc = -posix_spawnattr_init(&attr);
        attr_ok = rc == 0;
    }
    if (!rc) {
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(&attr, &none);   /* pool threads block signals */
        posix_spawnattr_setsigdefault(&attr, &all); /* SIGPIPE ignored by us, say */
        rc = -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    }
    if (!rc)
        rc = -posix_spawnp(&p->pid, argv[0], &fa, &attr, (char *const *)argv,
                           o.envp ? (char *const *)o.envp : environ);
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
    for (int i = 0; i < 3; i++)
        if (child[i] >= 0 && child[i] != devnull)
            close(child[i]);
    if (devnull >= 0)
        close(devnull);
    if (!rc && (p->pidfd = pidfd_open(p->pid, 0)) < 0) {
        rc = -errno;
        kill(p->pid, SIGKILL);
        while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (rc) {
        close_all(p->fd, 3);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

pid_t mag_process_pid(const mag_process_t *p)
{
    return p ? p->pid : -1;
}

int mag_process_stdin(const mag_process_t *p)
{
    return p ? p->fd[0] : -1;
}

int mag_process_stdout(const mag_process_t *p)
{
    return p ? p->fd[1] : -1;
}

int mag_process_stderr(const mag_process_t *p)
{
    return p ? p->fd[2] : -1;
}

int mag_process_close_stdin(mag_process_t *p)
{
    if (!p || p->fd[0] < 0)
        return -EBADF;
    int fd = p->fd[0];
    p->fd[0] = -1;
    return mag_close(fd);
}

/* Reaps the child if it has exited: 1 reaped, 0 still running, or -errno. */
static int try_reap(mag_process_t *p, int flags)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r;
    while ((r = waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | flags)) < 0 &&
           errno == EINTR)
        ;
    if (r < 0)
        return -errno;
    if (si.si_pid == 0)
        return 0;
    switch (si.si_code) {
    case CLD_EXITED:
        p->status = (si.si_status & 0xff) << 8;
        break;
    case CLD_DUMPED:
        p->status = (si.si_status & 0x7f) | 0x80;
        break;
    default: /* CLD_KILLED */
        p->status = si.si_status & 0x7f;
        break;
    }
    p->reaped = true;
    return 1;
}

int mag_process_wait(mag_process_t *p, int *wstatus)
{
    if (!p)
        return -EINVAL;
    while (!p->reaped) {
        int r = try_reap(p, WNOHANG);
        if (r < 0)
            return r;
        if (r)
            break;
        /* A pidfd polls readable once the process has exited: on the ring
         * from a task, a blocking poll on a plain thread. */
        r = mag_poll(p->pidfd, POLLIN);
        if (r < 0)
            return r;
    }
    if (wstatus)
        *wstatus = p->status;
    return 0;
}

int mag_process_kill(mag_process_t *p, int sig)
{
    if (!p)
        return -EINVAL;
    if (p->reaped)
        return -ESRCH;
    if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0u) < 0)
        return -errno;
    return 0;
}

void mag_process_free(mag_process_t *p)
{
    if (!p)
        return;
    close_all(p->fd, 3);
    if (!p->reaped) {
        syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0u);
        (void)try_reap(p, 0);
    }
    close(p->pidfd);
    free(p);
}
