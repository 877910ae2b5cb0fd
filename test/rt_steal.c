/* Stealing happens: one task spawns 10,000 CPU-bound children and every
 * worker runs some of them. */
#include "test/test.h"

#include <pthread.h>
#include <stdatomic.h>

#define WORKERS 4
static _Atomic long per_thread[64];
static pthread_t threads[64];
static _Atomic int nthreads;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int slot_of_this_thread(void)
{
    pthread_t me = pthread_self();
    pthread_mutex_lock(&lock);
    int n = atomic_load(&nthreads);
    for (int i = 0; i < n; i++)
        if (pthread_equal(threads[i], me)) {
            pthread_mutex_unlock(&lock);
            return i;
        }
    threads[n] = me;
    atomic_store(&nthreads, n + 1);
    pthread_mutex_unlock(&lock);
    return n;
}

static int burn(void *arg)
{
    volatile unsigned long x = (unsigned long)(uintptr_t)arg;
    for (int i = 0; i < 20000; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    atomic_fetch_add(&per_thread[slot_of_this_thread()], 1);
    return (int)(x & 1);
}

static int main_task(void *arg)
{
    int n = TEST_SCALE(10000);
    mag_task_t **ts = calloc((size_t)n, sizeof *ts);
    for (int i = 0; i < n; i++)
        ts[i] = mag_spawn(burn, (void *)(uintptr_t)i);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(mag_join(ts[i], NULL), 0);
    free(ts);
    return 0;
}

int main(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = WORKERS;
    test_run_cfg(&cfg, main_task, NULL);
    long sum = 0;
    printf("tasks per worker thread:");
    for (int i = 0; i < atomic_load(&nthreads); i++) {
        printf(" %ld", atomic_load(&per_thread[i]));
        sum += atomic_load(&per_thread[i]);
    }
    printf("\n");
    ASSERT_EQ(sum, TEST_SCALE(10000));
    ASSERT_EQ(atomic_load(&nthreads), WORKERS);
    for (int i = 0; i < WORKERS; i++)
        ASSERT_GT(atomic_load(&per_thread[i]), 0);
    return 0;
}
