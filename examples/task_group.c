/* task_group: structured concurrency (asyncio.TaskGroup, tokio JoinSet).
 * Five members fetch "shards"; one fails. With MAG_GROUP_CANCEL_ON_ERROR the
 * first error cancels the siblings, whose pending sleeps return -ECANCELED so
 * that they clean up and return; mag_group_wait reports the first error. */
#include <errno.h>
#include <magpie.h>
#include <stdio.h>
#include <string.h>

#define MEMBERS 5
#define BAD 3

static int results[MEMBERS];

static int fetch_shard(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int step = 0; step < 10; step++) {
        int rc = mag_sleep((uint64_t)(10 + id) * MAG_MS);
        if (rc < 0) {
            printf("shard %d: stopped at step %d (%s)\n", id, step, strerror(-rc));
            return rc;
        }
        if (id == BAD && step == 2) {
            printf("shard %d: failed (I/O error)\n", id);
            return -EIO;
        }
    }
    results[id] = id * 100;
    printf("shard %d: done\n", id);
    return 0;
}

static int app(void *arg)
{
    (void)arg;
    mag_group_t *g = mag_group_create(MAG_GROUP_CANCEL_ON_ERROR);
    if (!g)
        return 1;
    for (int i = 0; i < MEMBERS; i++)
        mag_group_spawn(g, fetch_shard, (void *)(intptr_t)i);
    int rc = mag_group_wait(g);
    mag_group_destroy(g);
    printf("group: first error %d (%s)\n", rc, rc ? strerror(-rc) : "none");
    return rc == -EIO ? 0 : 1;
}

int main(void)
{
    int status = 1;
    if (mag_run(NULL, app, NULL, &status) < 0)
        return 1;
    return status;
}
