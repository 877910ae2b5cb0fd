/* Spawn and join 100,000 tasks across workers with results checked; nested
 * spawns; the same program in single-threaded loop mode. */
#include "test/test.h"

#include <stdatomic.h>

static _Atomic long ran;

static int square(void *arg)
{
    long x = (long)(intptr_t)arg;
    atomic_fetch_add(&ran, 1);
    if (x % 7 == 0)
        mag_yield();
    return (int)((x * x) % 100003);
}

static int nested(void *arg)
{
    long depth = (long)(intptr_t)arg;
    if (depth == 0)
        return 1;
    mag_task_t *a = mag_spawn(nested, (void *)(intptr_t)(depth - 1));
    mag_task_t *b = mag_spawn(nested, (void *)(intptr_t)(depth - 1));
    ASSERT_TRUE(a && b);
    int ra, rb;
    ASSERT_EQ(mag_join(a, &ra), 0);
    ASSERT_EQ(mag_join(b, &rb), 0);
    return ra + rb;
}

static int main_task(void *arg)
{
    long n = TEST_SCALE(100000);
    mag_task_t **ts = calloc((size_t)n, sizeof *ts);
    ASSERT_TRUE(ts);
    for (long i = 0; i < n; i++) {
        ts[i] = mag_spawn(square, (void *)(intptr_t)i);
        ASSERT_TRUE(ts[i] != NULL);
    }
    for (long i = 0; i < n; i++) {
        int st = -1;
        ASSERT_EQ(mag_join(ts[i], &st), 0);
        ASSERT_EQ(st, (i * i) % 100003);
    }
    free(ts);
    ASSERT_EQ(atomic_load(&ran), n);
    /* Nested: a binary tree of depth 10 returns 2^10 leaves. */
    mag_task_t *root = mag_spawn(nested, (void *)(intptr_t)10);
    int leaves = 0;
    ASSERT_EQ(mag_join(root, &leaves), 0);
    ASSERT_EQ(leaves, 1024);
    ASSERT_TRUE(mag_self() != NULL);
    return 42;
}

int main(void)
{
    unsigned modes[] = {test_workers(4), 1};
    for (unsigned m = 0; m < 2; m++) {
        mag_config_t cfg;
        mag_config_init(&cfg);
        cfg.workers = modes[m];
        atomic_store(&ran, 0);
        int status = 0;
        ASSERT_EQ(mag_run(&cfg, main_task, NULL, &status), 0);
        ASSERT_EQ(status, 42);
    }
    return 0;
}
