"""Outbound safety: Koe never reaches its own network through a tenant's URL.

Every refusal is checked twice over: the error says which host and why, and nothing was
connected to (the real server on loopback counts the connections it accepts, and the
inner httpx transport that would open a connection is never called).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from foundation import outbound
from foundation.outbound import (
    OutboundBlocked,
    ResponseTooLarge,
    check_url,
    check_url_for_saving,
    safe_client,
)
from tests.fakes.http_receiver import HttpReceiver, Reply
from tests.tools.refused_urls import ACCEPTED_URLS, REFUSED_URLS

REAL_HANDLE = httpx.AsyncHTTPTransport.handle_async_request


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as server:
        yield server


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """The requests handed to httpx's real transport: each one would open a connection."""
    sent: list[httpx.Request] = []

    async def recording(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return await REAL_HANDLE(self, request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", recording)
    return sent


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A resolver for made-up names: ``names["host"] = ["10.0.0.1"]``."""
    table: dict[str, list[str]] = {}

    async def resolve(host: str, port: int) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ipaddress.ip_address(address) for address in table[host]]

    monkeypatch.setattr(outbound, "resolve", resolve)
    return table


def get(url: str, **client_options: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        async with safe_client(timeout=5, **client_options) as client:
            response = await client.get(url)
            await response.aread()
            return response

    return asyncio.run(send())


REFUSED = [
    ("http://127.0.0.1:{port}/", "127.0.0.1 is a loopback address"),
    ("http://localhost:{port}/", "localhost resolves to "),
    ("http://0.0.0.0:{port}/", "0.0.0.0 is an unspecified address"),
    ("http://10.0.0.1/", "10.0.0.1 is a private address"),
    ("http://172.16.0.1/", "172.16.0.1 is a private address"),
    ("http://192.168.1.1/", "192.168.1.1 is a private address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is the cloud metadata"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254 is the cloud metadata"),
    ("http://169.254.10.10/", "169.254.10.10 is a link-local address"),
    ("http://[::1]:{port}/", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]:{port}/", "::ffff:127.0.0.1 stands for 127.0.0.1, a loopback"),
    ("http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1 stands for 10.0.0.1, a private address"),
    ("http://2130706433:{port}/", "2130706433 stands for 127.0.0.1, a loopback address"),
    ("http://0x7f000001:{port}/", "0x7f000001 stands for 127.0.0.1, a loopback address"),
    ("http://127.1:{port}/", "127.1 stands for 127.0.0.1, a loopback address"),
    ("http://100.64.0.1/", "100.64.0.1 is a shared (carrier-grade NAT) address"),
    ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
    ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://[fc00::1]/", "fc00::1 is a private address"),
    ("http://[64:ff9b::a00:1]/", "embeds 10.0.0.1, a private address"),
    ("http://[2002:7f00:1::]/", "embeds 127.0.0.1, a loopback address"),
    ("https://127.0.0.1:{port}/", "127.0.0.1 is a loopback address"),
]


@pytest.mark.parametrize(("template", "message"), REFUSED)
def test_non_public_addresses_are_refused_before_connecting(
    template: str,
    message: str,
    receiver: HttpReceiver,
    connections: list[httpx.Request],
    settings: Any,
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    url = template.format(port=receiver.port)

    with pytest.raises(OutboundBlocked) as refused:
        get(url)

    assert message in str(refused.value)
    assert connections == []
    assert receiver.connections == 0
    assert receiver.requests == []


def test_localhost_is_refused_for_what_it_resolves_to(
    receiver: HttpReceiver, connections: list[httpx.Request], settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []

    with pytest.raises(OutboundBlocked) as refused:
        get(f"http://localhost:{receiver.port}/")

    assert str(refused.value).startswith("localhost resolves to ")
    assert "a loopback address" in str(refused.value)
    assert refused.value.host == "localhost"
    assert connections == [] and receiver.connections == 0


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.20.30.40", "a private address"),
        ("169.254.169.254", "the cloud metadata service's address"),
        ("::1", "a loopback address"),
    ],
)
def test_a_name_resolving_to_a_non_public_address_is_refused(
    address: str,
    reason: str,
    names: dict[str, list[str]],
    connections: list[httpx.Request],
    settings: Any,
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    names["metadata.google.internal"] = [address]

    with pytest.raises(OutboundBlocked) as refused:
        get("http://metadata.google.internal/computeMetadata/v1/")

    assert str(refused.value) == f"metadata.google.internal resolves to {address}, {reason}."
    assert connections == []


def test_a_name_is_refused_when_any_of_its_addresses_is_not_public(
    names: dict[str, list[str]], connections: list[httpx.Request], settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    names["mixed.example"] = ["93.184.216.34", "192.168.0.7"]

    with pytest.raises(OutboundBlocked, match=r"mixed\.example resolves to 192\.168\.0\.7"):
        get("http://mixed.example/")

    assert connections == []


@pytest.mark.parametrize("url", ["ftp://files.example.com/report.csv", "file:///etc/passwd"])
def test_only_http_and_https_are_called(url: str, connections: list[httpx.Request]) -> None:
    with pytest.raises(OutboundBlocked, match="only http and https"):
        get(url)
    with pytest.raises(OutboundBlocked, match="only http and https"):
        check_url(url)

    assert connections == []


def test_a_redirect_to_a_private_address_is_refused(
    receiver: HttpReceiver, connections: list[httpx.Request], settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    receiver.reply(Reply(status=302, headers={"Location": "http://10.0.0.1/admin"}, body=b""))

    with pytest.raises(OutboundBlocked, match=r"10\.0\.0\.1 is a private address"):
        get(receiver.url("/first"))

    assert [request.path for request in receiver.requests] == ["/first"]
    assert [str(request.url) for request in connections] == [receiver.url("/first")]


def test_each_redirect_hop_is_checked_even_back_to_the_same_server(
    receiver: HttpReceiver,
    names: dict[str, list[str]],
    connections: list[httpx.Request],
    settings: Any,
) -> None:
    # Only the name is allowed; the redirect names the same server by its address, which
    # is not: the second hop must be refused although it would reach a listening server.
    settings.KOE_OUTBOUND_ALLOWLIST = ["receiver.test"]
    names["receiver.test"] = ["127.0.0.1"]
    receiver.reply(Reply(status=307, headers={"Location": receiver.url("/second")}, body=b"moved"))

    with pytest.raises(OutboundBlocked, match=r"127\.0\.0\.1 is a loopback address"):
        get(f"http://receiver.test:{receiver.port}/first")

    assert [request.path for request in receiver.requests] == ["/first"]
    assert receiver.connections == 1
    assert len(connections) == 1


def test_the_allowlist_lets_a_loopback_server_through(
    receiver: HttpReceiver, connections: list[httpx.Request], settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]

    response = get(receiver.url("/hook"))

    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert [request.path for request in receiver.requests] == ["/hook"]
    assert receiver.requests[0].headers["host"] == f"127.0.0.1:{receiver.port}"


@pytest.mark.parametrize(
    ("allowlist", "host"),
    [
        (["127.0.0.0/8"], "127.0.0.1"),
        (["LocalHost"], "localhost"),
        (["10.0.0.0/8", "127.0.0.1/32"], "2130706433"),
        (["127.0.0.1"], "[::ffff:127.0.0.1]"),
    ],
)
def test_the_allowlist_takes_networks_and_names(
    allowlist: list[str], host: str, receiver: HttpReceiver, settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = allowlist

    response = get(f"http://{host}:{receiver.port}/")

    assert response.status_code == 200
    assert receiver.requests[0].headers["host"] == f"{host}:{receiver.port}"


def test_a_redirect_between_allowed_hosts_is_followed(
    receiver: HttpReceiver, settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    receiver.reply(Reply(status=302, headers={"Location": "/second"}, body=b""))

    response = get(receiver.url("/first"))

    assert response.status_code == 200
    assert [request.path for request in receiver.requests] == ["/first", "/second"]


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(
    receiver: HttpReceiver,
    connections: list[httpx.Request],
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    # A rebinding name: public-looking answers change after the first lookup. The first
    # answer is checked and connected to; any later lookup would get a private address.
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    answers = iter([["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]])
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[Any]:
        lookups.append(host)
        return [ipaddress.ip_address(address) for address in next(answers)]

    system_lookups: list[Any] = []
    real_getaddrinfo = socket.getaddrinfo

    def recording_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("flags", 0) & socket.AI_NUMERICHOST:  # those never look up
            system_lookups.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(outbound, "resolve", rebinding)
    monkeypatch.setattr(socket, "getaddrinfo", recording_getaddrinfo)

    response = get(f"http://rebind.test:{receiver.port}/hook")

    assert response.status_code == 200
    assert lookups == ["rebind.test"]
    assert "rebind.test" not in system_lookups
    assert [str(request.url) for request in connections] == [receiver.url("/hook")]
    assert receiver.requests[0].headers["host"] == f"rebind.test:{receiver.port}"


def test_https_connects_to_the_checked_address_but_verifies_the_name(
    names: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    names["api.example.com"] = ["93.184.216.34"]
    sent: list[httpx.Request] = []

    async def answer(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"ok": True})

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", answer)

    response = get("https://api.example.com/hook?x=1")

    assert response.status_code == 200
    assert str(response.request.url) == "https://api.example.com/hook?x=1"
    [request] = sent
    assert str(request.url) == "https://93.184.216.34/hook?x=1"
    assert request.headers["Host"] == "api.example.com"
    assert request.extensions["sni_hostname"] == "api.example.com"


def test_a_name_that_does_not_resolve_is_a_connection_error(
    names: dict[str, list[str]], connections: list[httpx.Request]
) -> None:
    with pytest.raises(httpx.ConnectError, match=r"nowhere\.test could not be resolved"):
        get("http://nowhere.test/")
    assert connections == []


def test_the_response_size_cap_stops_reading(receiver: HttpReceiver, settings: Any) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    receiver.reply(Reply(body=b"x" * 50_000, chunked=True))

    with pytest.raises(ResponseTooLarge):
        get(receiver.url("/big"), max_response_bytes=1000)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://0177.0.0.1/", "0177.0.0.1 stands for 127.0.0.1, a loopback address"),
        ("http://2130706433/", "2130706433 stands for 127.0.0.1"),
        ("http://[::ffff:169.254.169.254]/", "stands for 169.254.169.254, the cloud metadata"),
        ("https://10.1.2.3:8443/hook", "10.1.2.3 is a private address"),
        ("gopher://example.com/", "only http and https"),
        ("", "only http and https"),
    ],
)
def test_check_url_refuses_what_can_never_be_called(url: str, message: str, settings: Any) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    with pytest.raises(OutboundBlocked) as refused:
        check_url(url)
    assert message in str(refused.value)


def accepted(check: Any, url: str) -> bool:
    """Whether ``check`` lets ``url`` through (it raises OutboundBlocked otherwise)."""
    try:
        check(url)
    except OutboundBlocked:
        return False
    return True


def test_check_url_leaves_names_to_request_time_and_respects_the_allowlist(
    settings: Any,
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = ["10.0.0.0/8"]
    assert accepted(check_url, "https://hooks.example.com/book")
    assert accepted(check_url, "http://localhost:8000/")  # resolved (and refused) when called
    assert accepted(check_url, "http://10.1.2.3/hook")
    assert not accepted(check_url, "http://192.168.1.1/")  # not what the allowlist names


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_public(address: str) -> None:
    assert outbound.why_not_public(ipaddress.ip_address(address)) is None


# --- saving a URL ------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "message"), REFUSED_URLS)
def test_saving_refuses_every_spelling_of_a_non_public_address(
    url: str, message: str, settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    with pytest.raises(OutboundBlocked) as refused:
        check_url_for_saving(url)
    assert message in str(refused.value)


@pytest.mark.parametrize("url", ACCEPTED_URLS)
def test_saving_accepts_public_addresses_and_leaves_other_names_to_request_time(
    url: str, settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    assert accepted(check_url_for_saving, url)


@pytest.mark.parametrize(
    ("allowlist", "url"),
    [
        (["127.0.0.1"], "http://127.0.0.1:8000/hook"),
        (["127.0.0.1"], "http://2130706433/"),
        (["127.0.0.0/8"], "http://localhost:8000/"),
        (["tools.localhost"], "http://tools.localhost/"),
        (["10.0.0.0/8"], "http://10.1.2.3/hook"),
        (["fd00::/8"], "http://[fd12::1]/"),
    ],
)
def test_saving_admits_what_the_allowlist_names(
    allowlist: list[str], url: str, settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = allowlist
    assert accepted(check_url_for_saving, url)
    settings.KOE_OUTBOUND_ALLOWLIST = []
    assert not accepted(check_url_for_saving, url)  # it is the allowlist that admits it


def test_the_allowlist_admits_only_what_it_names_when_saving(settings: Any) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1", "tools.localhost"]
    for url in ("http://169.254.169.254/", "http://10.0.0.1/", "http://[::1]/"):
        with pytest.raises(OutboundBlocked):
            check_url_for_saving(url)
