#!/usr/bin/env bash
# Builds the real etcd and kube-apiserver (and kubectl, for the bench) the
# delivery tests run against, from the Go module proxy, into tools/bin.
#
#   scripts/build-kube.sh OUT_DIR ETCD_VERSION KUBE_VERSION [PROGRAM...]
#
# PROGRAM: etcd, kube-apiserver (the default: both) or kubectl.
#
# Each is built in a throwaway module: etcd from its published v3 modules;
# Kubernetes from k8s.io/kubernetes with its staging `replace` lines
# (./staging/src/k8s.io/x) rewritten to the published k8s.io/x v0.N.M
# modules. Go's module and build caches make a second build take seconds.
set -euo pipefail
out=$(realpath -m "$1") etcd_version=$2 kube_version=$3
shift 3
programs=("${@:-etcd}")
[ $# -eq 0 ] && programs+=(kube-apiserver)
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

build() { # module-dir package output
	(cd "$1" && go build -trimpath -ldflags='-s -w' -o "$3" "$2")
}

if [[ " ${programs[*]} " == *" etcd "* ]]; then
	mkdir "$work/etcd"
	(cd "$work/etcd" && go mod init opm.test/etcd >/dev/null 2>&1 &&
		go get "go.etcd.io/etcd/server/v3@$etcd_version" >/dev/null)
	build "$work/etcd" go.etcd.io/etcd/server/v3 "$out/etcd"
fi

kube=()
for p in "${programs[@]}"; do [ "$p" != etcd ] && kube+=("$p"); done
[ ${#kube[@]} -eq 0 ] && exit 0
mkdir "$work/kube"
staging=${kube_version/#v1./v0.}
modfile=$(go mod download -json "k8s.io/kubernetes@$kube_version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
{
	echo "module opm.test/kube"
	sed -n 's/^go /go /p' "$modfile"
	echo "require k8s.io/kubernetes $kube_version"
	echo "replace ("
	sed -n "s#^\t\(k8s.io/[^ ]*\) => ./staging/src/.*#\t\1 => \1 $staging#p" "$modfile"
	echo ")"
} >"$work/kube/go.mod"
for t in "${kube[@]}"; do
	build "$work/kube" "k8s.io/kubernetes/cmd/$t" "$out/$t"
done
