/* The blocking pool grows on demand to max_blocking_threads, queues beyond
 * the cap, reuses idle threads, and shrinks to nothing after the keep-alive. */
#include "test/test.h"

#include <stdatomic.h>
#include <unistd.h>

#define CAP 8
#define JOBS 20

static _Atomic int running, finished, gate;

static int gated(void *arg)
{
    (void)arg;
    atomic_fetch_add(&running, 1);
    while (!atomic_load(&gate))
        usleep(1000);
    atomic_fetch_sub(&running, 1);
    atomic_fetch_add(&finished, 1);
    return 0;
}

static int nop(void *arg)
{
    return (int)(intptr_t)arg;
}

static mag_pool_stats_t stats(void)
{
    mag_pool_stats_t st;
    mag_pool_stats(mag_runtime_current(), &st);
    return st;
}

static int main_task(void *arg)
{
    (void)arg;
    mag_task_t *ts[JOBS];
    for (int i = 0; i < JOBS; i++)
        ASSERT_TRUE((ts[i] = mag_spawn_blocking(gated, NULL)) != NULL);
    for (int i = 0; i < 10000 && atomic_load(&running) < CAP; i++)
        mag_sleep(MAG_MS);
    ASSERT_EQ(atomic_load(&running), CAP);
    mag_sleep(50 * MAG_MS); /* nothing beyond the cap starts meanwhile */
    ASSERT_EQ(atomic_load(&running), CAP);
    mag_pool_stats_t st = stats();
    ASSERT_EQ(st.blocking_threads, CAP);
    ASSERT_EQ(st.blocking_peak, CAP);
    ASSERT_EQ(st.blocking_queued, JOBS - CAP);
    atomic_store(&gate, 1);
    for (int i = 0; i < JOBS; i++)
        ASSERT_EQ(mag_join(ts[i], NULL), 0);
    ASSERT_EQ(atomic_load(&finished), JOBS);
    ASSERT_EQ(stats().blocking_peak, CAP);

    /* Idle threads leave after the keep-alive (100 ms; allow 20 s). */
    for (int i = 0; i < 2000 && stats().blocking_threads > 0; i++)
        mag_sleep(10 * MAG_MS);
    st = stats();
    ASSERT_EQ(st.blocking_threads, 0);
    ASSERT_EQ(st.blocking_idle, 0);

    /* Sequential jobs reuse one idle thread. */
    for (int i = 0; i < 200; i++) {
        int s = -1;
        ASSERT_EQ(mag_run_blocking(nop, (void *)(intptr_t)i, &s), 0);
        ASSERT_EQ(s, i);
    }
    st = stats();
    ASSERT_LE(st.blocking_threads, 2);
    ASSERT_GE(st.blocking_threads, 1);
    ASSERT_UEQ(st.blocking_jobs, JOBS + 200);
    for (int i = 0; i < 2000 && stats().blocking_threads > 0; i++)
        mag_sleep(10 * MAG_MS);
    ASSERT_EQ(stats().blocking_threads, 0);
    return 0;
}

int main(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    cfg.max_blocking_threads = CAP;
    cfg.blocking_keepalive_ms = 100;
    test_run_cfg(&cfg, main_task, NULL);
    return 0;
}
