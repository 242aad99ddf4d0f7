"""Benchmark of the realtime relay: added latency, CPU and memory per call.

Streams N concurrent simulated calls (20 ms PCM16 24 kHz chunks, 50 events a second each
way) through Koe under Daphne to an upstream that answers every audio chunk at once with
an audio delta of the same size, and the same calls directly to that upstream, in one
run. Prints, for each N: the added relay latency per event (p50/p99 of the round trip
through Koe minus the direct one), Daphne's CPU seconds per call-minute and its RSS per
call.

    .venv/bin/python bench/relay.py                 # N = 10, 50, 100, 200; 10 s each
    .venv/bin/python bench/relay.py --calls 50 --seconds 20

Everything runs on this machine (loopback only): the upstream and Daphne are separate
processes; the load generator is this process, so on a small machine it competes with
them for CPU (the printout says how loaded it was).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import bench_environment, free_port, percentile, run_setup, start_daphne

WARM_UP_SECONDS = 2.0
CHUNK = base64.b64encode(bytes(960)).decode()  # 20 ms of 24 kHz mono PCM16
UPSTREAM_CODE = r"""
import asyncio, json, sys
from websockets.asyncio.server import serve

CREATED = json.dumps({"type": "session.created", "event_id": "event_0",
                      "session": {"type": "realtime", "id": "sess_bench"}})

async def handle(socket):
    await socket.send(CREATED)
    async for frame in socket:
        # Cheap check first: the upstream must not be the bottleneck.
        if '"input_audio_buffer.append"' in frame:
            event = json.loads(frame)
            await socket.send(json.dumps({
                "type": "response.output_audio.delta", "event_id": event.get("event_id", ""),
                "response_id": "resp_1", "item_id": "item_1", "output_index": 0,
                "content_index": 0, "delta": event["audio"]}))

async def main():
    async with serve(handle, "127.0.0.1", int(sys.argv[1]), max_size=None, compression=None):
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def prepare_database(env: dict[str, str]) -> tuple[str, str]:
    """A tenant, key and agent in the throwaway database; returns (key, agent id)."""
    data = run_setup(
        env,
        """
import json
from agents.models import Agent
from agents.versions import save_agent
from tenancy.models import ApiKey, Tenant
tenant = Tenant.objects.create(name="Bench", max_concurrent_calls=100000)
agent = Agent(tenant=tenant, name="Bench agent", provider="openai", model="gpt-realtime",
              voice="alloy", instructions="Benchmark.", idle_timeout_seconds=0,
              max_call_duration_seconds=3600)
save_agent(agent, [])
_, secret = ApiKey.issue(tenant, "bench")
print(json.dumps({"key": secret, "agent": agent.public_id}))
""",
    )
    return data["key"], data["agent"]


async def one_call(
    url: str, headers: dict[str, str], seconds: float, samples: list[float], measure_from: float
) -> None:
    from websockets.asyncio.client import connect

    pending: dict[str, float] = {}
    async with connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
        json.loads(await ws.recv())  # session.created

        async def reader() -> None:
            async for frame in ws:
                if '"response.output_audio.delta"' not in frame:
                    continue
                event = json.loads(frame)
                sent = pending.pop(event.get("event_id", ""), None)
                # Steady state only: while calls are still being set up, the set-up work
                # (authentication, call rows, provider connections) delays other calls.
                if sent is not None and sent >= measure_from:
                    samples.append(time.perf_counter() - sent)

        task = asyncio.create_task(reader())
        deadline = time.perf_counter() + seconds
        sequence = 0
        next_send = time.perf_counter()
        while next_send < deadline:
            event_id = f"event_{id(pending)}_{sequence}"
            pending[event_id] = time.perf_counter()
            await ws.send(
                json.dumps(
                    {"type": "input_audio_buffer.append", "event_id": event_id, "audio": CHUNK}
                )
            )
            sequence += 1
            next_send += 0.02
            await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
        await asyncio.sleep(0.2)
        task.cancel()


async def run_calls(url: str, headers: dict[str, str], calls: int, seconds: float) -> list[float]:
    samples: list[float] = []
    measure_from = time.perf_counter() + WARM_UP_SECONDS

    # Stagger starts over one chunk interval, as real calls are not phase-locked.
    async def staggered(index: int) -> None:
        await asyncio.sleep(0.02 * index / calls)
        await one_call(url, headers, seconds + WARM_UP_SECONDS, samples, measure_from)

    await asyncio.gather(*(staggered(index) for index in range(calls)))
    return samples


async def run_watched(
    url: str, headers: dict[str, str], calls: int, seconds: float, pid: int
) -> tuple[list[float], int]:
    """run_calls, sampling the server's RSS meanwhile; returns the samples and peak RSS."""
    task = asyncio.create_task(run_calls(url, headers, calls, seconds))
    peak_rss = 0
    while not task.done():
        peak_rss = max(peak_rss, rss_bytes(pid))
        await asyncio.sleep(0.5)
    return await task, peak_rss


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="*", default=[10, 50, 100, 200])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="koe-bench-"))
    upstream_port, koe_port = free_port(), free_port()
    env = bench_environment(
        workdir,
        KOE_OPENAI_REALTIME_URL=f"ws://127.0.0.1:{upstream_port}/v1",
        OPENAI_API_KEY="sk-bench",
        KOE_LOCAL_WARM_UP="0",  # this benchmark's agent is on OpenAI's protocol
    )
    key, agent = prepare_database(env)
    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM_CODE, str(upstream_port)], stdout=subprocess.PIPE, text=True
    )
    assert upstream.stdout is not None and upstream.stdout.readline().strip() == "ready"
    daphne = start_daphne(env, koe_port)
    try:
        koe_url = f"ws://127.0.0.1:{koe_port}/v1/realtime?model={agent}"
        direct_url = f"ws://127.0.0.1:{upstream_port}/v1/realtime?model=gpt-realtime"
        koe_headers = {"Authorization": f"Bearer {key}"}
        print(
            f"{'N':>5} {'events':>8} {'direct p50/p99 ms':>18} {'via Koe p50/p99 ms':>19} "
            f"{'added p50/p99 ms':>17} {'CPU s/call-min':>15} {'RSS/call KiB':>13} "
            f"{'load-gen CPU':>12}"
        )
        for calls in args.calls:
            direct = asyncio.run(run_calls(direct_url, {}, calls, args.seconds))
            baseline_rss = rss_bytes(daphne.pid)
            cpu_before, own_before, wall_before = (
                cpu_seconds(daphne.pid),
                time.process_time(),
                time.perf_counter(),
            )
            via_koe, peak_rss = asyncio.run(
                run_watched(koe_url, koe_headers, calls, args.seconds, daphne.pid)
            )
            cpu = cpu_seconds(daphne.pid) - cpu_before
            own = (time.process_time() - own_before) / (time.perf_counter() - wall_before)
            call_minutes = calls * (args.seconds + WARM_UP_SECONDS) / 60
            added50 = (percentile(via_koe, 0.5) - percentile(direct, 0.5)) * 1000
            added99 = (percentile(via_koe, 0.99) - percentile(direct, 0.99)) * 1000
            print(
                f"{calls:>5} {len(via_koe):>8} "
                f"{percentile(direct, 0.5) * 1000:>8.2f}/{percentile(direct, 0.99) * 1000:<9.2f} "
                f"{percentile(via_koe, 0.5) * 1000:>9.2f}/{percentile(via_koe, 0.99) * 1000:<9.2f} "
                f"{added50:>8.2f}/{added99:<8.2f} {cpu / call_minutes:>15.2f} "
                f"{max(0, peak_rss - baseline_rss) / calls / 1024:>13.0f} {own * 100:>11.0f}%",
                flush=True,
            )
            time.sleep(1.0)  # let the calls end and their rows be written
    finally:
        daphne.terminate()
        upstream.terminate()
        daphne.wait(timeout=10)
        upstream.wait(timeout=10)


if __name__ == "__main__":
    main()
