/*
 * observe/debug.c - the observability threads of a runtime: the slow-task
 * watchdog and the SIGQUIT task dump (debug mode: cfg.debug or MAG_DEBUG=1),
 * the stats server (cfg.stats_path or MAG_STATS=/path/to.sock), and the
 * trace file written at shutdown (cfg.trace_path or MAG_TRACE=trace.json).
 *
 * All of them are plain threads, never tasks, so they keep working when
 * every worker is stuck in a task that does not suspend; each is started
 * with every signal blocked, so that none of the application's signals land
 * on it. What they read of the workers is described in metrics.c.
 *
 * SIGQUIT: the handler only writes a byte to a pipe (async-signal-safe, no
 * locks); a dedicated thread, shared by every runtime in debug mode, reads
 * the pipe and prints each runtime's task dump to stderr. A handler rather
 * than sigwait or a signalfd, because those need SIGQUIT blocked in every
 * thread of the process, including threads the application made before the
 * runtime existed: there, a SIGQUIT would still kill the process. The
 * previous disposition is restored when the last debug runtime shuts down;
 * the pipe is kept for the life of the process (so that a late signal never
 * writes into a reused descriptor).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "magpie/io.h"
#include "magpie/metrics.h"
#include "observe/observe.h"

#define STATS_MAX_CLIENTS 8
#define STATS_LINE_MAX 256

typedef struct stats_client {
    int fd;
    size_t len;
    char buf[STATS_LINE_MAX];
} stats_client_t;

typedef struct mag__obs mag__obs_t;
struct mag__obs {
    mag__obs_shared_t shared; /* first: the hooks' context (observe.h) */
    mag_runtime_t *rt;
    /* The watchdog. */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    bool stop;
    bool watchdog_on;
    pthread_t watchdog;
    uint64_t *reported; /* per worker: start of the last run reported */
    /* The stats server. */
    bool server_on;
    pthread_t server;
    int listen_fd;
    int stop_pipe[2];
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    stats_client_t clients[STATS_MAX_CLIENTS];
    /* SIGQUIT. */
    bool sigquit_on;
    mag__obs_t *sq_next;
};

/* ---- the slow-task watchdog ---------------------------------------------- */

static void watchdog_scan(mag__obs_t *obs, uint64_t slow_ns)
{
    mag_runtime_t *rt = obs->rt;
    uint64_t now = mag__now();
    for (unsigned i = 0; i < rt->nworkers; i++) {
        mag__obs_worker_t *o = &obs->shared.ow[i];
        /* acquire: pairs with the release in mag__obs_run_begin_slow. */
        uint64_t start = atomic_load_explicit(&o->start_ns, memory_order_acquire);
        if (!start || now <= start || now - start < slow_ns || start == obs->reported[i])
            continue;
        mag_task_t *t = atomic_load_explicit(&o->task, memory_order_relaxed);
        uint64_t id;
        char name[32];
        /* Exactly once per run: a run is known by its worker and its start. */
        obs->reported[i] = start;
        if (mag__obs_running_task(rt, t, start, &id, name))
            mag__warn("slow task '%s' (id %llu) has been running for %llu ms on worker %u "
                      "without suspending (slow_task_ms is %u)",
                      name[0] ? name : "(unnamed)", (unsigned long long)id,
                      (unsigned long long)((now - start) / MAG_MS), i, rt->cfg.slow_task_ms);
    }
}

static void *watchdog_main(void *arg)
{
    mag__obs_t *obs = arg;
    uint64_t slow = (uint64_t)obs->rt->cfg.slow_task_ms * MAG_MS;
    /* Look four times per slow_task_ms: a report comes at most a quarter
     * late. */
    uint64_t tick = slow / 4;
    if (tick < MAG_MS)
        tick = MAG_MS;
    if (tick > 50 * MAG_MS)
        tick = 50 * MAG_MS;
    pthread_mutex_lock(&obs->lock);
    while (!obs->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + tick;
        ts.tv_sec += (time_t)(ns / MAG_SEC);
        ts.tv_nsec = (long)(ns % MAG_SEC);
        pthread_cond_timedwait(&obs->cond, &obs->lock, &ts);
        if (obs->stop)
            break;
        pthread_mutex_unlock(&obs->lock);
        watchdog_scan(obs, slow);
        pthread_mutex_lock(&obs->lock);
    }
    pthread_mutex_unlock(&obs->lock);
    return NULL;
}

static void watchdog_start(mag__obs_t *obs)
{
    obs->reported = calloc(obs->rt->nworkers, sizeof *obs->reported);
    if (!obs->reported)
        goto fail;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&obs->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&obs->lock, NULL);
    if (mag__thread_start(&obs->watchdog, watchdog_main, obs) == 0) {
        /* Named here, as the monitor is (monitor.c), so that the name is
         * there once the runtime has started. */
        (void)pthread_setname_np(obs->watchdog, "magpie-slowtask");
        obs->watchdog_on = true;
        return;
    }
    pthread_cond_destroy(&obs->cond);
    pthread_mutex_destroy(&obs->lock);
fail:
    mag__warn("debug mode: could not start the slow-task watchdog");
}

static void watchdog_stop(mag__obs_t *obs)
{
    if (obs->watchdog_on) {
        pthread_mutex_lock(&obs->lock);
        obs->stop = true;
        pthread_cond_signal(&obs->cond);
        pthread_mutex_unlock(&obs->lock);
        pthread_join(obs->watchdog, NULL);
        pthread_cond_destroy(&obs->cond);
        pthread_mutex_destroy(&obs->lock);
        obs->watchdog_on = false;
    }
    free(obs->reported);
    obs->reported = NULL;
}

/* ---- SIGQUIT ------------------------------------------------------------- */

static pthread_mutex_t sq_life = PTHREAD_MUTEX_INITIALIZER; /* thread start / stop */
static pthread_mutex_t sq_lock = PTHREAD_MUTEX_INITIALIZER; /* sq_list */
static mag__obs_t *sq_list;
static unsigned sq_users;       /* under sq_life */
static int sq_rfd = -1;         /* under sq_life; read by the thread it starts */
static _Atomic int sq_wfd = -1; /* read by the handler */
static pthread_t sq_thread;
static struct sigaction sq_prev;

static void on_sigquit(int sig)
{
    (void)sig;
    int saved = errno;
    /* relaxed: stored before sigaction installed this handler, and the
     * system call orders the two. A lock-free atomic is async-signal-safe. */
    int fd = atomic_load_explicit(&sq_wfd, memory_order_relaxed);
    if (fd >= 0) {
        ssize_t r = write(fd, "q", 1); /* nonblocking: a full pipe has a dump pending */
        (void)r;
    }
    errno = saved;
}

static void *sigquit_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "magpie-sigquit");
    int fd = *(int *)arg;
    free(arg);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, -1) < 0)
            continue;
        char buf[64];
        bool dump = false, quit = false;
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            for (ssize_t i = 0; i < n; i++) {
                dump |= buf[i] == 'q';
                quit |= buf[i] == 'x';
            }
        if (dump) {
            pthread_mutex_lock(&sq_lock);
            for (mag__obs_t *o = sq_list; o; o = o->sq_next) {
                fprintf(stderr, "magpie: SIGQUIT: tasks of runtime %p\n", (void *)o->rt);
                mag_dump_tasks(o->rt, stderr);
            }
            pthread_mutex_unlock(&sq_lock);
        }
        if (quit)
            return NULL;
    }
}

static void sigquit_register(mag__obs_t *obs)
{
    pthread_mutex_lock(&sq_life);
    if (sq_rfd < 0) {
        int p[2];
        if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
            pthread_mutex_unlock(&sq_life);
            mag__warn("debug mode: no SIGQUIT dumps (pipe: %s)", strerror(errno));
            return;
        }
        sq_rfd = p[0];
        atomic_store_explicit(&sq_wfd, p[1], memory_order_relaxed);
    }
    if (sq_users == 0) {
        int *fd = malloc(sizeof *fd);
        if (!fd || (*fd = sq_rfd, mag__thread_start(&sq_thread, sigquit_main, fd)) != 0) {
            free(fd);
            pthread_mutex_unlock(&sq_life);
            mag__warn("debug mode: no SIGQUIT dumps (no thread)");
            return;
        }
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigquit;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGQUIT, &sa, &sq_prev);
    }
    sq_users++;
    pthread_mutex_lock(&sq_lock);
    obs->sq_next = sq_list;
    sq_list = obs;
    pthread_mutex_unlock(&sq_lock);
    obs->sigquit_on = true;
    pthread_mutex_unlock(&sq_life);
}

static void sigquit_unregister(mag__obs_t *obs)
{
    if (!obs->sigquit_on)
        return;
    pthread_mutex_lock(&sq_life);
    pthread_mutex_lock(&sq_lock);
    for (mag__obs_t **p = &sq_list; *p; p = &(*p)->sq_next)
        if (*p == obs) {
            *p = obs->sq_next;
            break;
        }
    pthread_mutex_unlock(&sq_lock);
    if (--sq_users == 0) {
        sigaction(SIGQUIT, &sq_prev, NULL);
        ssize_t r = write(atomic_load_explicit(&sq_wfd, memory_order_relaxed), "x", 1);
        (void)r;
        pthread_join(sq_thread, NULL);
    }
    obs->sigquit_on = false;
    pthread_mutex_unlock(&sq_life);
}

/* ---- the stats server ------------------------------------------------------ */

/* Answers one request line; false when the client must go. */
static bool stats_answer(mag__obs_t *obs, int fd, const char *line)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return false;
    if (!strcmp(line, "metrics") || !*line) {
        mag_metrics_t m;
        if (mag_metrics(obs->rt, &m) == 0)
            mag__metrics_json(&m, f);
        else
            fputs("{\"error\":\"out of memory\"}\n", f);
        mag_metrics_free(&m);
    } else if (!strcmp(line, "dump")) {
        mag_dump_tasks(obs->rt, f);
        fputs(".\n", f);
    } else {
        fputs("{\"error\":\"unknown request: send metrics or dump\"}\n", f);
    }
    /* On this plain thread mag_send_all is a loop of blocking sends; the
     * client's SO_SNDTIMEO bounds it. */
    bool ok = fclose(f) == 0 && mag_send_all(fd, text, len, 0) >= 0;
    free(text);
    return ok;
}

/* Reads what a client sent and answers each complete line. */
static bool stats_read(mag__obs_t *obs, stats_client_t *c)
{
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    char *nl;
    while ((nl = memchr(c->buf, '\n', c->len))) {
        *nl = 0;
        if (nl > c->buf && nl[-1] == '\r')
            nl[-1] = 0;
        if (!stats_answer(obs, c->fd, c->buf))
            return false;
        size_t used = (size_t)(nl + 1 - c->buf);
        memmove(c->buf, nl + 1, c->len - used);
        c->len -= used;
    }
    return c->len < sizeof c->buf; /* a line too long: drop the client */
}

static void stats_accept(mag__obs_t *obs)
{
    int fd = accept4(obs->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    for (unsigned i = 0; i < STATS_MAX_CLIENTS; i++) {
        if (obs->clients[i].fd < 0) {
            /* A client that stops reading cannot hold the server for long. */
            struct timeval tv = {.tv_sec = 2};
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            obs->clients[i].fd = fd;
            obs->clients[i].len = 0;
            return;
        }
    }
    close(fd); /* full */
}

static void *stats_main(void *arg)
{
    mag__obs_t *obs = arg;
    (void)pthread_setname_np(pthread_self(), "magpie-stats");
    struct pollfd p[2 + STATS_MAX_CLIENTS];
    for (;;) {
        unsigned n = 0;
        p[n++] = (struct pollfd){.fd = obs->stop_pipe[0], .events = POLLIN};
        p[n++] = (struct pollfd){.fd = obs->listen_fd, .events = POLLIN};
        for (unsigned i = 0; i < STATS_MAX_CLIENTS; i++)
            p[n++] = (struct pollfd){.fd = obs->clients[i].fd, .events = POLLIN};
        if (poll(p, n, -1) < 0)
            continue;
        if (p[0].revents)
            break;
        for (unsigned i = 0; i < STATS_MAX_CLIENTS; i++) {
            stats_client_t *c = &obs->clients[i];
            if (c->fd >= 0 && p[2 + i].revents && !stats_read(obs, c)) {
                close(c->fd);
                c->fd = -1;
            }
        }
        if (p[1].revents & POLLIN)
            stats_accept(obs);
    }
    for (unsigned i = 0; i < STATS_MAX_CLIENTS; i++)
        if (obs->clients[i].fd >= 0)
            close(obs->clients[i].fd);
    return NULL;
}

/* A socket file nobody listens on (left by a process that died) is stale. */
static bool socket_stale(const struct sockaddr_un *a)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool stale = connect(fd, (const struct sockaddr *)a, sizeof *a) != 0 && errno == ECONNREFUSED;
    close(fd);
    return stale;
}

static void stats_start(mag__obs_t *obs, const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        mag__warn("MAG_STATS: '%s' is too long for a Unix socket path (at most %zu bytes)", path,
                  sizeof a.sun_path - 1);
        return;
    }
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (errno != EADDRINUSE || !socket_stale(&a) || unlink(path) != 0 ||
            bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
            goto fail;
    }
    if (listen(fd, 16) != 0 || pipe2(obs->stop_pipe, O_CLOEXEC) != 0) {
        unlink(path);
        goto fail;
    }
    obs->listen_fd = fd;
    strcpy(obs->sock_path, path);
    for (unsigned i = 0; i < STATS_MAX_CLIENTS; i++)
        obs->clients[i].fd = -1;
    if (mag__thread_start(&obs->server, stats_main, obs) == 0) {
        obs->server_on = true;
        return;
    }
    unlink(path);
    errno = EAGAIN;
    fd = -1;
    obs->listen_fd = -1;
fail:
    mag__warn("MAG_STATS: cannot serve on '%s': %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < 2; i++)
        if (obs->stop_pipe[i] >= 0) {
            close(obs->stop_pipe[i]);
            obs->stop_pipe[i] = -1;
        }
}

static void stats_stop(mag__obs_t *obs)
{
    if (!obs->server_on)
        return;
    ssize_t r = write(obs->stop_pipe[1], "x", 1);
    (void)r;
    pthread_join(obs->server, NULL);
    close(obs->listen_fd);
    close(obs->stop_pipe[0]);
    close(obs->stop_pipe[1]);
    unlink(obs->sock_path);
    obs->server_on = false;
}

/* ---- start and stop ---------------------------------------------------------- */

void mag__observe_start(mag_runtime_t *rt)
{
    const char *stats = rt->cfg.stats_path, *trace = rt->cfg.trace_path;
    if (!rt->cfg.debug && !stats && !trace)
        return;
    mag__obs_t *obs = calloc(1, sizeof *obs);
    mag__obs_worker_t *ow = obs ? aligned_alloc(MAG_CACHELINE, rt->nworkers * sizeof *ow) : NULL;
    if (!ow) {
        free(obs);
        mag__warn("debug mode, MAG_STATS and MAG_TRACE are off: out of memory");
        return;
    }
    memset(ow, 0, rt->nworkers * sizeof *ow);
    obs->rt = rt;
    obs->shared.ow = ow;
    obs->listen_fd = -1;
    obs->stop_pipe[0] = obs->stop_pipe[1] = -1;
    if (trace) {
        if (mag__trace_alloc(ow, rt->nworkers, rt->cfg.trace_events) == 0)
            obs->shared.tracing = true;
        else
            mag__warn("MAG_TRACE: no trace, out of memory for the event rings");
    }
    /* Before any worker thread exists: thread creation publishes them. */
    mag__hooks_install(rt, obs->shared.tracing ? &mag__obs_trace_hooks : &mag__obs_track_hooks,
                       &obs->shared);
    if (rt->cfg.debug) {
        watchdog_start(obs);
        sigquit_register(obs);
    }
    if (stats)
        stats_start(obs, stats);
}

void mag__observe_quiesce(mag_runtime_t *rt)
{
    mag__obs_t *obs = mag__hooks_ctx(rt);
    if (obs)
        stats_stop(obs);
}

void mag__observe_stop(mag_runtime_t *rt)
{
    mag__obs_t *obs = mag__hooks_ctx(rt);
    if (!obs)
        return;
    sigquit_unregister(obs);
    watchdog_stop(obs);
    stats_stop(obs);
    /* Every worker has stopped (joined, or this is the loop thread): the
     * rings are ours to read. */
    if (obs->shared.tracing) {
        int rc = mag__trace_write(obs->shared.ow, rt->nworkers, rt->start_ns, rt->cfg.trace_path);
        if (rc)
            mag__warn("MAG_TRACE: cannot write '%s': %s", rt->cfg.trace_path, strerror(-rc));
        mag__trace_free(obs->shared.ow, rt->nworkers);
    }
    mag__hooks_install(rt, NULL, NULL);
    free(obs->shared.ow);
    free(obs);
}
