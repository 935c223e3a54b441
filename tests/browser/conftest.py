"""The console in a real browser: Debian's Chromium driven by Playwright, against a whole stack.

Playwright's own browser download is not reachable from our machines, so the tests launch the
Chromium on PATH (``make install`` installs Debian's package when there is none). With no
Chromium these tests fail, saying how to get one; they never skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import aio_pika
import pytest
import redis
from playwright.sync_api import Browser, Page, sync_playwright

from taskcast.local.stack import Ports, Stack
from taskcore.names import Names
from tests.conftest import RABBITMQ_URL, REDIS_SERVER, WATCH_SECRET

REDIS_URL = f"{REDIS_SERVER}/12"
"""The browser stack's own database: the per-test one is flushed by other tests."""
KEYS = {"operator": "dev-key", "other": "other-key", "search": "search-key"}
"""API keys by use: the operator's, one that must see nothing of the others', one for searching."""
# The flags a root, offline machine needs: no sandbox, and no calls home that would be refused.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chromium() -> str:
    """The Chromium to drive: ``TASKCAST_CHROMIUM``, else the first one on PATH."""
    candidates = [os.environ.get("TASKCAST_CHROMIUM", "")]
    candidates += [shutil.which(n) or "" for n in ("chromium", "chromium-browser", "google-chrome")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    pytest.fail(
        "no Chromium to run the browser tests: `make install` installs Debian's chromium "
        "package (apt-get install -y chromium), or set TASKCAST_CHROMIUM to a Chromium binary",
        pytrace=False,
    )


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    # Package-scoped: Playwright's sync API runs an event loop on this thread while it is open,
    # and every asyncio test after this package needs the thread without one.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    """A fresh browser profile; a script error on the page fails the test.

    When the test fails, the page's screenshot, text and console lines are kept in its
    ``tmp_path`` and their place is printed.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    opened = context.new_page()
    errors: list[Any] = []
    lines: list[str] = []
    opened.on("pageerror", lambda error: errors.append(error))
    opened.on("console", lambda message: lines.append(f"{message.type}: {message.text}"))
    yield opened
    if request.node.stash.get(FAILED, False):
        opened.screenshot(path=tmp_path / "page.png", full_page=True)
        (tmp_path / "page.txt").write_text(
            f"{opened.url}\n\n{opened.inner_text('body')}\n\nconsole:\n" + "\n".join(lines)
        )
        print(f"the page as the test failed: {tmp_path}/page.png, page.txt")
    context.close()
    assert not errors, f"the page threw: {errors}"


class OtherOrigin:
    """Pages served from origins other than the console's: one allowed by the API, one not."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = outer.pages.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        self.thread = Thread(target=self.server.serve_forever, daemon=True)

    @property
    def allowed(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def refused(self) -> str:
        """The same server by another name: another origin, which the API does not allow."""
        return f"http://localhost:{self.port}"


@pytest.fixture(scope="package")
def other_origin() -> Iterator[OtherOrigin]:
    origin = OtherOrigin()
    origin.thread.start()
    yield origin
    origin.server.shutdown()
    origin.server.server_close()
    origin.thread.join(timeout=5)


@pytest.fixture(scope="package")
def console_stack(
    other_origin: OtherOrigin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The stack with its console, two keys (one an operator's) and no worker for ``gpu``."""
    namespace = f"browser{os.getpid()}"
    ports = Ports(free_port(), free_port(), free_port(), console=free_port())
    env = {
        **os.environ,
        "TASKCAST_NAMESPACE": namespace,
        "TASKCAST_RABBITMQ_URL": RABBITMQ_URL,
        "TASKCAST_REDIS_URL": REDIS_URL,
        "TASKCAST_WATCH_SECRET": WATCH_SECRET,
        "TASKCAST_API_KEYS": ",".join(f"{key}={owner}" for owner, key in KEYS.items()),
        "TASKCAST_OPERATORS": "operator",
        "TASKCAST_ALLOWED_ORIGINS": (f"http://127.0.0.1:{ports.console},{other_origin.allowed}"),
        "TASKCAST_CANCEL_GRACE": "1",
        "TASKCAST_SWEEP_INTERVAL": "2",
        "TASKCAST_TASKS": "taskcast_demo.tasks",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    log_path = tmp_path_factory.mktemp("browser") / "stack.log"
    with (
        log_path.open("w") as log,
        Stack(env, ports=ports, queues="default", output=log) as stack,
    ):
        yield stack
    with redis.Redis.from_url(REDIS_URL) as client:
        client.flushdb()
    drop_topology(stack.config.names)


def drop_topology(names: Names) -> None:
    """Delete a namespace's exchanges and queues from the broker."""

    async def drop() -> None:
        from infra.broker import delete_topology

        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            await delete_topology(await connection.channel(), names)

    # On a thread of its own: Playwright's sync API keeps an event loop running on this one.
    dropping = Thread(target=lambda: asyncio.run(drop()))
    dropping.start()
    dropping.join(timeout=30)
