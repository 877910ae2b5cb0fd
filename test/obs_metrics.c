/*
 * obs_metrics - mag_metrics adds up: tasks spawned = tasks completed once
 * everything is joined, per-worker counters sum to the totals, steals show
 * up when one task spawns everything on four workers, timers are counted,
 * and busy + parked time fits in the uptime. Loop mode too.
 */
#include "test.h"

#include <errno.h>
#include <unistd.h>

#define TASKS 2000

static void spin_us(uint64_t us)
{
    uint64_t end = mag_now() + us * MAG_US;
    while (mag_now() < end)
        ;
}

static int small_job(void *arg)
{
    (void)arg;
    spin_us(20);
    mag_yield();
    spin_us(20);
    return 7;
}

static int small_job_blocking(void *arg)
{
    (void)arg;
    usleep(100);
    return 0;
}

static int long_sleep(void *arg)
{
    (void)arg;
    return mag_sleep(60 * MAG_SEC);
}

static void check_sums(const mag_metrics_t *m)
{
    mag_worker_metrics_t s;
    memset(&s, 0, sizeof s);
    for (unsigned i = 0; i < m->nworkers; i++) {
        const mag_worker_metrics_t *w = &m->workers[i];
        s.polls += w->polls;
        s.steals += w->steals;
        s.stolen_tasks += w->stolen_tasks;
        s.steal_attempts += w->steal_attempts;
        s.io_submitted += w->io_submitted;
        s.timers += w->timers;
        ASSERT_TRUE(w->steals <= w->steal_attempts);
        ASSERT_TRUE(w->stolen_tasks >= w->steals);
        ASSERT_TRUE(w->parked_ns <= m->uptime_ns + MAG_MS);
        ASSERT_TRUE(w->busy_ns <= m->uptime_ns);
    }
    ASSERT_UEQ(s.polls, m->total.polls);
    ASSERT_UEQ(s.steals, m->total.steals);
    ASSERT_UEQ(s.stolen_tasks, m->total.stolen_tasks);
    ASSERT_UEQ(s.steal_attempts, m->total.steal_attempts);
    ASSERT_UEQ(s.io_submitted, m->total.io_submitted);
    ASSERT_UEQ(s.timers, m->total.timers);
}

static int spawner(void *arg)
{
    mag_runtime_t *rt = arg;
    static mag_task_t *h[TASKS];
    /* One task spawns everything: other workers get work only by stealing
     * (or from the inject queue when the local queue overflows). Repeat a
     * few rounds if a loaded machine kept the other workers from running. */
    uint64_t steals = 0;
    for (int round = 0; round < 20 && !steals; round++) {
        for (int i = 0; i < TASKS; i++) {
            h[i] = mag_spawn(small_job, NULL);
            ASSERT_TRUE(h[i] != NULL);
        }
        for (int i = 0; i < TASKS; i++) {
            int st = 0;
            ASSERT_EQ(mag_join(h[i], &st), 0);
            ASSERT_EQ(st, 7);
        }
        mag_metrics_t m;
        ASSERT_EQ(mag_metrics(rt, &m), 0);
        steals = m.total.steals;
        mag_metrics_free(&m);
    }
    ASSERT_GT(steals, 0);

    /* A timer shows up on some wheel while its task sleeps. */
    mag_task_t *sl = mag_spawn(long_sleep, NULL);
    mag_metrics_t m;
    uint64_t timers = 0;
    for (int i = 0; i < 2000 && !timers; i++) {
        mag_sleep(MAG_MS);
        ASSERT_EQ(mag_metrics(NULL, &m), 0); /* NULL: the calling task's runtime */
        timers = m.total.timers;
        check_sums(&m);
        /* This task and the sleeper; live drops a moment after a join
         * returns, completed before. */
        ASSERT_UEQ(m.spawned - m.completed, 2);
        ASSERT_TRUE(m.live_tasks >= 2 && m.live_tasks <= 3);
        mag_metrics_free(&m);
    }
    ASSERT_GT(timers, 0);
    /* The blocking pool reports through mag_metrics too. */
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(mag_run_blocking(small_job_blocking, NULL, NULL), 0);
    ASSERT_EQ(mag_metrics(rt, &m), 0);
    ASSERT_GE(m.blocking.threads, 1);
    ASSERT_GE(m.blocking.jobs, 3);
    ASSERT_TRUE(m.blocking.busy <= m.blocking.threads);
    mag_metrics_free(&m);

    mag_cancel(sl);
    int st = 0;
    ASSERT_EQ(mag_join(sl, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    return 0;
}

static void run_multi(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 4;
    mag_runtime_t *rt;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    int st = -1;
    ASSERT_EQ(mag_runtime_block_on(rt, spawner, rt, &st), 0);
    ASSERT_EQ(st, 0);

    /* Everything was joined, block_on's task included: spawned = completed
     * at once, and live reaches 0 as the last task finishes returning. */
    mag_metrics_t m;
    ASSERT_EQ(mag_metrics(rt, &m), 0);
    ASSERT_UEQ(m.spawned, m.completed);
    for (int i = 0; i < 5000 && m.live_tasks; i++) {
        mag_metrics_free(&m);
        usleep(1000);
        ASSERT_EQ(mag_metrics(rt, &m), 0);
    }
    ASSERT_EQ(m.nworkers, 4);
    ASSERT_UEQ(m.live_tasks, 0);
    ASSERT_UEQ(m.spawned, m.completed);
    ASSERT_GE(m.spawned, TASKS + 2);
    ASSERT_GE(m.total.polls, m.spawned);
    ASSERT_GT(m.total.stolen_tasks, 0);
    ASSERT_GT(m.uptime_ns, 0);
    ASSERT_UEQ(m.inject_depth, 0);
    check_sums(&m);
    unsigned ran = 0;
    for (unsigned i = 0; i < m.nworkers; i++)
        ran += m.workers[i].polls > 0;
    ASSERT_GE(ran, 2);
    printf("spawned %" PRIu64 " completed %" PRIu64 " polls %" PRIu64 " steals %" PRIu64
           " (%" PRIu64 " tasks) parks %" PRIu64 " io %" PRIu64 "/%" PRIu64 "\n",
           m.spawned, m.completed, m.total.polls, m.total.steals, m.total.stolen_tasks,
           m.total.parks, m.total.io_submitted, m.total.io_completed);
    mag_metrics_free(&m);
    ASSERT_TRUE(m.workers == NULL);
    mag_metrics_free(&m); /* twice is fine */
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
}

static int loop_main(void *arg)
{
    (void)arg;
    mag_task_t *h[100];
    for (int i = 0; i < 100; i++)
        h[i] = mag_spawn(small_job, NULL);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(mag_join(h[i], NULL), 0);
    mag_metrics_t m;
    ASSERT_EQ(mag_metrics(NULL, &m), 0);
    ASSERT_EQ(m.nworkers, 1);
    ASSERT_UEQ(m.spawned - m.completed, 1);
    ASSERT_UEQ(m.total.steals, 0);
    ASSERT_GE(m.total.polls, 201); /* each job runs twice (it yields once) */
    mag_metrics_free(&m);
    return 0;
}

int main(void)
{
    mag_metrics_t m;
    ASSERT_EQ(mag_metrics(NULL, &m), -EINVAL); /* no runtime here */
    ASSERT_EQ(mag_metrics(NULL, NULL), -EINVAL);
    ASSERT_EQ(mag_dump_tasks(NULL, stdout), -EINVAL);
    run_multi();
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 1;
    int st = -1;
    ASSERT_EQ(mag_run(&cfg, loop_main, NULL, &st), 0);
    ASSERT_EQ(st, 0);
    return 0;
}
