/*
 * io/socket.c - TCP and Unix sockets: listeners, connections, and name
 * resolution that never blocks a worker.
 *
 * mag__resolve is the one place that knows how names are looked up: numeric
 * addresses are parsed on the spot; names go to getaddrinfo on the runtime's
 * blocking pool (a task never blocks its worker), or run inline on a plain
 * thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "io/internal.h"
#include "magpie/pool.h"

#define RESOLVE_MAX 8

int mag_resolve_error(int eai)
{
    switch (eai) {
    case 0:
        return 0;
    case EAI_NONAME:
    case EAI_SERVICE:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_FAIL:
        return -EIO;
    case EAI_SYSTEM:
        return errno ? -errno : -EIO;
    default:
        return -EINVAL;
    }
}

/* ---- resolution ---------------------------------------------------------- */

typedef struct resolve_job {
    _Atomic int refs; /* the caller and the pool job; the last one frees */
    struct addrinfo hints;
    char port[8];
    int rc; /* count or negative errno */
    struct sockaddr_storage addrs[RESOLVE_MAX];
    socklen_t lens[RESOLVE_MAX];
    char host[]; /* NUL-terminated copy */
} resolve_job_t;

static void job_release(resolve_job_t *job)
{
    /* acq_rel: the last holder must see every write of the other. */
    if (atomic_fetch_sub_explicit(&job->refs, 1, memory_order_acq_rel) == 1)
        free(job);
}

/* getaddrinfo into job's arrays; returns the count or a negative errno. */
static int lookup(resolve_job_t *job)
{
    struct addrinfo *res = NULL;
    errno = 0;
    int e = getaddrinfo(job->host, job->port, &job->hints, &res);
    if (e != 0)
        return mag_resolve_error(e);
    int n = 0;
    for (struct addrinfo *ai = res; ai && n < RESOLVE_MAX; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof job->addrs[0])
            continue;
        memcpy(&job->addrs[n], ai->ai_addr, ai->ai_addrlen);
        job->lens[n++] = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    return n > 0 ? n : -ENOENT;
}

/* The blocking-pool job: owns a reference, so that a caller that stops
 * waiting (cancelled, deadline) can simply leave. */
static int resolve_job(void *arg)
{
    resolve_job_t *job = arg;
    int rc = job->rc = lookup(job);
    job_release(job);
    return rc;
}

/* Runs job: a task hands getaddrinfo to the blocking pool and waits (the
 * wait can be cancelled; the job then finishes alone), a plain thread calls
 * it itself. Copies the addresses out and drops the caller's reference. */
static int run_job(resolve_job_t *job, struct sockaddr_storage *out, socklen_t *lens, int max)
{
    int n;
    if (!mag__task_current()) {
        n = lookup(job);
    } else if (mag_cancelled()) {
        n = -ECANCELED;
    } else {
        atomic_store_explicit(&job->refs, 2, memory_order_relaxed); /* published by the spawn */
        mag_task_t *t = mag_spawn_blocking(resolve_job, job);
        if (!t) {
            atomic_store_explicit(&job->refs, 1, memory_order_relaxed);
            n = -EAGAIN; /* shutting down, or no thread: never block the worker */
        } else {
            int status = 0;
            n = mag_join(t, &status);
            if (n == 0)
                n = job->rc; /* the join orders the job's writes before this read */
            else
                mag_detach(t); /* interrupted: the job frees itself */
        }
    }
    if (n > 0) {
        if (n > max)
            n = max;
        memcpy(out, job->addrs, (size_t)n * sizeof *out);
        memcpy(lens, job->lens, (size_t)n * sizeof *lens);
    }
    job_release(job);
    return n;
}

static int parse_numeric(const char *host, uint16_t port, struct sockaddr_storage *out,
                         socklen_t *len)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        *len = sizeof *s4;
        return 1;
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        *len = sizeof *s6;
        return 1;
    }
    return 0;
}

int mag__resolve(const char *host, uint16_t port, int socktype, bool passive,
                 struct sockaddr_storage *out, socklen_t *lens, int max)
{
    if (!host || !*host || max < 1)
        return -EINVAL;
    if (parse_numeric(host, port, &out[0], &lens[0]))
        return 1;
    size_t hlen = strlen(host);
    if (hlen > 253)
        return -ENOENT; /* longer than any DNS name */
    resolve_job_t *job = calloc(1, sizeof *job + hlen + 1);
    if (!job)
        return -ENOMEM;
    memcpy(job->host, host, hlen + 1);
    snprintf(job->port, sizeof job->port, "%u", (unsigned)port);
    job->hints.ai_family = AF_UNSPEC;
    job->hints.ai_socktype = socktype;
    job->hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    atomic_init(&job->refs, 1);
    return run_job(job, out, lens, max);
}

/* ---- TCP ----------------------------------------------------------------- */

static int new_socket(int family, int type)
{
    int fd = socket(family, type | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

static int listen_on(const struct sockaddr *a, socklen_t alen, int backlog, bool dual_stack)
{
    int fd = new_socket(a->sa_family, SOCK_STREAM);
    if (fd < 0)
        return fd;
    int one = 1, zero = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail;
    /* Accepted sockets inherit TCP_NODELAY from the listener (the kernel
     * clones the listener's options): one setsockopt here instead of one
     * per connection. Request/response servers want it. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (a->sa_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? &zero : &one, sizeof one);
    if (bind(fd, a, alen) < 0 || listen(fd, backlog) < 0)
        goto fail;
    return fd;
fail:;
    int e = -errno;
    close(fd);
    return e;
}

int mag_tcp_listen(const char *host, uint16_t port, int backlog)
{
    if (backlog <= 0)
        backlog = SOMAXCONN;
    if (!host || !*host) {
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
        s6.sin6_addr = in6addr_any;
        int fd = listen_on((struct sockaddr *)&s6, sizeof s6, backlog, true);
        if (fd != -EAFNOSUPPORT && fd != -EADDRNOTAVAIL)
            return fd;
        struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(port)};
        s4.sin_addr.s_addr = htonl(INADDR_ANY);
        return listen_on((struct sockaddr *)&s4, sizeof s4, backlog, false);
    }
    struct sockaddr_storage addrs[RESOLVE_MAX];
    socklen_t lens[RESOLVE_MAX];
    int n = mag__resolve(host, port, SOCK_STREAM, true, addrs, lens, RESOLVE_MAX);
    if (n < 0)
        return n;
    int fd = -EADDRNOTAVAIL;
    for (int i = 0; i < n; i++) {
        /* A named IPv6 address listens on IPv6 only: the caller asked for it. */
        fd = listen_on((struct sockaddr *)&addrs[i], lens[i], backlog, false);
        if (fd >= 0)
            break;
    }
    return fd;
}

int mag_tcp_connect(const char *host, uint16_t port)
{
    if (!host || !*host || port == 0)
        return -EINVAL;
    struct sockaddr_storage addrs[RESOLVE_MAX];
    socklen_t lens[RESOLVE_MAX];
    int n = mag__resolve(host, port, SOCK_STREAM, false, addrs, lens, RESOLVE_MAX);
    if (n < 0)
        return n;
    int err = -ECONNREFUSED;
    for (int i = 0; i < n; i++) {
        int fd = new_socket(addrs[i].ss_family, SOCK_STREAM);
        if (fd < 0) {
            err = fd;
            continue;
        }
        err = mag_connect(fd, (struct sockaddr *)&addrs[i], lens[i]);
        if (err == 0) {
            int one = 1;
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        }
        close(fd);
        if (err == -ECANCELED || err == -ETIMEDOUT)
            break;
    }
    return err;
}

int mag_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

/* ---- Unix ---------------------------------------------------------------- */

static int unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len)
{
    if (!path || !*path)
        return -EINVAL;
    size_t n = strlen(path);
    if (n >= sizeof sun->sun_path)
        return -ENAMETOOLONG;
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n);
    if (path[0] == '@') {
        sun->sun_path[0] = '\0'; /* abstract namespace: the length says where it ends */
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

int mag_unix_listen(const char *path, int backlog)
{
    struct sockaddr_un sun;
    socklen_t len;
    int rc = unix_addr(path, &sun, &len);
    if (rc)
        return rc;
    if (backlog <= 0)
        backlog = SOMAXCONN;
    if (path[0] != '@') {
        struct stat st;
        if (lstat(path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode))
                return -EADDRINUSE;
            (void)unlink(path); /* a stale socket file from an earlier run */
        }
    }
    int fd = new_socket(AF_UNIX, SOCK_STREAM);
    if (fd < 0)
        return fd;
    if (bind(fd, (struct sockaddr *)&sun, len) < 0 || listen(fd, backlog) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int mag_unix_connect(const char *path)
{
    struct sockaddr_un sun;
    socklen_t len;
    int rc = unix_addr(path, &sun, &len);
    if (rc)
        return rc;
    int fd = new_socket(AF_UNIX, SOCK_STREAM);
    if (fd < 0)
        return fd;
    rc = mag_connect(fd, (struct sockaddr *)&sun, len);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}
