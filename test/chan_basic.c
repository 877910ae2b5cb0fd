/* chan_basic: bounded, unbounded and rendezvous channels between tasks, OS
 * threads and both; FIFO order of waiting senders and receivers; close while
 * tasks wait; task_done / join; leaving early consumes nothing. */
#include "test/test.h"

#include <errno.h>
#include <pthread.h>

#include "sync/chan.h"
#include "test/helpers.h"

/* ---- many senders and receivers, tasks and threads ---------------------- */
#define PRODUCERS 4
#define CONSUMERS 3
static int per_producer;
struct flow {
    mag_chan_t *c;
    int id;
    long sum;
    int count;
    int last[PRODUCERS]; /* per-producer order check */
};

static void produce(struct flow *f)
{
    for (int i = 0; i < per_producer; i++) {
        int v = f->id * 1000000 + i;
        ASSERT_EQ(mag_chan_send(f->c, &v), 0);
    }
}

static void consume(struct flow *f)
{
    int v;
    for (int p = 0; p < PRODUCERS; p++)
        f->last[p] = -1;
    while (mag_chan_recv(f->c, &v) == 0) {
        int p = v / 1000000, i = v % 1000000;
        ASSERT_GT(i, f->last[p]); /* one producer's messages stay in order */
        f->last[p] = i;
        f->sum += v;
        f->count++;
        mag_chan_task_done(f->c);
    }
}

static int produce_task(void *p)
{
    produce(p);
    return 0;
}
static int consume_task(void *p)
{
    consume(p);
    return 0;
}
/* Threads say they are done through a wait group, so that a task waiting for
 * them suspends instead of blocking its worker in pthread_join. */
static mag_wg_t threads_wg = MAG_WG_INIT, producers_wg = MAG_WG_INIT;
static void *produce_thread(void *p)
{
    produce(p);
    mag_wg_done(&producers_wg);
    return NULL;
}
static void *consume_thread(void *p)
{
    consume(p);
    mag_wg_done(&threads_wg);
    return NULL;
}

static void flow(size_t cap, bool threads_produce, bool threads_consume)
{
    mag_chan_t *c = mag_chan_create(sizeof(int), cap);
    struct flow pf[PRODUCERS], cf[CONSUMERS];
    pthread_t pth[PRODUCERS], cth[CONSUMERS];
    mag_task_t *pt[PRODUCERS], *ct[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        cf[i] = (struct flow){.c = c, .id = i};
        if (threads_consume && i % 2 == 0) {
            mag_wg_add(&threads_wg, 1);
            ASSERT_EQ(pthread_create(&cth[i], NULL, consume_thread, &cf[i]), 0);
        } else
            ASSERT_PTR_NE(ct[i] = mag_spawn(consume_task, &cf[i]), NULL);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pf[i] = (struct flow){.c = c, .id = i};
        if (threads_produce && i % 2 == 0) {
            mag_wg_add(&producers_wg, 1);
            ASSERT_EQ(pthread_create(&pth[i], NULL, produce_thread, &pf[i]), 0);
        } else
            ASSERT_PTR_NE(pt[i] = mag_spawn(produce_task, &pf[i]), NULL);
    }
    for (int i = 0; i < PRODUCERS; i++)
        if (!(threads_produce && i % 2 == 0))
            ASSERT_EQ(mag_join(pt[i], NULL), 0);
    ASSERT_EQ(mag_wg_wait(&producers_wg), 0);
    ASSERT_EQ(mag_chan_join(c), 0); /* every message task_done'd */
    ASSERT_EQ(mag_chan_close(c), 0);
    for (int i = 0; i < PRODUCERS; i++)
        if (threads_produce && i % 2 == 0)
            pthread_join(pth[i], NULL);
    long sum = 0, expect = 0;
    int count = 0;
    ASSERT_EQ(mag_wg_wait(&threads_wg), 0);
    for (int i = 0; i < CONSUMERS; i++) {
        if (threads_consume && i % 2 == 0)
            pthread_join(cth[i], NULL);
        else
            ASSERT_EQ(mag_join(ct[i], NULL), 0);
        sum += cf[i].sum;
        count += cf[i].count;
    }
    for (int p = 0; p < PRODUCERS; p++)
        for (int i = 0; i < per_producer; i++)
            expect += p * 1000000 + i;
    ASSERT_EQ(count, PRODUCERS * per_producer);
    ASSERT_EQ(sum, expect);
    mag_chan_destroy(c);
}

/* ---- FIFO among waiting receivers and waiting senders ------------------- */
struct waiter {
    mag_chan_t *c;
    int id, got, rc;
};

static int recv_task(void *p)
{
    struct waiter *w = p;
    return w->rc = mag_chan_recv(w->c, &w->got);
}

static int send_task(void *p)
{
    struct waiter *w = p;
    return w->rc = mag_chan_send(w->c, &w->id);
}

static void fifo(size_t cap)
{
    enum { N = 5 };
    mag_chan_t *c = mag_chan_create(sizeof(int), cap);
    struct waiter w[N];
    mag_task_t *t[N];
    /* Receivers queue in order 0..N-1 and get messages in the same order. */
    for (int i = 0; i < N; i++) {
        w[i] = (struct waiter){c, i, -1, 1};
        t[i] = mag_spawn(recv_task, &w[i]);
        test_wait_chan(c, &c->recvq, i + 1);
    }
    for (int i = 0; i < N; i++) {
        int v = 100 + i;
        ASSERT_EQ(mag_chan_send(c, &v), 0);
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(mag_join(t[i], NULL), 0);
        ASSERT_EQ(w[i].rc, 0);
        ASSERT_EQ(w[i].got, 100 + i);
    }
    /* Senders: fill the buffer, then senders queue; receive in queue order. */
    for (size_t i = 0; i < cap; i++) {
        int v = -1;
        ASSERT_EQ(mag_chan_send(c, &v), 0);
    }
    for (int i = 0; i < N; i++) {
        w[i] = (struct waiter){c, i, -1, 1};
        t[i] = mag_spawn(send_task, &w[i]);
        test_wait_chan(c, &c->sendq, i + 1);
    }
    int v;
    for (size_t i = 0; i < cap; i++) {
        ASSERT_EQ(mag_chan_recv(c, &v), 0);
        ASSERT_EQ(v, -1);
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(mag_chan_recv(c, &v), 0);
        ASSERT_EQ(v, i);
    }
    for (int i = 0; i < N; i++)
        ASSERT_EQ(mag_join(t[i], NULL), 0);
    mag_chan_destroy(c);
}

/* ---- close while tasks wait; leaving early ------------------------------ */
static void close_while_waiting(size_t cap)
{
    enum { N = 4 };
    mag_chan_t *c = mag_chan_create(sizeof(int), cap);
    struct waiter w[N];
    mag_task_t *t[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct waiter){c, i, -1, 1};
        t[i] = mag_spawn(recv_task, &w[i]);
    }
    test_wait_chan(c, &c->recvq, N);
    mag_chan_close(c);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(mag_join(t[i], NULL), 0);
        ASSERT_EQ(w[i].rc, -EPIPE);
    }
    mag_chan_destroy(c);

    if (cap == MAG_CHAN_UNBOUNDED)
        return;
    c = mag_chan_create(sizeof(int), cap);
    for (size_t i = 0; i < cap; i++)
        ASSERT_EQ(mag_chan_send(c, &w[0].id), 0);
    for (int i = 0; i < N; i++) {
        w[i] = (struct waiter){c, 7, -1, 1};
        t[i] = mag_spawn(send_task, &w[i]);
    }
    test_wait_chan(c, &c->sendq, N);
    mag_chan_close(c);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(mag_join(t[i], NULL), 0);
        ASSERT_EQ(w[i].rc, -EPIPE); /* not sent */
    }
    int v;
    for (size_t i = 0; i < cap; i++)
        ASSERT_EQ(mag_chan_recv(c, &v), 0);  /* drained ... */
    ASSERT_EQ(mag_chan_recv(c, &v), -EPIPE); /* ... then closed */
    mag_chan_destroy(c);
}

static int recv_deadline_task(void *p)
{
    struct waiter *w = p;
    uint64_t tok = mag_deadline_push(mag_now() + 10 * MAG_MS);
    w->rc = mag_chan_recv(w->c, &w->got);
    mag_deadline_pop(tok);
    return 0;
}

static void leave_early(size_t cap)
{
    mag_chan_t *c = mag_chan_create(sizeof(int), cap);
    struct waiter a = {c, 0, -1, 1}, b = {c, 1, -1, 1};
    mag_task_t *ta = mag_spawn(recv_task, &a);
    test_wait_chan(c, &c->recvq, 1);
    mag_task_t *tb = mag_spawn(recv_deadline_task, &b);
    test_wait_chan(c, &c->recvq, 2);
    mag_cancel(ta);
    ASSERT_EQ(mag_join(ta, NULL), 0);
    ASSERT_EQ(a.rc, -ECANCELED);
    ASSERT_EQ(mag_join(tb, NULL), 0);
    ASSERT_EQ(b.rc, -ETIMEDOUT);
    /* The next message is still there for a live receiver. */
    int v = 5;
    if (cap == 0) {
        struct waiter r = {c, 2, -1, 1};
        mag_task_t *tr = mag_spawn(recv_task, &r);
        ASSERT_EQ(mag_chan_send(c, &v), 0);
        ASSERT_EQ(mag_join(tr, NULL), 0);
        ASSERT_EQ(r.got, 5);
    } else {
        ASSERT_EQ(mag_chan_send(c, &v), 0);
        ASSERT_EQ(mag_chan_try_recv(c, &v), 0);
    }
    mag_chan_destroy(c);
}

static int main_task(void *arg)
{
    (void)arg;
    size_t caps[] = {0, 1, 8, MAG_CHAN_UNBOUNDED};
    for (int i = 0; i < 4; i++) {
        flow(caps[i], false, false);
        flow(caps[i], true, false);
        flow(caps[i], false, true);
        flow(caps[i], true, true);
        if (caps[i] != MAG_CHAN_UNBOUNDED)
            fifo(caps[i]);
        close_while_waiting(caps[i]);
        leave_early(caps[i]);
    }
    return 0;
}

/* Threads only, no runtime at all. */
static void threads_only(void)
{
    mag_chan_t *c = mag_chan_create(sizeof(int), 0);
    struct flow pf = {.c = c, .id = 0}, cf = {.c = c, .id = 0};
    pthread_t p, q;
    mag_wg_add(&threads_wg, 1);
    mag_wg_add(&producers_wg, 1);
    ASSERT_EQ(pthread_create(&q, NULL, consume_thread, &cf), 0);
    ASSERT_EQ(pthread_create(&p, NULL, produce_thread, &pf), 0);
    pthread_join(p, NULL);
    mag_chan_close(c);
    pthread_join(q, NULL);
    ASSERT_EQ(mag_wg_wait(&threads_wg), 0);
    ASSERT_EQ(cf.count, per_producer);
    mag_chan_destroy(c);
}

int main(void)
{
    per_producer = TEST_SCALE(2000);
    threads_only();
    unsigned modes[] = {1, 2, test_workers(4)};
    for (int i = 0; i < 3; i++)
        test_run(modes[i], main_task, NULL);
    printf("chan_basic: ok\n");
    return 0;
}
