/* sync_sem: mag_sem_t, mag_event_t, mag_notify_t, mag_barrier_t and mag_wg_t
 * from tasks, OS threads and both; FIFO order; waiters that leave early
 * consume nothing. (White-box: peeks at queue lengths.) */
#include "test/test.h"

#include <errno.h>
#include <pthread.h>

#include "test/helpers.h"

/* A waiter is either a task or a thread; the harness runs one body both
 * ways and collects results. */
typedef int (*body_fn)(int id);
struct who {
    body_fn fn;
    int id;
    int rc;
    pthread_t th;
    mag_task_t *task;
    mag_event_t done; /* a thread's: waited on so that no worker blocks */
};

static int who_task(void *p)
{
    struct who *w = p;
    return w->rc = w->fn(w->id);
}

static void *who_thread(void *p)
{
    struct who *w = p;
    w->rc = w->fn(w->id);
    mag_event_set(&w->done);
    return NULL;
}

static void start(struct who *w, body_fn fn, int id, bool thread)
{
    w->fn = fn;
    w->id = id;
    w->rc = 1;
    w->task = NULL;
    mag_event_init(&w->done);
    if (thread)
        ASSERT_EQ(pthread_create(&w->th, NULL, who_thread, w), 0);
    else
        ASSERT_PTR_NE(w->task = mag_spawn(who_task, w), NULL);
}

static int finish(struct who *w)
{
    if (w->task)
        ASSERT_EQ(mag_join(w->task, NULL), 0);
    else {
        ASSERT_EQ(mag_event_wait(&w->done), 0);
        pthread_join(w->th, NULL);
    }
    return w->rc;
}

/* ---- semaphore -------------------------------------------------------------- */
#define N 6
static mag_sem_t sem = MAG_SEM_INIT(0);
static int order[N], order_next;
static mag_mutex_t order_m = MAG_MUTEX_INIT;

static int recorded(int i) /* order[i] once it is there, read under the mutex */
{
    for (;;) {
        mag_mutex_lock(&order_m);
        int n = order_next, v = i < n ? order[i] : -1;
        mag_mutex_unlock(&order_m);
        if (i < n)
            return v;
        mag_yield();
    }
}

static void record(int id)
{
    mag_mutex_lock(&order_m);
    order[order_next++] = id;
    mag_mutex_unlock(&order_m);
}

static int sem_body(int id)
{
    int rc = mag_sem_acquire(&sem);
    if (rc == 0)
        record(id);
    return rc;
}

static void sem_fifo(void)
{
    struct who w[N];
    order_next = 0;
    for (int i = 0; i < N; i++) {
        start(&w[i], sem_body, i, i % 2);
        test_wait_waitq(&mag__sem_of(&sem)->q, i + 1);
    }
    /* Release one at a time: each goes to the next in line. */
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(mag_sem_release(&sem), 0);
        ASSERT_EQ(recorded(i), i);
    }
    for (int i = 0; i < N; i++)
        ASSERT_EQ(finish(&w[i]), 0);
    ASSERT_EQ(mag_sem_value(&sem), 0);
}

static int sem_deadline_body(int id)
{
    uint64_t tok = mag_deadline_push(mag_now() + (uint64_t)(id + 1) * 5 * MAG_MS);
    int rc = mag_sem_acquire(&sem);
    mag_deadline_pop(tok);
    return rc;
}

static void sem_leave(void)
{
    /* Cancel the middle waiter: the permit goes to the next one. */
    struct who w[3];
    order_next = 0;
    for (int i = 0; i < 3; i++) {
        start(&w[i], sem_body, i, false);
        test_wait_waitq(&mag__sem_of(&sem)->q, i + 1);
    }
    mag_cancel(w[1].task);
    ASSERT_EQ(finish(&w[1]), -ECANCELED);
    mag_sem_release(&sem);
    ASSERT_EQ(finish(&w[0]), 0);
    mag_sem_release(&sem);
    ASSERT_EQ(finish(&w[2]), 0);
    ASSERT_EQ(recorded(0), 0);
    ASSERT_EQ(recorded(1), 2);
    /* Deadlines: everyone times out, no permit appears from nowhere. */
    for (int i = 0; i < 3; i++)
        start(&w[i], sem_deadline_body, i, false);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(finish(&w[i]), -ETIMEDOUT);
    ASSERT_EQ(mag_sem_value(&sem), 0);
    ASSERT_EQ(test_waitq_len(&mag__sem_of(&sem)->q), 0);
    ASSERT_EQ(mag_sem_release(&sem), 0);
    ASSERT_EQ(mag_sem_value(&sem), 1);
    ASSERT_EQ(mag_sem_tryacquire(&sem), 0);
}

/* Bounded concurrency: at most 3 inside at once, tasks and threads. */
static mag_sem_t limit = MAG_SEM_INIT(3);
static _Atomic int inside, inside_max;

static int limit_body(int id)
{
    for (int i = 0; i < TEST_SCALE(2000); i++) {
        ASSERT_EQ(mag_sem_acquire(&limit), 0);
        int now = atomic_fetch_add(&inside, 1) + 1;
        ASSERT_LE(now, 3);
        int m = atomic_load(&inside_max);
        while (now > m && !atomic_compare_exchange_weak(&inside_max, &m, now))
            ;
        if (mag_self() && (i + id) % 16 == 0)
            mag_yield();
        atomic_fetch_sub(&inside, 1);
        ASSERT_EQ(mag_sem_release(&limit), 0);
    }
    return 0;
}

static void sem_limit(void)
{
    struct who w[8];
    for (int i = 0; i < 8; i++)
        start(&w[i], limit_body, i, i < 2);
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(finish(&w[i]), 0);
    ASSERT_EQ(mag_sem_value(&limit), 3);
}

/* ---- event ------------------------------------------------------------------ */
static mag_event_t ev = MAG_EVENT_INIT;
static int event_body(int id)
{
    (void)id;
    return mag_event_wait(&ev);
}

static void event_tests(void)
{
    struct who w[N];
    for (int i = 0; i < N; i++) {
        start(&w[i], event_body, i, i % 2);
        test_wait_waitq(&mag__event_of(&ev)->q, i + 1);
    }
    ASSERT_EQ(mag_event_set(&ev), 0);
    mag_event_clear(&ev); /* already woken: still return 0 */
    for (int i = 0; i < N; i++)
        ASSERT_EQ(finish(&w[i]), 0);
    start(&w[0], event_body, 0, false);
    test_wait_waitq(&mag__event_of(&ev)->q, 1);
    mag_cancel(w[0].task);
    ASSERT_EQ(finish(&w[0]), -ECANCELED);
}

/* ---- notify ----------------------------------------------------------------- */
static mag_notify_t nt = MAG_NOTIFY_INIT;
static int notify_body(int id)
{
    int rc = mag_notify_wait(&nt);
    if (rc == 0)
        record(id);
    return rc;
}

static void notify_tests(void)
{
    struct who w[N];
    order_next = 0;
    for (int i = 0; i < N; i++) {
        start(&w[i], notify_body, i, i % 2);
        test_wait_waitq(&mag__notify_of(&nt)->q, i + 1);
    }
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(mag_notify_one(&nt), 0);
        ASSERT_EQ(recorded(i), i); /* FIFO */
    }
    ASSERT_EQ(mag_notify_all(&nt), 0);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(finish(&w[i]), 0);
    ASSERT_EQ(atomic_load(&mag__notify_of(&nt)->permit), 0); /* notify_all stored nothing */
    /* A cancelled waiter does not eat the permit of a later notify_one. */
    start(&w[0], notify_body, 0, false);
    test_wait_waitq(&mag__notify_of(&nt)->q, 1);
    mag_cancel(w[0].task);
    ASSERT_EQ(finish(&w[0]), -ECANCELED);
    ASSERT_EQ(mag_notify_one(&nt), 0);
    ASSERT_EQ(atomic_load(&mag__notify_of(&nt)->permit), 1);
    ASSERT_EQ(mag_notify_wait(&nt), 0);
}

/* ---- barrier and wait group ----------------------------------------------- */
static mag_barrier_t bar;
static _Atomic int serials, phase_count[4];
static int barrier_body(int id)
{
    (void)id;
    for (int round = 0; round < 4; round++) {
        atomic_fetch_add(&phase_count[round], 1);
        int rc = mag_barrier_wait(&bar);
        if (rc < 0)
            return rc;
        /* Everybody has arrived at this round before anyone leaves it. */
        ASSERT_EQ(atomic_load(&phase_count[round]), N);
        if (rc == MAG_BARRIER_SERIAL)
            atomic_fetch_add(&serials, 1);
    }
    return 0;
}

static int barrier_leave_body(int id)
{
    (void)id;
    uint64_t tok = mag_deadline_push(mag_now() + 10 * MAG_MS);
    int rc = mag_barrier_wait(&bar);
    mag_deadline_pop(tok);
    return rc;
}

static int barrier_once_body(int id)
{
    (void)id;
    return mag_barrier_wait(&bar);
}

static mag_wg_t wg = MAG_WG_INIT;
static int wg_body(int id)
{
    (void)id;
    return mag_wg_wait(&wg);
}

static void barrier_wg_tests(void)
{
    struct who w[N];
    ASSERT_EQ(mag_barrier_init(&bar, N), 0);
    for (int i = 0; i < 4; i++)
        atomic_store(&phase_count[i], 0);
    atomic_store(&serials, 0);
    for (int i = 0; i < N; i++)
        start(&w[i], barrier_body, i, i % 2);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(finish(&w[i]), 0);
    ASSERT_EQ(atomic_load(&serials), 4);

    /* A party that leaves before the round completes no longer counts. */
    ASSERT_EQ(mag_barrier_init(&bar, 2), 0);
    start(&w[0], barrier_leave_body, 0, false);
    ASSERT_EQ(finish(&w[0]), -ETIMEDOUT);
    start(&w[1], barrier_once_body, 1, false);
    test_wait_waitq(&mag__barrier_of(&bar)->q, 1);
    start(&w[2], barrier_once_body, 2, true);
    int a = finish(&w[1]), b = finish(&w[2]);
    ASSERT_EQ(a + b, MAG_BARRIER_SERIAL);
    ASSERT_EQ(mag_wg_add(&wg, 3), 0);
    for (int i = 0; i < N; i++) {
        start(&w[i], wg_body, i, i % 2);
        test_wait_waitq(&mag__wg_of(&wg)->q, i + 1);
    }
    mag_wg_done(&wg);
    mag_wg_done(&wg);
    ASSERT_EQ(test_waitq_len(&mag__wg_of(&wg)->q), N);
    mag_wg_done(&wg);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(finish(&w[i]), 0);
    ASSERT_EQ(mag_wg_wait(&wg), 0);
}

static int main_task(void *arg)
{
    (void)arg;
    sem_fifo();
    sem_leave();
    sem_limit();
    event_tests();
    notify_tests();
    barrier_wg_tests();
    return 0;
}

int main(void)
{
    unsigned modes[] = {1, 2, test_workers(4)};
    for (int i = 0; i < 3; i++)
        test_run(modes[i], main_task, NULL);
    printf("sync_sem: ok\n");
    return 0;
}
