/* mag_errno() reads the errno of the thread that runs the task now. The
 * task below sets errno with a plain libc call, suspends, is woken from
 * another worker and so resumes there, and checks each value it set right after setting it; the other
 * workers keep a different errno (ESPIPE) meanwhile, so reading a stale
 * thread's copy shows. Outside a task mag_errno() is errno. */
#include "test/test.h"

#include <fcntl.h>
#include <stdatomic.h>

#define WORKERS 2
#define SIBLINGS 4

static _Atomic bool done;      /* main_task -> siblings: stop */
static int pipe_fds[2];        /* lseek on a pipe: ESPIPE */
static mag_sem_t ping;         /* siblings -> main_task: resume, here */
static _Atomic bool waiting;   /* main_task -> siblings: release ping once */

/* Keeps ESPIPE in its worker's errno, and wakes main_task, from whichever
 * worker it runs on; busy for a while, then idle for a while, so siblings
 * spread over the workers. */
/* pthread_self is declared const too: called through a function the
 * compiler cannot see into, so each call asks the thread it runs on. */
__attribute__((noinline)) static pthread_t this_thread(void)
{
    __asm__ volatile("" ::: "memory");
    return pthread_self();
}

static int sibling(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&done, memory_order_relaxed)) {
        ASSERT_EQ(lseek(pipe_fds[0], 0, SEEK_SET), -1);
        ASSERT_EQ(mag_errno(), ESPIPE);
        /* Runs for longer than the monitor's tick, so that a worker with
         * queued work and a busy task hands work to the idle one. */
        uint64_t until = mag_now() + 2 * MAG_MS;
        while (mag_now() < until)
            ;
        /* main_task resumes on the worker that releases it: this one. */
        if (atomic_exchange_explicit(&waiting, false, memory_order_relaxed))
            mag_sem_release(&ping);
        mag_sleep(100 * MAG_US); /* its worker idles now and then: steals */
    }
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    ASSERT_EQ(mag_sem_init(&ping, 0), 0);
    mag_task_t *sib[SIBLINGS];
    for (int i = 0; i < SIBLINGS; i++)
        sib[i] = mag_spawn(sibling, NULL);

    int moves = 0;
    pthread_t last = this_thread();
    uint64_t deadline = mag_now() + 20000 * MAG_MS;
    for (int i = 0; moves < 20 && mag_now() < deadline; i++) {
        /* Before the suspension: the address errno has here is this
         * thread's, and the compiler may keep it. */
        if (i % 2) {
            ASSERT_EQ(close(-1), -1);
            ASSERT_EQ(mag_errno(), EBADF);
        } else {
            ASSERT_EQ(access("/nonexistent-dir/x", F_OK), -1);
            ASSERT_EQ(mag_errno(), ENOENT);
        }
        atomic_store_explicit(&waiting, true, memory_order_relaxed);
        ASSERT_EQ(mag_sem_acquire(&ping), 0);
        if (i % 2) {
            ASSERT_EQ(access("/nonexistent-dir/x", F_OK), -1);
            ASSERT_EQ(mag_errno(), ENOENT);
        } else {
            ASSERT_EQ(close(-1), -1);
            ASSERT_EQ(mag_errno(), EBADF);
        }
        pthread_t now = this_thread();
        if (!pthread_equal(last, now)) {
            moves++;
            last = now;
        }
    }
    atomic_store_explicit(&done, true, memory_order_relaxed);
    for (int i = 0; i < SIBLINGS; i++)
        ASSERT_EQ(mag_join(sib[i], NULL), 0);
    printf("moved between workers %d times\n", moves);
    ASSERT_GT(moves, 0); /* the checks above ran on more than one thread */
    return 0;
}

int main(void)
{
    ASSERT_EQ(pipe(pipe_fds), 0);
    ASSERT_EQ(close(-1), -1);
    ASSERT_EQ(mag_errno(), EBADF);

    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = WORKERS;
    test_run_cfg(&cfg, main_task, NULL);

    ASSERT_EQ(lseek(pipe_fds[0], 0, SEEK_SET), -1);
    ASSERT_EQ(mag_errno(), ESPIPE);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return 0;
}
