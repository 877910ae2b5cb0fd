#!/bin/sh
# Cross-compiles the whole library for aarch64 with -Werror, then builds
# test/fiber_switch for aarch64 and runs it under qemu-user. Only the context
# switch can run there: qemu-user does not implement io_uring_setup, so the
# runtime cannot start.
#   cross-aarch64.sh [BUILD-DIR]    (default build/aarch64)
# Exit 0 pass, 1 fail, 77 skipped: the cross compiler or qemu-user is missing
# and could not be installed (tools/deps.sh cross says what to run).
set -u
cd "$(dirname "$0")/.."
out=${1:-build/aarch64}
make=${MAKE:-make}

if [ "$(uname -m)" = aarch64 ]; then
    cc=cc # already on aarch64: build natively, run directly
    run=""
else
    cc=aarch64-linux-gnu-gcc
    run=qemu-aarch64
    if ! sh tools/deps.sh cross; then
        echo "magpie: SKIPPED: aarch64 cross build and qemu test (no $cc or $run)"
        exit 77
    fi
fi

# Headers. liburing's and Concurrency Kit's are architecture-independent
# (CK keeps every architecture's ck_pr.h under gcc/) except ck_md.h, which
# its configure writes for the build machine: x86-64's says CK_MD_TSO, and
# aarch64's memory model is CK_MD_RMO, under which ck_pr emits real barriers.
# The library's objects only need the headers; the test links none of either.
inc=$out/include
rm -rf "$inc" && mkdir -p "$inc" || exit 1
ln -s /usr/include/liburing.h /usr/include/liburing /usr/include/gcc "$inc"/ || exit 1
for h in /usr/include/ck_*.h; do
    [ "$h" = /usr/include/ck_md.h ] || ln -s "$h" "$inc"/ || exit 1
done
sed 's/CK_MD_TSO/CK_MD_RMO/g' /usr/include/ck_md.h >"$inc/ck_md.h" || exit 1

# The Makefile's own rules, with the cross compiler: the same flags as the
# native build. CPPFLAGS from the environment is extended by the Makefile.
# The test is static so that qemu-user needs no aarch64 root to run it.
jobs=""
[ -z "${MAKELEVEL:-}" ] && jobs=-j$(nproc 2>/dev/null || echo 2) # else make's jobserver
echo "== aarch64: library ($cc, -Werror)"
if ! CPPFLAGS="-isystem $inc" $make $jobs --no-print-directory BUILD="$out" CC="$cc" \
    WERROR=1 SANITIZE= LIBS= LDFLAGS=-static "$out/libmagpie.a" "$out/test/fiber_switch"; then
    echo "magpie: aarch64 build failed"
    exit 1
fi

echo "== aarch64: fiber_switch${run:+ under $run}"
$run "$out/test/fiber_switch"
rc=$?
case $rc in
0)  echo "PASS fiber_switch (aarch64)" ;;
77) echo "SKIP fiber_switch (aarch64)" ;;
*)  echo "FAIL fiber_switch (aarch64) rc=$rc"; exit 1 ;;
esac
exit $rc
