/* Wake-up protocol under stress: 8 workers on few cores; tasks wake, cancel,
 * join and sleep on each other across workers. Run under ThreadSanitizer in
 * CI. Every task must finish with the expected result: a lost wake-up hangs
 * (the runner's timeout fails it), a double run corrupts the counters. */
#include "test/test.h"

#include <stdatomic.h>

static _Atomic long leaves, cancels_seen;

static int leaf(void *arg)
{
    long i = (long)(intptr_t)arg;
    if (i % 3 == 0)
        mag_yield();
    else if (i % 3 == 1)
        mag_sleep((uint64_t)(i % 50) * MAG_US);
    atomic_fetch_add(&leaves, 1);
    return (int)(i & 0xff);
}

static int victim(void *arg)
{
    int rc = mag_sleep(3600 * MAG_SEC);
    if (rc == -ECANCELED)
        atomic_fetch_add(&cancels_seen, 1);
    return rc;
}

static int canceller(void *arg)
{
    mag_task_t *v = arg;
    mag_yield();
    mag_cancel(v);
    return 0;
}

static int fan(void *arg)
{
    long base = (long)(intptr_t)arg;
    mag_task_t *ts[16];
    for (int i = 0; i < 16; i++)
        ts[i] = mag_spawn(leaf, (void *)(intptr_t)(base + i));
    /* A victim cancelled from a task that may run on another worker. */
    mag_task_t *v = mag_spawn(victim, NULL);
    mag_task_t *c = mag_spawn(canceller, v);
    for (int i = 0; i < 16; i++) {
        int st;
        ASSERT_EQ(mag_join(ts[i], &st), 0);
        ASSERT_EQ(st, (int)((base + i) & 0xff));
    }
    int st;
    ASSERT_EQ(mag_join(c, &st), 0);
    ASSERT_EQ(mag_join(v, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    return 0;
}

static int main_task(void *arg)
{
    int rounds = TEST_SANITIZED ? 20 : 200;
    for (int r = 0; r < rounds; r++) {
        mag_task_t *fans[8];
        for (int i = 0; i < 8; i++)
            fans[i] = mag_spawn(fan, (void *)(intptr_t)(r * 1000 + i * 16));
        for (int i = 0; i < 8; i++)
            ASSERT_EQ(mag_join(fans[i], NULL), 0);
    }
    ASSERT_EQ(atomic_load(&leaves), (long)rounds * 8 * 16);
    ASSERT_EQ(atomic_load(&cancels_seen), (long)rounds * 8);
    return 0;
}

int main(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 8;
    test_run_cfg(&cfg, main_task, NULL);
    return 0;
}
