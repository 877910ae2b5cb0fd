/*
 * observe/trace.c - run tracking and the timeline trace (MAG_TRACE).
 *
 * Each worker records events in a ring of its own, written by that worker
 * only, without locks or atomics: when the ring is full the oldest events are
 * overwritten, so a trace shows the last MAG_TRACE_EVENTS events of every
 * worker (the count dropped is written in the file's otherData). At shutdown,
 * after every worker thread has been joined, the rings are written as a
 * Chrome trace (the JSON that chrome://tracing and ui.perfetto.dev open):
 *
 *   - a task's run is a complete event ("X") on its worker's track (tid =
 *     worker index), named after the task, with how the run ended;
 *   - a worker's sleep in its ring is an "X" named "parked";
 *   - a task's wait between runs is an async span ("b" / "e", id = task id)
 *     named after what it waits on: io, timer, mutex, join, ...;
 *   - a wake-up or a spawn is a flow arrow ("s" on the waker's track, "f" on
 *     the run it caused), which is what shows work moving between workers;
 *   - a steal is an instant event ("i") on the thief's track.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "observe/observe.h"

static mag__trace_ev_t *ev_next(mag__obs_worker_t *o, uint16_t kind, uint64_t ts, uint64_t id)
{
    mag__trace_ev_t *e = &o->ring[o->head++ & o->mask];
    e->kind = kind;
    e->ts = ts;
    e->id = id;
    e->dur = 0;
    e->arg = 0;
    e->n = 0;
    return e;
}

/* ---- the hooks ------------------------------------------------------------ */

static mag__obs_worker_t *rec(void *ctx, const mag__worker_t *w)
{
    return &((mag__obs_shared_t *)ctx)->ow[w->index];
}

static void task_init(void *ctx, mag_task_t *t)
{
    /* relaxed: before the record is registered (a release), which publishes
     * it to the dumps (mag__task_peek). */
    atomic_store_explicit(&t->hook_words[MAG__OBS_SPAWN_NS], mag__now(), memory_order_relaxed);
}

static void job_begin(void *ctx, mag_task_t *t)
{
    /* relaxed: for task dumps ("running for ..."). */
    atomic_store_explicit(&t->hook_words[MAG__OBS_RUN_START_NS], mag__now(),
                          memory_order_relaxed);
}

static uint64_t track_run_begin(mag__obs_worker_t *o, mag_task_t *t)
{
    uint64_t now = mag__now();
    /* relaxed: the watchdog reads it back (mag__obs_running_task, whose
     * generation check drops a copy of another use of the record) to
     * confirm the run it saw is still going. */
    atomic_store_explicit(&t->hook_words[MAG__OBS_RUN_START_NS], now, memory_order_relaxed);
    atomic_store_explicit(&o->task, t, memory_order_relaxed);
    /* release: pairs with the acquire load of start_ns in the watchdog and
     * mag_metrics, which then read the task stored above. */
    atomic_store_explicit(&o->start_ns, now, memory_order_release);
    return now;
}

static uint64_t track_run_end(mag__obs_worker_t *o, mag_task_t *t)
{
    uint64_t start = atomic_load_explicit(&o->start_ns, memory_order_relaxed);
    /* relaxed: readers confirm a run through the record (see above). */
    atomic_store_explicit(&o->start_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&o->task, NULL, memory_order_relaxed);
    atomic_store_explicit(&t->hook_words[MAG__OBS_RUN_START_NS], 0, memory_order_relaxed);
    return start;
}

static void run_begin(void *ctx, mag__worker_t *w, mag_task_t *t)
{
    track_run_begin(rec(ctx, w), t);
}

static void run_end(void *ctx, mag__worker_t *w, mag_task_t *t)
{
    track_run_end(rec(ctx, w), t);
}

static void trace_run_begin(void *ctx, mag__worker_t *w, mag_task_t *t)
{
    mag__obs_worker_t *o = rec(ctx, w);
    uint64_t now = track_run_begin(o, t);
    /* relaxed: the queue that handed t to this worker published the flag
     * (see trace_wake). */
    if (atomic_load_explicit(&t->hook_words[MAG__OBS_FLOW], memory_order_relaxed)) {
        atomic_store_explicit(&t->hook_words[MAG__OBS_FLOW], 0, memory_order_relaxed);
        ev_next(o, MAG__EV_FLOW_F, now, t->id);
    }
    /* Only the task writes its wait_kind, and it is not running yet: what we
     * read is what its last run ended with (see trace_run_end). */
    int kind = atomic_load_explicit(&t->wait_kind, memory_order_relaxed);
    if (kind != MAG__WAIT_NONE)
        ev_next(o, MAG__EV_WAIT_E, now, t->id)->arg = (uint32_t)kind;
}

static void trace_run_end(void *ctx, mag__worker_t *w, mag_task_t *t)
{
    mag__obs_worker_t *o = rec(ctx, w);
    uint64_t start = track_run_end(o, t);
    uint64_t now = mag__now();
    /* Still RUNNING here: no other worker can resume it before the
     * CAS to PARKED (the scheduler's, or the next task's after a direct
     * switch), so its name and wait_kind are stable. */
    int kind = atomic_load_explicit(&t->wait_kind, memory_order_relaxed);
    mag__trace_ev_t *e = ev_next(o, MAG__EV_RUN, start, t->id);
    e->dur = now - start;
    e->arg = (uint32_t)w->switch_reason;
    e->n = (uint16_t)kind;
    memcpy(e->name, t->name, sizeof e->name);
    if (w->switch_reason == MAG__SWITCH_PARK && kind != MAG__WAIT_NONE)
        ev_next(o, MAG__EV_WAIT_B, now, t->id)->arg = (uint32_t)kind;
}

static void trace_wake(void *ctx, mag__worker_t *w, mag_task_t *t, bool is_new)
{
    /* t is woken or fresh and in no queue yet: the push that follows publishes
     * the flag to the worker that runs it. */
    atomic_store_explicit(&t->hook_words[MAG__OBS_FLOW], 1, memory_order_relaxed);
    ev_next(rec(ctx, w), MAG__EV_FLOW_S, mag__now(), t->id)->n = is_new;
}

static void trace_steal(void *ctx, mag__worker_t *w, unsigned victim, unsigned n)
{
    mag__trace_ev_t *e = ev_next(rec(ctx, w), MAG__EV_STEAL, mag__now(), 0);
    e->arg = victim;
    e->n = (uint16_t)n;
}

static void trace_park(void *ctx, mag__worker_t *w, uint64_t t0, uint64_t t1)
{
    ev_next(rec(ctx, w), MAG__EV_PARK, t0, 0)->dur = t1 - t0;
}

const mag__hooks_t mag__obs_track_hooks = {
    .task_init = task_init,
    .run_begin = run_begin,
    .run_end = run_end,
    .job_begin = job_begin,
};

const mag__hooks_t mag__obs_trace_hooks = {
    .task_init = task_init,
    .run_begin = trace_run_begin,
    .run_end = trace_run_end,
    .job_begin = job_begin,
    .wake = trace_wake,
    .steal = trace_steal,
    .park = trace_park,
};

/* ---- rings --------------------------------------------------------------- */

int mag__trace_alloc(mag__obs_worker_t *ow, unsigned nworkers, size_t events)
{
    size_t cap = 64;
    while (cap < events && cap < MAG__TRACE_EVENTS_MAX)
        cap <<= 1;
    for (unsigned i = 0; i < nworkers; i++) {
        /* calloc of megabytes maps fresh zero pages: untouched parts cost
         * no memory. */
        ow[i].ring = calloc(cap, sizeof(mag__trace_ev_t));
        if (!ow[i].ring) {
            mag__trace_free(ow, nworkers);
            return -ENOMEM;
        }
        ow[i].head = 0;
        ow[i].mask = cap - 1;
    }
    return 0;
}

void mag__trace_free(mag__obs_worker_t *ow, unsigned nworkers)
{
    for (unsigned i = 0; i < nworkers; i++) {
        free(ow[i].ring);
        ow[i].ring = NULL;
    }
}

/* ---- the JSON file ------------------------------------------------------- */

static const char *end_reason(const mag__trace_ev_t *e, char *buf, size_t cap)
{
    switch (e->arg) {
    case MAG__SWITCH_YIELD:
        return "yield";
    case MAG__SWITCH_EXIT:
        return "exit";
    case MAG__SWITCH_PARK:
        if (e->n == MAG__WAIT_NONE)
            return "park";
        snprintf(buf, cap, "wait %s", mag__wait_name(e->n));
        return buf;
    default:
        return "?";
    }
}

static void put_event(FILE *f, const mag__trace_ev_t *e, int pid, unsigned tid, uint64_t epoch)
{
    double ts = e->ts > epoch ? (double)(e->ts - epoch) / 1000.0 : 0.0;
    char buf[48];
    if (e->kind < MAG__EV_RUN || e->kind > MAG__EV_STEAL)
        return;
    fputs(",\n", f); /* every event follows the metadata records */
    switch (e->kind) {
    case MAG__EV_RUN:
        fputs("{\"name\":", f);
        if (e->name[0]) {
            mag__json_string(f, e->name, sizeof e->name);
        } else {
            fprintf(f, "\"task %llu\"", (unsigned long long)e->id);
        }
        fprintf(f,
                ",\"cat\":\"task\",\"ph\":\"X\",\"pid\":%d,\"tid\":%u,\"ts\":%.3f,"
                "\"dur\":%.3f,\"args\":{\"id\":%llu,\"end\":\"%s\"}}",
                pid, tid, ts, (double)e->dur / 1000.0, (unsigned long long)e->id,
                end_reason(e, buf, sizeof buf));
        break;
    case MAG__EV_PARK:
        fprintf(f,
                "{\"name\":\"parked\",\"cat\":\"sched\",\"ph\":\"X\",\"pid\":%d,\"tid\":%u,"
                "\"ts\":%.3f,\"dur\":%.3f}",
                pid, tid, ts, (double)e->dur / 1000.0);
        break;
    case MAG__EV_WAIT_B:
    case MAG__EV_WAIT_E:
        fprintf(f,
                "{\"name\":\"%s\",\"cat\":\"wait\",\"ph\":\"%c\",\"id\":%llu,\"pid\":%d,"
                "\"tid\":%u,\"ts\":%.3f}",
                mag__wait_name((int)e->arg), e->kind == MAG__EV_WAIT_B ? 'b' : 'e',
                (unsigned long long)e->id, pid, tid, ts);
        break;
    case MAG__EV_FLOW_S:
    case MAG__EV_FLOW_F:
        fprintf(f,
                "{\"name\":\"wake\",\"cat\":\"flow\",\"ph\":\"%s,\"id\":%llu,\"pid\":%d,"
                "\"tid\":%u,\"ts\":%.3f%s}",
                e->kind == MAG__EV_FLOW_S ? "s\"" : "f\",\"bp\":\"e\"", (unsigned long long)e->id,
                pid, tid, ts,
                e->kind == MAG__EV_FLOW_S && e->n ? ",\"args\":{\"spawn\":true}" : "");
        break;
    case MAG__EV_STEAL:
        fprintf(f,
                "{\"name\":\"steal\",\"cat\":\"sched\",\"ph\":\"i\",\"s\":\"t\",\"pid\":%d,"
                "\"tid\":%u,\"ts\":%.3f,\"args\":{\"from\":%u,\"tasks\":%u}}",
                pid, tid, ts, e->arg, (unsigned)e->n);
        break;
    }
}

int mag__trace_write(mag__obs_worker_t *ow, unsigned nworkers, uint64_t epoch_ns, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    setvbuf(f, NULL, _IOFBF, 1 << 16);
    int pid = (int)getpid();
    uint64_t dropped = 0, cap = ow[0].mask + 1;
    fprintf(f, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
    fprintf(f,
            "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
            "\"args\":{\"name\":\"magpie\"}}",
            pid);
    for (unsigned i = 0; i < nworkers; i++) {
        fprintf(f,
                ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%u,"
                "\"args\":{\"name\":\"worker %u\"}},\n"
                "{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":%d,\"tid\":%u,"
                "\"args\":{\"sort_index\":%u}}",
                pid, i, i, pid, i, i);
        mag__obs_worker_t *o = &ow[i];
        uint64_t first = o->head > cap ? o->head - cap : 0;
        dropped += first;
        for (uint64_t k = first; k < o->head; k++)
            put_event(f, &o->ring[k & o->mask], pid, i, epoch_ns);
    }
    fprintf(f, "\n],\"otherData\":{\"dropped_events\":%llu,\"events_per_worker\":%llu}}\n",
            (unsigned long long)dropped, (unsigned long long)cap);
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0 && !rc)
        rc = -errno;
    return rc;
}
