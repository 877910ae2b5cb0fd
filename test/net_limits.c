/* net_limits: mag_serve_ex's cap on connections (the cap+1th client is not
 * served until one of the first ends, then it is), and the reuse of idle
 * connections when descriptors run out: an echo server in a child with
 * RLIMIT_NOFILE 1,024 is sent 1,100 idle connections, more than it has
 * descriptors, and a new client is still served within 2 s, the longest-idle
 * connection having been closed to make room. The parent is a plain program with
 * blocking sockets. */
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "test/test.h"
#include "test/programs.h"

#define CAP 4
#define CHILD_NOFILE 1024
#define IDLE_CLIENTS 1100
#define SLACK_MS (TEST_SANITIZED ? 10000 : 2000)

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

/* The server closed fd (end of input or reset) within ms. */
static bool closed(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return false;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

struct child_args {
    int report; /* where the child writes its port */
    size_t max_conns;
};

static int child_main(void *arg)
{
    struct child_args *a = arg;
    int lfd = mag_tcp_listen("127.0.0.1", 0, 1024);
    if (lfd < 0)
        return lfd;
    int port = mag_local_port(lfd);
    if (write(a->report, &port, sizeof port) != sizeof port)
        return -EIO;
    close(a->report);
    mag_serve_opts_t opts = {.max_conns = a->max_conns, .header_timeout_ns = 60 * MAG_SEC};
    return mag_serve_ex(lfd, echo, NULL, &opts);
}

/* An echo server in a child process (killed by stop_child): nofile 0 keeps
 * the descriptor limit. Returns its pid and port. */
static pid_t start_child(size_t max_conns, rlim_t nofile, int *port)
{
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        close(pipefd[0]);
        if (nofile) {
            struct rlimit rl = {nofile, nofile};
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                _exit(3);
        }
        mag_config_t cfg;
        mag_config_init(&cfg);
        cfg.workers = 2;
        struct child_args args = {pipefd[1], max_conns};
        int status = 0;
        int rc = mag_run(&cfg, child_main, &args, &status);
        fprintf(stderr, "child: mag_run %d status %d\n", rc, status);
        _exit(4);
    }
    close(pipefd[1]);
    ASSERT_EQ(read(pipefd[0], port, sizeof *port), (ssize_t)sizeof *port);
    close(pipefd[0]);
    ASSERT_GT(*port, 0);
    return pid;
}

static void stop_child(pid_t pid)
{
    int ws = 0;
    ASSERT_EQ(waitpid(pid, &ws, WNOHANG), 0); /* still alive: it never failed */
    kill(pid, SIGKILL);
    ASSERT_EQ(waitpid(pid, &ws, 0), pid);
}

static void cap_on_connections(void)
{
    int port;
    pid_t pid = start_child(CAP, 0, &port);
    int fds[CAP + 1];
    for (int i = 0; i < CAP; i++) {
        fds[i] = test_plain_connect(port);
        if (!test_plain_echoes(fds[i], SLACK_MS * 5))
            TEST_FAIL("client %d of the cap was not served", i);
    }
    /* One more: connected (the backlog takes it) but not served. */
    fds[CAP] = test_plain_connect(port);
    ASSERT_TRUE(!test_plain_echoes(fds[CAP], 500));
    for (int i = 0; i < CAP; i++) /* the others still are */
        ASSERT_TRUE(test_plain_echoes(fds[i], SLACK_MS * 5));
    /* One ends: the waiting client is served (its byte sent above first). */
    close(fds[0]);
    struct pollfd p = {.fd = fds[CAP], .events = POLLIN};
    ASSERT_EQ(poll(&p, 1, SLACK_MS * 5), 1);
    char c;
    ASSERT_EQ(recv(fds[CAP], &c, 1, 0), 1);
    ASSERT_EQ(c, 'e');
    ASSERT_TRUE(test_plain_echoes(fds[CAP], SLACK_MS * 5));
    /* And the cap holds again: a new one waits. */
    int extra = test_plain_connect(port);
    ASSERT_TRUE(!test_plain_echoes(extra, 300));
    close(fds[1]);
    ASSERT_EQ(poll(&(struct pollfd){.fd = extra, .events = POLLIN}, 1, SLACK_MS * 5), 1);
    close(extra);
    for (int i = 2; i <= CAP; i++)
        close(fds[i]);
    stop_child(pid);
}

static void idle_reuse_on_emfile(void)
{
    int port;
    pid_t pid = start_child(0, CHILD_NOFILE, &port);
    /* More idle clients than the child has descriptors: the later ones
     * wait in its backlog. */
    static int fds[IDLE_CLIENTS];
    /* The first is served before the others connect: a first-byte wait
     * counts as idle too, so had it waited out a connect loop slower than
     * a second (a loaded machine) it could rightly be cut before its byte. */
    fds[0] = test_plain_connect(port);
    ASSERT_TRUE(test_plain_echoes(fds[0], SLACK_MS * 5));
    for (int i = 1; i < IDLE_CLIENTS; i++)
        fds[i] = test_plain_connect(port);
    /* All are idle now, for longer than the one second a
     * connection must be idle before it may be closed to make room. */
    struct timespec hold = {.tv_sec = 1, .tv_nsec = 500 * 1000 * 1000};
    nanosleep(&hold, NULL);
    int fresh = test_plain_connect(port);
    if (!test_plain_echoes(fresh, SLACK_MS))
        TEST_FAIL("a new client was not served within %d ms", SLACK_MS);
    /* The longest-idle ones made room; not every one was closed. */
    ASSERT_TRUE(closed(fds[1], SLACK_MS));
    int still_open = 0;
    for (int i = IDLE_CLIENTS / 2; i < IDLE_CLIENTS; i++)
        still_open += !closed(fds[i], 0);
    ASSERT_GT(still_open, 0);
    printf("emfile: %d of the newer half of %d idle clients still open\n", still_open,
           IDLE_CLIENTS);
    for (int i = 0; i < IDLE_CLIENTS; i++)
        close(fds[i]);
    close(fresh);
    stop_child(pid);
}

int main(void)
{
    struct rlimit rl;
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < IDLE_CLIENTS + 64) { /* the parent's clients need descriptors too */
        rl.rlim_cur = rl.rlim_max < IDLE_CLIENTS + 64 ? rl.rlim_max : IDLE_CLIENTS + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < IDLE_CLIENTS + 64)
            TEST_SKIP("RLIMIT_NOFILE %ld is too low", (long)rl.rlim_cur);
    }
    cap_on_connections();
    idle_reuse_on_emfile();
    return 0;
}
