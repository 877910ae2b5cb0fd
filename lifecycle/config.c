/*
 * lifecycle/config.c - the configuration: one table of its fields (default,
 * range, environment variable), mag_config_init with the one parser of the
 * environment in the library, and the check mag_runtime_create applies.
 *
 * The table is where each default and each limit is written, once:
 * mag_config_init writes the defaults from it, the parser accepts exactly
 * the range mag_runtime_create accepts (so a variable out of range is
 * ignored, with a message, rather than making every create fail), and the
 * check turns a "0 = default" field into the same default. Nothing else in
 * the library reads the environment; the layers below take their settings
 * from the runtime's config (rt->cfg).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lifecycle/config.h"
#include "observe/observe.h"
#include "runtime/sched.h"

typedef enum field_kind {
    FIELD_UNSIGNED, /* unsigned */
    FIELD_SIZE,     /* size_t */
    FIELD_BOOL,     /* bool, spelled 0 or 1 */
    FIELD_PATH,     /* const char *; NULL = off */
} field_kind_t;

/* One record per field of mag_config_t. */
typedef struct field {
    const char *name; /* the field, for messages */
    const char *env;  /* its environment variable */
    size_t offset;
    field_kind_t kind;
    unsigned long long dflt;     /* what mag_config_init writes ... */
    unsigned (*dflt_fn)(void);   /* ... or this computes, when set */
    unsigned long long min, max; /* the range mag_runtime_create accepts */
    bool zero_is_default;        /* 0 is accepted too, and means dflt */
} field_t;

/* One record on one line; the formatter would spread each over four. */
/* clang-format off */
#define NUM(f, var, kind, dflt, min, max, zero) \
    {#f, var, offsetof(mag_config_t, f), kind, dflt, NULL, min, max, zero}
#define PATH(f, var) {#f, var, offsetof(mag_config_t, f), FIELD_PATH, 0, NULL, 0, 0, false}
/* clang-format on */

static const field_t fields[] = {
    /* workers 0 is not a default but "online CPUs", resolved at create. */
    NUM(workers, "MAG_WORKERS", FIELD_UNSIGNED, 0, 0, MAG_MAX_WORKERS, false),
    NUM(stack_size, "MAG_STACK_SIZE", FIELD_SIZE, MAG_STACK_DEFAULT, MAG_STACK_MIN, MAG_STACK_MAX,
        true),
    /* An SQ ring has at most 32768 entries (IORING_MAX_ENTRIES). */
    NUM(ring_entries, "MAG_RING_ENTRIES", FIELD_UNSIGNED, 256, 1, 32768, true),
    NUM(max_blocking_threads, "MAG_MAX_BLOCKING_THREADS", FIELD_UNSIGNED, 512, 1, UINT_MAX, true),
    /* 0 is a real keepalive here: idle threads exit at once. */
    NUM(blocking_keepalive_ms, "MAG_BLOCKING_KEEPALIVE_MS", FIELD_UNSIGNED, 10000, 0, UINT_MAX,
        false),
    /* Each is a process with two descriptors here: as many as there may be
     * workers, not as many as the process could never open. */
    NUM(proc_workers, "MAG_PROC_WORKERS", FIELD_UNSIGNED, 0, 0, MAG_MAX_WORKERS, false),
    /* 0 is real here: no timeout. */
    NUM(proc_timeout_ms, "MAG_PROC_TIMEOUT_MS", FIELD_UNSIGNED, 0, 0, UINT_MAX, false),
    NUM(debug, "MAG_DEBUG", FIELD_BOOL, 0, 0, 1, false),
    NUM(ring_sockets, "MAG_RING_SOCKETS", FIELD_BOOL, 0, 0, 1, false),
    NUM(slow_task_ms, "MAG_SLOW_TASK_MS", FIELD_UNSIGNED, 100, 1, UINT_MAX, true),
    PATH(stats_path, "MAG_STATS"),
    PATH(trace_path, "MAG_TRACE"),
    NUM(trace_events, "MAG_TRACE_EVENTS", FIELD_UNSIGNED, 65536, 1, MAG__TRACE_EVENTS_MAX, true),
    /* 0 is a real budget here: no guard pages. vm.max_map_count is an int,
     * so no process has more than INT_MAX mappings to spend. */
    {"stack_guards", "MAG_STACK_GUARDS", offsetof(mag_config_t, stack_guards), FIELD_UNSIGNED, 0,
     mag__fiber_default_guard_budget, 0, INT_MAX, false},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static unsigned long long get_number(const mag_config_t *cfg, const field_t *f)
{
    const char *p = (const char *)cfg + f->offset;
    switch (f->kind) {
    case FIELD_SIZE:
        return *(const size_t *)p;
    case FIELD_BOOL:
        return *(const bool *)p;
    default:
        return *(const unsigned *)p;
    }
}

/* v is within the field's range: it fits the field's type. */
static void set_number(mag_config_t *cfg, const field_t *f, unsigned long long v)
{
    char *p = (char *)cfg + f->offset;
    switch (f->kind) {
    case FIELD_SIZE:
        *(size_t *)p = (size_t)v;
        break;
    case FIELD_BOOL:
        *(bool *)p = v != 0;
        break;
    default:
        *(unsigned *)p = (unsigned)v;
        break;
    }
}

static const char *get_path(const mag_config_t *cfg, const field_t *f)
{
    return *(const char *const *)(const void *)((const char *)cfg + f->offset);
}

static void set_path(mag_config_t *cfg, const field_t *f, const char *v)
{
    *(const char **)(void *)((char *)cfg + f->offset) = v;
}

static bool in_range(const field_t *f, unsigned long long v)
{
    return (v == 0 && f->zero_is_default) || (v >= f->min && v <= f->max);
}

/* The range, as the messages say it: "a number from 0 to 1024". */
static void describe_range(const field_t *f, char *buf, size_t cap)
{
    if (f->zero_is_default && f->min > 1)
        snprintf(buf, cap, "0 (the default) or a number from %llu to %llu", f->min, f->max);
    else
        snprintf(buf, cap, "a number from %llu to %llu", f->zero_is_default ? 0 : f->min, f->max);
}

/* A whole unsigned number, decimal (leading zeros and all: 010 is ten, not
 * octal eight) or hex after 0x, optionally times 1024 (k) or 1024 * 1024
 * (m): 64k, 1m, 0x4000. false for anything else (a sign or a space
 * included, which strtoull would skip or negate silently) or a value over
 * 64 bits. */
static bool parse_number(const char *v, unsigned long long *out)
{
    int base = 10;
    if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
        base = 16;
        v += 2;
    }
    if (!isxdigit((unsigned char)v[0]) || (base == 10 && !isdigit((unsigned char)v[0])))
        return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, base);
    if (errno || end == v)
        return false;
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10, end++;
    else if (*end == 'm' || *end == 'M')
        shift = 20, end++;
    if (*end || x > (ULLONG_MAX >> shift))
        return false;
    *out = x << shift;
    return true;
}

/* The one reader of the environment: applies f's variable to *cfg if it is
 * set, non-empty and valid; ignores it with a message if it is not valid. */
static void apply_env(mag_config_t *cfg, const field_t *f)
{
    const char *v = getenv(f->env);
    if (!v || !*v)
        return;
    if (f->kind == FIELD_PATH) {
        set_path(cfg, f, v); /* into the environment: see mag_config_init */
        return;
    }
    unsigned long long x;
    if (!parse_number(v, &x) || !in_range(f, x)) {
        char range[96];
        describe_range(f, range, sizeof range);
        mag__warn("ignoring %s='%s': not %s", f->env, v, range);
        return;
    }
    set_number(cfg, f, x);
}

void mag_config_init(mag_config_t *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg); /* also what no field of the table covers */
    for (size_t i = 0; i < NFIELDS; i++) {
        const field_t *f = &fields[i];
        if (f->kind != FIELD_PATH)
            set_number(cfg, f, f->dflt_fn ? f->dflt_fn() : f->dflt);
        apply_env(cfg, f);
    }
}

void mag__config_free(mag_config_t *cfg)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        if (fields[i].kind == FIELD_PATH) {
            free((void *)get_path(cfg, &fields[i])); /* ours: see mag__config_resolve */
            set_path(cfg, &fields[i], NULL);
        }
    }
}

int mag__config_resolve(const mag_config_t *in, mag_config_t *out)
{
    *out = *in;
    for (size_t i = 0; i < NFIELDS; i++) {
        const field_t *f = &fields[i];
        if (f->kind == FIELD_PATH) {
            set_path(out, f, NULL); /* until copied below */
            continue;
        }
        unsigned long long v = get_number(out, f);
        if (!in_range(f, v)) {
            char range[96];
            describe_range(f, range, sizeof range);
            mag__warn("mag_runtime_create: invalid config: %s is %llu, not %s", f->name, v, range);
            return -EINVAL;
        }
        if (v == 0 && f->zero_is_default)
            set_number(out, f, f->dflt_fn ? f->dflt_fn() : f->dflt);
    }
    if (out->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        out->workers = n > 0 ? (unsigned)n : 1;
        if (out->workers > MAG_MAX_WORKERS)
            out->workers = MAG_MAX_WORKERS;
    }
    /* The caller's strings may be the environment's, or its own memory:
     * the runtime keeps copies for its whole life. "" is the same as NULL. */
    for (size_t i = 0; i < NFIELDS; i++) {
        const field_t *f = &fields[i];
        if (f->kind != FIELD_PATH)
            continue;
        const char *src = get_path(in, f);
        if (!src || !*src)
            continue;
        char *copy = strdup(src);
        if (!copy) {
            mag__config_free(out);
            return -ENOMEM;
        }
        set_path(out, f, copy);
    }
    return 0;
}
