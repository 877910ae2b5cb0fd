/* echo_floor - the raw io_uring TCP echo server: the floor for the echo
 * benchmarks. Every byte received is sent back; nothing else.
 *
 *   echo_floor [--port P] [--workers N] [--shared-listener] [--recv ring|conn]
 *              [--no-fixed] [--bufsize B] [--nbufs N] [--max-conns N]
 *
 * Prints "listening on <port>" when ready; exits 0 on SIGINT or SIGTERM.
 */
#include "floor.h"
#include "floor_main.h"

static int app_recv(struct worker *w, struct conn *c, char *data, uint32_t len, int bid)
{
	if (bid >= 0) {
		/* Echo straight out of the ring buffer; the engine sends the
		 * queue and recycles each buffer once it has gone out. */
		floor_queue_buf(w, c, bid, len);
		return 1;
	}
	/* conn mode: the receive is not re-armed until this has been sent. */
	c->tx = data;
	c->tx_len = len;
	c->tx_off = 0;
	return 0;
}

/* Ring buffers are sent by the engine from the queue; nothing else. */
static void app_next_tx(struct worker *w, struct conn *c)
{
	(void)w;
	(void)c;
}

static unsigned app_conn_bufsize(const struct floor_opts *o)
{
	return o->bufsize;
}

int main(int argc, char **argv)
{
	return floor_main(argc, argv);
}
