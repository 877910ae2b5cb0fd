/*
 * test/chan_bcast_shared.c - broadcast of reference-counted messages: every
 * subscriber sees the same message (no copy), each message is freed exactly
 * once, when its last holder lets go (lagging and departed subscribers
 * included), and never while a receiver still reads it.
 */
#include "test.h"

#include <stdatomic.h>

typedef struct line {
    _Atomic int refs;
    uint64_t seq;
    size_t len;
    char text[520];
} line_t;

/* Messages allocated and not yet freed: 0 once everything is released. */
static _Atomic long live_lines;

static void line_retain(void *p)
{
    /* relaxed: taking a reference from one already held orders nothing. */
    atomic_fetch_add_explicit(&((line_t *)p)->refs, 1, memory_order_relaxed);
}

static void line_release(void *p)
{
    line_t *l = p;
    /* acq_rel: the last owner sees every write made through other references
     * before it frees the line. */
    int before = atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel);
    if (before <= 0)
        TEST_FAIL("line %" PRIu64 " released once too often", l->seq);
    if (before == 1) {
        memset(l, 0xdd, sizeof *l); /* a late reader would see garbage */
        free(l);
        atomic_fetch_sub_explicit(&live_lines, 1, memory_order_relaxed);
    }
}

static line_t *line_new(uint64_t seq)
{
    line_t *l = malloc(sizeof *l);
    ASSERT_TRUE(l != NULL);
    atomic_init(&l->refs, 1);
    l->seq = seq;
    l->len = sizeof l->text;
    memset(l->text, (int)('a' + seq % 26), l->len);
    atomic_fetch_add_explicit(&live_lines, 1, memory_order_relaxed);
    return l;
}

static void check_line(const line_t *l, uint64_t seq)
{
    ASSERT_UEQ(l->seq, seq);
    for (size_t i = 0; i < l->len; i++)
        if (l->text[i] != (char)('a' + seq % 26))
            TEST_FAIL("line %" PRIu64 " byte %zu corrupted", seq, i);
}

/* One task, three subscribers: one keeps up, one never reads, one reads
 * half and leaves early. */
static int single_task(void *arg)
{
    (void)arg;
    ASSERT_TRUE(mag_bcast_create_shared(0, line_retain, line_release) == NULL);
    ASSERT_TRUE(mag_bcast_create_shared(4, NULL, line_release) == NULL);
    ASSERT_TRUE(mag_bcast_create_shared(4, line_retain, NULL) == NULL);

    mag_bcast_t *b = mag_bcast_create_shared(4, line_retain, line_release);
    ASSERT_TRUE(b != NULL);
    mag_bcast_sub_t *keeps_up = mag_bcast_subscribe(b);
    mag_bcast_sub_t *never_reads = mag_bcast_subscribe(b);
    mag_bcast_sub_t *leaves = mag_bcast_subscribe(b);
    ASSERT_TRUE(keeps_up && never_reads && leaves);

    void *null_msg = NULL;
    ASSERT_EQ(mag_bcast_send(b, &null_msg), -EINVAL);

    for (uint64_t seq = 0; seq < 100; seq++) {
        line_t *l = line_new(seq);
        ASSERT_EQ(mag_bcast_send(b, &l), seq <= 50 ? 3 : 2);
        line_release(l); /* the sender's own reference */

        void *got = NULL;
        ASSERT_EQ(mag_bcast_try_recv(keeps_up, &got, NULL), 0);
        ASSERT_PTR_EQ(got, l); /* the same message: no copy */
        check_line(got, seq);
        line_release(got);
        if (seq < 50 && seq % 2 == 0) {
            uint64_t missed = 0;
            int rc;
            while ((rc = mag_bcast_try_recv(leaves, &got, &missed)) == 0)
                line_release(got);
            ASSERT_TRUE(rc == -EAGAIN || rc == -EOVERFLOW);
        }
        if (seq == 50)
            mag_bcast_unsubscribe(leaves);
    }
    /* Only the four kept slots still hold messages. */
    ASSERT_EQ(atomic_load(&live_lines), 4);

    uint64_t missed = 0;
    void *got = NULL;
    ASSERT_EQ(mag_bcast_recv(never_reads, &got, &missed), -EOVERFLOW);
    ASSERT_UEQ(missed, 96);
    ASSERT_EQ(mag_bcast_recv(never_reads, &got, NULL), 0);
    check_line(got, 96);
    mag_bcast_destroy(b); /* got keeps its own reference */
    check_line(got, 96);
    line_release(got);
    ASSERT_EQ(atomic_load(&live_lines), 4); /* the slots, until the last sub goes */
    mag_bcast_unsubscribe(never_reads);
    ASSERT_EQ(atomic_load(&live_lines), 4);
    mag_bcast_unsubscribe(keeps_up);
    ASSERT_EQ(atomic_load(&live_lines), 0);
    return 0;
}

#define READERS 4
#define MESSAGES 20000

typedef struct {
    mag_bcast_sub_t *sub;
    uint64_t received, missed;
} reader_t;

static int reader(void *arg)
{
    reader_t *r = arg;
    uint64_t expect = 0;
    for (;;) {
        void *got = NULL;
        uint64_t missed = 0;
        int rc = mag_bcast_recv(r->sub, &got, &missed);
        if (rc == -EPIPE)
            break;
        if (rc == -EOVERFLOW) {
            r->missed += missed;
            expect += missed;
            continue;
        }
        ASSERT_EQ(rc, 0);
        check_line(got, expect++);
        r->received++;
        if (r->received % 64 == 0)
            mag_yield(); /* fall behind now and then */
        line_release(got);
    }
    ASSERT_UEQ(expect, MESSAGES);
    mag_bcast_unsubscribe(r->sub);
    return 0;
}

/* Readers on every worker race the sender's evictions. */
static int racing(void *arg)
{
    (void)arg;
    mag_bcast_t *b = mag_bcast_create_shared(16, line_retain, line_release);
    ASSERT_TRUE(b != NULL);
    reader_t readers[READERS] = {{0}};
    mag_task_t *tasks[READERS];
    for (int i = 0; i < READERS; i++) {
        readers[i].sub = mag_bcast_subscribe(b);
        ASSERT_TRUE(readers[i].sub != NULL);
        tasks[i] = mag_spawn(reader, &readers[i]);
        ASSERT_TRUE(tasks[i] != NULL);
    }
    for (uint64_t seq = 0; seq < MESSAGES; seq++) {
        line_t *l = line_new(seq);
        ASSERT_EQ(mag_bcast_send(b, &l), READERS);
        line_release(l);
        if (seq % 256 == 0)
            mag_yield();
    }
    mag_bcast_destroy(b);
    uint64_t total = 0;
    for (int i = 0; i < READERS; i++) {
        int st = -1;
        ASSERT_EQ(mag_join(tasks[i], &st), 0);
        ASSERT_EQ(st, 0);
        ASSERT_UEQ(readers[i].received + readers[i].missed, MESSAGES);
        total += readers[i].received;
    }
    ASSERT_GT(total, 0);
    ASSERT_EQ(atomic_load(&live_lines), 0);
    return 0;
}

int main(void)
{
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = 1;
    test_run_cfg(&cfg, single_task, NULL);
    cfg.workers = 2;
    test_run_cfg(&cfg, racing, NULL);
    puts("ok");
    return 0;
}
