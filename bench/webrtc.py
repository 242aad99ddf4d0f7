"""Benchmark of WebRTC calls (POST /v1/realtime/calls): what one process carries, and what
WebRTC costs per call.

N concurrent aiortc callers (Opus both ways, as browsers send it) call Koe under Daphne on
the ``openai`` provider, against an upstream that answers every 20 ms of caller audio at
once with 20 ms of agent audio, so each call streams both ways all the time. Each caller
also sends a data-channel event every 200 ms that Koe's policy answers itself (an
unknown event type: an ``error`` back), and times the round trip: the added latency of
the data path through Koe's event loop. Printed for each N: that round trip's p50/p99,
Daphne's event-loop lag (Koe's own watcher, ``/metrics``), its CPU seconds per
call-minute (Opus decode and encode, resampling, the relay) and RSS per call.

The voice-to-voice comparison with WebSocket on the built-in voice is
``bench/local_voice.py --transports websocket webrtc``.

    .venv/bin/python bench/webrtc.py                    # N = 1, 5, 10, 20, 40; 10 s each
    .venv/bin/python bench/webrtc.py --calls 10 30 --seconds 20

The callers run in this process (their Opus costs CPU too): on a small machine they
compete with Daphne, and the printout says how loaded the machine was.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, bench_environment, free_port, percentile, start_daphne
from relay import UPSTREAM_CODE, cpu_seconds, prepare_database, rss_bytes

sys.path.insert(0, str(ROOT))
from tests.webrtc.caller import WebRTCCaller

PING_EVERY_SECONDS = 0.2
LAG = re.compile(r"^koe_event_loop_lag_seconds (\S+)$", re.MULTILINE)


async def place(base: str, key: str, agent: str, caller: WebRTCCaller) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{base}/v1/realtime/calls",
            params={"model": agent},
            content=await caller.offer(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"},
        )
    response.raise_for_status()
    await caller.answered(response.text)
    await caller.until("session.created", timeout=30)


async def pings(caller: WebRTCCaller, round_trips: list[float], stop: asyncio.Event) -> None:
    """Timed round trips of an event Koe answers itself (an error, the call goes on)."""
    index = 0
    while not stop.is_set():
        index += 1
        mark = len(caller.events)
        sent = time.perf_counter()
        caller.send({"type": "koe.bench_ping", "event_id": f"ping_{index}"})
        with contextlib.suppress(AssertionError):
            await caller.until("error", after=mark, timeout=5)
            round_trips.append(time.perf_counter() - sent)
        await asyncio.sleep(PING_EVERY_SECONDS)


async def loop_lags(base: str, lags: list[float], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            text = (await client.get(f"{base}/metrics")).text
            found = LAG.search(text)
            if found:
                lags.append(float(found.group(1)))
            await asyncio.sleep(0.5)


async def run(
    base: str, key: str, agent: str, calls: int, seconds: float, pid: int
) -> dict[str, Any]:
    callers = [WebRTCCaller() for _ in range(calls)]
    # Each microphone sends 20 ms of Opus every 20 ms (silence when it has nothing to say).
    for index in range(0, calls, 5):  # a few at a time, as callers arrive
        await asyncio.gather(*(place(base, key, agent, c) for c in callers[index : index + 5]))
    await asyncio.sleep(2)  # warm up
    round_trips: list[float] = []
    lags: list[float] = []
    stop = asyncio.Event()
    cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
    load_before = os.getloadavg()[0]
    tasks = [asyncio.ensure_future(pings(c, round_trips, stop)) for c in callers]
    tasks.append(asyncio.ensure_future(loop_lags(base, lags, stop)))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    cpu = cpu_seconds(pid) - cpu_before
    wall = time.perf_counter() - wall_before
    rss = rss_bytes(pid)
    for caller in callers:
        await caller.close()
    await asyncio.sleep(1)
    return {
        "round_trips": round_trips,
        "lags": lags,
        "cpu_per_call_minute": cpu / calls / (wall / 60),
        "cpu_share": cpu / wall,
        "rss_per_call": rss / calls,
        "load": max(load_before, os.getloadavg()[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="*", default=[1, 5, 10, 20, 40])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="koe-bench-webrtc-"))
    upstream_port, port = free_port(), free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM_CODE, str(upstream_port)], stdout=subprocess.PIPE
    )
    assert upstream.stdout is not None and upstream.stdout.readline().strip() == b"ready"
    env = bench_environment(
        workdir,
        KOE_OPENAI_REALTIME_URL=f"ws://127.0.0.1:{upstream_port}/v1",
        OPENAI_API_KEY="sk-bench",
        KOE_LOCAL_WARM_UP="0",
    )
    key, agent = prepare_database(env)
    daphne = start_daphne(env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        print(f"\nWebRTC calls through Daphne ({os.cpu_count()} cores; Opus both ways, always)")
        print(
            f"  {'calls':>5} {'rtt p50':>8} {'rtt p99':>8} {'lag max':>8} "
            f"{'cpu s/call-min':>14} {'cpu %':>6} {'rss/call':>9} {'load':>5}"
        )
        for calls in args.calls:
            result = asyncio.run(run(base, key, agent, calls, args.seconds, daphne.pid))
            trips = result["round_trips"] or [float("nan")]
            print(
                f"  {calls:>5} {percentile(trips, 0.5) * 1000:>6.1f}ms "
                f"{percentile(trips, 0.99) * 1000:>6.1f}ms "
                f"{max(result['lags'] or [0.0]) * 1000:>6.1f}ms "
                f"{result['cpu_per_call_minute']:>14.2f} {result['cpu_share'] * 100:>5.0f}% "
                f"{result['rss_per_call'] / 2**20:>7.1f}MB {result['load']:>5.1f}",
                flush=True,
            )
    finally:
        daphne.terminate()
        daphne.wait(timeout=30)
        upstream.terminate()


if __name__ == "__main__":
    main()
