/* A record is freed once, when both its body and its handle have let go,
 * whichever goes second (runtime/sched.h's life word): a detach, a join
 * ending, or a group's release racing the body's end, at 4 workers and from
 * plain threads. Each task returns a value of its own, so a record freed
 * twice (two tasks in one record) shows as a wrong result; a record never
 * freed keeps its generation, so its old handle still names the task
 * (mag_task_id stays non-zero) where a freed one's does not. */
#include "test/test.h"

#include <pthread.h>
#include <stdatomic.h>

#define ROUNDS TEST_SCALE(20000)
#define THREAD_ROUNDS TEST_SCALE(3000)

/* Runs for a few yields (0 to 3, from the argument) so that the handle's
 * side lands before, during or after the body's end. */
static int body(void *arg)
{
    intptr_t v = (intptr_t)arg;
    for (intptr_t i = 0; i < (v & 3); i++)
        mag_yield();
    return (int)(v & 0x3fffffff);
}

static _Atomic int joins_wrong;

/* Joins a handle it is given, from another task than the spawner. */
static int joiner(void *arg)
{
    mag_task_t *h = arg;
    int st = -1;
    if (mag_join(h, &st) != 0)
        atomic_fetch_add(&joins_wrong, 1);
    return st;
}

/* Waits (yielding, at most ten seconds) until a handle no longer names a
 * task: its record was freed. */
static bool freed_eventually(mag_task_t *h)
{
    uint64_t until = mag_now() + 10 * MAG_SEC;
    while (mag_task_id(h) != 0) {
        if (mag_now() > until)
            return false;
        mag_yield();
    }
    return true;
}

#define BATCH 64

static int races(void *arg)
{
    (void)arg;
    mag_task_t *detached[BATCH];
    for (int round = 0; round < ROUNDS / BATCH; round++) {
        for (int i = 0; i < BATCH; i++) {
            intptr_t v = (intptr_t)round * BATCH + i;
            mag_task_t *t = mag_spawn(body, (void *)v);
            ASSERT_TRUE(t != NULL);
            switch (v % 4) {
            case 0: /* detached before it runs */
                mag_detach(t);
                detached[i] = t;
                break;
            case 1: /* detached while it may be ending */
                for (intptr_t k = 0; k < (v >> 2 & 3); k++)
                    mag_yield();
                mag_detach(t);
                detached[i] = t;
                break;
            case 2: { /* joined here, its end racing ours */
                for (intptr_t k = 0; k < (v >> 2 & 3); k++)
                    mag_yield();
                int st = -1;
                ASSERT_EQ(mag_join(t, &st), 0);
                ASSERT_EQ(st, (int)(v & 0x3fffffff));
                ASSERT_TRUE(freed_eventually(t));
                ASSERT_EQ(mag_join(t, NULL), -ESRCH);
                detached[i] = NULL;
                break;
            }
            default: { /* joined by another task */
                mag_task_t *j = mag_spawn(joiner, t);
                ASSERT_TRUE(j != NULL);
                int st = -1;
                ASSERT_EQ(mag_join(j, &st), 0);
                ASSERT_EQ(st, (int)(v & 0x3fffffff));
                ASSERT_TRUE(freed_eventually(t));
                detached[i] = NULL;
                break;
            }
            }
        }
        for (int i = 0; i < BATCH; i++)
            if (detached[i])
                ASSERT_TRUE(freed_eventually(detached[i]));
    }
    ASSERT_EQ(atomic_load(&joins_wrong), 0);
    return 0;
}

/* A group owns its members' handles: each is released as it is reaped. */
static int group_races(void *arg)
{
    (void)arg;
    for (int round = 0; round < TEST_SCALE(300); round++) {
        mag_group_t *g = mag_group_create(0);
        ASSERT_TRUE(g != NULL);
        bool seen[BATCH] = {false};
        for (int i = 0; i < BATCH; i++)
            ASSERT_GE(mag_group_spawn(g, body, (void *)(intptr_t)(round * BATCH + i)), 0);
        for (int i = 0; i < BATCH; i++) {
            int st = -1;
            ASSERT_GE(mag_group_next(g, &st), 0);
            int k = st - round * BATCH;
            ASSERT_TRUE(k >= 0 && k < BATCH && !seen[k]);
            seen[k] = true;
        }
        mag_group_destroy(g);
    }
    return 0;
}

typedef struct thread_arg {
    mag_runtime_t *rt;
    int base;
    _Atomic int wrong;
} thread_arg_t;

/* A plain thread spawns into the runtime and joins or detaches. */
static void *from_thread(void *p)
{
    thread_arg_t *a = p;
    for (int i = 0; i < THREAD_ROUNDS; i++) {
        intptr_t v = (intptr_t)a->base + i;
        mag_task_t *t = mag_runtime_spawn(a->rt, body, (void *)v);
        if (!t) {
            atomic_fetch_add(&a->wrong, 1);
            continue;
        }
        if (i % 2) {
            mag_detach(t);
            continue;
        }
        int st = -1;
        if (mag_join(t, &st) != 0 || st != (int)(v & 0x3fffffff))
            atomic_fetch_add(&a->wrong, 1);
        if (mag_join(t, NULL) != -ESRCH) /* freed, or at least no longer joinable */
            atomic_fetch_add(&a->wrong, 1);
    }
    return NULL;
}

int main(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(4);
    mag_runtime_t *rt;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    int st = -1;
    ASSERT_EQ(mag_runtime_block_on(rt, races, NULL, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(mag_runtime_block_on(rt, group_races, NULL, &st), 0);
    ASSERT_EQ(st, 0);

    pthread_t th[2];
    thread_arg_t args[2] = {{rt, 1 << 20, 0}, {rt, 2 << 20, 0}};
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, from_thread, &args[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ(atomic_load(&args[i].wrong), 0);
    }
    /* Shutdown frees what is left: the detached ones still ending. */
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
    printf("ok: %d rounds, %d from threads\n", ROUNDS, 2 * THREAD_ROUNDS);
    return 0;
}
