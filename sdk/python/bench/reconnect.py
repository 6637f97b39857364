"""Reconnect time of the Python SDK after the relay is SIGKILLed and restarted.

    python bench/reconnect.py [--rounds 5] [--hold 10.5]

Starts its own relay (env LOBSTER_RELAY_BIN, else ../../target/debug/lobster-relay),
connects one WebhookRelay, then per round: SIGKILL the relay, wait for the
SDK's `disconnected`, start the relay again on the same port and data dir,
and time from the new process's "relay listening" log line to the SDK's
`connected` (the "reconnect time"). Also prints kill -> connected, which
includes the relay's own start-up.

Between rounds the connection is held for --hold seconds (default 10.5): the
SDK, like `lobster-relay listen`, resets its backoff only after a connection
stayed up 10 s, so back-to-back kills (--hold 0) measure a growing backoff.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "src"))

from relay_process import RelayProcess  # noqa: E402

from powerlobster_webhook import ConnectedInfo, DisconnectedInfo, WebhookRelay  # noqa: E402


async def measure(relay: RelayProcess, rounds: int, hold: float) -> None:
    agent = relay.create_agent("reconnect-bench")
    quiet = logging.getLogger("reconnect-bench")
    quiet.setLevel(logging.ERROR)
    client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], logger=quiet)
    connected = asyncio.Event()
    disconnected = asyncio.Event()
    connected_at = 0.0

    def on_connected(info: ConnectedInfo) -> None:
        nonlocal connected_at
        connected_at = time.monotonic()
        connected.set()

    def on_disconnected(info: DisconnectedInfo) -> None:
        disconnected.set()

    client.on("connected", on_connected)
    client.on("disconnected", on_disconnected)
    client.on("webhook", lambda e: None)
    await client.connect()
    after_listening: List[float] = []
    after_kill: List[float] = []
    for i in range(rounds):
        if hold > 0:
            await asyncio.sleep(hold)  # let the connection count as stable
        connected.clear()
        disconnected.clear()
        killed_at = time.monotonic()
        relay.kill()
        await asyncio.wait_for(disconnected.wait(), 30)
        relay.spawn(relay.port)
        await asyncio.to_thread(relay.wait_listening, 30)
        await asyncio.wait_for(connected.wait(), 30)
        assert relay.listening_at is not None
        after_listening.append((connected_at - relay.listening_at) * 1000)
        after_kill.append((connected_at - killed_at) * 1000)
        print(f"round {i + 1}: listening -> connected {after_listening[-1]:.0f} ms; kill -> connected {after_kill[-1]:.0f} ms")
    await client.close()
    print(
        f"reconnect after SIGKILL ('relay listening' -> connected), {rounds} rounds: "
        f"median {statistics.median(after_listening):.0f} ms, max {max(after_listening):.0f} ms; "
        f"kill -> connected median {statistics.median(after_kill):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hold", type=float, default=10.5, help="seconds each connection stays up before the kill")
    args = parser.parse_args()
    with RelayProcess() as relay:
        asyncio.run(measure(relay, args.rounds, args.hold))


if __name__ == "__main__":
    main()
