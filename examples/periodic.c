/* periodic: a task that runs every 50 ms (tokio::time::interval). It sleeps
 * until absolute deadlines (start + k * period) so that the time its work
 * takes does not accumulate as drift, and it stops cleanly when cancelled:
 * mag_sleep_until returns -ECANCELED and the task returns. */
#include <errno.h>
#include <magpie.h>
#include <stdio.h>

#define PERIOD (50 * MAG_MS)

typedef struct ticker {
    int ticks;
    uint64_t worst_late_ns;
} ticker_t;

static int tick_loop(void *arg)
{
    ticker_t *t = arg;
    uint64_t start = mag_now(), next = start;
    for (;;) {
        next += PERIOD;
        int rc = mag_sleep_until(next);
        if (rc == -ECANCELED) {
            printf("ticker: cancelled after %d ticks, cleaning up\n", t->ticks);
            return 0;
        }
        if (rc < 0)
            return rc;
        uint64_t late = mag_now() - next;
        if (late > t->worst_late_ns)
            t->worst_late_ns = late;
        t->ticks++;
        printf("tick %d at +%llu ms\n", t->ticks,
               (unsigned long long)((mag_now() - start) / MAG_MS));
        mag_sleep(5 * MAG_MS); /* the periodic work; does not shift the schedule */
    }
}

static int app(void *arg)
{
    (void)arg;
    ticker_t t = {0, 0};
    mag_task_t *task = mag_spawn(tick_loop, &t);
    if (!task)
        return 1;
    mag_sleep(275 * MAG_MS); /* let it tick five times */
    mag_cancel(task);
    int st;
    mag_join(task, &st);
    printf("%d ticks, latest wake-up %.2f ms after its deadline, ticker returned %d\n", t.ticks,
           (double)t.worst_late_ns / MAG_MS, st);
    return st == 0 && t.ticks >= 3 ? 0 : 1;
}

int main(void)
{
    int status = 1;
    if (mag_run(NULL, app, NULL, &status) < 0)
        return 1;
    return status;
}
