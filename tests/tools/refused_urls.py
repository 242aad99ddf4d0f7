"""URLs Koe refuses to save as ones it will call (tools, MCP servers, events), and why.

Shared by the tests of every place such a URL is saved: the dashboard forms and the API.
Each message is what the refusal says, so a test also shows that the right rule refused it.
"""

from __future__ import annotations

import pytest

REFUSED_URLS = [
    # loopback, in every spelling the system's address parser accepts
    pytest.param("http://127.0.0.1:8000/hook", "127.0.0.1 is a loopback address", id="loopback"),
    pytest.param("http://127.1/hook", "127.1 stands for 127.0.0.1", id="loopback-short"),
    pytest.param("http://2130706433/", "2130706433 stands for 127.0.0.1", id="loopback-decimal"),
    pytest.param("http://0x7f000001/", "0x7f000001 stands for 127.0.0.1", id="loopback-hex"),
    pytest.param("http://0x7f.1/", "0x7f.1 stands for 127.0.0.1", id="loopback-hex-dotted"),
    pytest.param("http://0177.0.0.1/", "0177.0.0.1 stands for 127.0.0.1", id="loopback-octal"),
    pytest.param("http://127.0.0.1./", "127.0.0.1 is a loopback address", id="loopback-dot"),
    pytest.param("http://[::1]:8080/", "::1 is a loopback address", id="loopback-ipv6"),
    pytest.param(
        "http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1 stands for 127.0.0.1", id="ipv4-mapped"
    ),
    pytest.param("http://[::ffff:7f00:1]/", "::ffff:7f00:1 stands for 127.0.0.1", id="mapped-hex"),
    pytest.param("http://localhost:8000/", "localhost stands for 127.0.0.1", id="localhost"),
    pytest.param("http://LocalHost./", "localhost stands for 127.0.0.1", id="localhost-dot"),
    pytest.param(
        "https://api.localhost/", "api.localhost stands for 127.0.0.1", id="sub-localhost"
    ),
    # the cloud metadata service
    pytest.param(
        "http://169.254.169.254/latest/meta-data/",
        "169.254.169.254 is the cloud metadata service's address",
        id="metadata",
    ),
    pytest.param(
        "http://2852039166/",
        "2852039166 stands for 169.254.169.254, the cloud metadata",
        id="metadata-decimal",
    ),
    pytest.param(
        "http://[::ffff:169.254.169.254]/",
        "stands for 169.254.169.254, the cloud metadata",
        id="metadata-mapped",
    ),
    pytest.param(
        "http://[fd00:ec2::254]/", "fd00:ec2::254 is the cloud metadata", id="metadata-ipv6"
    ),
    pytest.param(
        "http://metadata.google.internal/computeMetadata/v1/",
        "metadata.google.internal stands for 169.254.169.254, the cloud metadata",
        id="metadata-name",
    ),
    # link-local, private, unspecified, carrier-grade NAT
    pytest.param("http://169.254.10.10/", "169.254.10.10 is a link-local address", id="link-local"),
    pytest.param("http://[fe80::1]/", "fe80::1 is a link-local address", id="link-local-ipv6"),
    pytest.param("http://10.0.0.1/hook", "10.0.0.1 is a private address", id="private-10"),
    pytest.param("https://172.16.0.5/", "172.16.0.5 is a private address", id="private-172"),
    pytest.param("http://192.168.1.10/", "192.168.1.10 is a private address", id="private-192"),
    pytest.param("http://0xa000001/", "0xa000001 stands for 10.0.0.1", id="private-hex"),
    pytest.param("http://[fd12::1]/", "fd12::1 is a private address", id="private-ipv6"),
    pytest.param("http://0.0.0.0:8000/", "0.0.0.0 is an unspecified address", id="unspecified"),
    pytest.param("http://0/", "0 stands for 0.0.0.0", id="unspecified-zero"),
    pytest.param("http://[::]/", ":: is an unspecified address", id="unspecified-ipv6"),
    pytest.param("http://100.100.100.200/", "shared (carrier-grade NAT)", id="cgnat"),
    # no host at all
    pytest.param("http:///hook", "has no host", id="no-host"),
]

# Public, or names left to be resolved (and checked) when the URL is called.
ACCEPTED_URLS = [
    "https://hooks.example.com/book",
    "http://8.8.8.8/hook",
    "https://[2606:4700:4700::1111]/hook",
    "https://localhost.example.com/",
    "https://metadata.example.com/",
]
