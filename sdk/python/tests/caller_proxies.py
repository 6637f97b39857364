"""The caller's proxy variables, taken out of this process's environment as
the tests start (conftest imports this module first), so that no test
reaches the relay through a proxy it did not choose. The packaging test
gives them back to pip and build, which may need them for the registry.
"""

from __future__ import annotations

import os
from typing import Dict

PROXY_VARS = [v for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY") for v in (name, name.lower())]

#: What the caller had set; removed from ``os.environ``.
CALLER_PROXIES: Dict[str, str] = {name: os.environ.pop(name) for name in PROXY_VARS if name in os.environ}


def registry_env() -> Dict[str, str]:
    """The environment for a subprocess that talks to the package registry."""
    return {**os.environ, **CALLER_PROXIES}
