/* Groups: wait for all (gather), next-to-finish order (as_completed), the
 * first error cancels the siblings (TaskGroup), destroy with live tasks, and
 * a member's handle belongs to the group: a member that detaches or joins
 * itself through mag_self changes nothing, and the tasks that reuse its
 * record later are untouched. */
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

/* A member that tries to give its handle away: the group owns it. */
static int self_releasing(void *arg)
{
    int i = (int)(intptr_t)arg;
    mag_task_t *me = mag_self();
    if (i % 2)
        mag_detach(me); /* ignored */
    else if (mag_join(me, NULL) != -EDEADLK)
        return -1000;
    mag_yield();
    return i;
}

static int returns_arg(void *arg)
{
    mag_yield();
    return (int)(intptr_t)arg;
}

/* Another task joins a member's handle: refused, the group still has it. */
static int join_member(void *arg)
{
    return mag_join((mag_task_t *)arg, NULL);
}

static int grab_self(void *arg)
{
    /* release: pairs with the acquire loop in handles_stay_the_groups. */
    atomic_store_explicit((mag_task_t *_Atomic *)arg, mag_self(), memory_order_release);
    mag_sleep(20 * MAG_MS);
    return 7;
}

static void handles_stay_the_groups(void)
{
    for (int round = 0; round < 20; round++) {
        mag_group_t *g = mag_group_create(0);
        ASSERT_TRUE(g);
        for (int i = 0; i < 16; i++)
            ASSERT_EQ(mag_group_spawn(g, self_releasing, (void *)(intptr_t)i), i);
        int seen = 0, st = 0;
        for (int k = 0; k < 16; k++) {
            int id = mag_group_next(g, &st);
            ASSERT_GE(id, 0);
            ASSERT_EQ(st, id); /* its own result, never another task's */
            seen++;
        }
        ASSERT_EQ(seen, 16);
        mag_group_destroy(g);
        /* Plain tasks that may get the members' records: all theirs. */
        mag_task_t *t[16];
        for (int i = 0; i < 16; i++)
            ASSERT_TRUE((t[i] = mag_spawn(returns_arg, (void *)(intptr_t)(100 + i))) != NULL);
        for (int i = 0; i < 16; i++) {
            ASSERT_EQ(mag_join(t[i], &st), 0);
            ASSERT_EQ(st, 100 + i);
        }
    }
    mag_group_t *g = mag_group_create(0);
    mag_task_t *_Atomic member = NULL;
    ASSERT_EQ(mag_group_spawn(g, grab_self, (void *)&member), 0);
    while (!atomic_load_explicit(&member, memory_order_acquire))
        mag_yield();
    mag_task_t *j = mag_spawn(join_member, atomic_load(&member));
    int st = 0;
    ASSERT_EQ(mag_join(j, &st), 0);
    ASSERT_EQ(st, -EINVAL);
    ASSERT_EQ(mag_group_next(g, &st), 0);
    ASSERT_EQ(st, 7);
    mag_group_destroy(g);
}

static int main_task(void *arg)
{
    handles_stay_the_groups();
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
