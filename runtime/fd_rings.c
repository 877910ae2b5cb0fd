/*
 * runtime/fd_rings.c - which workers' rings may hold a request on a
 * descriptor, so that mag_close cancels on those rings only.
 *
 * Without it, every close would post a cancel to every worker and wait for
 * each to take it: a wake-up of every parked worker per closed connection,
 * and a close that waits as long as the busiest worker's current task runs.
 * A connection's requests are almost always on one ring, its task's.
 *
 * Per runtime, a two-level table indexed by descriptor (pages of PAGE_FDS
 * words, made on first use and kept until the runtime goes): bit i of a
 * word for worker i, bit 63 for worker 63 and every later one. Preparing a
 * request on fd sets the bit of the worker whose ring takes it
 * (mag__fd_rings_note); mag_close takes the word (mag__fd_rings_take) and
 * cancels on those rings. A bit left over from a request long completed
 * costs one needless cancel; a bit missing would leave a request behind, so
 * a bit is set before the request's SQE can be submitted, and never cleared
 * but by the close of that descriptor. Descriptors beyond the table count as
 * on every ring.
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime/sched.h"

#define PAGE_SHIFT_FDS 10
#define PAGE_FDS (1u << PAGE_SHIFT_FDS)
#define TOP_PAGES 1024u /* 2^20 descriptors: beyond, every ring */
#define ALL_RINGS UINT64_MAX

struct mag__fd_rings {
    _Atomic(_Atomic uint64_t *) pages[TOP_PAGES];
    _Atomic bool lossy; /* a note found no memory for its page: trust no word */
};

static uint64_t ring_bit(const mag__worker_t *w)
{
    return 1ull << (w->index < 63 ? w->index : 63);
}

/* The word of fd, made if need be; NULL: beyond the table, or no memory. */
static _Atomic uint64_t *word_of(mag_runtime_t *rt, int fd, bool make)
{
    unsigned page = (unsigned)fd >> PAGE_SHIFT_FDS;
    if (fd < 0 || page >= TOP_PAGES || !rt->fd_rings)
        return NULL;
    /* acquire: pairs with the release CAS that installed the page. */
    _Atomic uint64_t *p = atomic_load_explicit(&rt->fd_rings->pages[page], memory_order_acquire);
    if (!p && make) {
        _Atomic uint64_t *fresh = calloc(PAGE_FDS, sizeof *fresh);
        if (!fresh)
            return NULL;
        _Atomic uint64_t *none = NULL;
        /* acq_rel: release publishes the zeroed page; acquire, on failure,
         * the page another thread installed first. */
        if (atomic_compare_exchange_strong_explicit(&rt->fd_rings->pages[page], &none, fresh,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            p = fresh;
        } else {
            free(fresh);
            p = none;
        }
    }
    return p ? &p[(unsigned)fd & (PAGE_FDS - 1)] : NULL;
}

int mag__fd_rings_init(mag_runtime_t *rt)
{
    rt->fd_rings = calloc(1, sizeof *rt->fd_rings);
    return rt->fd_rings ? 0 : -ENOMEM;
}

void mag__fd_rings_free(mag_runtime_t *rt)
{
    if (!rt->fd_rings)
        return;
    for (unsigned i = 0; i < TOP_PAGES; i++)
        free((void *)atomic_load_explicit(&rt->fd_rings->pages[i], memory_order_relaxed));
    free(rt->fd_rings);
    rt->fd_rings = NULL;
}

void mag__fd_rings_note(mag__worker_t *w, int fd)
{
    _Atomic uint64_t *word = word_of(w->rt, fd, true);
    if (!word) {
        /* Beyond the table, the close cancels everywhere anyway; out of
         * memory, every close must. seq_cst: as the bits below. */
        if (fd >= 0 && ((unsigned)fd >> PAGE_SHIFT_FDS) < TOP_PAGES && w->rt->fd_rings)
            atomic_store_explicit(&w->rt->fd_rings->lossy, true, memory_order_seq_cst);
        return;
    }
    uint64_t bit = ring_bit(w);
    /* relaxed: a test, almost always true after a descriptor's first
     * request on this ring. */
    if (atomic_load_explicit(word, memory_order_relaxed) & bit)
        return;
    /* seq_cst: against mag__fd_rings_take's seq_cst exchange, so that a
     * close that comes after this request in the total order sees its bit.
     * Once per descriptor and ring, not per request. */
    atomic_fetch_or_explicit(word, bit, memory_order_seq_cst);
}

uint64_t mag__fd_rings_take(mag_runtime_t *rt, int fd)
{
    unsigned page = (unsigned)fd >> PAGE_SHIFT_FDS;
    if (fd < 0 || page >= TOP_PAGES || !rt->fd_rings ||
        atomic_load_explicit(&rt->fd_rings->lossy, memory_order_seq_cst))
        return ALL_RINGS;
    _Atomic uint64_t *word = word_of(rt, fd, false);
    if (!word) /* no page: no request was ever noted on these descriptors */
        return 0;
    /* seq_cst: see mag__fd_rings_note. Taken before the close, so that a
     * request on the number once it is reused sets its bit afresh. */
    return atomic_exchange_explicit(word, 0, memory_order_seq_cst);
}

bool mag__fd_rings_has(uint64_t rings, const mag__worker_t *w)
{
    return (rings & ring_bit(w)) != 0;
}
