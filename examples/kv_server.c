/*
 * kv_server - a key-value server that speaks the Redis protocol (RESP2), on
 * mag_serve.
 *
 *   kv_server [--port P] [--workers N]
 *
 * Commands: PING [msg], ECHO msg, GET key, SET key value, DEL key...,
 * EXISTS key..., INCR key, MGET key..., QUIT. Names are case-insensitive.
 * Requests come as RESP arrays of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
 * or as inline commands ("GET k\r\n": words split on spaces and tabs; quotes
 * are not interpreted). Keys and values are binary-safe. SET takes no
 * options (EX, NX, ...: "syntax error"); there is no expiry and no
 * persistence.
 *
 * Port 0 (the default) lets the kernel choose; the port is printed as
 * "listening on <port>" once the server accepts. Workers default to the
 * online CPUs (MAG_WORKERS also works; --workers wins).
 *
 * Pipelining: each connection reads into a heap buffer, answers every
 * complete request in it into an output buffer, and sends that with one
 * send (earlier if the answers pass FLUSH_AT bytes).
 *
 * Limits, so that a client cannot make the server allocate without bound:
 * a bulk string is at most MAX_BULK bytes (512 MiB, as Redis), an array at
 * most MAX_ARGS elements (1,048,576, as Redis for clients that have not
 * authenticated), an inline request at most MAX_INLINE bytes (64 KiB, as
 * Redis), and one request as a whole at most MAX_QUERY bytes (1 GiB, Redis's
 * client-query-buffer-limit). The buffers grow only as bytes arrive (a
 * declared length reserves nothing), so a connection holds at most about
 * twice what its client has sent. A frame that breaks the protocol (a
 * length that is not a number, negative, or over its limit, a missing
 * CRLF, a '$' missing) gets "-ERR Protocol error: ..." and the connection
 * is closed, after the answers to the requests before it; so does a request
 * cut short by the end of the input.
 *
 * The keyspace is split into SHARDS hash tables, each behind its own
 * mag_mutex_t, so that connections on different workers rarely meet on a
 * lock. No lock is held across a suspension: every command locks, works on
 * memory, and unlocks.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <magpie.h>
#include <magpie/sync.h>

#define MAX_BULK (512u << 20)
#define MAX_ARGS (1u << 20)
#define MAX_INLINE (64u << 10)
#define MAX_QUERY ((size_t)1 << 30)
#define LEN_LINE_MAX 24 /* "*" or "$", up to 20 digits (and a sign), CRLF */

#define IN_START 16384
#define OUT_START 16384
#define FLUSH_AT 65536
#define KEEP_MAX (1u << 20) /* buffers above this shrink back once empty */

/* ---- keyspace --------------------------------------------------------- */

#define SHARDS 64 /* a power of two */
#define SLOTS_START 64

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    size_t klen, vlen, vcap;
    char data[]; /* the key, then vcap bytes for the value */
} entry_t;

/* Aligned to a cache line each, so that two workers on two shards do not
 * share a line. */
typedef struct shard {
    _Alignas(64) mag_mutex_t lock;
    entry_t **slots; /* chained hash table, mask + 1 slots */
    size_t mask;
    size_t count;
} shard_t;

static shard_t shards[SHARDS];

static char *entry_value(entry_t *e)
{
    return e->data + e->klen;
}

/* FNV-1a with a final mix: short keys, no alignment assumptions. */
static uint64_t hash_key(const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static shard_t *shard_of(uint64_t h)
{
    return &shards[h >> 58]; /* the top 6 bits; the table uses the low ones */
}

static int keyspace_init(void)
{
    for (int i = 0; i < SHARDS; i++) {
        mag_mutex_init(&shards[i].lock);
        shards[i].slots = calloc(SLOTS_START, sizeof(entry_t *));
        if (!shards[i].slots)
            return -ENOMEM;
        shards[i].mask = SLOTS_START - 1;
    }
    return 0;
}

static void keyspace_free(void)
{
    for (int i = 0; i < SHARDS; i++) {
        for (size_t s = 0; shards[i].slots && s <= shards[i].mask; s++) {
            for (entry_t *e = shards[i].slots[s], *next; e; e = next) {
                next = e->next;
                free(e);
            }
        }
        free(shards[i].slots);
        shards[i].slots = NULL;
    }
}

/* The link that points at key's entry (or at the NULL that ends its chain).
 * The shard's lock is held. */
static entry_t **find_link(shard_t *sh, const char *k, size_t n, uint64_t h)
{
    entry_t **link = &sh->slots[h & sh->mask];
    for (; *link; link = &(*link)->next) {
        entry_t *e = *link;
        if (e->hash == h && e->klen == n && memcmp(e->data, k, n) == 0)
            break;
    }
    return link;
}

/* Doubles the table when it holds more entries than slots. The lock is
 * held; if the allocation fails the table keeps working, only slower. */
static void maybe_grow(shard_t *sh)
{
    if (sh->count <= sh->mask + 1)
        return;
    size_t nslots = 2 * (sh->mask + 1);
    entry_t **slots = calloc(nslots, sizeof *slots);
    if (!slots)
        return;
    for (size_t s = 0; s <= sh->mask; s++) {
        for (entry_t *e = sh->slots[s], *next; e; e = next) {
            next = e->next;
            e->next = slots[e->hash & (nslots - 1)];
            slots[e->hash & (nslots - 1)] = e;
        }
    }
    free(sh->slots);
    sh->slots = slots;
    sh->mask = nslots - 1;
}

#define INT_TEXT_MAX 20 /* "-9223372036854775808" */

/* A new entry with room for vcap value bytes, and never less than
 * INT_TEXT_MAX: INCR then always rewrites a number in place. */
static entry_t *entry_new(const char *k, size_t klen, const char *v, size_t vlen, size_t vcap,
                          uint64_t h)
{
    if (vcap < INT_TEXT_MAX)
        vcap = INT_TEXT_MAX;
    entry_t *e = malloc(sizeof *e + klen + vcap);
    if (!e)
        return NULL;
    e->next = NULL;
    e->hash = h;
    e->klen = klen;
    e->vlen = vlen;
    e->vcap = vcap;
    memcpy(e->data, k, klen);
    if (vlen)
        memcpy(e->data + klen, v, vlen);
    return e;
}

/* ---- connection --------------------------------------------------------- */

typedef struct arg {
    size_t off, len; /* from the start of the frame: the buffer may move */
} arg_t;

typedef struct conn {
    int fd;
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_cap;
    arg_t *args; /* the arguments of the frame being parsed */
    size_t args_cap;
    /* Progress through the frame at the front of the unparsed input, kept
     * between reads so that a large request is not parsed again from its
     * start each time more of it arrives. */
    size_t want_args; /* the array's count; 0 until its header is read */
    size_t have_args;
    size_t scan; /* bytes of the frame parsed so far */
    bool quit;   /* QUIT: answer, then close */
} conn_t;

#define LIT(s) s, sizeof(s) - 1

/* Makes room for n more output bytes. -ENOMEM leaves the buffer as it was. */
static int out_reserve(conn_t *c, size_t n)
{
    if (c->out_cap - c->out_len >= n)
        return 0;
    size_t cap = c->out_cap;
    while (cap - c->out_len < n) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    char *p = realloc(c->out, cap);
    if (!p)
        return -ENOMEM;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

static int put(conn_t *c, const char *s, size_t n)
{
    int rc = out_reserve(c, n);
    if (rc < 0)
        return rc;
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
    return 0;
}

/* Writes n in decimal so that it ends just before end; returns its start.
 * Needs INT_TEXT_MAX bytes. (snprintf costs more than the rest of a GET.) */
static char *format_int(char *end, long long n)
{
    unsigned long long u = n < 0 ? 0 - (unsigned long long)n : (unsigned long long)n;
    char *p = end;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (n < 0)
        *--p = '-';
    return p;
}

/* ":<n>\r\n", "$<n>\r\n" or "*<n>\r\n". */
static int put_num(conn_t *c, char type, long long n)
{
    char buf[INT_TEXT_MAX + 4];
    char *end = buf + sizeof buf - 2;
    end[0] = '\r';
    end[1] = '\n';
    char *p = format_int(end, n);
    *--p = type;
    return put(c, p, (size_t)(end + 2 - p));
}

static int put_bulk(conn_t *c, const char *s, size_t n)
{
    int rc = out_reserve(c, n + 32);
    if (rc < 0)
        return rc;
    put_num(c, '$', (long long)n);
    put(c, s, n);
    return put(c, LIT("\r\n"));
}

static int flush(conn_t *c)
{
    if (c->out_len == 0)
        return 0;
    ssize_t r = mag_send_all(c->fd, c->out, c->out_len, 0);
    c->out_len = 0;
    if (c->out_cap > KEEP_MAX) { /* one big answer: give the memory back */
        char *p = realloc(c->out, OUT_START);
        if (p) {
            c->out = p;
            c->out_cap = OUT_START;
        }
    }
    return r < 0 ? (int)r : 0;
}

/* ---- commands ------------------------------------------------------------ */

typedef struct cmd_args {
    const char *base; /* the frame */
    const arg_t *v;
    size_t n;
} cmd_args_t;

static const char *arg_ptr(const cmd_args_t *a, size_t i)
{
    return a->base + a->v[i].off;
}

/* Each returns 0 (answered), or a negative errno that ends the connection. */
typedef int (*cmd_fn)(conn_t *c, const cmd_args_t *a);

static int cmd_ping(conn_t *c, const cmd_args_t *a)
{
    if (a->n == 2)
        return put_bulk(c, arg_ptr(a, 1), a->v[1].len);
    return put(c, LIT("+PONG\r\n"));
}

static int cmd_echo(conn_t *c, const cmd_args_t *a)
{
    return put_bulk(c, arg_ptr(a, 1), a->v[1].len);
}

/* Appends key's value as a bulk string, or the null bulk. The lock is taken
 * again if the output buffer has to grow for a value that changed size. */
static int reply_value(conn_t *c, const char *k, size_t klen)
{
    uint64_t h = hash_key(k, klen);
    shard_t *sh = shard_of(h);
    for (;;) {
        int rc = mag_mutex_lock(&sh->lock);
        if (rc < 0)
            return rc;
        entry_t *e = *find_link(sh, k, klen, h);
        if (!e) {
            mag_mutex_unlock(&sh->lock);
            return put(c, LIT("$-1\r\n"));
        }
        size_t need = e->vlen + 32;
        if (c->out_cap - c->out_len >= need) {
            put_bulk(c, entry_value(e), e->vlen); /* fits: cannot fail */
            mag_mutex_unlock(&sh->lock);
            return 0;
        }
        mag_mutex_unlock(&sh->lock); /* no allocation under the lock */
        rc = out_reserve(c, need);
        if (rc < 0)
            return rc;
    }
}

static int cmd_get(conn_t *c, const cmd_args_t *a)
{
    return reply_value(c, arg_ptr(a, 1), a->v[1].len);
}

static int cmd_mget(conn_t *c, const cmd_args_t *a)
{
    int rc = put_num(c, '*', (long long)(a->n - 1));
    for (size_t i = 1; i < a->n && rc == 0; i++)
        rc = reply_value(c, arg_ptr(a, i), a->v[i].len);
    return rc;
}

/* A value up to this size is copied into the old entry under the lock when
 * it fits there; a larger one is copied into a new entry before locking. */
#define SET_IN_PLACE_MAX 4096

static int cmd_set(conn_t *c, const cmd_args_t *a)
{
    if (a->n != 3)
        return put(c, LIT("-ERR syntax error\r\n"));
    const char *k = arg_ptr(a, 1), *v = arg_ptr(a, 2);
    size_t klen = a->v[1].len, vlen = a->v[2].len;
    uint64_t h = hash_key(k, klen);
    shard_t *sh = shard_of(h);
    entry_t *fresh = NULL;
    if (vlen > SET_IN_PLACE_MAX && !(fresh = entry_new(k, klen, v, vlen, vlen, h)))
        return put(c, LIT("-ERR out of memory\r\n"));
    for (;;) {
        int rc = mag_mutex_lock(&sh->lock);
        if (rc < 0) {
            free(fresh);
            return rc;
        }
        entry_t **link = find_link(sh, k, klen, h);
        entry_t *old = *link;
        if (!fresh && old && old->vcap >= vlen) {
            memcpy(entry_value(old), v, vlen);
            old->vlen = vlen;
            mag_mutex_unlock(&sh->lock);
            break;
        }
        if (fresh) {
            fresh->next = old ? old->next : NULL;
            *link = fresh;
            if (!old) {
                sh->count++;
                maybe_grow(sh);
            }
            mag_mutex_unlock(&sh->lock);
            free(old);
            break;
        }
        /* A new key, or a value that outgrew its entry: allocate outside
         * the lock and look again (another SET may have come meanwhile). */
        mag_mutex_unlock(&sh->lock);
        if (!(fresh = entry_new(k, klen, v, vlen, vlen, h)))
            return put(c, LIT("-ERR out of memory\r\n"));
    }
    return put(c, LIT("+OK\r\n"));
}

/* DEL and EXISTS: how many of the keys there are (DEL: were). */
static int count_keys(conn_t *c, const cmd_args_t *a, bool remove)
{
    long long found = 0;
    for (size_t i = 1; i < a->n; i++) {
        const char *k = arg_ptr(a, i);
        size_t klen = a->v[i].len;
        uint64_t h = hash_key(k, klen);
        shard_t *sh = shard_of(h);
        int rc = mag_mutex_lock(&sh->lock);
        if (rc < 0)
            return rc;
        entry_t **link = find_link(sh, k, klen, h);
        entry_t *e = *link;
        if (e && remove) {
            *link = e->next;
            sh->count--;
        }
        mag_mutex_unlock(&sh->lock);
        if (e) {
            found++;
            if (remove)
                free(e);
        }
    }
    return put_num(c, ':', found);
}

static int cmd_del(conn_t *c, const cmd_args_t *a)
{
    return count_keys(c, a, true);
}

static int cmd_exists(conn_t *c, const cmd_args_t *a)
{
    return count_keys(c, a, false);
}

/* Redis's string2ll: an optional '-', digits without leading zeros ("0"
 * alone is fine), within int64_t; nothing else (no spaces, no '+'). */
static bool parse_int64(const char *s, size_t n, long long *out)
{
    if (n == 0 || n > 20)
        return false;
    bool neg = s[0] == '-';
    size_t i = neg;
    if (i == n || (s[i] == '0' && (n - i > 1 || neg)))
        return false;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg ? v > (unsigned long long)LLONG_MAX + 1 : v > (unsigned long long)LLONG_MAX)
        return false;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return true;
}

static int cmd_incr(conn_t *c, const cmd_args_t *a)
{
    const char *k = arg_ptr(a, 1);
    size_t klen = a->v[1].len;
    uint64_t h = hash_key(k, klen);
    shard_t *sh = shard_of(h);
    entry_t *fresh = NULL; /* for a new key, made outside the lock */
    for (;;) {
        int rc = mag_mutex_lock(&sh->lock);
        if (rc < 0) {
            free(fresh);
            return rc;
        }
        entry_t **link = find_link(sh, k, klen, h);
        entry_t *e = *link;
        long long v = 0;
        const char *err = NULL;
        if (e && !parse_int64(entry_value(e), e->vlen, &v))
            err = "-ERR value is not an integer or out of range\r\n";
        else if (v == LLONG_MAX)
            err = "-ERR increment or decrement would overflow\r\n";
        if (err) {
            mag_mutex_unlock(&sh->lock);
            free(fresh);
            return put(c, err, strlen(err));
        }
        if (!e && !fresh) {
            /* A new key: allocate outside the lock, then look again (another
             * INCR or SET may have made it meanwhile). */
            mag_mutex_unlock(&sh->lock);
            if (!(fresh = entry_new(k, klen, NULL, 0, INT_TEXT_MAX, h)))
                return put(c, LIT("-ERR out of memory\r\n"));
            continue;
        }
        if (!e) {
            *link = e = fresh;
            fresh = NULL;
            sh->count++;
            maybe_grow(sh);
        }
        /* A number parsed, so vlen <= INT_TEXT_MAX <= vcap: in place. */
        char text[INT_TEXT_MAX];
        char *start = format_int(text + sizeof text, v + 1);
        e->vlen = (size_t)(text + sizeof text - start);
        memcpy(entry_value(e), start, e->vlen);
        mag_mutex_unlock(&sh->lock);
        free(fresh); /* made for a key that appeared meanwhile */
        return put_num(c, ':', v + 1);
    }
}

static int cmd_quit(conn_t *c, const cmd_args_t *a)
{
    c->quit = true;
    return put(c, LIT("+OK\r\n"));
}

/* The command table: arity as Redis counts it (the name included; -n means
 * at least n). */
typedef struct command {
    const char *name;
    size_t name_len;
    int arity;
    int max_args; /* 0: no upper bound */
    cmd_fn fn;
} command_t;

#define NAME(s) s, sizeof(s) - 1
static const command_t commands[] = {
    {NAME("GET"), 2, 2, cmd_get},        {NAME("SET"), -3, 0, cmd_set},
    {NAME("PING"), -1, 2, cmd_ping},     {NAME("INCR"), 2, 2, cmd_incr},
    {NAME("MGET"), -2, 0, cmd_mget},     {NAME("DEL"), -2, 0, cmd_del},
    {NAME("EXISTS"), -2, 0, cmd_exists}, {NAME("ECHO"), 2, 2, cmd_echo},
    {NAME("QUIT"), -1, 0, cmd_quit},
};

/* Copies at most max bytes of s into buf, as printable ASCII ('?' for the
 * rest and for quotes), for an error message. */
static void printable(char *buf, size_t max, const char *s, size_t n)
{
    size_t i = 0;
    for (; i < n && i < max; i++)
        buf[i] = isprint((unsigned char)s[i]) && s[i] != '\'' ? s[i] : '?';
    buf[i] = 0;
}

static int execute(conn_t *c, const cmd_args_t *a)
{
    const char *name = arg_ptr(a, 0);
    size_t nlen = a->v[0].len;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const command_t *cmd = &commands[i];
        if (cmd->name_len != nlen || strncasecmp(cmd->name, name, nlen) != 0)
            continue;
        size_t at_least = (size_t)(cmd->arity < 0 ? -cmd->arity : cmd->arity);
        if (a->n < at_least || (cmd->arity > 0 && a->n != at_least) ||
            (cmd->max_args && a->n > (size_t)cmd->max_args)) {
            char lower[16];
            size_t j = 0;
            for (; cmd->name[j]; j++)
                lower[j] = (char)tolower((unsigned char)cmd->name[j]);
            lower[j] = 0;
            char msg[96];
            int len = snprintf(msg, sizeof msg,
                               "-ERR wrong number of arguments for '%s' command\r\n", lower);
            return put(c, msg, (size_t)len);
        }
        return cmd->fn(c, a);
    }
    char shown[65], msg[128];
    printable(shown, 64, name, nlen);
    int len = snprintf(msg, sizeof msg, "-ERR unknown command '%s'\r\n", shown);
    return put(c, msg, (size_t)len);
}

/* ---- RESP parser ------------------------------------------------------- */

enum {
    PARSE_MORE = 0, /* the frame is incomplete: read more */
    PARSE_BAD_COUNT = -1,
    PARSE_BAD_BULK_LEN = -2,
    PARSE_NO_DOLLAR = -3,
    PARSE_NO_CRLF = -4,
    PARSE_INLINE_BIG = -5,
    PARSE_QUERY_BIG = -6,
    PARSE_NOMEM = -7,
};

static const char *const parse_errors[] = {
    [-PARSE_BAD_COUNT] = "-ERR Protocol error: invalid multibulk length\r\n",
    [-PARSE_BAD_BULK_LEN] = "-ERR Protocol error: invalid bulk length\r\n",
    [-PARSE_NO_DOLLAR] = "-ERR Protocol error: expected '$'\r\n",
    [-PARSE_NO_CRLF] = "-ERR Protocol error: expected CRLF after a bulk string\r\n",
    [-PARSE_INLINE_BIG] = "-ERR Protocol error: too big inline request\r\n",
    [-PARSE_QUERY_BIG] = "-ERR Protocol error: request over the 1 GiB query limit\r\n",
    [-PARSE_NOMEM] = "-ERR out of memory\r\n",
};

static int push_arg(conn_t *c, size_t off, size_t len)
{
    if (c->have_args == c->args_cap) {
        size_t cap = c->args_cap * 2;
        arg_t *p = realloc(c->args, cap * sizeof *p);
        if (!p)
            return PARSE_NOMEM;
        c->args = p;
        c->args_cap = cap;
    }
    c->args[c->have_args++] = (arg_t){off, len};
    return 0;
}

/* Reads "<type><number>\r\n" at p (n bytes available). Returns the bytes it
 * spans and stores the number in *v; PARSE_MORE if the CRLF has not arrived;
 * bad if it is not a decimal number (a '-' allowed) ending in CRLF within
 * LEN_LINE_MAX bytes. */
static long parse_len_line(const char *p, size_t n, long long *v, int bad)
{
    const char *cr = memchr(p, '\r', n < LEN_LINE_MAX ? n : LEN_LINE_MAX);
    if (!cr)
        return n < LEN_LINE_MAX ? PARSE_MORE : bad;
    size_t digits = (size_t)(cr - p) - 1;
    if ((size_t)(cr - p) + 1 >= n)
        return PARSE_MORE; /* the '\n' is still to come */
    if (cr[1] != '\n' || !parse_int64(p + 1, digits, v))
        return bad;
    return (long)(cr - p) + 2;
}

/* An inline request: one line, words separated by spaces or tabs. */
static int parse_inline(conn_t *c, const char *p, size_t n, size_t *used)
{
    const char *nl = memchr(p, '\n', n < MAX_INLINE ? n : MAX_INLINE);
    if (!nl)
        return n < MAX_INLINE ? PARSE_MORE : PARSE_INLINE_BIG;
    size_t end = (size_t)(nl - p);
    size_t line_end = end > 0 && p[end - 1] == '\r' ? end - 1 : end;
    for (size_t i = 0; i < line_end;) {
        while (i < line_end && (p[i] == ' ' || p[i] == '\t'))
            i++;
        size_t start = i;
        while (i < line_end && p[i] != ' ' && p[i] != '\t')
            i++;
        if (i > start) {
            int rc = push_arg(c, start, i - start);
            if (rc < 0)
                return rc;
        }
    }
    *used = end + 1;
    return 1;
}

/* Parses the frame at p (n bytes), resuming where the last call stopped.
 * Returns 1 with the arguments in c->args[0..c->have_args) (none for an
 * empty request, which gets no answer) and the frame's size in *used;
 * PARSE_MORE; or a PARSE_ error. Resets the progress when it returns other
 * than PARSE_MORE. */
static int parse_frame(conn_t *c, const char *p, size_t n, size_t *used)
{
    int rc;
    if (c->scan == 0 && p[0] != '*') {
        rc = parse_inline(c, p, n, used);
        if (rc == PARSE_MORE)
            c->have_args = 0; /* parsed again from the start when the line is whole */
        return rc;
    }
    if (c->scan == 0) {
        long long count;
        long h = parse_len_line(p, n, &count, PARSE_BAD_COUNT);
        if (h <= 0)
            return (int)h;
        if (count > (long long)MAX_ARGS)
            return PARSE_BAD_COUNT;
        if (count <= 0) { /* "*0" or "*-1": nothing to do, as Redis */
            *used = (size_t)h;
            return 1;
        }
        c->want_args = (size_t)count;
        c->scan = (size_t)h;
    }
    while (c->have_args < c->want_args) {
        size_t at = c->scan;
        if (at == n)
            return PARSE_MORE;
        if (p[at] != '$')
            return PARSE_NO_DOLLAR;
        long long len;
        long h = parse_len_line(p + at, n - at, &len, PARSE_BAD_BULK_LEN);
        if (h <= 0)
            return (int)h;
        if (len < 0 || len > (long long)MAX_BULK)
            return PARSE_BAD_BULK_LEN;
        size_t data = at + (size_t)h;
        if (data + (size_t)len > MAX_QUERY)
            return PARSE_QUERY_BIG;
        if (n - data < (size_t)len + 2)
            return PARSE_MORE;
        if (p[data + len] != '\r' || p[data + len + 1] != '\n')
            return PARSE_NO_CRLF;
        rc = push_arg(c, data, (size_t)len);
        if (rc < 0)
            return rc;
        c->scan = data + (size_t)len + 2;
    }
    *used = c->scan;
    return 1;
}

static void frame_done(conn_t *c)
{
    c->want_args = c->have_args = c->scan = 0;
}

/* ---- the connection loop --------------------------------------------------- */

/* Closing with unread input makes the kernel send a reset, which can destroy
 * the answer just sent before the client reads it. So after a final answer:
 * shut our side, then read and drop what the client still sends, for a
 * bounded time and amount (as http_server does). */
static void linger(int fd)
{
    char buf[4096];
    size_t total = 0;
    shutdown(fd, SHUT_WR);
    uint64_t token = mag_deadline_push(mag_now() + 500 * MAG_MS);
    while (total < 256 * 1024) {
        ssize_t n = mag_recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    mag_deadline_pop(token);
}

/* Makes room to read into: the buffer doubles when it is full, up to
 * MAX_QUERY bytes plus one, so that only bytes that arrived are paid for. */
static int in_room(conn_t *c)
{
    if (c->in_len < c->in_cap)
        return 0;
    if (c->in_cap > MAX_QUERY)
        return PARSE_QUERY_BIG;
    size_t cap = c->in_cap * 2 > MAX_QUERY + 1 ? MAX_QUERY + 1 : c->in_cap * 2;
    char *p = realloc(c->in, cap);
    if (!p)
        return PARSE_NOMEM;
    c->in = p;
    c->in_cap = cap;
    return 0;
}

/* Answers every complete request at the front of the input. Returns 1 when
 * the connection is to close after the answers (QUIT or a protocol error,
 * whose answer is in the output), 0 to read more, or a negative errno. */
static int answer_batch(conn_t *c)
{
    size_t pos = 0;
    int result = 0;
    while (pos < c->in_len) {
        size_t used = 0;
        int rc = parse_frame(c, c->in + pos, c->in_len - pos, &used);
        if (rc == PARSE_MORE)
            break;
        if (rc < 0) {
            const char *msg = parse_errors[-rc];
            frame_done(c);
            result = put(c, msg, strlen(msg)) < 0 ? -ENOMEM : 1;
            break;
        }
        if (c->have_args > 0) {
            cmd_args_t a = {c->in + pos, c->args, c->have_args};
            rc = execute(c, &a);
        }
        frame_done(c);
        pos += used;
        if (rc < 0) {
            result = rc;
            break;
        }
        if (c->quit) {
            result = 1;
            break;
        }
        if (c->out_len >= FLUSH_AT && (rc = flush(c)) < 0) {
            result = rc;
            break;
        }
    }
    /* Keep the incomplete frame at the front (the parser's offsets are
     * from its start). */
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    if (c->in_len == 0 && c->in_cap > KEEP_MAX) {
        char *p = realloc(c->in, IN_START);
        if (p) {
            c->in = p;
            c->in_cap = IN_START;
        }
    }
    return result;
}

static int serve_conn(conn_t *c)
{
    for (;;) {
        int rc = in_room(c);
        if (rc < 0) {
            put(c, parse_errors[-rc], strlen(parse_errors[-rc]));
            return 1;
        }
        ssize_t n = mag_recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n < 0)
            return (int)n; /* reset, or cancelled */
        if (n == 0) {
            if (c->in_len == 0)
                return 0;
            put(c, LIT("-ERR Protocol error: unexpected end of input\r\n"));
            return 1;
        }
        c->in_len += (size_t)n;
        rc = answer_batch(c);
        if (rc != 0)
            return rc;
        if ((rc = flush(c)) < 0)
            return rc;
    }
}

static int kv_conn(int fd, void *ctx)
{
    (void)ctx;
    conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fd = fd;
    c->in = malloc(IN_START);
    c->out = malloc(OUT_START);
    c->args = malloc(16 * sizeof *c->args);
    c->in_cap = IN_START;
    c->out_cap = OUT_START;
    c->args_cap = 16;
    int rc = -ENOMEM;
    if (c->in && c->out && c->args) {
        rc = serve_conn(c);
        if (rc == 1) { /* a final answer: send it, then close gently */
            if (flush(c) == 0)
                linger(fd);
            rc = 0;
        }
    }
    free(c->in);
    free(c->out);
    free(c->args);
    free(c);
    return rc;
}

/* ---- start-up ---------------------------------------------------------- */

typedef struct opts {
    long port;
    long workers;
} opts_t;

/* SIGINT or SIGTERM cancels the serving task: mag_serve stops accepting,
 * cancels the connections, and the program exits 0. */
static int on_signal(void *server)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    int sig = 0;
    if (mag_signal_wait(&stop, &sig) == 0) {
        fprintf(stderr, "kv_server: %s, shutting down\n", strsignal(sig));
        mag_cancel(server);
    }
    return 0;
}

static int serve_main(void *arg)
{
    opts_t *o = arg;
    int lfd = mag_tcp_listen(NULL, (uint16_t)o->port, 4096);
    if (lfd < 0) {
        fprintf(stderr, "kv_server: listen on port %ld: %s\n", o->port, strerror(-lfd));
        return lfd;
    }
    printf("listening on %d\n", mag_local_port(lfd));
    fflush(stdout);
    mag_detach(mag_spawn(on_signal, mag_self())); /* shutdown cancels it */
    int rc = mag_serve(lfd, kv_conn, NULL);
    mag_close(lfd);
    return rc == -ECANCELED ? 0 : rc;
}

static long parse_num(const char *flag, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "kv_server: %s wants a number in %ld..%ld\n", flag, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    opts_t o = {.port = 0, .workers = 0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port"))
            o.port = parse_num("--port", i + 1 < argc ? argv[++i] : NULL, 0, 65535);
        else if (!strcmp(argv[i], "--workers"))
            o.workers = parse_num("--workers", i + 1 < argc ? argv[++i] : NULL, 1, MAG_MAX_WORKERS);
        else {
            fprintf(stderr, "usage: kv_server [--port P] [--workers N]\n");
            return 2;
        }
    }
    sigset_t stop; /* caught from now on: a signal during start-up is kept */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    mag_signal_catch(&stop);
    if (keyspace_init() < 0) {
        fprintf(stderr, "kv_server: out of memory\n");
        return 1;
    }
    mag_config_t cfg;
    mag_config_init(&cfg);
    if (o.workers)
        cfg.workers = (unsigned)o.workers;
    int status = 0;
    int rc = mag_run(&cfg, serve_main, &o, &status);
    keyspace_free();
    if (rc < 0) {
        fprintf(stderr, "kv_server: %s\n", strerror(-rc));
        return 1;
    }
    return status < 0 ? 1 : 0;
}
