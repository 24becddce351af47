#!/usr/bin/env python3
"""Delivery against kubectl (`make bench`): a bundle release of 200 objects
(4 modules x 25 components, each a Deployment and a Service) applied and
diffed by opm and by kubectl (server-side, the same YAML that
`opm bundle build` writes) on one real etcd + kube-apiserver on loopback.

Per pair, alternating who goes first: a first apply into fresh namespaces
(creates), an apply again (nothing changes), and a diff of the unchanged
release. opm runs with --no-wait (kubectl does not wait) and its render
answered from its result cache, filled before each pair (kubectl is given
the rendered YAML too); what the render itself costs (CUE evaluating the
core model over 100 components) is printed on its own line. Prints medians
and opm/kubectl; asserts nothing about speed.

    bench-deliver.py OPM KUBECTL ETCD KUBE_APISERVER   (BENCH_DELIVER_PAIRS, default 9)
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import ssl

opm, kubectl, etcd, apiserver = sys.argv[1:5]
pairs = int(os.environ.get("BENCH_DELIVER_PAIRS", "9"))
work = tempfile.mkdtemp(prefix="opm-bench-deliver-")
env = dict(os.environ, CUE_REGISTRY="none", NO_COLOR="1", OPM_CACHE_DIR=f"{work}/opm-cache", CUE_CACHE_DIR=f"{work}/cue-cache")
for proxy in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy"]:
    env.pop(proxy, None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, cwd=None, ok=(0,)):
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    if out.returncode not in ok:
        sys.exit(f"bench-deliver: {' '.join(args)} exited {out.returncode}: {out.stderr[-2000:]}")
    return out


def timed(args, cwd=None, ok=(0,)):
    start = time.perf_counter()
    run(args, cwd, ok)
    return (time.perf_counter() - start) * 1000


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


procs = []
# Stopped by a signal, the servers are stopped too (the finally below).
signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench-deliver: stopped"))
try:
    # A throwaway CA, a serving certificate for 127.0.0.1, service-account keys, one admin token.
    pki = f"{work}/pki"
    os.makedirs(pki)
    ossl = lambda *a: run(["openssl", *a], cwd=pki)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench-ca")
    write(f"{pki}/san.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    ossl("genrsa", "-out", "sa.key", "2048")
    ossl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    token = os.urandom(16).hex()
    write(f"{pki}/tokens.csv", f'{token},admin,admin,"system:masters"\n')
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    logs = open(f"{work}/servers.log", "w")
    procs.append(subprocess.Popen([etcd, "--data-dir", f"{work}/etcd", "--name", "default",
        "--listen-client-urls", f"http://127.0.0.1:{etcd_port}", "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer_port}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
        "--initial-cluster", f"default=http://127.0.0.1:{peer_port}", "--unsafe-no-fsync", "--log-level", "warn"],
        stdout=logs, stderr=logs, env=env))
    procs.append(subprocess.Popen([apiserver, "--etcd-servers", f"http://127.0.0.1:{etcd_port}", "--secure-port", str(api_port),
        "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--endpoint-reconciler-type=none",
        "--service-cluster-ip-range", "10.96.0.0/16", "--tls-cert-file", f"{pki}/server.pem", "--tls-private-key-file", f"{pki}/server.key",
        "--token-auth-file", f"{pki}/tokens.csv", "--authorization-mode", "RBAC", "--service-account-issuer", "https://kubernetes.default.svc",
        "--service-account-key-file", f"{pki}/sa.pub", "--service-account-signing-key-file", f"{pki}/sa.key",
        "--enable-priority-and-fairness=false", "--cert-dir", f"{work}/certs"], stdout=logs, stderr=logs, env=env))
    server = f"https://127.0.0.1:{api_port}"
    tls = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    deadline = time.time() + 90
    while True:
        try:
            req = urllib.request.Request(f"{server}/readyz", headers={"Authorization": f"Bearer {token}"})
            if urllib.request.urlopen(req, context=tls, timeout=2).status == 200:
                break
        except Exception:
            pass
        if time.time() > deadline:
            sys.exit(f"bench-deliver: the apiserver did not become ready; see {work}/servers.log")
        time.sleep(0.2)
    kubeconfig = f"{work}/kubeconfig"
    write(kubeconfig, f"""apiVersion: v1
kind: Config
clusters: [{{name: bench, cluster: {{server: "{server}", certificate-authority: "{pki}/ca.pem"}}}}]
users: [{{name: admin, user: {{token: "{token}"}}}}]
contexts: [{{name: bench, context: {{cluster: bench, user: admin}}}}]
current-context: bench
""")
    env["KUBECONFIG"] = kubeconfig

    # The bundle: 4 modules of 25 components, each a Deployment and a Service.
    bundle = f"{work}/fleet"
    write(f"{bundle}/cue.mod/module.cue", 'module: "bench.example/fleet@v0"\nlanguage: version: "v0.17.0"\n')
    modules = "\n".join(f"""		m{m}: core.#Module & {{
			metadata: {{apiVersion: "bench.example/fleet/m{m}@v0", name: "m{m}", version: "0.1.0"}}
			#components: {{for i in list.Range(0, 25, 1) {{
				"svc-{m}-\\(i)": core.#Container & core.#Expose & {{spec: {{
					container: {{image: "nginx:1.27", ports: http: port: 8080}}
					expose: ports: http: port: 80
				}}}}
			}}}}
		}}""" for m in range(4))
    write(f"{bundle}/fleet.cue", f"""package fleet

import (
	"list"
	"opmodel.dev/core@v0"
)

bundle: core.#Bundle & {{
	metadata: {{apiVersion: "bench.example/fleet@v0", name: "fleet"}}
	#spec: {{}}
	values: {{}}
	#modules: {{
{modules}
	}}
}}
""")
    run([opm, "mod", "tidy"], cwd=bundle)
    count = len(json.loads(run([opm, "bundle", "build", "-o", "json", "-n", "probe"], cwd=bundle).stdout))

    renders = []
    rows = {k: ([], []) for k in ["first apply (creates)", "apply again (no change)", "diff (in sync)"]}
    for i in range(pairs):
        ns_opm, ns_kc = f"opm-{i}", f"kc-{i}"
        manifest = f"{work}/kc-{i}.yaml"
        write(manifest, run([opm, "bundle", "build", "-n", ns_kc], cwd=bundle).stdout)
        # What apply renders (the same result-cache key): kept for it.
        renders.append(timed([opm, "bundle", "build", "-o", "json", "-n", ns_opm, "--no-cache"], cwd=bundle))
        run([opm, "bundle", "build", "-o", "json", "-n", ns_opm], cwd=bundle)
        run([kubectl, "create", "namespace", ns_kc])
        kc_apply = [kubectl, "apply", "--server-side", "--field-manager", "kubectl-bench", "-f", manifest]
        kc_diff = [kubectl, "diff", "--server-side", "--field-manager", "kubectl-bench", "-f", manifest]
        opm_apply = [opm, "apply", "--no-wait", "-q", "-n", ns_opm]
        opm_diff = [opm, "diff", "-q", "-n", ns_opm]
        steps = [("first apply (creates)", opm_apply, kc_apply, (0,)), ("apply again (no change)", opm_apply, kc_apply, (0,)), ("diff (in sync)", opm_diff, kc_diff, (0,))]
        for name, o, k, ok in steps:
            order = [(0, o), (1, k)] if i % 2 == 0 else [(1, k), (0, o)]
            for side, args in order:
                rows[name][side].append(timed(args, cwd=bundle, ok=ok))

    print(f"opm apply/diff vs kubectl --server-side: a bundle release of {count} objects, real kube-apiserver on loopback, median of {pairs} alternating pairs")
    print(f"  {'':28} {'opm ms':>9} {'kubectl ms':>11} {'opm/kubectl':>12}")
    for name, (o, k) in rows.items():
        mo, mk = statistics.median(o), statistics.median(k)
        print(f"  {name:28} {mo:9.1f} {mk:11.1f} {mo / mk:12.2f}")
    print(f"  {'render, evaluated (CUE)':28} {statistics.median(renders):9.1f} {'-':>11}   (opm bundle build --no-cache; kubectl reads the YAML)")
finally:
    for p in procs:
        p.kill()
        p.wait()
    shutil.rmtree(work, ignore_errors=True)
