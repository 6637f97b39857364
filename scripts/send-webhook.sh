#!/usr/bin/env bash
# Posts one webhook signed the Standard Webhooks way, as a platform would.
#
#   scripts/send-webhook.sh WEBHOOK_URL [BODY]
#
# The secret comes from WEBHOOK_SECRET (whsec_<base64>), or from
# .lobster-local/webhook_secret as written by scripts/run-local.sh.
set -euo pipefail
url="${1:?usage: scripts/send-webhook.sh WEBHOOK_URL [BODY]}"
body="${2:-{\"type\":\"hello.world\",\"text\":\"hi from send-webhook.sh\"\}}"
secret="${WEBHOOK_SECRET:-$(cat "$(dirname "$0")/../.lobster-local/webhook_secret" 2>/dev/null || true)}"
[ -n "$secret" ] || { echo "set WEBHOOK_SECRET (whsec_...) first" >&2; exit 2; }
key_hex=$(printf '%s' "${secret#whsec_}" | base64 -d | od -An -tx1 | tr -d ' \n')
id="msg_$(date +%s%N)"
ts=$(date +%s)
sig=$(printf '%s' "$id.$ts.$body" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -binary | base64)
curl -sS -X POST "$url" \
  -H "content-type: application/json" \
  -H "webhook-id: $id" -H "webhook-timestamp: $ts" -H "webhook-signature: v1,$sig" \
  --data-binary "$body"
echo
