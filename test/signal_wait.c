/* mag_signal_wait: process-directed signals reach waiting tasks whichever
 * thread the kernel picks; each delivery is taken once; deliveries before a
 * wait are kept (mag_signal_catch); waiters on different sets; cancellation
 * and deadlines; a plain-thread waiter; bad sets; signals arriving while a
 * blocking-pool job runs.
 *
 * ThreadSanitizer defers a signal handler until the receiving thread next
 * calls into an intercepted libc function, and magpie's threads sleep in raw
 * system calls (io_uring_enter, futex): under TSan the test therefore blocks
 * its signals in the threads of the runtime and lets a helper thread, asleep
 * in nanosleep, receive every process-directed signal. */
#include "test/test.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

static sigset_t set_of(int a, int b)
{
    sigset_t s;
    sigemptyset(&s);
    if (a)
        sigaddset(&s, a);
    if (b)
        sigaddset(&s, b);
    return s;
}

typedef struct waiter {
    int sig1, sig2;
    _Atomic int started;
    int got;
} waiter_t;

static int wait_task(void *arg)
{
    waiter_t *w = arg;
    sigset_t s = set_of(w->sig1, w->sig2);
    atomic_store(&w->started, 1);
    return mag_signal_wait(&s, &w->got);
}

static int block_a_while(void *arg)
{
    (void)arg;
    usleep(100 * 1000);
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    int signo = 0;
    /* Kept from before the wait. */
    sigset_t u1 = set_of(SIGUSR1, 0);
    ASSERT_EQ(mag_signal_catch(&u1), 0);
    ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
    ASSERT_EQ(mag_signal_wait(&u1, &signo), 0);
    ASSERT_EQ(signo, SIGUSR1);

    /* Two waiters, two sets: each gets its own. */
    waiter_t a = {.sig1 = SIGUSR1}, b = {.sig1 = SIGUSR2, .sig2 = SIGHUP};
    mag_task_t *ta = mag_spawn(wait_task, &a), *tb = mag_spawn(wait_task, &b);
    while (!atomic_load(&a.started) || !atomic_load(&b.started))
        mag_sleep(MAG_MS);
    mag_sleep(20 * MAG_MS);
    ASSERT_EQ(kill(getpid(), SIGHUP), 0);
    int st = -1;
    ASSERT_EQ(mag_join(tb, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(b.got, SIGHUP);
    mag_sleep(20 * MAG_MS);
    /* a is still waiting: SIGHUP was not in its set. */
    ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
    ASSERT_EQ(mag_join(ta, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(a.got, SIGUSR1);

    /* While a blocking-pool thread (which blocks signals) is busy. */
    mag_task_t *bj = mag_spawn_blocking(block_a_while, NULL);
    ASSERT_EQ(kill(getpid(), SIGUSR2), 0);
    sigset_t u2 = set_of(SIGUSR2, 0);
    ASSERT_EQ(mag_signal_wait(&u2, &signo), 0);
    ASSERT_EQ(signo, SIGUSR2);
    ASSERT_EQ(mag_join(bj, NULL), 0);

    /* Deadline and cancellation consume nothing. */
    uint64_t tok = mag_deadline_push(mag_now() + 30 * MAG_MS);
    ASSERT_EQ(mag_signal_wait(&u1, &signo), -ETIMEDOUT);
    mag_deadline_pop(tok);
    waiter_t c = {.sig1 = SIGUSR1};
    mag_task_t *tc = mag_spawn(wait_task, &c);
    while (!atomic_load(&c.started))
        mag_sleep(MAG_MS);
    mag_sleep(10 * MAG_MS);
    mag_cancel(tc);
    ASSERT_EQ(mag_join(tc, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    ASSERT_EQ(kill(getpid(), SIGUSR1), 0); /* kept for the next wait */
    ASSERT_EQ(mag_signal_wait(&u1, &signo), 0);
    ASSERT_EQ(signo, SIGUSR1);

    /* Bad sets. */
    sigset_t empty = set_of(0, 0), withkill = set_of(SIGUSR1, SIGKILL),
             withsegv = set_of(SIGSEGV, 0);
    ASSERT_EQ(mag_signal_wait(&empty, &signo), -EINVAL);
    ASSERT_EQ(mag_signal_wait(&withkill, &signo), -EINVAL);
    ASSERT_EQ(mag_signal_wait(&withsegv, &signo), -EINVAL);
    ASSERT_EQ(mag_signal_wait(NULL, &signo), -EINVAL);
    ASSERT_EQ(mag_signal_wait(&u1, NULL), -EINVAL);
    ASSERT_EQ(mag_signal_catch(&empty), -EINVAL);
    return 0;
}

static waiter_t tw = {.sig1 = SIGUSR2};

static void *thread_waiter(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)wait_task(&tw);
}

int main(void)
{
    sigset_t sigs = set_of(SIGUSR1, SIGUSR2);
    sigaddset(&sigs, SIGHUP);
    test_tsan_signal_receiver(&sigs);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    test_run_cfg(&cfg, main_task, NULL);
    cfg.workers = 1;
    test_run_cfg(&cfg, main_task, NULL);

    /* A plain thread blocks in the wait. */
    pthread_t th;
    pthread_create(&th, NULL, thread_waiter, NULL);
    while (!atomic_load(&tw.started))
        usleep(1000);
    usleep(20 * 1000);
    ASSERT_EQ(kill(getpid(), SIGUSR2), 0);
    void *rc;
    pthread_join(th, &rc);
    ASSERT_EQ((intptr_t)rc, 0);
    ASSERT_EQ(tw.got, SIGUSR2);
    return 0;
}
