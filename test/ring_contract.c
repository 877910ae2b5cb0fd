/* The ring contract: a ring without IORING_FEAT_NODROP or without
 * IORING_FEAT_EXT_ARG (kernels before 5.11) refuses to start with -ENOSYS,
 * in loop mode and with workers, and no task runs; a submission queue of 1,
 * 2 or 4 entries under a burst of operations never spins and loses nothing.
 * Feature bits are cleared through the ring driver's test hook, so this runs
 * the paths of older kernels on this one. */
#include "test/test.h"

#include <fcntl.h>
#include <liburing.h>

#include "runtime/ring.h"

static int never_runs(void *arg)
{
    TEST_FAIL("a task ran on a ring that should have been refused");
    return 0;
}

static void without_feature(uint32_t feature, unsigned workers)
{
    mag__ring_feature_mask = ~feature;
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    int st = 12345;
    ASSERT_EQ(mag_run(&cfg, never_runs, NULL, &st), -ENOSYS);
    ASSERT_EQ(st, 12345); /* untouched */
    mag__ring_feature_mask = UINT32_MAX;
}

#define BURST_TASKS 48
#define BURST_READS TEST_SCALE(200)

static int zero_fd = -1;

static int reader(void *arg)
{
    char buf[64];
    for (int i = 0; i < BURST_READS; i++) {
        memset(buf, 'x', sizeof buf);
        ASSERT_EQ(mag_read(zero_fd, buf, sizeof buf, -1), (int)sizeof buf);
        for (size_t k = 0; k < sizeof buf; k++)
            if (buf[k] != 0)
                TEST_FAIL("read %d: byte %zu is %d", i, k, buf[k]);
    }
    return 0;
}

static int burst_main(void *arg)
{
    mag_task_t *t[BURST_TASKS];
    /* Spawned in one go: every task prepares its first read before any
     * worker submits, which overfills a tiny SQ. */
    for (int i = 0; i < BURST_TASKS; i++)
        ASSERT_PTR_NE(t[i] = mag_spawn(reader, NULL), NULL);
    for (int i = 0; i < BURST_TASKS; i++) {
        int st = -1;
        ASSERT_EQ(mag_join(t[i], &st), 0);
        ASSERT_EQ(st, 0);
    }
    return 0;
}

static void small_sq(unsigned entries, unsigned workers)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    cfg.ring_entries = entries;
    test_run_cfg(&cfg, burst_main, NULL);
}

int main(void)
{
    unsigned n = test_workers(4);
    without_feature(IORING_FEAT_NODROP, 1);
    without_feature(IORING_FEAT_NODROP, n);
    without_feature(IORING_FEAT_EXT_ARG, 1);
    without_feature(IORING_FEAT_EXT_ARG, n);
    zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(zero_fd, 0);
    for (unsigned e = 1; e <= 4; e *= 2) {
        small_sq(e, 1);
        small_sq(e, n);
    }
    close(zero_fd);
    return 0;
}
