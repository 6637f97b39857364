#!/bin/sh
# Prints "from: text" for every message.received webhook, as it arrives.
# Needs LOBSTER_RELAY_URL and LOBSTER_RELAY_API_KEY (or `lobster-relay login`).
set -eu
lobster-relay listen --print --events 'message.*' \
  | jq --unbuffered -r '.body | fromjson | "\(.data.from // "someone"): \(.data.text)"'
