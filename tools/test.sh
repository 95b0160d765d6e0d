#!/usr/bin/env bash
# test.sh -- build cgc and run every test: the normal build (warnings are
# errors) with the whole CTest suite, then a UBSan build of the unit, API,
# conformance and stress tiers, an install + find_package/pkg-config
# consumer check, then the benchmark suite's quick mode (every back end
# runs and prints sane numbers; about half a minute).
#   tools/test.sh            (CGC_STRESS_SECONDS=20 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
jobs=$(nproc)
export CGC_STRESS_SECONDS=${CGC_STRESS_SECONDS:-20}

echo "== build (RelWithDebInfo, internal checks on: CGC_CHECK=1, -Werror)"
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCGC_WERROR=ON -DCGC_CHECK=1 >/dev/null
cmake --build build-test -j"$jobs"
echo "== tests"
(cd build-test && ctest --output-on-failure -j"$jobs" --timeout 600)

echo "== UBSan build"
cmake -S . -B build-ubsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCGC_UBSAN=ON -DCGC_WERROR=ON \
      -DCGC_BUILD_PRELOAD=OFF -DCGC_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-ubsan -j"$jobs"
(cd build-ubsan && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 CGC_STRESS_SECONDS=8 \
   ctest --output-on-failure -j"$jobs" --timeout 600 -L 'unit|api|conformance|stress')

echo "== install and consume"
tools/consumer-check.sh build-test

echo "== benchmarks, quick mode (bench/run --quick)"
bench/run --quick
