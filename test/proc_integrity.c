/* Process-pool replies belong to their job: a job that writes a forged reply
 * header on its worker's reply channel, one whose forked child writes one
 * later (while the worker may serve someone else, or idles), and one whose
 * forked child returns into the worker loop, never make another caller
 * receive output that is not its own. Many tasks call concurrently, each
 * checking its own result; the forgers' calls fail with -ECHILD, an honest
 * call may fail with -ECHILD only if its worker was written on by someone
 * else, and the pool heals. */
#include "test/test.h"

#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CALLERS 16
#define ROUNDS 12

/* The reply header as a worker writes it (procpool/internal.h): rc, magic,
 * length, sequence number. The forgers guess the number. */
typedef struct fake_rep {
    int32_t rc;
    uint32_t magic;
    uint64_t len;
    uint64_t seq;
} fake_rep_t;

static int reply_fd(void)
{
    for (int fd = 3; fd < 1024; fd++) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
            return fd; /* a worker holds one socket: its job channel */
    }
    return -1;
}

static void forge(int fd)
{
    static const char payload[8] = "FORGED!!";
    for (uint64_t seq = 0; seq < 4; seq++) {
        fake_rep_t r = {0, 0x6d61676a, sizeof payload, seq};
        if (write(fd, &r, sizeof r) != (ssize_t)sizeof r ||
            write(fd, payload, sizeof payload) != (ssize_t)sizeof payload)
            break;
    }
}

static int reply(const char *what, void **out, size_t *out_len)
{
    size_t n = strlen(what);
    *out = malloc(n);
    memcpy(*out, what, n);
    *out_len = n;
    return 0;
}

static int echo(const void *in, size_t n, void **out, size_t *out_len)
{
    *out = malloc(n);
    memcpy(*out, in, n);
    *out_len = n;
    return 0;
}

/* Writes forged replies to its own reply channel, then returns. */
static int forger(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in, (void)n;
    int fd = reply_fd();
    if (fd < 0)
        return -EBADF;
    forge(fd);
    return reply("forger", out, out_len);
}

/* A child writes forged replies a little later, when the worker may run
 * another caller's job or idle. */
static int late_forger(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in, (void)n;
    int fd = reply_fd();
    if (fd < 0)
        return -EBADF;
    pid_t pid = fork();
    if (pid == 0) {
        usleep(2000);
        forge(fd);
        _exit(0);
    }
    return reply("late", out, out_len);
}

/* The child returns from the function into the worker loop. */
static int fork_returner(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in, (void)n;
    pid_t pid = fork();
    if (pid == 0)
        return reply("child", out, out_len);
    if (pid > 0)
        waitpid(pid, NULL, 0); /* the child ran its course first */
    return reply("parent", out, out_len);
}

static _Atomic int honest_ok, honest_echild, forger_echild, returner_ok;

static int caller(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int r = 0; r < ROUNDS; r++) {
        void *out = NULL;
        size_t len = 0;
        int kind = (id + r) % 8;
        if (kind == 0) {
            int rc = mag_proc_call("forger", NULL, 0, &out, &len);
            ASSERT_EQ(rc, -ECHILD); /* the forged header came first */
            atomic_fetch_add(&forger_echild, 1);
        } else if (kind == 1) {
            int rc = mag_proc_call("late_forger", NULL, 0, &out, &len);
            ASSERT_TRUE(rc == 0 || rc == -ECHILD);
            if (rc == 0)
                ASSERT_TRUE(len == 4 && memcmp(out, "late", 4) == 0);
        } else if (kind == 2) {
            int rc = mag_proc_call("fork_returner", NULL, 0, &out, &len);
            ASSERT_TRUE(rc == 0 || rc == -ECHILD);
            if (rc == 0) {
                ASSERT_TRUE(len == 6 && memcmp(out, "parent", 6) == 0);
                atomic_fetch_add(&returner_ok, 1);
            }
        } else {
            char msg[32];
            int n = snprintf(msg, sizeof msg, "caller %d round %d", id, r);
            int rc = mag_proc_call("echo", msg, (size_t)n, &out, &len);
            ASSERT_TRUE(rc == 0 || rc == -ECHILD);
            if (rc == 0) {
                if (len != (size_t)n || memcmp(out, msg, len) != 0)
                    TEST_FAIL("caller %d round %d got %zu bytes '%.*s'", id, r, len, (int)len,
                              (char *)out);
                atomic_fetch_add(&honest_ok, 1);
            } else {
                atomic_fetch_add(&honest_echild, 1);
            }
        }
        free(out);
    }
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    mag_group_t *g = mag_group_create(0);
    ASSERT_TRUE(g != NULL);
    for (int i = 0; i < CALLERS; i++)
        ASSERT_GE(mag_group_spawn(g, caller, (void *)(intptr_t)i), 0);
    ASSERT_EQ(mag_group_wait(g), 0);
    mag_group_destroy(g);
    ASSERT_GT(atomic_load(&forger_echild), 0);
    ASSERT_GT(atomic_load(&returner_ok), 0);
    /* Most honest calls met no stray bytes. */
    ASSERT_GT(atomic_load(&honest_ok), atomic_load(&honest_echild));
    /* The pool healed: every worker answers honestly again. */
    usleep(20000); /* the last late forgers' children have written */
    for (int i = 0; i < 50; i++) {
        void *out = NULL;
        size_t len = 0;
        int rc = mag_proc_call("echo", "after", 5, &out, &len);
        if (rc == -ECHILD && i < 8)
            continue; /* a worker written on while idle, found now */
        ASSERT_EQ(rc, 0);
        ASSERT_TRUE(len == 5 && memcmp(out, "after", 5) == 0);
        free(out);
    }
    mag_pool_stats_t st;
    mag_pool_stats(mag_runtime_current(), &st);
    ASSERT_EQ(st.proc_workers, 3);
    ASSERT_GE(st.proc_replaced, (uint64_t)atomic_load(&forger_echild));
    return 0;
}

static void run(unsigned workers)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    cfg.proc_workers = 3;
    test_run_cfg(&cfg, main_task, NULL);
}

int main(void)
{
    ASSERT_EQ(mag_proc_register("echo", echo), 0);
    ASSERT_EQ(mag_proc_register("forger", forger), 0);
    ASSERT_EQ(mag_proc_register("late_forger", late_forger), 0);
    ASSERT_EQ(mag_proc_register("fork_returner", fork_returner), 0);
    run(test_workers(2));
    atomic_store(&honest_ok, 0);
    atomic_store(&honest_echild, 0);
    atomic_store(&forger_echild, 0);
    atomic_store(&returner_ok, 0);
    run(1);
    return 0;
}
