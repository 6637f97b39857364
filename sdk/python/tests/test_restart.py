"""The relay dies (SIGKILL) or drains (SIGTERM, close 1012) and comes back on
the same port and data dir: the SDK reconnects and no accepted event is lost.
This module runs its own relay, since it kills it."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Iterator, List

import pytest
from helpers import Recorder, capture_logger, post, run, until, until_status
from relay_process import RelayProcess

from powerlobster_webhook import WebhookEvent, WebhookRelay


@pytest.fixture
def own_relay() -> Iterator[RelayProcess]:
    with RelayProcess() as proc:
        yield proc


@pytest.mark.parametrize("transport", ["ws", "sse", "poll"])
def test_sigkill_and_restart_reconnects_and_loses_nothing(own_relay: RelayProcess, transport: str) -> None:
    relay = own_relay
    agent = relay.create_agent("restart")

    async def scenario() -> None:
        logger, logs = capture_logger(f"test.restart.{transport}")
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], logger=logger, transport=transport)
        rec = Recorder(client)
        handled: Counter[str] = Counter()
        blocked = asyncio.Event()
        release = asyncio.Event()

        @client.on("webhook")
        async def handle(event: WebhookEvent) -> None:
            if event.payload.get("block") and handled[event.id] == 0:
                blocked.set()
                await release.wait()  # still running when the relay dies
            handled[event.id] += 1

        await client.connect()
        accepted: List[str] = []
        for i in range(5):
            accepted.append(await post(relay, agent["webhook_url"], json.dumps({"type": "before", "i": i}).encode()))
        await until(lambda: all(handled[i] == 1 for i in accepted), what="the first events")
        for i in range(5):
            await until_status(relay, agent["api_key"], accepted[i], "delivered")

        # One handler is in flight when the relay dies: its ack cannot be sent.
        in_flight = await post(relay, agent["webhook_url"], b'{"type":"slow","block":true}')
        accepted.append(in_flight)
        await asyncio.wait_for(blocked.wait(), 10)

        relay.kill()
        await until(lambda: len(rec.of("disconnected")) == 1, what="disconnected")
        gone = rec.of("disconnected")[0]
        assert gone.will_reconnect is True and gone.code == 1006
        release.set()  # finishes while disconnected: remembered as handled
        await until(lambda: handled[in_flight] == 1, what="the in-flight handler")

        relay.restart_same_port()
        await until(lambda: len(rec.of("connected")) == 2, timeout=20, what="connected again")
        assert rec.of("connected")[1].transport == transport
        reconnected_at = time.monotonic()
        assert relay.listening_at is not None
        print(f"\nreconnect after SIGKILL: {(reconnected_at - relay.listening_at) * 1000:.0f} ms from 'relay listening'")
        assert len(rec.of("reconnecting")) >= 1
        names = rec.names()
        first_gone = names.index("disconnected")
        assert names[first_gone:first_gone + 2] == ["disconnected", "reconnecting"]
        assert names[-1] == "connected"

        for i in range(10):
            accepted.append(await post(relay, agent["webhook_url"], json.dumps({"type": "after", "i": i}).encode()))
        for event_id in accepted:
            await until_status(relay, agent["api_key"], event_id, "delivered", timeout=20)
        await until(lambda: all(handled[i] >= 1 for i in accepted), what="every accepted event")
        assert set(handled) == set(accepted)
        # The event whose ack died with the relay came back (attempt 2) and
        # was acked without running the handler again.
        assert handled[in_flight] == 1
        data = await until_status(relay, agent["api_key"], in_flight, "delivered", min_attempts=2)
        assert data["attempts"] >= 2
        assert any("handled already" in m for m in logs.messages)
        await client.close()

    run(scenario(), timeout=90)


def test_sigterm_drain_closes_with_1012_and_the_sdk_comes_back_quickly(own_relay: RelayProcess) -> None:
    relay = own_relay
    agent = relay.create_agent("drain")

    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"])
        rec = Recorder(client)
        got: List[str] = []
        client.on("webhook", lambda e: got.append(e.id))
        await client.connect()
        await asyncio.to_thread(relay.stop)  # SIGTERM: sessions closed with 1012
        await until(lambda: len(rec.of("disconnected")) == 1, what="disconnected")
        gone = rec.of("disconnected")[0]
        assert gone.code == 1012 and gone.will_reconnect
        relay.restart_same_port()
        await until(lambda: len(rec.of("connected")) == 2, timeout=20, what="connected again")
        # after a 1012, retries stay short (each within 0.5 s)
        assert all(r.delay <= 0.5 for r in rec.of("reconnecting"))
        event_id = await post(relay, agent["webhook_url"], b'{"type":"after.drain"}')
        await until(lambda: got == [event_id], what="an event after the restart")
        await client.close()

    run(scenario(), timeout=60)


