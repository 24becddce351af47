#!/usr/bin/env python3
"""A TCP proxy that adds latency to requests, for scripts/bench.sh.

    latency-proxy.py LISTEN_PORT TARGET_HOST:PORT DELAY_MS [COUNT_FILE]

Listens on 127.0.0.1:LISTEN_PORT and forwards every connection to
TARGET_HOST:PORT, bytes both ways. Each chunk going from the client to the
server arrives DELAY_MS after it was sent (in order, per connection, but
not waiting for the chunks before it), so every HTTP request pays the
delay once, whether it has a connection of its own or shares one (HTTP/2),
and so does each flight of a TLS handshake; responses pass through at once.

With COUNT_FILE, it counts the connections that carry data and the
HTTP/1.x request lines (GET, HEAD, ...) it forwards, and writes them there
on exit as "connections N", "requests N", "pings N" (requests for /v2/,
the OCI API's version check) and "rounds N" lines, then one "METHOD N"
line per method. Rounds are the sequential round trips of the run: a
request sent more than 0.8 DELAY_MS after the one before it waited for an
answer, so it starts a new round (requests sent together are one).
Exits on SIGTERM or SIGINT.
"""

import asyncio
import re
import signal
import sys
from collections import Counter

REQUEST_LINE = re.compile(
    rb"(?:^|\r\n)(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (\S+) HTTP/1\.[01]\r\n"
)

counts = Counter()
sent_at = []


async def pump(reader, writer, delay, upstream):
    """Copies reader to writer. Upstream, each chunk reaches the server
    DELAY after it left the client, in order, without waiting for the
    chunks before it: latency, not a throttle (requests multiplexed on one
    connection each pay the delay once)."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def forward():
        while True:
            due, data = await queue.get()
            if data is None:
                return
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            writer.write(data)
            await writer.drain()

    forwarding = asyncio.create_task(forward())
    sent = False
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if upstream:
                if not sent:  # connections that only probe the port don't count
                    counts["connections"] += 1
                    sent = True
                for m in REQUEST_LINE.finditer(data):
                    sent_at.append(loop.time())
                    counts["requests"] += 1
                    counts[m.group(1).decode()] += 1
                    if m.group(2) == b"/v2/":
                        counts["pings"] += 1
            queue.put_nowait((loop.time() + (delay if upstream else 0), data))
        queue.put_nowait((0, None))
        await forwarding
    except (ConnectionError, asyncio.CancelledError):
        forwarding.cancel()
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def handle(client_r, client_w, host, port, delay):
    try:
        server_r, server_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        return
    try:
        await asyncio.gather(
            pump(client_r, server_w, delay, True),
            pump(server_r, client_w, 0, False),
        )
    except asyncio.CancelledError:  # the proxy is stopping
        pass
    for w in (client_w, server_w):
        w.close()


async def main():
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: " + __doc__.strip().splitlines()[2].strip())
    listen_port = int(sys.argv[1])
    host, _, port = sys.argv[2].rpartition(":")
    delay = int(sys.argv[3]) / 1000
    count_file = sys.argv[4] if len(sys.argv) == 5 else None

    server = await asyncio.start_server(
        lambda r, w: handle(r, w, host, int(port), delay), "127.0.0.1", listen_port
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # No wait_closed(): since Python 3.12 it waits for the clients to hang up.
    server.close()
    if count_file:
        with open(count_file, "w") as f:
            f.write(f"connections {counts['connections']}\n")
            f.write(f"requests {counts['requests']}\n")
            f.write(f"pings {counts['pings']}\n")
            times = sorted(sent_at)
            rounds = sum(1 for a, b in zip([None] + times, times) if a is None or b - a > 0.8 * delay)
            f.write(f"rounds {rounds}\n")
            for k, v in sorted(counts.items()):
                if k not in ("connections", "requests", "pings", "rounds"):
                    f.write(f"{k} {v}\n")


if __name__ == "__main__":
    asyncio.run(main())
