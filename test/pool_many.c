/* 10,000 blocking jobs from 100 tasks, in batches, all complete with their
 * own status; then the same from plain threads through the explicit-runtime
 * spawn. */
#include "test/test.h"

#include <pthread.h>
#include <stdatomic.h>

#define TASKS 100
#define PER_TASK 100
#define BATCH 10

static _Atomic long done;

static int job(void *arg)
{
    atomic_fetch_add_explicit(&done, 1, memory_order_relaxed);
    return (int)(intptr_t)arg;
}

static int spawner(void *arg)
{
    int base = (int)(intptr_t)arg * PER_TASK;
    for (int b = 0; b < PER_TASK; b += BATCH) {
        mag_task_t *ts[BATCH];
        for (int i = 0; i < BATCH; i++)
            if (!(ts[i] = mag_spawn_blocking(job, (void *)(intptr_t)(base + b + i))))
                TEST_FAIL("mag_spawn_blocking returned NULL");
        for (int i = 0; i < BATCH; i++) {
            int st = -1;
            ASSERT_EQ(mag_join(ts[i], &st), 0);
            ASSERT_EQ(st, base + b + i);
        }
    }
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    mag_group_t *g = mag_group_create(0);
    for (int i = 0; i < TASKS; i++)
        ASSERT_GE(mag_group_spawn(g, spawner, (void *)(intptr_t)i), 0);
    ASSERT_EQ(mag_group_wait(g), 0);
    mag_group_destroy(g);
    ASSERT_EQ(atomic_load(&done), TASKS * PER_TASK);
    return 0;
}

static mag_runtime_t *the_rt;

static void *thread_spawner(void *arg)
{
    int base = (int)(intptr_t)arg * 1000;
    for (int i = 0; i < 1000; i++) {
        mag_task_t *t = mag_runtime_spawn_blocking(the_rt, job, (void *)(intptr_t)(base + i));
        int st = -1;
        if (!t || mag_join(t, &st) != 0 || st != base + i)
            TEST_FAIL("thread spawn/join %d", base + i);
    }
    return NULL;
}

int main(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(4);
    ASSERT_EQ(mag_runtime_create(&cfg, &the_rt), 0);
    int status = -1;
    ASSERT_EQ(mag_runtime_block_on(the_rt, main_task, NULL, &status), 0);
    ASSERT_EQ(status, 0);
    atomic_store(&done, 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, thread_spawner, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(atomic_load(&done), 4000);
    ASSERT_EQ(mag_runtime_shutdown(the_rt), 0);
    return 0;
}
