"""Benchmark of the phone path: Twilio media streams through Koe, against the WebSocket path.

N simulated phone callers ring a number (the signed voice webhook, TwiML back), open
Twilio's media stream with the token it carries and stream 20 ms μ-law chunks (160 bytes,
50 a second) at real time, echoing each ``mark`` Koe sends. The agent is on OpenAI's
protocol against an upstream that answers every audio chunk at once with an audio delta
of the same bytes, so the time from a chunk sent to the same chunk received back is
Koe's relay plus the upstream's. The same N calls over the OpenAI-protocol WebSocket
path and directly to the upstream run in the same process, one after the other. Prints,
for each N and path: round-trip p50/p99, added latency over direct (p50/p99), and
Daphne's CPU seconds per call-minute.

    .venv/bin/python bench/phone.py                  # N = 10, 50, 100; 10 s each
    .venv/bin/python bench/phone.py --calls 50 --seconds 20

Loopback only; the load generator is this process and shares the machine's CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import json
import secrets
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

import httpx
from common import bench_environment, free_port, percentile, run_setup, start_daphne
from relay import UPSTREAM_CODE, WARM_UP_SECONDS, cpu_seconds, run_calls

NUMBER = "+14155550100"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-auth-token"
CHUNK_BYTES = 160  # 20 ms of 8 kHz μ-law


def prepare_database(env: dict[str, str]) -> tuple[str, str]:
    """A tenant with a key, an agent and a Twilio number; returns (key, agent id)."""
    data = run_setup(
        env,
        f"""
import json
from agents.models import Agent
from agents.telephony.models import CarrierAccount, PhoneNumber
from agents.versions import save_agent
from tenancy.models import ApiKey, Tenant
tenant = Tenant.objects.create(name="Bench", max_concurrent_calls=100000)
agent = Agent(tenant=tenant, name="Bench agent", provider="openai", model="gpt-realtime",
              voice="alloy", instructions="Benchmark.", idle_timeout_seconds=0,
              max_call_duration_seconds=3600)
save_agent(agent, [])
account = CarrierAccount.objects.create(tenant=tenant, name="Bench",
                                        account_sid="{ACCOUNT_SID}", auth_token="{AUTH_TOKEN}")
PhoneNumber.objects.create(tenant=tenant, number="{NUMBER}", carrier_account=account,
                           agent=agent)
_, secret = ApiKey.issue(tenant, "bench")
print(json.dumps({{"key": secret, "agent": agent.public_id}}))
""",
    )
    return data["key"], data["agent"]


def signature(url: str, form: dict[str, str]) -> str:
    """X-Twilio-Signature (https://www.twilio.com/docs/usage/webhooks/webhooks-security)."""
    payload = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(AUTH_TOKEN.encode(), payload.encode(), "sha1").digest()
    return base64.b64encode(digest).decode()


async def ring(client: httpx.AsyncClient, base: str) -> tuple[str, str]:
    """The voice webhook, as Twilio posts it; returns the stream URL and token."""
    url = f"{base}/v1/telephony/twilio/voice"
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": "CA" + secrets.token_hex(16),
        "Direction": "inbound",
        "From": "+14155550199",
        "To": NUMBER,
    }
    headers = {"X-Twilio-Signature": signature(url, form)}
    response = await client.post(url, data=form, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"the voice webhook answered {response.status_code}: {response.text}")
    twiml = ElementTree.fromstring(response.text)  # noqa: S314 (Koe's own answer)
    stream = twiml.find("./Connect/Stream")
    assert stream is not None, response.text
    parameter = stream.find("./Parameter")
    assert parameter is not None
    return stream.get("url", ""), parameter.get("value", "")


async def one_phone_call(
    base: str, index: int, seconds: float, samples: list[float], measure_from: float
) -> None:
    from websockets.asyncio.client import connect

    async with httpx.AsyncClient(timeout=30) as client:
        stream_url, token = await ring(client, base)
    pending: dict[str, float] = {}
    stream_sid = "MZ" + secrets.token_hex(16)
    async with connect(stream_url, max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        media_format = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        start = {"streamSid": stream_sid, "callSid": "CA", "accountSid": ACCOUNT_SID,
                 "tracks": ["inbound"], "customParameters": {"token": token},
                 "mediaFormat": media_format}  # fmt: skip
        await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "start": start,
                                  "streamSid": stream_sid}))  # fmt: skip

        async def reader() -> None:
            async for frame in ws:
                message = json.loads(frame)
                if message.get("event") == "mark":  # played at once: echo it back
                    await ws.send(frame)
                elif message.get("event") == "media":
                    sent = pending.pop(message["media"]["payload"], None)
                    if sent is not None and sent >= measure_from:
                        samples.append(time.perf_counter() - sent)

        task = asyncio.create_task(reader())
        deadline = time.perf_counter() + seconds
        sequence = 0
        next_send = time.perf_counter()
        while next_send < deadline:
            # Each chunk unique, so the one coming back is known by its bytes.
            chunk = struct.pack("<II", index, sequence) + bytes(CHUNK_BYTES - 8)
            payload = base64.b64encode(chunk).decode()
            pending[payload] = time.perf_counter()
            await ws.send(json.dumps({
                "event": "media", "sequenceNumber": str(sequence + 2), "streamSid": stream_sid,
                "media": {"track": "inbound", "chunk": str(sequence + 1),
                          "timestamp": str(sequence * 20), "payload": payload}}))  # fmt: skip
            sequence += 1
            next_send += 0.02
            await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
        await asyncio.sleep(0.2)
        await ws.send(json.dumps({"event": "stop", "streamSid": stream_sid,
                                  "sequenceNumber": str(sequence + 2), "stop": {}}))  # fmt: skip
        task.cancel()


async def run_phone_calls(base: str, calls: int, seconds: float) -> list[float]:
    samples: list[float] = []
    measure_from = time.perf_counter() + WARM_UP_SECONDS

    async def staggered(index: int) -> None:
        await asyncio.sleep(0.02 * index / calls)
        await one_phone_call(base, index, seconds + WARM_UP_SECONDS, samples, measure_from)

    await asyncio.gather(*(staggered(index) for index in range(calls)))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="*", default=[10, 50, 100])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="koe-bench-"))
    upstream_port, koe_port = free_port(), free_port()
    base = f"http://127.0.0.1:{koe_port}"
    env = bench_environment(
        workdir,
        KOE_OPENAI_REALTIME_URL=f"ws://127.0.0.1:{upstream_port}/v1",
        OPENAI_API_KEY="sk-bench",
        KOE_LOCAL_WARM_UP="0",
        KOE_SITE_URL=base,  # what the webhook's signature is computed over
    )
    key, agent = prepare_database(env)
    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM_CODE, str(upstream_port)], stdout=subprocess.PIPE, text=True
    )
    assert upstream.stdout is not None and upstream.stdout.readline().strip() == "ready"
    daphne = start_daphne(env, koe_port)
    try:
        websocket_url = f"ws://127.0.0.1:{koe_port}/v1/realtime?model={agent}"
        direct_url = f"ws://127.0.0.1:{upstream_port}/v1/realtime?model=gpt-realtime"
        headers = {"Authorization": f"Bearer {key}"}
        print(
            f"{'N':>5} {'path':>9} {'events':>8} {'p50/p99 ms':>15} {'added p50/p99 ms':>17} "
            f"{'CPU s/call-min':>15}"
        )
        for calls in args.calls:
            direct = asyncio.run(run_calls(direct_url, {}, calls, args.seconds))
            print(
                f"{calls:>5} {'direct':>9} {len(direct):>8} "
                f"{percentile(direct, 0.5) * 1000:>7.2f}/{percentile(direct, 0.99) * 1000:<7.2f}",
                flush=True,
            )
            for path in ("websocket", "phone"):
                cpu_before = cpu_seconds(daphne.pid)
                if path == "phone":
                    samples = asyncio.run(run_phone_calls(base, calls, args.seconds))
                else:
                    samples = asyncio.run(run_calls(websocket_url, headers, calls, args.seconds))
                cpu = cpu_seconds(daphne.pid) - cpu_before
                call_minutes = calls * (args.seconds + WARM_UP_SECONDS) / 60
                added50 = (percentile(samples, 0.5) - percentile(direct, 0.5)) * 1000
                added99 = (percentile(samples, 0.99) - percentile(direct, 0.99)) * 1000
                p50, p99 = percentile(samples, 0.5) * 1000, percentile(samples, 0.99) * 1000
                print(
                    f"{calls:>5} {path:>9} {len(samples):>8} {p50:>7.2f}/{p99:<7.2f} "
                    f"{added50:>8.2f}/{added99:<8.2f} {cpu / call_minutes:>15.2f}",
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
