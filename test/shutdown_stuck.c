/* Shutdown that cannot finish says why, and one that waits on a process-pool
 * job does not hang. A process-pool job that hangs, called from a plain
 * thread (a detached blocking-pool job, and mag_run_blocking inside a task),
 * returns -ESHUTDOWN once shutdown begins, and mag_runtime_shutdown returns.
 * A task that ignores its cancellation (it retries on -ECANCELED) makes
 * mag_runtime_shutdown_timeout return -ETIMEDOUT, with the task named on
 * stderr (captured through a pipe); the runtime refuses new tasks, takes a
 * second timed call, and mag_runtime_shutdown finishes once the task lets
 * go. Each in loop mode and with worker threads. */
#include "test/test.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

static _Atomic int *hanging; /* shared with the workers: mapped before any pool */

static int hang(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in, (void)n, (void)out, (void)out_len;
    atomic_fetch_add(hanging, 1);
    sleep(60); /* no timeout: only the shutdown stops it */
    return 0;
}

static _Atomic int call_result[2];

static int call_hang(void *arg)
{
    int slot = (int)(intptr_t)arg;
    atomic_store(&call_result[slot], mag_proc_call("hang", NULL, 0, NULL, NULL));
    return 0;
}

static int run_blocking_task(void *arg)
{
    int status = -1;
    /* A task in mag_run_blocking waits for fn uninterruptibly. */
    ASSERT_EQ(mag_run_blocking(call_hang, arg, &status), 0);
    return 0;
}

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

static void plain_thread_hang(unsigned workers)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    cfg.proc_workers = 2;
    mag_runtime_t *rt;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    atomic_store(hanging, 0);
    atomic_store(&call_result[0], 1);
    atomic_store(&call_result[1], 1);
    mag_task_t *job = mag_runtime_spawn_blocking(rt, call_hang, (void *)(intptr_t)0);
    ASSERT_TRUE(job != NULL);
    mag_detach(job);
    int expect = 1;
    if (workers > 1) { /* tasks run without block_on */
        mag_task_t *t = mag_runtime_spawn(rt, run_blocking_task, (void *)(intptr_t)1);
        ASSERT_TRUE(t != NULL);
        mag_detach(t);
        expect = 2;
    }
    for (int i = 0; i < 20000 && atomic_load(hanging) < expect; i++)
        usleep(1000);
    ASSERT_EQ(atomic_load(hanging), expect);
    uint64_t t0 = mag_now();
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
    ASSERT_LT(mag_now() - t0, 30 * MAG_SEC); /* not the job's minute */
    ASSERT_EQ(atomic_load(&call_result[0]), -ESHUTDOWN);
    if (workers > 1)
        ASSERT_EQ(atomic_load(&call_result[1]), -ESHUTDOWN);
}

static _Atomic int release;

static int stubborn(void *arg)
{
    (void)arg;
    while (!atomic_load(&release)) {
        (void)mag_sleep(MAG_MS); /* -ECANCELED at once once cancelled: retried */
        (void)mag_yield();
    }
    return 0;
}

static int start_stubborn(void *arg)
{
    (void)arg;
    mag_spawn_opts_t opts = {.name = "stubborn-task"};
    mag_task_t *t;
    ASSERT_EQ(mag_spawn_ex(&t, stubborn, NULL, &opts), 0);
    mag_detach(t);
    return 0;
}

static void ignored_cancel(unsigned workers)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    mag_runtime_t *rt;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    atomic_store(&release, 0);
    ASSERT_EQ(mag_runtime_block_on(rt, start_stubborn, NULL, NULL), 0);

    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    ASSERT_EQ(fcntl(pipefd[0], F_SETFL, O_NONBLOCK), 0);
    fflush(stderr);
    int saved = dup(2);
    ASSERT_GE(saved, 0);
    ASSERT_EQ(dup2(pipefd[1], 2), 2);
    uint64_t t0 = mag_now();
    int rc1 = mag_runtime_shutdown_timeout(rt, 1500 * MAG_MS);
    uint64_t waited = mag_now() - t0;
    int rc2 = mag_runtime_shutdown_timeout(rt, 20 * MAG_MS); /* may be called again */
    mag_task_t *late = mag_runtime_spawn(rt, noop, NULL);
    fflush(stderr);
    ASSERT_EQ(dup2(saved, 2), 2);
    close(saved);
    close(pipefd[1]);
    static char text[65536];
    ssize_t n = read(pipefd[0], text, sizeof text - 1);
    close(pipefd[0]);
    text[n > 0 ? n : 0] = 0;
    fprintf(stderr, "captured:\n%s", text);
    ASSERT_EQ(rc1, -ETIMEDOUT);
    ASSERT_EQ(rc2, -ETIMEDOUT);
    ASSERT_GE(waited, 1500 * MAG_MS);
    ASSERT_TRUE(late == NULL); /* shutting down: spawns are refused */
    ASSERT_TRUE(strstr(text, "still running") != NULL);
    ASSERT_TRUE(strstr(text, "stubborn-task") != NULL);
    ASSERT_TRUE(strstr(text, "cancelled") != NULL);
    atomic_store(&release, 1);
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
}

int main(void)
{
    hanging =
        mmap(NULL, sizeof *hanging, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(hanging != MAP_FAILED);
    ASSERT_EQ(mag_proc_register("hang", hang), 0);
    plain_thread_hang(1);
    plain_thread_hang(test_workers(2));
    ignored_cancel(1);
    ignored_cancel(test_workers(2));
    return 0;
}
