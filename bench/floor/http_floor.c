/* http_floor - the raw io_uring HTTP/1.1 hello-world server: the floor for
 * the HTTP benchmark. Keep-alive and pipelining; every complete request
 * (up to its blank line) that starts with "GET " is answered with the same
 * 200 response; anything else closes the connection. Request bodies are not
 * supported: wrk's GETs have none.
 *
 *   http_floor [--port P] [--workers N] [--shared-listener] [--recv ring|conn]
 *              [--no-fixed] [--bufsize B] [--nbufs N] [--max-conns N]
 *
 * Prints "listening on <port>" when ready; exits 0 on SIGINT or SIGTERM.
 */
#include "floor.h"
#include "floor_main.h"

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
			       "Content-Type: text/plain\r\n\r\nHello, World!";
#define RESPONSE_LEN (sizeof(RESPONSE) - 1)
/* Responses are sent from one read-only run of copies, so answering K
 * pipelined requests needs no per-connection memory at all. */
#define BLOB_COPIES 64
#define HEADER_MAX 8192

static char blob[BLOB_COPIES * RESPONSE_LEN];

/* Counts the complete requests at the start of p[0..n) into *count. Returns
 * the bytes they span (the rest is an incomplete request), or -EBADMSG when
 * a request does not start with "GET ". */
static long count_requests(const char *p, size_t n, uint32_t *count)
{
	size_t off = 0;

	while (off < n) {
		size_t left = n - off;
		const char *end;

		if (memcmp(p + off, "GET ", left < 4 ? left : 4) != 0)
			return -EBADMSG;
		end = memmem(p + off, left, "\r\n\r\n", 4);
		if (!end)
			break;
		off = (size_t)(end - p) + 4;
		(*count)++;
	}
	return (long)off;
}

static int app_recv(struct worker *w, struct conn *c, char *data, uint32_t len, int bid)
{
	const char *p = data;
	size_t n = len;
	long used;

	if (bid < 0) {
		/* conn mode: received in place after what c->buf held. */
		c->have += len;
		p = c->buf;
		n = c->have;
	} else if (c->have) {
		/* A request straddles ring buffers: reassemble in c->buf. */
		memcpy(c->buf + c->have, data, len);
		c->have += len;
		p = c->buf;
		n = c->have;
	}
	used = count_requests(p, n, &c->pending);
	if (used < 0)
		return (int)used;
	n -= (size_t)used;
	if (n >= HEADER_MAX)
		return -EMSGSIZE;
	if (n && !c->buf && !(c->buf = malloc(app_conn_bufsize(w->o))))
		return -ENOMEM;
	if (n)
		memmove(c->buf, p + used, n);
	c->have = (uint32_t)n;
	return 0;
}

static void app_next_tx(struct worker *w, struct conn *c)
{
	uint32_t k = c->pending < BLOB_COPIES ? c->pending : BLOB_COPIES;

	(void)w;
	if (!k)
		return;
	c->pending -= k;
	c->tx = blob;
	c->tx_len = k * (uint32_t)RESPONSE_LEN;
	c->tx_off = 0;
}

/* Room for a partial header block plus one more receive. */
static unsigned app_conn_bufsize(const struct floor_opts *o)
{
	return HEADER_MAX + o->bufsize;
}

int main(int argc, char **argv)
{
	for (int i = 0; i < BLOB_COPIES; i++)
		memcpy(blob + (size_t)i * RESPONSE_LEN, RESPONSE, RESPONSE_LEN);
	return floor_main(argc, argv);
}
