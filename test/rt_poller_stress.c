/*
 * rt_poller_stress - no lost wake-up while the readiness poller (the first
 * worker) sleeps in the epoll: a 2-worker runtime where many tasks keep
 * making ring-based waits that must wake that worker where it sleeps:
 *   - short mag_sleep()s (timers: the deadline of the epoll wait);
 *   - mag_read() on pipes (the ring, not the epoll) written by plain threads
 *     after a random delay, each answered with a mag_write() on a second
 *     pipe that the thread blocks on;
 *   - ping-pong with plain threads through mag_sem (foreign wakes: the
 *     inject queue and a worker's eventfd doorbell), with spawns from those
 *     threads now and then;
 * while socket tasks keep the epoll live: echo pairs of tasks, and bytes a
 * plain thread writes into sockets while the runtime parks.
 * Every wait has a 10 s deadline (a lost wake-up fails with -ETIMEDOUT
 * instead of hanging), and a watchdog aborts the whole run after
 * STRESS_TIMEOUT seconds (default 300) with each group's progress.
 * STRESS_ROUNDS (default 2000) scales the run, STRESS_RING_ENTRIES sets the
 * rings' size.
 */
#include "test.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define SLEEPERS 16
#define PIPERS 8
#define GAMES 4
#define ECHO_PAIRS 8
#define SOCK_WRITERS 2
#define WAIT_LIMIT (10 * MAG_SEC)

static int rounds;
static mag_runtime_t *the_rt;

/* Progress per group, for the watchdog's report. */
static _Atomic long prog_sleep, prog_pipe, prog_game, prog_echo, prog_sock;

static void nap_us(unsigned us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

static unsigned rnd(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 16;
}

/* ---- short sleeps ---------------------------------------------------------- */

static int sleeper(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < rounds; i++) {
        uint64_t want = (rnd(&seed) % 300) * MAG_US;
        uint64_t t0 = mag_now();
        ASSERT_EQ(mag_sleep(want), 0);
        uint64_t late = mag_now() - t0;
        /* A timer missed by a poller asleep in the epoll shows as a sleep
         * of seconds (the next unrelated wake), not of microseconds. */
        if (late > want + 2 * MAG_SEC)
            TEST_FAIL("mag_sleep(%llu us) took %llu us", (unsigned long long)(want / MAG_US),
                      (unsigned long long)(late / MAG_US));
        atomic_fetch_add_explicit(&prog_sleep, 1, memory_order_relaxed);
    }
    return 0;
}

/* ---- pipe reads on the ring, written by plain threads ---------------------- */

typedef struct piper {
    int in[2];  /* thread -> task */
    int ack[2]; /* task -> thread */
    unsigned seed;
} piper_t;

static piper_t pipers[PIPERS];

static void *pipe_thread(void *arg)
{
    piper_t *p = arg;
    for (int i = 0; i < rounds; i++) {
        unsigned d = rnd(&p->seed) % 250;
        if (d > 50)
            nap_us(d - 50); /* mostly after the workers parked, sometimes not */
        char c = (char)i;
        ASSERT_EQ(write(p->in[1], &c, 1), 1);
        char r;
        ASSERT_EQ(read(p->ack[0], &r, 1), 1); /* blocks this thread */
        ASSERT_EQ(r, (char)i);
    }
    return NULL;
}

static int pipe_task(void *arg)
{
    piper_t *p = arg;
    for (int i = 0; i < rounds; i++) {
        char c;
        uint64_t tok = mag_deadline_push(mag_now() + WAIT_LIMIT);
        ssize_t n = mag_read(p->in[0], &c, 1, -1);
        mag_deadline_pop(tok);
        ASSERT_EQ(n, 1);
        ASSERT_EQ(c, (char)i);
        ASSERT_EQ(mag_write(p->ack[1], &c, 1, -1), 1);
        if (i % 97 == 0)
            ASSERT_EQ(mag_sleep(50 * MAG_US), 0);
        atomic_fetch_add_explicit(&prog_pipe, 1, memory_order_relaxed);
    }
    return 0;
}

/* ---- foreign wakes: ping-pong with plain threads --------------------------- */

typedef struct game {
    mag_sem_t ping, pong;
    unsigned seed;
} game_t;

static game_t games[GAMES];
static _Atomic int tiny_ran;

static int tiny(void *arg)
{
    (void)arg;
    atomic_fetch_add(&tiny_ran, 1);
    return 0;
}

static int game_task(void *arg)
{
    game_t *g = arg;
    for (int i = 0; i < rounds; i++) {
        uint64_t tok = mag_deadline_push(mag_now() + WAIT_LIMIT);
        int rc = mag_sem_acquire(&g->ping);
        mag_deadline_pop(tok);
        ASSERT_EQ(rc, 0);
        ASSERT_EQ(mag_sem_release(&g->pong), 0);
        atomic_fetch_add_explicit(&prog_game, 1, memory_order_relaxed);
    }
    return 0;
}

static void *game_thread(void *arg)
{
    game_t *g = arg;
    for (int i = 0; i < rounds; i++) {
        unsigned d = rnd(&g->seed) % 120;
        if (d > 40)
            nap_us(d - 40);
        ASSERT_EQ(mag_sem_release(&g->ping), 0);
        ASSERT_EQ(mag_sem_acquire(&g->pong), 0); /* blocks this thread */
        if (i % 64 == 0) {
            mag_task_t *t = mag_runtime_spawn(the_rt, tiny, NULL);
            ASSERT_TRUE(t != NULL);
            mag_detach(t);
        }
    }
    return NULL;
}

/* ---- sockets: the epoll stays live ----------------------------------------- */

static int echo_server(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[256];
    ssize_t n;
    while ((n = mag_recv(fd, buf, sizeof buf, 0)) > 0)
        ASSERT_EQ(mag_send_all(fd, buf, (size_t)n, 0), n);
    ASSERT_EQ(n, 0);
    return 0;
}

static int echo_client(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char out[200], in[200];
    for (int i = 0; i < rounds; i++) {
        size_t len = 1 + (size_t)((fd * 7 + i * 13) % (int)sizeof out);
        for (size_t k = 0; k < len; k++)
            out[k] = (char)(fd + i + (int)k);
        ASSERT_EQ(mag_send_all(fd, out, len, 0), (ssize_t)len);
        size_t got = 0;
        while (got < len) {
            uint64_t tok = mag_deadline_push(mag_now() + WAIT_LIMIT);
            ssize_t n = mag_recv(fd, in + got, len - got, 0);
            mag_deadline_pop(tok);
            ASSERT_TRUE(n > 0);
            got += (size_t)n;
        }
        ASSERT_TRUE(memcmp(in, out, len) == 0);
        if (i % 50 == 0)
            ASSERT_EQ(mag_sleep(100 * MAG_US), 0);
        atomic_fetch_add_explicit(&prog_echo, 1, memory_order_relaxed);
    }
    return 0;
}

typedef struct sockw {
    int sv[2];
    unsigned seed;
} sockw_t;

static sockw_t sockws[SOCK_WRITERS];

static void *sock_thread(void *arg)
{
    sockw_t *s = arg;
    for (int i = 0; i < rounds; i++) {
        nap_us(rnd(&s->seed) % 200);
        char c = (char)i;
        ASSERT_EQ(write(s->sv[1], &c, 1), 1);
        char r;
        ASSERT_EQ(read(s->sv[1], &r, 1), 1);
        ASSERT_EQ(r, c);
    }
    return NULL;
}

static int sock_task(void *arg)
{
    sockw_t *s = arg;
    for (int i = 0; i < rounds; i++) {
        char c;
        uint64_t tok = mag_deadline_push(mag_now() + WAIT_LIMIT);
        ssize_t n = mag_recv(s->sv[0], &c, 1, 0);
        mag_deadline_pop(tok);
        ASSERT_EQ(n, 1);
        ASSERT_EQ(c, (char)i);
        ASSERT_EQ(mag_send(s->sv[0], &c, 1, 0), 1);
        atomic_fetch_add_explicit(&prog_sock, 1, memory_order_relaxed);
    }
    return 0;
}

/* ---- the run ---------------------------------------------------------------- */

static int main_task(void *arg)
{
    (void)arg;
    mag_task_t *tasks[128];
    int nt = 0;
    pthread_t threads[64];
    int nth = 0;

    int echo_sv[ECHO_PAIRS][2];
    mag_task_t *servers[ECHO_PAIRS];
    for (int i = 0; i < ECHO_PAIRS; i++) {
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, echo_sv[i]), 0);
        ASSERT_TRUE((servers[i] = mag_spawn(echo_server, (void *)(intptr_t)echo_sv[i][0])) != NULL);
        ASSERT_TRUE((tasks[nt++] = mag_spawn(echo_client, (void *)(intptr_t)echo_sv[i][1])) !=
                    NULL);
    }
    for (int i = 0; i < SOCK_WRITERS; i++) {
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockws[i].sv), 0);
        sockws[i].seed = 31u * (unsigned)(i + 1);
        ASSERT_TRUE((tasks[nt++] = mag_spawn(sock_task, &sockws[i])) != NULL);
        ASSERT_EQ(pthread_create(&threads[nth++], NULL, sock_thread, &sockws[i]), 0);
    }
    for (int i = 0; i < SLEEPERS; i++)
        ASSERT_TRUE((tasks[nt++] = mag_spawn(sleeper, (void *)(uintptr_t)(7919u * (i + 1)))) !=
                    NULL);
    for (int i = 0; i < PIPERS; i++) {
        ASSERT_EQ(pipe2(pipers[i].in, O_CLOEXEC), 0);
        ASSERT_EQ(pipe2(pipers[i].ack, O_CLOEXEC), 0);
        pipers[i].seed = 104729u * (unsigned)(i + 1);
        ASSERT_TRUE((tasks[nt++] = mag_spawn(pipe_task, &pipers[i])) != NULL);
        ASSERT_EQ(pthread_create(&threads[nth++], NULL, pipe_thread, &pipers[i]), 0);
    }
    for (int i = 0; i < GAMES; i++) {
        ASSERT_EQ(mag_sem_init(&games[i].ping, 0), 0);
        ASSERT_EQ(mag_sem_init(&games[i].pong, 0), 0);
        games[i].seed = 6151u * (unsigned)(i + 1);
        ASSERT_TRUE((tasks[nt++] = mag_spawn(game_task, &games[i])) != NULL);
        ASSERT_EQ(pthread_create(&threads[nth++], NULL, game_thread, &games[i]), 0);
    }
    for (int i = 0; i < nt; i++) {
        int st = -1;
        ASSERT_EQ(mag_join(tasks[i], &st), 0);
        ASSERT_EQ(st, 0);
    }
    for (int i = 0; i < nth; i++)
        ASSERT_EQ(pthread_join(threads[i], NULL), 0);
    for (int i = 0; i < ECHO_PAIRS; i++) {
        ASSERT_EQ(mag_shutdown(echo_sv[i][1], SHUT_WR), 0);
        ASSERT_EQ(mag_join(servers[i], NULL), 0);
        mag_close(echo_sv[i][0]);
        mag_close(echo_sv[i][1]);
    }
    for (int i = 0; i < SOCK_WRITERS; i++) {
        mag_close(sockws[i].sv[0]);
        mag_close(sockws[i].sv[1]);
    }
    for (int i = 0; i < PIPERS; i++) {
        close(pipers[i].in[0]);
        close(pipers[i].in[1]);
        close(pipers[i].ack[0]);
        close(pipers[i].ack[1]);
    }
    return 0;
}

static int timeout_s;

static void *watchdog(void *arg)
{
    (void)arg;
    for (int s = 0; s < timeout_s; s++)
        nap_us(1000000);
    fprintf(stderr,
            "stress: no end after %d s (a lost wake-up?): sleeps %ld/%d pipes %ld/%d games "
            "%ld/%d echo %ld/%d sockets %ld/%d\n",
            timeout_s, atomic_load(&prog_sleep), SLEEPERS * rounds, atomic_load(&prog_pipe),
            PIPERS * rounds, atomic_load(&prog_game), GAMES * rounds, atomic_load(&prog_echo),
            ECHO_PAIRS * rounds, atomic_load(&prog_sock), SOCK_WRITERS * rounds);
    _exit(2);
}

int main(void)
{
    const char *e = getenv("STRESS_ROUNDS");
    rounds = e && *e ? atoi(e) : 2000;
    e = getenv("STRESS_TIMEOUT");
    timeout_s = e && *e ? atoi(e) : 300;
    pthread_t wd;
    ASSERT_EQ(pthread_create(&wd, NULL, watchdog, NULL), 0);
    pthread_detach(wd);

    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    e = getenv("STRESS_RING_ENTRIES");
    if (e && *e)
        cfg.ring_entries = (unsigned)atoi(e);
    ASSERT_EQ(mag_runtime_create(&cfg, &the_rt), 0);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    mag_task_t *m = mag_runtime_spawn(the_rt, main_task, NULL);
    ASSERT_TRUE(m != NULL);
    int st = -1;
    ASSERT_EQ(mag_join(m, &st), 0);
    ASSERT_EQ(st, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ASSERT_EQ(mag_runtime_shutdown(the_rt), 0);
    printf("stress: passed, %d rounds, %d tiny spawns, %.2f s\n", rounds, atomic_load(&tiny_ran),
           (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
