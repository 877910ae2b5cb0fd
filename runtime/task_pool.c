/*
 * runtime/task_pool.c - where task records live, what a handle is, and how a
 * record's memory goes back to the kernel.
 *
 * Records are carved from slabs of SLAB_BYTES (whole pages), and slabs from
 * chunks of CHUNK_BYTES that are mapped for records alone, aligned to their
 * size and never unmapped: a record's address reads as a task record for the
 * life of the process. The first slab of a chunk holds its header (its
 * number and one descriptor per slab).
 *
 * Type-stable, and yet the memory goes back. A late mag__wake (internal.h)
 * or a call on a stale handle may read a record after its task is gone, so
 * the chunk stays mapped. But when every record of a slab has been free in
 * the global pool for DECAY_NS, and EMPTY_KEEP empty slabs are kept besides,
 * the slab's pages are given back with MADV_DONTNEED (the delay, as
 * jemalloc's decay, spares a program that spawns bursts back to back the
 * cost of faulting its records in again each time). Giving back happens
 * when records return to the pool, and when a worker goes to sleep: it then
 * sleeps no later than the next slab is due. The pages read as zeros from
 * then on, which is a
 * FREE record (task_state.h) of generation 0 (sched.h): a late wake finds
 * FREE and writes nothing; a handle's generation is never 0, so no handle
 * matches. Nothing is lost by the zeroing: nobody writes a free record (its
 * generation was bumped when it was freed, so no handle matches it, and only
 * the pool hands it out). When a given-back slab is carved again, its
 * records start above every generation they had (gen_floor), so that the
 * old handles stay stale.
 *
 * A handle is 1 | index << 1 | generation << 27, the index being chunk
 * (10 bits), slab (9) and slot (7). Odd, so that an object's (aligned)
 * address is never taken for a handle. The generation has 37 bits: a record
 * reused as fast as a task can be spawned and joined (about 400 ns a round at
 * 2 workers, bench/micro spawn_join_1m) comes back to a generation after
 * 2^37 uses, some 15 hours of that loop on one record; only a handle kept
 * stale all that time could then name a newer task.
 *
 * The pool lock orders everything here: a record goes from one thread's
 * hands to another's through it (or through a worker's own cache).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "runtime/sched.h"

#define CHUNK_SHIFT 24 /* 16 MiB */
#define CHUNK_BYTES ((size_t)1 << CHUNK_SHIFT)
#define SLAB_SHIFT 15 /* 32 KiB: whole pages */
#define SLAB_BYTES ((size_t)1 << SLAB_SHIFT)
#define SLAB_BITS (CHUNK_SHIFT - SLAB_SHIFT)
#define SLABS_PER_CHUNK (1u << SLAB_BITS)
#define SLOT_BITS 7
#define CHUNK_BITS 10
#define MAX_CHUNKS (1u << CHUNK_BITS) /* 16 GiB of records, about 37 million */
#define INDEX_BITS (SLOT_BITS + SLAB_BITS + CHUNK_BITS)
#define HANDLE_GEN_SHIFT (1 + INDEX_BITS)
_Static_assert(sizeof(void *) == 8, "a handle is a 64-bit value");
_Static_assert(HANDLE_GEN_SHIFT + MAG__GEN_BITS == 64, "index and generation fill a handle");

/* Records start on cache lines of their own (the stride is rounded up), so
 * that two tasks running on two workers never share a line. */
#define RECORD_STRIDE ((sizeof(mag_task_t) + MAG_CACHELINE - 1) & ~(size_t)(MAG_CACHELINE - 1))
#define SLAB_TASKS ((unsigned)(SLAB_BYTES / RECORD_STRIDE))
_Static_assert(SLAB_BYTES / RECORD_STRIDE >= 1 && SLAB_BYTES / RECORD_STRIDE <= (1u << SLOT_BITS),
               "a slab holds 1 to 128 records");

#define CACHE_MAX MAG__TASK_CACHE_MAX /* free records in a worker's cache */
#define CACHE_IDLE_KEEP 32 /* ... of which it keeps this many when it sleeps */
#define REFILL 32         /* records an empty cache takes from the pool at once */
#define EMPTY_KEEP 64      /* empty slabs kept resident for the next burst (2 MiB) */
#define DECAY_NS (1000 * MAG_MS) /* how long a slab stays empty before it goes back */

/* Where a slab is: linked in one of the pool's lists, or not. */
enum {
    LIST_NONE,      /* every record is out (unlinked) */
    LIST_PARTIAL,   /* some records free */
    LIST_EMPTY,     /* every record free, memory resident */
    LIST_RETURNED,  /* memory given back; carved again when needed */
    LIST_RETURNING, /* being given back right now (unlinked) */
    NLISTS
};

/* A slab's free records are bits in its descriptor, not a list through the
 * records: taking REFILL of them reads no record, so a burst of spawns does
 * not wait on a chain of cache misses, one record after another. */
typedef struct slab {
    struct slab *prev, *next; /* in its list */
    uint64_t freemap[2];      /* bit k: record k is free in the pool */
    uint64_t gen_floor;       /* given back: no record had a generation above it */
    uint64_t empty_since;     /* LIST_EMPTY: when its last record came back */
    uint32_t nfree;           /* records on `free` */
    uint32_t list;            /* LIST_* */
} slab_t;

typedef struct chunk {
    uint32_t id;
    uint32_t carved; /* slabs carved so far, the header's included */
    slab_t slabs[SLABS_PER_CHUNK];
} chunk_t;

#define HEADER_SLABS ((unsigned)((sizeof(chunk_t) + SLAB_BYTES - 1) / SLAB_BYTES))

/* Slabs are taken from the head and put at the head, so that the tail of
 * LIST_EMPTY is the slab empty for the longest. */
typedef struct slab_list {
    slab_t *head, *tail;
    size_t n;
} slab_list_t;

/* All of these under pool_lock. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static slab_list_t lists[NLISTS];
static chunk_t *carving; /* the chunk fresh slabs come from */
static unsigned nchunks;
/* Chunks by number. Stored (release) under pool_lock once the header is
 * written; loaded (acquire, pairing with it) by handle lookups, any thread. */
static chunk_t *_Atomic chunks[MAX_CHUNKS];

/* ---- geometry ------------------------------------------------------------- */

static chunk_t *chunk_of(const void *p)
{
    return (chunk_t *)((uintptr_t)p & ~(uintptr_t)(CHUNK_BYTES - 1));
}

static mag_task_t *record_at(chunk_t *c, unsigned slab, unsigned slot)
{
    return (mag_task_t *)((char *)c + (size_t)slab * SLAB_BYTES + (size_t)slot * RECORD_STRIDE);
}

static slab_t *slab_of(const mag_task_t *t)
{
    chunk_t *c = chunk_of(t);
    return &c->slabs[((uintptr_t)t - (uintptr_t)c) >> SLAB_SHIFT];
}

/* Where t is in its slab, from its address alone: returning a record to
 * the pool reads nothing of it, and a burst's records are cold. */
static unsigned slot_of(const mag_task_t *t)
{
    return (unsigned)(((uintptr_t)t & (SLAB_BYTES - 1)) / RECORD_STRIDE);
}

static unsigned slab_number(const slab_t *s)
{
    return (unsigned)(s - chunk_of(s)->slabs);
}

/* ---- the pool's lists (under pool_lock) ------------------------------------ */

static bool linked(uint32_t list)
{
    return list == LIST_PARTIAL || list == LIST_EMPTY || list == LIST_RETURNED;
}

static void list_move(slab_t *s, uint32_t to)
{
    if (linked(s->list)) {
        slab_list_t *l = &lists[s->list];
        if (s->prev)
            s->prev->next = s->next;
        else
            l->head = s->next;
        if (s->next)
            s->next->prev = s->prev;
        else
            l->tail = s->prev;
        l->n--;
    }
    s->prev = s->next = NULL;
    s->list = to;
    if (linked(to)) {
        slab_list_t *l = &lists[to];
        s->next = l->head;
        if (l->head)
            l->head->prev = s;
        else
            l->tail = s;
        l->head = s;
        l->n++;
    }
}

/* Makes every record of slab i of c a free record of generation gen, on the
 * slab's free list. The memory is fresh or given back: zeros either way,
 * but a late wake or a stale handle may be reading it, hence atomic stores. */
static void carve(chunk_t *c, unsigned i, uint64_t gen)
{
    slab_t *s = &c->slabs[i];
    for (unsigned k = 0; k < SLAB_TASKS; k++) {
        mag_task_t *r = record_at(c, i, k);
        r->tsan_fiber = NULL;
        r->stack = NULL;
        r->index = c->id << (SLAB_BITS + SLOT_BITS) | i << SLOT_BITS | k;
        mag__state_init_free(&r->state);
        /* relaxed: the pool lock hands the record on; a stale handle only
         * compares the generation. */
        atomic_store_explicit(&r->life, mag__life_make(gen, MAG__HANDLE_RELEASED),
                              memory_order_relaxed);
        r->next = NULL;
    }
    s->freemap[0] = SLAB_TASKS >= 64 ? ~0ull : (1ull << SLAB_TASKS) - 1;
    s->freemap[1] = SLAB_TASKS > 64 ? ~0ull >> (128 - SLAB_TASKS) : 0;
    s->nfree = SLAB_TASKS;
}

/* A new chunk, aligned to its size: twice the size mapped, the ends trimmed. */
static chunk_t *map_chunk(void)
{
    if (nchunks == MAX_CHUNKS)
        return NULL;
    size_t len = 2 * CHUNK_BYTES;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)p + CHUNK_BYTES - 1) & ~(uintptr_t)(CHUNK_BYTES - 1);
    size_t head = start - (uintptr_t)p;
    if (head)
        munmap(p, head);
    if (len - head - CHUNK_BYTES)
        munmap((char *)start + CHUNK_BYTES, len - head - CHUNK_BYTES);
    chunk_t *c = (chunk_t *)start;
    c->id = nchunks;
    c->carved = HEADER_SLABS;
    atomic_store_explicit(&chunks[nchunks], c, memory_order_release);
    nchunks++;
    return c;
}

/* A slab with a free record: partly used ones first, then empty ones, then
 * one given back, then a fresh one. NULL: out of memory (or of chunks). */
static slab_t *slab_with_free(void)
{
    if (lists[LIST_PARTIAL].head)
        return lists[LIST_PARTIAL].head;
    if (lists[LIST_EMPTY].head)
        return lists[LIST_EMPTY].head;
    slab_t *s = lists[LIST_RETURNED].head;
    if (s) {
        carve(chunk_of(s), slab_number(s), mag__gen_next(s->gen_floor));
        list_move(s, LIST_EMPTY);
        return s;
    }
    if (!carving || carving->carved == SLABS_PER_CHUNK) {
        chunk_t *c = map_chunk();
        if (!c)
            return NULL;
        carving = c;
    }
    unsigned i = carving->carved++;
    carve(carving, i, 1);
    s = &carving->slabs[i];
    list_move(s, LIST_EMPTY);
    return s;
}

/* Takes up to want free records of s into out, the highest first (records
 * freed in address order are taken back most recently freed first, as from
 * one LIFO list); returns how many. One pass over the slab's bits and one
 * move between lists however many it takes. */
static unsigned slab_take(slab_t *s, mag_task_t **out, unsigned want)
{
    chunk_t *c = chunk_of(s);
    unsigned i = slab_number(s), n = 0;
    for (int word = 1; word >= 0 && n < want; word--) {
        uint64_t bits = s->freemap[word];
        while (bits && n < want) {
            unsigned bit = 63u - (unsigned)__builtin_clzll(bits);
            bits &= ~(1ull << bit);
            out[n++] = record_at(c, i, (unsigned)word * 64 + bit);
        }
        s->freemap[word] = bits;
    }
    s->nfree -= n;
    if (s->nfree == 0)
        list_move(s, LIST_NONE);
    else if (s->list == LIST_EMPTY)
        list_move(s, LIST_PARTIAL);
    return n;
}

/* Returns t to its slab. now: the time, or 0 to read it when needed. */
static void slab_push(mag_task_t *t, uint64_t *now)
{
    slab_t *s = slab_of(t);
    unsigned slot = slot_of(t);
    s->freemap[slot / 64] |= 1ull << (slot % 64);
    s->nfree++;
    if (s->nfree == SLAB_TASKS) {
        if (!*now)
            *now = mag__now();
        s->empty_since = *now;
        list_move(s, LIST_EMPTY);
    } else if (s->nfree == 1) {
        list_move(s, LIST_PARTIAL);
    }
}

/* The slabs due to be given back at now, unlinked (RETURNING) and chained
 * by next; *due: when the next one will be (UINT64_MAX: none). */
static slab_t *take_due(uint64_t now, uint64_t *due)
{
    slab_t *giving = NULL;
    *due = UINT64_MAX;
    while (lists[LIST_EMPTY].n > EMPTY_KEEP) {
        slab_t *s = lists[LIST_EMPTY].tail;
        if (now < s->empty_since + DECAY_NS) {
            *due = s->empty_since + DECAY_NS;
            break;
        }
        list_move(s, LIST_RETURNING); /* unlinked: next is ours */
        s->next = giving;
        giving = s;
    }
    return giving;
}

/* Outside the lock: s is RETURNING, so nobody takes from it, and all its
 * records are free, so nobody writes them. */
static void give_back(slab_t *s)
{
    chunk_t *c = chunk_of(s);
    unsigned i = slab_number(s);
    uint64_t floor = 0;
    for (unsigned k = 0; k < SLAB_TASKS; k++) {
        /* relaxed: the word of a free record no longer changes. */
        uint64_t g = mag__life_gen(atomic_load_explicit(&record_at(c, i, k)->life,
                                                        memory_order_relaxed));
        if (g > floor)
            floor = g;
    }
    s->gen_floor = floor;
    /* Anonymous private memory: reads as zeros from now on. Should the
     * kernel refuse, the pages stay as they are, which is as good. */
    (void)madvise((char *)c + (size_t)i * SLAB_BYTES, SLAB_BYTES, MADV_DONTNEED);
    pthread_mutex_lock(&pool_lock);
    list_move(s, LIST_RETURNED);
    pthread_mutex_unlock(&pool_lock);
}

static void give_back_all(slab_t *giving)
{
    while (giving) {
        slab_t *s = giving;
        giving = s->next;
        give_back(s);
    }
}

/* Returns n free records to their slabs, and gives back the slabs that are
 * due. */
static void pool_put(mag_task_t *const *records, unsigned n)
{
    uint64_t now = 0, due;
    slab_t *giving = NULL;
    pthread_mutex_lock(&pool_lock);
    for (unsigned i = 0; i < n; i++)
        slab_push(records[i], &now);
    if (lists[LIST_EMPTY].n > EMPTY_KEEP) {
        if (!now)
            now = mag__now();
        giving = take_due(now, &due);
    }
    pthread_mutex_unlock(&pool_lock);
    give_back_all(giving);
}

uint64_t mag__task_pool_trim(void)
{
    uint64_t due;
    pthread_mutex_lock(&pool_lock);
    slab_t *giving = take_due(mag__now(), &due);
    pthread_mutex_unlock(&pool_lock);
    give_back_all(giving);
    return due;
}

/* ---- records ---------------------------------------------------------------- */

mag_task_t *mag__task_alloc_refill(mag__worker_t *w)
{
    /* An empty cache takes a few records at once: one lock for REFILL
     * spawns, and no record read (their slots are bits in the slab). */
    mag_task_t *taken[REFILL];
    unsigned want = w ? REFILL : 1, n = 0;
    pthread_mutex_lock(&pool_lock);
    while (n < want) {
        slab_t *s = slab_with_free();
        if (!s)
            break;
        n += slab_take(s, taken + n, want - n);
    }
    pthread_mutex_unlock(&pool_lock);
    if (!n)
        return NULL;
    /* Taken highest first: the first goes to the caller, and the cache
     * hands out its last, the lowest, next. */
    for (unsigned k = 1; k < n; k++)
        w->free_tasks[w->free_count++] = taken[k];
    return taken[0];
}

void mag__task_pool_put(mag_task_t *t)
{
    pool_put(&t, 1);
}

/* Returns the n records freed longest ago (the bottom of the cache) to the
 * pool. */
static void cache_return_oldest(mag__worker_t *w, unsigned n)
{
    pool_put(w->free_tasks, n);
    memmove(w->free_tasks, w->free_tasks + n, (w->free_count - n) * sizeof w->free_tasks[0]);
    w->free_count -= n;
}

void mag__task_recycle(mag__worker_t *w, mag_task_t *t)
{
    if (!w) {
        mag__task_pool_put(t);
        return;
    }
    if (w->free_count == CACHE_MAX)
        cache_return_oldest(w, CACHE_MAX / 2); /* full: half goes back, under one lock */
    w->free_tasks[w->free_count++] = t;
}

void mag__task_cache_trim(mag__worker_t *w)
{
    if (w->free_count > CACHE_IDLE_KEEP)
        cache_return_oldest(w, w->free_count - CACHE_IDLE_KEEP);
}

void mag__task_cache_drain(mag__worker_t *w)
{
    cache_return_oldest(w, w->free_count);
}

/* ---- walking every record ---------------------------------------------------
 * There is no list of live tasks: a spawn or a finish would have to link or
 * unlink its record under a lock, the one locked instruction left on the
 * path. What shutdown and the dumps need (every live task of a runtime) is
 * found by walking the records themselves, which never go away. Only the
 * slabs with a record out of the pool are walked: a slab that is empty or
 * given back holds no task, and reading a given-back one would fault its
 * pages in as zeros. Which slabs those are is read under pool_lock one
 * chunk at a time; the records are visited without it, so a record may
 * change under the visitor at any moment (mag__task_peek copes with that),
 * and a slab that starts to be used after its chunk was looked at is
 * skipped: what it holds was spawned after the walk began. */

void mag__task_pool_each(void (*visit)(mag_task_t *t, void *ctx), void *ctx)
{
    bool walk[SLABS_PER_CHUNK];
    pthread_mutex_lock(&pool_lock);
    unsigned n = nchunks;
    pthread_mutex_unlock(&pool_lock);
    for (unsigned id = 0; id < n; id++) {
        /* relaxed: chunks[id] was stored under pool_lock, taken above. */
        chunk_t *c = atomic_load_explicit(&chunks[id], memory_order_relaxed);
        pthread_mutex_lock(&pool_lock);
        unsigned carved = c->carved;
        for (unsigned i = HEADER_SLABS; i < carved; i++)
            walk[i] = c->slabs[i].list == LIST_NONE || c->slabs[i].list == LIST_PARTIAL;
        pthread_mutex_unlock(&pool_lock);
        for (unsigned i = HEADER_SLABS; i < carved; i++)
            for (unsigned k = 0; walk[i] && k < SLAB_TASKS; k++)
                visit(record_at(c, i, k), ctx);
    }
}

/* ---- handles ---------------------------------------------------------------- */

mag_task_t *mag__task_handle(mag_task_t *t)
{
    /* relaxed: the generation changes only when t is freed, and whoever asks
     * for its handle holds it alive. */
    uint64_t gen = mag__life_gen(atomic_load_explicit(&t->life, memory_order_relaxed));
    return (mag_task_t *)(uintptr_t)(gen << HANDLE_GEN_SHIFT | (uint64_t)t->index << 1 | 1u);
}

mag_task_t *mag__task_from_handle(const mag_task_t *handle, uint64_t *gen)
{
    uintptr_t v = (uintptr_t)handle;
    uint64_t g = (uint64_t)v >> HANDLE_GEN_SHIFT;
    if (!(v & 1u) || !g)
        return NULL;
    uint32_t index = (uint32_t)(v >> 1) & ((1u << INDEX_BITS) - 1);
    unsigned slot = index & ((1u << SLOT_BITS) - 1);
    unsigned slab = (index >> SLOT_BITS) & (SLABS_PER_CHUNK - 1);
    if (slot >= SLAB_TASKS || slab < HEADER_SLABS)
        return NULL;
    chunk_t *c = atomic_load_explicit(&chunks[index >> (SLOT_BITS + SLAB_BITS)],
                                      memory_order_acquire);
    if (!c)
        return NULL;
    *gen = g;
    return record_at(c, slab, slot);
}

bool mag__task_handle_drop_gen(mag_task_t *t, uint64_t gen, bool hooked)
{
    /* The compare-and-swap on the generation decides alone (a record freed
     * meanwhile has another). A hook's record is born JOINING, its owner's:
     * with no task left to own it, shutdown takes that too. acq_rel on
     * success: the letting go (mag__task_handle_dropped). */
    uint64_t life = atomic_load_explicit(&t->life, memory_order_relaxed);
    while (mag__life_gen(life) == gen &&
           (mag__life_handle(life) == MAG__HANDLE_JOINABLE ||
            (hooked && mag__life_handle(life) == MAG__HANDLE_JOINING))) {
        if (atomic_compare_exchange_weak_explicit(&t->life, &life, life | MAG__HANDLE_RELEASED,
                                                  memory_order_acq_rel, memory_order_relaxed)) {
            mag__task_handle_dropped(t, life);
            return true;
        }
    }
    return false;
}

bool mag__task_handle_drop(mag_task_t *t)
{
    /* The caller holds t listed, the body not ended: its generation stays
     * until the drop, which decides alone. relaxed: as drop_gen's first
     * load. */
    uint64_t gen = mag__life_gen(atomic_load_explicit(&t->life, memory_order_relaxed));
    return mag__task_handle_drop_gen(t, gen, t->hook != NULL);
}
