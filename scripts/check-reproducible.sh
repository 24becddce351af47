#!/usr/bin/env bash
# Builds opm twice, each time from an empty target directory, as `make
# build` does (static unless DYNAMIC=1), and checks that the two binaries
# are byte-identical. Usage: scripts/check-reproducible.sh
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
if [ -z "${DYNAMIC:-}" ]; then
  export "CARGO_TARGET_$(echo "$host" | tr 'a-z-' 'A-Z_')_RUSTFLAGS=-C target-feature=+crt-static -C relocation-model=static"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for n in 1 2; do
  CARGO_TARGET_DIR="$work/t$n" cargo build --release --locked --quiet --target "$host"
done
a="$work/t1/$host/release/opm" b="$work/t2/$host/release/opm"
if cmp -s "$a" "$b"; then
  echo "reproducible: $(stat -c %s "$a") bytes, sha256 $(sha256sum "$a" | cut -d' ' -f1)"
else
  echo "NOT reproducible: $(sha256sum "$a" "$b")" >&2
  exit 1
fi
