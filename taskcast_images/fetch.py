"""Downloading a URL a client chose, without letting it reach this machine's own network.

The guard is requests-hardened's IP filter: it resolves the host, refuses loopback, private,
link-local (the cloud metadata address 169.254.169.254 among them), multicast, reserved and
shared ranges, IPv4 and IPv6 alike, and then connects to the address it checked, so a second DNS
answer cannot swap it (DNS rebinding). Redirects go through the same filter on every hop, at
most :data:`MAX_REDIRECTS`. ``TASKCAST_FETCH_ALLOWLIST`` (``host:port,...``) lets loopback
servers named exactly so through, for tests and local demos; nothing else on loopback passes.

Limits: connect and read timeouts, :data:`MAX_BYTES` declared (``Content-Length``) and actual
(counted after any ``Content-Encoding`` is undone, so a gzip bomb is cut off at the limit too).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests_hardened import Config as HardenedConfig
from requests_hardened import HTTPSession
from requests_hardened.ip_filter import InvalidIPAddress, get_ip_address
from requests_hardened.ip_filter_adapter import IPFilterAdapter

from taskcore.errors import ConfigError

MAX_BYTES = 20 * 1024 * 1024
MAX_REDIRECTS = 5
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 15.0
CHUNK_BYTES = 16 * 1024
USER_AGENT = "taskcast-images/1"


class FetchError(Exception):
    """The download failed; ``retry`` says whether trying again later could help."""

    def __init__(self, message: str, *, code: str, retry: bool) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry = retry


@dataclass(frozen=True)
class Fetched:
    body: bytes
    content_type: str
    url: str
    """Where the body came from, after redirects."""


def parse_allowlist(value: str | None) -> frozenset[tuple[str, int]]:
    """``TASKCAST_FETCH_ALLOWLIST``: ``host:port`` entries, comma-separated; ``[v6]:port`` too."""
    entries: set[tuple[str, int]] = set()
    for raw in (value or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        parts = urlsplit(f"//{entry}")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or parts.path or parts.username:
            raise ConfigError("TASKCAST_FETCH_ALLOWLIST", f"{entry!r} is not host:port")
        entries.add((parts.hostname.lower(), port))
    return frozenset(entries)


def allowlist_from_env() -> frozenset[tuple[str, int]]:
    return parse_allowlist(os.environ.get("TASKCAST_FETCH_ALLOWLIST"))


def check_address(host: str, port: int, *, allow_loopback: bool = False) -> str:
    """The guard's decision for one connection: the address to connect to, or
    :class:`FetchError` (not retried) if ``host`` resolves where a fetch must not go."""
    try:
        address, _ = get_ip_address(host, port, allow_loopback=allow_loopback)
    except InvalidIPAddress:
        raise FetchError(
            f"refused: {host} resolves to an address this service may not fetch from",
            code="fetch_refused",
            retry=False,
        ) from None
    except socket.gaierror as exc:
        raise FetchError(f"cannot resolve {host}: {exc}", code="fetch_failed", retry=True) from None
    return str(address)


def _url_prefix(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}/"


def session(allowlist: Iterable[tuple[str, int]] = ()) -> requests.Session:
    """A session whose every connection, redirects included, goes through the guard.

    An allow-listed ``host:port`` is mounted with an adapter that lets loopback through for
    URLs that start with exactly that host and port; every other URL gets the strict one.
    """
    hardened: requests.Session = HTTPSession(
        HardenedConfig(
            ip_filter_enable=True,
            ip_filter_allow_loopback_ips=False,
            never_redirect=False,
            default_timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
            user_agent_override=USER_AGENT,
        )
    )
    hardened.max_redirects = MAX_REDIRECTS
    for host, port in allowlist:
        for scheme in ("http", "https"):
            hardened.mount(
                _url_prefix(scheme, host, port),
                IPFilterAdapter(is_https_proto=scheme == "https", allow_loopback=True),
            )
    return hardened


def fetch(
    url: str,
    *,
    allowlist: Iterable[tuple[str, int]] = (),
    max_bytes: int = MAX_BYTES,
    on_bytes: Callable[[int], None] | None = None,
) -> Fetched:
    """Download ``url`` through the guard, within the limits; :class:`FetchError` says why not.

    Refused addresses, URLs that are not http(s), too many redirects, a body over the limit and
    a 4xx answer are final; timeouts, refused or reset connections and 5xx answers are worth
    another attempt. ``on_bytes`` is told the running count as the body arrives.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"not an http(s) URL: {url!r}", code="invalid_url", retry=False)
    if parts.username or parts.password:
        raise FetchError("URLs with credentials are refused", code="invalid_url", retry=False)
    try:
        with session(allowlist) as http, http.get(url, stream=True) as response:
            return _read(response, max_bytes, on_bytes)
    except FetchError:
        raise
    except InvalidIPAddress:
        raise FetchError(
            f"refused: {parts.hostname} (or a redirect from it) resolves to an address this "
            "service may not fetch from",
            code="fetch_refused",
            retry=False,
        ) from None
    except requests.TooManyRedirects:
        raise FetchError(
            f"more than {MAX_REDIRECTS} redirects", code="fetch_refused", retry=False
        ) from None
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
        raise FetchError(f"invalid URL: {exc}", code="invalid_url", retry=False) from None
    except (
        requests.Timeout,
        requests.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
    ) as exc:
        raise FetchError(
            f"could not fetch {parts.hostname}: {type(exc).__name__}",
            code="fetch_unavailable",
            retry=True,
        ) from None


def _read(
    response: requests.Response, max_bytes: int, on_bytes: Callable[[int], None] | None
) -> Fetched:
    if response.status_code >= 500:
        raise FetchError(
            f"the origin answered {response.status_code}", code="fetch_unavailable", retry=True
        )
    if response.status_code >= 400:
        raise FetchError(
            f"the origin answered {response.status_code}", code="fetch_failed", retry=False
        )
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(
            f"the image is {int(declared)} bytes; the limit is {max_bytes}",
            code="too_large",
            retry=False,
        )
    body = bytearray()
    for chunk in response.iter_content(CHUNK_BYTES):
        body += chunk
        if len(body) > max_bytes:
            raise FetchError(
                f"the image is over the limit of {max_bytes} bytes",
                code="too_large",
                retry=False,
            )
        if on_bytes is not None:
            on_bytes(len(body))
    return Fetched(bytes(body), response.headers.get("Content-Type", ""), response.url)
