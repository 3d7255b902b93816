#!/usr/bin/env bash
# Builds the BPF objects of `npm run bench:bpf` (bench/bpf-*.bpf.c: the baseline EDT program and
# the cost probes) with the same clang flags as shaper-bpf/bpf/build.sh. Usage: bpf-build.sh
# [OUT_DIR]; the default, bench/results/, is git-ignored, so the objects are never committed.
# Prints the path of each object. bench/bpf.ts runs this.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "${1:-$here/results}"
out="$(cd "${1:-$here/results}" && pwd)"
cd "$here"
for src in bpf-*.bpf.c; do
  clang -O2 -g -target bpf -mcpu=v3 -Wall -Werror \
    -I/usr/include/x86_64-linux-gnu -fdebug-compilation-dir=bench \
    -c "$src" -o "$out/${src%.bpf.c}.o"
  echo "$out/${src%.bpf.c}.o"
done
