#!/usr/bin/env bash
# bench/net.sh - one network benchmark against one server, as one line.
#
#   bench/net.sh echo|http|c10k NAME CMD...
#
# Starts `CMD... --port 0`, waits (10 s at most) for the server to print
# "listening on <port>", runs the load against 127.0.0.1:<port>, and prints
#
#   NAME kind requests_per_s user_us_per_req sys_us_per_req rss_kib errors \
#        ctx_switches_per_req p99_us
#
#   requests_per_s   from the load generator, over its measured window
#   user_us_per_req  the server's own user and system CPU time (utime and
#   sys_us_per_req   stime of all its threads, /proc/PID/stat, in clock ticks
#                    of 1/CLK_TCK s) spent while the load ran, connecting and
#                    warm-up included, divided by every request it answered
#   rss_kib          echo, http: the server's peak resident set (VmHWM), KiB
#                    c10k: KiB per connection instead, i.e. (VmHWM under load
#                    - VmRSS before any connection) / connections; same
#                    column, so every kind has the same seven fields
#   errors           connect failures, resets, short or corrupt replies,
#                    idle connections closed by the server; non-2xx for http
#   ctx_switches_per_req
#                    the server's context switches (voluntary_ctxt_switches +
#                    nonvoluntary_ctxt_switches of every thread, from
#                    /proc/PID/task/*/status) over the same window as the CPU
#                    figures, divided by the same requests. Counted per
#                    thread: a thread created during the load counts from 0,
#                    and a thread that exits during it is left out, losing
#                    the switches it made in the window (the kernel keeps an
#                    exited thread's counts only in the process totals that
#                    getrusage reads, not in /proc), so with threads coming
#                    and going the figure can read low, never negative
#   p99_us           99th-percentile latency in µs: loadgen's p99_us (per
#                    message, over its measured window; c10k: the active
#                    connections), wrk --latency's 99% line for http
#
# The last two fields come after the first seven so that readers of those
# keep working. A figure that could not be measured is "-".
#
# Loads:
#   echo  loadgen --conns $CONNS (50) --size $SIZE (64) --duration $DURATION (5)
#         [--pipeline $PIPELINE]
#   http  wrk -t1 -c$CONNS (50) -d$DURATION (5)s --latency http://127.0.0.1:<port>/
#   c10k  loadgen --conns $C10K_ACTIVE (100) --idle $C10K_IDLE (9900)
#         --size $SIZE (64) --duration $DURATION (5)
# Environment: LOADGEN (default $BUILD/tools/loadgen, BUILD=build; built from
# tools/loadgen.c into a temporary directory when missing), LOAD_THREADS
# (loadgen --threads, 1), WRK (wrk), PIN_SERVER and PIN_LOAD (taskset CPU
# lists; give both, the same for every contestant).
#
# A server that does not start, or a load that fails, still gives one line,
# with "-" in the measured fields and the reason on stderr; the exit status is
# 0 either way so that one broken contestant does not stop a suite.
set -u

usage() {
    echo "usage: bench/net.sh echo|http|c10k NAME CMD..." >&2
    exit 2
}
[ $# -ge 3 ] || usage
kind=$1 name=$2
shift 2
case $kind in echo | http | c10k) ;; *) usage ;; esac

root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/magpie-net.XXXXXX")
pid=
cleanup() {
    stop_server
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { # fail REASON: the line with "-" fields, the reason on stderr
    echo "net.sh: $name $kind: $1" >&2
    echo "$name $kind - - - - - - -"
    exit 0
}

stop_server() {
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    # Three seconds to exit cleanly, then SIGKILL.
    for _ in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
}

# utime+stime of the whole process (all threads), in clock ticks. The command
# name in field 2 may hold spaces, so split what follows its closing ")".
cpu_ticks() {
    local stat rest f
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    rest=${stat##*) }
    read -r -a f <<<"$rest"
    # f[0] is field 3 (state): utime is field 14, stime field 15.
    echo "${f[11]} ${f[12]}"
}

# "TID switches" for every thread of the server: voluntary + nonvoluntary
# context switches so far. A thread that exits between the listing and the
# read is left out.
ctx_threads() {
    local f k v n tid
    for f in "/proc/$pid/task/"*/status; do
        n=0
        {
            while read -r k v; do
                case $k in
                voluntary_ctxt_switches: | nonvoluntary_ctxt_switches:) n=$((n + v)) ;;
                esac
            done <"$f"
        } 2>/dev/null || continue
        tid=${f%/status}
        echo "${tid##*/} $n"
    done
}

status_kib() { # status_kib FIELD: a VmXXX line of /proc/PID/status, in KiB
    awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status" 2>/dev/null
}

value() { # value KEY FILE: the number after "KEY " in loadgen's output
    awk -v k="$1" '$1 == k { print $2 }' "$2"
}

loadgen=${LOADGEN:-$root/${BUILD:-build}/tools/loadgen}
if [ "$kind" != http ] && [ ! -x "$loadgen" ]; then
    # The Makefile links tools against libmagpie; loadgen needs only liburing.
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -pthread "$root/tools/loadgen.c" -o "$tmp/loadgen" -luring ||
        fail "no loadgen at $loadgen, and building it failed"
    loadgen=$tmp/loadgen
fi
wrk=${WRK:-wrk}
if [ "$kind" = http ] && ! command -v "$wrk" >/dev/null 2>&1; then
    fail "wrk not found (apt-get install wrk)"
fi

# Every contestant may use as many descriptors as the hard limit allows;
# c10k needs more than the usual soft limit of 1024.
ulimit -S -n "$(ulimit -H -n)" 2>/dev/null

pin_server=() pin_load=()
[ -n "${PIN_SERVER:-}" ] && pin_server=(taskset -c "$PIN_SERVER")
[ -n "${PIN_LOAD:-}" ] && pin_load=(taskset -c "$PIN_LOAD")

duration=${DURATION:-5}
conns=${CONNS:-50}
size=${SIZE:-64}
# Every load is bounded: the measured time, plus time to connect and report.
limit=$(awk -v d="$duration" 'BEGIN { printf "%d", d + 60 }')

# taskset and the Python servers exec, so $! stays the server's PID. The
# output file exists before the server starts, so polling it never races.
: >"$tmp/server.out"
${pin_server[@]+"${pin_server[@]}"} "$@" --port 0 >"$tmp/server.out" 2>"$tmp/server.err" &
pid=$!
port=
for _ in $(seq 100); do
    port=$(awk '$1 == "listening" && $2 == "on" { print $3; exit }' "$tmp/server.out")
    [ -n "$port" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null
        pid=
        fail "server exited before listening: $(tail -n 3 "$tmp/server.err" | tr '\n' ' ')"
    fi
    sleep 0.1
done
[ -n "$port" ] || fail "server did not print 'listening on <port>' within 10 s"

rss_before=$(status_kib VmRSS)
read -r user0 sys0 < <(cpu_ticks) || fail "cannot read /proc/$pid/stat"
ctx_threads >"$tmp/ctx0"

case $kind in
echo)
    total=$conns
    timeout "$limit" ${pin_load[@]+"${pin_load[@]}"} "$loadgen" --host 127.0.0.1 --port "$port" \
        --conns "$conns" --size "$size" --duration "$duration" \
        ${PIPELINE:+--pipeline "$PIPELINE"} --threads "${LOAD_THREADS:-1}" \
        >"$tmp/load.out" 2>"$tmp/load.err"
    ;;
c10k)
    active=${C10K_ACTIVE:-100} idle=${C10K_IDLE:-9900}
    total=$((active + idle))
    timeout "$limit" ${pin_load[@]+"${pin_load[@]}"} "$loadgen" --host 127.0.0.1 --port "$port" \
        --conns "$active" --idle "$idle" --size "$size" --duration "$duration" \
        --threads "${LOAD_THREADS:-1}" >"$tmp/load.out" 2>"$tmp/load.err"
    ;;
http)
    total=$conns
    timeout "$limit" ${pin_load[@]+"${pin_load[@]}"} "$wrk" -t1 -c"$conns" -d"${duration}s" \
        --latency "http://127.0.0.1:$port/" >"$tmp/wrk.out" 2>"$tmp/load.err"
    # wrk's summary: "N requests in Xs", "Requests/sec: R", and when
    # something went wrong "Socket errors: connect A, read B, write C,
    # timeout D" and "Non-2xx or 3xx responses: N". --latency adds the
    # distribution, "99%    2.58ms", in us, ms, s, m or h.
    awk '
        / requests in / { all = $1 }
        /^Requests\/sec:/ { rate = $2 }
        /Socket errors:/ { gsub(",", ""); errs += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { errs += $5 }
        $1 == "99%" && NF == 2 {
            u = $2
            sub(/^[0-9.]+/, "", u)
            x = substr($2, 1, length($2) - length(u)) + 0
            f = u == "us" ? 1 : u == "ms" ? 1e3 : u == "s" ? 1e6 : u == "m" ? 6e7 : u == "h" ? 3.6e9 : 0
            if (f) p99 = sprintf("%.1f", x * f)
        }
        END {
            if (rate != "") printf "requests/s %s\nrequests_all %s\nerrors %d\n", rate, all, errs
            if (p99 != "") printf "p99_us %s\n", p99
        }' "$tmp/wrk.out" >"$tmp/load.out"
    ;;
esac

read -r user1 sys1 < <(cpu_ticks) || fail "server died during the load: $(tail -n 3 "$tmp/server.err" | tr '\n' ' ')"
ctx_threads >"$tmp/ctx1"
hwm=$(status_kib VmHWM)
[ -n "$hwm" ] || hwm=$(status_kib VmRSS)
stop_server

rate=$(value requests/s "$tmp/load.out")
requests=$(value requests_all "$tmp/load.out")
errors=$(value errors "$tmp/load.out")
if [ -z "$rate" ] || [ -z "$requests" ] || [ -z "$errors" ]; then
    fail "load failed: $(tail -n 3 "$tmp/load.err" | tr '\n' ' ')"
fi
[ "$requests" -gt 0 ] || fail "no request completed (errors $errors): $(tail -n 3 "$tmp/load.err" | tr '\n' ' ')"
p99=$(value p99_us "$tmp/load.out")
# Context switches in the window: each thread alive at the end, less what it
# had at the start (0 if it started since); threads that exited are lost.
ctx=$(awk 'FNR == NR { before[$1] = $2; next }
    { d = $2 - ($1 in before ? before[$1] : 0); sum += d < 0 ? $2 : d; live++ }
    END { if (live) print sum; else print "-" }' "$tmp/ctx0" "$tmp/ctx1")
[ "$errors" -eq 0 ] || echo "net.sh: $name $kind: $(tr '\n' ' ' <"$tmp/load.err")" >&2

awk -v name="$name" -v kind="$kind" -v rate="$rate" -v n="$requests" -v errors="$errors" \
    -v u0="$user0" -v u1="$user1" -v s0="$sys0" -v s1="$sys1" -v hz="$(getconf CLK_TCK)" \
    -v hwm="$hwm" -v before="$rss_before" -v total="$total" -v ctx="$ctx" -v p99="${p99:--}" 'BEGIN {
        user = (u1 - u0) / hz * 1e6 / n
        sys = (s1 - s0) / hz * 1e6 / n
        if (kind == "c10k")
            rss = sprintf("%.2f", (hwm - before) / total)
        else
            rss = sprintf("%d", hwm)
        cs = ctx == "-" ? "-" : sprintf("%.6f", ctx / n)
        printf "%s %s %.0f %.2f %.2f %s %d %s %s\n", name, kind, rate, user, sys, rss, errors, cs, p99
    }'
