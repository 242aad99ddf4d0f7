"""Webhook tools against a real HTTP server on loopback (allowlisted), end to end.

The signature is checked with the verification code the docs give, extracted from
docs/integrate/webhooks.md here, so the documentation cannot drift from what Koe sends.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine

from foundation import signing
from tests.fakes.http_receiver import HttpReceiver, Reply
from tools.outcomes import ToolOutcome, ToolRequest
from tools.spec import ToolSpec
from tools.webhooks import call_webhook

PAGE = Path(__file__).resolve().parents[2] / "docs/integrate/webhooks.md"
SECTION = "# Tool webhooks: what Koe sends and how to verify it"
SECRET = "whsec_test_secret"
TOOL_HEADERS = {
    "X-Api-Key": "key-123-secret",
    "Authorization": "Bearer tok-456",
    "X-Region": "eu-west",
}


def documented_verifier() -> Callable[..., bool]:
    text = PAGE.read_text()
    assert SECTION in text
    section = text.split(SECTION, 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, "the page has exactly one Python example"
    namespace: dict[str, Any] = {}
    exec(blocks[0], namespace)
    verifier: Callable[..., bool] = namespace["verify_koe_signature"]
    return verifier


@pytest.fixture
def receiver(settings: Any) -> Iterator[HttpReceiver]:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    with HttpReceiver() as server:
        yield server


def tool_request(**changes: Any) -> ToolRequest:
    fields: dict[str, Any] = {
        "tool": ToolSpec(id="tool_1", name="book_table", kind="webhook"),
        "arguments": {"people": 4, "name": "Åsa Öberg", "time": "20:00"},
        "tenant_id": "ten_abc",
        "agent_id": "agt_def",
        "call_id": "call_123",
        "function_call_id": "fc_456",
        "end_user": "customer-42",
    }
    fields.update(changes)
    return ToolRequest(**fields)


def call(
    url: str,
    request: ToolRequest | None = None,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> ToolOutcome:
    return asyncio.run(
        call_webhook(
            request or tool_request(),
            url=url,
            method=method,
            signing_secret=SECRET,
            headers=TOOL_HEADERS if headers is None else headers,
            timeout=timeout,
        )
    )


def error_of(outcome: ToolOutcome) -> dict[str, str]:
    error: dict[str, str] = json.loads(outcome.output)["error"]
    return error


def test_the_receiver_gets_the_documented_body_and_headers(receiver: HttpReceiver) -> None:
    outcome = call(receiver.url("/hooks/book"))

    assert outcome.ok, outcome.output
    [received] = receiver.requests
    assert received.method == "POST"
    assert received.path == "/hooks/book"
    expected = {
        "tool": "book_table",
        "call_id": "call_123",
        "function_call_id": "fc_456",
        "arguments": {"people": 4, "name": "Åsa Öberg", "time": "20:00"},
        "context": {
            "tenant": "ten_abc",
            "agent": "agt_def",
            "call": "call_123",
            "end_user": "customer-42",
        },
    }
    assert received.body == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()
    assert json.loads(received.body) == expected
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"] == "Koe-Webhooks/1"
    assert received.headers["idempotency-key"] == "call_123:fc_456"
    assert received.headers["x-api-key"] == "key-123-secret"
    assert received.headers["authorization"] == "Bearer tok-456"
    assert received.headers["x-region"] == "eu-west"


def test_the_signature_verifies_with_the_documented_code(receiver: HttpReceiver) -> None:
    verify_koe_signature = documented_verifier()

    call(receiver.url("/hook"))

    [received] = receiver.requests
    header = received.headers["koe-signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify_koe_signature(SECRET, header, received.body)
    signing.verify(SECRET, header, received.body)  # and with Koe's own verifier
    assert not verify_koe_signature("whsec_someone_else", header, received.body)
    assert not verify_koe_signature(SECRET, header, received.body.replace(b"4", b"5"))
    assert not verify_koe_signature(SECRET, "", received.body)
    assert not verify_koe_signature(SECRET, "v1=abc", received.body)
    with time_machine.travel(int(header.split(",")[0][2:]) + 600, tick=False):
        assert not verify_koe_signature(SECRET, header, received.body)  # a replay, later


def test_retries_of_one_function_call_share_the_idempotency_key(
    receiver: HttpReceiver,
) -> None:
    call(receiver.url("/hook"))
    call(receiver.url("/hook"))
    call(receiver.url("/hook"), tool_request(call_id="", function_call_id="fc_test"))

    keys = [received.headers["idempotency-key"] for received in receiver.requests]
    assert keys == ["call_123:fc_456", "call_123:fc_456", "test:fc_test"]


def test_the_tools_headers_cannot_replace_koes(receiver: HttpReceiver) -> None:
    verify_koe_signature = documented_verifier()
    forged = {
        "koe-signature": "t=1,v1=forged",
        "Idempotency-Key": "mine",
        "Content-Type": "text/plain",
        "User-Agent": "Acme-Gateway/2",
    }

    call(receiver.url("/hook"), headers=forged)

    [received] = receiver.requests
    assert verify_koe_signature(SECRET, received.headers["koe-signature"], received.body)
    assert received.headers["idempotency-key"] == "call_123:fc_456"
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"] == "Acme-Gateway/2"


def test_the_exchange_shows_the_request_with_the_tools_secrets_redacted(
    receiver: HttpReceiver,
) -> None:
    receiver.reply(Reply(body=b'{"booked": true, "reference": "R-9"}'))

    outcome = call(receiver.url("/hook"))

    [exchange] = outcome.exchanges
    [received] = receiver.requests
    headers = exchange.request_headers  # names as sent
    assert headers["X-Api-Key"] == "[redacted]"
    assert headers["Authorization"] == "[redacted]"
    assert headers["X-Region"] == "eu-west"
    assert headers["Koe-Signature"] == received.headers["koe-signature"]
    assert headers["Idempotency-Key"] == "call_123:fc_456"
    assert headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert "key-123-secret" not in repr(exchange) and "tok-456" not in repr(exchange)
    assert exchange.method == "POST"
    assert exchange.url == receiver.url("/hook")
    assert exchange.request_body == received.body.decode()
    assert exchange.status == 200
    assert exchange.response_headers["Content-Type"] == "application/json"
    assert exchange.response_body == '{"booked": true, "reference": "R-9"}'
    assert exchange.duration_ms >= 0


@pytest.mark.parametrize(
    ("body", "output"),
    [
        (b'{"booked": true, "table": 7}', '{"booked":true,"table":7}'),
        (b"[1, 2, 3]", "[1,2,3]"),
        (b'"Booked for eight."', '"Booked for eight."'),
        (b"42", "42"),
    ],
)
def test_a_json_answer_is_given_to_the_model_as_it_is(
    body: bytes, output: str, receiver: HttpReceiver
) -> None:
    receiver.reply(Reply(body=body, headers={"Content-Type": "application/json; charset=utf-8"}))

    outcome = call(receiver.url("/hook"))

    assert outcome.ok
    assert outcome.output == output
    assert json.loads(outcome.output) == json.loads(body)


def test_a_text_answer_is_wrapped_as_a_result(receiver: HttpReceiver) -> None:
    receiver.reply(Reply(body="Booked: table 7 at 20:00 ✓", headers={"Content-Type": "text/plain"}))

    outcome = call(receiver.url("/hook"))

    assert outcome.ok
    assert json.loads(outcome.output) == {"result": "Booked: table 7 at 20:00 ✓"}


def test_other_methods_are_used_as_configured(receiver: HttpReceiver) -> None:
    call(receiver.url("/hook"), method="put")

    assert receiver.requests[0].method == "PUT"


def test_a_non_2xx_answer_is_an_http_error_with_its_reason(receiver: HttpReceiver) -> None:
    receiver.reply(
        Reply(
            status=409,
            body=b'{"message": "No table free at 20:00"}',
        )
    )

    outcome = call(receiver.url("/hook"))

    assert not outcome.ok
    assert outcome.error_code == "http_error"
    message = error_of(outcome)["message"]
    assert "409" in message
    assert "No table free at 20:00" in message
    assert outcome.exchanges[-1].status == 409


def test_declared_json_that_is_not_is_a_bad_response(receiver: HttpReceiver) -> None:
    receiver.reply(Reply(body=b"<html>oops</html>"))

    outcome = call(receiver.url("/hook"))

    assert outcome.error_code == "bad_response"
    assert outcome.exchanges[-1].response_body == "<html>oops</html>"


def test_a_server_that_does_not_answer_in_time_is_a_timeout(receiver: HttpReceiver) -> None:
    receiver.reply(Reply(hold=True))

    outcome = call(receiver.url("/slow"), timeout=0.5)

    assert not outcome.ok
    assert outcome.error_code == "timeout"
    assert error_of(outcome)["message"] == (
        "The book_table service did not answer within 0.5 seconds."
    )
    [exchange] = outcome.exchanges
    assert exchange.status is None
    assert 400 <= exchange.duration_ms < 5000
    assert len(receiver.requests) == 1  # it was sent; the answer never came


@pytest.mark.parametrize("chunked", [False, True], ids=["with-length", "streamed"])
def test_a_response_over_the_cap_is_refused(
    chunked: bool, receiver: HttpReceiver, settings: Any
) -> None:
    settings.KOE_TOOL_MAX_RESPONSE_BYTES = 1024
    receiver.reply(Reply(body=b'"' + b"x" * 200_000 + b'"', chunked=chunked))

    outcome = call(receiver.url("/big"))

    assert not outcome.ok
    assert outcome.error_code == "response_too_large"
    assert "too long" in error_of(outcome)["message"]


def test_a_response_at_the_cap_is_accepted(receiver: HttpReceiver, settings: Any) -> None:
    settings.KOE_TOOL_MAX_RESPONSE_BYTES = 1024
    receiver.reply(Reply(body=b'"' + b"x" * 1022 + b'"', chunked=True))

    outcome = call(receiver.url("/big"))

    assert outcome.ok
    assert len(json.loads(outcome.output)) == 1022


def test_a_closed_port_is_unreachable(settings: Any) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once it is closed

    outcome = call(f"http://127.0.0.1:{port}/hook")

    assert not outcome.ok
    assert outcome.error_code == "unreachable"
    assert error_of(outcome)["message"].startswith("The book_table service could not be reached")
    assert outcome.exchanges[0].status is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/hook", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "the cloud metadata service's address"),
        ("http://0x7f000001/hook", "0x7f000001 stands for 127.0.0.1"),
        ("ftp://example.com/hook", "only http and https"),
    ],
)
def test_a_blocked_address_is_refused_with_a_reason(url: str, reason: str, settings: Any) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []

    outcome = call(url)

    assert not outcome.ok
    assert outcome.error_code == "blocked_address"
    assert reason in error_of(outcome)["message"]
    [exchange] = outcome.exchanges
    assert exchange.status is None
    assert exchange.request_headers["X-Api-Key"] == "[redacted]"


def test_loopback_is_refused_without_the_allowlist_and_nothing_connects(
    settings: Any,
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    with HttpReceiver() as receiver:
        outcome = call(receiver.url("/hook"))

    assert outcome.error_code == "blocked_address"
    assert "127.0.0.1 is a loopback address" in error_of(outcome)["message"]
    assert receiver.connections == 0


def test_a_redirect_is_followed_and_each_hop_shown(receiver: HttpReceiver) -> None:
    receiver.reply(Reply(status=307, headers={"Location": "/moved"}, body=b""))

    outcome = call(receiver.url("/hook"))

    assert outcome.ok
    assert [received.path for received in receiver.requests] == ["/hook", "/moved"]
    assert receiver.requests[1].body == receiver.requests[0].body
    assert [exchange.status for exchange in outcome.exchanges] == [307, 200]
    assert outcome.exchanges[1].url == receiver.url("/moved")
    assert outcome.exchanges[1].request_body == receiver.requests[0].body.decode()


def test_a_redirect_to_a_private_address_is_refused(receiver: HttpReceiver) -> None:
    receiver.reply(Reply(status=302, headers={"Location": "http://192.168.0.10/"}, body=b""))

    outcome = call(receiver.url("/hook"))

    assert outcome.error_code == "blocked_address"
    assert "192.168.0.10 is a private address" in error_of(outcome)["message"]
    assert len(receiver.requests) == 1


def test_a_tool_without_a_url_is_an_error_not_an_exception() -> None:
    outcome = call("")

    assert outcome.error_code == "invalid_url"
