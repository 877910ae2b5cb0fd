/* The zygote killed from outside: its workers die with it (their death
 * signal), the spare zygote takes its place, and the next 100 calls all
 * succeed on new workers; a second kill is survived the same way (the
 * promoted zygote forked the next spare). Shutdown still reaps everything. */
#include "test/test.h"

#include <poll.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define NWORKERS 2

static int whoami(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in, (void)n;
    usleep(100 * 1000); /* hold this worker so that concurrent calls spread */
    int *p = malloc(2 * sizeof(int));
    p[0] = getpid();
    p[1] = getppid();
    *out = p;
    *out_len = 2 * sizeof(int);
    return 0;
}

static int echo(const void *in, size_t n, void **out, size_t *out_len)
{
    *out = malloc(n);
    memcpy(*out, in, n);
    *out_len = n;
    return 0;
}

static int ask(void *arg)
{
    int *pid = arg;
    void *out = NULL;
    size_t len = 0;
    int rc = mag_proc_call("whoami", NULL, 0, &out, &len);
    if (rc == 0) {
        pid[0] = ((int *)out)[0];
        pid[1] = ((int *)out)[1];
    }
    free(out);
    return rc;
}

/* Every worker's pid (one call per worker at once), checking their parent. */
static void worker_pids(int pids[NWORKERS], int zygote)
{
    int got[NWORKERS][2];
    mag_task_t *t[NWORKERS];
    for (int i = 0; i < NWORKERS; i++)
        ASSERT_TRUE((t[i] = mag_spawn(ask, got[i])) != NULL);
    for (int i = 0; i < NWORKERS; i++) {
        int st = -1;
        ASSERT_EQ(mag_join(t[i], &st), 0);
        ASSERT_EQ(st, 0);
        ASSERT_EQ(got[i][1], zygote);
        pids[i] = got[i][0];
    }
}

static void kill_zygote_and_recover(void)
{
    mag_pool_stats_t st;
    mag_pool_stats(mag_runtime_current(), &st);
    int zygote = st.zygote_pid;
    ASSERT_GT(zygote, 0);
    int pids[NWORKERS], fds[NWORKERS];
    worker_pids(pids, zygote);
    for (int i = 0; i < NWORKERS; i++)
        ASSERT_GE(fds[i] = pidfd_open(pids[i], 0), 0);
    ASSERT_EQ(kill(zygote, SIGKILL), 0);
    /* Its workers die with it (a generous bound for a loaded machine). */
    for (int i = 0; i < NWORKERS; i++) {
        struct pollfd pf = {.fd = fds[i], .events = POLLIN};
        ASSERT_EQ(poll(&pf, 1, 20000), 1);
        close(fds[i]);
    }
    /* Now every call succeeds: the dead idle workers are replaced by the
     * promoted spare's. */
    for (int i = 0; i < 100; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof msg, "call %d", i);
        void *out = NULL;
        size_t len = 0;
        ASSERT_EQ(mag_proc_call("echo", msg, (size_t)n, &out, &len), 0);
        ASSERT_UEQ(len, (size_t)n);
        ASSERT_TRUE(memcmp(out, msg, len) == 0);
        free(out);
    }
    mag_pool_stats(mag_runtime_current(), &st);
    ASSERT_NE(st.zygote_pid, zygote);
    ASSERT_GT(st.zygote_pid, 0);
    ASSERT_EQ(st.proc_workers, NWORKERS);
    int fresh[NWORKERS];
    worker_pids(fresh, st.zygote_pid); /* the new zygote's children */
}

static int main_task(void *arg)
{
    (void)arg;
    ASSERT_EQ(mag_proc_call("echo", "a", 1, NULL, NULL), 0);
    kill_zygote_and_recover();
    kill_zygote_and_recover(); /* the promoted zygote forked a new spare */
    return 0;
}

int main(void)
{
    ASSERT_EQ(mag_proc_register("echo", echo), 0);
    ASSERT_EQ(mag_proc_register("whoami", whoami), 0);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    cfg.proc_workers = NWORKERS;
    test_run_cfg(&cfg, main_task, NULL);
    errno = 0;
    ASSERT_EQ(waitpid(-1, NULL, WNOHANG), -1); /* the first zygote was reaped */
    ASSERT_EQ(errno, ECHILD);
    return 0;
}
