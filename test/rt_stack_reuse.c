/*
 * test/rt_stack_reuse.c - a stack handed to a new task is the new task's
 * alone: while tasks finish on one worker (their stacks freed, beyond the
 * hot ones given back to the kernel) and start on another (taking freed
 * stacks), every task's frame keeps what it wrote across its suspensions.
 * A stack still being given back when another task takes it would have its
 * frame zeroed under that task. That race is narrow: this test rarely meets
 * it on a quiet machine (rt_timer's 100,000 sleepers under load did, as
 * lost timers); it checks that reuse at volume keeps every frame intact.
 */
#include "test.h"

#include <stdatomic.h>

#define ROUNDS 12
#define TASKS 3000 /* well past the free stacks kept resident */
#define FRAME 2048

static _Atomic long corrupted;

static int task_body(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    volatile unsigned char frame[FRAME];
    for (size_t i = 0; i < FRAME; i++)
        frame[i] = (unsigned char)(seed * 31 + i * 7 + 1); /* never all zero */
    for (int k = 0; k < 3; k++) {
        if (k == 1)
            mag_sleep((seed % 3) * 100000); /* 0..200 us: a timer on this stack */
        else
            mag_yield();
        for (size_t i = 0; i < FRAME; i++)
            if (frame[i] != (unsigned char)(seed * 31 + i * 7 + 1)) {
                atomic_fetch_add(&corrupted, 1);
                return -EIO;
            }
    }
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    static mag_task_t *tasks[TASKS];
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < TASKS; i++) {
            tasks[i] = mag_spawn(task_body, (void *)(uintptr_t)(r * TASKS + i));
            ASSERT_TRUE(tasks[i] != NULL);
            if (i % 64 == 0)
                mag_yield(); /* let the others finish while spawns go on */
        }
        for (int i = 0; i < TASKS; i++) {
            int st = -1;
            ASSERT_EQ(mag_join(tasks[i], &st), 0);
            ASSERT_EQ(st, 0);
        }
    }
    ASSERT_EQ(atomic_load(&corrupted), 0);
    return 0;
}

int main(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    cfg.stack_size = 16384;
    test_run_cfg(&cfg, main_task, NULL);
    puts("ok");
    return 0;
}
