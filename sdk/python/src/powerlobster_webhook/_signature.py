"""Verifying a sender's signature over a forwarded webhook.

The relay checks signatures at ingest already; these helpers let an agent
check them again on the exact body it was handed (defence in depth, or an
agent that trusts the sender and not the relay).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from datetime import datetime
from typing import Iterable, Literal, Mapping, Optional, Tuple, Union

from ._errors import ConfigurationError, SignatureVerificationError
from ._headers import Headers


__all__ = ["Scheme", "verify_signature", "is_valid_signature", "sign_standard_webhooks"]

Scheme = Literal["standard-webhooks", "github", "stripe"]
HeadersLike = Union[Headers, Mapping[str, str], Iterable[Tuple[str, str]]]

_SCHEMES = ("standard-webhooks", "github", "stripe")


def _as_headers(headers: HeadersLike) -> Headers:
    if isinstance(headers, Headers):
        return headers
    if isinstance(headers, Mapping):
        return Headers((str(k), str(v)) for k, v in headers.items())
    return Headers(headers)


def _as_bytes(body: Union[bytes, bytearray, memoryview, str]) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body)


def _standard_key(secret: Union[str, bytes]) -> bytes:
    if isinstance(secret, (bytes, bytearray)):
        return bytes(secret)
    if not secret:
        raise ConfigurationError("the signing secret is empty")
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(
                "the secret starts with whsec_ but the rest is not base64"
            ) from None
    return secret.encode("utf-8")


def _plain_key(secret: Union[str, bytes]) -> bytes:
    if isinstance(secret, (bytes, bytearray)):
        return bytes(secret)
    if not secret:
        raise ConfigurationError("the signing secret is empty")
    return secret.encode("utf-8")


def sign_standard_webhooks(
    secret: Union[str, bytes], msg_id: str, timestamp: int, body: Union[bytes, str]
) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) a Standard Webhooks
    sender computes: HMAC-SHA256 over ``{id}.{timestamp}.{body}`` with the
    base64-decoded part of a ``whsec_`` secret (other secrets as raw bytes)."""
    signed = f"{msg_id}.{int(timestamp)}.".encode("utf-8") + _as_bytes(body)
    digest = hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def _check_time(timestamp: int, tolerance: Optional[float], now: Optional[datetime]) -> None:
    if tolerance is None:
        return
    current = now.timestamp() if now is not None else time.time()
    if abs(current - timestamp) > tolerance:
        raise SignatureVerificationError(
            f"the signature's timestamp {timestamp} is more than {tolerance:g} s from "
            f"{'the time checked against' if now is not None else 'now'}"
        )


def _required(headers: Headers, name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise SignatureVerificationError(f"the {name} header is missing")
    return value.strip()


def _verify_standard(
    headers: Headers,
    body: bytes,
    secret: Union[str, bytes],
    tolerance: Optional[float],
    now: Optional[datetime],
) -> None:
    msg_id = _required(headers, "webhook-id")
    ts_text = _required(headers, "webhook-timestamp")
    sig_header = _required(headers, "webhook-signature")
    try:
        timestamp = int(ts_text)
    except ValueError:
        raise SignatureVerificationError("the webhook-timestamp header is not unix seconds") from None
    key = _standard_key(secret)
    _check_time(timestamp, tolerance, now)
    signed = f"{msg_id}.{ts_text}.".encode("utf-8") + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    found_v1 = False
    for entry in sig_header.split():
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue
        found_v1 = True
        if hmac.compare_digest(value.encode("ascii", "replace"), expected):
            return
    if not found_v1:
        raise SignatureVerificationError("the webhook-signature header has no v1 signature")
    raise SignatureVerificationError("no signature in webhook-signature matches the body")


def _verify_github(headers: Headers, body: bytes, secret: Union[str, bytes]) -> None:
    header = _required(headers, "x-hub-signature-256")
    prefix, _, value = header.partition("=")
    if prefix != "sha256" or not value:
        raise SignatureVerificationError("X-Hub-Signature-256 is not sha256=<hex>")
    expected = hmac.new(_plain_key(secret), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(value.lower().encode("ascii", "replace"), expected.encode("ascii")):
        raise SignatureVerificationError("X-Hub-Signature-256 does not match the body")


def _verify_stripe(
    headers: Headers,
    body: bytes,
    secret: Union[str, bytes],
    tolerance: Optional[float],
    now: Optional[datetime],
) -> None:
    header = _required(headers, "stripe-signature")
    timestamp_text: Optional[str] = None
    signatures: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            timestamp_text = value
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp_text is None or not signatures:
        raise SignatureVerificationError("Stripe-Signature needs t=<unix> and v1=<hex>")
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise SignatureVerificationError("the Stripe-Signature timestamp is not unix seconds") from None
    key = _plain_key(secret)
    _check_time(timestamp, tolerance, now)
    expected = hmac.new(key, timestamp_text.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    for value in signatures:
        if hmac.compare_digest(value.lower().encode("ascii", "replace"), expected.encode("ascii")):
            return
    raise SignatureVerificationError("no v1 signature in Stripe-Signature matches the body")


def verify_signature(
    headers: HeadersLike,
    body: Union[bytes, bytearray, memoryview, str],
    secret: Union[str, bytes],
    *,
    scheme: Scheme = "standard-webhooks",
    tolerance: Optional[float] = 300.0,
    now: Optional[datetime] = None,
) -> None:
    """Checks a webhook's signature; raises :class:`SignatureVerificationError`
    when it does not verify.

    Args:
        headers: the request headers (an event's :class:`Headers`, a dict, or
            ``(name, value)`` pairs); looked up case-insensitively.
        body: the exact raw body.
        secret: the signing secret. ``standard-webhooks``: ``whsec_<base64>``
            is base64-decoded, anything else used as raw bytes; ``github`` and
            ``stripe``: used as given.
        scheme: ``standard-webhooks`` (``webhook-id``/``webhook-timestamp``/
            ``webhook-signature``), ``github`` (``X-Hub-Signature-256``) or
            ``stripe`` (``Stripe-Signature``).
        tolerance: largest allowed distance in seconds between the signed
            timestamp and ``now`` (not used by ``github``); ``None`` skips it.
        now: the time to check the timestamp against (default: the current
            time). :meth:`WebhookEvent.verify_signature` passes the time the
            relay received the webhook.

    Comparisons are constant-time (:func:`hmac.compare_digest`).
    """
    if scheme not in _SCHEMES:
        raise ConfigurationError(f"unknown signature scheme {scheme!r}; use one of {', '.join(_SCHEMES)}")
    if tolerance is not None and tolerance < 0:
        raise ConfigurationError("tolerance must be a non-negative number of seconds or None")
    hdrs = _as_headers(headers)
    raw = _as_bytes(body)
    if scheme == "standard-webhooks":
        _verify_standard(hdrs, raw, secret, tolerance, now)
    elif scheme == "github":
        _verify_github(hdrs, raw, secret)
    else:
        _verify_stripe(hdrs, raw, secret, tolerance, now)


def is_valid_signature(
    headers: HeadersLike,
    body: Union[bytes, bytearray, memoryview, str],
    secret: Union[str, bytes],
    *,
    scheme: Scheme = "standard-webhooks",
    tolerance: Optional[float] = 300.0,
    now: Optional[datetime] = None,
) -> bool:
    """Like :func:`verify_signature`, returning ``True``/``False`` instead of raising."""
    try:
        verify_signature(headers, body, secret, scheme=scheme, tolerance=tolerance, now=now)
    except SignatureVerificationError:
        return False
    return True
