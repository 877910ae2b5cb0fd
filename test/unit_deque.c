/* The Chase-Lev run queue alone: full at capacity, FIFO takes, steals of
 * half, empty behaviour, and an owner racing thieves loses no item and hands
 * none out twice. */
#include "test/test.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "runtime/deque.h"

/* Items are addresses in a PROT_NONE mapping: a deque that dereferenced one
 * would crash the test. Each item stands for its index. */
#define STRIDE 8 /* sizeof(void *): every fake pointer is suitably aligned */
static char *arena;
static size_t arena_items;

static mag_task_t *item(size_t i)
{
    return (mag_task_t *)(void *)(arena + i * STRIDE);
}

/* The index an item stands for; fails on anything that is not one. */
static size_t index_of(mag_task_t *t)
{
    uintptr_t p = (uintptr_t)t, base = (uintptr_t)arena;
    if (p < base || p >= base + arena_items * STRIDE || (p - base) % STRIDE)
        TEST_FAIL("not an item: %p (items at %p, %zu of them)", (void *)t, (void *)arena,
                  arena_items);
    return (p - base) / STRIDE;
}

static void map_items(size_t n)
{
    arena_items = n;
    arena = mmap(NULL, n * STRIDE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ASSERT_TRUE(arena != MAP_FAILED);
}

static mag__deque_t *new_deque(void)
{
    mag__deque_t *q = aligned_alloc(MAG_CACHELINE, sizeof *q);
    ASSERT_TRUE(q != NULL);
    memset(q, 0, sizeof *q);
    return q;
}

/* ---- the sequential contract ------------------------------------------- */

static void empty_queue(mag__deque_t *q)
{
    mag_task_t *out[MAG__DEQUE_CAP];
    out[0] = item(7);
    ASSERT_UEQ(mag__deque_len(q), 0);
    ASSERT_EQ(mag__deque_take(q, out, 1, false), 0);
    ASSERT_EQ(mag__deque_take(q, out, MAG__DEQUE_CAP, true), 0);
    ASSERT_EQ(mag__deque_take(q, out, MAG__DEQUE_CAP, false), 0);
    ASSERT_PTR_EQ(out[0], item(7)); /* nothing written */
    ASSERT_UEQ(mag__deque_len(q), 0);
}

/* Fills q from empty until push refuses; items first..first+CAP-1. */
static void fill(mag__deque_t *q, size_t first)
{
    for (size_t i = 0; i < MAG__DEQUE_CAP; i++) {
        ASSERT_TRUE(mag__deque_push(q, item(first + i)));
        ASSERT_UEQ(mag__deque_len(q), i + 1);
    }
    ASSERT_TRUE(!mag__deque_push(q, item(first + MAG__DEQUE_CAP)));
    ASSERT_TRUE(!mag__deque_push(q, item(first + MAG__DEQUE_CAP)));
    ASSERT_UEQ(mag__deque_len(q), MAG__DEQUE_CAP);
}

static void sequential(void)
{
    mag__deque_t *q = new_deque();
    mag_task_t *out[MAG__DEQUE_CAP];
    empty_queue(q);

    /* Several laps, so that the counters run past the array and wrap the
     * slot index: full at capacity each time, and takes in push order. */
    for (size_t lap = 0; lap < 5; lap++) {
        size_t first = lap * MAG__DEQUE_CAP;
        fill(q, first);
        for (size_t i = 0; i < MAG__DEQUE_CAP; i++) {
            ASSERT_EQ(mag__deque_take(q, out, 1, false), 1);
            ASSERT_PTR_EQ(out[0], item(first + i));
            ASSERT_UEQ(mag__deque_len(q), MAG__DEQUE_CAP - i - 1);
        }
        empty_queue(q);
    }

    /* Full, one taken, one more fits, and then it is full again. */
    fill(q, 0);
    ASSERT_EQ(mag__deque_take(q, out, 1, false), 1);
    ASSERT_PTR_EQ(out[0], item(0));
    ASSERT_TRUE(mag__deque_push(q, item(MAG__DEQUE_CAP)));
    ASSERT_TRUE(!mag__deque_push(q, item(MAG__DEQUE_CAP + 1)));
    ASSERT_EQ(mag__deque_take(q, out, MAG__DEQUE_CAP, false), MAG__DEQUE_CAP);
    for (size_t i = 0; i < MAG__DEQUE_CAP; i++)
        ASSERT_PTR_EQ(out[i], item(i + 1));
    empty_queue(q);

    /* A take without half takes up to max, oldest first. */
    for (size_t i = 0; i < 10; i++)
        ASSERT_TRUE(mag__deque_push(q, item(i)));
    ASSERT_EQ(mag__deque_take(q, out, 4, false), 4);
    for (size_t i = 0; i < 4; i++)
        ASSERT_PTR_EQ(out[i], item(i));
    ASSERT_EQ(mag__deque_take(q, out, MAG__DEQUE_CAP, false), 6);
    for (size_t i = 0; i < 6; i++)
        ASSERT_PTR_EQ(out[i], item(4 + i));
    empty_queue(q);

    /* A steal takes half, rounded up (so a lone item is stolen too), the
     * oldest first, and never more than max; the rest stay in order. */
    for (unsigned n = 1; n <= MAG__DEQUE_CAP; n++) {
        for (unsigned i = 0; i < n; i++)
            ASSERT_TRUE(mag__deque_push(q, item(i)));
        unsigned half = n - n / 2;
        ASSERT_EQ(mag__deque_take(q, out, MAG__DEQUE_CAP, true), half);
        for (unsigned i = 0; i < half; i++)
            ASSERT_PTR_EQ(out[i], item(i));
        ASSERT_UEQ(mag__deque_len(q), n - half);
        unsigned rest = n - half, second = rest - rest / 2;
        if (second > 3)
            second = 3;
        ASSERT_EQ(mag__deque_take(q, out, 3, true), second);
        for (unsigned i = 0; i < second; i++)
            ASSERT_PTR_EQ(out[i], item(half + i));
        unsigned done = half + second;
        ASSERT_EQ(mag__deque_take(q, out, MAG__DEQUE_CAP, false), n - done);
        for (unsigned i = done; i < n; i++)
            ASSERT_PTR_EQ(out[i - done], item(i));
        empty_queue(q);
    }
    free(q);
}

/* ---- the owner racing thieves ------------------------------------------ */

#define THIEVES 3
static mag__deque_t *rq;
static size_t nitems;
static _Atomic uint32_t *taken; /* per item: how many times it came out */
static uint64_t *payload;       /* written by the owner before the push */
static _Atomic int owner_done;
static _Atomic int thieves_ready;
static _Atomic uint64_t stolen_total, steals;

/* Checks an item that came out of the queue and counts it. The payload read
 * is a plain load: push's release and take's acquire must order it after
 * the owner's plain store (ThreadSanitizer reports it otherwise). */
static void took(mag_task_t *t)
{
    size_t i = index_of(t);
    if (payload[i] != i * 3 + 1)
        TEST_FAIL("item %zu: payload %" PRIu64, i, payload[i]);
    atomic_fetch_add_explicit(&taken[i], 1, memory_order_relaxed);
}

static void *thief(void *arg)
{
    (void)arg;
    mag_task_t *out[MAG__DEQUE_CAP / 2];
    atomic_fetch_add_explicit(&thieves_ready, 1, memory_order_relaxed);
    for (;;) {
        /* Read done before trying: a failed take after done means empty. */
        int done = atomic_load_explicit(&owner_done, memory_order_acquire);
        unsigned n = mag__deque_take(rq, out, MAG__DEQUE_CAP / 2, true);
        if (n > MAG__DEQUE_CAP / 2)
            TEST_FAIL("stole %u, more than the %u asked for", n, MAG__DEQUE_CAP / 2);
        for (unsigned i = 0; i < n; i++)
            took(out[i]);
        if (n) {
            atomic_fetch_add_explicit(&stolen_total, n, memory_order_relaxed);
            atomic_fetch_add_explicit(&steals, 1, memory_order_relaxed);
        } else if (done) {
            return NULL;
        } else {
            sched_yield(); /* two cores: let the owner push */
        }
    }
}

static void racing(void)
{
    nitems = TEST_SCALE(1000000);
    map_items(nitems);
    rq = new_deque();
    taken = calloc(nitems, sizeof *taken);
    payload = calloc(nitems, sizeof *payload);
    ASSERT_TRUE(taken && payload);
    pthread_t th[THIEVES];
    for (int i = 0; i < THIEVES; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, thief, NULL), 0);
    while (atomic_load_explicit(&thieves_ready, memory_order_relaxed) < THIEVES)
        sched_yield(); /* so that they steal while the owner pushes */

    /* In the first half the owner only pushes, and waits when the queue is
     * full: everything there goes to the thieves, stolen while the owner
     * pushes. In the second half it also takes one now and then from the
     * top (its FIFO take) and, when the queue is full, moves half out as the
     * worker does on overflow, racing the thieves for the same slots. */
    mag_task_t *out[MAG__DEQUE_CAP];
    uint32_t rng = 12345;
    uint64_t overflows = 0, owner_took = 0;
    for (size_t i = 0; i < nitems; i++) {
        bool racing_thieves = i >= nitems / 2;
        payload[i] = i * 3 + 1;
        while (!mag__deque_push(rq, item(i))) {
            if (!racing_thieves) {
                sched_yield();
                continue;
            }
            unsigned n = mag__deque_take(rq, out, MAG__DEQUE_CAP / 2, true);
            for (unsigned k = 0; k < n; k++)
                took(out[k]);
            owner_took += n;
            overflows++;
        }
        rng = rng * 1103515245u + 12345u;
        if (racing_thieves && (rng >> 16) % 4 == 0 && mag__deque_take(rq, out, 1, false) == 1) {
            took(out[0]);
            owner_took++;
        }
    }
    atomic_store_explicit(&owner_done, 1, memory_order_release);
    while (mag__deque_take(rq, out, 1, false) == 1) {
        took(out[0]);
        owner_took++;
    }
    for (int i = 0; i < THIEVES; i++)
        ASSERT_EQ(pthread_join(th[i], NULL), 0);

    ASSERT_UEQ(mag__deque_len(rq), 0);
    for (size_t i = 0; i < nitems; i++)
        if (atomic_load(&taken[i]) != 1)
            TEST_FAIL("item %zu taken %u times", i, atomic_load(&taken[i]));
    ASSERT_UEQ(atomic_load(&stolen_total) + owner_took, nitems);
    printf("%zu items: %" PRIu64 " stolen in %" PRIu64 " steals; the owner took %" PRIu64
           " (%" PRIu64 " overflows)\n",
           nitems, atomic_load(&stolen_total), atomic_load(&steals), owner_took, overflows);
    free(taken);
    free(payload);
    free(rq);
    munmap(arena, nitems * STRIDE);
}

int main(void)
{
    map_items(2 * MAG__DEQUE_CAP * 6);
    sequential();
    munmap(arena, arena_items * STRIDE);
    racing();
    return 0;
}
