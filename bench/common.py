"""What the benchmarks share: free ports, percentiles, a throwaway database, a Daphne."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_environment(workdir: Path, **extra: str) -> dict[str, str]:
    """A process environment on a throwaway SQLite database and in-memory channel layer."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "koe.settings",
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "LOG_LEVEL": "WARNING",
        # A benchmark measures a process's capacity past any admission limit (--max-calls
        # sets one), and ends it with whatever calls it still holds.
        "KOE_MAX_CALLS_PER_PROCESS": "0",
        "KOE_MAX_LOOP_LAG_MS": "0",
        "KOE_DRAIN_SECONDS": "0",
        **extra,
    }
    env.pop("REDIS_URL", None)
    return env


def scratch_url(url: str, database: str) -> str:
    """``url`` (PostgreSQL) naming another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def admin(url: str, statement: str) -> None:
    """Run a statement (CREATE/DROP DATABASE) on the server of ``url``, outside any database."""
    import psycopg

    with psycopg.connect(scratch_url(url, "postgres"), autocommit=True) as connection:
        connection.execute(statement)


def run_setup(env: dict[str, str], code: str) -> dict[str, Any]:
    """Migrate, then run ``code`` (which prints one JSON object last) in a fresh process."""
    prelude = "import django\ndjango.setup()\nfrom django.core.management import call_command\n"
    prelude += 'call_command("migrate", verbosity=0)\n'
    output = subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


SERVERS = {
    "daphne": ["-m", "koe.server", "-b", "127.0.0.1", "-p", "{port}", "koe.asgi:application"],
    "uvicorn": ["-m", "koe.uvicorn_server", "-b", "127.0.0.1", "-p", "{port}"],
}


def start_daphne(env: dict[str, str], port: int, server: str = "daphne") -> subprocess.Popen[bytes]:
    """Koe under one of its servers (Daphne by default, or uvicorn) on 127.0.0.1:port,
    returned once it answers /healthz."""
    import httpx

    command = [sys.executable, *(part.format(port=port) for part in SERVERS[server])]
    daphne = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return daphne
        except httpx.TransportError:
            time.sleep(0.1)
    daphne.terminate()
    raise RuntimeError("Daphne did not start within 30 s")
