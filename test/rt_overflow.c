/* A stack overflow in a named task ends the process with a message naming
 * the task (checked from a parent process), never silent corruption; where
 * the kernel offers guard regions, the 20,000th of 20,000 concurrent tasks
 * is caught by its guard page even with a guard-page budget of one. */
#include "test/test.h"
#include "test/programs.h"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define CROWD 20000

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

static mag_event_t crowd_release;

static int crowd_member(void *arg)
{
    return mag_event_wait(&crowd_release);
}

/* CROWD - 1 tasks parked at once, then one more that overflows. */
static int crowd_task(void *arg)
{
    ASSERT_EQ(mag_event_init(&crowd_release), 0);
    mag_spawn_opts_t small = {.name = "crowd", .stack_size = 64 * 1024};
    for (int i = 0; i < CROWD - 1; i++) {
        mag_task_t *t;
        ASSERT_EQ(mag_spawn_ex(&t, crowd_member, NULL, &small), 0);
        mag_detach(t);
    }
    mag_task_t *t;
    mag_spawn_opts_t opts = {.name = "deep-20000", .stack_size = 64 * 1024};
    ASSERT_EQ(mag_spawn_ex(&t, overflow, NULL, &opts), 0);
    return mag_join(t, NULL);
}

/* Whether this kernel installs guard regions (MADV_GUARD_INSTALL). */
static bool kernel_has_guard_regions(void)
{
    long page = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    bool ok = madvise(p, (size_t)page, 102) == 0;
    munmap(p, (size_t)page * 2);
    return ok;
}

/* Runs the overflowing program in a child; returns what it printed. */
static void run_child(const char *guards, mag_fn body, char *out, size_t cap, int *status)
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
        mag_run(&cfg, body, NULL, NULL);
        _exit(0); /* reaching here means the overflow went unnoticed */
    }
    close(pipefd[1]);
    test_read_output(pipefd[0], out, cap);
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
        run_child(modes[i], main_task, out, sizeof out, &status);
        printf("guards=%s: child said: %s", modes[i] ? modes[i] : "default", out);
        ASSERT_TRUE(WIFSIGNALED(status));
        ASSERT_EQ(WTERMSIG(status), SIGABRT);
        ASSERT_TRUE(strstr(out, "stack overflow in task 'deep-recursion'") != NULL);
    }
    if (!kernel_has_guard_regions()) {
        printf("no guard regions in this kernel: the crowd case is not run\n");
        return 0;
    }
    /* A budget of one guard page is long spent by the 20,000th stack; with
     * guard regions it still has a guard, which catches the overflow. */
    char out[4096];
    int status;
    run_child("1", crowd_task, out, sizeof out, &status);
    printf("crowd of %d, guards=1: child said: %s", CROWD, out);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGABRT);
    ASSERT_TRUE(strstr(out, "stack overflow in task 'deep-20000'") != NULL);
    return 0;
}
