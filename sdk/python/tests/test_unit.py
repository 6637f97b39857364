"""Pieces that need no relay: signatures, headers, URLs, options, backoff."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

import pytest

from powerlobster_webhook import (
    ConfigurationError,
    Headers,
    SignatureVerificationError,
    WebhookEvent,
    WebhookRelay,
    is_valid_signature,
    sign_standard_webhooks,
    verify_signature,
)
from powerlobster_webhook._event import parse_rfc3339
from powerlobster_webhook._util import (
    DROP_TRIES,
    MAX_DELAY,
    RESTART_TRIES,
    STABLE_AFTER,
    Backoff,
    RecentIds,
    compile_patterns,
    connect_url,
    parse_patterns,
)

# The contract's Standard Webhooks test vector.
SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
MSG_ID = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"
TS = 1649367553
BODY = b'{"email":"test@example.com","username":"test_user"}'
SIGNATURE = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
AT_TS = datetime.fromtimestamp(TS, timezone.utc)


def vector_headers(signature: str = SIGNATURE) -> dict[str, str]:
    return {"webhook-id": MSG_ID, "webhook-timestamp": str(TS), "webhook-signature": signature}


# -- signatures ---------------------------------------------------------------


def test_standard_webhooks_vector_signs_and_verifies() -> None:
    assert sign_standard_webhooks(SECRET, MSG_ID, TS, BODY) == SIGNATURE
    verify_signature(vector_headers(), BODY, SECRET, now=AT_TS)
    # header names are case-insensitive; pairs work as well as a dict
    pairs = [(k.upper(), v) for k, v in vector_headers().items()]
    verify_signature(pairs, BODY, SECRET, now=AT_TS)
    # any one valid entry among several passes
    verify_signature(vector_headers("v1,AAAA v2,xyz " + SIGNATURE), BODY, SECRET, now=AT_TS)


@pytest.mark.parametrize(
    "headers, body, secret, message",
    [
        (vector_headers(), BODY + b" ", SECRET, "matches"),
        (vector_headers(), BODY, "whsec_" + base64.b64encode(b"x" * 24).decode(), "matches"),
        (vector_headers("v1,"), BODY, SECRET, "no v1"),
        (vector_headers(""), BODY, SECRET, "missing"),
        (vector_headers(SIGNATURE[:-6]), BODY, SECRET, "matches"),
        ({"webhook-id": MSG_ID, "webhook-signature": SIGNATURE}, BODY, SECRET, "webhook-timestamp"),
    ],
)
def test_standard_webhooks_rejects(headers: dict[str, str], body: bytes, secret: str, message: str) -> None:
    with pytest.raises(SignatureVerificationError, match=message):
        verify_signature(headers, body, secret, now=AT_TS)
    assert not is_valid_signature(headers, body, secret, now=AT_TS)


def test_standard_webhooks_timestamp_tolerance() -> None:
    with pytest.raises(SignatureVerificationError, match="timestamp"):
        verify_signature(vector_headers(), BODY, SECRET, now=AT_TS + timedelta(minutes=6))
    verify_signature(vector_headers(), BODY, SECRET, now=AT_TS + timedelta(minutes=4))
    verify_signature(vector_headers(), BODY, SECRET, tolerance=None)  # 2022: far from now


def test_event_verify_signature_checks_time_against_received_at() -> None:
    event = WebhookEvent(
        id="evt_1",
        type="user.created",
        attempt=1,
        received_at=AT_TS + timedelta(seconds=2),
        headers=list(vector_headers().items()),
        body=BODY,
    )
    event.verify_signature(SECRET)  # delivered years later, still verifies
    with pytest.raises(SignatureVerificationError):
        event.verify_signature("whsec_" + base64.b64encode(b"y" * 24).decode())


def test_github_and_stripe_schemes() -> None:
    body = b'{"zen":"Design for failure."}'
    digest = hmac.new(b"gh secret", body, hashlib.sha256).hexdigest()
    verify_signature({"X-Hub-Signature-256": f"sha256={digest}"}, body, "gh secret", scheme="github")
    with pytest.raises(SignatureVerificationError):
        verify_signature({"X-Hub-Signature-256": f"sha256={digest}"}, body + b"!", "gh secret", scheme="github")
    with pytest.raises(SignatureVerificationError):
        verify_signature({"X-Hub-Signature-256": "sha256="}, body, "gh secret", scheme="github")

    ts = 1700000000
    sig = hmac.new(b"whsec_stripe", f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    now = datetime.fromtimestamp(ts + 10, timezone.utc)
    header = {"Stripe-Signature": f"t={ts},v1=deadbeef,v1={sig}"}
    verify_signature(header, body, "whsec_stripe", scheme="stripe", now=now)
    with pytest.raises(SignatureVerificationError, match="timestamp"):
        verify_signature(header, body, "whsec_stripe", scheme="stripe", now=now + timedelta(hours=1))
    with pytest.raises(ConfigurationError):
        verify_signature(header, body, "x", scheme="svix")  # type: ignore[arg-type]


# -- headers, event -------------------------------------------------------------


def test_headers_are_case_insensitive_and_keep_raw_pairs() -> None:
    h = Headers([("Content-Type", "application/json"), ("X-Tag", "a"), ("x-tag", "b")])
    assert h["content-type"] == "application/json"
    assert h.get("CONTENT-TYPE") == "application/json"
    assert h.get("missing") is None and h.get("missing", "d") == "d"
    assert h["X-TAG"] == "a, b"
    assert h.get_all("x-tag") == ["a", "b"]
    assert h.get_all("nope") == []
    assert "X-Tag" in h and "nope" not in h
    assert h.raw == (("Content-Type", "application/json"), ("X-Tag", "a"), ("x-tag", "b"))
    assert list(h) == ["content-type", "x-tag"] and len(h) == 2
    assert dict(h) == {"content-type": "application/json", "x-tag": "a, b"}


def frame(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "event",
        "id": "evt_01J",
        "event_type": "order.paid",
        "received_at": "2026-11-28T12:00:00.123Z",
        "attempt": 2,
        "headers": [["content-type", "application/json"], ["X-A", "b"]],
        "body": '{"a": 1}',
        "body_encoding": "utf8",
    }
    base.update(over)
    return base


def test_event_from_frame() -> None:
    event = WebhookEvent.from_frame(frame())
    assert (event.id, event.type, event.attempt, event.replay) == ("evt_01J", "order.paid", 2, False)
    assert event.received_at == datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=timezone.utc)
    assert event.body == b'{"a": 1}' and event.raw_body is event.body
    assert event.payload == {"a": 1}
    assert event.headers["x-a"] == "b"
    assert WebhookEvent.from_frame(frame(replay=True)).replay is True

    raw = b"\xff\x00\xfe binary"
    binary = WebhookEvent.from_frame(frame(body=base64.b64encode(raw).decode(), body_encoding="base64"))
    assert binary.body == raw and binary.payload is None and binary.text is None
    assert WebhookEvent.from_frame(frame(body="not json")).payload is None

    for bad in (frame(body="@@", body_encoding="base64"), frame(body_encoding="hex"), frame(id=None)):
        with pytest.raises(ValueError):
            WebhookEvent.from_frame(bad)
    missing = frame()
    del missing["received_at"]
    with pytest.raises(ValueError, match="received_at"):
        WebhookEvent.from_frame(missing)


def test_rfc3339_parsing() -> None:
    assert parse_rfc3339("2026-11-28T12:00:00Z") == datetime(2026, 11, 28, 12, tzinfo=timezone.utc)
    assert parse_rfc3339("2026-11-28T12:00:00.123456789Z").microsecond == 123456
    off = parse_rfc3339("2026-11-28T14:00:00+02:00")
    assert off == datetime(2026, 11, 28, 12, tzinfo=timezone.utc) and off.utcoffset() == timedelta(hours=2)
    with pytest.raises(ValueError):
        parse_rfc3339("yesterday")


# -- URLs, patterns, options ------------------------------------------------------


@pytest.mark.parametrize(
    "given, expected",
    [
        ("http://127.0.0.1:8080", "ws://127.0.0.1:8080/api/v1/agent/connect"),
        ("https://relay.example.com/", "wss://relay.example.com/api/v1/agent/connect"),
        ("https://example.com/relay/", "wss://example.com/relay/api/v1/agent/connect"),
        ("wss://relay.example.com", "wss://relay.example.com/api/v1/agent/connect"),
        ("ws://h:1/api/v1/agent/connect", "ws://h:1/api/v1/agent/connect"),
        ("HTTPS://Relay.Example.com", "wss://Relay.Example.com/api/v1/agent/connect"),
    ],
)
def test_connect_url(given: str, expected: str) -> None:
    assert connect_url(given) == expected


def test_connect_url_with_events_and_errors() -> None:
    assert connect_url("http://h", ["message.*", "ping"]) == "ws://h/api/v1/agent/connect?events=message.*,ping"
    for bad in ("relay.example.com", "ftp://h", "http://", "http://h?x=1", "http://h:99999", ""):
        with pytest.raises(ConfigurationError):
            connect_url(bad)


def test_patterns() -> None:
    assert parse_patterns("message.*, ping") == ["message.*", "ping"]
    assert parse_patterns(["a.*", "b,c"]) == ["a.*", "b", "c"]
    assert parse_patterns(None) == []
    for bad in ("a[b]", "drop table;", ["x"] * 33, 5):
        with pytest.raises(ConfigurationError):
            parse_patterns(bad)  # type: ignore[arg-type]
    match = compile_patterns(["message.*", "p?ng"])
    assert match is not None
    assert match.match("message.thread.created") and match.match("ping")
    assert not match.match("xmessage.a") and not match.match("pinged")
    assert compile_patterns([]) is None


def test_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOBSTER_RELAY_API_KEY", raising=False)
    monkeypatch.delenv("LOBSTER_RELAY_URL", raising=False)
    with pytest.raises(ConfigurationError, match="LOBSTER_RELAY_API_KEY"):
        WebhookRelay()
    with pytest.raises(ConfigurationError, match="API key"):
        WebhookRelay(api_key="  ")
    monkeypatch.setenv("LOBSTER_RELAY_API_KEY", "lrk_from_env")
    relay = WebhookRelay()
    assert relay.url == "wss://relay.powerlobster.com/api/v1/agent/connect"
    assert relay._api_key == "lrk_from_env"
    monkeypatch.setenv("LOBSTER_RELAY_URL", "http://127.0.0.1:9")
    assert WebhookRelay(api_key="k").url == "ws://127.0.0.1:9/api/v1/agent/connect"
    for kwargs in (
        {"max_concurrency": 0},
        {"max_concurrency": 1.5},
        {"max_concurrency": True},
        {"reconnect": "yes"},
        {"events": "a b"},
        {"relay_url": "relay.example.com"},
        {"connect_timeout": 0},
        {"logger": "log"},
        {"api_key": "lrk_a b"},
    ):
        args = {"api_key": "k", **kwargs}
        with pytest.raises(ConfigurationError):
            WebhookRelay(**args)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown event"):
        relay.on("message")
    with pytest.raises(ConfigurationError):
        relay.on("webhook", "not callable")  # type: ignore[call-overload]


def test_on_as_decorator_and_call_returns_the_function() -> None:
    relay = WebhookRelay(api_key="k", relay_url="http://127.0.0.1:9")

    @relay.on("webhook")
    async def handle(event: WebhookEvent) -> None: ...

    def sync(event: WebhookEvent) -> None: ...

    assert relay.on("webhook", sync) is sync
    assert [fn for fn, _ in relay._listeners["webhook"]] == [handle, sync]
    assert [is_async for _, is_async in relay._listeners["webhook"]] == [True, False]
    relay.off("webhook", handle)
    assert [fn for fn, _ in relay._listeners["webhook"]] == [sync]


# -- backoff, dedupe memory ---------------------------------------------------------


def _ceilings(backoff: Backoff, n: int) -> list[float]:
    out = []
    for _ in range(n):
        out.append(backoff.ceiling())
        backoff.next_delay()
    return out


def test_backoff_bounds_and_reset() -> None:
    top = Backoff(rand=lambda: 0.999999)
    ceilings = [top.next_delay() for _ in range(10)]
    assert ceilings[0] < 0.25 and ceilings[1] < 0.5 and ceilings[2] < 1.0
    assert max(ceilings) <= MAX_DELAY and ceilings[-1] > 9.9
    top.connection_lasted(3)
    assert top.next_delay() > 9.9  # a short connection does not reset
    top.connection_lasted(10)
    assert top.next_delay() < 0.25
    zero = Backoff(rand=lambda: 0.0)
    assert zero.next_delay() == 0.0
    assert _ceilings(Backoff(), 9) == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_backoff_after_a_1012_retries_within_half_a_second_without_growing() -> None:
    backoff = Backoff(rand=lambda: 0.999999)
    backoff.next_delay()
    backoff.next_delay()
    backoff.relay_restarting()
    assert backoff.restarting
    assert all(0.49 < backoff.next_delay() < 0.5 for _ in range(RESTART_TRIES))
    assert not backoff.restarting
    assert _ceilings(backoff, 2) == [1.0, 2.0]  # then the usual backoff again, where it was


def test_backoff_after_a_stable_connection_dropped_retries_quickly_then_doubles() -> None:
    backoff = Backoff(rand=lambda: 0.999999)
    for _ in range(7):
        backoff.next_delay()
    backoff.connection_lasted(STABLE_AFTER)
    assert not backoff.restarting
    assert all(0.24 < backoff.next_delay() < 0.25 for _ in range(DROP_TRIES))
    assert _ceilings(backoff, 3) == [0.25, 0.5, 1.0]

    again = Backoff()
    _ceilings(again, 7)
    again.connection_lasted(60)
    assert _ceilings(again, DROP_TRIES + 3) == [0.25] * 12 + [0.25, 0.5, 1.0]
    # A 1012 on that drop takes precedence: 20 tries within 0.5 s, then the doubling from 0.25 s.
    _ceilings(again, 4)
    again.connection_lasted(10)
    again.relay_restarting()
    assert again.restarting
    assert _ceilings(again, RESTART_TRIES + 3) == [0.5] * 20 + [0.25, 0.5, 1.0]


def test_recent_ids_bounded() -> None:
    recent = RecentIds(ttl=600, capacity=3)
    for i in range(5):
        recent.add(f"evt_{i}")
    assert len(recent) == 3 and "evt_0" not in recent and "evt_4" in recent
    expired = RecentIds(ttl=0.0000001, capacity=3)
    expired.add("evt_x")
    assert "evt_x" not in expired


def test_frame_json_is_what_the_relay_expects() -> None:
    # acks and nacks are compact JSON objects with a type
    assert json.loads(json.dumps({"type": "ack", "id": "evt_1"})) == {"type": "ack", "id": "evt_1"}
