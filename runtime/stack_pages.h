/*
 * runtime/stack_pages.h - page advice on many carved fiber stacks at once
 * (stack_pages.c): guard regions installed for a whole new mapping in one
 * call, and the pages of freed stacks given back in batches. Used by fiber.c
 * only.
 */
#ifndef MAGPIE_RUNTIME_STACK_PAGES_H
#define MAGPIE_RUNTIME_STACK_PAGES_H

#include <stddef.h>
#include <sys/uio.h>

#include "runtime/sched.h"

/* Applies madvise advice to the n ranges, in one system call where the
 * kernel allows it (process_madvise on the process itself, Linux 6.14 and
 * later), else one madvise per range. 0 once every range took the advice,
 * else the first refusal as a negative errno (the ranges before it may
 * have taken it: only advice that can be repeated belongs here). */
MAG_HIDDEN int mag__advise_ranges(const struct iovec *ranges, unsigned n, int advice);

/* A new mapping of n stacks of map bytes each, from base: installs the
 * guard region (page bytes) at the bottom of every stack, in one system
 * call rather than one per stack. 0, or the guard regions' refusal as a
 * negative errno (the caller unmaps: nothing else to undo). At most
 * MAG__CARVE_STACKS_MAX stacks. */
#define MAG__CARVE_STACKS_MAX 64u
MAG_HIDDEN int mag__stacks_carve_pages(char *base, unsigned n, size_t map, size_t page);
/* Faults in the top page of each of those stacks, where its first frames
 * go, in one system call (a fault costs more than its share of one call).
 * Only a head start: a stack may already be in use, its page faulted or
 * being faulted, while this runs. */
MAG_HIDDEN void mag__stacks_populate_tops(char *base, unsigned n, size_t map, size_t page);

/* A freed carved stack whose pages are to go back to the kernel (its guard
 * region stays). Stacks gather until MAG__STACK_RETURN_BATCH have come;
 * then all their pages go back together, adjacent stacks as one range, so
 * that the batch costs one system call and one TLB flush instead of one
 * each, on a thread of the runtime's own (or, should it not start, on the
 * caller's), which then passes them, linked by next, to back: the stacks
 * reach the free lists only once their pages are back. Until the batch
 * fills, s is held here (at most MAG__STACK_RETURN_BATCH - 1 stacks wait,
 * resident). Any thread. */
#define MAG__STACK_RETURN_BATCH 64u
typedef void mag__stacks_back_fn(mag__stack_t *list);
MAG_HIDDEN void mag__stack_return(mag__stack_t *s, mag__stacks_back_fn *back);

#endif /* MAGPIE_RUNTIME_STACK_PAGES_H */
