/* Cancel a sleeping, a yielding and a joining task; cancellation is sticky;
 * a task cancelled before it starts still runs and sees -ECANCELED. */
#include "test/test.h"

#include <stdatomic.h>

static _Atomic int stage;

static int sleeper(void *arg)
{
    atomic_store(&stage, 1);
    int rc = mag_sleep(3600 * MAG_SEC);
    /* Sticky: every later suspension point fails at once too. */
    int again = mag_sleep(1);
    int y = mag_yield();
    if (again != -ECANCELED || y != -ECANCELED || !mag_cancelled())
        return -1000;
    return rc;
}

static int yielder(void *arg)
{
    for (;;) {
        int rc = mag_yield();
        if (rc)
            return rc;
    }
}

static int forever(void *arg)
{
    return mag_sleep(3600 * MAG_SEC);
}

static int joiner(void *arg)
{
    return mag_join((mag_task_t *)arg, NULL);
}

static int starts_cancelled(void *arg)
{
    return mag_cancelled() ? mag_sleep(MAG_MS) : 0;
}

static int main_task(void *arg)
{
    int st;
    mag_task_t *s = mag_spawn(sleeper, NULL);
    while (atomic_load(&stage) == 0)
        mag_yield();
    mag_cancel(s);
    ASSERT_EQ(mag_join(s, &st), 0);
    ASSERT_EQ(st, -ECANCELED);

    mag_task_t *y = mag_spawn(yielder, NULL);
    mag_sleep(MAG_MS);
    mag_cancel(y);
    ASSERT_EQ(mag_join(y, &st), 0);
    ASSERT_EQ(st, -ECANCELED);

    /* A joiner cancelled while waiting returns -ECANCELED; the joined task's
     * handle stays valid and can be joined later. */
    mag_task_t *f = mag_spawn(forever, NULL);
    mag_task_t *j = mag_spawn(joiner, f);
    mag_sleep(MAG_MS);
    mag_cancel(j);
    ASSERT_EQ(mag_join(j, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    mag_cancel(f);
    ASSERT_EQ(mag_join(f, &st), 0);
    ASSERT_EQ(st, -ECANCELED);

    mag_task_t *c = mag_spawn(starts_cancelled, NULL);
    mag_cancel(c);
    ASSERT_EQ(mag_join(c, &st), 0);
    ASSERT_EQ(st, -ECANCELED);

    /* Cancelling a finished task is harmless. */
    mag_task_t *d = mag_spawn(starts_cancelled, NULL);
    mag_sleep(MAG_MS);
    mag_cancel(d);
    ASSERT_EQ(mag_join(d, &st), 0);
    return 0;
}

int main(void)
{
    unsigned modes[] = {test_workers(4), 1};
    for (unsigned m = 0; m < 2; m++) {
        atomic_store(&stage, 0);
        test_run(modes[m], main_task, NULL);
    }
    return 0;
}
