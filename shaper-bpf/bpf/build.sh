#!/usr/bin/env bash
# Builds the BPF objects into shaper-bpf/obj/ (committed, so hosts need no compiler).
# Usage: build.sh [OUT_DIR]. Reproducible: the same clang gives the same bytes in any checkout,
# which lets CI rebuild into a temporary directory and compare with the committed objects.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "${1:-$here/../obj}"
out="$(cd "${1:-$here/../obj}" && pwd)"
# Compile from this directory with relative names and a fixed compilation directory, so the
# debug info holds no path of the checkout.
cd "$here"
for src in *.bpf.c; do
  clang -O2 -g -target bpf -mcpu=v3 -Wall -Werror -Wno-pass-failed \
    -I/usr/include/x86_64-linux-gnu -I. -fdebug-compilation-dir=shaper-bpf/bpf \
    -c "$src" -o "$out/${src%.bpf.c}.o"
done
