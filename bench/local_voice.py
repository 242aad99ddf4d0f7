"""Benchmark of the built-in offline provider: voice-to-voice latency and real-time factors.

Three measurements, all on this machine, nothing downloaded:

1. Components, in this process: Whisper tiny.en's real-time factor on the test
   utterances (seconds of compute per second of speech) and the Piper voice's, plus its
   time to the first sentence of each answer.
2. Voice to voice, through Koe under Daphne like a real client: a call to a local
   agent (scripted engine, FAQ answers), speaking each utterance in real time (20 ms
   chunks, paced), then silence; latency = first audible agent sample received minus the
   moment the caller's voice ended (the last loud sample of the utterance was sent). It
   includes the turn detector's silence (the agent's 500 ms by default), transcription,
   the engine and the first synthesised sentence.
3. The same with N calls at once, to say how many concurrent local calls the machine
   holds.
4. The same over WebRTC (``POST /v1/realtime/calls``; an aiortc caller, Opus both ways):
   latency = first audible agent sample heard on the track minus the moment the caller's
   microphone sent the last voiced 20 ms.
5. The same on the phone path: the caller rings a Twilio number (the signed voice
   webhook) and speaks over Twilio's media stream, 20 ms of 8 kHz μ-law at a time; the
   agent answers in μ-law (first ``media`` message received).

    .venv/bin/python bench/local_voice.py                       # 24 utterances; N = 1, 2, 3, 4
    .venv/bin/python bench/local_voice.py --utterances 40 --concurrency 1 2 4 8
    .venv/bin/python bench/local_voice.py --silence-ms 300 --transports phone
    .venv/bin/python bench/local_voice.py --concurrency 1 --transports websocket webrtc

The caller's speech is synthesised by the local voice before the run starts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import bench_environment, free_port, percentile, run_setup, start_daphne
from phone import ACCOUNT_SID, AUTH_TOKEN, NUMBER, ring

RATE = 24000
PHONE_RATE = 8000  # G.711 μ-law, a byte a sample
CHUNK_MS = 20
CHUNK_BYTES = 2 * RATE * CHUNK_MS // 1000
LOUD = 500  # a sample above this (PCM16) is voice, not the voice's own trailing quiet
# Heard over WebRTC: the first sample that is not silence as Opus decodes it (its digital
# silence decodes to a few units), as the WebSocket's first delta is the first audio.
AUDIBLE = 64

FAQ = [
    ("When are you open?", "We are open every day from noon until eleven at night."),
    ("Where are you located?", "We are at twelve Harbour Street, next to the old lighthouse."),
    ("Is there parking nearby?", "Yes, there is free parking behind the restaurant."),
    ("Do you have vegetarian dishes?", "Yes, a third of our menu is vegetarian."),
    ("Can I bring my dog?", "Dogs are welcome on the terrace."),
    ("Do you take credit cards?", "We take all major cards and contactless payments."),
]
QUESTIONS = [
    "When are you open?",
    "Where are you located?",
    "Is there any parking nearby?",
    "Do you have vegetarian dishes?",
    "Can I bring my dog with me?",
    "Do you take credit cards?",
    "What are your opening hours?",
    "Where exactly is the restaurant?",
]


def prepare_database(env: dict[str, str], silence_ms: int) -> tuple[str, str]:
    """A tenant, key and scripted local agent with an FAQ; returns (key, agent id)."""
    faq = [{"question": question, "answer": answer} for question, answer in FAQ]
    data = run_setup(
        env,
        f"""
import json
from agents.models import Agent
from agents.versions import save_agent
from tenancy.models import ApiKey, Tenant
tenant = Tenant.objects.create(name="Bench", max_concurrent_calls=1000)
agent = Agent(tenant=tenant, name="Bench host", provider="local", response_engine="scripted",
              greeting="Hello.", greet_api_callers=True, idle_timeout_seconds=0,
              max_call_duration_seconds=3600,
              vad_silence_duration_ms={silence_ms}, faq={faq!r})
save_agent(agent, [])
from agents.telephony.models import CarrierAccount, PhoneNumber
account = CarrierAccount.objects.create(tenant=tenant, name="Bench",
                                        account_sid="{ACCOUNT_SID}", auth_token="{AUTH_TOKEN}")
PhoneNumber.objects.create(tenant=tenant, number="{NUMBER}", carrier_account=account,
                           agent=agent)
_, secret = ApiKey.issue(tenant, "bench")
print(json.dumps({{"key": secret, "agent": agent.public_id}}))
""",
    )
    return data["key"], data["agent"]


def synthesise(texts: list[str]) -> dict[str, bytes]:
    from speech.tts import PiperSpeech

    voice = PiperSpeech(deterministic=True)
    return {text: voice.speak(text).astype("<i2").tobytes() for text in texts}


def voice_end(audio: bytes) -> int:
    """Byte offset just after the last loud sample."""
    import numpy as np

    samples = np.frombuffer(audio, dtype="<i2")
    loud = np.nonzero(np.abs(samples.astype(np.int32)) > LOUD)[0]
    return int(loud[-1] + 1) * 2 if len(loud) else len(audio)


def components(spoken: dict[str, bytes]) -> None:
    import numpy as np

    from speech import runtime, stt
    from speech.audio import SPEECH_RATE, resample, to_float
    from speech.text import sentences
    from speech.tts import PiperSpeech

    runtime.warm_up("piper")
    stt_factors, words_right = [], 0
    for text, audio in spoken.items():
        samples = resample(to_float(np.frombuffer(audio, dtype="<i2")), RATE, SPEECH_RATE)
        started = time.perf_counter()
        heard = stt.transcribe(samples)
        stt_factors.append((time.perf_counter() - started) / (len(samples) / SPEECH_RATE))
        words_right += _normal(heard) == _normal(text)
    # Whisper's cost is mostly fixed per pass (it pads to 30 s windows): a longer passage
    # shows the real-time factor of continuous speech.
    passage = resample(
        to_float(np.frombuffer(b"".join(spoken.values()), dtype="<i2")), RATE, SPEECH_RATE
    )
    started = time.perf_counter()
    stt.transcribe(passage)
    passage_factor = (time.perf_counter() - started) / (len(passage) / SPEECH_RATE)
    voice = PiperSpeech()
    tts_factors, first_sentence = [], []
    for _question, answer in FAQ:
        started = time.perf_counter()
        first = voice.speak(sentences(answer)[0])
        first_sentence.append(time.perf_counter() - started)
        rest = [voice.speak(s) for s in sentences(answer)[1:]]
        produced = (len(first) + sum(len(r) for r in rest)) / RATE
        tts_factors.append((time.perf_counter() - started) / produced)
    print("Components (in process, one at a time)")
    print(
        f"  speech to text  RTF mean {statistics.mean(stt_factors):.3f}  "
        f"p95 {percentile(stt_factors, 0.95):.3f}  "
        f"exact transcripts {words_right}/{len(spoken)}; "
        f"one {len(passage) / SPEECH_RATE:.0f} s passage: RTF {passage_factor:.3f}"
    )
    print(
        f"  text to speech  RTF mean {statistics.mean(tts_factors):.3f}  "
        f"first sentence p50 {statistics.median(first_sentence) * 1000:.0f} ms"
    )


def _normal(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum() or c == " ").split().__str__()


async def one_call(
    url: str, headers: dict[str, str], utterances: list[bytes], latencies: list[float]
) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
        first_audio: asyncio.Event = asyncio.Event()
        done: asyncio.Event = asyncio.Event()
        state: dict[str, Any] = {"first_audio_at": 0.0}

        async def reader() -> None:
            async for frame in ws:
                kind = json.loads(frame)["type"] if '"type"' in frame[:40] else ""
                if not kind:
                    kind = json.loads(frame)["type"]
                if kind == "response.output_audio.delta" and not first_audio.is_set():
                    # The first audible sample, as the WebRTC caller measures it.
                    delta = base64.b64decode(json.loads(frame)["delta"])
                    samples = memoryview(delta).cast("h") if len(delta) % 2 == 0 else []
                    if any(abs(sample) > AUDIBLE for sample in samples):
                        state["first_audio_at"] = time.perf_counter()
                        first_audio.set()
                elif kind == "response.done":
                    done.set()
                elif kind == "error":
                    print("error event:", frame, file=sys.stderr)

        task = asyncio.create_task(reader())
        await asyncio.wait_for(done.wait(), 30)  # the greeting
        silence = base64.b64encode(bytes(CHUNK_BYTES)).decode()
        for audio in utterances:
            first_audio.clear()
            done.clear()
            end = voice_end(audio)
            spoke_until = 0.0
            next_send = time.perf_counter()
            for offset in range(0, len(audio), CHUNK_BYTES):
                chunk = audio[offset : offset + CHUNK_BYTES]
                await ws.send(
                    json.dumps(
                        {
                            "type": "input_audio_buffer.append",
                            "audio": base64.b64encode(chunk).decode(),
                        }
                    )
                )
                if offset < end <= offset + CHUNK_BYTES:
                    # The chunk holding the voice's end plays out over its 20 ms.
                    spoke_until = next_send + (end - offset) / (2 * RATE)
                next_send += CHUNK_MS / 1000
                await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
            while not first_audio.is_set():
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": silence}))
                next_send += CHUNK_MS / 1000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        first_audio.wait(), max(0.001, next_send - time.perf_counter())
                    )
            latencies.append(state["first_audio_at"] - spoke_until)
            await asyncio.wait_for(done.wait(), 30)
            await asyncio.sleep(0.3)
        task.cancel()


async def one_webrtc_call(
    base: str, key: str, agent: str, utterances: list[bytes], latencies: list[float]
) -> None:
    """The same caller over WebRTC (bench/webrtc.py's aiortc caller, Opus both ways):
    latency = the first audible agent sample heard on the track minus the moment the
    microphone sent the last voiced 20 ms (both polled every 5 ms)."""
    import numpy as np
    from webrtc import WebRTCCaller, place

    frames = os.environ.get("KOE_WEBRTC_JITTER_FRAMES")  # the caller's too, as Koe's
    caller = WebRTCCaller(jitter_frames=int(frames) if frames else None)
    await place(base, key, agent, caller)
    await caller.until("output_audio_buffer.stopped", timeout=60)  # the greeting, played
    for audio in utterances:
        mark, heard = len(caller.events), len(caller.heard)
        voiced_until = caller.microphone.sent + voice_end(audio)
        caller.say(audio)
        while caller.microphone.sent < voiced_until:
            await asyncio.sleep(0.005)
        spoke_until = time.perf_counter()
        while True:
            new = np.frombuffer(bytes(caller.heard[heard:]), dtype="<i2")
            if len(new) and int(np.abs(new).max()) > AUDIBLE:
                break
            heard += len(new) * 2
            await asyncio.sleep(0.005)
        latencies.append(time.perf_counter() - spoke_until)
        await caller.until("output_audio_buffer.stopped", after=mark, timeout=30)
        await asyncio.sleep(0.3)
    await caller.close()


def as_phone_audio(audio: bytes) -> bytes:
    """24 kHz PCM16 as the phone network carries it: 8 kHz μ-law."""
    import numpy as np

    from speech.audio import resample, to_float, to_int16
    from speech.g711 import encode_ulaw

    narrow = resample(to_float(np.frombuffer(audio, dtype="<i2")), RATE, PHONE_RATE)
    return encode_ulaw(to_int16(narrow))


async def one_phone_call(base: str, utterances: list[bytes], latencies: list[float]) -> None:
    """One caller on Twilio's media stream: the same turns as ``one_call``, in μ-law."""
    import httpx
    from websockets.asyncio.client import connect

    async with httpx.AsyncClient(timeout=30) as client:
        stream_url, token = await ring(client, base)
    stream_sid = "MZ" + os.urandom(16).hex()
    async with connect(stream_url, max_size=None, compression=None) as ws:
        state: dict[str, float] = {"first_audio_at": 0.0, "last_audio_at": 0.0}
        first_audio: asyncio.Event = asyncio.Event()

        async def reader() -> None:
            async for frame in ws:
                message = json.loads(frame)
                if message.get("event") == "mark":
                    await ws.send(frame)  # played at once: this caller does not listen
                elif message.get("event") == "media":
                    state["last_audio_at"] = time.perf_counter()
                    if not first_audio.is_set():
                        state["first_audio_at"] = state["last_audio_at"]
                        first_audio.set()

        async def quiet(seconds: float = 0.8) -> None:
            """Until the agent has sent no audio for ``seconds`` (its answer is out)."""
            await asyncio.wait_for(first_audio.wait(), 30)
            while time.perf_counter() - state["last_audio_at"] < seconds:
                await asyncio.sleep(0.05)

        async def media(chunk: bytes, sequence: int) -> None:
            payload = base64.b64encode(chunk).decode()
            body = {"track": "inbound", "chunk": str(sequence),
                    "timestamp": str(sequence * CHUNK_MS), "payload": payload}  # fmt: skip
            await ws.send(json.dumps({"event": "media", "streamSid": stream_sid, "media": body}))

        start = {"streamSid": stream_sid, "accountSid": ACCOUNT_SID, "callSid": "CA",
                 "tracks": ["inbound"], "customParameters": {"token": token}}  # fmt: skip
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps({"event": "start", "start": start, "streamSid": stream_sid}))
        task = asyncio.create_task(reader())
        await quiet()  # the greeting
        chunk_bytes = PHONE_RATE * CHUNK_MS // 1000
        silence = bytes([0xFF]) * chunk_bytes  # μ-law's zero
        sequence = 0
        for audio in utterances:
            first_audio.clear()
            end = voice_end(audio) // 2 * PHONE_RATE // RATE  # the voice's end, in μ-law bytes
            phone_audio = as_phone_audio(audio)
            spoke_until = 0.0
            next_send = time.perf_counter()
            for offset in range(0, len(phone_audio), chunk_bytes):
                sequence += 1
                await media(phone_audio[offset : offset + chunk_bytes], sequence)
                if offset < end <= offset + chunk_bytes:
                    spoke_until = next_send + (end - offset) / PHONE_RATE
                next_send += CHUNK_MS / 1000
                await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
            while not first_audio.is_set():
                sequence += 1
                await media(silence, sequence)
                next_send += CHUNK_MS / 1000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        first_audio.wait(), max(0.001, next_send - time.perf_counter())
                    )
            latencies.append(state["first_audio_at"] - spoke_until)
            await quiet()
        await ws.send(json.dumps({"event": "stop", "streamSid": stream_sid, "stop": {}}))
        task.cancel()


async def run_calls(
    url: str, headers: dict[str, str], calls: int, speech: list[bytes], per_call: int
) -> list[float]:
    """``calls`` callers at once; ``url`` is Koe's realtime endpoint, or its base URL
    (http://…) for callers on the phone path."""
    latencies: list[float] = []

    async def call(index: int) -> None:
        await asyncio.sleep(0.7 * index)  # calls start apart, as real ones do
        mine = [speech[(index + k) % len(speech)] for k in range(per_call)]
        if url.startswith("webrtc+"):
            key = headers["Authorization"].removeprefix("Bearer ")
            base, agent = url.removeprefix("webrtc+").split("#")
            await one_webrtc_call(base, key, agent, mine, latencies)
        elif url.startswith("http"):
            await one_phone_call(url, mine, latencies)
        else:
            await one_call(url, headers, mine, latencies)

    await asyncio.gather(*(call(index) for index in range(calls)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=24)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 2, 3, 4])
    parser.add_argument("--silence-ms", type=int, default=500)
    parser.add_argument(
        "--transports",
        nargs="*",
        choices=["websocket", "phone", "webrtc"],
        default=["websocket", "phone", "webrtc"],
    )
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koe.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    speech_by_text = synthesise(QUESTIONS)
    components(speech_by_text)
    speech = list(speech_by_text.values())

    workdir = Path(tempfile.mkdtemp(prefix="koe-bench-"))
    port = free_port()
    # The phone path's webhook is signed over the public URL: here, this Daphne's.
    env = bench_environment(workdir, KOE_SITE_URL=f"http://127.0.0.1:{port}")
    key, agent = prepare_database(env, args.silence_ms)
    daphne = start_daphne(env, port)
    try:
        urls = {
            "websocket": f"ws://127.0.0.1:{port}/v1/realtime?model={agent}",
            "phone": f"http://127.0.0.1:{port}",
            "webrtc": f"webrtc+http://127.0.0.1:{port}#{agent}",
        }
        headers = {"Authorization": f"Bearer {key}"}
        print(
            f"\nVoice to voice through Daphne (end of caller's voice to first agent audio; "
            f"VAD silence {args.silence_ms} ms; {os.cpu_count()} cores)"
        )
        print(f"  {'path':>9} {'calls':>5} {'turns':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}")
        for transport in args.transports:
            for calls in args.concurrency:
                per_call = args.utterances if calls == 1 else max(4, args.utterances // calls)
                latencies = asyncio.run(
                    run_calls(urls[transport], headers, calls, speech, per_call)
                )
                print(
                    f"  {transport:>9} {calls:>5} {len(latencies):>6} "
                    f"{percentile(latencies, 0.5) * 1000:>7.0f} "
                    f"{percentile(latencies, 0.95) * 1000:>7.0f} {max(latencies) * 1000:>7.0f}",
                    flush=True,
                )
    finally:
        daphne.terminate()
        daphne.wait(timeout=10)


if __name__ == "__main__":
    main()
