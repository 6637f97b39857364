#!/usr/bin/env bash
# Posts one webhook signed the Standard Webhooks way, as a platform would.
set -euo pipefail
usage() {
  cat <<'USAGE'
usage: scripts/send-webhook.sh WEBHOOK_URL [BODY]

Posts BODY (default: a small JSON hello) to WEBHOOK_URL, signed the Standard
Webhooks way (webhook-id, webhook-timestamp, webhook-signature headers).
The secret comes from WEBHOOK_SECRET (whsec_<base64>), or from
.lobster-local/webhook_secret as written by scripts/run-local.sh.
Prints the relay's answer; exits 0 on a 2xx answer, 1 otherwise.
USAGE
}
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
url="$1"
body="${2:-{\"type\":\"hello.world\",\"text\":\"hi from send-webhook.sh\"\}}"
secret="${WEBHOOK_SECRET:-$(cat "$(dirname "$0")/../.lobster-local/webhook_secret" 2>/dev/null || true)}"
[ -n "$secret" ] || { echo "set WEBHOOK_SECRET (whsec_...) first, or run scripts/run-local.sh once" >&2; exit 2; }
key_hex=$(printf '%s' "${secret#whsec_}" | base64 -d | od -An -tx1 | tr -d ' \n')
id="msg_$(date +%s%N)"
ts=$(date +%s)
sig=$(printf '%s' "$id.$ts.$body" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -binary | base64)
answer=$(mktemp)
trap 'rm -f "$answer"' EXIT
status=$(curl -sS -o "$answer" -w '%{http_code}' -X POST "$url" \
  -H "content-type: application/json" \
  -H "webhook-id: $id" -H "webhook-timestamp: $ts" -H "webhook-signature: v1,$sig" \
  --data-binary "$body")
cat "$answer"; echo
case "$status" in
  2??) exit 0 ;;
  *) echo "the relay answered HTTP $status" >&2; exit 1 ;;
esac
