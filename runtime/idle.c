/*
 * runtime/idle.c - the idle protocol: which workers are parked, how many are
 * searching for work, and whom to wake when work appears.
 *
 * rt->idle packs the number of searching workers (high 16 bits) and of
 * unparked workers (low 16 bits); rt->sleepers lists the parked ones under
 * idle_lock. At most half of the workers search at once; the last searcher
 * to find work wakes another, so that work spreads without a thundering herd
 * (the protocol Tokio and Go's scheduler use).
 */
#include "runtime/idle.h"
#include "runtime/queue.h"
#include "runtime/ring.h"

#define IDLE_SEARCH_ONE (1u << 16)
#define IDLE_UNPARK_ONE 1u
#define IDLE_SEARCHING(s) ((s) >> 16)
#define IDLE_UNPARKED(s) ((s)&0xffffu)

void mag__notify_parked(mag_runtime_t *rt)
{
    /* The fence orders our queue push (made before the call) before this
     * load of idle; it pairs with the seq_cst read-modify-write in
     * mag__idle_to_parked and mag__idle_stop_searching and the seq_cst loads
     * in work_pending_anywhere that follow each: a worker about to park
     * either sees the work we queued or is seen here.
     * (A plain load could pass the buffered store of the push on x86.) A
     * fence rather than Tokio's fetch_add(0): it does not take the idle
     * word's cache line exclusively on every spawn and wake. */
    atomic_thread_fence(memory_order_seq_cst);
    uint32_t s = atomic_load_explicit(&rt->idle, memory_order_relaxed);
    if (IDLE_SEARCHING(s) != 0 || IDLE_UNPARKED(s) >= rt->nworkers)
        return;
    pthread_mutex_lock(&rt->idle_lock);
    s = atomic_load_explicit(&rt->idle, memory_order_seq_cst);
    if (IDLE_SEARCHING(s) != 0 || IDLE_UNPARKED(s) >= rt->nworkers || !rt->nsleepers) {
        pthread_mutex_unlock(&rt->idle_lock);
        return;
    }
    unsigned idx = rt->sleepers[--rt->nsleepers];
    /* The woken worker starts out searching. */
    atomic_fetch_add_explicit(&rt->idle, IDLE_SEARCH_ONE | IDLE_UNPARK_ONE, memory_order_seq_cst);
    mag__worker_t *w = rt->workers[idx];
    pthread_mutex_unlock(&rt->idle_lock);
    mag__worker_wake(w);
}

static bool in_sleepers(mag_runtime_t *rt, unsigned idx)
{
    for (unsigned i = 0; i < rt->nsleepers; i++)
        if (rt->sleepers[i] == idx)
            return true;
    return false;
}

bool mag__idle_listed(mag__worker_t *w)
{
    pthread_mutex_lock(&w->rt->idle_lock);
    bool listed = in_sleepers(w->rt, w->index);
    pthread_mutex_unlock(&w->rt->idle_lock);
    return listed;
}

bool mag__idle_to_searching(mag__worker_t *w)
{
    if (w->searching)
        return true;
    mag_runtime_t *rt = w->rt;
    uint32_t s = atomic_load_explicit(&rt->idle, memory_order_seq_cst);
    if (2 * IDLE_SEARCHING(s) >= rt->nworkers)
        return false;
    atomic_fetch_add_explicit(&rt->idle, IDLE_SEARCH_ONE, memory_order_seq_cst);
    w->searching = true;
    return true;
}

void mag__idle_from_searching(mag__worker_t *w)
{
    if (!w->searching)
        return;
    w->searching = false;
    uint32_t prev = atomic_fetch_sub_explicit(&w->rt->idle, IDLE_SEARCH_ONE, memory_order_seq_cst);
    if (IDLE_SEARCHING(prev) == 1) /* the last searcher found work: wake one more */
        mag__notify_parked(w->rt);
}

/* A searcher that found nothing to steal stops searching before its last
 * look at its own ring and timers: what it finds there is its own work, not
 * a sign that there is more to share, so it wakes nobody for it (Tokio's
 * searcher stops the same way, on its way to park). Waking another for it
 * cost a doorbell and a park per request on a server whose workers each
 * wait for their own connections. The last searcher still checks for work
 * queued elsewhere while it searched: whoever queued it saw a searcher and
 * woke nobody. The seq_cst subtraction and the seq_cst loads in
 * work_pending_anywhere pair with the fence in mag__notify_parked: either
 * the queuer saw no searcher and woke someone, or we see its work. */
void mag__idle_stop_searching(mag__worker_t *w)
{
    if (!w->searching)
        return;
    w->searching = false;
    uint32_t prev = atomic_fetch_sub_explicit(&w->rt->idle, IDLE_SEARCH_ONE, memory_order_seq_cst);
    if (IDLE_SEARCHING(prev) == 1 && mag__work_pending_anywhere(w->rt))
        mag__notify_parked(w->rt);
}

bool mag__idle_all_busy(mag_runtime_t *rt)
{
    /* relaxed: a hint. A worker that parks just after only misses a task
     * that is running anyway; its next yield looks again. */
    uint32_t s = atomic_load_explicit(&rt->idle, memory_order_relaxed);
    return IDLE_UNPARKED(s) >= rt->nworkers && IDLE_SEARCHING(s) == 0;
}

/* Returns true if this was the last searcher. */
bool mag__idle_to_parked(mag__worker_t *w)
{
    mag_runtime_t *rt = w->rt;
    pthread_mutex_lock(&rt->idle_lock);
    uint32_t dec = IDLE_UNPARK_ONE | (w->searching ? IDLE_SEARCH_ONE : 0);
    uint32_t prev = atomic_fetch_sub_explicit(&rt->idle, dec, memory_order_seq_cst);
    rt->sleepers[rt->nsleepers++] = w->index;
    pthread_mutex_unlock(&rt->idle_lock);
    bool last = w->searching && IDLE_SEARCHING(prev) == 1;
    w->searching = false;
    return last;
}

/* After waking: if still listed as a sleeper (woken by I/O, a timer or a
 * spurious wake-up rather than by notify_parked), take ourselves off the
 * list. Returns true if we were notified (and are now counted searching). */
bool mag__idle_from_parked(mag__worker_t *w)
{
    mag_runtime_t *rt = w->rt;
    pthread_mutex_lock(&rt->idle_lock);
    bool listed = false;
    for (unsigned i = 0; i < rt->nsleepers; i++) {
        if (rt->sleepers[i] == w->index) {
            rt->sleepers[i] = rt->sleepers[--rt->nsleepers];
            listed = true;
            break;
        }
    }
    if (listed)
        atomic_fetch_add_explicit(&rt->idle, IDLE_UNPARK_ONE, memory_order_seq_cst);
    pthread_mutex_unlock(&rt->idle_lock);
    w->searching = !listed;
    return !listed;
}
