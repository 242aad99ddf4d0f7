"""A Daphne that a test can crash and start again on the same port (tests/live.py's cannot)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.live import ROOT, free_port, test_database_url


class RestartableDaphne:
    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.environment = {**os.environ, "DATABASE_URL": test_database_url(), **env}
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in stop())
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-p", str(self.port), "koe.asgi:application"],
            cwd=ROOT,
            env=self.environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.base}/healthz", timeout=2)
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.log.seek(0)
                    raise AssertionError(f"Daphne did not start:\n{self.log.read()}") from None
                time.sleep(0.1)

    def crash(self) -> None:
        """SIGKILL: no close frames, no goodbye; clients see the connection vanish."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if os.environ.get("KOE_SHOW_DAPHNE_LOG"):
            self.log.seek(0)
            print(self.log.read())
        self.log.close()


@contextmanager
def restartable_daphne(**env: str) -> Iterator[RestartableDaphne]:
    server = RestartableDaphne(**env)
    try:
        server.start()
        yield server
    finally:
        server.stop()
