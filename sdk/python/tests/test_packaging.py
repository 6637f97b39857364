"""`python -m build` makes an sdist and a wheel; the wheel installs into a
fresh virtualenv and imports there, typed (py.typed).

Slow-ish and needs the `build` package and PyPI (or a wheel cache) for
hatchling and websockets, so it runs only with POWERLOBSTER_TEST_PACKAGING=1
(test.sh sets it). Artifacts go to $POWERLOBSTER_DIST (default: a temp dir).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest
from caller_proxies import registry_env
from relay_process import SDK_DIR

pytestmark = pytest.mark.skipif(
    os.environ.get("POWERLOBSTER_TEST_PACKAGING") != "1",
    reason="set POWERLOBSTER_TEST_PACKAGING=1 to build and install the artifacts",
)


def test_build_then_install_the_wheel_into_a_scratch_venv(tmp_path: Path) -> None:
    dist = Path(os.environ.get("POWERLOBSTER_DIST") or tmp_path / "dist")
    for old in dist.glob("powerlobster_webhook-*"):
        old.unlink()
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(SDK_DIR)],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=170,
        env=registry_env(),
    )
    (wheel,) = dist.glob("powerlobster_webhook-*.whl")
    (sdist,) = dist.glob("powerlobster_webhook-*.tar.gz")

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "powerlobster_webhook/py.typed" in names
        assert "powerlobster_webhook/__init__.py" in names
        assert not any(n.startswith("tests/") for n in names)
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = zf.read(metadata).decode()
    assert "Name: powerlobster-webhook" in meta
    assert "Requires-Python: >=3.9" in meta
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert len(requires) == 1 and "websockets" in requires[0], requires
    with tarfile.open(sdist) as tf:
        members = tf.getnames()
    assert any(m.endswith("src/powerlobster_webhook/py.typed") for m in members)
    assert any(m.endswith("pyproject.toml") for m in members)

    venv = tmp_path / "scratch-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
        timeout=170,
        env=registry_env(),
    )
    check = (
        "import pathlib, powerlobster_webhook as p; "
        "from powerlobster_webhook import WebhookRelay, WebhookEvent, verify_signature; "
        "root = pathlib.Path(p.__file__).parent; "
        "assert (root / 'py.typed').is_file(); "
        "assert 'site-packages' in str(root), root; "
        "r = WebhookRelay(relay_url='https://relay.example.com', api_key='lrk_x'); "
        "assert r.url == 'wss://relay.example.com/api/v1/agent/connect'; "
        "print(p.__version__)"
    )
    with tempfile.TemporaryDirectory() as elsewhere:  # not the source tree
        out = subprocess.run(
            [str(python), "-c", check], check=True, cwd=elsewhere, capture_output=True, text=True, timeout=60
        )
    assert out.stdout.strip() and out.stdout.strip() in wheel.name
