/*
 * sync_bench - magpie's sync and channel micro-benchmarks.
 *
 *   sync_bench [--workers N] [--quick] [name...]
 *
 * One line per result on stdout, `name workers ns_per_op`. With no names,
 * every benchmark runs, in the order of the table below. The shapes and sizes
 * are those of bench/peers/tokio (tokio_bench.rs, after Tokio's own
 * sync_mpsc, sync_semaphore, sync_rwlock and sync_notify benches) and
 * bench/peers/go, so the three print comparable numbers:
 *
 *   ping_pong                  1,000 rounds, each a task that spawns a partner
 *                              and exchanges two one-shot messages with it
 *                              (two capacity-1 channels, created and destroyed
 *                              per round, as Tokio allocates its oneshots);
 *                              the last round notifies the driver. 10 batches
 *                              per measurement; ns per round.
 *   chan_contention_bounded    5 producer tasks x 1,000 messages into one
 *                              consumer (the benchmark task) through a channel
 *                              of capacity 1,000; 20 channels per measurement;
 *                              ns per message.
 *   chan_contention_unbounded  the same through an unbounded channel.
 *   mutex_contention           5 tasks x 10,000 lock / counter++ / unlock;
 *                              ns per lock.
 *   sem_concurrent             5 tasks x 10,000 acquire/release of a semaphore
 *                              of 2 permits; ns per acquire.
 *   rwlock_read_concurrent     5 tasks x 10,000 read locks; ns per lock.
 *   notify_one                 10,000 notify_one / wait hand-offs, each
 *                              acknowledged through a second notify; ns per
 *                              round trip.
 *
 * Repetitions: each benchmark is measured REPS times (5, or 3 with --quick)
 * on one fresh runtime (mag_runtime_create, one mag_runtime_block_on per
 * repetition, mag_runtime_shutdown), and the median is printed. The timed
 * body is the block_on task itself. Only the public API is used.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <magpie.h>

#include "bench/bench.h"

#define REPS_FULL 5
#define REPS_QUICK 3

typedef struct bench_ctx {
    double result; /* ns per op */
    int error;     /* a negative errno when the run failed */
} bench_ctx_t;

static double ns_per(uint64_t start, size_t ops)
{
    return (double)(mag_now() - start) / (double)ops;
}

#define CHECK(ctx, expr)                                                                           \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ < 0) {                                                                             \
            (ctx)->error = rc_;                                                                    \
            return rc_;                                                                            \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------- ping_pong */

#define PP_ROUNDS 1000
#define PP_REPEAT 10

typedef struct pp_batch {
    _Atomic size_t rem;
    mag_notify_t done;
} pp_batch_t;

typedef struct pp_round {
    mag_chan_t *c1, *c2;
} pp_round_t;

static int pp_partner(void *arg)
{
    pp_round_t *r = arg;
    char x;
    if (mag_chan_recv(r->c1, &x) < 0 || mag_chan_send(r->c2, &x) < 0)
        abort();
    return 0;
}

static int pp_round(void *arg)
{
    pp_batch_t *b = arg;
    pp_round_t r = {mag_chan_create(1, 1), mag_chan_create(1, 1)};
    if (!r.c1 || !r.c2)
        abort();
    mag_task_t *p = mag_spawn(pp_partner, &r);
    if (!p)
        abort();
    mag_detach(p);
    char x = 1;
    if (mag_chan_send(r.c1, &x) < 0 || mag_chan_recv(r.c2, &x) < 0)
        abort();
    /* The partner touches neither channel after its send completed. */
    mag_chan_destroy(r.c1);
    mag_chan_destroy(r.c2);
    /* acq_rel: the last round's decrement sees every other round's. */
    if (atomic_fetch_sub_explicit(&b->rem, 1, memory_order_acq_rel) == 1)
        mag_notify_one(&b->done);
    return 0;
}

static int bench_ping_pong(void *arg)
{
    bench_ctx_t *c = arg;
    uint64_t start = mag_now();
    for (int k = 0; k < PP_REPEAT; k++) {
        pp_batch_t b;
        atomic_init(&b.rem, PP_ROUNDS);
        mag_notify_init(&b.done);
        for (int i = 0; i < PP_ROUNDS; i++) {
            mag_task_t *t = mag_spawn(pp_round, &b);
            if (!t)
                CHECK(c, -ENOMEM);
            mag_detach(t);
        }
        CHECK(c, mag_notify_wait(&b.done));
    }
    c->result = ns_per(start, PP_REPEAT * PP_ROUNDS);
    return 0;
}

/* -------------------------------------------------------- chan_contention */

#define PRODUCERS 5
#define MESSAGES 1000
#define CHAN_REPEAT 20

static int producer(void *arg)
{
    mag_chan_t *ch = arg;
    for (size_t i = 0; i < MESSAGES; i++)
        if (mag_chan_send(ch, &i) < 0)
            return -EPIPE;
    return 0;
}

static int chan_contention(bench_ctx_t *c, size_t cap)
{
    uint64_t start = mag_now();
    for (int k = 0; k < CHAN_REPEAT; k++) {
        mag_chan_t *ch = mag_chan_create(sizeof(size_t), cap);
        mag_task_t *t[PRODUCERS];
        if (!ch)
            CHECK(c, -ENOMEM);
        for (int i = 0; i < PRODUCERS; i++)
            if (!(t[i] = mag_spawn(producer, ch)))
                CHECK(c, -ENOMEM);
        size_t v, got = 0;
        for (int i = 0; i < PRODUCERS * MESSAGES; i++) {
            CHECK(c, mag_chan_recv(ch, &v));
            got++;
        }
        for (int i = 0; i < PRODUCERS; i++)
            CHECK(c, mag_join(t[i], NULL));
        mag_chan_destroy(ch);
        if (got != PRODUCERS * MESSAGES)
            CHECK(c, -EPROTO);
    }
    c->result = ns_per(start, CHAN_REPEAT * PRODUCERS * MESSAGES);
    return 0;
}

static int bench_chan_bounded(void *arg)
{
    return chan_contention(arg, 1000);
}

static int bench_chan_unbounded(void *arg)
{
    return chan_contention(arg, MAG_CHAN_UNBOUNDED);
}

/* ------------------------------------------ mutex, semaphore, rwlock loops */

#define CONTENDERS 5
#define LOCKS 10000

static mag_mutex_t bench_mutex;
static size_t mutex_counter;
static mag_sem_t bench_sem;
static mag_rwlock_t bench_rw;
static size_t rw_value = 1;

static int mutex_loop(void *arg)
{
    (void)arg;
    for (int i = 0; i < LOCKS; i++) {
        if (mag_mutex_lock(&bench_mutex) < 0)
            return -1;
        mutex_counter++;
        mag_mutex_unlock(&bench_mutex);
    }
    return 0;
}

static int sem_loop(void *arg)
{
    (void)arg;
    for (int i = 0; i < LOCKS; i++) {
        if (mag_sem_acquire(&bench_sem) < 0)
            return -1;
        mag_sem_release(&bench_sem);
    }
    return 0;
}

static int rwlock_loop(void *arg)
{
    (void)arg;
    size_t sum = 0;
    for (int i = 0; i < LOCKS; i++) {
        if (mag_rwlock_rdlock(&bench_rw) < 0)
            return -1;
        sum += rw_value;
        mag_rwlock_unlock(&bench_rw);
    }
    return sum == LOCKS ? 0 : -EPROTO;
}

/* Runs CONTENDERS copies of fn as tasks and joins them; ns per iteration. */
static int contend(bench_ctx_t *c, mag_fn fn)
{
    mag_task_t *t[CONTENDERS];
    uint64_t start = mag_now();
    for (int i = 0; i < CONTENDERS; i++)
        if (!(t[i] = mag_spawn(fn, NULL)))
            CHECK(c, -ENOMEM);
    for (int i = 0; i < CONTENDERS; i++) {
        int st = 0;
        CHECK(c, mag_join(t[i], &st));
        CHECK(c, st);
    }
    c->result = ns_per(start, CONTENDERS * LOCKS);
    return 0;
}

static int bench_mutex_contention(void *arg)
{
    mag_mutex_init(&bench_mutex);
    mutex_counter = 0;
    int rc = contend(arg, mutex_loop);
    if (rc == 0 && mutex_counter != CONTENDERS * LOCKS)
        CHECK((bench_ctx_t *)arg, -EPROTO);
    return rc;
}

static int bench_sem_concurrent(void *arg)
{
    mag_sem_init(&bench_sem, 2);
    return contend(arg, sem_loop);
}

static int bench_rwlock_read(void *arg)
{
    mag_rwlock_init(&bench_rw);
    return contend(arg, rwlock_loop);
}

/* ------------------------------------------------------------- notify_one */

#define NOTIFY_ROUNDS 10000
static mag_notify_t nfy, ack;

static int notify_waiter(void *arg)
{
    (void)arg;
    for (int i = 0; i < NOTIFY_ROUNDS; i++) {
        if (mag_notify_wait(&nfy) < 0)
            return -1;
        mag_notify_one(&ack);
    }
    return 0;
}

static int bench_notify_one(void *arg)
{
    bench_ctx_t *c = arg;
    mag_notify_init(&nfy);
    mag_notify_init(&ack);
    uint64_t start = mag_now();
    mag_task_t *w = mag_spawn(notify_waiter, NULL);
    if (!w)
        CHECK(c, -ENOMEM);
    for (int i = 0; i < NOTIFY_ROUNDS; i++) {
        mag_notify_one(&nfy);
        CHECK(c, mag_notify_wait(&ack));
    }
    CHECK(c, mag_join(w, NULL));
    c->result = ns_per(start, NOTIFY_ROUNDS);
    return 0;
}

/* ------------------------------------------------------------------ main */

typedef struct bench {
    const char *name;
    mag_fn fn;
} bench_t;

static const bench_t benches[] = {
    {"ping_pong", bench_ping_pong},
    {"chan_contention_bounded", bench_chan_bounded},
    {"chan_contention_unbounded", bench_chan_unbounded},
    {"mutex_contention", bench_mutex_contention},
    {"sem_concurrent", bench_sem_concurrent},
    {"rwlock_read_concurrent", bench_rwlock_read},
    {"notify_one", bench_notify_one},
};
#define NBENCH (sizeof benches / sizeof benches[0])

/* Runs one benchmark on a fresh runtime; 0, or 1 when it failed. */
static int run_bench(const bench_t *b, unsigned workers, int reps)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    mag_runtime_t *rt;
    int r = mag_runtime_create(&cfg, &rt);
    if (r < 0) {
        fprintf(stderr, "sync_bench: mag_runtime_create: %s\n", strerror(-r));
        return 1;
    }
    double v[REPS_FULL];
    int err = 0;
    for (int i = 0; i < reps && !err; i++) {
        bench_ctx_t c = {0, 0};
        int st = 0;
        r = mag_runtime_block_on(rt, b->fn, &c, &st);
        err = r < 0 ? r : c.error;
        v[i] = c.result;
    }
    mag_runtime_shutdown(rt);
    if (err) {
        fprintf(stderr, "sync_bench: %s: %s\n", b->name, strerror(-err));
        return 1;
    }
    printf("%s %u %.1f\n", b->name, workers, median(v, reps));
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    const char *names[NBENCH];
    bool want[NBENCH];
    for (size_t k = 0; k < NBENCH; k++)
        names[k] = benches[k].name;
    bench_args_t a = bench_parse(argc, argv, "sync_bench", names, NBENCH, want);
    int reps = a.quick ? REPS_QUICK : REPS_FULL, failed = 0;
    for (size_t k = 0; k < NBENCH; k++)
        if (want[k])
            failed |= run_bench(&benches[k], a.workers, reps);
    return failed;
}
