/* Deadlines nest (the earliest wins) and fire with -ETIMEDOUT; mag_wait_for
 * times out and cancels the inner task, or returns its result in time. */
#include "test/test.h"

#include <stdatomic.h>

static _Atomic int inner_saw;

static int slow(void *arg)
{
    int rc = mag_sleep(3600 * MAG_SEC);
    atomic_store(&inner_saw, rc);
    return rc;
}

static int quick(void *arg)
{
    mag_sleep(MAG_MS);
    return 7;
}

static int main_task(void *arg)
{
    /* The outer deadline is far enough that, on a loaded machine under a
     * sanitizer, it has not passed yet when the inner one is popped. */
    const uint64_t outer_ns = 400 * MAG_MS;
    uint64_t t0 = mag_now();
    uint64_t outer = mag_deadline_push(t0 + outer_ns);
    uint64_t inner = mag_deadline_push(t0 + 5 * MAG_MS);
    ASSERT_TRUE(outer && inner);
    ASSERT_EQ(mag_sleep(MAG_SEC), -ETIMEDOUT); /* the inner one fires */
    uint64_t t1 = mag_now();
    ASSERT_GE(t1 - t0, 5 * MAG_MS);
    ASSERT_LT(t1 - t0, outer_ns);
    /* Still past it: every suspension point fails. */
    ASSERT_EQ(mag_yield(), -ETIMEDOUT);
    mag_deadline_pop(inner);
    ASSERT_EQ(mag_yield(), 0);
    ASSERT_EQ(mag_sleep(MAG_SEC), -ETIMEDOUT); /* now the outer one */
    ASSERT_GE(mag_now() - t0, outer_ns);
    mag_deadline_pop(outer);
    ASSERT_EQ(mag_sleep(MAG_MS), 0);

    /* An earlier outer deadline wins over a later inner one. */
    t0 = mag_now();
    outer = mag_deadline_push(t0 + 5 * MAG_MS);
    inner = mag_deadline_push(t0 + MAG_SEC);
    ASSERT_EQ(mag_sleep(MAG_SEC), -ETIMEDOUT);
    ASSERT_LT(mag_now() - t0, MAG_SEC / 2);
    mag_deadline_pop(inner);
    mag_deadline_pop(outer);
    /* Bad tokens are ignored (with a message), deadlines stay intact. */
    mag_deadline_pop(12345);
    mag_deadline_pop(0);

    int st = 0;
    atomic_store(&inner_saw, 1);
    ASSERT_EQ(mag_wait_for(slow, NULL, 5 * MAG_MS, &st), -ETIMEDOUT);
    ASSERT_EQ(atomic_load(&inner_saw), -ECANCELED); /* waited for, cancelled */
    ASSERT_EQ(mag_wait_for(quick, NULL, 10 * MAG_SEC, &st), 0);
    ASSERT_EQ(st, 7);
    ASSERT_EQ(mag_wait_for(NULL, NULL, MAG_SEC, &st), -EINVAL);
    return 0;
}

int main(void)
{
    unsigned modes[] = {test_workers(2), 1};
    for (unsigned m = 0; m < 2; m++) {
        test_run(modes[m], main_task, NULL);
    }
    int st;
    ASSERT_EQ(mag_wait_for(quick, NULL, MAG_SEC, &st), -EPERM);
    ASSERT_EQ(mag_deadline_push(1), 0);
    return 0;
}
