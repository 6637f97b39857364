"""A real HTTP proxy for the tests: tinyproxy (Debian package ``tinyproxy``),
started on a free loopback port with its config and log in a temp dir,
allowing CONNECT to the given ports, optionally with basic auth.

The binary: env TINYPROXY, else ``tinyproxy`` on PATH, else /usr/bin or
/usr/sbin. A missing tinyproxy fails the tests rather than skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple
from urllib.parse import quote

from relay_process import _PRCTL, _die_with_parent


def tinyproxy_bin() -> str:
    candidates = [os.environ.get("TINYPROXY") or "", shutil.which("tinyproxy") or "", "/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise RuntimeError("tinyproxy not found: the proxy tests need it (Debian: apt-get install tinyproxy, or set TINYPROXY)")


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _can_connect(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class TinyProxy:
    """``connect_ports``: ports CONNECT may reach; ``auth``: (user, password)."""

    def __init__(self, connect_ports: Sequence[int], auth: Optional[Tuple[str, str]] = None) -> None:
        self.bin = tinyproxy_bin()
        self.connect_ports = list(connect_ports)
        self.auth = auth
        self.dir = Path(tempfile.mkdtemp(prefix="lobster-tinyproxy-py-"))
        self.log_file = self.dir / "tinyproxy.log"
        self.port = 0
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        """``http://user:pass@127.0.0.1:port``."""
        return f"http://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"

    def start(self) -> "TinyProxy":
        for attempt in range(5):
            self.port = dead_port()
            try:
                self._spawn()
                return self
            except RuntimeError:
                if attempt == 4:
                    raise  # else the free port was taken meanwhile: pick another
        return self

    def _spawn(self, timeout: float = 10.0) -> None:
        conf = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 60",
            f'LogFile "{self.log_file}"',
            "LogLevel Connect",
            "MaxClients 50",
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
            *(f"ConnectPort {p}" for p in self.connect_ports),
            *([f"BasicAuth {self.auth[0]} {self.auth[1]}"] if self.auth else []),
        ]
        conf_file = self.dir / "tinyproxy.conf"
        conf_file.write_text("\n".join(conf) + "\n")
        proc = subprocess.Popen(
            [self.bin, "-d", "-c", str(conf_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )
        self.proc = proc
        deadline = time.monotonic() + timeout
        while not _can_connect(self.port):
            if proc.poll() is not None:
                err = proc.stderr.read().decode("utf-8", "replace").strip() if proc.stderr else ""
                raise RuntimeError(f"tinyproxy exited before listening on {self.port}: {err}")
            if time.monotonic() > deadline:
                self._kill()
                raise RuntimeError(f"tinyproxy did not listen on {self.port} within {timeout} s")
            time.sleep(0.02)

    def log(self) -> str:
        try:
            return self.log_file.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def connects(self, host_port: str) -> int:
        """How many CONNECT requests to ``host_port`` its log shows."""
        return sum(1 for line in self.log().splitlines() if f"CONNECT {host_port} " in line)

    def _kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            if self.proc.stderr is not None:
                self.proc.stderr.close()

    def restart(self, auth: Optional[Tuple[str, str]], timeout: float = 10.0) -> None:
        """Stops it and starts it again on the same port with other credentials."""
        self._kill()
        self.auth = auth
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._spawn()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # the port may be busy for a moment

    def close(self) -> None:
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "TinyProxy":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__: List[str] = ["TinyProxy", "dead_port", "tinyproxy_bin"]
