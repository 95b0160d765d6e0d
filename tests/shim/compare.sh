#!/usr/bin/env bash
# compare.sh -- run a program with glibc's malloc and under cgc-run in one
# mode; stdout and exit status must be identical.
# usage: compare.sh CGC_RUN MODE PROGRAM [ARGS...]
# Extra cgc-run options can be passed in CGC_RUN_OPTS.
set -u
run=$1 mode=$2
shift 2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cgc-cmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"$@" > "$tmp/ref.out" 2> "$tmp/ref.err"
ref_rc=$?
# shellcheck disable=SC2086
"$run" --mode="$mode" ${CGC_RUN_OPTS:-} -- "$@" > "$tmp/cgc.out" 2> "$tmp/cgc.err"
cgc_rc=$?

fail=0
if [ "$ref_rc" != "$cgc_rc" ]; then
  echo "exit status differs: glibc $ref_rc, cgc ($mode) $cgc_rc"
  fail=1
fi
if ! cmp -s "$tmp/ref.out" "$tmp/cgc.out"; then
  echo "stdout differs (glibc vs cgc $mode):"
  diff "$tmp/ref.out" "$tmp/cgc.out" | head -20
  fail=1
fi
if [ $fail != 0 ]; then
  echo "--- stderr under cgc ($mode):"
  tail -20 "$tmp/cgc.err"
  exit 1
fi
echo "same stdout and exit status ($ref_rc) with glibc and cgc $mode"
tail -3 "$tmp/cgc.out"
exit 0
