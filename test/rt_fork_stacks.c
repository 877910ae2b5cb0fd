/* Stacks and fork: freed stacks beyond the resident ones give their pages
 * back on a thread of their own (runtime/stack_pages.c). A process that
 * forks after that thread has started (here after a runtime's shutdown, as
 * a program that runs a runtime and then a subprocess would) must leave the
 * child free to run a runtime of its own and free as many stacks: no lock
 * inherited held, no condition variable that still counts the parent's
 * thread as a waiter. The child's runtime is watched by an alarm, so that a
 * hang fails the test. */
#include "test/test.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#define TASKS 3000 /* well past the 1,024 free stacks kept resident */

static _Atomic int parked;

static int sleeper(void *arg)
{
    (void)arg;
    atomic_fetch_add(&parked, 1);
    return mag_sleep(20 * MAG_MS);
}

/* TASKS tasks alive at once, so TASKS stacks, then all freed. */
static int burst(void *arg)
{
    (void)arg;
    static mag_task_t *t[TASKS];
    atomic_store(&parked, 0);
    for (int i = 0; i < TASKS; i++)
        ASSERT_TRUE((t[i] = mag_spawn(sleeper, NULL)) != NULL);
    for (int i = 0; i < TASKS; i++) {
        int st = -1;
        ASSERT_EQ(mag_join(t[i], &st), 0);
        ASSERT_EQ(st, 0);
    }
    return 0;
}

static int job(void *arg)
{
    (void)arg;
    return 42;
}

static void rounds(int n)
{
    for (int i = 0; i < n; i++)
        test_run(2, burst, NULL);
}

int main(void)
{
    rounds(2);
    usleep(100 * 1000); /* the returner is idle, waiting for the next batch */
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        alarm(60);
        rounds(3);
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        TEST_FAIL("the child was killed by signal %d (a hang, if SIGALRM)", WTERMSIG(status));
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);

    /* Loop mode: a blocking job finishes on a pool thread, without the
     * loop, so the loop's own thread may join it outside block_on. */
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 1;
    mag_runtime_t *rt;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    int st = -1;
    ASSERT_EQ(mag_runtime_block_on(rt, job, NULL, &st), 0);
    mag_task_t *b = mag_runtime_spawn_blocking(rt, job, NULL);
    ASSERT_TRUE(b != NULL);
    st = -1;
    ASSERT_EQ(mag_join(b, &st), 0);
    ASSERT_EQ(st, 42);
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
    return 0;
}
