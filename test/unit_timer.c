/* The timer wheel alone, on explicit clock values: timers across every level
 * boundary and past the wheel's reach fire at their deadline rounded up to a
 * slot, never before; timers in the past, disarms (of armed, fired and never
 * armed timers, and from another thread, also caught halfway), and
 * mag__wheel_next. */
#include "test/test.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "runtime/sched.h"

/* A worker record with nothing but its wheel, installed as the calling
 * thread's worker so that mag__timer_arm finds it. The tasks are records in
 * the RUNNING state: mag__wake only sets their NOTIFY bit, which is how the
 * test sees which timers fired. */
#define SLOT_NS (1ull << MAG__WHEEL_SHIFT)
_Static_assert(MAG__WHEEL_SLOTS == 64, "LEVEL_TICKS assumes 64 slots a level");
#define LEVEL_TICKS(k) (1ull << (6 * (k))) /* ticks one slot of level k spans */
#define REACH_TICKS LEVEL_TICKS(MAG__WHEEL_LEVELS)

static mag__worker_t *worker;
static mag__wheel_t *wheel;

static void wheel_start(uint64_t now_ns)
{
    worker = calloc(1, sizeof *worker);
    ASSERT_TRUE(worker != NULL);
    mag__wheel_init(&worker->wheel, now_ns);
    wheel = &worker->wheel;
    mag__tls_worker = worker;
}

static void wheel_stop(void)
{
    ASSERT_UEQ(atomic_load(&wheel->count), 0);
    mag__tls_worker = NULL;
    mag__wheel_destroy(wheel);
    free(worker);
    worker = NULL;
    wheel = NULL;
}

static void task_reset(mag_task_t *t)
{
    atomic_store(&t->state, MAG__RUNNING);
}

static bool task_woken(mag_task_t *t)
{
    return (atomic_load(&t->state) & MAG__NOTIFY) != 0;
}

/* The time a timer for when_ns fires at: rounded up to a whole slot. */
static uint64_t due_ns(uint64_t when_ns)
{
    return (when_ns + SLOT_NS - 1) & ~(SLOT_NS - 1);
}

static uint64_t armed(void)
{
    return atomic_load_explicit(&wheel->count, memory_order_relaxed);
}

/* ---- one timer at a time, around every level boundary ------------------ */

/* Arms one timer at now + delta and checks the two ways to reach it: a jump
 * of the clock, and steps from one mag__wheel_next to the next. */
static void one_timer(uint64_t now_ns, uint64_t delta_ns)
{
    static mag_task_t task;
    uint64_t when = now_ns + delta_ns, due = due_ns(when);

    /* By a jump: nothing just before the deadline, then it fires by its
     * deadline plus one slot. */
    wheel_start(now_ns);
    task_reset(&task);
    mag__timer_t t = {0};
    mag__timer_arm(&t, &task, when);
    ASSERT_TRUE(!mag__timer_fired(&t));
    ASSERT_UEQ(armed(), 1);
    uint64_t next = mag__wheel_next(wheel);
    if (next > due || next <= now_ns)
        TEST_FAIL("now %" PRIu64 " + %" PRIu64 ": next %" PRIu64 ", due %" PRIu64, now_ns, delta_ns,
                  next, due);
    ASSERT_EQ(mag__wheel_expire(wheel, when - 1), 0);
    ASSERT_TRUE(!mag__timer_fired(&t) && !task_woken(&task));
    ASSERT_EQ(mag__wheel_expire(wheel, due - 1), 0); /* rounded up, never early */
    ASSERT_TRUE(!mag__timer_fired(&t) && !task_woken(&task));
    ASSERT_EQ(mag__wheel_expire(wheel, due), 1);
    ASSERT_TRUE(mag__timer_fired(&t) && task_woken(&task));
    ASSERT_UEQ(armed(), 0);
    ASSERT_UEQ(mag__wheel_next(wheel), UINT64_MAX);
    ASSERT_EQ(mag__wheel_expire(wheel, due + 100 * SLOT_NS), 0); /* fires once */
    /* Disarmed after it fired: a no-op, once or twice. */
    mag__timer_disarm(&t);
    ASSERT_PTR_EQ(t.wheel, NULL);
    mag__timer_disarm(&t);
    wheel_stop();

    /* By steps: each expiry at mag__wheel_next either fires the timer or
     * cascades it, next never passes the deadline, and the timer fires at
     * exactly its rounded-up deadline. A timer past the wheel's reach waits
     * a lap of the top level per step. */
    wheel_start(now_ns);
    task_reset(&task);
    mag__timer_arm(&t, &task, when);
    uint64_t prev = now_ns;
    int steps = 0;
    for (;;) {
        next = mag__wheel_next(wheel);
        if (next > due || next <= prev)
            TEST_FAIL("now %" PRIu64 " + %" PRIu64 ", step %d: next %" PRIu64 " after %" PRIu64
                      ", due %" PRIu64,
                      now_ns, delta_ns, steps, next, prev, due);
        unsigned n = mag__wheel_expire(wheel, next);
        steps++;
        if (n) {
            ASSERT_EQ(n, 1);
            ASSERT_UEQ(next, due);
            break;
        }
        ASSERT_TRUE(!task_woken(&task));
        ASSERT_LT(steps, MAG__WHEEL_LEVELS + 2 + (int)(delta_ns / SLOT_NS / REACH_TICKS));
        prev = next;
    }
    ASSERT_TRUE(mag__timer_fired(&t) && task_woken(&task));
    ASSERT_UEQ(mag__wheel_next(wheel), UINT64_MAX);
    wheel_stop();
}

static void level_boundaries(void)
{
    /* Clocks where elapsed sits at the start of a top-level slot, just past
     * it, just before the next one (so every deadline crosses the higher
     * levels), and anywhere; deltas around every power of 64 slots. */
    const uint64_t top = LEVEL_TICKS(MAG__WHEEL_LEVELS - 1) * SLOT_NS;
    const uint64_t bases[] = {
        7 * top,
        7 * top + SLOT_NS,
        7 * top + 12345,
        8 * top - SLOT_NS,
        8 * top - 1,
        123456789012345ull,
        1,
    };
    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
        uint64_t now = bases[b];
        for (unsigned k = 0; k <= MAG__WHEEL_LEVELS + 1; k++) {
            uint64_t ticks = LEVEL_TICKS(k);
            const uint64_t deltas[] = {
                ticks * SLOT_NS - SLOT_NS, ticks * SLOT_NS - 1,
                ticks * SLOT_NS,           ticks * SLOT_NS + 1,
                ticks * SLOT_NS + SLOT_NS, ticks * SLOT_NS + 3 * SLOT_NS / 2,
            };
            for (size_t d = 0; d < sizeof deltas / sizeof deltas[0]; d++)
                if (deltas[d] > 0)
                    one_timer(now, deltas[d]);
        }
        one_timer(now, 1);
        one_timer(now, 3 * REACH_TICKS * SLOT_NS + 17); /* three laps away */
        one_timer(now, 100 * REACH_TICKS * SLOT_NS);
    }
}

/* ---- timers in the past, disarms, slots with several timers ------------- */

static void past_and_disarm(void)
{
    const uint64_t now = 1000000 * SLOT_NS + 777;
    mag_task_t tasks[4];
    for (int i = 0; i < 4; i++)
        task_reset(&tasks[i]);
    wheel_start(now);

    /* A timer never armed: disarm is a no-op. */
    mag__timer_t never = {0};
    mag__timer_disarm(&never);
    ASSERT_TRUE(!mag__timer_fired(&never));
    ASSERT_UEQ(armed(), 0);

    /* Due by the start of the slot now is in: fired at once without a
     * wake-up, since the arming task has not parked yet. */
    const uint64_t past[] = {now & ~(SLOT_NS - 1), now - SLOT_NS, now - 5 * SLOT_NS, 1};
    for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) {
        mag__timer_t t = {0};
        mag__timer_arm(&t, &tasks[0], past[i]);
        ASSERT_TRUE(mag__timer_fired(&t));
        ASSERT_UEQ(armed(), 0);
        mag__timer_disarm(&t);
        ASSERT_PTR_EQ(t.wheel, NULL);
    }
    ASSERT_TRUE(!task_woken(&tasks[0]));
    ASSERT_UEQ(mag__wheel_next(wheel), UINT64_MAX);

    /* Passed, but within the current slot: like any deadline it is rounded
     * up, so it fires at the next slot boundary. */
    mag__timer_t late = {0};
    mag__timer_arm(&late, &tasks[0], now - 1);
    ASSERT_TRUE(!mag__timer_fired(&late));
    ASSERT_UEQ(mag__wheel_next(wheel), due_ns(now));
    ASSERT_EQ(mag__wheel_expire(wheel, due_ns(now) - 1), 0);
    ASSERT_TRUE(!task_woken(&tasks[0]));
    ASSERT_EQ(mag__wheel_expire(wheel, due_ns(now)), 1);
    ASSERT_TRUE(mag__timer_fired(&late) && task_woken(&tasks[0]));
    task_reset(&tasks[0]);

    /* Five timers in one slot and one later: disarm the middle, the head
     * and the tail of the slot's list; the others still fire, together. */
    uint64_t t0 = now + SLOT_NS, due = due_ns(now + 10 * SLOT_NS);
    mag__timer_t a = {0}, b = {0}, c = {0}, g = {0}, h = {0}, d = {0};
    mag__timer_arm(&a, &tasks[0], due - 5); /* the list: h g c b a */
    mag__timer_arm(&b, &tasks[1], due - 4);
    mag__timer_arm(&c, &tasks[2], due - 3);
    mag__timer_arm(&g, &tasks[1], due - 2);
    mag__timer_arm(&h, &tasks[2], due - 1);
    mag__timer_arm(&d, &tasks[3], due + 7 * SLOT_NS);
    ASSERT_UEQ(armed(), 6);
    ASSERT_UEQ(mag__wheel_next(wheel), due);
    ASSERT_EQ(mag__wheel_expire(wheel, t0), 0); /* time moves on, nothing due */
    mag__timer_disarm(&c);
    ASSERT_UEQ(armed(), 5);
    ASSERT_TRUE(mag__timer_fired(&c)); /* disarmed: the worker is done with it */
    ASSERT_PTR_EQ(c.wheel, NULL);
    mag__timer_disarm(&c); /* twice: a no-op */
    ASSERT_UEQ(armed(), 5);
    mag__timer_disarm(&h);
    mag__timer_disarm(&a);
    ASSERT_UEQ(armed(), 3);
    ASSERT_UEQ(mag__wheel_next(wheel), due);
    ASSERT_EQ(mag__wheel_expire(wheel, due - 1), 0);
    ASSERT_EQ(mag__wheel_expire(wheel, due), 2);
    ASSERT_TRUE(mag__timer_fired(&b) && mag__timer_fired(&g));
    ASSERT_TRUE(!task_woken(&tasks[0]) && task_woken(&tasks[1]) && !task_woken(&tasks[2]));
    ASSERT_TRUE(!task_woken(&tasks[3]));
    ASSERT_UEQ(mag__wheel_next(wheel), due + 7 * SLOT_NS);

    /* The last timer disarmed: the wheel is empty and says so. */
    mag__timer_disarm(&d);
    ASSERT_UEQ(armed(), 0);
    ASSERT_UEQ(mag__wheel_next(wheel), UINT64_MAX);
    ASSERT_EQ(mag__wheel_expire(wheel, due + 100 * SLOT_NS), 0);
    ASSERT_TRUE(!task_woken(&tasks[3]));

    /* A timer without a task fires and is counted, waking nobody. */
    mag__timer_t e = {0};
    mag__timer_arm(&e, NULL, due + 200 * SLOT_NS);
    ASSERT_EQ(mag__wheel_expire(wheel, due + 200 * SLOT_NS), 1);
    ASSERT_TRUE(mag__timer_fired(&e));

    /* A fired timer may be armed again, in place. */
    task_reset(&tasks[0]);
    mag__timer_arm(&a, &tasks[0], due + 300 * SLOT_NS);
    ASSERT_TRUE(!mag__timer_fired(&a));
    ASSERT_UEQ(armed(), 1);
    ASSERT_EQ(mag__wheel_expire(wheel, due + 300 * SLOT_NS), 1);
    ASSERT_TRUE(task_woken(&tasks[0]));

    /* Disarmed from a far level before it cascades. */
    mag__timer_t f = {0};
    task_reset(&tasks[1]);
    mag__timer_arm(&f, &tasks[1], due + 5 * LEVEL_TICKS(4) * SLOT_NS);
    ASSERT_EQ(mag__wheel_expire(wheel, due + 3 * LEVEL_TICKS(4) * SLOT_NS), 0);
    mag__timer_disarm(&f);
    ASSERT_EQ(mag__wheel_expire(wheel, due + 10 * LEVEL_TICKS(4) * SLOT_NS), 0);
    ASSERT_TRUE(!task_woken(&tasks[1]));
    wheel_stop();
}

/* ---- many timers, the clock driven by jumps or by mag__wheel_next ------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A delay spread over every level and past the wheel's reach: log-uniform
 * from 1 ns to 2^60 ns (about 36 years; the wheel reaches 2^52 ns, 52 days,
 * so the far ones wait in the top level and cascade). */
static uint64_t random_delay(void)
{
    unsigned bits = (unsigned)(rnd() % 61);
    return 1 + (rnd() & ((1ull << bits) - 1));
}

typedef struct entry {
    mag__timer_t t;
    mag_task_t task;
    uint64_t when;
    bool armed; /* armed and neither fired nor disarmed yet */
} entry_t;

/* After the wheel was expired at now: everything due fired, nothing else did,
 * and the wheel's count and next agree with the entries left. */
static unsigned check_after(entry_t *e, size_t n, uint64_t now, unsigned woken, bool stepping)
{
    unsigned fired = 0;
    uint64_t earliest = UINT64_MAX;
    size_t left = 0;
    for (size_t i = 0; i < n; i++) {
        if (!e[i].armed) {
            if (task_woken(&e[i].task))
                TEST_FAIL("timer %zu woke its task while not armed", i);
            continue;
        }
        if (task_woken(&e[i].task)) {
            if (e[i].when > now)
                TEST_FAIL("timer %zu for %" PRIu64 " fired at %" PRIu64, i, e[i].when, now);
            if (stepping && due_ns(e[i].when) != now)
                TEST_FAIL("timer %zu due %" PRIu64 " fired at %" PRIu64 " (stepping)", i,
                          due_ns(e[i].when), now);
            ASSERT_TRUE(mag__timer_fired(&e[i].t));
            e[i].armed = false;
            task_reset(&e[i].task);
            fired++;
            continue;
        }
        if (due_ns(e[i].when) <= now)
            TEST_FAIL("timer %zu due %" PRIu64 " not fired at %" PRIu64, i, due_ns(e[i].when), now);
        ASSERT_TRUE(!mag__timer_fired(&e[i].t));
        if (due_ns(e[i].when) < earliest)
            earliest = due_ns(e[i].when);
        left++;
    }
    ASSERT_EQ(fired, woken);
    ASSERT_UEQ(armed(), left);
    uint64_t next = mag__wheel_next(wheel);
    if (left == 0)
        ASSERT_UEQ(next, UINT64_MAX);
    else if (next > earliest || next <= now)
        TEST_FAIL("next %" PRIu64 " at %" PRIu64 ", earliest due %" PRIu64, next, now, earliest);
    return fired;
}

static void many_timers(bool stepping)
{
    size_t n = TEST_SCALE(2000);
    entry_t *e = calloc(n, sizeof *e);
    ASSERT_TRUE(e != NULL);
    uint64_t now = 5555555555555ull;
    wheel_start(now);
    for (size_t i = 0; i < n; i++) {
        task_reset(&e[i].task);
        e[i].when = now + random_delay();
        mag__timer_arm(&e[i].t, &e[i].task, e[i].when);
        e[i].armed = true;
    }
    size_t fired = 0, disarmed = 0, rearmed = 0;
    uint64_t steps = 0;
    for (;;) {
        uint64_t next = mag__wheel_next(wheel);
        if (next == UINT64_MAX)
            break;
        if (stepping) {
            now = next;
        } else {
            /* A jump: sometimes short of next, sometimes far past it. */
            uint64_t r = rnd() % 4;
            uint64_t gap = next - now;
            now += r == 0 ? gap / 2 + 1 : r == 1 ? gap : gap + (rnd() % (gap * 4 + 1));
        }
        unsigned woken = mag__wheel_expire(wheel, now);
        fired += check_after(e, n, now, woken, stepping);
        steps++;

        /* Now and then disarm an armed timer, or arm a spent one again. */
        size_t i = (size_t)(rnd() % n);
        if (e[i].armed && rnd() % 8 == 0) {
            mag__timer_disarm(&e[i].t);
            e[i].armed = false;
            disarmed++;
        } else if (!e[i].armed && rearmed < n / 2 && rnd() % 2 == 0) {
            e[i].when = now + random_delay();
            mag__timer_arm(&e[i].t, &e[i].task, e[i].when);
            e[i].armed = true;
            rearmed++;
        }
    }
    ASSERT_UEQ(fired + disarmed, n + rearmed);
    printf("%s: %zu timers (%zu armed again), %zu fired, %zu disarmed, %" PRIu64 " steps\n",
           stepping ? "stepping" : "jumping", n, rearmed, fired, disarmed, steps);
    wheel_stop();
    free(e);
}

/* ---- disarms from another thread while the worker expires -------------- */

#define RACE_TIMERS 4096
#define RACE_SPACING (3 * SLOT_NS / 4) /* between deadlines: some slots hold two */
static entry_t *race;
static _Atomic uint64_t race_clock;  /* the worker's clock, for the disarmer */
static _Atomic size_t race_progress; /* even timers disarmed so far */

/* Disarms the even timers, each near its deadline so that many disarms meet
 * the expiry of their timer, then scribbles over it: after disarm returns the
 * worker must not touch the entry again (ThreadSanitizer would see it). */
static void *disarmer(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < RACE_TIMERS; i += 2) {
        while (atomic_load_explicit(&race_clock, memory_order_relaxed) + 2 * SLOT_NS < race[i].when)
            sched_yield();
        mag__timer_disarm(&race[i].t);
        ASSERT_TRUE(mag__timer_fired(&race[i].t));
        memset(&race[i].t, 0xa5, sizeof race[i].t);
        atomic_store_explicit(&race_progress, i / 2 + 1, memory_order_relaxed);
    }
    return NULL;
}

static void disarm_elsewhere(void)
{
    race = calloc(RACE_TIMERS, sizeof *race);
    ASSERT_TRUE(race != NULL);
    uint64_t now = 42 * SLOT_NS;
    wheel_start(now);
    atomic_store(&race_clock, now);
    for (size_t i = 0; i < RACE_TIMERS; i++) {
        task_reset(&race[i].task);
        race[i].when = now + 777 + (i + 1) * RACE_SPACING;
        mag__timer_arm(&race[i].t, &race[i].task, race[i].when);
    }
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, disarmer, NULL), 0);
    /* The clock goes a slot at a time, but never more than three slots past
     * an even timer the disarmer has not reached: the two keep pace. */
    uint64_t woken = 0, end = race[RACE_TIMERS - 1].when + 2 * SLOT_NS;
    while (now < end) {
        size_t next_even = 2 * atomic_load_explicit(&race_progress, memory_order_relaxed);
        if (next_even < RACE_TIMERS && now + SLOT_NS > race[next_even].when + 3 * SLOT_NS) {
            sched_yield();
            continue;
        }
        now += SLOT_NS;
        atomic_store_explicit(&race_clock, now, memory_order_relaxed);
        woken += mag__wheel_expire(wheel, now);
    }
    ASSERT_EQ(pthread_join(th, NULL), 0);
    ASSERT_EQ(mag__wheel_expire(wheel, now + 4000 * SLOT_NS), 0); /* all due had fired */
    ASSERT_UEQ(armed(), 0);
    ASSERT_UEQ(mag__wheel_next(wheel), UINT64_MAX);

    /* Every odd timer fired; an even one fired only if its time came before
     * its disarm; each woke its task at most once. */
    uint64_t notified = 0;
    for (size_t i = 0; i < RACE_TIMERS; i++) {
        if (i % 2 == 1) {
            ASSERT_TRUE(mag__timer_fired(&race[i].t));
            if (!task_woken(&race[i].task))
                TEST_FAIL("odd timer %zu never fired", i);
        }
        notified += task_woken(&race[i].task);
    }
    ASSERT_UEQ(woken, notified);
    printf("race: %" PRIu64 " of %d fired, %" PRIu64 " disarmed first\n", woken, RACE_TIMERS,
           RACE_TIMERS - woken);
    wheel_stop();
    free(race);
}

/* ---- a timer past the reach beside nearer ones on the top level -------- */

/* A timer a lap or more ahead waits in the top-level slot of its deadline,
 * which may be the slot the clock is in. A nearer timer in a later top-level
 * slot must still come first, in mag__wheel_next and in expiry. Returns false
 * where it does not. */
static bool far_beside_near(void)
{
    const uint64_t top_ns = LEVEL_TICKS(MAG__WHEEL_LEVELS - 1) * SLOT_NS;
    const uint64_t now = 1000 * SLOT_NS;
    mag_task_t far_task, near_task;
    task_reset(&far_task);
    task_reset(&near_task);
    wheel_start(now);
    mag__timer_t far = {0}, near = {0};
    mag__timer_arm(&far, &far_task, now + REACH_TICKS * SLOT_NS + 5 * SLOT_NS);
    mag__timer_arm(&near, &near_task, 2 * top_ns); /* about 39 hours away */
    uint64_t next = mag__wheel_next(wheel);
    unsigned woken = mag__wheel_expire(wheel, 2 * top_ns + SLOT_NS);
    bool ok = next <= 2 * top_ns && woken == 1 && task_woken(&near_task);
    if (!ok)
        printf("far_beside_near: next %" PRIu64 " for a timer due %" PRIu64
               ", %u woken at its deadline\n",
               next, 2 * top_ns, woken);
    ASSERT_TRUE(!task_woken(&far_task));
    mag__timer_disarm(&near);
    mag__timer_disarm(&far);
    wheel_stop();
    return ok;
}

/* ---- a disarm from another worker caught halfway ------------------------ */

/* A disarm on another worker wins its compare-and-swap and counts the timer
 * off before it hands the entry back; meanwhile the wheel's owner expires
 * with the count at 0. The cancelled entry is still linked then, and must
 * not be left behind the wheel's time: next_expiry would report its slot a
 * lap ahead and hide a timer armed after it (which then fired seconds to
 * hours late). */
static mag__timer_t halfway;

static void *finish_disarm(void *arg)
{
    (void)arg;
    mag__timer_disarm(&halfway); /* finds it cancelled: hands the entry back */
    return NULL;
}

static void disarm_caught_halfway(void)
{
    const uint64_t base = LEVEL_TICKS(2) * 256; /* ticks, on a level-2 boundary */
    mag_task_t cancelled_task, later_task;
    task_reset(&cancelled_task);
    task_reset(&later_task);
    wheel_start(base * SLOT_NS);
    mag__timer_arm(&halfway, &cancelled_task, (base + 62 * 64 + 5) * SLOT_NS); /* level 1 */
    /* The disarm's first half, as another worker would have done it. */
    uintptr_t word = atomic_load(&halfway.entry->word);
    ASSERT_TRUE(atomic_compare_exchange_strong(&halfway.entry->word, &word, MAG__TENTRY_CANCELLED));
    atomic_fetch_sub(&wheel->count, 1);
    ASSERT_EQ(mag__wheel_expire(wheel, (base + 63 * 64) * SLOT_NS), 0); /* count 0 */
    mag__timer_t later = {0};
    const uint64_t later_due = (base + LEVEL_TICKS(2) + 1) * SLOT_NS; /* level 2 */
    mag__timer_arm(&later, &later_task, later_due);
    ASSERT_LE(mag__wheel_next(wheel), due_ns(later_due));
    ASSERT_EQ(mag__wheel_expire(wheel, due_ns(later_due)), 1);
    ASSERT_TRUE(task_woken(&later_task));
    ASSERT_TRUE(!task_woken(&cancelled_task));
    pthread_t th; /* the disarm's second half, on its own thread */
    ASSERT_EQ(pthread_create(&th, NULL, finish_disarm, NULL), 0);
    ASSERT_EQ(pthread_join(th, NULL), 0);
    ASSERT_EQ(mag__wheel_expire(wheel, due_ns(later_due) + SLOT_NS), 0);
    mag__timer_disarm(&later);
    wheel_stop();
}

int main(void)
{
    level_boundaries();
    past_and_disarm();
    many_timers(true);
    many_timers(false);
    disarm_elsewhere();
    ASSERT_TRUE(far_beside_near());
    disarm_caught_halfway();
    return 0;
}
