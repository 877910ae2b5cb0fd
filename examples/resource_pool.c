/* resource_pool: a pool of pooled "connections" shared by many tasks, as an
 * async context-manager pool. A semaphore counts free connections (acquire
 * waits, FIFO, when all are taken); a channel holds the idle ones. Release
 * puts the connection back before returning the permit, so a permit always
 * finds a connection in the channel. */
#include <magpie.h>
#include <stdio.h>

#define POOL 3
#define CLIENTS 8
#define QUERIES 4

typedef struct conn {
    int id, uses;
} conn_t;

typedef struct pool {
    mag_sem_t free;   /* idle connections */
    mag_chan_t *idle; /* conn_t *, capacity POOL */
} pool_t;

static int pool_acquire(pool_t *p, conn_t **c)
{
    int rc = mag_sem_acquire(&p->free); /* -ECANCELED / -ETIMEDOUT pass through */
    if (rc < 0)
        return rc;
    return mag_chan_try_recv(p->idle, c); /* a permit guarantees one is there */
}

static void pool_release(pool_t *p, conn_t *c)
{
    mag_chan_try_send(p->idle, &c);
    mag_sem_release(&p->free);
}

static pool_t pool;

static int client(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int q = 0; q < QUERIES; q++) {
        conn_t *c;
        int rc = pool_acquire(&pool, &c);
        if (rc < 0)
            return rc;
        c->uses++;
        printf("client %d query %d on connection %d\n", id, q, c->id);
        mag_sleep(2 * MAG_MS); /* the query */
        pool_release(&pool, c);
    }
    return 0;
}

static int app(void *arg)
{
    (void)arg;
    static conn_t conns[POOL];
    mag_sem_init(&pool.free, POOL);
    pool.idle = mag_chan_create(sizeof(conn_t *), POOL);
    for (int i = 0; i < POOL; i++) {
        conns[i].id = i;
        conn_t *c = &conns[i];
        mag_chan_send(pool.idle, &c);
    }
    mag_task_t *t[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        t[i] = mag_spawn(client, (void *)(intptr_t)i);
    int failed = 0;
    for (int i = 0; i < CLIENTS; i++) {
        int st;
        mag_join(t[i], &st);
        failed |= st < 0;
    }
    int total = 0;
    for (int i = 0; i < POOL; i++) {
        printf("connection %d served %d queries\n", i, conns[i].uses);
        total += conns[i].uses;
    }
    printf("%d queries over %d connections; %zu idle at the end\n", total, POOL,
           mag_chan_len(pool.idle));
    mag_chan_destroy(pool.idle);
    return failed || total != CLIENTS * QUERIES;
}

int main(void)
{
    int status = 1;
    if (mag_run(NULL, app, NULL, &status) < 0)
        return 1;
    return status;
}
