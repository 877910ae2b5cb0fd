/* Process-pool timeouts: a hung job under a per-call timeout, and under the
 * pool's default (cfg.proc_timeout_ms), returns -ETIMEDOUT from a task and
 * from a plain thread (a blocking-pool job), its worker is killed and
 * replaced, and the pool keeps working; MAG_PROC_NO_TIMEOUT overrides the
 * default. A SIGSTOPped worker is found the same way: the one call it
 * captured times out, every other call succeeds, and the stopped worker is
 * gone afterwards. */
#include "test/test.h"

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/pidfd.h>
#include <unistd.h>

static int hang(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in, (void)n, (void)out, (void)out_len;
    sleep(60); /* far past every timeout below */
    return 0;
}

static int napper(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in, (void)n, (void)out, (void)out_len;
    usleep(200 * 1000);
    return 7;
}

static int whoami(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in, (void)n, (void)out, (void)out_len;
    return getpid();
}

static int echo(const void *in, size_t n, void **out, size_t *out_len)
{
    *out = malloc(n);
    memcpy(*out, in, n);
    *out_len = n;
    return 0;
}

static void echo_ok(const char *msg)
{
    void *out = NULL;
    size_t len = 0;
    mag_proc_opts_t none = {.timeout_ns = MAG_PROC_NO_TIMEOUT}; /* a loaded machine is slow */
    ASSERT_EQ(mag_proc_call_ex("echo", msg, strlen(msg), &out, &len, &none), 0);
    ASSERT_TRUE(len == strlen(msg) && memcmp(out, msg, len) == 0);
    free(out);
}

static uint64_t replaced(void)
{
    mag_pool_stats_t st;
    mag_pool_stats(mag_runtime_current(), &st);
    return st.proc_replaced;
}

static int hang_from_thread(void *arg)
{
    const mag_proc_opts_t *opts = arg;
    return mag_proc_call_ex("hang", NULL, 0, NULL, NULL, opts);
}

static int per_call(void *arg)
{
    (void)arg;
    mag_proc_opts_t opts = {.timeout_ns = 300 * MAG_MS};
    uint64_t r0 = replaced(), t0 = mag_now();
    ASSERT_EQ(mag_proc_call_ex("hang", NULL, 0, NULL, NULL, &opts), -ETIMEDOUT);
    ASSERT_GE(mag_now() - t0, 300 * MAG_MS);
    ASSERT_UEQ(replaced(), r0 + 1);
    echo_ok("after a timeout");
    /* From a plain thread: nothing else could interrupt its wait. */
    int status = 0;
    ASSERT_EQ(mag_run_blocking(hang_from_thread, &opts, &status), 0);
    ASSERT_EQ(status, -ETIMEDOUT);
    echo_ok("after a plain thread's timeout");
    /* A job within its timeout is not disturbed. */
    opts.timeout_ns = 5 * MAG_SEC;
    ASSERT_EQ(mag_proc_call_ex("napper", NULL, 0, NULL, NULL, &opts), 7);
    ASSERT_UEQ(replaced(), r0 + 2);
    return 0;
}

static int pool_default(void *arg)
{
    (void)arg;
    uint64_t r0 = replaced();
    ASSERT_EQ(mag_proc_call("hang", NULL, 0, NULL, NULL), -ETIMEDOUT);
    int status = 0;
    ASSERT_EQ(mag_run_blocking(hang_from_thread, NULL, &status), 0);
    ASSERT_EQ(status, -ETIMEDOUT);
    ASSERT_UEQ(replaced(), r0 + 2);
    /* Beyond the default of 100 ms, without a timeout. */
    mag_proc_opts_t none = {.timeout_ns = MAG_PROC_NO_TIMEOUT};
    ASSERT_EQ(mag_proc_call_ex("napper", NULL, 0, NULL, NULL, &none), 7);
    echo_ok("after the default timeout");
    return 0;
}

#define STOP_CALLERS 8

static _Atomic int stop_ok, stop_timedout;

static int stop_caller(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int r = 0; r < 5; r++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "stop %d %d", id, r);
        void *out = NULL;
        size_t len = 0;
        int rc = mag_proc_call("echo", msg, (size_t)n, &out, &len);
        if (rc == 0) {
            ASSERT_TRUE(len == (size_t)n && memcmp(out, msg, len) == 0);
            atomic_fetch_add(&stop_ok, 1);
        } else {
            ASSERT_EQ(rc, -ETIMEDOUT);
            atomic_fetch_add(&stop_timedout, 1);
        }
        free(out);
    }
    return 0;
}

static int stopped_worker(void *arg)
{
    (void)arg;
    int pid = mag_proc_call("whoami", NULL, 0, NULL, NULL);
    ASSERT_GT(pid, 0);
    int fd = pidfd_open(pid, 0);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(kill(pid, SIGSTOP), 0);
    uint64_t r0 = replaced();
    mag_group_t *g = mag_group_create(0);
    for (int i = 0; i < STOP_CALLERS; i++)
        ASSERT_GE(mag_group_spawn(g, stop_caller, (void *)(intptr_t)i), 0);
    ASSERT_EQ(mag_group_wait(g), 0);
    mag_group_destroy(g);
    /* The stopped worker held the one call it took (the idle list gives
     * the last released worker out first); it was killed and replaced. */
    ASSERT_EQ(atomic_load(&stop_timedout), 1);
    ASSERT_EQ(atomic_load(&stop_ok), 5 * STOP_CALLERS - 1);
    /* It dies: the kill is sent, its exit follows on the kernel's time. */
    uint64_t token = mag_deadline_push(mag_now() + 10 * MAG_SEC);
    ASSERT_GT(mag_poll(fd, POLLIN), 0);
    mag_deadline_pop(token);
    close(fd);
    ASSERT_UEQ(replaced(), r0 + (uint64_t)atomic_load(&stop_timedout));
    for (int i = 0; i < 20; i++)
        echo_ok("after a stopped worker");
    return 0;
}

int main(void)
{
    ASSERT_EQ(mag_proc_register("hang", hang), 0);
    ASSERT_EQ(mag_proc_register("napper", napper), 0);
    ASSERT_EQ(mag_proc_register("whoami", whoami), 0);
    ASSERT_EQ(mag_proc_register("echo", echo), 0);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.proc_workers = 2;
    for (unsigned workers = 1; workers <= 2; workers++) {
        cfg.workers = workers;
        cfg.proc_timeout_ms = 0;
        test_run_cfg(&cfg, per_call, NULL);
        cfg.proc_timeout_ms = 100;
        test_run_cfg(&cfg, pool_default, NULL);
        cfg.proc_timeout_ms = 1500; /* calls need microseconds: a wide margin */
        atomic_store(&stop_ok, 0);
        atomic_store(&stop_timedout, 0);
        test_run_cfg(&cfg, stopped_worker, NULL);
    }
    return 0;
}
