/* Groups: wait for all (gather), next-to-finish order (as_completed), the
 * first error cancels the siblings (TaskGroup), destroy with live tasks. */
#include "test/test.h"

#include <stdatomic.h>

static _Atomic int cancelled_seen;

static int after_ms(void *arg)
{
    int ms = (int)(intptr_t)arg;
    int rc = mag_sleep((uint64_t)ms * MAG_MS);
    if (rc == -ECANCELED)
        atomic_fetch_add(&cancelled_seen, 1);
    return rc ? rc : ms;
}

static int fail_after_ms(void *arg)
{
    mag_sleep((uint64_t)(intptr_t)arg * MAG_MS);
    return -EIO;
}

static int main_task(void *arg)
{
    /* gather: all results, none lost. */
    mag_group_t *g = mag_group_create(0);
    ASSERT_TRUE(g);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(mag_group_spawn(g, after_ms, (void *)(intptr_t)(i % 5)), i);
    ASSERT_EQ(mag_group_wait(g), 0);
    int st;
    ASSERT_EQ(mag_group_next(g, &st), -ENOENT);
    mag_group_destroy(g);

    /* as_completed: finishing order, ids tell which. */
    g = mag_group_create(0);
    int ms[] = {60, 5, 30};
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(mag_group_spawn(g, after_ms, (void *)(intptr_t)ms[i]), i);
    int order[3];
    for (int i = 0; i < 3; i++) {
        order[i] = mag_group_next(g, &st);
        ASSERT_EQ(st, ms[order[i]]);
    }
    ASSERT_EQ(order[0], 1);
    ASSERT_EQ(order[1], 2);
    ASSERT_EQ(order[2], 0);
    ASSERT_EQ(mag_group_next(g, &st), -ENOENT);
    mag_group_destroy(g);

    /* TaskGroup: the first error cancels the siblings. */
    atomic_store(&cancelled_seen, 0);
    g = mag_group_create(MAG_GROUP_CANCEL_ON_ERROR);
    for (int i = 0; i < 10; i++)
        mag_group_spawn(g, after_ms, (void *)(intptr_t)(3600 * 1000));
    mag_group_spawn(g, fail_after_ms, (void *)2);
    ASSERT_EQ(mag_group_wait(g), -EIO);
    ASSERT_EQ(atomic_load(&cancelled_seen), 10);
    ASSERT_EQ(mag_group_spawn(g, after_ms, (void *)1), -ECANCELED);
    mag_group_destroy(g);

    /* gather keeps the first error in finishing order without cancelling. */
    g = mag_group_create(0);
    mag_group_spawn(g, fail_after_ms, (void *)1);
    mag_group_spawn(g, after_ms, (void *)10);
    ASSERT_EQ(mag_group_wait(g), -EIO);
    mag_group_destroy(g);

    /* destroy with live members cancels and joins them. */
    atomic_store(&cancelled_seen, 0);
    g = mag_group_create(0);
    for (int i = 0; i < 50; i++)
        mag_group_spawn(g, after_ms, (void *)(intptr_t)(3600 * 1000));
    mag_sleep(MAG_MS);
    mag_group_destroy(g);
    ASSERT_EQ(atomic_load(&cancelled_seen), 50);

    /* A waiter's deadline returns -ETIMEDOUT and cancels the members. */
    atomic_store(&cancelled_seen, 0);
    g = mag_group_create(0);
    mag_group_spawn(g, after_ms, (void *)(intptr_t)(3600 * 1000));
    uint64_t tok = mag_deadline_push(mag_now() + 5 * MAG_MS);
    ASSERT_EQ(mag_group_wait(g), -ETIMEDOUT);
    mag_deadline_pop(tok);
    ASSERT_EQ(atomic_load(&cancelled_seen), 1);
    mag_group_destroy(g);

    ASSERT_TRUE(mag_group_create(0x80) == NULL);
    ASSERT_EQ(mag_group_spawn(NULL, after_ms, NULL), -EINVAL);
    return 0;
}

int main(void)
{
    ASSERT_TRUE(mag_group_create(0) == NULL); /* no runtime here */
    unsigned modes[] = {test_workers(4), 1};
    for (unsigned m = 0; m < 2; m++) {
        test_run(modes[m], main_task, NULL);
    }
    return 0;
}
