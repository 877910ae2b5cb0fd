/* No ready work stranded behind a busy worker while others are idle: a task
 * in a worker's LIFO slot, a task whose read completed on a worker's ring
 * (submitted before the busy task began, or prepared just before it), a
 * task whose timer is due on a worker's wheel, and a task whose read on that
 * ring passed its deadline, was cancelled or had its descriptor closed each
 * resume elsewhere while that worker runs a task that computes without
 * suspending; and a task whose read completed resumes elsewhere while its
 * worker is held in its scheduler, not in any task. The reads are on a pipe
 * (the ring's) and again on a socket (mag_recv: at several workers, the
 * shared readiness, whose poller may be the busy worker). The bound
 * asserted (STRANDED_BOUND_NS) is generous for a loaded machine under
 * sanitizers; the figure measured is printed, and the benchmark suite
 * reports it. */
#include "test/test.h"

#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

#include "runtime/sched.h" /* the park hook and a worker's park gauge */

#define STRANDED_BOUND_NS (50 * MAG_MS)
/* The hog gives up after this long, so that a failure ends the test. */
#define HOG_LIMIT_NS (2 * MAG_SEC)

static _Atomic int hog_started;
static _Atomic int victim_resumed;
static _Atomic uint64_t resumed_ns;
static _Atomic uint64_t hog_ended_ns;

static void reset(void)
{
    atomic_store(&hog_started, 0);
    atomic_store(&victim_resumed, 0);
    atomic_store(&resumed_ns, 0);
    atomic_store(&hog_ended_ns, 0);
}

/* Computes without suspending until the victim has resumed elsewhere (or
 * the limit passes), then records when it stopped. */
static void hog(void)
{
    atomic_store(&hog_started, 1);
    uint64_t start = mag_now();
    while (!atomic_load(&victim_resumed) && mag_now() - start < HOG_LIMIT_NS)
        ;
    /* A little longer, so that the victim resumed while the hog still ran. */
    uint64_t until = mag_now() + 2 * MAG_MS;
    while (mag_now() < until)
        ;
    atomic_store(&hog_ended_ns, mag_now());
}

static void victim_resume(void)
{
    atomic_store(&resumed_ns, mag_now());
    atomic_store(&victim_resumed, 1);
}

static void check(const char *what, uint64_t ready_ns)
{
    uint64_t r = atomic_load(&resumed_ns), e = atomic_load(&hog_ended_ns);
    ASSERT_TRUE(atomic_load(&victim_resumed));
    printf("%s: resumed %.3f ms after it was ready (the hog ran on for %.3f ms)\n", what,
           (double)(r - ready_ns) / 1e6, (double)(e - r) / 1e6);
    ASSERT_LT(r - ready_ns, STRANDED_BOUND_NS);
    ASSERT_LT(r, e); /* elsewhere: the hog's worker was still busy */
}

/* ---- a task in the LIFO slot ----------------------------------------------- */

static _Atomic uint64_t spawned_ns;

static int lifo_victim(void *arg)
{
    victim_resume();
    return 0;
}

static int lifo_hog(void *arg)
{
    /* The spawn puts the victim in this worker's LIFO slot, and wakes no
     * one: it would run next here, after the hog. */
    atomic_store(&spawned_ns, mag_now());
    mag_task_t *v = mag_spawn(lifo_victim, NULL);
    ASSERT_PTR_NE(v, NULL);
    hog();
    ASSERT_EQ(mag_join(v, NULL), 0);
    return 0;
}

static int lifo_case(void *arg)
{
    reset();
    mag_task_t *t = mag_spawn(lifo_hog, NULL);
    ASSERT_EQ(mag_join(t, NULL), 0);
    check("LIFO slot", atomic_load(&spawned_ns));
    return 0;
}

/* ---- a completion in the ring ---------------------------------------------- */

static int pipe_fds[2];
static _Atomic uint64_t written_ns;
static bool on_socket; /* the cases' pair is a socket pair, read by mag_recv */

static void open_pair(void)
{
    if (on_socket)
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pipe_fds), 0);
    else
        ASSERT_EQ(pipe(pipe_fds), 0);
}

/* One byte from the pair's read end: its result. */
static int64_t read_one(char *c)
{
    return on_socket ? mag_recv(pipe_fds[0], c, 1, 0) : mag_read(pipe_fds[0], c, 1, -1);
}

/* Spawned by the reader before it reads: runs on the reader's worker, after
 * the reader's read is submitted (the sleep parks that worker, which
 * submits), and its timer wakes it there. */
static int ring_hog(void *arg)
{
    ASSERT_EQ(mag_sleep(MAG_MS), 0);
    hog();
    return 0;
}

static int ring_reader(void *arg)
{
    mag_task_t *h = mag_spawn(ring_hog, NULL);
    ASSERT_PTR_NE(h, NULL);
    char c;
    ASSERT_EQ(read_one(&c), 1);
    victim_resume();
    ASSERT_EQ(c, 'x');
    ASSERT_EQ(mag_join(h, NULL), 0);
    return 0;
}

/* How the case makes the reader ready, from this task. */
typedef enum { BY_WRITE, BY_CANCEL, BY_CLOSE } poke_t;

/* The reader reads one byte from the pipe while a hog runs on its worker;
 * this task then writes the byte (a plain write, which completes the read
 * on that worker's ring), cancels the reader, or closes the read end. */
static void pipe_case(mag_fn reader, poke_t how, char byte, const char *what)
{
    reset();
    open_pair();
    mag_task_t *r = mag_spawn(reader, NULL);
    ASSERT_PTR_NE(r, NULL);
    while (!atomic_load(&hog_started))
        ASSERT_EQ(mag_sleep(MAG_MS), 0);
    ASSERT_EQ(mag_sleep(5 * MAG_MS), 0); /* the hog is well into its run */
    atomic_store(&written_ns, mag_now());
    if (how == BY_WRITE) {
        ASSERT_EQ(write(pipe_fds[1], &byte, 1), 1);
    } else if (how == BY_CANCEL) {
        mag_cancel(r);
    } else {
        ASSERT_EQ(mag_close(pipe_fds[0]), 0);
        pipe_fds[0] = -1;
    }
    ASSERT_EQ(mag_join(r, NULL), 0);
    while (!atomic_load(&hog_ended_ns)) /* a cancelled reader cannot join it */
        ASSERT_EQ(mag_sleep(MAG_MS), 0);
    check(what, atomic_load(&written_ns));
    if (pipe_fds[0] >= 0)
        close(pipe_fds[0]);
    close(pipe_fds[1]);
}

static int ring_case(void *arg)
{
    pipe_case(ring_reader, BY_WRITE, 'x', "ring completion");
    return 0;
}

/* ---- a read prepared just before a hog starts ----------------------------- */

/* Spawned by the reader just before it reads: the hog is in the reader's
 * LIFO slot and runs as soon as the reader parks, before the worker's loop
 * would have submitted the read. */
static int direct_hog(void *arg)
{
    hog();
    return 0;
}

static int direct_reader(void *arg)
{
    mag_task_t *h = mag_spawn(direct_hog, NULL);
    ASSERT_PTR_NE(h, NULL);
    char c;
    ASSERT_EQ(read_one(&c), 1);
    victim_resume();
    ASSERT_EQ(c, 'y');
    ASSERT_EQ(mag_join(h, NULL), 0);
    return 0;
}

static int direct_case(void *arg)
{
    pipe_case(direct_reader, BY_WRITE, 'y', "read prepared before the hog");
    return 0;
}

/* ---- a read prepared just before a queued hog ----------------------------- */

/* The hog yields once first, so that it runs after the reader from the
 * worker's queue rather than its LIFO slot: the reader prepares its read
 * and parks, and the worker goes straight on to the hog. */
static int queued_hog(void *arg)
{
    mag_yield();
    hog();
    return 0;
}

static int queued_reader(void *arg)
{
    mag_task_t *h = mag_spawn(queued_hog, NULL);
    ASSERT_PTR_NE(h, NULL);
    mag_yield(); /* the hog starts, and yields back behind this task */
    char c;
    ASSERT_EQ(read_one(&c), 1);
    victim_resume();
    ASSERT_EQ(c, 'z');
    ASSERT_EQ(mag_join(h, NULL), 0);
    return 0;
}

static int queued_case(void *arg)
{
    pipe_case(queued_reader, BY_WRITE, 'z', "read prepared before a queued hog");
    return 0;
}

/* ---- a timer on the wheel -------------------------------------------------- */

#define SLEEP_NS (20 * MAG_MS)
static _Atomic uint64_t due_ns;

static int timer_hog(void *arg)
{
    hog();
    return 0;
}

static int timer_sleeper(void *arg)
{
    /* The hog goes to this worker's LIFO slot and runs as soon as the
     * sleeper parks; the sleeper's timer is on this worker's wheel. */
    mag_task_t *h = mag_spawn(timer_hog, NULL);
    ASSERT_PTR_NE(h, NULL);
    atomic_store(&due_ns, mag_now() + SLEEP_NS);
    ASSERT_EQ(mag_sleep(SLEEP_NS), 0);
    victim_resume();
    ASSERT_EQ(mag_join(h, NULL), 0);
    return 0;
}

static int timer_case(void *arg)
{
    reset();
    mag_task_t *t = mag_spawn(timer_sleeper, NULL);
    ASSERT_EQ(mag_join(t, NULL), 0);
    check("due timer", atomic_load(&due_ns));
    return 0;
}

/* ---- an I/O whose deadline passes ------------------------------------------ */

#define IO_DEADLINE_NS (20 * MAG_MS)

/* The read's deadline passes while a hog runs on the reader's worker, whose
 * ring holds the read: the deadline's timer wakes the reader elsewhere, and
 * the cancel of the read must reach that ring without waiting for the hog. */
static int deadline_reader(void *arg)
{
    mag_task_t *h = mag_spawn(direct_hog, NULL);
    ASSERT_PTR_NE(h, NULL);
    atomic_store(&due_ns, mag_now() + IO_DEADLINE_NS);
    uint64_t tok = mag_deadline_push(atomic_load(&due_ns));
    char c;
    ASSERT_EQ(read_one(&c), -ETIMEDOUT);
    mag_deadline_pop(tok);
    victim_resume();
    ASSERT_EQ(mag_join(h, NULL), 0);
    return 0;
}

static int deadline_case(void *arg)
{
    reset();
    open_pair();
    mag_task_t *r = mag_spawn(deadline_reader, NULL);
    ASSERT_PTR_NE(r, NULL);
    ASSERT_EQ(mag_join(r, NULL), 0);
    check("I/O past its deadline", atomic_load(&due_ns));
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return 0;
}

/* Cancelled by another task while a hog runs on the reader's worker. */

static int cancel_reader(void *arg)
{
    mag_task_t *h = mag_spawn(direct_hog, NULL);
    ASSERT_PTR_NE(h, NULL);
    char c;
    ASSERT_EQ(read_one(&c), -ECANCELED);
    victim_resume();
    /* A cancelled task's joins return -ECANCELED: the case waits for the
     * hog's end instead. */
    mag_detach(h);
    return 0;
}

static int cancel_case(void *arg)
{
    pipe_case(cancel_reader, BY_CANCEL, 0, "I/O cancelled by another task");
    return 0;
}

/* Its descriptor closed by another task while a hog runs on the reader's
 * worker: the close cancels the read on that worker's ring. */
static int close_reader(void *arg)
{
    mag_task_t *h = mag_spawn(direct_hog, NULL);
    ASSERT_PTR_NE(h, NULL);
    char c;
    ASSERT_EQ(read_one(&c), -EBADF);
    victim_resume();
    ASSERT_EQ(mag_join(h, NULL), 0);
    return 0;
}

static int close_case(void *arg)
{
    pipe_case(close_reader, BY_CLOSE, 0, "I/O on a descriptor closed by another task");
    return 0;
}

/* ---- a worker held in its scheduler ----------------------------------------- */

/* A worker can be kept from its work outside any task: preempted in its
 * scheduler when every core is taken, or blocked there. The park hook holds
 * one there, the reader's worker, until the reader has resumed elsewhere.
 * Two ways: AFTER_REAP, the reader's completion wakes that worker, which
 * reaps it and stops right after its park with the reader queued on it;
 * IN_RING, the worker stops when its park ends (a helper's timer), and only
 * then is the byte written, so the completion is posted into its ring while
 * it is held (the kernel interrupts the held thread to run the read's task
 * work). */
typedef enum { AFTER_REAP, IN_RING } stall_t;

static stall_t stall_how;
static mag__worker_t *_Atomic stall_worker;
static _Atomic int stall_armed;
static _Atomic int stalling;
static _Atomic int reader_elsewhere;
static _Atomic int stall_missed; /* IN_RING: no hold came (see stall_writer) */

static void sleep_ms(void)
{
    struct timespec ms = {0, 1000 * 1000};
    nanosleep(&ms, NULL);
}

static void stall_after_park(void *ctx, mag__worker_t *w, uint64_t t0, uint64_t t1)
{
    (void)ctx;
    (void)t0;
    (void)t1;
    if (w != atomic_load(&stall_worker) || !atomic_exchange(&stall_armed, 0))
        return;
    atomic_store(&stalling, 1);
    hog(); /* here, in the scheduler: the worker is in no task */
}

static const mag__hooks_t stall_hooks = {.park = stall_after_park};

/* IN_RING: wakes the reader's worker from its park, where the hook holds
 * it. */
static int stall_timer(void *arg)
{
    (void)arg;
    ASSERT_EQ(mag_sleep(30 * MAG_MS), 0);
    return 0;
}

static int stall_reader(void *arg)
{
    (void)arg;
    mag_task_t *h = NULL;
    atomic_store(&stall_worker, mag__worker_current());
    if (stall_how == IN_RING) {
        /* In this worker's LIFO slot: it runs, and sleeps, once the read
         * below has parked this task; the worker then parks too. */
        h = mag_spawn(stall_timer, NULL);
        ASSERT_PTR_NE(h, NULL);
        atomic_store(&stall_armed, 1);
    }
    atomic_store(&hog_started, 1); /* "ready": the writer waits for it */
    char c;
    ASSERT_EQ(mag_read(pipe_fds[0], &c, 1, -1), 1);
    victim_resume();
    atomic_store(&reader_elsewhere, mag__worker_current() != atomic_load(&stall_worker));
    ASSERT_EQ(c, 's');
    if (h)
        ASSERT_EQ(mag_join(h, NULL), 0);
    return 0;
}

/* An OS thread, so that no task of this case runs on the reader's worker.
 * AFTER_REAP: once that worker is parked (its read submitted), arm the
 * stall and write the byte, which wakes it through the read's completion.
 * IN_RING: write once the worker is held. */
static void *stall_writer(void *arg)
{
    (void)arg;
    while (!atomic_load(&hog_started))
        sleep_ms();
    if (stall_how == AFTER_REAP) {
        mag__worker_t *w = atomic_load(&stall_worker);
        for (int parked_ms = 0; parked_ms < 5;) {
            sleep_ms();
            /* relaxed: a gauge; the worker sets it just before it sleeps. */
            bool parked =
                atomic_load_explicit(&w->stats.park_start_ns, memory_order_relaxed) != 0;
            parked_ms = parked ? parked_ms + 1 : 0;
        }
        atomic_store(&stall_armed, 1);
    } else {
        /* The hold comes when the timer that the reader left in its
         * worker's LIFO slot ends that worker's park. A reader slow enough
         * (a sanitizer on a loaded machine) to be marked stuck before it
         * parks has that timer taken by a rescuer to another worker, and
         * no hold comes: after 3 s the case is missed, and run again. */
        for (int ms = 0; !atomic_load(&stalling); ms++) {
            if (ms == 3000 && atomic_exchange(&stall_armed, 0)) {
                atomic_store(&stall_missed, 1);
                break;
            }
            sleep_ms();
        }
    }
    atomic_store(&written_ns, mag_now());
    char byte = 's';
    if (write(pipe_fds[1], &byte, 1) != 1)
        abort();
    return NULL;
}

/* One try of the case; false when the hold never came (IN_RING only). */
static bool stall_try(stall_t how, const char *what)
{
    reset();
    stall_how = how;
    atomic_store(&stall_worker, NULL);
    atomic_store(&stall_armed, 0);
    atomic_store(&stalling, 0);
    atomic_store(&reader_elsewhere, 0);
    atomic_store(&stall_missed, 0);
    ASSERT_EQ(pipe(pipe_fds), 0);
    mag_task_t *r = mag_spawn(stall_reader, NULL);
    ASSERT_PTR_NE(r, NULL);
    pthread_t writer;
    ASSERT_EQ(pthread_create(&writer, NULL, stall_writer, NULL), 0);
    ASSERT_EQ(mag_join(r, NULL), 0);
    ASSERT_EQ(pthread_join(writer, NULL), 0);
    if (atomic_load(&stall_missed)) {
        printf("%s: no hold came (the reader's timer was taken elsewhere): again\n", what);
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return false;
    }
    /* The stall happened (the hook disarmed itself), and the reader ran on
     * another worker while it lasted. */
    ASSERT_EQ(atomic_load(&stall_armed), 0);
    ASSERT_TRUE(atomic_load(&reader_elsewhere));
    while (!atomic_load(&hog_ended_ns))
        ASSERT_EQ(mag_sleep(MAG_MS), 0);
    check(what, atomic_load(&written_ns));
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return true;
}

static void stall_case(stall_t how, const char *what)
{
    /* Observability (MAG_DEBUG, MAG_STATS, MAG_TRACE) takes the hooks. */
    if (mag__worker_current()->rt->hooks != &stall_hooks) {
        printf("%s: not run, observability holds the hooks\n", what);
        return;
    }
    for (int tries = 0; tries < 3; tries++)
        if (stall_try(how, what))
            return;
    TEST_FAIL("%s: no hold in three tries", what);
}

static int stall_after_reap_case(void *arg)
{
    (void)arg;
    stall_case(AFTER_REAP, "reaped by a worker then held in its scheduler");
    return 0;
}

static int stall_in_ring_case(void *arg)
{
    (void)arg;
    stall_case(IN_RING, "completion posted to a worker held in its scheduler");
    return 0;
}

int main(void)
{
    unsigned n = test_workers(8);
    if (n < 2)
        TEST_SKIP("needs two workers or more (MAG_WORKERS=%u)", n);
    for (int round = 0; round < 3; round++) {
        test_run(n, lifo_case, NULL);
        test_run(n, timer_case, NULL);
        for (int sock = 0; sock < 2; sock++) {
            on_socket = sock;
            printf("-- on a %s\n", sock ? "socket (mag_recv)" : "pipe (mag_read)");
            test_run(n, ring_case, NULL);
            test_run(n, direct_case, NULL);
            test_run(n, queued_case, NULL);
            test_run(n, deadline_case, NULL);
            test_run(n, cancel_case, NULL);
            test_run(n, close_case, NULL);
        }
        /* Held in the scheduler by its own ring's wake: pipes only. */
        on_socket = false;
        mag__test_hooks = &stall_hooks;
        test_run(n, stall_after_reap_case, NULL);
        test_run(n, stall_in_ring_case, NULL);
        mag__test_hooks = NULL;
    }
    return 0;
}
