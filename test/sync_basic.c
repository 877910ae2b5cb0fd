/* sync_basic: bad inputs, try_ variants and single-caller semantics of every
 * primitive, from a plain thread with no runtime and from a task. */
#include "test/test.h"

#include <errno.h>

static void bad_inputs(bool thread)
{
    ASSERT_EQ(mag_mutex_init(NULL), -EINVAL);
    ASSERT_EQ(mag_mutex_lock(NULL), -EINVAL);
    ASSERT_EQ(mag_mutex_trylock(NULL), -EINVAL);
    ASSERT_EQ(mag_mutex_unlock(NULL), -EINVAL);
    ASSERT_EQ(mag_rwlock_init(NULL), -EINVAL);
    ASSERT_EQ(mag_rwlock_rdlock(NULL), -EINVAL);
    ASSERT_EQ(mag_rwlock_wrlock(NULL), -EINVAL);
    ASSERT_EQ(mag_rwlock_tryrdlock(NULL), -EINVAL);
    ASSERT_EQ(mag_rwlock_trywrlock(NULL), -EINVAL);
    ASSERT_EQ(mag_rwlock_unlock(NULL), -EINVAL);
    ASSERT_EQ(mag_sem_init(NULL, 1), -EINVAL);
    mag_sem_t s;
    ASSERT_EQ(mag_sem_init(&s, MAG_SEM_MAX + 1u), -EINVAL);
    ASSERT_EQ(mag_sem_acquire(NULL), -EINVAL);
    ASSERT_EQ(mag_sem_tryacquire(NULL), -EINVAL);
    ASSERT_EQ(mag_sem_release(NULL), -EINVAL);
    ASSERT_EQ(mag_sem_value(NULL), 0);
    ASSERT_EQ(mag_event_init(NULL), -EINVAL);
    ASSERT_EQ(mag_event_set(NULL), -EINVAL);
    ASSERT_EQ(mag_event_clear(NULL), -EINVAL);
    ASSERT_EQ(mag_event_wait(NULL), -EINVAL);
    ASSERT_TRUE(!mag_event_is_set(NULL));
    ASSERT_EQ(mag_notify_init(NULL), -EINVAL);
    ASSERT_EQ(mag_notify_wait(NULL), -EINVAL);
    ASSERT_EQ(mag_notify_one(NULL), -EINVAL);
    ASSERT_EQ(mag_notify_all(NULL), -EINVAL);
    mag_cond_t c = MAG_COND_INIT;
    mag_mutex_t m = MAG_MUTEX_INIT;
    ASSERT_EQ(mag_cond_init(NULL), -EINVAL);
    ASSERT_EQ(mag_cond_wait(NULL, &m), -EINVAL);
    ASSERT_EQ(mag_cond_wait(&c, NULL), -EINVAL);
    ASSERT_EQ(mag_cond_wait(&c, &m), -EPERM); /* m not locked */
    ASSERT_EQ(mag_cond_signal(NULL), -EINVAL);
    ASSERT_EQ(mag_cond_broadcast(NULL), -EINVAL);
    mag_barrier_t b;
    ASSERT_EQ(mag_barrier_init(NULL, 1), -EINVAL);
    ASSERT_EQ(mag_barrier_init(&b, 0), -EINVAL);
    ASSERT_EQ(mag_barrier_wait(NULL), -EINVAL);
    mag_barrier_t b0 = MAG_BARRIER_INIT(0);
    ASSERT_EQ(mag_barrier_wait(&b0), -EINVAL);
    mag_wg_t wg = MAG_WG_INIT;
    ASSERT_EQ(mag_wg_init(NULL), -EINVAL);
    ASSERT_EQ(mag_wg_add(NULL, 1), -EINVAL);
    ASSERT_EQ(mag_wg_done(NULL), -EINVAL);
    ASSERT_EQ(mag_wg_wait(NULL), -EINVAL);
    ASSERT_EQ(mag_wg_done(&wg), -EINVAL); /* would go negative */
    ASSERT_EQ(mag_wg_add(&wg, 2), 0);
    ASSERT_EQ(mag_wg_add(&wg, -3), -EINVAL);
    /* The most negative delta, whose negation overflows: refused too, and
     * the counter unchanged. */
    ASSERT_EQ(mag_wg_add(&wg, INT64_MIN), -EINVAL);
    ASSERT_EQ(mag_wg_add(&wg, INT64_MAX), -EINVAL); /* 2 + INT64_MAX overflows */
    ASSERT_EQ(mag_wg_add(&wg, -2), 0);
    ASSERT_EQ(mag_wg_wait(&wg), 0);

    ASSERT_PTR_EQ(mag_chan_create(0, 4), NULL);
    ASSERT_PTR_EQ(mag_chan_create(SIZE_MAX / 2, 4), NULL);
    ASSERT_EQ(mag_chan_send(NULL, &s), -EINVAL);
    ASSERT_EQ(mag_chan_recv(NULL, &s), -EINVAL);
    ASSERT_EQ(mag_chan_try_send(NULL, &s), -EINVAL);
    ASSERT_EQ(mag_chan_try_recv(NULL, &s), -EINVAL);
    ASSERT_EQ(mag_chan_close(NULL), -EINVAL);
    ASSERT_EQ(mag_chan_task_done(NULL), -EINVAL);
    ASSERT_EQ(mag_chan_join(NULL), -EINVAL);
    ASSERT_EQ(mag_chan_len(NULL), 0);
    mag_chan_destroy(NULL);
    mag_chan_t *ch = mag_chan_create(sizeof(int), 1);
    ASSERT_PTR_NE(ch, NULL);
    ASSERT_EQ(mag_chan_send(ch, NULL), -EINVAL);
    ASSERT_EQ(mag_chan_recv(ch, NULL), -EINVAL);
    ASSERT_EQ(mag_chan_task_done(ch), -EINVAL); /* nothing sent */
    ASSERT_EQ(mag_select(NULL, 1), -EINVAL);
    mag_select_case_t sc[2] = {{ch, 99, &s, 0}, {NULL, 0, NULL, 0}};
    ASSERT_EQ(mag_select(sc, 0), -EINVAL);
    ASSERT_EQ(mag_select(sc, 1), -EINVAL); /* bad op */
    sc[0].op = MAG_SELECT_RECV;
    sc[0].elem = NULL;
    ASSERT_EQ(mag_select(sc, 1), -EINVAL);         /* NULL elem */
    ASSERT_EQ(mag_select_try(&sc[1], 1), -EAGAIN); /* all disabled */
    if (thread)
        ASSERT_EQ(mag_select(&sc[1], 1), -EDEADLK); /* a thread would hang */
    mag_chan_destroy(ch);

    ASSERT_PTR_EQ(mag_bcast_create(0, 4), NULL);
    ASSERT_PTR_EQ(mag_bcast_create(4, 0), NULL);
    ASSERT_PTR_EQ(mag_bcast_subscribe(NULL), NULL);
    ASSERT_EQ(mag_bcast_send(NULL, &s), -EINVAL);
    ASSERT_EQ(mag_bcast_recv(NULL, &s, NULL), -EINVAL);
    ASSERT_EQ(mag_bcast_close(NULL), -EINVAL);
    ASSERT_PTR_EQ(mag_watch_create(0, NULL), NULL);
    ASSERT_EQ(mag_watch_send(NULL, &s), -EINVAL);
    ASSERT_EQ(mag_watch_get(NULL, &s, NULL), -EINVAL);
    ASSERT_EQ(mag_watch_wait(NULL, NULL, NULL), -EINVAL);
    ASSERT_EQ(mag_watch_close(NULL), -EINVAL);
}

static void single_caller(void)
{
    mag_mutex_t m = MAG_MUTEX_INIT;
    ASSERT_EQ(mag_mutex_unlock(&m), -EPERM);
    ASSERT_EQ(mag_mutex_lock(&m), 0);
    ASSERT_EQ(mag_mutex_trylock(&m), -EAGAIN);
    ASSERT_EQ(mag_mutex_unlock(&m), 0);
    ASSERT_EQ(mag_mutex_unlock(&m), -EPERM);
    ASSERT_EQ(mag_mutex_trylock(&m), 0);
    ASSERT_EQ(mag_mutex_unlock(&m), 0);

    mag_rwlock_t l;
    ASSERT_EQ(mag_rwlock_init(&l), 0);
    ASSERT_EQ(mag_rwlock_unlock(&l), -EPERM);
    ASSERT_EQ(mag_rwlock_rdlock(&l), 0);
    ASSERT_EQ(mag_rwlock_tryrdlock(&l), 0);
    ASSERT_EQ(mag_rwlock_trywrlock(&l), -EAGAIN);
    ASSERT_EQ(mag_rwlock_unlock(&l), 0);
    ASSERT_EQ(mag_rwlock_unlock(&l), 0);
    ASSERT_EQ(mag_rwlock_unlock(&l), -EPERM);
    ASSERT_EQ(mag_rwlock_wrlock(&l), 0);
    ASSERT_EQ(mag_rwlock_tryrdlock(&l), -EAGAIN);
    ASSERT_EQ(mag_rwlock_trywrlock(&l), -EAGAIN);
    ASSERT_EQ(mag_rwlock_unlock(&l), 0);
    ASSERT_EQ(mag_rwlock_trywrlock(&l), 0);
    ASSERT_EQ(mag_rwlock_unlock(&l), 0);

    mag_sem_t s = MAG_SEM_INIT(2);
    ASSERT_EQ(mag_sem_value(&s), 2);
    ASSERT_EQ(mag_sem_acquire(&s), 0);
    ASSERT_EQ(mag_sem_tryacquire(&s), 0);
    ASSERT_EQ(mag_sem_tryacquire(&s), -EAGAIN);
    ASSERT_EQ(mag_sem_release(&s), 0);
    ASSERT_EQ(mag_sem_value(&s), 1);
    mag_sem_t big;
    ASSERT_EQ(mag_sem_init(&big, MAG_SEM_MAX), 0);
    ASSERT_EQ(mag_sem_release(&big), -EOVERFLOW);

    mag_event_t e = MAG_EVENT_INIT;
    ASSERT_TRUE(!mag_event_is_set(&e));
    ASSERT_EQ(mag_event_set(&e), 0);
    ASSERT_TRUE(mag_event_is_set(&e));
    ASSERT_EQ(mag_event_wait(&e), 0);
    ASSERT_EQ(mag_event_clear(&e), 0);
    ASSERT_TRUE(!mag_event_is_set(&e));

    mag_notify_t n = MAG_NOTIFY_INIT;
    ASSERT_EQ(mag_notify_one(&n), 0);
    ASSERT_EQ(mag_notify_one(&n), 0); /* still one permit */
    ASSERT_EQ(mag_notify_wait(&n), 0);
    ASSERT_EQ(mag_notify_all(&n), 0); /* stores nothing */

    mag_barrier_t b;
    ASSERT_EQ(mag_barrier_init(&b, 1), 0);
    ASSERT_EQ(mag_barrier_wait(&b), MAG_BARRIER_SERIAL);
    ASSERT_EQ(mag_barrier_wait(&b), MAG_BARRIER_SERIAL);

    /* Channels: bounded. */
    mag_chan_t *c = mag_chan_create(sizeof(int), 2);
    int v = 1, out = 0;
    ASSERT_EQ(mag_chan_cap(c), 2);
    ASSERT_EQ(mag_chan_try_recv(c, &out), -EAGAIN);
    ASSERT_EQ(mag_chan_send(c, &v), 0);
    v = 2;
    ASSERT_EQ(mag_chan_try_send(c, &v), 0);
    v = 3;
    ASSERT_EQ(mag_chan_try_send(c, &v), -EAGAIN);
    ASSERT_EQ(mag_chan_len(c), 2);
    ASSERT_EQ(mag_chan_recv(c, &out), 0);
    ASSERT_EQ(out, 1);
    ASSERT_EQ(mag_chan_try_send(c, &v), 0); /* wraps around */
    ASSERT_EQ(mag_chan_close(c), 0);
    ASSERT_EQ(mag_chan_close(c), 0);
    ASSERT_TRUE(mag_chan_closed(c));
    ASSERT_EQ(mag_chan_send(c, &v), -EPIPE);
    ASSERT_EQ(mag_chan_recv(c, &out), 0);
    ASSERT_EQ(out, 2);
    ASSERT_EQ(mag_chan_try_recv(c, &out), 0);
    ASSERT_EQ(out, 3);
    ASSERT_EQ(mag_chan_recv(c, &out), -EPIPE);
    ASSERT_EQ(mag_chan_try_recv(c, &out), -EPIPE);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(mag_chan_task_done(c), 0);
    ASSERT_EQ(mag_chan_task_done(c), -EINVAL);
    ASSERT_EQ(mag_chan_join(c), 0);
    mag_chan_destroy(c);

    /* Unbounded: grows across several doublings, keeps order. */
    c = mag_chan_create(sizeof(int), MAG_CHAN_UNBOUNDED);
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(mag_chan_send(c, &i), 0);
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(mag_chan_recv(c, &out), 0);
        ASSERT_EQ(out, i);
    }
    for (int i = 10; i < 1000; i++)
        ASSERT_EQ(mag_chan_try_send(c, &i), 0);
    ASSERT_EQ(mag_chan_len(c), 995);
    for (int i = 5; i < 1000; i++) {
        ASSERT_EQ(mag_chan_try_recv(c, &out), 0);
        ASSERT_EQ(out, i);
    }
    ASSERT_EQ(mag_chan_try_recv(c, &out), -EAGAIN);
    mag_chan_destroy(c);

    /* Rendezvous: nothing can be sent without a receiver. */
    c = mag_chan_create(sizeof(int), 0);
    ASSERT_EQ(mag_chan_try_send(c, &v), -EAGAIN);
    ASSERT_EQ(mag_chan_try_recv(c, &out), -EAGAIN);
    ASSERT_EQ(mag_chan_len(c), 0);
    mag_chan_close(c);
    ASSERT_EQ(mag_chan_try_send(c, &v), -EPIPE);
    ASSERT_EQ(mag_chan_recv(c, &out), -EPIPE);
    mag_chan_destroy(c);

    /* select_try over a ready and a not-ready channel. */
    mag_chan_t *a = mag_chan_create(sizeof(int), 1), *z = mag_chan_create(sizeof(int), 1);
    v = 42;
    ASSERT_EQ(mag_chan_send(a, &v), 0);
    int ra = 0, rz = 0;
    mag_select_case_t cs[2] = {{z, MAG_SELECT_RECV, &rz, 0}, {a, MAG_SELECT_RECV, &ra, 0}};
    ASSERT_EQ(mag_select_try(cs, 2), 1);
    ASSERT_EQ(cs[1].result, 0);
    ASSERT_EQ(ra, 42);
    ASSERT_EQ(mag_select_try(cs, 2), -EAGAIN);
    mag_chan_close(z);
    ASSERT_EQ(mag_select(cs, 2), 0);
    ASSERT_EQ(cs[0].result, -EPIPE);
    mag_chan_destroy(a);
    mag_chan_destroy(z);

    /* Broadcast and watch, single caller. */
    mag_bcast_t *bc = mag_bcast_create(sizeof(int), 2);
    ASSERT_EQ(mag_bcast_send(bc, &v), 0); /* no subscriber yet */
    mag_bcast_sub_t *sub = mag_bcast_subscribe(bc);
    ASSERT_EQ(mag_bcast_try_recv(sub, &out, NULL), -EAGAIN);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(mag_bcast_send(bc, &i), 1);
    uint64_t missed = 0;
    ASSERT_EQ(mag_bcast_recv(sub, &out, &missed), -EOVERFLOW);
    ASSERT_UEQ(missed, 3);
    ASSERT_EQ(mag_bcast_recv(sub, &out, NULL), 0);
    ASSERT_EQ(out, 3);
    ASSERT_EQ(mag_bcast_recv(sub, &out, NULL), 0);
    ASSERT_EQ(out, 4);
    mag_bcast_destroy(bc); /* the subscription keeps the memory */
    ASSERT_EQ(mag_bcast_recv(sub, &out, NULL), -EPIPE);
    mag_bcast_unsubscribe(sub);

    int init = 7;
    mag_watch_t *w = mag_watch_create(sizeof(int), &init);
    uint64_t ver = 99;
    ASSERT_EQ(mag_watch_get(w, &out, &ver), 0);
    ASSERT_EQ(out, 7);
    ASSERT_UEQ(ver, 0);
    v = 8;
    ASSERT_EQ(mag_watch_send(w, &v), 0);
    ASSERT_EQ(mag_watch_wait(w, &ver, &out), 0);
    ASSERT_EQ(out, 8);
    ASSERT_UEQ(ver, 1);
    mag_watch_close(w);
    ASSERT_EQ(mag_watch_wait(w, &ver, &out), -EPIPE);
    ASSERT_EQ(mag_watch_send(w, &v), -EPIPE);
    mag_watch_destroy(w);
}

static int in_task(void *arg)
{
    (void)arg;
    bad_inputs(false);
    single_caller();
    /* Fast paths succeed in a cancelled task; only a wait reports it. */
    mag_cancel(mag_self());
    mag_mutex_t m = MAG_MUTEX_INIT;
    ASSERT_EQ(mag_mutex_lock(&m), 0);
    mag_sem_t s = MAG_SEM_INIT(0);
    ASSERT_EQ(mag_sem_acquire(&s), -ECANCELED);
    mag_chan_t *c = mag_chan_create(1, 1);
    char x = 0;
    ASSERT_EQ(mag_chan_recv(c, &x), -ECANCELED);
    ASSERT_EQ(mag_chan_send(c, &x), 0);
    ASSERT_EQ(mag_chan_send(c, &x), -ECANCELED);
    mag_select_case_t none = {NULL, 0, NULL, 0};
    ASSERT_EQ(mag_select(&none, 1), -ECANCELED);
    mag_chan_destroy(c);
    return 0;
}

int main(void)
{
    bad_inputs(true);
    single_caller();
    for (unsigned w = 1; w <= 2; w++) {
        mag_config_t cfg;
        mag_config_init(&cfg);
        cfg.workers = w;
        int st = -1;
        ASSERT_EQ(mag_run(&cfg, in_task, NULL, &st), 0);
        ASSERT_EQ(st, 0);
    }
    printf("sync_basic: ok\n");
    return 0;
}
