/* rt_stackclash: a task with a 64 KiB stack calling a function with a 96 KiB
 * frame ends the process with the named-task overflow message, never writes
 * silently into the memory below its stack: with guard pages (the stack
 * probes of -fstack-clash-protection hit the guard instead of jumping it),
 * and without them (MAG_STACK_GUARDS=0) when the frame fills its buffer over
 * the stack's low end and a parked neighbour's stack below: the canary
 * catches it at the next switch, even when it writes zeros. Each victim runs in a child (this program re-run
 * with an argument), whose exit status and stderr are checked. */
#include <fcntl.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test/test.h"

#define FRAME (96 * 1024)
#define STACK (64 * 1024)

static volatile char sink;
/* Opaque to the optimiser: the buffer's contents are used. */
__attribute__((noinline)) static void consume(char *p)
{
    sink = p[0];
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* Touches its far end first, as a real frame does (its lowest local). */
__attribute__((noinline)) static int far_end_frame(void)
{
    volatile char buf[FRAME];
    buf[0] = 1;
    sink = buf[0];
    return buf[0];
}

/* A buffer filled with zeros: over the stack's low end and beyond. */
__attribute__((noinline)) static int zeroed_frame(void)
{
    char buf[FRAME];
    memset(buf, 0, sizeof buf);
    consume(buf);
    return buf[FRAME - 1];
}

static mag_event_t release;

static int neighbour(void *arg)
{
    return mag_event_wait(&release);
}

static int victim(void *arg)
{
    bool zeroed = arg != NULL;
    /* With a stack mapped and parked below this one, the overflow lands in
     * it rather than in unmapped memory (a fault): the case only the canary
     * can report. */
    mag_task_t *n;
    mag_spawn_opts_t nopts = {.name = "neighbour", .stack_size = STACK};
    ASSERT_EQ(mag_spawn_ex(&n, neighbour, NULL, &nopts), 0);
    mag_detach(n);
    ASSERT_EQ(mag_sleep(10 * MAG_MS), 0);
    int r = zeroed ? zeroed_frame() : far_end_frame();
    mag_yield(); /* a switch away: the canary is checked */
    return r;
}

static int child_main(void *arg)
{
    ASSERT_EQ(mag_event_init(&release), 0);
    mag_task_t *t;
    mag_spawn_opts_t opts = {.name = "big-frame", .stack_size = STACK};
    ASSERT_EQ(mag_spawn_ex(&t, victim, arg, &opts), 0);
    return mag_join(t, NULL);
}

/* Runs this program with mode and MAG_STACK_GUARDS=guards; returns what it
 * wrote to stderr. */
static void run_child(const char *self, const char *mode, const char *guards, char *out,
                      size_t cap, int *status)
{
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        if (guards)
            setenv("MAG_STACK_GUARDS", guards, 1);
        else
            unsetenv("MAG_STACK_GUARDS");
        execl(self, self, mode, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    size_t got = 0;
    ssize_t r;
    while (got < cap - 1 && (r = read(pipefd[0], out + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = 0;
    close(pipefd[0]);
    ASSERT_EQ(waitpid(pid, status, 0), pid);
}

int main(int argc, char **argv)
{
    if (argc > 1) { /* the victim */
        mag_config_t cfg;
        mag_config_init(&cfg);
        cfg.workers = 2;
        bool zeroed = strcmp(argv[1], "zeroed") == 0;
        mag_run(&cfg, child_main, zeroed ? (void *)1 : NULL, NULL);
        return 0; /* reaching here means the overflow went unnoticed */
    }
    if (TEST_SANITIZED)
        TEST_SKIP("the sanitizers own the stacks and report overflows themselves");
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ASSERT_GT(n, 0);
    self[n] = 0;

    static const struct {
        const char *mode, *guards;
    } cases[] = {
        {"far-end", NULL}, /* guard pages: the default */
        {"zeroed", NULL},
        /* No guard pages: the canary, written over with zeros (a zero
         * canary let this one through, and the neighbour it wrecked was
         * blamed). The far-end frame without guards is not here: x86-64's
         * probes leave memory as it was, so a frame that lands in a mapped
         * neighbour without writing the canary goes unseen (fiber.c). */
        {"zeroed", "0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[4096];
        int status;
        run_child(self, cases[i].mode, cases[i].guards, out, sizeof out, &status);
        printf("%s, guards=%s: child said: %s", cases[i].mode,
               cases[i].guards ? cases[i].guards : "default", out[0] ? out : "nothing\n");
        ASSERT_TRUE(WIFSIGNALED(status));
        ASSERT_EQ(WTERMSIG(status), SIGABRT);
        ASSERT_TRUE(strstr(out, "magpie: stack overflow in task 'big-frame'") != NULL);
    }
    return 0;
}
