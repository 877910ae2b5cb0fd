/* Sleep accuracy; 100,000 tasks parked at once all complete; random timers
 * never fire early and all fire. */
#include "test/test.h"

#include <stdatomic.h>

static _Atomic long woke, early;

static int sleep_random(void *arg)
{
    uint64_t ns = (uint64_t)(uintptr_t)arg;
    uint64_t t0 = mag_now();
    if (mag_sleep(ns) != 0)
        return -1;
    if (mag_now() - t0 < ns)
        atomic_fetch_add(&early, 1);
    atomic_fetch_add(&woke, 1);
    return 0;
}

static int main_task(void *arg)
{
    /* Accuracy: median lateness of 1 ms sleeps. Generous bound: the test
     * runs on a loaded 2-core machine; the figure itself is printed. */
    uint64_t late[21];
    for (int i = 0; i < 21; i++) {
        uint64_t t0 = mag_now();
        ASSERT_EQ(mag_sleep(MAG_MS), 0);
        uint64_t d = mag_now() - t0;
        ASSERT_GE(d, MAG_MS);
        late[i] = d - MAG_MS;
    }
    for (int i = 0; i < 21; i++)
        for (int j = i + 1; j < 21; j++)
            if (late[j] < late[i]) {
                uint64_t x = late[i];
                late[i] = late[j];
                late[j] = x;
            }
    printf("1 ms sleep: median late %.1f us, max %.1f us\n", late[10] / 1e3, late[20] / 1e3);
    ASSERT_LT(late[10], 20 * MAG_MS);

    /* Many parked at once, with spread-out deadlines up to 200 ms (and a
     * few far ones that exercise the upper wheel levels). */
    long n = TEST_SCALE(100000);
    uint32_t seed = 12345;
    for (long i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        uint64_t ns = (uint64_t)(seed % 200000) * 1000;
        if (i % 1000 == 0)
            ns = (uint64_t)(seed % 3) * MAG_SEC + 300 * MAG_MS;
        mag_task_t *t = mag_spawn(sleep_random, (void *)(uintptr_t)ns);
        ASSERT_TRUE(t);
        mag_detach(t);
    }
    uint64_t t0 = mag_now();
    while (atomic_load(&woke) < n) {
        mag_sleep(10 * MAG_MS);
        ASSERT_LT(mag_now() - t0, 60 * MAG_SEC);
    }
    ASSERT_EQ(atomic_load(&early), 0);
    return 0;
}

int main(void)
{
    unsigned modes[] = {test_workers(2), 1};
    for (unsigned m = 0; m < 2; m++) {
        atomic_store(&woke, 0);
        test_run(modes[m], main_task, NULL);
    }
    return 0;
}
