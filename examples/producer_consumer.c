/* producer_consumer: asyncio.Queue(maxsize) with task_done/join and poison
 * pills. One producer fills a bounded queue (backpressure: send suspends
 * while it is full); three consumers process items and mark each done; the
 * producer waits for the queue to be fully processed (join), then sends one
 * poison pill per consumer so that each stops. */
#include <magpie.h>
#include <stdio.h>

#define CONSUMERS 3
#define ITEMS 30
#define POISON (-1)

typedef struct consumer {
    mag_chan_t *q;
    int id, handled, sum;
} consumer_t;

static int consume(void *arg)
{
    consumer_t *c = arg;
    for (;;) {
        int item;
        int rc = mag_chan_recv(c->q, &item);
        if (rc < 0)
            return rc;
        if (item == POISON) {
            mag_chan_task_done(c->q);
            return 0;
        }
        mag_sleep((uint64_t)(item % 4 + 1) * MAG_MS); /* "work" */
        c->handled++;
        c->sum += item;
        mag_chan_task_done(c->q);
    }
}

static int app(void *arg)
{
    (void)arg;
    mag_chan_t *q = mag_chan_create(sizeof(int), 5); /* maxsize 5 */
    consumer_t cons[CONSUMERS];
    mag_task_t *tasks[CONSUMERS];
    if (!q)
        return -1;
    for (int i = 0; i < CONSUMERS; i++) {
        cons[i] = (consumer_t){q, i, 0, 0};
        tasks[i] = mag_spawn(consume, &cons[i]);
    }
    for (int i = 1; i <= ITEMS; i++)
        mag_chan_send(q, &i); /* waits while 5 items are queued */
    mag_chan_join(q);         /* every item taken and task_done'd */
    printf("all %d items processed\n", ITEMS);
    for (int i = 0; i < CONSUMERS; i++) {
        int pill = POISON;
        mag_chan_send(q, &pill);
    }
    int total = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        mag_join(tasks[i], NULL);
        printf("consumer %d handled %2d items (sum %d)\n", i, cons[i].handled, cons[i].sum);
        total += cons[i].sum;
    }
    printf("total %d (expected %d)\n", total, ITEMS * (ITEMS + 1) / 2);
    mag_chan_destroy(q);
    return total == ITEMS * (ITEMS + 1) / 2 ? 0 : 1;
}

int main(void)
{
    int status = 1;
    if (mag_run(NULL, app, NULL, &status) < 0)
        return 1;
    return status;
}
