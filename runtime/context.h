/*
 * runtime/context.h - the machine context of a fiber: the assembly switch
 * (switch.S) and the first frame it returns into (context.c).
 *
 * Nothing here depends on the rest of the runtime, so that the switch can be
 * built and tested on its own (test/fiber_switch.c, also for aarch64 under
 * qemu-user, where the runtime cannot run). runtime/sched.h declares the same
 * functions for the runtime's own use.
 */
#ifndef MAGPIE_RUNTIME_CONTEXT_H
#define MAGPIE_RUNTIME_CONTEXT_H

/* As MAG_HIDDEN (runtime/internal.h), which this header does not include. */
#define MAG__CTX_HIDDEN __attribute__((visibility("hidden")))

/* Saves the callee-saved registers and the floating-point control state on
 * the current stack, stores the stack pointer in *save_sp, then resumes the
 * context whose stack pointer is load_sp. Returns when something switches
 * back to *save_sp. */
MAG__CTX_HIDDEN void mag__ctx_switch(void **save_sp, void *load_sp);

/* A new fiber's first frame returns here; it calls entry(arg), which must
 * never return (the trampoline traps if it does). */
MAG__CTX_HIDDEN void mag__fiber_trampoline(void);

/* Prepares the stack below top (one past its highest byte) so that the
 * first switch to the returned stack pointer calls entry(arg), with the
 * ABI's stack alignment and the floating-point control state of the calling
 * thread. */
MAG__CTX_HIDDEN void *mag__ctx_init(void *top, void (*entry)(void *), void *arg);

#endif /* MAGPIE_RUNTIME_CONTEXT_H */
