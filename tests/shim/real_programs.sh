#!/usr/bin/env bash
# real_programs.sh -- run real Debian programs with glibc's malloc and
# under cgc-run in every mode; stdout and exit status must be identical.
#
# usage: real_programs.sh CGC_RUN [PROGRAM...]   (default: all workloads)
#
# The workloads are in workloads.sh.  A missing program is installed with
# apt-get (when running as root); a program that cannot be installed is
# skipped with a message, and the script then exits 77 if nothing ran.
# CGC_SHIM_MODES overrides the list of modes.  In leakcheck mode the
# programs' own leaks are reported on stderr but do not change the exit
# status (CGC_LEAK_EXITCODE=0): most real programs do not free everything
# before exiting.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
run=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
# shellcheck source=workloads.sh
. "$here/workloads.sh"
names=${*:-$WL_NAMES}
modes=${CGC_SHIM_MODES:-collect gc safe leakcheck}
lib=$(dirname "$run")/libcgc-preload.so

ensure_program() {
  local name=$1 bin pkgs
  bin=$(wl_binary "$name")
  command -v "$bin" > /dev/null 2>&1 && return 0
  pkgs=$(wl_packages "$name")
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null 2>&1; then
    echo "installing $pkgs for $name"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs > /dev/null 2>&1 ||
      { apt-get update -qq > /dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs > /dev/null 2>&1; }
  fi
  command -v "$bin" > /dev/null 2>&1
}

data=$(mktemp -d "${TMPDIR:-/tmp}/cgc-real.XXXXXX")
trap 'rm -rf "$data"' EXIT
wl_setup "$data/in" test

failed=0 ran=0
for name in $names; do
  if ! ensure_program "$name"; then
    echo "SKIP $name: $(wl_binary "$name") is not installed and could not be installed"
    continue
  fi
  wl_run "$name" "$data/in" "" > "$data/ref.out" 2> "$data/ref.err"
  ref_rc=$?
  for mode in $modes; do
    prefix="env LD_PRELOAD=$lib CGC_MODE=$mode CGC_LEAK_EXITCODE=0 CGC_LEAK_DEPTH=4 CGC_LEAK_LOG=$data/leak.log"
    start=${EPOCHREALTIME/./}
    wl_run "$name" "$data/in" "$prefix" > "$data/cgc.out" 2> "$data/cgc.err"
    rc=$?
    ms=$(( (${EPOCHREALTIME/./} - start) / 1000 ))
    if [ "$rc" = "$ref_rc" ] && cmp -s "$data/ref.out" "$data/cgc.out"; then
      printf 'ok   %-8s %-9s exit %s, %s lines of output, %d ms\n' "$name" "$mode" "$rc" \
        "$(wc -l < "$data/ref.out")" "$ms"
    else
      printf 'FAIL %-8s %-9s exit %s (glibc %s)\n' "$name" "$mode" "$rc" "$ref_rc"
      diff "$data/ref.out" "$data/cgc.out" | head -10
      echo "--- stderr:"
      tail -15 "$data/cgc.err"
      failed=$((failed + 1))
    fi
  done
  ran=$((ran + 1))
done
[ $ran -gt 0 ] || exit 77
if [ $failed -gt 0 ]; then
  echo "$failed run(s) failed"
  exit 1
fi
exit 0
