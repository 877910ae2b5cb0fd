/* The co-operative budget: tasks that loop over waiting operations that are
 * always ready (a select that can always send and receive on a buffered
 * channel, a mutex nobody else holds, a semaphore with permits to spare)
 * never need to suspend. A run may complete MAG__COOP_BUDGET (128) of them;
 * the next one yields first. So a task asleep on a timer on the same worker
 * still wakes, in loop mode and with every worker taken by a spinner. The
 * spinners give up after 4 s, so that without the budget this test fails
 * instead of hanging. */
#include "test/test.h"

#include <magpie/sync.h>
#include <stdatomic.h>

#define SPINNERS 3 /* of each kind */
#define GIVE_UP (4 * MAG_SEC)

static _Atomic int stop;
static _Atomic long ops;

static mag_chan_t *chan;
static mag_mutex_t mutex = MAG_MUTEX_INIT;
static mag_sem_t sem;

static bool keep_going(uint64_t give_up)
{
    return !atomic_load_explicit(&stop, memory_order_relaxed) && mag_now() < give_up;
}

static int select_spinner(void *arg)
{
    (void)arg;
    uint64_t give_up = mag_now() + GIVE_UP;
    int out = 1, in = 0;
    while (keep_going(give_up)) {
        mag_select_case_t cases[2] = {
            {.chan = chan, .op = MAG_SELECT_SEND, .elem = &out},
            {.chan = chan, .op = MAG_SELECT_RECV, .elem = &in},
        };
        int r = mag_select(cases, 2);
        if (r < 0)
            return r;
        atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
    }
    return 0;
}

static int lock_spinner(void *arg)
{
    (void)arg;
    uint64_t give_up = mag_now() + GIVE_UP;
    while (keep_going(give_up)) {
        int r = mag_mutex_lock(&mutex);
        if (r < 0)
            return r;
        mag_mutex_unlock(&mutex);
        if ((r = mag_sem_acquire(&sem)) < 0)
            return r;
        mag_sem_release(&sem);
        atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
    }
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    atomic_store(&stop, 0);
    atomic_store(&ops, 0);
    chan = mag_chan_create(sizeof(int), 4);
    ASSERT_TRUE(chan != NULL);
    int two = 2;
    ASSERT_EQ(mag_chan_send(chan, &two), 0); /* one in: both cases are ready */
    ASSERT_EQ(mag_sem_init(&sem, 2 * SPINNERS), 0);
    mag_task_t *t[2 * SPINNERS];
    for (int i = 0; i < SPINNERS; i++) {
        t[2 * i] = mag_spawn(select_spinner, NULL);
        t[2 * i + 1] = mag_spawn(lock_spinner, NULL);
        ASSERT_TRUE(t[2 * i] && t[2 * i + 1]);
    }
    uint64_t t0 = mag_now();
    ASSERT_EQ(mag_sleep(MAG_MS), 0);
    uint64_t slept = mag_now() - t0;
    atomic_store(&stop, 1);
    for (int i = 0; i < 2 * SPINNERS; i++) {
        int st = -1;
        ASSERT_EQ(mag_join(t[i], &st), 0);
        ASSERT_EQ(st, 0);
    }
    printf("a 1 ms sleep beside %d spinners took %.1f ms (%ld ready operations)\n",
           2 * SPINNERS, (double)slept / 1e6, atomic_load(&ops));
    ASSERT_GT(atomic_load(&ops), 0);
    /* Without the budget, the sleeper waits for the spinners to give up. */
    ASSERT_LT(slept, GIVE_UP / 2);
    mag_chan_destroy(chan);
    return 0;
}

int main(void)
{
    test_run(1, main_task, NULL);
    test_run(test_workers(2), main_task, NULL);
    return 0;
}
