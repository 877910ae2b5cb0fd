/* blocking_io: calls that block (a slow library call, getaddrinfo) wrapped
 * in mag_run_blocking (asyncio's run_in_executor, tokio's spawn_blocking)
 * run on the blocking pool's threads, while a heartbeat task keeps ticking
 * on the one worker thread of loop mode. Eight slow calls from eight tasks
 * overlap instead of taking turns.
 *
 *   blocking_io */
#include <errno.h>
#include <magpie.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Stands in for a blocking client library (a database driver, say). */
static int slow_query(void *arg)
{
    usleep(300 * 1000);
    return (int)(intptr_t)arg * 10;
}

static int lookup(void *arg)
{
    struct addrinfo *res = NULL, hints = {.ai_socktype = SOCK_STREAM};
    int e = getaddrinfo((const char *)arg, "80", &hints, &res);
    if (res)
        freeaddrinfo(res);
    return e == 0 ? 0 : -ENOENT;
}

static int heartbeat(void *arg)
{
    int *beats = arg;
    while (mag_sleep(50 * MAG_MS) == 0)
        (*beats)++;
    return 0; /* cancelled */
}

static int client(void *arg)
{
    int result = 0;
    int rc = mag_run_blocking(slow_query, arg, &result); /* suspends this task only */
    return rc < 0 ? rc : result;
}

static int app(void *arg)
{
    (void)arg;
    int beats = 0, status = 0;
    mag_task_t *hb = mag_spawn(heartbeat, &beats);

    uint64_t t0 = mag_now();
    mag_run_blocking(lookup, "localhost", &status);
    printf("getaddrinfo(localhost): %s, %.1f ms\n", status ? "failed" : "ok",
           (mag_now() - t0) / 1e6);

    t0 = mag_now();
    mag_group_t *g = mag_group_create(0);
    for (int i = 1; i <= 8; i++)
        mag_group_spawn(g, client, (void *)(intptr_t)i);
    int sum = 0, id;
    while ((id = mag_group_next(g, &status)) >= 0)
        sum += status;
    mag_group_destroy(g);
    printf("8 slow calls of 300 ms each: %.0f ms in all (sum of results %d)\n",
           (mag_now() - t0) / 1e6, sum);

    mag_cancel(hb);
    mag_join(hb, NULL);
    printf("the heartbeat ticked %d times meanwhile: the worker never blocked\n", beats);
    return beats > 0 ? 0 : -EAGAIN;
}

int main(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 1; /* loop mode: one thread runs every task */
    int status = 0, rc = mag_run(&cfg, app, NULL, &status);
    if (rc < 0 || status < 0) {
        fprintf(stderr, "blocking_io: %s\n", strerror(rc < 0 ? -rc : -status));
        return 1;
    }
    return 0;
}
