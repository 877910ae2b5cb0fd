/*
 * stranded - how long ready work waits behind a busy worker while another
 * worker is idle (the goal: 2 ms).
 *
 *   stranded [--workers N] [--quick] [name...]
 *
 * One line per result on stdout, `name workers ms`: the median, over REPS
 * rounds (9, or 3 with --quick), of the time from the moment a task is
 * ready to run until it runs, while the worker it was on runs a task that
 * computes without suspending (the hog, which gives up after two seconds).
 * The cases are those of test/rt_stranded.c, which asserts a generous bound:
 *
 *   stranded_lifo_ms       a task just spawned into the hog's LIFO slot;
 *   stranded_completion_ms a read submitted before the hog began, whose
 *                          data arrives (ready: the write);
 *   stranded_queued_io_ms  a read prepared just before the worker went on
 *                          to a hog from its queue (ready: the write);
 *   stranded_timer_ms      a sleep due on the hog's worker (ready: due);
 *   stranded_deadline_ms   a read past its deadline (ready: the deadline);
 *   stranded_cancel_ms     a read cancelled by a task elsewhere;
 *   stranded_close_ms      a read whose descriptor is closed elsewhere.
 *
 * With one worker nothing else could run the task: nothing is printed.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <magpie.h>

#include "bench/bench.h"

#define REPS_FULL 9
#define REPS_QUICK 3
#define HOG_LIMIT_NS (2 * MAG_SEC)
#define DUE_NS (20 * MAG_MS)

static _Atomic int hog_started, victim_resumed;
static _Atomic uint64_t ready_ns, resumed_ns;
static int pipe_fds[2];

static void die(const char *what, int err)
{
    fprintf(stderr, "stranded: %s: %s\n", what, strerror(err < 0 ? -err : err));
    exit(1);
}

/* Computes until the victim has run (or the limit passes). */
static void hog(void)
{
    atomic_store(&hog_started, 1);
    uint64_t start = mag_now();
    while (!atomic_load(&victim_resumed) && mag_now() - start < HOG_LIMIT_NS)
        ;
}

static int hog_task(void *arg)
{
    hog();
    return 0;
}

/* Sleeps first, so that the victim's read is submitted as this worker
 * parks; its timer wakes it here. */
static int sleepy_hog(void *arg)
{
    mag_sleep(MAG_MS);
    hog();
    return 0;
}

/* Yields first, so that it runs from the queue after the victim parks. */
static int queued_hog(void *arg)
{
    mag_yield();
    hog();
    return 0;
}

static void resumed(void)
{
    atomic_store(&resumed_ns, mag_now());
    atomic_store(&victim_resumed, 1);
}

static int lifo_victim(void *arg)
{
    resumed();
    return 0;
}

static int lifo_hog(void *arg)
{
    atomic_store(&ready_ns, mag_now());
    mag_task_t *v = mag_spawn(lifo_victim, NULL);
    if (!v)
        die("mag_spawn", -ENOMEM);
    mag_detach(v);
    hog();
    return 0;
}

/* The victims: spawn their hog, then wait in the way of their case. */
typedef enum { WAIT_DATA, WAIT_DEADLINE, WAIT_CANCEL, WAIT_CLOSE, WAIT_SLEEP } wait_t;
typedef struct victim {
    mag_fn hog;
    wait_t wait;
    bool yield_first;
} victim_t;

static int victim_main(void *arg)
{
    const victim_t *v = arg;
    mag_task_t *h = mag_spawn(v->hog, NULL);
    if (!h)
        die("mag_spawn", -ENOMEM);
    mag_detach(h);
    if (v->yield_first)
        mag_yield();
    char c;
    if (v->wait == WAIT_SLEEP) {
        atomic_store(&ready_ns, mag_now() + DUE_NS);
        mag_sleep(DUE_NS);
    } else if (v->wait == WAIT_DEADLINE) {
        atomic_store(&ready_ns, mag_now() + DUE_NS);
        uint64_t tok = mag_deadline_push(atomic_load(&ready_ns));
        mag_read(pipe_fds[0], &c, 1, -1);
        mag_deadline_pop(tok);
    } else {
        mag_read(pipe_fds[0], &c, 1, -1);
    }
    resumed();
    return 0;
}

/* One round: the time from ready to resumed, in ms. */
static double round_ms(const victim_t *v)
{
    atomic_store(&hog_started, 0);
    atomic_store(&victim_resumed, 0);
    if (pipe(pipe_fds) != 0)
        die("pipe", errno);
    mag_task_t *t = mag_spawn(v ? victim_main : lifo_hog, (void *)v);
    if (!t)
        die("mag_spawn", -ENOMEM);
    if (v && (v->wait == WAIT_DATA || v->wait == WAIT_CANCEL || v->wait == WAIT_CLOSE)) {
        while (!atomic_load(&hog_started))
            mag_sleep(MAG_MS);
        mag_sleep(5 * MAG_MS); /* the hog is well into its run */
        atomic_store(&ready_ns, mag_now());
        if (v->wait == WAIT_DATA && write(pipe_fds[1], "x", 1) != 1)
            die("write", errno);
        if (v->wait == WAIT_CANCEL)
            mag_cancel(t);
        if (v->wait == WAIT_CLOSE) {
            mag_close(pipe_fds[0]);
            pipe_fds[0] = -1;
        }
    }
    int st;
    if (mag_join(t, &st) < 0)
        die("mag_join", -EINVAL);
    /* The hog ends once the victim has run; wait for it before the next
     * round, so that it does not compete. */
    mag_sleep(3 * MAG_MS);
    if (pipe_fds[0] >= 0)
        close(pipe_fds[0]);
    close(pipe_fds[1]);
    return (double)(atomic_load(&resumed_ns) - atomic_load(&ready_ns)) / 1e6;
}

typedef struct bench {
    const char *name;
    victim_t victim; /* hog NULL: the LIFO case */
} bench_t;

static const bench_t benches[] = {
    {"stranded_lifo_ms", {NULL, WAIT_DATA, false}},
    {"stranded_completion_ms", {sleepy_hog, WAIT_DATA, false}},
    {"stranded_queued_io_ms", {queued_hog, WAIT_DATA, true}},
    {"stranded_timer_ms", {hog_task, WAIT_SLEEP, false}},
    {"stranded_deadline_ms", {hog_task, WAIT_DEADLINE, false}},
    {"stranded_cancel_ms", {hog_task, WAIT_CANCEL, false}},
    {"stranded_close_ms", {hog_task, WAIT_CLOSE, false}},
};
#define NBENCH (sizeof benches / sizeof benches[0])

typedef struct run {
    const bench_t *b;
    int reps;
    double result;
} run_t;

static int run_main(void *arg)
{
    run_t *r = arg;
    double v[REPS_FULL];
    for (int i = 0; i < r->reps; i++)
        v[i] = round_ms(r->b->victim.hog ? &r->b->victim : NULL);
    r->result = median(v, r->reps);
    return 0;
}

int main(int argc, char **argv)
{
    const char *names[NBENCH];
    bool want[NBENCH];
    for (size_t k = 0; k < NBENCH; k++)
        names[k] = benches[k].name;
    bench_args_t a = bench_parse(argc, argv, "stranded", names, NBENCH, want);
    if (a.workers < 2)
        return 0;
    for (size_t k = 0; k < NBENCH; k++) {
        if (!want[k])
            continue;
        mag_config_t cfg;
        mag_config_init(&cfg);
        cfg.workers = a.workers;
        run_t r = {&benches[k], a.quick ? REPS_QUICK : REPS_FULL, 0};
        int st = 0;
        int rc = mag_run(&cfg, run_main, &r, &st);
        if (rc < 0)
            die("mag_run", rc);
        printf("%s %u %.3f\n", benches[k].name, a.workers, r.result);
        fflush(stdout);
    }
    return 0;
}
