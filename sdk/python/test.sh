#!/usr/bin/env bash
# The Python SDK's checks, self-contained, for CI and developers:
#
#   sdk/python/test.sh
#
# Makes (or reuses) a virtualenv in sdk/python/.venv, installs the SDK
# (editable) with pytest, build and mypy from PyPI, type-checks it
# (mypy --strict), then runs pytest: unit tests, the scenarios against a real
# relay (each module starts its own on port 0 with a temp data dir), the
# basic-python example, and the packaging test (python -m build, then the
# wheel installed into a scratch virtualenv and imported). Artifacts stay in
# sdk/python/dist/.
#
# Needs: python3 (3.9+) with the venv module (Debian: apt-get install
# python3-venv), the relay binary: LOBSTER_RELAY_BIN, else
# target/debug/lobster-relay (cargo build -p lobster-relay), tinyproxy and
# openssl for the proxy tests (TINYPROXY names another tinyproxy binary), and
# nginx and squid for the transport tests (NGINX, SQUID name other binaries).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
sdk="$PWD"

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "test.sh: $python not found on PATH (Python 3.9+ needed)" >&2; exit 1; }
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
  { echo "test.sh: $("$python" --version 2>&1) is too old; the SDK needs Python 3.9+" >&2; exit 1; }
"$python" -c 'import venv, ensurepip' 2>/dev/null ||
  { echo "test.sh: $python lacks the venv/ensurepip modules (Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 1; }

export LOBSTER_RELAY_BIN="${LOBSTER_RELAY_BIN:-$sdk/../../target/debug/lobster-relay}"
[ -x "$LOBSTER_RELAY_BIN" ] ||
  { echo "test.sh: no relay binary at $LOBSTER_RELAY_BIN (cargo build -p lobster-relay, or set LOBSTER_RELAY_BIN)" >&2; exit 1; }

# The proxy tests run a real tinyproxy (and make a TLS certificate with
# openssl); a missing one fails the run rather than skipping them.
export TINYPROXY="${TINYPROXY:-$(command -v tinyproxy || echo /usr/sbin/tinyproxy)}"
[ -x "$TINYPROXY" ] ||
  { echo "test.sh: tinyproxy not found; the proxy tests need it (Debian: apt-get install tinyproxy, or set TINYPROXY)" >&2; exit 1; }
# The transport tests put a buffering nginx in front of the relay (auto must
# end on long-poll behind it) and go through squid; a missing one fails the run too.
export NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
[ -x "$NGINX" ] ||
  { echo "test.sh: nginx not found; the transport tests need it (Debian: apt-get install nginx-light, or set NGINX)" >&2; exit 1; }
export SQUID="${SQUID:-$(command -v squid || echo /usr/sbin/squid)}"
[ -x "$SQUID" ] ||
  { echo "test.sh: squid not found; the transport tests need it (Debian: apt-get install squid, or set SQUID)" >&2; exit 1; }
command -v openssl >/dev/null ||
  { echo "test.sh: openssl not found; the proxy tests make a TLS certificate with it (Debian: apt-get install openssl)" >&2; exit 1; }

# Reuse .venv when it was made by this same interpreter; else make it anew.
want="$("$python" -c 'import sys; print(sys.version)')"
if [ ! -x .venv/bin/python ] || [ "$(.venv/bin/python -c 'import sys; print(sys.version)' 2>/dev/null)" != "$want" ]; then
  rm -rf .venv
  "$python" -m venv .venv
fi
venv_py="$sdk/.venv/bin/python"
"$venv_py" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv_py" -m pip install --quiet --disable-pip-version-check -e . "pytest>=7" "build>=1" "mypy>=1.10"

echo "== mypy --strict"
"$venv_py" -m mypy --strict src/powerlobster_webhook

echo "== pytest (relay: $LOBSTER_RELAY_BIN)"
export POWERLOBSTER_TEST_PACKAGING=1 POWERLOBSTER_DIST="$sdk/dist"
# pytest's exit code is the script's; a run that collects nothing (5) fails too.
# The tests choose their proxies themselves: tests/caller_proxies.py takes the
# caller's proxy variables out of the environment (only the packaging test's
# pip and build get them back, for the registry).
exec "$venv_py" -m pytest -p no:cacheprovider "$@"
