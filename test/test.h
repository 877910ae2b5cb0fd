/*
 * test/test.h - typed assertions for the standalone test programs.
 * A test is a program: exit 0 pass, 1 fail, 77 skip. A failed assertion
 * prints both values and where, then exits 1.
 */
#ifndef MAGPIE_TEST_H
#define MAGPIE_TEST_H

#include <magpie.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEST_FAIL(...)                                                       \
    do {                                                                     \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                      \
        fprintf(stderr, __VA_ARGS__);                                        \
        fputc('\n', stderr);                                                 \
        exit(1);                                                             \
    } while (0)

#define TEST_SKIP(...)                                                       \
    do {                                                                     \
        printf("skip: " __VA_ARGS__);                                        \
        putchar('\n');                                                       \
        exit(77);                                                            \
    } while (0)

#define ASSERT_CMP_(a, op, b, type, fmt)                                     \
    do {                                                                     \
        type a_ = (type)(a), b_ = (type)(b);                                 \
        if (!(a_ op b_))                                                     \
            TEST_FAIL("ASSERT(%s %s %s): %" fmt " vs %" fmt, #a, #op, #b,    \
                      a_, b_);                                               \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_CMP_(a, ==, b, int64_t, PRId64)
#define ASSERT_NE(a, b) ASSERT_CMP_(a, !=, b, int64_t, PRId64)
#define ASSERT_LT(a, b) ASSERT_CMP_(a, <, b, int64_t, PRId64)
#define ASSERT_LE(a, b) ASSERT_CMP_(a, <=, b, int64_t, PRId64)
#define ASSERT_GT(a, b) ASSERT_CMP_(a, >, b, int64_t, PRId64)
#define ASSERT_GE(a, b) ASSERT_CMP_(a, >=, b, int64_t, PRId64)
#define ASSERT_UEQ(a, b) ASSERT_CMP_(a, ==, b, uint64_t, PRIu64)
#define ASSERT_PTR_EQ(a, b) ASSERT_CMP_(a, ==, b, uintptr_t, PRIxPTR)
#define ASSERT_PTR_NE(a, b) ASSERT_CMP_(a, !=, b, uintptr_t, PRIxPTR)
#define ASSERT_TRUE(c)                                                       \
    do {                                                                     \
        if (!(c))                                                            \
            TEST_FAIL("ASSERT_TRUE(%s)", #c);                                \
    } while (0)
#define ASSERT_STR_EQ(a, b)                                                  \
    do {                                                                     \
        const char *a_ = (a), *b_ = (b);                                     \
        if (strcmp(a_, b_) != 0)                                             \
            TEST_FAIL("ASSERT_STR_EQ(%s, %s): \"%s\" vs \"%s\"", #a, #b, a_, \
                      b_);                                                   \
    } while (0)

/* Worker count for stress tests: MAG_WORKERS if set, else the given default. */
static inline unsigned test_workers(unsigned dflt)
{
    const char *e = getenv("MAG_WORKERS");
    return e && *e ? (unsigned)strtoul(e, NULL, 10) : dflt;
}

/* Runs fn(arg) as the main task of a fresh runtime made from cfg, and checks
 * that mag_run succeeded and fn returned 0. */
static inline void test_run_cfg(const mag_config_t *cfg, mag_fn fn, void *arg)
{
    int st = -1;
    int rc = mag_run(cfg, fn, arg, &st);
    if (rc != 0 || st != 0)
        TEST_FAIL("mag_run with %u workers: rc %d, main returned %d", cfg->workers, rc, st);
}

/* test_run_cfg with the default config and the given number of workers. */
static inline void test_run(unsigned workers, mag_fn fn, void *arg)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    test_run_cfg(&cfg, fn, arg);
}

/* Sanitizer builds run smaller loads so the suite fits CI's time. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TEST_SANITIZED 1
#endif
#endif
#ifndef TEST_SANITIZED
#define TEST_SANITIZED 0
#endif
#define TEST_SCALE(n) (TEST_SANITIZED ? ((n) / 10 > 0 ? (n) / 10 : 1) : (n))

/* 1 in ThreadSanitizer builds. */
#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif
#ifndef TEST_TSAN
#define TEST_TSAN 0
#endif

/* Lets others run: yields the task when called from one, else the thread. */
static inline void test_yield(void)
{
    if (mag_self())
        mag_yield();
    else
        sched_yield();
}

/* Spawns fn(NULL) as a joinable task with the given name. */
static inline mag_task_t *test_spawn_named(const char *name, mag_fn fn)
{
    mag_spawn_opts_t o = {.name = name};
    mag_task_t *t = NULL;
    ASSERT_EQ(mag_spawn_ex(&t, fn, NULL, &o), 0);
    return t;
}

static inline void *test_signal_receiver_(void *arg)
{
    sigset_t s = *(sigset_t *)arg;
    free(arg);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    for (;;)
        usleep(1000);
    return NULL;
}

/* ThreadSanitizer defers a signal handler until the receiving thread next
 * calls into an intercepted libc function, and the runtime's threads sleep in
 * raw system calls (io_uring_enter, futex). Under TSan this blocks the
 * signals in set in the calling thread, and so in every thread it creates
 * later, and starts a helper thread, asleep in nanosleep, that receives every
 * process-directed one. Elsewhere it does nothing. Call it before creating
 * the runtime. */
static inline void test_tsan_signal_receiver(const sigset_t *set)
{
    if (!TEST_TSAN)
        return;
    sigset_t *copy = malloc(sizeof *copy);
    if (!copy)
        TEST_FAIL("out of memory");
    *copy = *set;
    pthread_sigmask(SIG_BLOCK, set, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, test_signal_receiver_, copy) != 0)
        TEST_FAIL("pthread_create failed");
    pthread_detach(th);
}

#endif
