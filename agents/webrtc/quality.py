"""A WebRTC call's media quality, from the peer connection's RTP statistics.

Kept on the call (``CallSession.media_quality``) when it ends: the round trip (RTCP), and
for each direction the packets lost and the interarrival jitter (RFC 3550, in the Opus
clock's 48 kHz units, given here in ms). The caller's side is what Koe received; the
agent's is what the caller's receiver reports said about Koe's audio.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection

OPUS_CLOCK_PER_MS = 48


async def media_quality(peer: RTCPeerConnection) -> dict[str, Any]:
    report = await peer.getStats()
    quality: dict[str, Any] = {
        "round_trip_ms": None,
        "caller_packets_received": 0,
        "caller_packets_lost": 0,
        "caller_loss_percent": 0.0,
        "caller_jitter_ms": 0.0,
        "agent_packets_lost": None,
        "agent_loss_percent": None,
        "agent_jitter_ms": None,
    }
    agent_packets_sent = 0
    for stats in report.values():
        kind = getattr(stats, "type", "")
        if kind == "inbound-rtp":
            quality["caller_packets_received"] += stats.packetsReceived
            quality["caller_packets_lost"] += max(stats.packetsLost, 0)
            quality["caller_jitter_ms"] = round(stats.jitter / OPUS_CLOCK_PER_MS, 1)
        elif kind == "outbound-rtp":
            agent_packets_sent += stats.packetsSent
        elif kind == "remote-inbound-rtp":
            if stats.roundTripTime is not None:  # None until a receiver report came back
                quality["round_trip_ms"] = round(stats.roundTripTime * 1000, 1)
            quality["agent_packets_lost"] = max(stats.packetsLost, 0)
            quality["agent_jitter_ms"] = round(stats.jitter / OPUS_CLOCK_PER_MS, 1)
    expected = quality["caller_packets_received"] + quality["caller_packets_lost"]
    if expected:
        quality["caller_loss_percent"] = round(100 * quality["caller_packets_lost"] / expected, 2)
    if quality["agent_packets_lost"] is not None and agent_packets_sent:
        quality["agent_loss_percent"] = round(
            100 * quality["agent_packets_lost"] / agent_packets_sent, 2
        )
    return quality
