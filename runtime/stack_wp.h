/*
 * runtime/stack_wp.h - a guard page below an unguarded fiber stack that costs
 * no VMA: the page is write-protected with userfaultfd (stack_wp.c). Used by
 * fiber.c only.
 */
#ifndef MAGPIE_RUNTIME_STACK_WP_H
#define MAGPIE_RUNTIME_STACK_WP_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/internal.h"

/* Whether stacks can be write-protected in this process: userfaultfd with
 * write protection for user-mode faults is there, and the thread that reports
 * the faults runs. Sets both up at the first call; false for good when the
 * kernel, a seccomp filter or a sanitizer build refuses (the canary then
 * stands alone), and false in a child forked after the set-up. */
MAG_HIDDEN bool mag__stack_wp_available(void);

/* Registers the mapping [map, map + map_len) for write protection. Call it
 * before anything is written to the mapping, or the mapping no longer merges
 * with its registered neighbours and costs a VMA (stack_wp.c). false, with
 * nothing registered, when the kernel refuses. munmap undoes it. */
MAG_HIDDEN bool mag__stack_wp_register(void *map, size_t map_len);

/* Whether a page must be written before mag__stack_wp_protect can protect
 * it (kernels before 6.4). */
MAG_HIDDEN bool mag__stack_wp_populate_first(void);

/* Write-protects [page, page + page_len) of a registered mapping, which the
 * caller has written to if mag__stack_wp_populate_first says so. From
 * then on any user-mode write there ends the process with the overflow report
 * of the task running on the thread that wrote (fiber.c's SIGSEGV handler),
 * and a write by the kernel (a system call's buffer) fails with EFAULT.
 * Nothing unprotects it but munmap. false when the kernel refuses. */
MAG_HIDDEN bool mag__stack_wp_protect(void *page, size_t page_len);

/* Whether info (of a SIGSEGV) is the report thread's notice of a write into
 * a protected page; *addr is then that page. Async-signal-safe. */
MAG_HIDDEN bool mag__stack_wp_notice(const void *siginfo, void **addr);

#endif /* MAGPIE_RUNTIME_STACK_WP_H */
