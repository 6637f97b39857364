#!/usr/bin/env bash
# Puts what the Dockerfile copies into the image in one folder of the build
# context (default target/image/, the only part of target/ that
# .dockerignore lets through):
#
#   scripts/stage-image.sh [BINARY] [--out DIR] [--ca-certs FILE]
#
#   lobster-relay        BINARY, a static build (default
#                        target/x86_64-unknown-linux-musl/dist/lobster-relay;
#                        for an arm64 image, an aarch64 musl build)
#   ca-certificates.crt  the CA bundle (default: this machine's)
#   passwd, group        root and the relay's user, lobster (65532)
#   volume/data/         the empty, private (0700) /data
#
# Then: docker build -t lobster-relay .   (or buildah bud --storage-driver
# vfs -t lobster-relay .; docs/install.md).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
die() { echo "stage-image.sh: error: $*" >&2; exit 1; }

binary=""
out="$repo/target/image"
ca=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out="$2"; shift 2 ;;
    --ca-certs) [ $# -ge 2 ] || die "--ca-certs needs a file"; ca="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option: $1" ;;
    *) binary="$1"; shift ;;
  esac
done
binary="${binary:-$repo/target/x86_64-unknown-linux-musl/dist/lobster-relay}"
[ -f "$binary" ] || die "no binary at $binary; build it: cargo build --locked --profile dist --target x86_64-unknown-linux-musl -p lobster-relay"

# The image has no libc or loader: the binary must be static.
if command -v readelf >/dev/null 2>&1; then
  ! readelf -l "$binary" 2>/dev/null | grep -q 'Requesting program interpreter' ||
    die "$binary is dynamically linked: the image needs a static (musl) build"
fi

if [ -z "$ca" ]; then
  for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
    if [ -s "$f" ]; then ca="$f"; break; fi
  done
fi
if [ -z "$ca" ] || [ ! -s "$ca" ]; then
  die "no CA bundle found (Debian: apt-get install ca-certificates); name one with --ca-certs FILE"
fi

rm -rf "$out"
mkdir -p "$out/volume/data"
chmod 0700 "$out/volume/data"
install -m 0755 "$binary" "$out/lobster-relay"
install -m 0644 "$ca" "$out/ca-certificates.crt"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
  'lobster:x:65532:65532:lobster-relay:/data:/sbin/nologin' >"$out/passwd"
printf '%s\n' 'root:x:0:' 'lobster:x:65532:' >"$out/group"
chmod 0644 "$out/passwd" "$out/group"
echo "stage-image.sh: staged $out ($(du -sh "$out" | cut -f1)): $(basename "$binary") from $binary, CA bundle from $ca" >&2
