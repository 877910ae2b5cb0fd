/*
 * test/crawl.c - runs examples/crawl against servers of the test's own, one
 * per behaviour, and checks what the crawler reports: keep-alive connections
 * are reused (at most --per-host opened for many requests), chunked and
 * close-delimited bodies are counted byte-exact, a pooled connection the
 * server closed is retried transparently, a server that never answers is
 * timed out and retried with back-off, a 503 is retried then reported, and
 * bad URLs are refused.
 */
#include <limits.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "test/test.h"
#include "test/programs.h"

typedef enum mode {
    MODE_LENGTH,  /* keep-alive, Content-Length: 13 */
    MODE_CHUNKED, /* keep-alive, a chunked body of 3 chunks, 26 bytes */
    MODE_CLOSE,   /* HTTP/1.0, body until close, 1000 bytes */
    MODE_STALE,   /* keep-alive promised, closed after one response */
    MODE_SILENT,  /* reads the request, never answers */
    MODE_UNAVAILABLE, /* 503, keep-alive */
} mode_t_;

typedef struct server {
    int lfd;
    uint16_t port;
    mode_t_ mode;
    _Atomic unsigned accepted, requests;
} server_t;

typedef struct conn_arg {
    server_t *s;
    int fd;
} conn_arg_t;

static void send_str(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Reads one request head (GET, no body); false at EOF or error. */
static bool read_head(int fd, char *buf, size_t cap, size_t *len)
{
    for (;;) {
        char *end = memmem(buf, *len, "\r\n\r\n", 4);
        if (end) {
            size_t used = (size_t)(end + 4 - buf);
            memmove(buf, buf + used, *len - used);
            *len -= used;
            return true;
        }
        if (*len == cap)
            return false;
        ssize_t r = recv(fd, buf + *len, cap - *len, 0);
        if (r <= 0)
            return false;
        *len += (size_t)r;
    }
}

static void *serve_conn(void *p)
{
    conn_arg_t *a = p;
    server_t *s = a->s;
    int fd = a->fd;
    free(a);
    char buf[4096];
    size_t len = 0;
    while (read_head(fd, buf, sizeof buf, &len)) {
        atomic_fetch_add(&s->requests, 1);
        switch (s->mode) {
        case MODE_LENGTH:
            send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!");
            continue;
        case MODE_CHUNKED:
            send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "a;ext=1\r\n0123456789\r\n6\r\nabcdef\r\n"
                         "A\r\nABCDEFGHIJ\r\n0\r\nTrailer: x\r\n\r\n");
            continue;
        case MODE_CLOSE: {
            send_str(fd, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n");
            char body[1001];
            memset(body, 'z', 1000);
            body[1000] = 0;
            send_str(fd, body);
            break;
        }
        case MODE_STALE:
            send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale");
            break;
        case MODE_SILENT: {
            char sink[256]; /* until the client gives up */
            while (recv(fd, sink, sizeof sink, 0) > 0) {
            }
            break;
        }
        case MODE_UNAVAILABLE:
            send_str(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
            continue;
        }
        break;
    }
    close(fd);
    return NULL;
}

static void *accept_loop(void *p)
{
    server_t *s = p;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&s->accepted, 1);
        conn_arg_t *a = malloc(sizeof *a);
        ASSERT_TRUE(a != NULL);
        *a = (conn_arg_t){s, fd};
        pthread_t th;
        ASSERT_EQ(pthread_create(&th, NULL, serve_conn, a), 0);
        pthread_detach(th);
    }
    return NULL;
}

static server_t *start(mode_t_ mode)
{
    server_t *s = calloc(1, sizeof *s);
    ASSERT_TRUE(s != NULL);
    s->mode = mode;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(s->lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    ASSERT_EQ(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(listen(s->lfd, 512), 0);
    ASSERT_EQ(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, accept_loop, s), 0);
    pthread_detach(th);
    return s;
}

static char crawl_path[TEST_PATH_MAX];

/* Runs crawl with args and n copies of url; returns its exit status and its
 * output in out (NUL-terminated). */
static int run_crawl(const char *const *args, const char *url, int n, char *out, size_t cap)
{
    const char *argv[64 + 2048];
    int argc = 0;
    argv[argc++] = crawl_path;
    for (; *args; args++)
        argv[argc++] = *args;
    for (int i = 0; i < n; i++)
        argv[argc++] = url;
    argv[argc] = NULL;
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(crawl_path, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    test_read_output(pipefd[0], out, cap);
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void expect(const char *out, const char *want)
{
    if (!strstr(out, want))
        TEST_FAIL("crawl output lacks \"%s\":\n%s", want, out);
}

static unsigned long long field(const char *out, const char *name)
{
    const char *p = strstr(out, name);
    if (!p)
        TEST_FAIL("crawl output lacks \"%s\":\n%s", name, out);
    return strtoull(p + strlen(name), NULL, 10);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char out[1 << 20];

int main(void)
{
    test_program_path("examples/crawl", crawl_path);
    char url[128];

    /* 200 requests, at most 4 in flight and 4 idle per host: reuse. */
    server_t *len = start(MODE_LENGTH);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", len->port);
    const char *pooled[] = {"--concurrency", "4", "--per-host", "4", "--workers", "2",
                            "--quiet", NULL};
    ASSERT_EQ(run_crawl(pooled, url, 200, out, sizeof out), 0);
    expect(out, "requests 200, attempts 200: 2xx 200, 3xx 0, 4xx 0, 5xx 0, errors 0");
    ASSERT_UEQ(field(out, "bytes "), 200 * 13);
    ASSERT_LE(field(out, "connections opened "), 4);
    ASSERT_GE(field(out, "reused "), 196);
    ASSERT_LE(atomic_load(&len->accepted), 4);
    expect(out, "latency p50 ");

    /* Chunked and close-delimited bodies, counted byte-exact. */
    server_t *chunked = start(MODE_CHUNKED);
    snprintf(url, sizeof url, "127.0.0.1:%u/chunks", chunked->port);
    const char *plain[] = {"--concurrency", "3", "--quiet", NULL};
    ASSERT_EQ(run_crawl(plain, url, 30, out, sizeof out), 0);
    expect(out, "2xx 30,");
    ASSERT_UEQ(field(out, "bytes "), 30 * 26);
    server_t *closing = start(MODE_CLOSE);
    snprintf(url, sizeof url, "127.0.0.1:%u/", closing->port);
    ASSERT_EQ(run_crawl(plain, url, 20, out, sizeof out), 0);
    expect(out, "2xx 20,");
    ASSERT_UEQ(field(out, "bytes "), 20 * 1000);
    ASSERT_UEQ(field(out, "reused "), 0); /* a close-delimited body ends the connection */

    /* Pooled connections the server has closed: retried, not failed, and
     * not counted as attempts. One request at a time, so that each finds
     * the previous one's connection in the pool. */
    server_t *stale = start(MODE_STALE);
    snprintf(url, sizeof url, "127.0.0.1:%u/", stale->port);
    const char *serial[] = {"--concurrency", "1", "--retries", "0", "--quiet", NULL};
    ASSERT_EQ(run_crawl(serial, url, 20, out, sizeof out), 0);
    expect(out, "requests 20, attempts 20: 2xx 20,");
    ASSERT_UEQ(field(out, "bytes "), 20 * 5);

    /* A server that never answers: each attempt times out (200 ms), three
     * attempts with back-off between them (50 ms, then 100 ms, plus jitter). */
    server_t *silent = start(MODE_SILENT);
    snprintf(url, sizeof url, "127.0.0.1:%u/", silent->port);
    const char *timed[] = {"--timeout-ms", "200", "--retries", "2", NULL};
    double t0 = now_s();
    ASSERT_EQ(run_crawl(timed, url, 1, out, sizeof out), 1);
    double took = now_s() - t0;
    expect(out, "error Connection timed out (after 3 attempts)");
    expect(out, "requests 1, attempts 3: 2xx 0, 3xx 0, 4xx 0, 5xx 0, errors 1");
    ASSERT_UEQ(atomic_load(&silent->requests), 3);
    ASSERT_TRUE(took >= 0.6 + 0.15); /* never sooner than the timeouts and back-offs */

    /* 503: retried, then reported as the answer it is. */
    server_t *busy = start(MODE_UNAVAILABLE);
    snprintf(url, sizeof url, "127.0.0.1:%u/", busy->port);
    const char *once_more[] = {"--retries", "1", NULL};
    ASSERT_EQ(run_crawl(once_more, url, 1, out, sizeof out), 0);
    expect(out, "503 ");
    expect(out, "requests 1, attempts 2: 2xx 0, 3xx 0, 4xx 0, 5xx 1, errors 0");

    /* Bad arguments. */
    const char *none[] = {NULL};
    ASSERT_EQ(run_crawl(none, "https://127.0.0.1/", 1, out, sizeof out), 2);
    ASSERT_EQ(run_crawl(none, "127.0.0.1:99999/", 1, out, sizeof out), 2);
    ASSERT_EQ(run_crawl(none, "127.0.0.1/a b", 1, out, sizeof out), 2);
    ASSERT_EQ(run_crawl(none, "127.0.0.1/x", 0, out, sizeof out), 2);
    puts("ok");
    return 0;
}
