"""The event object handed to ``webhook`` handlers, and its headers."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timedelta, timezone
from typing import (
    Any,
    Iterable,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from ._headers import Headers
from ._signature import Scheme, verify_signature

__all__ = ["Headers", "WebhookEvent"]

_MISSING: Any = object()


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))$"
)


def parse_rfc3339(text: str) -> datetime:
    """A timezone-aware :class:`datetime` from an RFC 3339 timestamp (any
    number of fractional digits; Python 3.9's ``fromisoformat`` takes
    neither ``Z`` nor those)."""
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    if m.group(8):
        tz = timezone.utc
    else:
        sign = -1 if m.group(9) == "-" else 1
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        tz = timezone(sign * offset)
    leap = second == 60  # RFC 3339 allows a leap second; datetime does not.
    value = datetime(year, month, day, hour, minute, 59 if leap else second, micro, tzinfo=tz)
    return value + timedelta(seconds=1) if leap else value


class WebhookEvent:
    """One delivery of a webhook the relay accepted for this agent.

    Attributes:
        id: the event id (``evt_...``), the one the webhook's ``202`` answered
            with; the same on every redelivery, so it can be used to
            deduplicate.
        type: the event type the relay derived (header, else the JSON body's
            ``type``, else its ``event``, else ``unknown``).
        attempt: 1 for the first delivery, more on redeliveries.
        received_at: when the relay accepted the webhook (timezone-aware).
        headers: the original request headers (:class:`Headers`).
        body: the raw request body, byte for byte.
        replay: ``True`` when this delivery comes from an explicit replay
            (``POST /api/v1/agent/events/{id}/replay``).
    """

    __slots__ = ("id", "type", "attempt", "received_at", "headers", "body", "replay", "_payload")

    def __init__(
        self,
        *,
        id: str,
        type: str,
        attempt: int,
        received_at: datetime,
        headers: Union[Headers, Iterable[Tuple[str, str]]],
        body: bytes,
        replay: bool = False,
    ) -> None:
        self.id = id
        self.type = type
        self.attempt = attempt
        self.received_at = received_at
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = bytes(body)
        self.replay = replay
        self._payload: Any = _MISSING

    @classmethod
    def from_frame(cls, frame: Mapping[str, Any]) -> WebhookEvent:
        """Builds the event from a protocol v1 ``event`` frame (already JSON-decoded).

        Raises ``ValueError`` when the frame is malformed.
        """
        try:
            event_id = frame["id"]
            if not isinstance(event_id, str) or not event_id:
                raise ValueError("the event frame has no id")
            encoding = frame.get("body_encoding", "utf8")
            text = frame.get("body", "")
            if not isinstance(text, str):
                raise ValueError("the event frame's body is not a string")
            if encoding == "utf8":
                body = text.encode("utf-8")
            elif encoding == "base64":
                body = base64.b64decode(text.encode("ascii"), validate=True)
            else:
                raise ValueError(f"unknown body_encoding {encoding!r}")
            raw_headers: Sequence[Any] = frame.get("headers") or []
            pairs = []
            for pair in raw_headers:
                if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                    raise ValueError("the event frame's headers are not [name, value] pairs")
                pairs.append((str(pair[0]), str(pair[1])))
            attempt = frame.get("attempt", 1)
            if not isinstance(attempt, int) or isinstance(attempt, bool):
                raise ValueError("the event frame's attempt is not an integer")
            return cls(
                id=event_id,
                type=str(frame.get("event_type", "unknown")),
                attempt=attempt,
                received_at=parse_rfc3339(str(frame["received_at"])),
                headers=Headers(pairs),
                body=body,
                replay=frame.get("replay") is True,
            )
        except KeyError as exc:
            raise ValueError(f"the event frame lacks {exc.args[0]!r}") from None
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError(f"the event frame's base64 body does not decode: {exc}") from None

    @property
    def raw_body(self) -> bytes:
        """Alias of :attr:`body`."""
        return self.body

    @property
    def event_type(self) -> str:
        """Alias of :attr:`type` (the wire protocol's name)."""
        return self.type

    @property
    def payload(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is not UTF-8 JSON.

        Parsed once, on first access.
        """
        if self._payload is _MISSING:
            try:
                self._payload = json.loads(self.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                self._payload = None
        return self._payload

    @property
    def text(self) -> Optional[str]:
        """The body decoded as UTF-8, or ``None`` when it is not valid UTF-8."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def verify_signature(
        self,
        secret: Union[str, bytes],
        *,
        scheme: Scheme = "standard-webhooks",
        tolerance: Optional[float] = 300.0,
        now: Optional[datetime] = None,
    ) -> None:
        """Checks the sender's signature over this event's headers and exact body.

        The timestamp is checked against :attr:`received_at` (when the relay
        accepted the webhook) unless ``now`` is given, so an event delivered
        late (the agent was offline) still verifies. Raises
        :class:`SignatureVerificationError` when it does not verify.
        """
        verify_signature(
            self.headers,
            self.body,
            secret,
            scheme=scheme,
            tolerance=tolerance,
            now=self.received_at if now is None else now,
        )

    def __repr__(self) -> str:
        extra = ", replay=True" if self.replay else ""
        return (
            f"WebhookEvent(id={self.id!r}, type={self.type!r}, attempt={self.attempt}, "
            f"received_at={self.received_at.isoformat()!r}, body=<{len(self.body)} bytes>{extra})"
        )
