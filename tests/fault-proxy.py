#!/usr/bin/env python3
"""An HTTP proxy in front of a real registry that injects faults, for the
fault-injection tests (tests/it/faults.rs).

    fault-proxy.py UPSTREAM_HOST:PORT RULES_JSON LOG_FILE

Listens on 127.0.0.1 (a free port, printed as the first line of stdout)
and handles one request per connection (answers carry "Connection:
close"). Each request is logged to LOG_FILE as "METHOD PATH". The first
rule whose "match" (a regular expression) matches "METHOD PATH" and whose
"times" (default: always) is not used up decides what happens:

  {"action": "status", "code": 503, "headers": {...}, "body": "..."}
  {"action": "drip", "delay": 3}        upstream's answer, one byte per delay s
  {"action": "stall", "delay": 75}      wait, then forward
  {"action": "truncate"}                upstream's answer, body cut in half
  {"action": "reset"}                   half the body, then a TCP reset
  {"action": "pages"}                   a tag list whose Link always points on
  {"action": "huge", "size": N}         200 with an N-byte JSON-ish body
  {"action": "replace", "body": "..."}  upstream's status and headers, this body

Without a matching rule the request is forwarded unchanged. Exits on
SIGTERM or SIGINT.
"""

import asyncio
import json
import re
import signal
import socket
import struct
import sys

upstream_host, upstream_port = sys.argv[1].rsplit(":", 1)
rules = json.load(open(sys.argv[2]))
for r in rules:
    r["re"] = re.compile(r["match"])
log = open(sys.argv[3], "a", buffering=1)
page = 0


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return method, path, headers, head


async def forward(method, path, headers, body):
    """The upstream's answer: status line + headers (bytes), body (bytes)."""
    r, w = await asyncio.open_connection(upstream_host, int(upstream_port))
    lines = [f"{method} {path} HTTP/1.1"]
    for k, v in headers.items():
        if k not in ("connection", "keep-alive"):
            lines.append(f"{k}: {v}")
    lines.append("connection: close")
    w.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await w.drain()
    data = await r.read()
    w.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def respond(code, headers, body):
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
              500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}.get(code, "Status")
    out = [f"HTTP/1.1 {code} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
    out += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(out) + "\r\n\r\n").encode() + body


def with_close(head):
    lines = [l for l in head.split(b"\r\n") if not l.lower().startswith(b"connection:")]
    return b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n"


async def handle(reader, writer):
    global page
    try:
        method, path, headers, _ = await read_head(reader)
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        log.write(f"{method} {path}\n")
        rule = None
        for r in rules:
            if r["re"].search(f"{method} {path}") and r.get("times", -1) != 0:
                if r.get("times", -1) > 0:
                    r["times"] -= 1
                rule = r
                break
        action = rule["action"] if rule else "forward"
        if action == "status":
            writer.write(respond(rule["code"], rule.get("headers", {}), rule.get("body", "").encode()))
        elif action == "pages":
            page += 1
            name = path.split("/v2/", 1)[1].split("/tags/list", 1)[0]
            tags = json.dumps({"name": name, "tags": [f"v0.0.{page}-p{i}" for i in range(50)]}).encode()
            writer.write(respond(200, {"Content-Type": "application/json",
                                       "Link": f'</v2/{name}/tags/list?n=50&last=p{page}>; rel="next"'}, tags))
        elif action == "huge":
            size = rule["size"]
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode())
            chunk = b" " * 65536
            sent = 0
            while sent < size:
                n = min(len(chunk), size - sent)
                writer.write(chunk[:n])
                await writer.drain()
                sent += n
        else:
            if action == "stall":
                await asyncio.sleep(rule["delay"])
            head, rest = await forward(method, path, headers, body)
            if action == "drip":
                writer.write(with_close(head))
                for i in range(len(rest)):
                    await writer.drain()
                    await asyncio.sleep(rule["delay"])
                    writer.write(rest[i:i + 1])
            elif action in ("truncate", "reset"):
                writer.write(with_close(head) + rest[: len(rest) // 2])
                await writer.drain()
                if action == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif action == "replace":
                new = rule["body"].encode()
                lines = [l for l in head.split(b"\r\n") if not l.lower().startswith((b"content-length:", b"docker-content-digest:"))]
                writer.write(with_close(b"\r\n".join(lines) + f"\r\nContent-Length: {len(new)}".encode()) + new)
            else:
                writer.write(with_close(head) + rest)
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


asyncio.run(main())
