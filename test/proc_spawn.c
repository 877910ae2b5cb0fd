/* Subprocesses: `cat` echoes 10 MiB through stdin/stdout pipes while a task
 * writes and another reads; exit statuses (`false`, `sh -c 'exit 7'`, a
 * signal); stderr and /dev/null; env and cwd; kill; a missing program gives
 * -ENOENT; bad arguments; the same from a plain thread. */
#include "test/test.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024u * 1024u)

typedef struct feed {
    int fd;
    const unsigned char *buf;
    size_t n;
    mag_process_t *p;
} feed_t;

static int writer(void *arg)
{
    feed_t *f = arg;
    size_t off = 0;
    while (off < f->n) {
        size_t k = f->n - off < 65536 ? f->n - off : 65536;
        ssize_t r = mag_write(f->fd, f->buf + off, k, -1);
        if (r <= 0)
            return r < 0 ? (int)r : -EIO;
        off += (size_t)r;
    }
    return mag_process_close_stdin(f->p);
}

/* Reads fd to EOF into a malloc'd buffer. */
static unsigned char *slurp(int fd, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    unsigned char *b = malloc(cap);
    for (;;) {
        if (n == cap)
            b = realloc(b, cap *= 2);
        ssize_t r = mag_read(fd, b + n, cap - n, -1);
        if (r < 0)
            TEST_FAIL("read: %zd", r);
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *len = n;
    return b;
}

static int exit_status(const char *const argv[])
{
    mag_process_t *p;
    ASSERT_EQ(mag_process_spawn(&p, argv, NULL), 0);
    int ws = -1;
    ASSERT_EQ(mag_process_wait(p, &ws), 0);
    int again = -1;
    ASSERT_EQ(mag_process_wait(p, &again), 0); /* cached */
    ASSERT_EQ(again, ws);
    mag_process_free(p);
    return ws;
}

static int main_task(void *arg)
{
    (void)arg;
    /* cat echoes 10 MiB. */
    size_t n = (TEST_SANITIZED ? 2 : 10) * MIB;
    unsigned char *in = malloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (unsigned char)(i * 7 + (i >> 11));
    mag_process_t *p;
    mag_process_opts_t o = {.in = MAG_STDIO_PIPE, .out = MAG_STDIO_PIPE};
    ASSERT_EQ(mag_process_spawn(&p, (const char *const[]){"cat", NULL}, &o), 0);
    ASSERT_GE(mag_process_stdin(p), 0);
    ASSERT_GE(mag_process_stdout(p), 0);
    ASSERT_EQ(mag_process_stderr(p), -1);
    ASSERT_GT(mag_process_pid(p), 0);
    feed_t f = {mag_process_stdin(p), in, n, p};
    mag_task_t *w = mag_spawn(writer, &f);
    size_t len = 0;
    unsigned char *got = slurp(mag_process_stdout(p), &len);
    int st = -1;
    ASSERT_EQ(mag_join(w, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_UEQ(len, n);
    ASSERT_TRUE(memcmp(got, in, n) == 0);
    free(got);
    int ws = -1;
    ASSERT_EQ(mag_process_wait(p, &ws), 0);
    ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    ASSERT_EQ(mag_process_close_stdin(p), -EBADF);
    ASSERT_EQ(mag_process_kill(p, SIGTERM), -ESRCH);
    mag_process_free(p);
    free(in);

    /* Exit statuses. */
    ws = exit_status((const char *const[]){"false", NULL});
    ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) != 0);
    ws = exit_status((const char *const[]){"true", NULL});
    ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    ws = exit_status((const char *const[]){"/bin/sh", "-c", "exit 7", NULL});
    ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 7);
    ws = exit_status((const char *const[]){"/bin/sh", "-c", "kill -TERM $$", NULL});
    ASSERT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGTERM);

    /* stderr, env, cwd; stdin from /dev/null. */
    o = (mag_process_opts_t){.in = MAG_STDIO_NULL, .out = MAG_STDIO_PIPE, .err = MAG_STDIO_PIPE,
                             .envp = (const char *const[]){"MAGPIE_T=42", NULL},
                             .cwd = "/"};
    ASSERT_EQ(mag_process_spawn(&p,
                                (const char *const[]){"/bin/sh", "-c",
                                                      "echo $MAGPIE_T; pwd; cat; echo oops >&2",
                                                      NULL},
                                &o),
              0);
    got = slurp(mag_process_stdout(p), &len);
    ASSERT_UEQ(len, 5);
    ASSERT_TRUE(memcmp(got, "42\n/\n", 5) == 0);
    free(got);
    got = slurp(mag_process_stderr(p), &len);
    ASSERT_UEQ(len, 5);
    ASSERT_TRUE(memcmp(got, "oops\n", 5) == 0);
    free(got);
    ASSERT_EQ(mag_process_wait(p, &ws), 0);
    ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    mag_process_free(p);

    /* Kill, and a wait cancelled by a deadline leaves the child running. */
    ASSERT_EQ(mag_process_spawn(&p, (const char *const[]){"sleep", "30", NULL}, NULL), 0);
    uint64_t tok = mag_deadline_push(mag_now() + 50 * MAG_MS);
    ASSERT_EQ(mag_process_wait(p, &ws), -ETIMEDOUT);
    mag_deadline_pop(tok);
    ASSERT_EQ(mag_process_kill(p, SIGKILL), 0);
    ASSERT_EQ(mag_process_wait(p, &ws), 0);
    ASSERT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    mag_process_free(p);

    /* Freed while running: killed and reaped, no zombie. */
    ASSERT_EQ(mag_process_spawn(&p, (const char *const[]){"sleep", "30", NULL}, NULL), 0);
    pid_t pid = mag_process_pid(p);
    mag_process_free(p);
    ASSERT_EQ(kill(pid, 0), -1);
    ASSERT_EQ(mag_errno(), ESRCH);

    /* A child whose reader went away: writing gives -EPIPE, not SIGPIPE. */
    o = (mag_process_opts_t){.in = MAG_STDIO_PIPE};
    ASSERT_EQ(mag_process_spawn(&p, (const char *const[]){"true", NULL}, &o), 0);
    ASSERT_EQ(mag_process_wait(p, &ws), 0);
    ASSERT_EQ(mag_write(mag_process_stdin(p), "x", 1, -1), -EPIPE);
    mag_process_free(p);

    /* Errors: a failed spawn leaves *out as it was. */
    p = NULL;
    ASSERT_EQ(mag_process_spawn(&p, (const char *const[]){"/nonexistent/magpie", NULL}, NULL),
              -ENOENT);
    ASSERT_TRUE(p == NULL);
    ASSERT_EQ(mag_process_spawn(&p, (const char *const[]){"magpie-no-such-program", NULL}, NULL),
              -ENOENT);
    o = (mag_process_opts_t){.cwd = "/nonexistent/dir"};
    ASSERT_EQ(mag_process_spawn(&p, (const char *const[]){"true", NULL}, &o), -ENOENT);
    ASSERT_EQ(mag_process_spawn(&p, NULL, NULL), -EINVAL);
    ASSERT_EQ(mag_process_spawn(&p, (const char *const[]){NULL}, NULL), -EINVAL);
    ASSERT_EQ(mag_process_spawn(NULL, (const char *const[]){"true", NULL}, NULL), -EINVAL);
    o = (mag_process_opts_t){.out = (mag_stdio_t)9};
    ASSERT_EQ(mag_process_spawn(&p, (const char *const[]){"true", NULL}, &o), -EINVAL);
    ASSERT_EQ(mag_process_wait(NULL, &ws), -EINVAL);
    ASSERT_EQ(mag_process_kill(NULL, SIGTERM), -EINVAL);
    mag_process_free(NULL);
    return 0;
}

static void *plain_thread(void *arg)
{
    (void)arg;
    mag_process_t *p;
    mag_process_opts_t o = {.out = MAG_STDIO_PIPE};
    ASSERT_EQ(mag_process_spawn(&p, (const char *const[]){"echo", "hello", NULL}, &o), 0);
    char buf[16];
    ssize_t r = mag_read(mag_process_stdout(p), buf, sizeof buf, -1); /* blocking read */
    ASSERT_EQ(r, 6);
    ASSERT_TRUE(memcmp(buf, "hello\n", 6) == 0);
    int ws = -1;
    ASSERT_EQ(mag_process_wait(p, &ws), 0); /* blocking poll */
    ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    mag_process_free(p);
    return NULL;
}

int main(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    test_run_cfg(&cfg, main_task, NULL);
    cfg.workers = 1;
    test_run_cfg(&cfg, main_task, NULL);
    pthread_t th;
    pthread_create(&th, NULL, plain_thread, NULL);
    pthread_join(th, NULL);
    return 0;
}
