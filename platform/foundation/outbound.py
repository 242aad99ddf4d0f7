"""The one way Koe makes requests to tenants' servers: public addresses only, every hop checked.

A tenant chooses the URLs Koe calls (tool webhooks, MCP servers), so without care Koe could
be made to reach its own network: the cloud metadata service, Redis, an admin port on
loopback. ``safe_client()`` gives an httpx client whose transport, for every request it
sends (so for every redirect hop too), allows only http(s), resolves the host once, refuses
it when any of its addresses is not public, and then connects to the very address it
checked, so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot slip through. ``settings.KOE_OUTBOUND_ALLOWLIST`` names hosts or
networks exempt from the public-address rule (tests use 127.0.0.1; on-premise tools use
private ranges).

``check_url_for_saving()`` (and ``validate_url_for_saving``, its Django validator) refuses
early, when a tenant saves a URL, what needs no DNS to be refused: other schemes, hosts
that are addresses in any spelling, and names that always mean this machine or a cloud
metadata service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = ("http", "https")

# Cloud metadata services (AWS, GCP, Azure, OpenStack on IPv4; AWS on IPv6). Also covered by
# the ranges below; named so the refusal says what the address is.
METADATA_ADDRESS = ipaddress.ip_address("169.254.169.254")
METADATA_ADDRESSES = frozenset({METADATA_ADDRESS, ipaddress.ip_address("fd00:ec2::254")})
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
# Prefixes whose addresses carry an IPv4 address in their last 32 bits (NAT64).
NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# Names that stand for one non-public address wherever Koe runs (localhost and *.localhost
# by RFC 6761; the metadata service's names on GCP and AWS), so refused when a URL is saved
# without asking DNS.
LOOPBACK_ADDRESS = ipaddress.ip_address("127.0.0.1")
FIXED_NAMES: dict[str, IPAddress] = {
    "localhost": LOOPBACK_ADDRESS,
    "metadata": METADATA_ADDRESS,
    "metadata.google.internal": METADATA_ADDRESS,
    "metadata.goog": METADATA_ADDRESS,
    "instance-data": METADATA_ADDRESS,
    "instance-data.ec2.internal": METADATA_ADDRESS,
}


class OutboundBlocked(Exception):
    """Koe refuses to send this request; the message names the host and the reason."""

    def __init__(self, message: str, *, host: str = "") -> None:
        super().__init__(message)
        self.host = host


class ResponseTooLarge(Exception):
    """A response body went past the size the client was created to accept."""


def safe_client(
    *,
    timeout: float,
    max_redirects: int = 5,
    max_response_bytes: int | None = None,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An AsyncClient that only reaches public addresses (or allowlisted ones), every hop.

    Redirects are followed (up to ``max_redirects``; 0 turns following off) and each one is
    checked like the first request. With ``max_response_bytes`` every response body,
    redirects' included, stops with ResponseTooLarge past that many bytes on the wire.
    """
    for name in ("transport", "mounts", "proxy", "trust_env"):
        if name in kwargs:
            raise TypeError(f"safe_client() chooses its own {name}")
    verify = kwargs.pop("verify", True)
    kwargs.setdefault("follow_redirects", max_redirects > 0)
    return httpx.AsyncClient(
        transport=SafeTransport(verify=verify, max_response_bytes=max_response_bytes),
        timeout=timeout,
        max_redirects=max_redirects,
        # No proxies or .netrc from the environment: the transport decides where requests go.
        trust_env=False,
        **kwargs,
    )


def check_url(url: str) -> None:
    """Raise OutboundBlocked for a URL that can never be called (for form validation).

    Checks the scheme and hosts that are IP addresses in any spelling; names are checked
    when a request is made, since what they resolve to can change.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError as error:
        raise OutboundBlocked(f"{url} is not a valid URL ({error}).") from None
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise OutboundBlocked(_scheme_refusal(url.strip()), host=host)
    if not host:
        raise OutboundBlocked(f"{url} has no host.")
    address = literal_address(host)
    if address is not None:
        _check_addresses(host, [address], is_literal=True)


def check_url_for_saving(url: str) -> None:
    """Raise OutboundBlocked for a URL a tenant may not save as one Koe will call.

    ``check_url``'s rules, plus names that need no DNS to know they mean this machine or a
    metadata service (``localhost``, ``*.localhost``, ``metadata.google.internal``). The
    allowlist admits what it names, as it does when the URL is called; every other name is
    resolved and checked when it is called.
    """
    check_url(url)
    name = (urlsplit(url.strip()).hostname or "").rstrip(".")
    address = literal_address(name) or fixed_address(name)
    if address is not None:
        _check_addresses(name, [address], is_literal=True)


def validate_url_for_saving(value: str) -> None:
    """``check_url_for_saving`` as a Django validator (models, forms, the API alike)."""
    if not value:
        return
    try:
        check_url_for_saving(value)
    except OutboundBlocked as error:
        raise ValidationError(str(error), code="blocked_address") from None


def fixed_address(name: str) -> IPAddress | None:
    """The address a name stands for without DNS (``localhost``: 127.0.0.1), or None."""
    name = name.lower().rstrip(".")
    if name.endswith(".localhost"):
        return LOOPBACK_ADDRESS
    return FIXED_NAMES.get(name)


def _scheme_refusal(url: str) -> str:
    if not url:
        return "An empty URL cannot be called: Koe calls only http and https URLs."
    if url.startswith("/"):
        # httpx treats a URL without a host (file:///etc/passwd) as a path.
        return f"{url} has no scheme or host: Koe calls only http and https URLs."
    return f"{url} is not allowed: Koe calls only http and https URLs."


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, through the event loop's resolver."""
    loop = asyncio.get_running_loop()
    answers = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in answers:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form the system accepts (``2130706433``,
    ``0x7f000001``, ``0177.0.0.1``, ``127.1``, ``::ffff:127.0.0.1``), or None for a name.

    The system's own parser decides, without any lookup, so the check sees the address
    that a connection would go to.
    """
    try:
        answers = socket.getaddrinfo(
            host.strip("[]"), None, flags=socket.AI_NUMERICHOST, type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(str(answers[0][4][0]).split("%", 1)[0])


def why_not_public(address: IPAddress) -> str | None:
    """What kind of non-public address this is (e.g. "a loopback address"), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            reason = why_not_public(mapped)
            return f"an IPv4-mapped address of {mapped}, {reason}" if reason else None
        if address in IPV4_COMPATIBLE and not (address.is_loopback or address.is_unspecified):
            return "a deprecated IPv4-compatible address"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = why_not_public(embedded)
            if reason:
                return f"an address that embeds {embedded}, {reason}"
    if address in METADATA_ADDRESSES:
        return "the cloud metadata service's address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "an unspecified address"
    if address in THIS_NETWORK:
        return "a reserved ('this network') address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in SHARED_ADDRESS_SPACE:
        return "a shared (carrier-grade NAT) address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in prefix for prefix in NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _normalised(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address is the IPv4 address it maps (and is connected to as one)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _allowlist() -> tuple[set[str], list[IPNetwork]]:
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in getattr(settings, "KOE_OUTBOUND_ALLOWLIST", []) or []:
        item = str(entry).strip().strip("[]")
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            names.add(item.lower().rstrip("."))
    return names, networks


def _check_addresses(host: str, addresses: Iterable[IPAddress], *, is_literal: bool) -> None:
    names, networks = _allowlist()
    if host.lower().rstrip(".") in names:
        return
    for address in addresses:
        address = _normalised(address)
        if any(address in network for network in networks):
            continue
        reason = why_not_public(address)
        if reason is None:
            continue
        spelled = host.strip("[]")
        if not is_literal:
            message = f"{host} resolves to {address}, {reason}"
        elif spelled.lower() == str(address):
            message = f"{spelled} is {reason}"
        else:
            message = f"{spelled} stands for {address}, {reason}"
        raise OutboundBlocked(f"{message}.", host=host)


async def public_addresses(host: str, port: int, timeout: float | None = None) -> list[IPAddress]:
    """The addresses ``host`` may be reached at, checked as every outbound request is:
    raises OutboundBlocked for a non-public one, OSError when it cannot be resolved.
    Connect to one of these, not to the name, so DNS cannot change the answer after."""
    literal = literal_address(host)
    if literal is not None:
        _check_addresses(host, [literal], is_literal=True)
        return [_normalised(literal)]
    async with asyncio.timeout(timeout):
        addresses = await resolve(host, port)
    if not addresses:
        raise OSError(f"{host} has no address.")
    _check_addresses(host, addresses, is_literal=False)
    return [_normalised(address) for address in addresses]


class SafeTransport(httpx.AsyncBaseTransport):
    """Checks each request's destination, then sends it to the checked address.

    One inner transport per original host: pooled TLS connections, verified for one name,
    are never reused for another name that happens to share the address.
    """

    def __init__(self, *, verify: Any = True, max_response_bytes: int | None = None) -> None:
        self._verify = verify
        self._max_response_bytes = max_response_bytes
        self._transports: dict[tuple[str, str, int | None], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.raw_host.decode("ascii")
        if url.scheme not in ALLOWED_SCHEMES:
            raise OutboundBlocked(_scheme_refusal(str(url)), host=host)
        if not host:
            raise OutboundBlocked(f"{url} has no host.")
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = await self._checked_addresses(request, host, port)
        inner = self._inner(url.scheme, host, url.port)
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions.setdefault("sni_hostname", host)
        last_error: httpx.ConnectError | None = None
        for address in addresses:
            # The Host header keeps the name; the connection goes to the checked address.
            direct = httpx.Request(
                request.method,
                url.copy_with(host=str(address)),
                headers=request.headers,
                stream=request.stream,
                extensions=extensions,
            )
            try:
                response = await inner.handle_async_request(direct)
            except httpx.ConnectError as error:
                last_error = error  # nothing was sent: the next address may answer
                continue
            return self._capped(response)
        assert last_error is not None
        raise last_error

    async def _checked_addresses(
        self, request: httpx.Request, host: str, port: int
    ) -> list[IPAddress]:
        literal = literal_address(host)
        if literal is not None:
            _check_addresses(host, [literal], is_literal=True)
            return [_normalised(literal)]
        connect_timeout = (request.extensions.get("timeout") or {}).get("connect")
        try:
            async with asyncio.timeout(connect_timeout):
                addresses = await resolve(host, port)
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"{host} did not resolve in time.", request=request
            ) from None
        except (socket.gaierror, UnicodeError) as error:
            raise httpx.ConnectError(
                f"{host} could not be resolved ({error}).", request=request
            ) from None
        if not addresses:
            raise httpx.ConnectError(f"{host} has no address.", request=request)
        _check_addresses(host, addresses, is_literal=False)
        return [_normalised(address) for address in addresses]

    def _inner(self, scheme: str, host: str, port: int | None) -> httpx.AsyncHTTPTransport:
        key = (scheme, host.lower(), port)
        if key not in self._transports:
            self._transports[key] = httpx.AsyncHTTPTransport(verify=self._verify, trust_env=False)
        return self._transports[key]

    def _capped(self, response: httpx.Response) -> httpx.Response:
        if self._max_response_bytes is None or not isinstance(
            response.stream, httpx.AsyncByteStream
        ):
            return response
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_CappedStream(response.stream, self._max_response_bytes),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            await transport.aclose()


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, limit: int) -> None:
        self._stream = stream
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self._stream:
            received += len(chunk)
            if received > self._limit:
                raise ResponseTooLarge(f"The response is larger than {self._limit} bytes.")
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()
