/*
 * http_server - HTTP/1.1 hello world on mag_serve, with keep-alive and
 * pipelining.
 *
 *   http_server [--port P] [--workers N] [--grace-ms MS] [--header-timeout-ms MS]
 *               [--idle-timeout-ms MS] [--send-timeout-ms MS] [--max-conns N]
 *
 * GET / (or HEAD /) answers 200 "Hello, World!"; other paths 404; other
 * methods 405. A malformed request gets 400 and the connection is closed; a
 * head over 8 KiB gets 431; HTTP/2+ on this port gets 505; a chunked body
 * gets 501 (bodies with Content-Length are read and discarded).
 *
 * The per-request path allocates nothing and makes no system call of its
 * own: each connection reads into a buffer on its task's stack, answers
 * every complete request in it (pipelining) into a second buffer, and sends
 * that with one send.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <magpie.h>
#include <magpie/http1.h>

#define IN_SIZE (2 * MAG_HTTP_MAX_HEAD)
#define OUT_SIZE 16384
#define OUT_SLACK 512 /* more than any one response head below */

typedef struct opts {
    long port;
    long workers;
    long grace_ms; /* how long requests in flight may take after SIGINT/SIGTERM */
    long header_timeout_ms, idle_timeout_ms, send_timeout_ms; /* 0: none */
    long max_conns;                                           /* 0: none */
} opts_t;

typedef struct out {
    char buf[OUT_SIZE];
    size_t len;
} out_t;

#define LIT(s) s, sizeof(s) - 1

static void put(out_t *o, const char *s, size_t n)
{
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static const char hello_head[] = "HTTP/1.1 200 OK\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "Content-Length: 13\r\n";
static const char hello_body[] = "Hello, World!";
static const char not_found_head[] = "HTTP/1.1 404 Not Found\r\n"
                                     "Content-Type: text/plain\r\n"
                                     "Content-Length: 10\r\n";
static const char not_found_body[] = "Not Found\n";
static const char not_allowed_head[] = "HTTP/1.1 405 Method Not Allowed\r\n"
                                       "Allow: GET, HEAD\r\n"
                                       "Content-Length: 0\r\n";

/* Final answers: the connection closes after them. */
static const char bad_request[] = "HTTP/1.1 400 Bad Request\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char too_large[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char bad_version[] = "HTTP/1.1 505 HTTP Version Not Supported\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char not_implemented[] = "HTTP/1.1 501 Not Implemented\r\n"
                                      "Content-Length: 0\r\nConnection: close\r\n\r\n";

/* Answers one parsed request into o. */
static void respond(out_t *o, const mag_http_request_t *req, bool keep_alive)
{
    bool head = req->method_len == 4 && !memcmp(req->method, "HEAD", 4);
    bool get = req->method_len == 3 && !memcmp(req->method, "GET", 3);
    if (!get && !head) {
        put(o, LIT(not_allowed_head));
    } else if (req->target_len == 1 && req->target[0] == '/') {
        put(o, LIT(hello_head));
    } else {
        put(o, LIT(not_found_head));
    }
    if (!keep_alive)
        put(o, LIT("Connection: close\r\n"));
    else if (req->minor_version == 0)
        put(o, LIT("Connection: keep-alive\r\n"));
    put(o, LIT("\r\n"));
    if (head || (!get && !head))
        return;
    if (req->target_len == 1 && req->target[0] == '/')
        put(o, LIT(hello_body));
    else
        put(o, LIT(not_found_body));
}

static int flush(int fd, out_t *o)
{
    if (o->len == 0)
        return 0;
    ssize_t r = mag_send_all(fd, o->buf, o->len, 0);
    o->len = 0;
    return r < 0 ? (int)r : 0;
}

/* Closing with unread input makes the kernel send a reset, which can destroy
 * the answer just sent before the client reads it. So after a final answer:
 * shut our side, then read and drop what the client still sends, for a
 * bounded time and amount (nginx's lingering close). */
static void linger(int fd)
{
    char buf[4096];
    size_t total = 0;
    shutdown(fd, SHUT_WR);
    uint64_t token = mag_deadline_push(mag_now() + 500 * MAG_MS);
    while (total < 256 * 1024) {
        ssize_t n = mag_recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    mag_deadline_pop(token);
}

static int http_conn(int fd, void *ctx)
{
    (void)ctx;
    char in[IN_SIZE];
    out_t out;
    mag_http_request_t req;
    size_t ilen = 0;
    uint64_t body_left = 0; /* bytes of a request body still to discard */
    out.len = 0;
    for (;;) {
        /* Tell the server what this read waits for (its timeouts): the next
         * request, the rest of a head, or a body. */
        mag_conn_phase(body_left ? MAG_CONN_ACTIVE : ilen == 0 ? MAG_CONN_IDLE : MAG_CONN_HEADER);
        ssize_t n = mag_recv(fd, in + ilen, sizeof in - ilen, 0);
        if (n <= 0)
            return (int)n; /* EOF, reset, cut by a timeout, or cancelled */
        ilen += (size_t)n;
        size_t pos = 0;
        bool done = false;
        while (pos < ilen && !done) {
            if (body_left) {
                size_t k = ilen - pos < body_left ? ilen - pos : (size_t)body_left;
                pos += k;
                body_left -= k;
                continue;
            }
            int h = mag_http_parse_request(in + pos, ilen - pos, &req);
            if (h == 0)
                break; /* incomplete: read more */
            if (h < 0) {
                if (h == -EMSGSIZE)
                    put(&out, LIT(too_large));
                else if (h == -EPROTONOSUPPORT)
                    put(&out, LIT(bad_version));
                else
                    put(&out, LIT(bad_request));
                done = true;
                break;
            }
            pos += (size_t)h;
            mag_conn_phase(MAG_CONN_ACTIVE); /* a whole head: the next one's clock starts afresh */
            if (req.flags & MAG_HTTP_TRANSFER_ENCODING) {
                put(&out, LIT(not_implemented));
                done = true;
                break;
            }
            body_left = req.content_length;
            bool keep = (req.flags & MAG_HTTP_KEEP_ALIVE) != 0;
            respond(&out, &req, keep);
            if (!keep)
                done = true;
            else if (out.len > OUT_SIZE - OUT_SLACK && flush(fd, &out) < 0)
                return -EPIPE;
        }
        if (flush(fd, &out) < 0)
            return 0;
        if (done) {
            linger(fd);
            return 0;
        }
        /* Keep the incomplete head (< MAG_HTTP_MAX_HEAD bytes, else the
         * parser said 431) at the front. */
        memmove(in, in + pos, ilen - pos);
        ilen -= pos;
    }
}

/* SIGINT or SIGTERM cancels the serving task: mag_serve_ex stops accepting,
 * lets requests in flight finish within the grace period (idle keep-alive
 * connections are closed at once), and the program exits 0. */
static int on_signal(void *server)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    int sig = 0;
    if (mag_signal_wait(&stop, &sig) == 0) {
        fprintf(stderr, "http_server: %s, shutting down\n", strsignal(sig));
        mag_cancel(server);
    }
    return 0;
}

static int serve_main(void *arg)
{
    opts_t *o = arg;
    int lfd = mag_tcp_listen(NULL, (uint16_t)o->port, 4096);
    if (lfd < 0) {
        fprintf(stderr, "http_server: listen on port %ld: %s\n", o->port, strerror(-lfd));
        return lfd;
    }
    printf("listening on %d\n", mag_local_port(lfd));
    fflush(stdout);
    mag_detach(mag_spawn(on_signal, mag_self())); /* shutdown cancels it */
    mag_serve_opts_t sopts = {
        .grace_ns = (uint64_t)o->grace_ms * MAG_MS,
        .header_timeout_ns = (uint64_t)o->header_timeout_ms * MAG_MS,
        .idle_timeout_ns = (uint64_t)o->idle_timeout_ms * MAG_MS,
        .send_timeout_ns = (uint64_t)o->send_timeout_ms * MAG_MS,
        .max_conns = (size_t)o->max_conns,
    };
    int rc = mag_serve_ex(lfd, http_conn, NULL, &sopts);
    mag_close(lfd);
    return rc == -ECANCELED ? 0 : rc;
}

static long parse_num(const char *flag, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "http_server: %s wants a number in %ld..%ld\n", flag, lo, hi);
        exit(2);
    }
    return v;
}

/* The default cap on connections: the descriptor limit less a reserve for
 * the listener, the rings, the runtime's own and the lingering closes. */
static long default_max_conns(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    return rl.rlim_cur > 64 ? (long)rl.rlim_cur - 32 : (long)rl.rlim_cur / 2;
}

static const char usage[] =
    "usage: http_server [options]\n"
    "  --port P               listen on port P (0: any; default 0)\n"
    "  --workers N            worker threads (default: one per CPU)\n"
    "  --grace-ms MS          requests in flight may finish after SIGINT/SIGTERM (5000)\n"
    "  --header-timeout-ms MS the first byte, and each request head, within MS (10000)\n"
    "  --idle-timeout-ms MS   close keep-alive connections idle for MS (60000)\n"
    "  --send-timeout-ms MS   close a client that takes no data for MS (60000)\n"
    "  --max-conns N          at most N connections (default: RLIMIT_NOFILE - 32)\n"
    "  a timeout of 0, or --max-conns 0, means none\n";

int main(int argc, char **argv)
{
    opts_t o = {.port = 0,
                .workers = 0,
                .grace_ms = 5000,
                .header_timeout_ms = 10000,
                .idle_timeout_ms = 60000,
                .send_timeout_ms = 60000,
                .max_conns = default_max_conns()};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port"))
            o.port = parse_num("--port", i + 1 < argc ? argv[++i] : NULL, 0, 65535);
        else if (!strcmp(argv[i], "--workers"))
            o.workers = parse_num("--workers", i + 1 < argc ? argv[++i] : NULL, 1, MAG_MAX_WORKERS);
        else if (!strcmp(argv[i], "--grace-ms"))
            o.grace_ms = parse_num("--grace-ms", i + 1 < argc ? argv[++i] : NULL, 0, 3600000);
        else if (!strcmp(argv[i], "--header-timeout-ms"))
            o.header_timeout_ms =
                parse_num("--header-timeout-ms", i + 1 < argc ? argv[++i] : NULL, 0, 86400000);
        else if (!strcmp(argv[i], "--idle-timeout-ms"))
            o.idle_timeout_ms =
                parse_num("--idle-timeout-ms", i + 1 < argc ? argv[++i] : NULL, 0, 86400000);
        else if (!strcmp(argv[i], "--send-timeout-ms"))
            o.send_timeout_ms =
                parse_num("--send-timeout-ms", i + 1 < argc ? argv[++i] : NULL, 0, 86400000);
        else if (!strcmp(argv[i], "--max-conns"))
            o.max_conns = parse_num("--max-conns", i + 1 < argc ? argv[++i] : NULL, 0, 100000000);
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    sigset_t stop; /* caught from now on: a signal during start-up is kept */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    mag_signal_catch(&stop);
    mag_config_t cfg;
    mag_config_init(&cfg);
    if (o.workers)
        cfg.workers = (unsigned)o.workers;
    int status = 0;
    int rc = mag_run(&cfg, serve_main, &o, &status);
    if (rc < 0) {
        fprintf(stderr, "http_server: %s\n", strerror(-rc));
        return 1;
    }
    return status < 0 ? 1 : 0;
}
