"""bench/kv_report.py - the key-value section of the benchmark report
(bench/report.py imports it): redis-benchmark against examples/kv_server at
1 and N workers and against redis-server (bench/kv.sh, run by bench/run.sh).

Raw records (tab-separated, in the same file as report.py's):
    K  contestant workers test pipeline rps user_us sys_us requests
                                                 one redis-benchmark run
    X  contestant workers scope reason           scope "kv" (every kv row),
                                                 "*", or a row id (kv_get_p16)
Contestants: magpie (kv_server) at 1 and N workers, redis (redis-server) at 1.
Standard library only.
"""
import csv
import statistics

TESTS = [("ping_inline", "PING inline"), ("ping_mbulk", "PING"), ("set", "SET"),
         ("get", "GET"), ("incr", "INCR")]
PIPELINES = ["1", "16"]
METRICS = [  # key, label, unit, higher is better
    ("rps", "requests/s", "req/s", True),
    ("cpu", "server CPU", "µs/req", False),
]
# Goals from the issue: kv_server at 1 worker uses at most 0.9x redis-server's
# CPU per request and serves at least its requests/s; at N workers, at least
# redis-server's requests/s, with CPU per request within 1.1x of 1 worker's.
CPU_VS_REDIS = 0.9
CPU_N_VS_1 = 1.1


def row_id(test, pipeline):
    return "kv_%s_p%s" % (test, pipeline)


def load(raw_path):
    """The K records as rows: a list of dicts with id, label, metric, unit,
    higher, values {(contestant, workers): median}, runs, ticks (the CPU
    figure one clock tick is worth), and the kv notes."""
    runs, notes = {}, []
    with open(raw_path, encoding="utf-8") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if p[0] == "K" and len(p) == 9:
                c, w, test, pipe = p[1:5]
                try:
                    rps, user, sys_, n = float(p[5]), float(p[6]), float(p[7]), float(p[8])
                except ValueError:
                    continue
                runs.setdefault(row_id(test, pipe), {}).setdefault((c, w), []).append(
                    {"rps": rps, "cpu": user + sys_, "requests": n})
            elif p[0] == "X" and len(p) == 5:
                notes.append(p[1:])
    rows = []
    for pipe in PIPELINES:
        for test, label in TESTS:
            rid = row_id(test, pipe)
            for key, mlabel, unit, higher in METRICS:
                r = {"id": rid, "label": "%s, -P %s" % (label, pipe), "metric": mlabel,
                     "key": key, "unit": unit, "higher": higher, "values": {}, "runs": {},
                     "ticks": {}}
                for k, rs in runs.get(rid, {}).items():
                    r["values"][k] = statistics.median(x[key] for x in rs)
                    r["runs"][k] = len(rs)
                    # One tick of /proc accounting spread over the requests.
                    r["ticks"][k] = 1e6 / HZ[0] / min(x["requests"] for x in rs)
                rows.append(r)
    return rows, notes


HZ = [100.0]  # clock ticks per second (the run's CLK_TCK; report.py sets it)


def reason(notes, row, c, w):
    for nc, nw, scope, why in notes:
        if nc in ("*", c) and nw in ("*", w) and scope in ("*", "kv", row["id"]):
            return why
    return None


def fmt(v):
    if v is None:
        return ""
    if abs(v) >= 10000:
        return "{:,.0f}".format(v)
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def value(row, c, w):
    """The figure, or None when missing or under one clock tick (CPU 0)."""
    v = row["values"].get((c, w))
    if v is not None and row["key"] == "cpu" and v == 0:
        return None
    return v


def cell(row, c, w, notes, foot):
    v = row["values"].get((c, w))
    if v is not None and row["key"] == "cpu" and v == 0:
        return "<%s" % fmt(row["ticks"][(c, w)])
    if v is not None:
        return fmt(v)
    why = reason(notes, row, c, w)
    return foot.mark(why) if why else "—"


def mark(ok):
    return "✓" if ok else "✗"


def goal(row, m1, mn, redis):
    if row["key"] == "rps":
        parts = []
        if m1 is not None and redis is not None:
            parts.append("1w ≥ redis %s" % mark(m1 >= redis))
        if mn is not None and redis is not None:
            parts.append("Nw ≥ redis %s" % mark(mn >= redis))
        return "; ".join(parts)
    parts = []
    if m1 is not None and redis is not None:
        parts.append("1w ≤ %g× redis %s" % (CPU_VS_REDIS, mark(m1 <= CPU_VS_REDIS * redis)))
    if m1 is not None and mn is not None:
        parts.append("Nw ≤ %g× 1w %s" % (CPU_N_VS_1, mark(mn <= CPU_N_VS_1 * m1)))
    return "; ".join(parts)


def ratio(a, b):
    return "" if a is None or b is None or b == 0 else "%.2f" % (a / b)


def table(rows, notes, foot, n):
    """Markdown lines of the kv table (empty when nothing was recorded and
    nothing said why)."""
    if not any(r["values"] for r in rows) and not any(
            scope == "kv" or scope.startswith("kv_") for _, _, scope, _ in notes):
        return []
    head = ["benchmark", "unit", "kv_server 1 worker", "kv_server %s workers" % n,
            "redis-server", "1 worker ÷ redis", "%s workers ÷ redis" % n, "goal"]
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join(["---", "---"] + ["---:"] * 5 + ["---"]) + "|"]
    for r in rows:
        m1, mn, red = value(r, "magpie", "1"), value(r, "magpie", n), value(r, "redis", "1")
        line = ["%s — %s" % (r["label"], r["metric"]), r["unit"],
                cell(r, "magpie", "1", notes, foot), cell(r, "magpie", n, notes, foot),
                cell(r, "redis", "1", notes, foot), ratio(m1, red), ratio(mn, red),
                goal(r, m1, mn, red)]
        out.append("| " + " | ".join(line) + " |")
    return out


def how_to_read(m):
    return [
        "redis-benchmark -c 50 -n %s, one run per test and pipeline depth (-P), "
        "against kv_server (examples/kv_server) and redis-server --save '' --appendonly no "
        "(one thread, as Redis serves). *server CPU*: the server process's user + system "
        "time over the run (all its threads, /proc/PID/stat), divided by the requests; "
        "`<x`: under one clock tick. The load generator shares the machine, so requests/s "
        "is bounded by it too. Ratios below 1 are better for CPU, above 1 for requests/s."
        % m.get("kv_requests", "?"),
    ]


def append_csv(path, rows, notes, n):
    """Appends the kv rows to report.py's latest.csv, in its columns."""
    seen = set()
    with open(path, "a", newline="", encoding="utf-8") as f:
        wr = csv.writer(f)
        for r in rows:
            for c, w in (("magpie", "1"), ("magpie", n), ("redis", "1")):
                v = r["values"].get((c, w))
                why = "" if v is not None else (reason(notes, r, c, w) or "")
                if (v is None and not why) or (r["id"], r["metric"], c, w) in seen:
                    continue  # nothing to say, or N = 1 (one column twice)
                seen.add((r["id"], r["metric"], c, w))
                wr.writerow(["kv", r["id"], r["metric"], r["unit"],
                             "higher" if r["higher"] else "lower", c, w,
                             "" if v is None else "%.6g" % v, r["runs"].get((c, w), ""), why])

