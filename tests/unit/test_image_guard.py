"""The fetch guard's decisions, with name resolution stubbed: no connection is ever attempted."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from taskcast_images import fetch
from taskcast_images.fetch import FetchError, parse_allowlist
from taskcore.errors import ConfigError

FORBIDDEN = [
    "127.0.0.1",  # loopback
    "127.8.9.10",
    "10.1.2.3",  # private
    "172.16.0.9",
    "192.168.1.1",
    "169.254.169.254",  # link-local: the cloud metadata address
    "169.254.0.1",
    "100.64.0.1",  # shared (carrier-grade NAT)
    "0.0.0.0",  # unspecified
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",  # broadcast
    "192.0.0.8",  # IETF protocol assignments
    "198.18.0.1",  # benchmarking
    "::1",  # IPv6 loopback
    "::",  # unspecified
    "fe80::1",  # link-local
    "fc00::1",  # unique local
    "fd12:3456::1",
    "ff02::1",  # multicast
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",  # IPv4-mapped metadata
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "::7f00:1",  # reserved (::/8)
    "fec0::1",  # deprecated site-local
]


@pytest.fixture
def resolves_to(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make every name resolve to one address; record (and refuse) every connection attempt."""
    attempts: list[Any] = []

    def stub(address: str) -> list[Any]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET

        def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
            sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
            return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return attempts

    def connect(self: socket.socket, address: Any) -> None:
        attempts.append(address[:2])
        raise ConnectionRefusedError("no connection leaves a unit test")

    monkeypatch.setattr(socket.socket, "connect", connect)
    return stub


@pytest.mark.parametrize("address", FORBIDDEN)
def test_the_guard_refuses_every_address_of_this_machines_networks_before_connecting(
    resolves_to: Any, address: str
) -> None:
    attempts = resolves_to(address)
    for url in ("http://images.example/cat.png", "https://images.example:8443/cat.png"):
        with pytest.raises(FetchError) as refused:
            fetch.fetch(url)
        assert (refused.value.code, refused.value.retry) == ("fetch_refused", False)
    assert attempts == []


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_the_guard_connects_to_the_public_address_it_checked(
    resolves_to: Any, address: str
) -> None:
    attempts = resolves_to(address)
    with pytest.raises(FetchError) as unreachable:
        fetch.fetch("http://images.example/cat.png")
    assert (unreachable.value.code, unreachable.value.retry) == ("fetch_unavailable", True)
    assert attempts == [(address, 80)]


def test_an_allow_listed_host_and_port_may_be_on_loopback_and_nothing_else_may(
    resolves_to: Any,
) -> None:
    attempts = resolves_to("127.0.0.1")
    allowed = {("images.local", 8080)}
    with pytest.raises(FetchError) as unreachable:
        fetch.fetch("http://images.local:8080/cat.png", allowlist=allowed)
    assert unreachable.value.code == "fetch_unavailable"  # let through, then refused by the stub
    for other in ("http://images.local:8081/", "http://images.local/", "http://other:8080/"):
        with pytest.raises(FetchError) as refused:
            fetch.fetch(other, allowlist=allowed)
        assert refused.value.code == "fetch_refused", other
    assert attempts == [("127.0.0.1", 8080)]


def test_an_allow_listed_host_still_may_not_lead_to_a_private_network(resolves_to: Any) -> None:
    attempts = resolves_to("10.0.0.7")
    with pytest.raises(FetchError) as refused:
        fetch.fetch("http://images.local:8080/cat.png", allowlist={("images.local", 8080)})
    assert refused.value.code == "fetch_refused"
    assert attempts == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/cat.png",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://user:secret@example.com/cat.png",
        "http:///cat.png",
        "http://[::1",
        "http://[zz]/x",
    ],
)
def test_what_is_not_a_plain_http_url_is_refused_without_a_lookup(
    resolves_to: Any, url: str
) -> None:
    resolves_to("93.184.216.34")
    with pytest.raises(FetchError) as refused:
        fetch.fetch(url)
    assert (refused.value.code, refused.value.retry) == ("invalid_url", False)


def test_the_allowlist_is_host_port_pairs() -> None:
    assert parse_allowlist(" 127.0.0.1:8080, [::1]:9000,Images.Local:80 ,") == {
        ("127.0.0.1", 8080),
        ("::1", 9000),
        ("images.local", 80),
    }
    assert parse_allowlist(None) == frozenset()


@pytest.mark.parametrize("value", ["127.0.0.1", "127.0.0.1:http", "a:1/path", "u@h:1", ":80"])
def test_a_malformed_allowlist_fails_naming_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match="TASKCAST_FETCH_ALLOWLIST"):
        parse_allowlist(value)
