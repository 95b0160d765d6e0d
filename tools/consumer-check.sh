#!/usr/bin/env bash
# consumer-check.sh BUILD_DIR -- install cgc from BUILD_DIR into a scratch
# prefix and build a tiny program against it twice: with CMake's
# find_package(cgc) and with pkg-config.  Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
prefix=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$prefix" "$work"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
cat > "$work/main.c" <<'C'
#include <cgc.h>
#include <stdio.h>
int main(void) {
  char *s = cgc_strdup("consumer ok");
  cgc_collect();
  puts(s);
  return 0;
}
C
cat > "$work/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.25)
project(consumer C)
find_package(cgc REQUIRED)
add_executable(consumer main.c)
target_link_libraries(consumer cgc::cgc)
C
cmake -S "$work" -B "$work/b" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/b" >/dev/null
LD_LIBRARY_PATH="$prefix/lib:$prefix/lib/x86_64-linux-gnu" "$work/b/consumer" | grep -q "consumer ok"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" \
  cc "$work/main.c" -o "$work/pc" $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" pkg-config --cflags --libs cgc)
LD_LIBRARY_PATH="$prefix/lib:$prefix/lib/x86_64-linux-gnu" "$work/pc" | grep -q "consumer ok"
echo "consumer-check: find_package(cgc) and pkg-config cgc both work"
