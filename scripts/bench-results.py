#!/usr/bin/env python3
"""The result cache (`make bench`): CI's vet and build over a monorepo of
20 OPM modules, opm against cue, when nothing changed since the last run.

Each module is examples/blog under another name, its core model the one
opm carries (installed into the CUE cache by opm's first run, where cue
then reads it with no registry). One sample is a pass over all 20 modules:
`opm mod vet` against `cue vet -c=false ./...`, and `opm mod build`
against `cue export -e release.objects --out yaml` (the same release,
added as one more file in a copy); opm's first pass evaluates and keeps
its answers, the timed passes answer from them. Then the same with
`--no-cache`, evaluating every time. Medians of alternating samples;
prints figures, asserts nothing about speed.

    bench-results.py CUE OPM        (BENCH_RESULT_RUNS, default 9)
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

cue, opm = sys.argv[1], sys.argv[2]
runs = int(os.environ.get("BENCH_RESULT_RUNS", "9"))
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
work = tempfile.mkdtemp(prefix="opm-bench-results-")
modules = 20


def run(args, cwd, env):
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
    if out.returncode != 0:
        sys.exit(f"bench-results: {' '.join(args)} in {cwd} failed: {out.stderr.decode()}")
    return out


try:
    shutil.copy2(opm, f"{work}/opm")
    opm = f"{work}/opm"
    env = dict(os.environ, CUE_CACHE_DIR=f"{work}/cue-cache", OPM_CACHE_DIR=f"{work}/opm-cache", OPM_STATE_DIR=f"{work}/state",
               OPM_CONFIG=f"{work}/none.yaml", CUE_REGISTRY="none", HOME=work, NO_COLOR="1")
    open(f"{work}/none.yaml", "w").close()
    blog = open(f"{repo}/examples/blog/blog.cue").read()
    dirs, cue_dirs = [], []
    for i in range(modules):
        name = f"svc{i:02d}"
        for d, release in ((f"{work}/mono/{name}", False), (f"{work}/mono-cue/{name}", True)):
            os.makedirs(f"{d}/cue.mod")
            with open(f"{d}/cue.mod/module.cue", "w") as f:
                f.write(f'module: "bench.test/{name}@v0"\nlanguage: {{\n\tversion: "v0.17.0"\n}}\nsource: {{\n\tkind: "self"\n}}\n'
                        'deps: {\n\t"opmodel.dev/core@v0": {\n\t\tv: "v0.1.0"\n\t}\n}\n')
            with open(f"{d}/{name}.cue", "w") as f:
                f.write(re.sub(r"package blog", f"package {name}", blog).replace('name:        "blog"', f'name:        "{name}"'))
            if release:
                with open(f"{d}/zz_release.cue", "w") as f:
                    f.write(f'package {name}\n\nimport core "opmodel.dev/core@v0"\n\n'
                            f'release: core.#ModuleRelease & {{#module: module, metadata: {{name: "{name}", namespace: "default"}}}}\n')
        dirs.append(f"{work}/mono/{name}")
        cue_dirs.append(f"{work}/mono-cue/{name}")

    def each(cmd, where):
        return lambda: [run(cmd, d, env) for d in where]

    # opm first: it puts the core model into the CUE cache for cue. Both
    # render the same objects.
    each([opm, "mod", "build"], dirs)()
    count = lambda out, mark: out.stdout.count(mark)
    o = count(run([opm, "mod", "build"], dirs[0], env), b"\nkind:")
    c = count(run([cue, "export", "-e", "release.objects", "--out", "yaml"], cue_dirs[0], env), b"\n  kind:")
    if o == 0 or o != c:
        sys.exit(f"bench-results: opm renders {o} objects, cue {c}")

    def compare(what, a, b):
        a(), b()  # warm-up: opm keeps its answers here
        ta, tb = [], []
        for _ in range(runs):
            for f, t in ((a, ta), (b, tb)):
                t0 = time.perf_counter()
                f()
                t.append((time.perf_counter() - t0) * 1000)
        ma, mb = statistics.median(ta), statistics.median(tb)
        print(f"  {what}: opm {ma:.0f} ms  cue {mb:.0f} ms  opm/cue {ma / mb:.2f}")

    print(f"result cache: {modules} OPM modules, nothing changed since the last run; one pass over all, median of {runs} alternating passes")
    compare("vet, answered from the result cache", each([opm, "mod", "vet"], dirs), each([cue, "vet", "-c=false", "./..."], dirs))
    compare("build, answered from the result cache", each([opm, "mod", "build"], dirs), each([cue, "export", "-e", "release.objects", "--out", "yaml"], cue_dirs))
    compare("vet --no-cache (evaluated)", each([opm, "mod", "vet", "--no-cache"], dirs), each([cue, "vet", "-c=false", "./..."], dirs))
    compare("build --no-cache (evaluated)", each([opm, "mod", "build", "--no-cache"], dirs), each([cue, "export", "-e", "release.objects", "--out", "yaml"], cue_dirs))
finally:
    subprocess.run(["chmod", "-R", "u+w", work])
    shutil.rmtree(work, ignore_errors=True)
