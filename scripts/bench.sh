#!/usr/bin/env bash
# Benchmarks (`make bench`): prints wall times of opm next to the cue CLI.
# Figures only: nothing here asserts anything about speed. Offline: no
# registry, a temporary CUE cache removed on exit.
#
#   BENCH_RUNS    timed runs per tool, after one warm-up (default 5)
#   OPM_TEST_CUE  the cue CLI to compare with (default tools/bin/cue)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
opm="$repo/target/release/opm"
cue="${OPM_TEST_CUE:-$repo/tools/bin/cue}"
runs="${BENCH_RUNS:-5}"

[ -x "$opm" ] || { echo "bench: $opm missing, run make build" >&2; exit 1; }
[ -x "$cue" ] || { echo "bench: cue CLI $cue missing" >&2; exit 1; }
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_RUNS must be a positive integer" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/opm-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT
export CUE_CACHE_DIR="$work/cache" CUE_REGISTRY=none

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
	o=$(cd "$mod" && time_runs "$opm" mod build)
	c=$(cd "$modcue" && time_runs "$cue" export -e release.objects --out yaml)
	set -- $o $c # opm_mean opm_min cue_mean cue_min
	printf 'mod build, %d components: opm %s s (min %s)  cue %s s (min %s)  opm/cue %s (min %s)\n' \
		"$n" "$1" "$2" "$3" "$4" "$(ratio "$1" "$3")" "$(ratio "$2" "$4")"

	if [ -n "$gnu_time" ]; then
		o=$(cd "$mod" && peak_rss "$opm" mod build)
		c=$(cd "$modcue" && peak_rss "$cue" export -e release.objects --out yaml)
		printf 'mod build, %d components: peak RSS opm %s MiB  cue %s MiB\n' "$n" "$o" "$c"
	fi
}

# --- section: get ------------------------------------------------------------
# Reserved: a `get` benchmark is to be added here as bench_get, and called
# from main below.

# --- main ----------------------------------------------------------------------

main() {
	echo "opm benchmarks: $("$opm" --version), $("$cue" version | head -1)"
	echo "$runs timed runs per tool after one warm-up; wall time mean (min); CUE_REGISTRY=none"
	echo
	bench_mod_build
	# bench_get
}

main "$@"
