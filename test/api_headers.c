/* api_headers: the public headers are self-contained C11 and C++17. Compiles
 * magpie.h and each header of include/magpie/ on its own with the C compiler
 * (-std=c11 -pedantic) and the C++ compiler (-std=c++17 -pedantic), then
 * builds and runs a C++ program that declares the primitives by value with
 * their static initializers and checks that C and C++ agree on the size and
 * alignment of every public type. Skips the C++ part (exit 77) when g++ is
 * not installed. */
#include "test/test.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#include <magpie/http1.h>

static char root[PATH_MAX]; /* the source tree: root/include/magpie.h */
static char tmp[PATH_MAX];  /* scratch directory for sources and programs */
static int failures;

/* The compilers: $CC / $CXX when set (make passes a CC given on its command
 * line), else cc and g++. */
static const char *c_compiler(void)
{
    const char *e = getenv("CC");
    return e && *e ? e : "cc";
}

static const char *cxx_compiler(void)
{
    const char *e = getenv("CXX");
    return e && *e ? e : "g++";
}

/* Runs cmd through the shell with stderr folded into stdout. Returns its exit
 * status (-1 if it could not run) and leaves up to cap-1 bytes of output. */
static int run(const char *cmd, char *out, size_t cap)
{
    char full[3 * PATH_MAX + 512];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p)
        return -1;
    size_t n = 0;
    int ch;
    while ((ch = fgetc(p)) != EOF) /* the rest is read and dropped when full */
        if (n + 1 < cap)
            out[n++] = (char)ch;
    out[n] = '\0';
    int st = pclose(p);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Runs one check; on failure prints the command and what it said. */
static bool check(const char *what, const char *cmd)
{
    static char out[16384];
    int rc = run(cmd, out, sizeof out);
    if (rc == 0) {
        printf("ok   %s\n", what);
        return true;
    }
    failures++;
    printf("FAIL %s (exit %d)\n  $ %s\n%s\n", what, rc, cmd, out);
    return false;
}

static bool have_program(const char *name)
{
    char cmd[PATH_MAX + 64], out[256];
    snprintf(cmd, sizeof cmd, "command -v %s", name);
    return run(cmd, out, sizeof out) == 0;
}

/* dir/name into out (PATH_MAX bytes). */
static char *path_join(char *out, const char *dir, const char *name)
{
    if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
        TEST_FAIL("path too long: %s/%s", dir, name);
    return out;
}

static bool is_file(const char *dir, const char *name)
{
    char p[PATH_MAX];
    return access(path_join(p, dir, name), R_OK) == 0;
}

/* The tree holding include/magpie.h: the first such directory above the
 * executable (BUILD/test, whatever BUILD is), else above the working
 * directory. The runner's working directory is not assumed. */
static bool find_root(void)
{
    char start[2][PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", start[0], sizeof start[0] - 1);
    start[0][n > 0 ? n : 0] = '\0';
    if (!getcwd(start[1], sizeof start[1]))
        start[1][0] = '\0';
    for (int i = 0; i < 2; i++) {
        char *d = start[i];
        char *slash;
        while ((slash = strrchr(d, '/'))) {
            *slash = '\0';
            const char *dir = *d ? d : "/";
            if (is_file(dir, "include/magpie.h")) {
                strcpy(root, dir); /* both PATH_MAX bytes */
                return true;
            }
        }
    }
    return false;
}

static void write_file(const char *name, const char *text)
{
    char p[PATH_MAX];
    FILE *f = fopen(path_join(p, tmp, name), "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        TEST_FAIL("cannot write %s", p);
}

/* Compiles `#include <header>` on its own in both languages. */
static void check_header(const char *header, bool cxx)
{
    char src[PATH_MAX + 32], cmd[3 * PATH_MAX + 256], what[PATH_MAX + 32];
    snprintf(src, sizeof src, "#include <%s>\n", header);
    write_file("one.c", src);
    snprintf(cmd, sizeof cmd,
             "%s -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only '-I%s/include' '%s/one.c'",
             c_compiler(), root, tmp);
    snprintf(what, sizeof what, "C11   %s", header);
    check(what, cmd);
    if (!cxx)
        return;
    snprintf(cmd, sizeof cmd,
             "%s -std=c++17 -pedantic -Wall -Wextra -Werror -fsyntax-only '-I%s/include' -x c++ "
             "'%s/one.c'",
             cxx_compiler(), root, tmp);
    snprintf(what, sizeof what, "C++17 %s", header);
    check(what, cmd);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* magpie.h, then every header in include/magpie/ (found, not listed: a new header is
 * checked without editing this test). */
static void check_headers(bool cxx)
{
    check_header("magpie.h", cxx);
    char dir[PATH_MAX];
    path_join(dir, root, "include/magpie");
    DIR *d = opendir(dir);
    if (!d)
        TEST_FAIL("cannot open %s", dir);
    char *names[64];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        size_t len = strlen(e->d_name);
        if (len > 2 && strcmp(e->d_name + len - 2, ".h") == 0)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    ASSERT_GT(n, 0);
    qsort(names, n, sizeof names[0], by_name);
    for (size_t i = 0; i < n; i++) {
        char h[PATH_MAX];
        snprintf(h, sizeof h, "magpie/%s", names[i]);
        check_header(h, cxx);
        free(names[i]);
    }
}

/* Under strict C11 the sigset_t calls appear once the program asks for POSIX. */
static void check_posix_signals(void)
{
    write_file("posix.c", "#include <magpie.h>\n"
                          "#include <signal.h>\n"
                          "int wait_int(int *signo);\n"
                          "int wait_int(int *signo)\n"
                          "{\n"
                          "    sigset_t set;\n"
                          "    sigemptyset(&set);\n"
                          "    sigaddset(&set, SIGINT);\n"
                          "    return mag_signal_wait(&set, signo);\n"
                          "}\n");
    char cmd[3 * PATH_MAX + 256];
    snprintf(cmd, sizeof cmd,
             "%s -std=c11 -pedantic -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -fsyntax-only "
             "'-I%s/include' '%s/posix.c'",
             c_compiler(), root, tmp);
    check("C11 + _POSIX_C_SOURCE: mag_signal_wait declared", cmd);
}

/* The C++ program: the primitives by value, at namespace scope and inside a
 * struct, with their static initializers, and used through the API. */
static const char cxx_program[] =
    "#include <magpie.h>\n"
    "#include <magpie/http1.h>\n"
    "#include <cstdio>\n"
    "#include <cstring>\n"
    "\n"
    "static mag_mutex_t lock = MAG_MUTEX_INIT;\n"
    "static mag_rwlock_t rw = MAG_RWLOCK_INIT;\n"
    "static mag_sem_t sem = MAG_SEM_INIT(2);\n"
    "static mag_event_t ev = MAG_EVENT_INIT;\n"
    "static mag_notify_t nt = MAG_NOTIFY_INIT;\n"
    "static mag_cond_t cv = MAG_COND_INIT;\n"
    "static mag_barrier_t one = MAG_BARRIER_INIT(1);\n"
    "static mag_wg_t wg = MAG_WG_INIT;\n"
    "\n"
    "struct guarded {\n"
    "    mag_mutex_t m;\n"
    "    int value;\n"
    "};\n"
    "\n"
    "static int failed(const char *what)\n"
    "{\n"
    "    std::printf(\"failed: %s\\n\", what);\n"
    "    return 1;\n"
    "}\n"
    "#define CHECK(c) if (!(c)) return failed(#c)\n"
    "\n"
    "int main()\n"
    "{\n"
    "    guarded g = {MAG_MUTEX_INIT, 0};\n"
    "    unsigned parties = 1;\n"
    "    mag_barrier_t local = MAG_BARRIER_INIT(parties);\n"
    "    CHECK(std::strcmp(mag_version(), MAG_VERSION_STRING) == 0);\n"
    "    CHECK(mag_mutex_lock(&g.m) == 0 && mag_mutex_trylock(&g.m) == -EAGAIN);\n"
    "    g.value++;\n"
    "    CHECK(mag_mutex_unlock(&g.m) == 0);\n"
    "    CHECK(mag_mutex_trylock(&lock) == 0 && mag_mutex_unlock(&lock) == 0);\n"
    "    CHECK(mag_rwlock_rdlock(&rw) == 0 && mag_rwlock_trywrlock(&rw) == -EAGAIN);\n"
    "    CHECK(mag_rwlock_unlock(&rw) == 0 && mag_rwlock_trywrlock(&rw) == 0);\n"
    "    CHECK(mag_rwlock_unlock(&rw) == 0);\n"
    "    CHECK(mag_sem_value(&sem) == 2 && mag_sem_acquire(&sem) == 0);\n"
    "    CHECK(mag_sem_value(&sem) == 1 && mag_sem_release(&sem) == 0);\n"
    "    CHECK(!mag_event_is_set(&ev) && mag_event_set(&ev) == 0 && mag_event_wait(&ev) == 0);\n"
    "    CHECK(mag_notify_one(&nt) == 0 && mag_notify_wait(&nt) == 0);\n"
    "    CHECK(mag_cond_signal(&cv) == 0 && mag_cond_broadcast(&cv) == 0);\n"
    "    CHECK(mag_barrier_wait(&one) == MAG_BARRIER_SERIAL);\n"
    "    CHECK(mag_barrier_wait(&local) == MAG_BARRIER_SERIAL);\n"
    "    CHECK(mag_wg_add(&wg, 2) == 0 && mag_wg_done(&wg) == 0 && mag_wg_done(&wg) == 0);\n"
    "    CHECK(mag_wg_wait(&wg) == 0);\n"
    "    mag_chan_t *c = mag_chan_create(sizeof(int), 1);\n"
    "    int in = 42, out = 0;\n"
    "    CHECK(c && mag_chan_send(c, &in) == 0);\n"
    "    mag_select_case_t cases[1] = {{c, MAG_SELECT_RECV, &out, 0}};\n"
    "    CHECK(mag_select(cases, 1) == 0 && out == 42 && g.value == 1);\n"
    "    mag_chan_destroy(c);\n"
    "    std::puts(\"c++ program ok\");\n"
    "    return 0;\n"
    "}\n";

/* Size and alignment in C of every public type a caller can hold by value;
 * the C++ program asserts the same figures. */
/* clang-format off */
#define LAYOUT(t) {#t, sizeof(t), _Alignof(t)}
/* clang-format on */
static const struct {
    const char *name;
    size_t size, align;
} layouts[] = {
    LAYOUT(mag_mutex_t),          LAYOUT(mag_rwlock_t),       LAYOUT(mag_sem_t),
    LAYOUT(mag_event_t),          LAYOUT(mag_notify_t),       LAYOUT(mag_cond_t),
    LAYOUT(mag_barrier_t),        LAYOUT(mag_wg_t),           LAYOUT(mag_select_case_t),
    LAYOUT(mag_config_t),         LAYOUT(mag_spawn_opts_t),   LAYOUT(mag_serve_opts_t),
    LAYOUT(mag_process_opts_t),   LAYOUT(mag_pool_stats_t),   LAYOUT(mag_metrics_t),
    LAYOUT(mag_worker_metrics_t), LAYOUT(mag_http_request_t), LAYOUT(mag_http_header_t),
    LAYOUT(mag_http_response_t),  LAYOUT(mag_http_body_t),
};

/* The link flags the library needs, plus the sanitizers this test runs with
 * (a sanitized library only links into a sanitized program). Their runtimes
 * are shared libraries, so their entry points tell which are loaded. */
static void link_flags(char *out, size_t cap)
{
    char san[64] = "";
    if (dlsym(RTLD_DEFAULT, "__asan_init"))
        strcat(san, ",address");
    if (dlsym(RTLD_DEFAULT, "__tsan_init"))
        strcat(san, ",thread");
    if (dlsym(RTLD_DEFAULT, "__ubsan_handle_add_overflow"))
        strcat(san, ",undefined");
    snprintf(out, cap, "%s%s -luring -lck -lpthread", *san ? "-fsanitize=" : "",
             *san ? san + 1 : "");
}

static void check_cxx_program(void)
{
    size_t cap = sizeof cxx_program + 256 * (sizeof layouts / sizeof layouts[0]);
    char *src = malloc(cap);
    ASSERT_TRUE(src != NULL);
    size_t n = (size_t)snprintf(src, cap, "%s", cxx_program);
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        n += (size_t)snprintf(src + n, cap - n,
                              "static_assert(sizeof(%s) == %zu && alignof(%s) == %zu, "
                              "\"%s: C and C++ disagree\");\n",
                              layouts[i].name, layouts[i].size, layouts[i].name, layouts[i].align,
                              layouts[i].name);
    write_file("prog.cpp", src);
    free(src);

    char cmd[4 * PATH_MAX + 512];
    snprintf(cmd, sizeof cmd,
             "%s -std=c++17 -pedantic -Wall -Wextra -Werror -fsyntax-only '-I%s/include' "
             "'%s/prog.cpp'",
             cxx_compiler(), root, tmp);
    if (!check("C++17 program: primitives by value, same layout as C", cmd))
        return;

    /* The library beside this test's directory: BUILD/test/.. */
    char lib[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", lib, sizeof lib - 1);
    lib[k > 0 ? k : 0] = '\0';
    char *slash = strrchr(lib, '/');
    if (slash)
        *slash = '\0';
    slash = strrchr(lib, '/');
    if (!slash || (size_t)(slash - lib) + sizeof "/libmagpie.a" > sizeof lib)
        return;
    strcpy(slash, "/libmagpie.a");
    if (access(lib, R_OK) != 0) {
        printf("note: %s not found: the C++ program is not linked\n", lib);
        return;
    }
    char flags[256];
    link_flags(flags, sizeof flags);
    snprintf(cmd, sizeof cmd, "%s -std=c++17 '-I%s/include' '%s/prog.cpp' '%s' %s -o '%s/prog'",
             cxx_compiler(), root, tmp, lib, flags, tmp);
    if (!check("C++17 program: links with libmagpie.a", cmd))
        return;
    snprintf(cmd, sizeof cmd, "'%s/prog'", tmp);
    check("C++17 program: runs", cmd);
}

static void remove_tmp(void)
{
    static const char *const files[] = {"one.c", "posix.c", "prog.cpp", "prog"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[PATH_MAX];
        unlink(path_join(p, tmp, files[i]));
    }
    rmdir(tmp);
}

int main(void)
{
    if (!find_root())
        TEST_FAIL("include/magpie.h not found above the executable or the working directory");
    if (strchr(root, '\''))
        TEST_SKIP("the tree's path contains a quote, which the compiler commands cannot carry");
    const char *t = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/mag_api_headers.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmp) || strchr(tmp, '\''))
        TEST_FAIL("cannot make a scratch directory in %s", t && *t ? t : "/tmp");
    printf("headers of %s/include, version %s (library %s)\n", root, MAG_VERSION_STRING,
           mag_version());

    /* mag_version is the library's copy of the string the macros spell. */
    char numbers[32];
    snprintf(numbers, sizeof numbers, "%d.%d.%d", MAG_VERSION_MAJOR, MAG_VERSION_MINOR,
             MAG_VERSION_PATCH);
    ASSERT_STR_EQ(numbers, MAG_VERSION_STRING);
    ASSERT_STR_EQ(mag_version(), MAG_VERSION_STRING);

    if (!have_program(c_compiler())) {
        remove_tmp();
        TEST_SKIP("no C compiler (%s) to compile the headers with", c_compiler());
    }
    bool cxx = have_program(cxx_compiler());
    check_headers(cxx);
    check_posix_signals();
    if (cxx)
        check_cxx_program();
    remove_tmp();

    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    if (!cxx)
        TEST_SKIP("%s not installed: the C++ checks did not run (the C checks passed)",
                  cxx_compiler());
    return 0;
}
