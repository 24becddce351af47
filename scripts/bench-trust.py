#!/usr/bin/env python3
"""Daily commands, binary against binary (`make bench`): warm `opm mod vet`
(the trust chain's cost), warm `opm mod get` and `opm version`; then the
last binary against cue: warm get, tidy and vet.

A chain of 12 modules (m0 <- m1 <- ... <- m10 <- top) is published to a
docker-registry on 127.0.0.1 and signed with a cosign key; a consumer gets
top. Then each opm binary named (e.g. an older build and the current one)
vets the consumer on a warm cache of its own, runs alternating, with and
without a `verify:` policy covering the chain; gets the version it has
again (warm); prints its version. Prints medians; asserts nothing about
speed.

    bench-trust.py CUE COSIGN OPM [OPM...]      (BENCH_TRUST_RUNS, default 20)
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

cue, cosign, opms = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = int(os.environ.get("BENCH_TRUST_RUNS", "20"))
work = tempfile.mkdtemp(prefix="opm-bench-trust-")
password = "bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, cwd=None, env=None):
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    if out.returncode != 0:
        sys.exit(f"bench-trust: {' '.join(args)} failed: {out.stderr}")
    return out


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


# Each binary is run from a copy in one directory: where a binary lies
# (another file system) changes its start-up by a millisecond or more.
names = list(opms)
for i, opm in enumerate(names):
    os.makedirs(f"{work}/bin{i}")
    shutil.copy2(opm, f"{work}/bin{i}/opm")
opms = [f"{work}/bin{i}/opm" for i in range(len(names))]

registry = None
try:
    port = free_port()
    write(f"{work}/registry/config.yml", f"version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\n"
          f"storage: {{filesystem: {{rootdirectory: {work}/registry/storage}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n")
    registry = subprocess.Popen(["docker-registry", "serve", f"{work}/registry/config.yml"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.1)
    base = dict(os.environ, CUE_REGISTRY=f"127.0.0.1:{port}+insecure", OPM_CONFIG=f"{work}/none.yaml",
                OPM_STATE_DIR=f"{work}/state", COSIGN_PASSWORD=password, HOME=work, NO_COLOR="1")
    write(f"{work}/none.yaml", "")
    run([cosign, "generate-key-pair"], cwd=work, env=base)

    # The chain, lowest first, each published with the last binary and signed.
    names = [f"m{i}" for i in range(11)] + ["top"]
    for i, name in enumerate(names):
        d = f"{work}/src/{name}"
        imp = f'import "bench.test/{names[i - 1]}@v0"\n\n' if i else ""
        dep = f"{names[i - 1]}.name + " if i else ""
        write(f"{d}/cue.mod/module.cue", f'module: "bench.test/{name}@v0"\nlanguage: version: "v0.17.0"\nsource: kind: "self"\n')
        write(f"{d}/{name}.cue", f'package {name}\n\n{imp}name: {dep}"{name}"\nitems: [for i in list.Range(0, 40, 1) {{id: i, label: "{name}-\\(i)"}}]\n'.replace(
            f"package {name}\n\n", f'package {name}\n\nimport "list"\n\n'))
        env = dict(base, CUE_CACHE_DIR=f"{work}/publish-cache")
        run([cue, "mod", "tidy"], cwd=d, env=env)
        run([opms[-1], "mod", "publish", "v0.1.0"], cwd=d, env=env)
        run([opms[-1], "mod", "sign", f"bench.test/{name}@v0.1.0", "--key", f"{work}/cosign.key"], env=env)
    write(f"{work}/policy.yaml", f"verify:\n  bench.test:\n    keys: [{work}/cosign.pub]\n")

    def consumer(tag):
        d = f"{work}/consumer-{tag}"
        write(f"{d}/cue.mod/module.cue", 'module: "bench.test/consumer@v0"\nlanguage: version: "v0.17.0"\n')
        write(f"{d}/consumer.cue", 'package consumer\n\nimport "bench.test/top@v0"\n\nx: top.name\n')
        return d

    def evaluates(opm):
        # vet with the trust chain, not an answer from the result cache
        # (for a binary that has one).
        return ["--no-cache"] if "--no-cache" in run([opm, "mod", "vet", "--help"]).stdout else []

    def prepare(i, opm, policy, args):
        tag = f"{i}-{'policy' if policy else 'plain'}-{'-'.join(a.split('/')[-1] for a in args)}"
        d = consumer(tag)
        env = dict(base, CUE_CACHE_DIR=f"{work}/cache-{tag}", OPM_CONFIG=f"{work}/policy.yaml" if policy else f"{work}/none.yaml")
        run([opm, "mod", "get", "bench.test/top@v0.1.0"], cwd=d, env=env)
        if args == ["mod", "vet"]:
            args = args + evaluates(opm)
        run([opm, *args], cwd=d, env=env)  # warm-up
        return lambda: run([opm, *args], cwd=d, env=env)

    def alternate(cmds):
        times = [[] for _ in cmds]
        for _ in range(runs):
            for i, cmd in enumerate(cmds):
                t0 = time.perf_counter()
                cmd()
                times[i].append((time.perf_counter() - t0) * 1000)
        return [statistics.median(t) for t in times]

    print(f"daily commands on a consumer of a 12-module chain, everything cached, median of {runs} alternating runs each (ms)")
    cases = [
        ("mod vet, no policy", False, ["mod", "vet"]),
        ("mod vet, verify: policy over the chain (12 signatures)", True, ["mod", "vet"]),
        ("mod get of the version it has", False, ["mod", "get", "bench.test/top@v0.1.0"]),
        ("version", False, ["version"]),
    ]
    for what, policy, args in cases:
        medians = alternate([prepare(i, opm, policy, args) for i, opm in enumerate(opms)])
        cells = "  ".join(f"{o}: {m:.1f}" for o, m in zip(names, medians))
        ratio = f"  last/first {medians[-1] / medians[0]:.2f}" if len(opms) > 1 else ""
        print(f"  {what}: {cells}{ratio}")

    # The last opm against cue, each on a consumer and cache of its own.
    opm = opms[-1]

    def side(tool, args, tag):
        d = consumer(f"vs-{tag}")
        env = dict(base, CUE_CACHE_DIR=f"{work}/cache-vs-{tag}", OPM_CACHE_DIR=f"{work}/opm-cache-vs-{tag}")
        run([tool, "mod", "get", "bench.test/top@v0.1.0"], cwd=d, env=env)
        run([tool, *args], cwd=d, env=env)  # warm-up
        return lambda: run([tool, *args], cwd=d, env=env)

    print(f"opm against cue on the same consumer, everything cached, median of {runs} alternating pairs (ms)")
    for what, ours, theirs in [
        ("mod get of the version it has", ["mod", "get", "bench.test/top@v0.1.0"], ["mod", "get", "bench.test/top@v0.1.0"]),
        ("mod tidy", ["mod", "tidy"], ["mod", "tidy"]),
        ("vet, evaluated (--no-cache)", ["mod", "vet", *evaluates(opm)], ["vet", "-c=false", "./..."]),
        ("vet, answered from the result cache", ["mod", "vet"], ["vet", "-c=false", "./..."]),
    ]:
        tag = what.split(",")[0].replace(" ", "-") + ("-rc" if ours == ["mod", "vet"] else "")
        o, c = alternate([side(opm, ours, f"opm-{tag}"), side(cue, theirs, f"cue-{tag}")])
        print(f"  {what}: opm {o:.1f}  cue {c:.1f}  opm/cue {o / c:.2f}")
finally:
    if registry:
        registry.terminate()
        registry.wait(timeout=10)
    subprocess.run(["chmod", "-R", "u+w", work])
    shutil.rmtree(work, ignore_errors=True)
