/*
 * pool_bench - the blocking pool and the process pool.
 *
 *   pool_bench [--workers N] [--quick] [name...]
 *
 * One line per result on stdout, `name workers value`. With no names, every
 * benchmark runs, in the order below.
 *
 *   spawn_blocking      Tokio's spawn_blocking bench (bench/peers/tokio):
 *                       for C in 1, 2, 4, ..., 64, C tasks each run batches
 *                       of 16 no-op mag_spawn_blocking jobs and join each
 *                       batch, 1,024 jobs in all; ns per job, printed as
 *                       spawn_blocking_cC.
 *   proc_roundtrip_4k   one task calls a process-pool function that echoes
 *                       4 KiB, again and again; ns per call (latency).
 *   proc_throughput_4k  64 tasks make the same call concurrently; ns per
 *                       call over all of them (lower is better).
 *   cpu_speedup         a CPU-bound job (64 Mi rounds of a xorshift-multiply
 *                       loop, 0.1-0.2 s) 4 times per process worker:
 *                       run inline, one after another, in a task on one
 *                       worker; then from as many tasks at once through the
 *                       process pool. Prints the inline time divided by the
 *                       pool time (a ratio, higher is better); the goal is
 *                       0.9 x the number of cores.
 *
 * The process pool has one worker process per online CPU. Each figure is the
 * median of REPS runs (5, or 3 with --quick; cpu_speedup: 3, or 1) on one
 * runtime. Only the public API is used.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <magpie.h>

static int reps = 5;
static bool quick;
static unsigned nprocs;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- spawn_blocking -------------------------------------------------------- */

#define SB_TOTAL 1024
#define SB_BATCH 16

static int nop(void *arg)
{
    (void)arg;
    return 0;
}

static int sb_task(void *arg)
{
    int left = (int)(intptr_t)arg;
    while (left > 0) {
        int n = left < SB_BATCH ? left : SB_BATCH;
        mag_task_t *jobs[SB_BATCH];
        for (int i = 0; i < n; i++)
            if (!(jobs[i] = mag_spawn_blocking(nop, NULL)))
                return -ENOMEM;
        for (int i = 0; i < n; i++)
            mag_join(jobs[i], NULL);
        left -= n;
    }
    return 0;
}

typedef struct run {
    int c;        /* concurrency */
    double ns;    /* result */
} run_t;

static int sb_run(void *arg)
{
    run_t *r = arg;
    mag_task_t *ts[64];
    uint64_t t0 = mag_now();
    for (int i = 0; i < r->c; i++)
        ts[i] = mag_spawn(sb_task, (void *)(intptr_t)(SB_TOTAL / r->c));
    int bad = 0, st;
    for (int i = 0; i < r->c; i++)
        if (mag_join(ts[i], &st) || st)
            bad = 1;
    r->ns = (double)(mag_now() - t0) / SB_TOTAL;
    return bad ? -EIO : 0;
}

/* ---- process pool -------------------------------------------------------------- */

#define MSG 4096

static int echo(const void *in, size_t n, void **out, size_t *out_len)
{
    if (!(*out = malloc(n)))
        return -ENOMEM;
    memcpy(*out, in, n);
    *out_len = n;
    return 0;
}

static uint64_t spin_rounds(uint64_t seed, uint64_t rounds)
{
    uint64_t x = seed | 1;
    for (uint64_t i = 0; i < rounds; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        x *= 0x9e3779b97f4a7c15ull;
    }
    return x;
}

/* in: seed and rounds; out: the final state. */
static int spin(const void *in, size_t n, void **out, size_t *out_len)
{
    uint64_t a[2];
    if (n != sizeof a)
        return -EINVAL;
    memcpy(a, in, sizeof a);
    uint64_t *r = malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    *r = spin_rounds(a[0], a[1]);
    *out = r;
    *out_len = sizeof *r;
    return 0;
}

static int call_echo(int calls)
{
    static const char payload[MSG];
    for (int i = 0; i < calls; i++) {
        void *out = NULL;
        size_t len = 0;
        int rc = mag_proc_call("echo", payload, MSG, &out, &len);
        free(out);
        if (rc || len != MSG)
            return rc ? rc : -EIO;
    }
    return 0;
}

static int rt_task(void *arg)
{
    run_t *r = arg;
    int calls = quick ? 500 : 2000;
    call_echo(50); /* warm */
    uint64_t t0 = mag_now();
    int rc = call_echo(calls);
    r->ns = (double)(mag_now() - t0) / calls;
    return rc;
}

static int tp_caller(void *arg)
{
    return call_echo((int)(intptr_t)arg);
}

static int tp_task(void *arg)
{
    run_t *r = arg;
    int per = quick ? 20 : 80, callers = 64;
    mag_task_t *ts[64];
    uint64_t t0 = mag_now();
    for (int i = 0; i < callers; i++)
        ts[i] = mag_spawn(tp_caller, (void *)(intptr_t)per);
    int bad = 0, st;
    for (int i = 0; i < callers; i++)
        if (mag_join(ts[i], &st) || st)
            bad = 1;
    r->ns = (double)(mag_now() - t0) / (callers * per);
    return bad ? -EIO : 0;
}

static uint64_t cpu_rounds(void)
{
    return quick ? (16ull << 20) : (64ull << 20);
}

static uint64_t *cpu_expect; /* the inline results, to check the pool's */

static int cpu_caller(void *arg)
{
    int i = (int)(intptr_t)arg;
    uint64_t a[2] = {(uint64_t)i, cpu_rounds()};
    void *out = NULL;
    size_t len = 0;
    int rc = mag_proc_call("spin", a, sizeof a, &out, &len);
    if (rc == 0 && (len != 8 || *(uint64_t *)out != cpu_expect[i]))
        rc = -EIO;
    free(out);
    return rc;
}

static int cpu_task(void *arg)
{
    run_t *r = arg;
    int jobs = (int)(4 * nprocs);
    mag_task_t **ts = calloc((size_t)jobs, sizeof *ts);
    cpu_expect = calloc((size_t)jobs, sizeof *cpu_expect);
    uint64_t t0 = mag_now();
    for (int i = 0; i < jobs; i++) /* inline, blocking this worker: the baseline */
        cpu_expect[i] = spin_rounds((uint64_t)i, cpu_rounds());
    double inline_ns = (double)(mag_now() - t0);
    t0 = mag_now();
    for (int i = 0; i < jobs; i++)
        ts[i] = mag_spawn(cpu_caller, (void *)(intptr_t)i);
    int bad = 0, st;
    for (int i = 0; i < jobs; i++)
        if (mag_join(ts[i], &st) || st)
            bad = 1;
    double pool_ns = (double)(mag_now() - t0);
    free(ts);
    free(cpu_expect);
    r->ns = inline_ns / pool_ns;
    return bad ? -EIO : 0;
}

/* ---- driver ----------------------------------------------------------------- */

static bool wanted(int argc, char **argv, int first, const char *name)
{
    if (first >= argc)
        return true;
    for (int i = first; i < argc; i++)
        if (!strcmp(argv[i], name))
            return true;
    return false;
}

static double measure(mag_runtime_t *rt, mag_fn fn, run_t *r, int n)
{
    double v[8];
    for (int i = 0; i < n; i++) {
        int st = 0;
        if (mag_runtime_block_on(rt, fn, r, &st) || st) {
            fprintf(stderr, "pool_bench: a run failed: %s\n", strerror(st ? -st : EIO));
            exit(1);
        }
        v[i] = r->ns;
    }
    return median(v, n);
}

int main(int argc, char **argv)
{
    unsigned workers = 0;
    int first = 1;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (!strcmp(argv[first], "--workers") && first + 1 < argc)
            workers = (unsigned)strtoul(argv[++first], NULL, 10);
        else if (!strcmp(argv[first], "--quick"))
            quick = true;
        else {
            fprintf(stderr, "usage: pool_bench [--workers N] [--quick] [name...]\n");
            return 2;
        }
    }
    reps = quick ? 3 : 5;
    long np = sysconf(_SC_NPROCESSORS_ONLN);
    nprocs = np > 0 ? (unsigned)np : 1;
    mag_proc_register("echo", echo);
    mag_proc_register("spin", spin);
    mag_config_t cfg;
    mag_config_init(&cfg);
    if (workers)
        cfg.workers = workers;
    cfg.proc_workers = nprocs;
    mag_runtime_t *rt;
    int rc = mag_runtime_create(&cfg, &rt);
    if (rc) {
        fprintf(stderr, "pool_bench: runtime: %s\n", strerror(-rc));
        return 1;
    }
    unsigned w = cfg.workers ? cfg.workers : nprocs;
    run_t r = {0, 0};
    if (wanted(argc, argv, first, "spawn_blocking")) {
        for (int c = 1; c <= 64; c *= 2) {
            r.c = c;
            printf("spawn_blocking_c%d %u %.1f\n", c, w, measure(rt, sb_run, &r, reps));
            fflush(stdout);
        }
    }
    if (wanted(argc, argv, first, "proc_roundtrip_4k"))
        printf("proc_roundtrip_4k %u %.1f\n", w, measure(rt, rt_task, &r, reps));
    fflush(stdout);
    if (wanted(argc, argv, first, "proc_throughput_4k"))
        printf("proc_throughput_4k %u %.1f\n", w, measure(rt, tp_task, &r, reps));
    fflush(stdout);
    if (wanted(argc, argv, first, "cpu_speedup"))
        printf("cpu_speedup %u %.2f\n", w, measure(rt, cpu_task, &r, quick ? 1 : 3));
    mag_runtime_shutdown(rt);
    return 0;
}
