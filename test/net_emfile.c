/* net_emfile: an echo server in a child process with a low RLIMIT_NOFILE is
 * stormed with more connections than it has descriptors. It must back off
 * (no busy loop: its CPU time stays low while clients wait), must not crash,
 * and must serve again once the clients go away. The parent is a plain
 * program with blocking sockets. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test/test.h"
#include "test/programs.h"

#define CHILD_NOFILE 64
#define STORM 200

static int echo(int fd, void *ctx)
{
    (void)ctx;
    char buf[256];
    ssize_t n;
    while ((n = mag_recv(fd, buf, sizeof buf, 0)) > 0)
        if (mag_send_all(fd, buf, (size_t)n, 0) < 0)
            return -EPIPE;
    return (int)n;
}

static int child_main(void *arg)
{
    int report = *(int *)arg;
    int lfd = mag_tcp_listen("127.0.0.1", 0, 1024);
    if (lfd < 0)
        return lfd;
    int port = mag_local_port(lfd);
    if (write(report, &port, sizeof port) != sizeof port)
        return -EIO;
    close(report);
    return mag_serve(lfd, echo, NULL);
}

static double cpu_seconds(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    ASSERT_TRUE(f != NULL);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields 14 and 15 (utime, stime), counted after the ")" of comm. */
    char *p = strrchr(buf, ')');
    ASSERT_TRUE(p != NULL);
    unsigned long ut = 0, stime = 0;
    ASSERT_EQ(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stime),
              2);
    return (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
}

static int connect_to(int port)
{
    int fd = test_plain_connect(port);
    struct timeval tv = {.tv_sec = TEST_SANITIZED ? 60 : 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

int main(void)
{
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        close(pipefd[0]);
        struct rlimit rl = {CHILD_NOFILE, CHILD_NOFILE};
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            _exit(3);
        mag_config_t cfg;
        mag_config_init(&cfg);
        cfg.workers = 2;
        int status = 0;
        int rc = mag_run(&cfg, child_main, &pipefd[1], &status);
        fprintf(stderr, "child: mag_run %d status %d\n", rc, status);
        _exit(4);
    }
    close(pipefd[1]);
    int port = 0;
    ASSERT_EQ(read(pipefd[0], &port, sizeof port), (ssize_t)sizeof port);
    close(pipefd[0]);
    ASSERT_GT(port, 0);

    /* The storm: far more connections than the child has descriptors. */
    int fds[STORM];
    for (int i = 0; i < STORM; i++)
        fds[i] = connect_to(port);
    /* The first ones are served. */
    ASSERT_TRUE(test_plain_echoes(fds[0], 20000));
    /* Some later ones cannot be accepted while the table is full. */
    int served = 0;
    for (int i = 0; i < STORM; i++)
        served += test_plain_echoes(fds[i], i < 20 ? 20000 : 10);
    ASSERT_LT(served, STORM);
    ASSERT_GT(served, 0);

    /* While the clients wait, the server sleeps: no busy loop. */
    double c0 = cpu_seconds(pid);
    struct timespec hold = {.tv_sec = 1};
    nanosleep(&hold, NULL);
    double used = cpu_seconds(pid) - c0;
    printf("served %d of %d; server CPU while saturated: %.3f s in 1 s\n", served, STORM, used);
    ASSERT_TRUE(used < 0.5);

    /* The clients go away; the server serves new ones. */
    for (int i = 0; i < STORM; i++)
        close(fds[i]);
    for (int i = 0; i < 20; i++) {
        int fd = connect_to(port);
        if (!test_plain_echoes(fd, TEST_SANITIZED ? 60000 : 20000))
            TEST_FAIL("client %d after the storm got no echo", i);
        close(fd);
    }

    int ws = 0;
    ASSERT_EQ(waitpid(pid, &ws, WNOHANG), 0); /* still alive */
    kill(pid, SIGKILL);
    ASSERT_EQ(waitpid(pid, &ws, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    return 0;
}
