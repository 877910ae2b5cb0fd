/* io_fs: mag_openat, mag_statx, mag_mkdirat, mag_renameat and mag_unlinkat
 * relative to directory descriptors, with the kernel's errors (-ENOENT,
 * -EEXIST, -ENOTDIR, -EISDIR, -ENOTEMPTY, -EBADF, -EFAULT for NULL paths) and
 * statx's output untouched by a failure; statx agrees with fstat. Run on a
 * plain thread, from a task through the ring (no blocking-pool job used
 * where the kernel has the opcodes), and from a task with the opcodes
 * treated as missing (every call then a blocking-pool job). A cancelled task
 * or one past its deadline gets -ECANCELED / -ETIMEDOUT and nothing is done. */
#include "test/test.h"

#include <fcntl.h>
#include <liburing.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "io/internal.h"

static char root[] = "/tmp/magpie-io-fs-XXXXXX";

static void poison(struct statx *s)
{
    memset(s, 0xa5, sizeof *s);
}

static void assert_poisoned(const struct statx *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < sizeof *s; i++)
        if (p[i] != 0xa5)
            TEST_FAIL("statx output written at byte %zu by a failed call", i);
}

/* Whether root/rel exists, by a plain system call. */
static bool exists(const char *rel)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    struct stat st;
    return lstat(path, &st) == 0;
}

static void check_statx_matches(int dfd, const char *rel, int fd)
{
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    struct statx sx;
    poison(&sx);
    ASSERT_EQ(mag_statx(dfd, rel, 0, STATX_BASIC_STATS, &sx), 0);
    ASSERT_UEQ(sx.stx_mask & STATX_BASIC_STATS & ~STATX_BLOCKS, STATX_BASIC_STATS & ~STATX_BLOCKS);
    ASSERT_UEQ(sx.stx_ino, st.st_ino);
    ASSERT_UEQ(sx.stx_size, st.st_size);
    ASSERT_UEQ(sx.stx_mode, st.st_mode);
    ASSERT_UEQ(sx.stx_nlink, st.st_nlink);
    ASSERT_UEQ(sx.stx_uid, st.st_uid);
    ASSERT_UEQ(sx.stx_gid, st.st_gid);
    ASSERT_UEQ(makedev(sx.stx_dev_major, sx.stx_dev_minor), st.st_dev);
    ASSERT_EQ(sx.stx_mtime.tv_sec, st.st_mtim.tv_sec);
    ASSERT_EQ(sx.stx_mtime.tv_nsec, st.st_mtim.tv_nsec);
    /* AT_EMPTY_PATH: the descriptor itself. */
    struct statx self;
    ASSERT_EQ(mag_statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_SIZE, &self), 0);
    ASSERT_UEQ(self.stx_ino, st.st_ino);
    ASSERT_UEQ(self.stx_size, st.st_size);
}

/* The whole sequence; leaves root as it found it (empty). It makes
 * CHECK_FS_CALLS file-system calls that reach the system (the NULL-path ones
 * are refused before): keep the count in step when editing it. */
#define CHECK_FS_CALLS 37
static int check_fs(void *arg)
{
    (void)arg;
    int dfd = mag_openat(AT_FDCWD, root, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    ASSERT_GE(dfd, 0);

    /* mkdirat */
    ASSERT_EQ(mag_mkdirat(dfd, "sub", 0750), 0);
    ASSERT_TRUE(exists("sub"));
    ASSERT_EQ(mag_mkdirat(dfd, "sub", 0750), -EEXIST);
    ASSERT_EQ(mag_mkdirat(dfd, "missing/sub", 0750), -ENOENT);
    ASSERT_EQ(mag_mkdirat(-5, "rel", 0750), -EBADF);

    /* openat, relative to dfd */
    int fd = mag_openat(dfd, "sub/file", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(exists("sub/file"));
    ASSERT_EQ(mag_write(fd, "hello, magpie", 13, -1), 13);
    ASSERT_EQ(mag_openat(dfd, "sub/file", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640), -EEXIST);
    ASSERT_EQ(mag_openat(dfd, "sub/none", O_RDONLY | O_CLOEXEC, 0), -ENOENT);
    ASSERT_EQ(mag_openat(dfd, "sub/file/x", O_RDONLY | O_CLOEXEC, 0), -ENOTDIR);
    ASSERT_EQ(mag_openat(dfd, "sub/file", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0), -ENOTDIR);
    int sub = mag_openat(dfd, "sub", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    ASSERT_GE(sub, 0);
    int rd = mag_openat(sub, "file", O_RDONLY | O_CLOEXEC, 0);
    ASSERT_GE(rd, 0);
    char back[32] = {0};
    ASSERT_EQ(mag_read(rd, back, sizeof back, 0), 13);
    ASSERT_STR_EQ(back, "hello, magpie");
    ASSERT_EQ(mag_close(rd), 0);

    /* statx */
    check_statx_matches(dfd, "sub/file", fd);
    check_statx_matches(sub, "file", fd);
    struct statx sx;
    poison(&sx);
    ASSERT_EQ(mag_statx(dfd, "sub/none", 0, STATX_BASIC_STATS, &sx), -ENOENT);
    assert_poisoned(&sx);
    ASSERT_EQ(mag_statx(dfd, "sub/file/x", 0, STATX_BASIC_STATS, &sx), -ENOTDIR);
    assert_poisoned(&sx);
    ASSERT_EQ(mag_statx(-5, "rel", 0, STATX_BASIC_STATS, &sx), -EBADF);
    assert_poisoned(&sx);
    ASSERT_EQ(mag_statx(dfd, NULL, 0, STATX_BASIC_STATS, &sx), -EFAULT);
    assert_poisoned(&sx);
    ASSERT_EQ(mag_statx(dfd, "sub/file", 0, STATX_BASIC_STATS, NULL), -EFAULT);
    struct statx dir_sx;
    ASSERT_EQ(mag_statx(dfd, "sub", 0, STATX_TYPE, &dir_sx), 0);
    ASSERT_TRUE(S_ISDIR(dir_sx.stx_mode));

    /* renameat, within one directory and across two descriptors */
    struct statx before, after;
    ASSERT_EQ(mag_statx(dfd, "sub/file", 0, STATX_INO, &before), 0);
    ASSERT_EQ(mag_renameat(dfd, "sub/file", dfd, "sub/moved", 0), 0);
    poison(&after);
    ASSERT_EQ(mag_statx(dfd, "sub/file", 0, STATX_INO, &after), -ENOENT);
    assert_poisoned(&after);
    ASSERT_EQ(mag_statx(sub, "moved", 0, STATX_INO, &after), 0);
    ASSERT_UEQ(after.stx_ino, before.stx_ino);
    int other = mag_openat(sub, "other", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ASSERT_GE(other, 0);
    ASSERT_EQ(mag_close(other), 0);
    ASSERT_EQ(mag_renameat(sub, "moved", dfd, "sub/other", RENAME_NOREPLACE), -EEXIST);
    ASSERT_TRUE(exists("sub/moved"));
    ASSERT_EQ(mag_renameat(sub, "moved", dfd, "top", 0), 0);
    ASSERT_TRUE(exists("top"));
    ASSERT_TRUE(!exists("sub/moved"));
    ASSERT_EQ(mag_renameat(dfd, "none", dfd, "x", 0), -ENOENT);
    ASSERT_EQ(mag_renameat(dfd, "top", dfd, "top/x", 0), -ENOTDIR);
    ASSERT_EQ(mag_renameat(dfd, NULL, dfd, "x", 0), -EFAULT);
    ASSERT_EQ(mag_renameat(dfd, "top", dfd, NULL, 0), -EFAULT);
    ASSERT_TRUE(exists("top"));

    /* unlinkat, files and directories */
    ASSERT_EQ(mag_unlinkat(dfd, "sub", 0), -EISDIR);
    ASSERT_EQ(mag_unlinkat(dfd, "sub", AT_REMOVEDIR), -ENOTEMPTY);
    ASSERT_EQ(mag_unlinkat(dfd, "top", AT_REMOVEDIR), -ENOTDIR);
    ASSERT_EQ(mag_unlinkat(dfd, "none", 0), -ENOENT);
    ASSERT_EQ(mag_unlinkat(dfd, NULL, 0), -EFAULT);
    ASSERT_EQ(mag_unlinkat(sub, "other", 0), 0);
    ASSERT_EQ(mag_unlinkat(dfd, "top", 0), 0);
    ASSERT_TRUE(!exists("top"));
    ASSERT_EQ(mag_unlinkat(dfd, "sub", AT_REMOVEDIR), 0);
    ASSERT_TRUE(!exists("sub"));
    ASSERT_EQ(mag_unlinkat(dfd, "sub", AT_REMOVEDIR), -ENOENT);

    /* NULL paths never reach the kernel or libc */
    ASSERT_EQ(mag_openat(dfd, NULL, O_RDONLY, 0), -EFAULT);
    ASSERT_EQ(mag_mkdirat(dfd, NULL, 0700), -EFAULT);

    ASSERT_EQ(mag_close(fd), 0);
    ASSERT_EQ(mag_close(sub), 0);
    ASSERT_EQ(mag_close(dfd), 0);
    return 0;
}

/* A task cancelled, or past its deadline, does nothing. */
static int cancelled_calls(void *arg)
{
    (void)arg;
    int dfd = mag_openat(AT_FDCWD, root, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    ASSERT_GE(dfd, 0);
    uint64_t token = mag_deadline_push(mag_now() - 1);
    ASSERT_NE(token, 0);
    ASSERT_EQ(mag_mkdirat(dfd, "late", 0700), -ETIMEDOUT);
    struct statx sx;
    poison(&sx);
    ASSERT_EQ(mag_statx(dfd, ".", 0, STATX_INO, &sx), -ETIMEDOUT);
    assert_poisoned(&sx);
    mag_deadline_pop(token);
    ASSERT_TRUE(!exists("late"));

    mag_cancel(mag_self());
    ASSERT_EQ(mag_mkdirat(dfd, "cancelled", 0700), -ECANCELED);
    ASSERT_EQ(mag_openat(dfd, "cancelled-file", O_CREAT | O_WRONLY | O_CLOEXEC, 0600), -ECANCELED);
    ASSERT_TRUE(!exists("cancelled"));
    ASSERT_TRUE(!exists("cancelled-file"));
    ASSERT_EQ(mag_close(dfd), 0); /* closes even when cancelled */
    return 0;
}

typedef struct mode {
    const char *name;
    bool expect_pool; /* every call a blocking-pool job */
} run_mode_t;

static bool kernel_has_all_opcodes(void)
{
    struct io_uring_probe *p = io_uring_get_probe();
    if (!p)
        return false;
    bool all = io_uring_opcode_supported(p, IORING_OP_OPENAT) &&
               io_uring_opcode_supported(p, IORING_OP_STATX) &&
               io_uring_opcode_supported(p, IORING_OP_UNLINKAT) &&
               io_uring_opcode_supported(p, IORING_OP_RENAMEAT) &&
               io_uring_opcode_supported(p, IORING_OP_MKDIRAT);
    io_uring_free_probe(p);
    return all;
}

static int in_task(void *arg)
{
    const run_mode_t *m = arg;
    mag_pool_stats_t before, after;
    mag_pool_stats(mag_runtime_current(), &before);
    /* On another task than the first, so that both workers take part. */
    mag_task_t *t = mag_spawn(check_fs, NULL);
    ASSERT_TRUE(t != NULL);
    int st = -1;
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, 0);
    mag_pool_stats(mag_runtime_current(), &after);
    uint64_t jobs = after.blocking_jobs - before.blocking_jobs;
    if (m->expect_pool)
        ASSERT_UEQ(jobs, CHECK_FS_CALLS); /* every one went there */
    else if (kernel_has_all_opcodes())
        ASSERT_UEQ(jobs, 0); /* all of them on the ring */

    t = mag_spawn(cancelled_calls, NULL);
    ASSERT_TRUE(t != NULL);
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, 0);
    return 0;
}

int main(void)
{
    ASSERT_TRUE(mkdtemp(root) != NULL);

    /* A plain thread: the blocking system calls. */
    ASSERT_EQ(check_fs(NULL), 0);

    run_mode_t ring = {"ring", false};
    test_run(2, in_task, &ring);

    mag__io_optional_off = true; /* before the runtime's threads start */
    run_mode_t pool = {"blocking pool", true};
    test_run(2, in_task, &pool);
    mag__io_optional_off = false;

    ASSERT_EQ(rmdir(root), 0); /* empty again: every check cleaned up */
    printf("io_fs: ok\n");
    return 0;
}
