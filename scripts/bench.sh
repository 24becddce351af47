#!/usr/bin/env bash
# Benchmarks (`make bench`): prints wall times of opm next to the cue CLI.
# Figures only: nothing here asserts anything about speed (the get section
# does check that both tools write the same module.cue). No network: mod build
# runs with no registry, get against a local docker-registry (Debian's
# docker-registry package) on 127.0.0.1; everything lives in a temporary
# directory removed on exit.
#
#   BENCH_RUNS    timed runs per tool, after one warm-up (default 5)
#   OPM_TEST_CUE  the cue CLI to compare with (default tools/bin/cue)
#   OPM_TEST_REGISTRY3  distribution v3's registry, for a second set of cold
#                 gets (default tools/bin/registry; skipped when missing)
#   OPM           the opm binary (default: make build's)
# Arguments: the sections to run (startup mod_build tidy_memory get), else all.
set -euo pipefail
# A failing command inside $(...) fails the substitution too: time_runs runs
# in one, and a run that fails must stop the script, not be timed.
shopt -s inherit_errexit
repo=$(cd "$(dirname "$0")/.." && pwd)
# The binary `make build` makes (Makefile: target/<host>/release/opm).
opm="${OPM:-$repo/target/$(rustc -vV | sed -n 's/^host: //p')/release/opm}"
cue="${OPM_TEST_CUE:-$repo/tools/bin/cue}"
registry3="${OPM_TEST_REGISTRY3:-$repo/tools/bin/registry}"
runs="${BENCH_RUNS:-5}"

[ -x "$opm" ] || { echo "bench: $opm missing, run make build" >&2; exit 1; }
[ -x "$cue" ] || { echo "bench: cue CLI $cue missing" >&2; exit 1; }
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_RUNS must be a positive integer" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/opm-bench-XXXXXX")
# Background processes (the get section's registry and proxy), stopped on
# exit. A killed process's wait fails (143): cleanup must still return 0.
bg_pids=()
cleanup() {
	local pid
	for pid in "${bg_pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	chmod -R u+w "$work" 2>/dev/null || true # caches may be read-only
	rm -rf "$work"
}
trap cleanup EXIT
export CUE_CACHE_DIR="$work/cache" CUE_REGISTRY=none OPM_CACHE_DIR="$work/opm-cache"

# --- helpers -----------------------------------------------------------------

# now: seconds since the epoch with sub-second precision (bash 5's
# EPOCHREALTIME, else GNU date).
now() {
	if [ -n "${EPOCHREALTIME:-}" ]; then echo "${EPOCHREALTIME/,/.}"; else date +%s.%N; fi
}

# time_runs CMD...: one warm-up, then $runs timed runs of CMD (stdout
# discarded, must succeed). Prints "mean min" in seconds.
time_runs() {
	local i t0 t1 times=()
	"$@" >/dev/null
	for ((i = 0; i < runs; i++)); do
		t0=$(now)
		"$@" >/dev/null
		t1=$(now)
		times+=("$t0 $t1")
	done
	printf '%s\n' "${times[@]}" | awk '
		{ d = $2 - $1; s += d; if (NR == 1 || d < m) m = d }
		END { printf "%.3f %.3f\n", s / NR, m }'
}

# Peak RSS needs GNU time's -v; checked once, skipped when absent.
gnu_time=
if [ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1; then gnu_time=/usr/bin/time; fi

# peak_rss CMD...: peak resident set size of one run of CMD, in MiB.
peak_rss() {
	"$gnu_time" -v "$@" 2>&1 >/dev/null |
		awk -F': ' '/Maximum resident set size/ { printf "%.0f\n", $2 / 1024 }'
}

# ratio A B: A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", (b > 0 ? a / b : 0) }'; }

# --- section: start-up ---------------------------------------------------------
# `opm version` against `cue version`: what a process costs before it does
# anything (the static binary has no dynamic loader or relocations to run).

bench_startup() {
	local bin o c
	bin=$(file -b "$opm" 2>/dev/null | grep -o 'statically linked\|dynamically linked' || true)
	echo "binary: $(stat -c %s "$opm") bytes, ${bin:-linkage unknown}, sha256 $(sha256sum "$opm" | cut -c1-16)..."
	o=$(runs=$((runs * 4)) time_runs "$opm" version)
	c=$(runs=$((runs * 4)) time_runs "$cue" version)
	set -- $o $c
	printf 'start-up (version): opm %.1f ms (min %.1f)  cue %.1f ms (min %.1f)  opm/cue %s (min %s)\n' \
		"$(awk -v x="$1" 'BEGIN{print x*1000}')" "$(awk -v x="$2" 'BEGIN{print x*1000}')" \
		"$(awk -v x="$3" 'BEGIN{print x*1000}')" "$(awk -v x="$4" 'BEGIN{print x*1000}')" \
		"$(ratio "$1" "$3")" "$(ratio "$2" "$4")"
}

# --- section: mod build --------------------------------------------------------

# gen_module DIR N: an OPM module with N components in DIR, cycling through
# five shapes (web, api with a ConfigMap, worker, ingress'd frontend, job-ish
# service with Secret and ConfigMap), each with its own #config entry.
gen_module() {
	local dir=$1 n=$2 i c out
	mkdir -p "$dir"
	out=$(cd "$dir" && "$opm" mod init example.com/bench@v0 2>&1) || { echo "$out" >&2; return 1; }
	rm -f "$dir"/*.cue
	{
		cat <<-'EOF'
		package bench

		import "opmodel.dev/core@v0"

		module: core.#Module & {
			metadata: {
				apiVersion: "example.com/bench@v0"
				name:       "bench"
				version:    "0.1.0"
			}
			values: #config
		EOF
		for ((i = 1; i <= n; i++)); do
			c=$(printf 'c%02d' "$i")
			cat <<-EOF
				#config: $c: {
					image:    string | *"registry.example.com/$c:1.$i.0"
					replicas: int & >=1 | *$((i % 3 + 1))
					logLevel: *"info" | "debug" | "warn" | "error"
					port:     int | *$((8000 + i))
				}
			EOF
			case $((i % 5)) in
			0) cat <<-EOF
				#components: $c: core.#Container & core.#Replicas & core.#Expose & core.#HealthCheck & {
					spec: {
						container: {
							image: values.$c.image
							ports: http: port: values.$c.port
							resources: {requests: {cpu: "50m", memory: "64Mi"}, limits: memory: "128Mi"}
						}
						replicas: values.$c.replicas
						expose: ports: http: port: 80
						healthCheck: readiness: httpGet: {path: "/", port: "http"}
					}
				}
			EOF
			;;
			1) cat <<-EOF
				#components: $c: core.#Container & core.#Replicas & core.#Expose & core.#ConfigMaps & core.#HealthCheck & {
					spec: {
						container: {
							image: values.$c.image
							ports: http: port: values.$c.port
							env: LOG_LEVEL: configMap: {name: "$c-config", key: "log-level"}
						}
						replicas: values.$c.replicas
						configMaps: "$c-config": {
							data: {
								"log-level":   values.$c.logLevel
								"config.yaml": "port: \\(values.$c.port)\\n"
							}
							mountPath: "/etc/$c"
						}
						expose: ports: http: port: values.$c.port
						healthCheck: {
							readiness: httpGet: {path: "/healthz", port: "http"}
							liveness: {httpGet: {path: "/healthz", port: "http"}, initialDelaySeconds: 10}
						}
					}
				}
			EOF
			;;
			2) cat <<-EOF
				#components: $c: core.#Container & core.#Replicas & core.#Labels & {
					spec: {
						container: {
							image: values.$c.image
							args: ["--log-level", values.$c.logLevel]
							env: QUEUE: value: "jobs-$i"
						}
						replicas: values.$c.replicas
						labels: "example.com/tier": "worker"
						annotations: "example.com/owner": "team-$((i % 4))"
					}
				}
			EOF
			;;
			3) cat <<-EOF
				#components: $c: core.#Container & core.#Replicas & core.#Expose & core.#Ingress & {
					spec: {
						container: {
							image: values.$c.image
							ports: http: port: values.$c.port
						}
						replicas: values.$c.replicas
						expose: ports: http: port: 80
						ingress: {host: "$c.example.com", path: "/"}
					}
				}
			EOF
			;;
			4) cat <<-EOF
				#components: $c: core.#Container & core.#Expose & core.#Secrets & core.#ConfigMaps & {
					spec: {
						container: {
							image: values.$c.image
							ports: grpc: port: values.$c.port
							env: LOG_LEVEL: value: values.$c.logLevel
						}
						secrets: "$c-creds": {data: {username: "$c", password: "not-a-secret-$i"}, mountPath: "/run/secrets/$c"}
						configMaps: "$c-settings": data: "settings.json": "{\\"id\\": $i}"
						expose: ports: grpc: port: values.$c.port
					}
				}
			EOF
			;;
			esac
		done
		echo "}"
	} >"$dir/bench.cue"
	# The heredocs lose their indentation; cue fmt puts it back.
	"$cue" fmt "$dir/bench.cue"
}

bench_mod_build() {
	local n=50 mod="$work/mod" modcue="$work/mod-cue"
	gen_module "$mod" "$n"

	# The cue run: the same module plus a release, in a copy so opm never
	# sees zz_release.cue.
	cp -r "$mod" "$modcue"
	cat >"$modcue/zz_release.cue" <<-'EOF'
	package bench

	import core "opmodel.dev/core@v0"

	release: core.#ModuleRelease & {#module: module, metadata: {name: "bench", namespace: "default"}}
	EOF

	# opm first: it installs the core model into CUE_CACHE_DIR, which cue
	# then reads with no registry.
	local opm_objs cue_objs
	opm_objs=$(cd "$mod" && "$opm" mod build | grep -c '^kind:')
	cue_objs=$(cd "$modcue" && "$cue" export -e release.objects --out yaml | grep -c '^- ')
	echo "mod build, $n components: objects: opm $opm_objs  cue $cue_objs"
	if [ "$opm_objs" != "$cue_objs" ]; then
		echo "bench: opm and cue render different numbers of objects" >&2
		return 1
	fi

	local o c
	# Evaluated every time: bench-results.py measures the result cache.
	o=$(cd "$mod" && time_runs "$opm" mod build --no-cache)
	c=$(cd "$modcue" && time_runs "$cue" export -e release.objects --out yaml)
	set -- $o $c # opm_mean opm_min cue_mean cue_min
	printf 'mod build, %d components: opm %s s (min %s)  cue %s s (min %s)  opm/cue %s (min %s)\n' \
		"$n" "$1" "$2" "$3" "$4" "$(ratio "$1" "$3")" "$(ratio "$2" "$4")"

	if [ -n "$gnu_time" ]; then
		o=$(cd "$mod" && peak_rss "$opm" mod build --no-cache)
		c=$(cd "$modcue" && peak_rss "$cue" export -e release.objects --out yaml)
		printf 'mod build, %d components: peak RSS opm %s MiB  cue %s MiB\n' "$n" "$o" "$c"
	fi
}

# --- section: tidy's memory ------------------------------------------------------
# A 20 MB module (one data file after its imports): tidy reads only each
# file's header, as cue does.

bench_tidy_memory() {
	[ -n "$gnu_time" ] || { echo "tidy memory: skipped (no GNU time)"; return 0; }
	local dir="$work/big" i o c value
	value=$(printf 'v%.0s' {1..1000})
	mkdir -p "$dir/cue.mod"
	printf 'module: "example.com/big@v0"\nlanguage: {\n\tversion: "v0.17.0"\n}\n' >"$dir/cue.mod/module.cue"
	{
		printf 'package big\n\nimport "strings"\n\nx: strings.ToUpper("a")\ndata: [\n'
		for ((i = 0; i < 20000; i++)); do
			printf '\t{name: "item-%06d", value: "%s"},\n' "$i" "$value"
		done
		printf ']\n'
	} >"$dir/big.cue"
	o=$(cd "$dir" && peak_rss "$opm" mod tidy)
	c=$(cd "$dir" && peak_rss "$cue" mod tidy)
	printf 'mod tidy, a %s MB module: peak RSS opm %s MiB  cue %s MiB\n' "$(($(stat -c %s "$dir/big.cue") / 1000000))" "$o" "$c"
}

# --- section: get ------------------------------------------------------------
# A local registry (Debian's docker-registry) holding a graph of 31 modules:
# `opm mod get` against `cue mod get`, with warm caches, then with empty
# caches through scripts/latency-proxy.py.

# free_port: a TCP port free on 127.0.0.1 just now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT: wait until something accepts connections on 127.0.0.1:PORT.
wait_port() {
	local i
	for ((i = 0; i < 100; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench: nothing listens on 127.0.0.1:$1" >&2
	return 1
}

# start_registry DIR PORT [AUTH_YAML [TLS_YAML]]: a docker-registry on
# 127.0.0.1:PORT storing into DIR, with AUTH_YAML as its auth section and
# TLS_YAML as its http section's tls; sets registry_pid.
# REGISTRY_SERVER names another server taking the same configuration
# (distribution v3's registry).
start_registry() {
	local dir=$1 port=$2 auth=${3:-} tls=${4:+, tls: $4}
	mkdir -p "$dir/storage"
	cat >"$dir/config.yml" <<-EOF
	version: 0.1
	log: {level: error, accesslog: {disabled: true}}
	storage: {filesystem: {rootdirectory: $dir/storage}}
	http: {addr: 127.0.0.1:$port$tls}
	$auth
	EOF
	"${REGISTRY_SERVER:-docker-registry}" serve "$dir/config.yml" >"$dir/log" 2>&1 &
	registry_pid=$!
	bg_pids+=("$registry_pid")
	wait_port "$port"
}

# start_proxy PORT TARGET_PORT DELAY_MS COUNT_FILE: scripts/latency-proxy.py on
# 127.0.0.1:PORT in front of 127.0.0.1:TARGET_PORT; sets proxy_pid.
start_proxy() {
	python3 "$repo/scripts/latency-proxy.py" "$1" "127.0.0.1:$2" "$3" "$4" &
	proxy_pid=$!
	bg_pids+=("$proxy_pid")
	wait_port "$1"
}

# stop_proxy: SIGTERM the proxy and wait for it (it writes its counts then).
stop_proxy() {
	kill "$proxy_pid"
	wait "$proxy_pid" || true
}

# write_module_cue FILE PATH DEP...: a module.cue for module PATH@v0 with
# DEP@v0 at v0.1.0 for each DEP (already in cue's order), formatted as cue
# writes it.
write_module_cue() {
	local file=$1 path=$2 dep
	shift 2
	{
		echo "module: \"$path@v0\""
		echo 'language: {'
		echo '	version: "v0.17.0"'
		echo '}'
		echo 'source: {'
		echo '	kind: "self"'
		echo '}'
		if [ $# -gt 0 ]; then
			echo 'deps: {'
			for dep; do
				printf '\t"%s@v0": {\n\t\tv: "v0.1.0"\n\t}\n' "$dep"
			done
			echo '}'
		fi
	} >"$file"
}

# write_package FILE NAME DEP...: package NAME importing each DEP, with
# name: "NAME" and x$k: d$k.name per import.
write_package() {
	local file=$1 name=$2 dep k=0
	shift 2
	{
		echo "package $name"
		echo
		for dep; do echo "import d$((k++)) \"$dep\""; done
		[ $# -eq 0 ] || echo
		echo "name: \"$name\""
		for ((k = 0; k < $#; k++)); do echo "x$k: d$k.name"; done
	} >"$file"
}

# mod_paths I...: the module paths bench.test/mI, once each, sorted as cue
# sorts module.cue's deps.
mod_paths() {
	local i
	for i; do echo "bench.test/m$i"; done | LC_ALL=C sort -u
}

# gen_graph DIR N: modules bench.test/m0..m(N-1)@v0 in DIR/m$i, where m$i
# imports m(i-1), m(i-2) and m(i/2) (those that exist, once each), and
# bench.test/top@v0 in DIR/top, importing m(N-1). Each module.cue lists the
# whole transitive closure of its imports, as tidy wants, sorted as cue
# sorts (by module path). Prints the publish order, one directory a line.
gen_graph() {
	local dir=$1 n=$2 i d c imports closure=()
	for ((i = 0; i < n; i++)); do
		imports=($(for d in $((i - 1)) $((i - 2)) $((i / 2)); do ((d < 0 || d == i)) || echo "$d"; done | awk '!seen[$1]++'))
		c=""
		for d in "${imports[@]}"; do c+=" $d ${closure[d]}"; done
		closure[i]=$(printf '%s\n' $c | sort -nu | tr '\n' ' ') # once each
		mkdir -p "$dir/m$i/cue.mod"
		write_module_cue "$dir/m$i/cue.mod/module.cue" "bench.test/m$i" $(mod_paths $c)
		write_package "$dir/m$i/m$i.cue" "m$i" $(for d in "${imports[@]}"; do echo "bench.test/m$d"; done)
		echo "$dir/m$i"
	done
	mkdir -p "$dir/top/cue.mod"
	write_module_cue "$dir/top/cue.mod/module.cue" bench.test/top $(mod_paths $((n - 1)) ${closure[n - 1]})
	write_package "$dir/top/top.cue" top "bench.test/m$((n - 1))"
	echo "$dir/top"
}

# get_from DIR START CACHE CMD...: in module DIR, put START back as
# cue.mod/module.cue, then run `CMD mod get bench.test/top@v0.1.0` with
# CUE_CACHE_DIR=CACHE ("new": a new empty directory under $work/cold, and
# a new empty OPM_CACHE_DIR beside it: cold as on a fresh machine). Its
# output (opm reports each module added on stderr) shows only on failure.
get_from() {
	local dir=$1 start=$2 cache=$3 opm_cache=$OPM_CACHE_DIR out
	shift 3
	cp "$start" "$dir/cue.mod/module.cue"
	if [ "$cache" = new ]; then
		cache=$(mktemp -d "$work/cold/XXXXXX")
		opm_cache="$cache-opm"
	fi
	out=$(cd "$dir" && CUE_CACHE_DIR="$cache" OPM_CACHE_DIR="$opm_cache" "$@" mod get bench.test/top@v0.1.0 2>&1) || {
		echo "bench: $* mod get failed:" >&2
		echo "$out" >&2
		return 1
	}
}

# get_vet_from DIR START TOOL: get_from with new empty caches, then the
# first vet of the consumer in them: what a user waits for before the
# module evaluates (cue fetches the zips here, opm already has them).
get_vet_from() {
	local dir=$1 start=$2 tool=$3 cache out
	cache=$(mktemp -d "$work/cold/XXXXXX")
	OPM_CACHE_DIR="$cache-opm" get_from "$dir" "$start" "$cache" "$tool"
	if [ "$tool" = "$cue" ]; then set -- "$cue" vet -c=false ./...; else set -- "$opm" mod vet; fi
	out=$(cd "$dir" && CUE_CACHE_DIR="$cache" OPM_CACHE_DIR="$cache-opm" "$@" 2>&1) || {
		echo "bench: $* failed:" >&2
		echo "$out" >&2
		return 1
	}
}

bench_get() {
	local n=30 reg="$work/registry" port proxy_port
	command -v docker-registry >/dev/null || { echo "bench: docker-registry missing, run make test-deps" >&2; return 1; }
	port=$(free_port)
	start_registry "$reg" "$port"
	local reg_pid=$registry_pid
	export CUE_REGISTRY="127.0.0.1:$port+insecure"

	# Publish the graph, lowest first: each publish vets against the ones
	# before it, fetched into its own cache.
	local mod out
	for mod in $(gen_graph "$work/graph" "$n"); do
		out=$(cd "$mod" && CUE_CACHE_DIR="$work/publish-cache" "$opm" mod publish v0.1.0 2>&1) || {
			echo "bench: opm mod publish failed in $mod:" >&2
			echo "$out" >&2
			return 1
		}
	done

	# The consumer: imports bench.test/top, no deps yet.
	local consumer="$work/consumer" start="$work/consumer-start.cue"
	mkdir -p "$consumer/cue.mod" "$work/cold"
	printf '%s\n' 'module: "bench.test/consumer@v0"' 'language: version: "v0.17.0"' >"$start"
	cp "$start" "$consumer/cue.mod/module.cue"
	printf '%s\n' 'package consumer' '' 'import "bench.test/top"' '' 'x: top.name' >"$consumer/consumer.cue"

	# Same start, same result: module.cue byte for byte. These runs also
	# warm each tool's own cache.
	get_from "$consumer" "$start" "$work/opm-cache" "$opm"
	cp "$consumer/cue.mod/module.cue" "$work/opm-result.cue"
	get_from "$consumer" "$start" "$work/cue-cache" "$cue"
	if ! cmp -s "$work/opm-result.cue" "$consumer/cue.mod/module.cue"; then
		echo "bench: opm mod get and cue mod get wrote different module.cue files:" >&2
		diff -u "$consumer/cue.mod/module.cue" "$work/opm-result.cue" >&2 || true
		return 1
	fi
	local ndeps
	ndeps=$(grep -c '^\s*v: ' "$work/opm-result.cue" || true)

	# Cached: both tools' caches hold the graph. Each run restores module.cue
	# first (same cp for both).
	local o c
	o=$(time_runs get_from "$consumer" "$start" "$work/opm-cache" "$opm")
	c=$(time_runs get_from "$consumer" "$start" "$work/cue-cache" "$cue")
	set -- $o $c # opm_mean opm_min cue_mean cue_min
	printf 'get cached, %d+1 modules (%d deps written): opm %s s (min %s)  cue %s s (min %s)  opm/cue %s (min %s)\n' \
		"$n" "$ndeps" "$1" "$2" "$3" "$4" "$(ratio "$1" "$3")" "$(ratio "$2" "$4")"

	# Cold: a new empty cache per run, through a proxy that delays each
	# request by 20 ms, then 100 ms; against a registry without
	# authentication, one with Basic auth and one with token auth (its
	# token service behind a delaying proxy too). Not the same work: cue
	# mod get fetches .mod files only (here just top's, whose tidy
	# module.cue lists the whole graph); opm downloads every module of the
	# graph, .mod and zip, so that vet and build then work offline.
	local basic_port token_port token_proxy_port tport
	basic_port=$(free_port)
	htpasswd -Bbn bench bench-pw >"$work/htpasswd"
	start_registry "$work/basic" "$basic_port" "auth: {htpasswd: {realm: bench, path: $work/htpasswd}}"
	local basic_pid=$registry_pid
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/token.key" -out "$work/token.pem" -days 2 -subj /CN=bench 2>/dev/null
	python3 "$repo/tests/token-server.py" "$work/token.pem" "$work/token.key" bench bench-pw 300 "$work/tokens.log" >"$work/token-port" &
	bg_pids+=($!)
	for ((i = 0; i < 100; i++)); do [ -s "$work/token-port" ] && break; sleep 0.05; done
	tport=$(head -1 "$work/token-port")
	token_proxy_port=$(free_port)
	token_port=$(free_port)
	start_registry "$work/token" "$token_port" "auth: {token: {realm: \"http://127.0.0.1:$token_proxy_port/token\", service: bench, issuer: opm-test-issuer, rootcertbundle: $work/token.pem}}"
	local token_pid=$registry_pid
	# The graph, mirrored into both (opm mod mirror: the same manifests),
	# the token service reached through a proxy without delay meanwhile.
	python3 "$repo/scripts/latency-proxy.py" "$token_proxy_port" "127.0.0.1:$tport" 0 &
	local mirror_token_pid=$!
	bg_pids+=("$mirror_token_pid")
	wait_port "$token_proxy_port"
	local target
	for target in "$basic_port" "$token_port"; do
		write_docker_config "$work/docker-direct" "127.0.0.1:$target"
		DOCKER_CONFIG="$work/docker-direct" CUE_CACHE_DIR="$work/publish-cache" "$opm" -q mod mirror bench.test/top@v0.1.0 --deps --to "127.0.0.1:$target+insecure"
	done
	kill "$mirror_token_pid"
	wait "$mirror_token_pid" 2>/dev/null || true
	# The same graph in distribution v3's registry, without authentication.
	local v3_port="" v3_pid=""
	if [ -x "$registry3" ]; then
		v3_port=$(free_port)
		REGISTRY_SERVER=$registry3 start_registry "$work/v3" "$v3_port"
		v3_pid=$registry_pid
		CUE_CACHE_DIR="$work/publish-cache" "$opm" -q mod mirror bench.test/top@v0.1.0 --deps --to "127.0.0.1:$v3_port+insecure"
	fi
	# The same graph behind TLS, with a CA of the bench's own that both
	# tools trust through SSL_CERT_FILE: the TLS handshakes pay the delay
	# too, and HTTP/2 lets a client share one connection.
	local tls_port tls_pid
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" -days 2 -subj /CN=bench-ca 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -keyout "$work/tls.key" -out "$work/tls.csr" -subj /CN=127.0.0.1 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$work/tls.ext"
	openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -out "$work/tls.pem" -days 2 -extfile "$work/tls.ext" 2>/dev/null
	tls_port=$(free_port)
	start_registry "$work/tls" "$tls_port" "" "{certificate: $work/tls.pem, key: $work/tls.key}"
	tls_pid=$registry_pid
	SSL_CERT_FILE="$work/ca.pem" CUE_CACHE_DIR="$work/publish-cache" "$opm" -q mod mirror bench.test/top@v0.1.0 --deps --to "127.0.0.1:$tls_port+secure"
	echo "(cold gets are not the same work: opm downloads every module of the graph, .mod and zip; cue only the .mod files it needs."
	echo " Each run starts with empty caches, opm's own included. The registry shares the machine's cores: its CPU time per get is shown.)"

	local delay label pid
	for delay in 20 100; do
		for label in none basic token v3 tls; do
			case $label in
			none) target=$port pid=$reg_pid ;;
			tls) target=$tls_port pid=$tls_pid ;;
			basic) target=$basic_port pid=$basic_pid ;;
			token) target=$token_port pid=$token_pid ;;
			v3) [ -n "$v3_port" ] || continue; target=$v3_port pid=$v3_pid ;;
			esac
			cold_get "$label" "$target" "$delay" "$token_proxy_port" "$tport" "$pid"
		done
	done
	export CUE_REGISTRY="127.0.0.1:$port+insecure"
	unset DOCKER_CONFIG

	local delay=20
	proxy_port=$(free_port)
	export CUE_REGISTRY="127.0.0.1:$proxy_port+insecure"
	start_proxy "$proxy_port" "$port" "$delay" "$work/proxy-counts"

	o=$(time_runs get_vet_from "$consumer" "$start" "$opm")
	c=$(time_runs get_vet_from "$consumer" "$start" "$cue")
	set -- $o $c
	printf 'get + first vet, cold, %d ms per request: opm %s s (min %s)  cue %s s (min %s)  opm/cue %s (min %s)  (the same work: every module fetched and evaluated)\n' \
		"$delay" "$1" "$2" "$3" "$4" "$(ratio "$1" "$3")" "$(ratio "$2" "$4")"
	stop_proxy
}

# write_docker_config DIR HOST: Docker credentials bench / bench-pw for HOST.
write_docker_config() {
	mkdir -p "$1"
	printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$2" "$(printf 'bench:bench-pw' | base64)" >"$1/config.json"
}

# cpu_ms PID: the CPU time (user and system) process PID has used, in ms.
cpu_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%d\n", ($14 + $15) * 1000 / hz }' "/proc/$1/stat"
}

# cold_get AUTH TARGET_PORT DELAY TOKEN_PROXY_PORT TOKEN_PORT REGISTRY_PID:
# cold gets of the graph from the registry on TARGET_PORT through a proxy
# adding DELAY ms per request (the token service, for AUTH=token, behind
# one too): opm's and cue's wall times and the registry's CPU time per get,
# then the connections, requests and sequential rounds of one run of each.
# AUTH v3: distribution v3's registry, without authentication; tls:
# docker-registry behind TLS, without authentication.
cold_get() {
	local auth=$1 target=$2 delay=$3 tproxy=$4 tport=$5 rpid=$6 o c tool counts=() tpid="" r0 r1 r2
	proxy_port=$(free_port)
	local scheme=insecure
	[ "$auth" != tls ] || scheme=secure
	export CUE_REGISTRY="127.0.0.1:$proxy_port+$scheme"
	unset DOCKER_CONFIG
	if [ "$auth" = basic ] || [ "$auth" = token ]; then
		write_docker_config "$work/docker-$proxy_port" "127.0.0.1:$proxy_port"
		export DOCKER_CONFIG="$work/docker-$proxy_port"
	fi
	if [ "$auth" = tls ]; then export SSL_CERT_FILE="$work/ca.pem"; fi
	if [ "$auth" = token ]; then
		python3 "$repo/scripts/latency-proxy.py" "$tproxy" "127.0.0.1:$tport" "$delay" &
		tpid=$!
		bg_pids+=("$tpid")
		wait_port "$tproxy"
	fi
	start_proxy "$proxy_port" "$target" "$delay" "$work/proxy-counts"
	r0=$(cpu_ms "$rpid")
	o=$(time_runs get_from "$consumer" "$start" new "$opm")
	r1=$(cpu_ms "$rpid")
	c=$(time_runs get_from "$consumer" "$start" new "$cue")
	r2=$(cpu_ms "$rpid")
	stop_proxy
	set -- $o $c
	local what="$auth auth"
	[ "$auth" != v3 ] || what="distribution v3, no auth"
	[ "$auth" != tls ] || what="TLS, no auth"
	printf 'get cold, %d+1 modules, %s, %d ms per request: opm %s s (min %s)  cue %s s (min %s)  opm/cue %s (min %s)\n' \
		"$n" "$what" "$delay" "$1" "$2" "$3" "$4" "$(ratio "$1" "$3")" "$(ratio "$2" "$4")"
	# time_runs runs each tool runs+1 times (one warm-up).
	printf '  registry CPU per get: opm %d ms  cue %d ms\n' $(((r1 - r0) / (runs + 1))) $(((r2 - r1) / (runs + 1)))
	for tool in "$opm" "$cue"; do
		start_proxy "$proxy_port" "$target" "$delay" "$work/proxy-counts"
		get_from "$consumer" "$start" new "$tool"
		stop_proxy
		counts+=("$(awk '{ v[$1] = $2 } END { printf "%d connections, %d requests in %d rounds", v["connections"], v["requests"], v["rounds"] }' "$work/proxy-counts")")
	done
	local uncounted="token requests not counted"
	[ "$auth" != tls ] || uncounted="requests inside TLS not counted"
	printf '  one run each: opm %s  cue %s  (%s)\n' "${counts[0]}" "${counts[1]}" "$uncounted"
	unset SSL_CERT_FILE
	if [ -n "$tpid" ]; then kill "$tpid"; wait "$tpid" 2>/dev/null || true; fi
}

# --- main ----------------------------------------------------------------------

main() {
	echo "opm benchmarks: $("$opm" --version), $("$cue" version | head -1)"
	echo "$runs timed runs per tool after one warm-up; wall time mean (min); mod build with CUE_REGISTRY=none, get with a registry on 127.0.0.1"
	# The sections named on the command line (e.g. `bench.sh get`), else all.
	local section sections=("$@")
	[ $# -gt 0 ] || sections=(startup mod_build tidy_memory get)
	for section in "${sections[@]}"; do
		echo
		"bench_$section"
	done
}

main "$@"
