"""What a call needs from the connection its caller is on, and what some connections offer.

Every transport is a ``CallTransport``; a phone line is also an ``EventTransport`` (it
reads the provider's events instead of relaying frames) and a ``TransferringTransport``
(its carrier can move the caller to another number). The call checks for the optional
ones with ``hasattr``. A WebRTC call is a ``PlayingTransport``: its media track plays the
agent's audio.
"""

from __future__ import annotations

from typing import Any, Protocol


class CallTransport(Protocol):
    """What a call needs from the connection its caller is on."""

    async def deliver(self, frame: str) -> bool:
        """One server event (JSON text) to the caller; False when the caller is gone."""

    async def ended(self, reason: str, farewell: dict[str, Any] | None) -> None:
        """The call is over: tell the caller ``farewell`` (an error event) if there is one,
        and close the connection, unless the caller closed it (reason ``client_closed``)."""


class EventTransport(CallTransport, Protocol):
    """A transport that reads the provider's events rather than relays their frames (a
    phone line turns a few of them into its own messages): it is given each event as
    the call parsed it, once, instead of the frames a client would see."""

    async def deliver_event(self, event: dict[str, Any]) -> bool:
        """One server event for the caller; False when the caller is gone."""


class TransferringTransport(CallTransport, Protocol):
    """A transport that can move its caller to another number (a phone line)."""

    async def transfer(self, target: str) -> bool:
        """Hand the caller over to ``target``; False when the carrier refused."""


class PlayingTransport(CallTransport, Protocol):
    """A transport that plays the agent's audio itself (WebRTC's media track) rather than
    delivering the audio events to the caller's client."""

    def play(self, event: dict[str, Any]) -> bool:
        """Shown each event of ``PLAYED_EVENTS``; True when it took the event (the caller's
        client is not sent it)."""


# The events a PlayingTransport is shown: the agent's audio, and the caller speaking over it.
PLAYED_EVENTS = frozenset(
    {
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.done",
        "input_audio_buffer.speech_started",
    }
)
