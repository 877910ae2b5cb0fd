/* net_unix: Unix stream sockets, by path and abstract name, served by
 * mag_serve; stale socket files are replaced, other files are not. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test/test.h"

static char dir[] = "/tmp/magpie-unix-XXXXXX";

static int echo(int fd, void *ctx)
{
    (void)ctx;
    mag_stream_t *s = mag_stream_new_ex(fd, 0, MAG_STREAM_BORROW); /* fd is mag_serve's */
    ASSERT_TRUE(s != NULL);
    char line[128];
    ssize_t n;
    while ((n = mag_stream_read_until(s, '\n', line, sizeof line)) > 0) {
        ASSERT_EQ(mag_stream_write(s, line, (size_t)n), n);
        ASSERT_EQ(mag_stream_flush(s), 0);
    }
    mag_stream_close(s);
    return (int)n;
}

static int server_task(void *arg)
{
    return mag_serve(*(int *)arg, echo, NULL);
}

static void talk(const char *path, int clients)
{
    for (int i = 0; i < clients; i++) {
        int fd = mag_unix_connect(path);
        if (fd < 0)
            TEST_FAIL("connect %s: %d", path, fd);
        char msg[64], buf[64];
        int n = snprintf(msg, sizeof msg, "line %d\n", i);
        ASSERT_EQ(mag_send_all(fd, msg, (size_t)n, 0), n);
        ASSERT_EQ(mag_recv(fd, buf, (size_t)n, MSG_WAITALL), n);
        ASSERT_TRUE(memcmp(buf, msg, (size_t)n) == 0);
        ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
        ASSERT_EQ(mag_recv(fd, buf, sizeof buf, 0), 0);
        ASSERT_EQ(mag_close(fd), 0);
    }
}

static void serve_at(const char *path)
{
    int lfd = mag_unix_listen(path, 0);
    if (lfd < 0)
        TEST_FAIL("listen %s: %d", path, lfd);
    mag_task_t *t = mag_spawn(server_task, &lfd);
    ASSERT_TRUE(t != NULL);
    talk(path, 20);
    mag_cancel(t);
    int st = 0;
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    ASSERT_EQ(mag_close(lfd), 0);
}

static int main_task(void *arg)
{
    (void)arg;
    char path[128];
    snprintf(path, sizeof path, "%s/sock", dir);
    serve_at(path);
    serve_at(path); /* the socket file left behind is stale: replaced */
    ASSERT_EQ(unlink(path), 0);
    ASSERT_EQ(mag_unix_connect(path), -ENOENT);

    char abstract[64];
    snprintf(abstract, sizeof abstract, "@magpie-test-%d", (int)getpid());
    serve_at(abstract);

    /* A regular file in the way is not removed. */
    char file[128];
    snprintf(file, sizeof file, "%s/file", dir);
    int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    close(fd);
    ASSERT_EQ(mag_unix_listen(file, 0), -EADDRINUSE);
    ASSERT_EQ(unlink(file), 0);
    ASSERT_EQ(mag_unix_listen("", 0), -EINVAL);
    ASSERT_EQ(mag_unix_connect(NULL), -EINVAL);
    return 0;
}

int main(void)
{
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    test_run_cfg(&cfg, main_task, NULL);
    ASSERT_EQ(rmdir(dir), 0);
    return 0;
}
