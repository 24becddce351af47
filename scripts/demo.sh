#!/usr/bin/env bash
# The main job (`make demo`): the whole story on one machine, with no
# network but a registry on loopback that this script starts and stops.
#   1. a new OPM module, vetted and rendered with no registry at all;
#   2. the bundle example rendered;
#   3. a local registry: publish the core model and the examples, then the
#      real cue CLI consumes one of them;
#   4. dependencies: publish a provider in two versions, get it into a
#      consumer, build, see `opm mod update --check` report the newer one,
#      update, tidy.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# The binary `make build` makes (Makefile: target/<host>/release/opm).
opm="${OPM:-$repo/target/$(rustc -vV | sed -n 's/^host: //p')/release/opm}"
cue="${OPM_TEST_CUE:-$repo/tools/bin/cue}"
work=$(mktemp -d "${TMPDIR:-/tmp}/opm-demo-XXXXXX")
registry_pid=""
cleanup() {
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null || true; fi
  chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT
export CUE_CACHE_DIR="$work/cache" OPM_CONFIG="$work/opm-config.yaml" DOCKER_CONFIG="$work/docker"
: >"$OPM_CONFIG" # no routing until the registry starts (a file OPM_CONFIG names must exist)
unset CUE_REGISTRY
bold() { if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then printf '\n\033[1m%s\033[0m\n' "$*"; else printf '\n%s\n' "$*"; fi; }
step() { bold "\$ $*"; "$@"; }

bold "== 1. A new module, rendered with no registry and no network"
step "$opm" version
mkdir "$work/shop" && cd "$work/shop"
step "$opm" mod init example.com/shop@v0
step "$opm" mod vet --concrete
step "$opm" mod build
printf 'replicas: 3\nimage: nginx:1.27.3\n' > prod.yaml
step "$opm" mod build -f prod.yaml -o json --name shop-prod -n prod
echo 'module: #config: replicas: int & <=10' >> shop.cue
printf 'replicas: 20\n' > too-many.yaml
bold "# A values file the module refuses: every error with its position, exit code 2."
set +e; "$opm" mod build -f too-many.yaml >/dev/null; code=$?; set -e
echo "exit code: $code"; [ "$code" = 2 ]

bold "== 2. A bundle: three modules released together"
cp -r "$repo/catalog" "$repo/examples" "$work/"
cd "$work/examples/webapp-stack"
step "$opm" bundle vet
printf 'env: staging\ndomain: staging.example.com\n' > staging.yaml
step "$opm" bundle build -f staging.yaml --out-dir "$work/manifests"
step ls "$work/manifests"

bold "== 3. Publish to a registry on loopback and consume with the real cue CLI"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
YAML
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
registry_pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
printf 'registries:\n  "*":\n    url: 127.0.0.1:%s\n    insecure: true\n' "$port" > "$OPM_CONFIG"
step "$opm" config show
for dir in catalog examples/postgres examples/blog examples/internal-db; do
  cd "$work/$dir"
  step "$opm" mod publish v0.1.0
done

mkdir "$work/consumer" && cd "$work/consumer"
"$cue" mod init --source self example.com/consumer@v0
cat > consumer.cue <<'CUE'
package consumer

import (
	core "opmodel.dev/core@v0"
	blog "opmodel.dev/examples/blog@v0"
)

release: core.#ModuleRelease & {
	#module: blog.module
	metadata: {name: "my-blog", namespace: "blog"}
	values: web: replicas: 3
}
CUE
export CUE_REGISTRY="127.0.0.1:$port+insecure"
step "$cue" mod tidy
step cat cue.mod/module.cue
bold "\$ cue export -e 'release.objects' | kinds"
"$cue" export -e 'release.objects' --out json | python3 -c 'import json,sys; print(*(o["kind"] + "/" + o["metadata"]["name"] for o in json.load(sys.stdin)), sep="\n")'

bold "== 4. Dependencies: get, build, update --check, update, tidy"
unset CUE_REGISTRY   # back to ~/.opm/config.yaml routing
mkdir "$work/greeting" && cd "$work/greeting"
"$opm" mod init example.com/greeting@v1 --template cue >/dev/null 2>&1
echo 'message: "hello"' > greeting.cue && sed -i '1i package greeting\n' greeting.cue
step "$opm" mod publish v1.0.0
sed -i 's/"hello"/"hello, world"/' greeting.cue
step "$opm" mod publish v1.1.0

mkdir "$work/site" && cd "$work/site"
"$opm" mod init example.com/site@v0 >/dev/null 2>&1
cat > banner.cue <<'CUE'
package site

import "example.com/greeting@v1"

module: #config: banner: string | *greeting.message
CUE
step "$opm" mod get example.com/greeting@v1.0.0
step cat cue.mod/module.cue
step "$opm" mod vet --offline
bold "\$ opm mod build -o json | kinds"
"$opm" mod build -o json | python3 -c 'import json,sys; print(*(o["kind"] for o in json.load(sys.stdin)))'
bold "\$ opm mod update --check   # exit code 6: an update is available"
set +e; "$opm" mod update --check; code=$?; set -e
echo "exit code: $code"; [ "$code" = 6 ]
step "$opm" mod update --yes
step "$opm" mod tidy
step "$opm" mod tidy --check
step cat cue.mod/module.cue
bold "demo complete"
