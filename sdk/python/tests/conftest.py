from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import caller_proxies  # noqa: E402,F401  (first: takes the caller's proxy variables out)
from relay_process import RelayProcess  # noqa: E402

@pytest.fixture(scope="session")
def relay() -> Iterator[RelayProcess]:
    """One relay for the whole run; each test makes its own agent, so queues never mix."""
    with RelayProcess() as proc:
        yield proc


@pytest.fixture
def agent(relay: RelayProcess) -> dict[str, Any]:
    return relay.create_agent()


