/* loadgen - TCP echo load generator with byte-for-byte verification.
 *
 *   loadgen --port P [--host H] [--conns C] [--size M] [--duration S]
 *           [--pipeline K] [--warmup S] [--threads T] [--idle I] [--timeout S]
 *   loadgen --self-test
 *
 * Each of C connections sends K messages of M bytes back to back and waits
 * for the whole echo before sending the next round. The bytes come from a
 * per-connection pseudo-random stream that never repeats a round, and every
 * byte echoed is compared with what was sent, so a server that drops,
 * duplicates, reorders or mixes up data between connections is caught.
 * Latency is measured per message, from the start of its round to the moment
 * its last byte has come back. --idle opens I more connections that stay
 * silent; one that the server closes counts as an error, and so does a round
 * still unanswered after --timeout seconds (2) when the run ends.
 *
 * Prints, one per line: requests/s, p50_us, p99_us, errors, requests (in the
 * measured window) and requests_all (warmup included, for dividing a server's
 * CPU time over the whole run). Exit status 1 when errors is not 0.
 *
 * Plain C over io_uring (liburing only, no magpie): one ring per thread, one
 * submit-and-wait per loop, so the generator spends little CPU per request
 * and leaves the rest of the machine to the server under test.
 */
#include <errno.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum lg_op { LG_CONNECT = 1, LG_SEND, LG_RECV, LG_IDLE_RECV, LG_RETRY };
enum lg_err { E_CONNECT, E_RESET, E_EOF, E_MISMATCH, E_IDLE, E_TIMEOUT, E_COUNT };
static const char *const err_names[E_COUNT] = { "connect", "reset", "eof", "mismatch", "idle-closed", "timeout" };

enum lg_state { S_NEW, S_CONNECTING, S_READY, S_BUSY, S_IDLE, S_BROKEN, S_WAIT_RETRY, S_DEAD };

#define UD(op, idx) (((uint64_t)(op) << 32) | (uint32_t)(idx))
#define CONNECTS_IN_FLIGHT 256
#define RX_CHUNK (256 * 1024)
/* Latency histogram: log-linear on nanoseconds, 32 steps per power of two
 * (3% resolution), up to 2^40 ns. */
#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (40 * HIST_SUB)

struct opts {
	const char *host;
	const char *port;
	long conns, idle, pipeline, threads;
	size_t size;
	double duration, warmup, timeout;
};

struct lconn {
	int fd;
	uint8_t state, idle, ops, send_done;
	uint64_t rng;
	uint8_t *tx, *rx;
	size_t sent, rcvd;
	uint64_t t0;
	size_t msgs_done;
};

struct stats {
	uint64_t requests, requests_all;
	uint64_t errors[E_COUNT];
	uint64_t hist[HIST_BUCKETS];
};

struct thread {
	struct io_uring ring;
	const struct opts *o;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct lconn *conns;
	long nconns, next_connect, connecting, resolved;
	size_t total;        /* bytes per round: size * pipeline */
	uint64_t now, measure_from, end;
	int running, stopping;
	uint8_t idle_sink[64];
	struct __kernel_timespec retry_ts;
	struct stats st;
	pthread_t tid;
	pthread_barrier_t *start;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64: a fast, well-mixed stream; each connection gets its own seed. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill_pattern(uint64_t *s, uint8_t *p, size_t n)
{
	while (n >= 8) {
		uint64_t r = next_rand(s);

		memcpy(p, &r, 8);
		p += 8;
		n -= 8;
	}
	if (n) {
		uint64_t r = next_rand(s);

		memcpy(p, &r, n);
	}
}

/* Offset of the first byte where got differs from want, or -1 if equal. */
static long first_mismatch(const uint8_t *want, const uint8_t *got, size_t n)
{
	if (memcmp(want, got, n) == 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (want[i] != got[i])
			return (long)i;
	return -1;
}

static unsigned hist_bucket(uint64_t v)
{
	unsigned shift, idx;

	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	shift = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
	idx = shift * HIST_SUB + (unsigned)(v >> shift);
	return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* The middle of the values that fall in bucket idx. */
static double hist_value(unsigned idx)
{
	unsigned shift;

	if (idx < 2 * HIST_SUB)
		return idx;
	shift = idx / HIST_SUB - 1;
	return (double)((uint64_t)(idx - shift * HIST_SUB) << shift) + (double)(1ull << shift) / 2;
}

static double hist_percentile(const uint64_t *hist, double p)
{
	uint64_t total = 0, seen = 0, rank;

	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		total += hist[i];
	if (!total)
		return 0;
	rank = (uint64_t)(p * (double)total + 0.999999);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += hist[i];
		if (seen >= rank)
			return hist_value(i);
	}
	return hist_value(HIST_BUCKETS - 1);
}

static struct io_uring_sqe *get_sqe(struct thread *t)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);

	while (!sqe) {
		io_uring_submit(&t->ring);
		sqe = io_uring_get_sqe(&t->ring);
	}
	return sqe;
}

static uint32_t idx_of(struct thread *t, struct lconn *c)
{
	return (uint32_t)(c - t->conns);
}

static void conn_start(struct thread *t, struct lconn *c)
{
	struct io_uring_sqe *sqe;
	int one = 1;

	c->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		t->st.errors[E_CONNECT]++;
		c->state = S_DEAD;
		t->resolved++;
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sqe = get_sqe(t);
	io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&t->addr, t->addrlen);
	io_uring_sqe_set_data64(sqe, UD(LG_CONNECT, idx_of(t, c)));
	c->state = S_CONNECTING;
	c->ops++;
	t->connecting++;
}

static void arm_recv(struct thread *t, struct lconn *c)
{
	struct io_uring_sqe *sqe = get_sqe(t);
	size_t want = t->total - c->rcvd;

	/* Never ask for more than this round's echo: extra bytes from the
	 * server then show up as a mismatch at the start of the next round. */
	io_uring_prep_recv(sqe, c->fd, c->rx, want < RX_CHUNK ? want : RX_CHUNK, 0);
	io_uring_sqe_set_data64(sqe, UD(LG_RECV, idx_of(t, c)));
	c->ops++;
}

static void arm_send(struct thread *t, struct lconn *c)
{
	struct io_uring_sqe *sqe = get_sqe(t);

	io_uring_prep_send(sqe, c->fd, c->tx + c->sent, t->total - c->sent, MSG_NOSIGNAL | MSG_WAITALL);
	io_uring_sqe_set_data64(sqe, UD(LG_SEND, idx_of(t, c)));
	c->ops++;
}

static void round_start(struct thread *t, struct lconn *c)
{
	fill_pattern(&c->rng, c->tx, t->total);
	c->sent = c->rcvd = c->msgs_done = 0;
	c->send_done = 0;
	c->t0 = t->now;
	c->state = S_BUSY;
	arm_send(t, c);
	arm_recv(t, c);
}

static void round_next(struct thread *t, struct lconn *c)
{
	if (t->running && !t->stopping)
		round_start(t, c);
	else
		c->state = S_READY;
}

static void conn_fail(struct thread *t, struct lconn *c, enum lg_err why)
{
	if (c->state == S_BROKEN)
		return;
	t->st.errors[why]++;
	c->state = S_BROKEN;
	/* Wakes whatever is still in flight on the socket; it is closed when
	 * the last of those completions has arrived. */
	shutdown(c->fd, SHUT_RDWR);
}

static void conn_cleanup(struct thread *t, struct lconn *c)
{
	if (c->state != S_BROKEN || c->ops)
		return;
	close(c->fd);
	c->fd = -1;
	if (c->idle || !t->running || t->stopping) {
		c->state = S_DEAD;
		return;
	}
	/* Active connections come back after a pause, so a dead server gives
	 * a steady trickle of errors rather than a busy loop. */
	struct io_uring_sqe *sqe = get_sqe(t);

	io_uring_prep_timeout(sqe, &t->retry_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, UD(LG_RETRY, idx_of(t, c)));
	c->state = S_WAIT_RETRY;
	c->ops++;
}

static void on_connect(struct thread *t, struct lconn *c, int res)
{
	t->connecting--;
	if (c->state == S_CONNECTING && !t->running)
		t->resolved++;
	if (res < 0) {
		/* Closed by conn_cleanup, which also retries while running;
		 * in the connect phase the connection just stays dead. */
		t->st.errors[E_CONNECT]++;
		c->state = S_BROKEN;
		conn_cleanup(t, c);
		return;
	}
	if (c->idle) {
		struct io_uring_sqe *sqe = get_sqe(t);

		io_uring_prep_recv(sqe, c->fd, t->idle_sink, sizeof(t->idle_sink), 0);
		io_uring_sqe_set_data64(sqe, UD(LG_IDLE_RECV, idx_of(t, c)));
		c->ops++;
		c->state = S_IDLE;
	} else if (t->running) {
		round_next(t, c);
	} else {
		c->state = S_READY;
	}
}

/* Count every message whose echo is now complete. */
static void count_done(struct thread *t, struct lconn *c)
{
	size_t size = t->o->size;

	while ((c->msgs_done + 1) * size <= c->rcvd) {
		c->msgs_done++;
		t->st.requests_all++;
		if (t->now >= t->measure_from && t->now <= t->end) {
			t->st.requests++;
			t->st.hist[hist_bucket(t->now - c->t0)]++;
		}
	}
}

static void on_recv(struct thread *t, struct lconn *c, int res)
{
	if (c->state != S_BUSY)
		return;
	if (res <= 0) {
		conn_fail(t, c, res == 0 ? E_EOF : E_RESET);
		return;
	}
	if (first_mismatch(c->tx + c->rcvd, c->rx, (size_t)res) >= 0) {
		conn_fail(t, c, E_MISMATCH);
		return;
	}
	c->rcvd += (size_t)res;
	count_done(t, c);
	if (c->rcvd < t->total)
		arm_recv(t, c);
	else if (c->send_done)
		round_next(t, c);
}

static void on_send(struct thread *t, struct lconn *c, int res)
{
	if (c->state != S_BUSY)
		return;
	if (res <= 0) {
		conn_fail(t, c, E_RESET);
		return;
	}
	c->sent += (size_t)res;
	if (c->sent < t->total) {
		arm_send(t, c);
		return;
	}
	c->send_done = 1;
	if (c->rcvd == t->total)
		round_next(t, c);
}

static void dispatch(struct thread *t, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	struct lconn *c = &t->conns[(uint32_t)ud];

	c->ops--;
	switch ((enum lg_op)(ud >> 32)) {
	case LG_CONNECT:
		on_connect(t, c, cqe->res);
		break;
	case LG_SEND:
		on_send(t, c, cqe->res);
		break;
	case LG_RECV:
		on_recv(t, c, cqe->res);
		break;
	case LG_IDLE_RECV:
		if (!t->stopping)
			conn_fail(t, c, E_IDLE);
		break;
	case LG_RETRY:
		if (t->stopping) {
			c->state = S_DEAD;
			return;
		}
		conn_start(t, c);
		break;
	}
	conn_cleanup(t, c);
}

static int setup_ring(struct thread *t)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
		0,
	};
	int ret = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]) && ret < 0; i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		p.flags = tries[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = 32768;
		ret = io_uring_queue_init_params(4096, &t->ring, &p);
	}
	return ret;
}

/* One pass of the event loop: submit, wait up to 100 ms, handle completions. */
static int loop_once(struct thread *t)
{
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int ret = io_uring_submit_and_wait_timeout(&t->ring, &cqe, 1, &ts, NULL);

	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		return ret;
	t->now = now_ns();
	io_uring_for_each_cqe(&t->ring, head, cqe) {
		dispatch(t, cqe);
		n++;
	}
	io_uring_cq_advance(&t->ring, n);
	return 0;
}

static void *thread_main(void *arg)
{
	struct thread *t = arg;
	const struct opts *o = t->o;
	uint64_t connect_deadline;
	int ret = setup_ring(t);

	if (ret < 0) {
		fprintf(stderr, "loadgen: io_uring setup: %s\n", strerror(-ret));
		exit(2);
	}
	t->retry_ts.tv_nsec = 10 * 1000 * 1000;
	t->now = now_ns();
	/* Connect everything first, a bounded number at a time, so a big
	 * burst does not overflow the server's accept queue. */
	connect_deadline = t->now + 10000000000ull + (uint64_t)t->nconns * 2000000ull;
	while (t->resolved < t->nconns && t->now < connect_deadline) {
		while (t->next_connect < t->nconns && t->connecting < CONNECTS_IN_FLIGHT)
			conn_start(t, &t->conns[t->next_connect++]);
		if ((ret = loop_once(t)) < 0)
			goto fail;
	}
	/* Connections still connecting at the deadline count as failures
	 * (they are still used if they complete later). */
	t->st.errors[E_CONNECT] += (uint64_t)t->connecting;
	io_uring_submit(&t->ring);
	pthread_barrier_wait(t->start);

	t->now = now_ns();
	t->measure_from = t->now + (uint64_t)(o->warmup * 1e9);
	t->end = t->measure_from + (uint64_t)(o->duration * 1e9);
	t->running = 1;
	for (long i = 0; i < t->nconns; i++)
		if (t->conns[i].state == S_READY && !t->conns[i].idle)
			round_start(t, &t->conns[i]);
	while (t->now < t->end)
		if ((ret = loop_once(t)) < 0)
			goto fail;
	t->stopping = 1;
	/* A round still unanswered long after it started is a stuck
	 * connection, not a slow one. */
	for (long i = 0; i < t->nconns; i++) {
		struct lconn *c = &t->conns[i];

		if (c->state == S_BUSY && t->now - c->t0 > (uint64_t)(o->timeout * 1e9))
			t->st.errors[E_TIMEOUT]++;
	}
	return NULL;
fail:
	fprintf(stderr, "loadgen: io_uring_submit_and_wait: %s\n", strerror(-ret));
	exit(2);
}

/* The host's address; when it has several (IPv6 and IPv4), the first that
 * accepts a connection, so the server is found whichever one it is on. */
static int resolve(const struct opts *o, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints, *res, *ai, *pick;
	int ret;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	ret = getaddrinfo(o->host, o->port, &hints, &res);
	if (ret != 0) {
		fprintf(stderr, "loadgen: %s:%s: %s\n", o->host, o->port, gai_strerror(ret));
		return -EINVAL;
	}
	pick = res;
	for (ai = res; ai && res->ai_next; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int ok = fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;

		if (fd >= 0)
			close(fd);
		if (ok) {
			pick = ai;
			break;
		}
	}
	/* If none answers, the connections fail and are counted as errors. */
	memcpy(ss, pick->ai_addr, pick->ai_addrlen);
	*len = pick->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* --self-test: the checks that make the numbers trustworthy. */
static int self_test(void)
{
	uint8_t a[4096], b[4096];
	uint64_t s1 = 42, s2 = 42, s3 = 43, hist[HIST_BUCKETS] = { 0 };
	int fails = 0;

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "self-test: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			fails++;                                                       \
		}                                                                      \
	} while (0)
	fill_pattern(&s1, a, sizeof(a));
	fill_pattern(&s2, b, sizeof(b));
	CHECK(first_mismatch(a, b, sizeof(a)) == -1);
	/* One flipped bit anywhere, the first and last bytes included. */
	for (size_t i = 0; i < sizeof(a); i += 97) {
		b[i] ^= 0x10;
		CHECK(first_mismatch(a, b, sizeof(a)) == (long)i);
		b[i] ^= 0x10;
	}
	b[sizeof(b) - 1] ^= 1;
	CHECK(first_mismatch(a, b, sizeof(a)) == (long)sizeof(a) - 1);
	/* Another connection's stream, the next round, a shifted echo. */
	fill_pattern(&s3, b, sizeof(b));
	CHECK(first_mismatch(a, b, sizeof(a)) >= 0);
	fill_pattern(&s2, b, sizeof(b));
	CHECK(first_mismatch(a, b, sizeof(a)) >= 0);
	CHECK(first_mismatch(a + 1, a, sizeof(a) - 1) >= 0);
	/* Histogram: within 3% and monotonic. */
	for (uint64_t v = 1; v < (1ull << 39); v = v * 3 + 1) {
		double got = hist_value(hist_bucket(v));

		CHECK(got >= (double)v * 0.96 && got <= (double)v * 1.04 + 1);
		CHECK(hist_bucket(v) <= hist_bucket(v + 1));
	}
	for (uint64_t v = 1; v <= 1000; v++)
		hist[hist_bucket(v * 1000)]++;
	CHECK(hist_percentile(hist, 0.5) >= 485000 && hist_percentile(hist, 0.5) <= 515000);
	CHECK(hist_percentile(hist, 0.99) >= 960000 && hist_percentile(hist, 0.99) <= 1020000);
#undef CHECK
	printf("self-test: %s\n", fails ? "FAILED" : "ok");
	return fails ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: loadgen --port P [--host H] [--conns C] [--size M] [--duration S]\n"
			"               [--pipeline K] [--warmup S] [--threads T] [--idle I] [--timeout S]\n"
			"       loadgen --self-test\n");
	exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){ .host = "127.0.0.1", .port = NULL, .conns = 50, .idle = 0, .pipeline = 1,
			    .threads = 1, .size = 64, .duration = 5, .warmup = 0, .timeout = 2 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[++i] : NULL;

		if (!strcmp(a, "--self-test"))
			exit(self_test());
		if (!v)
			usage();
		if (!strcmp(a, "--host"))
			o->host = v;
		else if (!strcmp(a, "--port"))
			o->port = v;
		else if (!strcmp(a, "--conns"))
			o->conns = atol(v);
		else if (!strcmp(a, "--idle"))
			o->idle = atol(v);
		else if (!strcmp(a, "--size"))
			o->size = (size_t)atol(v);
		else if (!strcmp(a, "--pipeline"))
			o->pipeline = atol(v);
		else if (!strcmp(a, "--threads"))
			o->threads = atol(v);
		else if (!strcmp(a, "--duration"))
			o->duration = atof(v);
		else if (!strcmp(a, "--warmup"))
			o->warmup = atof(v);
		else if (!strcmp(a, "--timeout"))
			o->timeout = atof(v);
		else
			usage();
	}
	if (!o->port || o->conns < 1 || o->idle < 0 || o->size < 1 || o->pipeline < 1 || o->threads < 1 ||
	    o->threads > 64 || o->duration <= 0 || o->warmup < 0 || o->timeout <= 0 || o->size * (size_t)o->pipeline > (1u << 30))
		usage();
}

int main(int argc, char **argv)
{
	struct opts o;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct rlimit rl;
	struct thread *ts;
	struct stats all;
	pthread_barrier_t start;
	uint64_t errors = 0;
	double rate = 0;

	parse(argc, argv, &o);
	if (resolve(&o, &addr, &addrlen) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	/* Every connection is a descriptor: take all the hard limit allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if ((rlim_t)(o.conns + o.idle + 16) > rl.rlim_cur)
			fprintf(stderr, "loadgen: warning: %ld connections but RLIMIT_NOFILE is %llu\n",
				o.conns + o.idle, (unsigned long long)rl.rlim_cur);
	}
	ts = calloc((size_t)o.threads, sizeof(*ts));
	if (!ts)
		return 2;
	pthread_barrier_init(&start, NULL, (unsigned)o.threads);
	for (long i = 0; i < o.threads; i++) {
		struct thread *t = &ts[i];
		long active = o.conns / o.threads + (i < o.conns % o.threads);
		long idle = o.idle / o.threads + (i < o.idle % o.threads);

		t->o = &o;
		t->addr = addr;
		t->addrlen = addrlen;
		t->start = &start;
		t->total = o.size * (size_t)o.pipeline;
		t->nconns = active + idle;
		t->conns = calloc((size_t)t->nconns, sizeof(struct lconn));
		if (!t->conns)
			return 2;
		for (long j = 0; j < t->nconns; j++) {
			struct lconn *c = &t->conns[j];

			c->fd = -1;
			/* Idle ones first: the active ones then connect last,
			 * when the server has settled. */
			c->idle = j < idle;
			c->rng = 0x6d61677069650000ull ^ ((uint64_t)i << 32) ^ (uint64_t)j;
			if (!c->idle) {
				size_t rx = t->total < RX_CHUNK ? t->total : RX_CHUNK;

				c->tx = malloc(t->total);
				c->rx = malloc(rx);
				if (!c->tx || !c->rx)
					return 2;
			}
		}
		if (pthread_create(&t->tid, NULL, thread_main, t) != 0)
			return 2;
	}
	memset(&all, 0, sizeof(all));
	for (long i = 0; i < o.threads; i++) {
		struct thread *t = &ts[i];

		pthread_join(t->tid, NULL);
		rate += (double)t->st.requests / o.duration;
		all.requests += t->st.requests;
		all.requests_all += t->st.requests_all;
		for (int e = 0; e < E_COUNT; e++)
			all.errors[e] += t->st.errors[e];
		for (unsigned b = 0; b < HIST_BUCKETS; b++)
			all.hist[b] += t->st.hist[b];
	}
	for (int e = 0; e < E_COUNT; e++) {
		errors += all.errors[e];
		if (all.errors[e])
			fprintf(stderr, "loadgen: %llu %s errors\n", (unsigned long long)all.errors[e],
				err_names[e]);
	}
	printf("requests/s %.1f\n", rate);
	printf("p50_us %.1f\n", hist_percentile(all.hist, 0.50) / 1000);
	printf("p99_us %.1f\n", hist_percentile(all.hist, 0.99) / 1000);
	printf("errors %llu\n", (unsigned long long)errors);
	printf("requests %llu\n", (unsigned long long)all.requests);
	printf("requests_all %llu\n", (unsigned long long)all.requests_all);
	fflush(stdout);
	/* The kernel closes the sockets; in-flight operations die with the rings. */
	_exit(errors ? 1 : 0);
}
