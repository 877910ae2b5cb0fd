/* sync_stress: contention with many workers on few cores (8 by default; run
 * it under ThreadSanitizer): tasks and OS threads hammer a mutex, a
 * semaphore, a rwlock and a notify while a chaos task cancels some of them and
 * others wait under short deadlines. Invariants: mutual exclusion, at most
 * `permits` inside the semaphore, readers xor one writer, and afterwards no
 * lock held and no permit lost (white-box: the final state words are read
 * through sync/internal.h). */
#include "test/test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "sync/internal.h"

enum { TASKS = 24, THREADS = 2, PERMITS = 3 };
static int iters;

static mag_mutex_t mu = MAG_MUTEX_INIT;
static long mu_counter; /* under mu */
static _Atomic long mu_locks;
static _Atomic int mu_inside;

static mag_sem_t sem = MAG_SEM_INIT(PERMITS);
static _Atomic int sem_inside;

static mag_rwlock_t rw = MAG_RWLOCK_INIT;
static _Atomic int rw_readers, rw_writers;

static mag_notify_t ping = MAG_NOTIFY_INIT, pong = MAG_NOTIFY_INIT;
static _Atomic long acquired_total;
static mag_wg_t threads_wg = MAG_WG_INIT;

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* One operation on one primitive; returns 0, or -ECANCELED to stop. */
static int one_op(int kind, uint32_t *seed)
{
    uint32_t r = rnd(seed);
    uint64_t tok = 0;
    if (mag_self() && r % 4 == 0)
        tok = mag_deadline_push(mag_now() + (r >> 8) % (100 * MAG_US));
    int rc = 0;
    switch (kind) {
    case 0:
        if ((rc = mag_mutex_lock(&mu)) == 0) {
            ASSERT_EQ(atomic_fetch_add(&mu_inside, 1), 0);
            long v = mu_counter;
            if (mag_self() && r % 16 == 0)
                mag_yield(); /* hold it across a suspension */
            mu_counter = v + 1;
            atomic_fetch_add(&mu_locks, 1);
            atomic_fetch_sub(&mu_inside, 1);
            ASSERT_EQ(mag_mutex_unlock(&mu), 0);
        }
        break;
    case 1:
        if ((rc = mag_sem_acquire(&sem)) == 0) {
            ASSERT_LE(atomic_fetch_add(&sem_inside, 1) + 1, PERMITS);
            if (mag_self() && r % 8 == 0)
                mag_yield();
            atomic_fetch_sub(&sem_inside, 1);
            ASSERT_EQ(mag_sem_release(&sem), 0);
        }
        break;
    case 2:
        if (r % 5 == 0) {
            if ((rc = mag_rwlock_wrlock(&rw)) == 0) {
                ASSERT_EQ(atomic_fetch_add(&rw_writers, 1), 0);
                ASSERT_EQ(atomic_load(&rw_readers), 0);
                atomic_fetch_sub(&rw_writers, 1);
                ASSERT_EQ(mag_rwlock_unlock(&rw), 0);
            }
        } else if ((rc = mag_rwlock_rdlock(&rw)) == 0) {
            atomic_fetch_add(&rw_readers, 1);
            ASSERT_EQ(atomic_load(&rw_writers), 0);
            if (mag_self() && r % 8 == 0)
                mag_yield();
            atomic_fetch_sub(&rw_readers, 1);
            ASSERT_EQ(mag_rwlock_unlock(&rw), 0);
        }
        break;
    }
    mag_deadline_pop(tok);
    if (rc == 0)
        atomic_fetch_add_explicit(&acquired_total, 1, memory_order_relaxed);
    return rc == -ETIMEDOUT ? 0 : rc;
}

static int hammer(void *arg)
{
    int id = (int)(uintptr_t)arg;
    uint32_t seed = 0x12345u * (uint32_t)(id + 1);
    for (int i = 0; i < iters; i++) {
        int rc = one_op((id + i) % 3, &seed);
        if (rc) {
            ASSERT_EQ(rc, -ECANCELED);
            return 0;
        }
    }
    return 0;
}

static void *hammer_thread(void *arg)
{
    hammer(arg);
    mag_wg_done(&threads_wg);
    return NULL;
}

/* Notify ping-pong with an acknowledgement: a permit is never lost, or the
 * pair would hang. */
static int pinger(void *arg)
{
    int n = (int)(uintptr_t)arg;
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(mag_notify_one(&ping), 0);
        ASSERT_EQ(mag_notify_wait(&pong), 0);
    }
    return 0;
}

static int ponger(void *arg)
{
    int n = (int)(uintptr_t)arg;
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(mag_notify_wait(&ping), 0);
        ASSERT_EQ(mag_notify_one(&pong), 0);
    }
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    mag_task_t *t[TASKS];
    pthread_t th[THREADS];
    mu_counter = 0;
    atomic_store(&mu_locks, 0);
    mag_wg_add(&threads_wg, THREADS);
    for (uintptr_t i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, hammer_thread, (void *)(i + 1000)), 0);
    for (uintptr_t i = 0; i < TASKS; i++)
        ASSERT_PTR_NE(t[i] = mag_spawn(hammer, (void *)i), NULL);
    mag_task_t *pi = mag_spawn(pinger, (void *)(uintptr_t)iters);
    mag_task_t *po = mag_spawn(ponger, (void *)(uintptr_t)iters);

    /* Chaos: cancel a third of the hammering tasks at random moments. */
    uint32_t seed = 777;
    for (int k = 0; k < TASKS / 3; k++) {
        mag_sleep((rnd(&seed) % 500) * MAG_US);
        mag_cancel(t[rnd(&seed) % TASKS]);
    }
    for (int i = 0; i < TASKS; i++)
        ASSERT_EQ(mag_join(t[i], NULL), 0);
    ASSERT_EQ(mag_wg_wait(&threads_wg), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(mag_join(pi, NULL), 0);
    ASSERT_EQ(mag_join(po, NULL), 0);

    /* Nothing held, nothing lost. */
    ASSERT_EQ(mu_counter, atomic_load(&mu_locks));
    ASSERT_EQ(mag_mutex_trylock(&mu), 0);
    ASSERT_EQ(mag_mutex_unlock(&mu), 0);
    ASSERT_EQ(atomic_load(&mag__mutex_of(&mu)->state), 0);
    ASSERT_EQ(mag_sem_value(&sem), PERMITS);
    for (int i = 0; i < PERMITS; i++)
        ASSERT_EQ(mag_sem_tryacquire(&sem), 0);
    ASSERT_EQ(mag_sem_tryacquire(&sem), -EAGAIN);
    for (int i = 0; i < PERMITS; i++)
        ASSERT_EQ(mag_sem_release(&sem), 0);
    ASSERT_EQ(mag_rwlock_trywrlock(&rw), 0);
    ASSERT_EQ(mag_rwlock_unlock(&rw), 0);
    ASSERT_EQ(atomic_load(&mag__rwlock_of(&rw)->state), 0);
    return 0;
}

int main(void)
{
    iters = TEST_SCALE(20000);
    unsigned modes[] = {test_workers(8), 2, 1};
    for (int m = 0; m < 3; m++) {
        mag_config_t cfg;
        mag_config_init(&cfg);
        cfg.workers = modes[m];
        int st = -1;
        ASSERT_EQ(mag_run(&cfg, main_task, NULL, &st), 0);
        ASSERT_EQ(st, 0);
    }
    printf("sync_stress: ok (%ld acquisitions)\n", atomic_load(&acquired_total));
    return 0;
}
