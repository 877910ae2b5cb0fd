/* A stack overflow in a named task ends the process with a message naming
 * the task (checked from a parent process), never silent corruption. */
#include "test/test.h"

#include <sys/wait.h>
#include <unistd.h>

static volatile char sink;

__attribute__((noinline)) static int recurse(int depth)
{
    volatile char buf[1024];
    buf[0] = (char)depth;
    sink = buf[0];
    return depth > 1000000 ? 0 : recurse(depth + 1) + buf[0];
}

static int overflow(void *arg)
{
    return recurse(0);
}

static int main_task(void *arg)
{
    mag_task_t *t;
    mag_spawn_opts_t opts = {.name = "deep-recursion", .stack_size = 64 * 1024};
    ASSERT_EQ(mag_spawn_ex(&t, overflow, NULL, &opts), 0);
    return mag_join(t, NULL);
}

/* Runs the overflowing program in a child; returns what it printed. */
static void run_child(const char *guards, char *out, size_t cap, int *status)
{
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        if (guards)
            setenv("MAG_STACK_GUARDS", guards, 1);
        mag_config_t cfg;
        mag_config_init(&cfg);
        cfg.workers = 2;
        mag_run(&cfg, main_task, NULL, NULL);
        _exit(0); /* reaching here means the overflow went unnoticed */
    }
    close(pipefd[1]);
    size_t got = 0;
    ssize_t r;
    while (got < cap - 1 && (r = read(pipefd[0], out + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = 0;
    close(pipefd[0]);
    waitpid(pid, status, 0);
}

int main(void)
{
    if (TEST_SANITIZED)
        TEST_SKIP("sanitizers report stack overflows themselves");
    /* With a guard page (the default budget), then without any (the
     * budget exhausted): both end with the task named. */
    const char *modes[] = {NULL, "0"};
    for (int i = 0; i < 2; i++) {
        char out[4096];
        int status;
        run_child(modes[i], out, sizeof out, &status);
        printf("guards=%s: child said: %s", modes[i] ? modes[i] : "default", out);
        ASSERT_TRUE(WIFSIGNALED(status));
        ASSERT_EQ(WTERMSIG(status), SIGABRT);
        ASSERT_TRUE(strstr(out, "stack overflow in task 'deep-recursion'") != NULL);
    }
    return 0;
}
