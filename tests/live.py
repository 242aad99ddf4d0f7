"""Koe under its real server (Daphne) on loopback, sharing the test database."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port that was free a moment ago (another process may take it: servers Koe's tests
    start listen on a socket the test holds instead, see ``listening_socket``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_socket() -> socket.socket:
    """A socket on a port the kernel chose, already listening: a server started with its
    descriptor can never lose the port to another process, nor between restarts."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


# Koe's servers: Daphne with Koe's WebSocket handling (the default), and uvicorn.
SERVERS = {"daphne": "koe.server", "uvicorn": "koe.uvicorn_server"}


def koe_server_command(sock: socket.socket, server: str = "daphne") -> list[str]:
    """One of Koe's servers (``SERVERS``), serving on ``sock``."""
    command = [sys.executable, "-m", SERVERS[server], "--fd", str(sock.fileno())]
    return command + (["koe.asgi:application"] if server == "daphne" else [])


def test_database_url() -> str:
    """A DATABASE_URL naming the database this test run uses (not the configured one)."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{name}"
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@contextmanager
def daphne_server(server: str = "daphne", **env: str) -> Iterator[str]:
    """Serve Koe with its server (Daphne, or ``server="uvicorn"``) on a fresh port; yields
    its base URL (https:// when KOE_TLS_CERT and KOE_TLS_KEY are given)."""
    sock = listening_socket()
    environment = {**os.environ, "DATABASE_URL": test_database_url(), **env}
    # A file, not a pipe: a chatty server must never block on a full pipe buffer.
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in the finally below)
    process = subprocess.Popen(
        koe_server_command(sock, server),
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        pass_fds=[sock.fileno()],
    )
    scheme = "https" if env.get("KOE_TLS_CERT") else "http"  # koe.server's TLS on --fd
    base = f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"
    try:
        wait_until_serving(base, process, log)
        yield base
        process.terminate()
        # SIGTERM ends the live calls and the server exits 0: never a crash (-11) that
        # supervisors and Kubernetes would count.
        code = process.wait(timeout=20)
        log.seek(0)
        assert code == 0, f"Koe's server exited with {code} after SIGTERM:\n{log.read()}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        sock.close()
        if os.environ.get("KOE_SHOW_DAPHNE_LOG"):
            log.seek(0)
            print(log.read())
        log.close()


def wait_until_serving(
    base: str, process: subprocess.Popen[str], log: IO[str], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{base}/healthz", timeout=2, verify=False)  # a test's own certificate
            return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise AssertionError(f"Koe's server did not start:\n{log.read()}") from None
            time.sleep(0.1)


@dataclass
class Worker:
    """A real Celery worker process (prefork, one child) on the test's Redis and database."""

    process: subprocess.Popen[str]
    log: IO[str]

    def child_pids(self) -> list[int]:
        """The pool's child processes (the ones running tasks), from /proc."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process has gone
            if int(fields[1]) == self.process.pid:
                children.append(int(stat.parent.name))
        return children

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def kill(self) -> None:
        """The whole worker dies at once (SIGKILL to its pool and itself): nothing is
        acknowledged, nothing requeued by the worker."""
        for pid in [*self.child_pids(), self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@contextmanager
def celery_worker(*, purge: bool = True, **env: str) -> Iterator[Worker]:
    """Start ``celery -A koe worker`` and wait until it is ready for tasks (``purge``:
    after emptying the queue, which a drill restarting a worker must not do)."""
    environment = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        **env,
    }
    if purge:
        # Tasks left in the queue by an earlier run would name rows of another database.
        subprocess.run(
            [sys.executable, "-m", "celery", "-A", "koe", "purge", "-f"],
            cwd=ROOT,
            env=environment,
            check=True,
            capture_output=True,
        )
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in the finally below)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "koe",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--hostname=test-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker = Worker(process, log)
    try:
        deadline = time.monotonic() + 60
        while "ready." not in worker.output():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"The Celery worker did not start:\n{worker.output()}")
            time.sleep(0.1)
        yield worker
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        if os.environ.get("KOE_SHOW_WORKER_LOG"):
            print(worker.output())
        log.close()


HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"


def local_haproxy_config(port: int, servers: dict[str, int]) -> str:
    """deploy/haproxy.cfg listening on 127.0.0.1:``port`` in front of local ``servers``
    (name: port) instead of Docker's DNS names; its timeouts, balancing and health checks
    are the real ones."""
    text = HAPROXY_CFG.read_text().replace("bind :8080", f"bind 127.0.0.1:{port}")
    lines = "\n".join(f"    server {name} 127.0.0.1:{p} check" for name, p in servers.items())
    text, replaced = re.subn(r"^    server-template .*$", lines, text, flags=re.MULTILINE)
    assert replaced == 1, "deploy/haproxy.cfg has no server-template line"
    return re.sub(r"^resolvers docker\n(?:    .*\n)+", "", text, flags=re.MULTILINE)


@contextmanager
def haproxy(servers: dict[str, int]) -> Iterator[str]:
    """A real HAProxy (Debian's haproxy) in front of ``servers``; yields its base URL."""
    binary = shutil.which("haproxy")
    assert binary is not None, "needs HAProxy: apt-get install haproxy"
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "haproxy.cfg"
        config.write_text(local_haproxy_config(port, servers))
        with (Path(folder) / "haproxy.log").open("w+") as log:
            process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=log)
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                process.terminate()
                process.wait(timeout=10)


@dataclass
class Answer:
    text: str  # what the agent said (its transcript deltas)
    types: list[str]  # the event types the caller's client saw, up to response.done


def sdk_turn(connection: Any, text: str) -> Answer:
    """With the openai SDK's realtime connection: the caller types ``text`` and waits for
    the agent's answer."""
    connection.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    connection.response.create()
    answer, types = "", []
    for event in connection:
        types.append(event.type)
        if event.type == "response.output_audio_transcript.delta":
            answer += event.delta
        if event.type == "response.done":
            return Answer(answer, types)
    raise AssertionError("the call closed before the answer")
