"""platform/ is a plain folder: the stdlib ``platform`` module must win everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx

from tests.live import listening_socket

ROOT = Path(__file__).resolve().parents[2]
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
BIN = Path(sys.executable).parent


def _run(*args: str, timeout: int = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_pytest_sees_the_stdlib_platform() -> None:
    import platform

    assert Path(platform.__file__).resolve().parent == STDLIB
    assert platform.system() == os.uname().sysname
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_django_sees_the_stdlib_platform() -> None:
    result = _run(
        sys.executable,
        "-c",
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'koe.settings');"
        "django.setup(); import platform, koe.settings;"
        "print(platform.system(), platform.__file__)",
    )
    assert result.returncode == 0, result.stderr
    system, path = result.stdout.split()
    assert system == os.uname().sysname
    assert Path(path).resolve().parent == STDLIB


def test_manage_py_runs_from_the_repository_root() -> None:
    result = _run(
        sys.executable,
        "manage.py",
        "shell",
        "-v",
        "0",
        "-c",
        "import platform; print(platform.system())",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == os.uname().sysname


def test_celery_sees_the_stdlib_platform() -> None:
    # `celery report` describes the host through the platform module.
    result = _run(str(BIN / "celery"), "-A", "koe", "report")
    assert result.returncode == 0, result.stderr
    assert f"system:{os.uname().sysname}" in result.stdout


def test_daphne_serves_koe() -> None:
    # Twisted (under Daphne, which koe.server runs) calls platform.system() at import; a
    # shadowing package named platform would crash it before it serves anything.
    listening = listening_socket()
    port = listening.getsockname()[1]
    server = subprocess.Popen(
        [str(BIN / "python"), "-m", "koe.server", "--fd", str(listening.fileno())],
        pass_fds=[listening.fileno()],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"Daphne did not start: {server.stdout.read() if server.stdout else ''}"
                    ) from None
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
    finally:
        server.terminate()
        server.wait(timeout=10)
        listening.close()
