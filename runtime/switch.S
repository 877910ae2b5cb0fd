/*
 * Fiber context switch.
 *
 *   void mag__ctx_switch(void **save_sp, void *load_sp);
 *
 * Pushes the callee-saved registers and the floating-point control state the
 * ABI asks us to preserve onto the current stack, stores the stack pointer in
 * *save_sp, loads load_sp and pops the same frame from there. A new fiber's
 * stack is prepared by mag__ctx_init (context.c) so that its first "return"
 * lands in mag__fiber_trampoline, which calls entry(arg) from two registers.
 */
#if defined(__x86_64__)

    .text
    .globl  mag__ctx_switch
    .hidden mag__ctx_switch
    .type   mag__ctx_switch, @function
mag__ctx_switch:
    .cfi_startproc
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $16, %rsp
    stmxcsr 8(%rsp)             /* MXCSR control bits (rounding, exceptions) */
    fnstcw  12(%rsp)            /* x87 control word */
    /* Loading MXCSR and the x87 control word is slow (tens of cycles), and
     * they almost never differ between fibers: compare, load only if not
     * equal. The values in force now are the ones just saved, read back
     * from this (hot) stack: storing them again as scratch below the new
     * rsp would write a line of a stack that has usually gone cold, and
     * wait on it. rax and rcx are the caller's to lose. */
    movl    8(%rsp), %eax
    movzwl  12(%rsp), %ecx
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    cmpl    8(%rsp), %eax
    je      1f
    ldmxcsr 8(%rsp)
1:  cmpw    12(%rsp), %cx
    je      2f
    fldcw   12(%rsp)
2:  addq    $16, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   mag__ctx_switch, .-mag__ctx_switch

    /* First frame of every fiber: rbx = entry, r12 = arg. */
    .globl  mag__fiber_trampoline
    .hidden mag__fiber_trampoline
    .type   mag__fiber_trampoline, @function
mag__fiber_trampoline:
    .cfi_startproc
    .cfi_undefined rip          /* stops unwinders here */
    movq    %r12, %rdi
    callq   *%rbx
    ud2                         /* entry never returns */
    .cfi_endproc
    .size   mag__fiber_trampoline, .-mag__fiber_trampoline

#elif defined(__aarch64__)

    .text
    .globl  mag__ctx_switch
    .hidden mag__ctx_switch
    .type   mag__ctx_switch, %function
mag__ctx_switch:
    sub     sp, sp, #176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x9, sp
    str     x9, [x0]
    mov     sp, x1
    ldr     x9, [sp, #160]
    msr     fpcr, x9
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #176
    ret
    .size   mag__ctx_switch, .-mag__ctx_switch

    /* First frame of every fiber: x19 = entry, x20 = arg. */
    .globl  mag__fiber_trampoline
    .hidden mag__fiber_trampoline
    .type   mag__fiber_trampoline, %function
mag__fiber_trampoline:
    mov     x0, x20
    mov     x29, #0
    blr     x19
    brk     #0
    .size   mag__fiber_trampoline, .-mag__fiber_trampoline

#else
#error "magpie: no context switch for this architecture (x86-64 and aarch64 only)"
#endif

    .section .note.GNU-stack, "", %progbits
