/* The ring contract: a ring without IORING_FEAT_NODROP or without
 * IORING_FEAT_EXT_ARG (kernels before 5.11) refuses to start with -ENOSYS,
 * in loop mode and with workers, and no task runs; a submission queue of 1,
 * 2 or 4 entries under a burst of operations never spins and loses nothing;
 * without IORING_REGISTER_SYNC_CANCEL (before 6.0) a cancel for a busy
 * worker's ring still ends the read.
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

/* ---- without IORING_REGISTER_SYNC_CANCEL (before Linux 6.0) ---------------
 * A cancel for a ring whose owner is inside a task then waits in that
 * worker's mailbox until the task suspends: the read still ends cancelled,
 * and nothing hangs. */

#define BUSY_NS (100 * MAG_MS)

static int pipe_fds[2];
static _Atomic int busy_started;

static int busy(void *arg)
{
    atomic_store(&busy_started, 1);
    uint64_t until = mag_now() + BUSY_NS;
    while (mag_now() < until)
        ;
    return 0;
}

static int cancelled_reader(void *arg)
{
    /* The busy task goes to this worker's LIFO slot and runs as soon as
     * the read parks this task: the read is on this worker's ring. */
    mag_task_t *b = mag_spawn(busy, NULL);
    ASSERT_PTR_NE(b, NULL);
    char c;
    ASSERT_EQ(mag_read(pipe_fds[0], &c, 1, -1), -ECANCELED);
    mag_detach(b);
    return 0;
}

static int no_sync_cancel_main(void *arg)
{
    atomic_store(&busy_started, 0);
    ASSERT_EQ(pipe(pipe_fds), 0);
    mag_task_t *r = mag_spawn(cancelled_reader, NULL);
    ASSERT_PTR_NE(r, NULL);
    while (!atomic_load(&busy_started))
        ASSERT_EQ(mag_sleep(MAG_MS), 0);
    ASSERT_EQ(mag_sleep(5 * MAG_MS), 0);
    mag_cancel(r);
    ASSERT_EQ(mag_join(r, NULL), 0);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return 0;
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
    if (n >= 2) { /* last: the switch stays on for the process */
        atomic_store(&mag__ring_no_sync_cancel, true);
        for (int round = 0; round < 3; round++)
            test_run(n, no_sync_cancel_main, NULL);
    }
    return 0;
}
