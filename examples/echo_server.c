/*
 * echo_server - a TCP echo server on mag_serve: every byte a client sends
 * comes back.
 *
 *   echo_server [--port P] [--workers N]
 *
 * Port 0 (the default) lets the kernel choose; the port is printed as
 * "listening on <port>" once the server accepts. Workers default to the
 * online CPUs (MAG_WORKERS also works; --workers wins).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <magpie.h>

typedef struct opts {
    long port;
    long workers;
} opts_t;

/* One task per connection: receive into a buffer on the task's stack and
 * send it all back. No allocation, one recv and (usually) one send per
 * message. The buffer is 8 KiB so that the connection's frame fits a 16 KiB
 * stack (MAG_STACK_SIZE=16k) with room for the calls below it; a 16 KiB
 * buffer did not. */
static int echo(int fd, void *ctx)
{
    (void)ctx;
    char buf[8192];
    for (;;) {
        ssize_t n = mag_recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return (int)n;
        ssize_t w = mag_send_all(fd, buf, (size_t)n, 0);
        if (w < 0)
            return (int)w;
    }
}

static int serve_main(void *arg)
{
    opts_t *o = arg;
    int lfd = mag_tcp_listen(NULL, (uint16_t)o->port, 4096);
    if (lfd < 0) {
        fprintf(stderr, "echo_server: listen on port %ld: %s\n", o->port, strerror(-lfd));
        return lfd;
    }
    printf("listening on %d\n", mag_local_port(lfd));
    fflush(stdout);
    int rc = mag_serve(lfd, echo, NULL);
    mag_close(lfd);
    return rc;
}

static long parse_num(const char *flag, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "echo_server: %s wants a number in %ld..%ld\n", flag, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    opts_t o = {.port = 0, .workers = 0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port"))
            o.port = parse_num("--port", i + 1 < argc ? argv[++i] : NULL, 0, 65535);
        else if (!strcmp(argv[i], "--workers"))
            o.workers = parse_num("--workers", i + 1 < argc ? argv[++i] : NULL, 1, MAG_MAX_WORKERS);
        else {
            fprintf(stderr, "usage: echo_server [--port P] [--workers N]\n");
            return 2;
        }
    }
    mag_config_t cfg;
    mag_config_init(&cfg);
    if (o.workers)
        cfg.workers = (unsigned)o.workers;
    int status = 0;
    int rc = mag_run(&cfg, serve_main, &o, &status);
    if (rc < 0) {
        fprintf(stderr, "echo_server: %s\n", strerror(-rc));
        return 1;
    }
    return status < 0 ? 1 : 0;
}
