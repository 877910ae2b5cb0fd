/* io_ops: every operation through the ring (task) and as a blocking call
 * (plain thread), with offsets, and the errors bad arguments get. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test/test.h"

static char dir[] = "/tmp/magpie-io-ops-XXXXXX";

static void check_file_ops(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = mag_open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(mag_write(fd, "hello world", 11, 0), 11);
    char buf[32] = {0};
    ASSERT_EQ(mag_read(fd, buf, 5, 6), 5); /* pread: position stays 0 */
    ASSERT_TRUE(memcmp(buf, "world", 5) == 0);
    ASSERT_EQ(mag_write(fd, "HELLO", 5, -1), 5); /* at the position: 0 -> 5 */
    memset(buf, 0, sizeof buf);
    ASSERT_EQ(mag_read(fd, buf, sizeof buf, -1), 6); /* from position 5 */
    ASSERT_STR_EQ(buf, " world");
    ASSERT_EQ(mag_read(fd, buf, sizeof buf, -1), 0); /* EOF */

    char a[4] = "abcd", b[3] = "efg";
    struct iovec wv[2] = {{a, 4}, {b, 3}};
    ASSERT_EQ(mag_writev(fd, wv, 2, 100), 7);
    char c[3], d[4];
    struct iovec rv[2] = {{c, 3}, {d, 4}};
    ASSERT_EQ(mag_readv(fd, rv, 2, 100), 7);
    ASSERT_TRUE(memcmp(c, "abc", 3) == 0 && memcmp(d, "defg", 4) == 0);
    ASSERT_EQ(mag_readv(fd, rv, 0, 0), 0);
    ASSERT_EQ(mag_readv(fd, rv, -1, 0), -EINVAL);
    ASSERT_EQ(mag_writev(fd, wv, IOV_MAX + 1, 0), -EINVAL);
    ASSERT_EQ(mag_fsync(fd), 0);
    ASSERT_EQ(mag_recv(fd, buf, 1, 0), -ENOTSOCK);
    ASSERT_EQ(mag_close(fd), 0);
    ASSERT_EQ(mag_close(fd), -EBADF);
    ASSERT_EQ(mag_open(path, O_RDONLY | O_CREAT | O_EXCL, 0600), -EEXIST);
    ASSERT_EQ(unlink(path), 0);
}

static void check_bad_args(void)
{
    char buf[16];
    ASSERT_EQ(mag_read(-1, buf, 1, -1), -EBADF);
    ASSERT_EQ(mag_write(-1, buf, 1, -1), -EBADF);
    ASSERT_EQ(mag_recv(-1, buf, 1, 0), -EBADF);
    ASSERT_EQ(mag_send(-1, buf, 1, 0), -EBADF);
    ASSERT_EQ(mag_accept(-1, NULL, NULL), -EBADF);
    ASSERT_EQ(mag_fsync(-1), -EBADF);
    ASSERT_EQ(mag_close(-1), -EBADF);
    ASSERT_EQ(mag_poll(-1, POLLIN), -EBADF);
    ASSERT_EQ(mag_open("/nonexistent-magpie/x", O_RDONLY, 0), -ENOENT);
    ASSERT_EQ(mag_open(NULL, O_RDONLY, 0), -EFAULT);

    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_EQ(send(sv[1], "x", 1, 0), 1);
    ASSERT_EQ(mag_recv(sv[0], NULL, 10, 0), -EFAULT);
    ASSERT_EQ(mag_send(sv[0], NULL, 10, 0), -EFAULT);
    ASSERT_EQ(mag_recv(sv[0], buf, 0, 0), 0);
    ASSERT_EQ(mag_accept(sv[0], NULL, NULL), -EINVAL);
    ASSERT_EQ(mag_connect(sv[0], NULL, 16), -EFAULT);
    /* The peer is gone: -EPIPE, and no SIGPIPE kills us. */
    close(sv[1]);
    ASSERT_EQ(mag_send(sv[0], "y", 1, 0), -EPIPE);
    close(sv[0]);

    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    ASSERT_EQ(mag_write(p[1], "z", 1, -1), 1);
    ASSERT_EQ(mag_read(p[0], NULL, 1, -1), -EFAULT);
    ASSERT_EQ(mag_poll(p[0], POLLIN) & POLLIN, POLLIN);
    ASSERT_EQ(mag_poll(p[1], POLLOUT) & POLLOUT, POLLOUT);
    ASSERT_EQ(mag_read(p[0], buf, sizeof buf, -1), 1);
    close(p[0]);
    close(p[1]);

    ASSERT_EQ(mag_tcp_connect(NULL, 80), -EINVAL);
    ASSERT_EQ(mag_tcp_connect("", 80), -EINVAL);
    ASSERT_EQ(mag_tcp_connect("127.0.0.1", 0), -EINVAL);
    ASSERT_EQ(mag_unix_listen(NULL, 0), -EINVAL);
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    ASSERT_EQ(mag_unix_listen(longpath, 0), -ENAMETOOLONG);
    ASSERT_EQ(mag_unix_connect(longpath), -ENAMETOOLONG);
    ASSERT_EQ(mag_local_port(-1), -EBADF);
    ASSERT_TRUE(mag_stream_new(-1, 0) == NULL);
    ASSERT_EQ(mag_stream_close(NULL), 0);
}

/* A TCP round trip through listen/connect/accept/send/recv. */
static void check_tcp(void)
{
    int lfd = mag_tcp_listen("127.0.0.1", 0, 0);
    ASSERT_GE(lfd, 0);
    int port = mag_local_port(lfd);
    ASSERT_GT(port, 0);
    int c = mag_tcp_connect("127.0.0.1", (uint16_t)port); /* lands in the backlog */
    ASSERT_GE(c, 0);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int s = mag_accept(lfd, (struct sockaddr *)&ss, &sl);
    ASSERT_GE(s, 0);
    ASSERT_EQ(ss.ss_family, AF_INET);
    ASSERT_EQ(mag_send(c, "ping", 4, 0), 4);
    char buf[8];
    ASSERT_EQ(mag_recv(s, buf, 4, MSG_WAITALL), 4);
    ASSERT_TRUE(memcmp(buf, "ping", 4) == 0);
    ASSERT_EQ(mag_send_all(s, "pong", 4, 0), 4);
    ASSERT_EQ(mag_read(c, buf, 4, -1), 4); /* read(2) on a socket */
    ASSERT_EQ(mag_close(s), 0);
    ASSERT_EQ(mag_recv(c, buf, sizeof buf, 0), 0);
    ASSERT_EQ(mag_close(c), 0);
    ASSERT_EQ(mag_close(lfd), 0);
}

static int nop_handler(int fd, void *ctx)
{
    (void)fd;
    (void)ctx;
    return 0;
}

static int writer_task(void *arg)
{
    int fd = *(int *)arg;
    ASSERT_EQ(mag_sleep(20 * MAG_MS), 0);
    ASSERT_EQ(mag_write(fd, "w", 1, -1), 1);
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    ASSERT_TRUE(mag_self() != NULL);
    check_file_ops("task");
    check_bad_args();
    check_tcp();

    /* mag_poll suspends until the write from another task. */
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    mag_task_t *t = mag_spawn(writer_task, &p[1]);
    ASSERT_TRUE(t != NULL);
    ASSERT_EQ(mag_poll(p[0], POLLIN), POLLIN);
    int st = -1;
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, 0);
    close(p[0]);
    close(p[1]);

    /* serve needs a task; outside it gives -EPERM (checked in main). */
    ASSERT_EQ(mag_serve(0, NULL, NULL), -EINVAL);
    ASSERT_EQ(mag_serve(-1, nop_handler, NULL), -EBADF);
    return 0;
}

int main(void)
{
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    /* Outside a task: the plain blocking calls, same results. */
    check_file_ops("thread");
    check_bad_args();
    check_tcp();
    ASSERT_EQ(mag_serve(0, nop_handler, NULL), -EPERM);

    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    test_run_cfg(&cfg, main_task, NULL);

    cfg.workers = 1; /* the single-threaded loop mode too */
    test_run_cfg(&cfg, main_task, NULL);
    rmdir(dir);
    return 0;
}
