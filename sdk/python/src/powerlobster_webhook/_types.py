"""The objects handed to ``connected``, ``disconnected`` and ``reconnecting`` listeners."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["ConnectedInfo", "DisconnectedInfo", "FallbackInfo", "ReconnectingInfo"]


@dataclass(frozen=True)
class ConnectedInfo:
    """A session is open (the relay's ``ready`` frame). Emitted on every (re)connect."""

    webhook_url: str
    """Where senders post webhooks for this agent."""
    agent_id: str
    relay_id: str
    session_id: str
    """Changes on every reconnect."""
    max_in_flight: int = 100
    """At most this many events are unacked on this session at once."""
    ack_timeout_ms: int = 30_000
    """An event not acked within this time is delivered again (elsewhere or after a reconnect)."""
    protocol: int = 1
    transport: str = "ws"
    """The transport this session runs on: ``"ws"``, ``"sse"`` or ``"poll"``."""
    fallback_reason: Optional[str] = None
    """Why ``transport="auto"`` is not on the WebSocket (the last fallback's reason), if it is not."""


@dataclass(frozen=True)
class FallbackInfo:
    """``transport="auto"`` gave up on one transport for the next."""

    previous: str
    """The transport that did not work."""
    transport: str
    """The transport tried now."""
    reason: str
    """Why, in words (e.g. ``the WebSocket upgrade was refused (HTTP 403 ...)``)."""


@dataclass(frozen=True)
class DisconnectedInfo:
    """A session ended."""

    code: int
    """WebSocket close code: 1000 after :meth:`WebhookRelay.close`, 1006 when the
    connection was lost without a close, 1012 relay restarting, 4001
    unauthorized, 4003 revoked, 4008 protocol violation."""
    reason: str
    will_reconnect: bool
    """False after :meth:`WebhookRelay.close`, a 4001/4003 close, or with ``reconnect=False``."""
    error: Optional[BaseException] = None
    """The error behind the disconnect (``None`` after :meth:`WebhookRelay.close`)."""


@dataclass(frozen=True)
class ReconnectingInfo:
    """The next connection attempt starts after ``delay`` seconds."""

    attempt: int
    """1 for the first retry after a drop (or after a failed first connect), then 2, 3, ..."""
    delay: float
    """Seconds until the attempt."""
    error: Optional[BaseException] = None
    """Why the previous attempt or connection failed."""

    @property
    def delay_ms(self) -> int:
        """``delay`` in whole milliseconds."""
        return int(round(self.delay * 1000))
