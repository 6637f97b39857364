"""``WebhookRelay``: one agent's connection to a lobster-relay, with handlers."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import logging
import os
import signal
import socket
import ssl as ssl_module
import time
import urllib.parse
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import (
    Any,
    Awaitable,
    Callable,
    Deque,
    Dict,
    List,
    Optional,
    Pattern,
    Sequence,
    Set,
    Tuple,
    Type,
    TypeVar,
    Union,
    overload,
)

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidProxyMessage,
    InvalidProxyStatus,
    InvalidStatus,
    WebSocketException,
)

from ._errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectTimeoutError,
    HandlerError,
    ListenerError,
    ProxyError,
    RelayClosedError,
    RelayConnectionError,
    RelayErrorFrame,
    WaitTimeoutError,
    WebhookRelayError,
)
from ._event import WebhookEvent
from ._http import HttpAnswer, LinkClosed, PollLink, SseLink, open_request
from ._proxy import BadTunnelAnswer, ProxyChoice, TunnelRefused, choose_proxy, open_tunnel
from ._types import ConnectedInfo, DisconnectedInfo, FallbackInfo, ReconnectingInfo
from ._util import (
    DEFAULT_RELAY_URL,
    Backoff,
    RecentIds,
    compile_patterns,
    connect_url,
    parse_patterns,
    redact_url,
)

__all__ = ["WebhookRelay", "EVENT_NAMES"]

EVENT_NAMES = ("connected", "webhook", "disconnected", "reconnecting", "error", "fallback")
#: The ``transport`` option's values; ``auto`` tries them in this order.
TRANSPORTS = ("auto", "ws", "sse", "poll")
_NEXT_TRANSPORT = {"ws": "sse", "sse": "poll"}
_TRANSPORT_NAMES = {"ws": "WebSocket", "sse": "SSE", "poll": "long-poll"}
#: Seconds an SSE stream may idle (the relay sends a keep-alive every 20 s).
SSE_IDLE_TIMEOUT = 60.0

#: Time one attempt may take: TCP connect, TLS, the upgrade, then the ready frame.
HANDSHAKE_TIMEOUT = 15.0
#: Largest frame accepted from the relay: a large body as base64 plus headers.
MAX_FRAME = 64 * 1024 * 1024
#: WebSocket pings every 20 s; no pong within 40 s more drops the connection,
#: so a dead connection is noticed within about 60 s, as the protocol says.
PING_INTERVAL = 20.0
PING_TIMEOUT = 40.0
#: Longest wait honoured from a Retry-After header.
MAX_RETRY_AFTER = 60.0
#: Longest a nack reason sent to the relay (its frames are limited to 64 KiB).
MAX_REASON = 1000
#: Close codes after which the SDK does not reconnect.
FATAL_CLOSE_CODES = (4001, 4003)
CLOSE_RESTARTING = 1012

try:
    from importlib.metadata import version as _dist_version

    _WS_VERSION = _dist_version("websockets")
except Exception:  # pragma: no cover
    _WS_VERSION = "unknown"

F = TypeVar("F", bound=Callable[..., Any])
Listener = Callable[..., Any]


def _version() -> str:
    from . import __version__

    return __version__


class _WsLink:
    """The WebSocket, as a link: frames in, answers out."""

    transport = "ws"

    def __init__(self, ws: ClientConnection, decode: Callable[[Union[str, bytes]], Optional[Dict[str, Any]]], closing: Callable[[], bool]) -> None:
        self.ws = ws
        self._decode = decode
        self._closing = closing

    async def recv(self) -> Dict[str, Any]:
        while True:
            try:
                raw = await self.ws.recv()
            except ConnectionClosed as closed:
                if closed.rcvd is not None:
                    raise LinkClosed(closed.rcvd.code, closed.rcvd.reason) from None
                if closed.sent is not None and self._closing():
                    raise LinkClosed(closed.sent.code, closed.sent.reason) from None
                raise LinkClosed(1006, "connection lost") from None
            frame = self._decode(raw)
            if frame is not None:
                return frame

    async def answer(self, frame: Dict[str, Any]) -> bool:
        try:
            await self.ws.send(json.dumps(frame, separators=(",", ":")))
        except ConnectionClosed:
            return False
        return True

    async def close(self) -> None:
        await self.ws.close(1000, "client closing")

    def abort(self) -> None:
        try:
            self.ws.transport.abort()
        except Exception:  # pragma: no cover
            pass


Link = Union[_WsLink, SseLink, PollLink]


class _Session:
    """One live session, on any transport."""

    __slots__ = ("link", "info", "opened_at", "last_error")

    def __init__(self, link: Link, info: ConnectedInfo) -> None:
        self.link = link
        self.info = info
        self.opened_at = time.monotonic()
        self.last_error: Optional[RelayErrorFrame] = None


def _fallback(exc: BaseException, reason: str) -> BaseException:
    """Marks ``exc`` as a failure that the next transport may get around (``transport="auto"``)."""
    setattr(exc, "_fallback", reason)
    return exc


class _Waiter:
    __slots__ = ("match", "future")

    def __init__(self, match: Optional[Pattern[str]], future: asyncio.Future[WebhookEvent]) -> None:
        self.match = match
        self.future = future

    def wants(self, event: WebhookEvent) -> bool:
        return not self.future.done() and (self.match is None or self.match.match(event.type) is not None)


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects
    inner = getattr(fn, "func", None)  # functools.partial
    return (call is not None and inspect.iscoroutinefunction(call)) or (
        inner is not None and inspect.iscoroutinefunction(inner)
    )


def _error_body(body: Optional[bytes]) -> Tuple[Optional[str], Optional[str]]:
    """``(code, message)`` from the relay's JSON error body, if it is one."""
    if not body:
        return None, None
    try:
        data = json.loads(body.decode("utf-8"))
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            code = error.get("code")
            message = error.get("message")
            return (str(code) if code else None, str(message) if message else None)
    except (UnicodeDecodeError, ValueError):
        pass
    return None, None


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class WebhookRelay:
    """Receives the webhooks a lobster-relay accepted for one agent, as events
    in this process.

    Args:
        relay_url: base URL of the relay: ``https://``, ``http://``, ``wss://``
            or ``ws://``, with an optional path prefix. Default: env
            ``LOBSTER_RELAY_URL``, else ``https://relay.powerlobster.com``.
        api_key: the agent's API key. Default: env ``LOBSTER_RELAY_API_KEY``.
        events: only receive events whose type matches one of these globs
            (``["message.*", "ping"]`` or ``"message.*,ping"``; ``*`` matches
            any run of characters, ``?`` one). Filtered by the relay: other
            events stay queued for another session of the agent.
        max_concurrency: handlers running at once (default 10). ``1`` handles
            events one at a time, in the order the relay accepted them.
        reconnect: reconnect after a lost connection (default ``True``), with
            jittered exponential backoff; a bad key or a revoked agent is
            never retried.
        logger: a :class:`logging.Logger` (default ``powerlobster_webhook``).
        connect_timeout: how long :meth:`connect` keeps trying a relay it
            cannot reach (refused connection, HTTP 5xx, 429) before it raises
            :class:`ConnectTimeoutError`. Default 30 seconds.
        dedupe_ttl, dedupe_size: redeliveries of an event id that this
            process handled successfully within ``dedupe_ttl`` seconds
            (default 600) are acked without calling the handlers again; at
            most ``dedupe_size`` ids (default 10,000) are remembered.
        proxy: the HTTP proxy to tunnel through (HTTP CONNECT): a URL such
            as ``http://user:pass@proxy.example.com:3128`` to force one,
            ``False`` for none. Default (``None``): from the environment,
            ``HTTPS_PROXY`` for ``wss://``, ``HTTP_PROXY`` for ``ws://``, else
            ``ALL_PROXY`` (lowercase names first), unless ``NO_PROXY`` lists
            the relay's host. Read once, here.
        ssl: an :class:`ssl.SSLContext` for a ``wss://`` relay, e.g.
            ``ssl.create_default_context(cafile="ca.pem")`` for a private CA;
            inside a proxy tunnel it applies to the relay's TLS, and to the
            HTTP transports' requests too.
        transport: ``"auto"`` (default) tries the WebSocket, then Server-Sent
            Events when the upgrade is refused (a proxy's 403/400/426/502, or
            the connection cut during the upgrade), then long-poll when the
            SSE stream brings no ``ready`` within ``sse_ready_timeout`` (a
            proxy buffering it). Once a transport worked, reconnects start
            with it. ``"ws"``, ``"sse"`` or ``"poll"`` use that one only.
        sse_ready_timeout: with ``transport="auto"``, seconds an SSE stream
            may go without ``ready`` before long-poll is tried (default 5).

    Events (``relay.on(name, fn)`` or ``@relay.on(name)``): ``webhook``
    (:class:`WebhookEvent`), ``connected`` (:class:`ConnectedInfo`),
    ``disconnected`` (:class:`DisconnectedInfo`), ``reconnecting``
    (:class:`ReconnectingInfo`), ``error`` (an exception), ``fallback``
    (:class:`FallbackInfo`: ``transport="auto"`` moved on to the next transport).
    """

    def __init__(
        self,
        relay_url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        events: Union[None, str, Sequence[str]] = None,
        max_concurrency: int = 10,
        reconnect: bool = True,
        logger: Optional[Union[logging.Logger, logging.LoggerAdapter[Any]]] = None,
        connect_timeout: float = 30.0,
        dedupe_ttl: float = 600.0,
        dedupe_size: int = 10_000,
        proxy: Union[None, bool, str] = None,
        ssl: Optional[ssl_module.SSLContext] = None,
        transport: str = "auto",
        sse_ready_timeout: float = 5.0,
    ) -> None:
        if relay_url is None:
            relay_url = os.environ.get("LOBSTER_RELAY_URL") or DEFAULT_RELAY_URL
        if api_key is None:
            api_key = os.environ.get("LOBSTER_RELAY_API_KEY")
        if api_key is None or (isinstance(api_key, str) and not api_key.strip()):
            raise ConfigurationError(
                "no API key: pass api_key=... or set LOBSTER_RELAY_API_KEY "
                "(an agent's key, from `lobster-relay admin create-agent`)"
            )
        if not isinstance(api_key, str):
            raise ConfigurationError(f"api_key must be a string, not {type(api_key).__name__}")
        api_key = api_key.strip()
        if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in api_key):
            raise ConfigurationError("api_key holds spaces or control characters; check for stray quotes or newlines")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be an integer of at least 1, not {max_concurrency!r}")
        if not isinstance(reconnect, bool):
            raise ConfigurationError(f"reconnect must be True or False, not {reconnect!r}")
        for name, value in (("connect_timeout", connect_timeout), ("dedupe_ttl", dedupe_ttl)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}")
        if isinstance(dedupe_size, bool) or not isinstance(dedupe_size, int) or dedupe_size < 0:
            raise ConfigurationError(f"dedupe_size must be a non-negative integer, not {dedupe_size!r}")
        if logger is not None and not isinstance(logger, (logging.Logger, logging.LoggerAdapter)):
            raise ConfigurationError("logger must be a logging.Logger or LoggerAdapter")
        if transport not in TRANSPORTS:
            raise ConfigurationError(f"transport must be 'auto', 'ws', 'sse' or 'poll', not {transport!r}")
        if isinstance(sse_ready_timeout, bool) or not isinstance(sse_ready_timeout, (int, float)) or sse_ready_timeout <= 0:
            raise ConfigurationError(f"sse_ready_timeout must be a positive number of seconds, not {sse_ready_timeout!r}")
        self._transport_option = transport
        self._sse_ready_timeout = float(sse_ready_timeout)
        #: The transport the next attempt starts with: the last one that worked (auto), else the forced one.
        self._start_transport = "ws" if transport == "auto" else transport
        self._transport: Optional[str] = None
        self._fallback_reason: Optional[str] = None

        self.events: List[str] = parse_patterns(events)
        self.url: str = connect_url(relay_url, self.events)
        if ssl is not None:
            if not isinstance(ssl, ssl_module.SSLContext):
                raise ConfigurationError(f"ssl must be an ssl.SSLContext, not {type(ssl).__name__}")
            if not self.url.startswith("wss://"):
                raise ConfigurationError("ssl is for a wss:// (or https://) relay_url; this one is not TLS")
        self._ssl = ssl
        self._proxy: Optional[ProxyChoice] = choose_proxy(self.url, proxy)
        #: The proxy connections go through, as ``scheme://host:port`` (no credentials), or ``None``.
        self.proxy: Optional[str] = self._proxy.display if self._proxy else None
        self.relay_url: str = relay_url
        self.max_concurrency: int = max_concurrency
        self.reconnect: bool = reconnect
        self.connect_timeout: float = float(connect_timeout)
        self._api_key = api_key
        self._log: Union[logging.Logger, logging.LoggerAdapter[Any]] = logger or logging.getLogger(
            "powerlobster_webhook"
        )
        self._listeners: Dict[str, List[Tuple[Listener, bool]]] = {name: [] for name in EVENT_NAMES}
        self._recent = RecentIds(float(dedupe_ttl), dedupe_size)

        # Bound to the event loop on first use (connect()).
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._session: Optional[_Session] = None
        self._main: Optional[asyncio.Task[None]] = None
        self._first: Optional[asyncio.Future[ConnectedInfo]] = None
        self._stop: Optional[asyncio.Event] = None
        self._fatal: Optional[BaseException] = None
        self._closing = False
        self._closed = False
        self._close_task: Optional[asyncio.Future[None]] = None
        self._pending: Deque[Tuple[_Session, WebhookEvent]] = deque()
        self._active: Set[asyncio.Task[None]] = set()
        self._background: Set[asyncio.Future[Any]] = set()
        self._running: Dict[str, asyncio.Future[bool]] = {}
        self._unclaimed: OrderedDict[str, Tuple[_Session, WebhookEvent, asyncio.TimerHandle]] = OrderedDict()
        self._waiters: List[_Waiter] = []
        self._executor: Optional[ThreadPoolExecutor] = None
        self._was_connected = False  # since the last connect() call

    # ------------------------------------------------------------------
    # Listeners

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...

    @overload
    def on(self, event: str, handler: F) -> F: ...

    def on(self, event: str, handler: Optional[F] = None) -> Union[F, Callable[[F], F]]:
        """Registers ``handler`` for ``event``; without ``handler``, a decorator.

        ``webhook`` handlers take a :class:`WebhookEvent`; they may be
        ``async def`` functions (awaited on the event loop) or plain functions
        (run in a worker thread, as :func:`asyncio.to_thread` would, on a pool
        of ``max_concurrency`` threads, so they do not block the loop). The event is acked when every ``webhook`` handler has
        returned, and nacked with ``str(exception)`` as the reason when one
        raises. Other listeners are called on the event loop (plain functions
        directly, coroutines as tasks): keep them short.
        """
        if event not in EVENT_NAMES:
            raise ConfigurationError(f"unknown event {event!r}; use one of {', '.join(EVENT_NAMES)}")

        def register(fn: F) -> F:
            if not callable(fn):
                raise ConfigurationError(f"the {event!r} handler must be callable, not {type(fn).__name__}")
            self._listeners[event].append((fn, _is_async_callable(fn)))
            if event == "webhook" and self._unclaimed and self._loop is not None:
                self._loop.call_soon_threadsafe(self._claim_held_events)
            return fn

        if handler is None:
            return register
        return register(handler)

    def off(self, event: str, handler: Callable[..., Any]) -> None:
        """Removes a handler registered with :meth:`on` (no error if absent)."""
        if event not in EVENT_NAMES:
            raise ConfigurationError(f"unknown event {event!r}; use one of {', '.join(EVENT_NAMES)}")
        self._listeners[event] = [entry for entry in self._listeners[event] if entry[0] is not handler]

    def _emit(self, name: str, arg: Any) -> None:
        for fn, _ in list(self._listeners[name]):
            try:
                result = fn(arg)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._background.add(task)
                    task.add_done_callback(self._listener_done(name))
            except Exception as exc:
                self._listener_failed(name, exc)

    def _listener_done(self, name: str) -> Callable[[asyncio.Future[Any]], None]:
        def done(task: asyncio.Future[Any]) -> None:
            self._background.discard(task)
            if not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                assert exc is not None
                self._listener_failed(name, exc)

        return done

    def _listener_failed(self, name: str, exc: BaseException) -> None:
        self._log.error("a %r listener raised: %r", name, exc)
        if name != "error":
            error = ListenerError(f"a {name!r} listener raised: {exc!r}")
            error.__cause__ = exc
            self._emit("error", error)

    # ------------------------------------------------------------------
    # State

    @property
    def connected(self) -> bool:
        """True while a session is open."""
        return self._session is not None

    @property
    def info(self) -> Optional[ConnectedInfo]:
        """The current session's :class:`ConnectedInfo`, or ``None`` while disconnected."""
        return self._session.info if self._session is not None else None

    @property
    def webhook_url(self) -> Optional[str]:
        """The agent's webhook URL, once connected."""
        return self._session.info.webhook_url if self._session is not None else None

    @property
    def transport(self) -> Optional[str]:
        """The transport in use (``"ws"``, ``"sse"`` or ``"poll"``), or being
        tried while connecting; ``None`` before the first attempt."""
        return self._transport

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has finished."""
        return self._closed

    @property
    def state(self) -> str:
        """``idle``, ``connecting``, ``connected``, ``reconnecting``, ``closing`` or ``closed``."""
        if self._closed:
            return "closed"
        if self._closing:
            return "closing"
        if self._session is not None:
            return "connected"
        if self._main is None or self._main.done():
            return "closed" if self._fatal is not None else "idle"
        return "reconnecting" if self._was_connected else "connecting"

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self.connected else "disconnected"
        return f"<WebhookRelay {redact_url(self.url)} {state}>"

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._stop = asyncio.Event()
        elif self._loop is not loop:
            raise WebhookRelayError(
                "this WebhookRelay was first used on another event loop; create one per loop "
                "(relay.run() may be called only once)"
            )
        return loop

    # ------------------------------------------------------------------
    # Public lifecycle

    async def connect(self, *, timeout: Optional[float] = None) -> ConnectedInfo:
        """Opens a session and returns after the relay's ``ready`` frame.

        Then keeps the connection in the background: pings, reconnects (when
        ``reconnect``), delivers events to the handlers, until :meth:`close`.

        A refused key (HTTP 401/403, close 4001) or a revoked agent (4003)
        raises :class:`AuthenticationError` at once, never retried. A relay that
        cannot be reached (refused connection, HTTP 5xx, 429) is retried with
        backoff, emitting ``reconnecting``, for up to ``timeout`` seconds
        (default: the ``connect_timeout`` option, 30 s), then
        :class:`ConnectTimeoutError`; with ``reconnect=False``, or for answers
        a retry cannot change (HTTP 404, 400), :class:`RelayConnectionError`
        at once. Called while reconnecting, it returns at the next ``ready``.
        """
        loop = self._bind_loop()
        if self._closing:
            raise RelayClosedError("this WebhookRelay is closed; create a new one")
        if timeout is not None and (isinstance(timeout, bool) or timeout < 0):
            raise ConfigurationError("timeout must be a non-negative number of seconds or None")
        if self._session is not None:
            return self._session.info
        first = self._first
        if first is None or first.done():
            first = loop.create_future()
            first.add_done_callback(lambda f: None if f.cancelled() else f.exception())
            self._first = first
        if self._main is None or self._main.done():
            self._fatal = None
            self._was_connected = False
            assert self._stop is not None
            self._stop.clear()
            self._main = loop.create_task(self._run_main())
        if timeout is None:
            timeout = self.connect_timeout
        try:
            done, _ = await asyncio.wait({first}, timeout=timeout)
        except asyncio.CancelledError:
            if not first.done():
                await self._stop_main()
            raise
        if not done:
            await self._stop_main()
            last = f": last error: {self._last_connect_error}" if self._last_connect_error else ""
            raise ConnectTimeoutError(
                f"could not connect to the relay at {redact_url(self.url)} within {timeout:g} s{last}",
                code=getattr(self._last_connect_error, "code", None) or "connect_timeout",
            ) from self._last_connect_error
        return first.result()

    _last_connect_error: Optional[BaseException] = None

    async def run_forever(self) -> None:
        """Connects if needed, then handles events until :meth:`close` (returns)
        or a fatal error (raises it: :class:`AuthenticationError` when the agent
        is revoked, :class:`RelayConnectionError` when the connection is lost
        with ``reconnect=False``)."""
        if self._closing:
            raise RelayClosedError("this WebhookRelay is closed; create a new one")
        if self._main is None or (self._main.done() and self._session is None):
            await self.connect()
        main = self._main
        assert main is not None
        await asyncio.shield(main)
        if self._fatal is not None and not self._closing:
            raise self._fatal

    def run(self) -> None:
        """Connects and handles events until Ctrl-C or SIGTERM, then closes
        cleanly (handlers in flight finish and are acked). Blocks; runs its own
        event loop with :func:`asyncio.run`. Raises :class:`AuthenticationError`
        on a bad key or a revoked agent."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            installed = []
            for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
                if sig is None:
                    continue
                try:
                    loop.add_signal_handler(sig, stop.set)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass  # Windows, or not the main thread: KeyboardInterrupt still ends run()
            forever = loop.create_task(self.run_forever())
            stopper = loop.create_task(stop.wait())
            try:
                done, _ = await asyncio.wait({forever, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if forever in done:
                    forever.result()
                else:
                    self._log.info("stopping: finishing the handlers in flight, then closing")
            finally:
                stopper.cancel()
                await self.close()
                if not forever.done():
                    forever.cancel()
                await asyncio.gather(forever, stopper, return_exceptions=True)
                for sig in installed:
                    loop.remove_signal_handler(sig)

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass

    async def __aenter__(self) -> WebhookRelay:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    async def close(self, timeout: Optional[float] = None) -> None:
        """Stops taking events, lets the handlers in flight finish (at most
        ``timeout`` seconds, default unbounded) and acks or nacks them, then
        closes the WebSocket cleanly (code 1000). Events received but not
        started are left to the relay, which delivers them again. Idempotent."""
        if self._loop is None:
            self._closing = self._closed = True
            return
        if self._close_task is None:
            self._closing = True  # from now on, arriving events are left to the relay
            self._close_task = asyncio.ensure_future(self._close(timeout))
        if asyncio.current_task() in self._active:
            # Called from a webhook handler: close() waits for the handlers in
            # flight, this one included, so it cannot wait here. The close
            # goes on once this handler has returned (and its event is acked).
            return
        await asyncio.shield(self._close_task)

    async def _close(self, timeout: Optional[float]) -> None:
        self._closing = True
        self._pending.clear()
        for _, _, handle in self._unclaimed.values():
            handle.cancel()
        self._unclaimed.clear()
        busy = set(self._active) | {f for f in self._background if isinstance(f, asyncio.Task)}
        if busy:
            self._log.debug("closing: waiting for %d handler(s) in flight", len(self._active))
            await asyncio.wait(busy, timeout=timeout)
        session = self._session
        if session is not None:
            try:
                await session.link.close()
            except Exception:  # pragma: no cover - already gone
                pass
        await self._stop_main()
        self._fail_waiters(RelayClosedError("the WebhookRelay was closed"))
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._closed = True

    async def _stop_main(self) -> None:
        if self._stop is not None:
            self._stop.set()
        main = self._main
        if main is None or main.done():
            return
        if self._session is None:
            main.cancel()
        done, _ = await asyncio.wait({main}, timeout=HANDSHAKE_TIMEOUT)
        if not done:
            main.cancel()
            await asyncio.wait({main})

    # ------------------------------------------------------------------
    # wait()

    async def wait(
        self,
        events: Union[None, str, Sequence[str]] = None,
        timeout: Optional[float] = None,
    ) -> WebhookEvent:
        """Returns the next event whose type matches ``events`` (globs, as in
        the constructor; ``None`` for any), once it is acked. Connects first if
        needed. Raises :class:`WaitTimeoutError` (a ``TimeoutError``) after
        ``timeout`` seconds.

        With ``webhook`` handlers registered, the event is returned after they
        all succeeded (and it was acked); without, it is acked and returned.
        Events that arrive while nobody waits and no handler is registered are
        held unacked for up to 10 s for a later ``wait()``, then nacked so the
        relay delivers them again later.
        """
        patterns = parse_patterns(events)
        if timeout is not None and (isinstance(timeout, bool) or timeout < 0):
            raise ConfigurationError("timeout must be a non-negative number of seconds or None")
        loop = self._bind_loop()
        if self._closing:
            raise RelayClosedError("this WebhookRelay is closed; create a new one")
        deadline = None if timeout is None else loop.time() + timeout
        if self._main is None or (self._main.done() and self._session is None):
            try:
                await asyncio.wait_for(self.connect(), timeout)
            except asyncio.TimeoutError:
                raise WaitTimeoutError(f"could not connect within {timeout:g} s") from None
        match = compile_patterns(patterns)
        for event_id, (session, event, handle) in list(self._unclaimed.items()):
            if match is None or match.match(event.type):
                del self._unclaimed[event_id]
                handle.cancel()
                self._recent.add(event.id)
                await self._send(session, {"type": "ack", "id": event.id})
                return event
        waiter = _Waiter(match, loop.create_future())
        self._waiters.append(waiter)
        try:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            await asyncio.wait({waiter.future}, timeout=remaining)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        if waiter.future.done():
            return waiter.future.result()
        waiter.future.cancel()
        wanted = f" matching {','.join(patterns)}" if patterns else ""
        raise WaitTimeoutError(f"no event{wanted} within {timeout:g} s")

    def _take_waiters(self, event: WebhookEvent) -> List[_Waiter]:
        """Every pending wait() that wants ``event`` (each gets it)."""
        taken = [waiter for waiter in self._waiters if waiter.wants(event)]
        if taken:
            self._waiters = [waiter for waiter in self._waiters if waiter not in taken]
        return taken

    def _fail_waiters(self, exc: BaseException) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(exc)
                waiter.future.exception()  # retrieved; wait() re-raises it

    # ------------------------------------------------------------------
    # Connection loop

    def _settle_first(self, info: Optional[ConnectedInfo], exc: Optional[BaseException] = None) -> bool:
        """Answers a pending connect(); False when none was waiting."""
        first = self._first
        if first is None or first.done():
            return False
        if exc is not None:
            first.set_exception(exc)
        else:
            first.set_result(info)  # type: ignore[arg-type]
        return True

    async def _run_main(self) -> None:
        backoff = Backoff()
        attempt = 0
        delay: Optional[float] = None
        why: Optional[BaseException] = None
        try:
            while True:
                if delay is not None:
                    attempt += 1
                    self._emit("reconnecting", ReconnectingInfo(attempt=attempt, delay=delay, error=why))
                    if not await self._sleep(delay):
                        return
                try:
                    session = await self._open()
                except AuthenticationError:
                    raise
                except RelayConnectionError as exc:
                    if isinstance(exc, ProxyError) and exc.code in ("proxy_auth_failed", "proxy_auth_required"):
                        raise  # retrying cannot change the proxy's mind, even after a session

                    self._last_connect_error = why = exc
                    connecting = self._first is not None and not self._first.done()
                    if not self.reconnect or (connecting and not exc.retryable):
                        raise
                    if exc.code == "relay_restarting" and not backoff.restarting:
                        backoff.relay_restarting()
                    delay = backoff.next_delay()
                    if exc.retry_after is not None:
                        delay = max(delay, min(exc.retry_after, MAX_RETRY_AFTER))
                    self._log.info("could not connect: %s; retrying in %.2f s", exc, delay)
                    continue
                if self._closing:
                    await session.link.close()
                    return
                attempt = 0
                self._last_connect_error = why = None
                self._was_connected = True
                self._session = session
                via = ""
                if session.info.transport != "ws":
                    because = f" ({session.info.fallback_reason})" if session.info.fallback_reason else ""
                    via = f" via {_TRANSPORT_NAMES[session.info.transport]}{because}"
                self._log.info(
                    "connected to %s as %s (session %s)%s; webhook URL %s",
                    redact_url(self.relay_url),
                    session.info.agent_id,
                    session.info.session_id,
                    via,
                    session.info.webhook_url,
                )
                self._settle_first(session.info)
                self._emit("connected", session.info)

                code, reason = await self._serve(session)

                up_for = time.monotonic() - session.opened_at
                self._session = None
                self._pending.clear()
                self._drop_held(session)
                fatal = code in FATAL_CLOSE_CODES
                will_reconnect = self.reconnect and not fatal and not self._closing
                if self._closing:
                    self._log.info("disconnected (closed by this client)")
                    self._emit("disconnected", DisconnectedInfo(code=code, reason=reason, will_reconnect=False))
                    return
                said = f": {reason}" if reason else ""
                error: WebhookRelayError
                if fatal:
                    what = "this agent was revoked" if code == 4003 else "the relay refused the API key"
                    if reason and reason.lower() in what:
                        said = ""  # the relay said just that
                    error = AuthenticationError(
                        f"{what} (close code {code}){said}",
                        close_code=code,
                        code=session.last_error.code if session.last_error else "unauthorized",
                    )
                else:
                    error = RelayConnectionError(
                        f"connection lost (close code {code}{said})",
                        close_code=code,
                        code=session.last_error.code if session.last_error else None,
                    )
                self._log.warning(
                    "disconnected from the relay: code %d%s%s",
                    code,
                    f": {reason}" if reason else "",
                    "; reconnecting" if will_reconnect else "",
                )
                self._emit(
                    "disconnected",
                    DisconnectedInfo(code=code, reason=reason, will_reconnect=will_reconnect, error=error),
                )
                if not will_reconnect:
                    if not fatal:
                        error = RelayConnectionError(
                            f"the connection to the relay was lost (close code {code}{said}) and reconnect is off",
                            close_code=code,
                        )
                    raise error
                why = error
                backoff.connection_lasted(up_for)
                if code == CLOSE_RESTARTING:
                    backoff.relay_restarting()
                delay = backoff.next_delay()
        except asyncio.CancelledError:
            self._settle_first(None, RelayClosedError("connect() was interrupted: the WebhookRelay was closed"))
            raise
        except BaseException as exc:
            self._fatal = exc
            if not self._settle_first(None, exc):
                self._log.error("stopped: %s", exc)
                self._emit("error", exc)
            self._fail_waiters(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._session = None

    async def _sleep(self, delay: float) -> bool:
        """Sleeps ``delay`` seconds; False when close() interrupted it."""
        stop = self._stop
        assert stop is not None
        if self._closing:
            return False
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except asyncio.TimeoutError:
            return not self._closing
        return False

    async def _open(self) -> _Session:
        """Opens a session on the transport that last worked (or the forced
        one) and waits for ``ready``; with ``transport="auto"``, moves on to
        the next transport when one fails in a way the next may get around."""
        transport = self._start_transport
        if transport == "ws":
            self._fallback_reason = None
        while True:
            self._transport = transport
            try:
                if transport == "ws":
                    session = await self._open_ws()
                elif transport == "sse":
                    session = await self._open_sse()
                else:
                    session = await self._open_poll()
            except Exception as exc:
                reason = getattr(exc, "_fallback", None)
                following = _NEXT_TRANSPORT.get(transport)
                if reason is None or following is None or self._transport_option != "auto" or self._closing:
                    raise
                self._fallback_reason = reason
                self._log.warning("%s; falling back to %s", reason, _TRANSPORT_NAMES[following])
                self._emit("fallback", FallbackInfo(previous=transport, transport=following, reason=reason))
                transport = following
                continue
            self._start_transport = transport  # reconnects start with the transport that worked
            return session

    def _user_agent(self) -> str:
        return f"powerlobster-webhook-python/{_version()} websockets/{_WS_VERSION}"

    def _http_base(self) -> str:
        """``http(s)://host[:port][/prefix]``: the relay's base URL for the HTTP transports."""
        url = urllib.parse.urlsplit(self.url)
        scheme = "https" if url.scheme == "wss" else "http"
        path = url.path
        if path.endswith("/api/v1/agent/connect"):
            path = path[: -len("/api/v1/agent/connect")]
        return urllib.parse.urlunsplit((scheme, url.netloc, path, "", ""))

    async def _request(self, url: str, method: str, headers: List[Tuple[str, str]], body: Optional[bytes]) -> HttpAnswer:
        """One HTTP request to the relay, through the proxy if there is one."""
        user_agent = self._user_agent()
        proxy = self._proxy
        if proxy is not None and proxy.scheme == "https" and url.startswith("https:"):
            raise RelayConnectionError(
                f"the HTTP transports cannot reach an https:// relay through an https:// proxy ({proxy.display}) yet; "
                "use the proxy's http:// address, or transport='ws'",
                code="unsupported_proxy",
                retryable=False,
            )
        all_headers = [("Authorization", f"Bearer {self._api_key}"), ("User-Agent", user_agent), *headers]

        async def tunnel() -> socket.socket:
            assert proxy is not None
            return await self._tunnel(proxy, user_agent)

        try:
            return await open_request(url, method, all_headers, body, proxy=proxy, ssl=self._ssl, tunnel=tunnel)
        except (ConnectionRefusedError, socket.gaierror) as exc:
            if proxy is not None and url.startswith("http:"):
                raise ProxyError(
                    f"could not reach the proxy {proxy.display} ({proxy.source}) on the way to the relay: {exc}",
                    proxy=proxy.display,
                    code="proxy_unreachable",
                ) from exc
            raise

    def _http_refused(self, transport: str, status: int, headers: Dict[str, str], body: bytes) -> BaseException:
        """What an HTTP answer other than the session means, marked for a fallback
        when it is not the relay's own refusal."""
        code, _ = _error_body(body)
        proxy = self._proxy
        if proxy is not None and status == 407:
            return self._tunnel_refused(proxy, status, "Proxy Authentication Required")
        if proxy is not None and code is None and status >= 500:
            error: BaseException = ProxyError(
                f"the proxy {proxy.display} could not reach the relay at {self._authority()} (HTTP {status}); "
                "is the relay up and reachable from the proxy?",
                proxy=proxy.display,
                code="proxy_refused",
                status=status,
            )
        else:
            error = self._refused_answer(status, headers.get("retry-after"), body, transport)
        if status != 401 and code is None:
            what = "the SSE stream" if transport == "sse" else "the first poll"
            via = f", through the proxy {proxy.display}" if proxy else ", by a proxy?"
            _fallback(error, f"{what} was refused (HTTP {status}{via})")
        return error

    def _ready_info(self, frame: Dict[str, Any], transport: str) -> ConnectedInfo:
        protocol = frame.get("protocol", 1)
        if protocol != 1:
            self._log.warning("the relay speaks protocol %r; this SDK speaks 1", protocol)
        try:
            return ConnectedInfo(
                webhook_url=str(frame["webhook_url"]),
                agent_id=str(frame["agent_id"]),
                relay_id=str(frame["relay_id"]),
                session_id=str(frame["session_id"]),
                max_in_flight=int(frame.get("max_in_flight", 100)),
                ack_timeout_ms=int(frame.get("ack_timeout_ms", 30_000)),
                protocol=int(protocol) if isinstance(protocol, int) else 1,
                transport=transport,
                fallback_reason=self._fallback_reason if transport != "ws" else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RelayConnectionError(f"the relay's ready frame is malformed: {exc!r}") from None

    async def _open_sse(self) -> _Session:
        """Opens a Server-Sent Events stream and waits for ``ready``."""
        query = urllib.parse.urlsplit(self.url).query
        url = self._http_base() + "/api/v1/agent/stream" + (f"?{query}" if query else "")
        via = f" through the proxy {self._proxy.display}" if self._proxy else ""
        self._log.debug("connecting to %s (Server-Sent Events)%s", redact_url(url), via)
        # A stream that a proxy holds back (its headers too) brings no `ready`: long-poll then.
        wait = self._sse_ready_timeout if self._transport_option == "auto" else HANDSHAKE_TIMEOUT
        started = time.monotonic()
        held_back = _fallback(
            RelayConnectionError(f"no ready message on the SSE stream within {wait:g} s"),
            f"no ready message on the SSE stream within {wait:g} s (a proxy buffering the stream?)",
        )
        try:
            answer = await asyncio.wait_for(
                self._request(url, "GET", [("Accept", "text/event-stream"), ("Cache-Control", "no-cache")], None),
                wait,
            )
        except asyncio.TimeoutError:
            raise held_back from None
        except WebhookRelayError:
            raise  # a ProxyError (a ConnectionError, so an OSError) keeps its code
        except (OSError, ssl_module.SSLError) as exc:
            raise RelayConnectionError(f"cannot connect to {redact_url(url)}{via}: {exc}") from exc
        if answer.status != 200 or not answer.headers.get("content-type", "").startswith("text/event-stream"):
            try:
                body = await asyncio.wait_for(answer.read_all(64 * 1024), 5.0)
            except Exception:
                body = b""
            finally:
                answer.close()
            raise self._http_refused("sse", answer.status, answer.headers, body)
        link = SseLink(self._http_base(), answer, self._request, self._log.debug, SSE_IDLE_TIMEOUT)
        try:
            return await asyncio.wait_for(self._await_ready(link), max(0.0, wait - (time.monotonic() - started)))
        except asyncio.TimeoutError:
            link.abort()
            raise held_back from None
        except BaseException:
            link.abort()
            raise

    async def _open_poll(self) -> _Session:
        """Opens a long-poll session: the first poll answers at once with ``ready``."""
        query = urllib.parse.urlsplit(self.url).query
        url = self._http_base() + "/api/v1/agent/poll?wait=0" + (f"&{query}" if query else "")
        via = f" through the proxy {self._proxy.display}" if self._proxy else ""
        self._log.debug("connecting to %s (long-poll)%s", redact_url(url), via)
        try:
            answer = await asyncio.wait_for(self._request(url, "GET", [("Accept", "application/json")], None), HANDSHAKE_TIMEOUT)
            try:
                body = await asyncio.wait_for(answer.read_all(), HANDSHAKE_TIMEOUT)
            finally:
                answer.close()
        except asyncio.TimeoutError:
            raise RelayConnectionError(f"no answer from {redact_url(url)}{via} within {HANDSHAKE_TIMEOUT:g} s") from None
        except WebhookRelayError:
            raise  # a ProxyError (a ConnectionError, so an OSError) keeps its code
        except (OSError, ssl_module.SSLError, asyncio.IncompleteReadError, ValueError) as exc:
            raise RelayConnectionError(f"cannot connect to {redact_url(url)}{via}: {exc}") from exc
        data: Any = None
        if answer.status == 200:
            try:
                data = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                data = None
        if not isinstance(data, dict) or not isinstance(data.get("session_id"), str) or not isinstance(data.get("ready"), dict):
            raise self._http_refused("poll", answer.status, answer.headers, body)
        events = [frame for frame in data.get("events") or [] if isinstance(frame, dict)]
        link = PollLink(self._http_base(), data["session_id"], events, self._request, self._log.debug)
        return _Session(link, self._ready_info(data["ready"], "poll"))

    async def _open_ws(self) -> _Session:
        """Opens a WebSocket and waits for ``ready``."""
        headers = [("Authorization", f"Bearer {self._api_key}")]
        user_agent = self._user_agent()
        proxy = self._proxy
        # websockets reads the proxy variables itself unless told: the SDK
        # chose already (None: connect directly).
        extra: Dict[str, Any] = {"proxy": None}
        if self._ssl is not None:
            extra["ssl"] = self._ssl
        via = f" through the proxy {proxy.display}" if proxy else ""
        sock: Optional[socket.socket] = None
        if proxy is not None:
            self._log.debug("connecting to %s through the proxy %s (%s)", redact_url(self.url), proxy.display, proxy.source)
            if proxy.scheme == "http":
                try:
                    sock = extra["sock"] = await self._tunnel(proxy, user_agent)
                except ProxyError as exc:
                    if exc.status is not None and exc.status not in (401, 407):
                        raise _fallback(exc, f"the proxy {proxy.display} refused the tunnel for the WebSocket upgrade (HTTP {exc.status})")
                    raise
            else:
                extra["proxy"] = proxy.url  # https://: TLS to the proxy, websockets tunnels
        try:
            try:
                ws = await ws_connect(
                    self.url,
                    additional_headers=headers,
                    user_agent_header=user_agent,
                    open_timeout=HANDSHAKE_TIMEOUT,
                    ping_interval=PING_INTERVAL,
                    ping_timeout=PING_TIMEOUT,
                    close_timeout=5,
                    max_size=MAX_FRAME,
                    compression=None,
                    **extra,
                )
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
        except InvalidStatus as exc:
            raise self._refused(exc) from None
        except InvalidProxyStatus as exc:
            assert proxy is not None
            status = exc.response.status_code
            refusal = self._tunnel_refused(proxy, status, exc.response.reason_phrase)
            if status not in (401, 407):
                _fallback(refusal, f"the proxy {proxy.display} refused the tunnel for the WebSocket upgrade (HTTP {status})")
            raise refusal from None
        except InvalidProxyMessage as exc:
            assert proxy is not None
            why = f"{exc}: {exc.__cause__}" if exc.__cause__ else str(exc)
            hint = (
                "websockets before 16 (all Python 3.9 gets) refuses a proxy's HTTP/1.0 answer: "
                "upgrade websockets, or use the proxy's http:// address"
                if "HTTP/1.0" in why
                else "is it an HTTP proxy?"
            )
            raise ProxyError(
                f"the proxy {proxy.display} ({proxy.source}) gave an answer to the tunnel request that "
                f"websockets {_WS_VERSION} cannot read ({why}); {hint}",
                proxy=proxy.display,
                code="proxy_refused",
                retryable=False,
            ) from None
        except asyncio.TimeoutError:
            raise _fallback(
                RelayConnectionError(f"no answer from {redact_url(self.url)}{via} within {HANDSHAKE_TIMEOUT:g} s"),
                f"no answer to the WebSocket upgrade within {HANDSHAKE_TIMEOUT:g} s",
            ) from None
        except ssl_module.SSLError as exc:
            raise RelayConnectionError(f"cannot connect to {redact_url(self.url)}{via}: {exc}") from exc
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, EOFError) as exc:
            raise _fallback(
                RelayConnectionError(f"cannot connect to {redact_url(self.url)}{via}: {exc!r}"),
                f"the connection was cut during the WebSocket upgrade ({exc!r})",
            ) from exc
        except OSError as exc:
            if proxy is not None and sock is None:
                # websockets' connection to an https:// proxy (a refusal of the
                # tunnel is InvalidProxyStatus, TLS inside it SSLError).
                raise ProxyError(
                    f"could not reach the proxy {proxy.display} ({proxy.source}) on the way to the relay: {exc}",
                    proxy=proxy.display,
                    code="proxy_unreachable",
                ) from exc
            raise RelayConnectionError(f"cannot connect to {redact_url(self.url)}{via}: {exc}") from exc
        except WebSocketException as exc:
            # An answer that is not a WebSocket upgrade (a proxy in the way), or a cut connection.
            raise _fallback(
                RelayConnectionError(f"cannot connect to {redact_url(self.url)}{via}: {exc}"),
                f"the WebSocket upgrade failed ({exc})",
            ) from exc
        link = _WsLink(ws, self._decode, lambda: self._closing)
        try:
            return await asyncio.wait_for(self._await_ready(link), HANDSHAKE_TIMEOUT)
        except asyncio.TimeoutError:
            await ws.close(1000, "no ready frame")
            raise _fallback(
                RelayConnectionError(f"the relay opened the WebSocket but sent no ready frame within {HANDSHAKE_TIMEOUT:g} s"),
                f"the WebSocket opened but no ready frame came within {HANDSHAKE_TIMEOUT:g} s",
            ) from None
        except BaseException:
            try:
                ws.transport.abort()
            except Exception:  # pragma: no cover
                pass
            raise

    def _refused(self, exc: InvalidStatus) -> WebhookRelayError:
        response = exc.response
        status = response.status_code
        body = bytes(response.body) if response.body is not None else b""
        error = self._refused_answer(status, response.headers.get("Retry-After"), body, "ws")
        code, _ = _error_body(body)
        if status != 401 and (code is None or code == "websocket_required"):
            via = f", through the proxy {self._proxy.display}" if self._proxy else ", by a proxy?"
            _fallback(error, f"the WebSocket upgrade was refused (HTTP {status}{' ' + code if code else ''}{via})")
        return error

    def _refused_answer(self, status: int, retry_after_header: Optional[str], body: bytes, transport: str) -> WebhookRelayError:
        """What the relay's (or a proxy's) HTTP answer instead of a session means."""
        code, message = _error_body(body)
        said = f": {message}" if message else ""
        if status in (401, 403):
            return AuthenticationError(
                f"the relay refused the API key (HTTP {status}{', ' + code if code else ''}){said}; "
                "check api_key / LOBSTER_RELAY_API_KEY, or ask the relay admin for a new key",
                status=status,
                code=code,
            )
        retry_after = _retry_after(retry_after_header)
        retryable = status in (408, 429) or status >= 500
        if status == 429:
            text = (
                "the relay refused another session (HTTP 429"
                f"{', ' + code if code else ''}){said}"
            )
        elif retryable:
            text = f"the relay answered HTTP {status}{said}"
        else:
            text = (
                f"the relay answered HTTP {status} instead of opening {'a WebSocket' if transport == 'ws' else 'a session'}{said}; "
                f"is relay_url the relay's base URL? (connecting to {redact_url(self.url)})"
            )
        return RelayConnectionError(
            text, status=status, code=code or f"http_{status}", retry_after=retry_after, retryable=retryable
        )

    def _authority(self) -> str:
        """The relay's ``host:port``, as a CONNECT names it."""
        url = urllib.parse.urlsplit(self.url)
        host = f"[{url.hostname}]" if url.hostname and ":" in url.hostname else url.hostname
        return f"{host}:{url.port or (443 if url.scheme == 'wss' else 80)}"

    async def _tunnel(self, proxy: ProxyChoice, user_agent: str) -> socket.socket:
        """A socket tunnelled through the ``http://`` proxy to the relay."""
        try:
            return await asyncio.wait_for(open_tunnel(proxy, self._authority(), user_agent), HANDSHAKE_TIMEOUT)
        except TunnelRefused as exc:
            raise self._tunnel_refused(proxy, exc.status, exc.reason) from None
        except BadTunnelAnswer as exc:
            raise ProxyError(
                f"the proxy {proxy.display} ({proxy.source}) did not answer the tunnel request with HTTP ({exc}); "
                "is it an HTTP proxy?",
                proxy=proxy.display,
                code="proxy_refused",
                retryable=exc.transient,
            ) from None
        except asyncio.TimeoutError:
            raise ProxyError(
                f"no answer from the proxy {proxy.display} ({proxy.source}) within {HANDSHAKE_TIMEOUT:g} s",
                proxy=proxy.display,
                code="proxy_unreachable",
            ) from None
        except OSError as exc:
            raise ProxyError(
                f"could not reach the proxy {proxy.display} ({proxy.source}) on the way to the relay: {exc}",
                proxy=proxy.display,
                code="proxy_unreachable",
            ) from exc

    def _tunnel_refused(self, proxy: ProxyChoice, status: int, reason: str) -> ProxyError:
        """What the proxy's refusal of the tunnel (its answer to CONNECT) means."""
        said = f"HTTP {status}{' ' + reason if reason else ''}"
        # 407 is the standard answer; some proxies (tinyproxy) answer wrong credentials with 401.
        if status in (401, 407):
            if proxy.has_credentials:
                return ProxyError(
                    f"the proxy {proxy.display} refused the credentials in {proxy.source} ({said}); "
                    "check the user name and password there",
                    proxy=proxy.display,
                    code="proxy_auth_failed",
                    status=status,
                    retryable=False,
                )
            return ProxyError(
                f"the proxy {proxy.display} ({proxy.source}) wants credentials ({said}); "
                "give them in the URL: http://user:password@host:port",
                proxy=proxy.display,
                code="proxy_auth_required",
                status=status,
                retryable=False,
            )
        target = self._authority()
        if status >= 500 or status in (408, 429):
            return ProxyError(
                f"the proxy {proxy.display} could not open a tunnel to {target} ({said}); "
                "is the relay up and reachable from the proxy?",
                proxy=proxy.display,
                code="proxy_refused",
                status=status,
            )
        return ProxyError(
            f"the proxy {proxy.display} refused a tunnel to {target} ({said}); "
            "it may not allow CONNECT to that host or port",
            proxy=proxy.display,
            code="proxy_refused",
            status=status,
            retryable=False,
        )

    async def _await_ready(self, link: Link) -> _Session:
        last_error: Optional[RelayErrorFrame] = None
        while True:
            try:
                frame = await link.recv()
            except LinkClosed as closed:
                code = closed.code
                reason = closed.reason if code != 1006 or not last_error else last_error.relay_message
                if code in FATAL_CLOSE_CODES:
                    raise AuthenticationError(
                        f"the relay closed the session before ready (code {code}){': ' + reason if reason else ''}",
                        close_code=code,
                        code=last_error.code if last_error else None,
                    ) from None
                error = RelayConnectionError(
                    f"the relay closed the connection before ready (code {code}){': ' + reason if reason else ''}",
                    close_code=code,
                    code="relay_restarting" if code == CLOSE_RESTARTING else None,
                )
                if code == 1006 and link.transport == "ws":
                    _fallback(error, "the WebSocket closed before the relay's ready frame")
                raise error from None
            kind = frame.get("type")
            if kind == "error":
                last_error = RelayErrorFrame(str(frame.get("code", "")), str(frame.get("message", "")))
                self._log.info("the relay reported: %s", last_error)
                continue
            if kind != "ready":
                if isinstance(link, _WsLink):
                    await link.ws.close(1002, "expected a ready frame")
                else:
                    link.abort()
                raise RelayConnectionError(f"the relay's first frame was {kind!r}, not 'ready'")
            try:
                info = self._ready_info(frame, link.transport)
            except RelayConnectionError:
                if isinstance(link, _WsLink):
                    await link.ws.close(1002, "malformed ready frame")
                else:
                    link.abort()
                raise
            return _Session(link, info)

    def _decode(self, raw: Union[str, bytes]) -> Optional[Dict[str, Any]]:
        if isinstance(raw, bytes):
            self._log.debug("ignoring a binary frame from the relay")
            return None
        try:
            frame = json.loads(raw)
        except ValueError:
            self._log.warning("ignoring a frame from the relay that is not JSON")
            return None
        if not isinstance(frame, dict):
            self._log.warning("ignoring a frame from the relay that is not a JSON object")
            return None
        return frame

    async def _serve(self, session: _Session) -> Tuple[int, str]:
        """Reads frames until the session ends; returns the close code and reason."""
        link = session.link
        while True:
            try:
                frame = await link.recv()
            except LinkClosed as closed:
                code, reason = closed.code, closed.reason
                if session.last_error is not None and (not reason or code in FATAL_CLOSE_CODES):
                    reason = session.last_error.relay_message or reason
                return code, reason
            kind = frame.get("type")
            if kind == "event":
                self._on_event(session, frame)
            elif kind == "error":
                error = RelayErrorFrame(str(frame.get("code", "")), str(frame.get("message", "")))
                session.last_error = error  # explains the close that follows
                self._log.info("the relay reported: %s", error)
            # "ready" again, or types added by later protocol versions: ignored.

    # ------------------------------------------------------------------
    # Events

    def _on_event(self, session: _Session, frame: Dict[str, Any]) -> None:
        if self._closing:
            return  # the relay delivers it again after the close
        try:
            event = WebhookEvent.from_frame(frame)
        except ValueError as exc:
            event_id = frame.get("id")
            self._log.error("cannot read an event frame from the relay: %s", exc)
            self._emit("error", WebhookRelayError(f"cannot read an event frame: {exc}"))
            if isinstance(event_id, str):
                self._spawn(self._send(session, {"type": "nack", "id": event_id, "reason": f"SDK cannot read the frame: {exc}"}))
            return
        if not event.replay:
            if event.id in self._recent:
                self._log.debug("event %s (attempt %d) was handled already; acking it again", event.id, event.attempt)
                self._spawn(self._send(session, {"type": "ack", "id": event.id}))
                return
            running = self._running.get(event.id)
            if running is not None:
                self._spawn(self._answer_when_done(session, event.id, running))
                return
        if self._listeners["webhook"]:
            self._pending.append((session, event))
            self._pump()
            return
        waiters = self._take_waiters(event)
        if waiters:
            self._recent.add(event.id)
            self._spawn(self._send(session, {"type": "ack", "id": event.id}))
            for waiter in waiters:
                waiter.future.set_result(event)
            return
        self._hold(session, event)

    def _pump(self) -> None:
        loop = self._loop
        assert loop is not None
        while self._pending and len(self._active) < self.max_concurrency:
            session, event = self._pending.popleft()
            if session is not self._session:
                continue
            task = loop.create_task(self._process(session, event))
            self._active.add(task)
            task.add_done_callback(self._processed)

    def _processed(self, task: asyncio.Task[None]) -> None:
        self._active.discard(task)
        if not task.cancelled() and task.exception() is not None:  # pragma: no cover - a bug
            self._log.error("internal error while handling an event: %r", task.exception())
        if not self._closing:
            self._pump()

    async def _process(self, session: _Session, event: WebhookEvent) -> None:
        loop = self._loop
        assert loop is not None
        done: asyncio.Future[bool] = loop.create_future()
        mine = event.id not in self._running
        if mine:
            self._running[event.id] = done
        try:
            error = await self._call_handlers(event)
        finally:
            if mine:
                del self._running[event.id]
        if error is None:
            self._recent.add(event.id)
            done.set_result(True)
            if not await self._send(session, {"type": "ack", "id": event.id}):
                self._log.debug("event %s handled, but its session is gone: it is acked when redelivered", event.id)
            for waiter in self._take_waiters(event):
                waiter.future.set_result(event)
        else:
            done.set_result(False)
            reason = str(error) or type(error).__name__
            if len(reason) > MAX_REASON:
                reason = reason[: MAX_REASON - 3] + "..."
            failure = HandlerError(
                f"webhook handler failed for {event.id} ({event.type}, attempt {event.attempt}): {reason}; "
                "nacked, the relay retries it",
                event.id,
                event.attempt,
            )
            failure.__cause__ = error
            self._log.warning("%s", failure)
            await self._send(session, {"type": "nack", "id": event.id, "reason": reason})
            self._emit("error", failure)

    async def _call_handlers(self, event: WebhookEvent) -> Optional[BaseException]:
        handlers = list(self._listeners["webhook"])
        if len(handlers) == 1:
            try:
                await self._invoke(handlers[0], event)
            except Exception as exc:
                return exc
            return None
        results = await asyncio.gather(*(self._invoke(h, event) for h in handlers), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                return result
        return None

    async def _invoke(self, handler: Tuple[Listener, bool], event: WebhookEvent) -> None:
        fn, is_async = handler
        if is_async:
            result = fn(event)
        else:
            # Like asyncio.to_thread, on a pool of max_concurrency threads of
            # our own (the loop's default pool has only cpu_count + 4).
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.max_concurrency, thread_name_prefix="powerlobster-webhook"
                )
            loop = asyncio.get_running_loop()
            call = functools.partial(contextvars.copy_context().run, fn, event)
            result = await loop.run_in_executor(self._executor, call)
        if inspect.isawaitable(result):
            await result

    async def _answer_when_done(self, session: _Session, event_id: str, running: asyncio.Future[bool]) -> None:
        """A redelivery of an event whose handlers are still running (from an
        earlier session): answer it when they finish."""
        ok = await asyncio.shield(running)
        if ok:
            await self._send(session, {"type": "ack", "id": event_id})
        else:
            await self._send(session, {"type": "nack", "id": event_id, "reason": "handler failed"})

    def _hold(self, session: _Session, event: WebhookEvent) -> None:
        loop = self._loop
        assert loop is not None
        hold_for = max(0.1, min(10.0, session.info.ack_timeout_ms / 2000.0))
        if not self._unclaimed:
            self._log.debug("no 'webhook' handler and no wait() for event %s; holding it", event.id)
        handle = loop.call_later(hold_for, self._release_held, event.id)
        self._unclaimed[event.id] = (session, event, handle)

    def _release_held(self, event_id: str) -> None:
        entry = self._unclaimed.pop(event_id, None)
        if entry is None:
            return
        session, event, _ = entry
        self._log.warning(
            "event %s (%s) arrived with no 'webhook' handler registered and no wait() for it; "
            "nacked, the relay delivers it again later",
            event.id,
            event.type,
        )
        self._spawn(
            self._send(session, {"type": "nack", "id": event.id, "reason": "no webhook handler registered"})
        )

    def _drop_held(self, session: _Session) -> None:
        for event_id, (owner, _, handle) in list(self._unclaimed.items()):
            if owner is session:
                handle.cancel()
                del self._unclaimed[event_id]

    def _claim_held_events(self) -> None:
        held = list(self._unclaimed.values())
        self._unclaimed.clear()
        for session, event, handle in held:
            handle.cancel()
            if session is self._session and not self._closing:
                self._pending.append((session, event))
        self._pump()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send(self, session: _Session, frame: Dict[str, Any]) -> bool:
        """Sends an ack/nack on ``session`` if it is still the live one."""
        if session is not self._session:
            return False  # the relay delivers the event again; dedupe acks it then
        try:
            return await session.link.answer(frame)
        except Exception as exc:  # pragma: no cover - transport trouble
            self._log.debug("could not send %s: %r", frame.get("type"), exc)
            return False
