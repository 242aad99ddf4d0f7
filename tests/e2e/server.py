"""A Koe server that a test can crash and start again on the same port."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from tests.live import (
    ROOT,
    koe_server_command,
    listening_socket,
    test_database_url,
    wait_until_serving,
)


class RestartableDaphne:
    """Koe's server (Daphne, or ``server="uvicorn"``) on a port the test keeps."""

    def __init__(self, server: str = "daphne", **env: str) -> None:
        self.server = server
        # The test holds the listening socket, so a restart serves the same port and no
        # other process can take it in between.
        self.socket = listening_socket()
        self.port = self.socket.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.environment = {**os.environ, "DATABASE_URL": test_database_url(), **env}
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in stop())
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            koe_server_command(self.socket, self.server),
            cwd=ROOT,
            env=self.environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            pass_fds=[self.socket.fileno()],
        )
        wait_until_serving(self.base, self.process, self.log)

    def terminate(self) -> int:
        """SIGTERM, as a deploy stops it: live calls are ended; returns the exit code."""
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout=30)

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
        self.socket.close()
        if os.environ.get("KOE_SHOW_DAPHNE_LOG"):
            self.log.seek(0)
            print(self.log.read())
        self.log.close()


@contextmanager
def restartable_daphne(server: str = "daphne", **env: str) -> Iterator[RestartableDaphne]:
    koe = RestartableDaphne(server, **env)
    try:
        koe.start()
        yield koe
    finally:
        koe.stop()
