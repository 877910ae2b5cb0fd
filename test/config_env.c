/* config_env - mag_config_init reads every MAG_* variable into its field
 * (k and m suffixes included), ignores a malformed or out-of-range one with a
 * one-line message naming the variable and the range, and
 * mag_runtime_create refuses an out-of-range field with -EINVAL and a line
 * naming the field; the runtime keeps its own copy of the path strings. */
#include "test/test.h"

#include <limits.h>
#include <unistd.h>

static const char *const vars[] = {
    "MAG_WORKERS",
    "MAG_STACK_SIZE",
    "MAG_RING_ENTRIES",
    "MAG_MAX_BLOCKING_THREADS",
    "MAG_BLOCKING_KEEPALIVE_MS",
    "MAG_PROC_WORKERS",
    "MAG_DEBUG",
    "MAG_SLOW_TASK_MS",
    "MAG_STATS",
    "MAG_TRACE",
    "MAG_TRACE_EVENTS",
    "MAG_STACK_GUARDS",
};

/* ---- stderr, captured ---------------------------------------------------- */

static char said[4096]; /* what the library printed between begin and end */
static int saved_fd = -1;
static FILE *capture;

static void begin_capture(void)
{
    fflush(stderr);
    capture = tmpfile();
    ASSERT_TRUE(capture != NULL);
    saved_fd = dup(2);
    ASSERT_GE(saved_fd, 0);
    ASSERT_GE(dup2(fileno(capture), 2), 0);
}

static void end_capture(void)
{
    fflush(stderr);
    dup2(saved_fd, 2); /* first: a failed assertion must be seen */
    close(saved_fd);
    rewind(capture);
    size_t n = fread(said, 1, sizeof said - 1, capture);
    said[n] = 0;
    fclose(capture);
}

static unsigned lines_said(void)
{
    unsigned n = 0;
    for (const char *p = said; *p; p++)
        n += *p == '\n';
    return n;
}

static void init_quiet(mag_config_t *cfg)
{
    begin_capture();
    mag_config_init(cfg);
    end_capture();
    if (said[0])
        TEST_FAIL("mag_config_init said: %s", said);
}

/* Sets var=value, reads the config, and checks that the variable was ignored
 * with exactly one line naming it, its value and the range. */
static void check_ignored(const char *var, const char *value, const char *range, mag_config_t *cfg)
{
    ASSERT_EQ(setenv(var, value, 1), 0);
    begin_capture();
    mag_config_init(cfg);
    end_capture();
    ASSERT_EQ(unsetenv(var), 0);
    char want[256];
    snprintf(want, sizeof want, "magpie: ignoring %s='%s': not %s\n", var, value, range);
    if (strcmp(said, want) != 0)
        TEST_FAIL("%s='%s': expected \"%s\", got \"%s\"", var, value, want, said);
}

/* ---- the cases --------------------------------------------------------------- */

static unsigned default_guards(void)
{
    long max_maps = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &max_maps) != 1)
            max_maps = 65530;
        fclose(f);
    }
    return (unsigned)(max_maps / 4);
}

static void defaults(void)
{
    mag_config_t cfg;
    init_quiet(&cfg);
    ASSERT_EQ(cfg.workers, 0);
    ASSERT_UEQ(cfg.stack_size, MAG_STACK_DEFAULT);
    ASSERT_EQ(cfg.ring_entries, 256);
    ASSERT_EQ(cfg.max_blocking_threads, 512);
    ASSERT_EQ(cfg.blocking_keepalive_ms, 10000);
    ASSERT_EQ(cfg.proc_workers, 0);
    ASSERT_TRUE(!cfg.debug);
    ASSERT_EQ(cfg.slow_task_ms, 100);
    ASSERT_TRUE(cfg.stats_path == NULL);
    ASSERT_TRUE(cfg.trace_path == NULL);
    ASSERT_EQ(cfg.trace_events, 65536);
    ASSERT_EQ(cfg.stack_guards, default_guards());
}

static void valid_values(void)
{
    static const struct {
        const char *var, *value;
    } set[] = {
        {"MAG_WORKERS", "0x10"},
        {"MAG_STACK_SIZE", "64k"},
        {"MAG_RING_ENTRIES", "32768"},
        {"MAG_MAX_BLOCKING_THREADS", "2K"},
        {"MAG_BLOCKING_KEEPALIVE_MS", "0"},
        {"MAG_PROC_WORKERS", "3"},
        {"MAG_DEBUG", "1"},
        {"MAG_SLOW_TASK_MS", "250"},
        {"MAG_STATS", "/tmp/stats.sock"},
        {"MAG_TRACE", "trace.json"},
        {"MAG_TRACE_EVENTS", "1m"},
        {"MAG_STACK_GUARDS", "0"},
    };
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        ASSERT_EQ(setenv(set[i].var, set[i].value, 1), 0);
    mag_config_t cfg;
    init_quiet(&cfg);
    ASSERT_EQ(cfg.workers, 16);
    ASSERT_UEQ(cfg.stack_size, 64 * 1024);
    ASSERT_EQ(cfg.ring_entries, 32768);
    ASSERT_EQ(cfg.max_blocking_threads, 2048);
    ASSERT_EQ(cfg.blocking_keepalive_ms, 0);
    ASSERT_EQ(cfg.proc_workers, 3);
    ASSERT_TRUE(cfg.debug);
    ASSERT_EQ(cfg.slow_task_ms, 250);
    ASSERT_STR_EQ(cfg.stats_path, "/tmp/stats.sock");
    ASSERT_STR_EQ(cfg.trace_path, "trace.json");
    ASSERT_EQ(cfg.trace_events, 1024 * 1024);
    ASSERT_EQ(cfg.stack_guards, 0);

    ASSERT_EQ(setenv("MAG_STACK_SIZE", "1M", 1), 0);
    ASSERT_EQ(setenv("MAG_STACK_GUARDS", "100", 1), 0);
    ASSERT_EQ(setenv("MAG_WORKERS", "1024", 1), 0); /* the limit itself */
    init_quiet(&cfg);
    ASSERT_UEQ(cfg.stack_size, 1024 * 1024);
    ASSERT_EQ(cfg.stack_guards, 100);
    ASSERT_EQ(cfg.workers, 1024);

    /* Decimal whatever its leading zeros: 010 is ten, not octal eight. */
    ASSERT_EQ(setenv("MAG_WORKERS", "010", 1), 0);
    ASSERT_EQ(setenv("MAG_RING_ENTRIES", "0X40", 1), 0);
    init_quiet(&cfg);
    ASSERT_EQ(cfg.workers, 10);
    ASSERT_EQ(cfg.ring_entries, 64);

    /* Empty is the same as unset, silently. */
    ASSERT_EQ(setenv("MAG_STATS", "", 1), 0);
    ASSERT_EQ(setenv("MAG_WORKERS", "", 1), 0);
    init_quiet(&cfg);
    ASSERT_TRUE(cfg.stats_path == NULL);
    ASSERT_EQ(cfg.workers, 0);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        ASSERT_EQ(unsetenv(vars[i]), 0);
}

static void ignored_values(void)
{
    mag_config_t cfg;
    const char *workers = "a number from 0 to 1024";
    check_ignored("MAG_WORKERS", "abc", workers, &cfg);
    ASSERT_EQ(cfg.workers, 0);
    check_ignored("MAG_WORKERS", "1025", workers, &cfg);
    check_ignored("MAG_WORKERS", "-1", workers, &cfg);
    check_ignored("MAG_WORKERS", "4x", workers, &cfg);
    check_ignored("MAG_WORKERS", "2k", workers, &cfg);
    /* Spaces either side, and a 0x with no digit, are not numbers. */
    check_ignored("MAG_WORKERS", " 2", workers, &cfg);
    check_ignored("MAG_WORKERS", "2 ", workers, &cfg);
    check_ignored("MAG_WORKERS", "0x", workers, &cfg);
    check_ignored("MAG_WORKERS", "+2", workers, &cfg);
    ASSERT_EQ(cfg.workers, 0);
    /* Each process-pool worker is a process: no more than workers. */
    check_ignored("MAG_PROC_WORKERS", "100000", "a number from 0 to 1024", &cfg);
    ASSERT_EQ(cfg.proc_workers, 0);

    const char *stack = "0 (the default) or a number from 16384 to 1073741824";
    check_ignored("MAG_STACK_SIZE", "1", stack, &cfg);
    check_ignored("MAG_STACK_SIZE", "2g", stack, &cfg);
    check_ignored("MAG_STACK_SIZE", "2048m", stack, &cfg);
    check_ignored("MAG_STACK_SIZE", "99999999999999999999", stack, &cfg);
    check_ignored("MAG_STACK_SIZE", "18014398509481984k", stack, &cfg); /* 2^54 k: wraps */
    ASSERT_UEQ(cfg.stack_size, MAG_STACK_DEFAULT);

    check_ignored("MAG_RING_ENTRIES", "32769", "a number from 0 to 32768", &cfg);
    ASSERT_EQ(cfg.ring_entries, 256);
    check_ignored("MAG_DEBUG", "yes", "a number from 0 to 1", &cfg);
    check_ignored("MAG_DEBUG", "2", "a number from 0 to 1", &cfg);
    ASSERT_TRUE(!cfg.debug);
    check_ignored("MAG_SLOW_TASK_MS", "5000000000", "a number from 0 to 4294967295", &cfg);
    ASSERT_EQ(cfg.slow_task_ms, 100);
    check_ignored("MAG_TRACE_EVENTS", "67108865", "a number from 0 to 67108864", &cfg);
    check_ignored("MAG_TRACE_EVENTS", "ten", "a number from 0 to 67108864", &cfg);
    ASSERT_EQ(cfg.trace_events, 65536);
    check_ignored("MAG_STACK_GUARDS", "-1", "a number from 0 to 2147483647", &cfg);
    check_ignored("MAG_STACK_GUARDS", "3000m", "a number from 0 to 2147483647", &cfg);
    ASSERT_EQ(cfg.stack_guards, default_guards());

    /* Two bad variables: one line each, the good one still applied. */
    ASSERT_EQ(setenv("MAG_WORKERS", "many", 1), 0);
    ASSERT_EQ(setenv("MAG_RING_ENTRIES", "1m", 1), 0);
    ASSERT_EQ(setenv("MAG_PROC_WORKERS", "2", 1), 0);
    begin_capture();
    mag_config_init(&cfg);
    end_capture();
    ASSERT_EQ(lines_said(), 2);
    ASSERT_TRUE(strstr(said, "MAG_WORKERS='many'") != NULL);
    ASSERT_TRUE(strstr(said, "MAG_RING_ENTRIES='1m'") != NULL);
    ASSERT_EQ(cfg.proc_workers, 2);
    ASSERT_EQ(unsetenv("MAG_WORKERS"), 0);
    ASSERT_EQ(unsetenv("MAG_RING_ENTRIES"), 0);
    ASSERT_EQ(unsetenv("MAG_PROC_WORKERS"), 0);
}

/* Sets one field out of range; create must refuse it, naming the field. */
static void check_refused(const char *field, const char *value, const char *range,
                          void (*spoil)(mag_config_t *))
{
    mag_config_t cfg;
    init_quiet(&cfg);
    spoil(&cfg);
    mag_runtime_t *rt = NULL;
    begin_capture();
    int rc = mag_runtime_create(&cfg, &rt);
    end_capture();
    ASSERT_EQ(rc, -EINVAL);
    ASSERT_TRUE(rt == NULL); /* as initialised: a rejected create leaves it */
    char want[256];
    snprintf(want, sizeof want, "magpie: mag_runtime_create: invalid config: %s is %s, not %s\n",
             field, value, range);
    if (strcmp(said, want) != 0)
        TEST_FAIL("%s: expected \"%s\", got \"%s\"", field, want, said);
}

static void many_workers(mag_config_t *c)
{
    c->workers = 5000;
}
static void tiny_stack(mag_config_t *c)
{
    c->stack_size = 1;
}
static void huge_ring(mag_config_t *c)
{
    c->ring_entries = 1u << 30;
}
static void long_trace(mag_config_t *c)
{
    c->trace_events = (1u << 26) + 1;
}
static void all_guards(mag_config_t *c)
{
    c->stack_guards = UINT_MAX;
}
static void many_processes(mag_config_t *c)
{
    c->proc_workers = 100000;
}

static void refused_fields(void)
{
    check_refused("workers", "5000", "a number from 0 to 1024", many_workers);
    check_refused("stack_size", "1", "0 (the default) or a number from 16384 to 1073741824",
                  tiny_stack);
    check_refused("ring_entries", "1073741824", "a number from 0 to 32768", huge_ring);
    check_refused("trace_events", "67108865", "a number from 0 to 67108864", long_trace);
    check_refused("stack_guards", "4294967295", "a number from 0 to 2147483647", all_guards);
    check_refused("proc_workers", "100000", "a number from 0 to 1024", many_processes);
}

static int nothing(void *arg)
{
    return 0;
}

/* The runtime keeps its own copy of trace_path: the caller's buffer may be
 * gone long before the trace is written at shutdown. */
static void paths_copied(void)
{
    char want[64];
    snprintf(want, sizeof want, "/tmp/magpie-config-%d.json", (int)getpid());
    char *mine = strdup(want);
    ASSERT_TRUE(mine != NULL);
    mag_config_t cfg;
    init_quiet(&cfg);
    cfg.workers = 2;
    cfg.trace_path = mine;
    cfg.trace_events = 64;
    mag_runtime_t *rt;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    memset(mine, 'x', strlen(mine));
    free(mine);
    int st = -1;
    ASSERT_EQ(mag_runtime_block_on(rt, nothing, NULL, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
    ASSERT_EQ(access(want, R_OK), 0);
    unlink(want);
}

int main(void)
{
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        ASSERT_EQ(unsetenv(vars[i]), 0);
    defaults();
    valid_values();
    ignored_values();
    refused_fields();
    paths_copied();
    return 0;
}
