"""A real buffering reverse proxy for the tests: nginx (Debian package
``nginx-light``) in front of the relay, on a free loopback port with its
config, logs and temp files in a temp dir. It buffers answers
(``proxy_buffering on``, the relay's ``X-Accel-Buffering: no`` ignored) and
passes no WebSocket upgrade: the network that ``transport="auto"`` must get
through with long-poll."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

from tinyproxy import dead_port


def nginx_bin() -> str:
    return os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"


class BufferingNginx:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.dir = Path(tempfile.mkdtemp(prefix="lobster-nginx-"))
        self.port = 0
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "BufferingNginx":
        if not Path(nginx_bin()).exists():
            raise RuntimeError(f"nginx not found (looked for {nginx_bin()}); install it (apt-get install nginx-light) or set NGINX")
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
        d = self.dir
        conf = f"""
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{self.port};
    location / {{
      proxy_pass http://127.0.0.1:{self.upstream_port};
      proxy_buffering on;
      proxy_ignore_headers X-Accel-Buffering;
      proxy_read_timeout 120s;
    }}
  }}
}}
"""
        conf_file = d / "nginx.conf"
        conf_file.write_text(conf)
        proc = subprocess.Popen(
            [nginx_bin(), "-e", str(d / "error.log"), "-p", str(d), "-c", str(conf_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.proc = proc
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode("utf-8", "replace").strip() if proc.stderr else ""
                raise RuntimeError(f"nginx exited before listening on {self.port}: {err}")
            try:
                with opener.open(f"{self.url}/healthz", timeout=2):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"nginx did not listen on {self.port} within {timeout} s")
            time.sleep(0.02)

    def access_log(self) -> str:
        try:
            return (self.dir / "access.log").read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None

    def __enter__(self) -> "BufferingNginx":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)
