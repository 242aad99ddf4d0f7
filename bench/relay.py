"""Benchmark of the realtime relay: added latency, CPU and memory per call, capacity, and
admission control.

Streams N concurrent simulated calls (20 ms PCM16 24 kHz chunks, 50 events a second each
way) through Koe under Daphne to an upstream that answers every audio chunk at once with
an audio delta of the same size, through a bare relay (a Python websockets server that
parses every event and forwards it: the floor a Python relay can reach), and directly to
that upstream, in one run. Prints, for each N: the added latency per event (p50/p99 of
the round trip minus the direct one) for both relays, the events Koe delivered, the calls
it refused, Daphne's CPU seconds per call-minute and its RSS per call.

    .venv/bin/python bench/relay.py                 # N = 10, 50, 100, 200; 10 s each
    .venv/bin/python bench/relay.py --calls 50 --seconds 20
    .venv/bin/python bench/relay.py --calls 200 --max-calls 80   # admission control
    .venv/bin/python bench/relay.py --processes 2   # two servers behind HAProxy
    .venv/bin/python bench/relay.py --server uvicorn   # Koe under uvicorn, not Daphne

``--max-calls`` sets KOE_MAX_CALLS_PER_PROCESS (off by default, to find the knee):
refused calls are counted, and the latency is that of the admitted ones. ``--processes``
runs that many servers behind HAProxy (deploy/haproxy.cfg; needs Debian's haproxy).

Everything runs on this machine (loopback only): the upstream, the relays and Daphne are
separate processes; the load generator is this process, so on a small machine it
competes with them for CPU (the printout says how loaded it was).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import ROOT, bench_environment, free_port, percentile, run_setup, start_daphne

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


BARE_RELAY_CODE = r"""
import asyncio, json, sys
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

UPSTREAM = sys.argv[2]

async def pump(source, sink):
    async for frame in source:
        await sink.send(json.dumps(json.loads(frame)))

async def handle(client):
    async with connect(UPSTREAM + client.request.path.removeprefix("/v1/realtime"),
                       max_size=None, compression=None) as upstream:
        done, pending = await asyncio.wait(
            [asyncio.create_task(pump(client, upstream)),
             asyncio.create_task(pump(upstream, client))],
            return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

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


@dataclass
class Run:
    """One load run: the round trips measured (steady state only), and calls refused."""

    samples: list[float] = field(default_factory=list)
    refused: int = 0
    peak_rss: int = 0


async def one_call(
    url: str, headers: dict[str, str], seconds: float, run: Run, measure_from: float
) -> None:
    from websockets.asyncio.client import connect

    pending: dict[str, float] = {}
    async with connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
        first = json.loads(await ws.recv())  # session.created, or a refusal
        if first["type"] == "error":
            run.refused += 1
            return

        async def reader() -> None:
            async for frame in ws:
                if '"response.output_audio.delta"' not in frame:
                    continue
                event = json.loads(frame)
                sent = pending.pop(event.get("event_id", ""), None)
                # Steady state only: while calls are still being set up, the set-up work
                # (authentication, call rows, provider connections) delays other calls.
                if sent is not None and sent >= measure_from:
                    run.samples.append(time.perf_counter() - sent)

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


async def run_calls(
    url: str, headers: dict[str, str], calls: int, seconds: float, pids: list[int]
) -> Run:
    """N staggered calls, sampling the servers' RSS (``pids``) meanwhile."""
    run = Run()
    measure_from = time.perf_counter() + WARM_UP_SECONDS

    # Stagger starts over one chunk interval, as real calls are not phase-locked.
    async def staggered(index: int) -> None:
        await asyncio.sleep(0.02 * index / calls)
        await one_call(url, headers, seconds + WARM_UP_SECONDS, run, measure_from)

    task = asyncio.gather(*(staggered(index) for index in range(calls)))
    while not task.done():
        run.peak_rss = max(run.peak_rss, sum(rss_bytes(pid) for pid in pids))
        await asyncio.sleep(0.5)
    await task
    return run


def ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000 if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="*", default=[10, 50, 100, 200])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-calls", type=int, default=0, help="admission limit per process")
    parser.add_argument("--processes", type=int, default=1, help="servers behind HAProxy")
    parser.add_argument(
        "--server", choices=["daphne", "uvicorn"], default="daphne", help="the ASGI server"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="koe-bench-"))
    upstream_port, bare_port = free_port(), free_port()
    env = bench_environment(
        workdir,
        KOE_OPENAI_REALTIME_URL=f"ws://127.0.0.1:{upstream_port}/v1",
        OPENAI_API_KEY="sk-bench",
        KOE_LOCAL_WARM_UP="0",  # this benchmark's agent is on OpenAI's protocol
        KOE_MAX_CALLS_PER_PROCESS=str(args.max_calls),
    )
    key, agent = prepare_database(env)
    helpers = [
        subprocess.Popen(
            [sys.executable, "-c", code, *code_args], stdout=subprocess.PIPE, text=True
        )
        for code, code_args in (
            (UPSTREAM_CODE, [str(upstream_port)]),
            (BARE_RELAY_CODE, [str(bare_port), f"ws://127.0.0.1:{upstream_port}/v1/realtime"]),
        )
    ]
    for helper in helpers:
        assert helper.stdout is not None and helper.stdout.readline().strip() == "ready"
    ports = [free_port() for _ in range(args.processes)]
    servers = [start_daphne(env, port, args.server) for port in ports]
    pids = [server.pid for server in servers]
    with contextlib.ExitStack() as stack:
        if args.processes > 1:
            sys.path.insert(0, str(ROOT))
            from tests.live import haproxy

            base = stack.enter_context(haproxy({f"web{i}": p for i, p in enumerate(ports)}))
            koe_host = base.removeprefix("http://")
        else:
            koe_host = f"127.0.0.1:{ports[0]}"
        try:
            koe_url = f"ws://{koe_host}/v1/realtime?model={agent}"
            bare_url = f"ws://127.0.0.1:{bare_port}/v1/realtime?model=gpt-realtime"
            direct_url = f"ws://127.0.0.1:{upstream_port}/v1/realtime?model=gpt-realtime"
            koe_headers = {"Authorization": f"Bearer {key}"}
            print(
                f"server={args.server} processes={args.processes} "
                f"max_calls={args.max_calls or 'off'} "
                f"seconds={args.seconds:g}\n"
                f"{'N':>5} {'direct p50/p99':>15} {'bare +p50/p99':>15} {'Koe +p50/p99':>15} "
                f"{'Koe events':>10} {'refused':>7} {'CPU s/call-min':>14} {'RSS/call KiB':>12} "
                f"{'load-gen CPU':>12}"
            )
            for calls in args.calls:
                direct = asyncio.run(run_calls(direct_url, {}, calls, args.seconds, []))
                bare = asyncio.run(run_calls(bare_url, {}, calls, args.seconds, []))
                baseline_rss = sum(rss_bytes(pid) for pid in pids)
                cpu_before = sum(cpu_seconds(pid) for pid in pids)
                own_before, wall_before = time.process_time(), time.perf_counter()
                koe = asyncio.run(run_calls(koe_url, koe_headers, calls, args.seconds, pids))
                cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
                own = (time.process_time() - own_before) / (time.perf_counter() - wall_before)
                admitted = calls - koe.refused
                call_minutes = max(1, admitted) * (args.seconds + WARM_UP_SECONDS) / 60
                expected = admitted * args.seconds / 0.02
                d50, d99 = ms(direct.samples, 0.5), ms(direct.samples, 0.99)
                print(
                    f"{calls:>5} {d50:>6.2f}/{d99:<8.2f} "
                    f"{ms(bare.samples, 0.5) - d50:>6.2f}/{ms(bare.samples, 0.99) - d99:<8.2f} "
                    f"{ms(koe.samples, 0.5) - d50:>6.2f}/{ms(koe.samples, 0.99) - d99:<8.2f} "
                    f"{min(1.0, len(koe.samples) / max(1.0, expected)):>10.0%} {koe.refused:>7} "
                    f"{cpu / call_minutes:>14.2f} "
                    f"{max(0, koe.peak_rss - baseline_rss) / max(1, admitted) / 1024:>12.0f} "
                    f"{own * 100:>11.0f}%",
                    flush=True,
                )
                time.sleep(1.0)  # let the calls end and their rows be written
        finally:
            for process in [*servers, *helpers]:
                process.terminate()
            for process in [*servers, *helpers]:
                process.wait(timeout=10)


if __name__ == "__main__":
    main()
