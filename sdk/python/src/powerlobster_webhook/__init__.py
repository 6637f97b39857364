"""powerlobster-webhook: receive the webhooks a lobster-relay accepted for
your agent as events in your Python process.

    from powerlobster_webhook import WebhookRelay
    relay = WebhookRelay(relay_url="wss://relay.example.com", api_key=os.environ["POWERLOBSTER_API_KEY"])

    @relay.on("webhook")
    async def handle(event): ...   # event.id, .type, .attempt, .received_at, .headers, .body, .payload

    relay.run()
"""

from __future__ import annotations

from ._client import EVENT_NAMES, WebhookRelay
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
    SignatureVerificationError,
    WaitTimeoutError,
    WebhookRelayError,
)
from ._event import WebhookEvent
from ._headers import Headers
from ._signature import Scheme, is_valid_signature, sign_standard_webhooks, verify_signature
from ._types import ConnectedInfo, DisconnectedInfo, FallbackInfo, ReconnectingInfo
from ._util import DEFAULT_RELAY_URL

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_RELAY_URL",
    "EVENT_NAMES",
    "AuthenticationError",
    "ConfigurationError",
    "ConnectTimeoutError",
    "ConnectedInfo",
    "DisconnectedInfo",
    "HandlerError",
    "Headers",
    "ListenerError",
    "ProxyError",
    "FallbackInfo",
    "ReconnectingInfo",
    "RelayClosedError",
    "RelayConnectionError",
    "RelayErrorFrame",
    "Scheme",
    "SignatureVerificationError",
    "WaitTimeoutError",
    "WebhookEvent",
    "WebhookRelay",
    "WebhookRelayError",
    "__version__",
    "is_valid_signature",
    "sign_standard_webhooks",
    "verify_signature",
]

# Show the public names in tracebacks and reprs (powerlobster_webhook.AuthenticationError).
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
