"""Small pieces: relay URL mapping, event-type globs, backoff, dedupe memory."""

from __future__ import annotations

import random
import re
import time
from collections import OrderedDict
from typing import Callable, List, Optional, Pattern, Sequence, Union
from urllib.parse import urlsplit, urlunsplit

from ._errors import ConfigurationError

DEFAULT_RELAY_URL = "https://relay.powerlobster.com"
CONNECT_PATH = "/api/v1/agent/connect"

# --------------------------------------------------------------------------
# Relay URL


def connect_url(relay_url: str, patterns: Sequence[str] = ()) -> str:
    """``http(s)://host[/prefix]`` (or ``ws(s)://``) to the WebSocket URL
    ``ws(s)://host[/prefix]/api/v1/agent/connect[?events=...]``."""
    if not isinstance(relay_url, str) or not relay_url.strip():
        raise ConfigurationError("relay_url must be a non-empty URL such as https://relay.example.com")
    text = relay_url.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    mapping = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
    if scheme not in mapping:
        raise ConfigurationError(
            f"relay_url {relay_url!r} must start with https://, http://, wss:// or ws:// "
            "(for example https://relay.powerlobster.com)"
        )
    if not parts.hostname:
        raise ConfigurationError(f"relay_url {relay_url!r} has no host")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigurationError(f"relay_url {relay_url!r} has an invalid port") from None
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"relay_url {relay_url!r} must not have a query or fragment; pass events=... instead"
        )
    path = parts.path.rstrip("/")
    if not path.endswith(CONNECT_PATH):
        path += CONNECT_PATH
    query = "events=" + ",".join(patterns) if patterns else ""
    return urlunsplit((mapping[scheme], parts.netloc, path, query, ""))


def redact_url(url: str) -> str:
    """The URL without any user:password part, for logs and errors."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, ""))


# --------------------------------------------------------------------------
# Event-type globs, the language the relay applies to ?events=:
# `*` any run of characters (dots included), `?` one character.

_PATTERN_OK = re.compile(r"^[A-Za-z0-9._\-:/*?]+$")
MAX_PATTERNS = 32


def parse_patterns(events: Union[None, str, Sequence[str]], what: str = "events") -> List[str]:
    """Validates ``events`` (a comma-separated string or a list of globs)."""
    if events is None:
        return []
    if isinstance(events, str):
        items = events.split(",")
    elif isinstance(events, (list, tuple, set, frozenset)):
        items = []
        for item in events:
            if not isinstance(item, str):
                raise ConfigurationError(f"{what} must hold strings, got {type(item).__name__}")
            items.extend(item.split(","))
    else:
        raise ConfigurationError(f"{what} must be a list of patterns or a comma-separated string")
    patterns = [p.strip() for p in items if p.strip()]
    for p in patterns:
        if len(p) > 200 or not _PATTERN_OK.match(p):
            raise ConfigurationError(
                f"{what} pattern {p!r} is invalid: use letters, digits, . _ - : / and the wildcards * ?"
            )
    if len(patterns) > MAX_PATTERNS:
        raise ConfigurationError(f"{what} takes at most {MAX_PATTERNS} patterns")
    return patterns


def compile_patterns(patterns: Sequence[str]) -> Optional[Pattern[str]]:
    """One regex matching any of ``patterns``; ``None`` (match all) when empty."""
    if not patterns:
        return None
    parts = []
    for p in patterns:
        parts.append("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in p))
    return re.compile("(?:" + "|".join(parts) + r")\Z", re.DOTALL)


# --------------------------------------------------------------------------
# Reconnect delays, as the CLI's `listen` does them.

FIRST_DELAY = 0.25  # ceiling of the first retry's delay, seconds
MAX_DELAY = 10.0  # ceiling of every delay
STABLE_AFTER = 10.0  # a connection up this long resets the backoff
RESTART_STEP = 0.5  # ceiling of each delay after the relay said it restarts (1012)
RESTART_TRIES = 20
DROP_TRIES = 12  # delays within the first ceiling after a stable connection dropped


class Backoff:
    """Exponential backoff with full jitter: the n-th retry (from 0) waits a
    uniformly random time in ``[0, min(MAX_DELAY, FIRST_DELAY * 2**n))``.

    Some retries are flat: each waits within a fixed step and does not grow
    the backoff. After a 1012 close the next ``RESTART_TRIES`` waits are each
    within ``RESTART_STEP``. When a connection that stayed up
    ``STABLE_AFTER`` drops without one, the backoff starts over and the next
    ``DROP_TRIES`` waits are each within the first ceiling, then the doubling
    from it resumes; a 1012 on that drop takes precedence."""

    def __init__(
        self,
        first: float = FIRST_DELAY,
        cap: float = MAX_DELAY,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.first = first
        self.cap = cap
        self.retries = 0
        self.flat_tries = 0  # retries left that wait within flat_step, not growing
        self.flat_step = first
        self._restart = False  # the flat tries are the ones after a 1012
        self._rand = rand

    @property
    def restarting(self) -> bool:
        """Whether the retries after a 1012 close are under way."""
        return self._restart and self.flat_tries > 0

    def ceiling(self) -> float:
        if self.flat_tries > 0:
            return min(self.flat_step, self.cap)
        return float(min(self.cap, self.first * float(2 ** min(self.retries, 16))))

    def next_delay(self) -> float:
        delay = self.ceiling() * min(max(self._rand(), 0.0), 1.0)
        if self.flat_tries > 0:
            self.flat_tries -= 1
        else:
            self.retries += 1
        return min(delay, self.cap)

    def relay_restarting(self) -> None:
        self.flat_tries = RESTART_TRIES
        self.flat_step = RESTART_STEP
        self._restart = True

    def reset(self) -> None:
        self.retries = 0
        self.flat_tries = 0
        self._restart = False

    def connection_lasted(self, seconds: float) -> None:
        """A connection stayed up ``seconds`` after ``ready``, then dropped:
        long enough, and the backoff starts over with ``DROP_TRIES`` quick
        retries."""
        if seconds >= STABLE_AFTER:
            self.reset()
            self.flat_tries = DROP_TRIES
            self.flat_step = self.first


# --------------------------------------------------------------------------
# Ids handled successfully in this process, for acking redeliveries.


class RecentIds:
    """A bounded memory of ids with the time each was added."""

    def __init__(self, ttl: float = 600.0, capacity: int = 10_000) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._ids: OrderedDict[str, float] = OrderedDict()

    def add(self, event_id: str) -> None:
        if self.capacity <= 0:
            return
        self._ids[event_id] = time.monotonic()
        self._ids.move_to_end(event_id)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def __contains__(self, event_id: object) -> bool:
        if not isinstance(event_id, str):
            return False
        at = self._ids.get(event_id)
        if at is None:
            return False
        if time.monotonic() - at > self.ttl:
            del self._ids[event_id]
            return False
        return True

    def __len__(self) -> int:
        return len(self._ids)
