"""Scenarios against a real lobster-relay (one per session; one agent per test)."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from typing import Any, Dict, List

import pytest
from helpers import (
    Recorder,
    capture_logger,
    event_status,
    post,
    run,
    until,
    until_status,
)
from relay_process import RelayProcess

from powerlobster_webhook import (
    AuthenticationError,
    ConnectedInfo,
    ConnectTimeoutError,
    HandlerError,
    RelayConnectionError,
    WaitTimeoutError,
    WebhookEvent,
    WebhookRelay,
)

Agent = Dict[str, Any]


def ws_url(relay: RelayProcess) -> str:
    return relay.url.replace("http://", "ws://")


def test_snippet_receives_a_signed_webhook(relay: RelayProcess, agent: Agent) -> None:
    """The contract's quick start, in Python: payload, exact body, headers."""
    received: List[WebhookEvent] = []
    infos: List[ConnectedInfo] = []

    async def scenario() -> None:
        relay_client = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"])

        @relay_client.on("webhook")
        async def handle(event: WebhookEvent) -> None:
            if event.payload["event"] == "message.received":
                print("New message:", event.payload["data"])
            received.append(event)

        relay_client.on("connected", lambda info: infos.append(info))
        info = await relay_client.connect()
        assert infos == [info]
        assert info.webhook_url == agent["webhook_url"]
        assert (info.agent_id, info.relay_id) == (agent["agent_id"], agent["relay_id"])
        assert info.session_id.startswith("ses_")
        assert relay_client.state == "connected"
        assert relay_client.connected and relay_client.webhook_url == agent["webhook_url"]

        body = b'{"event":"message.received","data":{"from":"ada","text":"hi \\u00e9 \xc3\xa9"}}'
        event_id = await post(relay, info.webhook_url, body, extra_headers={"X-Custom": "yes"})
        await until(lambda: len(received) == 1, what="the webhook")
        event = received[0]
        assert event.id == event_id
        assert event.type == "message.received"
        assert event.attempt == 1 and event.replay is False
        assert event.body == body and event.raw_body == body
        assert event.payload == {"event": "message.received", "data": {"from": "ada", "text": "hi é é"}}
        assert event.headers["x-custom"] == "yes" and event.headers["Content-Type"] == "application/json"
        assert event.received_at.tzinfo is not None
        assert abs(time.time() - event.received_at.timestamp()) < 60
        event.verify_signature(relay.secret)  # the sender's Standard Webhooks signature, re-checked
        await until_status(relay, agent["api_key"], event_id, "delivered")
        await relay_client.close()
        assert not relay_client.connected

    run(scenario())


def test_http_url_async_with_and_wait_without_handlers(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        async with WebhookRelay(relay_url=relay.url + "/", api_key=agent["api_key"]) as client:
            event_id = await post(relay, agent["webhook_url"], b'{"type":"order.paid","n":1}')
            event = await client.wait(timeout=10)
            assert event.id == event_id and event.type == "order.paid" and event.payload == {"type": "order.paid", "n": 1}
            await until_status(relay, agent["api_key"], event_id, "delivered")

    run(scenario())


def test_raising_handler_is_nacked_and_redelivered_with_attempt_2(relay: RelayProcess, agent: Agent) -> None:
    attempts: List[int] = []

    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"])
        rec = Recorder(client)

        @client.on("webhook")
        async def handle(event: WebhookEvent) -> None:
            attempts.append(event.attempt)
            if event.attempt == 1:
                raise RuntimeError("boom: database unavailable")

        await client.connect()
        event_id = await post(relay, agent["webhook_url"], b'{"type":"job.run"}')
        await until(lambda: attempts == [1, 2], what="a redelivery")
        (failure,) = rec.of("error")
        assert isinstance(failure, HandlerError) and failure.attempt == 1
        assert isinstance(failure.__cause__, RuntimeError)
        data = await until_status(relay, agent["api_key"], event_id, "delivered")
        history = data["attempt_history"]
        assert history[0]["outcome"] == "nacked" and "boom: database unavailable" in (history[0]["error"] or "")
        assert history[1]["outcome"] == "delivered"
        await client.close()

    run(scenario())


def test_events_sent_while_disconnected_arrive_after_connect(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        ids = [await post(relay, agent["webhook_url"], json.dumps({"type": "offline", "i": i}).encode()) for i in range(5)]
        got: List[str] = []
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], max_concurrency=1)
        client.on("webhook", lambda event: got.append(event.id))
        await client.connect()
        await until(lambda: len(got) == 5, what="the queued events")
        assert got == ids
        await client.close()

    run(scenario())


def test_a_bad_or_revoked_key_fails_connect_without_retrying(relay: RelayProcess) -> None:
    async def scenario() -> None:
        bad = WebhookRelay(relay_url=relay.url, api_key="lrk_this_is_not_a_key")
        rec = Recorder(bad)
        with pytest.raises(AuthenticationError) as info:
            await bad.connect(timeout=10)
        assert info.value.status == 401
        assert rec.of("reconnecting") == [] and rec.of("connected") == []

        agent = relay.create_agent("to-revoke")
        relay.revoke_agent(agent["agent_id"])
        revoked = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"])
        rec = Recorder(revoked)
        started = time.monotonic()
        with pytest.raises(AuthenticationError):
            await revoked.connect()
        assert time.monotonic() - started < 5
        assert rec.of("reconnecting") == []
        with pytest.raises(AuthenticationError):
            await revoked.run_forever()
        assert rec.of("reconnecting") == []

    run(scenario())


def test_revocation_during_a_session_ends_it_without_a_retry_loop(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"])
        rec = Recorder(client)
        client.on("webhook", lambda event: None)
        await client.connect()
        forever = asyncio.ensure_future(client.run_forever())
        await asyncio.to_thread(relay.revoke_agent, agent["agent_id"])
        with pytest.raises(AuthenticationError) as info:
            await asyncio.wait_for(forever, 10)
        assert info.value.close_code == 4003
        (gone,) = rec.of("disconnected")
        assert gone.code == 4003 and gone.will_reconnect is False
        assert rec.of("reconnecting") == []
        assert any(isinstance(e, AuthenticationError) for e in rec.of("error"))
        assert not client.connected
        await client.close()

    run(scenario())


def test_max_concurrency_1_keeps_order(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], max_concurrency=1)
        order: List[int] = []
        running = 0
        most = 0

        @client.on("webhook")
        async def handle(event: WebhookEvent) -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await asyncio.sleep(random.random() * 0.01)  # uneven work, to expose reordering
            order.append(event.payload["i"])
            running -= 1

        await client.connect()
        for i in range(20):
            await post(relay, agent["webhook_url"], json.dumps({"type": "seq", "i": i}).encode())
        await until(lambda: len(order) == 20, what="20 events")
        assert order == list(range(20))
        assert most == 1
        await client.close()

    run(scenario())


def test_max_concurrency_bounds_parallel_handlers(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        ids = [await post(relay, agent["webhook_url"], b'{"type":"par"}') for _ in range(12)]
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], max_concurrency=3)
        running = 0
        most = 0
        done: List[str] = []
        gate = asyncio.Event()

        @client.on("webhook")
        async def handle(event: WebhookEvent) -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            if running == 3:
                gate.set()
            await gate.wait()
            await asyncio.sleep(0)
            running -= 1
            done.append(event.id)

        await client.connect()
        await until(lambda: len(done) == 12, what="12 events")
        assert most == 3 and sorted(done) == sorted(ids)
        await client.close()

    run(scenario())


def test_non_json_body_gives_payload_none_and_exact_bytes(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"])
        got: List[WebhookEvent] = []
        client.on("webhook", got.append)
        await client.connect()
        binary = bytes([0xFF, 0x00, 0xFE, 0x80]) + b"not utf-8 \r\n" + bytes(range(256))
        text = b"plain text, not json\n"
        await post(relay, agent["webhook_url"], binary, content_type="application/octet-stream")
        await post(relay, agent["webhook_url"], text, content_type="text/plain")
        await until(lambda: len(got) == 2, what="2 events")
        by_body = {e.body: e for e in got}
        assert set(by_body) == {binary, text}
        assert by_body[binary].payload is None and by_body[binary].text is None
        assert by_body[text].payload is None and by_body[text].text == text.decode()
        assert by_body[binary].headers["content-type"] == "application/octet-stream"
        assert by_body[binary].type == "unknown"
        by_body[binary].verify_signature(relay.secret)
        await client.close()

    run(scenario())


def test_wait_times_out_then_returns_a_matching_event_acked(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"])
        started = time.monotonic()
        with pytest.raises(WaitTimeoutError) as info:
            await client.wait(timeout=0.5)  # connects by itself
        assert isinstance(info.value, TimeoutError)
        assert 0.45 <= time.monotonic() - started < 5
        assert client.connected

        other = await post(relay, agent["webhook_url"], b'{"type":"user.created"}')
        wanted = await post(relay, agent["webhook_url"], b'{"type":"order.paid"}')
        event = await client.wait(events="order.*", timeout=10)
        assert event.id == wanted
        await until_status(relay, agent["api_key"], wanted, "delivered")
        # the non-matching one was not acked: it is held, then taken by a later wait()
        event = await client.wait(events=["user.*"], timeout=10)
        assert event.id == other
        await until_status(relay, agent["api_key"], other, "delivered")
        await client.close()

    run(scenario())


def test_concurrent_waits_each_get_the_matching_event(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        async with WebhookRelay(relay_url=relay.url, api_key=agent["api_key"]) as client:
            both = asyncio.gather(client.wait(events="a.*", timeout=10), client.wait(timeout=10))
            await until(lambda: len(client._waiters) == 2, what="both waits registered")
            event_id = await post(relay, agent["webhook_url"], b'{"type":"a.b"}')
            first, second = await both
            assert first.id == second.id == event_id
            await until_status(relay, agent["api_key"], event_id, "delivered")

    run(scenario())


def test_events_filter_only_delivers_matching_types(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], events=["order.*", "ping"])
        got: List[str] = []
        client.on("webhook", lambda e: got.append(e.type))
        await client.connect()
        skipped = await post(relay, agent["webhook_url"], b'{"type":"user.created"}')
        await post(relay, agent["webhook_url"], b'{"type":"order.paid"}')
        await post(relay, agent["webhook_url"], b'{"type":"ping"}')
        await post(relay, agent["webhook_url"], b'{"type":"order.refund.created"}')
        await until(lambda: len(got) == 3, what="3 matching events")
        assert sorted(got) == ["order.paid", "order.refund.created", "ping"]
        assert (await event_status(relay, agent["api_key"], skipped))["status"] == "pending"
        await client.close()

    run(scenario())


def test_sync_handler_runs_in_a_thread_and_acks(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"])
        threads: List[str] = []

        @client.on("webhook")
        def handle(event: WebhookEvent) -> None:  # a plain function: may block
            threads.append(threading.current_thread().name)
            time.sleep(0.05)

        await client.connect()
        event_id = await post(relay, agent["webhook_url"], b'{"type":"sync"}')
        await until_status(relay, agent["api_key"], event_id, "delivered")
        assert len(threads) == 1 and threads[0] != threading.main_thread().name
        await client.close()

    run(scenario())


def test_every_handler_must_succeed_before_the_ack(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"])
        calls: List[str] = []
        gate = asyncio.Event()

        @client.on("webhook")
        async def slow(event: WebhookEvent) -> None:
            calls.append(f"slow{event.attempt}")
            if event.attempt == 1:
                await gate.wait()

        @client.on("webhook")
        def failing_once(event: WebhookEvent) -> None:
            calls.append(f"sync{event.attempt}")
            if event.attempt == 1:
                raise ValueError("second handler failed")

        await client.connect()
        event_id = await post(relay, agent["webhook_url"], b'{"type":"multi"}')
        await until(lambda: "slow1" in calls and "sync1" in calls, what="both handlers")
        assert (await event_status(relay, agent["api_key"], event_id))["status"] == "delivering"
        gate.set()
        data = await until_status(relay, agent["api_key"], event_id, "delivered")
        assert sorted(calls) == ["slow1", "slow2", "sync1", "sync2"]
        assert "second handler failed" in (data["attempt_history"][0]["error"] or "")
        await client.close()

    run(scenario())


def test_close_finishes_handlers_in_flight_then_acks(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"])
        rec = Recorder(client)
        started = asyncio.Event()
        release = asyncio.Event()
        finished: List[str] = []

        @client.on("webhook")
        async def handle(event: WebhookEvent) -> None:
            started.set()
            await release.wait()
            finished.append(event.id)

        await client.connect()
        event_id = await post(relay, agent["webhook_url"], b'{"type":"long"}')
        await asyncio.wait_for(started.wait(), 10)
        closing = asyncio.ensure_future(client.close())
        await asyncio.sleep(0.05)
        assert not closing.done()  # waits for the handler
        release.set()
        await asyncio.wait_for(closing, 10)
        assert finished == [event_id]
        await until_status(relay, agent["api_key"], event_id, "delivered")
        (gone,) = rec.of("disconnected")
        assert gone.code == 1000 and gone.will_reconnect is False
        assert client.closed

    run(scenario())


def test_close_called_from_a_handler_acks_that_event_then_closes(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"])
        got: List[str] = []

        @client.on("webhook")
        async def handle(event: WebhookEvent) -> None:
            got.append(event.id)
            await client.close()  # returns at once; the close waits for this handler

        await client.connect()
        event_id = await post(relay, agent["webhook_url"], b'{"type":"last.one"}')
        await until(lambda: client.closed, what="the close")
        assert got == [event_id]
        await until_status(relay, agent["api_key"], event_id, "delivered")

    run(scenario())


def test_sync_handlers_run_max_concurrency_at_once(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        ids = [await post(relay, agent["webhook_url"], b'{"type":"blocking"}') for _ in range(8)]
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], max_concurrency=8)
        barrier = threading.Barrier(8, timeout=20)  # passes only if 8 run at once
        done: List[str] = []

        @client.on("webhook")
        def handle(event: WebhookEvent) -> None:
            barrier.wait()
            done.append(event.id)

        await client.connect()
        await until(lambda: len(done) == 8, timeout=25, what="8 concurrent sync handlers")
        assert sorted(done) == sorted(ids)
        await client.close()

    run(scenario())


def test_dedupe_of_a_redelivered_id_vs_an_explicit_replay(relay: RelayProcess, agent: Agent) -> None:
    """A handled id delivered again is acked without calling the handler, unless
    the delivery is an explicit replay (``replay: true``), which always is."""

    async def scenario() -> None:
        logger, logs = capture_logger("test.dedupe." + agent["agent_id"])
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], logger=logger)
        got: List[WebhookEvent] = []
        client.on("webhook", got.append)
        await client.connect()
        event_id = await post(relay, agent["webhook_url"], b'{"type":"once"}')
        await until_status(relay, agent["api_key"], event_id, "delivered")
        status, data = await asyncio.to_thread(
            relay.agent_request, "POST", f"/api/v1/agent/events/{event_id}/replay", agent["api_key"]
        )
        assert status == 202, data
        await until_status(relay, agent["api_key"], event_id, "delivered", min_attempts=2)
        if len(got) == 2:  # the relay marks replays: the handler runs again
            print("\nreplay: the relay sent replay=true; the handler ran again")
            assert got[1].id == event_id and got[1].replay is True and got[0].replay is False
        else:  # a relay without the flag: the SDK takes it for a redelivery and dedupes
            print("\nreplay: the relay sent no replay flag; the SDK deduped it")
            assert len(got) == 1
            assert any("handled already" in m for m in logs.messages), logs.messages
        await client.close()

    run(scenario())


def test_unreachable_relay(relay: RelayProcess) -> None:
    async def scenario() -> None:
        import socket

        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        once = WebhookRelay(relay_url=f"http://127.0.0.1:{port}", api_key="lrk_x", reconnect=False)
        with pytest.raises(RelayConnectionError):
            await once.connect()

        retrying = WebhookRelay(relay_url=f"http://127.0.0.1:{port}", api_key="lrk_x")
        rec = Recorder(retrying)
        with pytest.raises(ConnectTimeoutError) as info:
            await retrying.connect(timeout=1.5)
        assert isinstance(info.value, TimeoutError)
        tries = rec.of("reconnecting")
        assert len(tries) >= 2 and tries[0].attempt == 1 and tries[0].delay < 0.25
        assert all(t.delay <= 10 for t in tries)
        assert all(isinstance(t.error, RelayConnectionError) for t in tries)
        assert retrying.state == "idle"  # gave up; a later connect() starts over
        await retrying.close()
        assert retrying.state == "closed"

        # A URL that is not a relay: a retry cannot help, so connect() fails at once.
        wrong = WebhookRelay(relay_url=relay.url + "/not-the-relay", api_key="lrk_x")
        rec = Recorder(wrong)
        started = time.monotonic()
        with pytest.raises(RelayConnectionError) as failed:
            await wrong.connect()
        assert failed.value.status == 404 and failed.value.retryable is False
        assert time.monotonic() - started < 5 and rec.of("reconnecting") == []

    run(scenario())
