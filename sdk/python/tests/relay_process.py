"""Runs a real lobster-relay for tests and benchmarks, and talks to its HTTP
API with the standard library only.

The binary comes from env LOBSTER_RELAY_BIN, else ../../target/debug/lobster-relay
relative to sdk/python.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

SDK_DIR = Path(__file__).resolve().parent.parent
DEFAULT_BIN = SDK_DIR.parent.parent / "target" / "debug" / "lobster-relay"


def relay_bin() -> Path:
    path = Path(os.environ.get("LOBSTER_RELAY_BIN") or DEFAULT_BIN)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise RuntimeError(
            f"lobster-relay binary not found at {path}: build it with `cargo build -p lobster-relay` "
            "or set LOBSTER_RELAY_BIN"
        )
    return path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the relay gets SIGKILL if the test process dies, so a crashed or
    killed test run leaves no relay behind."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


try:  # resolved before any fork, so the child only makes a syscall
    import ctypes

    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except Exception:  # pragma: no cover
    _PRCTL = None


class RelayProcess:
    """One relay server: port 0 (or a fixed port on restart), a temp data dir."""

    def __init__(self, extra_args: Sequence[str] = (), data_dir: Optional[str] = None) -> None:
        self.bin = relay_bin()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="lobster-relay-py-")
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.key = base64.b64decode(self.secret[len("whsec_") :])
        self.admin_token = "lra_test_" + secrets.token_hex(16)
        self.extra_args = list(extra_args)
        #: Trusts the relay's certificate for the test's own HTTPS requests (a TLS relay).
        self.ssl_context: Optional[ssl.SSLContext] = None
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.port: Optional[int] = None
        self.url = ""
        self.lines: List[str] = []
        self.listening_at: Optional[float] = None  # time.monotonic() of "relay listening"
        self._listening = threading.Event()
        self._lock = threading.Lock()

    # -- process --------------------------------------------------------

    def spawn(self, port: Optional[int] = None) -> None:
        """Starts the process (returns at once; see wait_listening)."""
        listen = f"127.0.0.1:{port if port is not None else 0}"
        args = [
            str(self.bin),
            "server",
            "--listen",
            listen,
            "--data-dir",
            self.data_dir,
            "--webhook-secret",
            self.secret,
            "--admin-token",
            self.admin_token,
            "--retry-initial",
            "100ms",
            "--auth-failure-limit",
            "10000/m",
            *self.extra_args,
        ]
        env = dict(os.environ, RELAY_LOG_FORMAT="json")
        for name in ("WEBHOOK_SECRET", "RELAY_ADMIN_TOKEN", "DATABASE_URL", "RELAY_CONFIG"):
            env.pop(name, None)
        self._listening.clear()
        self.listening_at = None
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )
        threading.Thread(target=self._read_stderr, args=(self.proc,), daemon=True).start()

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self.lines.append(line)
            if "relay listening" in line and not self._listening.is_set():
                try:
                    fields = json.loads(line).get("fields", {})
                    url = fields.get("url", "")
                except ValueError:
                    url = ""
                if url:
                    self.url = url.rstrip("/")
                    self.port = int(self.url.rsplit(":", 1)[1])
                    self.listening_at = time.monotonic()
                    self._listening.set()
        proc.stderr.close()

    def wait_listening(self, timeout: float = 30.0) -> None:
        """Blocks until the "relay listening" line (raises if the process exits)."""
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            assert self.proc is not None
            if self.proc.poll() is not None:
                time.sleep(0.05)  # let the reader collect the last lines
                raise RuntimeError(f"the relay exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the relay did not say 'relay listening' within {timeout} s:\n{self.log_tail()}")

    def start(self, timeout: float = 30.0) -> "RelayProcess":
        self.spawn()
        self.wait_listening(timeout)
        return self

    def restart_same_port(self, timeout: float = 30.0, tries: int = 20) -> None:
        """Starts again on the same port and data dir; retries while the port is busy."""
        assert self.port is not None
        port = self.port
        for attempt in range(tries):
            self.spawn(port)
            try:
                self.wait_listening(timeout)
                return
            except RuntimeError:
                if attempt == tries - 1:
                    raise
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL, and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (graceful drain), then SIGKILL after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, n: int = 40) -> str:
        with self._lock:
            return "\n".join(self.lines[-n:])

    def __enter__(self) -> "RelayProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- HTTP -------------------------------------------------------------

    def request(
        self,
        method: str,
        path_or_url: str,
        body: Optional[bytes] = None,
        headers: Optional[Dict[str, str]] = None,
        timeout: float = 30.0,
    ) -> Tuple[int, Any]:
        url = path_or_url if path_or_url.startswith("http") else self.url + path_or_url
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        # Straight to the relay: never through a proxy from the environment
        # (the proxy tests set HTTP_PROXY for the SDK, and may point it at nothing).
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.ssl_context)
        )
        try:
            with opener.open(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw

    def create_agent(self, name: str = "py-sdk-test") -> Dict[str, Any]:
        status, data = self.request(
            "POST",
            "/api/v1/admin/agents",
            json.dumps({"name": name}).encode(),
            {"Authorization": f"Bearer {self.admin_token}", "Content-Type": "application/json"},
        )
        if status != 201:
            raise RuntimeError(f"create agent: HTTP {status} {data!r}")
        assert isinstance(data, dict)
        return data

    def revoke_agent(self, agent_id: str) -> None:
        status, data = self.request(
            "DELETE", f"/api/v1/admin/agents/{agent_id}", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        if status != 200:
            raise RuntimeError(f"revoke agent: HTTP {status} {data!r}")

    def agent_request(self, method: str, path: str, api_key: str, body: Optional[bytes] = None) -> Tuple[int, Any]:
        headers = {"Authorization": f"Bearer {api_key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return self.request(method, path, body, headers)

    def signed_headers(self, body: bytes, msg_id: Optional[str] = None, content_type: str = "application/json") -> Dict[str, str]:
        msg_id = msg_id or "msg_" + secrets.token_hex(12)
        ts = str(int(time.time()))
        signed = f"{msg_id}.{ts}.".encode() + body
        sig = base64.b64encode(hmac.new(self.key, signed, hashlib.sha256).digest()).decode()
        return {
            "content-type": content_type,
            "webhook-id": msg_id,
            "webhook-timestamp": ts,
            "webhook-signature": f"v1,{sig}",
        }

    def post_webhook(
        self,
        webhook_url: str,
        body: bytes,
        content_type: str = "application/json",
        extra_headers: Optional[Dict[str, str]] = None,
    ) -> str:
        """Posts one signed webhook; returns the event id of the 202."""
        headers = self.signed_headers(body, content_type=content_type)
        headers.update(extra_headers or {})
        status, data = self.request("POST", webhook_url, body, headers)
        if status != 202 or not isinstance(data, dict) or data.get("duplicate"):
            raise RuntimeError(f"webhook not accepted: HTTP {status} {data!r}")
        return str(data["id"])
