#!/usr/bin/env python3
"""A Docker token server for the tests: the bearer-token protocol GHCR,
Docker Hub and Harbor speak, in front of a real registry configured with
`auth: token` (realm, service, issuer, rootcertbundle).

    token-server.py CERT_PEM KEY_PEM USER PASSWORD EXPIRES_S LOG_FILE [first-expired]

Listens on 127.0.0.1 (a free port, printed as the first line of stdout).
GET /token?service=S&scope=repository:NAME:ACTIONS[&scope=...] answers
with an RS256 JWT whose header carries the certificate (x5c), signed with
KEY_PEM through the openssl CLI. Basic credentials USER:PASSWORD get the
actions asked for (pull, push); anonymous requests get pull only; wrong
credentials get 401. Tokens expire after EXPIRES_S seconds; with
first-expired, the first token for each (client, scope) has expired
already (beyond the registry's leeway), as a token that runs out during a
long run. Each token is logged to LOG_FILE as "token USER-or-anonymous
SCOPE..." lines.
"""

import base64
import http.server
import json
import os
import subprocess
import sys
import time
import urllib.parse

cert_pem, key_pem, user, password, expires, log_path = sys.argv[1:7]
first_expired = sys.argv[7:] == ["first-expired"]
issued = set()
expires = int(expires)
cert_der = "".join(l for l in open(cert_pem).read().splitlines() if not l.startswith("-----"))
log = open(log_path, "a", buffering=1)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(message):
    out = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_pem], input=message, capture_output=True, timeout=10, check=True)
    return out.stdout


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path != "/token":
            self.send_error(404)
            return
        query = urllib.parse.parse_qs(url.query)
        who = "anonymous"
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            given = base64.b64decode(header[6:]).decode(errors="replace")
            if given != f"{user}:{password}":
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"wrong credentials"}]}'
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            who = user
        access = []
        for scope in query.get("scope", []):
            parts = scope.split(":")
            if len(parts) != 3:
                continue
            kind, name, actions = parts
            wanted = [a for a in actions.split(",") if a in ("pull", "push")]
            granted = wanted if who != "anonymous" else [a for a in wanted if a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        key = (who, tuple(query.get("scope", [])))
        if first_expired and key not in issued:
            # Expired two minutes ago: past any leeway for clock skew.
            now -= 120 + expires
        issued.add(key)
        head = {"typ": "JWT", "alg": "RS256", "x5c": [cert_der]}
        claims = {
            "iss": "opm-test-issuer",
            "sub": who if who != "anonymous" else "",
            "aud": query.get("service", [""])[0],
            "exp": now + expires,
            "nbf": now - 10,
            "iat": now,
            "jti": os.urandom(8).hex(),
            "access": access,
        }
        signing_input = (b64url(json.dumps(head).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        token = signing_input.decode() + "." + b64url(sign(signing_input))
        log.write("token " + who + " " + " ".join(query.get("scope", [])) + "\n")
        body = json.dumps({"token": token, "access_token": token, "expires_in": expires}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
