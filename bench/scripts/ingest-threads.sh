#!/usr/bin/env bash
# Where a relay's CPU goes per accepted webhook, by thread, at ingest
# saturation: wrk -t2 -c64 posts distinct ~1 KB JSON bodies (no signature)
# to one agent for DURATION, and the relay's SQLite writer thread and tokio
# workers are read from /proc before and after, with the bytes the process
# wrote. No listener: events only queue. Needs wrk, curl, jq.
#
#   bench/scripts/ingest-threads.sh BIN [DURATION] [listen]    # e.g. target/release/lobster-relay 5s
#
# With `listen`, `BIN listen` (JSON lines to /dev/null) takes every event
# as it comes, so the figures include its lease and its ack; they are read
# once it has acked all of them, and its own CPU per event is printed too.
#
# Prints one line: accepted/s, writer and worker CPU per event (µs, user +
# system), bytes written per event (all files and sockets, `wchar`).
set -euo pipefail
bin=$1
duration=${2:-5s}
mode=${3:-queue}
dir=$(mktemp -d /tmp/lobster-ingest-threads.XXXXXX)
listener=
trap 'kill $listener "$relay" 2>/dev/null || true; wait "$relay" 2>/dev/null || true; rm -rf "$dir"' EXIT
token=lra_$(head -c 200 /dev/urandom | tr -dc '0-9a-hjkmnp-tv-z' | head -c 52)
port=$((20000 + RANDOM % 20000))
"$bin" server --listen 127.0.0.1:$port --data-dir "$dir/data" --signature-scheme none \
  --admin-token "$token" --agent-rate-limit 1000000/s --agent-max-pending 1000000000 \
  >"$dir/relay.log" 2>&1 &
relay=$!
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
agent=$(curl -fs -X POST -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"bench"}' "http://127.0.0.1:$port/api/v1/admin/agents")
url=$(jq -r .webhook_url <<<"$agent")
key=$(jq -r .api_key <<<"$agent")
pending() {
  curl -fs -H "Authorization: Bearer $key" "http://127.0.0.1:$port/api/v1/agent/me" | jq -r .pending_events
}
if [ "$mode" = listen ]; then
  NO_COLOR=1 "$bin" listen --relay "http://127.0.0.1:$port" --api-key "$key" \
    >/dev/null 2>"$dir/listen.log" </dev/null &
  listener=$!
  for _ in $(seq 1 100); do grep -q "Ready\|webhook" "$dir/listen.log" && break; sleep 0.1; done
fi
cat >"$dir/post.lua" <<'LUA'
local counter = 0
local threads = {}
local run = tostring(os.time()) .. tostring(math.random(1000000))
function setup(thread) thread:set("tid", #threads); table.insert(threads, thread) end
function request()
  counter = counter + 1
  local body = '{"type":"bench","seq":' .. string.format("%d", (tid + 1) * 1000000000 + counter)
    .. ',"run":"' .. run .. '","pad":"' .. string.rep("x", 900) .. '"}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
LUA
ticks() {
  for t in /proc/$relay/task/*; do echo "$(cat "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; done |
    awk '{a[$1] += $2} END {printf "%d %d\n", a["sqlite-writer"], a["tokio-rt-worker"]}'
}
written() { awk '/^wchar/ {print $2}' "/proc/$relay/io"; }
listen_ticks() {
  if [ -n "$listener" ]; then awk '{print $14 + $15}' "/proc/$listener/stat"; else echo 0; fi
}
read -r w0 k0 < <(ticks); b0=$(written); l0=$(listen_ticks)
out=$(wrk -t2 -c64 -d"$duration" -s "$dir/post.lua" "$url")
if [ -n "$listener" ]; then
  for _ in $(seq 1 600); do [ "$(pending)" = 0 ] && break; sleep 0.1; done
  if [ "$(pending)" != 0 ]; then echo "the listener did not ack everything within 60 s" >&2; exit 1; fi
fi
read -r w1 k1 < <(ticks); b1=$(written); l1=$(listen_ticks)
n=$(awk '/requests in/ {print $1}' <<<"$out")
refused=$(awk '/Non-2xx/ {print $5}' <<<"$out")
if [ -n "$refused" ]; then
  echo "$refused of $n requests were not answered 2xx: not a valid run" >&2
  exit 1
fi
rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
hz=$(getconf CLK_TCK)
awk -v b="$(basename "$bin")" -v r="$rps" -v n="$n" -v w=$((w1 - w0)) -v k=$((k1 - k0)) \
  -v bytes=$((b1 - b0)) -v hz="$hz" -v l=$((l1 - l0)) -v mode="$mode" 'BEGIN {
    printf "%s: %s accepted/s; per event: writer %.1f µs, workers %.1f µs, %d bytes written",
      b, r, w * 1e6 / hz / n, k * 1e6 / hz / n, bytes / n
    if (mode == "listen") printf ", listen %.1f µs", l * 1e6 / hz / n
    printf "\n" }'
