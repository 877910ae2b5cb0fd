/*
 * test/programs.h - for tests that run another program of the build (an
 * example server, a tool): where it is, and starting a server that says
 * "listening on <port>" when it accepts, plain blocking clients for it
 * (no runtime needed), and reading a child's output. Include after
 * test/test.h.
 */
#ifndef MAGPIE_TEST_PROGRAMS_H
#define MAGPIE_TEST_PROGRAMS_H

#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "test/test.h"

#define TEST_PATH_MAX (PATH_MAX + 64)

/* The path of the program rel (for example "examples/http_server") in the
 * build tree this test runs from (BUILD/test/NAME -> BUILD/rel), into path
 * (TEST_PATH_MAX bytes). Skips the test when it is not built. */
static inline void test_program_path(const char *rel, char *path)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        TEST_FAIL("readlink /proc/self/exe failed");
    exe[n] = 0;
    snprintf(path, TEST_PATH_MAX, "%s/../%s", dirname(exe), rel);
    if (access(path, X_OK) != 0)
        TEST_SKIP("%s not built", path);
}

/* Starts the program rel with the arguments args (NULL-terminated, after
 * argv[0]) and, when env_name is not NULL, env_name=env_value in its
 * environment; waits for its first line, "listening on <port>", and returns
 * the port. *pid receives the child's pid: kill and reap it when done. */
static inline uint16_t test_start_server(const char *rel, const char *const *args,
                                         const char *env_name, const char *env_value, pid_t *pid)
{
    char path[TEST_PATH_MAX];
    test_program_path(rel, path);
    const char *argv[32];
    int argc = 0;
    argv[argc++] = path;
    for (; *args && argc < 31; args++)
        argv[argc++] = *args;
    argv[argc] = NULL;
    int out[2];
    ASSERT_EQ(pipe(out), 0);
    *pid = fork();
    ASSERT_GE(*pid, 0);
    if (*pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        if (env_name)
            setenv(env_name, env_value, 1);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    char line[64] = {0};
    size_t len = 0;
    while (len < sizeof line - 1 && !strchr(line, '\n')) {
        ssize_t r = read(out[0], line + len, sizeof line - 1 - len);
        if (r <= 0)
            TEST_FAIL("%s did not start", rel);
        len += (size_t)r;
    }
    close(out[0]);
    int port = 0;
    if (sscanf(line, "listening on %d", &port) != 1 || port <= 0 || port > 65535)
        TEST_FAIL("%s said \"%s\", not \"listening on <port>\"", rel, line);
    return (uint16_t)port;
}

/* Kills and reaps a server that test_start_server started; true if it was
 * still alive until then (it never died on its own). */
static inline bool test_stop_server(pid_t pid)
{
    int ws = 0;
    pid_t w = waitpid(pid, &ws, WNOHANG);
    kill(pid, SIGKILL);
    if (w == 0)
        waitpid(pid, &ws, 0);
    return w == 0;
}

/* A blocking TCP connection to 127.0.0.1:port (fails the test if refused). */
static inline int test_plain_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        TEST_FAIL("connect: %s", strerror(errno));
    return fd;
}

/* Sends a byte to an echo server and says whether it came back within ms
 * milliseconds. */
static inline bool test_plain_echoes(int fd, int ms)
{
    char c = 'e';
    if (send(fd, &c, 1, MSG_NOSIGNAL) != 1)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return false;
    return recv(fd, &c, 1, 0) == 1 && c == 'e';
}

/* Reads fd (a child's stdout or stderr) until end of file or cap - 1
 * bytes, into out as a string, and closes fd. Returns the length. */
static inline size_t test_read_output(int fd, char *out, size_t cap)
{
    size_t len = 0;
    ssize_t r;
    while (len < cap - 1 && (r = read(fd, out + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = 0;
    close(fd);
    return len;
}

#endif
