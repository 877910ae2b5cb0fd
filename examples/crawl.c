/*
 * crawl - fetch a list of URLs over HTTP/1.1 the way an asyncio crawler with
 * an aiohttp connection pool does: at most K requests in flight (a
 * semaphore), keep-alive connections reused per host (a pool of idle
 * connections), a timeout per request, retries with exponential back-off,
 * and a summary at the end.
 *
 *   crawl [--concurrency K] [--timeout-ms T] [--retries R] [--per-host N]
 *         [--workers W] [--quiet] URL... | -
 *
 * A URL is [http://]host[:port][/path] (port 80 by default); "-" reads one
 * URL per line from standard input. Each response's body is read and counted
 * (Content-Length, chunked, or until the server closes), never kept.
 * Retried: connection failures, timeouts, 5xx answers and a reused
 * connection that the server had closed (that one at once, without counting
 * an attempt: servers drop idle keep-alive connections). Not retried: 4xx,
 * malformed responses. Each line of output is one fetch unless --quiet:
 *     200 0.41 ms 13 B http://127.0.0.1:8080/
 * then the summary: requests, status counts, errors, bytes, connections
 * opened and reused, latency percentiles (of successful fetches, over all
 * attempts). Exit status 0 when every URL got a response (any status), 1
 * otherwise, 2 for bad arguments.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <magpie.h>
#include <magpie/http1.h>

#define MAX_HOST 255
#define MAX_PATH 2048
#define RESP_BUF 16384 /* a response head must fit (MAG_HTTP_MAX_HEAD is less) */

typedef struct opts {
    unsigned concurrency, retries, per_host, workers;
    uint64_t timeout_ns;
    bool quiet;
    char **urls;
    size_t nurls;
} opts_t;

typedef struct url {
    char host[MAX_HOST + 1];
    uint16_t port;
    char path[MAX_PATH + 1];
} url_t;

/* One host's idle keep-alive connections (the pool). */
typedef struct host {
    struct host *next;
    char name[MAX_HOST + 1];
    uint16_t port;
    int *idle; /* per_host descriptors at most */
    unsigned nidle;
} host_t;

/* A connection in use, with what has been read past the last response. */
typedef struct conn {
    int fd;
    bool reused; /* taken from the pool: the server may have closed it */
    char *buf;   /* RESP_BUF bytes */
    size_t len;  /* bytes in buf not yet parsed */
} conn_t;

/* What one fetch found. */
typedef struct result {
    int status; /* > 0: the HTTP status; < 0: the last error */
    uint64_t bytes, latency_ns;
    unsigned attempts;
} result_t;

typedef struct crawl {
    const opts_t *o;
    mag_sem_t in_flight;
    mag_mutex_t lock; /* the hosts and the counters below */
    host_t *hosts;
    uint64_t opened, reused;
    result_t *results; /* one per URL, written by its own task */
} crawl_t;

typedef struct job {
    crawl_t *c;
    size_t index;
} job_t;

/* ---- URLs ---------------------------------------------------------------- */

static int parse_url(const char *s, url_t *u)
{
    if (!strncmp(s, "http://", 7))
        s += 7;
    else if (strstr(s, "://"))
        return -EPROTONOSUPPORT; /* https and the rest: not this example */
    size_t hlen = strcspn(s, ":/");
    if (hlen == 0 || hlen > MAX_HOST)
        return -EINVAL;
    memcpy(u->host, s, hlen);
    u->host[hlen] = 0;
    s += hlen;
    u->port = 80;
    if (*s == ':') {
        /* Parsed by hand, not with strtol: this runs in a task, where
         * errno is not safe to use (README, Rules for task code). */
        long p = 0;
        const char *d = s + 1;
        while (*d >= '0' && *d <= '9' && p <= 65535)
            p = p * 10 + (*d++ - '0');
        if (d == s + 1 || p < 1 || p > 65535 || (*d && *d != '/'))
            return -EINVAL;
        u->port = (uint16_t)p;
        s = d;
    }
    const char *path = *s ? s : "/";
    size_t plen = strlen(path);
    if (plen > MAX_PATH)
        return -ENAMETOOLONG;
    for (size_t i = 0; i < plen; i++) /* a request line cannot carry these */
        if ((unsigned char)path[i] <= ' ' || path[i] == 0x7f)
            return -EINVAL;
    memcpy(u->path, path, plen + 1);
    return 0;
}

/* ---- the connection pool ------------------------------------------------- */

/* The host's record, created on first use. Under c->lock. */
static host_t *host_of(crawl_t *c, const url_t *u)
{
    for (host_t *h = c->hosts; h; h = h->next)
        if (h->port == u->port && !strcmp(h->name, u->host))
            return h;
    host_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (!(h->idle = calloc(c->o->per_host, sizeof *h->idle))) {
        free(h);
        return NULL;
    }
    strcpy(h->name, u->host);
    h->port = u->port;
    h->next = c->hosts;
    c->hosts = h;
    return h;
}

/* An idle connection to u's host, or a new one. */
static int conn_get(crawl_t *c, const url_t *u, conn_t *k, bool fresh)
{
    k->fd = -1;
    k->len = 0;
    if (!fresh) {
        int rc = mag_mutex_lock(&c->lock); /* fails only when cancelled or timed out */
        if (rc < 0)
            return rc;
        host_t *h = host_of(c, u);
        if (h && h->nidle > 0) {
            k->fd = h->idle[--h->nidle];
            c->reused++;
        }
        mag_mutex_unlock(&c->lock);
    }
    k->reused = k->fd >= 0;
    if (k->fd >= 0)
        return 0;
    int fd = mag_tcp_connect(u->host, u->port);
    if (fd < 0)
        return fd;
    k->fd = fd;
    int rc = mag_mutex_lock(&c->lock);
    if (rc < 0)
        return rc; /* k->fd is closed by conn_put */
    c->opened++;
    mag_mutex_unlock(&c->lock);
    return 0;
}

/* Back into the pool when the response left the connection reusable and
 * nothing unread follows it; closed otherwise. */
static void conn_put(crawl_t *c, const url_t *u, conn_t *k, bool reusable)
{
    if (k->fd < 0)
        return;
    if (reusable && k->len == 0 && mag_mutex_lock(&c->lock) == 0) {
        host_t *h = host_of(c, u);
        bool kept = h && h->nidle < c->o->per_host;
        if (kept)
            h->idle[h->nidle++] = k->fd;
        mag_mutex_unlock(&c->lock);
        if (kept) {
            k->fd = -1;
            return;
        }
    }
    mag_close(k->fd);
    k->fd = -1;
}

/* ---- one request --------------------------------------------------------- */

/* Reads more into k->buf; the count, 0 at EOF, or an error. */
static ssize_t fill(conn_t *k)
{
    if (k->len == RESP_BUF)
        return -EMSGSIZE;
    return mag_recv(k->fd, k->buf + k->len, RESP_BUF - k->len, 0);
}

static void drop(conn_t *k, size_t n)
{
    memmove(k->buf, k->buf + n, k->len - n);
    k->len -= n;
}

/* Sends the request and reads the whole response, counting its body.
 * Returns the status, or a negative errno; *reusable says whether the
 * connection may carry another request. -ECONNABORTED: the connection closed
 * before any byte of a response arrived (a stale keep-alive connection). */
static int exchange(conn_t *k, const url_t *u, uint64_t *bytes, bool *reusable)
{
    *reusable = false;
    char req[MAX_PATH + MAX_HOST + 128];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%u\r\nUser-Agent: magpie-crawl\r\n"
                     "Accept: */*\r\n\r\n",
                     u->path, u->host, (unsigned)u->port);
    ssize_t w = mag_send_all(k->fd, req, (size_t)n, 0);
    if (w < 0)
        return w == -EPIPE || w == -ECONNRESET ? -ECONNABORTED : (int)w;

    mag_http_response_t *resp = malloc(sizeof *resp);
    if (!resp)
        return -ENOMEM;
    int head;
    bool any = false;
    for (;;) { /* the head, skipping interim 1xx responses */
        head = k->len ? mag_http_parse_response(k->buf, k->len, 0, resp) : 0;
        if (head > 0 && resp->status >= 100 && resp->status < 200 && resp->status != 101) {
            drop(k, (size_t)head);
            continue;
        }
        if (head != 0)
            break;
        ssize_t r = fill(k);
        if (r <= 0) {
            head = r == 0 || r == -ECONNRESET ? (any ? -EBADMSG : -ECONNABORTED) : (int)r;
            break;
        }
        any = true;
        k->len += (size_t)r;
    }
    if (head < 0) {
        free(resp);
        return head;
    }
    int status = resp->status;
    bool keep = resp->flags & MAG_HTTP_KEEP_ALIVE;
    mag_http_body_t body;
    int rc = mag_http_body_init(&body, resp->framing, resp->content_length, UINT64_MAX);
    free(resp);
    if (rc < 0)
        return rc;
    drop(k, (size_t)head);

    *bytes = 0;
    for (;;) {
        while (k->len > 0 && !mag_http_body_done(&body)) {
            size_t used = 0, out_len = 0;
            const char *out = NULL;
            rc = mag_http_body_feed(&body, k->buf, k->len, &used, &out, &out_len);
            if (rc < 0)
                return rc;
            *bytes += out_len;
            drop(k, used);
        }
        if (mag_http_body_done(&body))
            break;
        ssize_t r = fill(k);
        if (r == 0) {
            rc = mag_http_body_finish(&body); /* close-delimited ends here */
            if (rc < 0)
                return rc;
            keep = false;
            break;
        }
        if (r < 0)
            return (int)r;
        k->len += (size_t)r;
    }
    *reusable = keep;
    return status;
}

static bool retryable(int rc)
{
    return rc >= 500 || rc == -ETIMEDOUT || rc == -ECONNREFUSED || rc == -ECONNRESET ||
           rc == -ECONNABORTED || rc == -EPIPE || rc == -ENETUNREACH || rc == -EHOSTUNREACH ||
           rc == -EAGAIN;
}

/* One URL: attempts with back-off until a response that is not retried. */
static int fetch(void *arg)
{
    job_t *j = arg;
    crawl_t *c = j->c;
    const opts_t *o = c->o;
    result_t *res = &c->results[j->index];
    url_t *u = malloc(sizeof *u);
    conn_t k = {.fd = -1, .buf = malloc(RESP_BUF)};
    int rc = !u || !k.buf ? -ENOMEM : parse_url(o->urls[j->index], u);
    if (rc < 0) {
        res->status = rc;
        goto out;
    }
    if ((rc = mag_sem_acquire(&c->in_flight)) < 0) {
        res->status = rc;
        goto out;
    }
    uint64_t backoff = 50 * MAG_MS;
    bool fresh = false; /* true: do not take a pooled connection */
    for (;;) {
        uint64_t start = mag_now();
        uint64_t token = mag_deadline_push(start + o->timeout_ns);
        uint64_t bytes = 0;
        bool reusable = false;
        rc = conn_get(c, u, &k, fresh);
        if (rc == 0) {
            rc = exchange(&k, u, &bytes, &reusable);
            if (rc == -ECONNABORTED && k.reused) {
                /* The server had closed the pooled connection: not an
                 * attempt of ours. Try again on a new one. */
                mag_deadline_pop(token);
                conn_put(c, u, &k, false);
                fresh = true;
                continue;
            }
        }
        mag_deadline_pop(token);
        conn_put(c, u, &k, rc > 0 && reusable);
        res->attempts++;
        if (rc > 0) {
            res->bytes = bytes;
            res->latency_ns = mag_now() - start;
        }
        res->status = rc;
        if (!retryable(rc) || res->attempts > o->retries)
            break;
        /* Exponential back-off with jitter, as aiohttp-retry does. */
        if (mag_sleep(backoff + (uint64_t)rand() % (backoff / 2 + 1)) < 0)
            break;
        backoff *= 2;
        fresh = false;
    }
    mag_sem_release(&c->in_flight);
    if (!o->quiet) {
        if (res->status > 0)
            printf("%d %.2f ms %llu B %s\n", res->status, (double)res->latency_ns / 1e6,
                   (unsigned long long)res->bytes, o->urls[j->index]);
        else
            printf("error %s (after %u attempts) %s\n", strerror(-res->status), res->attempts,
                   o->urls[j->index]);
    }
out:
    free(u);
    free(k.buf);
    return 0;
}

/* ---- the summary --------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void summary(const crawl_t *c, size_t n)
{
    unsigned classes[6] = {0}; /* 1xx..5xx, and errors in [0] */
    uint64_t bytes = 0, attempts = 0;
    uint64_t *lat = malloc((n ? n : 1) * sizeof *lat);
    size_t nlat = 0;
    for (size_t i = 0; i < n; i++) {
        const result_t *r = &c->results[i];
        attempts += r->attempts;
        if (r->status > 0) {
            classes[r->status / 100 <= 5 ? r->status / 100 : 5]++;
            bytes += r->bytes;
            if (lat)
                lat[nlat++] = r->latency_ns;
        } else {
            classes[0]++;
        }
    }
    printf("requests %zu, attempts %llu: 2xx %u, 3xx %u, 4xx %u, 5xx %u, errors %u\n", n,
           (unsigned long long)attempts, classes[2], classes[3], classes[4], classes[5],
           classes[0]);
    printf("bytes %llu, connections opened %llu, reused %llu\n", (unsigned long long)bytes,
           (unsigned long long)c->opened, (unsigned long long)c->reused);
    if (nlat) {
        qsort(lat, nlat, sizeof *lat, cmp_u64);
        const double q[] = {0.5, 0.9, 0.99, 1.0};
        const char *name[] = {"p50", "p90", "p99", "max"};
        printf("latency");
        for (int i = 0; i < 4; i++) {
            size_t at = (size_t)(q[i] * (double)(nlat - 1) + 0.5);
            printf(" %s %.2f ms", name[i], (double)lat[at] / 1e6);
        }
        printf("\n");
    }
    free(lat);
}

static int crawl_main(void *arg)
{
    const opts_t *o = arg;
    crawl_t c = {.o = o};
    int rc = mag_sem_init(&c.in_flight, o->concurrency);
    if (rc == 0)
        rc = mag_mutex_init(&c.lock);
    c.results = calloc(o->nurls ? o->nurls : 1, sizeof *c.results);
    job_t *jobs = calloc(o->nurls ? o->nurls : 1, sizeof *jobs);
    mag_group_t *g = mag_group_create(0);
    if (rc < 0 || !c.results || !jobs || !g) {
        fprintf(stderr, "crawl: %s\n", strerror(rc < 0 ? -rc : ENOMEM));
        return rc < 0 ? rc : -ENOMEM;
    }
    for (size_t i = 0; i < o->nurls; i++) {
        jobs[i] = (job_t){&c, i};
        if ((rc = mag_group_spawn(g, fetch, &jobs[i])) < 0) {
            c.results[i].status = rc;
            break;
        }
    }
    mag_group_wait(g);
    mag_group_destroy(g);
    summary(&c, o->nurls);
    bool all_answered = true;
    for (size_t i = 0; i < o->nurls; i++)
        all_answered &= c.results[i].status > 0;
    for (host_t *h = c.hosts, *next; h; h = next) {
        next = h->next;
        for (unsigned i = 0; i < h->nidle; i++)
            mag_close(h->idle[i]);
        free(h->idle);
        free(h);
    }
    free(jobs);
    free(c.results);
    return all_answered ? 0 : 1;
}

/* ---- arguments ----------------------------------------------------------- */

static long parse_num(const char *flag, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "crawl: %s wants a number in %ld..%ld\n", flag, lo, hi);
        exit(2);
    }
    return v;
}

/* Appends one URL (a copy) to o->urls. */
static void add_url(opts_t *o, size_t *cap, const char *s)
{
    if (o->nurls == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        char **urls = realloc(o->urls, *cap * sizeof *urls);
        if (!urls) {
            fprintf(stderr, "crawl: out of memory\n");
            exit(1);
        }
        o->urls = urls;
    }
    if (!(o->urls[o->nurls++] = strdup(s))) {
        fprintf(stderr, "crawl: out of memory\n");
        exit(1);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: crawl [--concurrency K] [--timeout-ms T] [--retries R] "
                    "[--per-host N] [--workers W] [--quiet] URL... | -\n");
    exit(2);
}

int main(int argc, char **argv)
{
    opts_t o = {.concurrency = 10, .retries = 2, .per_host = 8, .timeout_ns = 5000 * MAG_MS};
    size_t cap = 0;
    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--concurrency"))
            o.concurrency = (unsigned)parse_num(argv[i], next, 1, 100000), i++;
        else if (!strcmp(argv[i], "--timeout-ms"))
            o.timeout_ns = (uint64_t)parse_num(argv[i], next, 1, 3600000) * MAG_MS, i++;
        else if (!strcmp(argv[i], "--retries"))
            o.retries = (unsigned)parse_num(argv[i], next, 0, 100), i++;
        else if (!strcmp(argv[i], "--per-host"))
            o.per_host = (unsigned)parse_num(argv[i], next, 1, 10000), i++;
        else if (!strcmp(argv[i], "--workers"))
            o.workers = (unsigned)parse_num(argv[i], next, 1, MAG_MAX_WORKERS), i++;
        else if (!strcmp(argv[i], "--quiet"))
            o.quiet = true;
        else if (!strcmp(argv[i], "-")) {
            char line[MAX_PATH + MAX_HOST + 64];
            while (fgets(line, sizeof line, stdin)) {
                line[strcspn(line, "\r\n")] = 0;
                if (line[0])
                    add_url(&o, &cap, line);
            }
        } else if (argv[i][0] == '-')
            usage();
        else
            add_url(&o, &cap, argv[i]);
    }
    if (o.nurls == 0)
        usage();
    int rc = 0, status = 2;
    for (size_t i = 0; i < o.nurls && rc == 0; i++) { /* bad URLs are the caller's to fix */
        url_t u;
        if ((rc = parse_url(o.urls[i], &u)) < 0)
            fprintf(stderr, "crawl: %s: %s\n", o.urls[i], strerror(-rc));
    }
    if (rc == 0) {
        mag_config_t cfg;
        mag_config_init(&cfg);
        if (o.workers)
            cfg.workers = o.workers;
        status = 1;
        rc = mag_run(&cfg, crawl_main, &o, &status);
        if (rc < 0) {
            fprintf(stderr, "crawl: %s\n", strerror(-rc));
            status = 1;
        }
    }
    for (size_t i = 0; i < o.nurls; i++)
        free(o.urls[i]);
    free(o.urls);
    return status;
}
