"""The SDK through a real HTTP proxy (tinyproxy on loopback, CONNECT tunnels)
to a real relay: from the environment, from the option, with basic auth,
bypassed by NO_PROXY, refused, unreachable, and TLS inside the tunnel.

Each delivery test also reads the proxy's log for the CONNECT, so a client
that went around the proxy fails.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import urlsplit

import pytest
from caller_proxies import PROXY_VARS
from helpers import Recorder, capture_logger, post, run, until
from relay_process import RelayProcess
from tinyproxy import TinyProxy, dead_port

from powerlobster_webhook import (
    AuthenticationError,
    ConnectTimeoutError,
    ProxyError,
    RelayConnectionError,
    WebhookEvent,
    WebhookRelay,
)

Agent = Dict[str, Any]
WS_MAJOR = int(metadata.version("websockets").split(".")[0])
USER = "lobster"
PASSWORD = "s3cret-pw_1"



@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no proxy variables; it sets its own."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def open_proxy(relay: RelayProcess) -> Iterator[TinyProxy]:
    assert relay.port is not None
    with TinyProxy([relay.port]) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def guarded(relay: RelayProcess) -> Iterator[TinyProxy]:
    assert relay.port is not None
    with TinyProxy([relay.port], auth=(USER, PASSWORD)) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def nowhere() -> str:
    return f"http://127.0.0.1:{dead_port()}"


def ws_url(relay: RelayProcess) -> str:
    return relay.url.replace("http://", "ws://")


def target(relay: RelayProcess) -> str:
    return f"127.0.0.1:{relay.port}"


async def delivers_one(relay: RelayProcess, client: WebhookRelay) -> None:
    """Connects, sends one webhook, and checks it arrives whole."""
    received: List[WebhookEvent] = []
    client.on("webhook", lambda event: received.append(event))
    info = await client.connect()
    body = json.dumps({"event": "message.received", "data": {"via": client.proxy}}).encode()
    event_id = await post(relay, urlsplit(info.webhook_url).path, body)
    await until(lambda: len(received) == 1, what="the webhook")
    assert received[0].id == event_id and received[0].body == body


def test_http_proxy_env_tunnels_the_session(
    relay: RelayProcess, agent: Agent, open_proxy: TinyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", open_proxy.url)
    before = open_proxy.connects(target(relay))

    async def scenario() -> None:
        client = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"])
        assert client.proxy == open_proxy.url
        try:
            await delivers_one(relay, client)
        finally:
            await client.close()

    run(scenario())
    assert open_proxy.connects(target(relay)) == before + 1, open_proxy.log()


def test_lowercase_all_proxy_is_the_fallback(
    relay: RelayProcess, agent: Agent, open_proxy: TinyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("all_proxy", open_proxy.url.replace("http://", ""))  # bare host:port
    before = open_proxy.connects(target(relay))

    async def scenario() -> None:
        client = WebhookRelay(relay_url=relay.url, api_key=agent["api_key"])  # http:// → ws://
        assert client.proxy == open_proxy.url
        try:
            await delivers_one(relay, client)
        finally:
            await client.close()

    run(scenario())
    assert open_proxy.connects(target(relay)) == before + 1, open_proxy.log()


def test_basic_auth_opens_the_tunnel_and_the_password_is_never_logged(
    relay: RelayProcess, agent: Agent, guarded: TinyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", guarded.url_with(USER, PASSWORD))
    logger, logs = capture_logger("test-proxy-auth-ok")
    before = guarded.connects(target(relay))

    async def scenario() -> None:
        client = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"], logger=logger)
        assert client.proxy == guarded.url  # no credentials
        try:
            await delivers_one(relay, client)
            assert client.transport == "ws"  # the WebSocket itself, in the CONNECT tunnel
        finally:
            await client.close()

    run(scenario())
    assert guarded.connects(target(relay)) == before + 1
    assert any(guarded.url in line for line in logs.messages), logs.messages
    assert not any(PASSWORD in line for line in logs.messages)


def test_no_credentials_for_a_proxy_that_wants_them(relay: RelayProcess, agent: Agent, guarded: TinyProxy) -> None:
    async def scenario() -> None:
        client = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"], proxy=guarded.url)
        rec = Recorder(client)
        started = time.monotonic()
        with pytest.raises(ProxyError) as info:
            await client.connect(timeout=30)
        err = info.value
        assert err.code == "proxy_auth_required" and err.status == 407 and not err.retryable
        assert err.proxy == guarded.url
        assert "wants credentials" in str(err) and "the proxy option" in str(err)
        assert not isinstance(err, AuthenticationError)  # the relay never saw the request
        assert rec.of("reconnecting") == []
        assert time.monotonic() - started < 10
        await client.close()

    run(scenario())


def test_a_wrong_proxy_password_fails_at_once_without_showing_it(
    relay: RelayProcess, agent: Agent, guarded: TinyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", guarded.url_with(USER, "not-the-password"))
    logger, logs = capture_logger("test-proxy-auth-bad")

    async def scenario() -> None:
        client = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"], logger=logger)
        rec = Recorder(client)
        with pytest.raises(ProxyError) as info:
            await client.connect(timeout=30)
        err = info.value
        assert err.code == "proxy_auth_failed", err
        assert "refused the credentials in HTTP_PROXY" in str(err)
        assert "not-the-password" not in str(err)
        assert rec.of("reconnecting") == []
        await client.close()

    run(scenario())
    assert not any("not-the-password" in line for line in logs.messages)


def test_credentials_refused_during_a_session_stop_the_client(relay: RelayProcess, agent: Agent) -> None:
    assert relay.port is not None
    with TinyProxy([relay.port], auth=(USER, PASSWORD)) as proxy:

        async def scenario() -> None:
            client = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"], proxy=proxy.url_with(USER, PASSWORD))
            rec = Recorder(client)
            await client.connect()
            # The proxy comes back with another password: the tunnel drops, the retry is refused.
            await asyncio.to_thread(proxy.restart, (USER, "rotated-pw"))
            await until(lambda: bool(rec.of("error")), timeout=30, what="the error event")
            err = rec.of("error")[0]
            assert isinstance(err, ProxyError) and err.code == "proxy_auth_failed", err
            assert rec.of("disconnected")[0].will_reconnect is True
            with pytest.raises(ProxyError):
                await client.run_forever()
            assert client.state == "closed" and not client.connected
            retries = len(rec.of("reconnecting"))
            await asyncio.sleep(0.6)  # a further retry would come within the backoff ceiling
            assert len(rec.of("reconnecting")) == retries
            assert len(rec.of("error")) == 1
            await client.close()

        run(scenario())


def test_no_proxy_reaches_the_relay_directly(
    relay: RelayProcess, agent: Agent, nowhere: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", nowhere)
    monkeypatch.setenv("HTTPS_PROXY", nowhere)
    monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.0/8")

    async def scenario() -> None:
        client = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"])
        assert client.proxy is None
        try:
            await delivers_one(relay, client)
        finally:
            await client.close()

    run(scenario())


def test_the_proxy_option_overrides_the_environment_and_false_disables_it(
    relay: RelayProcess, agent: Agent, open_proxy: TinyProxy, nowhere: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", nowhere)
    monkeypatch.setenv("ALL_PROXY", nowhere)
    before = open_proxy.connects(target(relay))

    async def scenario() -> None:
        forced = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"], proxy=open_proxy.url)
        assert forced.proxy == open_proxy.url
        try:
            await delivers_one(relay, forced)
        finally:
            await forced.close()
        assert open_proxy.connects(target(relay)) == before + 1

        direct = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"], proxy=False)
        assert direct.proxy is None
        try:
            await delivers_one(relay, direct)
        finally:
            await direct.close()
        assert open_proxy.connects(target(relay)) == before + 1, "proxy=False went through the proxy"

    run(scenario())


def test_an_unreachable_proxy_is_retried_then_named_without_credentials(
    relay: RelayProcess, agent: Agent, nowhere: str
) -> None:
    proxy_url = nowhere.replace("http://", f"http://{USER}:hunter2@")

    async def scenario() -> None:
        client = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"], proxy=proxy_url, connect_timeout=1.5)
        rec = Recorder(client)
        with pytest.raises(ConnectTimeoutError) as info:
            await client.connect()
        err = info.value
        assert err.code == "proxy_unreachable"
        assert f"could not reach the proxy {nowhere} (the proxy option)" in str(err), str(err)
        assert "hunter2" not in str(err)
        assert isinstance(err.__cause__, ProxyError) and err.__cause__.proxy == nowhere
        retried = rec.of("reconnecting")
        assert retried and isinstance(retried[0].error, ProxyError)
        await client.close()

        once = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"], proxy=proxy_url, reconnect=False)
        with pytest.raises(ProxyError) as first:
            await once.connect()
        assert first.value.code == "proxy_unreachable" and "hunter2" not in str(first.value)
        await once.close()

    run(scenario())


def test_a_relay_down_behind_the_proxy_is_retried(relay: RelayProcess) -> None:
    port = dead_port()
    with TinyProxy([port]) as proxy:

        async def scenario() -> None:
            # transport="ws": the WebSocket's tunnel alone (auto's fallback is in test_transports.py).
            client = WebhookRelay(
                relay_url=f"http://127.0.0.1:{port}",
                api_key="lrk_unused",
                proxy=proxy.url,
                connect_timeout=1.5,
                transport="ws",
            )
            rec = Recorder(client)
            with pytest.raises(ConnectTimeoutError) as info:
                await client.connect()
            cause = info.value.__cause__
            assert isinstance(cause, ProxyError) and cause.code == "proxy_refused", cause
            assert cause.status is not None and cause.status >= 500
            assert f"could not open a tunnel to 127.0.0.1:{port}" in str(cause)
            assert rec.of("reconnecting"), "a 5xx from the proxy is retried"
            await client.close()

        run(scenario())
        assert proxy.connects(f"127.0.0.1:{port}") >= 2


def test_a_proxy_refusing_the_port_is_not_mistaken_for_a_bad_key(relay: RelayProcess, agent: Agent) -> None:
    with TinyProxy([1]) as proxy:

        async def scenario() -> None:
            # transport="ws" (auto falls back to SSE here: test_transports.py).
            client = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"], proxy=proxy.url, transport="ws")
            rec = Recorder(client)
            with pytest.raises(ProxyError) as info:
                await client.connect()
            err = info.value
            assert err.code == "proxy_refused" and err.status == 403 and not err.retryable
            assert "may not allow CONNECT" in str(err)
            assert rec.of("reconnecting") == []
            await client.close()

        run(scenario())


def test_something_that_is_not_an_http_proxy(relay: RelayProcess, agent: Agent) -> None:
    async def scenario() -> None:
        async def ssh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"SSH-2.0-OpenSSH_9.2\r\nProtocol mismatch.\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(ssh, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"], proxy=f"127.0.0.1:{port}")
        rec = Recorder(client)
        try:
            with pytest.raises(ProxyError) as info:
                await client.connect(timeout=30)
            err = info.value
            assert err.code == "proxy_refused" and not err.retryable
            assert "did not answer the tunnel request with HTTP" in str(err) and "SSH-2.0" in str(err), str(err)
            assert rec.of("reconnecting") == []
        finally:
            await client.close()
            server.close()

    run(scenario())


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    # fmt: off
    args = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert)]
    # fmt: on
    try:
        subprocess.run(args, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        stderr = getattr(exc, "stderr", b"") or b""
        raise RuntimeError(f"openssl could not make a test certificate (apt-get install openssl): {exc} {stderr!r}")
    return cert, key


def test_wss_through_the_proxy_verifies_the_relay_with_the_ssl_option(
    nowhere: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tempfile.TemporaryDirectory(prefix="lobster-sdk-tls-") as tmp:
        cert, key = _certificate(Path(tmp))
        with RelayProcess(["--tls-cert", str(cert), "--tls-key", str(key)]) as tls_relay:
            tls_relay.ssl_context = ssl.create_default_context(cafile=str(cert))
            assert tls_relay.url.startswith("https://"), tls_relay.url
            agent = tls_relay.create_agent("tls")
            with TinyProxy([tls_relay.port or 0]) as proxy:
                # HTTP_PROXY is for ws:// only: a wss:// relay takes HTTPS_PROXY.
                monkeypatch.setenv("HTTP_PROXY", nowhere)
                monkeypatch.setenv("HTTPS_PROXY", proxy.url)
                relay_url = f"wss://localhost:{tls_relay.port}"

                async def scenario() -> None:
                    client = WebhookRelay(
                        relay_url=relay_url, api_key=agent["api_key"], ssl=tls_relay.ssl_context
                    )
                    assert client.proxy == proxy.url
                    try:
                        await delivers_one(tls_relay, client)
                    finally:
                        await client.close()
                    assert proxy.connects(f"localhost:{tls_relay.port}") == 1, proxy.log()

                    # Without the CA the same tunnel opens, and the relay's certificate is refused.
                    untrusting = WebhookRelay(relay_url=relay_url, api_key=agent["api_key"], reconnect=False)
                    with pytest.raises(RelayConnectionError) as info:
                        await untrusting.connect()
                    assert not isinstance(info.value, ProxyError)
                    assert "through the proxy" in str(info.value) and "CERTIFICATE_VERIFY_FAILED" in str(info.value)
                    await untrusting.close()
                    assert proxy.connects(f"localhost:{tls_relay.port}") == 2

                    # SSE and long-poll take the same tunnel, the ssl option verifying the relay inside it.
                    for transport in ("sse", "poll"):
                        over_http = WebhookRelay(
                            relay_url=relay_url, api_key=agent["api_key"], ssl=tls_relay.ssl_context, transport=transport
                        )
                        try:
                            await delivers_one(tls_relay, over_http)
                            assert over_http.transport == transport
                        finally:
                            await over_http.close()
                    assert proxy.connects(f"localhost:{tls_relay.port}") >= 4, proxy.log()

                run(scenario())


def test_an_https_proxy_is_reached_over_tls(
    relay: RelayProcess, agent: Agent, open_proxy: TinyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """https://proxy: TLS to the proxy (here a TLS front on tinyproxy), then CONNECT inside it."""
    with tempfile.TemporaryDirectory(prefix="lobster-sdk-tls-") as tmp:
        cert, key = _certificate(Path(tmp))
        # The proxy's certificate is checked against the default CAs: here, the test's own.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        before = open_proxy.connects(target(relay))
        handshakes: List[str] = []

        async def scenario() -> None:
            server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server_ctx.load_cert_chain(str(cert), str(key))
            pipes: List[asyncio.Task[None]] = []

            async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                try:
                    while data := await reader.read(65536):
                        writer.write(data)
                        await writer.drain()
                except (OSError, asyncio.CancelledError):
                    pass
                finally:
                    writer.close()

            async def front(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                handshakes.append(str(writer.get_extra_info("ssl_object").version()))
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", open_proxy.port)
                pipes.append(asyncio.ensure_future(pipe(reader, up_writer)))
                pipes.append(asyncio.ensure_future(pipe(up_reader, writer)))

            server = await asyncio.start_server(front, "127.0.0.1", 0, ssl=server_ctx)
            port = server.sockets[0].getsockname()[1]
            client = WebhookRelay(relay_url=ws_url(relay), api_key=agent["api_key"], proxy=f"https://127.0.0.1:{port}")
            assert client.proxy == f"https://127.0.0.1:{port}"
            try:
                if WS_MAJOR >= 16:
                    await delivers_one(relay, client)
                else:
                    # websockets 15 (Python 3.9's) refuses tinyproxy's HTTP/1.0 answer: a clear error, not a hang.
                    with pytest.raises(ProxyError, match="refuses a proxy's HTTP/1.0 answer") as info:
                        await client.connect(timeout=30)
                    assert info.value.code == "proxy_refused"
            finally:
                await client.close()
                server.close()
                for task in pipes:
                    task.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)

        run(scenario())
        assert handshakes and handshakes[0].startswith("TLS"), handshakes
        assert open_proxy.connects(target(relay)) == before + 1, open_proxy.log()


# -- the resolver, without a network ---------------------------------------

from powerlobster_webhook import ConfigurationError  # noqa: E402
from powerlobster_webhook._proxy import bypasses_proxy, choose_proxy  # noqa: E402


@pytest.mark.parametrize(
    "env, url, want",
    [
        ({"HTTPS_PROXY": "http://p:1"}, "wss://r.example.com/x", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1"}, "ws://r.example.com/x", None),
        ({"HTTP_PROXY": "http://p:1"}, "ws://r.example.com/x", "http://p:1"),
        ({"HTTP_PROXY": "http://p:1"}, "wss://r.example.com/x", None),
        ({"ALL_PROXY": "p:2"}, "wss://r.example.com/x", "http://p:2"),
        ({"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:1"}, "wss://r.example.com/x", "http://low:1"),
        ({"https_proxy": " ", "HTTPS_PROXY": "http://up:1"}, "wss://r.example.com/x", "http://up:1"),
        ({"HTTPS_PROXY": "https://p"}, "wss://r.example.com/x", "https://p:443"),
        ({"HTTPS_PROXY": "http://[::1]:8"}, "wss://r.example.com/x", "http://[::1]:8"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"}, "wss://r.example.com/x", None),
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": "*"}, "wss://r.example.com/x", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.com"}, "wss://r.example.com/x", "http://p:1"),
    ],
)
def test_choose_proxy_reads_the_environment(env: Dict[str, str], url: str, want: Optional[str]) -> None:
    choice = choose_proxy(url, None, env)
    assert (choice.display if choice else None) == want


def test_choose_proxy_option_and_credentials() -> None:
    env = {"HTTPS_PROXY": "http://env:1"}
    assert choose_proxy("wss://r/x", False, env) is None
    forced = choose_proxy("wss://r/x", "http://us%40er:p%3Ass@opt:3128", env)
    assert forced is not None
    assert (forced.display, forced.source, forced.has_credentials) == ("http://opt:3128", "the proxy option", True)
    assert forced.url == "http://us%40er:p%3Ass@opt:3128"
    user_only = choose_proxy("wss://r/x", "http://user@opt:1", env)
    assert user_only is not None and user_only.url == "http://user:@opt:1"
    for bad, says in [
        ("socks5://p:1", "socks5:// proxy"),
        ("http://", "no host name"),
        ("http://p:99999", "not a valid proxy URL"),
        ("http://p:1/path", "path"),
        ("", "must be a URL"),
    ]:
        with pytest.raises(ConfigurationError, match=says):
            choose_proxy("wss://r/x", bad, env)
    with pytest.raises(ConfigurationError, match="HTTPS_PROXY is a socks5://"):
        choose_proxy("wss://r/x", None, {"HTTPS_PROXY": "socks5://secret:pw@p:1"})
    with pytest.raises(ConfigurationError) as info:
        choose_proxy("wss://r/x", None, {"HTTPS_PROXY": "http://u:pw@p:notaport"})
    assert "u:pw" not in str(info.value) and "notaport" not in str(info.value)


@pytest.mark.parametrize(
    "host, port, no_proxy, want",
    [
        ("relay.example.com", 443, "example.com", True),
        ("relay.example.com", 443, ".example.com", True),
        ("relay.example.com", 443, "*.example.com", True),
        ("example.com", 443, "example.com", True),
        ("notexample.com", 443, "example.com", False),
        ("relay.example.com", 443, "example.com:8443", False),
        ("relay.example.com", 8443, "example.com:8443", True),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("127.0.0.1", 80, "localhost, 127.0.0.1", True),
        ("::1", 80, "[::1]", True),
        ("::1", 80, "[::1]:81", False),
        ("fd00::5", 80, "fd00::/8", True),
        ("RELAY.Example.COM.", 443, "example.com", True),
        ("relay.example.com", 443, "a.com b.com,,example.com", True),
        ("relay.example.com", 443, "", False),
    ],
)
def test_no_proxy_matching(host: str, port: int, no_proxy: str, want: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is want


def test_the_ssl_option_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="SSLContext"):
        WebhookRelay(relay_url="wss://r.example.com", api_key="lrk_x", ssl="ca.pem", proxy=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not TLS"):
        WebhookRelay(relay_url="ws://r.example.com", api_key="lrk_x", ssl=ssl.create_default_context(), proxy=False)
    with pytest.raises(ConfigurationError, match="proxy must be"):
        WebhookRelay(relay_url="ws://r.example.com", api_key="lrk_x", proxy=3128)  # type: ignore[arg-type]

