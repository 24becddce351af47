#!/usr/bin/env bash
# The main job (`make demo`): what a newcomer does on day one, offline.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
opm="$repo/target/release/opm"
work=$(mktemp -d "${TMPDIR:-/tmp}/opm-demo-XXXXXX")
trap 'rm -rf "$work"' EXIT
export CUE_CACHE_DIR="$work/cache"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step "$opm" version
cd "$work" && mkdir hello && cd hello
step "$opm" mod init example.com/hello@v0
step cat cue.mod/module.cue
step "$opm" mod vet --concrete

echo 'message: 42' >> hello.cue
printf '\n# A conflicting value: every error with its position, exit code 2.\n'
set +e
"$opm" mod vet; code=$?
set -e
echo "exit code: $code"
[ "$code" = 2 ]
