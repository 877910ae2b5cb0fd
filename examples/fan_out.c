/* fan_out: a batch of 100 jobs run concurrently, at most 10 at a time
 * (asyncio.Semaphore around gather). Every job is its own task; a semaphore
 * caps how many are inside at once; the results are gathered in order. */
#include <magpie.h>
#include <stdatomic.h>
#include <stdio.h>

#define JOBS 100
#define LIMIT 10

static mag_sem_t limit = MAG_SEM_INIT(LIMIT);
static _Atomic int inside, peak;

typedef struct job {
    int input;
    long result;
} job_t;

static int run_job(void *arg)
{
    job_t *j = arg;
    int rc = mag_sem_acquire(&limit);
    if (rc < 0)
        return rc;
    int now = atomic_fetch_add(&inside, 1) + 1, p = atomic_load(&peak);
    while (now > p && !atomic_compare_exchange_weak(&peak, &p, now))
        ;
    mag_sleep((uint64_t)(1 + j->input % 5) * MAG_MS); /* e.g. a request */
    j->result = (long)j->input * j->input;
    atomic_fetch_sub(&inside, 1);
    mag_sem_release(&limit);
    return 0;
}

static int app(void *arg)
{
    (void)arg;
    static job_t jobs[JOBS];
    mag_task_t *tasks[JOBS];
    uint64_t t0 = mag_now();
    for (int i = 0; i < JOBS; i++) {
        jobs[i].input = i;
        tasks[i] = mag_spawn(run_job, &jobs[i]);
    }
    long sum = 0;
    for (int i = 0; i < JOBS; i++) { /* gather, in order */
        int st;
        mag_join(tasks[i], &st);
        if (st < 0)
            return st;
        sum += jobs[i].result;
    }
    printf("%d jobs, at most %d at once (limit %d), sum of squares %ld, %.1f ms\n", JOBS,
           atomic_load(&peak), LIMIT, sum, (double)(mag_now() - t0) / MAG_MS);
    return atomic_load(&peak) <= LIMIT ? 0 : 1;
}

int main(void)
{
    int status = 1;
    if (mag_run(NULL, app, NULL, &status) < 0)
        return 1;
    return status;
}
