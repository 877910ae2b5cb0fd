#!/bin/sh
# Builds the peer benchmarks: magpie's micro-benchmarks and example servers
# written on Tokio (bench/peers/tokio) and on goroutines (bench/peers/go).
#
#   sh bench/peers/build.sh [OUTDIR]        (default OUTDIR: build/peers)
#
# Produces OUTDIR/tokio_bench, tokio_echo, tokio_http and OUTDIR/go_bench,
# go_echo, go_http.  Everything is built offline: Tokio from Debian's
# librust-tokio-dev (crate sources in /usr/share/cargo/registry, through a
# cargo source replacement), Go from the standard library only.  A peer whose
# toolchain is missing, or whose build fails, is reported as one line
# `peer NAME: not built: WHY` and skipped; the script still exits 0 so the
# benchmark suite can run whatever it has.  Re-running is cheap: cargo does
# nothing when nothing changed and the Go binaries are rebuilt only when a
# source is newer than them.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUTDIR=${1:-$ROOT/build/peers}
mkdir -p "$OUTDIR" || exit 1
OUTDIR=$(cd "$OUTDIR" && pwd)
PEERS=$ROOT/bench/peers
REGISTRY=/usr/share/cargo/registry   # where Debian's librust-*-dev install crates

# install_if_changed SRC DST: copy a built binary into OUTDIR, leaving DST
# untouched (same mtime) when it is already identical.
install_if_changed() {
    cmp -s "$1" "$2" && return 0
    cp "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}

# ------------------------------------------------------------------- Tokio

# Debian's cargo goes with Debian's rustc, which librust-tokio-dev is packaged
# for; otherwise whatever cargo is on PATH (rustup's), or rustup's default
# location when PATH lacks it.
find_cargo() {
    if [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] &&
       RUSTC=/usr/bin/rustc /usr/bin/cargo --version >/dev/null 2>&1; then
        echo "/usr/bin/cargo /usr/bin/rustc"
        return
    fi
    for c in "$(command -v cargo 2>/dev/null)" "${HOME:-/nonexistent}/.cargo/bin/cargo"; do
        [ -n "$c" ] && [ -x "$c" ] || continue
        r="$(dirname "$c")/rustc"
        [ -x "$r" ] || r=rustc
        if RUSTC=$r "$c" --version >/dev/null 2>&1; then
            echo "$c $r"
            return
        fi
    done
}

build_tokio() {
    set -- $(find_cargo)
    if [ $# -ne 2 ]; then
        echo "peer tokio: not built: cargo is not installed (apt-get install cargo)"
        return
    fi
    cargo=$1 rustc=$2
    if ! ls -d "$REGISTRY"/tokio-1.* >/dev/null 2>&1; then
        echo "peer tokio: not built: Tokio sources missing in $REGISTRY (apt-get install librust-tokio-dev)"
        return
    fi
    # The source replacement that makes crates.io resolve to Debian's crate
    # directory.  cargo reads it from the crate's .cargo/ (git-ignored).
    mkdir -p "$PEERS/tokio/.cargo"
    config=$(printf '%s\n' \
        '# Written by bench/peers/build.sh: use the crates Debian installed.' \
        '[source.crates-io]' \
        'replace-with = "debian"' \
        '' \
        '[source.debian]' \
        "directory = \"$REGISTRY\"")
    if [ "$(cat "$PEERS/tokio/.cargo/config.toml" 2>/dev/null)" != "$config" ]; then
        printf '%s\n' "$config" >"$PEERS/tokio/.cargo/config.toml"
    fi
    log=$OUTDIR/tokio-build.log
    if ! (cd "$PEERS/tokio" &&
          RUSTC=$rustc CARGO_TARGET_DIR="$OUTDIR/cargo-target" \
          "$cargo" build --offline --release --quiet) >"$log" 2>&1; then
        echo "peer tokio: not built: cargo build failed (log: $log)"
        tail -n 20 "$log" >&2
        return
    fi
    for b in tokio_bench tokio_echo tokio_http; do
        install_if_changed "$OUTDIR/cargo-target/release/$b" "$OUTDIR/$b" || {
            echo "peer tokio: not built: cannot copy $b into $OUTDIR"
            return
        }
    done
    echo "peer tokio: built $OUTDIR/tokio_bench tokio_echo tokio_http ($("$rustc" --version 2>/dev/null))"
}

# ---------------------------------------------------------------------- Go

find_go() {
    for g in "$(command -v go 2>/dev/null)" /usr/lib/go/bin/go /usr/local/go/bin/go; do
        if [ -n "$g" ] && [ -x "$g" ] && "$g" version >/dev/null 2>&1; then
            echo "$g"
            return
        fi
    done
}

build_go() {
    go=$(find_go)
    if [ -z "$go" ]; then
        echo "peer go: not built: go is not installed (apt-get install golang-go)"
        return
    fi
    # Offline and self-contained: no module downloads, no toolchain switch
    # (Go 1.21+), caches under OUTDIR so no writable HOME is needed.
    export GOFLAGS=-mod=mod GOPROXY=off GO111MODULE=on GOTOOLCHAIN=local
    export GOCACHE="$OUTDIR/go-cache" GOPATH="$OUTDIR/go-path"
    for p in bench echo http; do
        out=$OUTDIR/go_$p
        # Up to date when no source of the Go peer is newer than the binary.
        if [ -x "$out" ] && [ -z "$(find "$PEERS/go" -newer "$out" -type f | head -n 1)" ]; then
            continue
        fi
        log=$OUTDIR/go-build.log
        if ! (cd "$PEERS/go" && "$go" build -trimpath -o "$out.tmp.$$" "./$p") >"$log" 2>&1; then
            echo "peer go: not built: go build ./$p failed (log: $log)"
            tail -n 20 "$log" >&2
            rm -f "$out.tmp.$$"
            return
        fi
        mv -f "$out.tmp.$$" "$out"
    done
    echo "peer go: built $OUTDIR/go_bench go_echo go_http ($("$go" version))"
}

build_tokio
build_go
exit 0
