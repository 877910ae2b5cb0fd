/*
 * obs_thread_names - the threads magpie starts carry their names (README,
 * "Observability and debugging"): at 3 workers every worker thread is
 * magpie-w0 to magpie-w2, the monitor is magpie-monitor, debug mode's
 * slow-task watchdog is magpie-slowtask and a blocking job runs on
 * magpie-blocking; the caller's own thread keeps its name, and in loop mode
 * the one worker is the caller's thread, under the caller's name.
 */
#include "test.h"

#include <dirent.h>

#define WORKERS 3
#define MAIN_NAME "names-main"

static void thread_name(char out[16])
{
    ASSERT_EQ(pthread_getname_np(pthread_self(), out, 16), 0);
}

/* How many of this process's threads are named name, from /proc. */
static unsigned threads_named(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    ASSERT_TRUE(d != NULL);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* a thread that exited meanwhile */
        if (fgets(comm, sizeof comm, f))
            comm[strcspn(comm, "\n")] = 0;
        fclose(f);
        n += strcmp(comm, name) == 0;
    }
    closedir(d);
    return n;
}

static int blocking_name(void *arg)
{
    thread_name(arg);
    return 0;
}

/* Runs on a worker: its name is one of the workers'. */
static int worker_name(void *arg)
{
    char name[16];
    thread_name(name);
    unsigned idx = WORKERS;
    ASSERT_TRUE(sscanf(name, "magpie-w%u", &idx) == 1);
    ASSERT_LT(idx, WORKERS);
    (void)arg;
    mag_yield();
    return 0;
}

static int multi_main(void *arg)
{
    (void)arg;
    mag_task_t *h[64];
    for (int i = 0; i < 64; i++)
        ASSERT_TRUE((h[i] = mag_spawn(worker_name, NULL)) != NULL);
    for (int i = 0; i < 64; i++)
        ASSERT_EQ(mag_join(h[i], NULL), 0);
    /* Every worker is a thread of its own, each named once. */
    for (unsigned i = 0; i < WORKERS; i++) {
        char want[16];
        snprintf(want, sizeof want, "magpie-w%u", i);
        ASSERT_UEQ(threads_named(want), 1);
    }
    ASSERT_UEQ(threads_named("magpie-monitor"), 1);
    ASSERT_UEQ(threads_named("magpie-slowtask"), 1); /* debug mode's watchdog */
    char job[16] = "";
    mag_task_t *b = mag_spawn_blocking(blocking_name, job);
    ASSERT_TRUE(b != NULL);
    ASSERT_EQ(mag_join(b, NULL), 0);
    ASSERT_STR_EQ(job, "magpie-blocking");
    return 0;
}

static int loop_main(void *arg)
{
    (void)arg;
    char name[16];
    thread_name(name);
    ASSERT_STR_EQ(name, MAIN_NAME);
    ASSERT_UEQ(threads_named("magpie-monitor"), 0); /* none in loop mode */
    return 0;
}

int main(void)
{
    ASSERT_EQ(pthread_setname_np(pthread_self(), MAIN_NAME), 0);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = WORKERS;
    cfg.debug = true;
    test_run_cfg(&cfg, multi_main, NULL);
    char name[16];
    thread_name(name);
    ASSERT_STR_EQ(name, MAIN_NAME); /* the caller's, unchanged */
    test_run(1, loop_main, NULL);
    printf("ok\n");
    return 0;
}
