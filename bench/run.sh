#!/bin/sh
# bench/run.sh - the whole benchmark suite: magpie in its single-threaded loop
# mode (workers=1) and multi-threaded (workers=N, N = online CPUs; the
# 50-connection echo and HTTP loads at 2 workers too when 2 is neither), against
# Tokio and Go (bench/peers), the raw io_uring floor (bench/floor) and Python
# asyncio with and without uvloop (bench/peers/python).
#
#   sh bench/run.sh [BUILD] [quick|full]        (make bench [QUICK=1] [PUBLISH=1])
#
# BUILD is the build directory of magpie's programs (default build). Writes
# the report, latest.md, latest.csv and latest.svg (bench/report.py), to
# build/bench-results/, which git does not track, and prints the table and
# where the report is at the end; raw outputs and logs go to BUILD/bench-run/.
# No tracked file changes. PUBLISH=1 publishes the run as the reference: it
# also copies the report to bench/results/ and replaces the benchmark section
# of README.md, for a commit of its own. Progress ("[3/40] micro workers=2
# ...") goes to stderr.
#
#   full   micro-benchmarks: 5 runs each, median (parked_1m: one run, its
#          memory and the seconds of its phases; stranded, at N workers
#          only: 9 rounds, median); peers at workers 1 and N (network: at 1 worker on the
#          50-connection loads only); network: 3 runs of 1 s each (c10k: 1
#          run of 2 s), median.
#   quick  micro-benchmarks --quick (3 runs, 100,000-task sizes); peers at
#          workers N only; network: 1 run of 1 s (echo: 0.5 s), Python on
#          echo only.
#
# In both modes echo_c50 and http_c50 also run at 2 workers, for magpie and
# every peer that takes a worker count (Tokio, Go, the floor), when 2 is
# neither 1 nor N: the other loads and the micro-benchmarks do not.
# Every network run records, besides requests/s and CPU, the server's context
# switches per request and the p99 latency (bench/net.sh).
# Key-value (bench/kv.sh): redis-benchmark -c 50 -P 1 and -P 16 (PING inline
# and multibulk, SET, GET, INCR; -n 200,000 each, quick: 20,000) against
# examples/kv_server at 1 and N workers and against redis-server; skipped,
# saying so, where redis-benchmark or redis-server is not installed.
#
# Nothing here is fatal: a missing toolchain, a program not built yet or a
# benchmark that fails becomes a cell saying why, and the rest still runs.
# Servers and load generators are not pinned, the same for every contestant;
# PIN_SERVER and PIN_LOAD (taskset CPU lists, see bench/net.sh) pin them all.
# Environment: PEERS_DIR (peer binaries, default build/peers), RESULTS (output
# directory, default build/bench-results), PUBLISH (non-empty: publish),
# README (the README.md whose bench section PUBLISH replaces, default
# README.md; empty: none), NET_DURATION, NET_REPS, KV_REQUESTS, SKIP_PEER_BUILD=1.
set -u

BUILD=${1:-build}
MODE=${2:-full}
case $MODE in
quick | full) ;;
*)
    echo "usage: sh bench/run.sh [BUILD] [quick|full]" >&2
    exit 2
    ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PEERS_DIR=${PEERS_DIR:-$ROOT/build/peers}
RESULTS=${RESULTS:-$ROOT/build/bench-results}
PUBLISH=${PUBLISH:-}
PUBLISHED=$ROOT/bench/results # where PUBLISH copies the report
RAW=$BUILD/bench-run
N=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
export BUILD # bench/net.sh finds BUILD/tools/loadgen through it
B=${BUILD#"$ROOT"/} # for messages

rm -rf "$RAW"
mkdir -p "$RAW" "$RESULTS" || exit 1
DB=$RAW/results.tsv # raw records, one per line, tab-separated (see report.py)
: >"$DB"
START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# Worker counts: magpie always runs both modes; in quick mode the peers run
# at N only (the main table compares at N).
WORKERS="1 $N"
[ "$N" = 1 ] && WORKERS=1
# The extra worker count of the 50-connection loads: 2, unless it is 1 or N.
W2=
[ "$N" -gt 2 ] && W2=2
if [ "$MODE" = quick ]; then
    PEER_WORKERS=$N
    QFLAG=--quick
    NET_REPS=${NET_REPS:-1}
    ECHO_DURATION=${NET_DURATION:-0.5}
    HTTP_DURATION=${NET_DURATION:-1} # wrk takes whole seconds
    C10K_DURATION=${NET_DURATION:-1}
    C10K_REPS=1
    STEP_LIMIT=60
else
    PEER_WORKERS=$WORKERS
    QFLAG=
    NET_REPS=${NET_REPS:-3}
    ECHO_DURATION=${NET_DURATION:-1}
    HTTP_DURATION=${NET_DURATION:-1}
    C10K_DURATION=${NET_DURATION:-2}
    C10K_REPS=1
    STEP_LIMIT=240
fi
REPS_BENCH=5
[ "$MODE" = quick ] && REPS_BENCH=3
# redis-benchmark requests per test and pipeline depth (bench/kv.sh).
if [ "$MODE" = quick ]; then
    KV_REQUESTS=${KV_REQUESTS:-20000}
else
    KV_REQUESTS=${KV_REQUESTS:-200000}
fi

tab=$(printf '\t')
record() { # record FIELD...: one tab-separated line into the results
    (
        IFS=$tab
        printf '%s\n' "$*"
    ) >>"$DB"
}
na() { # na CONTESTANT WORKERS SCOPE REASON: cells in SCOPE say REASON
    record X "$1" "$2" "$3" "$4"
}

# ----------------------------------------------------------------- steps
# The plan runs twice: once counting steps (COUNTING=1), once running them,
# so that each progress line can say how far along the suite is.
COUNTING=1
TOTAL=0
I=0
step() { # step LABEL: 0 (run it) when running, 1 (skip) when counting
    if [ "$COUNTING" = 1 ]; then
        TOTAL=$((TOTAL + 1))
        return 1
    fi
    I=$((I + 1))
    echo "[$I/$TOTAL] $1 ($(($(date +%s) - START)) s)" >&2
    return 0
}

last_line() { # last_line FILE: its last non-empty line, for a reason cell
    grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1 | tr '\t' ' ' | cut -c1-120
}

# run_bench CONTESTANT WORKERS SOURCE GROUPS BINARY ARGS...: a program that
# prints `name workers value` lines; each becomes a B record.
run_bench() {
    c=$1 w=$2 src=$3 groups=$4 bin=$5
    shift 5
    out=$RAW/$c-$src-w$w.out err=$RAW/$c-$src-w$w.err
    timeout "$STEP_LIMIT" "$bin" --workers "$w" "$@" >"$out" 2>"$err"
    rc=$?
    awk -v c="$c" -v w="$w" -v src="$src" 'BEGIN { OFS = "\t" }
        NF == 3 && $2 ~ /^[0-9]+$/ && $3 ~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/ {
            print "B", c, w, src, $1, $3
        }' "$out" >>"$DB"
    # The peers say on stderr when some parked_1m tasks woke before the
    # measurement (their sleeps are 1-2 s): such a figure reads low.
    sed -n 's/^\([a-z_0-9]*\): \([0-9]* [a-z]* woke before the measurement\)$/\1\t\2/p' "$err" |
        while IFS=$tab read -r name what; do
            record W "$c" "$w" "$name" "$c's figure reads low: $what"
        done
    if [ $rc -eq 124 ]; then
        na "$c" "$w" "$groups" "failed: timed out after $STEP_LIMIT s"
    elif [ $rc -ne 0 ]; then
        why=$(last_line "$err")
        na "$c" "$w" "$groups" "failed: exit $rc${why:+: $why}"
        echo "run.sh: $c $src workers=$w: exit $rc${why:+: $why}" >&2
    fi
}

# NET_BENCHES: id kind conns; a c10k run is 100 active + 9,900 idle.
NET_BENCHES="echo_c50:echo:50 echo_c1000:echo:1000 http_c50:http:50 c10k:c10k:100"

# run_net ID KIND CONNS CONTESTANT WORKERS CMD...: NET_REPS runs of net.sh.
run_net() {
    id=$1 kind=$2 conns=$3 c=$4 w=$5
    shift 5
    [ "$kind" = http ] && ! have_wrk && return # the build step said why
    case $kind in
    echo) d=$ECHO_DURATION reps=$NET_REPS ;;
    http) d=$HTTP_DURATION reps=$NET_REPS ;;
    c10k) d=$C10K_DURATION reps=$C10K_REPS ;;
    esac
    r=1
    while [ $r -le "$reps" ]; do
        out=$RAW/net-$id-$c-w$w-$r.out err=$RAW/net-$id-$c-w$w-$r.err
        DURATION=$d CONNS=$conns timeout $((STEP_LIMIT + 30)) bash bench/net.sh "$kind" "$c" "$@" >"$out" 2>"$err"
        # NAME kind requests_per_s user_us sys_us rss_kib errors ctx_per_req p99_us
        read -r _ _ rps user sys rss errs ctx p99 <"$out" 2>/dev/null || rps=-
        if [ -n "${rps:-}" ] && [ "$rps" != - ]; then
            record N "$c" "$w" "$id" "$r" "$rps" "$user" "$sys" "$rss" "$errs" "${ctx:--}" "${p99:--}"
        else
            why=$(grep -v '^awk:' "$err" | last_line /dev/stdin)
            na "$c" "$w" "$id" "failed: ${why:-no result}"
            echo "run.sh: $id $c workers=$w: ${why:-no result}" >&2
            break
        fi
        r=$((r + 1))
    done
}

# run_kv CONTESTANT WORKERS CMD...: bench/kv.sh, one K record per test and
# pipeline depth (or a cell saying why not).
run_kv() {
    c=$1 w=$2
    shift 2
    out=$RAW/kv-$c-w$w.out err=$RAW/kv-$c-w$w.err
    KV_REQUESTS=$KV_REQUESTS timeout $((STEP_LIMIT + 60)) bash bench/kv.sh "$c" "$@" >"$out" 2>"$err"
    # NAME test pipeline rps user_us sys_us requests
    while read -r _ t p rps user sys n; do
        if [ "$rps" != - ]; then
            record K "$c" "$w" "$t" "$p" "$rps" "$user" "$sys" "$n"
        else
            why=$(grep -v '^awk:' "$err" | last_line /dev/stdin)
            na "$c" "$w" "kv_${t}_p$p" "failed: ${why:-no result}"
        fi
    done <"$out"
    if [ ! -s "$out" ]; then
        why=$(last_line "$err")
        na "$c" "$w" kv "failed: ${why:-no result}"
    fi
}
have_kv_load() { command -v redis-benchmark >/dev/null 2>&1; }

PYTHON=python3
[ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3 # Debian's, where python3-uvloop installs

peer_ok() { # peer_ok CONTESTANT: not marked unavailable by the build step
    ! grep -q "^X$tab$1$tab\*$tab\*$tab" "$DB"
}
have_wrk() { command -v wrk >/dev/null 2>&1; }

plan() {
    # --- peers: build (cheap when up to date), or say why not
    if step "build peers (bench/peers/build.sh)"; then
        if [ "${SKIP_PEER_BUILD:-}" = 1 ]; then
            echo "peer build skipped (SKIP_PEER_BUILD=1)" >"$RAW/peers-build.out"
        else
            sh bench/peers/build.sh "$PEERS_DIR" >"$RAW/peers-build.out" 2>"$RAW/peers-build.err"
        fi
        for p in tokio go; do
            why=$(sed -n "s/^peer $p: not built: //p" "$RAW/peers-build.out" | head -n 1)
            if [ ! -x "$PEERS_DIR/${p}_bench" ] || [ -n "$why" ]; then
                [ -n "$why" ] || why="${PEERS_DIR#"$ROOT"/}/${p}_bench missing"
                # A stale binary from an earlier build is not used either.
                na "$p" "*" "*" "not built: $why"
                echo "run.sh: peer $p not built: $why" >&2
            fi
        done
        if ! command -v "$PYTHON" >/dev/null 2>&1; then
            na asyncio "*" "*" "not available: python3 missing"
            na uvloop "*" "*" "not available: python3 missing"
        elif ! "$PYTHON" -c 'import uvloop' >/dev/null 2>&1; then
            na uvloop "*" "*" "not available: python3-uvloop missing"
        fi
        command -v wrk >/dev/null 2>&1 || na "*" "*" http_c50 "not run: wrk missing (apt-get install wrk)"
        have_kv_load || na "*" "*" kv "skipped (redis-benchmark not installed: apt-get install redis-tools)"
        command -v redis-server >/dev/null 2>&1 || na redis "*" kv "skipped (redis-server not installed)"
    fi

    # --- scheduler micro-benchmarks, sync, pools: magpie in both modes
    for w in $WORKERS; do
        for src in micro sync_bench pool_bench stranded; do
            case $src in micro | stranded) g=sched ;; sync_bench) g=sync ;; pool_bench) g=pool ;; esac
            if [ "$src" = stranded ] && [ "$w" = 1 ]; then
                [ "$COUNTING" = 1 ] || na magpie 1 "stranded_*" "not run at 1 worker: no other worker could take the work"
                continue
            fi
            step "$src workers=$w" || continue
            if [ ! -x "$BUILD/bench/$src" ]; then
                na magpie "$w" "$g" "not available: $B/bench/$src not built (bench/$src.c missing)"
            else
                run_bench magpie "$w" "$src" "$g" "$BUILD/bench/$src" $QFLAG
            fi
        done
    done
    for p in tokio go; do
        for w in $PEER_WORKERS; do
            step "${p}_bench workers=$w" || continue
            peer_ok "$p" && run_bench "$p" "$w" "${p}_bench" bench "$PEERS_DIR/${p}_bench" $QFLAG
        done
    done
    if [ "$MODE" = quick ] && [ "$COUNTING" = 0 ]; then
        [ "$N" != 1 ] && for p in tokio go floor; do na "$p" 1 "*" "not run in quick mode"; done
        for p in asyncio uvloop; do na "$p" 1 http_c50 "not run in quick mode"; done
    fi

    # --- network: every contestant on every load
    for spec in $NET_BENCHES; do
        id=${spec%%:*} rest=${spec#*:}
        kind=${rest%%:*} conns=${rest#*:}
        srv=echo
        [ "$kind" = http ] && srv=http
        mw=$WORKERS
        case $id in echo_c50 | http_c50) [ -n "$W2" ] && mw="1 $W2 $N" ;; esac
        for w in $mw; do
            step "$id magpie workers=$w" || continue
            if [ -x "$BUILD/examples/${srv}_server" ]; then
                run_net "$id" "$kind" "$conns" magpie "$w" "$BUILD/examples/${srv}_server" --workers "$w"
            else
                na magpie "$w" "$id" "not available: $B/examples/${srv}_server not built"
            fi
        done
        # The peers at 1 worker on the 50-connection loads only: the full
        # suite has to fit in 5 minutes on 2 cores. On those, at 2 workers
        # as well when 2 is neither 1 nor N.
        pw=$PEER_WORKERS
        case $id in
        echo_c50 | http_c50)
            if [ -n "$W2" ]; then
                [ "$MODE" = full ] && pw="1 $W2 $N" || pw="$W2 $N"
            fi
            ;;
        *) pw=$N ;;
        esac
        if [ "$pw" = "$N" ] && [ "$PEER_WORKERS" != "$N" ] && [ "$COUNTING" = 0 ]; then
            for p in tokio go floor; do
                na "$p" 1 "$id" "not run at 1 worker for this load (the suite's time budget)"
            done
        fi
        for p in tokio go floor; do
            for w in $pw; do
                step "$id $p workers=$w" || continue
                if [ $p = floor ]; then
                    bin=$BUILD/bench/floor/${srv}_floor
                    if [ ! -x "$bin" ]; then
                        na floor "$w" "$id" "not available: ${bin#"$ROOT"/} not built"
                        continue
                    fi
                else
                    peer_ok "$p" || continue
                    bin=$PEERS_DIR/${p}_$srv
                fi
                run_net "$id" "$kind" "$conns" "$p" "$w" "$bin" --workers "$w"
            done
        done
        # Python: one thread by nature; echo (and in full mode HTTP) at 50
        # connections.
        case $MODE-$id in *-echo_c50 | full-http_c50) ;; *) continue ;; esac
        for p in asyncio uvloop; do
            step "$id python $p" || continue
            peer_ok "$p" || continue
            flag=
            [ $p = uvloop ] && flag=--uvloop
            run_net "$id" "$kind" "$conns" "$p" 1 "$PYTHON" "bench/peers/python/${srv}_asyncio.py" $flag
        done
    done

    # --- key-value: redis-benchmark against kv_server at 1 and N workers and
    # against redis-server (one thread, as Redis serves), without persistence
    for w in $WORKERS; do
        step "kv magpie workers=$w" || continue
        have_kv_load || continue # the build step said why
        if [ -x "$BUILD/examples/kv_server" ]; then
            run_kv magpie "$w" "$BUILD/examples/kv_server" --workers "$w"
        else
            na magpie "$w" kv "not available: $B/examples/kv_server not built"
        fi
    done
    if step "kv redis-server"; then
        have_kv_load && command -v redis-server >/dev/null 2>&1 &&
            run_kv redis 1 redis-server --save '' --appendonly no
    fi
}

plan
COUNTING=0
echo "magpie bench: $MODE mode, $TOTAL steps, workers 1 and $N${W2:+ (echo_c50, http_c50: $W2 too)}, build $BUILD" >&2
plan

# --- the machine, for the report
{
    printf 'mode\t%s\n' "$MODE"
    printf 'reps_bench\t%s\n' "$REPS_BENCH"
    printf 'reps_net\t%s\n' "$NET_REPS"
    printf 'reps_c10k\t%s\n' "$C10K_REPS"
    printf 'duration_echo\t%s\n' "$ECHO_DURATION"
    printf 'duration_http\t%s\n' "$HTTP_DURATION"
    printf 'duration_c10k\t%s\n' "$C10K_DURATION"
    printf 'kv_requests\t%s\n' "$KV_REQUESTS"
    printf 'workers_n\t%s\n' "$N"
    printf 'cpu\t%s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    printf 'cores\t%s\n' "$(getconf _NPROCESSORS_ONLN)"
    printf 'kernel\t%s\n' "$(uname -sr)"
    printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'load_start\t%s\n' "$LOAD_START"
    printf 'load\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'clk_tck\t%s\n' "$(getconf CLK_TCK)"
    printf 'mem\t%s\n' "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    printf 'cc\t%s\n' "$(${CC:-cc} --version 2>/dev/null | head -n 1)"
    printf 'commit\t%s\n' "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')"
    printf 'pinning\t%s\n' "${PIN_SERVER:+server on CPUs $PIN_SERVER, load on CPUs ${PIN_LOAD:-?}}"
    printf 'elapsed\t%s\n' "$(($(date +%s) - START))"
    printf 'peers_build\t%s\n' "$(grep '^peer ' "$RAW/peers-build.out" 2>/dev/null | tr '\n' ';')"
    printf 'python\t%s\n' "$("$PYTHON" --version 2>&1)$("$PYTHON" -c 'import uvloop; print(", uvloop", uvloop.__version__)' 2>/dev/null)"
} >"$RAW/machine.tsv"

echo "[report] bench/report.py: ${RESULTS#"$ROOT"/}/latest.md, latest.csv, latest.svg ($(($(date +%s) - START)) s)" >&2
if [ -n "$PUBLISH" ]; then
    README=${README-$ROOT/README.md}
    "$PYTHON" bench/report.py --raw "$DB" --machine "$RAW/machine.tsv" --out "$RESULTS" \
        --publish "$PUBLISHED" ${README:+--readme "$README"} --print
else
    "$PYTHON" bench/report.py --raw "$DB" --machine "$RAW/machine.tsv" --out "$RESULTS" --print
fi
