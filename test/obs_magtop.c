/*
 * obs_magtop - a runtime with MAG_STATS serves its metrics on a Unix socket
 * (metrics, dump, errors), and build/tools/magtop shows a running echo
 * server's figures in a terminal: driven under tmux (or a bare pty when tmux
 * is missing), the screen shows the workers, nonzero task and I/O rates and
 * the task hogging a worker; q quits, and magtop exits by itself when the
 * server process goes away.
 *
 *   obs_magtop --serve SOCK   runs the echo server (what the test starts)
 */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* ---- the server ----------------------------------------------------------- */

static int port;

static int echo(int fd, void *ctx)
{
    (void)ctx;
    char buf[4096];
    for (;;) {
        ssize_t n = mag_recv(fd, buf, sizeof buf, 0);
        if (n <= 0 || mag_send_all(fd, buf, (size_t)n, 0) < 0)
            return 0;
    }
}

static int client(void *arg)
{
    (void)arg;
    int fd = mag_tcp_connect("127.0.0.1", (uint16_t)port);
    if (fd < 0)
        return fd;
    /* Sockets wait for readiness at several workers, off the ring: a read
     * of /dev/zero per round gives the rings I/O for magtop to show. */
    int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    if (zero < 0) {
        mag_close(fd);
        return -errno;
    }
    char buf[64] = "ping";
    for (;;) {
        if (mag_read(zero, buf + 4, 4, -1) != 4)
            break;
        if (mag_send_all(fd, buf, sizeof buf, 0) < 0)
            break;
        size_t got = 0;
        while (got < sizeof buf) {
            ssize_t n = mag_recv(fd, buf + got, sizeof buf - got, 0);
            if (n <= 0)
                goto out;
            got += (size_t)n;
        }
        mag_sleep(200 * MAG_US);
    }
out:
    mag_close(zero);
    mag_close(fd);
    return 0;
}

static int hog(void *arg)
{
    (void)arg;
    for (;;) { /* hogs its worker for 2 s at a time */
        uint64_t end = mag_now() + 2 * MAG_SEC;
        while (mag_now() < end)
            ;
        if (mag_sleep(5 * MAG_MS))
            return 0;
    }
}

static int serve_task(void *arg)
{
    return mag_serve(*(int *)arg, echo, NULL);
}

static int serve_main(void *arg)
{
    (void)arg;
    static int lfd;
    lfd = mag_tcp_listen("127.0.0.1", 0, 128);
    ASSERT_GE(lfd, 0);
    port = mag_local_port(lfd);
    mag_task_t *srv;
    mag_spawn_opts_t o = {.name = "server"};
    ASSERT_EQ(mag_spawn_ex(&srv, serve_task, &lfd, &o), 0);
    for (int i = 0; i < 4; i++)
        mag_detach(test_spawn_named("client", client));
    mag_detach(test_spawn_named("hog", hog));
    return mag_join(srv, NULL); /* until killed */
}

static int serve(const char *sock)
{
    ASSERT_EQ(setenv("MAG_STATS", sock, 1), 0);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 2;
    int st;
    return mag_run(&cfg, serve_main, NULL, &st) ? 1 : 0;
}

/* ---- the socket protocol ----------------------------------------------------- */

static int connect_sock(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return fd;
    close(fd);
    return -1;
}

/* Sends req and reads until the reply ends with end. */
static char *ask(int fd, const char *req, const char *end)
{
    ASSERT_EQ(send(fd, req, strlen(req), MSG_NOSIGNAL), (int64_t)strlen(req));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ASSERT_EQ(poll(&p, 1, 10000), 1);
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        ASSERT_GT(n, 0);
        len += (size_t)n;
        buf[len] = 0;
        if (len >= strlen(end) && !strcmp(buf + len - strlen(end), end))
            return buf;
        ASSERT_TRUE(len + 1 < cap);
    }
}

static void check_protocol(const char *sock)
{
    int fd = connect_sock(sock);
    ASSERT_GE(fd, 0);
    char *m = ask(fd, "metrics\n", "\n");
    ASSERT_TRUE(m[0] == '{' && strstr(m, "\"nworkers\":2,") && strstr(m, "\"workers\":[{"));
    free(m);
    /* The socket serves from the start; the tasks come a moment later. */
    char *d = NULL;
    for (int i = 0; i < 300; i++) {
        free(d);
        d = ask(fd, "dump\n", "\n.\n");
        if (strstr(d, "client") && strstr(d, "server"))
            break;
        usleep(100 * 1000);
    }
    ASSERT_TRUE(strstr(d, "task dump") && strstr(d, "client") && strstr(d, "server"));
    free(d);
    char *e = ask(fd, "bogus\n", "\n");
    ASSERT_TRUE(strstr(e, "\"error\"") != NULL);
    free(e);
    close(fd);
}

/* ---- a terminal: tmux, or a pty ------------------------------------------------ */

typedef struct term {
    bool tmux;
    char name[64]; /* tmux -L server */
    int master;    /* pty */
    pid_t pid;
    char *out; /* pty: everything magtop wrote */
    size_t len, cap;
    int exit_code; /* -1 while running */
} term_t;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static void term_start(term_t *t, const char *magtop, const char *sock)
{
    t->exit_code = -1;
    if (t->tmux) {
        const char *verb = t->pid ? "respawn-pane -k -t obs" : "new-session -d -s obs -x 150 -y 45";
        t->pid = 1;
        ASSERT_EQ(sh("tmux -L %s -f /dev/null %s '%s %s; echo MAGTOP-EXIT=$?; sleep 600'", t->name,
                     verb, magtop, sock),
                  0);
        return;
    }
    t->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    ASSERT_GE(t->master, 0);
    ASSERT_EQ(grantpt(t->master), 0);
    ASSERT_EQ(unlockpt(t->master), 0);
    struct winsize ws = {.ws_row = 45, .ws_col = 150};
    ioctl(t->master, TIOCSWINSZ, &ws);
    const char *slave = ptsname(t->master);
    t->len = 0;
    t->pid = fork();
    ASSERT_GE(t->pid, 0);
    if (t->pid == 0) {
        setsid();
        int s = open(slave, O_RDWR);
        if (s < 0)
            _exit(127);
        ioctl(s, TIOCSCTTY, 0);
        dup2(s, 0);
        dup2(s, 1);
        dup2(s, 2);
        execl(magtop, magtop, sock, (char *)NULL);
        _exit(127);
    }
}

/* What is on the screen now (tmux), or what magtop drew last (pty). */
static char *term_screen(term_t *t)
{
    if (t->tmux) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "tmux -L %s capture-pane -p -t obs", t->name);
        FILE *p = popen(cmd, "r");
        ASSERT_TRUE(p != NULL);
        char *buf = calloc(1, 1 << 16);
        size_t n = fread(buf, 1, (1 << 16) - 1, p);
        buf[n] = 0;
        pclose(p);
        char *e = strstr(buf, "MAGTOP-EXIT=");
        if (e)
            t->exit_code = atoi(e + 12);
        return buf;
    }
    for (;;) {
        struct pollfd p = {.fd = t->master, .events = POLLIN};
        if (poll(&p, 1, 0) != 1)
            break;
        if (t->len + 4096 + 1 > t->cap) {
            t->cap = t->cap ? 2 * t->cap : 1 << 16;
            t->out = realloc(t->out, t->cap);
        }
        ssize_t n = read(t->master, t->out + t->len, 4096);
        if (n <= 0)
            break; /* EIO: the slave side is closed */
        t->len += (size_t)n;
    }
    int status;
    if (t->exit_code < 0 && waitpid(t->pid, &status, WNOHANG) == t->pid)
        t->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    if (!t->out)
        return calloc(1, 1);
    t->out[t->len] = 0;
    /* The last frame starts at the last "cursor home". */
    char *frame = t->out;
    for (char *h = t->out; (h = strstr(h, "\x1b[H")); h += 3)
        frame = h;
    return strdup(frame);
}

static void term_key(term_t *t, char c)
{
    if (t->tmux)
        ASSERT_EQ(sh("tmux -L %s send-keys -t obs %c", t->name, c), 0);
    else
        ASSERT_EQ(write(t->master, &c, 1), 1);
}

/* Polls the screen until ok(screen) holds; returns the screen. */
static char *term_wait(term_t *t, bool (*ok)(const char *), const char *what)
{
    char *s = NULL;
    for (int i = 0; i < 300; i++) { /* 30 s: a loaded machine is slow */
        free(s);
        s = term_screen(t);
        if (ok(s))
            return s;
        usleep(100 * 1000);
    }
    printf("screen:\n%s\n", s);
    TEST_FAIL("magtop never showed %s", what);
}

/* ---- what the screen must show ------------------------------------------------- */

static bool shows_figures(const char *s)
{
    if (!strstr(s, "2 workers") || !strstr(s, "io sub/s") || !strstr(s, "hog"))
        return false;
    const char *tot = strstr(s, "  total ");
    if (!tot)
        return false;
    double busy, polls, queue, lifo, steals, stolen, io_sub, io_done;
    if (sscanf(tot, " total %lf%% %lf %lf %lf %lf %lf %lf %lf", &busy, &polls, &queue, &lifo,
               &steals, &stolen, &io_sub, &io_done) != 8)
        return false;
    return busy > 0 && polls > 0 && io_sub > 0 && io_done > 0 && strstr(s, "spawned");
}

static term_t *cur;
static pid_t server_pid;
static char sock_path[64];

/* On every way out, failures included: no server, tmux or socket left. */
static void cleanup(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        server_pid = 0;
    }
    if (cur && cur->tmux) {
        sh("tmux -L %s kill-server 2>/dev/null", cur->name);
    } else if (cur && cur->pid > 0 && cur->exit_code < 0) {
        kill(cur->pid, SIGKILL);
        waitpid(cur->pid, NULL, 0);
    }
    if (sock_path[0])
        unlink(sock_path);
}

static void on_term(int sig)
{
    (void)sig;
    exit(1); /* the runner's timeout: clean up through atexit */
}

static bool magtop_done(const char *s)
{
    (void)s;
    return cur->exit_code >= 0;
}

static bool went_away(const char *s)
{
    return cur->exit_code >= 0 && (strstr(s, "went away") || !cur->tmux);
}

static pid_t start_server(const char *sock)
{
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the test */
        execl("/proc/self/exe", "obs_magtop", "--serve", sock, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 300; i++) {
        int fd = connect_sock(sock);
        if (fd >= 0) {
            close(fd);
            return pid;
        }
        usleep(100 * 1000);
    }
    TEST_FAIL("the server never listened on %s", sock);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--serve"))
        return serve(argv[2]);
    char *sock = sock_path, magtop[PATH_MAX], dir[PATH_MAX];
    snprintf(sock_path, sizeof sock_path, "/tmp/magpie-obs-%d.sock", (int)getpid());
    snprintf(dir, sizeof dir, "%s", argv[0]);
    snprintf(magtop, sizeof magtop, "%s/../tools/magtop", dirname(dir));
    if (access(magtop, X_OK) != 0)
        TEST_FAIL("no magtop at %s (make builds it)", magtop);
    term_t t = {.master = -1};
    atexit(cleanup);
    signal(SIGTERM, on_term);
    pid_t server = server_pid = start_server(sock);
    check_protocol(sock);
    cur = &t;
    unsetenv("TMUX");
    t.tmux = !getenv("MAG_TEST_NO_TMUX") && system("tmux -V >/dev/null 2>&1") == 0;
    snprintf(t.name, sizeof t.name, "magpie-obs-%d", (int)getpid());
    printf("driving magtop under %s\n", t.tmux ? "tmux" : "a pty");

    /* 1: the figures, then q. */
    term_start(&t, magtop, sock);
    char *s = term_wait(&t, shows_figures, "the server's figures");
    printf("%s\n", s);
    free(s);
    term_key(&t, 'q');
    free(term_wait(&t, magtop_done, "an exit after q"));
    ASSERT_EQ(t.exit_code, 0);
    if (!t.tmux)
        close(t.master);

    /* 2: the server goes away under magtop's eyes. */
    term_start(&t, magtop, sock);
    free(term_wait(&t, shows_figures, "the server's figures again"));
    ASSERT_EQ(kill(server, SIGKILL), 0);
    int status;
    ASSERT_EQ(waitpid(server, &status, 0), server);
    server_pid = 0;
    s = term_wait(&t, went_away, "an exit when the server went away");
    if (t.exit_code != 0)
        printf("screen:\n%s\n", s);
    free(s);
    ASSERT_EQ(t.exit_code, 0);
    if (!t.tmux)
        close(t.master);
    free(t.out);
    return 0; /* cleanup() removes tmux and the killed server's socket file */
}
