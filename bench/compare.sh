#!/bin/sh
# bench/compare.sh OLD.csv NEW.csv - how a benchmark run compares with an
# earlier one (make bench-compare [OLD=...] [NEW=...]).
#
# Both files are latest.csv files (bench/report.py): make bench writes the
# last run's to build/bench-results/latest.csv (the default NEW), and the
# published run's is bench/results/latest.csv (the default OLD). For every
# benchmark, metric, contestant and worker count present in both, prints
# OLD, NEW and NEW/OLD, and "better" or "worse" when the change is over 5%
# (lower is better for times, CPU and memory; higher for requests/s). Rows in
# only one file are listed at the end. To measure a change: make bench, keep
# a copy of the report (cp build/bench-results/latest.csv /tmp/before.csv),
# make the change, make bench again, then
# make bench-compare OLD=/tmp/before.csv (NEW defaults to the last run).
set -u
if [ $# -ne 2 ] || [ ! -r "$1" ] || [ ! -r "$2" ]; then
    echo "usage: sh bench/compare.sh OLD.csv NEW.csv   (make bench-compare [OLD=...] [NEW=...];" >&2
    echo "       default OLD=bench/results/latest.csv, NEW=build/bench-results/latest.csv)" >&2
    [ $# -eq 2 ] && for f in "$1" "$2"; do [ -r "$f" ] || echo "compare.sh: cannot read $f" >&2; done
    exit 2
fi
# The CSV quotes fields that hold commas (notes); numbers never do. Split on
# commas outside quotes with a small state machine so notes do not shift
# columns.
awk -v OLD="$1" '
function split_csv(line, f,    n, i, c, q, cur) {
    n = 0; q = 0; cur = ""
    for (i = 1; i <= length(line); i++) {
        c = substr(line, i, 1)
        if (c == "\"") { q = !q; continue }
        if (c == "," && !q) { f[++n] = cur; cur = ""; continue }
        cur = cur c
    }
    f[++n] = cur
    return n
}
# group,benchmark,metric,unit,better,contestant,workers,value,runs,note
{
    sub(/\r$/, "")
    if (FNR == 1) next
    split_csv($0, f)
    key = f[2] SUBSEP f[3] SUBSEP f[6] SUBSEP f[7]
    if (FILENAME == OLD) {
        if (!(key in old)) order_old[++nold] = key
        old[key] = f[8]; unit[key] = f[4]; better[key] = f[5]
    } else {
        if (!(key in new)) order_new[++nnew] = key
        new[key] = f[8]; unit[key] = f[4]; better[key] = f[5]
    }
}
function label(key,    k) {
    split(key, k, SUBSEP)
    return sprintf("%-26s %-12s %-8s %4s", k[1], (k[2] == "time" || k[2] == "memory") ? "" : k[2], k[3], k[4])
}
END {
    printf "%-26s %-12s %-8s %4s %12s %12s %8s  %s\n", "benchmark", "metric", "who", "wkrs", "old", "new", "new/old", ""
    for (i = 1; i <= nnew; i++) {
        key = order_new[i]
        if (!(key in old)) continue
        if (old[key] == "" && new[key] == "") continue
        if (old[key] == "" || new[key] == "") {
            printf "%s %12s %12s %8s  %s\n", label(key), old[key] == "" ? "n/a" : old[key], new[key] == "" ? "n/a" : new[key], "", ""
            continue
        }
        r = (old[key] + 0 != 0) ? new[key] / old[key] : 0
        verdict = ""
        if (r > 0) {
            gain = (better[key] == "higher") ? r : 1 / r
            if (gain > 1.05) verdict = "better"
            else if (gain < 1 / 1.05) verdict = "worse"
        }
        printf "%s %12s %12s %8.3f  %s %s\n", label(key), old[key], new[key], r, verdict, unit[key]
    }
    for (i = 1; i <= nnew; i++) if (!(order_new[i] in old)) printf "only in new: %s\n", label(order_new[i])
    for (i = 1; i <= nold; i++) if (!(order_old[i] in new)) printf "only in old: %s\n", label(order_old[i])
}' "$1" "$2"
