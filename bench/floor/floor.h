/* floor.h - the raw io_uring TCP server engine behind the benchmark floor.
 *
 * The floor answers "how little CPU can a server on this kernel spend per
 * request?": no runtime, no tasks, no allocation on the hot path, one thread
 * and one ring per worker, one io_uring_submit_and_wait() per loop. Whatever
 * magpie spends above it is what the runtime adds.
 *
 * This header is the engine, floor_main.h the start-up around it;
 * echo_floor.c and http_floor.c include both once and supply the three app_*
 * hooks declared below. Everything is static because each program is a
 * single translation unit (the Makefile builds bench/floor/NAME.c alone,
 * linked with -luring only).
 *
 * Per connection at most one send and one receive are in flight. Two receive
 * modes, chosen with --recv:
 *   ring  (default) multishot recv into a per-worker provided-buffer ring:
 *         no receive SQE per request and no per-connection buffer, so an idle
 *         connection costs only its slot in the table.
 *   conn  single-shot recv into a per-connection buffer, re-armed after each
 *         reply has been sent (the classic design, kept for comparison).
 * Accepted sockets are direct descriptors (the ring's fixed-file table) unless
 * --no-fixed is given: that saves the fd lookup and refcount on every op.
 *
 * Errors inside the engine are negative errno values, as in liburing.
 */
#ifndef MAGPIE_BENCH_FLOOR_H
#define MAGPIE_BENCH_FLOOR_H

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* What each SQE is for; the top half of user_data, the conn slot the bottom. */
enum floor_op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CANCEL, OP_CLOSE, OP_TIMER, OP_WAKE };

#define FLOOR_UD(op, idx) (((uint64_t)(op) << 32) | (uint32_t)(idx))
#define FLOOR_NONE UINT32_MAX
#define FLOOR_BGID 7
/* A connection holding this many unsent ring buffers stops receiving until
 * half of them are sent, so one client that never reads cannot drain the
 * ring for everyone else. */
#define FLOOR_MAX_QUEUED 32
/* Queued ring buffers go out up to this many per sendmsg: a bulk stream is
 * then not limited to one buffer per round trip through the ring. */
#define FLOOR_IOV 16

struct floor_opts {
	int port;
	int workers;
	int shared_listener; /* one listener, multishot accept on every ring */
	int ring_recv;       /* 1: provided-buffer ring; 0: per-connection buffer */
	int fixed;           /* direct descriptors for accepted sockets */
	unsigned bufsize;    /* size of one receive buffer */
	unsigned nbufs;      /* most ring buffers per worker (power of two) */
	unsigned max_conns;  /* connection slots per worker */
};

struct floor_iov {
	struct msghdr msg;
	struct iovec v[FLOOR_IOV];
};

struct conn {
	int fd;              /* fixed-file slot or plain fd */
	uint32_t next_free;
	uint16_t inflight;   /* SQEs whose last CQE has not arrived yet */
	uint8_t open, recv_armed, sending, closing, eof, paused, starved;
	/* A chunk of application memory to send (the HTTP responses, or the
	 * echo in conn mode). */
	const char *tx;
	uint32_t tx_len, tx_off;
	/* Ring buffers received but not yet echoed, oldest first; q_off bytes
	 * of the first have gone out, and tx_nbufs of them are being sent. */
	uint32_t q_head, q_tail, queued, q_off, tx_nbufs;
	struct floor_iov *iov; /* allocated on the first multi-buffer send */
	/* Application state: a receive or reassembly buffer, what it holds, and
	 * a count of replies owed (HTTP). */
	char *buf;
	uint32_t have;
	uint32_t pending;
};

struct worker {
	struct io_uring ring;
	const struct floor_opts *o;
	int id, listen_fd, wake_fd, fixed, ring_recv;
	struct conn *conns;
	uint32_t free_head;       /* released slots, reused first */
	uint32_t unused;          /* slots from here on were never touched */
	/* Provided-buffer ring: the kernel picks a buffer per receive. */
	struct io_uring_buf_ring *br;
	size_t br_size;
	char *bufs;
	uint32_t *q_next, *q_len; /* per buffer id: queue link and byte count */
	unsigned br_added;        /* buffers recycled since the last advance */
	unsigned nprovided;       /* buffer ids handed to the ring so far */
	int grow;                 /* a receive found the ring empty */
	/* Connections whose multishot recv ended with -ENOBUFS. */
	uint32_t *starved;
	unsigned nstarved, starved_cap;
	uint64_t wake_val;
	struct __kernel_timespec backoff;
	int stop;
	int err;
	pthread_t thread;
	pthread_barrier_t *ready;
};

/* The application: called with received bytes. Return 1 if the ring buffer
 * `bid` was kept (queued with floor_queue_buf), 0 if the bytes were consumed,
 * or -errno to close the connection. `bid` is -1 in conn mode, where `data`
 * points into c->buf. */
static int app_recv(struct worker *w, struct conn *c, char *data, uint32_t len, int bid);
/* Sets c->tx/tx_len to the next chunk to send, or leaves c->tx NULL. Called
 * when nothing is being sent and no ring buffer is queued. */
static void app_next_tx(struct worker *w, struct conn *c);
/* Minimum c->buf size the application needs in conn mode. */
static unsigned app_conn_bufsize(const struct floor_opts *o);

static struct io_uring_sqe *floor_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	/* A full SQ is flushed early; the loop still submits once per turn. */
	while (!sqe) {
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe;
}

static inline uint32_t conn_idx(struct worker *w, struct conn *c)
{
	return (uint32_t)(c - w->conns);
}

static inline char *ring_buf(struct worker *w, int bid)
{
	return w->bufs + (size_t)bid * w->o->bufsize;
}

static void recycle_buf(struct worker *w, int bid)
{
	io_uring_buf_ring_add(w->br, ring_buf(w, bid), w->o->bufsize, (unsigned short)bid,
			      io_uring_buf_ring_mask(w->o->nbufs), (int)w->br_added++);
}

/* Append ring buffer `bid` holding `len` bytes to the connection's queue. */
static inline void floor_queue_buf(struct worker *w, struct conn *c, int bid, uint32_t len)
{
	w->q_len[bid] = len;
	w->q_next[bid] = FLOOR_NONE;
	if (c->q_tail == FLOOR_NONE)
		c->q_head = (uint32_t)bid;
	else
		w->q_next[c->q_tail] = (uint32_t)bid;
	c->q_tail = (uint32_t)bid;
	c->queued++;
}

static void set_fd(struct worker *w, struct io_uring_sqe *sqe)
{
	if (w->fixed)
		sqe->flags |= IOSQE_FIXED_FILE;
}

static void arm_accept(struct worker *w)
{
	struct io_uring_sqe *sqe = floor_sqe(w);

	if (w->fixed)
		io_uring_prep_multishot_accept_direct(sqe, w->listen_fd, NULL, NULL, 0);
	else
		io_uring_prep_multishot_accept(sqe, w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, FLOOR_UD(OP_ACCEPT, 0));
}

static void arm_recv(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe = floor_sqe(w);

	if (w->ring_recv) {
		io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = FLOOR_BGID;
	} else {
		unsigned size = app_conn_bufsize(w->o);

		io_uring_prep_recv(sqe, c->fd, c->buf + c->have, size - c->have, 0);
		/* We only re-arm after replying, when the next request has
		 * almost never arrived yet: skip the doomed first attempt. */
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	}
	set_fd(w, sqe);
	io_uring_sqe_set_data64(sqe, FLOOR_UD(OP_RECV, conn_idx(w, c)));
	c->recv_armed = 1;
	c->inflight++;
}

/* MSG_WAITALL makes the kernel finish a short send itself; a short result
 * still reaches on_send (after an error) and is resumed there. */
#define FLOOR_SEND_FLAGS (MSG_NOSIGNAL | MSG_WAITALL)

static void submit_send(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe = floor_sqe(w);

	io_uring_prep_send(sqe, c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off, FLOOR_SEND_FLAGS);
	set_fd(w, sqe);
	io_uring_sqe_set_data64(sqe, FLOOR_UD(OP_SEND, conn_idx(w, c)));
	c->sending = 1;
	c->inflight++;
}

/* Send the queued ring buffers, up to FLOOR_IOV of them in one sendmsg. */
static void send_queued(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe;
	uint32_t n = 0, b = c->q_head;

	if (c->queued > 1 && (c->iov || (c->iov = malloc(sizeof(*c->iov))))) {
		for (; b != FLOOR_NONE && n < FLOOR_IOV; b = w->q_next[b], n++) {
			uint32_t off = n ? 0 : c->q_off;

			c->iov->v[n].iov_base = ring_buf(w, (int)b) + off;
			c->iov->v[n].iov_len = w->q_len[b] - off;
		}
		memset(&c->iov->msg, 0, sizeof(c->iov->msg));
		c->iov->msg.msg_iov = c->iov->v;
		c->iov->msg.msg_iovlen = n;
		sqe = floor_sqe(w);
		io_uring_prep_sendmsg(sqe, c->fd, &c->iov->msg, FLOOR_SEND_FLAGS);
	} else {
		n = 1;
		sqe = floor_sqe(w);
		io_uring_prep_send(sqe, c->fd, ring_buf(w, (int)b) + c->q_off, w->q_len[b] - c->q_off,
				   FLOOR_SEND_FLAGS);
	}
	c->tx_nbufs = n;
	set_fd(w, sqe);
	io_uring_sqe_set_data64(sqe, FLOOR_UD(OP_SEND, conn_idx(w, c)));
	c->sending = 1;
	c->inflight++;
}

static void conn_close(struct worker *w, struct conn *c);

/* Give the connection's slot back once the kernel holds nothing of it. */
static void maybe_release(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->open || !c->closing || c->inflight)
		return; /* still busy, or released already */
	for (uint32_t b = c->q_head; b != FLOOR_NONE; b = w->q_next[b])
		recycle_buf(w, (int)b);
	sqe = floor_sqe(w);
	if (w->fixed)
		io_uring_prep_close_direct(sqe, (unsigned)c->fd);
	else
		io_uring_prep_close(sqe, c->fd);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, FLOOR_UD(OP_CLOSE, 0));
	free(c->buf);
	free(c->iov);
	c->buf = NULL;
	c->iov = NULL;
	/* `closing` stays set, so callers further up the stack that still
	 * hold `c` leave it alone; on_accept reinitialises the slot. */
	c->open = 0;
	c->q_head = c->q_tail = FLOOR_NONE;
	c->next_free = w->free_head;
	w->free_head = conn_idx(w, c);
}

/* Start closing: cancel whatever is in flight, release when it has ended. */
static void conn_close(struct worker *w, struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	if (c->recv_armed || c->sending) {
		struct io_uring_sqe *sqe = floor_sqe(w);
		int flags = IORING_ASYNC_CANCEL_ALL | (w->fixed ? IORING_ASYNC_CANCEL_FD_FIXED : 0);

		io_uring_prep_cancel_fd(sqe, c->fd, (unsigned)flags);
		io_uring_sqe_set_data64(sqe, FLOOR_UD(OP_CANCEL, conn_idx(w, c)));
		c->inflight++;
	}
	maybe_release(w, c);
}

/* Move the connection forward: send what is owed, re-arm the receive in conn
 * mode, close after EOF once everything owed has gone out. */
static void conn_pump(struct worker *w, struct conn *c)
{
	if (c->closing)
		return;
	if (!c->sending && c->q_head != FLOOR_NONE) {
		send_queued(w, c);
	} else if (!c->sending) {
		if (!c->tx)
			app_next_tx(w, c);
		if (c->tx)
			submit_send(w, c);
	}
	if (c->sending)
		return;
	if (c->eof) {
		conn_close(w, c);
		return;
	}
	if (!w->ring_recv && !c->recv_armed)
		arm_recv(w, c);
	if (w->ring_recv && c->paused && !c->recv_armed && c->queued <= FLOOR_MAX_QUEUED / 2) {
		c->paused = 0;
		arm_recv(w, c);
	}
}

static void on_accept(struct worker *w, struct io_uring_cqe *cqe)
{
	int res = cqe->res;

	if (res >= 0) {
		uint32_t idx = w->free_head;
		struct conn *c;

		/* Fresh slots are taken in order, so the table's pages become
		 * resident only as far as connections have ever reached. */
		if (idx == FLOOR_NONE && w->unused < w->o->max_conns)
			idx = w->unused++;
		else if (idx != FLOOR_NONE)
			w->free_head = w->conns[idx].next_free;
		if (idx == FLOOR_NONE) {
			/* Table full: refuse this one rather than grow. */
			struct io_uring_sqe *sqe = floor_sqe(w);

			if (w->fixed)
				io_uring_prep_close_direct(sqe, (unsigned)res);
			else
				io_uring_prep_close(sqe, res);
			io_uring_sqe_set_data64(sqe, FLOOR_UD(OP_CLOSE, 0));
		} else {
			c = &w->conns[idx];
			memset(c, 0, sizeof(*c));
			c->fd = res;
			c->open = 1;
			c->q_head = c->q_tail = FLOOR_NONE;
			if (!w->ring_recv && !(c->buf = malloc(app_conn_bufsize(w->o)))) {
				c->inflight = 0;
				c->closing = 1;
				maybe_release(w, c);
			} else {
				arm_recv(w, c);
			}
		}
	}
	if (cqe->flags & IORING_CQE_F_MORE || w->stop)
		return;
	if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
		/* Out of descriptors: the pending connection stays queued and
		 * would wake us at once, so wait before trying again. */
		struct io_uring_sqe *sqe = floor_sqe(w);

		w->backoff.tv_sec = 0;
		w->backoff.tv_nsec = 50 * 1000 * 1000;
		io_uring_prep_timeout(sqe, &w->backoff, 0, 0);
		io_uring_sqe_set_data64(sqe, FLOOR_UD(OP_TIMER, 0));
	} else {
		arm_accept(w);
	}
}

static void on_recv(struct worker *w, struct conn *c, struct io_uring_cqe *cqe)
{
	int res = cqe->res, more = !!(cqe->flags & IORING_CQE_F_MORE);
	int bid = (cqe->flags & IORING_CQE_F_BUFFER) ? (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT) : -1;

	if (!more) {
		c->recv_armed = 0;
		c->inflight--;
	}
	if (res > 0) {
		int kept = 0;

		if (!c->closing) {
			char *data = bid >= 0 ? ring_buf(w, bid) : c->buf + c->have;

			kept = app_recv(w, c, data, (uint32_t)res, bid);
			if (kept < 0)
				conn_close(w, c);
		}
		if (kept <= 0 && bid >= 0)
			recycle_buf(w, bid);
		if (kept > 0 && c->queued >= FLOOR_MAX_QUEUED && c->recv_armed && !c->paused) {
			struct io_uring_sqe *sqe = floor_sqe(w);

			c->paused = 1;
			io_uring_prep_cancel64(sqe, FLOOR_UD(OP_RECV, conn_idx(w, c)), 0);
			io_uring_sqe_set_data64(sqe, FLOOR_UD(OP_CANCEL, conn_idx(w, c)));
			c->inflight++;
		}
	} else if (res == 0) {
		c->eof = 1;
	} else if (res == -ENOBUFS && !more) {
		w->grow = 1;
		if (!c->starved && w->nstarved < w->starved_cap) {
			c->starved = 1;
			w->starved[w->nstarved++] = conn_idx(w, c);
		}
	} else if (res != -ECANCELED) {
		conn_close(w, c);
	}
	if (c->closing) {
		maybe_release(w, c);
		return;
	}
	/* A multishot recv can end for reasons of its own; start another. */
	if (w->ring_recv && !more && !c->eof && !c->paused && !c->starved && !c->recv_armed)
		arm_recv(w, c);
	conn_pump(w, c);
}

static void on_send(struct worker *w, struct conn *c, struct io_uring_cqe *cqe)
{
	c->inflight--;
	c->sending = 0;
	if (cqe->res <= 0 || c->closing) {
		conn_close(w, c);
		maybe_release(w, c);
		return;
	}
	if (c->tx_nbufs) {
		/* Recycle what went out; a partly sent buffer stays first. */
		uint32_t left = (uint32_t)cqe->res;

		c->tx_nbufs = 0;
		while (left) {
			uint32_t b = c->q_head, avail = w->q_len[b] - c->q_off;

			if (left < avail) {
				c->q_off += left;
				break;
			}
			left -= avail;
			c->q_off = 0;
			c->q_head = w->q_next[b];
			if (c->q_head == FLOOR_NONE)
				c->q_tail = FLOOR_NONE;
			c->queued--;
			recycle_buf(w, (int)b);
		}
	} else {
		c->tx_off += (uint32_t)cqe->res;
		if (c->tx_off >= c->tx_len) {
			c->tx = NULL;
			c->tx_off = c->tx_len = 0;
		}
	}
	conn_pump(w, c);
}

static void dispatch(struct worker *w, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	uint32_t idx = (uint32_t)ud;
	struct conn *c = &w->conns[idx < w->o->max_conns ? idx : 0];

	switch ((enum floor_op)(ud >> 32)) {
	case OP_ACCEPT:
		on_accept(w, cqe);
		break;
	case OP_RECV:
		on_recv(w, c, cqe);
		break;
	case OP_SEND:
		on_send(w, c, cqe);
		break;
	case OP_CANCEL:
		c->inflight--;
		if (c->closing)
			maybe_release(w, c);
		else
			conn_pump(w, c);
		break;
	case OP_TIMER:
		if (!w->stop)
			arm_accept(w);
		break;
	case OP_WAKE:
		w->stop = 1;
		break;
	case OP_CLOSE:
		break; /* nothing to do whatever the result: the slot is gone */
	}
}

/* The ring starts small and doubles whenever a receive finds it empty, so
 * the buffers in use (and the memory they touch) follow the number of
 * connections actually receiving at once, not the worst case. */
static void grow_buffers(struct worker *w)
{
	unsigned add = w->nprovided ? w->nprovided : 64;

	if (add > w->o->nbufs - w->nprovided)
		add = w->o->nbufs - w->nprovided;
	for (unsigned i = 0; i < add; i++)
		recycle_buf(w, (int)(w->nprovided + i));
	w->nprovided += add;
}

/* Buffers came back: make them visible, then retry starved receivers. */
static void flush_buffers(struct worker *w)
{
	if (w->grow) {
		w->grow = 0;
		grow_buffers(w);
	}
	if (!w->br_added)
		return;
	io_uring_buf_ring_advance(w->br, (int)w->br_added);
	w->br_added = 0;
	for (unsigned i = 0; i < w->nstarved; i++) {
		struct conn *c = &w->conns[w->starved[i]];

		if (!c->starved)
			continue; /* closed and maybe reused since */
		c->starved = 0;
		if (!c->closing && !c->eof && !c->paused && !c->recv_armed)
			arm_recv(w, c);
	}
	w->nstarved = 0;
}

static int setup_ring(struct worker *w)
{
	/* Best first; older kernels refuse the newer flags with -EINVAL. */
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
		0,
	};
	int ret = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		p.flags = tries[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = 16384;
		ret = io_uring_queue_init_params(2048, &w->ring, &p);
		if (ret == 0) {
			if (i > 0 && w->id == 0)
				fprintf(stderr, "floor: ring setup fell back to flags %#x\n", tries[i]);
			break;
		}
	}
	if (ret < 0)
		return ret;
	if (w->fixed && io_uring_register_files_sparse(&w->ring, w->o->max_conns) < 0)
		w->fixed = 0; /* fall back to plain descriptors */
	if (w->ring_recv) {
		struct io_uring_buf_reg reg;

		w->br_size = w->o->nbufs * sizeof(struct io_uring_buf);
		w->br = mmap(NULL, w->br_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		w->bufs = malloc((size_t)w->o->nbufs * w->o->bufsize);
		w->q_next = calloc(w->o->nbufs, sizeof(uint32_t));
		w->q_len = calloc(w->o->nbufs, sizeof(uint32_t));
		if (w->br == MAP_FAILED || !w->bufs || !w->q_next || !w->q_len)
			return -ENOMEM;
		memset(&reg, 0, sizeof(reg));
		reg.ring_addr = (uint64_t)(uintptr_t)w->br;
		reg.ring_entries = w->o->nbufs;
		reg.bgid = FLOOR_BGID;
		io_uring_buf_ring_init(w->br);
		ret = io_uring_register_buf_ring(&w->ring, &reg, 0);
		if (ret < 0)
			return ret;
		grow_buffers(w);
		io_uring_buf_ring_advance(w->br, (int)w->br_added);
		w->br_added = 0;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct io_uring_sqe *sqe;

	w->err = setup_ring(w);
	pthread_barrier_wait(w->ready);
	if (w->err < 0)
		return NULL;
	sqe = floor_sqe(w);
	io_uring_prep_read(sqe, w->wake_fd, &w->wake_val, sizeof(w->wake_val), 0);
	io_uring_sqe_set_data64(sqe, FLOOR_UD(OP_WAKE, 0));
	arm_accept(w);
	while (!w->stop) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int ret;

		flush_buffers(w);
		ret = io_uring_submit_and_wait(&w->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME) {
			fprintf(stderr, "worker %d: io_uring_submit_and_wait: %s\n", w->id, strerror(-ret));
			w->err = ret;
			break;
		}
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			dispatch(w, cqe);
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
	}
	io_uring_queue_exit(&w->ring);
	return NULL;
}

#endif /* MAGPIE_BENCH_FLOOR_H */
