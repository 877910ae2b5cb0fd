#!/usr/bin/env python3
"""bench/report.py - turns a benchmark run's raw records into the report.

    report.py --raw RESULTS.tsv --machine MACHINE.tsv --out DIR
              [--publish PUBDIR] [--readme README.md] [--print]

Writes DIR/latest.md (machine, run mode, tables), DIR/latest.csv (one row per
benchmark, metric, contestant and worker count) and DIR/latest.svg (grouped
bars normalised to Tokio = 1, drawn by gnuplot with bench/plot.gp, or by this
script when gnuplot is missing). bench/run.sh makes DIR build/bench-results,
which git does not track. Publishing a run (make bench PUBLISH=1): --publish
copies the three files into PUBDIR (bench/results) and --readme replaces the
part of README.md between <!-- bench:start --> and <!-- bench:end -->
(appending the markers when absent) with the table and chart, which link to
bench/results/. --print prints the table and where the files are.

Raw records (tab-separated, written by bench/run.sh):
    B  contestant workers source name value      one micro-benchmark result
    N  contestant workers id rep rps user_us sys_us rss errors ctx_per_req p99_us
                                                 one network run (bench/net.sh);
                                                 "-": not measured (older raw
                                                 files end at errors)
    X  contestant workers scope reason           cells in scope say reason
    W  contestant workers name note              a caveat on a figure
A scope is "*" (everything), "bench" (every non-network row), a group
("sched", "sync", "pool") or a network benchmark id; contestant and workers
may be "*". Standard library only.
"""
import argparse
import csv
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import kv_report  # the key-value section (bench/kv_report.py)

HERE = os.path.dirname(os.path.abspath(__file__))

# ------------------------------------------------------------ what is what

# Benchmark names by group, in the order they are shown. Names a program
# prints that are not listed here are shown too, after these, in the group of
# the magpie program that printed them.
# bench/stranded.c: how long ready work waits behind a busy worker.
STRANDED = ["stranded_lifo_ms", "stranded_completion_ms", "stranded_queued_io_ms",
            "stranded_timer_ms", "stranded_deadline_ms", "stranded_cancel_ms",
            "stranded_close_ms"]
GROUPS = {
    "sched": ["ctx_switch", "spawn_many", "spawn_join_1m", "yield_many",
              "chained_spawn", "parked_1m", "parked_1m_park_s",
              "parked_1m_cancel_s", "parked_1m_exit_s"] + STRANDED,
    "sync": ["ping_pong", "chan_contention_bounded", "chan_contention_unbounded",
             "mutex_contention", "sem_concurrent", "rwlock_read_concurrent",
             "notify_one"],
    "pool": ["spawn_blocking_c1", "spawn_blocking_c2", "spawn_blocking_c4",
             "spawn_blocking_c8", "spawn_blocking_c16", "spawn_blocking_c32",
             "spawn_blocking_c64"],
}
SOURCE_GROUP = {"micro": "sched", "stranded": "sched", "sync_bench": "sync",
                "pool_bench": "pool"}
GROUP_TITLE = {"sched": "scheduler", "sync": "sync", "pool": "pools",
               "net": "network", "other": "other"}

NET = [  # id, label
    ("echo_c50", "echo 64 B, 50 conns"),
    ("echo_c1000", "echo 64 B, 1,000 conns"),
    ("http_c50", "HTTP hello, wrk -c50"),
    ("c10k", "c10k: 100 active + 9,900 idle"),
]
NET_METRICS = [  # key, label, unit, higher is better
    ("rps", "requests/s", "req/s", True),
    ("user", "user CPU", "µs/req", False),
    ("sys", "system CPU", "µs/req", False),
]
C10K_RSS = ("rss", "memory", "KiB/conn", False)
# After those (and c10k's memory), so that the rows that were there before
# keep their order.
NET_EXTRA = [
    ("ctx", "ctx switches", "/req", False),
    ("p99", "p99", "µs", False),
]
# The network loads that also run at 2 workers (bench/run.sh), when 2 is
# neither 1 nor N.
AT_2 = ("echo_c50", "http_c50")

# Goals from the issues: (kind, bound). "tokio": magpie <= bound x Tokio's
# (or >= for higher-is-better); "abs": magpie <= bound.
GOALS = {
    "ctx_switch": ("abs", 10.0),
    "spawn_many": ("tokio", 0.5), "spawn_join_1m": ("tokio", 0.5),
    "yield_many": ("tokio", 0.5), "chained_spawn": ("tokio", 0.5),
    "parked_1m": ("abs", 4.5),
    "parked_1m_park_s": ("abs", 2.0), "parked_1m_cancel_s": ("abs", 1.0),
    "parked_1m_exit_s": ("abs", 1.0),
}
for _n in STRANDED:
    GOALS[_n] = ("abs", 2.0)
for _n in GROUPS["sync"]:
    GOALS[_n] = ("tokio", 0.5)
for _n in GROUPS["pool"]:
    GOALS[_n] = ("tokio", 1.0)


def unit_of(name):
    """Unit and direction of a micro-benchmark result, from its name."""
    if name.endswith("_s"):
        return "s", False
    if name.startswith("parked"):
        return "KiB/task", False
    if "speedup" in name:
        return "×", True
    # A rate only when the name says per second: proc_throughput_4k, like
    # every other benchmark here, prints ns per job.
    if name.endswith("_per_s"):
        return "/s", True
    if name.endswith("_us"):
        return "µs/op", False
    if name.endswith("_ms"):
        return "ms", False
    return "ns/op", False


# Columns: key, contestant, worker count ("N" = the run's N), title.
def main_columns(n):
    return [
        ("m1", "magpie", "1", "magpie 1 worker"),
        ("mN", "magpie", n, "magpie %s workers" % n),
        ("tN", "tokio", n, "Tokio (%s)" % n),
        ("gN", "go", n, "Go (%s)" % n),
        ("fN", "floor", n, "floor (%s)" % n),
        ("py", "asyncio", "1", "asyncio"),
        ("uv", "uvloop", "1", "uvloop"),
    ]


def two_columns():
    return [
        ("m2", "magpie", "2", "magpie 2 workers"),
        ("t2", "tokio", "2", "Tokio (2)"),
        ("g2", "go", "2", "Go (2)"),
        ("f2", "floor", "2", "floor (2)"),
    ]


def loop_columns():
    return [
        ("m1", "magpie", "1", "magpie 1 worker"),
        ("t1", "tokio", "1", "Tokio (1)"),
        ("g1", "go", "1", "Go (1)"),
        ("f1", "floor", "1", "floor (1)"),
        ("py", "asyncio", "1", "asyncio"),
        ("uv", "uvloop", "1", "uvloop"),
    ]


# -------------------------------------------------------------- the data

class Row:
    def __init__(self, group, rid, label, metric, unit, higher):
        self.group, self.id, self.label = group, rid, label
        self.metric, self.unit, self.higher = metric, unit, higher
        self.values = {}  # (contestant, workers) -> value
        self.runs = {}    # (contestant, workers) -> how many runs
        self.rates = {}   # network: (contestant, workers) -> requests/s


def read_raw(path):
    bench, net, notes, warns = [], [], [], {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if p[0] == "B" and len(p) == 6:
                bench.append(p[1:])
            elif p[0] == "N" and len(p) in (10, 12):
                net.append((p[1:] + ["-", "-"])[:11])
            elif p[0] == "X" and len(p) == 5:
                notes.append(p[1:])
            elif p[0] == "W" and len(p) == 5:
                warns[(p[3], p[1], p[2])] = p[4]
    return bench, net, notes, warns


def num(s):
    try:
        v = float(s)  # "-": not measured
        return v if math.isfinite(v) else None
    except ValueError:
        return None


def build_rows(bench, net):
    rows, index = [], {}

    def row(group, rid, label, metric, unit, higher):
        key = (rid, metric)
        if key not in index:
            index[key] = Row(group, rid, label, metric, unit, higher)
            rows.append(index[key])
        return index[key]

    collected = {}
    order = []
    magpie_group = {}
    for c, w, src, name, value in bench:
        v = num(value)
        if v is None:
            continue
        if name not in collected:
            order.append(name)
            collected[name] = {}
        collected[name].setdefault((c, w), []).append(v)
        if c == "magpie" and src in SOURCE_GROUP:
            magpie_group.setdefault(name, SOURCE_GROUP[src])

    def group_of(name):
        for g, names in GROUPS.items():
            if name in names:
                return g
        return magpie_group.get(name, "other")

    def rank(name):
        g = group_of(name)
        gi = list(GROUP_TITLE).index(g)
        names = GROUPS.get(g, [])
        return (gi, names.index(name) if name in names else len(names), order.index(name))

    for name in sorted(order, key=rank):
        unit, higher = unit_of(name)
        r = row(group_of(name), name, name, "", unit, higher)
        for k, vs in collected[name].items():
            r.values[k] = statistics.median(vs)
            r.runs[k] = len(vs)

    by_net = {}
    for c, w, rid, rep, rps, user, sys_, rss, errs, ctx, p99 in net:
        by_net.setdefault(rid, {}).setdefault((c, w), []).append(
            {"rps": num(rps), "user": num(user), "sys": num(sys_),
             "rss": num(rss), "errors": num(errs), "ctx": num(ctx), "p99": num(p99)})
    for rid, label in NET:
        metrics = NET_METRICS + ([C10K_RSS] if rid == "c10k" else []) + NET_EXTRA
        for key, mlabel, unit, higher in metrics:
            r = row("net", rid, label, mlabel, unit, higher)
            for k, runs in by_net.get(rid, {}).items():
                vs = [x[key] for x in runs if x[key] is not None]
                if vs:
                    r.values[k] = statistics.median(vs)
                    r.runs[k] = len(vs)
                    rates = [x["rps"] for x in runs if x["rps"]]
                    if rates:
                        r.rates[k] = statistics.median(rates)
    errors = {}
    for rid, per in by_net.items():
        for k, runs in per.items():
            e = sum(x["errors"] or 0 for x in runs)
            if e:
                errors[(rid,) + k] = int(e)
    return rows, errors


def reason(notes, row, c, w):
    """Why (row, c, w) has no value, or None."""
    for nc, nw, scope, why in notes:
        if nc not in ("*", c) or nw not in ("*", w):
            continue
        if (scope == "*" or scope == row.id or scope == row.group or
                (scope.endswith("*") and row.id.startswith(scope[:-1])) or
                (scope == "bench" and row.group != "net")):
            return why
    return None


# ------------------------------------------------------------ formatting

def fmt(v, unit=""):
    if v is None:
        return ""
    a = abs(v)
    if unit.startswith("KiB"):
        return "%.2f" % v
    if unit == "/req" and 0 < a < 1:
        # Context switches per request are often well under 0.01: three
        # significant digits, without an exponent.
        return "%.*f" % (min(6, 2 - math.floor(math.log10(a))), v)
    if a >= 10000:
        return "{:,.0f}".format(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    return "%.2f" % v


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def goal_cell(row, m, t, floor_total=None, tokio_n=None):
    """The goal from the issues and whether magpie meets it ('' if none)."""
    if row.group == "net":
        if row.id == "c10k" and row.metric != "requests/s":
            return ""
        if row.metric == "requests/s":
            r = ratio(m, t)
            return "" if r is None else "≥ Tokio %s" % ("✓" if r >= 1 else "✗")
        if row.metric == "user CPU":
            r = ratio(m, t)
            return "" if r is None else "≤ 0.5× Tokio %s" % ("✓" if r <= 0.5 else "✗")
        if row.metric == "system CPU" and floor_total:
            mt, ft = floor_total
            if mt is None or ft is None:
                return ""
            return "user+sys ≤ 1.1× floor: %s vs %s %s" % (
                fmt(mt), fmt(ft), "✓" if mt <= 1.1 * ft else "✗")
        return ""
    g = GOALS.get(row.id)
    if not g or m is None:
        return ""
    kind, bound = g
    if kind == "abs":
        return "≤ %g %s %s" % (bound, row.unit.split("/")[0], "✓" if m <= bound else "✗")
    r = ratio(m, t)
    if r is None:
        return ""
    ok = r >= 1 / bound if row.higher else r <= bound
    return "≤ %g× Tokio %s" % (bound, "✓" if ok else "✗")


class Notes:
    """Footnotes for cells without a number: one per distinct reason."""

    def __init__(self):
        self.reasons = []

    def mark(self, why):
        if why not in self.reasons:
            self.reasons.append(why)
        return "n/a[%d]" % (self.reasons.index(why) + 1)

    def lines(self):
        return ["[%d] %s" % (i + 1, r) for i, r in enumerate(self.reasons)]


WARNS = {}  # (row id, contestant, workers) -> caveat
MACHINE = {}


def tick_us(row, c, w):
    """CPU µs/req that one clock tick of /proc accounting is worth in this
    cell's run, or None: the resolution of a CPU-per-request figure."""
    rate = row.rates.get((c, w))
    if row.unit != "µs/req" or not rate:
        return None
    hz = num(MACHINE.get("clk_tck", "100")) or 100
    d = num(MACHINE.get("duration_c10k" if row.id == "c10k" else
                        "duration_http" if row.id.startswith("http") else "duration_echo", "1")) or 1
    return 1e6 / hz / (rate * d)


def below_tick(row, c, w):
    """A CPU figure of 0: less than one tick was counted in the run."""
    v = row.values.get((c, w))
    return v == 0 and tick_us(row, c, w) is not None


def cell(row, c, w, notes, foot):
    v = row.values.get((c, w))
    if v is not None and below_tick(row, c, w):
        return "<%s" % fmt(tick_us(row, c, w))
    if v is not None:
        caveat = WARNS.get((row.id, c, w)) if row.group != "net" else None
        return fmt(v, row.unit) + (" " + foot.mark(caveat)[3:] if caveat else "")
    why = reason(notes, row, c, w)
    return foot.mark(why) if why else "—"


def speedup(row, a, b):
    """How much better b (N workers) is than a (1 worker); None for memory."""
    if row.unit.startswith("KiB") or a is None or b is None or a == 0 or b == 0:
        return None
    return b / a if row.higher else a / b


def label_of(row):
    if row.group == "net":
        return "%s — %s" % (row.label, row.metric)
    return row.label


def table(rows, cols, notes, foot, n, errors, loop_mode=False, cmp_w=None):
    """Markdown table lines; the ratio to Tokio and the goals at cmp_w
    workers (default: 1 in loop mode, else n)."""
    head = ["benchmark", "unit"]
    for key, c, w, title in cols:
        head.append(title)
        if key == "mN":
            head.append("speedup N/1")
    cmp_w = cmp_w or ("1" if loop_mode else n)
    head.append("magpie ÷ Tokio (%s)" % cmp_w)
    head.append("goal")
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 3) + ["---"]) + "|"]
    group = None
    for r in rows:
        if r.group != group:
            group = r.group
            out.append("| **%s** |" % GROUP_TITLE.get(group, group) + " |" * (len(head) - 1))
        line = [label_of(r), r.unit]
        for key, c, w, title in cols:
            txt = cell(r, c, w, notes, foot)
            if r.group == "net" and (r.id,) + (c, w) in errors:
                txt += " (%d err)" % errors[(r.id,) + (c, w)]
            line.append(txt)
            if key == "mN":
                s = speedup(r, r.values.get(("magpie", "1")), r.values.get(("magpie", n)))
                line.append("" if s is None else "%.2f×" % s)
        m = r.values.get(("magpie", cmp_w))
        t = r.values.get(("tokio", cmp_w))
        if below_tick(r, "magpie", cmp_w) or below_tick(r, "tokio", cmp_w):
            m = t = None  # no ratio of a figure under the accounting's resolution
        q = ratio(m, t)
        line.append("" if q is None else "%.2f" % q)
        ft = None
        if r.metric == "system CPU":
            def total(c):
                u = next((x.values.get((c, cmp_w)) for x in rows
                          if x.id == r.id and x.metric == "user CPU"), None)
                s = r.values.get((c, cmp_w))
                return None if u is None or s is None else u + s
            ft = (total("magpie"), total("floor"))
        line.append(goal_cell(r, m, t, ft))
        out.append("| " + " | ".join(line) + " |")
    return out


# ------------------------------------------------------------------ csv

NET_ONLY = ("floor", "asyncio", "uvloop")


def write_csv(path, rows, notes, n, m):
    contestants = [("magpie", "1"), ("magpie", "2"), ("magpie", n),
                   ("tokio", "1"), ("tokio", "2"), ("tokio", n),
                   ("go", "1"), ("go", "2"), ("go", n),
                   ("floor", "1"), ("floor", "2"), ("floor", n),
                   ("asyncio", "1"), ("uvloop", "1")]
    seen = []
    for c in contestants:
        if c not in seen:
            seen.append(c)
    with open(path, "w", newline="", encoding="utf-8") as f:
        wr = csv.writer(f)
        wr.writerow(["group", "benchmark", "metric", "unit", "better", "contestant",
                     "workers", "value", "runs", "note"])
        for r in rows:
            for c, w in seen:
                if c in NET_ONLY and r.group != "net":
                    continue
                if w == "2" and n != "2" and r.id not in AT_2:
                    continue  # only those loads run at 2 workers as well
                v = r.values.get((c, w))
                runs = r.runs.get((c, w), "")
                if v is not None and r.group != "net":
                    # Each program printed the median of its own runs.
                    runs = 1 if r.id.startswith("parked") else m.get("reps_bench", "")
                why = "" if v is not None else (reason(notes, r, c, w) or "")
                if v is None and not why:
                    continue
                metric = r.metric or ("memory" if r.unit.startswith("KiB") else "time")
                wr.writerow([r.group, r.id, metric, r.unit, "higher" if r.higher else "lower", c, w,
                             "" if v is None else "%.6g" % v, runs, why])


# ---------------------------------------------------------------- chart

CHART_SERIES = [("magpie", "1", "magpie 1 worker"), ("magpie", "N", "magpie N workers"),
                ("go", "N", "Go (N)"), ("floor", "N", "floor (N)"),
                ("asyncio", "1", "asyncio"), ("uvloop", "1", "uvloop")]


def chart_data(rows, n):
    """Groups (label, [value per series]) relative to Tokio (N) = 1, where
    above 1 is better than Tokio whatever the unit."""
    groups = []
    for r in rows:
        if r.group == "net" and r.metric in [x[1] for x in NET_EXTRA]:
            continue  # context switches and p99: in the tables only
        t = r.values.get(("tokio", n))
        if not t:
            continue
        vals = []
        for c, w, _ in CHART_SERIES:
            v = r.values.get((c, n if w == "N" else w))
            if v is None or v <= 0:
                vals.append(None)
            else:
                vals.append(v / t if r.higher else t / v)
        if any(x is not None for x in vals[:2]):
            lab = r.id if r.group != "net" else "%s %s" % (r.id, {"requests/s": "req/s",
                                                               "user CPU": "user",
                                                               "system CPU": "sys",
                                                               "memory": "KiB"}[r.metric])
            groups.append((lab, vals))
    return groups


def series_title(series, n):
    c, w, name = series
    return name.replace("N", n) if w == "N" else name


def chart_range(groups):
    """Decades of the log axis that hold every bar (and 1)."""
    vals = [v for _, vs in groups for v in vs if v]
    lo = 10 ** math.floor(math.log10(min(vals + [0.5])))
    hi = 10 ** math.ceil(math.log10(max(vals + [2])))
    return lo, hi


def write_svg_gnuplot(path, groups, n, title):
    gp = shutil.which("gnuplot")
    if not gp or not groups:
        return False
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False, encoding="utf-8") as f:
        f.write('"benchmark" ' + " ".join('"%s"' % series_title(s, n) for s in CHART_SERIES) + "\n")
        for lab, vals in groups:
            f.write('"%s" %s\n' % (lab, " ".join("NaN" if v is None else "%.6g" % v for v in vals)))
        data = f.name
    lo, hi = chart_range(groups)
    expr = "data='%s'; out='%s'; ngroups=%d; nseries=%d; ymin=%g; ymax=%g; heading='%s'" % (
        data, path, len(groups), len(CHART_SERIES), lo, hi, title.replace("'", ""))
    try:
        p = subprocess.run([gp, "-e", expr, os.path.join(HERE, "plot.gp")],
                           capture_output=True, text=True, timeout=60)
        ok = p.returncode == 0 and os.path.exists(path) and os.path.getsize(path) > 0
        if not ok:
            sys.stderr.write("report.py: gnuplot failed: %s\n" % p.stderr.strip()[-400:])
        return ok
    finally:
        os.unlink(data)


COLORS = ["#1f77b4", "#08306b", "#2ca02c", "#7f7f7f", "#ff7f0e", "#d62728"]


def write_svg_python(path, groups, n, title):
    """The same chart without gnuplot: log-scale grouped bars."""
    ns = len(CHART_SERIES)
    bw, gap, left, top, bottom = 9, 14, 60, 50, 150
    width = left + 20 + len(groups) * (ns * bw + gap) + 160
    height = 520
    plot_h = height - top - bottom
    lo, hi = chart_range(groups)

    def y(v):
        return top + plot_h * (1 - (math.log10(v) - math.log10(lo)) /
                               (math.log10(hi) - math.log10(lo)))
    s = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="11">' % (width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="20" font-size="14">%s</text>' % (left, title)]
    d = lo
    while d <= hi * 1.001:
        s.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' %
                 (left, width - 160, y(d), y(d)))
        s.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (left - 4, y(d) + 4, d))
        d *= 10
    s.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="black" stroke-dasharray="4"/>' %
             (left, width - 160, y(1), y(1)))
    x = left + 10
    for lab, vs in groups:
        for i, v in enumerate(vs):
            if v:
                yy = y(v)
                s.append('<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s %s: %.3g</title></rect>' %
                         (x + i * bw, min(yy, top + plot_h), bw - 1, max(top + plot_h - yy, 0),
                          COLORS[i], lab, CHART_SERIES[i][2], v))
        cx = x + ns * bw / 2
        s.append('<text transform="translate(%.1f,%d) rotate(-50)" text-anchor="end">%s</text>' %
                 (cx, top + plot_h + 12, lab))
        x += ns * bw + gap
    for i in range(ns):
        ly = top + 14 * i
        s.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>' % (width - 150, ly, COLORS[i]))
        s.append('<text x="%d" y="%d">%s</text>' % (width - 135, ly + 9, series_title(CHART_SERIES[i], n)))
    s.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(s) + "\n")
    return True


# --------------------------------------------------------------- report

def read_machine(path):
    m = {}
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("\t")
                m[k] = v
    return m


def how_to_read(m):
    n = m.get("workers_n", "N")
    return [
        "How to read it:",
        "",
        "- Every figure is a median: micro-benchmarks (scheduler, sync, pools) of %s runs "
        "each, network benchmarks of %s run(s) (c10k: %s) of %s s (HTTP %s s, c10k %s s). "
        "ns/op and µs/req: lower is better; requests/s: higher is better; KiB: lower is better."
        % (m.get("reps_bench", "?"), m.get("reps_net", "?"), m.get("reps_c10k", "?"),
           m.get("duration_echo", "?"), m.get("duration_http", "?"), m.get("duration_c10k", "?")),
        "- **speedup N/1**: how much better magpie does with %s workers than in its "
        "single-threaded loop mode (above 1: the extra workers help)." % n,
        "- **magpie ÷ Tokio**: magpie's figure divided by Tokio's at the same worker count. "
        "For times, CPU and memory below 1 means magpie is better (0.5 = half of Tokio's); "
        "for requests/s above 1 means magpie is better.",
        "- **Network rows**: requests/s from the load generator; *user CPU* and *system CPU* "
        "are the server process's own CPU time (all its threads, from /proc) over the run "
        "divided by the requests it answered. The kernel's TCP work lands in system CPU "
        "and is about the same for every server; user CPU is what the runtime itself adds. "
        "The load generator runs on the same machine, so on a small machine requests/s "
        "is bounded by it as much as by the server: compare CPU per request. /proc counts "
        "CPU time in clock ticks (10 ms), so a short run rounds small figures: `<x` means "
        "less than one tick, i.e. under x µs per request, and has no ratio.",
        "- **ctx switches**: the server's context switches (voluntary and involuntary, "
        "summed over its threads from /proc/PID/task/*/status) over the same window, divided "
        "by the requests it answered; a thread that exits during the run takes its switches "
        "with it. **p99**: the 99th-percentile latency in µs, from the load generator "
        "(HTTP: wrk --latency). Both: lower is better.",
        "- The 50-connection echo and HTTP loads run at 2 workers as well when the machine "
        "has more than 2 cores (their own table in latest.md).",
        "- **floor**: a hand-written io_uring server with no runtime at all (bench/floor): "
        "the least CPU per request this kernel allows; the distance to it is the cost of "
        "the runtime.",
        "- **asyncio / uvloop**: Python's event loop, without and with uvloop, always one thread.",
        "- **goal**: the target set for magpie in the issues, checked on this run (✓ met, ✗ missed).",
        "- `n/a[k]`: not measured, for the reason in note k; a figure followed by `[k]` "
        "comes with the caveat in note k; `—`: this contestant has no such benchmark.",
        "- Chart: every bar is relative to Tokio with %s workers = 1, oriented so that "
        "above 1 is better than Tokio (for times: Tokio's time ÷ the contestant's); log scale." % n,
    ]


def machine_lines(m):
    out = ["- Machine: %s, %s cores, %s, %s memory" % (
        m.get("cpu", "?"), m.get("cores", "?"), m.get("kernel", "?"), m.get("mem", "?"))]
    loads = [num(x.split()[0]) if x.split() else None
             for x in (m.get("load_start", ""), m.get("load", ""))]
    busy = any(x is not None and x > (num(m.get("cores", "0")) or 0) for x in loads)
    out.append("- Date: %s; commit %s; load average %s at the start, %s at the end%s" % (
        m.get("date", "?"), m.get("commit", "?"), m.get("load_start", "?"), m.get("load", "?"),
        " (above the core count: other work shared the machine, so the figures are noisier)"
        if busy else ""))
    out.append("- Run: `make bench%s` (%s mode), N = %s workers, %s s in all; "
               "servers and load generators %s" % (
                   " QUICK=1" if m.get("mode") == "quick" else "", m.get("mode", "?"),
                   m.get("workers_n", "?"), m.get("elapsed", "?"),
                   ("pinned: " + m["pinning"]) if m.get("pinning") else
                   "not pinned (the same for every contestant)"))
    tools = [m.get("cc", ""), m.get("python", "")]
    pb = []
    for x in m.get("peers_build", "").split(";"):
        # "peer tokio: built DIR/... (rustc 1.63.0)" -> "Tokio: rustc 1.63.0"
        x = x.strip()
        if not x:
            continue
        name, _, rest = x[len("peer "):].partition(": ")
        if rest.startswith("built") and rest.endswith(")") and "(" in rest:
            rest = rest[rest.rindex("(") + 1:-1]
        pb.append("%s: %s" % (name, rest))
    out.append("- Toolchains: %s" % "; ".join([t for t in tools if t] + pb))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--machine")
    ap.add_argument("--out", required=True)
    ap.add_argument("--publish")
    ap.add_argument("--readme")
    ap.add_argument("--print", action="store_true")
    a = ap.parse_args()

    m = read_machine(a.machine)
    n = m.get("workers_n", str(os.cpu_count() or 1))
    bench, net, notes, warns = read_raw(a.raw)
    WARNS.update(warns)
    MACHINE.update(m)
    rows, errors = build_rows(bench, net)
    kv_report.HZ[0] = num(m.get("clk_tck", "100")) or 100
    kv_rows, kv_notes = kv_report.load(a.raw)
    os.makedirs(a.out, exist_ok=True)

    foot = Notes()
    main_t = table(rows, main_columns(n), notes, foot, n, errors)
    main_notes = len(foot.reasons)  # the README shows the main table only
    loop_t = None
    if n != "1" and m.get("mode") != "quick":
        loop_t = table(rows, loop_columns(), notes, foot, n, errors, loop_mode=True)
    two_t = None
    if n not in ("1", "2"):
        at2 = [r for r in rows if r.id in AT_2]
        if any(k[1] == "2" for r in at2 for k in r.values):
            two_t = table(at2, two_columns(), notes, foot, n, errors, cmp_w="2")

    kv_t = kv_report.table(kv_rows, kv_notes, foot, n)

    md = ["# magpie benchmark results", ""] + machine_lines(m) + [""]
    md += ["## magpie 1 worker and %s workers against the peers at %s workers" % (n, n), ""]
    md += main_t + [""]
    if two_t:
        md += ["## The 50-connection loads at 2 workers", ""]
        md += two_t + [""]
    if loop_t:
        md += ["## Single-threaded: magpie's loop mode against the peers at 1 worker", ""]
        md += loop_t + [""]
    elif n != "1":
        md += ["The single-threaded comparison (the peers at 1 worker) is made in full "
               "mode only (`make bench` without QUICK=1).", ""]
    if kv_t:
        md += ["## Key-value: kv_server against redis-server (redis-benchmark)", ""]
        md += kv_t + [""] + kv_report.how_to_read(m) + [""]
    if foot.reasons:
        md += ["Notes:", ""] + ["- " + x for x in foot.lines()] + [""]
    md += ["![chart](latest.svg)", ""] + how_to_read(m) + [""]
    with open(os.path.join(a.out, "latest.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md))

    write_csv(os.path.join(a.out, "latest.csv"), rows, notes, n, m)
    kv_report.append_csv(os.path.join(a.out, "latest.csv"), kv_rows, kv_notes, n)

    title = "magpie vs peers, relative to Tokio (%s workers) = 1, higher is better" % n
    svg = os.path.join(a.out, "latest.svg")
    groups = chart_data(rows, n)
    if not write_svg_gnuplot(svg, groups, n, title):
        write_svg_python(svg, groups, n, title)

    files = ["latest.md", "latest.csv", "latest.svg"]
    if a.publish:
        os.makedirs(a.publish, exist_ok=True)
        for name in files:
            tmp = os.path.join(a.publish, name + ".tmp")
            shutil.copyfile(os.path.join(a.out, name), tmp)
            os.replace(tmp, os.path.join(a.publish, name))
    if a.readme:
        update_readme(a.readme, m, main_t, foot.lines()[:main_notes])

    if a.print:
        print()
        print("\n".join(machine_lines(m)))
        print()
        print_plain(main_t)
        if two_t:
            print()
            print_plain(two_t)
        if loop_t:
            print()
            print_plain(loop_t)
        if kv_t:
            print()
            print_plain(kv_t)
        if foot.reasons:
            print()
            print("\n".join(foot.lines()))
        print()
        print("Report: %s/latest.md, latest.csv, latest.svg" % os.path.relpath(a.out))
        if a.publish:
            print("Published: %s/latest.md, latest.csv, latest.svg" % os.path.relpath(a.publish))
        if a.readme:
            print("Published: the benchmark section of %s" % os.path.relpath(a.readme))


def print_plain(md_lines):
    """A markdown table as aligned columns for the terminal."""
    rows = []
    for line in md_lines:
        cells = [c.strip().replace("**", "") for c in line.strip().strip("|").split("|")]
        if all(set(c) <= set("-:") for c in cells):
            continue
        rows.append(cells)
    ncol = max(len(r) for r in rows)
    rows = [r + [""] * (ncol - len(r)) for r in rows]
    width = [max(len(r[i]) for r in rows) for i in range(ncol)]
    for r in rows:
        out = []
        for i, c in enumerate(r):
            out.append(c.ljust(width[i]) if i < 2 or i == ncol - 1 else c.rjust(width[i]))
        print("  ".join(out).rstrip())


def update_readme(path, m, main_t, note_lines):
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    body = ["## Benchmarks", "",
            "`make bench` runs the whole suite (about 5 minutes on an idle 2-core machine; "
            "`make bench QUICK=1` about one minute; building the Tokio peer the first "
            "time adds a minute or two) and writes its report (latest.md, latest.csv, "
            "latest.svg) to build/bench-results/, which git does not track; "
            "`make bench-compare` prints the ratio of that run to the published one "
            "(`OLD=a.csv NEW=b.csv`: of any two). "
            "A reference run is published on purpose with `make bench PUBLISH=1`, which "
            "also copies the report to "
            "[bench/results/latest.md](bench/results/latest.md), "
            "[latest.csv](bench/results/latest.csv) and "
            "[latest.svg](bench/results/latest.svg) and replaces this section. "
            "The published run:", ""]
    body += machine_lines(m) + [""]
    body += main_t + [""]
    if note_lines:
        body += ["Notes:", ""] + ["- " + x for x in note_lines] + [""]
    body += ["![magpie against its peers, relative to Tokio = 1](bench/results/latest.svg)", ""]
    body += how_to_read(m) + [""]
    body += ["The single-threaded comparison (magpie's loop mode against the peers at one "
             "worker) is in [bench/results/latest.md](bench/results/latest.md).", ""]
    section = start + "\n" + "\n".join(body) + end
    if start in text and end in text and text.index(start) < text.index(end):
        i, j = text.index(start), text.index(end) + len(end)
        text = text[:i] + section + text[j:]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
    tmp = path + ".bench-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
