/* event_bus: one event fanned out to several handlers. Each handler task has
 * its own subscription to a broadcast channel, so every handler sees every
 * event, in order; emitting never waits for slow handlers (a handler that
 * falls more than the channel's capacity behind is told how many it missed). */
#include <errno.h>
#include <magpie.h>
#include <stdio.h>
#include <string.h>

typedef struct event {
    char topic[24];
    int user;
} event_t;

typedef struct handler {
    const char *name;
    mag_bcast_sub_t *sub;
    int seen;
} handler_t;

static int handle(void *arg)
{
    handler_t *h = arg;
    for (;;) {
        event_t ev;
        uint64_t missed;
        int rc = mag_bcast_recv(h->sub, &ev, &missed);
        if (rc == -EPIPE)
            return 0; /* bus closed and drained */
        if (rc == -EOVERFLOW) {
            printf("[%s] missed %llu events\n", h->name, (unsigned long long)missed);
            continue;
        }
        if (rc < 0)
            return rc;
        h->seen++;
        printf("[%s] %s user=%d\n", h->name, ev.topic, ev.user);
    }
}

static int app(void *arg)
{
    (void)arg;
    mag_bcast_t *bus = mag_bcast_create(sizeof(event_t), 16);
    handler_t hs[] = {{"audit", NULL, 0}, {"mailer", NULL, 0}, {"metrics", NULL, 0}};
    enum { NH = sizeof hs / sizeof hs[0] };
    mag_task_t *t[NH];
    for (int i = 0; i < NH; i++) {
        hs[i].sub = mag_bcast_subscribe(bus); /* before emitting: sees everything */
        t[i] = mag_spawn(handle, &hs[i]);
    }
    const char *topics[] = {"user.created", "user.login", "user.deleted"};
    for (int i = 0; i < 3; i++) {
        event_t ev = {.user = 40 + i};
        strncpy(ev.topic, topics[i], sizeof ev.topic - 1);
        int n = mag_bcast_send(bus, &ev);
        printf("emit %s -> %d handlers\n", ev.topic, n);
        mag_sleep(MAG_MS);
    }
    mag_bcast_close(bus);
    int ok = 1;
    for (int i = 0; i < NH; i++) {
        mag_join(t[i], NULL);
        ok &= hs[i].seen == 3;
        mag_bcast_unsubscribe(hs[i].sub);
    }
    mag_bcast_destroy(bus);
    printf("every handler saw every event: %s\n", ok ? "yes" : "no");
    return ok ? 0 : 1;
}

int main(void)
{
    int status = 1;
    if (mag_run(NULL, app, NULL, &status) < 0)
        return 1;
    return status;
}
