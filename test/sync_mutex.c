/* sync_mutex: mag_mutex_t, mag_rwlock_t and mag_cond_t from tasks, OS threads
 * and both at once; FIFO hand-off; cancellation and deadlines while waiting;
 * no writer starvation. (White-box: peeks at queue lengths through
 * sync/internal.h to order waiters deterministically.) */
#include "test/test.h"

#include <errno.h>
#include <pthread.h>

#include "test/helpers.h"

/* ---- a shared counter under the mutex: tasks and threads together ------ */
#define CT_TASKS 8
#define CT_THREADS 2
static mag_mutex_t ct_mutex = MAG_MUTEX_INIT;
static mag_wg_t ct_wg = MAG_WG_INIT;
static long ct_counter;
static int ct_iters;

static void counter_loop(unsigned id)
{
    for (int i = 0; i < ct_iters; i++) {
        ASSERT_EQ(mag_mutex_lock(&ct_mutex), 0);
        long v = ct_counter;
        if (mag_self() && (i + id) % 64 == 0)
            mag_yield(); /* hold it across a suspension now and then */
        ct_counter = v + 1;
        ASSERT_EQ(mag_mutex_unlock(&ct_mutex), 0);
    }
}

static int counter_task(void *arg)
{
    counter_loop((unsigned)(uintptr_t)arg);
    return 0;
}

static void *counter_thread(void *arg)
{
    counter_loop((unsigned)(uintptr_t)arg);
    mag_wg_done(&ct_wg);
    return NULL;
}

static int counter_main(void *arg)
{
    (void)arg;
    pthread_t th[CT_THREADS];
    mag_task_t *t[CT_TASKS];
    ct_counter = 0;
    ASSERT_EQ(mag_wg_add(&ct_wg, CT_THREADS), 0);
    for (uintptr_t i = 0; i < CT_THREADS; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, counter_thread, (void *)i), 0);
    for (uintptr_t i = 0; i < CT_TASKS; i++)
        ASSERT_PTR_NE(t[i] = mag_spawn(counter_task, (void *)i), NULL);
    for (int i = 0; i < CT_TASKS; i++)
        ASSERT_EQ(mag_join(t[i], NULL), 0);
    ASSERT_EQ(mag_wg_wait(&ct_wg), 0);
    for (int i = 0; i < CT_THREADS; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(ct_counter, (long)(CT_TASKS + CT_THREADS) * ct_iters);
    return 0;
}

static void counter_threads_only(void)
{
    pthread_t th[4];
    ct_counter = 0;
    ASSERT_EQ(mag_wg_add(&ct_wg, 4), 0);
    for (uintptr_t i = 0; i < 4; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, counter_thread, (void *)i), 0);
    ASSERT_EQ(mag_wg_wait(&ct_wg), 0); /* a thread waiting on threads */
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(ct_counter, 4L * ct_iters);
}

/* ---- FIFO hand-off: waiters queue in a known order, tasks and threads --- */
#define FIFO_N 6
static mag_mutex_t fifo_mutex = MAG_MUTEX_INIT;
static mag_rwlock_t fifo_rw = MAG_RWLOCK_INIT;
static int fifo_order[FIFO_N], fifo_next;
static mag_wg_t fifo_wg = MAG_WG_INIT;

static void fifo_body(int id, bool rw)
{
    ASSERT_EQ(rw ? mag_rwlock_wrlock(&fifo_rw) : mag_mutex_lock(&fifo_mutex), 0);
    fifo_order[fifo_next++] = id;
    ASSERT_EQ(rw ? mag_rwlock_unlock(&fifo_rw) : mag_mutex_unlock(&fifo_mutex), 0);
}

struct fifo_arg {
    int id;
    bool rw;
};

static int fifo_task(void *p)
{
    struct fifo_arg *a = p;
    fifo_body(a->id, a->rw);
    return 0;
}

static void *fifo_thread(void *p)
{
    struct fifo_arg *a = p;
    fifo_body(a->id, a->rw);
    mag_wg_done(&fifo_wg);
    return NULL;
}

static void fifo_run(bool rw)
{
    struct fifo_arg args[FIFO_N];
    mag_task_t *tasks[FIFO_N] = {0};
    pthread_t th[FIFO_N];
    fifo_next = 0;
    mag__waitq_t *q = rw ? &mag__rwlock_of(&fifo_rw)->q : &mag__mutex_of(&fifo_mutex)->q;
    ASSERT_EQ(rw ? mag_rwlock_wrlock(&fifo_rw) : mag_mutex_lock(&fifo_mutex), 0);
    for (int i = 0; i < FIFO_N; i++) {
        args[i] = (struct fifo_arg){i, rw};
        if (i % 2) {
            mag_wg_add(&fifo_wg, 1);
            ASSERT_EQ(pthread_create(&th[i], NULL, fifo_thread, &args[i]), 0);
        } else {
            ASSERT_PTR_NE(tasks[i] = mag_spawn(fifo_task, &args[i]), NULL);
        }
        test_wait_waitq(q, i + 1);
    }
    ASSERT_EQ(rw ? mag_rwlock_unlock(&fifo_rw) : mag_mutex_unlock(&fifo_mutex), 0);
    for (int i = 0; i < FIFO_N; i++) {
        if (i % 2)
            continue;
        ASSERT_EQ(mag_join(tasks[i], NULL), 0);
    }
    ASSERT_EQ(mag_wg_wait(&fifo_wg), 0);
    for (int i = 0; i < FIFO_N; i++) {
        if (i % 2)
            pthread_join(th[i], NULL);
        ASSERT_EQ(fifo_order[i], i);
    }
}

/* ---- cancellation and deadlines while waiting --------------------------- */
static mag_mutex_t cx_mutex = MAG_MUTEX_INIT;

static int cx_lock_task(void *arg)
{
    (void)arg;
    return mag_mutex_lock(&cx_mutex);
}

static int cx_deadline_task(void *arg)
{
    (void)arg;
    uint64_t tok = mag_deadline_push(mag_now() + 20 * MAG_MS);
    int rc = mag_mutex_lock(&cx_mutex);
    mag_deadline_pop(tok);
    return rc;
}

static void cancel_tests(void)
{
    int st;
    ASSERT_EQ(mag_mutex_lock(&cx_mutex), 0);
    mag_task_t *t = mag_spawn(cx_lock_task, NULL);
    test_wait_waitq(&mag__mutex_of(&cx_mutex)->q, 1);
    mag_cancel(t);
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    ASSERT_EQ(test_waitq_len(&mag__mutex_of(&cx_mutex)->q), 0);
    t = mag_spawn(cx_deadline_task, NULL);
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, -ETIMEDOUT);
    /* Nothing was handed to the leavers: unlock frees the mutex. */
    ASSERT_EQ(mag_mutex_unlock(&cx_mutex), 0);
    ASSERT_EQ(mag_mutex_trylock(&cx_mutex), 0);
    ASSERT_EQ(mag_mutex_unlock(&cx_mutex), 0);
}

/* ---- rwlock: concurrent readers, batches, no writer starvation ---------- */
static mag_rwlock_t rw = MAG_RWLOCK_INIT;
static _Atomic int rw_readers_in, rw_max_readers;
static mag_event_t rw_release = MAG_EVENT_INIT;

static int reader_task(void *arg)
{
    (void)arg;
    ASSERT_EQ(mag_rwlock_rdlock(&rw), 0);
    int now = atomic_fetch_add(&rw_readers_in, 1) + 1;
    int m = atomic_load(&rw_max_readers);
    while (now > m && !atomic_compare_exchange_weak(&rw_max_readers, &m, now))
        ;
    ASSERT_EQ(mag_event_wait(&rw_release), 0);
    atomic_fetch_sub(&rw_readers_in, 1);
    ASSERT_EQ(mag_rwlock_unlock(&rw), 0);
    return 0;
}

static int writer_task(void *arg)
{
    (void)arg;
    ASSERT_EQ(mag_rwlock_wrlock(&rw), 0);
    ASSERT_EQ(atomic_load(&rw_readers_in), 0);
    ASSERT_EQ(mag_rwlock_unlock(&rw), 0);
    return 0;
}

static void rwlock_tests(void)
{
    mag_task_t *t[8];
    /* Three readers hold it together. */
    for (int i = 0; i < 3; i++)
        t[i] = mag_spawn(reader_task, NULL);
    while (atomic_load(&rw_readers_in) < 3)
        mag_yield();
    /* A writer queues; then readers must queue behind it. */
    t[3] = mag_spawn(writer_task, NULL);
    test_wait_waitq(&mag__rwlock_of(&rw)->q, 1);
    ASSERT_EQ(mag_rwlock_tryrdlock(&rw), -EAGAIN);
    t[4] = mag_spawn(reader_task, NULL);
    test_wait_waitq(&mag__rwlock_of(&rw)->q, 2);
    ASSERT_EQ(atomic_load(&rw_readers_in), 3);
    mag_event_set(&rw_release);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(mag_join(t[i], NULL), 0);
    ASSERT_EQ(atomic_load(&rw_max_readers), 3);
    mag_event_clear(&rw_release);

    /* Writer held; R, R, W, R queue: the unlock admits the two readers
     * together, the second writer waits for them, the last reader for it. */
    atomic_store(&rw_max_readers, 0);
    ASSERT_EQ(mag_rwlock_wrlock(&rw), 0);
    t[0] = mag_spawn(reader_task, NULL);
    test_wait_waitq(&mag__rwlock_of(&rw)->q, 1);
    t[1] = mag_spawn(reader_task, NULL);
    test_wait_waitq(&mag__rwlock_of(&rw)->q, 2);
    t[2] = mag_spawn(writer_task, NULL);
    test_wait_waitq(&mag__rwlock_of(&rw)->q, 3);
    t[3] = mag_spawn(reader_task, NULL);
    test_wait_waitq(&mag__rwlock_of(&rw)->q, 4);
    ASSERT_EQ(mag_rwlock_unlock(&rw), 0);
    while (atomic_load(&rw_readers_in) < 2)
        mag_yield();
    ASSERT_EQ(test_waitq_len(&mag__rwlock_of(&rw)->q), 2);
    mag_event_set(&rw_release);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(mag_join(t[i], NULL), 0);
    ASSERT_EQ(atomic_load(&rw_max_readers), 2);
    mag_event_clear(&rw_release);
    ASSERT_EQ(mag_rwlock_trywrlock(&rw), 0);
    ASSERT_EQ(mag_rwlock_unlock(&rw), 0);
}

/* ---- condition variable --------------------------------------------------- */
static mag_mutex_t cv_m = MAG_MUTEX_INIT;
static mag_cond_t cv = MAG_COND_INIT;
static int cv_items, cv_taken;

static int cv_consumer(void *arg)
{
    int want = (int)(uintptr_t)arg;
    for (int i = 0; i < want; i++) {
        ASSERT_EQ(mag_mutex_lock(&cv_m), 0);
        while (cv_items == 0)
            ASSERT_EQ(mag_cond_wait(&cv, &cv_m), 0);
        cv_items--;
        cv_taken++;
        ASSERT_EQ(mag_mutex_unlock(&cv_m), 0);
    }
    return 0;
}

static int cv_cancelled(void *arg)
{
    (void)arg;
    ASSERT_EQ(mag_mutex_lock(&cv_m), 0);
    int rc = mag_cond_wait(&cv, &cv_m);
    /* The mutex is held again even after a cancelled wait. */
    ASSERT_EQ(mag_mutex_trylock(&cv_m), -EAGAIN);
    ASSERT_EQ(mag_mutex_unlock(&cv_m), 0);
    return rc;
}

static mag_wg_t cv_thread_wg = MAG_WG_INIT;
static void *cv_consumer_thread(void *arg)
{
    cv_consumer(arg);
    mag_wg_done(&cv_thread_wg);
    return NULL;
}

static void cond_tests(void)
{
    enum { CONSUMERS = 4, EACH = 200 };
    mag_task_t *t[CONSUMERS];
    pthread_t th;
    cv_items = cv_taken = 0;
    /* One more consumer is an OS thread waiting on the same condition. */
    mag_wg_add(&cv_thread_wg, 1);
    ASSERT_EQ(pthread_create(&th, NULL, cv_consumer_thread, (void *)(uintptr_t)EACH), 0);
    for (int i = 0; i < CONSUMERS; i++)
        t[i] = mag_spawn(cv_consumer, (void *)(uintptr_t)EACH);
    for (int i = 0; i < (CONSUMERS + 1) * EACH; i++) {
        ASSERT_EQ(mag_mutex_lock(&cv_m), 0);
        cv_items++;
        if (i % 3 == 0)
            mag_cond_broadcast(&cv);
        else
            mag_cond_signal(&cv);
        ASSERT_EQ(mag_mutex_unlock(&cv_m), 0);
        if (i % 7 == 0)
            mag_yield();
    }
    for (int i = 0; i < CONSUMERS; i++)
        ASSERT_EQ(mag_join(t[i], NULL), 0);
    ASSERT_EQ(mag_wg_wait(&cv_thread_wg), 0);
    pthread_join(th, NULL);
    ASSERT_EQ(cv_taken, (CONSUMERS + 1) * EACH);

    int st;
    mag_task_t *c = mag_spawn(cv_cancelled, NULL);
    test_wait_waitq(&mag__cond_of(&cv)->q, 1);
    mag_cancel(c);
    ASSERT_EQ(mag_join(c, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
}

static int main_task(void *arg)
{
    (void)arg;
    fifo_run(false);
    fifo_run(true);
    cancel_tests();
    rwlock_tests();
    cond_tests();
    return 0;
}

int main(void)
{
    ct_iters = TEST_SCALE(20000);
    counter_threads_only();
    unsigned many = test_workers(4);
    unsigned modes[] = {1, 2, many};
    for (int i = 0; i < 3; i++) {
        test_run(modes[i], counter_main, NULL);
        test_run(modes[i], main_task, NULL);
    }
    printf("sync_mutex: ok\n");
    return 0;
}
