/*
 * runtime/context.c - a fiber's first frame, the mirror of the frame that
 * mag__ctx_switch (switch.S) pops. Depends on nothing else in the runtime.
 */
#include <stdint.h>
#include <string.h>

#include "runtime/context.h"

void *mag__ctx_init(void *stack_top, void (*entry)(void *), void *arg)
{
    uintptr_t top = (uintptr_t)stack_top & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;
#if defined(__x86_64__)
    /* Mirror of mag__ctx_switch's frame, from high to low addresses: return
     * address (the trampoline), rbp, rbx = entry, r12 = arg, r13, r14, r15,
     * then MXCSR and the x87 control word. After its ret, rsp is 16-byte
     * aligned, as the trampoline's call expects. */
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    *--sp = (uint64_t)(uintptr_t)mag__fiber_trampoline;
    *--sp = 0;                          /* rbp */
    *--sp = (uint64_t)(uintptr_t)entry; /* rbx */
    *--sp = (uint64_t)(uintptr_t)arg;   /* r12 */
    *--sp = 0;                          /* r13 */
    *--sp = 0;                          /* r14 */
    *--sp = 0;                          /* r15 */
    sp -= 2;
    memcpy((char *)sp + 8, &mxcsr, 4);
    memcpy((char *)sp + 12, &fpucw, 2);
    return sp;
#elif defined(__aarch64__)
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    sp -= 22; /* 176 bytes, as mag__ctx_switch's frame */
    memset(sp, 0, 176);
    sp[0] = (uint64_t)(uintptr_t)entry;                  /* x19 */
    sp[1] = (uint64_t)(uintptr_t)arg;                    /* x20 */
    sp[11] = (uint64_t)(uintptr_t)mag__fiber_trampoline; /* x30 */
    sp[20] = fpcr;
    return sp;
#endif
}
