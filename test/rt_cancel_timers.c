/* Many sleeping tasks cancelled at once, from two tasks, while their timers
 * sit on the wheels of other workers and some of them are firing: every sleep
 * ends exactly once, either cancelled (-ECANCELED) or fired no earlier than
 * asked; a sleep of an hour is always cancelled; a second round on the same
 * runtime (the wheels' entries reused) behaves the same; and once all are
 * joined and the workers have looked at their wheels again, no timer is left
 * armed. */
#include "test/test.h"

#include <stdatomic.h>
#include <stdlib.h>

#define SHORT_MAX_MS 30 /* the short sleeps end around the cancels */

typedef struct sleeper {
    mag_task_t *handle;
    uint64_t sleep_ns;
} sleeper_t;

static _Atomic size_t started;

/* 0: cancelled; 1: fired on time; negative: what went wrong. */
static int sleep_once(void *arg)
{
    sleeper_t *s = arg;
    atomic_fetch_add_explicit(&started, 1, memory_order_relaxed);
    uint64_t t0 = mag_now();
    int rc = mag_sleep(s->sleep_ns);
    uint64_t slept = mag_now() - t0;
    if (rc == -ECANCELED)
        return 0;
    if (rc != 0)
        return rc;
    if (slept < s->sleep_ns)
        return -1001; /* fired early */
    if (s->sleep_ns >= 3600 * MAG_SEC)
        return -1002; /* an hour's sleep cannot have fired */
    return 1;
}

typedef struct range {
    sleeper_t *s;
    size_t from, to;
} range_t;

static int cancel_range(void *arg)
{
    range_t *r = arg;
    for (size_t i = r->from; i < r->to; i++)
        mag_cancel(r->s[i].handle);
    return 0;
}

static uint64_t timers_armed(void)
{
    mag_metrics_t m = { 0 };
    ASSERT_EQ(mag_metrics(NULL, &m), 0);
    uint64_t n = m.total.timers;
    mag_metrics_free(&m);
    return n;
}

static void one_round(size_t n)
{
    sleeper_t *s = calloc(n, sizeof *s);
    ASSERT_TRUE(s != NULL);
    atomic_store(&started, 0);
    for (size_t i = 0; i < n; i++) {
        /* Every other one sleeps an hour; the rest end within a few ms of
         * the cancels, so that expiries and cancels meet. */
        s[i].sleep_ns = i % 2 ? 3600 * MAG_SEC : (uint64_t)(1 + rand() % SHORT_MAX_MS) * MAG_MS;
        s[i].handle = mag_spawn(sleep_once, &s[i]);
        ASSERT_TRUE(s[i].handle != NULL);
    }
    while (atomic_load_explicit(&started, memory_order_relaxed) < n)
        mag_sleep(MAG_MS);
    mag_sleep(2 * MAG_MS); /* the last ones get from their count to their park */

    /* Two cancellers, each on half, racing each other and the expiries;
     * the woken tasks run wherever they are queued and disarm there. */
    range_t halves[2] = { { s, 0, n / 2 }, { s, n / 2, n } };
    mag_task_t *helper = mag_spawn(cancel_range, &halves[1]);
    ASSERT_TRUE(helper != NULL);
    cancel_range(&halves[0]);
    ASSERT_EQ(mag_join(helper, NULL), 0);

    size_t cancelled = 0, fired = 0;
    for (size_t i = 0; i < n; i++) {
        int st = -1;
        ASSERT_EQ(mag_join(s[i].handle, &st), 0);
        if (st < 0)
            TEST_FAIL("sleeper %zu of %zu ns ended with %d", i, (size_t)s[i].sleep_ns, st);
        cancelled += st == 0;
        fired += st == 1;
    }
    ASSERT_UEQ(cancelled + fired, n);
    ASSERT_GE(cancelled, n / 2); /* the hour-long half, at least */
    printf("%zu sleepers: %zu cancelled, %zu fired\n", n, cancelled, fired);
    free(s);
}

static int main_task(void *arg)
{
    size_t n = TEST_SCALE(20000);
    one_round(n);
    one_round(n);
    /* The armed-timer gauge counts a cancelled timer off as soon as its
     * disarm wins; a short sleep of ours lets every worker finish what it
     * was doing. (The entries themselves go back at the wheel's next locked
     * call: an arm, a disarm of its own, an expiry.) */
    uint64_t give_up = mag_now() + 20 * MAG_SEC;
    uint64_t left;
    while ((left = timers_armed()) != 0) {
        if (mag_now() > give_up)
            TEST_FAIL("%llu timers still armed after every sleeper was joined",
                      (unsigned long long)left);
        mag_sleep(MAG_MS);
    }
    return 0;
}

int main(void)
{
    unsigned modes[] = { 2, test_workers(4), 1 };
    for (unsigned m = 0; m < 3; m++)
        test_run(modes[m], main_task, NULL);
    return 0;
}
