/*
 * http_server - HTTP/1.1 on mag_serve: hello world and an echo, with
 * keep-alive and pipelining.
 *
 *   http_server [--port P] [--workers N] [--grace-ms MS] [--header-timeout-ms MS]
 *               [--idle-timeout-ms MS] [--send-timeout-ms MS] [--max-conns N]
 *
 * GET / (or HEAD /) answers 200 "Hello, World!"; POST /echo answers the
 * request body back with a Content-Length, whether it came with a
 * Content-Length or chunked; other paths 404; other methods 405. Framing
 * follows RFC 9112 (magpie/http1.h): a malformed request (a missing,
 * repeated or bad Host included) gets 400, a request target over 8 KiB 414,
 * a head over 8 KiB 431, a body over MAX_BODY 413, a transfer coding other
 * than chunked 501, HTTP/2+ on this port 505; after those the connection is
 * closed. A request body is read (and, but for /echo, dropped) before the
 * request is answered, so the connection stays in step.
 *
 * Each connection's buffers live in one heap record, not on its task's
 * stack, so the server runs with the smallest stacks (MAG_STACK_SIZE=16k).
 * For GET the per-request path allocates nothing and makes no system call
 * of its own: every complete request in what one receive brought is
 * answered (pipelining) into the output buffer, sent with one send.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <magpie.h>
#include <magpie/http1.h>

#define IN_SIZE (2 * MAG_HTTP_MAX_HEAD)
#define OUT_SIZE 16384
#define OUT_SLACK 512          /* more than any one response head below */
#define MAX_BODY (1024 * 1024) /* a request body beyond this gets 413 */
#define ECHO_KEEP (64 * 1024)  /* echo buffer capacity kept between requests */

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

/* What a request is routed to, decided from its head: the head's bytes may
 * be gone by the time its body has been read. */
typedef enum route {
    ROUTE_HELLO,          /* GET / */
    ROUTE_HELLO_HEAD,     /* HEAD / */
    ROUTE_ECHO,           /* POST /echo */
    ROUTE_NOT_FOUND,      /* GET elsewhere */
    ROUTE_NOT_FOUND_HEAD, /* HEAD elsewhere */
    ROUTE_NOT_ALLOWED,    /* any other method */
    ROUTE_ECHO_NOT_ALLOWED,
} route_t;

/* One connection's state, on the heap: a task's stack holds only frames. */
typedef struct conn {
    int fd;
    bool in_body;  /* a head was answered-to-be; its body is being read */
    bool keep;     /* the connection may serve another request */
    bool http10;   /* HTTP/1.0: keep-alive must be said */
    route_t route; /* of the request whose body is being read */
    mag_http_body_t body;
    char *echo; /* POST /echo: the body so far */
    size_t echo_len, echo_cap;
    size_t ilen;            /* bytes in in[] */
    mag_http_request_t req; /* valid only until in[] moves */
    out_t out;
    char in[IN_SIZE];
} conn_t;

#define LIT(s) s, sizeof(s) - 1

static void put(out_t *o, const char *s, size_t n)
{
    if (n == 0)
        return; /* s may be NULL then (an empty echo), which memcpy must not get */
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void put_u64(out_t *o, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0)
        o->buf[o->len++] = digits[--n];
}

static const char hello_head[] = "HTTP/1.1 200 OK\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "Content-Length: 13\r\n";
static const char hello_body[] = "Hello, World!";
static const char echo_head[] = "HTTP/1.1 200 OK\r\n"
                                "Content-Type: application/octet-stream\r\n"
                                "Content-Length: ";
static const char not_found_head[] = "HTTP/1.1 404 Not Found\r\n"
                                     "Content-Type: text/plain\r\n"
                                     "Content-Length: 10\r\n";
static const char not_found_body[] = "Not Found\n";
static const char not_allowed_head[] = "HTTP/1.1 405 Method Not Allowed\r\n"
                                       "Allow: GET, HEAD\r\n"
                                       "Content-Length: 0\r\n";
static const char echo_not_allowed_head[] = "HTTP/1.1 405 Method Not Allowed\r\n"
                                            "Allow: POST\r\n"
                                            "Content-Length: 0\r\n";
static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* Final answers: the connection closes after them. */
#define FINAL(status) "HTTP/1.1 " status "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
static const char bad_request[] = FINAL("400 Bad Request");
static const char too_large[] = FINAL("413 Content Too Large");
static const char uri_too_long[] = FINAL("414 URI Too Long");
static const char head_too_large[] = FINAL("431 Request Header Fields Too Large");
static const char server_error[] = FINAL("500 Internal Server Error");
static const char not_implemented[] = FINAL("501 Not Implemented");
static const char bad_version[] = FINAL("505 HTTP Version Not Supported");

static bool is(const char *s, uint32_t n, const char *lit)
{
    return n == strlen(lit) && !memcmp(s, lit, n);
}

static route_t route_of(const mag_http_request_t *req)
{
    bool get = is(req->method, req->method_len, "GET");
    bool head = is(req->method, req->method_len, "HEAD");
    if (is(req->target, req->target_len, "/echo"))
        return is(req->method, req->method_len, "POST") ? ROUTE_ECHO : ROUTE_ECHO_NOT_ALLOWED;
    if (!get && !head)
        return ROUTE_NOT_ALLOWED;
    if (is(req->target, req->target_len, "/"))
        return get ? ROUTE_HELLO : ROUTE_HELLO_HEAD;
    return get ? ROUTE_NOT_FOUND : ROUTE_NOT_FOUND_HEAD;
}

static int flush(conn_t *c)
{
    if (c->out.len == 0)
        return 0;
    ssize_t r = mag_send_all(c->fd, c->out.buf, c->out.len, 0);
    c->out.len = 0;
    return r < 0 ? (int)r : 0;
}

static void put_connection(conn_t *c)
{
    if (!c->keep)
        put(&c->out, LIT("Connection: close\r\n"));
    else if (c->http10)
        put(&c->out, LIT("Connection: keep-alive\r\n"));
    put(&c->out, LIT("\r\n"));
}

/* Answers the request whose body has just ended. Returns 0 or a send
 * error. */
static int respond(conn_t *c)
{
    out_t *o = &c->out;
    switch (c->route) {
    case ROUTE_HELLO:
    case ROUTE_HELLO_HEAD:
        put(o, LIT(hello_head));
        put_connection(c);
        if (c->route == ROUTE_HELLO)
            put(o, LIT(hello_body));
        break;
    case ROUTE_NOT_FOUND:
    case ROUTE_NOT_FOUND_HEAD:
        put(o, LIT(not_found_head));
        put_connection(c);
        if (c->route == ROUTE_NOT_FOUND)
            put(o, LIT(not_found_body));
        break;
    case ROUTE_NOT_ALLOWED:
        put(o, LIT(not_allowed_head));
        put_connection(c);
        break;
    case ROUTE_ECHO_NOT_ALLOWED:
        put(o, LIT(echo_not_allowed_head));
        put_connection(c);
        break;
    case ROUTE_ECHO:
        put(o, LIT(echo_head));
        put_u64(o, c->echo_len);
        put(o, LIT("\r\n"));
        put_connection(c);
        if (c->echo_len <= OUT_SIZE - o->len) {
            put(o, c->echo, c->echo_len);
        } else {
            int rc = flush(c);
            if (rc < 0)
                return rc;
            ssize_t r = mag_send_all(c->fd, c->echo, c->echo_len, 0);
            if (r < 0)
                return (int)r;
        }
        c->echo_len = 0;
        if (c->echo_cap > ECHO_KEEP) { /* an idle connection holds little */
            free(c->echo);
            c->echo = NULL;
            c->echo_cap = 0;
        }
        break;
    }
    if (o->len > OUT_SIZE - OUT_SLACK)
        return flush(c);
    return 0;
}

/* Keeps n more body bytes for the echo; the decoder's limit bounds the
 * total by MAX_BODY. */
static int keep_echo(conn_t *c, const char *p, size_t n)
{
    if (c->echo_len + n > c->echo_cap) {
        size_t cap = c->echo_cap ? c->echo_cap : 4096;
        while (cap < c->echo_len + n)
            cap *= 2;
        char *grown = realloc(c->echo, cap);
        if (!grown)
            return -ENOMEM;
        c->echo = grown;
        c->echo_cap = cap;
    }
    memcpy(c->echo + c->echo_len, p, n);
    c->echo_len += n;
    return 0;
}

/* The final answer for a head the parser rejected. */
static void reject_head(conn_t *c, int err)
{
    switch (err) {
    case -ENAMETOOLONG:
        put(&c->out, LIT(uri_too_long));
        break;
    case -EMSGSIZE:
        put(&c->out, LIT(head_too_large));
        break;
    case -EOPNOTSUPP:
        put(&c->out, LIT(not_implemented));
        break;
    case -EPROTONOSUPPORT:
        put(&c->out, LIT(bad_version));
        break;
    default:
        put(&c->out, LIT(bad_request));
        break;
    }
}

/* Starts on a parsed head: routes it and readies its body's decoder.
 * *rest is what follows the head in the buffer. Returns 0, or 1 when a
 * final answer has been put (the connection closes), or a send error. */
static int start_request(conn_t *c, size_t rest)
{
    const mag_http_request_t *req = &c->req;
    c->route = route_of(req);
    c->keep = (req->flags & MAG_HTTP_KEEP_ALIVE) != 0;
    c->http10 = req->minor_version == 0;
    int rc = mag_http_body_init(&c->body, req->framing, req->content_length, MAX_BODY);
    if (rc < 0) {
        put(&c->out, LIT(too_large)); /* a Content-Length over MAX_BODY */
        return 1;
    }
    c->in_body = true;
    mag_conn_phase(MAG_CONN_ACTIVE); /* a whole head: the next one's clock starts afresh */
    /* A client that waits for leave to send the body (RFC 9110 section
     * 10.1.1) gets it, unless some of the body is already here. */
    const mag_http_header_t *expect = mag_http_find_header(req, "expect");
    if (expect && !c->http10 && rest == 0 && !mag_http_body_done(&c->body) &&
        expect->value_len == 12 && !strncasecmp(expect->value, "100-continue", 12)) {
        put(&c->out, LIT(continue_100));
        return flush(c);
    }
    return 0;
}

/* Handles everything complete in in[0, ilen): bodies, then heads. Returns
 * the bytes used (an incomplete head stays), with *final set when a final
 * answer has been put, or a negative send error. */
static ssize_t handle_input(conn_t *c, bool *final)
{
    size_t pos = 0;
    for (;;) {
        if (c->in_body) {
            size_t used, n;
            const char *p;
            int rc = mag_http_body_feed(&c->body, c->in + pos, c->ilen - pos, &used, &p, &n);
            pos += used;
            if (n && c->route == ROUTE_ECHO && keep_echo(c, p, n) < 0) {
                put(&c->out, LIT(server_error));
                *final = true;
                return (ssize_t)pos;
            }
            if (rc < 0) {
                put(&c->out, rc == -EFBIG ? too_large : bad_request,
                    rc == -EFBIG ? sizeof too_large - 1 : sizeof bad_request - 1);
                *final = true;
                return (ssize_t)pos;
            }
            if (rc == 0) {
                if (pos == c->ilen)
                    return (ssize_t)pos;
                continue;
            }
            c->in_body = false;
            if ((rc = respond(c)) < 0)
                return rc;
            if (!c->keep) {
                *final = true;
                return (ssize_t)pos;
            }
            continue;
        }
        if (pos == c->ilen)
            return (ssize_t)pos;
        int h = mag_http_parse_request(c->in + pos, c->ilen - pos, &c->req);
        if (h == 0)
            return (ssize_t)pos; /* incomplete: read more */
        if (h < 0) {
            reject_head(c, h);
            *final = true;
            return (ssize_t)pos;
        }
        pos += (size_t)h;
        int rc = start_request(c, c->ilen - pos);
        if (rc != 0) {
            *final = rc > 0;
            return rc > 0 ? (ssize_t)pos : rc;
        }
    }
}

/* Closing with unread input makes the kernel send a reset, which can destroy
 * the answer just sent before the client reads it. So after a final answer:
 * shut our side, then read and drop what the client still sends, for a
 * bounded time and amount (nginx's lingering close). */
static void linger(conn_t *c)
{
    size_t total = 0;
    shutdown(c->fd, SHUT_WR);
    uint64_t token = mag_deadline_push(mag_now() + 500 * MAG_MS);
    while (total < 256 * 1024) {
        ssize_t n = mag_recv(c->fd, c->in, sizeof c->in, 0);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    mag_deadline_pop(token);
}

static int serve_conn(conn_t *c)
{
    for (;;) {
        /* Tell the server what this read waits for (its timeouts): the next
         * request, the rest of a head, or a body. */
        mag_conn_phase(c->in_body     ? MAG_CONN_ACTIVE
                       : c->ilen == 0 ? MAG_CONN_IDLE
                                      : MAG_CONN_HEADER);
        ssize_t n = mag_recv(c->fd, c->in + c->ilen, sizeof c->in - c->ilen, 0);
        if (n <= 0)
            return (int)n; /* EOF, reset, cut by a timeout, or cancelled */
        c->ilen += (size_t)n;
        bool final = false;
        ssize_t used = handle_input(c, &final);
        if (used < 0)
            return 0; /* the client went away mid-answer */
        if (flush(c) < 0)
            return 0;
        if (final) {
            linger(c);
            return 0;
        }
        /* Keep the incomplete head (< MAG_HTTP_MAX_HEAD bytes, else the
         * parser said 414 or 431) at the front. */
        memmove(c->in, c->in + used, c->ilen - (size_t)used);
        c->ilen -= (size_t)used;
    }
}

static int http_conn(int fd, void *ctx)
{
    (void)ctx;
    conn_t *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fd = fd;
    c->in_body = false;
    c->echo = NULL;
    c->echo_len = c->echo_cap = 0;
    c->ilen = 0;
    c->out.len = 0;
    int rc = serve_conn(c);
    free(c->echo);
    free(c);
    return rc;
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
