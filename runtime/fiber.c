/*
 * runtime/fiber.c - fiber stacks, switches that sanitizers understand, and
 * stack-overflow reports (the first frame is context.c).
 *
 * Stacks are mmap'd with MAP_NORESERVE, so only the pages a fiber touches
 * cost memory. Where the kernel offers guard regions, stacks are carved many
 * to a mapping, each guarded at no VMA's cost (see "carved stacks" below).
 * Elsewhere a guard page below a stack costs a VMA of its own (the mapping
 * splits in two), and Linux allows vm.max_map_count (65,530 by default) VMAs
 * per process. So guard pages are given out within a budget (the config's
 * stack_guards, by default a quarter of that limit); stacks beyond the
 * budget have none, and their lowest usable word is a canary checked at
 * every switch out of the fiber, with the saved stack pointer: an overflow
 * is reported then, naming the task, instead of corrupting memory silently.
 *
 * Frames larger than a page would jump a guard page; the library, the tests
 * and the examples are compiled with -fstack-clash-protection (and magpie.pc
 * hands it on), so that such a frame touches every page on its way down and
 * hits the guard first.
 *
 * The canary is a non-zero pattern, written when the stack is mapped. A zero
 * word cost nothing (untouched memory is zero), but it cannot tell an
 * overflowing frame that writes zeros over it (a zeroed buffer; aarch64's
 * stack probes store zero) from no overflow at all; the pattern costs the
 * bottom page of each unguarded stack, 4 KiB, and guarded stacks have none.
 * What no canary sees is a frame that steps over the word without writing
 * it: x86-64's stack probes only OR zero into memory, and such a frame lands
 * in a neighbour's mapping unseen. So where userfaultfd allows it (see
 * stack_wp.c), an unguarded stack is mapped one page larger and that page
 * is write-protected: a guard page at no VMA's cost, which any write, a
 * probe included, hits; such a stack needs no canary (kernels before 6.4
 * protect only a page written to, and get the canary there as that write).
 * Where userfaultfd is refused (ENOSYS, EPERM under seccomp, EINVAL before
 * Linux 5.11, or a kernel without write protection) and in ASan and TSan
 * builds, the canary stands alone, silently, as described above; the probes
 * then fault only when the stack below is unmapped (the SIGSEGV report
 * below).
 */
#include <pthread.h>
#include <signal.h>
#include <ucontext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/fiber.h"
#include "runtime/sched.h"
#include "runtime/stack_pages.h"
#include "runtime/stack_wp.h"

/* Valgrind follows stack switches only among stacks it was told about. The
 * header comes with Debian's valgrind package; without it the macros are
 * no-ops (and cost nothing outside Valgrind either way). */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef VALGRIND_STACK_REGISTER
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

/* See the top of this file; no valid address on 64-bit Linux, nor a small
 * integer, nor zero, nor a byte repeated. */
#define STACK_CANARY 0xfeedc0de5a5a0b0eull

static size_t page_size(void)
{
    /* Workers allocate their first stacks at once: a plain lazy static
     * would be a data race. relaxed: every thread computes the same value,
     * so whichever store a reader sees is right. */
    static _Atomic size_t cached;
    size_t p = atomic_load_explicit(&cached, memory_order_relaxed);
    if (!p) {
        p = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&cached, p, memory_order_relaxed);
    }
    return p;
}

/* Guard-page budget: stacks with a guard page now, and the most allowed.
 * The budget is the process's, not a runtime's: the mappings it rations are
 * those of the one address space. The first runtime created sets it (from
 * its config's stack_guards) and it stays for the life of the process, so
 * that a stack never outlives the budget it was counted against; -1 until
 * then. */
static _Atomic long guards_in_use;
static _Atomic long guard_budget = -1;

unsigned mag__fiber_default_guard_budget(void)
{
    long max_maps = 65530; /* the kernel's default, if /proc cannot say */
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &max_maps) != 1 || max_maps < 0)
            max_maps = 65530;
        fclose(f);
    }
    return (unsigned)(max_maps / 4);
}

void mag__fiber_set_guard_budget(unsigned budget)
{
    long unset = -1;
    /* relaxed: only the first call wins, and nothing else is published
     * through the budget; the worker threads that read it are created after
     * it is set. */
    atomic_compare_exchange_strong_explicit(&guard_budget, &unset, (long)budget,
                                            memory_order_relaxed, memory_order_relaxed);
}

static bool take_guard(void)
{
    /* relaxed: see mag__fiber_set_guard_budget. */
    long budget = atomic_load_explicit(&guard_budget, memory_order_relaxed);
    if (budget < 0) {
        /* A stack before any runtime set the budget: the default one. */
        mag__fiber_set_guard_budget(mag__fiber_default_guard_budget());
        budget = atomic_load_explicit(&guard_budget, memory_order_relaxed);
    }
    /* relaxed: a counter, nothing is published through it. */
    if (atomic_fetch_add_explicit(&guards_in_use, 1, memory_order_relaxed) < budget)
        return true;
    atomic_fetch_sub_explicit(&guards_in_use, 1, memory_order_relaxed);
    return false;
}

/* ---- carved stacks --------------------------------------------------------
 * Where the kernel offers guard regions (MADV_GUARD_INSTALL, Linux 6.13),
 * a guard page costs no VMA: stacks are then carved, many to one mapping,
 * each with a guard region below it, so that every stack is guarded whatever
 * vm.max_map_count says, and a million stacks cost a few thousand mappings
 * instead of a million (mmap, munmap and the exit's teardown were what made
 * parking a million tasks slow). Their records live apart, in an array per
 * mapping, so that a free stack can give all its pages back. Carved stacks
 * are never unmapped: a free one waits in its size's free list, and beyond
 * HOT_STACKS free ones (process-wide) each freed stack's pages go back to the
 * kernel (MADV_DONTNEED; guard regions survive it). The process's exit
 * unmaps the mappings, a few thousand. Where guard regions are missing, or
 * the config's stack_guards is 0, stacks are one mapping each, as below. */

#define CARVE_BYTES_MAX (64u << 20)
#define CARVE_STACKS_MAX MAG__CARVE_STACKS_MAX /* 64 (stack_pages.h) */
#define HOT_STACKS 1024u

typedef struct stack_class {
    struct stack_class *next;
    size_t map;           /* per stack: guard page and usable bytes */
    mag__stack_t *free;   /* its free stacks */
} stack_class_t;

static pthread_mutex_t carve_lock = PTHREAD_MUTEX_INITIALIZER;
static stack_class_t *classes; /* under carve_lock */
static unsigned hot_free;      /* free carved stacks still resident (carve_lock) */
/* 1 while guard regions work (cleared for good by the first refusal). */
static _Atomic int guard_regions = 1;

/* Under carve_lock. */
static stack_class_t *stack_class(size_t map)
{
    for (stack_class_t *c = classes; c; c = c->next)
        if (c->map == map)
            return c;
    stack_class_t *c = calloc(1, sizeof *c);
    if (c) {
        c->map = map;
        c->next = classes;
        classes = c;
    }
    return c;
}

/* A new mapping of stacks of class c, all but the first put on its free
 * list; *fresh and *nfresh say where, for the caller to fault in their top
 * pages once it has let go of the lock (mag__stacks_populate_tops): the
 * faults are most of what a burst of spawns costs, and two workers then
 * take them in parallel instead of one after the other. Under carve_lock.
 * NULL when guard regions are refused (then guard_regions is cleared) or
 * memory is short. */
static mag__stack_t *carve(stack_class_t *c, size_t page, char **fresh, unsigned *nfresh)
{
    size_t n = CARVE_BYTES_MAX / c->map;
    n = n < 1 ? 1 : n > CARVE_STACKS_MAX ? CARVE_STACKS_MAX : n;
    char *base = mmap(NULL, n * c->map, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    mag__stack_t *recs = calloc(n, sizeof *recs);
    if (!recs) {
        munmap(base, n * c->map);
        return NULL;
    }
    if (mag__stacks_carve_pages(base, (unsigned)n, c->map, page) != 0) {
        /* relaxed: a one-way switch; a racing carve fails the same way. */
        atomic_store_explicit(&guard_regions, 0, memory_order_relaxed);
        munmap(base, n * c->map);
        free(recs);
        return NULL;
    }
    *fresh = base;
    *nfresh = (unsigned)n;
    for (size_t i = 0; i < n; i++) {
        char *b = base + i * c->map;
        mag__stack_t *r = &recs[i];
        r->base = b;
        r->map_size = c->map;
        r->lo = b + page;
        r->top = b + c->map;
        r->usable = c->map - page;
        r->guarded = true;
        r->carved = true;
        r->valgrind_id = VALGRIND_STACK_REGISTER(r->lo, r->top);
        if (i > 0) {
            r->next = c->free;
            c->free = r;
            hot_free++;
        }
    }
    return &recs[0];
}

/* A child of fork must not inherit carve_lock held, by a worker or by the
 * stacks' returner (stack_pages.c): it is taken across the fork. It never
 * nests with the returner's locks, so the handlers' order is free. */
static void carve_fork_prepare(void)
{
    pthread_mutex_lock(&carve_lock);
}

static void carve_fork_release(void)
{
    pthread_mutex_unlock(&carve_lock);
}

static void carve_register_atfork(void)
{
    (void)pthread_atfork(carve_fork_prepare, carve_fork_release, carve_fork_release);
}

static mag__stack_t *carved_alloc(size_t map, size_t page)
{
    char *fresh = NULL;
    unsigned nfresh = 0;
    /* Before the first carve, and outside the lock its handlers take. */
    static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
    (void)pthread_once(&atfork_once, carve_register_atfork);
    pthread_mutex_lock(&carve_lock);
    stack_class_t *c = stack_class(map);
    mag__stack_t *s = NULL;
    if (c && (s = c->free)) {
        c->free = s->next;
        if (hot_free)
            hot_free--;
    } else if (c) {
        s = carve(c, page, &fresh, &nfresh);
    }
    pthread_mutex_unlock(&carve_lock);
    if (fresh)
        mag__stacks_populate_tops(fresh, nfresh, map, page);
    if (s)
        s->next = NULL;
    return s;
}

/* Under carve_lock. */
static void push_free(mag__stack_t *s)
{
    stack_class_t *c = stack_class(s->map_size); /* exists: s came from it */
    s->next = c->free;
    c->free = s;
}

/* Stacks whose pages went back (mag__stack_return), to their free lists. */
static void carved_back(mag__stack_t *list)
{
    pthread_mutex_lock(&carve_lock);
    while (list) {
        mag__stack_t *next = list->next;
        push_free(list);
        list = next;
    }
    pthread_mutex_unlock(&carve_lock);
}

static void carved_free(mag__stack_t *s)
{
    pthread_mutex_lock(&carve_lock);
    bool keep = hot_free < HOT_STACKS;
    if (keep) {
        hot_free++;
        push_free(s);
    }
    pthread_mutex_unlock(&carve_lock);
    if (keep)
        return;
    /* Its pages go back, the guard stays (carved stacks have no canary),
     * with a batch of others (stack_pages.c), before the stacks are on the
     * free list: once there, another thread may take one and run a task on
     * it, and a DONTNEED then would zero that task's live frames (its
     * parked context, the timers linked from them). */
    mag__stack_return(s, carved_back);
}

mag__stack_t *mag__stack_alloc(size_t size)
{
    size_t page = page_size();
    size = (size + page - 1) & ~(page - 1);
    /* relaxed: see mag__fiber_set_guard_budget and guard_regions. */
    if (atomic_load_explicit(&guard_regions, memory_order_relaxed) &&
        atomic_load_explicit(&guard_budget, memory_order_relaxed) != 0) {
        mag__stack_t *s = carved_alloc(size + page, page);
        if (s)
            return s;
    }
    bool guard = take_guard();
    /* Without a guard page, a write-protected page below (stack_wp.c). */
    bool wp = !guard && mag__stack_wp_available();
    size_t map = size + (guard || wp ? page : 0);
    char *base = mmap(NULL, map, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) {
        if (guard)
            atomic_fetch_sub_explicit(&guards_in_use, 1, memory_order_relaxed);
        return NULL;
    }
    if (guard && mprotect(base, page, PROT_NONE) != 0) {
        atomic_fetch_sub_explicit(&guards_in_use, 1, memory_order_relaxed);
        guard = false; /* out of VMAs: run unguarded, the canary still checks */
        wp = mag__stack_wp_available();
    }
    if (!guard) {
        /* Registered before the first write, so that it still merges with
         * its neighbours (stack_wp.c). The canary, at the stack's lowest
         * word, is what checks a stack left unprotected; a protected page
         * needs none, but older kernels protect only a page written to, and
         * there the canary is that write. */
        uint64_t canary = STACK_CANARY;
        wp = wp && mag__stack_wp_register(base, map);
        if (!wp || mag__stack_wp_populate_first())
            memcpy(base, &canary, sizeof canary);
        wp = wp && mag__stack_wp_protect(base, page);
        if (!wp)
            memcpy(base, &canary, sizeof canary); /* (again, if it was written) */
    }
    /* The record sits at the top of its own stack: no allocation besides. */
    uintptr_t top = ((uintptr_t)base + map - sizeof(mag__stack_t)) & ~(uintptr_t)63;
    mag__stack_t *s = (mag__stack_t *)top;
    s->next = NULL;
    s->base = base;
    s->map_size = map;
    s->guarded = guard || wp; /* wp: faults as a guard page, no canary check */
    s->write_protected = wp;
    s->carved = false;
    s->lo = base + (guard || wp ? page : 0);
    s->top = (char *)s;
    s->usable = (size_t)((char *)s - s->lo);
    s->valgrind_id = VALGRIND_STACK_REGISTER(s->lo, (char *)s);
    return s;
}

void mag__stack_free(mag__stack_t *s)
{
    if (s->carved) {
        carved_free(s);
        return;
    }
    VALGRIND_STACK_DEREGISTER(s->valgrind_id);
    if (s->guarded && !s->write_protected)
        atomic_fetch_sub_explicit(&guards_in_use, 1, memory_order_relaxed);
    munmap(s->base, s->map_size);
}

bool mag__stack_intact(const mag__stack_t *s, const void *saved_sp)
{
    uint64_t v;
    memcpy(&v, s->lo, sizeof v);
    return v == STACK_CANARY && (const char *)saved_sp >= s->lo + sizeof v;
}

/* ---- stack-overflow reports ---------------------------------------------- */

static _Thread_local void *alt_stack;

static void write_str(const char *s)
{
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
}

#if !MAG__SANITIZED /* sanitizers report stack overflows themselves */
static struct sigaction previous_segv;

#endif

/* Async-signal-safe: from the SIGSEGV handler as from a switch. */
_Noreturn void mag__fiber_overflow_abort(const mag_task_t *t)
{
    char num[24];
    int i = (int)sizeof num - 1;
    uint64_t id = t->id;
    num[i] = 0;
    do
        num[--i] = (char)('0' + id % 10);
    while ((id /= 10) && i > 0);
    write_str("magpie: stack overflow in task '");
    write_str(t->name[0] ? t->name : "(unnamed)");
    write_str("' (id ");
    write_str(num + i);
    write_str("): raise its stack_size (mag_spawn_ex) or MAG_STACK_SIZE\n");
    signal(SIGABRT, SIG_DFL);
    abort();
}

#if !MAG__SANITIZED
/* Did t's stack overflow into this fault (addr, sp)? */
static bool overflowed(const mag_task_t *t, const char *addr, uintptr_t sp)
{
    if (!t || !t->stack)
        return false;
    const mag__stack_t *s = t->stack;
    /* The guard page (or the protected page) was hit, or the stack pointer
     * itself has left the bottom of the stack (an unguarded stack ran into
     * unmapped memory). */
    bool in_guard = addr >= s->base && addr < s->lo + 256;
    bool sp_out = sp < (uintptr_t)s->lo + 256 && sp + (64u << 20) > (uintptr_t)s->base;
    return in_guard || sp_out;
}

static void on_segv(int sig, siginfo_t *info, void *uctx)
{
    mag__worker_t *w = mag__tls_worker;
    if (w) {
        /* A fault's own address, or the protected page that stack_wp.c's
         * report thread says this thread wrote into. */
        void *notice_addr = NULL;
        char *addr = mag__stack_wp_notice(info, &notice_addr) ? notice_addr
                     : info->si_code > 0                      ? info->si_addr
                                                              : NULL;
        const ucontext_t *uc = uctx;
#if defined(__x86_64__)
        uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
        uintptr_t sp = (uintptr_t)uc->uc_mcontext.sp;
#endif
        /* During a direct switch (worker.c) the task still on its stack is
         * the handoff, while current already names the next: the one whose
         * stack overflowed is named. */
        if (overflowed(w->handoff, addr, sp))
            mag__fiber_overflow_abort(w->handoff);
        if (overflowed(w->current, addr, sp))
            mag__fiber_overflow_abort(w->current);
    }
    /* Not ours: hand it to whoever was there before us. */
    if (previous_segv.sa_flags & SA_SIGINFO && previous_segv.sa_sigaction) {
        previous_segv.sa_sigaction(sig, info, uctx);
        return;
    }
    if (previous_segv.sa_handler != SIG_DFL && previous_segv.sa_handler != SIG_IGN &&
        !(previous_segv.sa_flags & SA_SIGINFO)) {
        previous_segv.sa_handler(sig);
        return;
    }
    signal(SIGSEGV, SIG_DFL); /* the faulting instruction runs again and dumps */
}

static void install_segv(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
}
#endif

void mag__fiber_install_overflow_handler(void)
{
#if !MAG__SANITIZED /* sanitizers report stack overflows themselves */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_segv);
#endif
}

void mag__fiber_thread_init(void)
{
#if !MAG__SANITIZED
    /* The handler needs a stack of its own: the faulting one is exhausted. */
    if (alt_stack)
        return;
    size_t size = 64 * 1024;
    alt_stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (alt_stack == MAP_FAILED) {
        alt_stack = NULL;
        return;
    }
    stack_t ss = {.ss_sp = alt_stack, .ss_size = size, .ss_flags = 0};
    sigaltstack(&ss, NULL);
#endif
}

void mag__fiber_thread_exit(void)
{
    if (!alt_stack)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(alt_stack, 64 * 1024);
    alt_stack = NULL;
}
