/* chan_select: mag_select fairness (no ready case starves), select against
 * select over rendezvous channels, waits that end by a send, a receive, a
 * close, a cancellation or a deadline, and selects from OS threads. */
#include "test/test.h"

#include <errno.h>
#include <pthread.h>

#include "sync/chan.h"
#include "test/helpers.h"

/* ---- fairness: every ready case gets its share ------------------------- */
static void fairness(void)
{
    enum { K = 3, ROUNDS = 3000 };
    mag_chan_t *c[K];
    int hits[K] = {0}, v = 0, out[K];
    mag_select_case_t cs[K];
    for (int i = 0; i < K; i++) {
        c[i] = mag_chan_create(sizeof(int), 4);
        for (int j = 0; j < 4; j++)
            ASSERT_EQ(mag_chan_send(c[i], &v), 0);
        cs[i] = (mag_select_case_t){c[i], MAG_SELECT_RECV, &out[i], 0};
    }
    for (int r = 0; r < ROUNDS; r++) {
        int idx = mag_select(cs, K);
        ASSERT_TRUE(idx >= 0 && idx < K);
        ASSERT_EQ(cs[idx].result, 0);
        hits[idx]++;
        ASSERT_EQ(mag_chan_send(c[idx], &v), 0); /* keep every case ready */
    }
    for (int i = 0; i < K; i++) {
        ASSERT_GT(hits[i], ROUNDS / K / 2); /* generous: expected 1000 each */
        mag_chan_destroy(c[i]);
    }
}

/* ---- select against select over rendezvous channels --------------------- */
static mag_chan_t *xa, *xb;
static int pair_rounds;
static _Atomic long pair_sum;

/* side 0 sends on xa and receives on xb; side 1 the reverse. Each round one
 * of the two transfers happens; both sides see the same one. */
static int pair_side(void *arg)
{
    int side = (int)(uintptr_t)arg;
    for (int r = 0; r < pair_rounds; r++) {
        int out = side * 1000000 + r, in = -1;
        mag_select_case_t cs[2] = {
            {side ? xb : xa, MAG_SELECT_SEND, &out, 0},
            {side ? xa : xb, MAG_SELECT_RECV, &in, 0},
        };
        int idx = mag_select(cs, 2);
        ASSERT_TRUE(idx == 0 || idx == 1);
        ASSERT_EQ(cs[idx].result, 0);
        if (idx == 1) {
            ASSERT_EQ(in % 1000000, r); /* lock-step: the peer is in the same round */
            atomic_fetch_add(&pair_sum, 1);
        }
    }
    return 0;
}

static void select_vs_select(void)
{
    xa = mag_chan_create(sizeof(int), 0);
    xb = mag_chan_create(sizeof(int), 0);
    atomic_store(&pair_sum, 0);
    mag_task_t *a = mag_spawn(pair_side, (void *)0), *b = mag_spawn(pair_side, (void *)1);
    ASSERT_EQ(mag_join(a, NULL), 0);
    ASSERT_EQ(mag_join(b, NULL), 0);
    ASSERT_EQ(atomic_load(&pair_sum), pair_rounds); /* one receive per round */
    mag_chan_destroy(xa);
    mag_chan_destroy(xb);
}

/* ---- how a waiting select ends ------------------------------------------ */
struct sel_wait {
    mag_chan_t *a, *b;
    int idx, result, got;
    int op_b; /* op of the second case */
    uint64_t timeout;
};

static int sel_wait_task(void *p)
{
    struct sel_wait *s = p;
    int dummy = 77;
    mag_select_case_t cs[2] = {{s->a, MAG_SELECT_RECV, &s->got, 0},
                               {s->b, s->op_b, s->op_b == MAG_SELECT_SEND ? &dummy : &s->got, 0}};
    uint64_t tok = s->timeout ? mag_deadline_push(mag_now() + s->timeout) : 0;
    s->idx = mag_select(cs, 2);
    mag_deadline_pop(tok);
    if (s->idx >= 0)
        s->result = cs[s->idx].result;
    return 0;
}

static void *sel_wait_thread(void *p)
{
    sel_wait_task(p);
    return NULL;
}

static void endings(void)
{
    int v = 5;
    struct sel_wait s;
    mag_task_t *t;
    mag_chan_t *a = mag_chan_create(sizeof(int), 0), *b = mag_chan_create(sizeof(int), 2);

    /* A send on the first channel. */
    s = (struct sel_wait){a, b, -9, -9, -1, MAG_SELECT_RECV, 0};
    t = mag_spawn(sel_wait_task, &s);
    test_wait_chan(a, &a->recvq, 1);
    ASSERT_EQ(mag_chan_send(a, &v), 0);
    ASSERT_EQ(mag_join(t, NULL), 0);
    ASSERT_EQ(s.idx, 0);
    ASSERT_EQ(s.got, 5);
    ASSERT_EQ(test_chan_len(b, &b->recvq), 0); /* its other node is gone */

    /* A receiver makes room for the select's send on a full channel. */
    ASSERT_EQ(mag_chan_send(b, &v), 0);
    ASSERT_EQ(mag_chan_send(b, &v), 0);
    s = (struct sel_wait){a, b, -9, -9, -1, MAG_SELECT_SEND, 0};
    t = mag_spawn(sel_wait_task, &s);
    test_wait_chan(a, &a->recvq, 1);
    int out;
    ASSERT_EQ(mag_chan_recv(b, &out), 0);
    ASSERT_EQ(mag_join(t, NULL), 0);
    ASSERT_EQ(s.idx, 1);
    ASSERT_EQ(s.result, 0);
    ASSERT_EQ(mag_chan_len(b), 2);
    ASSERT_EQ(mag_chan_recv(b, &out), 0);
    ASSERT_EQ(mag_chan_recv(b, &out), 0);
    ASSERT_EQ(out, 77);

    /* A deadline: nothing is taken. */
    s = (struct sel_wait){a, b, -9, -9, -1, MAG_SELECT_RECV, 10 * MAG_MS};
    t = mag_spawn(sel_wait_task, &s);
    ASSERT_EQ(mag_join(t, NULL), 0);
    ASSERT_EQ(s.idx, -ETIMEDOUT);
    ASSERT_EQ(test_chan_len(a, &a->recvq), 0);

    /* A cancellation. */
    s = (struct sel_wait){a, b, -9, -9, -1, MAG_SELECT_RECV, 0};
    t = mag_spawn(sel_wait_task, &s);
    test_wait_chan(a, &a->recvq, 1);
    mag_cancel(t);
    ASSERT_EQ(mag_join(t, NULL), 0);
    ASSERT_EQ(s.idx, -ECANCELED);
    ASSERT_EQ(mag_chan_try_send(a, &v), -EAGAIN); /* no receiver left behind */

    /* A thread selects; a task's send completes it. */
    s = (struct sel_wait){a, b, -9, -9, -1, MAG_SELECT_RECV, 0};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, sel_wait_thread, &s), 0);
    test_wait_chan(b, &b->recvq, 1);
    v = 9;
    ASSERT_EQ(mag_chan_send(b, &v), 0);
    while (test_chan_len(a, &a->recvq) > 0) /* it unlinks its node on a before returning */
        mag_yield();
    mag_sleep(MAG_MS);
    pthread_join(th, NULL);
    ASSERT_EQ(s.idx, 1);
    ASSERT_EQ(s.got, 9);

    /* A close. */
    s = (struct sel_wait){a, b, -9, -9, -1, MAG_SELECT_RECV, 0};
    t = mag_spawn(sel_wait_task, &s);
    test_wait_chan(a, &a->recvq, 1);
    mag_chan_close(a);
    ASSERT_EQ(mag_join(t, NULL), 0);
    ASSERT_EQ(s.idx, 0);
    ASSERT_EQ(s.result, -EPIPE);

    /* Disabled cases: a NULL channel never fires. */
    mag_select_case_t cs[2] = {{NULL, MAG_SELECT_RECV, NULL, 0}, {b, MAG_SELECT_SEND, &v, 0}};
    ASSERT_EQ(mag_select(cs, 2), 1);
    mag_chan_destroy(a);
    mag_chan_destroy(b);
}

/* ---- many selecting consumers on many channels --------------------------- */
static int many_consumer(void *arg)
{
    mag_chan_t **c = arg;
    int v, n = 0;
    mag_select_case_t cs[3] = {{c[0], MAG_SELECT_RECV, &v, 0},
                               {c[1], MAG_SELECT_RECV, &v, 0},
                               {c[2], MAG_SELECT_RECV, &v, 0}};
    for (;;) {
        int idx = mag_select(cs, 3);
        ASSERT_TRUE(idx >= 0);
        if (cs[idx].result == -EPIPE) {
            cs[idx].chan = NULL; /* Go's idiom: disable the closed case */
            if (!cs[0].chan && !cs[1].chan && !cs[2].chan)
                return n;
            continue;
        }
        n++;
    }
}

static void many(void)
{
    enum { CONS = 4, MSGS = 3000 };
    mag_chan_t *c[3] = {mag_chan_create(sizeof(int), 0), mag_chan_create(sizeof(int), 3),
                        mag_chan_create(sizeof(int), MAG_CHAN_UNBOUNDED)};
    mag_task_t *t[CONS];
    for (int i = 0; i < CONS; i++)
        t[i] = mag_spawn(many_consumer, c);
    for (int i = 0; i < MSGS; i++)
        ASSERT_EQ(mag_chan_send(c[i % 3], &i), 0);
    for (int i = 0; i < 3; i++)
        mag_chan_close(c[i]);
    int total = 0, st;
    for (int i = 0; i < CONS; i++) {
        ASSERT_EQ(mag_join(t[i], &st), 0);
        total += st;
    }
    ASSERT_EQ(total, MSGS);
    for (int i = 0; i < 3; i++)
        mag_chan_destroy(c[i]);
}

static int main_task(void *arg)
{
    (void)arg;
    fairness();
    select_vs_select();
    endings();
    many();
    return 0;
}

int main(void)
{
    pair_rounds = TEST_SCALE(5000);
    unsigned modes[] = {1, 2, test_workers(4)};
    for (int i = 0; i < 3; i++)
        test_run(modes[i], main_task, NULL);
    printf("chan_select: ok\n");
    return 0;
}
