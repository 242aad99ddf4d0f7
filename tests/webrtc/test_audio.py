"""The WebRTC audio pieces on their own: the agent's voice track and its buffer events,
and the jitter-buffer setting reaching aiortc's receivers."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer

from agents.webrtc.audio import FRAME_BYTES, AgentVoice, set_jitter_buffer
from tests.webrtc.caller import WebRTCCaller


def test_the_voice_plays_a_response_then_says_it_stopped_and_a_cut_says_what_was_heard() -> None:
    told: list[dict[str, Any]] = []
    voice = AgentVoice(told.append)

    async def play() -> list[bytes]:
        voice.add("resp_1", "item_1", b"\x01\x00" * (FRAME_BYTES // 2) * 3)  # 60 ms
        voice.response_audio_done("resp_1")
        frames = [bytes((await voice.recv()).planes[0])[:FRAME_BYTES] for _ in range(4)]
        voice.add("resp_2", "item_2", b"\x02\x00" * (FRAME_BYTES // 2) * 5)  # 100 ms
        await voice.recv()
        await voice.recv()
        return frames

    frames = asyncio.run(play())
    assert [f[:2] for f in frames] == [b"\x01\x00"] * 3 + [b"\x00\x00"]  # then silence
    assert [e["type"] for e in told] == [
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.started",
    ]
    cut = voice.clear()
    assert cut is not None and (cut.item_id, cut.heard_ms) == ("item_2", 40)
    assert told[-1] == {**told[-1], "type": "output_audio_buffer.cleared", "response_id": "resp_2"}
    assert voice.clear() is None  # nothing playing: nothing to cut, nothing said


def test_the_jitter_buffer_setting_reaches_aiortcs_receiver() -> None:
    async def scenario() -> JitterBuffer:
        caller, peer = WebRTCCaller(), RTCPeerConnection()
        await peer.setRemoteDescription(RTCSessionDescription(await caller.offer(), "offer"))
        set_jitter_buffer(peer, 1)
        (receiver,) = [r for r in peer.getReceivers() if r.track.kind == "audio"]
        buffer: JitterBuffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        await caller.close()
        await peer.close()
        return buffer

    buffer = asyncio.run(scenario())
    assert buffer._prefetch == 1
