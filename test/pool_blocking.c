/* Blocking pool basics: spawn/join from tasks and threads, run_blocking keeps
 * the worker free (loop mode), inline on plain threads, cancellation rules,
 * nested spawns, bad inputs, and a detached job at loop-mode shutdown. */
#include "test/test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static _Atomic int ran;

static int plus_one(void *arg)
{
    atomic_fetch_add(&ran, 1);
    return (int)(intptr_t)arg + 1;
}

static int sleepy(void *arg)
{
    usleep((useconds_t)(intptr_t)arg);
    atomic_fetch_add(&ran, 1);
    return 7;
}

/* ---- run_blocking does not hold the worker (loop mode: one worker) ---- */
static _Atomic int ticks;
static _Atomic int stop_ticking;

static int ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_ticking)) {
        atomic_fetch_add(&ticks, 1);
        if (mag_sleep(MAG_MS) == -ECANCELED)
            break;
    }
    return 0;
}

static int keeps_running(void *arg)
{
    (void)arg;
    mag_task_t *t = mag_spawn(ticker, NULL);
    ASSERT_TRUE(t != NULL);
    mag_yield();
    int before = atomic_load(&ticks), st = 0;
    ASSERT_EQ(mag_run_blocking(sleepy, (void *)(intptr_t)200000, &st), 0);
    ASSERT_EQ(st, 7);
    int during = atomic_load(&ticks) - before;
    atomic_store(&stop_ticking, 1);
    ASSERT_EQ(mag_join(t, NULL), 0);
    /* 200 ms of 1 ms sleeps: a blocked worker would give 0 or 1. */
    if (during < 10)
        TEST_FAIL("the ticker ran %d times while the blocking call ran", during);
    return 0;
}

/* ---- spawn and join from a task; nested spawns from a pool thread ---- */
static int nested(void *arg)
{
    (void)arg;
    mag_task_t *t = mag_spawn_blocking(plus_one, (void *)41); /* pool-thread context */
    ASSERT_TRUE(t != NULL);
    int st = 0;
    ASSERT_EQ(mag_join(t, &st), 0); /* blocks this pool thread */
    ASSERT_EQ(mag_run_blocking(plus_one, (void *)1, &st), 0); /* inline here */
    ASSERT_EQ(st, 2);
    return 100;
}

static int task_side(void *arg)
{
    (void)arg;
    mag_task_t *ts[32];
    for (int i = 0; i < 32; i++) {
        ts[i] = mag_spawn_blocking(plus_one, (void *)(intptr_t)i);
        ASSERT_TRUE(ts[i] != NULL);
    }
    for (int i = 0; i < 32; i++) {
        int st = -1;
        ASSERT_EQ(mag_join(ts[i], &st), 0);
        ASSERT_EQ(st, i + 1);
    }
    int st = 0;
    ASSERT_EQ(mag_run_blocking(nested, NULL, &st), 0);
    ASSERT_EQ(st, 100);
    ASSERT_EQ(mag_run_blocking(NULL, NULL, &st), -EINVAL);
    ASSERT_TRUE(mag_spawn_blocking(NULL, NULL) == NULL);
    /* A detached job still runs. */
    int before = atomic_load(&ran);
    mag_detach(mag_spawn_blocking(plus_one, NULL));
    for (int i = 0; i < 5000 && atomic_load(&ran) == before; i++)
        mag_sleep(MAG_MS);
    ASSERT_EQ(atomic_load(&ran), before + 1);
    return 0;
}

/* ---- cancellation ---- */
static int cancelled_mid_job(void *arg)
{
    _Atomic int *started = arg;
    atomic_store(started, 1);
    int st = 0;
    /* Cancelled while the job runs: waits for it anyway, gets its status. */
    int rc = mag_run_blocking(sleepy, (void *)(intptr_t)100000, &st);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(st, 7);
    ASSERT_TRUE(mag_cancelled());
    ASSERT_EQ(mag_sleep(MAG_MS), -ECANCELED); /* the next suspension point */
    /* Already cancelled: the job does not start. */
    int before = atomic_load(&ran);
    ASSERT_EQ(mag_run_blocking(plus_one, NULL, &st), -ECANCELED);
    ASSERT_EQ(atomic_load(&ran), before);
    return 5;
}

static int cancel_side(void *arg)
{
    (void)arg;
    _Atomic int started = 0;
    mag_task_t *t = mag_spawn(cancelled_mid_job, (void *)&started);
    while (!atomic_load(&started))
        mag_sleep(MAG_MS);
    mag_sleep(20 * MAG_MS);
    mag_cancel(t);
    int st = 0;
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, 5);

    /* mag_join on a blocking handle is interruptible; the job goes on. */
    mag_task_t *b = mag_spawn_blocking(sleepy, (void *)(intptr_t)50000);
    uint64_t tok = mag_deadline_push(mag_now() + 5 * MAG_MS);
    ASSERT_EQ(mag_join(b, &st), -ETIMEDOUT);
    mag_deadline_pop(tok);
    ASSERT_EQ(mag_join(b, &st), 0);
    ASSERT_EQ(st, 7);
    return 0;
}

static void *thread_side(void *p)
{
    mag_runtime_t *rt = p;
    int st = 0;
    /* No runtime context on this thread. */
    ASSERT_TRUE(mag_spawn_blocking(plus_one, NULL) == NULL);
    ASSERT_EQ(mag_run_blocking(plus_one, (void *)9, &st), 0); /* inline */
    ASSERT_EQ(st, 10);
    mag_task_t *t = mag_runtime_spawn_blocking(rt, plus_one, (void *)20);
    ASSERT_TRUE(t != NULL);
    ASSERT_EQ(mag_join(t, &st), 0); /* a plain thread blocks */
    ASSERT_EQ(st, 21);
    return NULL;
}

static void run(unsigned workers)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    mag_runtime_t *rt;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    int st = -1;
    atomic_store(&stop_ticking, 0);
    ASSERT_EQ(mag_runtime_block_on(rt, keeps_running, NULL, &st), 0);
    ASSERT_EQ(mag_runtime_block_on(rt, task_side, NULL, &st), 0);
    ASSERT_EQ(mag_runtime_block_on(rt, cancel_side, NULL, &st), 0);
    { /* works in loop mode too: no task involved */
        pthread_t th;
        pthread_create(&th, NULL, thread_side, rt);
        pthread_join(th, NULL);
    }
    /* Loop mode: a detached job still running at shutdown is waited for. */
    int before = atomic_load(&ran);
    mag_detach(mag_runtime_spawn_blocking(rt, sleepy, (void *)(intptr_t)100000));
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
    ASSERT_EQ(atomic_load(&ran), before + 1);
    ASSERT_TRUE(mag_runtime_spawn_blocking(NULL, plus_one, NULL) == NULL);
}

int main(void)
{
    run(1);
    run(test_workers(4));
    return 0;
}
