/* A handle names one task for its life: after the task was joined (or
 * detached and ended), joining the handle returns -ESRCH and cancelling or
 * detaching it does nothing, even when a new task got the same record. */
#include "test/test.h"

#include <stdatomic.h>

#define ROUNDS 3000
/* A handle's low 27 bits name the record (runtime/task_pool.c): two handles
 * that share them are two tasks of one record. */
#define RECORD_BITS(h) ((uintptr_t)(h) & ((1u << 27) - 1))

static int returns_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

/* Yields a few times (so that a late cancel has a live target), then says
 * whether it was cancelled. */
static int checks_cancel(void *arg)
{
    for (int i = 0; i < 3; i++)
        mag_yield();
    return mag_cancelled() ? -ECANCELED : (int)(intptr_t)arg;
}

static _Atomic(mag_task_t *) self_seen;

static int reports_self(void *arg)
{
    atomic_store(&self_seen, mag_self());
    return 0;
}

static _Atomic int detached_done;

static int detached_body(void *arg)
{
    atomic_store(&detached_done, 1);
    return 0;
}

/* A plain thread cancels the stale handles it is given, as fast as it can,
 * while the task spawns new tasks into the same records. */
static _Atomic(mag_task_t *) stale_for_thread;
static _Atomic int thread_stop;
static _Atomic long thread_cancels;

static void *late_canceller(void *arg)
{
    while (!atomic_load(&thread_stop)) {
        mag_task_t *h = atomic_load(&stale_for_thread);
        if (h) {
            mag_cancel(h);
            mag_detach(h);
            atomic_fetch_add(&thread_cancels, 1);
        } else {
            sched_yield();
        }
    }
    return NULL;
}

static int main_task(void *arg)
{
    unsigned reused = 0;
    for (int i = 0; i < ROUNDS; i++) {
        mag_task_t *old = mag_spawn(returns_arg, (void *)(intptr_t)i);
        ASSERT_TRUE(old != NULL);
        int st = -1;
        ASSERT_EQ(mag_join(old, &st), 0);
        ASSERT_EQ(st, i);

        /* The next spawn most likely gets the same record. */
        mag_task_t *fresh = mag_spawn(checks_cancel, (void *)(intptr_t)(i + 1000000));
        ASSERT_TRUE(fresh != NULL);
        ASSERT_PTR_NE(fresh, old); /* a new task, a new handle, whatever the record */
        if (RECORD_BITS(fresh) == RECORD_BITS(old))
            reused++;
        /* Every call on the old handle misses the new task. */
        ASSERT_EQ(mag_join(old, &st), -ESRCH);
        ASSERT_EQ(st, i); /* untouched by the refused join */
        mag_cancel(old);
        mag_detach(old);
        ASSERT_UEQ(mag_task_id(old), 0);
        ASSERT_STR_EQ(mag_task_name(old), "");
        ASSERT_TRUE(mag_task_id(fresh) != 0);
        /* ... and the new one is whole: joinable once, its result intact,
         * never cancelled. */
        ASSERT_EQ(mag_join(fresh, &st), 0);
        ASSERT_EQ(st, i + 1000000);
        ASSERT_EQ(mag_join(fresh, &st), -ESRCH);
    }
    /* Reuse was hot: most rounds handed the old record to the new task. */
    ASSERT_GT(reused, ROUNDS / 2);

    /* A detached task that ended: its handle is stale too. */
    atomic_store(&detached_done, 0);
    mag_task_t *d = mag_spawn(detached_body, NULL);
    ASSERT_TRUE(d != NULL);
    mag_detach(d);
    while (!atomic_load(&detached_done))
        mag_sleep(MAG_MS);
    mag_sleep(5 * MAG_MS); /* past its return and its release */
    mag_task_t *e = mag_spawn(checks_cancel, (void *)(intptr_t)7);
    mag_detach(d);
    mag_cancel(d);
    int st = -1;
    ASSERT_EQ(mag_join(d, &st), -ESRCH);
    ASSERT_EQ(mag_join(e, &st), 0);
    ASSERT_EQ(st, 7);

    /* Detached twice: the second is ignored; the task still runs to its end. */
    atomic_store(&detached_done, 0);
    mag_task_t *twice = mag_spawn(detached_body, NULL);
    mag_detach(twice);
    mag_detach(twice);
    while (!atomic_load(&detached_done))
        mag_sleep(MAG_MS);

    /* mag_self is the handle mag_spawn returned. */
    mag_task_t *s = mag_spawn(reports_self, NULL);
    ASSERT_EQ(mag_join(s, NULL), 0);
    ASSERT_PTR_EQ(atomic_load(&self_seen), s);

    /* A handle of a live detached task still cancels it. */
    mag_task_t *live = mag_spawn(checks_cancel, (void *)(intptr_t)1);
    mag_cancel(live);
    ASSERT_EQ(mag_join(live, &st), 0);
    ASSERT_EQ(st, -ECANCELED);

    /* Late cancels from another thread, racing the reuse of the record. */
    pthread_t th;
    atomic_store(&thread_stop, 0);
    ASSERT_EQ(pthread_create(&th, NULL, late_canceller, NULL), 0);
    uint64_t give_up = mag_now() + 10 * MAG_SEC; /* the thread may be slow to start */
    for (int i = 0; i < ROUNDS / 3 || (atomic_load(&thread_cancels) < 1000 && mag_now() < give_up);
         i++) {
        mag_task_t *gone = mag_spawn(returns_arg, NULL);
        ASSERT_EQ(mag_join(gone, NULL), 0);
        atomic_store(&stale_for_thread, gone);
        mag_task_t *fresh = mag_spawn(checks_cancel, (void *)(intptr_t)i);
        ASSERT_EQ(mag_join(fresh, &st), 0);
        ASSERT_EQ(st, i); /* never cancelled by the stale handle */
    }
    atomic_store(&thread_stop, 1);
    pthread_join(th, NULL);
    long cancels = atomic_load(&thread_cancels);
    ASSERT_GT(cancels, 0);
    return 0;
}

/* Debug mode reports a stale handle. */
static int debug_task(void *arg)
{
    mag_task_t *t = mag_spawn(returns_arg, NULL);
    ASSERT_EQ(mag_join(t, NULL), 0);
    ASSERT_EQ(mag_join(t, NULL), -ESRCH);
    mag_cancel(t);
    mag_detach(t);
    return 0;
}

static void check_debug_reports(void)
{
    char path[] = "/tmp/magpie-stale-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ASSERT_TRUE(saved >= 0);
    ASSERT_TRUE(dup2(fd, STDERR_FILENO) >= 0);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 1;
    cfg.debug = true;
    int st = -1;
    int rc = mag_run(&cfg, debug_task, NULL, &st);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(st, 0);
    char buf[4096] = {0};
    ASSERT_TRUE(pread(fd, buf, sizeof buf - 1, 0) > 0);
    close(fd);
    ASSERT_TRUE(strstr(buf, "mag_join: handle") != NULL);
    ASSERT_TRUE(strstr(buf, "mag_cancel: handle") != NULL);
    ASSERT_TRUE(strstr(buf, "mag_detach: handle") != NULL);
}

int main(void)
{
    for (unsigned w = 1; w <= 2; w++) {
        mag_config_t cfg;
        mag_config_init(&cfg);
        cfg.workers = w;
        test_run_cfg(&cfg, main_task, NULL);
    }
    check_debug_reports();
    return 0;
}
