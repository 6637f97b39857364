"""The Python quick start: print every webhook the relay delivers to this agent.

    POWERLOBSTER_API_KEY=lrk_... python main.py     # relay: LOBSTER_RELAY_URL, default http://127.0.0.1:8080
"""

import os

from powerlobster_webhook import WebhookRelay

relay = WebhookRelay(
    relay_url=os.environ.get("LOBSTER_RELAY_URL", "http://127.0.0.1:8080"),
    api_key=os.environ["POWERLOBSTER_API_KEY"],
)


@relay.on("webhook")
async def handle(event):  # event.id, .type, .attempt, .received_at, .headers, .body, .payload
    if isinstance(event.payload, dict) and event.payload.get("event") == "message.received":
        print("New message:", event.payload.get("data"), flush=True)
    else:
        print(f"Webhook {event.type} {event.id} (attempt {event.attempt}): {event.body[:200]!r}", flush=True)


@relay.on("connected")
def connected(info):
    print("Connected! Webhook URL:", info.webhook_url, flush=True)


relay.run()  # until Ctrl-C: handlers in flight finish, then it closes cleanly
