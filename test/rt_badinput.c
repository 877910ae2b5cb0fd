/* Bad input gets a clear negative errno, never a crash or a hang. */
#include "test/test.h"

#include <stdatomic.h>

static int nothing(void *arg)
{
    return 3;
}

static int main_task(void *arg)
{
    mag_task_t *t;
    ASSERT_TRUE(mag_spawn(NULL, NULL) == NULL);
    ASSERT_EQ(mag_spawn_ex(&t, NULL, NULL, NULL), -EINVAL);
    ASSERT_EQ(mag_spawn_ex(NULL, nothing, NULL, NULL), -EINVAL);
    mag_spawn_opts_t tiny = {.stack_size = 1};
    ASSERT_EQ(mag_spawn_ex(&t, nothing, NULL, &tiny), -EINVAL);
    mag_spawn_opts_t huge = {.stack_size = (size_t)MAG_STACK_MAX + 1};
    ASSERT_EQ(mag_spawn_ex(&t, nothing, NULL, &huge), -EINVAL);
    mag_spawn_opts_t named = {.name = "a-name-much-longer-than-thirty-one-bytes-long"};
    ASSERT_EQ(mag_spawn_ex(&t, nothing, NULL, &named), 0);
    ASSERT_EQ(strlen(mag_task_name(t)), 31);

    /* Join twice: the second one is refused, never a crash. */
    int st;
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, 3);
    ASSERT_EQ(mag_join(t, &st), -ESRCH);
    /* Joining a detached handle is refused too. */
    mag_task_t *d = mag_spawn(nothing, NULL);
    mag_sleep(MAG_MS); /* still referenced by its body or finished: either way */
    mag_detach(d);
    ASSERT_EQ(mag_join(NULL, &st), -EINVAL);
    int not_a_task[64] = {0};
    ASSERT_EQ(mag_join((mag_task_t *)not_a_task, &st), -EINVAL);
    ASSERT_EQ(mag_join(mag_self(), &st), -EDEADLK);
    mag_cancel(NULL);
    mag_detach(NULL);

    /* Nested runtimes from a task are refused rather than blocking a worker. */
    ASSERT_EQ(mag_run(NULL, nothing, NULL, &st), -EBUSY);
    return 0;
}

int main(void)
{
    /* Outside a task. */
    ASSERT_EQ(mag_yield(), -EPERM);
    ASSERT_EQ(mag_sleep(MAG_MS), -EPERM);
    ASSERT_TRUE(mag_self() == NULL);
    ASSERT_TRUE(!mag_cancelled());
    ASSERT_TRUE(mag_spawn(nothing, NULL) == NULL);
    ASSERT_EQ(mag_run(NULL, NULL, NULL, NULL), -EINVAL);

    mag_config_t cfg;
    mag_config_init(&cfg);
    mag_runtime_t *rt;
    int st0 = 0;
    cfg.workers = 100000;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), -EINVAL);
    mag_config_init(&cfg);
    cfg.stack_size = 1;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), -EINVAL);
    mag_config_init(&cfg);
    cfg.ring_entries = 1u << 30;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), -EINVAL);
    ASSERT_EQ(mag_runtime_create(NULL, NULL), -EINVAL);
    ASSERT_TRUE(mag_runtime_spawn(NULL, nothing, NULL) == NULL);
    ASSERT_EQ(mag_runtime_shutdown(NULL), -EINVAL);

    /* Malformed environment: ignored with a message, defaults kept. */
    setenv("MAG_WORKERS", "lots", 1);
    setenv("MAG_STACK_SIZE", "64k", 1);
    mag_config_init(&cfg);
    ASSERT_EQ(cfg.workers, 0);
    ASSERT_EQ(cfg.stack_size, 64 * 1024);
    unsetenv("MAG_WORKERS");
    unsetenv("MAG_STACK_SIZE");

    for (unsigned w = 1; w <= 2; w++) {
        mag_config_init(&cfg);
        cfg.workers = w;
        test_run_cfg(&cfg, main_task, NULL);
    }
    /* Loop mode: the loop's thread, outside mag_runtime_block_on, joining a
     * task that has not run: only that thread could run it, so the join
     * would wait for ever. Refused; the handle stays valid, and the loop
     * runs it at the next block_on. */
    mag_config_init(&cfg);
    cfg.workers = 1;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    ASSERT_EQ(mag_runtime_block_on(rt, nothing, NULL, &st0), 0);
    mag_task_t *later = mag_runtime_spawn(rt, nothing, NULL);
    ASSERT_TRUE(later != NULL);
    ASSERT_EQ(mag_join(later, &st0), -EDEADLK);
    ASSERT_EQ(mag_runtime_block_on(rt, nothing, NULL, &st0), 0);
    st0 = 0;
    ASSERT_EQ(mag_join(later, &st0), 0); /* finished now: joined at once */
    ASSERT_EQ(st0, 3);
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);

    /* Spawning into a runtime that has shut down is refused. */
    mag_config_init(&cfg);
    cfg.workers = 2;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
    return 0;
}
