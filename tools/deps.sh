#!/usr/bin/env bash
# deps.sh -- install the Debian 12 packages cgc needs, only those missing.
#   tools/deps.sh [extra-package ...]
set -euo pipefail
pkgs=(build-essential cmake pkg-config libatomic-ops-dev check libsubunit-dev
      libgc-dev libmimalloc-dev libjemalloc-dev gnuplot-nox valgrind "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
