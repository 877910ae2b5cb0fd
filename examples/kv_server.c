/*
 * kv_server - a key-value server that speaks the Redis protocol (RESP2), on
 * mag_serve.
 *
 *   kv_server [--port P] [--workers N] [--send-timeout-ms MS]
 *
 * PING [msg], ECHO msg, GET key, SET key value, DEL key..., EXISTS key...,
 * INCR key, MGET key..., QUIT; names in any case. Requests are RESP arrays
 * of bulk strings or inline lines ("GET k\r\n": words split on spaces and
 * tabs, no quoting). Keys and values are binary-safe. SET takes no options
 * (EX, NX, ...: "syntax error"); nothing expires or persists. Port 0 (the
 * default) lets the kernel choose; "listening on <port>" is printed once the
 * server accepts. Workers default to the online CPUs.
 *
 * Each connection reads into a heap buffer, answers every complete request
 * in it (pipelining) into an output buffer, and sends that with one send
 * (earlier past FLUSH_AT bytes, between requests and between the values of
 * one MGET, so that the buffer holds at most FLUSH_AT bytes and one value).
 * A send that takes no data for the send timeout (60 s, as nginx's
 * send_timeout; 0: none) cuts the connection: a client that sends and never
 * reads cannot keep its descriptor for ever. Limits, so that a client
 * cannot make the server allocate without bound: a bulk string MAX_BULK
 * bytes (512 MiB, as
 * Redis), an array MAX_ARGS elements (1,048,576, as Redis before AUTH), an
 * inline request MAX_INLINE bytes (64 KiB, as Redis), a whole request
 * MAX_QUERY bytes (1 GiB, Redis's client-query-buffer-limit). Buffers grow
 * only as bytes arrive (a declared length reserves nothing). A frame that
 * breaks the protocol (a length that is not a number, negative or over its
 * limit, a missing CRLF or '$', a request cut short by the end of input)
 * gets "-ERR Protocol error: ...", after the answers to the requests before
 * it, and the connection closes.
 *
 * The keyspace is SHARDS hash tables, each behind its own mag_mutex_t, so
 * that connections on different workers rarely meet on a lock. No lock is
 * held across a suspension: a command locks, works on memory, and unlocks.
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
#define BUF_START 16384 /* input and output buffers, at first */
#define FLUSH_AT 65536
#define KEEP_MAX (1u << 20) /* buffers above this shrink back once empty */
#define ARGS_START 16
#define ARGS_KEEP 4096 /* an argument array above this shrinks back */
#define PROTO(why) "-ERR Protocol error: " why "\r\n"
#define QUERY_BIG PROTO("request over the 1 GiB query limit")
#define NO_MEMORY "-ERR out of memory\r\n"

/* ---- keyspace --------------------------------------------------------- */

#define SHARDS 64 /* a power of two */
#define SLOTS_START 64

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    size_t klen, vlen;
    char data[]; /* the key, then the value: at least INT_TEXT_MAX bytes */
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

/* A new entry, with room for at least INT_TEXT_MAX value bytes so that INCR
 * always rewrites a number in place. */
static entry_t *entry_new(const char *k, size_t klen, const char *v, size_t vlen, uint64_t h)
{
    entry_t *e = malloc(sizeof *e + klen + (vlen < INT_TEXT_MAX ? INT_TEXT_MAX : vlen));
    if (!e)
        return NULL;
    *e = (entry_t){.hash = h, .klen = klen, .vlen = vlen};
    memcpy(e->data, k, klen);
    memcpy(e->data + klen, v, vlen);
    return e;
}

/* ---- connection --------------------------------------------------------- */

typedef struct arg {
    size_t off, len; /* from the start of the frame: the buffer may move */
} arg_t;

typedef struct conn {
    int fd;
    char *in, *out; /* unparsed input; answers not yet sent */
    size_t in_len, in_cap, out_len, out_cap;
    arg_t *args; /* the arguments of the frame being parsed */
    size_t nargs, args_cap;
    /* Progress through the frame at the front of the input, kept between
     * reads so that a large request is not parsed again from its start each
     * time more of it arrives. */
    size_t want_args;  /* the array's count; 0 until its header is read */
    size_t scan;       /* bytes of the frame parsed so far */
    bool quit;         /* QUIT: answer, then close */
    const char *error; /* a protocol error to answer before closing */
    const char *frame; /* the request being answered (args are from here) */
} conn_t;

#define LIT(s) s, sizeof(s) - 1

/* Doubles *cap until it holds need bytes, at most max. -ENOMEM (past max,
 * or out of memory) leaves the buffer as it was. */
static int grow(char **buf, size_t *cap, size_t need, size_t max)
{
    if (need > max)
        return -ENOMEM;
    size_t n = *cap;
    while (n < need)
        n = n > max / 2 ? max : 2 * n;
    char *p = realloc(*buf, n);
    if (!p)
        return -ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

/* After one large request or answer: give the memory back. */
static void shrink(char **buf, size_t *cap)
{
    char *p = *cap > KEEP_MAX ? realloc(*buf, BUF_START) : NULL;
    if (p) {
        *buf = p;
        *cap = BUF_START;
    }
}

static int out_reserve(conn_t *c, size_t n)
{
    /* n is at most a value's length and a little: the sum cannot wrap. */
    return c->out_cap - c->out_len >= n ? 0 : grow(&c->out, &c->out_cap, c->out_len + n, SIZE_MAX);
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
    shrink(&c->out, &c->out_cap);
    return r < 0 ? (int)r : 0;
}

/* ---- commands ------------------------------------------------------------ */

/* Argument i of the frame being answered. */
static const char *arg(const conn_t *c, size_t i)
{
    return c->frame + c->args[i].off;
}

/* Each returns 0 (answered), or a negative errno that ends the connection. */
typedef int (*cmd_fn)(conn_t *c);

/* PING, and ECHO (always with its argument). */
static int cmd_ping(conn_t *c)
{
    if (c->nargs == 2)
        return put_bulk(c, arg(c, 1), c->args[1].len);
    return put(c, LIT("+PONG\r\n"));
}

/* Appends key's value as a bulk string, or the null bulk. */
static int reply_value(conn_t *c, const char *k, size_t klen)
{
    uint64_t h = hash_key(k, klen);
    shard_t *sh = shard_of(h);
    int rc = mag_mutex_lock(&sh->lock);
    if (rc < 0)
        return rc;
    entry_t *e = *find_link(sh, k, klen, h);
    rc = e ? put_bulk(c, entry_value(e), e->vlen) : put(c, LIT("$-1\r\n"));
    mag_mutex_unlock(&sh->lock);
    return rc;
}

static int cmd_get(conn_t *c)
{
    return reply_value(c, arg(c, 1), c->args[1].len);
}

/* One request of a few bytes a key can ask for the same large value many
 * times over: what is answered goes out before the next value is looked up
 * (outside the shard's lock), not after the last. */
static int cmd_mget(conn_t *c)
{
    int rc = put_num(c, '*', (long long)(c->nargs - 1));
    for (size_t i = 1; i < c->nargs && rc == 0; i++) {
        if (c->out_len >= FLUSH_AT && (rc = flush(c)) < 0)
            break;
        rc = reply_value(c, arg(c, i), c->args[i].len);
    }
    return rc;
}

/* Puts fresh in key's place (the lock is held): returns the entry it
 * replaces, for the caller to free after unlocking. */
static entry_t *replace(shard_t *sh, entry_t **link, entry_t *fresh)
{
    entry_t *old = *link;
    fresh->next = old ? old->next : NULL;
    *link = fresh;
    if (!old) {
        sh->count++;
        maybe_grow(sh);
    }
    return old;
}

static int cmd_set(conn_t *c)
{
    if (c->nargs != 3)
        return put(c, LIT("-ERR syntax error\r\n"));
    const char *k = arg(c, 1);
    size_t klen = c->args[1].len;
    uint64_t h = hash_key(k, klen);
    shard_t *sh = shard_of(h);
    /* The value is copied before locking, so that the lock is held for a
     * few pointer writes however large the value. */
    entry_t *fresh = entry_new(k, klen, arg(c, 2), c->args[2].len, h);
    if (!fresh)
        return put(c, LIT(NO_MEMORY));
    int rc = mag_mutex_lock(&sh->lock);
    if (rc < 0) {
        free(fresh);
        return rc;
    }
    entry_t *old = replace(sh, find_link(sh, k, klen, h), fresh);
    mag_mutex_unlock(&sh->lock);
    free(old);
    return put(c, LIT("+OK\r\n"));
}

/* DEL and EXISTS: how many of the keys there are (DEL: were). */
static int count_keys(conn_t *c, bool remove)
{
    long long found = 0;
    for (size_t i = 1; i < c->nargs; i++) {
        const char *k = arg(c, i);
        size_t klen = c->args[i].len;
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
        found += e != NULL;
        if (remove)
            free(e);
    }
    return put_num(c, ':', found);
}

static int cmd_del(conn_t *c)
{
    return count_keys(c, true);
}

static int cmd_exists(conn_t *c)
{
    return count_keys(c, false);
}

/* Redis's string2ll: an optional '-', digits without leading zeros ("0"
 * alone is fine), within long long; nothing else (no spaces, no '+'). */
static bool parse_int64(const char *s, size_t n, long long *out)
{
    if (n == 0 || n > INT_TEXT_MAX)
        return false;
    bool neg = s[0] == '-';
    size_t i = neg;
    if (i == n || (s[i] == '0' && (n - i > 1 || neg)))
        return false;
    unsigned long long v = 0, limit = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (long long)(0 - v) : (long long)v;
    return true;
}

static int cmd_incr(conn_t *c)
{
    const char *k = arg(c, 1);
    size_t klen = c->args[1].len;
    uint64_t h = hash_key(k, klen);
    shard_t *sh = shard_of(h);
    /* In case the key is new: made before locking, freed if not needed. */
    entry_t *fresh = entry_new(k, klen, "0", 1, h);
    if (!fresh)
        return put(c, LIT(NO_MEMORY));
    int rc = mag_mutex_lock(&sh->lock);
    if (rc < 0) {
        free(fresh);
        return rc;
    }
    entry_t **link = find_link(sh, k, klen, h);
    entry_t *e = *link;
    if (!e) {
        replace(sh, link, fresh); /* may grow the table: link is stale */
        e = fresh;
        fresh = NULL;
    }
    long long v = 0;
    const char *err = NULL;
    if (!parse_int64(entry_value(e), e->vlen, &v))
        err = "-ERR value is not an integer or out of range\r\n";
    else if (v == LLONG_MAX)
        err = "-ERR increment or decrement would overflow\r\n";
    else {
        /* It parsed, so it had at most INT_TEXT_MAX bytes: rewritten in place. */
        char text[INT_TEXT_MAX];
        char *start = format_int(text + sizeof text, ++v);
        e->vlen = (size_t)(text + sizeof text - start);
        memcpy(entry_value(e), start, e->vlen);
    }
    mag_mutex_unlock(&sh->lock);
    free(fresh);
    return err ? put(c, err, strlen(err)) : put_num(c, ':', v);
}

static int cmd_quit(conn_t *c)
{
    c->quit = true;
    return put(c, LIT("+OK\r\n"));
}

/* The command table. Argument counts include the name; max 0: no bound. */
typedef struct command {
    const char *name;
    size_t name_len;
    size_t min_args, max_args;
    cmd_fn fn;
} command_t;

#define NAME(s) s, sizeof(s) - 1
static const command_t commands[] = {
    {NAME("get"), 2, 2, cmd_get},       {NAME("set"), 3, 0, cmd_set},
    {NAME("ping"), 1, 2, cmd_ping},     {NAME("incr"), 2, 2, cmd_incr},
    {NAME("mget"), 2, 0, cmd_mget},     {NAME("del"), 2, 0, cmd_del},
    {NAME("exists"), 2, 0, cmd_exists}, {NAME("echo"), 2, 2, cmd_ping},
    {NAME("quit"), 1, 0, cmd_quit},
};

static int execute(conn_t *c)
{
    const char *name = arg(c, 0);
    size_t nlen = c->args[0].len;
    char msg[128];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const command_t *cmd = &commands[i];
        if (cmd->name_len != nlen || strncasecmp(cmd->name, name, nlen) != 0)
            continue;
        if (c->nargs >= cmd->min_args && (!cmd->max_args || c->nargs <= cmd->max_args))
            return cmd->fn(c);
        int len = snprintf(msg, sizeof msg, "-ERR wrong number of arguments for '%s' command\r\n",
                           cmd->name);
        return put(c, msg, (size_t)len);
    }
    /* The name as printable ASCII, at most 64 bytes of it. */
    int at = snprintf(msg, sizeof msg, "-ERR unknown command '");
    size_t shown = nlen < 64 ? nlen : 64;
    for (size_t i = 0; i < shown; i++)
        msg[at++] = isprint((unsigned char)name[i]) && name[i] != '\'' ? name[i] : '?';
    memcpy(msg + at, "'\r\n", 3);
    return put(c, msg, (size_t)at + 3);
}

/* ---- RESP parser ------------------------------------------------------- */

/* What the parsers return: a frame's size in bytes (> 0), MORE (incomplete:
 * read more), or BAD with the reason in c->error. */
enum { MORE = 0, BAD = -1 };

static long bad(conn_t *c, const char *why)
{
    c->error = why;
    return BAD;
}

static long push_arg(conn_t *c, size_t off, size_t len)
{
    if (c->nargs == c->args_cap) {
        arg_t *p = realloc(c->args, 2 * c->args_cap * sizeof *p);
        if (!p)
            return bad(c, NO_MEMORY);
        c->args = p;
        c->args_cap *= 2;
    }
    c->args[c->nargs++] = (arg_t){off, len};
    return 0;
}

/* Reads "<type><number>\r\n" at p (n bytes there): its size, the number in
 * *v; MORE; or BAD (why) if no decimal number and CRLF in LEN_LINE_MAX bytes. */
static long parse_len_line(conn_t *c, const char *p, size_t n, long long *v, const char *why)
{
    const char *cr = memchr(p, '\r', n < LEN_LINE_MAX ? n : LEN_LINE_MAX);
    if (!cr)
        return n < LEN_LINE_MAX ? MORE : bad(c, why);
    size_t at = (size_t)(cr - p);
    if (at + 1 == n)
        return MORE; /* the '\n' is still to come */
    if (cr[1] != '\n' || !parse_int64(p + 1, at - 1, v))
        return bad(c, why);
    return (long)at + 2;
}

/* An inline request: one line, words separated by spaces or tabs. */
static long parse_inline(conn_t *c, const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n < MAX_INLINE ? n : MAX_INLINE);
    if (!nl)
        return n < MAX_INLINE ? MORE : bad(c, PROTO("too big inline request"));
    size_t end = (size_t)(nl - p);
    size_t line_end = end > 0 && p[end - 1] == '\r' ? end - 1 : end;
    for (size_t i = 0; i < line_end;) {
        while (i < line_end && (p[i] == ' ' || p[i] == '\t'))
            i++;
        size_t start = i;
        while (i < line_end && p[i] != ' ' && p[i] != '\t')
            i++;
        if (i > start && push_arg(c, start, i - start) == BAD)
            return BAD;
    }
    return (long)end + 1;
}

/* Parses the frame at p (n bytes), resuming where the last call on it
 * stopped. Complete: its size, with its arguments in c->args (none for an
 * empty request, which gets no answer). */
static long parse_frame(conn_t *c, const char *p, size_t n)
{
    if (c->scan == 0 && p[0] != '*')
        return parse_inline(c, p, n);
    if (c->scan == 0) {
        long long count;
        long h = parse_len_line(c, p, n, &count, PROTO("invalid multibulk length"));
        if (h <= 0)
            return h;
        if (count > (long long)MAX_ARGS)
            return bad(c, PROTO("invalid multibulk length"));
        if (count <= 0) /* "*0" or "*-1": nothing to do, as Redis */
            return h;
        c->want_args = (size_t)count;
        c->scan = (size_t)h;
    }
    while (c->nargs < c->want_args) {
        size_t at = c->scan;
        if (at == n)
            return MORE;
        if (p[at] != '$')
            return bad(c, PROTO("expected '$'"));
        long long len;
        long h = parse_len_line(c, p + at, n - at, &len, PROTO("invalid bulk length"));
        if (h <= 0)
            return h;
        if (len < 0 || len > (long long)MAX_BULK)
            return bad(c, PROTO("invalid bulk length"));
        size_t data = at + (size_t)h, end = data + (size_t)len + 2;
        if (end > MAX_QUERY)
            return bad(c, QUERY_BIG);
        if (n < end)
            return MORE; /* nothing is reserved for the declared length */
        if (p[end - 2] != '\r' || p[end - 1] != '\n')
            return bad(c, PROTO("expected CRLF after a bulk string"));
        if (push_arg(c, data, (size_t)len) == BAD)
            return BAD;
        c->scan = end;
    }
    return (long)c->scan;
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

/* Answers every complete request at the front of the input, and keeps the
 * incomplete one there. 1: close after the answers (QUIT, or c->error); 0:
 * read more; or a negative errno. */
static int answer_batch(conn_t *c)
{
    size_t pos = 0;
    int rc = 0;
    while (pos < c->in_len && rc == 0) {
        long used = parse_frame(c, c->in + pos, c->in_len - pos);
        if (used == MORE)
            break;
        if (used == BAD) {
            rc = 1;
            break;
        }
        c->frame = c->in + pos;
        if (c->nargs > 0)
            rc = execute(c);
        c->want_args = c->nargs = c->scan = 0;
        pos += (size_t)used;
        if (rc == 0 && c->quit)
            rc = 1;
        else if (rc == 0 && c->out_len >= FLUSH_AT)
            rc = flush(c);
    }
    memmove(c->in, c->in + pos, c->in_len - pos); /* offsets are from the frame */
    c->in_len -= pos;
    if (c->in_len == 0)
        shrink(&c->in, &c->in_cap);
    /* A request of a million arguments left an array of 16 MiB: back to
     * its first size once no frame is being parsed. */
    if (c->args_cap > ARGS_KEEP && c->nargs == 0) {
        arg_t *p = realloc(c->args, ARGS_START * sizeof *p);
        if (p) {
            c->args = p;
            c->args_cap = ARGS_START;
        }
    }
    return rc;
}

static int serve_conn(conn_t *c)
{
    for (;;) {
        /* The input grows only when full: the bytes that arrived pay for it. */
        if (c->in_len == c->in_cap && grow(&c->in, &c->in_cap, c->in_len + 1, MAX_QUERY + 1) < 0) {
            c->error = c->in_cap > MAX_QUERY ? QUERY_BIG : NO_MEMORY;
            return 1;
        }
        ssize_t n = mag_recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n < 0)
            return (int)n; /* reset, or cancelled */
        if (n == 0) {
            if (c->in_len > 0)
                c->error = PROTO("unexpected end of input");
            return c->in_len > 0;
        }
        c->in_len += (size_t)n;
        int rc = answer_batch(c);
        if (rc == 0)
            rc = flush(c);
        if (rc != 0)
            return rc;
    }
}

static int kv_conn(int fd, void *ctx)
{
    (void)ctx;
    conn_t *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    *c = (conn_t){.fd = fd, .in_cap = BUF_START, .out_cap = BUF_START, .args_cap = ARGS_START};
    c->in = malloc(BUF_START);
    c->out = malloc(BUF_START);
    c->args = malloc(c->args_cap * sizeof *c->args);
    int rc = -ENOMEM;
    if (c->in && c->out && c->args) {
        rc = serve_conn(c);
        if (rc == 1) { /* a final answer: send it, then close gently */
            if (c->error)
                put(c, c->error, strlen(c->error));
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

static long opt_port, opt_workers;       /* --port, --workers */
static long opt_send_timeout_ms = 60000; /* --send-timeout-ms */

/* SIGINT or SIGTERM cancels the serving task: mag_serve stops accepting,
 * cancels the connections, and the program exits 0. */
static sigset_t stop_signals;

static int on_signal(void *server)
{
    int sig = 0;
    if (mag_signal_wait(&stop_signals, &sig) == 0) {
        fprintf(stderr, "kv_server: %s, shutting down\n", strsignal(sig));
        mag_cancel(server);
    }
    return 0;
}

static int serve_main(void *arg)
{
    int lfd = mag_tcp_listen(NULL, (uint16_t)opt_port, 4096);
    if (lfd < 0) {
        fprintf(stderr, "kv_server: listen on port %ld: %s\n", opt_port, strerror(-lfd));
        return lfd;
    }
    printf("listening on %d\n", mag_local_port(lfd));
    fflush(stdout);
    mag_detach(mag_spawn(on_signal, mag_self())); /* shutdown cancels it */
    mag_serve_opts_t sopts = {.send_timeout_ns = (uint64_t)opt_send_timeout_ms * MAG_MS};
    int rc = mag_serve_ex(lfd, kv_conn, NULL, &sopts);
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
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port"))
            opt_port = parse_num("--port", i + 1 < argc ? argv[++i] : NULL, 0, 65535);
        else if (!strcmp(argv[i], "--workers"))
            opt_workers =
                parse_num("--workers", i + 1 < argc ? argv[++i] : NULL, 1, MAG_MAX_WORKERS);
        else if (!strcmp(argv[i], "--send-timeout-ms"))
            opt_send_timeout_ms =
                parse_num("--send-timeout-ms", i + 1 < argc ? argv[++i] : NULL, 0, 86400000);
        else {
            fprintf(stderr, "usage: kv_server [--port P] [--workers N] [--send-timeout-ms MS]\n");
            return 2;
        }
    }
    sigemptyset(&stop_signals); /* caught from now on: one during start-up is kept */
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    mag_signal_catch(&stop_signals);
    if (keyspace_init() < 0) {
        fprintf(stderr, "kv_server: out of memory\n");
        return 1;
    }
    mag_config_t cfg;
    mag_config_init(&cfg);
    if (opt_workers)
        cfg.workers = (unsigned)opt_workers;
    int status = 0;
    int rc = mag_run(&cfg, serve_main, NULL, &status);
    if (rc < 0) {
        fprintf(stderr, "kv_server: %s\n", strerror(-rc));
        return 1;
    }
    return status < 0 ? 1 : 0;
}
