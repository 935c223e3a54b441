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

import ipaddress
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests_hardened import Config as HardenedConfig
from requests_hardened import HTTPSession
from requests_hardened.ip_filter import InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter

from taskcast import TaskFailed
from taskcore.errors import ConfigError

MAX_BYTES = 20 * 1024 * 1024
MAX_REDIRECTS = 5
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 15.0
CHUNK_BYTES = 16 * 1024
USER_AGENT = "taskcast-images/1"


class FetchError(TaskFailed):
    """The download failed; ``retry`` says whether trying again later could help.

    A :class:`TaskFailed`, so that it fails the image task with its code as it propagates.
    """


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


class GuardedAdapter(IPFilterAdapter):  # type: ignore[misc]
    """requests-hardened's adapter, which resolves, filters and pins the address of every
    connection, plus one more rule: the pinned address must be globally routable and in no
    special-purpose range, which also refuses the reserved ranges the library lets by (``::/8``,
    ``fec0::/10``, ...). A loopback address passes only where ``allow_loopback``."""

    def build_connection_pool_key_attributes(
        self, request: Any, verify: Any, cert: Any = None
    ) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        address = ipaddress.ip_address(str(host_params["host"]).strip("[]"))
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not _public(address) and not (self._allow_loopback and address.is_loopback):
            raise InvalidIPAddress(address)
        return host_params, pool_kwargs


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable, and in no special-purpose range (``is_global`` alone, before Python
    3.13, lets reserved and site-local IPv6 by)."""
    special = (
        address.is_reserved
        or address.is_multicast
        or address.is_link_local
        or address.is_unspecified
        or getattr(address, "is_site_local", False)
    )
    return address.is_global and not special


def _url_prefix(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}/"


def session(allowlist: Iterable[tuple[str, int]] = ()) -> requests.Session:
    """A session whose every connection, redirects included, goes through the guard.

    An allow-listed ``host:port`` is mounted with an adapter that lets loopback through for
    URLs that start with exactly that host and port; every other URL gets the strict one.
    """
    guarded: requests.Session = HTTPSession(
        HardenedConfig(
            ip_filter_enable=False,  # the adapters below do it, with the stricter rule
            ip_filter_allow_loopback_ips=False,
            never_redirect=False,
            default_timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
            user_agent_override=USER_AGENT,
        )
    )
    guarded.max_redirects = MAX_REDIRECTS
    # No proxy from the environment: a proxy resolves the name again itself, so the address
    # checked here would not be the one connected to. And no .netrc credentials for a host a
    # client chose.
    guarded.trust_env = False
    for scheme in ("http", "https"):
        guarded.mount(f"{scheme}://", GuardedAdapter(is_https_proto=scheme == "https"))
        for host, port in allowlist:
            guarded.mount(
                _url_prefix(scheme, host, port),
                GuardedAdapter(is_https_proto=scheme == "https", allow_loopback=True),
            )
    return guarded


def fetch(
    url: str,
    *,
    allowlist: Iterable[tuple[str, int]] = (),
    max_bytes: int = MAX_BYTES,
    on_bytes: Callable[[int], None] | None = None,
) -> Fetched:
    """Download ``url`` through the guard, within the limits; :class:`FetchError` says why not.

    Refused addresses, URLs that are not http(s) (also as a redirect's target), too many
    redirects, a body over the limit or undecodable, and a 4xx answer are final; timeouts,
    refused or reset connections, failed name lookups and 5xx answers are worth another
    attempt. ``on_bytes`` is told the running count as the body arrives.
    """
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        if parts.scheme not in ("http", "https") or not hostname:
            raise FetchError(f"not an http(s) URL: {url!r}", code="invalid_url", retry=False)
        if parts.username is not None or parts.password is not None:
            raise FetchError("URLs with credentials are refused", code="invalid_url", retry=False)
        with session(allowlist) as http, http.get(url, stream=True) as response:
            return _read(response, max_bytes, on_bytes)
    except FetchError:
        raise
    except InvalidIPAddress:
        raise FetchError(
            "refused: the URL (or a redirect from it) leads to an address this service may "
            "not fetch from",
            code="fetch_refused",
            retry=False,
        ) from None
    except requests.TooManyRedirects:
        raise FetchError(
            f"more than {MAX_REDIRECTS} redirects", code="fetch_refused", retry=False
        ) from None
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.InvalidSchema,
        requests.exceptions.MissingSchema,
        ValueError,
    ) as exc:
        raise FetchError(f"invalid URL: {exc}", code="invalid_url", retry=False) from None
    except requests.exceptions.ContentDecodingError as exc:
        raise FetchError(
            f"the body cannot be decoded: {exc}", code="fetch_failed", retry=False
        ) from None
    except (
        requests.Timeout,
        requests.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
    ) as exc:
        raise FetchError(
            f"could not fetch from {parts.hostname}: {type(exc).__name__}",
            code="fetch_unavailable",
            retry=True,
        ) from None
    except requests.RequestException as exc:
        raise FetchError(f"the fetch failed: {exc}", code="fetch_failed", retry=False) from None


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
