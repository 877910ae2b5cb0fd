/* Process pool basics: round trips of every size, the function's own result,
 * crashes (abort, segfault, _exit) give -ECHILD and are replaced, calls from
 * a blocking-pool thread, and bad inputs (unknown name, NULL fn, register
 * after start, no pool, no runtime). */
#include "test/test.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

static int echo(const void *in, size_t n, void **out, size_t *out_len)
{
    if (!n)
        return 0;
    *out = malloc(n);
    if (!*out)
        return -ENOMEM;
    memcpy(*out, in, n);
    *out_len = n;
    return 0;
}

static int fail(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in, (void)n, (void)out_len;
    *out = malloc(16); /* dropped by the worker: an error carries no output */
    return -EIO;
}

static int positive(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in, (void)out, (void)out_len;
    return (int)n + 1000;
}

static int crash(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)n, (void)out, (void)out_len;
    switch (*(const char *)in) {
    case 'a':
        abort();
    case 's':
        raise(SIGSEGV);
        break;
    case 'k':
        raise(SIGKILL);
        break;
    default:
        _exit(3);
    }
    return 0;
}

static int pids(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in, (void)n;
    int *p = malloc(2 * sizeof(int));
    p[0] = getpid();
    p[1] = getppid();
    *out = p;
    *out_len = 2 * sizeof(int);
    return 0;
}

static void fill(unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed + i * 131 + (i >> 9));
}

static int from_pool_thread(void *arg)
{
    (void)arg;
    void *out = NULL;
    size_t len = 0;
    int rc = mag_proc_call("echo", "thread", 6, &out, &len);
    if (rc == 0 && (len != 6 || memcmp(out, "thread", 6)))
        rc = -EBADMSG;
    free(out);
    return rc;
}

static int main_task(void *arg)
{
    (void)arg;
    static const size_t sizes[] = {0, 1, 15, 16, 17, 4096, 8175, 8176, 8192, 65536, 1000003};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *in = malloc(n + 1);
        fill(in, n, (unsigned)i);
        void *out = (void *)1;
        size_t len = 99;
        ASSERT_EQ(mag_proc_call("echo", n ? in : NULL, n, &out, &len), 0);
        ASSERT_UEQ(len, n);
        ASSERT_TRUE(n ? memcmp(out, in, n) == 0 : out == NULL);
        free(out);
        free(in);
    }
    /* A call that fails writes none of its outputs. */
    char mine;
    void *out = &mine;
    size_t len = 77;
    ASSERT_EQ(mag_proc_call("fail", "x", 1, &out, &len), -EIO);
    ASSERT_TRUE(out == &mine && len == 77);
    ASSERT_EQ(mag_proc_call("no-such-function", "x", 1, &out, &len), -ENOENT);
    ASSERT_TRUE(out == &mine && len == 77);
    ASSERT_EQ(mag_proc_call("positive", "abc", 3, NULL, NULL), 1003);
    ASSERT_EQ(mag_proc_call("echo", "abc", 3, NULL, NULL), 0); /* output discarded */

    /* Crashes fail only their own call; the pool heals. */
    mag_pool_stats_t st;
    mag_pool_stats(mag_runtime_current(), &st);
    uint64_t replaced0 = st.proc_replaced;
    const char *kinds = "ask_";
    for (int i = 0; kinds[i]; i++) {
        ASSERT_EQ(mag_proc_call("crash", &kinds[i], 1, &out, &len), -ECHILD);
        ASSERT_EQ(mag_proc_call("echo", "ok", 2, &out, &len), 0);
        ASSERT_TRUE(len == 2 && !memcmp(out, "ok", 2));
        free(out);
    }
    mag_pool_stats(mag_runtime_current(), &st);
    ASSERT_UEQ(st.proc_replaced - replaced0, 4);
    for (int i = 0; i < 200; i++) { /* replacements come back */
        mag_pool_stats(mag_runtime_current(), &st);
        if (st.proc_idle == 2)
            break;
        mag_sleep(10 * MAG_MS);
    }
    ASSERT_EQ(st.proc_workers, 2);
    ASSERT_EQ(st.proc_idle, 2);

    /* Workers are the zygote's children, the zygote is ours. */
    ASSERT_EQ(mag_proc_call("pids", NULL, 0, &out, &len), 0);
    ASSERT_EQ(((int *)out)[1], st.zygote_pid);
    ASSERT_NE(((int *)out)[0], getpid());
    free(out);

    /* A blocking-pool thread may call too (it blocks). */
    int status = -1;
    ASSERT_EQ(mag_run_blocking(from_pool_thread, NULL, &status), 0);
    ASSERT_EQ(status, 0);

    /* Bad inputs. */
    ASSERT_EQ(mag_proc_call("nope", "x", 1, &out, &len), -ENOENT);
    ASSERT_EQ(mag_proc_call(NULL, "x", 1, &out, &len), -EINVAL);
    ASSERT_EQ(mag_proc_call("echo", NULL, 1, &out, &len), -EINVAL);
    ASSERT_EQ(mag_proc_call("echo", "x", 1, &out, NULL), -EINVAL);
    ASSERT_EQ(mag_proc_call("echo", "x", (size_t)MAG_PROC_MAX_PAYLOAD + 1, &out, &len),
              -EMSGSIZE);
    ASSERT_EQ(mag_proc_register("late", echo), -EBUSY);
    return 0;
}

static int no_pool(void *arg)
{
    (void)arg;
    return mag_proc_call("echo", "x", 1, NULL, NULL);
}

static void run(unsigned workers)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    cfg.proc_workers = 2;
    test_run_cfg(&cfg, main_task, NULL);
    cfg.proc_workers = 0;
    int status = -1; /* no_pool returns the call's -ENXIO */
    ASSERT_EQ(mag_run(&cfg, no_pool, NULL, &status), 0);
    ASSERT_EQ(status, -ENXIO);
}

int main(void)
{
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core); /* the crashes below dump no core */
    ASSERT_EQ(mag_proc_register(NULL, echo), -EINVAL);
    ASSERT_EQ(mag_proc_register("", echo), -EINVAL);
    ASSERT_EQ(mag_proc_register("echo", NULL), -EINVAL);
    char big[MAG_PROC_NAME_MAX + 2];
    memset(big, 'n', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ASSERT_EQ(mag_proc_register(big, echo), -ENAMETOOLONG);
    ASSERT_EQ(mag_proc_register("echo", echo), 0);
    ASSERT_EQ(mag_proc_register("echo", echo), -EEXIST);
    ASSERT_EQ(mag_proc_register("fail", fail), 0);
    ASSERT_EQ(mag_proc_register("positive", positive), 0);
    ASSERT_EQ(mag_proc_register("crash", crash), 0);
    ASSERT_EQ(mag_proc_register("pids", pids), 0);
    ASSERT_EQ(mag_proc_call("echo", "x", 1, NULL, NULL), -EPERM); /* no runtime */
    run(test_workers(4));
    run(1);
    return 0;
}
