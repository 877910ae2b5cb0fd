/* rt_kick: the signal a multi-worker runtime uses to make a worker busy in
 * one task post its ring's completions (runtime/kick.c).
 *   - Where SIGURG has its default disposition, the first multi-worker
 *     runtime installs a handler with SA_RESTART, and a read that completes
 *     while a task computes on the reader's worker resumes elsewhere before
 *     the computation ends.
 *   - A program's own SIGURG handler is left in place and never called by
 *     magpie; the same read still resumes (the kernel's tick posts it).
 *   - A loop-mode runtime installs nothing.
 * Each case runs in a child process, whose signal dispositions start clean. */
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test/test.h"

#define HOG_LIMIT_NS (2 * MAG_SEC)

static int pipe_fds[2];
static _Atomic int hog_started, reader_resumed;
static _Atomic uint64_t resumed_ns, hog_ended_ns;

static int hog(void *arg)
{
    (void)arg;
    ASSERT_EQ(mag_sleep(MAG_MS), 0); /* the reader's read is submitted meanwhile */
    atomic_store(&hog_started, 1);
    uint64_t start = mag_now();
    while (!atomic_load(&reader_resumed) && mag_now() - start < HOG_LIMIT_NS)
        ;
    uint64_t until = mag_now() + 2 * MAG_MS;
    while (mag_now() < until)
        ;
    atomic_store(&hog_ended_ns, mag_now());
    return 0;
}

/* Spawns the hog on its own worker, then reads: the read's completion comes
 * while the hog computes there. */
static int reader(void *arg)
{
    (void)arg;
    mag_task_t *h = mag_spawn(hog, NULL);
    ASSERT_PTR_NE(h, NULL);
    char c;
    ASSERT_EQ(mag_read(pipe_fds[0], &c, 1, -1), 1);
    atomic_store(&resumed_ns, mag_now());
    atomic_store(&reader_resumed, 1);
    ASSERT_EQ(c, 'k');
    ASSERT_EQ(mag_join(h, NULL), 0);
    return 0;
}

static int stranded_read(void *arg)
{
    (void)arg;
    ASSERT_EQ(pipe(pipe_fds), 0);
    mag_task_t *r = mag_spawn(reader, NULL);
    ASSERT_PTR_NE(r, NULL);
    while (!atomic_load(&hog_started))
        ASSERT_EQ(mag_sleep(MAG_MS), 0);
    ASSERT_EQ(mag_sleep(5 * MAG_MS), 0);
    uint64_t written = mag_now();
    ASSERT_EQ(write(pipe_fds[1], "k", 1), 1);
    ASSERT_EQ(mag_join(r, NULL), 0);
    uint64_t resumed = atomic_load(&resumed_ns);
    printf("read resumed %.3f ms after the write\n", (double)(resumed - written) / 1e6);
    ASSERT_LT(resumed, atomic_load(&hog_ended_ns)); /* elsewhere, while the hog ran */
    ASSERT_LT(resumed - written, 50 * MAG_MS);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return 0;
}

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static struct sigaction urg_now(void)
{
    struct sigaction sa;
    ASSERT_EQ(sigaction(SIGURG, NULL, &sa), 0);
    return sa;
}

static void default_disposition(void)
{
    ASSERT_TRUE(urg_now().sa_handler == SIG_DFL);
    test_run(2, stranded_read, NULL);
    struct sigaction sa = urg_now();
    ASSERT_TRUE(sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
    ASSERT_TRUE(sa.sa_flags & SA_RESTART);
}

static volatile sig_atomic_t own_calls;

static void own_handler(int sig)
{
    (void)sig;
    own_calls++;
}

static void own_handler_kept(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = own_handler;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGURG, &sa, NULL), 0);
    test_run(2, stranded_read, NULL);
    ASSERT_TRUE(urg_now().sa_handler == own_handler);
    ASSERT_EQ(own_calls, 0);
}

static void loop_mode_installs_nothing(void)
{
    test_run(1, nothing, NULL);
    ASSERT_TRUE(urg_now().sa_handler == SIG_DFL);
}

static void in_child(const char *what, void (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        fn();
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        TEST_FAIL("%s: the child failed (status 0x%x)", what, status);
}

int main(void)
{
    in_child("default disposition", default_disposition);
    in_child("the program's own handler", own_handler_kept);
    in_child("loop mode", loop_mode_installs_nothing);
    return 0;
}
