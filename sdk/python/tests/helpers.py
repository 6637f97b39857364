"""Helpers for the scenarios: a bounded asyncio.run, condition waits."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, List, Optional, TypeVar

from relay_process import RelayProcess

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 60.0) -> T:
    """Runs one test scenario under a hard timeout."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def until(predicate: Callable[[], bool], timeout: float = 15.0, what: Optional[str] = None) -> None:
    """Polls ``predicate`` on the loop until it holds, under ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


async def post(relay: RelayProcess, url: str, body: bytes, **kw: Any) -> str:
    return await asyncio.to_thread(relay.post_webhook, url, body, **kw)


class Recorder:
    """Collects a WebhookRelay's lifecycle events, in order."""

    def __init__(self, relay: Any) -> None:
        self.log: List[tuple[str, Any]] = []
        for name in ("connected", "disconnected", "reconnecting", "error"):
            relay.on(name, self._make(name))

    def _make(self, name: str) -> Callable[[Any], None]:
        def listener(arg: Any) -> None:
            self.log.append((name, arg))

        return listener

    def of(self, name: str) -> List[Any]:
        return [arg for kind, arg in self.log if kind == name]

    def names(self) -> List[str]:
        return [kind for kind, _ in self.log if kind != "error"]


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def capture_logger(name: str) -> tuple[logging.Logger, LogCapture]:
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = LogCapture()
    logger.addHandler(handler)
    return logger, handler


async def event_status(relay: RelayProcess, api_key: str, event_id: str) -> dict[str, Any]:
    status, data = await asyncio.to_thread(relay.agent_request, "GET", f"/api/v1/agent/events/{event_id}", api_key)
    assert status == 200, (status, data)
    assert isinstance(data, dict)
    return data


async def until_status(
    relay: RelayProcess, api_key: str, event_id: str, want: str, timeout: float = 15.0, min_attempts: int = 0
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        data = await event_status(relay, api_key, event_id)
        if data.get("status") == want and int(data.get("attempts", 0)) >= min_attempts:
            return data
        if loop.time() > deadline:
            raise AssertionError(f"event {event_id} is {data.get('status')!r} (attempts {data.get('attempts')}), wanted {want!r}")
        await asyncio.sleep(0.05)
