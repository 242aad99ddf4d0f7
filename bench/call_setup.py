"""Benchmark of call set-up: from a caller's connect to its ``session.created``.

Opens N calls at once (secret key, ``openai`` provider) through Koe under Daphne, against
an upstream that answers at once, so the time measured is Koe's own: authentication, the
concurrency cap, the call's row, the provider connection, and the first event relayed.
Each burst is repeated (``--rounds``) and the calls hang up between bursts. Prints, for
each N: set-up p50/p95/max, set-ups per second (N over the time the last one took), the
CPU time Koe's process spent per call (setting up; in all, with the hang-up and the
pause after it), and the same burst straight
to the upstream: on a small machine the load generator, the upstream and the database
share the cores with Koe, and that is the floor.

    .venv/bin/python bench/call_setup.py                       # embedded default (SQLite)
    .venv/bin/python bench/call_setup.py --postgres postgres://postgres@127.0.0.1:5432/test \\
        --redis redis://127.0.0.1:6379/0                     # PostgreSQL + Redis

With --postgres, a throwaway database is created next to the one named (and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import (
    admin,
    bench_environment,
    free_port,
    percentile,
    scratch_url,
    start_daphne,
)
from relay import UPSTREAM_CODE, cpu_seconds, prepare_database

PAUSE_BETWEEN_BURSTS = 1.5  # the hung-up calls' ends are written meanwhile


async def one_set_up(
    url: str, headers: dict[str, str], took: list[float], hang_up: asyncio.Event
) -> None:
    from websockets.asyncio.client import connect

    started = time.perf_counter()
    async with connect(url, additional_headers=headers, compression=None) as ws:
        event = json.loads(await ws.recv())
        if event.get("type") != "session.created":
            raise RuntimeError(f"call refused: {event}")
        took.append(time.perf_counter() - started)
        await hang_up.wait()


async def burst(
    url: str, headers: dict[str, str], calls: int, all_set_up: Callable[[], None] = lambda: None
) -> list[float]:
    """N calls at once; their set-up times, once all are set up (then they hang up)."""
    hang_up = asyncio.Event()
    took: list[float] = []
    tasks = [asyncio.create_task(one_set_up(url, headers, took, hang_up)) for _ in range(calls)]
    try:
        while len(took) < calls:
            failed = [task for task in tasks if task.done() and task.exception()]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
            await asyncio.sleep(0.002)
        all_set_up()
    finally:
        hang_up.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="*", default=[1, 20, 50])
    parser.add_argument("--rounds", type=int, default=5, help="bursts of each size")
    parser.add_argument("--postgres", default="", help="a PostgreSQL URL (else SQLite)")
    parser.add_argument("--redis", default="", help="a Redis URL (else in-memory layer)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="koe-bench-"))
    upstream_port, koe_port = free_port(), free_port()
    extra = {
        "KOE_OPENAI_REALTIME_URL": f"ws://127.0.0.1:{upstream_port}/v1",
        "OPENAI_API_KEY": "sk-bench",
        "KOE_LOCAL_WARM_UP": "0",
        "DEBUG": "false",  # as in production: DEBUG keeps and formats every query
    }
    scratch = f"koe_bench_{os.getpid()}" if args.postgres else ""
    env = bench_environment(workdir, **extra)
    if scratch:
        admin(args.postgres, f'CREATE DATABASE "{scratch}"')
        env["DATABASE_URL"] = scratch_url(args.postgres, scratch)
    if args.redis:
        env["REDIS_URL"] = args.redis
    try:
        key, agent = prepare_database(env)
        upstream = subprocess.Popen(
            [sys.executable, "-c", UPSTREAM_CODE, str(upstream_port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert upstream.stdout is not None and upstream.stdout.readline().strip() == "ready"
        daphne = start_daphne(env, koe_port)
        try:
            url = f"ws://127.0.0.1:{koe_port}/v1/realtime?model={agent}"
            headers = {"Authorization": f"Bearer {key}"}
            direct_url = f"ws://127.0.0.1:{upstream_port}/v1/realtime?model=gpt-realtime"
            asyncio.run(burst(url, headers, 1))  # the first call pays for imports
            time.sleep(PAUSE_BETWEEN_BURSTS)
            where = "PostgreSQL" if args.postgres else "SQLite"
            where += " + Redis" if args.redis else ""
            print(f"{where}: set-up from connect to session.created, {args.rounds} bursts each")
            print(
                f"{'N':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'set-ups/s':>10} "
                f"{'Koe CPU ms set-up/all':>16} {'direct p50/p95 ms':>18}"
            )
            for calls in args.calls:
                times: list[float] = []
                rates: list[float] = []
                cpu_before = cpu_seconds(daphne.pid)
                set_up_cpu = 0.0
                for _ in range(args.rounds):
                    burst_cpu = cpu_seconds(daphne.pid)

                    def count_set_up(started: float = burst_cpu) -> None:
                        nonlocal set_up_cpu
                        set_up_cpu += cpu_seconds(daphne.pid) - started

                    took = asyncio.run(burst(url, headers, calls, count_set_up))
                    times += took
                    rates.append(calls / max(took))
                    time.sleep(PAUSE_BETWEEN_BURSTS)
                koe_cpu = (cpu_seconds(daphne.pid) - cpu_before) * 1000 / len(times)
                set_up_ms = set_up_cpu * 1000 / len(times)
                # The floor on this machine: the same burst straight to the upstream.
                direct = asyncio.run(burst(direct_url, {}, calls))
                print(
                    f"{calls:>4} {percentile(times, 0.5) * 1000:>8.1f} "
                    f"{percentile(times, 0.95) * 1000:>8.1f} {max(times) * 1000:>8.1f} "
                    f"{sorted(rates)[len(rates) // 2]:>10.1f} {set_up_ms:>9.1f}/{koe_cpu:<6.1f} "
                    f"{percentile(direct, 0.5) * 1000:>8.1f}/{percentile(direct, 0.95) * 1000:.1f}",
                    flush=True,
                )
        finally:
            daphne.terminate()
            upstream.terminate()
            daphne.wait(timeout=10)
            upstream.wait(timeout=10)
    finally:
        if scratch:
            admin(args.postgres, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


if __name__ == "__main__":
    main()
