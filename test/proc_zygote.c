/* The zygote killed from outside: its workers die with it (their death
 * signal), calls then fail with -ECHILD instead of waiting forever, and
 * shutdown still reaps everything. */
#include "test/test.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static int echo(const void *in, size_t n, void **out, size_t *out_len)
{
    *out = malloc(n);
    memcpy(*out, in, n);
    *out_len = n;
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    ASSERT_EQ(mag_proc_call("echo", "a", 1, NULL, NULL), 0);
    mag_pool_stats_t st;
    mag_pool_stats(mag_runtime_current(), &st);
    ASSERT_GT(st.zygote_pid, 0);
    ASSERT_EQ(kill(st.zygote_pid, SIGKILL), 0);
    /* Calls fail while the pool loses its workers, then keep failing. */
    int rc = 0;
    for (int i = 0; i < 2000; i++) {
        rc = mag_proc_call("echo", "b", 1, NULL, NULL);
        ASSERT_TRUE(rc == 0 || rc == -ECHILD);
        mag_pool_stats(mag_runtime_current(), &st);
        if (st.proc_workers == 0)
            break;
        mag_sleep(5 * MAG_MS);
    }
    ASSERT_EQ(st.proc_workers, 0);
    ASSERT_EQ(mag_proc_call("echo", "c", 1, NULL, NULL), -ECHILD);
    return 0;
}

int main(void)
{
    ASSERT_EQ(mag_proc_register("echo", echo), 0);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    cfg.proc_workers = 2;
    test_run_cfg(&cfg, main_task, NULL);
    errno = 0;
    ASSERT_EQ(waitpid(-1, NULL, WNOHANG), -1); /* the zygote was reaped */
    ASSERT_EQ(errno, ECHILD);
    return 0;
}
