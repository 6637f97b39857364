"""The HTTP transports for networks that refuse WebSocket upgrades:
Server-Sent Events (``GET /api/v1/agent/stream``) and long-poll
(``GET /api/v1/agent/poll``), both answered by batched ``POST
/api/v1/agent/stream/{session_id}/acks`` (docs/api-reference.md, "HTTP
sessions"). They carry the WebSocket's JSON frames unchanged.

A small HTTP/1.1 client on asyncio streams (one connection per request,
``Connection: close``), so the SDK needs nothing but websockets. Requests
go through the same proxy as the WebSocket: ``https://`` relays through a
CONNECT tunnel (the relay's TLS inside it), ``http://`` relays as ordinary
forward-proxy requests (the absolute URI to the proxy, as curl does), both
with the proxy's basic auth.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl as ssl_module
import urllib.parse
from typing import Any, Awaitable, Callable, Deque, Dict, List, Optional, Tuple

from collections import deque

from ._proxy import ProxyChoice

__all__ = ["HttpAnswer", "LinkClosed", "SseLink", "PollLink", "open_request"]

#: Largest answer header accepted.
MAX_HEAD = 64 * 1024
#: Largest poll answer accepted (up to max_in_flight events).
MAX_BODY = 256 * 1024 * 1024


class LinkClosed(Exception):
    """The session ended: ``code`` as a WebSocket close code (1000, 1006, 1012, 4001, 4003)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class HttpAnswer:
    """An HTTP answer whose body is read on demand."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self._reader = reader
        self._writer = writer
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._left: Optional[int] = int(length) if length and length.strip().isdigit() and not self._chunked else None
        self._done = False

    async def chunk(self) -> bytes:
        """The next piece of the body; ``b""`` at its end."""
        if self._done:
            return b""
        reader = self._reader
        if self._chunked:
            line = await reader.readline()
            if not line:
                raise ConnectionResetError("the answer was cut short")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                self._done = True
                return b""
            data = await reader.readexactly(size)
            await reader.readexactly(2)
            return data
        if self._left is not None:
            if self._left == 0:
                self._done = True
                return b""
            data = await reader.read(min(self._left, 65536))
            if not data:
                raise ConnectionResetError("the answer was cut short")
            self._left -= len(data)
            return data
        data = await reader.read(65536)
        if not data:
            self._done = True
        return data

    async def read_all(self, limit: int = MAX_BODY) -> bytes:
        parts: List[bytes] = []
        size = 0
        while True:
            data = await self.chunk()
            if not data:
                return b"".join(parts)
            size += len(data)
            if size > limit:
                raise ValueError(f"an answer over {limit} bytes")
            parts.append(data)

    def close(self) -> None:
        try:
            self._writer.transport.abort()
        except Exception:  # pragma: no cover - already gone
            pass




async def open_request(
    url: str,
    method: str,
    headers: List[Tuple[str, str]],
    body: Optional[bytes],
    *,
    proxy: Optional[ProxyChoice],
    ssl: Optional[ssl_module.SSLContext],
    tunnel: Callable[[], Awaitable[Any]],
) -> HttpAnswer:
    """Sends one request to the relay and reads the answer's head.

    ``tunnel`` opens the CONNECT tunnel to the relay (a socket) for an
    ``https://`` relay behind a proxy; it raises the SDK's ProxyError when
    the proxy refuses.
    """
    target = urllib.parse.urlsplit(url)
    secure = target.scheme == "https"
    host = target.hostname or ""
    port = target.port or (443 if secure else 80)
    path = (target.path or "/") + (f"?{target.query}" if target.query else "")
    lines_headers = list(headers)
    if proxy is not None and secure:
        sock = await tunnel()
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=ssl or ssl_module.create_default_context(), server_hostname=host
        )
    elif proxy is not None:
        proxy_ssl = ssl_module.create_default_context() if proxy.scheme == "https" else None
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port, ssl=proxy_ssl)
        path = url
        if proxy.has_credentials:
            token = base64.b64encode(f"{proxy.user}:{proxy.password}".encode()).decode()
            lines_headers.append(("Proxy-Authorization", f"Basic {token}"))
    else:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=(ssl or ssl_module.create_default_context()) if secure else None
        )
    try:
        shown_host = f"[{host}]" if ":" in host else host
        default_port = 443 if secure else 80
        authority = shown_host if port == default_port else f"{shown_host}:{port}"
        head = [f"{method} {path} HTTP/1.1", f"Host: {authority}", "Connection: close"]
        head += [f"{name}: {value}" for name, value in lines_headers]
        if body is not None:
            head.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b""))
        await writer.drain()
        raw = await reader.readuntil(b"\r\n\r\n")
        if len(raw) > MAX_HEAD:
            raise ConnectionResetError("an answer header over 64 KiB")
        text = raw.decode("latin-1").split("\r\n")
        parts = text[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ConnectionResetError(f"not an HTTP answer: {text[0][:80]!r}")
        answer_headers: Dict[str, str] = {}
        for line in text[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                answer_headers[name.strip().lower()] = value.strip()
        return HttpAnswer(int(parts[1]), parts[2] if len(parts) > 2 else "", answer_headers, reader, writer)
    except asyncio.IncompleteReadError:
        writer.transport.abort()
        raise ConnectionResetError("the connection closed before an answer") from None
    except BaseException:
        writer.transport.abort()
        raise


Request = Callable[[str, str, List[Tuple[str, str]], Optional[bytes]], Awaitable[HttpAnswer]]
Debug = Callable[[str], None]

#: Tries of one batch of answers on 503 or a network error.
ANSWER_TRIES = 5
#: Most answers in one acks request (the relay takes up to 10,000).
MAX_BATCH = 5000


class _HttpLink:
    """What both HTTP transports share: the acks batching and the end of the session."""

    transport = "http"

    def __init__(self, base: str, session_id: str, request: Request, debug: Debug) -> None:
        self._base = base.rstrip("/")
        self.session_id = session_id
        self._request = request
        self._debug = debug
        self._pending: List[Dict[str, Any]] = []
        self._flusher: Optional[asyncio.Task[None]] = None
        self._ended: Optional[LinkClosed] = None
        self._closing = False
        self._current: Optional[HttpAnswer] = None

    def is_open(self) -> bool:
        return self._ended is None and not self._closing

    async def answer(self, frame: Dict[str, Any]) -> bool:
        """Queues an ack or nack; answers given together go in one request."""
        if self._ended is not None:
            return False
        self._pending.append(frame)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return True

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let answers given in the same turn join the batch
        while self._pending and self._ended is None:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            for attempt in range(1, ANSWER_TRIES + 1):
                outcome = await self._post(batch)
                if outcome == "done" or self._ended is not None:
                    break
                if outcome == "gone":
                    self.end(1006, "the relay no longer knows this session (404 session_not_found)")
                    return
                if attempt == ANSWER_TRIES:
                    self._debug(f"giving up on {len(batch)} answer(s); the relay redelivers them after the ack timeout")
                    break
                await asyncio.sleep(0.1 * attempt)

    async def _post(self, batch: List[Dict[str, Any]]) -> str:
        acks = [{"id": f["id"]} for f in batch if f.get("type") == "ack"]
        nacks = [{"id": f["id"], "reason": f.get("reason", "")} for f in batch if f.get("type") == "nack"]
        body = json.dumps({"acks": acks, "nacks": nacks}, separators=(",", ":")).encode()
        url = f"{self._base}/api/v1/agent/stream/{urllib.parse.quote(self.session_id, safe='')}/acks"
        try:
            answer = await asyncio.wait_for(
                self._request(url, "POST", [("Content-Type", "application/json")], body), 30.0
            )
            try:
                await asyncio.wait_for(answer.read_all(64 * 1024), 30.0)
            finally:
                answer.close()
        except Exception as exc:
            self._debug(f"could not send answers: {exc!r}")
            return "retry"
        if answer.status == 200:
            return "done"
        if answer.status == 404:
            return "gone"
        if answer.status in (429, 503) or answer.status >= 500:
            return "retry"
        self._debug(f"the relay refused {len(batch)} answer(s) with HTTP {answer.status}")
        return "done"

    def end(self, code: int, reason: str) -> None:
        if self._ended is None:
            self._ended = LinkClosed(code, reason)
        if self._current is not None:
            self._current.close()

    async def close(self) -> None:
        """Sends the answers given so far (5 s at most), then ends the session."""
        self._closing = True
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            await asyncio.wait({flusher}, timeout=5.0)
        self.end(1000, "closed by the client")

    def abort(self) -> None:
        self.end(1006, "dropped by the client")


def _close_code(frame: Dict[str, Any]) -> Optional[int]:
    if frame.get("type") != "error":
        return None
    return {"agent_revoked": 4003, "relay_restarting": 1012}.get(str(frame.get("code")), 1011)


class SseLink(_HttpLink):
    """A Server-Sent Events session: frames from one streamed answer."""

    transport = "sse"

    def __init__(self, base: str, answer: HttpAnswer, request: Request, debug: Debug, idle_timeout: float) -> None:
        super().__init__(base, "", request, debug)
        self._current = answer
        self._buffer = b""
        self._data: List[str] = []
        self._frames: Deque[Dict[str, Any]] = deque()
        self._idle = idle_timeout
        self._close_code = 1006
        self._close_reason = "the event stream ended"

    async def recv(self) -> Dict[str, Any]:
        while True:
            if self._frames:
                return self._frames.popleft()
            if self._ended is not None:
                raise self._ended
            assert self._current is not None
            try:
                data = await asyncio.wait_for(self._current.chunk(), self._idle)
            except asyncio.TimeoutError:
                self.end(1006, f"nothing from the relay on the SSE stream for {self._idle:g} s")
                continue
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self.end(self._close_code, self._close_reason if self._close_code != 1006 else f"the event stream failed: {exc}")
                continue
            if not data:
                self.end(self._close_code, self._close_reason)
                continue
            self._buffer += data
            while b"\n" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\n", 1)
                line = raw.rstrip(b"\r").decode("utf-8", "replace")
                if line == "":
                    if self._data:
                        self._message("\n".join(self._data))
                    self._data = []
                elif line.startswith("data:"):
                    value = line[5:]
                    self._data.append(value[1:] if value.startswith(" ") else value)
                # `id:`, comments (keep-alives) and other fields: nothing to do.

    def _message(self, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            self._debug("ignoring a stream message that is not JSON")
            return
        if not isinstance(frame, dict):
            return
        if frame.get("type") == "ready" and isinstance(frame.get("session_id"), str):
            self.session_id = frame["session_id"]
        code = _close_code(frame)
        if code is not None:
            self._close_code = code
            self._close_reason = str(frame.get("message") or frame.get("code") or "")
        self._frames.append(frame)


#: Seconds a poll waits for events.
POLL_WAIT = 25


class PollLink(_HttpLink):
    """A long-poll session: one waiting request after the other."""

    transport = "poll"

    def __init__(self, base: str, session_id: str, frames: List[Dict[str, Any]], request: Request, debug: Debug) -> None:
        super().__init__(base, session_id, request, debug)
        self._frames: Deque[Dict[str, Any]] = deque(frames)
        self._inflight: Optional[asyncio.Future[Tuple[HttpAnswer, bytes]]] = None

    async def _fetch(self) -> Tuple[HttpAnswer, bytes]:
        query = urllib.parse.urlencode({"session_id": self.session_id, "wait": str(POLL_WAIT)})
        url = f"{self._base}/api/v1/agent/poll?{query}"
        answer = await asyncio.wait_for(self._request(url, "GET", [("Accept", "application/json")], None), POLL_WAIT + 15)
        try:
            body = await asyncio.wait_for(answer.read_all(), POLL_WAIT + 15)
        finally:
            answer.close()
        return answer, body

    def end(self, code: int, reason: str) -> None:
        super().end(code, reason)
        if self._inflight is not None and not self._inflight.done():
            self._inflight.cancel()

    async def recv(self) -> Dict[str, Any]:
        while True:
            if self._frames:
                return self._frames.popleft()
            if self._ended is not None:
                raise self._ended
            await self._poll()

    async def _poll(self) -> None:
        task = asyncio.ensure_future(self._fetch())
        self._inflight = task
        # Waited for, not awaited: end() cancels it, and that must not cancel the caller.
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            raise
        self._inflight = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.end(1006, f"a poll failed: {exc!r}")
            return
        answer, body = task.result()
        if self._ended is not None:
            return
        if answer.status != 200:
            code: Optional[str] = None
            try:
                error = json.loads(body.decode("utf-8")).get("error")
                code = error.get("code") if isinstance(error, dict) else None
            except (ValueError, UnicodeDecodeError, AttributeError):
                pass
            if answer.status == 403 and code == "agent_revoked":
                self.end(4003, "the agent was revoked")
            elif answer.status == 503 and code == "relay_restarting":
                self.end(1012, "the relay is restarting")
            elif answer.status == 401:
                self.end(4001, "the relay refused the API key")
            else:
                self.end(1006, f"a poll was answered HTTP {answer.status}{' ' + code if code else ''}")
            return
        try:
            data = json.loads(body.decode("utf-8"))
            events = data.get("events") if isinstance(data, dict) else None
        except (ValueError, UnicodeDecodeError):
            self.end(1006, "a poll answer that is not JSON")
            return
        for frame in events if isinstance(events, list) else []:
            if isinstance(frame, dict):
                self._frames.append(frame)
