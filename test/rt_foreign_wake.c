/* Wake-ups from foreign threads while every worker parks, over and over:
 * each plain thread plays ping-pong with a task through two semaphores, so
 * that between two balls the runtime has nothing to do and all its workers
 * park; every release from the thread must wake a parked worker. A lost
 * wake-up hangs the game (the runner's timeout fails the test). Spawns from
 * the threads between rounds add wake-ups through the inject queue. */
#include "test/test.h"

#include <stdatomic.h>

#define PLAYERS 4
#define ROUNDS TEST_SCALE(3000)

typedef struct game {
    mag_sem_t ping, pong;
    mag_runtime_t *rt;
    unsigned seed;
} game_t;

static _Atomic int spawned_ran;

static int task_player(void *arg)
{
    game_t *g = arg;
    for (int i = 0; i < ROUNDS; i++) {
        ASSERT_EQ(mag_sem_acquire(&g->ping), 0);
        ASSERT_EQ(mag_sem_release(&g->pong), 0);
    }
    return 0;
}

static int tiny(void *arg)
{
    atomic_fetch_add(&spawned_ran, 1);
    return 0;
}

static void *thread_player(void *arg)
{
    game_t *g = arg;
    for (int i = 0; i < ROUNDS; i++) {
        g->seed = g->seed * 1103515245u + 12345u;
        /* 0 to 60 us between balls: long enough, often, for every worker
         * to park, and sometimes not, so that the release races the park. */
        unsigned pause = (g->seed >> 16) % 61;
        if (pause > 30)
            usleep(pause - 30);
        ASSERT_EQ(mag_sem_release(&g->ping), 0);
        ASSERT_EQ(mag_sem_acquire(&g->pong), 0); /* blocks this thread */
        if (i % 64 == 0) {
            mag_task_t *t = mag_runtime_spawn(g->rt, tiny, NULL);
            ASSERT_PTR_NE(t, NULL);
            mag_detach(t);
        }
    }
    return NULL;
}

int main(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(8);
    mag_runtime_t *rt;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    game_t games[PLAYERS];
    mag_task_t *tasks[PLAYERS];
    pthread_t threads[PLAYERS];
    for (int i = 0; i < PLAYERS; i++) {
        ASSERT_EQ(mag_sem_init(&games[i].ping, 0), 0);
        ASSERT_EQ(mag_sem_init(&games[i].pong, 0), 0);
        games[i].rt = rt;
        games[i].seed = 7919u * (unsigned)(i + 1);
        ASSERT_PTR_NE(tasks[i] = mag_runtime_spawn(rt, task_player, &games[i]), NULL);
        ASSERT_EQ(pthread_create(&threads[i], NULL, thread_player, &games[i]), 0);
    }
    for (int i = 0; i < PLAYERS; i++) {
        pthread_join(threads[i], NULL);
        int st = -1;
        ASSERT_EQ(mag_join(tasks[i], &st), 0); /* from a plain thread */
        ASSERT_EQ(st, 0);
    }
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
    int expected = PLAYERS * ((ROUNDS + 63) / 64);
    ASSERT_EQ(atomic_load(&spawned_ran), expected);
    return 0;
}
