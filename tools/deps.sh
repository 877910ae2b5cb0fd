#!/bin/sh
# Installs what magpie needs on Debian, or says exactly what to run.
#   deps.sh build   liburing-dev, libck-dev (required)
#   deps.sh bench   the peers' toolchains and tools (optional: missing ones
#                   are reported in the benchmark table, never fatal)
#   deps.sh cross   the aarch64 cross compiler, its C library and qemu-user
#                   (for tools/cross-aarch64.sh; exits 1 when they are missing)
set -u
mode=${1:-build}
missing=""
need() { # need PACKAGE TEST-COMMAND...
    pkg=$1; shift
    "$@" >/dev/null 2>&1 || missing="$missing $pkg"
}
if [ "$mode" = build ]; then
    need liburing-dev test -f /usr/include/liburing.h
    need libck-dev test -f /usr/include/ck_pr.h
elif [ "$mode" = cross ]; then
    need gcc-aarch64-linux-gnu command -v aarch64-linux-gnu-gcc
    need libc6-dev-arm64-cross test -f /usr/aarch64-linux-gnu/include/stdio.h
    need qemu-user command -v qemu-aarch64
else
    need librust-tokio-dev test -d /usr/share/cargo/registry/tokio-1.24.2
    need cargo command -v cargo
    need golang-go command -v go
    need wrk command -v wrk
    # Debian's interpreter: a python3 earlier on PATH may not see its packages.
    need python3-uvloop /usr/bin/python3 -c 'import uvloop'
    need gnuplot-nox command -v gnuplot
    # The key-value rows: redis-benchmark and the redis-server it is compared with.
    need redis-server command -v redis-server
    need redis-tools command -v redis-benchmark
fi
[ -z "$missing" ] && exit 0
cmd="apt-get install -y$missing"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "magpie: installing$missing"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive $cmd -qq; } >/dev/null 2>&1 ||
        { echo "magpie: '$cmd' failed"; [ "$mode" = bench ] || exit 1; }
    exit 0
fi
echo "magpie: missing packages:$missing"
echo "magpie: run as root:  apt-get update && $cmd"
[ "$mode" = bench ] || exit 1
exit 0
