/* rt_stackclash: a task with a 64 KiB stack calling a function with a 96 KiB
 * frame ends the process with the named-task overflow message, never writes
 * silently into the memory below its stack: with guard pages (the stack
 * probes of -fstack-clash-protection hit the guard instead of jumping it),
 * and without them (MAG_STACK_GUARDS=0), with a parked neighbour's stack
 * mapped directly below: when the frame fills its buffer with zeros (the
 * canary catches it at the next switch), and where userfaultfd allows it,
 * when the frame writes only its far end (the write-protected page below the
 * stack catches the probes, which on x86-64 leave memory as it was). Each
 * victim runs in a child (this program re-run with an argument), whose exit
 * status and stderr are checked. A last child checks that protecting
 * unguarded stacks costs no VMA of its own. */
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test/test.h"
#include "test/programs.h"

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

/* The VMA check: PARKED unguarded, write-protected stacks, parked at once,
 * merge into a few VMAs as unprotected ones do (a mapping each that did not
 * merge would add PARKED VMAs, a guard page each twice that). */
#define PARKED 200

static size_t count_vmas(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ASSERT_TRUE(f != NULL);
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int vma_main(void *arg)
{
    ASSERT_EQ(mag_event_init(&release), 0);
    mag_task_t *tasks[PARKED];
    mag_spawn_opts_t opts = {.name = "parked", .stack_size = STACK};
    size_t before = count_vmas();
    for (int i = 0; i < PARKED; i++)
        ASSERT_EQ(mag_spawn_ex(&tasks[i], neighbour, NULL, &opts), 0);
    ASSERT_EQ(mag_sleep(50 * MAG_MS), 0); /* each has run once: its stack is mapped */
    size_t after = count_vmas();
    printf("vma: %d parked unguarded stacks: %zu -> %zu VMAs\n", PARKED, before, after);
    ASSERT_LE(after, before + PARKED / 4);
    mag_event_set(&release);
    for (int i = 0; i < PARKED; i++)
        ASSERT_EQ(mag_join(tasks[i], NULL), 0);
    return 0;
}

/* Whether this process may write-protect memory with userfaultfd, as the
 * runtime does (UFFD_USER_MODE_ONLY, write protection of anonymous memory);
 * why not in *why. */
static bool userfaultfd_wp_works(const char **why)
{
#if defined(SYS_userfaultfd) && defined(UFFDIO_WRITEPROTECT)
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0) {
        *why = strerror(errno);
        return false;
    }
    bool ok = false;
    *why = "no write protection for anonymous memory";
    struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_THREAD_ID};
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED && ioctl(fd, UFFDIO_API, &api) == 0 &&
        (api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
        m[0] = 1;
        struct uffdio_register reg = {.range = {(uintptr_t)m, page},
                                      .mode = UFFDIO_REGISTER_MODE_WP};
        struct uffdio_writeprotect wp = {.range = {(uintptr_t)m, page},
                                         .mode = UFFDIO_WRITEPROTECT_MODE_WP};
        ok = ioctl(fd, UFFDIO_REGISTER, &reg) == 0 &&
             (reg.ioctls & (1ull << _UFFDIO_WRITEPROTECT)) &&
             ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0;
    }
    if (m != MAP_FAILED)
        munmap(m, page);
    close(fd);
    return ok;
#else
    *why = "no userfaultfd write protection in this system's headers";
    return false;
#endif
}

/* In a child about to exec: userfaultfd fails with EPERM from now on, as
 * under a container's seccomp filter. false when seccomp is unavailable. */
static bool deny_userfaultfd(void)
{
#if defined(SYS_userfaultfd)
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_userfaultfd, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
#else
    return false;
#endif
}

/* Runs this program with mode and MAG_STACK_GUARDS=guards, userfaultfd
 * denied if deny_uffd; returns what it wrote to stderr. The child exits 77
 * when it cannot deny userfaultfd. */
static void run_child(const char *self, const char *mode, const char *guards, bool deny_uffd,
                      char *out, size_t cap, int *status)
{
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    fflush(stdout); /* the child's report comes after ours */
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
        if (deny_uffd && !deny_userfaultfd())
            _exit(77);
        execl(self, self, mode, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    test_read_output(pipefd[0], out, cap);
    ASSERT_EQ(waitpid(pid, status, 0), pid);
}

int main(int argc, char **argv)
{
    if (argc > 1) { /* the victim */
        mag_config_t cfg;
        mag_config_init(&cfg);
        cfg.workers = 2;
        if (strcmp(argv[1], "vma") == 0) {
            int rc = -1;
            ASSERT_EQ(mag_run(&cfg, vma_main, NULL, &rc), 0);
            return rc == 0 ? 0 : 1;
        }
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

    const char *why = NULL;
    bool wp = userfaultfd_wp_works(&why);
    static const struct {
        const char *mode, *guards;
        bool needs_wp, deny_uffd;
    } cases[] = {
        {"far-end", NULL, false, false}, /* guard pages: the default */
        {"zeroed", NULL, false, false},
        /* No guard pages: the write-protected page below the stack, or where
         * userfaultfd is refused, the canary, written over with zeros (a
         * zero canary let this one through, and the neighbour it wrecked
         * was blamed). */
        {"zeroed", "0", false, false},
        {"zeroed", "0", false, true},
        /* No guard pages, a frame that never writes the canary: x86-64's
         * probes leave memory as it was, and only the write-protected page
         * below the stack sees them. */
        {"far-end", "0", true, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[4096];
        int status;
        const char *guards = cases[i].guards ? cases[i].guards : "default";
        const char *uffd = cases[i].deny_uffd ? ", userfaultfd denied" : "";
        if (cases[i].needs_wp && !wp) {
            printf("%s, guards=%s: skipped, userfaultfd write protection unavailable (%s)\n",
                   cases[i].mode, guards, why);
            continue;
        }
        run_child(self, cases[i].mode, cases[i].guards, cases[i].deny_uffd, out, sizeof out,
                  &status);
        if (cases[i].deny_uffd && WIFEXITED(status) && WEXITSTATUS(status) == 77) {
            printf("%s, guards=%s%s: skipped, seccomp unavailable\n", cases[i].mode, guards, uffd);
            continue;
        }
        printf("%s, guards=%s%s: child said: %s", cases[i].mode, guards, uffd,
               out[0] ? out : "nothing\n");
        ASSERT_TRUE(WIFSIGNALED(status));
        ASSERT_EQ(WTERMSIG(status), SIGABRT);
        ASSERT_TRUE(strstr(out, "magpie: stack overflow in task 'big-frame'") != NULL);
    }
    if (wp) {
        char out[4096];
        int status;
        run_child(self, "vma", "0", false, out, sizeof out, &status);
        printf("%s", out);
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 0);
    }
    return 0;
}
