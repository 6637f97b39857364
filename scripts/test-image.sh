#!/usr/bin/env bash
# Builds the container image from a static binary and checks that it runs
# the relay: up, /healthz 200, the image's HEALTHCHECK command passes, and a
# webhook reaches a `listen --print` listener.
#
#   scripts/test-image.sh [BINARY]
#
# BINARY: a static lobster-relay (default
# target/x86_64-unknown-linux-musl/dist/lobster-relay, built by
# `scripts/release.sh VERSION --target x86_64-unknown-linux-musl` or
# `cargo build --locked --profile dist --target x86_64-unknown-linux-musl -p lobster-relay`).
# This script does not build it: a release-time check, not part of CI.
#
# scripts/stage-image.sh stages BINARY into target/image/; `buildah bud
# --storage-driver vfs` builds the Dockerfile (no registry, nothing pulled)
# into a private store under /tmp; `buildah push docker-archive:` exports it.
# Where `podman run` works, the relay runs in a container of the image.
# Where it does not (this sandbox: crun cannot set RLIMIT_NOFILE), the
# image's filesystem is unpacked and its ENTRYPOINT + CMD run from it with
# the image's Env and USER (chroot --userspec), host network; the script
# says which it did. Needs root (buildah's vfs store, chroot); apt-get
# installs buildah when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
started=$(date +%s)

fail() { echo "test-image: FAIL: $*" >&2; exit 1; }
pass() { echo "test-image: ok: $*" >&2; }

[ "$(id -u)" = 0 ] || fail "run as root (buildah's vfs store and chroot)"
binary="${1:-$repo/target/x86_64-unknown-linux-musl/dist/lobster-relay}"
[ -x "$binary" ] || fail "no static binary at $binary (see the header of this script)"
if ! command -v buildah >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
fi
for tool in python3 curl openssl chroot; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is needed"
done

tmp="$(mktemp -d /tmp/lobster-test-image.XXXXXX)"
store=(--storage-driver vfs --root "$tmp/store" --runroot "$tmp/run")
image=localhost/lobster-relay:test
relay_pid="" listen_pid="" container=""
cleanup() {
  for pid in $listen_pid $relay_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$container" ]; then podman "${store[@]}" rm -f "$container" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# wait_until SECONDS WHAT CMD...: polls CMD every 0.1 s.
wait_until() {
  local deadline=$(($(date +%s) + $1)) what="$2"
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$what: not within the time allowed"
    if [ -n "$relay_pid" ] && ! kill -0 "$relay_pid" 2>/dev/null; then
      fail "$what: the relay exited: $(tail -n 20 "$tmp/relay.log" 2>/dev/null)"
    fi
    sleep 0.1
  done
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---- build and export -----------------------------------------------------------

echo "== stage target/image/ and build the image (buildah bud, vfs)" >&2
scripts/stage-image.sh "$binary"
t0=$(date +%s%N)
buildah "${store[@]}" bud --quiet --format docker -t "$image" . >"$tmp/bud.log" 2>&1 ||
  { cat "$tmp/bud.log" >&2; fail "buildah bud"; }
bud_ms=$((($(date +%s%N) - t0) / 1000000))
buildah "${store[@]}" push "$image" "docker-archive:$tmp/image.tar:lobster-relay:test" >"$tmp/push.log" 2>&1 ||
  { cat "$tmp/push.log" >&2; fail "buildah push"; }
pass "built $image in ${bud_ms} ms; exported to docker-archive ($(wc -c <"$tmp/image.tar") bytes)"

# ---- unpack: config and filesystem ----------------------------------------------

mkdir -p "$tmp/archive" "$tmp/rootfs"
tar -xf "$tmp/image.tar" -C "$tmp/archive"
python3 - "$tmp/archive" "$tmp" <<'EOF'
import gzip, json, os, sys
archive, out = sys.argv[1], sys.argv[2]
manifest = json.load(open(os.path.join(archive, "manifest.json")))[0]
config = json.load(open(os.path.join(archive, manifest["Config"])))["config"]
def check(ok, what):
    if not ok:
        sys.exit(f"test-image: FAIL: image config: {what}: {json.dumps(config)}")
check(config.get("User") == "65532:65532", "USER 65532:65532")
check(config.get("Entrypoint") == ["lobster-relay"], "ENTRYPOINT")
check(config.get("Cmd") == ["server"], "CMD")
check("/data" in (config.get("Volumes") or {}), "VOLUME /data")
check("8080/tcp" in (config.get("ExposedPorts") or {}), "EXPOSE 8080")
check((config.get("Healthcheck") or {}).get("Test") == ["CMD", "/usr/local/bin/lobster-relay", "healthcheck"], "HEALTHCHECK")
env = config.get("Env") or []
for want in ["RELAY_LISTEN=0.0.0.0:8080", "RELAY_DATA_DIR=/data", "PATH=/usr/local/bin"]:
    check(want in env, want)
with open(os.path.join(out, "env"), "w") as f:
    f.write("\n".join(env) + "\n")
with open(os.path.join(out, "argv"), "w") as f:
    f.write("\n".join(config["Entrypoint"] + config["Cmd"]) + "\n")
with open(os.path.join(out, "healthcheck"), "w") as f:
    f.write("\n".join(config["Healthcheck"]["Test"][1:]) + "\n")
raw = gz = 0
with open(os.path.join(out, "layers"), "w") as f:
    for layer in manifest["Layers"]:
        path = os.path.join(archive, layer)
        f.write(path + "\n")
        raw += os.path.getsize(path)
        with open(path, "rb") as src:
            gz += len(gzip.compress(src.read(), 6))
with open(os.path.join(out, "sizes"), "w") as f:
    f.write(f"{len(manifest['Layers'])} {raw} {gz}\n")
EOF
while read -r layer; do
  tar -xpf "$layer" --numeric-owner -C "$tmp/rootfs"
done <"$tmp/layers"
read -r layers raw_bytes gz_bytes <"$tmp/sizes"
rootfs="$tmp/rootfs"
[ -s "$rootfs/etc/ssl/certs/ca-certificates.crt" ] || fail "no CA certificates in the image"
grep -q '^lobster:x:65532:65532:' "$rootfs/etc/passwd" || fail "/etc/passwd lacks the relay's user"
[ "$(stat -c '%u:%g %a' "$rootfs/data")" = "65532:65532 700" ] || fail "/data is $(stat -c '%u:%g %a' "$rootfs/data")"
[ ! -e "$rootfs/bin/sh" ] || fail "the image has a shell"
[ -z "$(find "$rootfs" -type f ! -path "$rootfs/usr/local/bin/lobster-relay" ! -path "$rootfs/etc/*")" ] ||
  fail "unexpected files: $(find "$rootfs" -type f ! -path "$rootfs/usr/local/bin/lobster-relay" ! -path "$rootfs/etc/*")"
pass "config (USER 65532:65532, ENTRYPOINT, CMD, HEALTHCHECK, VOLUME, ENV) and filesystem ($layers layer, $raw_bytes bytes; $gz_bytes gzipped)"

# ---- run it ----------------------------------------------------------------------

mapfile -t image_env <"$tmp/env"
mapfile -t argv <"$tmp/argv"
mapfile -t health <"$tmp/healthcheck"
WEBHOOK_SECRET="whsec_$(head -c 24 /dev/urandom | base64)"
RELAY_ADMIN_TOKEN="lra_test_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export WEBHOOK_SECRET RELAY_ADMIN_TOKEN
port="$(free_port)"
url="http://127.0.0.1:$port"

mode=""
if command -v podman >/dev/null 2>&1 &&
  timeout 60 podman "${store[@]}" run --rm "$image" version >/dev/null 2>"$tmp/podman.log"; then
  mode="container"
  echo "== podman run works: the relay runs in a container of the image (port $port -> 8080)" >&2
  container="lobster-relay-test-$$"
  podman "${store[@]}" run -d --name "$container" -p "127.0.0.1:$port:8080" \
    -e WEBHOOK_SECRET -e RELAY_ADMIN_TOKEN -e RELAY_PUBLIC_URL="$url" "$image" >/dev/null
  healthcheck() { podman "${store[@]}" healthcheck run "$container"; }
else
  mode="unpacked"
  echo "== not running the container: podman $(command -v podman >/dev/null 2>&1 && echo "run failed here: $(tail -n 1 "$tmp/podman.log")" || echo "is not installed") " >&2
  echo "   running the image's ENTRYPOINT + CMD (${argv[*]}) from its unpacked filesystem instead:" >&2
  echo "   image Env, chroot --userspec=65532:65532, host network, RELAY_LISTEN=127.0.0.1:$port" >&2
  chroot_bin="$(command -v chroot)"
  env -i "${image_env[@]}" RELAY_LISTEN="127.0.0.1:$port" RELAY_PUBLIC_URL="$url" \
    WEBHOOK_SECRET="$WEBHOOK_SECRET" RELAY_ADMIN_TOKEN="$RELAY_ADMIN_TOKEN" \
    "$chroot_bin" --userspec=65532:65532 "$rootfs" "${argv[@]}" >"$tmp/relay.out" 2>"$tmp/relay.log" &
  relay_pid=$!
  # The HEALTHCHECK command, in the image, as its user; --url because the
  # relay shares the host's network here instead of owning port 8080.
  healthcheck() {
    env -i "${image_env[@]}" "$chroot_bin" --userspec=65532:65532 "$rootfs" "${health[@]}" --url "$url/readyz"
  }
fi

t0=$(date +%s%N)
wait_until 30 "GET /healthz answers 200" curl -fsS "$url/healthz"
up_ms=$((($(date +%s%N) - t0) / 1000000))
pass "relay up, GET /healthz 200 after ${up_ms} ms"
healthcheck || fail "the image's HEALTHCHECK command failed"
pass "HEALTHCHECK (${health[*]}) exits 0"

bin="$rootfs/usr/local/bin/lobster-relay" # static: runs on the host as well
"$bin" admin create-agent image-test --relay "$url" --json >"$tmp/agent.json" || fail "admin create-agent"
api_key="$(sed -n 's/.*"api_key": *"\([^"]*\)".*/\1/p' "$tmp/agent.json")"
[ -n "$api_key" ] || fail "no api_key in $(cat "$tmp/agent.json")"
LOBSTER_RELAY_KEYRING=off LOBSTER_RELAY_CONFIG_DIR="$tmp/cli" \
  "$bin" listen --relay "$url" --api-key "$api_key" --print >"$tmp/events" 2>"$tmp/listen.log" &
listen_pid=$!
wait_until 30 "listen says Ready!" grep -q 'Ready!' "$tmp/listen.log"
hook="$(grep -o 'Your webhook URL is [^ ]*' "$tmp/listen.log" | head -n 1 | sed 's/.* //')"
[ -n "$hook" ] || fail "no webhook URL in: $(cat "$tmp/listen.log")"
marker="image-test-$(date +%s%N)"
scripts/send-webhook.sh "$hook" "{\"type\":\"image.test\",\"marker\":\"$marker\"}" >"$tmp/send.log" 2>&1 ||
  fail "send-webhook.sh: $(cat "$tmp/send.log")"
wait_until 30 "the webhook reaches the listener" grep -q "$marker" "$tmp/events"
pass "a signed webhook to $hook reached listen --print"

if [ "$mode" = unpacked ]; then
  owners="$(find "$rootfs/data" -mindepth 1 -printf '%u:%g\n' | sort -u | tr '\n' ' ')"
  [ -n "$owners" ] || fail "the relay wrote nothing to /data"
  [ "$owners" = "65532:65532 " ] || fail "files in /data owned by $owners"
  pass "the relay wrote /data as 65532:65532 ($(find "$rootfs/data" -mindepth 1 -printf '%f ' ))"
  kill -TERM "$relay_pid"
  status=0
  wait "$relay_pid" || status=$?
  relay_pid=""
  [ "$status" -eq 0 ] || fail "the relay exited $status on SIGTERM: $(tail -n 5 "$tmp/relay.log")"
  pass "SIGTERM: the relay drained and exited 0"
fi

echo "test-image: all passed in $(($(date +%s) - started)) s; mode: $mode ($([ "$mode" = container ] && echo "ran the container with podman" || echo "did NOT run a container: ran the entrypoint from the unpacked image")); image: $raw_bytes bytes uncompressed, $gz_bytes gzipped" >&2
