/*
 * io/signal.c - mag_signal_wait: signals as events a task can wait for.
 *
 * The handler is the only code that runs in signal context, and it only
 * touches lock-free atomics and write(2): it counts the delivery in
 * pending[sig], then writes to the eventfd of every wait slot armed for that
 * signal. A waiter arms a slot with its set, then takes a pending delivery
 * or reads its slot's eventfd (on the ring from a task) and tries again.
 * The handler's increment-then-load of `armed` and the waiter's
 * store-then-load of `pending` are all seq_cst: of the two, at least one
 * sees the other, so a delivery is either taken by the waiter's check or
 * wakes its read; never lost. Stale eventfd counts only cause a spurious
 * wake-up, after which the waiter re-checks.
 *
 * Slots are created on demand and never destroyed (the handler may be
 * reading one at any time), at most MAX_SLOTS of them.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io/internal.h"

#define MAX_SIG 64  /* signals 1..64 map to bits 0..63 */
#define MAX_SLOTS 64

typedef struct slot {
    int fd;                  /* eventfd, blocking; fixed once published */
    _Atomic uint64_t armed;  /* the set being waited for; 0 when free */
    struct slot *next_free;  /* under slots_lock */
} slot_t;

static _Atomic uint32_t pending[MAX_SIG + 1];
static _Atomic uint64_t installed;
static slot_t slots[MAX_SLOTS];
static _Atomic int nslots; /* slots whose fd exists (release/acquire) */
static slot_t *free_slots;
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

static inline uint64_t bit(int sig)
{
    return 1ull << (sig - 1);
}

static void on_signal(int sig)
{
    int saved = errno;
    /* seq_cst: pairs with the waiter's seq_cst store of armed (header). */
    atomic_fetch_add_explicit(&pending[sig], 1, memory_order_seq_cst);
    /* acquire: pairs with the release publishing each slot's fd. */
    int n = atomic_load_explicit(&nslots, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        if (atomic_load_explicit(&slots[i].armed, memory_order_seq_cst) & bit(sig)) {
            uint64_t one = 1;
            ssize_t r = write(slots[i].fd, &one, sizeof one);
            (void)r;
        }
    }
    errno = saved;
}

/* The set as a bit mask; 0 when it is empty or holds a signal we refuse. */
static uint64_t to_mask(const sigset_t *set)
{
    static const int refused[] = {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS};
    uint64_t m = 0;
    for (int sig = 1; sig <= MAX_SIG && sig < NSIG; sig++)
        if (sigismember(set, sig) == 1)
            m |= bit(sig);
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (m & bit(refused[i]))
            return 0;
    return m;
}

static int install(uint64_t mask)
{
    /* acquire: pairs with the release below; the handlers are in place. */
    if ((atomic_load_explicit(&installed, memory_order_acquire) & mask) == mask)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&install_lock);
    uint64_t have = atomic_load_explicit(&installed, memory_order_relaxed);
    for (int sig = 1; sig <= MAX_SIG && !rc; sig++) {
        if (!(mask & bit(sig)) || (have & bit(sig)))
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(sig, &sa, NULL) < 0)
            rc = -errno;
        else
            have |= bit(sig);
    }
    atomic_store_explicit(&installed, have, memory_order_release);
    pthread_mutex_unlock(&install_lock);
    return rc;
}

/* Takes one pending delivery of a signal in mask: its number, or 0. */
static int take_pending(uint64_t mask)
{
    for (int sig = 1; sig <= MAX_SIG; sig++) {
        if (!(mask & bit(sig)))
            continue;
        /* seq_cst: pairs with the handler's increment (header). */
        uint32_t v = atomic_load_explicit(&pending[sig], memory_order_seq_cst);
        while (v > 0)
            if (atomic_compare_exchange_weak_explicit(&pending[sig], &v, v - 1,
                                                      memory_order_seq_cst, memory_order_relaxed))
                return sig;
    }
    return 0;
}

static slot_t *slot_get(void)
{
    pthread_mutex_lock(&slots_lock);
    slot_t *s = free_slots;
    if (s) {
        free_slots = s->next_free;
    } else {
        int n = atomic_load_explicit(&nslots, memory_order_relaxed);
        if (n < MAX_SLOTS) {
            int fd = eventfd(0, EFD_CLOEXEC);
            if (fd >= 0) {
                s = &slots[n];
                s->fd = fd;
                /* release: the handler reads fd only after seeing nslots. */
                atomic_store_explicit(&nslots, n + 1, memory_order_release);
            }
        }
    }
    pthread_mutex_unlock(&slots_lock);
    return s;
}

static void slot_put(slot_t *s)
{
    pthread_mutex_lock(&slots_lock);
    s->next_free = free_slots;
    free_slots = s;
    pthread_mutex_unlock(&slots_lock);
}

int mag_signal_catch(const sigset_t *set)
{
    uint64_t mask = set ? to_mask(set) : 0;
    if (!mask)
        return -EINVAL;
    return install(mask);
}

int mag_signal_wait(const sigset_t *set, int *signo)
{
    uint64_t mask = set ? to_mask(set) : 0;
    if (!mask || !signo)
        return -EINVAL;
    int rc = install(mask);
    if (rc)
        return rc;
    int sig = take_pending(mask);
    if (sig) {
        *signo = sig;
        return 0;
    }
    slot_t *s = slot_get();
    if (!s)
        return -EAGAIN;
    /* seq_cst: pairs with the handler's load of armed (header). */
    atomic_store_explicit(&s->armed, mask, memory_order_seq_cst);
    for (;;) {
        if ((sig = take_pending(mask))) {
            *signo = sig;
            rc = 0;
            break;
        }
        uint64_t v;
        ssize_t r = mag_read(s->fd, &v, sizeof v, -1);
        if (r < 0 && r != -EINTR) {
            rc = (int)r; /* -ECANCELED, -ETIMEDOUT */
            break;
        }
    }
    atomic_store_explicit(&s->armed, 0, memory_order_seq_cst);
    slot_put(s);
    return rc;
}
