/* A process-pool call whose caller is cancelled, or passes its deadline,
 * returns at once and has its worker killed (and replaced); a caller
 * cancelled while queued for a worker leaves the queue and harms nobody. */
#include "test/test.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct shared {
    _Atomic int pid[8];
} shared_t;
static shared_t *sh;

/* Reports its pid in slot in[0], then sleeps 60 s. */
static int sleeper(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)n, (void)out, (void)out_len;
    atomic_store(&sh->pid[*(const unsigned char *)in], getpid());
    sleep(60);
    return 0;
}

static int echo(const void *in, size_t n, void **out, size_t *out_len)
{
    *out = malloc(n);
    memcpy(*out, in, n);
    *out_len = n;
    return 0;
}

static int call_sleeper(void *arg)
{
    unsigned char slot = (unsigned char)(intptr_t)arg;
    return mag_proc_call("sleeper", &slot, 1, NULL, NULL);
}

static int call_echo(void *arg)
{
    (void)arg;
    void *out = NULL;
    size_t len = 0;
    int rc = mag_proc_call("echo", "hi", 2, &out, &len);
    if (rc == 0 && (len != 2 || memcmp(out, "hi", 2)))
        rc = -EBADMSG;
    free(out);
    return rc;
}

static bool gone(int pid)
{
    for (int i = 0; i < 2000; i++) { /* the zygote reaps it: allow 20 s */
        if (kill(pid, 0) < 0 && mag_errno() == ESRCH)
            return true;
        mag_sleep(10 * MAG_MS);
    }
    return false;
}

static int wait_pid(int slot)
{
    for (int i = 0; i < 6000 && !atomic_load(&sh->pid[slot]); i++)
        mag_sleep(10 * MAG_MS);
    return atomic_load(&sh->pid[slot]);
}

static int driver(void *arg)
{
    (void)arg;
    /* Cancelled mid-job: -ECANCELED fast, the worker dies. */
    mag_task_t *a = mag_spawn(call_sleeper, (void *)0);
    int pid = wait_pid(0);
    ASSERT_GT(pid, 0);
    uint64_t t0 = mag_now();
    mag_cancel(a);
    int st = 0;
    ASSERT_EQ(mag_join(a, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    ASSERT_LT(mag_now() - t0, 10 * MAG_SEC);
    ASSERT_TRUE(gone(pid));
    ASSERT_EQ(call_echo(NULL), 0); /* served by the replacement */

    /* Past its deadline mid-job: -ETIMEDOUT, the worker dies. */
    uint64_t tok = mag_deadline_push(mag_now() + 200 * MAG_MS);
    ASSERT_EQ(call_sleeper((void *)1), -ETIMEDOUT);
    mag_deadline_pop(tok);
    ASSERT_TRUE(gone(atomic_load(&sh->pid[1])));
    ASSERT_EQ(call_echo(NULL), 0);

    /* Cancelled while queued (the only worker is busy): leaves the queue. */
    mag_task_t *busy = mag_spawn(call_sleeper, (void *)2);
    pid = wait_pid(2);
    ASSERT_GT(pid, 0);
    mag_task_t *queued = mag_spawn(call_echo, NULL);
    mag_sleep(50 * MAG_MS);
    mag_cancel(queued);
    ASSERT_EQ(mag_join(queued, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    ASSERT_EQ(kill(pid, 0), 0); /* the busy worker was not touched */
    /* A queued caller is handed the worker as soon as it is free. */
    mag_task_t *next = mag_spawn(call_echo, NULL);
    mag_sleep(20 * MAG_MS);
    mag_cancel(busy);
    ASSERT_EQ(mag_join(busy, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    ASSERT_EQ(mag_join(next, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_TRUE(gone(pid));

    /* An already-cancelled caller sends nothing. */
    mag_pool_stats_t s0, s1;
    mag_pool_stats(mag_runtime_current(), &s0);
    mag_cancel(mag_self());
    ASSERT_EQ(call_echo(NULL), -ECANCELED);
    mag_pool_stats(mag_runtime_current(), &s1);
    ASSERT_UEQ(s1.proc_replaced, s0.proc_replaced);
    ASSERT_UEQ(s1.proc_replaced, 3);
    return 0;
}

static void run(unsigned workers)
{
    memset(sh, 0, sizeof *sh);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    cfg.proc_workers = 1;
    test_run_cfg(&cfg, driver, NULL);
}

int main(void)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(sh != MAP_FAILED);
    ASSERT_EQ(mag_proc_register("sleeper", sleeper), 0);
    ASSERT_EQ(mag_proc_register("echo", echo), 0);
    run(test_workers(2));
    run(1);
    return 0;
}
