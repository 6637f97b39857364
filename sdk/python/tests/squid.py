"""A real squid (Debian package ``squid``) for the tests, on a free loopback
port with its config and logs in a temp dir, configured as a typical
corporate proxy: plain HTTP is forwarded, CONNECT only to port 443 (so the
WebSocket's tunnel to a relay on another port is refused with 403)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from tinyproxy import _can_connect, dead_port


def squid_bin() -> str:
    return os.environ.get("SQUID") or shutil.which("squid") or "/usr/sbin/squid"


class Squid:
    def __init__(self) -> None:
        # Squid started as root writes its logs as its own user ('proxy'), so
        # its dir must be reachable for that user: under /tmp, not a private TMPDIR.
        self.dir = Path(tempfile.mkdtemp(prefix="lobster-squid-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.dir.chmod(0o777)
        self.port = 0
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "Squid":
        if not Path(squid_bin()).exists():
            raise RuntimeError(f"squid not found (looked for {squid_bin()}); install it (apt-get install squid) or set SQUID")
        self.port = dead_port()
        d = self.dir
        conf = [
            f"http_port 127.0.0.1:{self.port}",
            f"pid_filename {d}/squid.pid",
            f"access_log stdio:{d}/access.log squid",
            f"cache_log {d}/cache.log",
            f"coredump_dir {d}",
            "cache deny all",
            "cache_mem 8 MB",
            "pinger_enable off",
            "shutdown_lifetime 0 seconds",
            "acl SSL_ports port 443",
            "acl CONNECT method CONNECT",
            "acl loopback src 127.0.0.1/32",
            "http_access deny CONNECT !SSL_ports",
            "http_access allow loopback",
            "http_access deny all",
        ]
        (d / "squid.conf").write_text("\n".join(conf) + "\n")
        self.proc = subprocess.Popen(
            [squid_bin(), "-N", "-f", str(d / "squid.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not _can_connect(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"squid did not listen on {self.port}: {self.cache_log()}")
            time.sleep(0.02)
        return self

    def cache_log(self) -> str:
        try:
            return (self.dir / "cache.log").read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def access_log(self) -> str:
        """Its access log so far (squid writes a line when a request ends)."""
        try:
            return (self.dir / "access.log").read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def __enter__(self) -> "Squid":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)
