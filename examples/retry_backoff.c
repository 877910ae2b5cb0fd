/* retry_backoff: resilience to a flaky call. The call fails with -EAGAIN a
 * few times before it succeeds; the caller retries with exponential back-off
 * (10, 20, 40 ... ms, capped, with jitter) under an overall deadline, and
 * gives up on errors that are not worth retrying. */
#include <errno.h>
#include <magpie.h>
#include <stdio.h>
#include <string.h>

static int attempts_needed = 4, attempts_made;

/* Stands for a request to an unreliable service. */
static int flaky_call(int *reply)
{
    mag_sleep(MAG_MS); /* the round trip */
    if (++attempts_made < attempts_needed)
        return -EAGAIN; /* transient: try again */
    *reply = 42;
    return 0;
}

static bool transient(int err)
{
    return err == -EAGAIN || err == -ECONNRESET || err == -ETIMEDOUT;
}

/* Retries until success, a permanent error, or the deadline. */
static int call_with_retry(int *reply, uint64_t budget_ns)
{
    uint64_t token = mag_deadline_push(mag_now() + budget_ns);
    uint64_t delay = 10 * MAG_MS, max_delay = 200 * MAG_MS;
    int rc;
    for (int attempt = 1;; attempt++) {
        rc = flaky_call(reply);
        if (rc == 0 || !transient(rc))
            break;
        uint64_t jitter = mag_now() % (delay / 4 + 1);
        printf("attempt %d failed (%s); retrying in %llu ms\n", attempt, strerror(-rc),
               (unsigned long long)((delay + jitter) / MAG_MS));
        rc = mag_sleep(delay + jitter); /* -ETIMEDOUT once the budget is spent */
        if (rc < 0)
            break;
        delay = delay * 2 > max_delay ? max_delay : delay * 2;
    }
    mag_deadline_pop(token);
    return rc;
}

static int app(void *arg)
{
    (void)arg;
    int reply = 0;
    int rc = call_with_retry(&reply, 2 * MAG_SEC);
    if (rc < 0) {
        printf("gave up: %s\n", strerror(-rc));
        return 1;
    }
    printf("succeeded after %d attempts: reply %d\n", attempts_made, reply);

    /* A service that never recovers: the deadline ends the retries. */
    attempts_made = 0;
    attempts_needed = 1000;
    rc = call_with_retry(&reply, 100 * MAG_MS);
    printf("second call: %s after %d attempts\n", rc ? strerror(-rc) : "ok", attempts_made);
    return rc == -ETIMEDOUT ? 0 : 1;
}

int main(void)
{
    int status = 1;
    if (mag_run(NULL, app, NULL, &status) < 0)
        return 1;
    return status;
}
