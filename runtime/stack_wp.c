/*
 * runtime/stack_wp.c - write-protected pages below unguarded stacks, with
 * userfaultfd: a guard page that costs no VMA.
 *
 * A stack without a guard page has a canary at its low end, checked at every
 * switch out of its fiber (fiber.c). A frame larger than a page that does not
 * write the canary's word is not seen by it: on x86-64 the stack probes of
 * -fstack-clash-protection are `orq $0, (%rsp)`, which leave memory as it
 * was, and such a frame lands in the stack mapped below, silently. Where
 * userfaultfd allows it, such a stack is mapped one page larger, and that
 * lowest page is write-protected: any write into it, a probe included, then
 * faults, as on a guard page.
 *
 * Why it costs no VMA: the whole mapping is registered (a registration of
 * part of one would split it), and write protection is a bit in the page's
 * table entry, not a mapping of its own. Registered stacks share one
 * userfaultfd and merge with registered neighbours, as unregistered ones do
 * with theirs, provided the registration comes before the mapping's first
 * write: a written mapping has memory of its own (an anon_vma) and no longer
 * merges (200 parked stacks: 1 VMA added when registered first, 200 when
 * registered after the canary was written).
 *
 * The set-up, once per process, at the first unguarded stack: one
 * userfaultfd with UFFD_USER_MODE_ONLY (Linux 5.11; what an unprivileged
 * process may open when vm.unprivileged_userfaultfd is 0, and a write by the
 * kernel into the page then fails with EFAULT instead of waiting),
 * UFFD_FEATURE_THREAD_ID (the fault names the thread), O_CLOEXEC (an exec
 * does not inherit it) and, where the kernel has it (6.4),
 * UFFD_FEATURE_WP_UNPOPULATED: the page is protected without ever being
 * written, so it costs no memory, and a stack costs less to set up than an
 * unprotected one, whose canary write faults a page in (64 KiB stacks, mmap
 * to protected: about 2.5 us against 3.3 us unprotected, 6 us when the page
 * must be written first). Older kernels protect only a populated page, so
 * the canary is written first there. Where the kernel or a seccomp filter refuses any of
 * it (ENOSYS, EPERM, EINVAL), or under ASan or TSan (they own the stacks and
 * the SIGSEGV handler is theirs), nothing is protected and the canary stands
 * alone.
 *
 * Reporting. A write into a protected page stops the writing thread in the
 * kernel and queues a message on the userfaultfd. A thread of this file
 * (signals blocked, asleep in poll otherwise) reads it and queues SIGSEGV to
 * the writer (rt_tgsigqueueinfo, SI_QUEUE, the page's address in si_value).
 * The signal interrupts the wait, and fiber.c's SIGSEGV handler runs on the
 * writer, on its alternate stack, where it knows the worker and its current
 * task: it names the task and aborts, as for a guard page. A write it does
 * not claim (no task running, another stack's page) makes it fall back to
 * the default action, and the write, retried, faults and is signalled again,
 * which then kills the process. Nothing ever unprotects a page, so no write
 * into one is allowed to proceed: if the process still lives two seconds
 * after the first notice (a thread that blocks SIGSEGV, a handler put in
 * front of ours that returns), the report thread aborts it.
 *
 * fork: without UFFD_FEATURE_EVENT_FORK the child's mappings are not
 * registered and its pages are not protected; the descriptor it inherits is
 * the parent's and would act on the parent's memory, so the child closes it
 * (pthread_atfork) and protects nothing. Unmapping a stack unregisters it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "runtime/stack_wp.h"

#if defined(__linux__) && defined(SYS_userfaultfd) && !MAG__SANITIZED
#include <linux/userfaultfd.h>
#endif
/* Write protection for anonymous memory came with Linux 5.7's header. */
#if defined(UFFDIO_WRITEPROTECT) && defined(UFFD_FEATURE_THREAD_ID)
#define STACK_WP_BUILT 1
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1 /* Linux 5.11; older headers lack it */
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13) /* Linux 6.4 */
#endif
#else
#define STACK_WP_BUILT 0
#endif

#define NOTICE_GRACE_NS 2000000000ll

bool mag__stack_wp_notice(const void *siginfo, void **addr)
{
    const siginfo_t *info = siginfo;
    if (info->si_code != SI_QUEUE || info->si_pid != getpid())
        return false;
    *addr = info->si_value.sival_ptr;
    return true;
}

#if STACK_WP_BUILT

/* The userfaultfd, or -1. Written by the set-up (before pthread_once
 * returns to any caller, which orders it) and by a forked child (alone in
 * its process); relaxed: nothing else is published through it. */
static _Atomic int wp_fd = -1;
static pthread_once_t wp_once = PTHREAD_ONCE_INIT;
/* Whether pages never written can be protected (UFFD_FEATURE_WP_UNPOPULATED);
 * set by the set-up only, ordered by pthread_once as wp_fd. */
static bool wp_unpopulated;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Tells thread tid that it wrote into the protected page at addr. */
static void notify_writer(pid_t tid, void *addr)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = SIGSEGV;
    si.si_code = SI_QUEUE;
    si.si_pid = getpid();
    si.si_uid = getuid();
    si.si_value.sival_ptr = addr;
    syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, SIGSEGV, &si);
}

_Noreturn static void unreported_abort(pid_t tid, uint64_t addr)
{
    char msg[200];
    int n = snprintf(msg, sizeof msg,
                     "magpie: stack overflow: thread %d wrote into the protected page "
                     "below a fiber stack (0x%llx) and did not report it\n",
                     (int)tid, (unsigned long long)addr);
    ssize_t w = write(STDERR_FILENO, msg, n > 0 ? (size_t)n : 0);
    (void)w;
    signal(SIGABRT, SIG_DFL);
    abort();
}

/* The report thread: see the top of this file. */
static void *report_faults(void *arg)
{
    int fd = (int)(intptr_t)arg;
    int64_t deadline = 0; /* 0: no notice sent yet */
    pid_t first_tid = 0;
    uint64_t first_addr = 0;
    for (;;) {
        int timeout_ms = -1;
        if (deadline) {
            int64_t left = deadline - now_ns();
            if (left <= 0)
                unreported_abort(first_tid, first_addr);
            timeout_ms = (int)(left / 1000000) + 1;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, timeout_ms);
        if (n < 0 && errno != EINTR)
            return NULL;
        if (n <= 0)
            continue;
        struct uffd_msg msg;
        ssize_t got = read(fd, &msg, sizeof msg);
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (got != (ssize_t)sizeof msg)
            return NULL;
        if (msg.event != UFFD_EVENT_PAGEFAULT)
            continue;
        pid_t tid = (pid_t)msg.arg.pagefault.feat.ptid;
        void *addr = (void *)(uintptr_t)msg.arg.pagefault.address;
        if (!deadline) {
            deadline = now_ns() + NOTICE_GRACE_NS;
            first_tid = tid;
            first_addr = msg.arg.pagefault.address;
        }
        notify_writer(tid, addr);
    }
}

/* In a forked child: the descriptor is the parent's (see the top). */
static void forget_in_child(void)
{
    int fd = atomic_exchange_explicit(&wp_fd, -1, memory_order_relaxed);
    if (fd >= 0)
        close(fd);
}

/* A userfaultfd with the features asked for and write protection, or -1. */
static int open_userfaultfd(uint64_t features)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0)
        return -1; /* ENOSYS, EPERM (seccomp, the sysctl), EINVAL (before 5.11) */
    struct uffdio_api api = {.api = UFFD_API, .features = features};
    if (ioctl(fd, UFFDIO_API, &api) != 0 || !(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void set_up(void)
{
    /* Protecting pages never written (Linux 6.4) costs neither the page nor
     * the fault that would populate it; older kernels refuse the feature
     * (EINVAL), and get the canary written first. */
    wp_unpopulated = true;
    int fd = open_userfaultfd(UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_WP_UNPOPULATED);
    if (fd < 0) {
        wp_unpopulated = false;
        fd = open_userfaultfd(UFFD_FEATURE_THREAD_ID);
    }
    if (fd < 0)
        return;
    /* Every signal blocked in the report thread, so that none meant for the
     * application lands there (see blocking.c's start_thread). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t thread;
    int e = pthread_create(&thread, &attr, report_faults, (void *)(intptr_t)fd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (e) {
        close(fd);
        return;
    }
    pthread_setname_np(thread, "magpie-stackwp");
    pthread_atfork(NULL, NULL, forget_in_child);
    atomic_store_explicit(&wp_fd, fd, memory_order_relaxed); /* see wp_fd */
}

bool mag__stack_wp_available(void)
{
    pthread_once(&wp_once, set_up);
    return atomic_load_explicit(&wp_fd, memory_order_relaxed) >= 0; /* see wp_fd */
}

bool mag__stack_wp_populate_first(void)
{
    return !wp_unpopulated; /* see wp_unpopulated */
}

bool mag__stack_wp_register(void *map, size_t map_len)
{
    int fd = atomic_load_explicit(&wp_fd, memory_order_relaxed); /* see wp_fd */
    if (fd < 0)
        return false;
    struct uffdio_register reg = {
        .range = {.start = (uintptr_t)map, .len = map_len},
        .mode = UFFDIO_REGISTER_MODE_WP,
    };
    if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0)
        return false;
    if (!(reg.ioctls & (1ull << _UFFDIO_WRITEPROTECT))) {
        ioctl(fd, UFFDIO_UNREGISTER, &reg.range);
        return false;
    }
    return true;
}

bool mag__stack_wp_protect(void *page, size_t page_len)
{
    int fd = atomic_load_explicit(&wp_fd, memory_order_relaxed); /* see wp_fd */
    struct uffdio_writeprotect wp = {
        .range = {.start = (uintptr_t)page, .len = page_len},
        .mode = UFFDIO_WRITEPROTECT_MODE_WP,
    };
    return fd >= 0 && ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0;
}

#else /* no userfaultfd write protection in this build */

bool mag__stack_wp_populate_first(void)
{
    return true;
}

bool mag__stack_wp_available(void)
{
    return false;
}

bool mag__stack_wp_register(void *map, size_t map_len)
{
    return false;
}

bool mag__stack_wp_protect(void *page, size_t page_len)
{
    return false;
}

#endif
