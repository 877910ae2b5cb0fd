/* mag_runtime_spawn from 4 foreign threads at once; join from OS threads;
 * block_on repeatedly; loop-mode block_on from another thread is refused. */
#include "test/test.h"

#include <pthread.h>
#include <stdatomic.h>

static _Atomic long total;

static int add(void *arg)
{
    atomic_fetch_add(&total, (long)(intptr_t)arg);
    mag_sleep(10 * MAG_US);
    return (int)(intptr_t)arg;
}

struct spawner {
    mag_runtime_t *rt;
    int base;
};

static void *spawn_from_thread(void *p)
{
    struct spawner *s = p;
    int n = TEST_SCALE(2000);
    mag_task_t **ts = calloc((size_t)n, sizeof *ts);
    for (int i = 0; i < n; i++) {
        ts[i] = mag_runtime_spawn(s->rt, add, (void *)(intptr_t)(s->base + i));
        if (!ts[i])
            TEST_FAIL("mag_runtime_spawn returned NULL");
    }
    for (int i = 0; i < n; i++) {
        int st;
        if (mag_join(ts[i], &st) != 0 || st != s->base + i) /* from an OS thread */
            TEST_FAIL("join from a thread: status %d, want %d", st, s->base + i);
    }
    free(ts);
    return NULL;
}

static int small(void *arg)
{
    return (int)(intptr_t)arg + 1;
}

static void *block_on_elsewhere(void *p)
{
    int st;
    return (void *)(intptr_t)mag_runtime_block_on(p, small, NULL, &st);
}

static void run(unsigned workers)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    mag_runtime_t *rt;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    int st = 0;
    ASSERT_EQ(mag_runtime_block_on(rt, small, (void *)41, &st), 0);
    ASSERT_EQ(st, 42);
    atomic_store(&total, 0);
    if (workers > 1) {
        pthread_t th[4];
        struct spawner sp[4];
        for (int i = 0; i < 4; i++) {
            sp[i] = (struct spawner){rt, i * 100000};
            ASSERT_EQ(pthread_create(&th[i], NULL, spawn_from_thread, &sp[i]), 0);
        }
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
        long n = TEST_SCALE(2000), want = 0;
        for (int i = 0; i < 4; i++)
            want += n * (i * 100000) + n * (n - 1) / 2;
        ASSERT_EQ(atomic_load(&total), want);
    } else {
        /* Loop mode: the first block_on thread owns the loop. */
        pthread_t th;
        void *rc;
        ASSERT_EQ(pthread_create(&th, NULL, block_on_elsewhere, rt), 0);
        pthread_join(th, &rc);
        ASSERT_EQ((intptr_t)rc, -EPERM);
        /* A spawn from outside runs at the next block_on. */
        mag_task_t *t = mag_runtime_spawn(rt, add, (void *)5);
        ASSERT_TRUE(t != NULL);
        ASSERT_EQ(mag_runtime_block_on(rt, small, (void *)1, &st), 0);
        ASSERT_EQ(st, 2);
    }
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
}

int main(void)
{
    run(test_workers(4));
    run(1);
    return 0;
}
