/* No zombies and no orphans: a harness (a child subreaper, so that orphans
 * would be re-parented to it and seen) runs a child that starts a process
 * pool and reports the zygote's and every worker's pid. The child either
 * shuts its runtime down (then it must have no child process left, not even
 * a zombie) or is killed with SIGKILL; either way every reported process
 * must be gone within a generous bound. A third run creates the runtime on
 * a thread other than the main one, where the zygote cannot use
 * PR_SET_PDEATHSIG (it follows the forking thread) and must notice the
 * parent's death by its control socket's EOF. */
#include "test/test.h"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define NPROC 3

static int whoami(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in, (void)n;
    usleep(300 * 1000); /* hold this worker so that the calls spread */
    int *p = malloc(2 * sizeof(int));
    p[0] = getpid();
    p[1] = getppid();
    *out = p;
    *out_len = 2 * sizeof(int);
    return 0;
}

static int report_fd, go_fd;

static int ask(void *arg)
{
    int *pid = arg;
    void *out = NULL;
    size_t len = 0;
    ASSERT_EQ(mag_proc_call("whoami", NULL, 0, &out, &len), 0);
    pid[0] = ((int *)out)[0];
    pid[1] = ((int *)out)[1];
    free(out);
    return 0;
}

static int child_main(void *arg)
{
    (void)arg;
    int pids[NPROC][2];
    mag_task_t *t[NPROC];
    for (int i = 0; i < NPROC; i++)
        t[i] = mag_spawn(ask, pids[i]);
    for (int i = 0; i < NPROC; i++)
        ASSERT_EQ(mag_join(t[i], NULL), 0);
    int msg[NPROC + 1];
    msg[0] = pids[0][1]; /* the zygote */
    for (int i = 0; i < NPROC; i++) {
        ASSERT_EQ(pids[i][1], msg[0]);
        for (int j = 0; j < i; j++)
            ASSERT_NE(pids[i][0], pids[j][0]);
        msg[i + 1] = pids[i][0];
    }
    ASSERT_EQ(write(report_fd, msg, sizeof msg), (ssize_t)sizeof msg);
    return 0;
}

static void child(int fd, bool killed);

struct off_main {
    int fd;
};

static void *child_thread(void *arg)
{
    child(((struct off_main *)arg)->fd, true);
    return NULL;
}

static void child(int fd, bool killed)
{
    report_fd = fd;
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 2;
    cfg.proc_workers = NPROC;
    mag_runtime_t *rt;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    int st = -1;
    ASSERT_EQ(mag_runtime_block_on(rt, child_main, NULL, &st), 0);
    ASSERT_EQ(st, 0);
    if (killed)
        for (;;)
            pause(); /* the harness kills us */
    char go;
    ASSERT_EQ(read(go_fd, &go, 1), 1); /* the harness has seen them alive */
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
    /* Not a single child process left, not even a zombie. */
    errno = 0;
    ASSERT_EQ(waitpid(-1, NULL, WNOHANG), -1);
    ASSERT_EQ(errno, ECHILD);
    _exit(0);
}

static void scenario(bool killed, bool off_main)
{
    int p[2], g[2];
    ASSERT_EQ(pipe(p), 0);
    ASSERT_EQ(pipe(g), 0);
    pid_t c = fork();
    ASSERT_GE(c, 0);
    if (c == 0) {
        close(p[0]);
        close(g[1]);
        go_fd = g[0];
        if (off_main) {
            struct off_main a = {p[1]};
            pthread_t th;
            pthread_create(&th, NULL, child_thread, &a);
            for (;;)
                pause();
        }
        child(p[1], killed);
    }
    close(p[1]);
    close(g[0]);
    int msg[NPROC + 1];
    ASSERT_EQ(read(p[0], msg, sizeof msg), (ssize_t)sizeof msg);
    close(p[0]);
    for (int i = 0; i <= NPROC; i++)
        ASSERT_EQ(kill(msg[i], 0), 0); /* alive now */
    ASSERT_EQ(write(g[1], "g", 1), 1);
    close(g[1]);
    int ws;
    if (killed)
        ASSERT_EQ(kill(c, SIGKILL), 0);
    ASSERT_EQ(waitpid(c, &ws, 0), c);
    if (killed)
        ASSERT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    else
        ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    /* Everything gone within 20 s; we reap whatever is re-parented to us. */
    for (int tries = 0;; tries++) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        int alive = 0;
        for (int i = 0; i <= NPROC; i++)
            if (kill(msg[i], 0) == 0 || errno != ESRCH)
                alive++;
        if (!alive)
            break;
        if (tries == 2000)
            TEST_FAIL("%s: %d pool processes outlived their parent", killed ? "SIGKILL" : "shutdown",
                      alive);
        usleep(10 * 1000);
    }
    if (!killed) {
        errno = 0;
        ASSERT_EQ(waitpid(-1, NULL, WNOHANG), -1); /* nothing was re-parented to us */
        ASSERT_EQ(errno, ECHILD);
    }
}

int main(void)
{
    ASSERT_EQ(mag_proc_register("whoami", whoami), 0);
    ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    scenario(false, false);
    scenario(true, false);
    scenario(true, true);
    return 0;
}
