/*
 * obs_dump - mag_dump_tasks lists every live task with what it waits on: a
 * task blocked on a mutex as "waiting on mutex", others on a timer, a join,
 * a channel; the running task as running, a task not started yet as
 * runnable; names, workers, ages, and a stack high-water mark that reflects
 * a deep stack.
 */
#include "test.h"

#include <errno.h>
#include <stdatomic.h>

static mag_mutex_t mu;
static mag_chan_t *chan;

static int locker(void *arg)
{
    (void)arg;
    int rc = mag_mutex_lock(&mu);
    if (rc == 0)
        mag_mutex_unlock(&mu);
    return rc;
}

static int sleeper(void *arg)
{
    (void)arg;
    return mag_sleep(60 * MAG_SEC);
}

static mag_task_t *_Atomic inner_task;
static atomic_int fresh_started;

static int fresh(void *arg)
{
    (void)arg;
    atomic_store(&fresh_started, 1);
    return 0;
}

static int joiner(void *arg)
{
    (void)arg;
    mag_spawn_opts_t o = {.name = "inner"};
    mag_task_t *t;
    ASSERT_EQ(mag_spawn_ex(&t, sleeper, NULL, &o), 0);
    atomic_store(&inner_task, t);
    int st = 0;
    ASSERT_EQ(mag_join(t, &st), 0);
    return st;
}

static int receiver(void *arg)
{
    (void)arg;
    int v;
    return mag_chan_recv(chan, &v);
}

__attribute__((noinline)) static int deep_frame(void)
{
    volatile char big[96 * 1024];
    memset((char *)big, 1, sizeof big);
    return big[100];
}

static int deep(void *arg)
{
    (void)arg;
    if (deep_frame() != 1)
        return -1;
    return mag_sleep(60 * MAG_SEC);
}

/* The dump's line for the task named name, or NULL. */
static const char *line_of(const char *dump, const char *name, char *buf, size_t cap)
{
    char key[64];
    snprintf(key, sizeof key, "  %s ", name);
    const char *p = strstr(dump, key);
    if (!p)
        return NULL;
    while (p > dump && p[-1] != '\n')
        p--;
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
    return buf;
}

static char *take_dump(int *count)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT_TRUE(f != NULL);
    *count = mag_dump_tasks(NULL, f);
    fclose(f);
    return text;
}

static bool has_all(const char *dump)
{
    static const char *const want[][2] = {
        {"locker", "waiting on mutex"},
        {"sleeper", "waiting on timer"},
        {"joiner", "waiting on join"},
        {"inner", "waiting on timer"},
        {"receiver", "waiting on channel"},
        {"deep", "waiting on timer"},
        {"main", "running"}, /* "running or yielded" when untracked */
    };
    char buf[512];
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *l = line_of(dump, want[i][0], buf, sizeof buf);
        if (!l || !strstr(l, want[i][1]))
            return false;
    }
    return true;
}

static int main_task(void *arg)
{
    bool tracked = *(bool *)arg;
    ASSERT_EQ(mag_mutex_init(&mu), 0);
    ASSERT_EQ(mag_mutex_lock(&mu), 0);
    chan = mag_chan_create(sizeof(int), 1);
    ASSERT_TRUE(chan != NULL);
    static const char *const names[] = {"locker", "sleeper", "joiner", "receiver", "deep"};
    mag_fn fns[] = {locker, sleeper, joiner, receiver, deep};
    mag_task_t *t[5];
    for (int i = 0; i < 5; i++) {
        mag_spawn_opts_t o = {.name = names[i]};
        ASSERT_EQ(mag_spawn_ex(&t[i], fns[i], NULL, &o), 0);
    }
    /* Wait until every task has reached its wait. The count in the dump's
     * first line is read before its records are walked: a dump taken while
     * the joiner spawns "inner" can list it without counting it, so the
     * wait is over once a dump both lists and counts all of them. */
    char *dump = NULL;
    const char *l;
    int count = 0;
    for (int tries = 0; tries < 5000; tries++) {
        free(dump);
        dump = take_dump(&count);
        if (has_all(dump) && count == 8 && strstr(dump, "8 live tasks"))
            break;
        mag_sleep(MAG_MS);
    }
    fputs(dump, stdout);
    if (!has_all(dump))
        TEST_FAIL("the dump lacks a task or a state (above)");
    ASSERT_EQ(count, 8); /* block_on's, main, five tasks, inner */
    ASSERT_TRUE(strstr(dump, "8 live tasks") != NULL);
    char buf[512];
    /* Runs and ages are known only when the runtime tracks them. */
    l = line_of(dump, "main", buf, sizeof buf);
    ASSERT_TRUE(tracked == (strstr(l, "running for") != NULL));
    ASSERT_TRUE(tracked == (strstr(l, " - ") == NULL));
    /* The mutex waiter names the mutex it waits on. */
    char addr[32];
    snprintf(addr, sizeof addr, "%p", (void *)&mu);
    ASSERT_TRUE(strstr(line_of(dump, "locker", buf, sizeof buf), addr) != NULL);
    /* The deep task touched over 96 KiB of its stack. */
    l = line_of(dump, "deep", buf, sizeof buf);
    const char *kib = strstr(l, " KiB");
    ASSERT_TRUE(kib != NULL);
    const char *num = kib;
    while (num > l && num[-1] != ' ')
        num--;
    double hwm = strtod(num, NULL);
    ASSERT_GE((int64_t)hwm, 96);
    ASSERT_LT((int64_t)hwm, 256);
    free(dump);


    /* Release everyone. */
    ASSERT_EQ(mag_mutex_unlock(&mu), 0);
    ASSERT_EQ(mag_chan_close(chan), 0);
    mag_cancel(t[1]);
    mag_cancel(atomic_load(&inner_task)); /* the joiner returns once it has */
    mag_cancel(t[4]);
    int st;
    ASSERT_EQ(mag_join(t[0], &st), 0);
    ASSERT_EQ(st, 0);
    for (int i = 1; i < 5; i++)
        ASSERT_EQ(mag_join(t[i], NULL), 0);
    mag_chan_destroy(chan);

    dump = take_dump(&count);
    ASSERT_EQ(count, 2); /* block_on's and main */
    free(dump);
    return 0;
}

/* A task spawned and not started yet is runnable, not running (its state
 * word says RUNNING until its first run, task_state.h). In loop mode, where
 * nothing runs it before this task suspends: the dump does not. */
static int fresh_check(void *arg)
{
    (void)arg;
    mag_spawn_opts_t o = {.name = "fresh"};
    mag_task_t *f;
    ASSERT_EQ(mag_spawn_ex(&f, fresh, NULL, &o), 0);
    int count;
    char *dump = take_dump(&count);
    ASSERT_EQ(atomic_load(&fresh_started), 0);
    char buf[512];
    const char *l = line_of(dump, "fresh", buf, sizeof buf);
    if (!l || !strstr(l, "runnable (not started)")) {
        fputs(dump, stdout);
        TEST_FAIL("the task not started yet is not shown as such (above)");
    }
    free(dump);
    ASSERT_EQ(mag_join(f, NULL), 0);
    ASSERT_EQ(atomic_load(&fresh_started), 1);
    return 0;
}

static int outer(void *arg)
{
    /* block_on's own task has no name: run a named "main" under it. */
    mag_spawn_opts_t o = {.name = "main"};
    mag_task_t *t;
    ASSERT_EQ(mag_spawn_ex(&t, main_task, arg, &o), 0);
    int st = -1;
    ASSERT_EQ(mag_join(t, &st), 0);
    return st;
}

static void run(bool tracked)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    cfg.debug = tracked; /* debug mode tracks runs and ages */
    mag_runtime_t *rt;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    int st = -1;
    ASSERT_EQ(mag_runtime_block_on(rt, outer, &tracked, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
}

int main(void)
{
    run(false);
    run(true);
    test_run(1, fresh_check, NULL);
    return 0;
}
