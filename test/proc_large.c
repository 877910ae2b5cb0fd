/* 64 MiB payloads through the process pool, both ways, intact: checksums
 * computed on each side independently (smaller under sanitizers). */
#include "test/test.h"

#include <stdint.h>

#define MIB (1024u * 1024u)

static uint64_t fnv(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void gen(unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

/* in: 8-byte checksum of what follows; out: the rest xor 0x5a. */
static int xform(const void *in, size_t n, void **out, size_t *out_len)
{
    const unsigned char *p = in;
    uint64_t want;
    if (n < 8)
        return -EINVAL;
    memcpy(&want, p, 8);
    if (fnv(p + 8, n - 8) != want)
        return -EBADMSG;
    unsigned char *o = malloc(n - 8);
    if (!o)
        return -ENOMEM;
    for (size_t i = 8; i < n; i++)
        o[i - 8] = p[i] ^ 0x5a;
    *out = o;
    *out_len = n - 8;
    return 0;
}

static size_t size_mib;

static int big_call(void *arg)
{
    size_t n = size_mib * MIB + (size_t)(intptr_t)arg; /* odd sizes too */
    unsigned char *in = malloc(n + 8);
    ASSERT_TRUE(in != NULL);
    gen(in + 8, n, 42 + (uint64_t)(intptr_t)arg);
    uint64_t h = fnv(in + 8, n);
    memcpy(in, &h, 8);
    void *out = NULL;
    size_t len = 0;
    ASSERT_EQ(mag_proc_call("xform", in, n + 8, &out, &len), 0);
    ASSERT_UEQ(len, n);
    unsigned char *o = out;
    for (size_t i = 0; i < n; i++)
        if (o[i] != (in[i + 8] ^ 0x5a))
            TEST_FAIL("byte %zu differs", i);
    free(out);
    free(in);
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    ASSERT_EQ(big_call((void *)0), 0);
    /* Two at once, on two workers. */
    mag_task_t *a = mag_spawn(big_call, (void *)3);
    mag_task_t *b = mag_spawn(big_call, (void *)7);
    int st = -1;
    ASSERT_EQ(mag_join(a, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(mag_join(b, &st), 0);
    ASSERT_EQ(st, 0);
    return 0;
}

int main(void)
{
    size_mib = TEST_SANITIZED ? 8 : 64;
    ASSERT_EQ(mag_proc_register("xform", xform), 0);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    cfg.proc_workers = 2;
    test_run_cfg(&cfg, main_task, NULL);
    return 0;
}
