/* chan_bcast: broadcast channel (every subscriber sees every message, a slow
 * one is told how many it lost) and watch channel (latest value, versions),
 * from tasks and OS threads; close and cancel while waiting. */
#include "test/test.h"

#include <errno.h>
#include <pthread.h>

enum { MSGS = 2000 };
static mag_wg_t thread_wg = MAG_WG_INIT;

struct sub {
    mag_bcast_sub_t *s;
    int count;
    uint64_t missed;
};

/* Receives until closed: in order, counting what was lost to lag. */
static int sub_loop(void *p)
{
    struct sub *s = p;
    int v, last = -1;
    for (;;) {
        uint64_t missed = 0;
        int rc = mag_bcast_recv(s->s, &v, &missed);
        if (rc == -EPIPE)
            return 0;
        if (rc == -EOVERFLOW) {
            ASSERT_GT(missed, 0);
            s->missed += missed;
            last += (int)missed;
            continue;
        }
        ASSERT_EQ(rc, 0);
        ASSERT_EQ(v, last + 1);
        last = v;
        s->count++;
    }
}

static void *sub_thread(void *p)
{
    sub_loop(p);
    mag_wg_done(&thread_wg);
    return NULL;
}

static void bcast_all(size_t cap)
{
    enum { SUBS = 4 };
    mag_bcast_t *b = mag_bcast_create(sizeof(int), cap);
    struct sub subs[SUBS];
    mag_task_t *t[SUBS];
    pthread_t th;
    for (int i = 0; i < SUBS; i++)
        subs[i] = (struct sub){mag_bcast_subscribe(b), 0, 0};
    mag_wg_add(&thread_wg, 1);
    ASSERT_EQ(pthread_create(&th, NULL, sub_thread, &subs[0]), 0);
    for (int i = 1; i < SUBS; i++)
        t[i] = mag_spawn(sub_loop, &subs[i]);
    for (int i = 0; i < MSGS; i++) {
        ASSERT_EQ(mag_bcast_send(b, &i), SUBS);
        if (i % 64 == 0)
            mag_yield();
    }
    mag_bcast_destroy(b); /* closes; subscriptions keep it alive */
    for (int i = 1; i < SUBS; i++)
        ASSERT_EQ(mag_join(t[i], NULL), 0);
    ASSERT_EQ(mag_wg_wait(&thread_wg), 0);
    pthread_join(th, NULL);
    for (int i = 0; i < SUBS; i++) {
        /* Nothing is lost silently: received + reported lost = sent. */
        ASSERT_EQ(subs[i].count + (int)subs[i].missed, MSGS);
        if (cap >= MSGS)
            ASSERT_EQ(subs[i].missed, 0);
        mag_bcast_unsubscribe(subs[i].s);
    }
}

static int cancelled_recv(void *p)
{
    int v;
    return mag_bcast_recv(p, &v, NULL);
}

static void bcast_cancel(void)
{
    mag_bcast_t *b = mag_bcast_create(sizeof(int), 4);
    mag_bcast_sub_t *s = mag_bcast_subscribe(b), *s2 = mag_bcast_subscribe(b);
    int st, v = 1;
    mag_task_t *t = mag_spawn(cancelled_recv, s);
    mag_sleep(MAG_MS);
    mag_cancel(t);
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    ASSERT_EQ(mag_bcast_send(b, &v), 2);
    ASSERT_EQ(mag_bcast_try_recv(s, &v, NULL), 0); /* the leaver lost nothing */
    t = mag_spawn(cancelled_recv, s);
    mag_sleep(MAG_MS);
    mag_bcast_close(b);
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, -EPIPE);
    ASSERT_EQ(mag_bcast_recv(s2, &v, NULL), 0); /* s2 still drains */
    ASSERT_EQ(v, 1);
    ASSERT_EQ(mag_bcast_recv(s2, &v, NULL), -EPIPE);
    ASSERT_PTR_EQ(mag_bcast_subscribe(b), NULL);
    mag_bcast_unsubscribe(s);
    mag_bcast_unsubscribe(s2);
    mag_bcast_destroy(b);
}

/* ---- watch ------------------------------------------------------------------ */
static mag_watch_t *w;

static int watcher(void *arg)
{
    (void)arg;
    uint64_t seen = 0;
    int v, prev = 0, changes = 0;
    for (;;) {
        int rc = mag_watch_wait(w, &seen, &v);
        if (rc == -EPIPE)
            break;
        ASSERT_EQ(rc, 0);
        ASSERT_GT(v, prev); /* values only move forward; some may be skipped */
        ASSERT_UEQ(seen, (uint64_t)v);
        prev = v;
        changes++;
    }
    ASSERT_EQ(prev, 500); /* the last value is never skipped */
    return changes;
}

static int watcher_thread_changes;
static void *watcher_thread(void *arg)
{
    watcher_thread_changes = watcher(arg);
    mag_wg_done(&thread_wg);
    return NULL;
}

static void watch_tests(void)
{
    int zero = 0;
    w = mag_watch_create(sizeof(int), &zero);
    mag_task_t *t[3];
    pthread_t th;
    mag_wg_add(&thread_wg, 1);
    ASSERT_EQ(pthread_create(&th, NULL, watcher_thread, NULL), 0);
    for (int i = 0; i < 3; i++)
        t[i] = mag_spawn(watcher, NULL);
    for (int i = 1; i <= 500; i++) {
        ASSERT_EQ(mag_watch_send(w, &i), 0);
        if (i % 7 == 0)
            mag_yield();
    }
    /* Let the watchers see the last value before the close. */
    uint64_t ver;
    ASSERT_EQ(mag_watch_get(w, NULL, &ver), 0);
    ASSERT_UEQ(ver, 500);
    mag_sleep(2 * MAG_MS);
    mag_watch_close(w);
    int st;
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(mag_join(t[i], &st), 0);
        ASSERT_GT(st, 0);
    }
    ASSERT_EQ(mag_wg_wait(&thread_wg), 0);
    pthread_join(th, NULL);
    ASSERT_GT(watcher_thread_changes, 0);
    mag_watch_destroy(w);
}

static int main_task(void *arg)
{
    (void)arg;
    bcast_all(MSGS);
    bcast_all(8);
    bcast_cancel();
    watch_tests();
    return 0;
}

int main(void)
{
    unsigned modes[] = {1, 2, test_workers(4)};
    for (int i = 0; i < 3; i++)
        test_run(modes[i], main_task, NULL);
    printf("chan_bcast: ok\n");
    return 0;
}
