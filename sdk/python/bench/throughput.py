"""How many events/s one Python SDK process handles with an empty handler.

    python bench/throughput.py [-n 3000] [--connections 32] [--max-concurrency 10]

Starts its own relay (env LOBSTER_RELAY_BIN, else ../../target/debug/lobster-relay)
on port 0 with a temp data dir, creates an agent, connects one WebhookRelay
with an empty async handler, and measures two things:

  live:    N signed webhooks posted concurrently (a separate poster process,
           keep-alive HTTP/1.1 connections) while the SDK is connected; from
           the first post to the last event handled (and acked).
  backlog: N webhooks queued while the SDK is offline, then connect(); from
           connect() to the last event handled. This isolates delivery +
           handling from ingest.

Everything runs on this machine; the figure depends on it (the relay, the
poster and the SDK share its cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "src"))

from relay_process import RelayProcess  # noqa: E402

from powerlobster_webhook import WebhookEvent, WebhookRelay  # noqa: E402


# ---------------------------------------------------------------------------
# Poster (runs in a child process: `throughput.py --post URL SECRET N CONNS`)


def build_requests(url: str, secret: str, n: int, tag: str) -> Tuple[str, int, List[bytes]]:
    import base64
    import hashlib
    import hmac

    parts = urlsplit(url)
    key = base64.b64decode(secret[len("whsec_") :])
    ts = str(int(time.time()))
    out = []
    for i in range(n):
        body = json.dumps({"type": "bench.event", "i": i, "tag": tag}).encode()
        msg_id = f"msg_{tag}_{i}"
        sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
        head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nwebhook-id: {msg_id}\r\nwebhook-timestamp: {ts}\r\n"
            f"webhook-signature: v1,{sig}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return parts.hostname or "127.0.0.1", parts.port or 80, out


async def post_all(host: str, port: int, requests: List[bytes], conns: int) -> List[int]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    statuses: List[int] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                try:
                    req = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                statuses.append(status)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return statuses


def poster_main(argv: List[str]) -> None:
    url, secret, n, conns, tag = argv[0], argv[1], int(argv[2]), int(argv[3]), argv[4]
    host, port, requests = build_requests(url, secret, n, tag)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()  # go
    started = time.monotonic()
    statuses = asyncio.run(post_all(host, port, requests, conns))
    elapsed = time.monotonic() - started
    bad = [s for s in statuses if s != 202]
    sys.stdout.write(json.dumps({"posted": len(statuses), "bad": len(bad), "seconds": elapsed}) + "\n")
    sys.stdout.flush()


class Poster:
    """A child process with the requests signed in advance; go() starts posting."""

    def __init__(self, url: str, secret: str, n: int, conns: int, tag: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--post", url, secret, str(n), str(conns), tag],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the poster did not start")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self) -> dict:  # type: ignore[type-arg]
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.proc.wait(60)
        return json.loads(line)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------


async def measure(relay: RelayProcess, n: int, conns: int, max_concurrency: int, transport: str) -> None:
    agent = relay.create_agent("bench")
    count = 0
    done = asyncio.Event()
    target = n

    async def handle(event: WebhookEvent) -> None:
        nonlocal count
        count += 1
        if count >= target:
            done.set()

    # live
    client = WebhookRelay(
        relay_url=relay.url, api_key=agent["api_key"], max_concurrency=max_concurrency, proxy=False, transport=transport
    )
    client.on("webhook", handle)
    await client.connect()
    poster = await asyncio.to_thread(Poster, agent["webhook_url"], relay.secret, n, conns, "live")
    started = time.monotonic()
    poster.go()
    await asyncio.wait_for(done.wait(), 300)
    live = time.monotonic() - started
    posted = await asyncio.to_thread(poster.result)
    assert posted["bad"] == 0, posted
    await client.close()
    print(
        f"live:    {n} events posted over {conns} connections and handled in {live:.2f} s "
        f"-> {n / live:,.0f} events/s (posting alone took {posted['seconds']:.2f} s, "
        f"{n / posted['seconds']:,.0f} posts/s)"
    )

    # backlog
    count = 0
    done.clear()
    poster = await asyncio.to_thread(Poster, agent["webhook_url"], relay.secret, n, conns, "backlog")
    poster.go()
    posted = await asyncio.to_thread(poster.result)
    assert posted["bad"] == 0, posted
    client = WebhookRelay(
        relay_url=relay.url, api_key=agent["api_key"], max_concurrency=max_concurrency, proxy=False, transport=transport
    )
    client.on("webhook", handle)
    started = time.monotonic()
    await client.connect()
    await asyncio.wait_for(done.wait(), 300)
    backlog = time.monotonic() - started
    await client.close()
    print(f"backlog: {n} queued events delivered and handled in {backlog:.2f} s -> {n / backlog:,.0f} events/s")

    status, me = relay.agent_request("GET", "/api/v1/agent/me", agent["api_key"])
    print(f"relay afterwards: pending_events={me.get('pending_events')} (0 = every event acked)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--post":
        poster_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=3000, help="webhooks per measurement (default 3000)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent HTTP connections posting")
    parser.add_argument("--max-concurrency", type=int, default=10, help="the SDK's max_concurrency")
    parser.add_argument("--transport", default="ws", choices=["ws", "sse", "poll"], help="the SDK's transport (default ws)")
    args = parser.parse_args()
    import platform

    print(
        f"python {platform.python_version()}, {os.cpu_count()} cpus, relay {os.environ.get('LOBSTER_RELAY_BIN') or 'target/debug'}, "
        f"transport {args.transport}"
    )
    with RelayProcess(["--agent-rate-limit", "1000000/s"]) as relay:
        asyncio.run(measure(relay, args.n, args.connections, args.max_concurrency, args.transport))


if __name__ == "__main__":
    main()
