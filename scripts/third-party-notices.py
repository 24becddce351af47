#!/usr/bin/env python3
"""The licence notices of everything the opm binary links, in one file.

Rust: every crate opm depends on for the target (normal dependencies,
transitively: build scripts, proc macros and dev-dependencies are not
linked), from `cargo metadata`. Go: every module go-shim's packages come
from, from `go list -deps`, and the Go runtime and standard library. Each
entry is its name, version, declared licence and the licence files it
ships (LICENSE*, LICENCE*, COPYING*, NOTICE*). Works offline once a build
has fetched the sources.

    third-party-notices.py HOST_TRIPLE > THIRD-PARTY-NOTICES
"""

import glob
import json
import os
import subprocess
import sys

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
host = sys.argv[1]
LICENCE_FILES = ("LICENSE*", "LICENCE*", "COPYING*", "NOTICE*", "license*", "licence*")


def licence_texts(directory):
    seen = []
    for pattern in LICENCE_FILES:
        for path in sorted(glob.glob(os.path.join(directory, pattern))):
            if os.path.isfile(path) and path not in seen:
                seen.append(path)
    return [(os.path.basename(p), open(p, encoding="utf-8", errors="replace").read()) for p in seen]


def rust_crates():
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform", host],
        cwd=repo, check=True, capture_output=True, text=True).stdout)
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = meta["resolve"]["root"]
    linked, todo = set(), [root]
    while todo:
        node = nodes[todo.pop()]
        for dep in node["deps"]:
            proc_macro = any("proc-macro" in t["kind"] for t in packages[dep["pkg"]]["targets"])
            if any(k["kind"] is None for k in dep["dep_kinds"]) and not proc_macro and dep["pkg"] not in linked:
                linked.add(dep["pkg"])
                todo.append(dep["pkg"])
    for pid in sorted(linked, key=lambda i: (packages[i]["name"], packages[i]["version"])):
        p = packages[pid]
        yield p["name"], p["version"], p.get("license") or "see its licence file", os.path.dirname(p["manifest_path"])


def go_modules():
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod")
    out = subprocess.run(["go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}\t{{.Version}}\t{{.Dir}}{{end}}", "."],
                         cwd=os.path.join(repo, "go-shim"), check=True, capture_output=True, text=True, env=env).stdout
    seen = set()
    for line in sorted(set(out.splitlines())):
        path, version, directory = line.split("\t")
        if version and path not in seen:  # the main module has no version
            seen.add(path)
            yield path, version, "see its licence file", directory
    goroot = subprocess.run(["go", "env", "GOROOT"], check=True, capture_output=True, text=True, env=env).stdout.strip()
    goversion = subprocess.run(["go", "env", "GOVERSION"], check=True, capture_output=True, text=True, env=env).stdout.strip()
    yield "Go runtime and standard library", goversion, "BSD-3-Clause", goroot


print("Third-party licence notices for opm")
print("===================================")
print()
print("The opm binary links the Rust crates and Go modules below. Each entry")
print("gives its name, version, declared licence and the licence files it ships.")
for section, entries in (("Rust crates", rust_crates()), ("Go modules", go_modules())):
    print()
    print(f"## {section}")
    for name, version, licence, directory in entries:
        print()
        print("-" * 78)
        print(f"{name} {version}: {licence}")
        texts = licence_texts(directory)
        if not texts:
            print("(the package ships no licence file; the licence named above applies)")
        for file, text in texts:
            print()
            print(f"--- {file}")
            print(text.rstrip())
