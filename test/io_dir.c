/* io_dir: the directory reader lists a directory of 1,000 files and one
 * subdirectory exactly once each (no "." or ".."), with the right types and
 * inode numbers, in batches (more than one getdents64 per listing): on a
 * plain thread, and from four tasks at once at 2 workers, listing over and
 * over while a ticker task keeps ticking (the batches run on the blocking
 * pool, not on the workers). A task cancelled before a batch gets
 * -ECANCELED and the reader stays usable by another task; bad arguments and
 * missing paths give their errors with the output untouched. */
#include "test/test.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>

#define NFILES 1000
#define NENTRIES (NFILES + 1) /* and the subdirectory */
#define READERS 4
#define MIN_PASSES 3
#define MIN_TICKS 20
/* Long names, so that one 32 KiB batch cannot hold the whole directory. */
#define NAME_FMT "entry-%04d-of-the-magpie-directory-test"

static char root[] = "/tmp/magpie-io-dir-XXXXXX";
static atomic_int ticks;         /* relaxed: a counter read for progress only */
static atomic_bool readers_done; /* relaxed: the ticker's stop flag, no data attached */
static atomic_int listings;      /* relaxed: counted, read after the joins */

/* The index of an entry's name: 0..NFILES-1 for files, NFILES for "sub". */
static int index_of(const char *name)
{
    if (strcmp(name, "sub") == 0)
        return NFILES;
    int i = -1, end = 0;
    if (sscanf(name, "entry-%4d-of-the-magpie-directory-test%n", &i, &end) != 1 ||
        name[end] != '\0' || i < 0 || i >= NFILES)
        TEST_FAIL("unexpected entry \"%s\"", name);
    return i;
}

/* Lists d to its end and checks that each entry is seen exactly once. */
static void list_rest(mag_dir_t *d, int *seen)
{
    mag_dirent_t e;
    int r, n = 0;
    while ((r = mag_readdir(d, &e)) == 1) {
        int i = index_of(e.name);
        if (seen[i]++)
            TEST_FAIL("\"%s\" listed twice", e.name);
        if (e.type != DT_UNKNOWN)
            ASSERT_EQ(e.type, i == NFILES ? DT_DIR : DT_REG);
        if (i % 97 == 0 || i == NFILES) {
            /* The inode is the file's, and the reader's descriptor works
             * for calls relative to it. */
            struct statx sx;
            ASSERT_EQ(mag_statx(mag_dir_fd(d), e.name, AT_SYMLINK_NOFOLLOW, STATX_INO, &sx), 0);
            ASSERT_UEQ(sx.stx_ino, e.ino);
        }
        n++;
    }
    ASSERT_EQ(r, 0);
    ASSERT_EQ(n, NENTRIES);
    mag_dirent_t untouched = {.name = "x", .ino = 7, .type = 9};
    ASSERT_EQ(mag_readdir(d, &untouched), 0); /* and at the end it stays */
    ASSERT_STR_EQ(untouched.name, "x");
    ASSERT_EQ(untouched.ino, 7);
    ASSERT_EQ(untouched.type, 9);
}

static void list_once(void)
{
    int seen[NENTRIES] = {0};
    mag_dir_t *d = NULL;
    ASSERT_EQ(mag_opendir(&d, AT_FDCWD, root), 0);
    ASSERT_TRUE(d != NULL);
    list_rest(d, seen);
    ASSERT_EQ(mag_closedir(d), 0);
}

static int reader(void *arg)
{
    (void)arg;
    for (int pass = 0;
         pass < MIN_PASSES || atomic_load_explicit(&ticks, memory_order_relaxed) < MIN_TICKS;
         pass++) {
        list_once();
        atomic_fetch_add_explicit(&listings, 1, memory_order_relaxed);
    }
    return 0;
}

static int ticker(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&readers_done, memory_order_relaxed)) {
        ASSERT_EQ(mag_sleep(MAG_MS), 0);
        atomic_fetch_add_explicit(&ticks, 1, memory_order_relaxed);
    }
    return 0;
}

/* Takes over a reader whose owner was cancelled before its first batch. */
typedef struct handover {
    mag_dir_t *d;
} handover_t;

static int cancelled_reader(void *arg)
{
    handover_t *h = arg;
    mag_cancel(mag_self());
    mag_dirent_t e = {.name = "x"};
    ASSERT_EQ(mag_readdir(h->d, &e), -ECANCELED);
    ASSERT_STR_EQ(e.name, "x");
    return 0;
}

static int second_reader(void *arg)
{
    handover_t *h = arg;
    int seen[NENTRIES] = {0};
    list_rest(h->d, seen);
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    mag_pool_stats_t before, after;
    mag_pool_stats(mag_runtime_current(), &before);
    mag_task_t *tick = mag_spawn(ticker, NULL);
    ASSERT_TRUE(tick != NULL);
    mag_task_t *readers[READERS];
    for (int i = 0; i < READERS; i++)
        ASSERT_TRUE((readers[i] = mag_spawn(reader, NULL)) != NULL);
    for (int i = 0; i < READERS; i++) {
        int st = -1;
        ASSERT_EQ(mag_join(readers[i], &st), 0);
        ASSERT_EQ(st, 0);
    }
    atomic_store_explicit(&readers_done, true, memory_order_relaxed);
    ASSERT_EQ(mag_join(tick, NULL), 0);
    ASSERT_GE(atomic_load_explicit(&ticks, memory_order_relaxed), MIN_TICKS);
    mag_pool_stats(mag_runtime_current(), &after);
    /* Each listing: two batches at least (the names do not fit one), then
     * the empty one that ends it, every one a blocking-pool job. */
    int n = atomic_load_explicit(&listings, memory_order_relaxed);
    ASSERT_GE(n, READERS * MIN_PASSES);
    ASSERT_GE(after.blocking_jobs - before.blocking_jobs, (uint64_t)n * 3);

    /* Cancelled before the first batch: -ECANCELED, nothing consumed. */
    handover_t h = {NULL};
    ASSERT_EQ(mag_opendir(&h.d, AT_FDCWD, root), 0);
    mag_task_t *t = mag_spawn(cancelled_reader, &h);
    int st = -1;
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, 0);
    t = mag_spawn(second_reader, &h);
    ASSERT_EQ(mag_join(t, &st), 0);
    ASSERT_EQ(st, 0);
    ASSERT_EQ(mag_closedir(h.d), 0);
    return 0;
}

int main(void)
{
    ASSERT_TRUE(mkdtemp(root) != NULL);
    char path[256];
    for (int i = 0; i < NFILES; i++) {
        int n = snprintf(path, sizeof path, "%s/" NAME_FMT, root, i);
        ASSERT_LT(n, (int)sizeof path);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        ASSERT_GE(fd, 0);
        close(fd);
    }
    snprintf(path, sizeof path, "%s/sub", root);
    ASSERT_EQ(mkdir(path, 0700), 0);

    /* Errors, with the output untouched. */
    mag_dir_t *const sentinel = (mag_dir_t *)&ticks; /* any address: never dereferenced */
    mag_dir_t *d = sentinel;
    ASSERT_EQ(mag_opendir(&d, AT_FDCWD, "/nonexistent/magpie-dir"), -ENOENT);
    ASSERT_PTR_EQ(d, sentinel);
    snprintf(path, sizeof path, "%s/" NAME_FMT, root, 0);
    ASSERT_EQ(mag_opendir(&d, AT_FDCWD, path), -ENOTDIR);
    ASSERT_PTR_EQ(d, sentinel);
    ASSERT_EQ(mag_opendir(&d, AT_FDCWD, NULL), -EFAULT);
    ASSERT_PTR_EQ(d, sentinel);
    ASSERT_EQ(mag_opendir(NULL, AT_FDCWD, root), -EINVAL);
    ASSERT_EQ(mag_opendir(&d, -5, "relative"), -EBADF);
    ASSERT_PTR_EQ(d, sentinel);
    mag_dirent_t e;
    ASSERT_EQ(mag_readdir(NULL, &e), -EINVAL);
    ASSERT_EQ(mag_dir_fd(NULL), -EINVAL);
    ASSERT_EQ(mag_closedir(NULL), 0);

    /* A plain thread: the same reader, batches read inline. */
    list_once();
    ASSERT_EQ(mag_opendir(&d, AT_FDCWD, root), 0);
    ASSERT_EQ(mag_readdir(d, NULL), -EINVAL);
    ASSERT_EQ(mag_closedir(d), 0);
    /* Relative to a directory descriptor. */
    int dfd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dfd, 0);
    ASSERT_EQ(mag_opendir(&d, dfd, root + strlen("/tmp/")), 0);
    int seen[NENTRIES] = {0};
    list_rest(d, seen);
    ASSERT_EQ(mag_closedir(d), 0);
    close(dfd);

    test_run(2, main_task, NULL);

    for (int i = 0; i < NFILES; i++) {
        snprintf(path, sizeof path, "%s/" NAME_FMT, root, i);
        ASSERT_EQ(unlink(path), 0);
    }
    snprintf(path, sizeof path, "%s/sub", root);
    ASSERT_EQ(rmdir(path), 0);
    ASSERT_EQ(rmdir(root), 0);
    printf("io_dir: %d listings in tasks\n", atomic_load(&listings));
    return 0;
}
