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

int main(void)
{
    if (TEST_SANITIZED)
        TEST_SKIP("sanitizers report stack overflows themselves");
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        mag_config_t cfg;
        mag_config_init(&cfg);
        cfg.workers = 2;
        mag_run(&cfg, main_task, NULL, NULL);
        _exit(0); /* reaching here means the overflow went unnoticed */
    }
    close(pipefd[1]);
    char out[4096] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof out - 1 && (r = read(pipefd[0], out + got, sizeof out - 1 - got)) > 0)
        got += (size_t)r;
    int status;
    waitpid(pid, &status, 0);
    printf("child said: %s", out);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGABRT);
    ASSERT_TRUE(strstr(out, "stack overflow in task 'deep-recursion'") != NULL);
    return 0;
}
