#!/bin/sh
# One event per run of on-message.sh: `listen --exec` pipes the raw body to
# it and acks only when it exits 0, so a failure is retried by the relay.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec lobster-relay listen --events 'message.*' --exec "$here/on-message.sh"
