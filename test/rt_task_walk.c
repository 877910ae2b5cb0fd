/*
 * rt_task_walk - shutdown and the dumps find live tasks by walking the task
 * records while they are spawned, finished and reused on every worker (and
 * by another runtime at the same time). A plain thread dumps a runtime over
 * and over while its tasks churn: every long-lived task is listed in every
 * dump, and never a task of the other runtime; mag_metrics names only
 * tasks that exist. Shutdown while tasks keep spawning tasks cancels them
 * all, those spawned during its sweep included, and returns. Handles nobody
 * joined are freed at shutdown while another runtime churns: each handle
 * is stale afterwards. With worker threads and in loop mode.
 */
#include "test.h"

#include <stdatomic.h>

#define KEEPERS 24
#define DUMPS 150

typedef struct churn {
    const char *name; /* of the tasks it spawns */
    atomic_bool stop;
} churn_t;

static churn_t churn_here = {.name = "child"}, churn_other = {.name = "other"};
static _Atomic unsigned long children_done;

static int sleeper(void *arg)
{
    (void)arg;
    int rc = mag_sleep(60 * MAG_SEC);
    return rc == -ECANCELED ? 0 : -1;
}

static int short_child(void *arg)
{
    if ((uintptr_t)arg & 1)
        mag_yield(); /* finishes after a trip through a queue: maybe elsewhere */
    atomic_fetch_add(&children_done, 1);
    return 0;
}

/* Spawns short tasks, detached, until told to stop. */
static int churner(void *arg)
{
    churn_t *c = arg;
    mag_spawn_opts_t o = {.name = c->name};
    for (uintptr_t i = 0; !atomic_load(&c->stop); i++) {
        mag_task_t *t;
        if (mag_spawn_ex(&t, short_child, (void *)i, &o) == 0)
            mag_detach(t);
        if (i % 16 == 0)
            mag_yield();
    }
    return 0;
}

/* ---- another runtime churning beside the one under test --------------------- */

static mag_runtime_t *other_rt;
static mag_task_t *other_churners[2];

static void other_start(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 2;
    atomic_store(&churn_other.stop, false);
    ASSERT_EQ(mag_runtime_create(&cfg, &other_rt), 0);
    for (int i = 0; i < 2; i++) {
        other_churners[i] = mag_runtime_spawn(other_rt, churner, &churn_other);
        ASSERT_TRUE(other_churners[i] != NULL);
    }
}

static void other_stop(void)
{
    atomic_store(&churn_other.stop, true);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(mag_join(other_churners[i], NULL), 0);
    ASSERT_EQ(mag_runtime_shutdown(other_rt), 0);
}

/* ---- dumps during churn ----------------------------------------------------- */

static mag_runtime_t *dump_rt;
static atomic_bool keepers_ready;

static int count_lines_named(const char *dump, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "  %-24s  ", name);
    int n = 0;
    for (const char *p = dump; (p = strstr(p, key)); p++)
        n++;
    return n;
}

static void *dumper(void *arg)
{
    (void)arg;
    while (!atomic_load(&keepers_ready))
        sched_yield();
    for (int i = 0; i < DUMPS; i++) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        ASSERT_TRUE(f != NULL);
        int count = mag_dump_tasks(dump_rt, f);
        fclose(f);
        ASSERT_TRUE(count >= KEEPERS + 3); /* the keepers, main, two churners */
        if (count_lines_named(text, "keeper") != KEEPERS || count_lines_named(text, "main") != 1 ||
            count_lines_named(text, "churner") != 2 || strstr(text, "other") != NULL) {
            fputs(text, stdout);
            TEST_FAIL("dump %d: a long-lived task is missing, or a stranger is listed", i);
        }
        free(text);
        mag_metrics_t m;
        ASSERT_EQ(mag_metrics(dump_rt, &m), 0);
        for (unsigned w = 0; w < m.nworkers; w++) {
            const char *n = m.workers[w].task_name;
            if (m.workers[w].task_id && n[0] && strcmp(n, "main") && strcmp(n, "churner") &&
                strcmp(n, "child") && strcmp(n, "keeper"))
                TEST_FAIL("worker %u runs a task named '%s'", w, n);
        }
        mag_metrics_free(&m);
    }
    return NULL;
}

static int dump_main(void *arg)
{
    (void)arg;
    mag_task_t *keepers[KEEPERS], *churners[2];
    mag_spawn_opts_t ko = {.name = "keeper"}, co = {.name = "churner"};
    for (int i = 0; i < KEEPERS; i++)
        ASSERT_EQ(mag_spawn_ex(&keepers[i], sleeper, NULL, &ko), 0);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(mag_spawn_ex(&churners[i], churner, &churn_here, &co), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, dumper, NULL), 0);
    atomic_store(&keepers_ready, true);
    /* In loop mode the workers' loop is this thread's: sleep in small steps
     * rather than block in pthread_join (the churners run meanwhile). */
    while (pthread_tryjoin_np(th, NULL) != 0)
        mag_sleep(MAG_MS);
    atomic_store(&churn_here.stop, true);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(mag_join(churners[i], NULL), 0);
    for (int i = 0; i < KEEPERS; i++) {
        mag_cancel(keepers[i]);
        int st = -1;
        ASSERT_EQ(mag_join(keepers[i], &st), 0);
        ASSERT_EQ(st, 0);
    }
    return 0;
}

/* block_on's own task is unnamed: "main" is a task of its own. */
static int run_named_main(mag_fn fn)
{
    mag_spawn_opts_t o = {.name = "main"};
    mag_task_t *t;
    ASSERT_EQ(mag_spawn_ex(&t, fn, NULL, &o), 0);
    int st = -1;
    ASSERT_EQ(mag_join(t, &st), 0);
    return st;
}

static int dump_root(void *arg)
{
    (void)arg;
    return run_named_main(dump_main);
}

static void case_dumps(unsigned workers)
{
    atomic_store(&churn_here.stop, false);
    atomic_store(&keepers_ready, false);
    other_start();
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    cfg.debug = true; /* tracks runs: mag_metrics names the running tasks */
    cfg.slow_task_ms = 10000;
    ASSERT_EQ(mag_runtime_create(&cfg, &dump_rt), 0);
    int st = -1;
    ASSERT_EQ(mag_runtime_block_on(dump_rt, dump_root, NULL, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(mag_runtime_shutdown(dump_rt), 0);
    other_stop();
}

/* ---- shutdown while tasks spawn tasks ---------------------------------------- */

static _Atomic unsigned long sd_spawned, sd_finished;

/* Spawns a child of its own (until depth 2), then sleeps until cancelled. */
static int sd_child(void *arg)
{
    uintptr_t depth = (uintptr_t)arg;
    mag_task_t *t;
    if (depth < 2 && mag_spawn_ex(&t, sd_child, (void *)(depth + 1), NULL) == 0) {
        atomic_fetch_add(&sd_spawned, 1);
        mag_detach(t);
    }
    int rc = mag_sleep(60 * MAG_SEC);
    atomic_fetch_add(&sd_finished, 1);
    return rc == -ECANCELED ? 0 : -1;
}

/* Spawns children until the runtime refuses: a cancellation does not stop
 * it, so it spawns on while shutdown sweeps. */
static int sd_spawner(void *arg)
{
    (void)arg;
    for (;;) {
        mag_task_t *t;
        int rc = mag_spawn_ex(&t, sd_child, NULL, NULL);
        if (rc) {
            ASSERT_EQ(rc, -ESHUTDOWN);
            break;
        }
        atomic_fetch_add(&sd_spawned, 1);
        mag_detach(t);
        mag_sleep(100 * MAG_US); /* at once once cancelled */
    }
    return 0;
}

static int sd_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        mag_task_t *t = mag_spawn(sd_spawner, NULL);
        ASSERT_TRUE(t != NULL);
        mag_detach(t);
    }
    mag_sleep(30 * MAG_MS);
    return 0;
}

/* A runtime of workers workers that has run fn to completion (returning
 * 0), still up, for the caller to look at and shut down. */
static mag_runtime_t *started_with(mag_fn fn, unsigned workers)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    mag_runtime_t *rt;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    int st = -1;
    ASSERT_EQ(mag_runtime_block_on(rt, fn, NULL, &st), 0);
    ASSERT_EQ(st, 0);
    return rt;
}

static void case_shutdown(unsigned workers)
{
    atomic_store(&sd_spawned, 0);
    atomic_store(&sd_finished, 0);
    mag_runtime_t *rt = started_with(sd_main, workers);
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
    ASSERT_TRUE(atomic_load(&sd_spawned) > 0);
    ASSERT_EQ(atomic_load(&sd_finished), atomic_load(&sd_spawned));
    printf("shutdown, %u worker(s): %lu tasks spawned, every one cancelled\n", workers,
           atomic_load(&sd_spawned));
}

/* ---- handles nobody joined, freed at shutdown ---------------------------------- */

#define LEFT 2000
static mag_task_t *left[LEFT];
static _Atomic int left_done;

static int left_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&left_done, 1);
    return 0;
}

static int left_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < LEFT; i++) {
        left[i] = mag_spawn(left_task, NULL);
        ASSERT_TRUE(left[i] != NULL);
        if (i % 64 == 0)
            mag_yield();
    }
    while (atomic_load(&left_done) < LEFT)
        mag_sleep(MAG_MS);
    return 0;
}

static void case_leftovers(unsigned workers)
{
    atomic_store(&left_done, 0);
    other_start();
    mag_runtime_t *rt = started_with(left_main, workers);
    for (int i = 0; i < LEFT; i++) /* done, not joined: the record is kept */
        ASSERT_TRUE(mag_task_id(left[i]) != 0);
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
    for (int i = 0; i < LEFT; i++) /* freed: every handle is stale */
        ASSERT_EQ(mag_task_id(left[i]), 0);
    /* The other runtime reuses the records freed meanwhile: one freed twice
     * would be handed to two tasks at once. */
    other_stop();
}

int main(void)
{
    for (unsigned workers = 1; workers <= 2; workers++) {
        case_dumps(workers);
        case_shutdown(workers);
        case_leftovers(workers);
    }
    return 0;
}
