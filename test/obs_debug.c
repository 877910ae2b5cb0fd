/*
 * obs_debug - debug mode: a task spinning for 300 ms triggers exactly one
 * slow-task warning naming it (and one that yields every 5 ms none); tasks
 * never joined nor detached are listed at shutdown; joining or detaching a
 * stale handle is reported; SIGQUIT prints a task dump and the process keeps
 * running. Each case runs in a child process whose stderr is captured.
 */
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void spin_ms(uint64_t ms)
{
    uint64_t end = mag_now() + ms * MAG_MS;
    while (mag_now() < end)
        ;
}

static int spinner(void *arg)
{
    (void)arg;
    spin_ms(300);
    return 0;
}

static int polite(void *arg)
{
    (void)arg;
    /* 300 ms too, in 5 ms runs: far below slow_task_ms even when a loaded
     * machine takes the core away for a while in the middle of one. */
    for (int i = 0; i < 60; i++) {
        spin_ms(5);
        mag_yield();
    }
    return 0;
}

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static void run_debug(mag_fn fn, unsigned workers)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    cfg.debug = true;
    cfg.slow_task_ms = 100;
    int st = -1;
    ASSERT_EQ(mag_run(&cfg, fn, NULL, &st), 0);
    ASSERT_EQ(st, 0);
}

/* ---- the cases (each runs in a child) --------------------------------------- */

static int slow_main(void *arg)
{
    (void)arg;
    mag_task_t *a = test_spawn_named("polite", polite);
    ASSERT_EQ(mag_join(a, NULL), 0);
    mag_task_t *b = test_spawn_named("spinner", spinner);
    ASSERT_EQ(mag_join(b, NULL), 0);
    return 0;
}

static void case_slow(void)
{
    run_debug(slow_main, 2);
}

static int leak_main(void *arg)
{
    (void)arg;
    test_spawn_named("forgotten", nothing); /* never joined nor detached */
    mag_detach(test_spawn_named("detached", nothing));
    ASSERT_EQ(mag_join(test_spawn_named("joined", nothing), NULL), 0);
    return 0;
}

static void case_leak(void)
{
    run_debug(leak_main, 2);
}

static int stale_main(void *arg)
{
    (void)arg;
    mag_task_t *t = test_spawn_named("once", nothing);
    ASSERT_EQ(mag_join(t, NULL), 0);
    /* Joined already: the handle is stale. */
    ASSERT_EQ(mag_join(t, NULL), -ESRCH);
    mag_detach(t);
    return 0;
}

static void case_stale(void)
{
    run_debug(stale_main, 1);
}

static void case_stale_quiet(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 1;
    cfg.debug = false;
    int st = -1;
    ASSERT_EQ(mag_run(&cfg, stale_main, NULL, &st), 0);
    ASSERT_EQ(st, 0);
}

static mag_mutex_t mu;

static int blocked(void *arg)
{
    (void)arg;
    int rc = mag_mutex_lock(&mu);
    if (rc == 0)
        mag_mutex_unlock(&mu);
    return rc;
}

static int sigquit_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(mag_mutex_init(&mu), 0);
    ASSERT_EQ(mag_mutex_lock(&mu), 0);
    mag_task_t *t = test_spawn_named("blocked-one", blocked);
    mag_sleep(20 * MAG_MS);
    ASSERT_EQ(kill(getpid(), SIGQUIT), 0);
    mag_sleep(300 * MAG_MS); /* the dump comes from another thread */
    ASSERT_EQ(mag_mutex_unlock(&mu), 0);
    ASSERT_EQ(mag_join(t, NULL), 0);
    printf("still running\n");
    return 0;
}

/* Takes the process's SIGQUIT: every other thread blocks it. Sleeping in
 * an intercepted call lets ThreadSanitizer, which defers signal handlers to
 * such calls, run the handler at once (a worker in io_uring_enter would
 * hold it back until shutdown). */
static void *signal_taker(void *arg)
{
    sigset_t quit;
    sigemptyset(&quit);
    sigaddset(&quit, SIGQUIT);
    pthread_sigmask(SIG_UNBLOCK, &quit, NULL);
    for (;;)
        usleep(1000);
    return arg;
}

static void case_sigquit(void)
{
    sigset_t quit;
    sigemptyset(&quit);
    sigaddset(&quit, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, &quit, NULL); /* inherited by the workers */
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, signal_taker, NULL), 0);
    run_debug(sigquit_main, 2);
}

/* ---- the harness -------------------------------------------------------------- */

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Runs fn in a child; returns its stderr (and stdout) and exit status. */
static char *run_child(void (*fn)(void), int *status)
{
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        dup2(p[1], STDERR_FILENO);
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        fn();
        fflush(stdout);
        exit(0);
    }
    close(p[1]);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ASSERT_TRUE(buf != NULL);
    for (;;) {
        if (len + 1 == cap) {
            buf = realloc(buf, cap *= 2);
            ASSERT_TRUE(buf != NULL);
        }
        ssize_t n = read(p[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = 0;
    close(p[0]);
    ASSERT_EQ(waitpid(pid, status, 0), pid);
    return buf;
}

static char *expect_ok(const char *what, void (*fn)(void))
{
    int status;
    char *out = run_child(fn, &status);
    printf("--- %s:\n%s", what, out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        TEST_FAIL("%s: the child failed (status 0x%x)", what, status);
    return out;
}

int main(void)
{
    char *out = expect_ok("slow task", case_slow);
    ASSERT_EQ(count_of(out, "slow task"), 1);
    ASSERT_EQ(count_of(out, "slow task 'spinner'"), 1);
    ASSERT_EQ(count_of(out, "'polite'"), 0);
    ASSERT_TRUE(strstr(out, "without suspending") && strstr(out, "on worker "));
    free(out);

    out = expect_ok("leaked handles", case_leak);
    ASSERT_EQ(count_of(out, "never joined nor detached"), 1);
    ASSERT_EQ(count_of(out, "task 'forgotten'"), 1);
    ASSERT_EQ(count_of(out, "'detached'"), 0);
    ASSERT_EQ(count_of(out, "'joined'"), 0);
    free(out);

    out = expect_ok("stale handle", case_stale);
    ASSERT_EQ(count_of(out, "mag_join: handle"), 1);
    ASSERT_EQ(count_of(out, "mag_detach: handle"), 1);
    free(out);

    out = expect_ok("stale handle, debug off", case_stale_quiet);
    ASSERT_EQ(count_of(out, "magpie:"), 0);
    free(out);

    out = expect_ok("SIGQUIT", case_sigquit);
    ASSERT_EQ(count_of(out, "SIGQUIT"), 1);
    ASSERT_TRUE(strstr(out, "task dump") != NULL);
    ASSERT_TRUE(strstr(out, "blocked-one") != NULL);
    ASSERT_TRUE(strstr(out, "waiting on mutex") != NULL);
    ASSERT_TRUE(strstr(out, "still running") != NULL);
    free(out);
    return 0;
}
