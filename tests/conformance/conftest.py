"""The conformance suite: real Realtime clients, each in the environment it needs, against
Koe's server with the demo agent.

- The official ``openai`` Python SDK runs in Koe's own venv (it is a dev dependency).
- ``openai-agents``, ``pipecat-ai`` and LiveKit's ``livekit-plugins-openai`` run in a venv
  of their own, made here from requirements/conformance.txt (openai-agents installs a
  top-level ``agents`` package, which would shadow Koe's agents app).
- The ``openai`` Node SDK is installed with npm into var/conformance/node, from
  tests/conformance/clients/package.json; it insists on wss://, so its Koe serves TLS.

Each client has its own marker; one whose environment cannot be made here (no Node, no
package index) skips with the reason, and fails instead under KOE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dashboard.management.commands.seed_demo import seed_demo
from tests.conftest import REQUIRE_SERVICES
from tests.live import ROOT, daphne_server
from tests.local.helpers import silence, spoken

HERE = Path(__file__).parent
CLIENTS = HERE / "clients"
WORK = ROOT / "var" / "conformance"
SPEECH = "I'd like a table for two at seven."


def unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"KOE_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def _stamp(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def client_venv() -> Path:
    """var/conformance/venv with the pinned Python clients (made once, then reused)."""
    requirements = ROOT / "requirements" / "conformance.txt"
    venv = WORK / "venv"
    python = venv / "bin" / "python"
    stamp = venv / ".koe-requirements"
    if python.exists() and stamp.exists() and stamp.read_text() == _stamp(requirements):
        return python
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        capture_output=True,
        text=True,
    )
    if installed.returncode != 0:
        unavailable(f"the client packages could not be installed:\n{installed.stderr[-2000:]}")
    stamp.write_text(_stamp(requirements))
    return python


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """var/conformance/node with the pinned openai Node SDK (npm, made once)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("the Node client needs node and npm (apt-get install nodejs npm)")
    folder = WORK / "node"
    package = CLIENTS / "package.json"
    stamp = folder / ".koe-package"
    if stamp.exists() and stamp.read_text() == _stamp(package):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(package, folder / "package.json")
    installed = subprocess.run(
        [str(npm), "install", "--no-audit", "--no-fund", "--cache", str(WORK / "npm-cache")],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    if installed.returncode != 0:
        unavailable(f"npm could not install the openai Node SDK:\n{installed.stderr[-2000:]}")
    stamp.write_text(_stamp(package))
    return folder


@pytest.fixture(scope="session")
def speech_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The caller's spoken request: 24 kHz PCM16, with quiet before and enough after it
    for server VAD to end the turn."""
    path = tmp_path_factory.mktemp("speech") / "booking.pcm"
    path.write_bytes(silence(300) + spoken(SPEECH) + silence(1500))
    return path


@dataclass
class Site:
    base: str  # http(s)://127.0.0.1:port
    demo: dict[str, Any]
    ca_file: Path | None = None


@pytest.fixture
def site(db: None) -> Iterator[Site]:
    with daphne_server(KOE_LOCAL_WARM_UP="1") as base:
        yield Site(base=base, demo=seed_demo())


@pytest.fixture
def tls_site(db: None, tmp_path: Path) -> Iterator[Site]:
    """Koe serving https:// and wss:// with a development certificate."""
    subprocess.run(
        [sys.executable, "manage.py", "dev_certificate", "--directory", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with daphne_server(
        KOE_LOCAL_WARM_UP="1",
        KOE_TLS_CERT=str(tmp_path / "cert.pem"),
        KOE_TLS_KEY=str(tmp_path / "key.pem"),
    ) as base:
        yield Site(
            base=base.replace("http://", "https://"), demo=seed_demo(), ca_file=tmp_path / "ca.pem"
        )


def run_client(
    command: list[str], *, env: dict[str, str] | None = None, timeout: float = 240
) -> dict[str, Any]:
    """Run a client program; it prints what it saw as one JSON object on its last line."""
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0 and lines, (
        f"the client failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-4000:]}"
    )
    seen: dict[str, Any] = json.loads(lines[-1])
    return seen
