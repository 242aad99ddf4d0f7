"""Benchmark of memory over many calls: does a long-running server give memory back?

Daphne and Channels have had memory-growth reports (daphne #373, channels #1703), and a
voice server runs for weeks. Two phases against one Koe server (Daphne, ``openai``
provider, an instant upstream), RSS sampled after each block once the server is idle:

1. ``--cycles`` connect/disconnect cycles (10,000): a call opened, its ``session.created``
   read, closed at once; ``--parallel`` at a time.
2. ``--calls`` full calls (1,000): a call that streams a second of audio (50 chunks),
   gets each echoed back as agent audio, then hangs up; recorded, ended, written.

Prints RSS after the warm-up block (where it settles), after each block, and the growth
from the settled value to the end; the target is within 5%.

    .venv/bin/python bench/memory.py
    .venv/bin/python bench/memory.py --cycles 2000 --calls 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import bench_environment, free_port, start_daphne
from relay import CHUNK, UPSTREAM_CODE, prepare_database, rss_bytes

BLOCKS = 10


async def one_cycle(url: str, headers: dict[str, str], chunks: int) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
        first = json.loads(await ws.recv())
        assert first["type"] == "session.created", first
        for index in range(chunks):
            await ws.send(
                json.dumps(
                    {"type": "input_audio_buffer.append", "event_id": f"e{index}", "audio": CHUNK}
                )
            )
            await asyncio.sleep(0.02)
        received = 0
        while received < chunks:
            if '"response.output_audio.delta"' in await ws.recv():
                received += 1


async def block(url: str, headers: dict[str, str], count: int, parallel: int, chunks: int) -> None:
    gate = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with gate:
            await one_cycle(url, headers, chunks)

    await asyncio.gather(*(one() for _ in range(count)))


def settled_rss(pid: int) -> int:
    """RSS once the calls have ended and their rows are written (the server is idle)."""
    time.sleep(2.0)
    return rss_bytes(pid)


def phase(
    name: str, url: str, headers: dict[str, str], total: int, parallel: int, chunks: int, pid: int
) -> None:
    per_block = max(1, total // BLOCKS)
    samples = []
    started = time.perf_counter()
    for index in range(BLOCKS):
        asyncio.run(block(url, headers, per_block, parallel, chunks))
        samples.append(settled_rss(pid))
        done = (index + 1) * per_block
        print(f"  {name} {done:>6}: RSS {samples[-1] / 2**20:7.1f} MiB", flush=True)
    settled, last = samples[0], samples[-1]
    print(
        f"{name}: {per_block * BLOCKS} in {time.perf_counter() - started:.0f} s; RSS settled at "
        f"{settled / 2**20:.1f} MiB after the first block, {last / 2**20:.1f} MiB at the end: "
        f"{(last - settled) / settled:+.1%} (peak {max(samples) / 2**20:.1f} MiB)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--parallel", type=int, default=20)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="koe-bench-"))
    upstream_port, koe_port = free_port(), free_port()
    env = bench_environment(
        workdir,
        KOE_OPENAI_REALTIME_URL=f"ws://127.0.0.1:{upstream_port}/v1",
        OPENAI_API_KEY="sk-bench",
        KOE_LOCAL_WARM_UP="0",
    )
    key, agent = prepare_database(env)
    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM_CODE, str(upstream_port)], stdout=subprocess.PIPE, text=True
    )
    assert upstream.stdout is not None and upstream.stdout.readline().strip() == "ready"
    daphne = start_daphne(env, koe_port)
    try:
        url = f"ws://127.0.0.1:{koe_port}/v1/realtime?model={agent}"
        headers = {"Authorization": f"Bearer {key}"}
        print(f"RSS at start: {rss_bytes(daphne.pid) / 2**20:.1f} MiB", flush=True)
        phase("cycles", url, headers, args.cycles, args.parallel, 0, daphne.pid)
        phase("calls", url, headers, args.calls, args.parallel, 50, daphne.pid)
    finally:
        daphne.terminate()
        upstream.terminate()
        daphne.wait(timeout=30)
        upstream.wait(timeout=10)


if __name__ == "__main__":
    main()
