#!/usr/bin/env bash
# Fails when the committed objects in shaper-bpf/obj/ are not what the sources build to.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bash "$here/build.sh" "$tmp"
stale=0
for o in "$tmp"/*.o; do
  committed="$here/../obj/$(basename "$o")"
  if ! cmp -s "$o" "$committed"; then
    echo "stale BPF object: shaper-bpf/obj/$(basename "$o") differs from its source; run npm run build:bpf and commit" >&2
    stale=1
  fi
done
for committed in "$here"/../obj/*.o; do
  [ -e "$tmp/$(basename "$committed")" ] || { echo "shaper-bpf/obj/$(basename "$committed") has no source" >&2; stale=1; }
done
[ "$stale" = 0 ] && echo "BPF objects are up to date"
exit "$stale"
