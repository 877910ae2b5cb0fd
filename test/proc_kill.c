/* 100 process-pool jobs from 100 tasks while 10 chosen at random have their
 * worker killed (SIGKILL) mid-job: exactly those fail with -ECHILD, every
 * other one returns its own result, and the healed pool then serves the
 * next 100 jobs. Jobs report their pid and wait for a go-ahead in memory
 * shared with the workers (mapped before the zygote is forked). */
#include "test/test.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#define JOBS 100
#define KILLS 10

typedef struct shared {
    _Atomic int pid[2 * JOBS];
    _Atomic int go[2 * JOBS];
} shared_t;

static shared_t *sh;

static int job(const void *in, size_t n, void **out, size_t *out_len)
{
    int k;
    if (n != sizeof k)
        return -EINVAL;
    memcpy(&k, in, sizeof k);
    atomic_store(&sh->pid[k], getpid());
    for (int i = 0; i < 120000 && !atomic_load(&sh->go[k]); i++)
        usleep(500); /* at most a minute */
    int *r = malloc(sizeof *r);
    *r = k * k;
    *out = r;
    *out_len = sizeof *r;
    return k;
}

static int result[2 * JOBS];

static int caller(void *arg)
{
    int k = (int)(intptr_t)arg;
    void *out = NULL;
    size_t len = 0;
    int rc = mag_proc_call("job", &k, sizeof k, &out, &len);
    if (rc >= 0) {
        if (rc != k || len != sizeof(int) || *(int *)out != k * k)
            TEST_FAIL("job %d: rc %d len %zu", k, rc, len);
        rc = 0;
    }
    free(out);
    result[k] = rc;
    return 0;
}

static int driver(void *arg)
{
    (void)arg;
    bool kill_it[JOBS] = {false};
    unsigned seed = (unsigned)mag_now();
    for (int n = 0; n < KILLS;) {
        int k = (int)(rand_r(&seed) % JOBS);
        if (!kill_it[k])
            kill_it[k] = true, n++;
    }
    mag_group_t *g = mag_group_create(0);
    for (int k = 0; k < JOBS; k++)
        ASSERT_GE(mag_group_spawn(g, caller, (void *)(intptr_t)k), 0);
    /* Release or kill each job once it runs. */
    bool handled[JOBS] = {false};
    int left = JOBS;
    uint64_t give_up = mag_now() + 120 * MAG_SEC;
    while (left && mag_now() < give_up) {
        for (int k = 0; k < JOBS; k++) {
            int pid = atomic_load(&sh->pid[k]);
            if (handled[k] || !pid)
                continue;
            handled[k] = true;
            left--;
            if (kill_it[k])
                ASSERT_EQ(kill(pid, SIGKILL), 0);
            else
                atomic_store(&sh->go[k], 1);
        }
        mag_sleep(MAG_MS);
    }
    ASSERT_EQ(left, 0);
    ASSERT_EQ(mag_group_wait(g), 0);
    mag_group_destroy(g);
    for (int k = 0; k < JOBS; k++)
        if (result[k] != (kill_it[k] ? -ECHILD : 0))
            TEST_FAIL("job %d: %d, want %d", k, result[k], kill_it[k] ? -ECHILD : 0);
    mag_pool_stats_t st;
    mag_pool_stats(mag_runtime_current(), &st);
    ASSERT_UEQ(st.proc_replaced, KILLS);

    /* The next 100 jobs all succeed. */
    for (int k = JOBS; k < 2 * JOBS; k++)
        atomic_store(&sh->go[k], 1);
    g = mag_group_create(0);
    for (int k = JOBS; k < 2 * JOBS; k++)
        ASSERT_GE(mag_group_spawn(g, caller, (void *)(intptr_t)k), 0);
    ASSERT_EQ(mag_group_wait(g), 0);
    mag_group_destroy(g);
    for (int k = JOBS; k < 2 * JOBS; k++)
        ASSERT_EQ(result[k], 0);
    mag_pool_stats(mag_runtime_current(), &st);
    ASSERT_EQ(st.proc_workers, 4);
    return 0;
}

static void run(unsigned workers)
{
    memset(sh, 0, sizeof *sh);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    cfg.proc_workers = 4;
    test_run_cfg(&cfg, driver, NULL);
}

int main(void)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(sh != MAP_FAILED);
    ASSERT_EQ(mag_proc_register("job", job), 0);
    run(test_workers(2));
    run(1);
    return 0;
}
