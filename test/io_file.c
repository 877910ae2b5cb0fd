/* io_file: a 256 MiB file (32 MiB under sanitizers) written and read back
 * through the ring with a checksum, by several tasks at once at their own
 * offsets, then sequentially at the current position; in a temporary
 * directory removed afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test/test.h"

#define FILE_SIZE ((TEST_SANITIZED ? 32ull : 256ull) << 20)
#define CHUNK (1u << 20)
#define WRITERS 8

static char dir[] = "/tmp/magpie-io-file-XXXXXX";
static char path[128];

/* The byte at offset off: a cheap function of off that is not periodic in
 * any small power of two. */
static inline uint8_t byte_at(uint64_t off)
{
    uint64_t x = off / 8 * 0x9e3779b97f4a7c15ull;
    return (uint8_t)((x >> 29) ^ (off & 7) ^ (x >> 47));
}

static void fill(uint8_t *buf, uint64_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = byte_at(off + i);
}

/* FNV-1a over a chunk, chained. */
static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

typedef struct part {
    int fd;
    int index;
} part_t;

/* Writes every WRITERS-th chunk, starting at its index, with pwrite. */
static int writer(void *arg)
{
    part_t *p = arg;
    uint8_t *buf = malloc(CHUNK);
    ASSERT_TRUE(buf != NULL);
    for (uint64_t off = (uint64_t)p->index * CHUNK; off < FILE_SIZE; off += WRITERS * CHUNK) {
        fill(buf, off, CHUNK);
        size_t done = 0;
        while (done < CHUNK) {
            ssize_t n = mag_write(p->fd, buf + done, CHUNK - done, (off_t)(off + done));
            if (n <= 0)
                TEST_FAIL("write at %llu: %zd", (unsigned long long)(off + done), n);
            done += (size_t)n;
        }
    }
    free(buf);
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    int fd = mag_open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    uint64_t t0 = mag_now();
    mag_group_t *g = mag_group_create(MAG_GROUP_CANCEL_ON_ERROR);
    part_t parts[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        parts[i] = (part_t){fd, i};
        ASSERT_GE(mag_group_spawn(g, writer, &parts[i]), 0);
    }
    ASSERT_EQ(mag_group_wait(g), 0);
    mag_group_destroy(g);
    ASSERT_EQ(mag_fsync(fd), 0);
    ASSERT_EQ(mag_close(fd), 0);
    uint64_t t1 = mag_now();

    struct stat st;
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_UEQ((uint64_t)st.st_size, FILE_SIZE);

    /* Read back sequentially at the current position, with readv for the
     * second half of each chunk, and compare checksums. */
    fd = mag_open(path, O_RDONLY | O_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    uint8_t *buf = malloc(CHUNK), *want = malloc(CHUNK);
    ASSERT_TRUE(buf && want);
    uint64_t h_got = 0xcbf29ce484222325ull, h_want = h_got;
    for (uint64_t off = 0; off < FILE_SIZE; off += CHUNK) {
        size_t half = CHUNK / 2, done = 0;
        while (done < half) {
            ssize_t n = mag_read(fd, buf + done, half - done, -1);
            ASSERT_GT(n, 0);
            done += (size_t)n;
        }
        while (done < CHUNK) {
            struct iovec iov[2] = {{buf + done, (CHUNK - done) / 2},
                                   {buf + done + (CHUNK - done) / 2, CHUNK - done - (CHUNK - done) / 2}};
            ssize_t n = mag_readv(fd, iov, 2, -1);
            ASSERT_GT(n, 0);
            done += (size_t)n;
        }
        fill(want, off, CHUNK);
        h_got = fnv(h_got, buf, CHUNK);
        h_want = fnv(h_want, want, CHUNK);
        if (memcmp(buf, want, CHUNK) != 0)
            TEST_FAIL("chunk at %llu differs", (unsigned long long)off);
    }
    ASSERT_EQ(mag_read(fd, buf, CHUNK, -1), 0); /* EOF */
    /* -1 is the only negative offset: others are refused. */
    ASSERT_EQ(mag_read(fd, buf, CHUNK, -2), -EINVAL);
    ASSERT_EQ(mag_write(fd, buf, CHUNK, INT64_MIN), -EINVAL);
    struct iovec one = {buf, CHUNK};
    ASSERT_EQ(mag_readv(fd, &one, 1, -5), -EINVAL);
    ASSERT_EQ(mag_writev(fd, &one, 1, -5), -EINVAL);
    ASSERT_UEQ(h_got, h_want);
    ASSERT_EQ(mag_close(fd), 0);
    uint64_t t2 = mag_now();
    printf("%llu MiB: written in %.2f s, read back in %.2f s, checksum %016llx\n",
           (unsigned long long)(FILE_SIZE >> 20), (double)(t1 - t0) / 1e9,
           (double)(t2 - t1) / 1e9, (unsigned long long)h_got);
    free(buf);
    free(want);
    return 0;
}

int main(void)
{
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/data", dir);
    mag_config_t cfg;
    mag_config_init(&cfg);
    cfg.workers = test_workers(2);
    int status = -1;
    int rc = mag_run(&cfg, main_task, NULL, &status);
    unlink(path);
    rmdir(dir);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(status, 0);
    return 0;
}
