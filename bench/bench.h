/* bench/bench.h - what the benchmark programs share. */
#ifndef MAGPIE_BENCH_H
#define MAGPIE_BENCH_H

#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <magpie.h>

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (sorts v). */
static inline double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* CPUs this process may run on, as the Tokio and Go peers count them. */
static inline unsigned online_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* The command line every benchmark program takes:
 *   PROG [--workers N] [--quick] [--list] [name...]
 * names[0..n) are the program's benchmarks; want[k] is set for each named
 * (all of them when none is). Exits 2 with a usage message on a bad one. */
typedef struct bench_args {
    unsigned workers;
    bool quick;
} bench_args_t;

static void bench_usage(const char *prog, const char *const *names, size_t n)
{
    fprintf(stderr, "usage: %s [--workers N] [--quick] [name...] | %s --list\nbenchmarks:",
            prog, prog);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %s", names[i]);
    fprintf(stderr, "\n");
    exit(2);
}

static inline bench_args_t bench_parse(int argc, char **argv, const char *prog,
                                       const char *const *names, size_t n, bool *want)
{
    bench_args_t args = {online_cpus(), false};
    bool any = false;
    for (size_t k = 0; k < n; k++)
        want[k] = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--workers") == 0 || strncmp(a, "--workers=", 10) == 0) {
            const char *v = a[9] == '=' ? a + 10 : (i + 1 < argc ? argv[++i] : NULL);
            char *end;
            long w = v ? strtol(v, &end, 10) : 0;
            if (!v || *end || w < 1 || w > (long)MAG_MAX_WORKERS)
                bench_usage(prog, names, n);
            args.workers = (unsigned)w;
        } else if (strcmp(a, "--quick") == 0) {
            args.quick = true;
        } else if (strcmp(a, "--list") == 0) {
            for (size_t k = 0; k < n; k++)
                printf("%s\n", names[k]);
            exit(0);
        } else if (a[0] == '-') {
            bench_usage(prog, names, n);
        } else {
            size_t k = 0;
            while (k < n && strcmp(names[k], a) != 0)
                k++;
            if (k == n) {
                fprintf(stderr, "%s: unknown benchmark %s\n", prog, a);
                bench_usage(prog, names, n);
            }
            want[k] = any = true;
        }
    }
    if (!any)
        for (size_t k = 0; k < n; k++)
            want[k] = true;
    return args;
}

#endif
