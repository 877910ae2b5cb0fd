/* net_udp: datagrams through mag_sendto/mag_recvfrom, IPv4 and IPv6, with
 * the peer's address reported, and a ping-pong between two tasks. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test/test.h"

#define ROUNDS 200

static int udp_socket(int family, struct sockaddr_storage *addr, socklen_t *len)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    memset(addr, 0, sizeof *addr);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)addr;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)addr;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        *len = sizeof *a;
    }
    ASSERT_EQ(bind(fd, (struct sockaddr *)addr, *len), 0);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)addr, len), 0);
    return fd;
}

typedef struct pong {
    int fd;
} pong_t;

/* Answers every datagram to its sender, upper-cased, until "quit". */
static int ponger(void *arg)
{
    pong_t *p = arg;
    for (;;) {
        char buf[256];
        struct sockaddr_storage from;
        socklen_t flen = sizeof from;
        ssize_t n = mag_recvfrom(p->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
        if (n < 0)
            return (int)n;
        if (n == 4 && !memcmp(buf, "quit", 4))
            return 0;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z')
                buf[i] = (char)(buf[i] - 32);
        ssize_t w = mag_sendto(p->fd, buf, (size_t)n, 0, (struct sockaddr *)&from, flen);
        if (w != n)
            return w < 0 ? (int)w : -EIO;
    }
}

static void *ponger_thread(void *arg)
{
    return (void *)(intptr_t)ponger(arg);
}

static void round_trip(int family)
{
    struct sockaddr_storage sa, ca;
    socklen_t sl, cl;
    pong_t p = {.fd = udp_socket(family, &sa, &sl)};
    int c = udp_socket(family, &ca, &cl);
    /* The ponger is a task, or a thread when we are not in a task. */
    mag_task_t *t = NULL;
    pthread_t th;
    if (mag_self())
        ASSERT_TRUE((t = mag_spawn(ponger, &p)) != NULL);
    else
        ASSERT_EQ(pthread_create(&th, NULL, ponger_thread, &p), 0);
    for (int i = 0; i < ROUNDS; i++) {
        char msg[32], want[32], buf[64];
        int n = snprintf(msg, sizeof msg, "hello %d", i);
        snprintf(want, sizeof want, "HELLO %d", i);
        ASSERT_EQ(mag_sendto(c, msg, (size_t)n, 0, (struct sockaddr *)&sa, sl), n);
        struct sockaddr_storage from;
        socklen_t flen = sizeof from;
        ASSERT_EQ(mag_recvfrom(c, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen), n);
        ASSERT_TRUE(memcmp(buf, want, (size_t)n) == 0);
        ASSERT_EQ(flen, sl);
        ASSERT_TRUE(memcmp(&from, &sa, sl) == 0);
    }
    /* Without an address: a connected socket, recvfrom with NULL. */
    ASSERT_EQ(connect(c, (struct sockaddr *)&sa, sl), 0);
    ASSERT_EQ(mag_sendto(c, "abc", 3, 0, NULL, 0), 3);
    char buf[8];
    ASSERT_EQ(mag_recvfrom(c, buf, sizeof buf, 0, NULL, NULL), 3);
    ASSERT_TRUE(memcmp(buf, "ABC", 3) == 0);
    ASSERT_EQ(mag_send(c, "quit", 4, 0), 4);
    int st = -1;
    if (t) {
        ASSERT_EQ(mag_join(t, &st), 0);
    } else {
        void *ret;
        ASSERT_EQ(pthread_join(th, &ret), 0);
        st = (int)(intptr_t)ret;
    }
    ASSERT_EQ(st, 0);
    /* Truncation: a short buffer gets the start of the datagram. */
    ASSERT_EQ(mag_sendto(p.fd, "0123456789", 10, 0, (struct sockaddr *)&ca, cl), 10);
    ASSERT_EQ(mag_recvfrom(c, buf, 4, 0, NULL, NULL), 4);
    ASSERT_EQ(mag_sendto(-1, "x", 1, 0, (struct sockaddr *)&sa, sl), -EBADF);
    close(c);
    close(p.fd);
}

static int main_task(void *arg)
{
    (void)arg;
    round_trip(AF_INET);
    round_trip(AF_INET6);
    return 0;
}

int main(void)
{
    /* A plain thread first: the blocking forms. */
    main_task(NULL);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    test_run_cfg(&cfg, main_task, NULL);
    return 0;
}
