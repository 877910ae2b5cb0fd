/* rt_backlog: a lasting backlog on one worker spreads to an idle one.
 *
 * Completions and timers that the scheduler itself makes runnable stay on
 * the worker that reaped them unless the batch is large (queue.c), so a
 * small set of tasks can all live on one worker. When they load it flat
 * out, the monitor must wake the idle worker to steal (monitor.c), or the
 * second core would never be used.
 *
 * Set-up, at 2 workers: a hog keeps one worker busy while the root, on the
 * other, spawns CHILDREN tasks (fewer than a shared batch), so the children
 * start there; they all sleep past the hog's end, so that the hog's worker
 * finds nothing to steal and parks. Then each child computes COMPUTE_NS and
 * sleeps SLEEP_NS, ROUNDS times: CHILDREN * COMPUTE_NS of work every
 * SLEEP_NS, more than one worker can do. Asserted: both workers ran a fair
 * part of the rounds (at least MIN_SHARE_PCT each); printed: the split. */
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "test/test.h"

#define CHILDREN 12
#define ROUNDS 40
#define COMPUTE_NS (300 * MAG_US)
#define SLEEP_NS (500 * MAG_US)
#define MIN_SHARE_PCT 10
/* The children's first wake-up, after the hog has ended. */
#define START_AFTER_NS (60 * MAG_MS)
#define HOG_ENDS_BEFORE_START_NS (30 * MAG_MS)

static uint64_t start_ns;          /* written by the root before it spawns */
static pid_t ran_on[CHILDREN][ROUNDS]; /* each child writes its own row */

/* The thread running the caller, asked of the kernel each time:
 * pthread_self() is a const function, whose result the compiler may keep
 * across a suspension, after which the task may run on another thread. */
static pid_t thread_now(void)
{
    return (pid_t)syscall(SYS_gettid);
}

static void compute(uint64_t ns)
{
    uint64_t until = mag_now() + ns;
    while (mag_now() < until)
        ;
}

static int hog(void *arg)
{
    (void)arg;
    compute(START_AFTER_NS - HOG_ENDS_BEFORE_START_NS);
    return 0;
}

static int child(void *arg)
{
    size_t id = (size_t)(uintptr_t)arg;
    uint64_t now = mag_now();
    if (now < start_ns)
        ASSERT_EQ(mag_sleep(start_ns - now), 0);
    for (int r = 0; r < ROUNDS; r++) {
        ran_on[id][r] = thread_now();
        compute(COMPUTE_NS);
        ASSERT_EQ(mag_sleep(SLEEP_NS), 0);
    }
    return 0;
}

static int root(void *arg)
{
    (void)arg;
    mag_task_t *h = mag_spawn(hog, NULL);
    ASSERT_PTR_NE(h, NULL);
    /* The hog runs next here; the root goes to the back, where the other
     * worker takes it (woken for it, or rescuing it from the hog). */
    ASSERT_EQ(mag_yield(), 0);
    start_ns = mag_now() + START_AFTER_NS - (10 * MAG_MS);
    mag_task_t *c[CHILDREN];
    for (size_t i = 0; i < CHILDREN; i++) {
        c[i] = mag_spawn(child, (void *)(uintptr_t)i);
        ASSERT_PTR_NE(c[i], NULL);
    }
    for (size_t i = 0; i < CHILDREN; i++)
        ASSERT_EQ(mag_join(c[i], NULL), 0);
    ASSERT_EQ(mag_join(h, NULL), 0);
    return 0;
}

int main(void)
{
    test_run(2, root, NULL);

    /* The two threads that ran rounds, and how many each. */
    pid_t first = ran_on[0][0], other = first;
    unsigned n_first = 0, n_other = 0;
    for (int i = 0; i < CHILDREN; i++)
        for (int r = 0; r < ROUNDS; r++) {
            if (ran_on[i][r] == first) {
                n_first++;
            } else {
                if (!n_other)
                    other = ran_on[i][r];
                ASSERT_EQ(ran_on[i][r], other); /* 2 workers */
                n_other++;
            }
        }
    unsigned total = n_first + n_other, least = n_first < n_other ? n_first : n_other;
    printf("rounds per worker: %u and %u of %u\n", n_first, n_other, total);
    ASSERT_EQ(total, CHILDREN * ROUNDS);
    ASSERT_GE(least * 100, total * MIN_SHARE_PCT);
    return 0;
}
