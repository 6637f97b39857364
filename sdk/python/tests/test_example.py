"""examples/basic-python/main.py runs as written against a relay, and Ctrl-C
(SIGINT) stops it cleanly with exit code 0."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
from relay_process import SDK_DIR, RelayProcess

EXAMPLE = SDK_DIR.parent.parent / "examples" / "basic-python" / "main.py"


class Lines:
    def __init__(self, stream: Any) -> None:
        self.q: "queue.Queue[str]" = queue.Queue()
        self.seen: List[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.q.put(line.rstrip("\n"))

    def expect(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line with {text!r} within {timeout} s; saw {self.seen}")
            try:
                line = self.q.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line


@pytest.mark.skipif(not EXAMPLE.is_file(), reason="examples/basic-python is not in this checkout")
def test_basic_python_example(relay: RelayProcess, agent: Dict[str, Any]) -> None:
    env = dict(os.environ, LOBSTER_RELAY_URL=relay.url, POWERLOBSTER_API_KEY=agent["api_key"])
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=str(EXAMPLE.parent),
    )
    try:
        out = Lines(proc.stdout)
        line = out.expect("Connected! Webhook URL:")
        assert line.endswith(agent["webhook_url"])
        relay.post_webhook(agent["webhook_url"], b'{"event":"message.received","data":{"text":"hi"}}')
        assert out.expect("New message:") == "New message: {'text': 'hi'}"
        other = relay.post_webhook(agent["webhook_url"], b'{"type":"order.paid"}')
        assert other in out.expect("Webhook order.paid")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0, out.seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
