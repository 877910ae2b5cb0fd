/* Graceful shutdown on SIGTERM with a slow request in flight: the server (a
 * child process) stops accepting at once, lets the request in flight finish
 * within its grace period, and exits 0. A second run with a grace period
 * shorter than the request shows the cut-off: the request is cancelled at
 * the deadline and the server still exits promptly.
 *
 * The server is the pattern to copy: an accept loop in its own task spawns a
 * task per connection into a group; the main task waits for the signal,
 * cancels the accept loop, closes the listener, and waits for the group
 * under a deadline (mag_group_wait cancels what is left when it passes).
 * (Under ThreadSanitizer, which defers handlers of threads asleep in raw
 * system calls, a helper thread receives the signal: see signal_wait.c.) */
#include "test/test.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int lfd;
static uint64_t grace_ns;

static int handle(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[64];
    ssize_t n = mag_recv(fd, buf, sizeof buf - 1, 0);
    int rc = 0;
    if (n > 0) {
        buf[n] = 0;
        int ms = atoi(buf + 5); /* "SLOW <ms>\n" */
        if ((rc = mag_sleep((uint64_t)ms * MAG_MS)) == 0)
            rc = (int)mag_send_all(fd, "DONE\n", 5, 0);
    }
    mag_close(fd);
    return rc < 0 ? rc : 0;
}

static int acceptor(void *arg)
{
    mag_group_t *g = arg;
    for (;;) {
        int fd = mag_accept(lfd, NULL, NULL);
        if (fd < 0)
            return fd == -ECANCELED ? 0 : fd;
        if (mag_group_spawn(g, handle, (void *)(intptr_t)fd) < 0)
            mag_close(fd);
    }
}

static int server_main(void *arg)
{
    int report = (int)(intptr_t)arg;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    lfd = mag_tcp_listen("127.0.0.1", 0, 64);
    ASSERT_GE(lfd, 0);
    int port = mag_local_port(lfd);
    ASSERT_EQ(write(report, &port, sizeof port), (ssize_t)sizeof port);
    mag_group_t *g = mag_group_create(0);
    mag_task_t *acc = mag_spawn(acceptor, g);
    int sig = 0;
    ASSERT_EQ(mag_signal_wait(&stop, &sig), 0);
    ASSERT_EQ(sig, SIGTERM);
    mag_cancel(acc); /* stop accepting */
    ASSERT_EQ(mag_join(acc, NULL), 0);
    mag_close(lfd); /* new connections are refused from here on */
    uint64_t tok = mag_deadline_push(mag_now() + grace_ns);
    int rc = mag_group_wait(g); /* in-flight requests finish, or are cut off */
    mag_deadline_pop(tok);
    mag_group_destroy(g);
    int verdict = rc == 0 ? 0 : rc == -ETIMEDOUT ? 3 : 4;
    ASSERT_EQ(write(report, &verdict, sizeof verdict), (ssize_t)sizeof verdict);
    return 0;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static void scenario(uint64_t grace_ms, int request_ms, bool finishes)
{
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    pid_t c = fork();
    ASSERT_GE(c, 0);
    if (c == 0) {
        close(p[0]);
        mag_signal_catch(&stop); /* before anything can send it */
        test_tsan_signal_receiver(&stop);
        grace_ns = grace_ms * MAG_MS;
        mag_config_t cfg;
        mag_config_init(&cfg);
        cfg.workers = 2;
        int st = -1;
        int rc = mag_run(&cfg, server_main, (void *)(intptr_t)p[1], &st);
        _exit(rc == 0 && st == 0 ? 0 : 1);
    }
    close(p[1]);
    int port = 0;
    ASSERT_EQ(read(p[0], &port, sizeof port), (ssize_t)sizeof port);
    int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    char req[32];
    int n = snprintf(req, sizeof req, "SLOW %d\n", request_ms);
    ASSERT_EQ(write(fd, req, (size_t)n), n);
    usleep(100 * 1000); /* the request is in flight */
    uint64_t t0 = mag_now();
    ASSERT_EQ(kill(c, SIGTERM), 0);
    int verdict = -1;
    ASSERT_EQ(read(p[0], &verdict, sizeof verdict), (ssize_t)sizeof verdict);
    ASSERT_EQ(connect_to(port), -ECONNREFUSED); /* no longer accepting */
    char buf[16] = {0};
    ssize_t r = read(fd, buf, sizeof buf - 1);
    int ws;
    ASSERT_EQ(waitpid(c, &ws, 0), c);
    uint64_t took = mag_now() - t0;
    ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    if (finishes) {
        ASSERT_EQ(verdict, 0);
        ASSERT_EQ(r, 5);
        ASSERT_STR_EQ(buf, "DONE\n");
    } else {
        ASSERT_EQ(verdict, 3);  /* cut off at the grace deadline */
        ASSERT_LE(r, 0);        /* closed without an answer */
        ASSERT_LT(took, 20 * MAG_SEC); /* not the request's 60 s */
    }
    close(fd);
    close(p[0]);
}

int main(void)
{
    scenario(10000, 500, true);  /* 500 ms request, 10 s grace */
    scenario(300, 60000, false); /* 60 s request, 300 ms grace */
    return 0;
}
