/*
 * micro - magpie's scheduler micro-benchmarks.
 *
 *   micro [--workers N] [--quick] [name...]
 *   micro --list                  (the benchmark names, one per line)
 *
 * One line per result on stdout, `name workers ns_per_op`, except parked_1m,
 * which prints KiB of RSS per parked task instead of nanoseconds, and three
 * lines of seconds after it: parked_1m_park_s (from the first spawn until
 * every task sleeps), parked_1m_cancel_s (cancelling and joining them all)
 * and parked_1m_exit_s (mag_runtime_shutdown afterwards, which gives back
 * the stacks and records). With no names, every benchmark runs, in the
 * order of the table below.
 *
 * The shapes and sizes are those of bench/peers/tokio (tokio_bench.rs) and
 * bench/peers/go, so the three print comparable numbers side by side:
 *
 *   ctx_switch     two tasks each mag_yield 100,000 times; ns per yield,
 *                  counting both tasks' yields.
 *   spawn_many     one task spawns 100,000 detached tasks that each decrement
 *                  an atomic counter, then waits for zero; ns per task.
 *   spawn_join_1m  spawns 1,000,000 tasks keeping the handles, then joins
 *                  them in order (--quick: 100,000); ns per task.
 *   yield_many     200 tasks x 1,000 yields; ns per yield.
 *   chained_spawn  each task spawns the next, depth 1,000; one chain takes
 *                  tens of microseconds, so a measurement is 100 chains back
 *                  to back; ns per spawn.
 *   parked_1m      one million tasks asleep at once (--quick: 100,000): RSS
 *                  (VmRSS) before spawning and once all are parked, in KiB per
 *                  task. The tasks use the runtime's DEFAULT stack size: what
 *                  a parked task costs out of the box is the figure judged.
 *
 * Repetitions: every benchmark but parked_1m is measured REPS times (5, or 3
 * with --quick) and the median is printed. parked_1m runs once: memory freed
 * by a run stays mapped in caches, so a second run in the same process would
 * read low.
 *
 * Each benchmark runs on a fresh runtime (mag_runtime_create, then one
 * mag_runtime_block_on per repetition, then mag_runtime_shutdown), and the
 * timed body is the block_on task itself, as Tokio's peer times a spawned
 * task. Only the public API is used. Where the Tokio peer waits on a Notify
 * (spawn_many, chained_spawn, parked_1m), this program waits by yielding in a
 * loop until a counter says done: that costs one extra task switch per pass
 * over the run queue, which is noise against 100,000 tasks.
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
    size_t big;    /* spawn_join_1m and parked_1m task counts */
    double result; /* ns per op (KiB per task for parked_1m) */
    double park_s, cancel_s; /* parked_1m's two phases */
    int error;     /* a negative errno when the run failed */
} bench_ctx_t;

typedef int (*bench_fn)(void *arg);

static double ns_per(uint64_t start, size_t ops)
{
    return (double)(mag_now() - start) / (double)ops;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "micro: %s: %s\n", what, strerror(err < 0 ? -err : err));
    exit(1);
}

/* ------------------------------------------------------------ ctx_switch */

#define SWITCH_YIELDS 100000

static int yield_loop(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    for (size_t i = 0; i < n; i++) {
        int r = mag_yield();
        if (r < 0)
            return r;
    }
    return 0;
}

/* Spawns `tasks` tasks running yield_loop(yields) and joins them all. */
static int spawn_yielders(size_t tasks, size_t yields)
{
    mag_task_t *h[256];
    if (tasks > sizeof h / sizeof h[0])
        return -EINVAL;
    for (size_t i = 0; i < tasks; i++) {
        h[i] = mag_spawn(yield_loop, (void *)(uintptr_t)yields);
        if (!h[i])
            return -ENOMEM;
    }
    int err = 0;
    for (size_t i = 0; i < tasks; i++) {
        int st = 0;
        int r = mag_join(h[i], &st);
        if (r < 0 || st < 0)
            err = r < 0 ? r : st;
    }
    return err;
}

static int bench_ctx_switch(void *arg)
{
    bench_ctx_t *c = arg;
    uint64_t start = mag_now();
    c->error = spawn_yielders(2, SWITCH_YIELDS);
    c->result = ns_per(start, 2 * SWITCH_YIELDS);
    return 0;
}

/* ------------------------------------------------------------ spawn_many */

#define SPAWN_MANY 100000

/* The "done" signal of spawn_many and chained_spawn, as Tokio's peer uses a
 * Notify. It is static, not on the waiting task's stack: the notifier may
 * still be inside mag_notify_one after the waiter has woken and returned.
 * Every run pairs exactly one mag_notify_one with one mag_notify_wait, so the
 * stored-permit semantics never carry a signal from one run into the next. */
static mag_notify_t done_signal = MAG_NOTIFY_INIT;

static int decrement(void *arg)
{
    /* acq_rel: the last decrement sees every other task's, and the waiter
     * (woken through the notify) sees them all. */
    if (atomic_fetch_sub_explicit((atomic_size_t *)arg, 1, memory_order_acq_rel) == 1)
        mag_notify_one(&done_signal);
    return 0;
}

static int bench_spawn_many(void *arg)
{
    bench_ctx_t *c = arg;
    atomic_size_t left = SPAWN_MANY;
    uint64_t start = mag_now();
    for (size_t i = 0; i < SPAWN_MANY; i++) {
        mag_task_t *t = mag_spawn(decrement, &left);
        if (!t) {
            /* The counter lives on this stack: wait for the ones spawned. */
            c->error = -ENOMEM;
            if (atomic_fetch_sub_explicit(&left, SPAWN_MANY - i, memory_order_acq_rel) ==
                SPAWN_MANY - i)
                return 0; /* they have all run */
            break;
        }
        mag_detach(t);
    }
    int r = mag_notify_wait(&done_signal);
    if (r < 0 && !c->error)
        c->error = r;
    c->result = ns_per(start, SPAWN_MANY);
    return 0;
}

/* --------------------------------------------------------- spawn_join_1m */

static int return_one(void *arg)
{
    (void)arg;
    return 1;
}

static int bench_spawn_join(void *arg)
{
    bench_ctx_t *c = arg;
    size_t n = c->big;
    mag_task_t **h = malloc(n * sizeof *h);
    if (!h) {
        c->error = -ENOMEM;
        return 0;
    }
    uint64_t start = mag_now();
    size_t spawned = 0;
    for (; spawned < n; spawned++) {
        h[spawned] = mag_spawn(return_one, NULL);
        if (!h[spawned])
            break;
    }
    size_t sum = 0;
    for (size_t i = 0; i < spawned; i++) {
        int st = 0;
        if (mag_join(h[i], &st) == 0)
            sum += (size_t)st;
    }
    c->result = ns_per(start, n);
    free(h);
    if (spawned < n)
        c->error = -ENOMEM;
    else if (sum != n)
        c->error = -EIO;
    return 0;
}

/* ------------------------------------------------------------ yield_many */

#define YIELD_TASKS 200
#define YIELD_EACH 1000

static int bench_yield_many(void *arg)
{
    bench_ctx_t *c = arg;
    uint64_t start = mag_now();
    c->error = spawn_yielders(YIELD_TASKS, YIELD_EACH);
    c->result = ns_per(start, (size_t)YIELD_TASKS * YIELD_EACH);
    return 0;
}

/* --------------------------------------------------------- chained_spawn */

#define CHAIN_DEPTH 1000
#define CHAINS 100

typedef struct chain {
    atomic_size_t left; /* links still to run */
    atomic_int error;
} chain_t;

static int chain_link(void *arg)
{
    chain_t *ch = arg;
    if (atomic_fetch_sub_explicit(&ch->left, 1, memory_order_relaxed) == 1) {
        mag_notify_one(&done_signal); /* the last link: ch is not touched again */
        return 0;
    }
    mag_task_t *t = mag_spawn(chain_link, ch);
    if (!t) {
        atomic_store_explicit(&ch->error, -ENOMEM, memory_order_relaxed);
        mag_notify_one(&done_signal);
        return 0;
    }
    mag_detach(t);
    return 0;
}

static int bench_chained_spawn(void *arg)
{
    bench_ctx_t *c = arg;
    uint64_t start = mag_now();
    for (int i = 0; i < CHAINS && !c->error; i++) {
        chain_t ch;
        atomic_init(&ch.left, CHAIN_DEPTH); /* DEPTH tasks in all */
        atomic_init(&ch.error, 0);
        mag_task_t *t = mag_spawn(chain_link, &ch);
        if (!t) {
            c->error = -ENOMEM;
            break;
        }
        mag_detach(t);
        int r = mag_notify_wait(&done_signal);
        c->error = r < 0 ? r : atomic_load_explicit(&ch.error, memory_order_relaxed);
    }
    c->result = ns_per(start, (size_t)CHAINS * CHAIN_DEPTH);
    return 0;
}

/* ------------------------------------------------------------- parked_1m */

/* Resident set size of this process in KiB (VmRSS in /proc/self/status). */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

static atomic_size_t parked_count; /* parked_1m tasks that have started */

/* Sleeps an hour (plus a spread, so that the timers do not all share one
 * slot) or until cancelled; the sleep length comes in arg, so the task
 * allocates nothing of its own and RSS counts the runtime alone. */
static int sleeper(void *arg)
{
    atomic_fetch_add_explicit(&parked_count, 1, memory_order_relaxed);
    int r = mag_sleep(3600 * MAG_SEC + (uint64_t)(uintptr_t)arg * MAG_MS);
    return r == -ECANCELED ? 0 : r == 0 ? -ETIME : r;
}

static int bench_parked(void *arg)
{
    bench_ctx_t *c = arg;
    size_t n = c->big;
    /* The handles are written before the first RSS reading, so that their
     * pages are not counted as the tasks' (8 bytes a task, were they). */
    mag_task_t **h = malloc(n * sizeof *h);
    if (!h) {
        c->error = -ENOMEM;
        return 0;
    }
    memset(h, 0, n * sizeof *h);
    atomic_store_explicit(&parked_count, 0, memory_order_relaxed);
    long before = rss_kib();
    uint64_t t0 = mag_now();
    size_t spawned = 0;
    for (; spawned < n; spawned++) {
        h[spawned] = mag_spawn(sleeper, (void *)(uintptr_t)(spawned % 1000));
        if (!h[spawned])
            break;
    }
    /* Every task has started once the counter is full; the short sleep lets
     * one that is between its increment and its timer registration (on
     * another worker) finish parking. */
    while (atomic_load_explicit(&parked_count, memory_order_relaxed) < spawned)
        mag_sleep(MAG_MS);
    uint64_t t1 = mag_now(); /* all parked (the settling sleep not counted) */
    mag_sleep(20 * MAG_MS);
    long after = rss_kib();
    uint64_t t2 = mag_now();
    /* Wake them all (a cancelled sleep returns at once) and join them. */
    for (size_t i = 0; i < spawned; i++)
        mag_cancel(h[i]);
    int err = 0;
    for (size_t i = 0; i < spawned; i++) {
        int st = 0;
        int r = mag_join(h[i], &st);
        if (!err && (r < 0 || st < 0))
            err = r < 0 ? r : st;
    }
    /* On stderr, beside the table's memory figure: how long parking and
     * unwinding took. */
    c->park_s = (double)(t1 - t0) / 1e9;
    c->cancel_s = (double)(mag_now() - t2) / 1e9;
    fprintf(stderr, "parked_1m: %zu tasks parked in %.2f s, cancelled and joined in %.2f s\n",
            spawned, c->park_s, c->cancel_s);
    free(h);
    if (spawned < n)
        c->error = -ENOMEM;
    else if (before < 0 || after < 0)
        c->error = -EIO;
    else
        c->error = err;
    c->result = (double)(after - before) / (double)n;
    return 0;
}

/* ------------------------------------------------------------------ main */

typedef struct bench {
    const char *name;
    bench_fn fn;
    bool once;      /* parked_1m: one run, not REPS */
    const char *fmt; /* result format */
} bench_t;

/* In the order they run: parked_1m last, it is the slowest and leaves the
 * most memory behind. */
static const bench_t benches[] = {
    { "ctx_switch", bench_ctx_switch, false, "%.1f" },
    { "spawn_many", bench_spawn_many, false, "%.1f" },
    { "spawn_join_1m", bench_spawn_join, false, "%.1f" },
    { "yield_many", bench_yield_many, false, "%.1f" },
    { "chained_spawn", bench_chained_spawn, false, "%.1f" },
    { "parked_1m", bench_parked, true, "%.2f" },
};
#define NBENCH (sizeof benches / sizeof benches[0])

/* Runs one benchmark on a fresh runtime; 0, or 1 when it failed. */
static int run_bench(const bench_t *b, unsigned workers, int reps, size_t big)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    mag_runtime_t *rt;
    int r = mag_runtime_create(&cfg, &rt);
    if (r < 0)
        die("mag_runtime_create", r);
    if (b->once)
        reps = 1;
    double v[REPS_FULL];
    bench_ctx_t c = { .big = big };
    int err = 0;
    for (int i = 0; i < reps && !err; i++) {
        c = (bench_ctx_t){ .big = big };
        int st = 0;
        r = mag_runtime_block_on(rt, b->fn, &c, &st);
        err = r < 0 ? r : c.error;
        v[i] = c.result;
    }
    uint64_t t0 = mag_now();
    mag_runtime_shutdown(rt);
    double exit_s = (double)(mag_now() - t0) / 1e9;
    if (err) {
        fprintf(stderr, "micro: %s: %s\n", b->name, strerror(-err));
        return 1;
    }
    printf("%s %u ", b->name, workers);
    printf(b->fmt, median(v, reps));
    printf("\n");
    if (b->once) /* parked_1m: its phases, in seconds */
        printf("%s_park_s %u %.2f\n%s_cancel_s %u %.2f\n%s_exit_s %u %.3f\n", b->name, workers,
               c.park_s, b->name, workers, c.cancel_s, b->name, workers, exit_s);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    const char *names[NBENCH];
    bool want[NBENCH];
    for (size_t k = 0; k < NBENCH; k++)
        names[k] = benches[k].name;
    bench_args_t a = bench_parse(argc, argv, "micro", names, NBENCH, want);
    int reps = a.quick ? REPS_QUICK : REPS_FULL;
    size_t big = a.quick ? 100000 : 1000000;
    int failed = 0;
    for (size_t k = 0; k < NBENCH; k++)
        if (want[k])
            failed |= run_bench(&benches[k], a.workers, reps, big);
    return failed;
}
