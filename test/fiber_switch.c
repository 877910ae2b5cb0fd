/* The context switch alone (switch.S, context.c; no runtime, no ring): registers, FP control,
 * stacks and stack alignment survive thousands of switches among two and many fibers.
 * Also built for aarch64 and run under qemu-user by tools/cross-aarch64.sh. */
#include "test/test.h"

#include "runtime/context.h"

#include <fcntl.h>
#include <fenv.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* The test tells AddressSanitizer and ThreadSanitizer about its switches, as
 * runtime/fiber.h does, so that it runs under both. */
#if defined(__SANITIZE_ADDRESS__)
#define FS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FS_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define FS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FS_TSAN 1
#endif
#endif
#ifdef FS_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
void __asan_unpoison_memory_region(const volatile void *addr, size_t size);
#endif
#ifdef FS_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

/* ---- what the ABI says a call preserves, and assembly to test it --------
 *
 * fs_regs_switch(save_sp, load_sp, in, out) loads every callee-saved register
 * and the FP control state from *in, calls mag__ctx_switch(save_sp, load_sp),
 * and when something switches back stores the same registers into *out; then
 * it restores its caller's registers and returns. Each fiber loads values of
 * its own before every switch, so a register the switch fails to restore
 * comes back holding another fiber's value, or whatever the switch left. */
#if defined(__x86_64__)
/* SysV x86-64: rbx, rbp, r12-r15; the control bits of MXCSR and the x87
 * control word. No vector register is callee-saved. */
typedef struct regs {
    uint64_t gpr[6]; /* rbx, rbp, r12, r13, r14, r15 */
    uint32_t mxcsr;
    uint16_t x87cw;
    uint16_t pad;
} regs_t;
_Static_assert(offsetof(regs_t, mxcsr) == 48 && offsetof(regs_t, x87cw) == 52, "asm offsets");
#define FS_NGPR 6
#define MXCSR_CONTROL 0xffc0u /* bits 0-5 are exception flags, not control */
#define X87CW_CONTROL 0x0f3fu /* masks, precision, rounding */
static const char *const gpr_names[FS_NGPR] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};

__asm__(".pushsection .text\n"
        ".globl fs_regs_switch\n"
        ".hidden fs_regs_switch\n"
        ".type fs_regs_switch, @function\n"
        "fs_regs_switch:\n" /* rdi save_sp, rsi load_sp, rdx in, rcx out */
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $24, %rsp\n"     /* out, the caller's MXCSR and x87 word; */
        "    movq %rcx, 0(%rsp)\n" /* rsp is now 16-byte aligned for the call */
        "    stmxcsr 8(%rsp)\n"
        "    fnstcw 12(%rsp)\n"
        "    ldmxcsr 48(%rdx)\n"
        "    fldcw 52(%rdx)\n"
        "    movq 0(%rdx), %rbx\n"
        "    movq 8(%rdx), %rbp\n"
        "    movq 16(%rdx), %r12\n"
        "    movq 24(%rdx), %r13\n"
        "    movq 32(%rdx), %r14\n"
        "    movq 40(%rdx), %r15\n"
        "    call mag__ctx_switch\n"
        "    movq 0(%rsp), %rcx\n"
        "    movq %rbx, 0(%rcx)\n"
        "    movq %rbp, 8(%rcx)\n"
        "    movq %r12, 16(%rcx)\n"
        "    movq %r13, 24(%rcx)\n"
        "    movq %r14, 32(%rcx)\n"
        "    movq %r15, 40(%rcx)\n"
        "    stmxcsr 48(%rcx)\n"
        "    fnstcw 52(%rcx)\n"
        "    ldmxcsr 8(%rsp)\n"
        "    fldcw 12(%rsp)\n"
        "    addq $24, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size fs_regs_switch, .-fs_regs_switch\n"
        /* The caller's stack pointer at the call: the ABI wants it 16-byte
         * aligned, so rsp + 8 (past the return address) must be. */
        ".globl fs_caller_sp\n"
        ".hidden fs_caller_sp\n"
        ".type fs_caller_sp, @function\n"
        "fs_caller_sp:\n"
        "    leaq 8(%rsp), %rax\n"
        "    ret\n"
        ".size fs_caller_sp, .-fs_caller_sp\n"
        ".popsection\n");

/* The FP control state, as the regs_t fields hold it (control bits only). */
static uint64_t fp_control(void)
{
    uint32_t mxcsr;
    uint16_t cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return (uint64_t)(mxcsr & MXCSR_CONTROL) << 16 | (cw & X87CW_CONTROL);
}

/* Values for one switch. Exceptions stay masked (a trap would end the test);
 * rounding, flush-to-zero, denormals-are-zero and x87 precision vary. */
static void fp_values(regs_t *r, uint64_t x)
{
    static const uint16_t precision[3] = {0, 2, 3}; /* single, double, extended */
    r->mxcsr = 0x1f80u | (uint32_t)(x & 3) << 13 | (x & 4 ? 0x8000u : 0) | (x & 8 ? 0x40u : 0);
    r->x87cw =
        (uint16_t)(0x7fu | (unsigned)precision[(x >> 4) % 3] << 8 | (unsigned)(x >> 6 & 3) << 10);
    r->pad = 0;
}

static void check_fp(const regs_t *want, const regs_t *got, const char *who, unsigned id,
                     uint64_t n)
{
    if ((got->mxcsr & MXCSR_CONTROL) != (want->mxcsr & MXCSR_CONTROL))
        TEST_FAIL("%s %u, switch %" PRIu64 ": MXCSR 0x%x, expected 0x%x", who, id, n,
                  got->mxcsr & MXCSR_CONTROL, want->mxcsr & MXCSR_CONTROL);
    if ((got->x87cw & X87CW_CONTROL) != (want->x87cw & X87CW_CONTROL))
        TEST_FAIL("%s %u, switch %" PRIu64 ": x87 control word 0x%x, expected 0x%x", who, id, n,
                  got->x87cw & X87CW_CONTROL, want->x87cw & X87CW_CONTROL);
}

#elif defined(__aarch64__)
/* AAPCS64: x19-x28, the frame pointer x29, the low 64 bits of v8-v15 (d8-d15)
 * and FPCR. (x30 is the return address: a switch that lost it would not come
 * back at all.) */
typedef struct regs {
    uint64_t gpr[11]; /* x19 ... x29 */
    uint64_t d[8];    /* d8 ... d15 */
    uint64_t fpcr;
} regs_t;
_Static_assert(offsetof(regs_t, d) == 88 && offsetof(regs_t, fpcr) == 152, "asm offsets");
#define FS_NGPR 11
/* Rounding mode (bits 22-23), flush-to-zero (24), default NaN (25) and
 * alternative half precision (26); the exception trap enables stay 0. */
#define FPCR_CONTROL UINT64_C(0x07c00000)
static const char *const gpr_names[FS_NGPR] = {"x19", "x20", "x21", "x22", "x23", "x24",
                                               "x25", "x26", "x27", "x28", "x29"};

__asm__(".pushsection .text\n"
        ".globl fs_regs_switch\n"
        ".hidden fs_regs_switch\n"
        ".type fs_regs_switch, %function\n"
        "fs_regs_switch:\n" /* x0 save_sp, x1 load_sp, x2 in, x3 out */
        "    stp x29, x30, [sp, #-176]!\n"
        "    stp x19, x20, [sp, #16]\n"
        "    stp x21, x22, [sp, #32]\n"
        "    stp x23, x24, [sp, #48]\n"
        "    stp x25, x26, [sp, #64]\n"
        "    stp x27, x28, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    mrs x9, fpcr\n"
        "    stp x9, x3, [sp, #160]\n" /* the caller's FPCR, and out */
        "    ldr x9, [x2, #152]\n"
        "    msr fpcr, x9\n"
        "    ldp x19, x20, [x2, #0]\n"
        "    ldp x21, x22, [x2, #16]\n"
        "    ldp x23, x24, [x2, #32]\n"
        "    ldp x25, x26, [x2, #48]\n"
        "    ldp x27, x28, [x2, #64]\n"
        "    ldr x29, [x2, #80]\n"
        "    ldp d8, d9, [x2, #88]\n"
        "    ldp d10, d11, [x2, #104]\n"
        "    ldp d12, d13, [x2, #120]\n"
        "    ldp d14, d15, [x2, #136]\n"
        "    bl mag__ctx_switch\n"
        "    ldr x3, [sp, #168]\n"
        "    stp x19, x20, [x3, #0]\n"
        "    stp x21, x22, [x3, #16]\n"
        "    stp x23, x24, [x3, #32]\n"
        "    stp x25, x26, [x3, #48]\n"
        "    stp x27, x28, [x3, #64]\n"
        "    str x29, [x3, #80]\n"
        "    stp d8, d9, [x3, #88]\n"
        "    stp d10, d11, [x3, #104]\n"
        "    stp d12, d13, [x3, #120]\n"
        "    stp d14, d15, [x3, #136]\n"
        "    mrs x9, fpcr\n"
        "    str x9, [x3, #152]\n"
        "    ldr x9, [sp, #160]\n"
        "    msr fpcr, x9\n"
        "    ldp x19, x20, [sp, #16]\n"
        "    ldp x21, x22, [sp, #32]\n"
        "    ldp x23, x24, [sp, #48]\n"
        "    ldp x25, x26, [sp, #64]\n"
        "    ldp x27, x28, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    ldp x29, x30, [sp], #176\n"
        "    ret\n"
        ".size fs_regs_switch, .-fs_regs_switch\n"
        /* The caller's stack pointer at the call (bl pushes nothing); the ABI
         * wants it 16-byte aligned at all times. */
        ".globl fs_caller_sp\n"
        ".hidden fs_caller_sp\n"
        ".type fs_caller_sp, %function\n"
        "fs_caller_sp:\n"
        "    mov x0, sp\n"
        "    ret\n"
        ".size fs_caller_sp, .-fs_caller_sp\n"
        ".popsection\n");

static uint64_t fp_control(void)
{
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    return fpcr & FPCR_CONTROL;
}

static uint64_t mix(uint64_t x);

static void fp_values(regs_t *r, uint64_t x)
{
    for (int i = 0; i < 8; i++)
        r->d[i] = mix(x * 31 + 100 + (uint64_t)i);
    r->fpcr = (x << 22) & FPCR_CONTROL;
}

static void check_fp(const regs_t *want, const regs_t *got, const char *who, unsigned id,
                     uint64_t n)
{
    for (int i = 0; i < 8; i++)
        if (got->d[i] != want->d[i])
            TEST_FAIL("%s %u, switch %" PRIu64 ": d%d 0x%" PRIx64 ", expected 0x%" PRIx64, who, id,
                      n, 8 + i, got->d[i], want->d[i]);
    if ((got->fpcr & FPCR_CONTROL) != (want->fpcr & FPCR_CONTROL))
        TEST_FAIL("%s %u, switch %" PRIu64 ": FPCR 0x%" PRIx64 ", expected 0x%" PRIx64, who, id, n,
                  got->fpcr & FPCR_CONTROL, want->fpcr & FPCR_CONTROL);
}

#else
#error "fiber_switch: no register test for this architecture"
#endif

void fs_regs_switch(void **save_sp, void *load_sp, const regs_t *in, regs_t *out);
uintptr_t fs_caller_sp(void);

/* splitmix64: distinct, unguessable values for every register of every switch. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ---- fibers ---------------------------------------------------------------- */

#define STACK_SIZE (64 * 1024)

typedef struct fiber {
    void *sp;             /* saved while switched out */
    char *map;            /* the mapping: a guard page, then the stack */
    char *lo;             /* lowest usable byte */
    size_t size;          /* usable bytes */
    char *record; /* the stack top handed to mag__ctx_init (where mag__stack_alloc keeps its record) */
    unsigned id;          /* in messages, and in its register values */
    int round;            /* the rounding mode this fiber computes in */
    uint64_t switches;    /* switches out of this fiber and back */
    bool done;            /* it made its last switch (exit_to) */
    void *tsan;           /* its ThreadSanitizer fiber, under TSan */
} fiber_t;

static fiber_t main_fiber = {.id = 0, .round = FE_TONEAREST};
static fiber_t *current = &main_fiber;
static fiber_t *previous; /* the fiber that switched to the current one */
static const int rounding[4] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
static double third[4]; /* 1.0 / 3.0 in each rounding mode */

static double divide(double a, double b)
{
    volatile double x = a, y = b; /* computed at run time, in the current mode */
    return x / y;
}

static int mode_index(int mode)
{
    for (int i = 0; i < 4; i++)
        if (rounding[i] == mode)
            return i;
    TEST_FAIL("unknown rounding mode %d", mode);
}

/* The fiber computes in its own rounding mode, whoever ran meanwhile. */
static void check_rounding(const fiber_t *f)
{
    if (fegetround() != f->round)
        TEST_FAIL("fiber %u, after %" PRIu64 " switches: rounding mode %d, expected %d", f->id,
                  f->switches, fegetround(), f->round);
    double q = divide(1.0, 3.0);
    if (q != third[mode_index(f->round)])
        TEST_FAIL("fiber %u: 1/3 = %.17g in rounding mode %d, expected %.17g", f->id, q, f->round,
                  third[mode_index(f->round)]);
}

/* A new stack with a guard page below it. offset moves the record below the
 * top (by less than 16 bytes, too) to check that mag__ctx_init aligns. */
static void stack_new(fiber_t *f, unsigned id, unsigned offset)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    memset(f, 0, sizeof *f);
    f->map = mmap(NULL, STACK_SIZE + page, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    ASSERT_TRUE(f->map != MAP_FAILED);
    ASSERT_EQ(mprotect(f->map, page, PROT_NONE), 0);
    f->lo = f->map + page;
    f->size = STACK_SIZE;
    f->record = f->lo + f->size - 64 - offset;
    f->id = id;
}

static void stack_delete(fiber_t *f)
{
    munmap(f->map, f->size + (size_t)(f->lo - f->map));
}

static void fiber_init(fiber_t *f, void (*entry)(void *), int round)
{
    f->sp = mag__ctx_init(f->record, entry, f);
    f->round = round;
    f->switches = 0;
    f->done = false;
#ifdef FS_TSAN
    f->tsan = __tsan_create_fiber(0);
#endif
}

static void fiber_destroyed(fiber_t *f)
{
    ASSERT_TRUE(f->done);
#ifdef FS_TSAN
    __tsan_destroy_fiber(f->tsan);
    f->tsan = NULL;
#endif
#ifdef FS_ASAN
    /* The finished fiber's frames were never returned from, so their
     * redzones may still be poisoned: a fiber that reuses the stack (and
     * mag__ctx_init, which writes its first frame) starts from clean. */
    __asan_unpoison_memory_region(f->lo, f->size);
#endif
}

/* After a switch lands: tells ASan where it came from, and learns the main
 * stack's bounds the first time it is left (ASan needs them to go back). */
static void switch_landed(void *fake)
{
#ifdef FS_ASAN
    const void *lo;
    size_t size;
    __sanitizer_finish_switch_fiber(fake, &lo, &size);
    if (previous && !previous->lo) {
        previous->lo = (char *)lo;
        previous->size = size;
    }
#else
    (void)fake;
#endif
}

/* Switches from the current fiber to `to` with register values of the current
 * fiber's own, and checks them, its rounding mode and its stack when it
 * comes back. */
static void switch_to(fiber_t *to)
{
    fiber_t *self = current;
    uint64_t n = self->switches;
    uint64_t seed = mix((uint64_t)self->id << 40 | n);
    regs_t want, got;
    for (int i = 0; i < FS_NGPR; i++)
        want.gpr[i] = mix(seed + (uint64_t)i);
    fp_values(&want, seed);
    memset(&got, 0, sizeof got);
    volatile uint64_t on_stack[4]; /* must be there when we come back */
    for (int i = 0; i < 4; i++)
        on_stack[i] = seed ^ (uint64_t)i;

    void *fake = NULL;
#ifdef FS_TSAN
    __tsan_switch_to_fiber(to->tsan, 0); /* 0: the switch synchronises */
#endif
#ifdef FS_ASAN
    __sanitizer_start_switch_fiber(&fake, to->lo, to->size);
#endif
    previous = self;
    current = to;
    fs_regs_switch(&self->sp, to->sp, &want, &got);
    switch_landed(fake);

    ASSERT_PTR_EQ(current, self);
    const char *who = self == &main_fiber ? "main" : "fiber";
    for (int i = 0; i < FS_NGPR; i++)
        if (got.gpr[i] != want.gpr[i])
            TEST_FAIL("%s %u, switch %" PRIu64 ": %s 0x%" PRIx64 ", expected 0x%" PRIx64, who,
                      self->id, n, gpr_names[i], got.gpr[i], want.gpr[i]);
    check_fp(&want, &got, who, self->id, n);
    for (int i = 0; i < 4; i++)
        ASSERT_UEQ(on_stack[i], seed ^ (uint64_t)i);
    self->switches++;
    check_rounding(self);
}

/* A fiber's last switch: it is never resumed. */
__attribute__((noreturn)) static void exit_to(fiber_t *to)
{
    fiber_t *self = current;
    self->done = true;
#ifdef FS_TSAN
    __tsan_switch_to_fiber(to->tsan, 0);
#endif
#ifdef FS_ASAN
    __sanitizer_start_switch_fiber(NULL, to->lo, to->size); /* NULL: this stack is done */
#endif
    previous = self;
    current = to;
    mag__ctx_switch(&self->sp, to->sp);
    TEST_FAIL("fiber %u was resumed after it finished", self->id);
}

typedef double v2d __attribute__((vector_size(16)));

/* The compiler places these 16-byte aligned relative to the stack pointer,
 * trusting the ABI, and stores them with aligned vector instructions (movaps
 * on x86-64), which fault on a misaligned address. */
__attribute__((noinline)) static double aligned_vector_stores(double x)
{
    volatile v2d v[2];
    v[0] = (v2d){x, x + 1};
    v[1] = v[0] + v[0];
    ASSERT_EQ((uintptr_t)&v[0] % 16, 0);
    return v[1][0] + v[1][1];
}

/* The first things every fiber does: the stack is aligned as the ABI asks,
 * for code that trusts it, and the fiber runs in its own rounding mode from
 * here on. */
static void fiber_started(fiber_t *f)
{
    switch_landed(NULL);
    ASSERT_PTR_EQ(current, f);
    uintptr_t sp = fs_caller_sp();
    if (sp % 16 != 0)
        TEST_FAIL("fiber %u: stack pointer 0x%" PRIxPTR " at a call, not 16-byte aligned", f->id,
                  sp);
    ASSERT_TRUE(sp > (uintptr_t)f->lo && sp < (uintptr_t)f->record);
    ASSERT_TRUE(aligned_vector_stores(f->id) == 4.0 * f->id + 2);
    ASSERT_EQ(fesetround(f->round), 0);
}

/* ---- 1. two fibers switching to each other directly ----------------------- */

#define PAIR_SWITCHES 10000
static fiber_t pair[2];

static void pair_entry(void *arg)
{
    fiber_t *f = arg;
    fiber_started(f);
    fiber_t *other = &pair[f == &pair[0]];
    for (int i = 0; i < PAIR_SWITCHES; i++)
        switch_to(other);
    exit_to(&main_fiber);
}

static void two_fibers(void)
{
    stack_new(&pair[0], 1, 0);
    stack_new(&pair[1], 2, 8);
    fiber_init(&pair[0], pair_entry, FE_UPWARD);
    fiber_init(&pair[1], pair_entry, FE_DOWNWARD);
    /* 0 runs until its last switch to 1 comes back; 1 is then still in its
     * last switch, and finishes when main resumes it. */
    switch_to(&pair[0]);
    ASSERT_TRUE(pair[0].done && !pair[1].done);
    switch_to(&pair[1]);
    for (int i = 0; i < 2; i++) {
        ASSERT_TRUE(pair[i].done);
        ASSERT_UEQ(pair[i].switches, PAIR_SWITCHES);
        fiber_destroyed(&pair[i]);
        stack_delete(&pair[i]);
    }
}

/* ---- 2. many fibers, run by a scheduler in a shuffled order ---------------- */

#define MANY 64
#define ROUNDS 500
static fiber_t many[MANY];

static void many_entry(void *arg)
{
    fiber_t *f = arg;
    fiber_started(f);
    for (int i = 0; i < ROUNDS; i++)
        switch_to(&main_fiber);
    exit_to(&main_fiber);
}

static void many_fibers(void)
{
    unsigned order[MANY];
    for (unsigned i = 0; i < MANY; i++) {
        stack_new(&many[i], 100 + i, i % 16); /* records at every offset mod 16 */
        fiber_init(&many[i], many_entry, rounding[i % 4]);
        order[i] = i;
    }
    uint64_t rng = 42;
    for (int round = 0; round <= ROUNDS; round++) {
        for (unsigned i = MANY - 1; i > 0; i--) { /* Fisher-Yates */
            rng = mix(rng);
            unsigned j = (unsigned)(rng % (i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (unsigned i = 0; i < MANY; i++)
            switch_to(&many[order[i]]);
    }
    for (unsigned i = 0; i < MANY; i++) {
        ASSERT_TRUE(many[i].done);
        ASSERT_UEQ(many[i].switches, ROUNDS);
        fiber_destroyed(&many[i]);
        stack_delete(&many[i]);
    }
}

/* ---- 3. fibers that finish, one after another on the same stack ------------ */

#define REUSES 1000
static fiber_t reused;
static uint64_t init_fp_control; /* the thread's FP control at mag__ctx_init */
static unsigned ran_a, ran_b;

/* Two different entries, so that a stale first frame would show. */
static void reuse_body(fiber_t *f)
{
    /* A new fiber starts with the FP control state of the thread that
     * prepared it, not what the stack's last fiber left there. */
    ASSERT_UEQ(fp_control(), init_fp_control);
    fiber_started(f);
    switch_to(&main_fiber); /* once there and back, then finish */
    exit_to(&main_fiber);
}

static void reuse_entry_a(void *arg)
{
    ran_a++;
    reuse_body(arg);
}

static void reuse_entry_b(void *arg)
{
    ran_b++;
    reuse_body(arg);
}

static void stack_reuse(void)
{
    stack_new(&reused, 1000, 0);
    for (int i = 0; i < REUSES; i++) {
        reused.id = 1000 + (unsigned)i;
        /* A different FP control state for each fiber made on this stack. */
        ASSERT_EQ(fesetround(rounding[i % 4]), 0);
        init_fp_control = fp_control();
        fiber_init(&reused, i % 2 ? reuse_entry_b : reuse_entry_a, rounding[(i + 1) % 4]);
        ASSERT_EQ(fesetround(FE_TONEAREST), 0);
        switch_to(&reused);
        ASSERT_TRUE(!reused.done);
        switch_to(&reused);
        ASSERT_TRUE(reused.done);
        ASSERT_UEQ(reused.switches, 1);
        fiber_destroyed(&reused);
    }
    ASSERT_EQ(ran_a, REUSES / 2);
    ASSERT_EQ(ran_b, REUSES / 2);
    stack_delete(&reused);
}

/* ---- 4. an entry that returns traps instead of running on ------------------ */

static void returning_entry(void *arg)
{
    (void)arg;
}

static void entry_returns(void)
{
#if defined(__x86_64__)
    const int expected = SIGILL; /* ud2 */
#else
    const int expected = SIGTRAP; /* brk #0 */
#endif
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        /* The trap is expected: no core file, and no report of it (qemu-user
         * prints one). */
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDERR_FILENO);
        alarm(10);
        static fiber_t f;
        stack_new(&f, 2000, 0);
        fiber_init(&f, returning_entry, FE_TONEAREST);
        switch_to(&f);
        _exit(0); /* the fiber came back: the trampoline did not trap */
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != expected)
        TEST_FAIL("a returning entry: child status 0x%x, expected death by signal %d", status,
                  expected);
}

int main(void)
{
#ifdef FS_TSAN
    main_fiber.tsan = __tsan_get_current_fiber();
#endif
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(fesetround(rounding[i]), 0);
        third[i] = divide(1.0, 3.0);
    }
    ASSERT_EQ(fesetround(FE_TONEAREST), 0);
    ASSERT_TRUE(third[1] > third[2]); /* the modes differ where the test looks */

    two_fibers();
    printf("two fibers: %d switches each way\n", PAIR_SWITCHES);
    many_fibers();
    printf("%d fibers: %d switches each way\n", MANY, MANY * ROUNDS);
    stack_reuse();
    printf("one stack reused by %d fibers that finished\n", REUSES);
    entry_returns();
    printf("an entry that returns traps\n");
    ASSERT_UEQ(main_fiber.switches, 2 + MANY * (ROUNDS + 1) + 2 * REUSES);
    return 0;
}
