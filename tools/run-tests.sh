#!/bin/sh
# Runs every test program in a directory, each under a timeout.
#   run-tests.sh DIR [MULTIPLIER]
# Exit 0 pass, 77 skip, anything else fail. MAG_TEST_TIMEOUT (seconds, default
# 120) is multiplied by MULTIPLIER (sanitizer builds are slower) and by
# MAG_TEST_TIMEOUT_MULTIPLIER when set. MAG_TEST_FILTER runs matching names.
dir=$1
mult=${2:-1}
base=${MAG_TEST_TIMEOUT:-120}
extra=${MAG_TEST_TIMEOUT_MULTIPLIER:-1}
limit=$((base * mult * extra))
# Known leaks outside magpie (glibc internals), for LeakSanitizer builds.
supp="$(cd "$(dirname "$0")/.." && pwd)/test/lsan.supp"
export LSAN_OPTIONS="suppressions=$supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
pass=0; fail=0; skip=0; failed=""
for t in "$dir"/*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    case "$name" in *${MAG_TEST_FILTER:-}*) ;; *) continue ;; esac
    log=$(mktemp)
    start=$(date +%s.%N)
    timeout -k 5 "$limit" "$t" >"$log" 2>&1
    rc=$?
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
    case $rc in
    0)  pass=$((pass + 1)); printf 'PASS %-28s %5.2fs\n' "$name" "$secs" ;;
    77) skip=$((skip + 1)); printf 'SKIP %-28s %s\n' "$name" "$(tail -n 1 "$log")" ;;
    *)  fail=$((fail + 1)); failed="$failed $name"
        [ $rc = 124 ] && echo "(timed out after ${limit}s)" >>"$log"
        printf 'FAIL %-28s rc=%d\n' "$name" "$rc"; sed 's/^/    /' "$log" | tail -n 40 ;;
    esac
    rm -f "$log"
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
