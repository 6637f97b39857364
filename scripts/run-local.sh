#!/usr/bin/env bash
# The main job on one machine: a relay on the embedded SQLite default plus a
# listener for one agent. Webhooks posted to the printed URL are forwarded
# to FORWARD (default: printed to stdout as JSON lines).
#
#   scripts/run-local.sh                      # print events as JSON lines
#   scripts/run-local.sh localhost:3000/hooks # forward them to a local app
#   scripts/run-local.sh --relay-only         # no listener: for an SDK or your own
#   RELAY_PORT=8081 scripts/run-local.sh      # another port (default 8080)
#
# State lives in .lobster-local/ (database, secret, agent key), readable only
# by you; delete it to start over. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077
relay_only=false
if [ "${1:-}" = "--relay-only" ]; then
  relay_only=true
  shift
fi
state="$PWD/.lobster-local"
mkdir -p "$state"
port="${RELAY_PORT:-8080}"
relay="http://127.0.0.1:$port"

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "port $port is busy (another relay or app listens there): pick another with RELAY_PORT=8081 $0" >&2
  exit 1
fi

cargo build --release --locked -p lobster-relay --bin lobster-relay
bin="$PWD/target/release/lobster-relay"

[ -s "$state/webhook_secret" ] || echo "whsec_$(head -c 24 /dev/urandom | base64)" > "$state/webhook_secret"
[ -s "$state/admin_token" ] || echo "lra_local_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$state/admin_token"
# Secrets travel by environment, never on a command line (visible in ps).
WEBHOOK_SECRET="$(cat "$state/webhook_secret")"
RELAY_ADMIN_TOKEN="$(cat "$state/admin_token")"
export WEBHOOK_SECRET RELAY_ADMIN_TOKEN

"$bin" server --listen "127.0.0.1:$port" --data-dir "$state/data" &
relay_pid=$!
trap 'kill -TERM $relay_pid 2>/dev/null; wait $relay_pid 2>/dev/null' EXIT

for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$relay_pid" 2>/dev/null || { echo "the relay did not start; see its log above" >&2; exit 1; }
  sleep 0.1
done

if [ ! -s "$state/api_key" ]; then
  "$bin" admin create-agent local-agent --relay "$relay" --json > "$state/agent.json"
  sed -n 's/.*"api_key": *"\([^"]*\)".*/\1/p' "$state/agent.json" > "$state/api_key"
fi
LOBSTER_RELAY_URL="$relay"
LOBSTER_RELAY_API_KEY="$(cat "$state/api_key")"
export LOBSTER_RELAY_URL LOBSTER_RELAY_API_KEY

cat >&2 <<MSG

Relay: $relay   (signing secret in $state/webhook_secret, Standard Webhooks)
In another terminal:
  scripts/send-webhook.sh URL                 # a signed webhook, as a platform sends it
  curl -X POST -H "Authorization: Bearer \$(cat $state/api_key)" -H 'content-type: application/json' \\
       -d '{"event_type":"test.hello","data":{}}' $relay/api/v1/agent/test-event
  export LOBSTER_RELAY_URL=$relay LOBSTER_RELAY_API_KEY=\$(cat $state/api_key)
  lobster-relay status                        # other commands, against this relay

MSG

if $relay_only; then
  webhook_url=$(sed -n 's/.*"webhook_url": *"\([^"]*\)".*/\1/p' "$state/agent.json")
  echo "Relay only (no listener). Agent key: $state/api_key; webhook URL: $webhook_url" >&2
  echo "e.g. POWERLOBSTER_API_KEY=\$(cat $state/api_key) node examples/basic-nodejs/index.mjs. Ctrl-C stops the relay." >&2
  wait "$relay_pid"
elif [ $# -gt 0 ]; then
  "$bin" listen --forward "$1"
else
  "$bin" listen --print
fi
