#!/usr/bin/env bash
# leak_compare.sh -- leakcheck mode against valgrind on the same program.
#
# usage: leak_compare.sh CGC_RUN LEAKY_PROGRAM
#
# Runs LEAKY_PROGRAM (tests/shim/leaky.c) twice, leaking ("") and not
# ("none"), under cgc-run --mode=leakcheck and, when installed, under
# valgrind --leak-check=full, and checks:
#   - the leaking run: cgc reports the three sites (leak_strings,
#     make_node, leak_grown) and exits with CGC_LEAK_EXITCODE (23); its
#     total agrees with valgrind's "definitely lost" + "indirectly lost"
#     (blocks and bytes) -- see the note below;
#   - the clean run: cgc reports no leaks and exits 0; valgrind reports
#     nothing definitely lost.
# Note: valgrind's "indirectly lost" blocks are reachable only from lost
# blocks.  A conservative collector can find a stale copy of an address in
# memory it scans and then keep such a chain alive; that shows up as fewer
# indirect leaks, never as extra ones, so cgc's count must lie between
# valgrind's definite count and definite + indirect, and is reported as
# exact when it equals the latter.
set -u
run=$1 prog=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cgc-leak.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0

"$run" --mode=leakcheck -- "$prog" > "$tmp/out" 2> "$tmp/cgc.err"
rc=$?
cat "$tmp/cgc.err"
[ $rc = 23 ] || { echo "FAIL: exit status $rc, expected 23"; fail=1; }
for site in leak_strings make_node leak_grown; do
  grep -q "#0 .* in $site+" "$tmp/cgc.err" || { echo "FAIL: site $site not reported"; fail=1; }
done
grep -q "Leak of 1000 byte(s) in 10 object(s)" "$tmp/cgc.err" ||
  { echo "FAIL: leak_strings should be 10 objects, 1000 bytes"; fail=1; }
grep -q "Leak of 3000 byte(s) in 1 object(s)" "$tmp/cgc.err" ||
  { echo "FAIL: leak_grown should be 1 object, 3000 bytes"; fail=1; }
read -r cbytes cobjs < <(sed -n 's/^SUMMARY: cgc-leakcheck: \([0-9]*\) byte(s) leaked in \([0-9]*\) allocation.*/\1 \2/p' "$tmp/cgc.err")
cbytes=${cbytes:-0} cobjs=${cobjs:-0}

"$run" --mode=leakcheck -- "$prog" none > "$tmp/out" 2> "$tmp/cgc0.err"
rc=$?
cat "$tmp/cgc0.err"
[ $rc = 0 ] || { echo "FAIL: clean run exit status $rc, expected 0"; fail=1; }
grep -q "no leaks" "$tmp/cgc0.err" || { echo "FAIL: clean run reported leaks"; fail=1; }

if command -v valgrind > /dev/null 2>&1; then
  num() { sed -n "s/.*$1: \([0-9,]*\) bytes in \([0-9,]*\) blocks.*/\1 \2/p" "$2" | tr -d , | head -1; }
  valgrind --leak-check=full "$prog" > /dev/null 2> "$tmp/vg.err"
  read -r db dn < <(num "definitely lost" "$tmp/vg.err")
  read -r ib in < <(num "indirectly lost" "$tmp/vg.err")
  db=${db:-0} dn=${dn:-0} ib=${ib:-0} in=${in:-0}
  echo "valgrind: definitely lost $db bytes in $dn blocks, indirectly lost $ib bytes in $in blocks"
  echo "cgc:      $cbytes bytes in $cobjs objects"
  if [ "$cobjs" -lt "$dn" ] || [ "$cobjs" -gt $((dn + in)) ] ||
     [ "$cbytes" -lt "$db" ] || [ "$cbytes" -gt $((db + ib)) ]; then
    echo "FAIL: counts disagree with valgrind"
    fail=1
  elif [ "$cobjs" = $((dn + in)) ] && [ "$cbytes" = $((db + ib)) ]; then
    echo "counts agree exactly"
  else
    echo "counts agree on definite leaks; $((dn + in - cobjs)) indirect block(s) kept by a stale reference"
  fi
  valgrind --leak-check=full "$prog" none > /dev/null 2> "$tmp/vg0.err"
  if grep -q "definitely lost: [1-9]" "$tmp/vg0.err"; then
    echo "FAIL: valgrind finds leaks in the clean run"
    fail=1
  fi
else
  echo "valgrind not installed: comparison skipped"
  [ "$cobjs" -ge 12 ] && [ "$cobjs" -le 16 ] || { echo "FAIL: expected 12..16 leaked objects"; fail=1; }
fi
exit $fail
