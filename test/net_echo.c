/* net_echo: 1 MiB of random data per connection echoed by a mag_serve
 * server over 1,000 concurrent connections, verified byte for byte (64 KiB
 * per connection under sanitizers). */
#include <errno.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "test/test.h"

#define CONNS 1000
#define BYTES_PER_CONN (TEST_SANITIZED ? 64u * 1024u : 1024u * 1024u)
#define DATA_SIZE (2u * 1024u * 1024u)
#define CHUNK 32768u

static unsigned char *data; /* DATA_SIZE random bytes; connection i starts at 4099 * i */
static uint16_t port;
static _Atomic uint64_t echoed;

static int echo(int fd, void *ctx)
{
    (void)ctx;
    char buf[16384];
    for (;;) {
        ssize_t n = mag_recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return (int)n;
        if (mag_send_all(fd, buf, (size_t)n, 0) < 0)
            return -EPIPE;
        atomic_fetch_add_explicit(&echoed, (uint64_t)n, memory_order_relaxed);
    }
}

typedef struct client {
    int fd;
    size_t start;
} client_t;

static int writer(void *arg)
{
    client_t *c = arg;
    size_t off = 0;
    while (off < BYTES_PER_CONN) {
        size_t n = BYTES_PER_CONN - off < CHUNK ? BYTES_PER_CONN - off : CHUNK;
        ssize_t r = mag_send_all(c->fd, data + c->start + off, n, 0);
        if (r < 0)
            return (int)r;
        off += n;
    }
    return shutdown(c->fd, SHUT_WR) == 0 ? 0 : -mag_errno();
}

static int client(void *arg)
{
    client_t c = {.start = ((size_t)(intptr_t)arg * 4099u) % (DATA_SIZE - BYTES_PER_CONN)};
    c.fd = mag_tcp_connect("127.0.0.1", port);
    if (c.fd < 0)
        TEST_FAIL("connect: %d", c.fd);
    static const mag_spawn_opts_t wopts = {.name = "writer", .stack_size = 64 * 1024};
    mag_task_t *w;
    ASSERT_EQ(mag_spawn_ex(&w, writer, &c, &wopts), 0);
    unsigned char buf[CHUNK];
    size_t got = 0;
    for (;;) {
        ssize_t n = mag_recv(c.fd, buf, sizeof buf, 0);
        if (n < 0)
            TEST_FAIL("recv: %zd after %zu bytes", n, got);
        if (n == 0)
            break;
        if (got + (size_t)n > BYTES_PER_CONN)
            TEST_FAIL("echoed more than sent: %zu", got + (size_t)n);
        if (memcmp(buf, data + c.start + got, (size_t)n) != 0)
            TEST_FAIL("echo differs within bytes %zu..%zu", got, got + (size_t)n);
        got += (size_t)n;
    }
    ASSERT_UEQ(got, BYTES_PER_CONN);
    int st = -1;
    ASSERT_EQ(mag_join(w, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(mag_close(c.fd), 0);
    return 0;
}

static int server_task(void *arg)
{
    return mag_serve(*(int *)arg, echo, NULL);
}

static int main_task(void *arg)
{
    (void)arg;
    int lfd = mag_tcp_listen("127.0.0.1", 0, 4096);
    ASSERT_GE(lfd, 0);
    port = (uint16_t)mag_local_port(lfd);
    mag_task_t *srv = mag_spawn(server_task, &lfd);
    ASSERT_TRUE(srv != NULL);

    uint64_t t0 = mag_now();
    mag_group_t *g = mag_group_create(MAG_GROUP_CANCEL_ON_ERROR);
    ASSERT_TRUE(g != NULL);
    for (intptr_t i = 0; i < CONNS; i++)
        ASSERT_GE(mag_group_spawn(g, client, (void *)i), 0);
    ASSERT_EQ(mag_group_wait(g), 0);
    mag_group_destroy(g);
    double secs = (double)(mag_now() - t0) / 1e9;
    uint64_t total = atomic_load(&echoed);
    ASSERT_UEQ(total, (uint64_t)CONNS * BYTES_PER_CONN);
    printf("%d connections echoed %.1f MiB in %.2f s (%.0f MiB/s)\n", CONNS,
           (double)total / 1048576.0, secs, (double)total / 1048576.0 / secs);

    mag_cancel(srv);
    int st = 0;
    ASSERT_EQ(mag_join(srv, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    ASSERT_EQ(mag_close(lfd), 0);
    return 0;
}

int main(void)
{
    struct rlimit rl;
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2 * CONNS + 100) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_cur < 2 * CONNS + 100)
            TEST_SKIP("RLIMIT_NOFILE %llu is below %d", (unsigned long long)rl.rlim_cur,
                      2 * CONNS + 100);
    }
    data = malloc(DATA_SIZE);
    ASSERT_TRUE(data != NULL);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < DATA_SIZE; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        data[i] = (unsigned char)(x >> 32);
    }
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(4);
    test_run_cfg(&cfg, main_task, NULL);
    free(data);
    return 0;
}
