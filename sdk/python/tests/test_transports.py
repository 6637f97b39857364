"""The HTTP transports (Server-Sent Events, long-poll) and ``transport="auto"``
against a real relay, and the fallback through a real proxy (tinyproxy) that
refuses the WebSocket's tunnel."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from typing import Any, Dict, List

import pytest
from caller_proxies import PROXY_VARS
from helpers import capture_logger, event_status, post, run, until, until_status
from relay_process import RelayProcess
from nginx import BufferingNginx
from squid import Squid
from tinyproxy import TinyProxy, dead_port

from powerlobster_webhook import (
    AuthenticationError,
    FallbackInfo,
    HandlerError,
    ProxyError,
    WebhookEvent,
    WebhookRelay,
)

Agent = Dict[str, Any]
USER = "lobster"
PASSWORD = "pw-for_sse"
ACKS_ROUTE = 'route="/api/v1/agent/stream/{session_id}/acks"'


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


def acks_requests(relay: RelayProcess) -> float:
    """How many acks requests the relay answered (its Prometheus metric)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(relay.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("lobster_http_requests_total{") and ACKS_ROUTE in line
    )


@pytest.mark.parametrize("transport", ["sse", "poll"])
def test_events_arrive_byte_for_byte_and_are_acked(relay: RelayProcess, agent: Agent, transport: str) -> None:
    received: List[WebhookEvent] = []

    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], proxy=False, transport=transport)
        client.on("webhook", lambda event: received.append(event))
        info = await client.connect()
        assert info.transport == transport and client.transport == transport
        assert info.fallback_reason is None
        assert info.webhook_url == agent["webhook_url"]

        binary = os.urandom(300) + b"\xff\xfe\x00\x80"
        first = await post(relay, info.webhook_url, binary, content_type="application/octet-stream")
        text = '{"type":"message.received","text":"h\u00e9llo \U0001f99e","n":1}'.encode()
        second = await post(relay, info.webhook_url, text, extra_headers={"X-Custom": "yes"})
        await until(lambda: len(received) == 2, what="both webhooks")
        by_id = {event.id: event for event in received}
        assert by_id[first].body == binary
        assert by_id[first].headers["content-type"] == "application/octet-stream"
        assert by_id[second].body == text
        assert by_id[second].payload == json.loads(text)
        assert by_id[second].headers["x-custom"] == "yes"
        by_id[second].verify_signature(relay.secret)
        for event_id in (first, second):
            await until_status(relay, agent["api_key"], event_id, "delivered")
        await client.close()
        assert client.state == "closed"

    run(scenario())


@pytest.mark.parametrize("transport", ["sse", "poll"])
def test_a_raising_handler_nacks_and_the_retry_is_acked(relay: RelayProcess, agent: Agent, transport: str) -> None:
    attempts: List[int] = []
    errors: List[BaseException] = []

    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], proxy=False, transport=transport)

        @client.on("webhook")
        async def handle(event: WebhookEvent) -> None:
            attempts.append(event.attempt)
            if event.attempt == 1:
                raise RuntimeError("first try fails")

        client.on("error", errors.append)
        info = await client.connect()
        event_id = await post(relay, info.webhook_url, b'{"type":"retry.me"}')
        data = await until_status(relay, agent["api_key"], event_id, "delivered", min_attempts=2)
        assert attempts == [1, 2]
        history = data["attempt_history"]
        assert [a["outcome"] for a in history] == ["nacked", "delivered"]
        assert history[0]["error"] == "first try fails"
        assert any(isinstance(e, HandlerError) for e in errors)
        await client.close()

    run(scenario())


@pytest.mark.parametrize("transport", ["sse", "poll"])
def test_queued_events_are_answered_in_batches(relay: RelayProcess, agent: Agent, transport: str) -> None:
    count = 40

    async def scenario() -> None:
        ids = [await post(relay, agent["webhook_url"], json.dumps({"type": "batch", "i": i}).encode()) for i in range(count)]
        before = await asyncio.to_thread(acks_requests, relay)
        client = WebhookRelay(
            relay_url=relay.url, api_key=agent["api_key"], proxy=False, transport=transport, max_concurrency=20
        )
        seen: List[str] = []

        @client.on("webhook")
        async def handle(event: WebhookEvent) -> None:
            seen.append(event.id)

        await client.connect()
        for event_id in ids:
            await until_status(relay, agent["api_key"], event_id, "delivered")
        assert sorted(set(seen)) == sorted(ids)
        posts = await asyncio.to_thread(acks_requests, relay) - before
        assert 1 <= posts < count, f"{posts} acks requests for {count} events"
        await client.close()

    run(scenario())


def test_auto_direct_uses_the_websocket(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], proxy=False)
        fallbacks: List[FallbackInfo] = []
        client.on("fallback", fallbacks.append)
        info = await client.connect()
        assert info.transport == "ws" and client.transport == "ws"
        assert fallbacks == []
        await client.close()

    run(scenario())


def test_auto_does_not_take_the_relays_401_for_a_proxy(relay: RelayProcess) -> None:
    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key="lrk_" + "a" * 59, proxy=False)
        fallbacks: List[FallbackInfo] = []
        client.on("fallback", fallbacks.append)
        with pytest.raises(AuthenticationError):
            await client.connect()
        assert fallbacks == []
        await client.close()

    run(scenario())


def test_auto_falls_back_to_sse_through_a_proxy_that_refuses_the_tunnel(relay: RelayProcess, agent: Agent) -> None:
    """tinyproxy allows CONNECT to port 1 only: the WebSocket's tunnel to the
    relay is refused (403); plain forward requests (SSE, acks) pass."""
    logger, logs = capture_logger("test-transports-fallback")
    received: List[WebhookEvent] = []

    async def scenario(proxy: TinyProxy) -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], proxy=proxy.url, logger=logger)
        fallbacks: List[FallbackInfo] = []
        connected: List[Any] = []
        client.on("fallback", fallbacks.append)
        client.on("connected", connected.append)
        client.on("webhook", lambda event: received.append(event))
        info = await client.connect()
        assert [(f.previous, f.transport) for f in fallbacks] == [("ws", "sse")]
        assert "refused the tunnel for the WebSocket upgrade (HTTP 403)" in fallbacks[0].reason
        assert info.transport == "sse" and client.transport == "sse"
        assert info.fallback_reason == fallbacks[0].reason
        assert any("falling back to SSE" in m and "HTTP 403" in m for m in logs.messages), logs.messages
        assert "GET http://127.0.0.1:" in proxy.log(), "the SSE request went through the proxy"

        event_id = await post(relay, info.webhook_url, b'{"type":"via.sse"}')
        await until(lambda: len(received) == 1, what="the webhook over SSE")
        assert received[0].id == event_id
        await until_status(relay, agent["api_key"], event_id, "delivered")

        # The proxy restarts: the stream drops and the client comes back on SSE directly.
        tunnels = proxy.connects(f"127.0.0.1:{relay.port}")
        await asyncio.to_thread(proxy.restart, None)
        await until(lambda: len(connected) == 2, timeout=20, what="the reconnect")
        assert connected[1].transport == "sse"
        assert len(fallbacks) == 1
        assert proxy.connects(f"127.0.0.1:{relay.port}") == tunnels, "no new WebSocket tunnel was tried"
        await client.close()

    assert relay.port is not None
    with TinyProxy([1]) as proxy:
        run(scenario(proxy))


def test_sse_and_poll_through_a_proxy_with_basic_auth(relay: RelayProcess) -> None:
    async def scenario(proxy: TinyProxy) -> None:
        for transport in ("sse", "poll"):
            agent = await asyncio.to_thread(relay.create_agent)
            received: List[WebhookEvent] = []
            client = WebhookRelay(
                relay_url=relay.url, api_key=agent["api_key"], proxy=proxy.url_with(USER, PASSWORD), transport=transport
            )
            client.on("webhook", lambda event: received.append(event))
            info = await client.connect()
            event_id = await post(relay, info.webhook_url, json.dumps({"type": f"auth.{transport}"}).encode())
            await until(lambda: len(received) == 1, what=f"the webhook over {transport}")
            await until_status(relay, agent["api_key"], event_id, "delivered")
            await client.close()
        assert "/api/v1/agent/poll" in proxy.log(), "the polls went through the proxy"

    assert relay.port is not None
    with TinyProxy([relay.port], auth=(USER, PASSWORD)) as proxy:
        run(scenario(proxy))


@pytest.mark.parametrize("transport", ["sse", "poll"])
def test_revocation_ends_the_session_without_reconnecting(relay: RelayProcess, transport: str) -> None:
    async def scenario() -> None:
        agent = await asyncio.to_thread(relay.create_agent)
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], proxy=False, transport=transport)
        disconnected: List[Any] = []
        client.on("disconnected", disconnected.append)
        await client.connect()
        await asyncio.to_thread(relay.revoke_agent, agent["agent_id"])
        with pytest.raises(AuthenticationError):
            await asyncio.wait_for(client.run_forever(), 20)
        assert disconnected and disconnected[-1].will_reconnect is False
        assert client.state == "closed"
        await client.close()

    run(scenario())


def test_auto_behind_a_buffering_reverse_proxy_ends_on_long_poll(relay: RelayProcess, agent: Agent) -> None:
    """nginx passes no upgrade (the relay answers 400 websocket_required) and
    holds the SSE stream back: WebSocket, then SSE, then long-poll delivers."""
    received: List[WebhookEvent] = []

    async def scenario(nginx: BufferingNginx) -> None:
        client = WebhookRelay(relay_url=nginx.url, api_key=agent["api_key"], proxy=False, sse_ready_timeout=1.5)
        fallbacks: List[FallbackInfo] = []
        client.on("fallback", fallbacks.append)
        client.on("webhook", lambda event: received.append(event))
        info = await client.connect()
        assert [(f.previous, f.transport) for f in fallbacks] == [("ws", "sse"), ("sse", "poll")]
        assert "WebSocket upgrade was refused (HTTP 400 websocket_required" in fallbacks[0].reason
        assert "no ready message on the SSE stream within 1.5 s" in fallbacks[1].reason
        assert info.transport == "poll" and info.fallback_reason == fallbacks[1].reason

        event_id = await post(relay, agent["webhook_url"], b'{"type":"via.poll"}')
        await until(lambda: len(received) == 1, what="the webhook over long-poll")
        assert received[0].id == event_id
        await until_status(relay, agent["api_key"], event_id, "delivered")
        assert "/api/v1/agent/poll" in nginx.access_log(), "the polls went through nginx"
        await client.close()

    assert relay.port is not None
    with BufferingNginx(relay.port) as nginx:
        run(scenario(nginx))


@pytest.mark.parametrize("transport", ["sse", "poll"])
def test_an_unreachable_proxy_is_a_proxy_error_on_the_http_transports(relay: RelayProcess, agent: Agent, transport: str) -> None:
    async def scenario() -> None:
        nowhere = f"http://{USER}:hunter2@127.0.0.1:{dead_port()}"
        client = WebhookRelay(
            relay_url=relay.url, api_key=agent["api_key"], proxy=nowhere, transport=transport, reconnect=False
        )
        with pytest.raises(ProxyError) as info:
            await client.connect()
        assert info.value.code == "proxy_unreachable", info.value
        assert "hunter2" not in str(info.value)
        await client.close()

    run(scenario())


def test_auto_falls_back_to_sse_through_squid(relay: RelayProcess, agent: Agent) -> None:
    """squid as corporate proxies are set up: CONNECT only to port 443, plain
    HTTP forwarded. The WebSocket's tunnel is refused; SSE through it delivers."""
    received: List[WebhookEvent] = []

    async def scenario(squid: Squid) -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"], proxy=squid.url)
        fallbacks: List[FallbackInfo] = []
        client.on("fallback", fallbacks.append)
        client.on("webhook", lambda event: received.append(event))
        info = await client.connect()
        assert [(f.previous, f.transport) for f in fallbacks] == [("ws", "sse")]
        assert "refused the tunnel for the WebSocket upgrade (HTTP 403)" in fallbacks[0].reason
        assert info.transport == "sse"
        event_id = await post(relay, agent["webhook_url"], b'{"type":"via.squid"}')
        await until(lambda: len(received) == 1, what="the webhook through squid")
        await until_status(relay, agent["api_key"], event_id, "delivered")
        await until(lambda: "/acks" in squid.access_log(), what="the acks request in squid's access log")
        assert "TCP_DENIED/403" in squid.access_log()
        await client.close()

    with Squid() as squid:
        run(scenario(squid))
