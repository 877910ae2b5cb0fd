/* chan_property: N producers and M consumers over bounded, unbounded and
 * rendezvous channels, with random cancellations and deadlines, some of them
 * through mag_select. Property: every message whose send returned 0 is
 * received exactly once, and no message whose send failed is received. */
#include "test/test.h"

#include <errno.h>
#include <stdatomic.h>

#define P 4
#define M 3
#define MAXSEQ 100000

static int per_producer;
static _Atomic uint8_t sent[P * MAXSEQ], got[P * MAXSEQ];
static mag_chan_t *ch, *never; /* never: a channel nobody sends to */
static _Atomic int cancels_seen, timeouts_seen, producers_done;

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Sends with probability 1/4 inside a short random deadline, and with
 * probability 1/4 through a select with a never-ready second case. */
static int do_send(int *v, uint32_t *seed)
{
    uint32_t r = rnd(seed);
    uint64_t tok = 0;
    if (r % 4 == 0)
        tok = mag_deadline_push(mag_now() + (r >> 8) % (200 * MAG_US));
    int rc;
    if (r % 8 < 2) {
        int dummy;
        mag_select_case_t cs[2] = {{ch, MAG_SELECT_SEND, v, 0},
                                   {never, MAG_SELECT_RECV, &dummy, 0}};
        rc = mag_select(cs, 2);
        if (rc >= 0) {
            ASSERT_EQ(rc, 0);
            rc = cs[0].result;
        }
    } else {
        rc = mag_chan_send(ch, v);
    }
    mag_deadline_pop(tok);
    return rc;
}

static int do_recv(int *v, uint32_t *seed)
{
    uint32_t r = rnd(seed);
    uint64_t tok = 0;
    if (r % 4 == 1)
        tok = mag_deadline_push(mag_now() + (r >> 8) % (200 * MAG_US));
    int rc;
    if (r % 8 >= 5) {
        int dummy;
        mag_select_case_t cs[2] = {{never, MAG_SELECT_RECV, &dummy, 0},
                                   {ch, MAG_SELECT_RECV, v, 0}};
        rc = mag_select(cs, 2);
        if (rc >= 0) {
            ASSERT_EQ(rc, 1);
            rc = cs[1].result;
        }
    } else {
        rc = mag_chan_recv(ch, v);
    }
    mag_deadline_pop(tok);
    return rc;
}

static int producer(void *arg)
{
    int p = (int)(uintptr_t)arg;
    uint32_t seed = 0x9e3779b9u * (uint32_t)(p + 1);
    for (int i = 0; i < per_producer; i++) {
        int v = p * MAXSEQ + i;
        int rc = do_send(&v, &seed);
        if (rc == 0) {
            atomic_store_explicit(&sent[v], 1, memory_order_relaxed);
        } else if (rc == -ETIMEDOUT) {
            atomic_fetch_add(&timeouts_seen, 1);
        } else {
            ASSERT_EQ(rc, -ECANCELED);
            atomic_fetch_add(&cancels_seen, 1);
            break;
        }
    }
    atomic_fetch_add(&producers_done, 1);
    return 0;
}

static int consumer(void *arg)
{
    uint32_t seed = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
    for (;;) {
        int v = -1;
        int rc = do_recv(&v, &seed);
        if (rc == 0) {
            ASSERT_TRUE(v >= 0 && v < P * MAXSEQ);
            ASSERT_EQ(atomic_fetch_add_explicit(&got[v], 1, memory_order_relaxed), 0);
        } else if (rc == -ETIMEDOUT) {
            atomic_fetch_add(&timeouts_seen, 1);
        } else if (rc == -EPIPE) {
            return 0;
        } else {
            ASSERT_EQ(rc, -ECANCELED);
            atomic_fetch_add(&cancels_seen, 1);
            return 0;
        }
    }
}

static int round_main(void *arg)
{
    size_t cap = *(size_t *)arg;
    memset((void *)sent, 0, sizeof sent);
    memset((void *)got, 0, sizeof got);
    ch = mag_chan_create(sizeof(int), cap);
    never = mag_chan_create(sizeof(int), 0);
    mag_task_t *prod[P];
    mag_task_t *cons[64];
    atomic_store(&producers_done, 0);
    int ncons = 0, live_from = 0;
    for (int i = 0; i < P; i++)
        ASSERT_PTR_NE(prod[i] = mag_spawn(producer, (void *)(uintptr_t)i), NULL);
    for (int i = 0; i < M; i++, ncons++)
        ASSERT_PTR_NE(cons[ncons] = mag_spawn(consumer, (void *)(uintptr_t)i), NULL);

    /* Chaos: cancel a random consumer (replacing it) or, rarely, a
     * producer, at random short intervals. */
    uint32_t seed = 12345u + (uint32_t)cap;
    bool prod_cancelled[P] = {false};
    for (int k = 0; k < 1000 && ncons < 64 && atomic_load(&producers_done) < P; k++) {
        mag_sleep((rnd(&seed) % 100) * MAG_US);
        uint32_t r = rnd(&seed);
        if (r % 5 == 0) {
            int p = (int)((r >> 8) % P);
            if (!prod_cancelled[p] && p != 0) { /* producer 0 always finishes */
                mag_cancel(prod[p]);
                prod_cancelled[p] = true;
            }
        } else {
            int victim = live_from + (int)((r >> 8) % (unsigned)(ncons - live_from));
            mag_cancel(cons[victim]);
            /* keep M consumers alive: swap the victim out of the live range */
            mag_task_t *t = cons[victim];
            cons[victim] = cons[live_from];
            cons[live_from++] = t;
            ASSERT_PTR_NE(cons[ncons] = mag_spawn(consumer, (void *)(uintptr_t)(ncons + 100)),
                          NULL);
            ncons++;
        }
    }
    for (int i = 0; i < P; i++)
        ASSERT_EQ(mag_join(prod[i], NULL), 0);
    mag_chan_close(ch);
    for (int i = 0; i < ncons; i++)
        ASSERT_EQ(mag_join(cons[i], NULL), 0);

    long nsent = 0;
    for (int v = 0; v < P * MAXSEQ; v++) {
        ASSERT_EQ(got[v], sent[v]); /* sent => received once; not sent => never */
        nsent += sent[v];
    }
    ASSERT_GT(nsent, 0);
    int left;
    ASSERT_EQ(mag_chan_try_recv(ch, &left), -EPIPE);
    mag_chan_destroy(ch);
    mag_chan_destroy(never);
    return 0;
}

int main(void)
{
    per_producer = TEST_SCALE(20000);
    size_t caps[] = {0, 1, 16, MAG_CHAN_UNBOUNDED};
    unsigned modes[] = {1, 2, test_workers(8)};
    for (int m = 0; m < 3; m++) {
        for (int c = 0; c < 4; c++) {
            mag_config_t cfg;
            mag_config_init(&cfg);
            cfg.workers = modes[m];
            int st = -1;
            ASSERT_EQ(mag_run(&cfg, round_main, &caps[c], &st), 0);
            ASSERT_EQ(st, 0);
        }
    }
    printf("chan_property: ok (%d cancellations, %d timeouts seen)\n", atomic_load(&cancels_seen),
           atomic_load(&timeouts_seen));
    return 0;
}
