/*
 * observe/metrics.c - mag_metrics, mag_dump_tasks and what they share with
 * the watchdog and the stats server.
 *
 * Nothing here stops a worker. Counters are the workers' own relaxed
 * atomics. Task records are found by walking them all (mag__task_pool_each)
 * and read through mag__task_peek, which copies a record that may be freed
 * and spawned anew under it and tells whether the copy is of one task of
 * this runtime (no lock: spawns and finishes take none). Stacks are read
 * through process_vm_readv and mincore, which fail cleanly on a stack
 * unmapped under our feet instead of faulting.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "magpie/metrics.h"
#include "magpie/pool.h"
#include "observe/observe.h"

static const char *const wait_names[] = {
    [MAG__WAIT_NONE] = "nothing",      [MAG__WAIT_IO] = "io",
    [MAG__WAIT_TIMER] = "timer",       [MAG__WAIT_JOIN] = "join",
    [MAG__WAIT_GROUP] = "group",       [MAG__WAIT_MUTEX] = "mutex",
    [MAG__WAIT_RWLOCK] = "rwlock",     [MAG__WAIT_SEM] = "semaphore",
    [MAG__WAIT_EVENT] = "event",       [MAG__WAIT_NOTIFY] = "notify",
    [MAG__WAIT_COND] = "cond",         [MAG__WAIT_BARRIER] = "barrier",
    [MAG__WAIT_WG] = "waitgroup",      [MAG__WAIT_CHAN] = "channel",
    [MAG__WAIT_SELECT] = "select",     [MAG__WAIT_BLOCKING] = "blocking-pool",
    [MAG__WAIT_PROC] = "process-pool", [MAG__WAIT_SIGNAL] = "signal",
};

const char *mag__wait_name(int kind)
{
    if (kind < 0 || (size_t)kind >= sizeof wait_names / sizeof wait_names[0] || !wait_names[kind])
        return "something";
    return wait_names[kind];
}

/* ---- the task running on a worker ----------------------------------------- */

/* If t is still in the run that began at start_ns, its id and name, copied
 * from one use of the record: the task that is running. */
bool mag__obs_running_task(mag_runtime_t *rt, mag_task_t *t, uint64_t start_ns, uint64_t *id,
                           char name[32])
{
    mag__task_view_t v;
    if (!t || !start_ns || !mag__task_peek(t, rt, &v, true) ||
        v.hook_words[MAG__OBS_RUN_START_NS] != start_ns)
        return false;
    *id = v.id;
    memcpy(name, v.name, 32);
    return true;
}

/* ---- mag_metrics ------------------------------------------------------------ */

static uint64_t rd(const _Atomic uint64_t *c)
{
    /* relaxed: owner-written counters, read one by one (see the header). */
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void read_worker(mag__worker_t *w, mag_worker_metrics_t *m, uint64_t now, uint64_t elapsed)
{
    const mag__worker_stats_t *s = &w->stats;
    m->polls = rd(&s->polls);
    m->steal_attempts = rd(&s->steal_attempts);
    m->steals = rd(&s->steals);
    m->stolen_tasks = rd(&s->stolen_tasks);
    m->parks = rd(&s->parks);
    m->unparks = rd(&s->unparks);
    m->lifo_hits = rd(&s->lifo_hits);
    m->overflows = rd(&s->overflows);
    m->remote_wakes = rd(&s->remote_wakes);
    m->io_submitted = rd(&s->io_submitted);
    m->io_completed = rd(&s->io_completed);
    uint64_t since = rd(&s->park_start_ns);
    m->parked = since != 0;
    m->parked_ns = rd(&s->parked_ns) + (since && now > since ? now - since : 0);
    m->busy_ns = elapsed > m->parked_ns ? elapsed - m->parked_ns : 0;
    m->queue_depth = mag__deque_len(&w->deque) + atomic_load_explicit(&w->spill_len, memory_order_relaxed);
    m->timers = rd(&w->wheel.count);
}

static void add_worker(mag_worker_metrics_t *sum, const mag_worker_metrics_t *m)
{
    sum->polls += m->polls;
    sum->steal_attempts += m->steal_attempts;
    sum->steals += m->steals;
    sum->stolen_tasks += m->stolen_tasks;
    sum->parks += m->parks;
    sum->unparks += m->unparks;
    sum->lifo_hits += m->lifo_hits;
    sum->overflows += m->overflows;
    sum->remote_wakes += m->remote_wakes;
    sum->io_submitted += m->io_submitted;
    sum->io_completed += m->io_completed;
    sum->busy_ns += m->busy_ns;
    sum->parked_ns += m->parked_ns;
    sum->queue_depth += m->queue_depth;
    sum->timers += m->timers;
}

/* The task running on each worker, with its name. */
static void read_running(mag_runtime_t *rt, mag_metrics_t *out, uint64_t now)
{
    mag_task_t **task = calloc(rt->nworkers, sizeof *task);
    uint64_t *start = calloc(rt->nworkers, sizeof *start);
    bool any = false;
    mag__obs_worker_t *ow = mag__obs_workers(rt);
    for (unsigned i = 0; ow && task && start && i < rt->nworkers; i++) {
        mag__obs_worker_t *o = &ow[i];
        /* acquire: pairs with the release in mag__obs_run_begin_slow. */
        start[i] = atomic_load_explicit(&o->start_ns, memory_order_acquire);
        task[i] = atomic_load_explicit(&o->task, memory_order_relaxed);
        any |= start[i] != 0;
    }
    for (unsigned i = 0; any && i < rt->nworkers; i++) {
        mag_worker_metrics_t *m = &out->workers[i];
        if (mag__obs_running_task(rt, task[i], start[i], &m->task_id, m->task_name))
            m->task_run_ns = now > start[i] ? now - start[i] : 0;
    }
    free(task);
    free(start);
}

int mag_metrics(mag_runtime_t *rt, mag_metrics_t *out)
{
    if (!out)
        return -EINVAL;
    if (!rt)
        rt = mag_runtime_current();
    if (!rt)
        return -EINVAL; /* *out untouched, as for every rejected call */
    mag_worker_metrics_t *workers = calloc(rt->nworkers, sizeof *workers);
    if (!workers)
        return -ENOMEM;
    memset(out, 0, sizeof *out);
    out->workers = workers;
    uint64_t now = mag__now();
    out->now_ns = now;
    out->uptime_ns = now > rt->start_ns ? now - rt->start_ns : 0;
    out->nworkers = rt->nworkers;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        read_worker(rt->workers[i], &out->workers[i], now, out->uptime_ns);
        add_worker(&out->total, &out->workers[i]);
    }
    if (mag__obs_workers(rt))
        read_running(rt, out, now);
    /* relaxed: gauges and counters; nothing is published through them. */
    out->inject_depth = atomic_load_explicit(&rt->inject_len, memory_order_relaxed);
    out->live_tasks = mag__tasks_live(rt);
    mag__tasks_counted(rt, &out->spawned, &out->completed);
    mag_pool_stats_t ps;
    mag_pool_stats(rt, &ps); /* zeros when the runtime has no pools */
    out->blocking.threads = ps.blocking_threads;
    out->blocking.busy =
        ps.blocking_threads > ps.blocking_idle ? ps.blocking_threads - ps.blocking_idle : 0;
    out->blocking.queued = ps.blocking_queued;
    out->blocking.jobs = ps.blocking_jobs;
    out->proc.workers = ps.proc_workers;
    out->proc.busy = ps.proc_workers > ps.proc_idle ? ps.proc_workers - ps.proc_idle : 0;
    out->proc.jobs = ps.proc_jobs;
    out->proc.crashes = ps.proc_replaced;
    return 0;
}

void mag_metrics_free(mag_metrics_t *m)
{
    if (!m)
        return;
    free(m->workers);
    m->workers = NULL;
    m->nworkers = 0;
}

/* ---- JSON, for the stats socket ------------------------------------------- */

static void json_worker(FILE *f, const mag_worker_metrics_t *m)
{
    fprintf(f,
            "{\"polls\":%llu,\"steal_attempts\":%llu,\"steals\":%llu,\"stolen_tasks\":%llu,"
            "\"parks\":%llu,\"unparks\":%llu,\"lifo_hits\":%llu,\"overflows\":%llu,"
            "\"remote_wakes\":%llu,\"io_submitted\":%llu,\"io_completed\":%llu,"
            "\"busy_ns\":%llu,\"parked_ns\":%llu,\"queue_depth\":%llu,\"timers\":%llu,"
            "\"parked\":%s",
            (unsigned long long)m->polls, (unsigned long long)m->steal_attempts,
            (unsigned long long)m->steals, (unsigned long long)m->stolen_tasks,
            (unsigned long long)m->parks, (unsigned long long)m->unparks,
            (unsigned long long)m->lifo_hits, (unsigned long long)m->overflows,
            (unsigned long long)m->remote_wakes, (unsigned long long)m->io_submitted,
            (unsigned long long)m->io_completed, (unsigned long long)m->busy_ns,
            (unsigned long long)m->parked_ns, (unsigned long long)m->queue_depth,
            (unsigned long long)m->timers, m->parked ? "true" : "false");
    if (m->task_id) {
        fprintf(f, ",\"task_id\":%llu,\"task_run_ns\":%llu,\"task_name\":",
                (unsigned long long)m->task_id, (unsigned long long)m->task_run_ns);
        mag__json_string(f, m->task_name, sizeof m->task_name);
    }
    fputc('}', f);
}

void mag__metrics_json(const mag_metrics_t *m, FILE *f)
{
    fprintf(f,
            "{\"pid\":%d,\"now_ns\":%llu,\"uptime_ns\":%llu,\"nworkers\":%u,"
            "\"inject_depth\":%llu,\"live_tasks\":%llu,\"spawned\":%llu,\"completed\":%llu,"
            "\"blocking\":{\"threads\":%llu,\"busy\":%llu,\"queued\":%llu,\"jobs\":%llu},"
            "\"proc\":{\"workers\":%llu,\"busy\":%llu,\"jobs\":%llu,\"crashes\":%llu},"
            "\"total\":",
            (int)getpid(), (unsigned long long)m->now_ns, (unsigned long long)m->uptime_ns,
            m->nworkers, (unsigned long long)m->inject_depth, (unsigned long long)m->live_tasks,
            (unsigned long long)m->spawned, (unsigned long long)m->completed,
            (unsigned long long)m->blocking.threads, (unsigned long long)m->blocking.busy,
            (unsigned long long)m->blocking.queued, (unsigned long long)m->blocking.jobs,
            (unsigned long long)m->proc.workers, (unsigned long long)m->proc.busy,
            (unsigned long long)m->proc.jobs, (unsigned long long)m->proc.crashes);
    json_worker(f, &m->total);
    fputs(",\"workers\":[", f);
    for (unsigned i = 0; i < m->nworkers; i++) {
        if (i)
            fputc(',', f);
        json_worker(f, &m->workers[i]);
    }
    fputs("]}\n", f);
}

/* ---- stack high-water marks ------------------------------------------------- */

static bool safe_read(void *dst, const void *src, size_t n)
{
    struct iovec local = {dst, n}, remote = {(void *)src, n};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n;
}

/* Bytes between the top of the stack and the deepest non-zero byte. A worker
 * writes a task's stack pointer as the task starts and ends, and the stack
 * may be gone by now: it is touched only through safe_read and mincore. Stacks
 * are fresh zero pages when mapped; pages never touched are skipped with
 * mincore. 0 when unknown. */
static size_t stack_hwm(const mag__stack_t *s, unsigned char *page_buf, size_t page)
{
    mag__stack_t rec;
    if (!s || !safe_read(&rec, s, sizeof rec))
        return 0;
    const char *top = rec.top, *lo = rec.lo;
    if (!lo || lo >= top || (size_t)(top - lo) != rec.usable || ((uintptr_t)lo & (page - 1)))
        return 0;
    unsigned char vec[256];
    for (const char *p = lo; p < top;) {
        size_t left = (size_t)(top - p), n = (left + page - 1) / page;
        if (n > sizeof vec)
            n = sizeof vec;
        if (mincore((void *)p, n * page, vec) != 0)
            return 0;
        for (size_t k = 0; k < n; k++, p += page) {
            if (!(vec[k] & 1))
                continue; /* never touched: zeros */
            size_t len = (size_t)(top - p) < page ? (size_t)(top - p) : page;
            if (!safe_read(page_buf, p, len))
                return 0;
            size_t i = p == lo ? sizeof(uint64_t) : 0; /* the canary */
            for (; i < len; i++)
                if (page_buf[i])
                    return (size_t)(top - (p + i));
        }
    }
    return 0;
}

/* ---- mag_dump_tasks --------------------------------------------------------- */

typedef struct task_snap {
    uint64_t id, spawn_ns, run_start;
    const void *wait_obj;
    const mag__stack_t *stack;
    int wait_kind, worker;
    uint32_t state;
    bool cancelled;
    char name[32];
} task_snap_t;

static void fmt_ns(char *buf, size_t cap, uint64_t ns)
{
    if (ns < 1000 * MAG_US)
        snprintf(buf, cap, "%llu us", (unsigned long long)(ns / MAG_US));
    else if (ns < 10 * MAG_SEC)
        snprintf(buf, cap, "%llu ms", (unsigned long long)(ns / MAG_MS));
    else
        snprintf(buf, cap, "%.1f s", (double)ns / (double)MAG_SEC);
}

static void snap_task(const mag__task_view_t *v, task_snap_t *s)
{
    s->id = v->id;
    memcpy(s->name, v->name, sizeof s->name);
    s->spawn_ns = v->hook_words[MAG__OBS_SPAWN_NS];
    s->state = v->state;
    s->run_start = v->hook_words[MAG__OBS_RUN_START_NS];
    s->wait_kind = v->wait_kind;
    s->wait_obj = v->wait_obj;
    s->cancelled = (v->life & MAG__LIFE_CANCELLED) != 0;
    s->worker = v->worker;
    s->stack = v->stack;
}

static void print_task(FILE *out, const task_snap_t *s, uint64_t now, size_t hwm, bool tracked)
{
    char state[96], age[24], stack[24];
    uint32_t st = s->state & MAG__STATUS_MASK;
    if (st == MAG__RUNNING && s->run_start) {
        char d[24];
        fmt_ns(d, sizeof d, now > s->run_start ? now - s->run_start : 0);
        snprintf(state, sizeof state, "running for %s", d);
    } else if (st == MAG__RUNNING && !s->stack && !(s->id >> 63)) {
        /* Spawned and queued: a fresh task is RUNNING (task_state.h). Not
         * a blocking job (its id's top bit, blocking.c), which runs on a
         * pool thread's stack, never its own. (A task whose body has just
         * returned reads so for an instant, between giving its stack back
         * and DONE.) */
        snprintf(state, sizeof state, "runnable (not started)");
    } else if (st == MAG__RUNNING && tracked) {
        /* A task that yielded stays RUNNING while it waits in a queue. */
        snprintf(state, sizeof state, "runnable (yielded)");
    } else if (st == MAG__RUNNING) {
        snprintf(state, sizeof state, "running or yielded");
    } else if (st == MAG__PARKED && s->wait_kind != MAG__WAIT_NONE) {
        snprintf(state, sizeof state, s->wait_obj ? "waiting on %s %p" : "waiting on %s",
                 mag__wait_name(s->wait_kind), s->wait_obj);
    } else if (st == MAG__PARKED) {
        snprintf(state, sizeof state, "parked");
    } else if (st == MAG__RUNNABLE) {
        snprintf(state, sizeof state, "runnable");
    } else if (st == MAG__DONE) {
        snprintf(state, sizeof state, "done, not joined");
    } else {
        snprintf(state, sizeof state, "state %u", st);
    }
    if (s->cancelled)
        strncat(state, " [cancelled]", sizeof state - strlen(state) - 1);
    if (s->spawn_ns)
        fmt_ns(age, sizeof age, now > s->spawn_ns ? now - s->spawn_ns : 0);
    else
        snprintf(age, sizeof age, "-");
    if (hwm)
        snprintf(stack, sizeof stack, "%.1f KiB", (double)hwm / 1024.0);
    else
        snprintf(stack, sizeof stack, "-");
    char worker[16];
    if (s->worker >= 0)
        snprintf(worker, sizeof worker, "%d", s->worker);
    else
        snprintf(worker, sizeof worker, "-");
    fprintf(out, "%10llu  %-24s  %-44s  %6s  %9s  %9s\n", (unsigned long long)s->id,
            s->name[0] ? s->name : "(unnamed)", state, worker, age, stack);
}

typedef struct dump_ctx {
    mag_runtime_t *rt;
    FILE *out;
    uint64_t now;
    unsigned char *page_buf;
    size_t page;
    int count;
} dump_ctx_t;

/* One line per task of the runtime, printed as it is found: the copy is
 * the task's own, and no lock is held while out may block. */
static void dump_visit(mag_task_t *t, void *arg)
{
    dump_ctx_t *d = arg;
    mag__task_view_t v;
    if (!mag__task_peek(t, d->rt, &v, true))
        return;
    task_snap_t s;
    snap_task(&v, &s);
    print_task(d->out, &s, d->now, stack_hwm(s.stack, d->page_buf, d->page),
               mag__obs_workers(d->rt) != NULL);
    d->count++;
}

int mag_dump_tasks(mag_runtime_t *rt, FILE *out)
{
    if (!rt)
        rt = mag_runtime_current();
    if (!rt)
        return -EINVAL;
    if (!out)
        out = stderr;
    dump_ctx_t d = {.rt = rt, .out = out, .page = (size_t)sysconf(_SC_PAGESIZE)};
    d.page_buf = malloc(d.page);
    if (!d.page_buf)
        return -ENOMEM;
    d.now = mag__now();
    fprintf(out, "magpie: task dump: %llu live tasks, %u workers, up %.3f s\n",
            (unsigned long long)mag__tasks_live(rt), rt->nworkers,
            (double)(d.now - rt->start_ns) / (double)MAG_SEC);
    fprintf(out, "%10s  %-24s  %-44s  %6s  %9s  %9s\n", "id", "name", "state", "worker", "age",
            "stack-hwm");
    mag__task_pool_each(dump_visit, &d);
    fflush(out);
    free(d.page_buf);
    return d.count;
}
