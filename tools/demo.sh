#!/usr/bin/env bash
# demo.sh -- the main job: build cgc, show finalizers and cleanups side by
# side on the real collector, then a short benchmark against Boehm GC.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo
echo "== demonstration: finalizers vs cleanups on the same heap (examples/)"
for ex in build/examples/ex[0-9]*; do
  [ -x "$ex" ] || continue
  echo "---- $(basename "$ex")"
  "$ex"
done
echo
echo "== short benchmark: cgc vs Boehm GC (GCBench, binary-trees depth 18)"
bench/run --vs-boehm
