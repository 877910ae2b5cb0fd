/*
 * obs_trace - MAG_TRACE writes a Chrome / Perfetto trace at shutdown: valid
 * JSON (checked with python3's json module), task runs from every worker,
 * wake-up flows, waits, parks; with a tiny MAG_TRACE_EVENTS the oldest events
 * are dropped and the file stays valid.
 */
#include "test.h"

#include <errno.h>
#include <unistd.h>

static void spin_us(uint64_t us)
{
    uint64_t end = mag_now() + us * MAG_US;
    while (mag_now() < end)
        ;
}

static int job(void *arg)
{
    (void)arg;
    spin_us(100);
    mag_yield();
    mag_sleep(100 * MAG_US);
    spin_us(50);
    return 0;
}

static bool every_worker_ran(mag_runtime_t *rt)
{
    mag_metrics_t m;
    ASSERT_EQ(mag_metrics(rt, &m), 0);
    bool all = true;
    for (unsigned i = 0; i < m.nworkers; i++)
        all &= m.workers[i].polls > 0;
    mag_metrics_free(&m);
    return all;
}

static int main_task(void *arg)
{
    mag_runtime_t *rt = arg;
    /* Until every worker has run something (a loaded machine may keep one
     * off a core for a while), in rounds of many small jobs. */
    for (int round = 0; round < 200; round++) {
        mag_task_t *h[200];
        for (int i = 0; i < 200; i++) {
            mag_spawn_opts_t o = {.name = i % 2 ? "job-odd" : "job \"even\""};
            ASSERT_EQ(mag_spawn_ex(&h[i], job, NULL, &o), 0);
        }
        for (int i = 0; i < 200; i++)
            ASSERT_EQ(mag_join(h[i], NULL), 0);
        if (round >= 2 && every_worker_ran(rt))
            return 0;
    }
    TEST_FAIL("some worker never ran a task");
}

static void run_traced(const char *path, unsigned workers)
{
    ASSERT_EQ(setenv("MAG_TRACE", path, 1), 0);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = workers;
    mag_runtime_t *rt;
    ASSERT_EQ(mag_runtime_create(&cfg, &rt), 0);
    ASSERT_EQ(unsetenv("MAG_TRACE"), 0);
    int st = -1;
    ASSERT_EQ(mag_runtime_block_on(rt, main_task, rt, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(mag_runtime_shutdown(rt), 0);
    ASSERT_EQ(access(path, R_OK), 0);
}

static const char *check_py =
    "import json, sys\n"
    "d = json.load(open(sys.argv[1]))\n"
    "n, full = int(sys.argv[2]), sys.argv[3] == '1'\n"
    "ev = d['traceEvents']\n"
    "for e in ev:\n"
    "    assert isinstance(e['pid'], int) and isinstance(e['tid'], int), e\n"
    "    assert e['ph'] in 'XsfbeiM', e\n"
    "    if e['ph'] != 'M': assert e['ts'] >= 0 and 0 <= e['tid'] < n, e\n"
    "    if e['ph'] == 'X': assert e['dur'] >= 0, e\n"
    "runs = {e['tid'] for e in ev if e['ph'] == 'X' and e.get('cat') == 'task'}\n"
    "assert runs == set(range(n)), ('task runs on workers', sorted(runs))\n"
    "names = {e['name'] for e in ev if e['ph'] == 'X' and e.get('cat') == 'task'}\n"
    "assert 'job-odd' in names and 'job \"even\"' in names, names\n"
    "threads = {e['tid'] for e in ev if e['ph'] == 'M' and e['name'] == 'thread_name'}\n"
    "assert threads == set(range(n)), threads\n"
    "dropped = d['otherData']['dropped_events']\n"
    "if full:\n"
    "    kinds = {e['ph'] for e in ev}\n"
    "    assert set('XsfbeM') <= kinds, kinds\n"
    "    assert any(e['ph'] == 'b' and e['name'] == 'timer' for e in ev)\n"
    "    assert any(e['ph'] == 'b' and e['name'] == 'join' for e in ev)\n"
    "    assert any(e['ph'] == 'X' and e['name'] == 'parked' for e in ev)\n"
    "    assert dropped == 0, dropped\n"
    "else:\n"
    "    assert dropped > 0, dropped\n"
    "print('%d events, %d dropped, steals %d' % (len(ev), dropped,\n"
    "      sum(1 for e in ev if e['name'] == 'steal')))\n";

static void check(const char *path, unsigned workers, bool full)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 /dev/stdin %s %u %d", path, workers, full);
    FILE *py = popen(cmd, "w");
    ASSERT_TRUE(py != NULL);
    fputs(check_py, py);
    int rc = pclose(py);
    if (rc != 0)
        TEST_FAIL("the trace %s failed the check (status 0x%x)", path, rc);
}

int main(void)
{
    if (system("python3 -c 'import json' >/dev/null 2>&1") != 0)
        TEST_SKIP("python3 is needed to check the JSON");
    char path[64];
    snprintf(path, sizeof path, "/tmp/magpie-trace-%d.json", (int)getpid());
    unsigned workers = test_workers(4);
    run_traced(path, workers);
    check(path, workers, true);

    /* A ring of 64 events per worker: the oldest go, the file stays valid. */
    ASSERT_EQ(setenv("MAG_TRACE_EVENTS", "64", 1), 0);
    run_traced(path, workers);
    ASSERT_EQ(unsetenv("MAG_TRACE_EVENTS"), 0);
    check(path, workers, false);
    unlink(path);
    return 0;
}
