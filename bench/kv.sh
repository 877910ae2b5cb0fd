#!/usr/bin/env bash
# bench/kv.sh - redis-benchmark against one Redis-protocol server, one line
# per test and pipeline depth.
#
#   bench/kv.sh NAME CMD...
#
# Picks a free port P, starts `CMD... --port P` (examples/kv_server and
# redis-server both take it), waits (10 s at most) until the server answers
# PING, then for each pipeline depth in $KV_PIPELINES (1 16) and each test in
# $KV_TESTS (ping_inline ping_mbulk set get incr) runs
#
#   redis-benchmark -h 127.0.0.1 -p P -t TEST -n $KV_REQUESTS (200000)
#                   -c $KV_CONNS (50) -P DEPTH -q --csv
#
# and prints
#
#   NAME test pipeline requests_per_s user_us_per_req sys_us_per_req requests
#
#   requests_per_s   redis-benchmark's figure for the test
#   user_us_per_req  the server's user and system CPU time (utime and stime
#   sys_us_per_req   of all its threads, /proc/PID/stat, in clock ticks of
#                    1/CLK_TCK s) over that one redis-benchmark run,
#                    connecting included, divided by the requests it made
#
# One test per run, so that each has its own CPU figures; the keyspace is
# the one server's throughout (SET before GET and INCR, as redis-benchmark
# runs them). A figure that could not be measured is "-", with the reason on
# stderr; the exit status is 0 either way so that one broken contestant does
# not stop a suite. Environment: REDIS_BENCHMARK (redis-benchmark),
# PIN_SERVER and PIN_LOAD (taskset CPU lists, as bench/net.sh).
set -u

[ $# -ge 2 ] || {
    echo "usage: bench/kv.sh NAME CMD..." >&2
    exit 2
}
name=$1
shift
requests=${KV_REQUESTS:-200000}
conns=${KV_CONNS:-50}
pipelines=${KV_PIPELINES:-1 16}
tests=${KV_TESTS:-ping_inline ping_mbulk set get incr}
rb=${REDIS_BENCHMARK:-redis-benchmark}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/magpie-kv.XXXXXX")
pid=

stop_server() {
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 30); do # three seconds to exit cleanly, then SIGKILL
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
}
cleanup() {
    stop_server
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

all_failed() { # all_failed REASON: a "-" line for every test, the reason on stderr
    echo "kv.sh: $name: $1" >&2
    for p in $pipelines; do
        for t in $tests; do
            echo "$name $t $p - - - -"
        done
    done
    exit 0
}

command -v "$rb" >/dev/null 2>&1 || all_failed "$rb not found (apt-get install redis-tools)"

# utime+stime of the whole process, in clock ticks (as bench/net.sh).
cpu_ticks() {
    local stat rest f
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    rest=${stat##*) }
    read -r -a f <<<"$rest"
    echo "${f[11]} ${f[12]}"
}

# A port nobody listens on now: the kernel's choice for a socket bound and
# closed at once. (Another program could take it before the server does; the
# start then fails and says so.)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null) ||
    all_failed "cannot pick a free port (python3 missing?)"

pin_server=() pin_load=()
[ -n "${PIN_SERVER:-}" ] && pin_server=(taskset -c "$PIN_SERVER")
[ -n "${PIN_LOAD:-}" ] && pin_load=(taskset -c "$PIN_LOAD")

${pin_server[@]+"${pin_server[@]}"} "$@" --port "$port" >"$tmp/server.out" 2>"$tmp/server.err" &
pid=$!

ping_ok() { # one PING over bash's /dev/tcp, answered +PONG within a second
    local reply=
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'PING\r\n' >&3
    read -r -t 1 reply <&3
    exec 3>&-
    [ "${reply%$'\r'}" = "+PONG" ]
}
up=
for _ in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null
        pid=
        all_failed "server exited before answering: $(tail -n 3 "$tmp/server.err" "$tmp/server.out" | tr '\n' ' ')"
    fi
    ping_ok 2>/dev/null && up=1 && break
    sleep 0.1
done
[ -n "$up" ] || all_failed "server did not answer PING on port $port within 10 s"

hz=$(getconf CLK_TCK)
for p in $pipelines; do
    for t in $tests; do
        read -r u0 s0 < <(cpu_ticks) || all_failed "server died: $(tail -n 3 "$tmp/server.err" | tr '\n' ' ')"
        timeout 300 ${pin_load[@]+"${pin_load[@]}"} "$rb" -h 127.0.0.1 -p "$port" -t "$t" \
            -n "$requests" -c "$conns" -P "$p" -q --csv >"$tmp/rb.out" 2>"$tmp/rb.err"
        rc=$?
        read -r u1 s1 < <(cpu_ticks) || all_failed "server died during $t: $(tail -n 3 "$tmp/server.err" | tr '\n' ' ')"
        # --csv: a header, then "TEST","rps","avg_latency_ms",...
        rps=$(awk -F'"' 'NR > 1 && $2 != "" { print $4; exit }' "$tmp/rb.out")
        if [ $rc -ne 0 ] || [ -z "$rps" ]; then
            echo "kv.sh: $name $t -P $p: redis-benchmark exit $rc: $(grep -v '^WARNING' "$tmp/rb.err" | tail -n 2 | tr '\n' ' ')" >&2
            echo "$name $t $p - - - -"
            continue
        fi
        awk -v name="$name" -v t="$t" -v p="$p" -v rate="$rps" -v n="$requests" -v hz="$hz" \
            -v u0="$u0" -v u1="$u1" -v s0="$s0" -v s1="$s1" 'BEGIN {
                printf "%s %s %s %.0f %.3f %.3f %d\n", name, t, p, rate,
                    (u1 - u0) / hz * 1e6 / n, (s1 - s0) / hz * 1e6 / n, n
            }'
    done
done
