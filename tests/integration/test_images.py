"""The image task against real servers on loopback: an origin allowed by the setting, canaries
the guard must never reach, and the moto server as S3. No traffic leaves this machine, even if
the guard were broken: every address used is a loopback one."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer
from PIL import Image

from infra.storage import ensure_bucket
from taskcast_images import fetch, results
from taskcast_images import tasks as image_tasks
from taskcast_images.fetch import FetchError
from taskcore.definition import TaskFailed
from taskcore.names import Names
from tests.e2e.conftest import free_port
from tests.images import Canary, Origin

pytestmark = pytest.mark.integration


class Recorder:
    """A task context that records what the task reports."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.task_id = "0b0e5c8e-0000-4000-8000-000000000001"
        self.attempt = 1
        self.max_attempts = 3
        self.trace_id = "trace"
        self.traceparent: str | None = None
        self.payload = payload
        self.progressed: list[tuple[float, str]] = []
        self.emitted: list[tuple[str, Any]] = []
        self.cancel_requested = False

    def progress(self, percent: float, message: str = "") -> None:
        self.progressed.append((percent, message))

    def emit(self, name: str, data: Any = None) -> None:
        self.emitted.append((name, data))

    def raise_if_cancelled(self) -> None:
        pass


@pytest.fixture
def allowed(server: Origin, monkeypatch: pytest.MonkeyPatch) -> frozenset[tuple[str, int]]:
    """The origin, and only it, allowed as TASKCAST_FETCH_ALLOWLIST would."""
    allowlist = fetch.parse_allowlist(f"127.0.0.1:{server.server_address[1]}")
    monkeypatch.setattr(image_tasks, "ALLOWLIST", allowlist)
    return allowlist


@pytest.fixture
def s3(namespace: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The moto server on loopback as S3, with this test's results bucket."""
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("TASKCAST_NAMESPACE", namespace)
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
    ensure_bucket(client, Names(namespace).bucket, "us-east-1")
    results.current.cache_clear()
    yield client
    results.current.cache_clear()
    moto.stop()


def test_an_image_is_fetched_filtered_stored_and_its_url_works(
    server: Origin, birds: list[Canary], allowed: Any, s3: Any, namespace: str
) -> None:
    ctx = Recorder(
        {
            "url": f"{server.base}/cat.png",
            "filter": "thumbnail",
            "params": {"max_side": 100},
            "format": "jpeg",
        }
    )

    result = image_tasks.filter_image(ctx, ctx.payload)

    assert result["bucket"] == Names(namespace).bucket
    assert result["key"] == f"images/{ctx.task_id}.jpeg"
    assert (result["width"], result["height"], result["content_type"]) == (100, 63, "image/jpeg")
    assert result["url_expires_in_s"] == 3600
    served = requests.get(result["url"], timeout=10)
    assert served.status_code == 200
    assert len(served.content) == result["size"]
    assert Image.open(io.BytesIO(served.content)).size == (100, 63)
    stages = [data["stage"] for name, data in ctx.emitted if name == "stage"]
    assert stages == ["download", "decode", "filter", "upload"]
    assert ctx.emitted[0][1]["bytes"] == result["source"]["bytes"] > 0
    percents = [p for p, _ in ctx.progressed]
    assert percents == sorted(percents)


def test_redirects_within_the_allowed_origin_are_followed(
    server: Origin, birds: list[Canary], allowed: Any, s3: Any
) -> None:
    ctx = Recorder({"url": f"{server.base}/via-redirect", "filter": "grayscale", "format": "png"})
    ctx.payload["params"] = {}
    result = image_tasks.filter_image(ctx, ctx.payload)
    assert result["source"]["url"].endswith("/cat.png")


def canary_urls(server: Origin, birds: list[Canary]) -> list[str]:
    here, other_host, ipv6 = birds
    return [
        f"http://127.0.0.1:{here.port}/x",  # loopback, another port
        f"http://127.0.0.2:{other_host.port}/x",  # another loopback address
        f"http://[::1]:{ipv6.port}/x",  # IPv6 loopback
        f"http://localhost:{here.port}/x",  # a name for loopback
        f"http://2130706433:{here.port}/x",  # 127.0.0.1 in decimal
        f"http://0x7f000001:{here.port}/x",  # 127.0.0.1 in hex
        f"http://0177.0.0.1:{here.port}/x",  # 127.0.0.1 in octal
        f"http://127.1:{here.port}/x",  # 127.0.0.1, short
        f"http://localhost:{server.server_address[1]}/cat.png",  # the allowed server, misnamed
        f"{server.base}/to-canary",  # a redirect from the allowed server to the canary
    ]


def test_no_spelling_of_this_machine_gets_through_the_guard(
    server: Origin, birds: list[Canary], allowed: Any
) -> None:
    for url in canary_urls(server, birds):
        with pytest.raises(FetchError) as refused:
            fetch.fetch(url, allowlist=allowed)
        assert (refused.value.code, refused.value.retry) == ("fetch_refused", False), url


def test_nothing_on_loopback_is_reachable_without_the_allowlist(
    server: Origin, birds: list[Canary]
) -> None:
    with pytest.raises(FetchError) as refused:
        fetch.fetch(f"{server.base}/cat.png")
    assert refused.value.code == "fetch_refused"
    assert server.requests == []


@pytest.mark.parametrize(
    ("path", "code", "retry"),
    [
        ("/missing", "fetch_failed", False),  # 4xx: final
        ("/broken", "fetch_unavailable", True),  # 5xx: worth another attempt
        ("/declared-huge", "too_large", False),  # Content-Length over 20 MB
        ("/gzip-bomb", "too_large", False),  # 30 KiB that decode to 30 MiB
        ("/hop/0", "fetch_refused", False),  # more than 5 redirects
        ("/to-file", "invalid_url", False),  # a redirect out of http(s)
        ("/bad-gzip", "fetch_failed", False),  # a body that cannot be decoded
    ],
)
def test_fetch_failures_say_whether_they_are_worth_retrying(
    server: Origin, birds: list[Canary], allowed: Any, path: str, code: str, retry: bool
) -> None:
    with pytest.raises(FetchError) as failed:
        fetch.fetch(f"{server.base}{path}", allowlist=allowed)
    assert (failed.value.code, failed.value.retry) == (code, retry)


def test_a_connection_refused_or_timed_out_is_worth_retrying(
    server: Origin, allowed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = free_port()  # nothing listens there
    with pytest.raises(FetchError) as refused:
        fetch.fetch(f"http://127.0.0.1:{closed}/x", allowlist={("127.0.0.1", closed)})
    assert (refused.value.code, refused.value.retry) == ("fetch_unavailable", True)
    monkeypatch.setattr(fetch, "READ_TIMEOUT_S", 0.5)
    with pytest.raises(FetchError) as slow:
        fetch.fetch(f"{server.base}/slow", allowlist=allowed)
    assert (slow.value.code, slow.value.retry) == ("fetch_unavailable", True)


@pytest.mark.parametrize(
    ("path", "code"), [("/page.html", "not_an_image"), ("/pixels.png", "too_large")]
)
def test_the_task_fails_without_retry_on_what_is_not_a_usable_image(
    server: Origin,
    birds: list[Canary],
    allowed: Any,
    s3: Any,
    namespace: str,
    path: str,
    code: str,
) -> None:
    ctx = Recorder({"url": f"{server.base}{path}", "filter": "blur", "params": {}, "format": "png"})
    with pytest.raises(TaskFailed) as failed:
        image_tasks.filter_image(ctx, ctx.payload)
    assert (failed.value.code, failed.value.retry) == (code, False)
    assert s3.list_objects_v2(Bucket=Names(namespace).bucket)["KeyCount"] == 0


def test_a_proxy_named_in_the_environment_is_not_used(
    server: Origin, birds: list[Canary], allowed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy resolves the name again itself: the address checked would not be the one used.
    proxy = f"http://127.0.0.1:{birds[0].port}"
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(variable, proxy)

    fetched = fetch.fetch(f"{server.base}/cat.png", allowlist=allowed)

    assert fetched.body.startswith(b"\x89PNG")
