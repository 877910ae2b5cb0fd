/* Memory goes back: after a burst of a million short tasks has finished, the
 * process's resident memory comes back to within 64 MiB of what it was
 * before (free records go back about a second after their slab emptied). */
#include "test/test.h"

#include <stdatomic.h>

#define BURST 1000000
#define SLACK (64ull << 20)

static _Atomic long finished;

static int short_task(void *arg)
{
    atomic_fetch_add_explicit(&finished, 1, memory_order_relaxed);
    return 0;
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    ASSERT_TRUE(f != NULL);
    unsigned long size = 0, resident = 0;
    ASSERT_EQ(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void wait_finished(long n)
{
    uint64_t give_up = mag_now() + 120 * MAG_SEC;
    while (atomic_load(&finished) < n) {
        ASSERT_TRUE(mag_now() < give_up);
        mag_sleep(MAG_MS);
    }
}

static int main_task(void *arg)
{
    /* A first small burst, so that what every run keeps (stacks, caches,
     * queues at their size) is counted before. */
    for (int i = 0; i < 10000; i++)
        mag_detach(mag_spawn(short_task, NULL));
    wait_finished(10000);
    mag_sleep(20 * MAG_MS);
    uint64_t before = rss_bytes();

    /* Spawned faster than they run: most records exist at once. */
    for (int i = 0; i < BURST; i++) {
        mag_task_t *t = mag_spawn(short_task, NULL);
        ASSERT_TRUE(t != NULL);
        mag_detach(t);
    }
    uint64_t peak = rss_bytes();
    wait_finished(10000 + BURST);
    /* Idle now: within a few seconds the memory is back (the pool keeps an
     * emptied slab for a second). A generous margin for a loaded machine. */
    uint64_t after = rss_bytes();
    for (uint64_t give_up = mag_now() + 15 * MAG_SEC;
         after >= before + SLACK && mag_now() < give_up; after = rss_bytes())
        mag_sleep(50 * MAG_MS);
    printf("rss before %llu MiB, after spawning %llu MiB, after the burst %llu MiB\n",
           (unsigned long long)(before >> 20), (unsigned long long)(peak >> 20),
           (unsigned long long)(after >> 20));
    /* The burst did take memory (else the test proves nothing): with one
     * worker nothing runs until this task sleeps. ... */
    if (arg)
        ASSERT_GT(peak, before + SLACK);
    /* ... and gave it back. */
    ASSERT_LT(after, before + SLACK);
    return 0;
}

int main(void)
{
    if (TEST_SANITIZED)
        TEST_SKIP("the sanitizers own the allocator and keep freed memory");
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 1; /* every record of the burst exists at once */
    test_run_cfg(&cfg, main_task, &cfg);
    atomic_store(&finished, 0);
    cfg.workers = test_workers(2); /* freed on several workers, stolen */
    test_run_cfg(&cfg, main_task, NULL);
    return 0;
}
