/*
 * io/probe.c - operations the running kernel may lack: which opcodes its
 * io_uring knows, asked once, and the fallback for those it does not.
 *
 * A ring answers an opcode it does not know with -EINVAL, which is also what
 * the same operation says about bad arguments: the two cannot be told apart
 * from a completion. So the kernel is asked up front (IORING_REGISTER_PROBE,
 * through io_uring_get_probe), once per process, on first use.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "io/internal.h"
#include "magpie/pool.h"

bool mag__io_optional_off;

/* One bit per opcode the kernel's io_uring supports. Written once under
 * probe_once; pthread_once orders the writes before every reader's return
 * from it, so plain reads are safe afterwards. */
static uint64_t ring_ops[4];
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static void probe_ring(void)
{
    /* A failed probe (a kernel before 5.6, a ring refused by a sandbox)
     * leaves every bit clear: every optional kind takes its fallback. */
    struct io_uring_probe *p = io_uring_get_probe();
    if (!p)
        return;
    for (unsigned op = 0; op < 256; op++)
        if (io_uring_opcode_supported(p, (int)op))
            ring_ops[op / 64] |= 1ull << (op % 64);
    io_uring_free_probe(p);
}

static bool ring_has(uint8_t opcode)
{
    pthread_once(&probe_once, probe_ring);
    return (ring_ops[opcode / 64] >> (opcode % 64)) & 1;
}

/* The fallback of a kind that may block, on a blocking-pool thread. */
typedef struct fallback_job {
    const mag__io_optional_kind_t *k;
    const mag__io_args_t *a;
    int64_t result;
} fallback_job_t;

static int run_fallback(void *arg)
{
    fallback_job_t *job = arg;
    job->result = job->k->kind.sys(job->a);
    return 0;
}

int64_t mag__io_run_optional(const mag__io_optional_kind_t *k, const mag__io_args_t *a)
{
    if (!mag__task_current())
        return k->kind.sys(a);
    if (!mag__io_optional_off && ring_has(k->opcode))
        return mag__io_run_kind(&k->kind, -1, a); /* none is a wait mag_serve times */
    if (k->may_block) {
        /* The job uses this frame (a, the paths it names): mag_run_blocking
         * waits for it whatever happens, and refuses to start it for a task
         * already cancelled or past its deadline. */
        fallback_job_t job = {.k = k, .a = a, .result = 0};
        int rc = mag_run_blocking(run_fallback, &job, NULL);
        return rc ? rc : job.result;
    }
    /* A call that never blocks: here, after the same check every operation
     * makes on entry (a cancelled task submits nothing). */
    int rc = mag__suspend_begin(MAG__WAIT_IO, &k->kind);
    if (rc)
        return rc;
    mag__suspend_end();
    return k->kind.sys(a);
}
