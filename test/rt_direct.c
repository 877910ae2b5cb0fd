/* rt_direct: tasks that yield or park switch straight to the next task on
 * their worker (runtime/worker.c), and the scheduler's rules still hold:
 *   - yields are round-robin (each yielder goes to the back);
 *   - a task woken by another runs (the LIFO slot) and the waker's wait
 *     resumes once it is woken in turn (ping-pong over two channels);
 *   - while tasks only switch among themselves, the scheduler still takes
 *     its turns: a sleeper's timer fires, a read's completion is reaped and
 *     a task spawned from a plain thread (the inject queue) runs, each while
 *     the yielders are still yielding;
 *   - in loop mode, a burst of spawns beyond the local queue (the spill)
 *     is counted as queued and every task runs.
 * The round-robin and the burst run in loop mode (1 worker), where the
 * order is the scheduler's alone; ping-pong and the turns at 1 and 2. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "test/test.h"

#define ROUND_ROBIN_TASKS 3
#define ROUND_ROBIN_ROUNDS 50

static char order[ROUND_ROBIN_TASKS * ROUND_ROBIN_ROUNDS + 1];
static size_t order_len;

static int round_robin_task(void *arg)
{
    char id = (char)(uintptr_t)arg;
    for (int i = 0; i < ROUND_ROBIN_ROUNDS; i++) {
        order[order_len++] = id;
        ASSERT_EQ(mag_yield(), 0);
    }
    return 0;
}

/* Loop mode only: with one worker the order is the scheduler's alone. */
static int round_robin(void *arg)
{
    (void)arg;
    order_len = 0;
    mag_task_t *t[ROUND_ROBIN_TASKS];
    for (int i = 0; i < ROUND_ROBIN_TASKS; i++)
        ASSERT_PTR_NE(t[i] = mag_spawn(round_robin_task, (void *)(uintptr_t)('A' + i)), NULL);
    for (int i = 0; i < ROUND_ROBIN_TASKS; i++)
        ASSERT_EQ(mag_join(t[i], NULL), 0);
    order[order_len] = 0;
    /* After the first pass each task runs once per round, in turn. */
    for (size_t i = ROUND_ROBIN_TASKS; i < order_len; i++)
        if (order[i] != order[i - ROUND_ROBIN_TASKS])
            TEST_FAIL("yields out of turn at %zu: %s", i, order);
    ASSERT_EQ(order_len, (size_t)(ROUND_ROBIN_TASKS * ROUND_ROBIN_ROUNDS));
    return 0;
}

/* ---- ping-pong: wake, then wait -------------------------------------------- */

#define PINGS 20000

struct pingpong {
    mag_chan_t *to_pong, *to_ping;
};

static int pong(void *arg)
{
    struct pingpong *p = arg;
    for (int i = 0; i < PINGS; i++) {
        int v;
        ASSERT_EQ(mag_chan_recv(p->to_pong, &v), 0);
        ASSERT_EQ(v, i);
        v++;
        ASSERT_EQ(mag_chan_send(p->to_ping, &v), 0);
    }
    return 0;
}

static int ping_pong(void *arg)
{
    (void)arg;
    struct pingpong p = {mag_chan_create(sizeof(int), 0), mag_chan_create(sizeof(int), 0)};
    ASSERT_PTR_NE(p.to_pong, NULL);
    ASSERT_PTR_NE(p.to_ping, NULL);
    mag_task_t *t = mag_spawn(pong, &p);
    ASSERT_PTR_NE(t, NULL);
    for (int i = 0; i < PINGS; i++) {
        int v = i;
        ASSERT_EQ(mag_chan_send(p.to_pong, &v), 0);
        ASSERT_EQ(mag_chan_recv(p.to_ping, &v), 0);
        ASSERT_EQ(v, i + 1);
    }
    ASSERT_EQ(mag_join(t, NULL), 0);
    mag_chan_destroy(p.to_pong);
    mag_chan_destroy(p.to_ping);
    return 0;
}

/* ---- the scheduler's turns while tasks switch among themselves ------------- */

static _Atomic int stop_yielding;
static _Atomic long yields;

static int yielder(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_yielding)) {
        ASSERT_EQ(mag_yield(), 0);
        atomic_fetch_add(&yields, 1);
    }
    return 0;
}

static _Atomic int injected_ran;

static int injected(void *arg)
{
    (void)arg;
    atomic_store(&injected_ran, 1);
    return 0;
}

static void *spawn_from_thread(void *arg)
{
    mag_runtime_t *rt = arg;
    mag_task_t *t = mag_runtime_spawn(rt, injected, NULL);
    ASSERT_PTR_NE(t, NULL);
    mag_detach(t);
    return NULL;
}

/* Waits, yielding, for flag: the yielders keep yielding throughout. */
static void yield_until(_Atomic int *flag, const char *what)
{
    uint64_t limit = mag_now() + 20 * MAG_SEC;
    while (!atomic_load(flag)) {
        if (mag_now() > limit)
            TEST_FAIL("%s never happened while tasks yielded", what);
        ASSERT_EQ(mag_yield(), 0);
    }
}

static _Atomic int slept, read_done;

static int sleeper(void *arg)
{
    (void)arg;
    ASSERT_EQ(mag_sleep(MAG_MS), 0);
    atomic_store(&slept, 1);
    return 0;
}

static int reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    ASSERT_EQ(mag_read(fd, &c, 1, -1), 1);
    ASSERT_EQ(c, 'x');
    atomic_store(&read_done, 1);
    return 0;
}

static int turns(void *arg)
{
    (void)arg;
    atomic_store(&stop_yielding, 0);
    atomic_store(&slept, 0);
    atomic_store(&read_done, 0);
    atomic_store(&injected_ran, 0);
    mag_task_t *y[2];
    for (int i = 0; i < 2; i++)
        ASSERT_PTR_NE(y[i] = mag_spawn(yielder, NULL), NULL);

    mag_task_t *s = mag_spawn(sleeper, NULL);
    ASSERT_PTR_NE(s, NULL);
    yield_until(&slept, "a timer");

    int p[2];
    ASSERT_EQ(pipe(p), 0);
    mag_task_t *r = mag_spawn(reader, (void *)(intptr_t)p[0]);
    ASSERT_PTR_NE(r, NULL);
    ASSERT_EQ(mag_sleep(5 * MAG_MS), 0); /* its read reaches the ring */
    ASSERT_EQ(write(p[1], "x", 1), 1);   /* from the task's thread: the kernel completes it */
    yield_until(&read_done, "a read's completion");

    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, spawn_from_thread, mag_runtime_current()), 0);
    yield_until(&injected_ran, "a task spawned from a plain thread");
    ASSERT_EQ(pthread_join(th, NULL), 0);

    atomic_store(&stop_yielding, 1);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(mag_join(y[i], NULL), 0);
    ASSERT_EQ(mag_join(s, NULL), 0);
    ASSERT_EQ(mag_join(r, NULL), 0);
    close(p[0]);
    close(p[1]);
    printf("turns: %ld yields meanwhile\n", atomic_load(&yields));
    return 0;
}

/* ---- loop mode's spill: a burst beyond the local queue ----------------- */

#define BURST 20000

static _Atomic int burst_ran;

static int burst_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&burst_ran, 1);
    return 0;
}

static int burst(void *arg)
{
    (void)arg;
    atomic_store(&burst_ran, 0);
    static mag_task_t *h[BURST];
    for (int i = 0; i < BURST; i++)
        ASSERT_PTR_NE(h[i] = mag_spawn(burst_task, NULL), NULL);
    /* Nothing has run yet (one worker, and this task has not suspended):
     * every one is queued, most of them beyond the local queue's 256. */
    mag_metrics_t m;
    ASSERT_EQ(mag_metrics(mag_runtime_current(), &m), 0);
    ASSERT_GE(m.workers[0].queue_depth, (uint64_t)(BURST - 1));
    mag_metrics_free(&m);
    ASSERT_EQ(atomic_load(&burst_ran), 0);
    for (int i = 0; i < BURST; i++)
        ASSERT_EQ(mag_join(h[i], NULL), 0);
    ASSERT_EQ(atomic_load(&burst_ran), BURST);
    return 0;
}

int main(void)
{
    test_run(1, round_robin, NULL);
    test_run(1, burst, NULL);
    printf("round robin: %.30s...\n", order);
    for (unsigned w = 1; w <= 2; w++) {
        test_run(w, ping_pong, NULL);
        test_run(w, turns, NULL);
    }
    return 0;
}
