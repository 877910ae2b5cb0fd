/*
 * rt_poller_sleep - the readiness poller (the first worker of a multi-worker
 * runtime) sleeps in the epoll, where its ring is one of the descriptors:
 *
 *   overflow  with a CQ of two entries, completions overflow into the
 *             kernel's list, which makes the ring read as ready to the
 *             epoll until someone enters the ring: the poller must flush
 *             it before it sleeps, or it would spin (and keep the
 *             completions from their tasks) until its next submission;
 *   eperm     a seccomp filter answers epoll_pwait2 with EPERM (as
 *             container profiles do for calls they do not know): the
 *             poller falls back to epoll_wait instead of returning at once
 *             from every timed sleep, which spun a CPU.
 *
 *   rt_poller_sleep overflow|eperm|enosys   one case (what the test runs in
 *                                           children)
 */
#include "test.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

/* ---- overflow ------------------------------------------------------------- */

#define P 8
#define ROUNDS 300 /* one gap each, about 3 ms */

static int pipes[P][2];
static mag_sem_t go, ping;
static _Atomic int got;
static _Atomic int stop_pinger;

static int reader(void *arg)
{
    int i = (int)(intptr_t)arg;
    for (int r = 0; r < ROUNDS; r++) {
        char c;
        ASSERT_EQ(mag_read(pipes[i][0], &c, 1, -1), 1);
        atomic_fetch_add(&got, 1);
        mag_sem_acquire(&go);
    }
    return 0;
}

static int pinger(void *arg)
{
    while (!atomic_load(&stop_pinger))
        mag_sem_acquire(&ping);
    return 0;
}

static long w0_tid;

static void find_w0(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[300], name[32] = {0};
        snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        if (fgets(name, sizeof name, f) && !strncmp(name, "magpie-w0", 9))
            w0_tid = atol(e->d_name);
        fclose(f);
    }
    closedir(d);
}

static double w0_cpu(void)
{
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/self/task/%ld/stat", w0_tid);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *s = strrchr(buf, ')') + 2;
    unsigned long ut = 0, st = 0;
    /* fields after ')': state(3) ... utime(14) stime(15) */
    sscanf(s, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Overflowed CQEs in any io_uring of this process (fdinfo's CqOverflowList). */
static int overflowed(void)
{
    int total = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[300], l[64] = {0};
        snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
        if (readlink(p, l, sizeof l - 1) <= 0 || !strstr(l, "io_uring"))
            continue;
        snprintf(p, sizeof p, "/proc/self/fdinfo/%s", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        char line[256];
        int in = 0;
        while (fgets(line, sizeof line, f)) {
            if (!strncmp(line, "CqOverflowList:", 15)) {
                in = 1;
                continue;
            }
            if (in && strstr(line, "user_data"))
                total++;
        }
        fclose(f);
    }
    closedir(d);
    return total;
}

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

static int gaps_with_overflow;

static void *writer(void *arg)
{
    for (int r = 0; r < ROUNDS; r++) {
        nap_us(1000); /* every reader waits in its read, the workers park */
        for (int i = 0; i < P; i++)
            if (write(pipes[i][1], "x", 1) != 1)
                abort();
        mag_sem_release(&ping); /* a doorbell, in the same burst */
        while (atomic_load(&got) < P * (r + 1))
            nap_us(20);
        nap_us(2000); /* the gap: no ring op in flight, the workers park */
        if (overflowed())
            gaps_with_overflow++;
        for (int i = 0; i < P; i++)
            mag_sem_release(&go);
    }
    return NULL;
}

static int overflow_main(void *arg)
{
    (void)arg;
    mag_task_t *t[P], *pg;
    for (int i = 0; i < P; i++) {
        ASSERT_EQ(pipe2(pipes[i], O_CLOEXEC), 0);
        t[i] = mag_spawn(reader, (void *)(intptr_t)i);
    }
    pg = mag_spawn(pinger, NULL);
    mag_sleep(5 * MAG_MS);
    find_w0();
    double c0 = w0_cpu();
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, writer, NULL), 0);
    for (int i = 0; i < P; i++)
        mag_join(t[i], NULL);
    pthread_join(th, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double c1 = w0_cpu();
    atomic_store(&stop_pinger, 1);
    mag_sem_release(&ping);
    mag_join(pg, NULL);
    double wall = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("overflow: worker 0 CPU %.3f s over %.3f s; gaps with overflowed CQEs: %d of %d\n",
           c1 - c0, wall, gaps_with_overflow, ROUNDS);
    /* A poller that left its overflow unflushed kept it through the gaps
     * that followed (7-18% of them), and spun in epoll_wait meanwhile. */
    ASSERT_LE(gaps_with_overflow, ROUNDS / 20);
    return 0;
}

/* ---- eperm ---------------------------------------------------------------- */

static void refuse_pwait2(int err)
{
#ifdef SYS_epoll_pwait2
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_epoll_pwait2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog p = {.len = sizeof f / sizeof *f, .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p))
        TEST_SKIP("no seccomp filter: %s", strerror(errno));
#else
    (void)err;
    TEST_SKIP("the C library's headers have no epoll_pwait2");
#endif
}

static int sleeper(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++)
        mag_sleep(20 * MAG_MS); /* each a timed sleep of the parked poller */
    return 0;
}

static int sleepers_main(void *arg)
{
    (void)arg;
    mag_task_t *t[8];
    for (int i = 0; i < 8; i++)
        ASSERT_PTR_NE(t[i] = mag_spawn(sleeper, NULL), NULL);
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(mag_join(t[i], NULL), 0);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int run_case(const char *name)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 2;
    mag_fn fn = sleepers_main;
    if (!strcmp(name, "overflow")) {
        cfg.ring_entries = 1;
        mag_sem_init(&go, 0);
        mag_sem_init(&ping, 0);
        fn = overflow_main;
    } else {
        refuse_pwait2(!strcmp(name, "eperm") ? EPERM : ENOSYS);
    }
    double c0 = cpu_s(), t0 = now_s();
    int st = -1;
    ASSERT_EQ(mag_run(&cfg, fn, NULL, &st), 0);
    ASSERT_EQ(st, 0);
    double cpu = cpu_s() - c0, wall = now_s() - t0;
    printf("%s: CPU %.3f s over %.3f s\n", name, cpu, wall);
    /* About a second of sleeps costs milliseconds; a poller spinning
     * through them took all of a CPU. */
    if (fn == sleepers_main && cpu > 0.4 * wall)
        TEST_FAIL("%s: the runtime took %.3f s of CPU in %.3f s of sleeps", name, cpu, wall);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return run_case(argv[1]);
    /* Each case in a child: a seccomp filter is for the rest of a process. */
    static const char *cases[] = {"overflow", "eperm", "enosys"};
    int skipped = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fflush(stdout);
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            execl("/proc/self/exe", argv[0], cases[i], (char *)NULL);
            _exit(127);
        }
        int ws;
        ASSERT_EQ(waitpid(pid, &ws, 0), pid);
        ASSERT_TRUE(WIFEXITED(ws));
        if (WEXITSTATUS(ws) == 77) {
            skipped++;
            continue;
        }
        ASSERT_EQ(WEXITSTATUS(ws), 0);
    }
    if (skipped == 3)
        TEST_SKIP("no case could run");
    printf("ok\n");
    return 0;
}
