/* stream_serve_churn: 5,000 connect/echo/close cycles at 2 workers through a
 * mag_serve handler that wraps its descriptor in a borrowed stream, from
 * several client tasks and plain threads at once. Every echo must come back
 * byte-exact and every connection end cleanly: a descriptor closed twice (by
 * the stream and again by mag_serve) would hit another connection's fd and
 * reset or starve it. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test/test.h"

#define CLIENT_TASKS 6
#define CLIENT_THREADS 2
#define CLIENTS (CLIENT_TASKS + CLIENT_THREADS)

typedef struct churn {
    /* Stored by the server task (release), polled by the main task
     * (acquire): the clients start after it is seen. */
    _Atomic uint16_t port;
    int cycles_each;
    /* Relaxed counters, read after the joins that order them. */
    _Atomic int handler_errors;
    _Atomic int served;
    _Atomic int failures;
} churn_t;

/* Echoes by parsing in place: whatever is buffered goes back as it is. */
static int echo_handler(int fd, void *ctx)
{
    churn_t *c = ctx;
    mag_stream_t *s = mag_stream_new_ex(fd, 0, MAG_STREAM_BORROW);
    if (!s) {
        atomic_fetch_add_explicit(&c->handler_errors, 1, memory_order_relaxed);
        return -ENOMEM;
    }
    ssize_t n;
    const char *p;
    size_t len;
    int rc = 0;
    while ((n = mag_stream_peek(s, &p, &len)) > 0) {
        if (mag_stream_write(s, p, len) != (ssize_t)len || mag_stream_consume(s, len) != 0 ||
            mag_stream_flush(s) != 0) {
            rc = -EIO;
            break;
        }
    }
    if (n < 0 && n != -ECANCELED)
        rc = (int)n;
    if (mag_stream_close(s) != 0 && rc == 0)
        rc = -EIO;
    if (rc)
        atomic_fetch_add_explicit(&c->handler_errors, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->served, 1, memory_order_relaxed);
    return rc;
}

static int server_task(void *arg)
{
    churn_t *c = arg;
    int lfd = mag_tcp_listen("127.0.0.1", 0, 0);
    ASSERT_GE(lfd, 0);
    atomic_store_explicit(&c->port, (uint16_t)mag_local_port(lfd), memory_order_release);
    int rc = mag_serve(lfd, echo_handler, c);
    ASSERT_EQ(mag_close(lfd), 0);
    return rc;
}

/* One cycle: connect, send a message of a length that varies, read the echo
 * back whole, half-close and see the server's clean end. 0 or a reason. */
static int cycle(churn_t *c, int client, int i)
{
    char msg[3000], got[3000];
    int head = snprintf(msg, sizeof msg, "client %d cycle %d:", client, i);
    size_t n = (size_t)head + (size_t)((i * 37 + client * 11) % 2500);
    for (size_t k = (size_t)head; k < n; k++)
        msg[k] = (char)('A' + (k + (size_t)i) % 58);
    int fd = mag_tcp_connect("127.0.0.1", atomic_load_explicit(&c->port, memory_order_relaxed));
    if (fd < 0)
        return 1;
    int bad = 0;
    if (mag_send_all(fd, msg, n, 0) != (ssize_t)n)
        bad = 2;
    size_t have = 0;
    while (!bad && have < n) {
        ssize_t r = mag_recv(fd, got + have, sizeof got - have, 0);
        if (r <= 0)
            bad = 3;
        else
            have += (size_t)r;
    }
    if (!bad && (have != n || memcmp(got, msg, n) != 0))
        bad = 4;
    if (!bad && shutdown(fd, SHUT_WR) != 0)
        bad = 5;
    if (!bad && mag_recv(fd, got, sizeof got, 0) != 0)
        bad = 6; /* the server ends the connection, sending nothing more */
    if (mag_close(fd) != 0 && !bad)
        bad = 7;
    return bad;
}

typedef struct client {
    churn_t *c;
    int id;
} client_t;

static void run_client(client_t *cl)
{
    for (int i = 0; i < cl->c->cycles_each; i++) {
        int why = cycle(cl->c, cl->id, i);
        if (why) {
            fprintf(stderr, "client %d cycle %d failed (%d)\n", cl->id, i, why);
            atomic_fetch_add_explicit(&cl->c->failures, 1, memory_order_relaxed);
        }
    }
}

static int client_task(void *arg)
{
    run_client(arg);
    return 0;
}

static void *client_thread(void *arg)
{
    run_client(arg);
    return NULL;
}

static int main_task(void *arg)
{
    (void)arg;
    churn_t c = {.cycles_each = TEST_SCALE(5000) / CLIENTS};
    mag_task_t *srv = mag_spawn(server_task, &c);
    ASSERT_TRUE(srv != NULL);
    while (atomic_load_explicit(&c.port, memory_order_acquire) == 0)
        ASSERT_EQ(mag_sleep(MAG_MS), 0);

    client_t cl[CLIENTS];
    mag_task_t *tasks[CLIENT_TASKS];
    pthread_t threads[CLIENT_THREADS];
    for (int i = 0; i < CLIENTS; i++)
        cl[i] = (client_t){.c = &c, .id = i};
    for (int i = 0; i < CLIENT_THREADS; i++)
        ASSERT_EQ(pthread_create(&threads[i], NULL, client_thread, &cl[CLIENT_TASKS + i]), 0);
    for (int i = 0; i < CLIENT_TASKS; i++) {
        tasks[i] = mag_spawn(client_task, &cl[i]);
        ASSERT_TRUE(tasks[i] != NULL);
    }
    for (int i = 0; i < CLIENT_TASKS; i++)
        ASSERT_EQ(mag_join(tasks[i], NULL), 0);
    for (int i = 0; i < CLIENT_THREADS; i++)
        ASSERT_EQ(pthread_join(threads[i], NULL), 0);

    mag_cancel(srv);
    int st = 0;
    ASSERT_EQ(mag_join(srv, &st), 0);
    ASSERT_EQ(st, -ECANCELED);
    int total = c.cycles_each * CLIENTS;
    ASSERT_EQ(atomic_load(&c.failures), 0);
    ASSERT_EQ(atomic_load(&c.served), total);
    ASSERT_EQ(atomic_load(&c.handler_errors), 0);
    return 0;
}

int main(void)
{
    test_run(test_workers(2), main_task, NULL);
    return 0;
}
