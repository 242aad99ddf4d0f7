"""Koe-Signature: what a tenant's receiver checks, including how old a signature may be."""

from __future__ import annotations

import pytest
import time_machine

from foundation import signing

SECRET = "whsec_test"
BODY = b'{"type": "ping"}'


def test_a_fresh_signature_of_the_body_verifies() -> None:
    with time_machine.travel("2026-12-06 12:00:00Z", tick=False):
        header = signing.sign(SECRET, BODY)
        signing.verify(SECRET, header, BODY)
    assert header.startswith("t=1796558400,v1=")


@pytest.mark.parametrize(
    ("secret", "body", "message"),
    [("whsec_other", BODY, "does not match"), (SECRET, b'{"type": "pong"}', "does not match")],
)
def test_another_secret_or_body_is_refused(secret: str, body: bytes, message: str) -> None:
    header = signing.sign(SECRET, BODY)
    with pytest.raises(signing.SignatureError, match=message):
        signing.verify(secret, header, body)


@pytest.mark.parametrize("header", ["", "v1=abc", "t=soon,v1=abc", "t=,v1="])
def test_a_header_without_a_timestamp_is_refused(header: str) -> None:
    with pytest.raises(signing.SignatureError, match="no timestamp"):
        signing.verify(SECRET, header, BODY)


def test_a_captured_request_replayed_after_the_window_is_refused() -> None:
    with time_machine.travel("2026-12-06 12:00:00Z", tick=False):
        header = signing.sign(SECRET, BODY)
    # At the edge of the five-minute window it still holds...
    with time_machine.travel("2026-12-06 12:05:00Z", tick=False):
        signing.verify(SECRET, header, BODY)
    # ...one second later it is a replay.
    with (
        time_machine.travel("2026-12-06 12:05:01Z", tick=False),
        pytest.raises(signing.SignatureError, match="too old"),
    ):
        signing.verify(SECRET, header, BODY)
    # A timestamp from the future is refused alike (a receiver's clock may lag, not lead).
    with (
        time_machine.travel("2026-12-06 11:54:59Z", tick=False),
        pytest.raises(signing.SignatureError, match="too old"),
    ):
        signing.verify(SECRET, header, BODY)


def test_the_window_is_the_receivers_to_choose() -> None:
    with time_machine.travel("2026-12-06 12:00:00Z", tick=False):
        header = signing.sign(SECRET, BODY)
    with time_machine.travel("2026-12-06 12:00:31Z", tick=False):
        signing.verify(SECRET, header, BODY, tolerance_seconds=60)
        with pytest.raises(signing.SignatureError):
            signing.verify(SECRET, header, BODY, tolerance_seconds=30)


def test_a_receivers_clock_a_little_behind_still_accepts() -> None:
    """Within the window either way: the receiver's clock may lag the sender's."""
    with time_machine.travel("2026-12-06 12:00:00Z", tick=False):
        header = signing.sign(SECRET, BODY)
    with time_machine.travel("2026-12-06 11:59:55Z", tick=False):
        signing.verify(SECRET, header, BODY)


def test_a_fresh_timestamp_appended_to_a_captured_header_does_not_renew_it() -> None:
    with time_machine.travel("2026-12-06 12:00:00Z", tick=False):
        captured = signing.sign(SECRET, BODY)
    with time_machine.travel("2026-12-06 13:00:00Z", tick=False):
        replayed = f"{captured},t=1796562000"  # the first timestamp is the signed one
        with pytest.raises(signing.SignatureError, match="too old"):
            signing.verify(SECRET, replayed, BODY)
