/*
 * test/api_outputs.c - a call that rejects its arguments leaves its outputs
 * untouched: each output below starts as a sentinel and must still hold it
 * after the call failed.
 */
#include "test.h"

#define SENTINEL_INT 0x5a5a5a5a
#define SENTINEL_PTR ((void *)(uintptr_t)0x5a5a5a5a)

static int returns_zero(void *arg)
{
    (void)arg;
    return 0;
}

/* Outside any runtime: the calls that need one, or that get bad arguments. */
static void outside_a_runtime(void)
{
    mag_metrics_t m;
    memset(&m, 0xab, sizeof m);
    mag_metrics_t copy = m;
    ASSERT_EQ(mag_metrics(NULL, &m), -EINVAL); /* no runtime here */
    ASSERT_EQ(memcmp(&m, &copy, sizeof m), 0);

    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = MAG_MAX_WORKERS + 1;
    mag_runtime_t *rt = SENTINEL_PTR;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), -EINVAL);
    ASSERT_PTR_EQ(rt, SENTINEL_PTR);

    int status = SENTINEL_INT;
    ASSERT_EQ(mag_run(NULL, NULL, NULL, &status), -EINVAL);
    ASSERT_EQ(status, SENTINEL_INT);
    ASSERT_EQ(mag_run(&cfg, returns_zero, NULL, &status), -EINVAL);
    ASSERT_EQ(status, SENTINEL_INT);

    mag_process_t *p = SENTINEL_PTR;
    ASSERT_EQ(mag_process_spawn(&p, NULL, NULL), -EINVAL);
    ASSERT_PTR_EQ(p, SENTINEL_PTR);
    const char *no_program[] = {NULL};
    ASSERT_EQ(mag_process_spawn(&p, no_program, NULL), -EINVAL);
    ASSERT_PTR_EQ(p, SENTINEL_PTR);

    ASSERT_EQ(mag_join(NULL, &status), -EINVAL);
    ASSERT_EQ(status, SENTINEL_INT);
}

static int inside_a_task(void *arg)
{
    (void)arg;
    int status = SENTINEL_INT;

    mag_task_t *t = SENTINEL_PTR;
    ASSERT_EQ(mag_spawn_ex(&t, NULL, NULL, NULL), -EINVAL);
    ASSERT_PTR_EQ(t, SENTINEL_PTR);
    mag_spawn_opts_t tiny = {.stack_size = 1};
    ASSERT_EQ(mag_spawn_ex(&t, returns_zero, NULL, &tiny), -EINVAL);
    ASSERT_PTR_EQ(t, SENTINEL_PTR);

    ASSERT_EQ(mag_wait_for(NULL, NULL, MAG_MS, &status), -EINVAL);
    ASSERT_EQ(status, SENTINEL_INT);
    ASSERT_EQ(mag_run_blocking(NULL, NULL, &status), -EINVAL);
    ASSERT_EQ(status, SENTINEL_INT);
    ASSERT_EQ(mag_group_next(NULL, &status), -EINVAL);
    ASSERT_EQ(status, SENTINEL_INT);

    void *out = SENTINEL_PTR;
    size_t out_len = SENTINEL_INT;
    int rc = mag_proc_call(NULL, "x", 1, &out, &out_len);
    ASSERT_TRUE(rc == -EINVAL || rc == -ENXIO);
    ASSERT_PTR_EQ(out, SENTINEL_PTR);
    ASSERT_UEQ(out_len, SENTINEL_INT);

    int elem = SENTINEL_INT;
    ASSERT_EQ(mag_chan_recv(NULL, &elem), -EINVAL);
    ASSERT_EQ(mag_chan_try_recv(NULL, &elem), -EINVAL);
    ASSERT_EQ(elem, SENTINEL_INT);
    uint64_t missed = SENTINEL_INT;
    ASSERT_EQ(mag_bcast_try_recv(NULL, &elem, &missed), -EINVAL);
    ASSERT_EQ(elem, SENTINEL_INT);
    ASSERT_UEQ(missed, SENTINEL_INT);

    mag_metrics_t m;
    memset(&m, 0xab, sizeof m);
    mag_metrics_t copy = m;
    ASSERT_EQ(mag_metrics(mag_runtime_current(), NULL), -EINVAL);
    ASSERT_EQ(memcmp(&m, &copy, sizeof m), 0);
    ASSERT_EQ(mag_metrics(NULL, &m), 0); /* the task's runtime: a real snapshot */
    ASSERT_GE(m.nworkers, 1);
    mag_metrics_free(&m);
    return 0;
}

int main(void)
{
    outside_a_runtime();
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 2;
    test_run_cfg(&cfg, inside_a_task, NULL);
    puts("ok");
    return 0;
}
