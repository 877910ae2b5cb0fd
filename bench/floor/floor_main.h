/* floor_main.h - start-up for the floor servers: options, listeners, worker
 * threads, and a clean exit on SIGINT or SIGTERM. See floor.h.
 *
 * Each worker gets its own SO_REUSEPORT listener, so the kernel spreads
 * connections across workers by hash. --shared-listener (one socket, a
 * multishot accept on every ring) is kept for comparison: measured on Linux
 * 6.x it hands every connection to the same ring, which leaves the other
 * workers idle.
 */
#ifndef MAGPIE_BENCH_FLOOR_MAIN_H
#define MAGPIE_BENCH_FLOOR_MAIN_H

#include "floor.h"

static int make_listener(int port, int reuseport)
{
	struct sockaddr_in addr;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	/* Linux copies TCP_NODELAY from the listener to accepted sockets,
	 * which spares a setsockopt per connection (impossible anyway on a
	 * direct descriptor). */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_ANY);
	addr.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 4096) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_in addr;
	socklen_t len = sizeof(addr);

	if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
		return -errno;
	return ntohs(addr.sin_port);
}

static void floor_usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [--port P] [--workers N] [--shared-listener] [--recv ring|conn]\n"
		"          [--no-fixed] [--bufsize B] [--nbufs N] [--max-conns N]\n",
		prog);
	exit(2);
}

static void floor_parse(int argc, char **argv, struct floor_opts *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	*o = (struct floor_opts){ .port = 0, .workers = cpus > 0 ? (int)cpus : 1, .ring_recv = 1,
				  .fixed = 1, .bufsize = 4096, .nbufs = 1024, .max_conns = 0 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";

		if (!strcmp(a, "--shared-listener")) {
			o->shared_listener = 1;
			continue;
		}
		if (!strcmp(a, "--no-fixed")) {
			o->fixed = 0;
			continue;
		}
		i++; /* every other option takes a value */
		if (!strcmp(a, "--port"))
			o->port = atoi(v);
		else if (!strcmp(a, "--workers"))
			o->workers = atoi(v);
		else if (!strcmp(a, "--recv") && (!strcmp(v, "ring") || !strcmp(v, "conn")))
			o->ring_recv = !strcmp(v, "ring");
		else if (!strcmp(a, "--bufsize"))
			o->bufsize = (unsigned)atoi(v);
		else if (!strcmp(a, "--nbufs"))
			o->nbufs = (unsigned)atoi(v);
		else if (!strcmp(a, "--max-conns"))
			o->max_conns = (unsigned)atoi(v);
		else
			floor_usage(argv[0]);
	}
	if (o->workers < 1 || o->workers > 1024 || o->port < 0 || o->port > 65535 || o->bufsize < 512 ||
	    o->nbufs < 16 || o->nbufs > 32768 || (o->nbufs & (o->nbufs - 1)))
		floor_usage(argv[0]);
}

/* Runs the server until SIGINT or SIGTERM; returns the exit status. */
static int floor_main(int argc, char **argv)
{
	struct floor_opts o;
	struct worker *ws;
	struct rlimit rl;
	pthread_barrier_t ready;
	sigset_t sigs;
	int port = -1, sig, failed = 0;

	floor_parse(argc, argv, &o);
	/* Every connection is a descriptor: take all the hard limit allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (!o.max_conns)
		o.max_conns = rl.rlim_cur > 65536 ? 65536 : (unsigned)rl.rlim_cur;
	signal(SIGPIPE, SIG_IGN);
	/* Workers inherit this mask; only the main thread takes the signals. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	ws = calloc((size_t)o.workers, sizeof(*ws));
	if (!ws)
		return 1;
	pthread_barrier_init(&ready, NULL, (unsigned)o.workers + 1);
	for (int i = 0; i < o.workers; i++) {
		struct worker *w = &ws[i];

		w->o = &o;
		w->id = i;
		w->fixed = o.fixed;
		w->ring_recv = o.ring_recv;
		w->ready = &ready;
		w->free_head = FLOOR_NONE;
		w->unused = 0;
		if (o.shared_listener && i > 0)
			w->listen_fd = ws[0].listen_fd;
		else
			w->listen_fd = make_listener(port > 0 ? port : o.port, !o.shared_listener);
		if (w->listen_fd < 0) {
			fprintf(stderr, "listen on port %d: %s\n", o.port, strerror(-w->listen_fd));
			return 1;
		}
		if (port < 0)
			port = bound_port(w->listen_fd);
		w->wake_fd = eventfd(0, EFD_CLOEXEC);
		/* calloc maps fresh zero pages: untouched slots cost nothing. */
		w->conns = calloc(o.max_conns, sizeof(struct conn));
		w->starved_cap = o.max_conns + 16384;
		w->starved = calloc(w->starved_cap, sizeof(uint32_t));
		if (w->wake_fd < 0 || !w->conns || !w->starved)
			return 1;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
			return 1;
	}
	pthread_barrier_wait(&ready);
	for (int i = 0; i < o.workers; i++) {
		if (ws[i].err < 0) {
			fprintf(stderr, "worker %d: ring setup: %s\n", i, strerror(-ws[i].err));
			failed = 1;
		}
	}
	if (!failed) {
		printf("listening on %d\n", port);
		fflush(stdout);
		sigwait(&sigs, &sig);
	}
	for (int i = 0; i < o.workers; i++) {
		uint64_t one = 1;

		if (write(ws[i].wake_fd, &one, sizeof(one)) < 0)
			perror("eventfd write");
	}
	for (int i = 0; i < o.workers; i++)
		pthread_join(ws[i].thread, NULL);
	return failed;
}

#endif /* MAGPIE_BENCH_FLOOR_MAIN_H */
