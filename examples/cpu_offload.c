/* cpu_offload: CPU-bound work on every core through the process pool
 * (asyncio's ProcessPoolExecutor). Hashes N MiB (default 128) in 1 MiB
 * blocks, first inline in one task, then with each block sent to a worker
 * process by its own task; prints both times and the speedup.
 *
 *   cpu_offload [MiB] */
#include <errno.h>
#include <magpie.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK (1u << 20)

/* FNV-1a plus a mix per byte: slow on purpose, so the work outweighs the copy. */
static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
        h = (h ^ (h >> 31)) * 0xbf58476d1ce4e5b9ull;
    }
    return h;
}

/* The pool function: the block's hash as 8 bytes. */
static int hash_block(const void *in, size_t n, void **out, size_t *out_len)
{
    uint64_t *h = malloc(sizeof *h);
    if (!h)
        return -ENOMEM;
    *h = fnv1a(in, n);
    *out = h;
    *out_len = sizeof *h;
    return 0;
}

typedef struct job {
    const unsigned char *block;
    uint64_t hash;
} job_t;

static int offload(void *arg)
{
    job_t *j = arg;
    void *out = NULL;
    size_t len = 0;
    int rc = mag_proc_call("hash", j->block, BLOCK, &out, &len);
    if (rc == 0 && len == sizeof j->hash)
        memcpy(&j->hash, out, sizeof j->hash);
    free(out);
    return rc;
}

static int app(void *arg)
{
    size_t blocks = *(size_t *)arg;
    unsigned char *data = malloc(blocks * BLOCK);
    job_t *jobs = calloc(blocks, sizeof *jobs);
    if (!data || !jobs)
        return -ENOMEM;
    for (size_t i = 0; i < blocks * BLOCK; i++)
        data[i] = (unsigned char)(i * 2654435761u >> 13);

    uint64_t t0 = mag_now(), inline_sum = 0; /* blocks this worker: a demo */
    for (size_t b = 0; b < blocks; b++)
        inline_sum ^= fnv1a(data + b * BLOCK, BLOCK) + b;
    uint64_t t_inline = mag_now() - t0;

    t0 = mag_now();
    mag_group_t *g = mag_group_create(0);
    for (size_t b = 0; b < blocks; b++) {
        jobs[b].block = data + b * BLOCK;
        mag_group_spawn(g, offload, &jobs[b]);
    }
    int rc = mag_group_wait(g);
    mag_group_destroy(g);
    uint64_t t_pool = mag_now() - t0, pool_sum = 0;
    for (size_t b = 0; b < blocks; b++)
        pool_sum ^= jobs[b].hash + b;

    printf("inline:       %7.1f ms\n", t_inline / 1e6);
    printf("process pool: %7.1f ms  (%ld worker processes)\n", t_pool / 1e6,
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("speedup:      %7.2fx  hashes %s\n", (double)t_inline / (double)t_pool,
           rc == 0 && pool_sum == inline_sum ? "match" : "DIFFER");
    free(jobs), free(data);
    return rc == 0 && pool_sum == inline_sum ? 0 : -EIO;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 128;
    if (mib == 0 || mib > 16384)
        return fprintf(stderr, "usage: cpu_offload [MiB 1..16384]\n"), 2;
    mag_proc_register("hash", hash_block); /* before the runtime starts */
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.proc_workers = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    int status = 0, rc = mag_run(&cfg, app, &mib, &status);
    if (rc < 0 || status < 0) {
        fprintf(stderr, "cpu_offload: %s\n", strerror(rc < 0 ? -rc : -status));
        return 1;
    }
    return 0;
}
