"""Exceptions raised by the SDK. Every one derives from :class:`WebhookRelayError`."""

from __future__ import annotations

from typing import Optional


class WebhookRelayError(Exception):
    """Base class of every error this package raises."""


class ConfigurationError(WebhookRelayError, ValueError):
    """An option given to :class:`WebhookRelay` is missing or invalid."""


class AuthenticationError(WebhookRelayError):
    """The relay refused the API key, or the agent was revoked.

    Raised by :meth:`WebhookRelay.connect` (never retried) and by
    :meth:`WebhookRelay.run_forever` when the agent is revoked during a
    session.

    Attributes:
        status: the HTTP status of a refused upgrade (401, 403), else ``None``.
        close_code: the WebSocket close code (4001 unauthorized, 4003 revoked),
            else ``None``.
        code: the relay's error code (``unauthorized``, ``agent_revoked``, ...)
            when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        close_code: Optional[int] = None,
        code: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.close_code = close_code
        self.code = code


class RelayConnectionError(WebhookRelayError, ConnectionError):
    """The relay could not be reached, refused the session, or the connection
    was lost.

    Attributes:
        status: HTTP status when the relay answered the upgrade with an error.
        code: the relay's error code (``too_many_sessions``, ...), if any.
        close_code: WebSocket close code of a lost session, if any.
        retry_after: seconds the relay asked to wait (``Retry-After``), if any.
        retryable: False for answers a retry cannot change (HTTP 404, 400:
            ``relay_url`` does not point at a relay); ``connect()`` raises
            those at once.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        close_code: Optional[int] = None,
        retry_after: Optional[float] = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.close_code = close_code
        self.retry_after = retry_after
        self.retryable = retryable

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ProxyError(RelayConnectionError):
    """The HTTP proxy on the way to the relay failed.

    ``code`` says how: ``proxy_unreachable`` (it could not be reached;
    retried like an unreachable relay), ``proxy_auth_required`` (HTTP 407
    and no credentials were given) or ``proxy_auth_failed`` (it refused the
    credentials): never retried, even during a session; ``proxy_refused``
    (it refused the tunnel, e.g. 403 for a port it does not allow; its 5xx
    answers, such as a relay it cannot reach, are retried).

    Attributes:
        proxy: the proxy as ``scheme://host:port``, never with credentials.
        status: the proxy's HTTP status, when it answered.
    """

    def __init__(
        self,
        message: str,
        *,
        proxy: str,
        code: str,
        status: Optional[int] = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message, status=status, code=code, retryable=retryable)
        self.proxy = proxy


class ConnectTimeoutError(RelayConnectionError, TimeoutError):
    """:meth:`WebhookRelay.connect` did not get a session within its timeout."""


class WaitTimeoutError(WebhookRelayError, TimeoutError):
    """:meth:`WebhookRelay.wait` saw no matching event within its timeout."""


class RelayClosedError(WebhookRelayError):
    """The :class:`WebhookRelay` was closed (or stopped for good) while an
    operation was waiting, or an operation was started after :meth:`close`."""


class RelayErrorFrame(WebhookRelayError):
    """The relay sent an ``error`` frame (it closes the session right after).

    Attributes:
        code: e.g. ``agent_revoked``, ``protocol_violation``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})" if code else message)
        self.code = code
        self.relay_message = message


class HandlerError(WebhookRelayError):
    """A ``webhook`` handler raised; the event was nacked (the relay retries it).

    Reported through the ``error`` event (and the logger); the handler's
    exception is ``__cause__``.

    Attributes:
        event_id, attempt: the event that failed.
    """

    def __init__(self, message: str, event_id: str, attempt: int) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.attempt = attempt


class ListenerError(WebhookRelayError):
    """A ``connected``/``disconnected``/``reconnecting`` listener raised.

    Reported through the ``error`` event and the logger; the original
    exception is ``__cause__``.
    """


class SignatureVerificationError(WebhookRelayError, ValueError):
    """A webhook's signature is missing, malformed, wrong, or its timestamp is
    outside the tolerance."""
